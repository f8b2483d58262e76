"""Xero Accounting API native JSON <-> the unified accounting model (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillPayment,
    CreditApplication,
    TrackingCategory,
    Vendor,
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
    )


def _lines_to_xero(
    lines: list[BillLine], tax_amount: Decimal, lookups: Lookups
) -> tuple[str, list[JSONObject]]:
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
) -> JSONObject:
    line_amount_types, lines = _lines_to_xero(bill.lines, bill.tax_amount, lookups)
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
    if bill.due_date:
        out["DueDate"] = iso_date(bill.due_date)
    if bill.exchange_rate is not None:
        out["CurrencyRate"] = bill.exchange_rate
    return out


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
        exchange_rate=raw.get("CurrencyRate"),
        lines=[line_from_xero(line, lookups) for line in raw.get("LineItems") or []],
        tax_amount=decimal(raw.get("TotalTax")),
        total=total,
        balance=amount_due,
        status=status,
        reference=reference_from_url(raw.get("Url"), reference_base),
        payment_ids=[str(p["PaymentID"]) for p in raw.get("Payments") or [] if p.get("PaymentID")],
        updated_at=parse_datetime(raw.get("UpdatedDateUTC")),
    )


# ---------------------------------------------------------------------------------------------
# Payments
# ---------------------------------------------------------------------------------------------


def payment_to_xero(payment: BillPayment, *, reference: str) -> JSONObject:
    if len(payment.lines) != 1:
        raise _rejected(
            "a Xero payment settles exactly one bill; "
            f"this payment has {len(payment.lines)} lines: send one payment per bill"
        )
    out: JSONObject = {
        "Invoice": {"InvoiceID": payment.lines[0].bill_id},
        "Account": {"AccountID": payment.source_account_id},
        "Date": iso_date(payment.payment_date),
        "Amount": payment.total,
        "Reference": payment_reference(reference),
    }
    if payment.exchange_rate is not None:
        out["CurrencyRate"] = payment.exchange_rate
    return out


def payment_from_xero(raw: JSONObject, *, reference: str | None = None) -> BillPayment:
    invoice = raw.get("Invoice") or {}
    contact = invoice.get("Contact") or {}
    account = raw.get("Account") or {}
    amount = decimal(raw.get("Amount"))
    paid_on = parse_date(raw.get("Date"))
    if paid_on is None:
        raise ValueError(f"Xero payment {raw.get('PaymentID')} has no Date")
    stored_reference = raw.get("Reference") or None
    return BillPayment(
        id=str(raw["PaymentID"]),
        vendor_id=str(contact.get("ContactID")),
        payment_date=paid_on,
        currency=str(invoice.get("CurrencyCode") or raw.get("CurrencyCode") or "USD"),
        exchange_rate=raw.get("CurrencyRate"),
        source_account_id=str(account.get("AccountID")),
        total=amount,
        lines=[BillPaymentLine(bill_id=str(invoice.get("InvoiceID")), amount=amount)],
        reference=reference if reference is not None else stored_reference,
        voided=raw.get("Status") == "DELETED",
        updated_at=parse_datetime(raw.get("UpdatedDateUTC")),
    )


# ---------------------------------------------------------------------------------------------
# Credit notes (ACCPAYCREDIT) and allocations
# ---------------------------------------------------------------------------------------------


def credit_note_to_xero(memo: BillCreditMemo, lookups: Lookups) -> JSONObject:
    _, lines = _lines_to_xero(memo.lines, Decimal("0"), lookups)
    out: JSONObject = {
        "Type": "ACCPAYCREDIT",
        "Contact": {"ContactID": memo.vendor_id},
        "Date": iso_date(memo.issue_date),
        "CurrencyCode": memo.currency,
        "LineAmountTypes": "NoTax",
        "LineItems": lines,
        "Status": "AUTHORISED",
    }
    if memo.document_number:
        out["CreditNoteNumber"] = memo.document_number
    return out


def credit_note_from_xero(
    raw: JSONObject, lookups: Lookups, *, reference: str | None = None
) -> BillCreditMemo:
    issue = parse_date(raw.get("Date"))
    if issue is None:
        raise ValueError(f"Xero credit note {raw.get('CreditNoteID')} has no Date")
    return BillCreditMemo(
        id=str(raw["CreditNoteID"]),
        vendor_id=str((raw.get("Contact") or {}).get("ContactID")),
        document_number=raw.get("CreditNoteNumber") or None,
        issue_date=issue,
        currency=str(raw.get("CurrencyCode") or "USD"),
        lines=[line_from_xero(line, lookups) for line in raw.get("LineItems") or []],
        total=decimal(raw.get("Total")),
        remaining=decimal(raw.get("RemainingCredit")),
        reference=reference,
    )


def allocation_to_xero(application: CreditApplication, *, today: date) -> JSONObject:
    return {
        "Invoice": {"InvoiceID": application.bill_id},
        "Amount": application.amount,
        "Date": iso_date(application.applied_on or today),
    }


def allocation_from_xero(raw: JSONObject, *, credit_memo_id: str) -> CreditApplication:
    return CreditApplication(
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
