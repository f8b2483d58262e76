"""Business Central API v2.0 JSON to and from the unified model (vendors, accounts, bills)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from accounting import (
    Account,
    AccountCategory,
    AccountType,
    Bill,
    BillLine,
    BillStatus,
    TrackingCategory,
    TrackingKind,
    TrackingRef,
    Vendor,
    VendorChanges,
)
from connectors.decimal_json import dumps, loads

__all__ = ["dumps", "loads"]

PLATFORM_NAME = "business_central"
JSONObject = dict[str, Any]
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

# remit's reference rides on a Comment line of the invoice (lineType "Comment", free text of
# up to 100 characters that posting keeps). vendorInvoiceNumber holds the vendor's own document
# number (BC keeps it unique per vendor among posted invoices), so it cannot carry remit's key
# as well; purchaseInvoice has no other free-text field in API v2.0.
REFERENCE_PREFIX = "remit-ref:"
DESCRIPTION_LIMIT = 100
VENDOR_INVOICE_NUMBER_LIMIT = 35
DOCUMENT_NUMBER_LIMIT = 20


def odata_string(value: str) -> str:
    """A string literal for $filter: quoted, with single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def reference_marker(reference: str) -> str:
    """The comment line's text for a reference: the reference itself when it fits, else a
    digest of it (a reference longer than the line still finds its bill)."""
    plain = REFERENCE_PREFIX + reference
    if len(plain) <= DESCRIPTION_LIMIT:
        return plain
    return REFERENCE_PREFIX + "#" + hashlib.sha256(reference.encode()).hexdigest()[:64]


def reference_of(lines: list[JSONObject]) -> str | None:
    """The reference a bill's comment line carries (None for a digest: not readable back)."""
    for line in lines:
        text = str(line.get("description") or "")
        if line.get("lineType") == "Comment" and text.startswith(REFERENCE_PREFIX):
            value = text.removeprefix(REFERENCE_PREFIX)
            return None if value.startswith("#") else value
    return None


def carries_reference(lines: list[JSONObject], reference: str) -> bool:
    marker = reference_marker(reference)
    return any(
        line.get("lineType") == "Comment" and line.get("description") == marker for line in lines
    )


def vendor_invoice_number(bill: Bill, reference: str) -> str:
    """The vendor's document number; a bill without one gets a stable number from remit's
    reference, since BC will not post an invoice without a Vendor Invoice No."""
    if bill.document_number:
        return bill.document_number
    return "REMIT-" + hashlib.sha256(reference.encode()).hexdigest()[:16].upper()


def payment_document_number(reference: str) -> str:
    """A payment's Document No. (20 characters at most), the same for every retry."""
    return "RMT" + hashlib.sha256(reference.encode()).hexdigest()[:17].upper()


def payment_description(invoice_number: str) -> str:
    return f"remit payment of {invoice_number}"


def invoice_number_of_payment(description: str) -> str | None:
    prefix = "remit payment of "
    return description.removeprefix(prefix) if description.startswith(prefix) else None


def decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal("0")
    return Decimal(str(value))


def parse_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso_date(value: date) -> str:
    return value.isoformat()


# --- vendors -----------------------------------------------------------------------------------


def vendor_from_bc(raw: JSONObject) -> Vendor:
    return Vendor(
        id=str(raw["id"]),
        name=str(raw.get("displayName") or raw.get("number") or ""),
        tax_id=raw.get("taxRegistrationNumber") or None,
        email=raw.get("email") or None,
        currency=raw.get("currencyCode") or None,
        # "Payment" blocks payments only; "All" blocks every document: not a usable vendor.
        active=str(raw.get("blocked") or " ").strip() != "All",
        updated_at=parse_datetime(raw.get("lastModifiedDateTime")),
    )


def vendor_to_bc(vendor: Vendor) -> JSONObject:
    body: JSONObject = {"displayName": vendor.name}
    if vendor.tax_id:
        body["taxRegistrationNumber"] = vendor.tax_id
    if vendor.email:
        body["email"] = vendor.email
    if vendor.currency:
        body["currencyCode"] = vendor.currency
    if not vendor.active:
        body["blocked"] = "All"
    return body


def vendor_changes_to_bc(changes: VendorChanges) -> JSONObject:
    body: JSONObject = {}
    if changes.name is not None:
        body["displayName"] = changes.name
    if changes.tax_id is not None:
        body["taxRegistrationNumber"] = changes.tax_id
    if changes.email is not None:
        body["email"] = changes.email
    if changes.active is not None:
        body["blocked"] = " " if changes.active else "All"
    # BC's vendor has one name (displayName): a legal name has nowhere else to go.
    if changes.legal_name is not None and changes.name is None:
        body["displayName"] = changes.legal_name
    return body


# --- accounts and dimensions -------------------------------------------------------------------

_SUB_CATEGORY_TYPES = {
    "cash": AccountType.bank,
    "bank": AccountType.bank,
    "accounts receivable": AccountType.accounts_receivable,
    "accounts payable": AccountType.accounts_payable,
    "credit card": AccountType.credit_card,
    "fixed assets": AccountType.fixed_asset,
    "long term liabilities": AccountType.long_term_liability,
}
_CATEGORY_TYPES = {
    "assets": (AccountCategory.asset, AccountType.other_current_asset),
    "liabilities": (AccountCategory.liability, AccountType.other_current_liability),
    "equity": (AccountCategory.equity, AccountType.equity),
    "income": (AccountCategory.income, AccountType.income),
    "costofgoodssold": (AccountCategory.expense, AccountType.cost_of_goods_sold),
    "expense": (AccountCategory.expense, AccountType.expense),
}


def account_from_bc(raw: JSONObject) -> Account:
    category_key = str(raw.get("category") or "").replace(" ", "").lower()
    category, default_type = _CATEGORY_TYPES.get(
        category_key, (AccountCategory.expense, AccountType.expense)
    )
    account_type = _SUB_CATEGORY_TYPES.get(str(raw.get("subCategory") or "").lower(), default_type)
    return Account(
        id=str(raw["id"]),
        name=str(raw.get("displayName") or raw.get("number") or ""),
        number=raw.get("number") or None,
        category=category,
        account_type=account_type,
        active=not raw.get("blocked") and raw.get("accountType", "Posting") == "Posting",
    )


def tracking_kind(dimension_code: str) -> TrackingKind:
    """Which unified kind a BC dimension is, by its code (DEPARTMENT, AREA/LOCATION, others)."""
    code = dimension_code.upper()
    if "DEPART" in code:
        return TrackingKind.department
    if "LOCATION" in code or "AREA" in code:
        return TrackingKind.location
    return TrackingKind.class_


def tracking_from_bc(
    dimensions: list[JSONObject], values: list[JSONObject]
) -> list[TrackingCategory]:
    by_id = {str(d["id"]): d for d in dimensions}
    categories = []
    for value in values:
        dimension = by_id.get(str(value.get("dimensionId")))
        if dimension is None:
            continue
        categories.append(
            TrackingCategory(
                id=str(value["id"]),
                kind=tracking_kind(str(dimension.get("code") or "")),
                name=str(value.get("displayName") or value.get("code") or ""),
                parent_id=str(dimension["id"]),
            )
        )
    return categories


# --- bills -------------------------------------------------------------------------------------


def bill_lines_to_bc(bill: Bill, reference: str) -> list[JSONObject]:
    """The invoice's lines for a deep insert: one Account line per bill line, then the comment
    line that carries remit's reference."""
    lines: list[JSONObject] = []
    for line in bill.lines:
        if line.quantity is not None and line.unit_amount is not None:
            quantity, cost = line.quantity, line.unit_amount
            if (quantity * cost).quantize(Decimal("0.01")) != line.amount:
                quantity, cost = Decimal("1"), line.amount
        else:
            quantity, cost = Decimal("1"), line.amount
        body: JSONObject = {
            "lineType": "Account",
            "accountId": line.account_id,
            "description": (line.description or "")[:DESCRIPTION_LIMIT],
            "quantity": quantity,
            "directUnitCost": cost,
        }
        if line.tax_code_id:
            body["taxCode"] = line.tax_code_id
        lines.append(body)
    lines.append({"lineType": "Comment", "description": reference_marker(reference)})
    return lines


def remaining_amount(raw: JSONObject, paid: Decimal | None = None) -> Decimal:
    """What is left to pay on an invoice: its `remainingAmount` where the API shows one, else
    from its status (Paid: nothing; Draft: all) and the payments `paid` against it."""
    total = decimal(raw.get("totalAmountIncludingTax"))
    if "remainingAmount" in raw:
        return decimal(raw["remainingAmount"])
    status = str(raw.get("status") or "")
    if status == "Paid":
        return Decimal("0")
    if status in ("Canceled", "Cancelled", "Corrective"):
        return Decimal("0")
    return total - (paid or Decimal("0")) if status == "Open" else total


def bill_status(raw: JSONObject, remaining: Decimal) -> BillStatus:
    status = str(raw.get("status") or "")
    if status in ("Draft", "In Review"):
        return BillStatus.draft
    if status == "Paid":
        return BillStatus.paid
    if status in ("Canceled", "Cancelled", "Corrective"):
        return BillStatus.void
    total = decimal(raw.get("totalAmountIncludingTax"))
    if remaining <= 0:
        return BillStatus.paid
    if remaining < total:
        return BillStatus.partially_paid
    return BillStatus.open


def bill_from_bc(
    raw: JSONObject,
    *,
    home_currency: str,
    reference: str | None = None,
    paid: Decimal | None = None,
) -> Bill:
    """A purchase invoice as a bill; `paid` is what the payments remit can see settled of it
    (its balance where the invoice shows no remaining amount)."""
    raw_lines = list(raw.get("purchaseInvoiceLines") or [])
    lines = []
    for line in raw_lines:
        if line.get("lineType") == "Comment":
            continue
        tracking = [
            TrackingRef(
                kind=tracking_kind(str(d.get("code") or "")),
                id=str(d.get("valueId")),
                name=d.get("valueDisplayName") or d.get("valueCode") or None,
            )
            for d in line.get("dimensionSetLines") or []
        ]
        account_id = str(line.get("accountId") or "")
        lines.append(
            BillLine(
                description=line.get("description") or None,
                amount=decimal(line.get("amountExcludingTax")),
                quantity=decimal(line.get("quantity")),
                unit_amount=decimal(line.get("directUnitCost")),
                account_id=account_id if account_id and account_id != EMPTY_GUID else None,
                tracking=tracking,
                tax_code_id=line.get("taxCode") or None,
            )
        )
    if not lines:
        # A bill has at least one line in the unified model; an empty BC draft shows as zero.
        lines = [BillLine(description=None, amount=Decimal("0"))]
    total = decimal(raw.get("totalAmountIncludingTax"))
    balance = remaining_amount(raw, paid)
    status = bill_status(raw, balance)
    return Bill(
        id=str(raw["id"]),
        vendor_id=str(raw.get("vendorId")),
        vendor_name=raw.get("vendorName") or None,
        document_number=raw.get("vendorInvoiceNumber") or None,
        issue_date=date.fromisoformat(str(raw["invoiceDate"])),
        due_date=date.fromisoformat(str(raw["dueDate"])) if raw.get("dueDate") else None,
        currency=str(raw.get("currencyCode") or home_currency),
        lines=lines,
        tax_amount=decimal(raw.get("totalTaxAmount")),
        total=max(total, Decimal("0")),
        balance=balance if status is not BillStatus.draft else total,
        status=status,
        reference=reference if reference is not None else reference_of(raw_lines),
        updated_at=parse_datetime(raw.get("lastModifiedDateTime")),
    )
