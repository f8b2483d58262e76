"""QuickBooks Online native JSON <-> the unified accounting model (pure functions, no I/O)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillPayment,
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


def reference_marker(reference: str) -> str:
    if len(reference) <= LONGEST_PLAIN_REFERENCE and "\n" not in reference:
        return REFERENCE_MARKER + reference
    return HASHED_REFERENCE_MARKER + hashlib.sha256(reference.encode()).hexdigest()


def private_note(reference: str | None, memo: str | None) -> str | None:
    parts = [reference_marker(reference)] if reference else []
    if memo:
        parts.append(memo)
    return "\n".join(parts) or None


def split_private_note(note: str | None) -> tuple[str | None, str | None, str | None]:
    """(marker, plain reference if recoverable, memo) from a PrivateNote we may have written."""
    if not note:
        return None, None, None
    first, _, rest = note.partition("\n")
    if first.startswith(HASHED_REFERENCE_MARKER):
        return first, None, rest or None
    if first.startswith(REFERENCE_MARKER):
        return first, first[len(REFERENCE_MARKER) :], rest or None
    return None, None, note


def has_reference(obj: JSONObject, reference: str) -> bool:
    marker, _, _ = split_private_note(obj.get("PrivateNote"))
    return marker == reference_marker(reference)


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

_CATEGORY_OF_TYPE = {
    AccountType.bank: AccountCategory.asset,
    AccountType.accounts_receivable: AccountCategory.asset,
    AccountType.other_current_asset: AccountCategory.asset,
    AccountType.fixed_asset: AccountCategory.asset,
    AccountType.accounts_payable: AccountCategory.liability,
    AccountType.credit_card: AccountCategory.liability,
    AccountType.other_current_liability: AccountCategory.liability,
    AccountType.long_term_liability: AccountCategory.liability,
    AccountType.equity: AccountCategory.equity,
    AccountType.income: AccountCategory.income,
    AccountType.cost_of_goods_sold: AccountCategory.expense,
    AccountType.expense: AccountCategory.expense,
    AccountType.other_expense: AccountCategory.expense,
}


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


def bill_from_qbo(obj: JSONObject) -> Bill:
    total = decimal(obj.get("TotalAmt"))
    balance = decimal(obj.get("Balance", total))
    _, reference, memo = split_private_note(obj.get("PrivateNote"))
    payment_ids = [
        str(linked["TxnId"])
        for linked in obj.get("LinkedTxn") or []
        if linked.get("TxnType") in PAYMENT_TXN_TYPES
    ]
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


def _linked(line: JSONObject) -> tuple[str | None, str | None]:
    for linked in line.get("LinkedTxn") or []:
        return str(linked.get("TxnId")), linked.get("TxnType")
    return None, None


def bill_payment_from_qbo(obj: JSONObject) -> BillPayment | None:
    """The cash side of a QBO BillPayment; None for a pure credit application (TotalAmt 0).

    A payment that mixes bills and vendor credits pays cash only for the net: the credit
    amounts are taken off the bill lines in order so the lines still add up to TotalAmt.
    """
    total = decimal(obj.get("TotalAmt"))
    if total <= 0:
        return None
    bill_lines: list[tuple[str, Decimal]] = []
    credit = Decimal("0")
    for line in obj.get("Line") or []:
        txn_id, txn_type = _linked(line)
        if txn_id is None:
            continue
        if txn_type == "Bill":
            bill_lines.append((txn_id, decimal(line.get("Amount"))))
        elif txn_type == "VendorCredit":
            credit += decimal(line.get("Amount"))
    lines = []
    for bill_id, amount in bill_lines:
        taken = min(amount, credit)
        credit -= taken
        if amount - taken > 0:
            lines.append(BillPaymentLine(bill_id=bill_id, amount=amount - taken))
    paid = sum((line.amount for line in lines), Decimal("0"))
    if not lines or paid != total:
        # An overpayment (TotalAmt above the lines) leaves unapplied credit; show what hit bills.
        if not lines:
            return None
        total = paid
    if obj.get("PayType") == "CreditCard":
        source = ref_value(obj.get("CreditCardPayment") or {}, "CCAccountRef")
    else:
        source = ref_value(obj.get("CheckPayment") or {}, "BankAccountRef")
    _, reference, memo = split_private_note(obj.get("PrivateNote"))
    return BillPayment(
        id=str(obj["Id"]),
        vendor_id=str(ref_value(obj, "VendorRef")),
        payment_date=parse_date(obj["TxnDate"]),
        currency=ref_value(obj, "CurrencyRef") or "USD",
        exchange_rate=decimal(obj["ExchangeRate"]) if "ExchangeRate" in obj else None,
        source_account_id=source or "",
        total=total,
        lines=lines,
        reference=reference,
        memo=memo,
        updated_at=_updated(obj),
    )


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


def bill_to_qbo(bill: Bill, *, reference: str) -> JSONObject:
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
    if bill.tax_amount:
        # Lines stay net; QBO adds TotalTax on top, so TotalAmt == lines + tax == bill.total.
        out["GlobalTaxCalculation"] = "TaxExcluded"
        out["TxnTaxDetail"] = {"TotalTax": bill.tax_amount}
    return out


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
    payment: BillPayment, *, reference: str, pay_by_credit_card: bool
) -> JSONObject:
    out: JSONObject = {
        "VendorRef": ref(payment.vendor_id),
        **_pay_from(payment.source_account_id, credit_card=pay_by_credit_card),
        "TotalAmt": payment.total,
        "TxnDate": payment.payment_date.isoformat(),
        "CurrencyRef": ref(payment.currency),
        "Line": [
            {"Amount": line.amount, "LinkedTxn": [{"TxnId": line.bill_id, "TxnType": "Bill"}]}
            for line in payment.lines
        ],
    }
    if payment.exchange_rate is not None:
        out["ExchangeRate"] = payment.exchange_rate
    if note := private_note(reference, payment.memo):
        out["PrivateNote"] = note
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
