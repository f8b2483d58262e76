"""Xero Accounting API native JSON <-> the unified accounting model (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, unquote

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillPayment,
    CreditApplication,
    NewAccount,
    TaxRate,
    TrackingCategory,
    Vendor,
    VendorBankAccount,
    VendorChanges,
)
from accounting.model import (
    AccountCategory,
    AccountType,
    BillLine,
    BillPaymentLine,
    BillStatus,
    TrackingKind,
    TrackingRef,
)
from connectors.base import Rejected
from connectors.decimal_json import dumps, loads  # noqa: F401  (re-exported)

JSONObject = dict[str, Any]

PLATFORM_NAME = "xero"
IDEMPOTENCY_KEY_LIMIT = 128
CONTACT_NUMBER_LIMIT = 50
PAYMENT_REFERENCE_LIMIT = 255
MAX_TRACKING_PER_LINE = 2
NO_TAX = "NONE"
"""Xero's TaxType for a line with no tax ("No VAT", "Tax Exempt" in a US organisation)."""

TAX_TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "Z": ("ZERORATEDINPUT",),
    "E": ("EXEMPTEXPENSES", "EXEMPTINPUT"),
    "AE": ("REVERSECHARGES", "DRCHARGE20", "DRCHARGE5"),
    "K": ("ECACQUISITIONS", "ECZRINPUT"),
    "G": ("GSTONIMPORTS",),
    "O": (NO_TAX,),
}
"""Xero's own TaxTypes for each VAT category (system types of its VAT editions), tried before
names: a custom rate's TaxType is only TAX001, TAX002, ... and says nothing."""
# Invoice.Reference is ACCREC-only, so a bill's reference lives in Invoice.Url ("a link to the
# source document", shown as "Go to remit" in Xero) where `where=Url=="..."` finds it again.
DEFAULT_REFERENCE_URL_BASE = "https://remit.invalid/ref/"
LONGEST_PLAIN_URL_REFERENCE = 200
HASHED_REFERENCE_PREFIX = "sha256:"

# The unified tracking kinds are Xero tracking categories with these names.
CATEGORY_NAME_BY_KIND: dict[TrackingKind, str] = {
    TrackingKind.department: "Department",
    TrackingKind.class_: "Class",
    TrackingKind.location: "Location",
}
KIND_BY_CATEGORY_NAME = {name.lower(): kind for kind, name in CATEGORY_NAME_BY_KIND.items()}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_JSON = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


# ---------------------------------------------------------------------------------------------
# JSON with Decimal money
# ---------------------------------------------------------------------------------------------


def decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


# ---------------------------------------------------------------------------------------------
# Dates: Xero answers in MS-JSON "/Date(1539129600000+0000)/"; we write ISO 8601.
# ---------------------------------------------------------------------------------------------


def ms_json(moment: datetime | date) -> str:
    """MS-JSON for a datetime (UTC) or a date (midnight UTC), as Xero writes them."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    millis = (moment - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}+0000)/"


def parse_datetime(value: Any) -> datetime | None:
    """A Xero timestamp (MS-JSON or ISO 8601) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    match = _MS_JSON.match(text)
    if match:
        # The millis are UTC; the offset only says which zone the author was in.
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    """A Xero date field (MS-JSON midnight, or "2026-07-01[T00:00:00]") as a date."""
    if value is None or value == "":
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    moment = parse_datetime(value)
    return moment.date() if moment else None


def iso_date(value: date) -> str:
    return value.isoformat()


def if_modified_since(moment: datetime) -> str:
    """The If-Modified-Since value Xero documents: a UTC timestamp to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------------------------
# Keys and references
# ---------------------------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(key: str) -> str:
    """The Idempotency-Key header for remit's key: itself, or its hash when over 128 chars."""
    if len(key) <= IDEMPOTENCY_KEY_LIMIT:
        return key
    return "sha256:" + _sha256(key)


def contact_number(reference: str) -> str:
    """Contact.ContactNumber (≤50 chars) carrying remit's vendor reference."""
    if len(reference) <= CONTACT_NUMBER_LIMIT:
        return reference
    return "r-" + _sha256(reference)[:40]


def payment_reference(reference: str) -> str:
    if len(reference) <= PAYMENT_REFERENCE_LIMIT:
        return reference
    return "sha256:" + _sha256(reference)


# A payment that took early-payment discounts says so in its Reference, so reads look for its
# discount credit notes only when there are some (Xero allows 60 calls a minute).
DISCOUNTED_SUFFIX = " (less discount)"


def discounted_payment_reference(reference: str) -> str:
    """Payment.Reference for remit's reference on a payment that took discounts."""
    stored = payment_reference(reference) + DISCOUNTED_SUFFIX
    if len(stored) <= PAYMENT_REFERENCE_LIMIT:
        return stored
    return "sha256:" + _sha256(reference) + DISCOUNTED_SUFFIX


def took_discounts(stored_reference: Any) -> bool:
    return str(stored_reference or "").endswith(DISCOUNTED_SUFFIX)


def payment_reference_forms(reference: str) -> list[str]:
    """Every Payment.Reference remit may have written for this reference."""
    return [payment_reference(reference), discounted_payment_reference(reference)]


def reference_url(reference: str, base: str = DEFAULT_REFERENCE_URL_BASE) -> str:
    """Invoice.Url carrying remit's reference (hashed when long, to keep the link short)."""
    if len(reference) > LONGEST_PLAIN_URL_REFERENCE:
        reference = HASHED_REFERENCE_PREFIX + _sha256(reference)
    return base + quote(reference, safe="")


def reference_from_url(url: Any, base: str = DEFAULT_REFERENCE_URL_BASE) -> str | None:
    """The reference in an Invoice.Url we wrote; None if absent or only its hash is stored."""
    if isinstance(url, str) and url.startswith(base):
        reference = unquote(url[len(base) :])
        return None if reference.startswith(HASHED_REFERENCE_PREFIX) else reference
    return None


def where_string(value: str) -> str:
    """A string literal for Xero's `where` filter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def where_guid(value: str) -> str:
    return f'guid("{value}")'


def where_any(clauses: list[str]) -> str:
    """Clauses joined by OR (Xero's `where` has no parentheses, so this stands alone)."""
    return " OR ".join(clauses)


# ---------------------------------------------------------------------------------------------
# Exchange rates
#
# Xero states a document's CurrencyRate as units of the document's currency for ONE unit of the
# organisation's base currency: its spec's example is 0.7500 for a NZD organisation's USD
# payment (1 NZD = 0.75 USD), and a base amount is the foreign amount divided by the rate.
# remit's unified `exchange_rate` is the other way round (home units per foreign unit, as
# QuickBooks and NetSuite state it), so the connector converts at the edge:
# - writing: CurrencyRate = 1 / exchange_rate, rounded half-up to 6 decimal places (Xero keeps
#   CurrencyRate as [18].[6]);
# - reading: exchange_rate = 1 / CurrencyRate, rounded half-up to 6 significant digits and
#   without trailing zeros, which gives back every rate quoted to 6 significant digits or fewer
#   (1.08 -> 0.925926 -> 1.08). Base-currency documents carry 1 both ways.
# ---------------------------------------------------------------------------------------------

XERO_RATE_PLACES = Decimal("0.000001")
RATE_SIGNIFICANT_DIGITS = 6


def plain_decimal(value: Decimal) -> Decimal:
    """`value` without trailing zeros and never in exponent form (1.08000 -> 1.08, 1E+1 -> 10)."""
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal


def rate_to_xero(home_per_foreign: Decimal) -> Decimal:
    """Xero's CurrencyRate (foreign units per base unit) for remit's home-per-foreign rate."""
    if home_per_foreign <= 0:
        raise _rejected(f"exchange rate {home_per_foreign} must be greater than zero")
    rate = (Decimal(1) / home_per_foreign).quantize(XERO_RATE_PLACES, rounding=ROUND_HALF_UP)
    if rate == 0:
        raise _rejected(
            f"exchange rate {home_per_foreign} is too large for Xero, which keeps CurrencyRate "
            "(foreign units per base unit) to six decimal places"
        )
    return plain_decimal(rate)


def rate_from_xero(value: Any) -> Decimal | None:
    """remit's home-per-foreign rate for a Xero CurrencyRate (None when absent or unusable)."""
    if value is None or value == "":
        return None
    try:
        xero_rate = decimal(value)
    except InvalidOperation:
        return None
    if not xero_rate.is_finite() or xero_rate <= 0:
        return None
    inverse = Decimal(1) / xero_rate
    quantum = Decimal(1).scaleb(inverse.adjusted() - RATE_SIGNIFICANT_DIGITS + 1)
    return plain_decimal(inverse.quantize(quantum, rounding=ROUND_HALF_UP))


# ---------------------------------------------------------------------------------------------
# remit's references on supplier credit notes
#
# CreditNote.Reference is ACCRECCREDIT-only and credit notes have no Url, so the one field of an
# ACCPAYCREDIT that the API both writes and filters on is CreditNoteNumber (free text for
# supplier credits). remit appends a tag to the vendor's own credit number:
#   "CM-1042 [remit:cm-3f9a]"   (the reference itself when short and plain)
#   "CM-1042 [remit:#5d41402abc4b2a76b9719d91]"   (a SHA-256 prefix otherwise)
# and finds it again with `CreditNoteNumber.EndsWith("[remit:...]")`; reads strip the tag, so
# `document_number` round-trips. Early-payment discounts are credit notes too, numbered
#   "DISC [remit-discount:<payment tag>/<bill tag>]"
# where the payment tag hashes the payment's stored Reference (which ends in DISCOUNTED_SUFFIX
# on such a payment) and the bill tag its bill id, so
# every discount of one payment is found with one `Contains` filter. They belong to their
# payment: listings of vendor credits and credit applications leave them out.
# ---------------------------------------------------------------------------------------------

CREDIT_TAG = re.compile(r"\s*\[remit:([^\]]+)\]\s*$")
DISCOUNT_TAG_PREFIX = "[remit-discount:"
_PLAIN_TAG_REFERENCE = re.compile(r"^[A-Za-z0-9._:/-]{1,60}$")


def credit_tag(reference: str) -> str:
    body = reference if _PLAIN_TAG_REFERENCE.match(reference) else "#" + _sha256(reference)[:24]
    return f"[remit:{body}]"


def credit_note_number(document_number: str | None, reference: str) -> str:
    tag = credit_tag(reference)
    return f"{document_number} {tag}" if document_number else tag


def split_credit_note_number(number: Any) -> tuple[str | None, str | None]:
    """(the vendor's credit number, remit's reference) from a CreditNoteNumber.

    The reference is None when the tag holds only its hash, or when there is no tag.
    """
    text = str(number or "")
    match = CREDIT_TAG.search(text)
    if match is None:
        return (text or None), None
    document_number = text[: match.start()].strip() or None
    body = match.group(1)
    return document_number, (None if body.startswith("#") else body)


def discount_payment_tag(stored_reference: str) -> str:
    return _sha256("discount\n" + stored_reference)[:16]


def discount_prefix(stored_reference: str) -> str:
    """What every discount credit note of the payment with this Reference contains."""
    return f"{DISCOUNT_TAG_PREFIX}{discount_payment_tag(stored_reference)}/"


def discount_note_number(stored_reference: str, bill_id: str) -> str:
    return f"DISC {discount_prefix(stored_reference)}{_sha256(bill_id.lower())[:8]}]"


def is_discount_note(raw: JSONObject) -> bool:
    return DISCOUNT_TAG_PREFIX in str(raw.get("CreditNoteNumber") or "")


# ---------------------------------------------------------------------------------------------
# Chart of accounts and tracking
# ---------------------------------------------------------------------------------------------

_TYPE_MAP: dict[str, tuple[AccountCategory, AccountType]] = {
    "BANK": (AccountCategory.asset, AccountType.bank),
    "CURRENT": (AccountCategory.asset, AccountType.other_current_asset),
    "PREPAYMENT": (AccountCategory.asset, AccountType.other_current_asset),
    "INVENTORY": (AccountCategory.asset, AccountType.other_current_asset),
    "FIXED": (AccountCategory.asset, AccountType.fixed_asset),
    "NONCURRENT": (AccountCategory.asset, AccountType.fixed_asset),
    "CURRLIAB": (AccountCategory.liability, AccountType.other_current_liability),
    "PAYG": (AccountCategory.liability, AccountType.other_current_liability),
    "LIABILITY": (AccountCategory.liability, AccountType.long_term_liability),
    "TERMLIAB": (AccountCategory.liability, AccountType.long_term_liability),
    "EQUITY": (AccountCategory.equity, AccountType.equity),
    "REVENUE": (AccountCategory.income, AccountType.income),
    "SALES": (AccountCategory.income, AccountType.income),
    "OTHERINCOME": (AccountCategory.income, AccountType.income),
    "DIRECTCOSTS": (AccountCategory.expense, AccountType.cost_of_goods_sold),
    "EXPENSE": (AccountCategory.expense, AccountType.expense),
    "OVERHEADS": (AccountCategory.expense, AccountType.expense),
    "DEPRECIATN": (AccountCategory.expense, AccountType.other_expense),
}
_CATEGORY_BY_CLASS = {
    "ASSET": AccountCategory.asset,
    "LIABILITY": AccountCategory.liability,
    "EQUITY": AccountCategory.equity,
    "REVENUE": AccountCategory.income,
    "EXPENSE": AccountCategory.expense,
}


# remit's account type -> the Xero type an account is created with. Xero has no "other
# expense" type: such an account is an EXPENSE one there (and reads back as expense).
_XERO_TYPE_OF = {
    AccountType.other_current_asset: "CURRENT",
    AccountType.fixed_asset: "FIXED",
    AccountType.other_current_liability: "CURRLIAB",
    AccountType.long_term_liability: "TERMLIAB",
    AccountType.equity: "EQUITY",
    AccountType.income: "REVENUE",
    AccountType.cost_of_goods_sold: "DIRECTCOSTS",
    AccountType.expense: "EXPENSE",
    AccountType.other_expense: "EXPENSE",
}


def account_to_xero(account: NewAccount) -> JSONObject:
    """The body of PUT /Accounts: one Account object (Xero's createAccount takes no array).
    Xero needs a Code (at most 10 characters): remit's `number`."""
    if not account.number:
        raise ValueError("Xero needs an account code for a new account: give `number`")
    xero_type = _XERO_TYPE_OF.get(account.account_type)
    if xero_type is None:
        raise ValueError(f"Xero accounts of type {account.account_type.value} are not created here")
    body: JSONObject = {"Code": account.number, "Name": account.name, "Type": xero_type}
    if account.description:
        body["Description"] = account.description
    return body


def account_from_xero(raw: JSONObject) -> Account:
    xero_type = str(raw.get("Type") or "")
    category, account_type = _TYPE_MAP.get(
        xero_type,
        (_CATEGORY_BY_CLASS.get(str(raw.get("Class")), AccountCategory.asset), AccountType.expense),
    )
    if xero_type == "BANK" and raw.get("BankAccountType") == "CREDITCARD":
        # Xero files a card as a BANK account; in the books it is money owed.
        category, account_type = AccountCategory.liability, AccountType.credit_card
    elif raw.get("SystemAccount") == "CREDITORS":
        category, account_type = AccountCategory.liability, AccountType.accounts_payable
    elif raw.get("SystemAccount") == "DEBTORS":
        category, account_type = AccountCategory.asset, AccountType.accounts_receivable
    elif xero_type not in _TYPE_MAP and raw.get("Class") == "EXPENSE":
        account_type = AccountType.expense
    return Account(
        id=str(raw["AccountID"]),
        name=str(raw.get("Name") or ""),
        number=raw.get("Code") or None,
        category=category,
        account_type=account_type,
        currency=raw.get("CurrencyCode") if xero_type == "BANK" else None,
        active=raw.get("Status", "ACTIVE") == "ACTIVE",
    )


def tracking_kind(category_name: str) -> TrackingKind | None:
    return KIND_BY_CATEGORY_NAME.get(category_name.strip().lower())


def tracking_categories_from_xero(raw_categories: list[JSONObject]) -> list[TrackingCategory]:
    """Each option of a Department/Class/Location category becomes one TrackingCategory."""
    found: list[TrackingCategory] = []
    for category in raw_categories:
        kind = tracking_kind(str(category.get("Name") or ""))
        if kind is None:
            continue
        category_active = category.get("Status", "ACTIVE") == "ACTIVE"
        for option in category.get("Options") or []:
            found.append(
                TrackingCategory(
                    id=str(option["TrackingOptionID"]),
                    kind=kind,
                    name=str(option.get("Name") or ""),
                    active=category_active and option.get("Status", "ACTIVE") == "ACTIVE",
                )
            )
    return found


@dataclass(frozen=True)
class TrackingOption:
    category_id: str
    category_name: str
    option_id: str
    option_name: str
    kind: TrackingKind | None


@dataclass
class Lookups:
    """What mapping lines needs to know about the organisation: account codes, tracking options."""

    account_code_by_id: dict[str, str] = field(default_factory=dict)
    account_id_by_code: dict[str, str] = field(default_factory=dict)
    options: dict[str, TrackingOption] = field(default_factory=dict)

    @classmethod
    def build(cls, accounts: list[JSONObject], categories: list[JSONObject]) -> Lookups:
        lookups = cls()
        for account in accounts:
            if account.get("Code"):
                lookups.account_code_by_id[str(account["AccountID"])] = str(account["Code"])
                lookups.account_id_by_code[str(account["Code"])] = str(account["AccountID"])
        for category in categories:
            name = str(category.get("Name") or "")
            for option in category.get("Options") or []:
                option_id = str(option["TrackingOptionID"])
                lookups.options[option_id] = TrackingOption(
                    category_id=str(category["TrackingCategoryID"]),
                    category_name=name,
                    option_id=option_id,
                    option_name=str(option.get("Name") or ""),
                    kind=tracking_kind(name),
                )
        return lookups


def _rejected(message: str) -> Rejected:
    return Rejected(message, platform=PLATFORM_NAME)


# ---------------------------------------------------------------------------------------------
# Contacts (vendors)
# ---------------------------------------------------------------------------------------------


def vendor_from_xero(raw: JSONObject, lookups: Lookups) -> Vendor:
    code = raw.get("PurchasesDefaultAccountCode")
    return Vendor(
        id=str(raw["ContactID"]),
        name=str(raw.get("Name") or ""),
        tax_id=raw.get("TaxNumber") or None,
        email=raw.get("EmailAddress") or None,
        currency=raw.get("DefaultCurrency") or None,
        default_expense_account_id=lookups.account_id_by_code.get(str(code)) if code else None,
        active=raw.get("ContactStatus", "ACTIVE") == "ACTIVE",
        updated_at=parse_datetime(raw.get("UpdatedDateUTC")),
    )


def vendor_to_xero(vendor: Vendor, reference: str, lookups: Lookups) -> JSONObject:
    out: JSONObject = {"Name": vendor.name, "ContactNumber": contact_number(reference)}
    if vendor.tax_id:
        out["TaxNumber"] = vendor.tax_id
    if vendor.email:
        out["EmailAddress"] = vendor.email
    if vendor.currency:
        out["DefaultCurrency"] = vendor.currency
    if vendor.default_expense_account_id:
        code = lookups.account_code_by_id.get(vendor.default_expense_account_id)
        if code is None:
            raise _rejected(
                f"account {vendor.default_expense_account_id} has no code in Xero, so it cannot "
                "be a contact's default purchases account"
            )
        out["PurchasesDefaultAccountCode"] = code
    if not vendor.active:
        out["ContactStatus"] = "ARCHIVED"
    return out


def vendor_changes_to_xero(changes: VendorChanges) -> JSONObject:
    """A Contact update's fields. Xero has no legal name apart from Name: a legal name given
    alone becomes the Name."""
    out: JSONObject = {}
    name = changes.name or changes.legal_name
    if name is not None:
        out["Name"] = name
    if changes.tax_id is not None:
        out["TaxNumber"] = changes.tax_id
    if changes.email is not None:
        out["EmailAddress"] = changes.email
    if changes.active is not None:
        out["ContactStatus"] = "ACTIVE" if changes.active else "ARCHIVED"
    return out


# ---------------------------------------------------------------------------------------------
# Vendor bank details
#
# Xero keeps them in two places on a Contact, neither with routing/IBAN fields of its own:
# - BatchPayments.BankAccountNumber (+ BankAccountName, Details, Code, Reference): the account
#   Xero's batch-payment bank files pay. Read as the primary account.
# - BankAccountDetails: free text. Read as a second account when it names a different one
#   (the same account's extra facts, e.g. a BIC, are merged into the first).
# Both are parsed the same way, most specific first:
# 1. an IBAN anywhere in the text (ISO 13616 mod-97 check; known national lengths), with a
#    BIC/SWIFT code when labelled ("BIC COBADEFFXXX");
# 2. labelled US numbers: "routing 021000021 account 000123456789" (also "ABA", "RTN",
#    "acct", "A/C"; the routing number must pass the ABA checksum);
# 3. a pair in one field: "021000021-000123456789" or "021000021 000123456789" (9-digit
#    ABA-checked routing number, then a 4-17 digit account), a BSB pair "062-000 12345678"
#    (AU) or a sort-code pair "12-34-56 12345678" (GB);
# 4. otherwise, the structured field's digits as the account number with no routing number
#    (e.g. NZ "12-3456-7890123-00", whose bank/branch prefix stays part of the number).
# Free text that matches none of these yields nothing (it is never guessed at).
# ---------------------------------------------------------------------------------------------

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TR": 26,
}  # fmt: skip
_IBAN_START = re.compile(r"\b([A-Z]{2})(\d{2})(?=[ A-Z0-9]{11,})")
_BIC = re.compile(r"\b(?:BIC|SWIFT)(?:\s*CODE)?[:\s#]*([A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)\b")
_LABELLED_ROUTING = re.compile(r"\b(?:ROUTING|ABA|RTN)(?:\s*(?:NUMBER|NO\.?|#))?[:\s#]*(\d{9})\b")
_LABELLED_ACCOUNT = re.compile(
    r"\b(?:ACCOUNT|ACCT|A/C)(?:\s*(?:NUMBER|NO\.?|#))?[:\s#]*(\d[\d -]{2,24}\d)\b"
)
_ROUTING_PAIR = re.compile(r"^(\d{9})\s*[-/ ]\s*(\d{4,17})$")
_BSB_PAIR = re.compile(r"^(\d{3})-?(\d{3})\s+(\d{5,10})$")
_SORT_CODE_PAIR = re.compile(r"^(\d{2})-(\d{2})-(\d{2})\s+(\d{8})$")
_ACCOUNT_ONLY = re.compile(r"^[\d -]{4,40}$")


def iban_is_valid(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def aba_routing_is_valid(number: str) -> bool:
    if not re.fullmatch(r"\d{9}", number):
        return False
    digits = [int(ch) for ch in number]
    weights = (3, 7, 1) * 3
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def _find_iban(text: str) -> str | None:
    for match in _IBAN_START.finditer(text):
        compact = re.sub(r"[^A-Z0-9]", "", text[match.start() : match.start() + 50].split(",")[0])
        expected = _IBAN_LENGTHS.get(match.group(1))
        lengths = [expected] if expected else range(min(34, len(compact)), 14, -1)
        for length in lengths:
            if len(compact) >= length and iban_is_valid(compact[:length]):
                return compact[:length]
    return None


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def parse_bank_text(text: Any, *, structured: bool) -> VendorBankAccount | None:
    """One account from a Xero bank-details field (see the rules above), or None."""
    raw = str(text or "").strip()
    if not raw:
        return None
    upper = " ".join(raw.upper().split())
    bic_match = _BIC.search(upper)
    bic = bic_match.group(1) if bic_match else None
    iban = _find_iban(upper)
    if iban is not None:
        return VendorBankAccount(iban=iban, bic=bic, country=iban[:2])
    routing = _LABELLED_ROUTING.search(upper)
    account = _LABELLED_ACCOUNT.search(upper)
    if routing and account and aba_routing_is_valid(routing.group(1)):
        return VendorBankAccount(
            routing_number=routing.group(1),
            account_number=_digits(account.group(1)),
            bic=bic,
            country="US",
        )
    pair = _ROUTING_PAIR.match(upper)
    if pair and aba_routing_is_valid(pair.group(1)):
        return VendorBankAccount(
            routing_number=pair.group(1), account_number=pair.group(2), bic=bic, country="US"
        )
    bsb = _BSB_PAIR.match(upper)
    if bsb:
        return VendorBankAccount(
            routing_number=bsb.group(1) + bsb.group(2), account_number=bsb.group(3), country="AU"
        )
    sort_code = _SORT_CODE_PAIR.match(upper)
    if sort_code:
        return VendorBankAccount(
            routing_number="".join(sort_code.group(1, 2, 3)),
            account_number=sort_code.group(4),
            country="GB",
        )
    if structured and _ACCOUNT_ONLY.match(upper) and len(_digits(upper)) >= 4:
        return VendorBankAccount(account_number=_digits(upper), bic=bic)
    return None


def _same_account(a: VendorBankAccount, b: VendorBankAccount) -> bool:
    if a.iban or b.iban:
        return a.iban == b.iban
    return a.account_number == b.account_number and (
        a.routing_number is None or b.routing_number is None or a.routing_number == b.routing_number
    )


def bank_accounts_from_xero(raw: JSONObject) -> list[VendorBankAccount]:
    """The bank accounts a Xero Contact carries (BatchPayments first, then BankAccountDetails)."""
    found: list[VendorBankAccount] = []
    batch = raw.get("BatchPayments") or {}
    structured = parse_bank_text(batch.get("BankAccountNumber"), structured=True)
    if structured is not None:
        found.append(
            structured.model_copy(
                update={
                    "account_name": batch.get("BankAccountName") or None,
                    "primary": True,
                    "platform_ref": "Contact.BatchPayments.BankAccountNumber",
                }
            )
        )
    free = parse_bank_text(raw.get("BankAccountDetails"), structured=False)
    if free is not None:
        if found and _same_account(found[0], free):
            first = found[0]
            found[0] = first.model_copy(
                update={
                    field_name: getattr(free, field_name)
                    for field_name in ("routing_number", "iban", "bic", "country")
                    if getattr(first, field_name) is None and getattr(free, field_name)
                }
            )
        else:
            found.append(
                free.model_copy(
                    update={"primary": not found, "platform_ref": "Contact.BankAccountDetails"}
                )
            )
    return found


# ---------------------------------------------------------------------------------------------
# Line items
# ---------------------------------------------------------------------------------------------


def line_to_xero(line: BillLine, lookups: Lookups, *, tax_amount: Decimal | None) -> JSONObject:
    if len(line.tracking) > MAX_TRACKING_PER_LINE:
        raise _rejected(
            f"Xero allows at most {MAX_TRACKING_PER_LINE} tracking categories per line item; "
            f"line {line.description or ''!r} has {len(line.tracking)}"
        )
    out: JSONObject = {
        "Quantity": line.quantity if line.quantity is not None else Decimal("1"),
        "UnitAmount": line.unit_amount if line.unit_amount is not None else line.amount,
        "LineAmount": line.amount,
    }
    if line.description:
        out["Description"] = line.description
    if line.account_id:
        code = lookups.account_code_by_id.get(line.account_id)
        if code is not None:
            out["AccountCode"] = code
        else:
            # Unknown here (or code-less): let Xero judge it and answer in its own words.
            out["AccountID"] = line.account_id
    if line.item_id:
        out["ItemCode"] = line.item_id
    if tax_amount is not None:
        out["TaxAmount"] = tax_amount
    if line.tax_code_id:
        out["TaxType"] = line.tax_code_id
    tracking: list[JSONObject] = []
    for ref in line.tracking:
        option = lookups.options.get(ref.id)
        if option is None:
            tracking.append({"Name": CATEGORY_NAME_BY_KIND[ref.kind], "TrackingOptionID": ref.id})
            continue
        if option.kind is not None and option.kind != ref.kind:
            raise _rejected(
                f"tracking option {option.option_name!r} belongs to {option.category_name!r}, "
                f"not to {ref.kind.value}"
            )
        tracking.append(
            {
                "TrackingCategoryID": option.category_id,
                "TrackingOptionID": option.option_id,
                "Name": option.category_name,
                "Option": option.option_name,
            }
        )
    if tracking:
        out["Tracking"] = tracking
    return out


def line_from_xero(raw: JSONObject, lookups: Lookups) -> BillLine:
    account_id = raw.get("AccountID")
    if not account_id and raw.get("AccountCode"):
        account_id = lookups.account_id_by_code.get(str(raw["AccountCode"]))
    tracking: list[TrackingRef] = []
    for entry in raw.get("Tracking") or []:
        option_id = entry.get("TrackingOptionID") or entry.get("Option")
        option = lookups.options.get(str(option_id))
        kind = tracking_kind(str(entry.get("Name") or ""))
        if kind is None and option is not None:
            kind = option.kind
        if kind is None or option_id is None:
            continue
        tracking.append(TrackingRef(kind=kind, id=str(option_id), name=entry.get("Option")))
    return BillLine(
        description=raw.get("Description") or None,
        amount=decimal(raw.get("LineAmount")),
        quantity=raw.get("Quantity"),
        unit_amount=raw.get("UnitAmount"),
        account_id=str(account_id) if account_id else None,
        item_id=raw.get("ItemCode") or None,
        tracking=tracking,
        tax_code_id=raw.get("TaxType") or None,
    )


def purchase_tax_rate_from_xero(raw: JSONObject) -> TaxRate | None:
    """A TaxRate a bill line may use (CanApplyToExpenses), `id` its TaxType; None otherwise."""
    if raw.get("CanApplyToExpenses") is False:
        return None
    rate = raw.get("EffectiveRate", raw.get("DisplayTaxRate"))
    return TaxRate(
        id=str(raw["TaxType"]),
        name=str(raw.get("Name") or raw["TaxType"]),
        code=str(raw["TaxType"]),
        rate_percent=decimal(rate) if rate is not None else None,
        active=raw.get("Status", "ACTIVE") == "ACTIVE",
    )


def line_taxes(
    lines: list[BillLine], tax_amount: Decimal, rates: Mapping[str, Decimal | None]
) -> list[Decimal]:
    """Each line's TaxAmount: its net amount at its tax code's rate, to the cent, with what
    the document's tax differs from their sum (rounding per line, the vendor's own rounding)
    put on the line taxed most, so the bill's TotalTax is the document's to the cent."""
    taxes = [
        (line.amount * (rates.get(line.tax_code_id) or Decimal("0")) / 100).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        if line.tax_code_id
        else Decimal("0")
        for line in lines
    ]
    difference = tax_amount - sum(taxes, Decimal("0"))
    if difference:
        coded = [i for i, line in enumerate(lines) if line.tax_code_id] or [len(lines) - 1]
        most = max(coded, key=lambda i: (abs(taxes[i]), i))
        taxes[most] += difference
    return taxes


def _lines_to_xero(
    lines: list[BillLine],
    tax_amount: Decimal,
    lookups: Lookups,
    tax_rates: Mapping[str, Decimal | None] | None = None,
) -> tuple[str, list[JSONObject]]:
    if any(line.tax_code_id for line in lines):
        # Each line names its TaxType and carries its TaxAmount (which overrides the amount
        # Xero derives from the rate); a line the document gave no VAT category is NONE.
        taxes = line_taxes(lines, tax_amount, tax_rates or {})
        out = []
        for line, tax in zip(lines, taxes, strict=True):
            raw = line_to_xero(line, lookups, tax_amount=tax)
            raw.setdefault("TaxType", NO_TAX)
            out.append(raw)
        return "Exclusive", out
    if tax_amount == 0:
        return "NoTax", [line_to_xero(line, lookups, tax_amount=None) for line in lines]
    # The document's tax is given as one figure; Xero wants it per line, so the last line
    # carries it (its TaxAmount overrides the rate-derived amount).
    out = [
        line_to_xero(line, lookups, tax_amount=tax_amount if index == len(lines) - 1 else None)
        for index, line in enumerate(lines)
    ]
    return "Exclusive", out


# ---------------------------------------------------------------------------------------------
# Bills = Invoices of Type ACCPAY
# ---------------------------------------------------------------------------------------------

_BILL_STATUS_BY_XERO = {
    "DRAFT": BillStatus.draft,
    "SUBMITTED": BillStatus.draft,
    "PAID": BillStatus.paid,
    "VOIDED": BillStatus.void,
    "DELETED": BillStatus.void,
}


def bill_to_xero(
    bill: Bill,
    *,
    reference: str,
    lookups: Lookups,
    reference_base: str = DEFAULT_REFERENCE_URL_BASE,
    tax_rates: Mapping[str, Decimal | None] | None = None,
) -> JSONObject:
    """An ACCPAY invoice; `tax_rates` (TaxType -> effective percent) for lines with tax codes."""
    line_amount_types, lines = _lines_to_xero(bill.lines, bill.tax_amount, lookups, tax_rates)
    out: JSONObject = {
        "Type": "ACCPAY",
        "Contact": {"ContactID": bill.vendor_id},
        "Date": iso_date(bill.issue_date),
        "CurrencyCode": bill.currency,
        "LineAmountTypes": line_amount_types,
        "LineItems": lines,
        "Status": "DRAFT" if bill.status == BillStatus.draft else "AUTHORISED",
        "Url": reference_url(reference, reference_base),
    }
    if bill.document_number:
        out["InvoiceNumber"] = bill.document_number
    due = bill.due_date
    if due is None and bill.terms is not None:
        # Xero bills keep a due date, not terms: "net 30" becomes the date it implies.
        due = bill.issue_date + timedelta(days=bill.terms.net_days)
    if due:
        out["DueDate"] = iso_date(due)
    if bill.exchange_rate is not None:
        out["CurrencyRate"] = rate_to_xero(bill.exchange_rate)
    return out


def _unified_payment_ids(payments: list[JSONObject]) -> list[str]:
    """The unified ids of an invoice's payments: a batch member counts as its batch."""
    ids: list[str] = []
    for entry in payments:
        unified = entry.get("BatchPaymentID") or entry.get("PaymentID")
        if unified and str(unified) not in ids:
            ids.append(str(unified))
    return ids


def bill_from_xero(
    raw: JSONObject, lookups: Lookups, reference_base: str = DEFAULT_REFERENCE_URL_BASE
) -> Bill:
    xero_status = str(raw.get("Status") or "AUTHORISED")
    total = decimal(raw.get("Total"))
    amount_due = decimal(raw.get("AmountDue"))
    status = _BILL_STATUS_BY_XERO.get(xero_status)
    if status is None:
        settled = decimal(raw.get("AmountPaid")) + decimal(raw.get("AmountCredited"))
        status = BillStatus.partially_paid if settled > 0 else BillStatus.open
    contact = raw.get("Contact") or {}
    issue = parse_date(raw.get("Date"))
    if issue is None:
        raise ValueError(f"Xero invoice {raw.get('InvoiceID')} has no Date")
    return Bill(
        id=str(raw["InvoiceID"]),
        vendor_id=str(contact.get("ContactID")),
        vendor_name=contact.get("Name"),
        document_number=raw.get("InvoiceNumber") or None,
        issue_date=issue,
        due_date=parse_date(raw.get("DueDate")),
        currency=str(raw.get("CurrencyCode") or "USD"),
        exchange_rate=rate_from_xero(raw.get("CurrencyRate")),
        lines=[line_from_xero(line, lookups) for line in raw.get("LineItems") or []],
        tax_amount=decimal(raw.get("TotalTax")),
        total=total,
        balance=amount_due,
        status=status,
        reference=reference_from_url(raw.get("Url"), reference_base),
        payment_ids=_unified_payment_ids(raw.get("Payments") or []),
        updated_at=parse_datetime(raw.get("UpdatedDateUTC")),
    )


# ---------------------------------------------------------------------------------------------
# Payments
# ---------------------------------------------------------------------------------------------


def payment_to_xero(
    payment: BillPayment, *, reference: str, stored_reference: str | None = None
) -> JSONObject:
    """One Payment (one bill): PUT /Payments."""
    if len(payment.lines) != 1:
        raise _rejected(
            f"a Xero Payment settles exactly one bill; this payment has {len(payment.lines)} "
            "lines (several bills are paid by one BatchPayment: batch_payment_to_xero)"
        )
    line = payment.lines[0]
    out: JSONObject = {
        "Invoice": {"InvoiceID": line.bill_id},
        "Account": {"AccountID": payment.source_account_id},
        "Date": iso_date(payment.payment_date),
        "Amount": line.amount,
        "Reference": stored_reference or payment_reference(reference),
    }
    if payment.exchange_rate is not None:
        out["CurrencyRate"] = rate_to_xero(payment.exchange_rate)
    return out


def batch_payment_to_xero(
    payment: BillPayment, *, reference: str, stored_reference: str | None = None
) -> JSONObject:
    """One BatchPayment (one bank line, several bills): PUT /BatchPayments.

    remit's reference goes on the batch and on every member Payment: Payment.Reference is what
    `find_bill_payment_by_reference` filters on (BatchPayment.Reference is documented as
    NZ-only).
    """
    stored = stored_reference or payment_reference(reference)
    members: list[JSONObject] = []
    for line in payment.lines:
        member: JSONObject = {
            "Invoice": {"InvoiceID": line.bill_id},
            "Amount": line.amount,
            "Reference": stored,
        }
        if payment.exchange_rate is not None:
            member["CurrencyRate"] = rate_to_xero(payment.exchange_rate)
        members.append(member)
    return {
        "Account": {"AccountID": payment.source_account_id},
        "Date": iso_date(payment.payment_date),
        "Reference": stored,
        "Payments": members,
    }


def payment_from_xero(
    raw: JSONObject,
    *,
    reference: str | None = None,
    discounts: dict[str, Decimal] | None = None,
) -> BillPayment:
    """A single Payment (not a batch member) as a unified BillPayment."""
    invoice = raw.get("Invoice") or {}
    contact = invoice.get("Contact") or {}
    account = raw.get("Account") or {}
    amount = decimal(raw.get("Amount"))
    paid_on = parse_date(raw.get("Date"))
    if paid_on is None:
        raise ValueError(f"Xero payment {raw.get('PaymentID')} has no Date")
    stored_reference = raw.get("Reference") or None
    bill_id = str(invoice.get("InvoiceID"))
    return BillPayment(
        id=str(raw["PaymentID"]),
        vendor_id=str(contact.get("ContactID")),
        payment_date=paid_on,
        currency=str(invoice.get("CurrencyCode") or raw.get("CurrencyCode") or "USD"),
        exchange_rate=rate_from_xero(raw.get("CurrencyRate")),
        source_account_id=str(account.get("AccountID")),
        total=amount,
        lines=[
            BillPaymentLine(
                bill_id=bill_id,
                amount=amount,
                discount=(discounts or {}).get(bill_id.lower(), Decimal("0")),
            )
        ],
        reference=reference if reference is not None else stored_reference,
        voided=raw.get("Status") == "DELETED",
        updated_at=parse_datetime(raw.get("UpdatedDateUTC")),
    )


def batch_payment_from_xero(
    raw: JSONObject,
    *,
    reference: str | None = None,
    discounts: dict[str, Decimal] | None = None,
) -> BillPayment:
    """A BatchPayment as one unified BillPayment (id = BatchPaymentID, a line per bill)."""
    paid_on = parse_date(raw.get("Date"))
    if paid_on is None:
        raise ValueError(f"Xero batch payment {raw.get('BatchPaymentID')} has no Date")
    members = raw.get("Payments") or []
    lines: list[BillPaymentLine] = []
    vendor_id = currency = rate = None
    for member in members:
        invoice = member.get("Invoice") or {}
        bill_id = str(invoice.get("InvoiceID"))
        lines.append(
            BillPaymentLine(
                bill_id=bill_id,
                amount=decimal(member.get("Amount")),
                discount=(discounts or {}).get(bill_id.lower(), Decimal("0")),
            )
        )
        vendor_id = vendor_id or (invoice.get("Contact") or {}).get("ContactID")
        currency = currency or invoice.get("CurrencyCode")
        rate = rate if rate is not None else member.get("CurrencyRate")
    account = raw.get("Account") or {}
    stored_reference = raw.get("Reference") or next(
        (m.get("Reference") for m in members if m.get("Reference")), None
    )
    return BillPayment(
        id=str(raw["BatchPaymentID"]),
        vendor_id=str(vendor_id),
        payment_date=paid_on,
        currency=str(currency or raw.get("CurrencyCode") or "USD"),
        exchange_rate=rate_from_xero(rate),
        source_account_id=str(account.get("AccountID")),
        total=sum((line.amount for line in lines), Decimal("0")),
        lines=lines,
        reference=reference if reference is not None else stored_reference,
        voided=raw.get("Status") == "DELETED",
        updated_at=parse_datetime(raw.get("UpdatedDateUTC")),
    )


def discount_note_to_xero(
    *,
    vendor_id: str,
    bill: JSONObject,
    discount: Decimal,
    on: date,
    stored_reference: str,
    account_id: str,
    lookups: Lookups,
) -> JSONObject:
    """The supplier credit note that records an early-payment discount taken on `bill`.

    Xero payments carry no discount, so the discount is a credit to the discount account
    allocated to the bill; it takes the bill's own currency and CurrencyRate, so allocating it
    moves no exchange difference. No tax: the discount reduces the net payable only.
    """
    line: JSONObject = {
        "Description": (
            f"Early-payment discount taken on bill {bill.get('InvoiceNumber') or bill['InvoiceID']}"
            f" (remit payment {stored_reference})"
        ),
        "Quantity": Decimal("1"),
        "UnitAmount": discount,
        "LineAmount": discount,
    }
    code = lookups.account_code_by_id.get(account_id)
    if code is not None:
        line["AccountCode"] = code
    else:
        line["AccountID"] = account_id
    out: JSONObject = {
        "Type": "ACCPAYCREDIT",
        "Contact": {"ContactID": vendor_id},
        "Date": iso_date(on),
        "CurrencyCode": bill.get("CurrencyCode"),
        "LineAmountTypes": "NoTax",
        "LineItems": [line],
        "Status": "AUTHORISED",
        "CreditNoteNumber": discount_note_number(stored_reference, str(bill["InvoiceID"])),
    }
    if bill.get("CurrencyRate") not in (None, ""):
        out["CurrencyRate"] = bill["CurrencyRate"]
    return out


def discounts_from_notes(notes: list[JSONObject], stored_reference: str) -> dict[str, Decimal]:
    """Bill id (lower case) -> discount in effect, from the discount notes of one payment."""
    prefix = discount_prefix(stored_reference)
    found: dict[str, Decimal] = {}
    for note in notes:
        if prefix not in str(note.get("CreditNoteNumber") or ""):
            continue
        if note.get("Status") in ("VOIDED", "DELETED"):
            continue
        for allocation in note.get("Allocations") or []:
            if allocation.get("IsDeleted"):
                continue
            bill_id = str((allocation.get("Invoice") or {}).get("InvoiceID", "")).lower()
            found[bill_id] = found.get(bill_id, Decimal("0")) + decimal(allocation.get("Amount"))
    return found


def validation_problem(element: JSONObject, *messages: str) -> JSONObject:
    """A body in Xero's ValidationException shape, for checks the connector makes itself."""
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [{**element, "ValidationErrors": [{"Message": m} for m in messages]}],
    }


# ---------------------------------------------------------------------------------------------
# Credit notes (ACCPAYCREDIT) and allocations
# ---------------------------------------------------------------------------------------------


def credit_note_to_xero(memo: BillCreditMemo, lookups: Lookups, *, reference: str) -> JSONObject:
    _, lines = _lines_to_xero(memo.lines, Decimal("0"), lookups)
    return {
        "Type": "ACCPAYCREDIT",
        "Contact": {"ContactID": memo.vendor_id},
        "Date": iso_date(memo.issue_date),
        "CurrencyCode": memo.currency,
        "LineAmountTypes": "NoTax",
        "LineItems": lines,
        "Status": "AUTHORISED",
        "CreditNoteNumber": credit_note_number(memo.document_number, reference),
    }


def credit_note_from_xero(
    raw: JSONObject, lookups: Lookups, *, reference: str | None = None
) -> BillCreditMemo:
    issue = parse_date(raw.get("Date"))
    if issue is None:
        raise ValueError(f"Xero credit note {raw.get('CreditNoteID')} has no Date")
    document_number, tagged_reference = split_credit_note_number(raw.get("CreditNoteNumber"))
    return BillCreditMemo(
        id=str(raw["CreditNoteID"]),
        vendor_id=str((raw.get("Contact") or {}).get("ContactID")),
        document_number=document_number,
        issue_date=issue,
        currency=str(raw.get("CurrencyCode") or "USD"),
        lines=[line_from_xero(line, lookups) for line in raw.get("LineItems") or []],
        total=decimal(raw.get("Total")),
        remaining=decimal(raw.get("RemainingCredit")),
        reference=reference if reference is not None else tagged_reference,
    )


def allocation_to_xero(application: CreditApplication, *, today: date) -> JSONObject:
    return {
        "Invoice": {"InvoiceID": application.bill_id},
        "Amount": application.amount,
        "Date": iso_date(application.applied_on or today),
    }


def allocation_from_xero(raw: JSONObject, *, credit_memo_id: str) -> CreditApplication:
    return CreditApplication(
        id=str(raw["AllocationID"]) if raw.get("AllocationID") else None,
        credit_memo_id=credit_memo_id,
        bill_id=str((raw.get("Invoice") or {}).get("InvoiceID")),
        amount=decimal(raw.get("Amount")),
        applied_on=parse_date(raw.get("Date")),
    )


# ---------------------------------------------------------------------------------------------
# Attachments
# ---------------------------------------------------------------------------------------------


def attachment_from_xero(raw: JSONObject, *, bill_id: str, sha256: str | None = None) -> Attachment:
    return Attachment(
        id=str(raw["AttachmentID"]),
        bill_id=bill_id,
        file_name=str(raw.get("FileName") or ""),
        content_type=str(raw.get("MimeType") or "application/octet-stream"),
        size=int(raw.get("ContentLength") or 0),
        sha256=sha256,
    )


# ---------------------------------------------------------------------------------------------
# Error bodies
# ---------------------------------------------------------------------------------------------


def validation_messages(body: Any) -> list[str]:
    """The human messages in an ApiException body (Elements[].ValidationErrors[].Message)."""
    if not isinstance(body, dict):
        return []
    messages: list[str] = []
    for element in body.get("Elements") or []:
        for error in (element or {}).get("ValidationErrors") or []:
            if error.get("Message"):
                messages.append(str(error["Message"]))
    return messages
