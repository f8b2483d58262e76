"""The EN 16931 semantic invoice both syntaxes fill (UBL, CII), its rules, and its BillDraft."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Literal
from xml.etree.ElementTree import Element

from pydantic import ValidationError

from accounting.documents import (
    BillDraft,
    DocumentRef,
    DocumentType,
    DraftLine,
    InvoiceReference,
    LineKind,
    PayeeDetails,
    TaxBreakdown,
    VendorDetails,
)
from accounting.formats.problems import (
    MAX_AMOUNT,
    CaptureError,
    Problem,
    decimal_places,
    problems_from_validation_error,
    show,
)
from accounting.money import as_written, minor_units

_XSD_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
# More digits than any real figure has; keeps Decimal arithmetic (28 digits) exact.
_MAX_DIGITS = 40
CENT = Decimal("0.01")
ZERO = Decimal("0")
# Rounding a product of two large inputs to the cent needs more than Decimal's default 28
# digits; with these, no figure the reader lets through can overflow a quantize.
_WIDE = Context(prec=80)

# BR-CO-17 / BR-S-09 as CEN's schematron codes them: the VAT of a category may differ from
# taxable × rate by up to one currency unit (suppliers round per line or per document).
VAT_SLACK = Decimal("1.00")
# Peppol PEPPOL-EN16931-R120: a line's net amount within 0.02 of quantity × price ± its
# allowances and charges.
LINE_SLACK = Decimal("0.02")

# UNTDID 1001 document type codes (CEN BR-CL-01, both the UBL invoice and credit note lists,
# and Peppol P0100/P0101) to what they ask of accounts payable.
_INVOICE_CODES = "71 82 102 218 219 326 331 380 382 388 393 395 553 575 623 751 780 817 870 875"
_DOCUMENT_TYPES: dict[str, DocumentType] = {
    **dict.fromkeys([*_INVOICE_CODES.split(), "876", "877"], DocumentType.invoice),
    **dict.fromkeys("80 84 383".split(), DocumentType.debit_note),
    "384": DocumentType.corrective,
    "386": DocumentType.prepayment,
    "389": DocumentType.self_billed,
    **dict.fromkeys(
        "81 83 261 262 296 308 381 396 420 458 502 503 532".split(), DocumentType.credit_note
    ),
}
_FACTORED = {"393", "396"}

# BR-DEC-nn: at most 2 decimals, per business term (the only decimal caps EN 16931 has).
DECIMAL_RULES: dict[str, str] = {
    "BT-92": "BR-DEC-01",
    "BT-93": "BR-DEC-02",
    "BT-99": "BR-DEC-05",
    "BT-100": "BR-DEC-06",
    "BT-106": "BR-DEC-09",
    "BT-107": "BR-DEC-10",
    "BT-108": "BR-DEC-11",
    "BT-109": "BR-DEC-12",
    "BT-110": "BR-DEC-13",
    "BT-112": "BR-DEC-14",
    "BT-111": "BR-DEC-15",
    "BT-113": "BR-DEC-16",
    "BT-114": "BR-DEC-17",
    "BT-115": "BR-DEC-18",
    "BT-116": "BR-DEC-19",
    "BT-117": "BR-DEC-20",
    "BT-131": "BR-DEC-23",
    "BT-136": "BR-DEC-24",
    "BT-137": "BR-DEC-25",
    "BT-141": "BR-DEC-27",
    "BT-142": "BR-DEC-28",
}

Syntax = Literal["ubl", "cii", "zugferd1"]


# --- the semantic model ------------------------------------------------------------------------


@dataclass
class Party:
    """A seller (BG-4), buyer (BG-7) or payee (BG-10)."""

    legal_name: str | None = None  # BT-27 / BT-44 / BT-59
    trading_name: str | None = None  # BT-28 / BT-45
    identifiers: list[str] = field(default_factory=list)  # BT-29 / BT-46 / BT-60
    legal_id: str | None = None  # BT-30 / BT-47 / BT-61
    vat_id: str | None = None  # BT-31 / BT-48
    tax_registration_id: str | None = None  # BT-32
    email: str | None = None  # BT-43
    street: str | None = None
    city: str | None = None
    postal_zone: str | None = None
    country: str | None = None  # BT-40 / BT-55
    location: str = ""  # the party's XPath, for problems

    @property
    def name(self) -> str | None:
        return self.legal_name or self.trading_name


@dataclass
class PaymentAccount:
    """One of the seller's accounts to pay into (BG-17)."""

    account: str  # BT-84: IBAN or proprietary account number
    bic: str | None = None  # BT-86


@dataclass
class AllowanceCharge:
    """A document (BG-20/21) or line (BG-27/28) allowance or charge."""

    is_charge: bool
    amount: Decimal  # BT-92 / BT-99 / BT-136 / BT-141
    location: str
    base_amount: Decimal | None = None
    percent: Decimal | None = None
    reason: str | None = None
    reason_code: str | None = None
    tax_category: str | None = None  # BT-95 / BT-102
    tax_rate: Decimal | None = None  # BT-96 / BT-103


@dataclass
class Line:
    """An invoice line (BG-25)."""

    location: str
    line_id: str | None = None  # BT-126
    quantity: Decimal | None = None  # BT-129
    unit: str | None = None  # BT-130
    net_amount: Decimal | None = None  # BT-131
    net_price: Decimal | None = None  # BT-146
    price_discount: Decimal | None = None  # BT-147
    gross_price: Decimal | None = None  # BT-148
    base_quantity: Decimal | None = None  # BT-149
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)  # BG-27/28
    tax_category: str | None = None  # BT-151
    tax_rate: Decimal | None = None  # BT-152
    name: str | None = None  # BT-153
    description: str | None = None  # BT-154
    accounting_cost: str | None = None  # BT-133
    # Where each term sits, for problems: "BT-131" -> its XPath.
    where: dict[str, str] = field(default_factory=dict)


@dataclass
class VatBreakdown:
    """One VAT breakdown row (BG-23)."""

    location: str
    category: str | None = None  # BT-118
    rate: Decimal | None = None  # BT-119
    taxable: Decimal | None = None  # BT-116
    tax: Decimal | None = None  # BT-117
    exemption_reason: str | None = None  # BT-120
    exemption_code: str | None = None  # BT-121


@dataclass
class Invoice:
    """An EN 16931 invoice or credit note, whichever syntax it came in."""

    syntax: Syntax
    number: str | None = None  # BT-1
    issue_date: date | None = None  # BT-2
    type_code: str | None = None  # BT-3
    currency: str | None = None  # BT-5
    due_date: date | None = None  # BT-9
    buyer_reference: str | None = None  # BT-10
    order_reference: str | None = None  # BT-13
    payment_terms: str | None = None  # BT-20
    notes: list[str] = field(default_factory=list)  # BT-22
    specification: str | None = None  # BT-24
    seller: Party | None = None  # BG-4
    buyer: Party | None = None  # BG-7
    payee: Party | None = None  # BG-10
    payment_accounts: list[PaymentAccount] = field(default_factory=list)  # BG-17
    corrects: list[tuple[str, date | None]] = field(default_factory=list)  # BG-3
    lines: list[Line] = field(default_factory=list)  # BG-25
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)  # BG-20/21
    vat_breakdown: list[VatBreakdown] = field(default_factory=list)  # BG-23
    # BT-106 .. BT-115, keyed by term ("BT-109"); absent terms are absent keys.
    totals: dict[str, Decimal] = field(default_factory=dict)
    # Where each header term is (or would be) written: "BT-115" -> its XPath.
    where: dict[str, str] = field(default_factory=dict)
    # The line element's XPath, named in a refusal of an invoice without lines (BR-16).
    lines_location: str = ""

    def total(self, term: str) -> Decimal:
        return self.totals.get(term, ZERO)

    @property
    def peppol(self) -> bool:
        """Claims Peppol BIS Billing 3.0, whose rules (R120, ...) are then fatal."""
        return "peppol.eu" in (self.specification or "")

    @property
    def header_only(self) -> bool:
        """Factur-X MINIMUM and BASIC WL: booking aids without lines (research §5)."""
        spec = (self.specification or "").lower()
        return not self.lines and ("minimum" in spec or "basicwl" in spec)


# --- reading values out of XML -----------------------------------------------------------------


class XmlReader:
    """Reads values out of one document, collecting every problem instead of stopping at the
    first. Locations are XPaths relative to the root element, 1-based as XPath counts."""

    def __init__(self, root: Element, namespaces: dict[str, str]) -> None:
        self.root = root
        self.namespaces = namespaces
        self.problems: list[Problem] = []
        self.currency: str | None = None
        # Sums over amounts already refused would only repeat those problems in other words.
        self.amounts_refused = 0

    def refuse(self, location: str, message: str) -> None:
        self.problems.append(Problem(location, message))

    def refuse_amount(self, location: str, message: str) -> None:
        self.amounts_refused += 1
        self.refuse(location, message)

    def find(self, parent: Element | None, path: str) -> Element | None:
        return None if parent is None else parent.find(path, self.namespaces)

    def findall(self, parent: Element | None, path: str) -> list[Element]:
        return [] if parent is None else parent.findall(path, self.namespaces)

    def text(
        self, parent: Element | None, path: str, location: str = "", *, required: bool = False
    ) -> str | None:
        element = self.find(parent, path) if path else parent
        value = (element.text or "").strip() if element is not None else ""
        if not value:
            if required:
                self.refuse(location, "is required")
            return None
        return value

    def texts(self, parent: Element | None, path: str) -> list[str]:
        return [
            (element.text or "").strip()
            for element in self.findall(parent, path)
            if (element.text or "").strip()
        ]

    def number(
        self,
        parent: Element | None,
        path: str,
        location: str,
        *,
        term: str | None = None,
        required: bool = False,
        currency: bool = False,
    ) -> Decimal | None:
        """A decimal. `term` names an amount EN 16931 caps at 2 decimals (BR-DEC); `currency`
        checks a currencyID against the document currency. Quantities, prices and percentages
        take any number of decimals: their value counts, not how many digits are written."""
        element = self.find(parent, path) if path else parent
        value = (element.text or "").strip() if element is not None else ""
        if element is None or not value:
            if required:
                self.refuse_amount(location, "is required")
            return None
        if currency:
            stated = (element.get("currencyID") or "").strip()
            if stated and self.currency is not None and stated != self.currency:
                self.refuse_amount(
                    f"{location}/@currencyID",
                    f"is {stated!r} but the document currency is {self.currency}: every amount "
                    "must be in the document currency",
                )
                return None
        if len(value) > _MAX_DIGITS or not _XSD_DECIMAL.fullmatch(value):
            self.refuse_amount(location, f"{value[:_MAX_DIGITS]!r} is not a decimal number")
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            self.refuse_amount(location, f"{value!r} is not a decimal number")
            return None
        if abs(number) >= MAX_AMOUNT:
            self.refuse_amount(location, f"{show(number)} is too large")
            return None
        if term is not None and decimal_places(number.normalize()) > 2:
            rule = DECIMAL_RULES.get(term, "BR-DEC")
            self.refuse_amount(
                location, f"{rule}: {show(number)} has more than 2 decimals ({term} is an amount)"
            )
            return None
        # The value counts, not the digits written: 1.00000000 is 1, an amount 600.0000 is 600.00.
        if term is not None:
            return number.quantize(CENT)  # lossless: at most 2 decimals by now
        return plain(number)

    def set_currency(self, code: str | None, location: str) -> None:
        if code is None:
            return
        try:
            minor_units(code)
        except KeyError:
            self.refuse(location, f"unknown currency {code!r}: use an ISO 4217 code such as EUR")
            return
        self.currency = code


def plain(value: Decimal) -> Decimal:
    """The value without trailing zeros, never in exponent form: 5.000 → 5, 1E+2 → 100."""
    normal = value.normalize()
    if not normal:
        return Decimal(0)
    return normal if decimal_places(normal) > 0 else normal.quantize(Decimal(1), context=_WIDE)


# --- the rules ---------------------------------------------------------------------------------


def document_type_of(code: str) -> DocumentType | None:
    return _DOCUMENT_TYPES.get(code)


def _round2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP, context=_WIDE)  # half away from zero


def _term_name(location: str) -> str:
    return location.rsplit("/", 1)[-1].split(":")[-1] or location


def check(invoice: Invoice, *, arithmetic: bool = True) -> list[Problem]:
    """EN 16931's rules the semantic model can break: mandatory terms, codes, signs, and the
    arithmetic (BR-CO-10..17, Peppol R120). Each problem names its rule."""
    problems: list[Problem] = []
    where = invoice.where

    def refuse(term: str, message: str) -> None:
        problems.append(Problem(where.get(term, term), message))

    for term, rule, what in (
        ("BT-1", "BR-02", "the invoice number"),
        ("BT-2", "BR-03", "the issue date"),
        ("BT-3", "BR-04", "the document type code"),
        ("BT-5", "BR-05", "the currency code"),
    ):
        value = {
            "BT-1": invoice.number,
            "BT-2": invoice.issue_date,
            "BT-3": invoice.type_code,
            "BT-5": invoice.currency,
        }[term]
        if value is None:
            refuse(term, f"{rule}: is required: {what} ({term})")
    if invoice.type_code is not None and document_type_of(invoice.type_code) is None:
        refuse(
            "BT-3",
            f"BR-CL-01: {invoice.type_code!r} is not a UNTDID 1001 invoice or credit note type "
            "code remit reads (380 invoice, 381 credit note, 383 debit note, 384 corrected, "
            "386 prepayment, 389 self-billed, ...)",
        )
    if invoice.seller is None or invoice.seller.name is None:
        refuse("BT-27", "BR-06: is required: the seller's name (BT-27)")
    if not invoice.lines and not invoice.header_only:
        problems.append(
            Problem(invoice.lines_location, "BR-16: is required: the invoice has no lines")
        )
    for term, rule in (("BT-109", "BR-13"), ("BT-112", "BR-14"), ("BT-115", "BR-15")):
        if term not in invoice.totals:
            refuse(term, f"{rule}: is required ({term})")
    if invoice.lines and "BT-106" not in invoice.totals:
        refuse("BT-106", "BR-12: is required (BT-106)")

    for line in invoice.lines:
        problems += _check_line(line)
    if invoice.peppol:
        problems += [Problem(at, message) for at, message in line_arithmetic(invoice)]
    if problems or not arithmetic:
        return problems  # the arithmetic over missing or refused terms would only repeat them
    problems += _check_arithmetic(invoice)
    return problems


def _check_line(line: Line) -> list[Problem]:
    problems: list[Problem] = []
    at = line.where
    if line.net_amount is None:
        problems.append(Problem(at.get("BT-131", line.location), "BR-24: is required (BT-131)"))
    if line.net_price is not None and line.net_price < 0:
        problems.append(
            Problem(
                at["BT-146"],
                f"BR-27: the item net price must not be negative, got {show(line.net_price)}",
            )
        )
    if line.gross_price is not None and line.gross_price < 0:
        problems.append(
            Problem(
                at["BT-148"],
                f"BR-28: the item gross price must not be negative, got {show(line.gross_price)}",
            )
        )
    if line.base_quantity is not None and line.base_quantity <= 0:
        problems.append(
            Problem(
                at["BT-149"],
                "PEPPOL-EN16931-R121: the base quantity must be greater than zero, got "
                f"{show(line.base_quantity)}",
            )
        )
    return problems


def line_arithmetic(invoice: Invoice) -> list[tuple[str, str]]:
    """Lines whose net amount is not quantity × price ± their allowances and charges within
    0.02 (PEPPOL-EN16931-R120): fatal under Peppol, a reason to look elsewhere (EN 16931 itself
    has no such rule, and CEN's own examples break it)."""
    found = []
    for line in invoice.lines:
        if line.net_amount is None or line.net_price is None:
            continue
        if line.base_quantity is not None and line.base_quantity <= 0:
            continue
        quantity = line.quantity if line.quantity is not None else Decimal(1)
        base = line.base_quantity or Decimal(1)
        charges = _round2(sum((ac.amount for ac in line.allowances_charges if ac.is_charge), ZERO))
        allowances = _round2(
            sum((ac.amount for ac in line.allowances_charges if not ac.is_charge), ZERO)
        )
        expected = quantity * (line.net_price / base) + charges - allowances
        if abs(expected - line.net_amount) <= LINE_SLACK:
            continue
        formula = f"quantity {show(quantity)} × price {show(line.net_price)}"
        if line.base_quantity is not None:
            formula += f" / base quantity {show(line.base_quantity)}"
        if charges:
            formula += f" + charges {show(charges)}"
        if allowances:
            formula += f" - allowances {show(allowances)}"
        found.append(
            (
                line.where["BT-131"],
                f"PEPPOL-EN16931-R120: is {show(line.net_amount)}, but {formula} = "
                f"{show(_round2(expected))} (within ±{LINE_SLACK})",
            )
        )
    return found


def _check_arithmetic(invoice: Invoice) -> list[Problem]:
    problems: list[Problem] = []
    where = invoice.where
    t = invoice.total
    allowances = [ac for ac in invoice.allowances_charges if not ac.is_charge]
    charges = [ac for ac in invoice.allowances_charges if ac.is_charge]

    def name(term: str) -> str:
        return f"{_term_name(where.get(term, term))} ({term})"

    def exact(rule: str, term: str, expected: Decimal, formula: str) -> None:
        # CEN codes BR-CO-10..16 exact to the cent, an absent optional total counting as 0.
        stated = t(term)
        if stated != _round2(expected):
            written = show(stated) if term in invoice.totals else "absent (counts as 0)"
            problems.append(
                Problem(
                    where.get(term, term),
                    f"{rule}: is {written}, but {formula} = {show(_round2(expected))}",
                )
            )

    if invoice.lines:
        exact(
            "BR-CO-10",
            "BT-106",
            sum((line.net_amount or ZERO for line in invoice.lines), ZERO),
            "the sum of the line net amounts (BT-131)",
        )
    if allowances or "BT-107" in invoice.totals:
        exact(
            "BR-CO-11",
            "BT-107",
            sum((ac.amount for ac in allowances), ZERO),
            "the sum of the document-level allowances (BT-92)",
        )
    if charges or "BT-108" in invoice.totals:
        exact(
            "BR-CO-12",
            "BT-108",
            sum((ac.amount for ac in charges), ZERO),
            "the sum of the document-level charges (BT-99)",
        )
    if "BT-106" in invoice.totals:
        exact(
            "BR-CO-13",
            "BT-109",
            t("BT-106") - t("BT-107") + t("BT-108"),
            f"{name('BT-106')} - {name('BT-107')} + {name('BT-108')}",
        )
    if invoice.vat_breakdown:
        exact(
            "BR-CO-14",
            "BT-110",
            sum((row.tax or ZERO for row in invoice.vat_breakdown), ZERO),
            "the sum of the VAT breakdown's category tax amounts (BT-117)",
        )
    exact("BR-CO-15", "BT-112", t("BT-109") + t("BT-110"), f"{name('BT-109')} + {name('BT-110')}")
    exact(
        "BR-CO-16",
        "BT-115",
        t("BT-112") - t("BT-113") + t("BT-114"),
        f"{name('BT-112')} - {name('BT-113')} + {name('BT-114')}",
    )
    for row in invoice.vat_breakdown:
        if row.taxable is None or row.tax is None:
            problems.append(
                Problem(row.location, "BR-45/BR-46: a VAT breakdown needs BT-116 and BT-117")
            )
            continue
        expected = _round2(abs(row.taxable) * (row.rate or ZERO) / 100)
        if abs(abs(row.tax) - expected) > VAT_SLACK:
            problems.append(
                Problem(
                    row.location,
                    f"BR-CO-17: the VAT of category {row.category} at {show(row.rate or ZERO)} % "
                    f"is {show(row.tax)}, but {show(row.taxable)} × {show(row.rate or ZERO)} % = "
                    f"{show(expected.copy_sign(row.taxable))} (within ±{VAT_SLACK})",
                )
            )
    return problems


def vat_gaps(invoice: Invoice) -> list[str]:
    """VAT rows the loose BR-CO-17 lets through but that differ from our own sum by more than a
    cent: worth a look, not a refusal."""
    reasons = []
    for row in invoice.vat_breakdown:
        if row.taxable is None or row.tax is None:
            continue
        expected = _round2(row.taxable * (row.rate or ZERO) / 100)
        if abs(row.tax - expected) > CENT:
            reasons.append(
                f"the VAT of category {row.category} at {show(row.rate or ZERO)} % is "
                f"{show(row.tax)} where {show(row.taxable)} × {show(row.rate or ZERO)} % makes "
                f"{show(expected)}: check the tax"
            )
    return reasons


# --- the draft ---------------------------------------------------------------------------------


def _address(party: Party) -> str | None:
    town = " ".join(part for part in (party.postal_zone, party.city) if part)
    return ", ".join(part for part in (party.street, town) if part) or None


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else value


def to_draft(invoice: Invoice, *, source: DocumentRef | None) -> BillDraft:
    """The BillDraft of an invoice that passed check(): Σ lines + tax = total (BT-115) exactly.

    The lines are the invoice lines, the document allowances (negative) and charges, a
    `prepaid` line of −BT-113 and a `rounding` line of BT-114. A document with a negative
    amount due is the other way round (a negative invoice is a credit): every amount negated.
    """
    assert invoice.seller is not None and invoice.currency is not None
    assert invoice.type_code is not None
    currency = invoice.currency
    reasons: list[str] = []
    document_type = _DOCUMENT_TYPES[invoice.type_code]
    sign = Decimal(1)
    if invoice.total("BT-115") < 0:
        sign = Decimal(-1)
        if document_type is DocumentType.credit_note:
            document_type = DocumentType.invoice
            reasons.append(
                f"a credit note ({invoice.type_code}) with a negative amount due: read as an "
                "invoice for the amount; check with the vendor"
            )
        else:
            document_type = DocumentType.credit_note

    def money(value: Decimal) -> Decimal:
        return as_written(sign * value, currency)

    lines: list[DraftLine] = []
    if invoice.header_only:
        reasons.append(
            f"the document ({invoice.specification}) has no invoice lines, only totals: code "
            "the bill by hand"
        )
        rows = [row for row in invoice.vat_breakdown if row.taxable is not None]
        if rows and sum((row.taxable or ZERO for row in rows), ZERO) == invoice.total("BT-109"):
            for row in rows:
                rate = f" {show(row.rate)} %" if row.rate is not None else ""
                lines.append(
                    DraftLine(
                        description=f"VAT category {row.category}{rate}",
                        amount=money(row.taxable or ZERO),
                        tax_category=row.category,
                        tax_rate=row.rate,
                    )
                )
        else:
            lines.append(
                DraftLine(
                    description="Invoice total without VAT", amount=money(invoice.total("BT-109"))
                )
            )
    else:
        for line in invoice.lines:
            unit_amount = None
            if line.net_price is not None:
                unit_amount = line.net_price
                if line.base_quantity not in (None, Decimal(1)):
                    assert line.base_quantity is not None
                    unit_amount = plain(line.net_price / line.base_quantity)
            lines.append(
                DraftLine(
                    description=line.name or line.description,
                    quantity=sign * line.quantity if line.quantity is not None else None,
                    unit_amount=unit_amount,
                    amount=money(line.net_amount or ZERO),
                    account=line.accounting_cost,
                    tax_category=line.tax_category,
                    tax_rate=line.tax_rate,
                    unit=line.unit,
                )
            )
        for ac in invoice.allowances_charges:
            lines.append(
                DraftLine(
                    description=ac.reason
                    or ac.reason_code
                    or ("Charge" if ac.is_charge else "Allowance"),
                    amount=money(ac.amount if ac.is_charge else -ac.amount),
                    kind=LineKind.charge if ac.is_charge else LineKind.allowance,
                    tax_category=ac.tax_category,
                    tax_rate=ac.tax_rate,
                )
            )
    if invoice.total("BT-113"):
        lines.append(
            DraftLine(
                description="Paid already",
                amount=money(-invoice.total("BT-113")),
                kind=LineKind.prepaid,
            )
        )
    if invoice.total("BT-114"):
        lines.append(
            DraftLine(
                description="Payable rounding",
                amount=money(invoice.total("BT-114")),
                kind=LineKind.rounding,
            )
        )

    if invoice.type_code == "389":
        reasons.append(
            "self-billed (389): the buyer issued this invoice for the seller; check it against "
            "what the vendor agreed"
        )
    if invoice.type_code == "751":
        reasons.append(
            "invoice information for accounting purposes (751): it may not be a request for payment"
        )
    if invoice.type_code in _FACTORED:
        reasons.append(
            f"factored ({invoice.type_code}): payment goes to the factor named as payee, not "
            "to the seller"
        )
    if document_type is DocumentType.corrective and not invoice.corrects:
        reasons.append("a corrected invoice (384) that names no invoice it corrects (BG-3)")
    reasons += vat_gaps(invoice)
    if not invoice.peppol:
        reasons += [
            f"{at}: {message.removeprefix('PEPPOL-EN16931-R120: ')}: check the line"
            for at, message in line_arithmetic(invoice)
        ]
    due_date = invoice.due_date
    if due_date is not None and invoice.issue_date is not None and due_date < invoice.issue_date:
        reasons.append(
            f"the document's due date {due_date} is before its issue date "
            f"{invoice.issue_date}: set the due date by hand"
        )
        due_date = None

    seller = invoice.seller
    trading_name = seller.trading_name if seller.trading_name != seller.name else None
    payee = None
    # BG-10 matters only when someone else is paid; a payee that is the seller again is not.
    if (
        invoice.payee is not None
        and invoice.payee.name is not None
        and invoice.payee.name not in (seller.legal_name, seller.trading_name)
    ):
        payee = PayeeDetails(
            name=invoice.payee.name[:200],
            tax_id=next(iter(invoice.payee.identifiers), None),
            legal_id=invoice.payee.legal_id,
            bank_account=invoice.payment_accounts[0].account if invoice.payment_accounts else None,
        )
    fields = {
        "document_number": invoice.number,
        "issue_date": invoice.issue_date,
        "due_date": due_date,
        "currency": currency,
        "vendor": VendorDetails(
            name=seller.name or "",
            trading_name=_clip(trading_name, 200),
            tax_id=seller.vat_id or seller.tax_registration_id or seller.legal_id,
            email=seller.email,
            country=seller.country.upper() if seller.country else None,
            address=_address(seller),
            bank_account=(
                invoice.payment_accounts[0].account
                if invoice.payment_accounts and payee is None
                else None
            ),
        ),
        "lines": lines,
        "tax_amount": money(invoice.total("BT-110")),
        "total": money(invoice.total("BT-115")),
        "memo": "\n".join(invoice.notes) or None,
        "purchase_order": invoice.order_reference,
        "source": source,
        "document_type": document_type,
        "type_code": invoice.type_code,
        "corrects": [InvoiceReference(number=n[:200], issue_date=d) for n, d in invoice.corrects],
        "buyer_reference": invoice.buyer_reference,
        "payment_terms": invoice.payment_terms,
        "payee": payee,
        "tax_breakdown": [
            TaxBreakdown(
                category=row.category,
                rate=row.rate,
                taxable=money(row.taxable or ZERO),
                tax=money(row.tax or ZERO),
                exemption_reason=row.exemption_reason,
                exemption_code=row.exemption_code,
            )
            for row in invoice.vat_breakdown
        ],
        "invoice_total": money(invoice.total("BT-112")),
        "prepaid_amount": money(invoice.total("BT-113")) if "BT-113" in invoice.totals else None,
        "rounding_amount": money(invoice.total("BT-114")) if "BT-114" in invoice.totals else None,
        "review_reasons": reasons,
    }
    try:
        return BillDraft.model_validate(fields)
    except ValidationError as exc:
        raise CaptureError(problems_from_validation_error(exc)) from None


def capture(reader: XmlReader, invoice: Invoice, *, source: DocumentRef | None) -> BillDraft:
    """Check what a syntax reader read and turn it into a draft; raise CaptureError naming
    every problem (the reader's and the rules') with its XPath."""
    problems = list(reader.problems)
    located = {problem.location for problem in problems}
    # Where the reader refused a value, the rules would only report it missing again.
    problems += [
        problem
        for problem in check(invoice, arithmetic=not reader.amounts_refused)
        if not any(
            at == problem.location or at.startswith(f"{problem.location}/") for at in located
        )
    ]
    if problems:
        raise CaptureError(_unique(problems))
    return to_draft(invoice, source=source)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    kept = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            kept.append(problem)
    return kept
