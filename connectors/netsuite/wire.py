"""Pure mapping between NetSuite REST record JSON and the unified accounting model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from accounting import (
    Account,
    AccountCategory,
    AccountType,
    Attachment,
    Bill,
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    CreditApplication,
    Currency,
    Customer,
    ExchangeRate,
    Item,
    ItemType,
    PaymentTerms,
    Subsidiary,
    TaxRate,
    TrackingCategory,
    TrackingKind,
    TrackingRef,
    Vendor,
    VendorBankAccount,
    VendorChanges,
)
from connectors import decimal_json
from connectors.base import BillHeader
from connectors.decimal_json import loads  # noqa: F401  (re-exported)

JSON = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# JSON without floats
# ---------------------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """NetSuite JSON: Decimal written exactly, and no floats at all (TypeError): on this wire
    any number may be money."""
    return decimal_json.dumps(value, floats=False)


# ---------------------------------------------------------------------------------------------
# Keys: externalId from idempotency keys, remit's reference carried in the memo
# ---------------------------------------------------------------------------------------------

EXTERNAL_ID_PREFIX = "remit-"


def external_id_for(idempotency_key: str) -> str:
    """A NetSuite externalId for an idempotency key.

    Hashed so any key fits NetSuite's externalId length limit and the `eid:` path segment
    needs no escaping; the same key always gives the same id, which is what makes the
    `PUT .../eid:{externalId}` upsert safe to repeat.
    """
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"{EXTERNAL_ID_PREFIX}{digest}"


_REFERENCE_TAG = re.compile(r"\s*\[remit-ref:(?P<ref>.*)\]\Z", re.DOTALL)


def reference_tag(reference: str) -> str:
    """The text put in a transaction's memo so the record can be found by reference."""
    return f"[remit-ref:{reference}]"


def memo_with_reference(memo: str | None, reference: str | None) -> str | None:
    if not reference:
        return memo
    tag = reference_tag(reference)
    return f"{memo} {tag}" if memo else tag


def split_memo(stored: str | None) -> tuple[str | None, str | None]:
    """(memo as the person wrote it, remit reference) from a stored memo."""
    if not stored:
        return None, None
    match = _REFERENCE_TAG.search(stored)
    if not match:
        return stored, None
    memo = stored[: match.start()] or None
    return memo, match.group("ref")


def q_string(value: str) -> str:
    """A string literal for the record service's `q` filter."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def id_from_location(location: str) -> str:
    """The new record's internal id from a 204's `Location` header."""
    return location.rstrip("/").rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------
# Small readers
# ---------------------------------------------------------------------------------------------


def ref(record_id: str | None) -> JSON | None:
    return {"id": str(record_id)} if record_id is not None else None


def ref_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("id") is not None:
        return str(value["id"])
    return None


def ref_name(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("refName") is not None:
        return str(value["refName"])
    return None


def sublist_items(record: Mapping[str, Any], name: str) -> list[JSON]:
    sublist = record.get(name)
    if isinstance(sublist, Mapping):
        items = sublist.get("items")
        if isinstance(items, list):
            return [item for item in items if isinstance(item, dict)]
    return []


def decimal(value: Any, default: Decimal | None = None) -> Decimal | None:
    if value is None or value == "":
        return default
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def parse_date(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def parse_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def compact(record: Mapping[str, Any]) -> JSON:
    """Drop unset fields so NetSuite keeps its own defaults for them."""
    return {k: v for k, v in record.items() if v is not None}


class CurrencyMap:
    """NetSuite currency internal ids <-> ISO 4217 codes (the currency record's `symbol`)."""

    def __init__(self, by_id: Mapping[str, str]) -> None:
        self.code_by_id = {str(k): v.upper() for k, v in by_id.items()}
        self.id_by_code = {v: k for k, v in self.code_by_id.items()}

    def code(self, value: Any) -> str:
        currency_id = ref_id(value)
        if currency_id is None or currency_id not in self.code_by_id:
            raise KeyError(f"unknown NetSuite currency {value!r}")
        return self.code_by_id[currency_id]

    def id(self, code: str) -> str:
        if code.upper() not in self.id_by_code:
            raise KeyError(code)
        return self.id_by_code[code.upper()]


# ---------------------------------------------------------------------------------------------
# Accounts and tracking
# ---------------------------------------------------------------------------------------------

# NetSuite `acctType` ids -> the unified type. Non-posting and statistical accounts carry no
# money and are left out of the chart remit shows.
ACCOUNT_TYPES: dict[str, tuple[AccountType, AccountCategory]] = {
    "Bank": (AccountType.bank, AccountCategory.asset),
    "AcctRec": (AccountType.accounts_receivable, AccountCategory.asset),
    "UnbilledRec": (AccountType.accounts_receivable, AccountCategory.asset),
    "OthCurrAsset": (AccountType.other_current_asset, AccountCategory.asset),
    "DeferExpense": (AccountType.other_current_asset, AccountCategory.asset),
    "FixedAsset": (AccountType.fixed_asset, AccountCategory.asset),
    "OthAsset": (AccountType.other_current_asset, AccountCategory.asset),
    "AcctPay": (AccountType.accounts_payable, AccountCategory.liability),
    "CredCard": (AccountType.credit_card, AccountCategory.liability),
    "OthCurrLiab": (AccountType.other_current_liability, AccountCategory.liability),
    "DeferRevenue": (AccountType.other_current_liability, AccountCategory.liability),
    "LongTermLiab": (AccountType.long_term_liability, AccountCategory.liability),
    "Equity": (AccountType.equity, AccountCategory.equity),
    "Income": (AccountType.income, AccountCategory.income),
    "OthIncome": (AccountType.income, AccountCategory.income),
    "COGS": (AccountType.cost_of_goods_sold, AccountCategory.expense),
    "Expense": (AccountType.expense, AccountCategory.expense),
    "OthExpense": (AccountType.other_expense, AccountCategory.expense),
}


def account_from_netsuite(record: Mapping[str, Any], currencies: CurrencyMap) -> Account | None:
    kind = ACCOUNT_TYPES.get(ref_id(record.get("acctType")) or "")
    if kind is None:
        return None
    currency_id = ref_id(record.get("currency"))
    return Account(
        id=str(record["id"]),
        name=str(record.get("acctName") or record.get("fullName") or ""),
        number=record.get("acctNumber") or None,
        category=kind[1],
        account_type=kind[0],
        currency=currencies.code_by_id.get(currency_id) if currency_id else None,
        active=not record.get("isInactive", False),
    )


TRACKING_RECORDS: dict[str, TrackingKind] = {
    "department": TrackingKind.department,
    "classification": TrackingKind.class_,
    "location": TrackingKind.location,
}

# The transaction field each tracking kind is written to (classification is `class` there).
TRACKING_FIELDS: dict[TrackingKind, str] = {
    TrackingKind.department: "department",
    TrackingKind.class_: "class",
    TrackingKind.location: "location",
}


def tracking_from_netsuite(record_type: str, record: Mapping[str, Any]) -> TrackingCategory:
    return TrackingCategory(
        id=str(record["id"]),
        kind=TRACKING_RECORDS[record_type],
        name=str(record.get("name") or ""),
        parent_id=ref_id(record.get("parent")),
        active=not record.get("isInactive", False),
    )


# ---------------------------------------------------------------------------------------------
# Vendors
# ---------------------------------------------------------------------------------------------


def vendor_from_netsuite(record: Mapping[str, Any], currencies: CurrencyMap) -> Vendor:
    name = record.get("companyName")
    if not name and record.get("isPerson"):
        name = " ".join(p for p in (record.get("firstName"), record.get("lastName")) if p)
    currency_id = ref_id(record.get("currency"))
    return Vendor(
        id=str(record["id"]),
        name=str(name or record.get("entityId") or ""),
        legal_name=record.get("legalName") or None,
        tax_id=record.get("taxIdNum") or None,
        email=record.get("email") or None,
        currency=currencies.code_by_id.get(currency_id) if currency_id else None,
        default_expense_account_id=ref_id(record.get("expenseAccount")),
        active=not record.get("isInactive", False),
        updated_at=parse_datetime(record.get("lastModifiedDate")),
    )


def vendor_to_netsuite(
    vendor: Vendor, *, currencies: CurrencyMap, subsidiary_id: str, reference: str
) -> JSON:
    return compact(
        {
            "companyName": vendor.name,
            "legalName": vendor.legal_name,
            "taxIdNum": vendor.tax_id,
            "email": vendor.email,
            "currency": ref(currencies.id(vendor.currency)) if vendor.currency else None,
            "expenseAccount": ref(vendor.default_expense_account_id),
            "subsidiary": ref(subsidiary_id),
            "isInactive": not vendor.active,
            "comments": reference_tag(reference),
        }
    )


def vendor_changes_to_netsuite(changes: VendorChanges) -> JSON:
    return compact(
        {
            "companyName": changes.name,
            "legalName": changes.legal_name,
            "taxIdNum": changes.tax_id,
            "email": changes.email,
            "isInactive": None if changes.active is None else not changes.active,
        }
    )


# ---------------------------------------------------------------------------------------------
# Expense lines (bills and vendor credits)
# ---------------------------------------------------------------------------------------------


def line_from_netsuite(item: Mapping[str, Any]) -> BillLine:
    tracking = [
        TrackingRef(kind=kind, id=line_ref, name=ref_name(item.get(field)))
        for kind, field in TRACKING_FIELDS.items()
        if (line_ref := ref_id(item.get(field))) is not None
    ]
    return BillLine(
        description=item.get("memo") or None,
        amount=decimal(item.get("amount"), Decimal("0")),
        account_id=ref_id(item.get("account")),
        tracking=tracking,
        tax_code_id=ref_id(item.get("taxCode")),
    )


def line_to_netsuite(line: BillLine) -> JSON:
    if not line.account_id:
        raise ValueError("a NetSuite expense line needs an account: set BillLine.account_id")
    item: JSON = {"account": ref(line.account_id), "amount": line.amount}
    if line.description:
        item["memo"] = line.description
    if line.tax_code_id:
        # The tax code (a salesTaxItem) on the expense line; the bill's taxTotal, when given,
        # is the document's tax and overrides what NetSuite computes from the codes.
        item["taxCode"] = ref(line.tax_code_id)
    for tracking in line.tracking:
        item[TRACKING_FIELDS[tracking.kind]] = ref(tracking.id)
    return item


# ---------------------------------------------------------------------------------------------
# Bills
# ---------------------------------------------------------------------------------------------

# vendorBill `status` ids (search codes VendBill:A..) and the labels NetSuite shows.
_BILL_STATUS_BY_LABEL = {
    "open": BillStatus.open,
    "paid in full": BillStatus.paid,
    "pending approval": BillStatus.draft,
    "rejected": BillStatus.void,
    "cancelled": BillStatus.void,
    "payment in transit": BillStatus.open,
}
_BILL_STATUS_BY_ID = {
    "a": BillStatus.open,
    "b": BillStatus.paid,
    "c": BillStatus.void,
    "d": BillStatus.draft,
    "e": BillStatus.void,
    "f": BillStatus.open,
}


def bill_status(record: Mapping[str, Any], total: Decimal, remaining: Decimal | None) -> BillStatus:
    status = record.get("status")
    label = (ref_name(status) or "").lower()
    code = (ref_id(status) or (status if isinstance(status, str) else "") or "").lower()
    found = _BILL_STATUS_BY_LABEL.get(label) or _BILL_STATUS_BY_ID.get(code)
    if found is None:
        found = BillStatus.paid if remaining == 0 else BillStatus.open
    if found is BillStatus.open and remaining is not None and 0 < remaining < total:
        return BillStatus.partially_paid
    return found


def bill_from_netsuite(
    record: Mapping[str, Any],
    currencies: CurrencyMap,
    terms: Mapping[str, PaymentTerms | None] | None = None,
) -> Bill:
    """A vendorBill; `terms` maps term internal ids to the terms they are (the bill carries
    only a reference to its `term` record)."""
    lines = [line_from_netsuite(item) for item in sublist_items(record, "expense")]
    tax = decimal(record.get("taxTotal"), Decimal("0")) or Decimal("0")
    lines_total = sum((line.amount for line in lines), Decimal("0"))
    total = decimal(record.get("total"), lines_total + tax) or Decimal("0")
    remaining = decimal(record.get("amountRemaining"))
    memo, reference = split_memo(record.get("memo"))
    return Bill(
        id=str(record["id"]),
        vendor_id=ref_id(record.get("entity")) or "",
        vendor_name=ref_name(record.get("entity")),
        document_number=record.get("tranId") or None,
        issue_date=parse_date(record.get("tranDate")) or date.today(),
        due_date=parse_date(record.get("dueDate")),
        currency=currencies.code(record.get("currency")),
        exchange_rate=decimal(record.get("exchangeRate")),
        terms=(terms or {}).get(ref_id(record.get("terms")) or ""),
        lines=lines,
        tax_amount=tax,
        total=total,
        balance=remaining,
        status=bill_status(record, total, remaining),
        memo=memo,
        reference=reference,
        updated_at=parse_datetime(record.get("lastModifiedDate")),
    )


def bill_header_from_suiteql(row: Mapping[str, Any], currencies: CurrencyMap) -> BillHeader:
    """A `transaction` row of type VendBill (SuiteQL answers plain values, not references)."""
    total = decimal(row.get("foreigntotal"), Decimal("0")) or Decimal("0")
    remaining = decimal(row.get("foreignamountunpaid"))
    _, reference = split_memo(row.get("memo"))
    return BillHeader(
        id=str(row["id"]),
        document_number=row.get("tranid") or None,
        issue_date=parse_suiteql_date(row.get("trandate")) or date.today(),
        currency=currencies.code({"id": row.get("currency")}),
        total=total,
        status=bill_status({"status": {"id": row.get("status")}}, total, remaining),
        reference=reference,
    )


def bill_to_netsuite(
    bill: Bill,
    *,
    currencies: CurrencyMap,
    subsidiary_id: str,
    ap_account_id: str | None,
    reference: str,
    term_id: str | None = None,
) -> JSON:
    return compact(
        {
            "entity": ref(bill.vendor_id),
            "subsidiary": ref(subsidiary_id),
            "account": ref(ap_account_id),
            "terms": ref(term_id),
            "tranId": bill.document_number,
            "tranDate": bill.issue_date.isoformat(),
            "dueDate": bill.due_date.isoformat() if bill.due_date else None,
            "currency": ref(currencies.id(bill.currency)),
            "exchangeRate": bill.exchange_rate,
            "memo": memo_with_reference(bill.memo, reference),
            # Tax is carried as a body total: remit bills arrive with tax already computed,
            # and the emulator's company has no tax codes to derive it from.
            "taxTotal": bill.tax_amount if bill.tax_amount else None,
            "expense": {"items": [line_to_netsuite(line) for line in bill.lines]},
        }
    )


# ---------------------------------------------------------------------------------------------
# Payments and credits
# ---------------------------------------------------------------------------------------------


def payment_lines(record: Mapping[str, Any]) -> list[BillPaymentLine]:
    """A vendorPayment's applied lines: cash `amount` and discount taken (`disc`) per bill."""
    return [
        BillPaymentLine(
            bill_id=ref_id(item.get("doc")) or "",
            amount=decimal(item.get("amount")),
            discount=decimal(item.get("disc"), Decimal("0")),
        )
        for item in sublist_items(record, "apply")
        if item.get("apply", True) and (decimal(item.get("amount"), Decimal("0")) or 0) > 0
    ]


def is_voided(record: Mapping[str, Any]) -> bool:
    """Status VendPymt:V "Voided" (REST answers the letter as the id and the label)."""
    status = record.get("status")
    code = ref_id(status) or (status if isinstance(status, str) else "")
    return code.upper() in ("V", "VENDPYMT:V") or (ref_name(status) or "").lower() == "voided"


def payment_from_netsuite(record: Mapping[str, Any], currencies: CurrencyMap) -> BillPayment:
    lines = payment_lines(record)
    memo, reference = split_memo(record.get("memo"))
    total = decimal(record.get("total")) or sum((line.amount for line in lines), Decimal("0"))
    return BillPayment(
        id=str(record["id"]),
        vendor_id=ref_id(record.get("entity")) or "",
        payment_date=parse_date(record.get("tranDate")) or date.today(),
        currency=currencies.code(record.get("currency")),
        exchange_rate=decimal(record.get("exchangeRate")),
        source_account_id=ref_id(record.get("account")) or "",
        total=total,
        lines=lines,
        reference=reference,
        memo=memo,
        voided=is_voided(record),
        updated_at=parse_datetime(record.get("lastModifiedDate")),
    )


def payment_to_netsuite(
    payment: BillPayment,
    *,
    currencies: CurrencyMap,
    subsidiary_id: str,
    ap_account_id: str | None,
    reference: str,
) -> JSON:
    return compact(
        {
            "entity": ref(payment.vendor_id),
            "subsidiary": ref(subsidiary_id),
            "account": ref(payment.source_account_id),
            "apAcct": ref(ap_account_id),
            "tranDate": payment.payment_date.isoformat(),
            "currency": ref(currencies.id(payment.currency)),
            "exchangeRate": payment.exchange_rate,
            "memo": memo_with_reference(payment.memo, reference),
            "apply": {"items": [apply_line(line) for line in payment.lines]},
        }
    )


def apply_line(line: BillPaymentLine) -> JSON:
    """One bill on a vendorPayment's apply sublist; a discount taken is the line's `disc`."""
    item: JSON = {"doc": ref(line.bill_id), "apply": True, "amount": line.amount}
    if line.discount:
        item["disc"] = line.discount
    return item


def credit_from_netsuite(record: Mapping[str, Any], currencies: CurrencyMap) -> BillCreditMemo:
    lines = [line_from_netsuite(item) for item in sublist_items(record, "expense")]
    _, reference = split_memo(record.get("memo"))
    total = decimal(record.get("total")) or sum((line.amount for line in lines), Decimal("0"))
    return BillCreditMemo(
        id=str(record["id"]),
        vendor_id=ref_id(record.get("entity")) or "",
        document_number=record.get("tranId") or None,
        issue_date=parse_date(record.get("tranDate")) or date.today(),
        currency=currencies.code(record.get("currency")),
        lines=lines,
        total=total,
        remaining=decimal(record.get("unapplied")),
        reference=reference,
    )


def credit_to_netsuite(
    memo: BillCreditMemo,
    *,
    currencies: CurrencyMap,
    subsidiary_id: str,
    ap_account_id: str | None,
    reference: str,
) -> JSON:
    return compact(
        {
            "entity": ref(memo.vendor_id),
            "subsidiary": ref(subsidiary_id),
            "account": ref(ap_account_id),
            "tranId": memo.document_number,
            "tranDate": memo.issue_date.isoformat(),
            "currency": ref(currencies.id(memo.currency)),
            "memo": reference_tag(reference),
            "expense": {"items": [line_to_netsuite(line) for line in memo.lines]},
        }
    )


def credit_applied_to(record: Mapping[str, Any], bill_id: str) -> Decimal | None:
    """How much of a vendor credit is applied to one bill (its `apply` line for that doc)."""
    for item in sublist_items(record, "apply"):
        if ref_id(item.get("doc")) == bill_id and item.get("apply", True):
            return decimal(item.get("amount"))
    return None


def credit_application(record: Mapping[str, Any], bill_id: str) -> CreditApplication | None:
    """The credit's application to one bill, if it has one in effect (NetSuite keeps it as an
    apply line of the credit, with no id of its own)."""
    amount = credit_applied_to(record, bill_id)
    if not amount or amount <= 0:
        return None
    return CreditApplication(
        id=None, credit_memo_id=str(record["id"]), bill_id=bill_id, amount=amount
    )


# ---------------------------------------------------------------------------------------------
# Terms
# ---------------------------------------------------------------------------------------------


def terms_from_netsuite(record: Mapping[str, Any]) -> PaymentTerms | None:
    """A `term` record; date-driven terms (due on a day of the month) have no day counts to
    give, so they read as None."""
    if record.get("dateDriven"):
        return None
    return PaymentTerms(
        name=record.get("name") or None,
        net_days=int(decimal(record.get("daysUntilNetDue"), Decimal("0")) or 0),
        discount_percent=decimal(record.get("discountPercent"), Decimal("0")) or Decimal("0"),
        discount_days=int(decimal(record.get("daysUntilExpiry"), Decimal("0")) or 0),
    )


def terms_match(record: Mapping[str, Any], terms: PaymentTerms) -> bool:
    """Whether an active, day-count `term` record is the same terms (its name aside)."""
    if record.get("isInactive"):
        return False
    found = terms_from_netsuite(record)
    return found is not None and _day_counts(found) == _day_counts(terms)


def _day_counts(terms: PaymentTerms) -> tuple[int, Decimal, int]:
    # Without a discount the discount window means nothing.
    return (
        terms.net_days,
        terms.discount_percent,
        terms.discount_days if terms.discount_percent else 0,
    )


def term_name(terms: PaymentTerms) -> str:
    """The name NetSuite's own terms use: "Net 30", "2% 10 Net 30"."""
    if terms.discount_percent:
        percent = f"{terms.discount_percent.normalize():f}"
        return f"{percent}% {terms.discount_days} Net {terms.net_days}"
    return f"Net {terms.net_days}"


def term_external_id(terms: PaymentTerms) -> str:
    """The externalId remit gives a `term` it creates: one per distinct set of terms, so
    writing the same terms again (or from two workers at once) upserts the same record."""
    percent = f"{terms.discount_percent.normalize():f}".replace(".", "_")
    discount_days = terms.discount_days if terms.discount_percent else 0
    return f"{EXTERNAL_ID_PREFIX}terms-{percent}-{discount_days}-{terms.net_days}"


def term_to_netsuite(terms: PaymentTerms, name: str) -> JSON:
    return {
        "name": name,
        "discountPercent": terms.discount_percent,
        "daysUntilExpiry": terms.discount_days if terms.discount_percent else 0,
        "daysUntilNetDue": terms.net_days,
        "dateDriven": False,
        "isInactive": False,
    }


# ---------------------------------------------------------------------------------------------
# Currencies
# ---------------------------------------------------------------------------------------------


def exchange_rate_from_suiteql(
    row: Mapping[str, Any], *, currency: str, home_currency: str
) -> ExchangeRate:
    """A `currencyrate` row: base-currency units per one unit of the transaction currency,
    which is remit's convention as it is."""
    return ExchangeRate(
        currency=currency,
        home_currency=home_currency,
        rate=decimal(row.get("exchangerate")),
        as_of=parse_suiteql_date(row.get("effectivedate")) or date.min,
        source="netsuite",
    )


def parse_suiteql_date(value: Any) -> date | None:
    """A date from SuiteQL: ISO when selected with TO_CHAR(col, 'YYYY-MM-DD'), else the user's
    date format (NetSuite's default M/D/YYYY)."""
    if not value:
        return None
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    month, day, year = (int(part) for part in text.split(" ")[0].split("/"))
    return date(year, month, day)


# ---------------------------------------------------------------------------------------------
# Vendor bank details (Electronic Bank Payments SuiteApp)
# ---------------------------------------------------------------------------------------------

BANK_DETAILS_RECORD = "customrecord_2663_entity_bank_details"
BANK_DETAILS_COLUMNS = (
    "id",
    "name",
    "custrecord_2663_entity_bank_type",
    "custrecord_2663_entity_acct_name",
    "custrecord_2663_entity_acct_no",
    "custrecord_2663_entity_bank_no",
    "custrecord_2663_entity_iban",
    "custrecord_2663_entity_swift",
    "custrecord_2663_entity_bank_name",
    "custrecord_2663_entity_country_code",
)
PRIMARY_BANK_TYPE = "1"  # customlist_2663_bank_type: 1 Primary, 2 Secondary


def bank_account_from_suiteql(row: Mapping[str, Any]) -> VendorBankAccount:
    """One `customrecord_2663_entity_bank_details` row (list fields answer their id)."""

    def text(column: str) -> str | None:
        value = row.get(f"custrecord_2663_entity_{column}")
        return str(value).strip() or None if value is not None else None

    country = text("country_code")
    return VendorBankAccount(
        account_name=text("acct_name"),
        account_number=text("acct_no"),
        routing_number=text("bank_no"),
        iban=(text("iban") or "").replace(" ", "").upper() or None,
        bic=text("swift"),
        bank_name=text("bank_name"),
        country=country.upper() if country and len(country) == 2 else None,
        primary=str(row.get("custrecord_2663_entity_bank_type") or "") == PRIMARY_BANK_TYPE,
        platform_ref=f"{BANK_DETAILS_RECORD}:{row.get('id')}",
    )


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

FILE_TYPES: dict[str, str] = {
    "application/pdf": "PDF",
    "image/png": "PNGIMAGE",
    "image/jpeg": "JPGIMAGE",
    "image/gif": "GIFIMAGE",
    "image/tiff": "TIFFIMAGE",
    "text/plain": "PLAINTEXT",
    "text/csv": "CSV",
    "text/html": "HTMLDOC",
    "application/xml": "XMLDOC",
    "text/xml": "XMLDOC",
    "application/json": "JSON",
    "application/zip": "ZIP",
    "application/msword": "WORD",
    "application/vnd.ms-excel": "EXCEL",
    "application/octet-stream": "MISCBINARY",
}
CONTENT_TYPES: dict[str, str] = {}
for _content_type, _file_type in FILE_TYPES.items():
    CONTENT_TYPES.setdefault(_file_type, _content_type)


def file_type_for(content_type: str) -> str:
    return FILE_TYPES.get(content_type.split(";")[0].strip().lower(), "MISCBINARY")


def content_type_for(file_type: str | None) -> str:
    return CONTENT_TYPES.get((file_type or "").upper(), "application/octet-stream")


# ---------------------------------------------------------------------------------------------
# The rest of the books, from SuiteQL rows (plain values: a reference is its id, a checkbox
# 'T' / 'F', a date the user's format unless selected with TO_CHAR)
# ---------------------------------------------------------------------------------------------

SUITEQL_MOMENT = "YYYY-MM-DD HH24:MI:SS"
"""The TO_CHAR format the mirror selects `lastmodifieddate` with (read as UTC)."""


def checkbox(value: Any) -> bool:
    """A SuiteQL checkbox ('T' / 'F'; the record service answers booleans)."""
    return value is True or str(value).upper() in ("T", "TRUE")


def parse_suiteql_moment(value: Any) -> datetime | None:
    """A moment selected as TO_CHAR(col, SUITEQL_MOMENT), or ISO; UTC when it names no zone."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(row: Mapping[str, Any], column: str) -> str | None:
    value = row.get(column)
    return str(value).strip() or None if value is not None else None


def customer_from_suiteql(row: Mapping[str, Any], currencies: CurrencyMap) -> Customer:
    """A `customer` row; a person's name is first and last name, as NetSuite shows it."""
    name = _text(row, "companyname")
    if not name and checkbox(row.get("isperson")):
        name = " ".join(p for p in (_text(row, "firstname"), _text(row, "lastname")) if p)
    currency_id = _text(row, "currency")
    return Customer(
        id=str(row["id"]),
        name=name or _text(row, "entityid") or "",
        email=_text(row, "email"),
        currency=currencies.code_by_id.get(currency_id) if currency_id else None,
        active=not checkbox(row.get("isinactive")),
        updated_at=parse_suiteql_moment(row.get("lastmodified")),
    )


# The `item` table's itemtype values that are things a bill line buys.
ITEM_TYPES: dict[str, ItemType] = {
    "InvtPart": ItemType.inventory,
    "NonInvtPart": ItemType.non_inventory,
    "Service": ItemType.service,
}


def item_from_suiteql(row: Mapping[str, Any]) -> Item:
    """An `item` row: `itemid` is the item's unique name/number, `displayname` what people
    see (the name, when there is one; the number is then the SKU)."""
    number = _text(row, "itemid") or ""
    display = _text(row, "displayname")
    return Item(
        id=str(row["id"]),
        name=display or number,
        sku=number if display else None,
        description=_text(row, "purchasedescription") or _text(row, "description"),
        type=ITEM_TYPES.get(str(row.get("itemtype") or ""), ItemType.other),
        expense_account_id=_text(row, "expenseaccount"),
        income_account_id=_text(row, "incomeaccount"),
        purchase_cost=decimal(row.get("cost")),
        active=not checkbox(row.get("isinactive")),
        updated_at=parse_suiteql_moment(row.get("lastmodified")),
    )


def subsidiary_from_suiteql(row: Mapping[str, Any], currencies: CurrencyMap) -> Subsidiary:
    currency_id = _text(row, "currency")
    country = _text(row, "country")
    return Subsidiary(
        id=str(row["id"]),
        name=_text(row, "name") or "",
        parent_id=_text(row, "parent"),
        currency=currencies.code_by_id.get(currency_id) if currency_id else None,
        country=country.upper() if country and len(country) == 2 else None,
        active=not checkbox(row.get("isinactive")),
        updated_at=parse_suiteql_moment(row.get("lastmodified")),
    )


def currency_from_suiteql(row: Mapping[str, Any]) -> Currency:
    """A `currency` row: its `symbol` is the ISO 4217 code."""
    return Currency(
        id=str(row["id"]),
        code=str(row.get("symbol") or ""),
        name=_text(row, "name"),
        home=checkbox(row.get("isbasecurrency")),
        active=not checkbox(row.get("isinactive")),
        updated_at=parse_suiteql_moment(row.get("lastmodified")),
    )


def tax_rate_from_suiteql(row: Mapping[str, Any]) -> TaxRate:
    """A SuiteTax tax code (`salestaxitem` row); its rate may be written "8.25%"."""
    rate = _text(row, "rate")
    return TaxRate(
        id=str(row["id"]),
        name=_text(row, "description") or _text(row, "name") or "",
        code=_text(row, "name") or _text(row, "itemid"),
        rate_percent=decimal(rate.rstrip("%").strip()) if rate else None,
        active=not checkbox(row.get("isinactive")),
        updated_at=parse_suiteql_moment(row.get("lastmodified")),
    )


def attachment_from_suiteql(row: Mapping[str, Any], bill_id: str) -> Attachment:
    """A `file` row attached to the bill."""
    return Attachment(
        id=str(row["id"]),
        bill_id=bill_id,
        file_name=_text(row, "name") or "",
        content_type=content_type_for(_text(row, "filetype")),
        size=int(decimal(row.get("filesize"), Decimal("0")) or 0),
    )


def bill_record_from_suiteql(
    header: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    *,
    vendor_name: str | None,
    tracking_names: Mapping[tuple[str, str], str],
) -> JSON:
    """A vendorBill in the record service's shape from its SuiteQL rows: the `transaction`
    row (dates selected as TO_CHAR(col, 'YYYY-MM-DD')) and its expense `transactionline`
    rows; `tracking_names` maps (line field, id) to the department's, class's or location's
    name (the record service's refName). bill_from_netsuite then reads it as it reads a GET."""

    def ref_of(value: Any, name: str | None = None) -> JSON | None:
        if value is None or value == "":
            return None
        return {"id": str(value), **({"refName": name} if name else {})}

    items: list[JSON] = []
    for line in lines:
        item: JSON = {
            "account": ref_of(line.get("expenseaccount")),
            "amount": decimal(line.get("foreignamount"), Decimal("0")),
            "memo": line.get("memo"),
            "taxCode": ref_of(line.get("taxcode")),
        }
        for field in TRACKING_FIELDS.values():
            value = line.get(field)
            if value is not None and value != "":
                item[field] = ref_of(value, tracking_names.get((field, str(value))))
        items.append(compact(item))
    moment = parse_suiteql_moment(header.get("lastmodified"))
    return compact(
        {
            "id": str(header["id"]),
            "entity": ref_of(header.get("entity"), vendor_name),
            "tranId": header.get("tranid"),
            "tranDate": header.get("trandate"),
            "dueDate": header.get("duedate"),
            "currency": ref_of(header.get("currency")),
            "exchangeRate": header.get("exchangerate"),
            "terms": ref_of(header.get("terms")),
            "memo": header.get("memo"),
            "status": ref_of(header.get("status")),
            "total": header.get("foreigntotal"),
            "amountRemaining": header.get("foreignamountunpaid"),
            "taxTotal": header.get("taxtotal"),
            "lastModifiedDate": moment.isoformat() if moment else None,
            "expense": {"items": items},
        }
    )
