"""QuickBooks Online native JSON <-> the unified accounting model (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillPayment,
    CreditApplication,
    ExchangeRate,
    NewAccount,
    PaymentTerms,
    TaxRate,
    TrackingCategory,
    Vendor,
    VendorBankAccount,
    VendorChanges,
)
from accounting.model import (
    ACCOUNT_CATEGORY,
    AccountCategory,
    AccountType,
    BillLine,
    BillPaymentLine,
    BillStatus,
    TrackingKind,
    TrackingRef,
)
from connectors.decimal_json import dumps, loads  # noqa: F401  (re-exported)

JSONObject = dict[str, Any]

MINOR_VERSION = "75"
REFERENCE_MARKER = "remit-ref:"
HASHED_REFERENCE_MARKER = "remit-ref-sha256:"
# References longer than this are stored hashed so PrivateNote (4000 chars) keeps room for the memo.
LONGEST_PLAIN_REFERENCE = 200
REQUEST_ID_LENGTH = 48  # QBO accepts at most 50 characters

PAYMENT_TXN_TYPES = ("BillPaymentCheck", "BillPaymentCreditCard", "BillPayment")


# ---------------------------------------------------------------------------------------------
# JSON with Decimal money: parse floats as Decimal, emit Decimals as JSON numbers verbatim.
# ---------------------------------------------------------------------------------------------


def decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal("0")
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def ref(value: str, name: str | None = None) -> JSONObject:
    out: JSONObject = {"value": value}
    if name:
        out["name"] = name
    return out


def ref_value(obj: JSONObject, key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, dict) and value.get("value") is not None:
        return str(value["value"])
    return None


def request_id(idempotency_key: str) -> str:
    """QBO's `requestid` for remit's idempotency key: stable, unique per key, within 50 chars."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:REQUEST_ID_LENGTH]


# ---------------------------------------------------------------------------------------------
# remit's reference, kept in PrivateNote (QBO has no free external-id field on transactions)
# ---------------------------------------------------------------------------------------------

# QBO prepends this to PrivateNote when it voids a transaction ("Voided - <the old note>").
VOID_PREFIX = "Voided"
_VOIDED_NOTE = re.compile(r"^Voided(?: - |$)")
# remit's own lines in a PrivateNote after the reference and the memo (never shown as memo):
# what a payment applied, written just before remit voids it (QBO clears the lines on void) ...
PAID_RECORD_MARKER = "remit-paid:"
# ... and, on the vendor credit remit writes for an early-payment discount, the bill it is for.
DISCOUNT_MARKER = "remit-discount-for-bill:"
_OWN_LINES = (PAID_RECORD_MARKER, DISCOUNT_MARKER)
LONGEST_PRIVATE_NOTE = 4000


def reference_marker(reference: str) -> str:
    if len(reference) <= LONGEST_PLAIN_REFERENCE and "\n" not in reference:
        return REFERENCE_MARKER + reference
    return HASHED_REFERENCE_MARKER + hashlib.sha256(reference.encode()).hexdigest()


def private_note(reference: str | None, memo: str | None) -> str | None:
    parts = [reference_marker(reference)] if reference else []
    if memo:
        parts.append(memo)
    return "\n".join(parts) or None


def _unvoided(note: str) -> str:
    match = _VOIDED_NOTE.match(note)
    return note[match.end() :] if match else note


def split_private_note(note: str | None) -> tuple[str | None, str | None, str | None]:
    """(marker, plain reference if recoverable, memo) from a PrivateNote we may have written
    (QBO's "Voided - " prefix and remit's own record lines are not part of the memo)."""
    if not note:
        return None, None, None
    kept = [line for line in _unvoided(note).split("\n") if not line.startswith(_OWN_LINES)]
    if not kept or kept == [""]:
        return None, None, None
    first, rest = kept[0], "\n".join(kept[1:])
    if first.startswith(HASHED_REFERENCE_MARKER):
        return first, None, rest or None
    if first.startswith(REFERENCE_MARKER):
        return first, first[len(REFERENCE_MARKER) :], rest or None
    return None, None, "\n".join(kept) or None


def has_reference(obj: JSONObject, reference: str) -> bool:
    marker, _, _ = split_private_note(obj.get("PrivateNote"))
    return marker == reference_marker(reference)


def _own_line(note: str | None, marker: str) -> str | None:
    for line in (note or "").split("\n"):
        if line.startswith(marker):
            return line[len(marker) :]
    return None


def is_voided(obj: JSONObject) -> bool:
    """A voided QBO transaction: kept, amounts zeroed, "Voided" at the head of PrivateNote."""
    note = obj.get("PrivateNote") or ""
    return bool(_VOIDED_NOTE.match(note)) and decimal(obj.get("TotalAmt")) == 0


# ---------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)


def parse_date(value: str) -> date:
    return date.fromisoformat(value[:10])


def _updated(obj: JSONObject) -> datetime | None:
    meta = obj.get("MetaData") or {}
    return parse_time(meta.get("LastUpdatedTime"))


_CLASSIFICATION = {
    "Asset": AccountCategory.asset,
    "Liability": AccountCategory.liability,
    "Equity": AccountCategory.equity,
    "Revenue": AccountCategory.income,
    "Expense": AccountCategory.expense,
}

_ACCOUNT_TYPE = {
    "Bank": AccountType.bank,
    "Accounts Receivable": AccountType.accounts_receivable,
    "Other Current Asset": AccountType.other_current_asset,
    "Fixed Asset": AccountType.fixed_asset,
    "Other Asset": AccountType.fixed_asset,
    "Accounts Payable": AccountType.accounts_payable,
    "Credit Card": AccountType.credit_card,
    "Other Current Liability": AccountType.other_current_liability,
    "Long Term Liability": AccountType.long_term_liability,
    "Equity": AccountType.equity,
    "Income": AccountType.income,
    "Other Income": AccountType.income,
    "Cost of Goods Sold": AccountType.cost_of_goods_sold,
    "Expense": AccountType.expense,
    "Other Expense": AccountType.other_expense,
}

_CATEGORY_OF_TYPE = ACCOUNT_CATEGORY


def account_from_qbo(obj: JSONObject) -> Account | None:
    """None for account types with no ledger meaning here (QBO's Non-Posting accounts)."""
    account_type = _ACCOUNT_TYPE.get(obj.get("AccountType", ""))
    if account_type is None:
        return None
    category = _CLASSIFICATION.get(obj.get("Classification", ""), _CATEGORY_OF_TYPE[account_type])
    return Account(
        id=str(obj["Id"]),
        name=obj.get("Name", ""),
        number=obj.get("AcctNum") or None,
        category=category,
        account_type=account_type,
        currency=ref_value(obj, "CurrencyRef"),
        active=bool(obj.get("Active", True)),
    )


# remit's account type -> QBO's AccountType (the first of QBO's names that maps to it).
_QBO_ACCOUNT_TYPE = {kind: name for name, kind in reversed(_ACCOUNT_TYPE.items())}


def account_to_qbo(account: NewAccount) -> JSONObject:
    """A new Account: QBO derives Classification and a default AccountSubType from the type."""
    body: JSONObject = {
        "Name": account.name,
        "AccountType": _QBO_ACCOUNT_TYPE[account.account_type],
    }
    if account.number:
        body["AcctNum"] = account.number
    if account.description:
        body["Description"] = account.description
    if account.currency:
        body["CurrencyRef"] = {"value": account.currency}
    return body


def tracking_from_qbo(entity: str, obj: JSONObject) -> TrackingCategory:
    return TrackingCategory(
        id=str(obj["Id"]),
        kind=TrackingKind.class_ if entity == "Class" else TrackingKind.department,
        name=obj.get("Name", ""),
        parent_id=ref_value(obj, "ParentRef"),
        active=bool(obj.get("Active", True)),
    )


def vendor_from_qbo(obj: JSONObject) -> Vendor:
    email = (obj.get("PrimaryEmailAddr") or {}).get("Address")
    return Vendor(
        id=str(obj["Id"]),
        name=obj.get("DisplayName", ""),
        legal_name=obj.get("CompanyName") or None,
        tax_id=obj.get("TaxIdentifier") or None,
        email=email or None,
        currency=ref_value(obj, "CurrencyRef"),
        active=bool(obj.get("Active", True)),
        updated_at=_updated(obj),
    )


def vendor_to_qbo(vendor: Vendor, *, reference: str | None) -> JSONObject:
    out: JSONObject = {"DisplayName": vendor.name, "Active": vendor.active}
    if vendor.legal_name:
        out["CompanyName"] = vendor.legal_name
    if vendor.tax_id:
        out["TaxIdentifier"] = vendor.tax_id
    if vendor.email:
        out["PrimaryEmailAddr"] = {"Address": vendor.email}
    if vendor.currency:
        out["CurrencyRef"] = ref(vendor.currency)
    if reference:
        out["Notes"] = reference_marker(reference)
    return out


def vendor_changes_to_qbo(changes: VendorChanges) -> JSONObject:
    """A sparse Vendor update's fields (QBO keeps a vendor's currency once set: not here)."""
    out: JSONObject = {}
    if changes.name is not None:
        out["DisplayName"] = changes.name
    if changes.legal_name is not None:
        out["CompanyName"] = changes.legal_name
    if changes.tax_id is not None:
        out["TaxIdentifier"] = changes.tax_id
    if changes.email is not None:
        out["PrimaryEmailAddr"] = {"Address": changes.email}
    if changes.active is not None:
        out["Active"] = changes.active
    return out


def _lines_from_qbo(obj: JSONObject) -> list[BillLine]:
    department = ref_value(obj, "DepartmentRef")
    lines = []
    for line in obj.get("Line") or []:
        detail_type = line.get("DetailType")
        detail = line.get(detail_type) or {} if detail_type else {}
        tracking = []
        if class_id := ref_value(detail, "ClassRef"):
            tracking.append(TrackingRef(kind=TrackingKind.class_, id=class_id))
        if department:
            tracking.append(TrackingRef(kind=TrackingKind.department, id=department))
        lines.append(
            BillLine(
                description=line.get("Description"),
                amount=decimal(line.get("Amount")),
                quantity=decimal(detail["Qty"]) if "Qty" in detail else None,
                unit_amount=decimal(detail["UnitPrice"]) if "UnitPrice" in detail else None,
                account_id=ref_value(detail, "AccountRef"),
                item_id=ref_value(detail, "ItemRef"),
                customer_id=ref_value(detail, "CustomerRef"),
                tracking=tracking,
                tax_code_id=ref_value(detail, "TaxCodeRef"),
            )
        )
    return lines


def _tax(obj: JSONObject) -> Decimal:
    return decimal((obj.get("TxnTaxDetail") or {}).get("TotalTax"))


def bill_status(total: Decimal, balance: Decimal) -> BillStatus:
    if balance <= 0:
        return BillStatus.paid
    if balance < total:
        return BillStatus.partially_paid
    return BillStatus.open


def vendor_bank_accounts_from_qbo(obj: JSONObject) -> list[VendorBankAccount]:
    """`Vendor.VendorPaymentBankDetail`, the one bank-detail field QBO has (AU companies, for
    ABA files): BSB in BankBranchIdentifier. Other regions keep none ([])."""
    detail = obj.get("VendorPaymentBankDetail")
    if not isinstance(detail, dict):
        return []
    number = detail.get("BankAccountNumber") or None
    branch = detail.get("BankBranchIdentifier") or None
    if number is None and branch is None:
        return []
    return [
        VendorBankAccount(
            account_name=detail.get("BankAccountName") or None,
            account_number=number,
            routing_number=branch,
            country="AU",
            primary=True,
            platform_ref="VendorPaymentBankDetail",
        )
    ]


# Payment terms (`Term`): remit reads and writes the "standard" kind (days after the bill date).
STANDARD_TERM = "STANDARD"


def terms_from_qbo(term: JSONObject) -> PaymentTerms | None:
    """A standard Term as PaymentTerms; None for date-driven terms, which have no net days."""
    if term.get("Type", STANDARD_TERM) != STANDARD_TERM or term.get("DueDays") is None:
        return None
    try:
        return PaymentTerms(
            name=term.get("Name") or None,
            net_days=int(term["DueDays"]),
            discount_percent=decimal(term.get("DiscountPercent")),
            discount_days=int(term.get("DiscountDays") or 0),
        )
    except ValueError:
        return None


def term_matches(term: JSONObject, terms: PaymentTerms) -> bool:
    found = terms_from_qbo(term)
    return (
        found is not None
        and term.get("Active", True) is not False
        and _term_values(found) == _term_values(terms)
    )


def _term_values(terms: PaymentTerms) -> tuple[int, Decimal, int]:
    days = terms.discount_days if terms.discount_percent else 0
    return terms.net_days, terms.discount_percent, days


def term_name(terms: PaymentTerms) -> str:
    """QBO's own way of naming terms: "Net 30", "2% 10 Net 30"."""
    if terms.discount_percent:
        percent = f"{terms.discount_percent.normalize():f}"
        return f"{percent}% {terms.discount_days} Net {terms.net_days}"
    return f"Net {terms.net_days}"


def term_to_qbo(terms: PaymentTerms, *, name: str) -> JSONObject:
    out: JSONObject = {"Name": name[:31], "Active": True, "DueDays": terms.net_days}
    if terms.discount_percent:
        out["DiscountPercent"] = terms.discount_percent
        out["DiscountDays"] = terms.discount_days
    return out


def bill_from_qbo(obj: JSONObject, terms: Mapping[str, JSONObject] | None = None) -> Bill:
    """A QBO Bill; `terms` (Term objects by Id) turns its SalesTermRef into PaymentTerms."""
    total = decimal(obj.get("TotalAmt"))
    balance = decimal(obj.get("Balance", total))
    _, reference, memo = split_private_note(obj.get("PrivateNote"))
    payment_ids = [
        str(linked["TxnId"])
        for linked in obj.get("LinkedTxn") or []
        if linked.get("TxnType") in PAYMENT_TXN_TYPES
    ]
    term_id = ref_value(obj, "SalesTermRef")
    term = (terms or {}).get(term_id) if term_id else None
    vendor = obj.get("VendorRef") or {}
    return Bill(
        id=str(obj["Id"]),
        vendor_id=str(vendor.get("value")),
        vendor_name=vendor.get("name"),
        document_number=obj.get("DocNumber"),
        issue_date=parse_date(obj["TxnDate"]),
        due_date=parse_date(obj["DueDate"]) if obj.get("DueDate") else None,
        currency=ref_value(obj, "CurrencyRef") or "USD",
        exchange_rate=decimal(obj["ExchangeRate"]) if "ExchangeRate" in obj else None,
        terms=terms_from_qbo(term) if term is not None else None,
        lines=_lines_from_qbo(obj),
        tax_amount=_tax(obj),
        total=total,
        balance=balance,
        status=bill_status(total, balance),
        memo=memo,
        reference=reference,
        payment_ids=payment_ids,
        updated_at=_updated(obj),
    )


def credit_memo_from_qbo(obj: JSONObject) -> BillCreditMemo:
    _, reference, _ = split_private_note(obj.get("PrivateNote"))
    total = decimal(obj.get("TotalAmt"))
    return BillCreditMemo(
        id=str(obj["Id"]),
        vendor_id=str(ref_value(obj, "VendorRef")),
        document_number=obj.get("DocNumber"),
        issue_date=parse_date(obj["TxnDate"]),
        currency=ref_value(obj, "CurrencyRef") or "USD",
        lines=_lines_from_qbo(obj),
        total=total,
        remaining=decimal(obj.get("Balance", total)),
        reference=reference,
    )


def discount_bill_of(credit: JSONObject) -> str | None:
    """The bill a vendor credit is remit's early-payment discount for, if it is one."""
    return _own_line(credit.get("PrivateNote"), DISCOUNT_MARKER)


def _linked(line: JSONObject) -> tuple[str | None, str | None]:
    for linked in line.get("LinkedTxn") or []:
        return str(linked.get("TxnId")), linked.get("TxnType")
    return None, None


def credit_ids_of(obj: JSONObject) -> list[str]:
    """The vendor credits a BillPayment's lines apply."""
    ids = []
    for line in obj.get("Line") or []:
        txn_id, txn_type = _linked(line)
        if txn_id is not None and txn_type == "VendorCredit" and txn_id not in ids:
            ids.append(txn_id)
    return ids


@dataclass
class SettledBill:
    bill_id: str
    cash: Decimal
    discount: Decimal = Decimal("0")


@dataclass
class Settlement:
    """What one BillPayment settled, bill by bill: cash, early-payment discount, credits."""

    bills: list[SettledBill] = field(default_factory=list)
    # (vendor credit id, bill id, amount) for the credits that are not discounts
    credits: list[tuple[str, str, Decimal]] = field(default_factory=list)


def settlement(obj: JSONObject, discounts: Mapping[str, str] | None = None) -> Settlement:
    """How a BillPayment's lines settle its bills.

    A QBO BillPayment links bills and vendor credits but does not say which credit went to
    which bill. `discounts` (vendor credit id → bill id) names remit's discount credits, which
    belong to one bill each; any other credit is taken off the bill lines in order, so cash +
    discounts + credits of every bill add up to what the payment applied to it.
    """
    discounts = discounts or {}
    applied: dict[str, Decimal] = {}
    credit_lines: list[tuple[str, Decimal]] = []
    for line in obj.get("Line") or []:
        txn_id, txn_type = _linked(line)
        if txn_id is None:
            continue
        amount = decimal(line.get("Amount"))
        if txn_type == "Bill":
            applied[txn_id] = applied.get(txn_id, Decimal("0")) + amount
        elif txn_type == "VendorCredit":
            credit_lines.append((txn_id, amount))
    bills = {bill_id: SettledBill(bill_id, cash=amount) for bill_id, amount in applied.items()}
    others: list[tuple[str, Decimal]] = []
    for credit_id, amount in credit_lines:
        bill = bills.get(discounts.get(credit_id, ""))
        if bill is None:
            others.append((credit_id, amount))
            continue
        taken = min(amount, bill.cash)
        bill.cash -= taken
        bill.discount += taken
        if amount > taken:
            others.append((credit_id, amount - taken))
    result = Settlement(bills=list(bills.values()))
    for credit_id, amount in others:
        left = amount
        for bill in result.bills:
            if left <= 0:
                break
            taken = min(left, bill.cash)
            if taken > 0:
                bill.cash -= taken
                left -= taken
                result.credits.append((credit_id, bill.bill_id, taken))
    return result


def _payment_header(obj: JSONObject) -> dict[str, Any]:
    if obj.get("PayType") == "CreditCard":
        source = ref_value(obj.get("CreditCardPayment") or {}, "CCAccountRef")
    else:
        source = ref_value(obj.get("CheckPayment") or {}, "BankAccountRef")
    _, reference, memo = split_private_note(obj.get("PrivateNote"))
    return {
        "id": str(obj["Id"]),
        "vendor_id": str(ref_value(obj, "VendorRef")),
        "payment_date": parse_date(obj["TxnDate"]),
        "currency": ref_value(obj, "CurrencyRef") or "USD",
        "exchange_rate": decimal(obj["ExchangeRate"]) if "ExchangeRate" in obj else None,
        "source_account_id": source or "",
        "reference": reference,
        "memo": memo,
        "updated_at": _updated(obj),
    }


def bill_payment_from_qbo(
    obj: JSONObject, discounts: Mapping[str, str] | None = None
) -> BillPayment | None:
    """The cash side of a QBO BillPayment; None for a pure credit application (TotalAmt 0).

    Each bill's line shows the cash it got and, for remit's discount credits (`discounts`,
    vendor credit id → bill id), the discount taken; other credits applied in the same
    payment are taken off the cash so the lines still add up to TotalAmt. A voided payment
    (QBO zeroes it and clears its lines) is shown as it was, with voided=True, when remit
    recorded its lines before voiding it, and is None otherwise.
    """
    if is_voided(obj):
        return voided_payment_from_qbo(obj)
    total = decimal(obj.get("TotalAmt"))
    if total <= 0:
        return None
    lines = [
        BillPaymentLine(bill_id=bill.bill_id, amount=bill.cash, discount=bill.discount)
        for bill in settlement(obj, discounts).bills
        if bill.cash > 0
    ]
    if not lines:
        return None
    # An overpayment (TotalAmt above the lines) leaves unapplied credit; show what hit bills.
    paid = sum((line.amount for line in lines), Decimal("0"))
    return BillPayment(**_payment_header(obj), total=paid, lines=lines)


def credit_applications_from_qbo(
    obj: JSONObject, discounts: Mapping[str, str] | None = None
) -> list[CreditApplication]:
    """The vendor credits (not discounts) a BillPayment applied, one per credit and bill."""
    if is_voided(obj):
        return []
    applied_on = parse_date(obj["TxnDate"])
    return [
        CreditApplication(
            id=str(obj["Id"]),
            credit_memo_id=credit_id,
            bill_id=bill_id,
            amount=amount,
            applied_on=applied_on,
        )
        for credit_id, bill_id, amount in settlement(obj, discounts).credits
    ]


# What a payment applied, kept in its PrivateNote before remit voids it: QBO's void zeroes the
# amounts and clears the lines, and a retried void must still say what was voided.


def paid_record(payment: BillPayment, discount_credit_ids: list[str]) -> str:
    record = {
        "total": str(payment.total),
        "lines": [[line.bill_id, str(line.amount), str(line.discount)] for line in payment.lines],
        "discount_credits": discount_credit_ids,
    }
    return PAID_RECORD_MARKER + json.dumps(record, separators=(",", ":"))


def note_with_paid_record(note: str | None, record: str) -> str:
    kept = [line for line in (note or "").split("\n") if not line.startswith(PAID_RECORD_MARKER)]
    if kept == [""]:
        kept = []
    out = "\n".join([*kept, record])
    if len(out) > LONGEST_PRIVATE_NOTE:
        raise UnsupportedByQuickBooks(
            "the payment has too many lines to record in its PrivateNote before voiding it "
            f"({len(out)} characters; QuickBooks keeps {LONGEST_PRIVATE_NOTE})"
        )
    return out


@dataclass
class PaidRecord:
    total: Decimal
    lines: list[BillPaymentLine]
    discount_credits: list[str]


def paid_record_of(obj: JSONObject) -> PaidRecord | None:
    text = _own_line(obj.get("PrivateNote"), PAID_RECORD_MARKER)
    if text is None:
        return None
    try:
        data = json.loads(text)
        return PaidRecord(
            total=Decimal(data["total"]),
            lines=[
                BillPaymentLine(
                    bill_id=str(bill_id), amount=Decimal(amount), discount=Decimal(disc)
                )
                for bill_id, amount, disc in data["lines"]
            ],
            discount_credits=[str(credit_id) for credit_id in data.get("discount_credits", [])],
        )
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None


def voided_payment_from_qbo(obj: JSONObject) -> BillPayment | None:
    record = paid_record_of(obj)
    if record is None or not record.lines:
        return None
    return BillPayment(**_payment_header(obj), total=record.total, lines=record.lines, voided=True)


def exchange_rate_from_qbo(obj: JSONObject) -> ExchangeRate:
    return ExchangeRate(
        currency=obj["SourceCurrencyCode"],
        home_currency=obj["TargetCurrencyCode"],
        rate=decimal(obj["Rate"]),
        as_of=parse_date(str(obj["AsOfDate"])),
        source="quickbooks",
    )


def currency_prefs(preferences: JSONObject) -> tuple[str | None, bool]:
    """(home currency, multicurrency enabled) from a Preferences object."""
    prefs = preferences.get("CurrencyPrefs") or {}
    home = prefs.get("HomeCurrency")
    code = home.get("value") if isinstance(home, dict) else home
    return (str(code) if code else None), bool(prefs.get("MultiCurrencyEnabled", False))


def attachment_from_qbo(obj: JSONObject, bill_id: str) -> Attachment:
    note = obj.get("Note") or ""
    sha256 = note[len("sha256:") :] if note.startswith("sha256:") else None
    return Attachment(
        id=str(obj["Id"]),
        bill_id=bill_id,
        file_name=obj.get("FileName", ""),
        content_type=obj.get("ContentType", "application/octet-stream"),
        size=int(obj.get("Size") or 0),
        sha256=sha256,
    )


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------


class UnsupportedByQuickBooks(ValueError):
    """The unified object asks for something QBO cannot record; the message says what."""


def _header_department(lines: list[BillLine]) -> str | None:
    # QBO tracks departments (Locations) per transaction, not per line.
    departments = {
        ref.id for line in lines for ref in line.tracking if ref.kind == TrackingKind.department
    }
    if len(departments) > 1:
        raise UnsupportedByQuickBooks(
            "QuickBooks Online records one department (location) per bill; the lines name "
            f"{len(departments)} different ones: split the bill by department"
        )
    for line in lines:
        for tracking in line.tracking:
            if tracking.kind == TrackingKind.location:
                raise UnsupportedByQuickBooks(
                    "QuickBooks Online has no location dimension separate from departments"
                )
    return departments.pop() if departments else None


def _line_to_qbo(line: BillLine) -> JSONObject:
    detail: JSONObject = {"BillableStatus": "NotBillable"}
    if line.account_id:
        detail["AccountRef"] = ref(line.account_id)
    if line.customer_id:
        detail["CustomerRef"] = ref(line.customer_id)
    for tracking in line.tracking:
        if tracking.kind == TrackingKind.class_:
            detail["ClassRef"] = ref(tracking.id)
    if line.tax_code_id:
        detail["TaxCodeRef"] = ref(line.tax_code_id)
    out: JSONObject = {
        "Amount": line.amount,
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": detail,
    }
    if line.description:
        out["Description"] = line.description
    return out


def _purchase_to_qbo(
    *,
    vendor_id: str,
    issue_date: date,
    currency: str,
    lines: list[BillLine],
    document_number: str | None,
    reference: str | None,
    memo: str | None,
) -> JSONObject:
    out: JSONObject = {
        "VendorRef": ref(vendor_id),
        "TxnDate": issue_date.isoformat(),
        "CurrencyRef": ref(currency),
        "Line": [_line_to_qbo(line) for line in lines],
    }
    if department := _header_department(lines):
        out["DepartmentRef"] = ref(department)
    if document_number:
        out["DocNumber"] = document_number
    if note := private_note(reference, memo):
        out["PrivateNote"] = note
    return out


def bill_to_qbo(bill: Bill, *, reference: str, term_id: str | None = None) -> JSONObject:
    out = _purchase_to_qbo(
        vendor_id=bill.vendor_id,
        issue_date=bill.issue_date,
        currency=bill.currency,
        lines=bill.lines,
        document_number=bill.document_number,
        reference=reference,
        memo=bill.memo,
    )
    if bill.due_date:
        out["DueDate"] = bill.due_date.isoformat()
    if bill.exchange_rate is not None:
        out["ExchangeRate"] = bill.exchange_rate
    if term_id is not None:
        out["SalesTermRef"] = ref(term_id)
    if bill.tax_amount or any(line.tax_code_id for line in bill.lines):
        # Lines stay net; QBO adds TotalTax on top, so TotalAmt == lines + tax == bill.total.
        # With TaxCodeRefs on the lines QBO computes the tax per rate; the TotalTax given
        # overrides that sum, so the bill keeps the vendor's figure to the cent.
        out["GlobalTaxCalculation"] = "TaxExcluded"
        out["TxnTaxDetail"] = {"TotalTax": bill.tax_amount}
    return out


TAX_CODE_WORDS: dict[str, tuple[str, ...]] = {
    "Z": ("% z",),
    "E": ("exempt",),
    "AE": ("% rc", " drc", "reverse"),
    "K": ("ecg", "ecs"),
    "O": ("no vat",),
}
"""How non-US QuickBooks names its VAT codes ("20.0% S", "0.0% Z", "20.0% RC", "20.0% ECG",
"No VAT"): what each category's code says besides the shared words."""


def purchase_tax_codes(codes: list[JSONObject], rates: list[JSONObject]) -> list[TaxRate]:
    """The TaxCodes a bill line may carry: those with purchase rates (a sales-only code, as
    every US sales-tax code is, cannot go on a bill), each with the sum of its purchase rates;
    `id` is the TaxCode Id a TaxCodeRef takes."""
    by_id = {str(r["Id"]): r for r in rates}
    found: list[TaxRate] = []
    for code in codes:
        details = (code.get("PurchaseTaxRateList") or {}).get("TaxRateDetail") or []
        if not details:
            continue
        values = [by_id.get(str(ref_value(d, "TaxRateRef")), {}).get("RateValue") for d in details]
        found.append(
            TaxRate(
                id=str(code["Id"]),
                name=str(code.get("Name") or code["Id"]),
                code=code.get("Name") or None,
                rate_percent=None
                if any(v is None for v in values)
                else sum((decimal(v) for v in values), Decimal("0")),
                active=bool(code.get("Active", True)),
            )
        )
    return found


def credit_memo_to_qbo(memo: BillCreditMemo, *, reference: str) -> JSONObject:
    return _purchase_to_qbo(
        vendor_id=memo.vendor_id,
        issue_date=memo.issue_date,
        currency=memo.currency,
        lines=memo.lines,
        document_number=memo.document_number,
        reference=reference,
        memo=None,
    )


def _pay_from(account_id: str, *, credit_card: bool) -> JSONObject:
    if credit_card:
        return {"PayType": "CreditCard", "CreditCardPayment": {"CCAccountRef": ref(account_id)}}
    return {
        "PayType": "Check",
        "CheckPayment": {"BankAccountRef": ref(account_id), "PrintStatus": "NotSet"},
    }


def bill_payment_to_qbo(
    payment: BillPayment,
    *,
    reference: str,
    pay_by_credit_card: bool,
    discount_credits: Mapping[str, str] | None = None,
) -> JSONObject:
    """A BillPayment with one line per bill; a bill with a discount gets amount + discount
    applied, and the discount's vendor credit (`discount_credits`, bill id → credit id) a line
    of its own, so TotalAmt stays the cash that leaves the bank."""
    discount_credits = discount_credits or {}
    lines: list[JSONObject] = []
    for line in payment.lines:
        lines.append(
            {
                "Amount": line.amount + line.discount,
                "LinkedTxn": [{"TxnId": line.bill_id, "TxnType": "Bill"}],
            }
        )
    for line in payment.lines:
        if line.discount > 0:
            credit_id = discount_credits.get(line.bill_id)
            if credit_id is None:
                raise UnsupportedByQuickBooks(
                    f"the discount on bill {line.bill_id} has no vendor credit to apply"
                )
            lines.append(
                {
                    "Amount": line.discount,
                    "LinkedTxn": [{"TxnId": credit_id, "TxnType": "VendorCredit"}],
                }
            )
    out: JSONObject = {
        "VendorRef": ref(payment.vendor_id),
        **_pay_from(payment.source_account_id, credit_card=pay_by_credit_card),
        "TotalAmt": payment.total,
        "TxnDate": payment.payment_date.isoformat(),
        "CurrencyRef": ref(payment.currency),
        "Line": lines,
    }
    if payment.exchange_rate is not None:
        out["ExchangeRate"] = payment.exchange_rate
    if note := private_note(reference, payment.memo):
        out["PrivateNote"] = note
    return out


def discount_reference(payment_reference: str, bill_id: str) -> str:
    """remit's reference for the vendor credit that carries a payment's discount on one bill."""
    return f"{payment_reference}#discount:{bill_id}"


def discount_credit_to_qbo(
    *,
    vendor_id: str,
    bill_id: str,
    bill_label: str,
    amount: Decimal,
    currency: str,
    exchange_rate: Decimal | None,
    account_id: str,
    issue_date: date,
    reference: str,
) -> JSONObject:
    """QBO's practice for an early-payment discount: a vendor credit to the discount account,
    applied in the payment next to the bill (BillPayment has no discount field)."""
    out: JSONObject = {
        "VendorRef": ref(vendor_id),
        "TxnDate": issue_date.isoformat(),
        "CurrencyRef": ref(currency),
        "Line": [
            {
                "Amount": amount,
                "Description": f"Early-payment discount taken on bill {bill_label}",
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {
                    "AccountRef": ref(account_id),
                    "BillableStatus": "NotBillable",
                },
            }
        ],
        "PrivateNote": f"{reference_marker(reference)}\n{DISCOUNT_MARKER}{bill_id}",
    }
    if exchange_rate is not None:
        out["ExchangeRate"] = exchange_rate
    return out


def credit_application_to_qbo(
    *,
    vendor_id: str,
    bill_id: str,
    credit_memo_id: str,
    amount: Decimal,
    currency: str,
    bank_account_id: str,
    applied_on: date,
    reference: str,
) -> JSONObject:
    """A zero-cash BillPayment: the bill line and the vendor-credit line cancel out."""
    return {
        "VendorRef": ref(vendor_id),
        **_pay_from(bank_account_id, credit_card=False),
        "TotalAmt": Decimal("0"),
        "TxnDate": applied_on.isoformat(),
        "CurrencyRef": ref(currency),
        "PrivateNote": private_note(reference, None),
        "Line": [
            {"Amount": amount, "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]},
            {"Amount": amount, "LinkedTxn": [{"TxnId": credit_memo_id, "TxnType": "VendorCredit"}]},
        ],
    }


def attachable_metadata(
    *, bill_id: str, file_name: str, content_type: str, sha256: str
) -> JSONObject:
    return {
        "AttachableRef": [{"EntityRef": {"type": "Bill", "value": bill_id}}],
        "FileName": file_name,
        "ContentType": content_type,
        "Note": f"sha256:{sha256}",
    }


def quote(value: str) -> str:
    """A string literal for QBO's query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
