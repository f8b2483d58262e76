"""UBL 2.1 invoices (Peppol BIS Billing 3.0) read safely into a BillDraft, with EN 16931 checks."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from accounting.documents import BillDraft, DocumentRef, DraftLine, VendorDetails
from accounting.formats.problems import (
    ACCEPTED_FORMATS,
    MAX_AMOUNT,
    CaptureError,
    Problem,
    check_fits_currency,
    decimal_places,
    problems_from_validation_error,
    show,
    within_rounding,
)
from accounting.money import minor_units, quantize

MEDIA_TYPE = "application/xml"

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NAMESPACES = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
INVOICE_TAG = f"{{{INVOICE_NS}}}Invoice"
CREDIT_NOTE_TAG = f"{{{CREDIT_NOTE_NS}}}CreditNote"
CII_TAG = f"{{{CII_NS}}}CrossIndustryInvoice"

# UNCL 1001 code 381 is a credit note; in an Invoice document it would be booked as a bill.
_CREDIT_NOTE_TYPE_CODES = {"381", "396", "532"}
_XSD_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

SUPPLIER = "cac:AccountingSupplierParty/cac:Party"
TOTALS = "cac:LegalMonetaryTotal"


def parse_xml(content: bytes) -> Element:
    """Parse XML refusing DTDs, entities and external references (XXE, billion laughs)."""
    try:
        return SafeElementTree.fromstring(  # type: ignore[no-any-return]
            content, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise CaptureError(
            [
                Problem(
                    "document",
                    "XML with a DTD, entity declarations or external references is refused "
                    f"for safety ({type(exc).__name__}); an invoice needs none of them",
                )
            ]
        ) from None
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).rsplit(": line ", 1)[0]  # the position is already the location
        raise CaptureError(
            [Problem(f"line {line}, column {column + 1}", f"not well-formed XML: {reason}")]
        ) from None


class _InvoiceReader:
    """Reads one UBL Invoice, collecting every problem instead of stopping at the first."""

    def __init__(self, root: Element) -> None:
        self.root = root
        self.problems: list[Problem] = []
        self.currency: str | None = None
        # Sums over amounts already refused would only repeat those problems in other words.
        self.amounts_refused = 0

    def refuse(self, location: str, message: str) -> None:
        self.problems.append(Problem(location, message))

    def refuse_amount(self, location: str, message: str) -> None:
        self.amounts_refused += 1
        self.refuse(location, message)

    def text(
        self, parent: Element, path: str, location: str, *, required: bool = False
    ) -> str | None:
        element = parent.find(path, NAMESPACES)
        value = (element.text or "").strip() if element is not None else ""
        if not value:
            if required:
                self.refuse(location, "is required")
            return None
        return value

    def date(self, parent: Element, path: str, location: str, *, required: bool) -> date | None:
        value = self.text(parent, path, location, required=required)
        if value is None:
            return None
        if not _ISO_DATE.fullmatch(value):
            self.refuse(location, f"{value!r} is not a date: UBL writes dates as YYYY-MM-DD")
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.refuse(location, f"{value!r} is not a real calendar date")
            return None

    def number(self, parent: Element, path: str, location: str) -> Decimal | None:
        value = self.text(parent, path, location)
        if value is None:
            return None
        if not _XSD_DECIMAL.fullmatch(value):
            self.refuse_amount(location, f"{value!r} is not a decimal number")
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            self.refuse_amount(location, f"{value!r} is not a decimal number")
            return None
        if abs(number) >= MAX_AMOUNT:
            self.refuse_amount(location, f"{show(number)} is too large")
            return None
        if decimal_places(number) > 6:
            self.refuse_amount(location, f"{show(number)} has more than 6 decimal places")
            return None
        return number

    def amount(
        self,
        parent: Element,
        path: str,
        location: str,
        *,
        required: bool = False,
        in_minor_units: bool = True,
        currency: str | None = None,
    ) -> Decimal | None:
        """A monetary amount whose currencyID must be the document's (or `currency`)."""
        element = parent.find(path, NAMESPACES)
        if element is None or not (element.text or "").strip():
            if required:
                self.refuse_amount(location, "is required")
            return None
        expected = currency or self.currency
        stated = element.get("currencyID")
        if stated is not None and expected is not None and stated.strip() != expected:
            self.refuse_amount(
                f"{location}/@currencyID",
                f"is {stated!r} but the document currency is {expected}: every amount must be "
                "in the document currency",
            )
            return None
        number = self.number(parent, path, location)
        if number is not None and in_minor_units and expected is not None:
            too_precise = check_fits_currency(number, expected)
            if too_precise:
                self.refuse_amount(location, too_precise)
                return None
        return number

    def positive(self, value: Decimal | None, location: str, what: str, why: str) -> Decimal | None:
        if value is not None and value <= 0:
            self.refuse_amount(
                location, f"{what} must be greater than zero, got {show(value)}: {why}"
            )
            return None
        return value

    def read(self) -> dict[str, object]:
        root = self.root
        type_code = self.text(root, "cbc:InvoiceTypeCode", "cbc:InvoiceTypeCode")
        if type_code in _CREDIT_NOTE_TYPE_CODES:
            self.refuse(
                "cbc:InvoiceTypeCode",
                f"{type_code} marks a credit note; only invoices are accepted as bills",
            )
        document_number = self.text(root, "cbc:ID", "cbc:ID", required=True)
        if document_number is not None and len(document_number) > 64:
            self.refuse("cbc:ID", "is too long: at most 64 characters")
        currency_text = self.text(
            root, "cbc:DocumentCurrencyCode", "cbc:DocumentCurrencyCode", required=True
        )
        if currency_text is not None:
            try:
                minor_units(currency_text)
                self.currency = currency_text
            except KeyError:
                self.refuse(
                    "cbc:DocumentCurrencyCode",
                    f"unknown currency {currency_text!r}: use an ISO 4217 code such as EUR",
                )
        issue_date = self.date(root, "cbc:IssueDate", "cbc:IssueDate", required=True)
        due_location = "cbc:DueDate"
        due_date = self.date(root, "cbc:DueDate", due_location, required=False)
        if due_date is None and root.find("cbc:DueDate", NAMESPACES) is None:
            due_location = "cac:PaymentMeans/cbc:PaymentDueDate"  # UBL 2.1 outside Peppol
            due_date = self.date(root, due_location, due_location, required=False)
        if issue_date is not None and due_date is not None and due_date < issue_date:
            self.refuse(due_location, f"due date {due_date} is before the issue date {issue_date}")

        notes = [
            (note.text or "").strip()
            for note in root.findall("cbc:Note", NAMESPACES)
            if (note.text or "").strip()
        ]
        vendor = self.read_supplier()
        lines = self.read_lines()
        charges = self.read_document_charges()
        tax_amount = self.read_tax()
        lines += charges
        total = self.read_totals(lines, charges, tax_amount)
        return {
            "document_number": document_number,
            "issue_date": issue_date,
            "due_date": due_date,
            "currency": self.currency,
            "vendor": vendor,
            "lines": lines,
            "tax_amount": tax_amount,
            "total": total,
            "memo": "\n".join(notes) or None,
            "purchase_order": self.text(
                root, "cac:OrderReference/cbc:ID", "cac:OrderReference/cbc:ID"
            ),
        }

    def read_supplier(self) -> VendorDetails | None:
        party = self.root.find(SUPPLIER, NAMESPACES)
        if party is None:
            self.refuse(SUPPLIER, "is required: the invoice must name its seller")
            return None
        name = self.text(party, "cac:PartyName/cbc:Name", "") or self.text(
            party, "cac:PartyLegalEntity/cbc:RegistrationName", ""
        )
        if name is None:
            self.refuse(
                f"{SUPPLIER}/cac:PartyLegalEntity/cbc:RegistrationName",
                "is required: the seller has neither a PartyName nor a RegistrationName",
            )
            return None
        if len(name) > 200:
            self.refuse(f"{SUPPLIER}/cac:PartyName/cbc:Name", "is too long: at most 200 characters")
            return None
        schemes = party.findall("cac:PartyTaxScheme", NAMESPACES)
        # A seller may list several tax schemes; the VAT number is the one ERPs key vendors on.
        schemes.sort(key=lambda s: self.text(s, "cac:TaxScheme/cbc:ID", "") != "VAT")
        tax_id = next(
            (tid for s in schemes if (tid := self.text(s, "cbc:CompanyID", "")) is not None), None
        )
        address = party.find("cac:PostalAddress", NAMESPACES)
        street, city, postal_zone, country = (None, None, None, None)
        if address is not None:
            street = self.text(address, "cbc:StreetName", "")
            city = self.text(address, "cbc:CityName", "")
            postal_zone = self.text(address, "cbc:PostalZone", "")
            country = self.text(address, "cac:Country/cbc:IdentificationCode", "")
        town = " ".join(part for part in (postal_zone, city) if part)
        bank_account = None
        for means in self.root.findall("cac:PaymentMeans", NAMESPACES):
            bank_account = self.text(means, "cac:PayeeFinancialAccount/cbc:ID", "")
            if bank_account:
                break
        return VendorDetails(
            name=name,
            tax_id=tax_id,
            email=self.text(party, "cac:Contact/cbc:ElectronicMail", ""),
            country=country.upper() if country else None,
            address=", ".join(part for part in (street, town) if part) or None,
            bank_account=bank_account,
        )

    def read_lines(self) -> list[DraftLine]:
        elements = self.root.findall("cac:InvoiceLine", NAMESPACES)
        if not elements:
            self.refuse("cac:InvoiceLine", "is required: the invoice has no lines")
        lines: list[DraftLine] = []
        for index, element in enumerate(elements, start=1):
            line = self.read_line(element, f"cac:InvoiceLine[{index}]")
            if line is not None:
                lines.append(line)
        return lines

    def read_line(self, element: Element, at: str) -> DraftLine | None:
        amount_at = f"{at}/cbc:LineExtensionAmount"
        amount = self.positive(
            self.amount(element, "cbc:LineExtensionAmount", amount_at, required=True),
            amount_at,
            "the line amount",
            "negative lines (discounts, returns) and empty lines cannot be booked on a bill",
        )
        quantity = self.number(element, "cbc:InvoicedQuantity", f"{at}/cbc:InvoicedQuantity")
        price = self.amount(
            element,
            "cac:Price/cbc:PriceAmount",
            f"{at}/cac:Price/cbc:PriceAmount",
            in_minor_units=False,  # unit prices may carry more decimals than the currency
        )
        base_quantity = self.number(
            element, "cac:Price/cbc:BaseQuantity", f"{at}/cac:Price/cbc:BaseQuantity"
        )
        if base_quantity is not None and base_quantity <= 0:
            self.refuse_amount(f"{at}/cac:Price/cbc:BaseQuantity", "must be greater than zero")
            return None
        unit_amount = None
        if price is not None:
            unit_amount = price / base_quantity if base_quantity is not None else price
            if decimal_places(unit_amount.normalize()) > 6:
                unit_amount = unit_amount.quantize(Decimal("0.000001"))
        charges = Decimal("0")
        for charge_index, charge in enumerate(
            element.findall("cac:AllowanceCharge", NAMESPACES), start=1
        ):
            charge_at = f"{at}/cac:AllowanceCharge[{charge_index}]"
            value = self.amount(charge, "cbc:Amount", f"{charge_at}/cbc:Amount", required=True)
            indicator = self.text(charge, "cbc:ChargeIndicator", f"{charge_at}/cbc:ChargeIndicator")
            if value is not None:
                charges += value if indicator == "true" else -value
        if amount is None or self.currency is None:
            return None
        if quantity is not None and price is not None:
            # EN 16931 BR-LIN: net amount = quantity × price / base quantity + charges - allowances
            expected = quantity * price / (base_quantity or Decimal(1)) + charges
            if not within_rounding(expected, amount, self.currency):
                self.refuse_amount(
                    amount_at,
                    f"is {show(amount)}, but InvoicedQuantity {show(quantity)} × PriceAmount "
                    f"{show(price)}"
                    + (f" / BaseQuantity {show(base_quantity)}" if base_quantity else "")
                    + (f" + allowances/charges {show(charges)}" if charges else "")
                    + f" = {show(expected)}",
                )
                return None
        return DraftLine(
            description=self.text(element, "cac:Item/cbc:Name", "")
            or self.text(element, "cac:Item/cbc:Description", ""),
            quantity=quantity,
            unit_amount=unit_amount,
            amount=quantize(amount, self.currency),
            account=self.text(element, "cbc:AccountingCost", ""),
        )

    def read_document_charges(self) -> list[DraftLine]:
        """Document-level charges (freight, ...) become lines; allowances cannot be booked."""
        lines: list[DraftLine] = []
        for index, element in enumerate(self.root.findall("cac:AllowanceCharge", NAMESPACES), 1):
            at = f"cac:AllowanceCharge[{index}]"
            if self.text(element, "cbc:ChargeIndicator", f"{at}/cbc:ChargeIndicator") != "true":
                self.refuse(
                    f"{at}/cbc:ChargeIndicator",
                    "document-level allowances (discounts) are not accepted yet: apply the "
                    "discount to the invoice lines instead",
                )
                continue
            amount = self.positive(
                self.amount(element, "cbc:Amount", f"{at}/cbc:Amount", required=True),
                f"{at}/cbc:Amount",
                "the charge",
                "a charge adds to the invoice; a reduction is an allowance",
            )
            if amount is not None and self.currency is not None:
                lines.append(
                    DraftLine(
                        description=self.text(element, "cbc:AllowanceChargeReason", "") or "Charge",
                        amount=quantize(amount, self.currency),
                        account=self.text(element, "cbc:AccountingCost", ""),
                    )
                )
        return lines

    def read_tax(self) -> Decimal:
        # Peppol repeats TaxTotal in the tax currency when it differs; take the document's.
        tax_totals = self.root.findall("cac:TaxTotal", NAMESPACES)
        for index, tax_total in enumerate(tax_totals, start=1):
            element = tax_total.find("cbc:TaxAmount", NAMESPACES)
            stated = element.get("currencyID") if element is not None else None
            if stated is None or stated.strip() == self.currency or len(tax_totals) == 1:
                at = f"cac:TaxTotal[{index}]/cbc:TaxAmount"
                tax = self.amount(tax_total, "cbc:TaxAmount", at, required=True)
                if tax is not None and tax < 0:
                    self.refuse_amount(at, f"must not be negative, got {show(tax)}")
                return tax if tax is not None and tax >= 0 else Decimal("0")
        if tax_totals and self.currency is not None:
            self.refuse(
                "cac:TaxTotal", f"has no TaxAmount in the document currency {self.currency}"
            )
        return Decimal("0")

    def read_totals(
        self, lines: list[DraftLine], charge_lines: list[DraftLine], tax: Decimal
    ) -> Decimal | None:
        totals = self.root.find(TOTALS, NAMESPACES)
        if totals is None:
            self.refuse(TOTALS, "is required: the invoice has no totals")
            return None

        def total(name: str, *, required: bool = False) -> Decimal | None:
            return self.amount(totals, f"cbc:{name}", f"{TOTALS}/cbc:{name}", required=required)

        line_total = total("LineExtensionAmount", required=True)
        tax_exclusive = total("TaxExclusiveAmount", required=True)
        tax_inclusive = total("TaxInclusiveAmount", required=True)
        allowances = total("AllowanceTotalAmount") or Decimal("0")
        charges = total("ChargeTotalAmount") or Decimal("0")
        prepaid = total("PrepaidAmount") or Decimal("0")
        rounding = total("PayableRoundingAmount") or Decimal("0")
        payable = self.positive(
            total("PayableAmount", required=True),
            f"{TOTALS}/cbc:PayableAmount",
            "the amount payable",
            "an invoice with nothing to pay is not a bill",
        )
        if self.amounts_refused:
            return None

        invoice_lines = self.root.findall("cac:InvoiceLine", NAMESPACES)
        line_sum = sum(
            (
                self.number(line, "cbc:LineExtensionAmount", "") or Decimal("0")
                for line in invoice_lines
            ),
            Decimal("0"),
        )
        checks = [
            ("LineExtensionAmount", line_total, line_sum, "the sum of the InvoiceLine amounts"),
            (
                "ChargeTotalAmount",
                charges,
                sum((line.amount for line in charge_lines), Decimal("0")),
                "the sum of the document-level AllowanceCharge charges",
            ),
            (
                "TaxExclusiveAmount",
                tax_exclusive,
                (line_total or Decimal("0")) - allowances + charges,
                "LineExtensionAmount - AllowanceTotalAmount + ChargeTotalAmount",
            ),
            (
                "TaxInclusiveAmount",
                tax_inclusive,
                (tax_exclusive or Decimal("0")) + tax,
                "TaxExclusiveAmount + TaxTotal/TaxAmount",
            ),
            (
                "PayableAmount",
                payable,
                (tax_inclusive or Decimal("0")) - prepaid + rounding,
                "TaxInclusiveAmount - PrepaidAmount + PayableRoundingAmount",
            ),
        ]
        for name, stated, expected, rule in checks:
            if stated is not None and stated != expected:
                self.refuse_amount(
                    f"{TOTALS}/cbc:{name}",
                    f"is {show(stated)}, but {rule} = {show(expected)}",
                )
        if self.amounts_refused:
            return None
        if prepaid:
            self.refuse(
                f"{TOTALS}/cbc:PrepaidAmount",
                "invoices with a prepaid amount are not accepted yet: the bill would not add "
                "up to its lines and tax",
            )
        if rounding < 0:
            self.refuse(
                f"{TOTALS}/cbc:PayableRoundingAmount",
                "a negative rounding amount is not accepted: bill lines must be positive",
            )
        elif rounding > 0 and self.currency is not None:
            lines.append(DraftLine(description="Payable rounding", amount=rounding))  # BR-CO-16
        return payable


def parse_ubl_invoice(content: bytes, *, source: DocumentRef | None = None) -> BillDraft:
    """Read a UBL 2.1 Invoice; raise CaptureError listing every problem with its XPath.

    Locations are XPaths relative to the Invoice element, 1-based as XPath counts:
    cac:InvoiceLine[2] is the second line.
    """
    root = parse_xml(content)
    if root.tag != INVOICE_TAG:
        raise CaptureError([Problem("document", describe_unaccepted_root(root.tag))])
    return read_invoice(root, source=source)


def read_invoice(root: Element, *, source: DocumentRef | None = None) -> BillDraft:
    reader = _InvoiceReader(root)
    fields = reader.read()
    if reader.problems:
        raise CaptureError(reader.problems)
    try:
        return BillDraft.model_validate({**fields, "source": source})
    except ValidationError as exc:
        raise CaptureError(problems_from_validation_error(exc)) from None


def describe_unaccepted_root(tag: str) -> str:
    if tag == CREDIT_NOTE_TAG:
        return f"UBL credit notes are not accepted as bills; {ACCEPTED_FORMATS}"
    if tag == CII_TAG:
        return (
            f"UN/CEFACT CII invoices (Factur-X, ZUGFeRD) are not accepted yet; {ACCEPTED_FORMATS}"
        )
    namespace, _, local_name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if local_name == "Invoice":
        return (
            f"the root element is Invoice but in the namespace {namespace or '(none)'!r}, "
            f"not UBL 2.1's {INVOICE_NS!r}; {ACCEPTED_FORMATS}"
        )
    return f"the XML root element <{local_name}> is not an invoice remit reads; {ACCEPTED_FORMATS}"
