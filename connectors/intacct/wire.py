"""Sage Intacct's XML Web Services wire: the request envelope, answers, errors, and the
mapping between Intacct's records (VENDOR, GLACCOUNT, APBILL, APPYMT, ...) and remit's model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET

from accounting import (
    Account,
    AccountCategory,
    AccountType,
    Bill,
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    NewAccount,
    PaymentTerms,
    TrackingCategory,
    TrackingKind,
    TrackingRef,
    Vendor,
    VendorBankAccount,
    VendorChanges,
)
from accounting.model import ACCOUNT_CATEGORY

PLATFORM_NAME = "intacct"
DTD_VERSION = "3.0"
DATE_FORMAT = "%m/%d/%Y"
TIMESTAMP_FORMAT = "%m/%d/%Y %H:%M:%S"
CENT = Decimal("0.01")
CONTROL_ID_MAX = 256
REFERENCE_PREFIX = "remit:"
DIGEST_PREFIX = "remit#"
# How much of DOCNUMBER remit uses for its reference in clear (the field's real length is
# unverified; longer references are written as a digest and not readable back).
REFERENCE_MAX = 40
CREDIT_TAG = "[remit {}]"

# Intacct's dimension fields on a bill line, and remit's tracking kinds for them. PROJECTID is
# a dimension too, but remit's model has no project kind: the connector neither lists nor
# writes projects.
DIMENSION_FIELDS: dict[TrackingKind, str] = {
    TrackingKind.department: "DEPARTMENTID",
    TrackingKind.location: "LOCATIONID",
    TrackingKind.class_: "CLASSID",
}
DIMENSION_OBJECTS: dict[TrackingKind, tuple[str, str, str]] = {
    # kind: (object, id field, name field)
    TrackingKind.department: ("DEPARTMENT", "DEPARTMENTID", "TITLE"),
    TrackingKind.location: ("LOCATION", "LOCATIONID", "NAME"),
    TrackingKind.class_: ("CLASS", "CLASSID", "NAME"),
}

VENDOR_FIELDS = (
    "RECORDNO",
    "VENDORID",
    "NAME",
    "STATUS",
    "TAXID",
    "CURRENCY",
    "DEFAULTEXPENSEACCOUNT",
    "DISPLAYCONTACT.EMAIL1",
    "DISPLAYCONTACT.COMPANYNAME",
    "WHENMODIFIED",
)
BILL_HEADER_FIELDS = (
    "RECORDNO",
    "VENDORID",
    "RECORDID",
    "WHENCREATED",
    "CURRENCY",
    "TRX_TOTALENTERED",
    "TRX_TOTALDUE",
    "STATE",
    "DOCNUMBER",
    "WHENMODIFIED",
)

# Intacct's account categories (the emulator's names; the real list is unverified) to types.
CATEGORY_TYPES: dict[str, AccountType] = {
    "cash and cash equivalents": AccountType.bank,
    "cash": AccountType.bank,
    "accounts receivable": AccountType.accounts_receivable,
    "other current assets": AccountType.other_current_asset,
    "fixed assets": AccountType.fixed_asset,
    "accounts payable": AccountType.accounts_payable,
    "credit card": AccountType.credit_card,
    "other current liabilities": AccountType.other_current_liability,
    "long-term liabilities": AccountType.long_term_liability,
    "equity": AccountType.equity,
    "revenue": AccountType.income,
    "cost of sales": AccountType.cost_of_goods_sold,
    "expenses": AccountType.expense,
    "other expenses": AccountType.other_expense,
}
TYPE_CATEGORIES: dict[AccountType, str] = {
    AccountType.other_current_asset: "Other Current Assets",
    AccountType.fixed_asset: "Fixed Assets",
    AccountType.other_current_liability: "Other Current Liabilities",
    AccountType.long_term_liability: "Long-term Liabilities",
    AccountType.equity: "Equity",
    AccountType.income: "Revenue",
    AccountType.cost_of_goods_sold: "Cost of Sales",
    AccountType.expense: "Expenses",
    AccountType.other_expense: "Other Expenses",
}
BILL_STATES: dict[str, BillStatus] = {
    "draft": BillStatus.draft,
    "posted": BillStatus.open,
    "submitted": BillStatus.open,
    "partially approved": BillStatus.open,
    "selected": BillStatus.open,
    "partially paid": BillStatus.partially_paid,
    "paid": BillStatus.paid,
    "reversed": BillStatus.void,
    "reversal": BillStatus.void,
}


class WireError(ValueError):
    """Intacct answered with something remit cannot read (not a refusal)."""


# --- the envelope -----------------------------------------------------------------------------


def control_id(key: str) -> str:
    """A control id from an idempotency key: the key itself when it fits Intacct's 256
    characters, else a digest of it (the same key always gives the same control id)."""
    if 1 <= len(key) <= CONTROL_ID_MAX:
        return key
    return "remit-" + hashlib.sha256(key.encode()).hexdigest()


def reference_tag(reference: str) -> str:
    """What remit writes in DOCNUMBER to find its write again: the reference in clear when
    it fits ("remit:<reference>"), else a digest of it ("remit#<hex>"), the same every retry."""
    clear = REFERENCE_PREFIX + reference
    if len(clear) <= REFERENCE_MAX:
        return clear
    return DIGEST_PREFIX + hashlib.sha256(reference.encode()).hexdigest()[:32]


def reference_of(docnumber: str | None) -> str | None:
    """remit's reference from a DOCNUMBER remit wrote in clear (None for anything else)."""
    if docnumber and docnumber.startswith(REFERENCE_PREFIX):
        return docnumber[len(REFERENCE_PREFIX) :]
    return None


def credit_tag(reference: str) -> str:
    """The tag at the end of a debit memo's description by which remit finds it again."""
    return CREDIT_TAG.format(hashlib.sha256(reference.encode()).hexdigest()[:20])


def quote(value: str) -> str:
    """A readByQuery string literal (single quotes and backslashes escaped with backslashes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def timestamp_literal(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def envelope(
    *,
    sender_id: str,
    sender_password: str,
    controlid: str,
    unique: bool,
    authentication: Element,
    functions: list[Element],
    transaction: bool = False,
) -> bytes:
    request = Element("request")
    control = SubElement(request, "control")
    SubElement(control, "senderid").text = sender_id
    SubElement(control, "password").text = sender_password
    SubElement(control, "controlid").text = controlid
    SubElement(control, "uniqueid").text = "true" if unique else "false"
    SubElement(control, "dtdversion").text = DTD_VERSION
    SubElement(control, "includewhitespace").text = "false"
    operation = SubElement(request, "operation", transaction="true" if transaction else "false")
    operation.append(authentication)
    content = SubElement(operation, "content")
    for n, call in enumerate(functions, start=1):
        SubElement(content, "function", controlid=f"f-{n}").append(call)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + tostring(request, encoding="utf-8")


def login_element(user_id: str, company_id: str, password: str) -> Element:
    authentication = Element("authentication")
    login = SubElement(authentication, "login")
    SubElement(login, "userid").text = user_id
    SubElement(login, "companyid").text = company_id
    SubElement(login, "password").text = password
    return authentication


def session_element(session_id: str) -> Element:
    authentication = Element("authentication")
    SubElement(authentication, "sessionid").text = session_id
    return authentication


def element(tag: str, fields: dict[str, Any] | None = None, **attributes: str) -> Element:
    """<tag> with one child per field (None skipped; dicts nest; lists of (tag, dict) repeat)."""
    out = Element(tag, attrib=dict(attributes))
    for name, value in (fields or {}).items():
        if value is None:
            continue
        child = SubElement(out, name)
        if isinstance(value, dict):
            for sub in _children_of(value):
                child.append(sub)
        elif isinstance(value, list):
            for item_tag, item in value:
                child.append(element(item_tag, item))
        else:
            child.text = format_value(value)
    return out


def _children_of(fields: dict[str, Any]) -> list[Element]:
    return list(element("x", fields))


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timestamp_literal(value)
    if isinstance(value, date):
        return value.strftime(DATE_FORMAT)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# --- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDetail:
    errorno: str
    description: str
    description2: str
    correction: str

    def text(self) -> str:
        parts = [p for p in (self.description, self.description2, self.correction) if p]
        return " ".join(parts) or self.errorno


@dataclass
class Result:
    function: str
    controlid: str
    status: str
    errors: list[ErrorDetail] = field(default_factory=list)
    data: Element | None = None


@dataclass
class Answer:
    control_status: str
    control_errors: list[ErrorDetail]
    auth_status: str | None
    auth_errors: list[ErrorDetail]
    session_timestamp: datetime | None
    results: list[Result]


def errors_of(parent: Element | None) -> list[ErrorDetail]:
    if parent is None:
        return []
    found = parent.find("errormessage")
    if found is None:
        return []
    return [
        ErrorDetail(
            errorno=(e.findtext("errorno") or "").strip(),
            description=(e.findtext("description") or "").strip(),
            description2=(e.findtext("description2") or "").strip(),
            correction=(e.findtext("correction") or "").strip(),
        )
        for e in found.findall("error")
    ]


def parse_answer(content: bytes) -> Answer:
    """An Intacct response document; WireError when it is not one."""
    try:
        root = SafeET.fromstring(content)
    except Exception as exc:  # noqa: BLE001 - defusedxml raises several types
        raise WireError(f"the answer is not XML ({exc})") from exc
    if root.tag != "response":
        raise WireError(f"the answer is <{root.tag}>, not <response>")
    control = root.find("control")
    operation = root.find("operation")
    auth = operation.find("authentication") if operation is not None else None
    stamp = None
    if auth is not None and auth.findtext("sessiontimestamp"):
        try:
            stamp = datetime.fromisoformat(str(auth.findtext("sessiontimestamp")).strip())
        except ValueError:
            stamp = None
    results = []
    for result in operation.findall("result") if operation is not None else []:
        results.append(
            Result(
                function=(result.findtext("function") or "").strip(),
                controlid=(result.findtext("controlid") or "").strip(),
                status=(result.findtext("status") or "").strip(),
                errors=errors_of(result),
                data=result.find("data"),
            )
        )
    return Answer(
        control_status=(control.findtext("status") if control is not None else "") or "failure",
        control_errors=errors_of(root),
        auth_status=(auth.findtext("status") or "").strip() if auth is not None else None,
        auth_errors=errors_of(operation),
        session_timestamp=stamp,
        results=results,
    )


def records(data: Element | None) -> list[Element]:
    return list(data) if data is not None else []


def text(record: Element, name: str) -> str | None:
    """A field's text: a direct child, or a dotted path ("DISPLAYCONTACT.EMAIL1") either
    nested or flattened (readByQuery lists related fields flat)."""
    found = record.find(name.replace(".", "/"))
    if found is None and "." in name:
        found = record.find(name)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value or None


def money(record: Element, name: str) -> Decimal | None:
    value = text(record, name)
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise WireError(f"{record.tag}.{name} is not an amount: {value!r}") from exc


def day(record: Element, name: str) -> date | None:
    value = text(record, name)
    if value is None:
        return None
    for form in (DATE_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(value, form).date()
        except ValueError:
            continue
    raise WireError(f"{record.tag}.{name} is not a date: {value!r}")


def moment(record: Element, name: str) -> datetime | None:
    value = text(record, name)
    if value is None:
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise WireError(f"{record.tag}.{name} is not a timestamp: {value!r}") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cents(amount: Decimal, what: str) -> Decimal:
    """`amount` as Intacct keeps it (two decimals); ValueError when it has finer parts,
    because Intacct would round them away silently."""
    if amount != amount.quantize(CENT):
        raise ValueError(
            f"{what} {amount} has more than two decimals; Intacct keeps amounts to the cent "
            "and would round it: round the amount on the document"
        )
    return amount.quantize(CENT)


# --- vendors ----------------------------------------------------------------------------------


def vendor_from_intacct(record: Element) -> Vendor:
    vendor_id = text(record, "VENDORID")
    name = text(record, "NAME")
    if not vendor_id or not name:
        raise WireError("a VENDOR without VENDORID or NAME")
    return Vendor(
        id=vendor_id,
        name=name,
        legal_name=text(record, "DISPLAYCONTACT.COMPANYNAME"),
        tax_id=text(record, "TAXID"),
        email=text(record, "DISPLAYCONTACT.EMAIL1"),
        currency=text(record, "CURRENCY"),
        default_expense_account_id=text(record, "DEFAULTEXPENSEACCOUNT"),
        active=(text(record, "STATUS") or "active").lower() == "active",
        updated_at=moment(record, "WHENMODIFIED"),
    )


def vendor_to_intacct(vendor: Vendor) -> Element:
    contact: dict[str, Any] = {
        # PRINTAS is the contact's required display name in Intacct.
        "PRINTAS": vendor.legal_name or vendor.name,
        "COMPANYNAME": vendor.legal_name,
        "EMAIL1": vendor.email,
    }
    return element(
        "VENDOR",
        {
            "NAME": vendor.name,
            "STATUS": "active" if vendor.active else "inactive",
            "TAXID": vendor.tax_id,
            "CURRENCY": vendor.currency,
            "DEFAULTEXPENSEACCOUNT": vendor.default_expense_account_id,
            "DISPLAYCONTACT": contact,
        },
    )


def vendor_changes_to_intacct(vendor_id: str, changes: VendorChanges) -> Element:
    contact: dict[str, Any] = {"COMPANYNAME": changes.legal_name, "EMAIL1": changes.email}
    fields: dict[str, Any] = {
        "VENDORID": vendor_id,
        "NAME": changes.name,
        "TAXID": changes.tax_id,
        "STATUS": None if changes.active is None else ("active" if changes.active else "inactive"),
    }
    if any(v is not None for v in contact.values()):
        fields["DISPLAYCONTACT"] = contact
    return element("VENDOR", fields)


def bank_accounts_from_intacct(record: Element) -> list[VendorBankAccount]:
    """The vendor's ACH details (ACHBANKROUTINGNUMBER, ACHACCOUNTNUMBER), where it has them."""
    number = text(record, "ACHACCOUNTNUMBER")
    if not number:
        return []
    return [
        VendorBankAccount(
            account_name=text(record, "DISPLAYCONTACT.COMPANYNAME") or text(record, "NAME"),
            account_number=number,
            routing_number=text(record, "ACHBANKROUTINGNUMBER"),
            country="US",
            platform_ref="VENDOR.ACHACCOUNTNUMBER",
        )
    ]


# --- accounts and dimensions -----------------------------------------------------------------


def account_from_intacct(record: Element) -> Account:
    number = text(record, "ACCOUNTNO")
    if not number:
        raise WireError("a GLACCOUNT without ACCOUNTNO")
    category = (text(record, "CATEGORY") or "").lower()
    account_type = CATEGORY_TYPES.get(category)
    if account_type is None:
        balance_sheet = (text(record, "ACCOUNTTYPE") or "").lower() == "balancesheet"
        credit = (text(record, "NORMALBALANCE") or "").lower() == "credit"
        account_type = {
            (True, False): AccountType.other_current_asset,
            (True, True): AccountType.other_current_liability,
            (False, True): AccountType.income,
            (False, False): AccountType.expense,
        }[(balance_sheet, credit)]
    return Account(
        id=number,
        name=text(record, "TITLE") or number,
        number=number,
        category=ACCOUNT_CATEGORY[account_type],
        account_type=account_type,
        active=(text(record, "STATUS") or "active").lower() == "active",
    )


def account_to_intacct(account: NewAccount) -> Element:
    if not account.number:
        raise ValueError("Intacct needs an account number (ACCOUNTNO) for a new GL account")
    category = ACCOUNT_CATEGORY[account.account_type]
    balance_sheet = category in (
        AccountCategory.asset,
        AccountCategory.liability,
        AccountCategory.equity,
    )
    credit = category in (AccountCategory.liability, AccountCategory.equity, AccountCategory.income)
    return element(
        "GLACCOUNT",
        {
            "ACCOUNTNO": account.number,
            "TITLE": account.name,
            "ACCOUNTTYPE": "balancesheet" if balance_sheet else "incomestatement",
            "NORMALBALANCE": "credit" if credit else "debit",
            "CATEGORY": TYPE_CATEGORIES[account.account_type],
            "STATUS": "active",
        },
    )


def tracking_from_intacct(kind: TrackingKind, record: Element) -> TrackingCategory:
    _, id_field, name_field = DIMENSION_OBJECTS[kind]
    value = text(record, id_field)
    if not value:
        raise WireError(f"a {kind.value} without {id_field}")
    return TrackingCategory(
        id=value,
        kind=kind,
        name=text(record, name_field) or value,
        parent_id=text(record, "PARENTID"),
        active=(text(record, "STATUS") or "active").lower() == "active",
    )


# --- bills ------------------------------------------------------------------------------------


def bill_status(state: str | None, total: Decimal, due: Decimal) -> BillStatus:
    status = BILL_STATES.get((state or "").strip().lower())
    if status is not None:
        return status
    if due <= 0 and total > 0:
        return BillStatus.paid
    return BillStatus.partially_paid if due < total else BillStatus.open


def bill_from_intacct(
    record: Element,
    *,
    reference: str | None = None,
    terms: PaymentTerms | None = None,
    payment_ids: list[str] | None = None,
) -> Bill:
    """An APBILL read with `read` (its APBILLITEMS included), with its terms (from its
    TERMNAME's APTERM) and the payments in effect on it (from APPYMTDETAIL)."""
    lines = []
    tax = Decimal(0)
    items = record.find("APBILLITEMS")
    for item in list(items) if items is not None else []:
        codes = []
        for entry in item.iter("TAXENTRY"):
            tax += money(entry, "TRX_TAX") or Decimal(0)
            if text(entry, "DETAILID"):
                codes.append(text(entry, "DETAILID"))
        tracking = [
            TrackingRef(kind=kind, id=value)
            for kind, field_name in DIMENSION_FIELDS.items()
            if (value := text(item, field_name))
        ]
        lines.append(
            BillLine(
                description=text(item, "ENTRYDESCRIPTION"),
                amount=money(item, "TRX_AMOUNT") or Decimal(0),
                account_id=text(item, "ACCOUNTNO"),
                item_id=text(item, "ITEMID"),
                customer_id=text(item, "CUSTOMERID"),
                tracking=tracking,
                tax_code_id=codes[0] if codes else None,
            )
        )
    total = money(record, "TRX_TOTALENTERED")
    if total is None:
        total = money(record, "TOTALENTERED") or Decimal(0)
    due = money(record, "TRX_TOTALDUE")
    if due is None:
        due = money(record, "TOTALDUE")
    issue = day(record, "WHENCREATED")
    if issue is None or not text(record, "RECORDNO"):
        raise WireError("an APBILL without RECORDNO or WHENCREATED")
    supdoc = text(record, "SUPDOCID")
    rate = money(record, "EXCHANGE_RATE")
    currency = text(record, "CURRENCY") or ""
    base = text(record, "BASECURR") or currency
    return Bill(
        id=text(record, "RECORDNO"),
        vendor_id=text(record, "VENDORID") or "",
        vendor_name=text(record, "VENDORNAME"),
        document_number=text(record, "RECORDID"),
        issue_date=issue,
        due_date=day(record, "WHENDUE"),
        currency=currency,
        exchange_rate=rate if rate is not None and currency != base else None,
        lines=lines,
        tax_amount=tax,
        total=total,
        balance=due,
        status=bill_status(text(record, "STATE"), total, due if due is not None else total),
        terms=terms,
        memo=text(record, "DESCRIPTION"),
        reference=reference or reference_of(text(record, "DOCNUMBER")),
        payment_ids=payment_ids or [],
        attachment_ids=[supdoc] if supdoc else [],
        updated_at=moment(record, "WHENMODIFIED"),
    )


def line_taxes(bill: Bill, rates: dict[str, Decimal | None]) -> list[Decimal]:
    """Each line's tax (TAXENTRY TRX_TAX) for a bill whose lines carry tax codes: the line at
    its code's rate, to the cent, with what is left of the document's tax on the line taxed
    most, so the entries add up to the bill's tax. ValueError when that cannot be done."""
    coded = [n for n, line in enumerate(bill.lines) if line.tax_code_id]
    if not coded:
        if bill.tax_amount:
            raise ValueError(
                f"the bill has tax ({bill.tax_amount}) but no line has a tax code: Intacct "
                "keeps tax as tax entries of lines, each naming its tax detail"
            )
        return [Decimal(0)] * len(bill.lines)
    taxes = [Decimal(0)] * len(bill.lines)
    for n in coded:
        code = bill.lines[n].tax_code_id or ""
        if code not in rates:
            raise ValueError(f"line {n + 1}: {code!r} is not a purchase tax detail in Intacct")
        rate = rates[code] or Decimal(0)
        taxes[n] = (bill.lines[n].amount * rate / 100).quantize(CENT)
    rest = bill.tax_amount - sum(taxes, Decimal(0))
    if rest:
        most = max(coded, key=lambda n: abs(taxes[n]))
        taxes[most] += rest
    return taxes


def bill_to_intacct(
    bill: Bill,
    *,
    reference: str,
    home_currency: str,
    term_name: str | None = None,
    taxes: list[Decimal] | None = None,
) -> Element:
    """An APBILL to create; ValueError naming what Intacct cannot take."""
    items = []
    for n, line in enumerate(bill.lines, start=1):
        if not line.account_id:
            raise ValueError(f"line {n} has no account: Intacct needs an ACCOUNTNO on every line")
        fields: dict[str, Any] = {
            "ACCOUNTNO": line.account_id,
            "TRX_AMOUNT": cents(line.amount, f"line {n} amount"),
            "ENTRYDESCRIPTION": line.description,
            "ITEMID": line.item_id,
            "CUSTOMERID": line.customer_id,
        }
        for ref in line.tracking:
            fields[DIMENSION_FIELDS[ref.kind]] = ref.id
        if line.tax_code_id:
            tax = taxes[n - 1] if taxes else Decimal(0)
            fields["TAXENTRIES"] = [
                ("TAXENTRY", {"DETAILID": line.tax_code_id, "TRX_TAX": cents(tax, "tax")})
            ]
        items.append(("APBILLITEM", fields))
    foreign = bill.currency != home_currency
    return element(
        "APBILL",
        {
            "VENDORID": bill.vendor_id,
            "WHENCREATED": bill.issue_date,
            "WHENDUE": bill.due_date or bill.issue_date,
            "RECORDID": bill.document_number,
            "DOCNUMBER": reference_tag(reference),
            "DESCRIPTION": bill.memo,
            "TERMNAME": term_name,
            "CURRENCY": bill.currency,
            "BASECURR": home_currency,
            "EXCHANGE_RATE": bill.exchange_rate if foreign else None,
            "ACTION": "Draft" if bill.status == BillStatus.draft else None,
            "APBILLITEMS": items,
        },
    )


# --- payments ---------------------------------------------------------------------------------


def is_credit_only(record: Element) -> bool:
    """A payment that only applies debit memos (no cash): a credit application to remit."""
    details = record.find("APPYMTDETAILS")
    return not any(
        (money(detail, "TRX_PAYMENTAMOUNT") or 0) > 0
        for detail in (list(details) if details is not None else [])
    )


def payment_from_intacct(
    record: Element, *, source_account_id: str, reference: str | None = None
) -> BillPayment:
    """An APPYMT read with `read` (its APPYMTDETAILS included); `source_account_id` is the GL
    account of its FINANCIALENTITY (remit names the account paid from, Intacct the bank)."""
    lines = []
    details = record.find("APPYMTDETAILS")
    for detail in list(details) if details is not None else []:
        bill_id = text(detail, "RECORDKEY")
        amount = money(detail, "TRX_PAYMENTAMOUNT")
        if not bill_id or amount is None or amount <= 0:
            continue
        lines.append(
            BillPaymentLine(
                bill_id=bill_id,
                amount=amount,
                discount=money(detail, "DISCOUNTTOAPPLY") or Decimal(0),
            )
        )
    paid = text(record, "PAYMENTDATE")
    if not paid or not text(record, "RECORDNO"):
        raise WireError("an APPYMT without RECORDNO or PAYMENTDATE")
    rate = money(record, "EXCHANGE_RATE")
    currency = text(record, "CURRENCY") or ""
    return BillPayment(
        id=text(record, "RECORDNO"),
        vendor_id=text(record, "VENDORID") or "",
        payment_date=day(record, "PAYMENTDATE") or date.min,
        currency=currency,
        exchange_rate=rate if rate is not None and currency != text(record, "BASECURR") else None,
        source_account_id=source_account_id,
        total=sum((line.amount for line in lines), Decimal(0)),
        lines=lines,
        reference=reference or reference_of(text(record, "DOCNUMBER")),
        memo=text(record, "DESCRIPTION"),
        voided=(text(record, "STATE") or "").upper() in ("V", "VOIDED"),
        updated_at=moment(record, "WHENMODIFIED"),
    )


def payment_to_intacct(
    payment: BillPayment, *, reference: str, home_currency: str, entity: str, method: str
) -> Element:
    details = [
        (
            "APPYMTDETAIL",
            {
                "RECORDKEY": line.bill_id,
                "TRX_PAYMENTAMOUNT": cents(line.amount, f"payment of bill {line.bill_id}"),
                "DISCOUNTTOAPPLY": cents(line.discount, "discount") if line.discount else None,
            },
        )
        for line in payment.lines
    ]
    foreign = payment.currency != home_currency
    return element(
        "APPYMT",
        {
            "FINANCIALENTITY": entity,
            "PAYMENTMETHOD": method,
            "VENDORID": payment.vendor_id,
            "PAYMENTDATE": payment.payment_date,
            "CURRENCY": payment.currency,
            "BASECURR": home_currency,
            "EXCHANGE_RATE": payment.exchange_rate if foreign else None,
            "DOCNUMBER": reference_tag(reference),
            "DESCRIPTION": payment.memo,
            "APPYMTDETAILS": details,
        },
    )


# --- terms ------------------------------------------------------------------------------------


def terms_from_intacct(record: Element) -> PaymentTerms | None:
    """An APTERM as PaymentTerms: days from the bill date and a percent discount only (terms
    counted from month ends or with an amount off are not remit's kind: None)."""
    name = text(record, "NAME")
    try:
        net = int(text(record, "DUEDATE") or 0)
        discount_days = int(text(record, "DISCDATE") or 0)
        discount = Decimal(text(record, "DISCAMOUNT") or 0)
    except (ValueError, InvalidOperation):
        return None
    from_bill = "from invoice/bill date"
    if (text(record, "DUEFROM") or from_bill) != from_bill:
        return None
    if discount and (
        (text(record, "DISCPERCAMN") or "$") != "%"
        or (text(record, "DISCFROM") or from_bill) != from_bill
    ):
        return None
    try:
        return PaymentTerms(
            name=name,
            net_days=net,
            discount_percent=discount if discount else Decimal(0),
            discount_days=discount_days if discount else 0,
        )
    except ValueError:
        return None


def same_terms(a: PaymentTerms, b: PaymentTerms) -> bool:
    return (a.net_days, a.discount_percent, a.discount_days) == (
        b.net_days,
        b.discount_percent,
        b.discount_days,
    )


def create_term(terms: PaymentTerms) -> Element:
    """The legacy create_apterm for terms the company does not have yet."""
    call = Element("create_apterm")
    SubElement(call, "name").text = term_name(terms)
    SubElement(call, "description").text = f"{terms.label()} (added by remit)"
    due = SubElement(call, "due")
    SubElement(due, "dueday").text = str(terms.net_days)
    SubElement(due, "duefrom").text = "from invoice/bill date"
    if terms.discount_percent:
        discount = SubElement(call, "discount")
        SubElement(discount, "discday").text = str(terms.discount_days)
        SubElement(discount, "discfrom").text = "from invoice/bill date"
        SubElement(discount, "discamount").text = format(terms.discount_percent.normalize(), "f")
        SubElement(discount, "discpercamn").text = "%"
    return call


def term_name(terms: PaymentTerms) -> str:
    return f"remit {terms.label()}"


# --- vendor credits (AP adjustment debit memos) -----------------------------------------------


def credit_to_intacct(memo: BillCreditMemo, *, reference: str) -> Element:
    """A debit memo (negative amounts: what the vendor owes back) by the legacy
    create_apadjustment, remit's tag at the end of its description."""
    call = Element("create_apadjustment")
    SubElement(call, "vendorid").text = memo.vendor_id
    created = SubElement(call, "datecreated")
    SubElement(created, "year").text = f"{memo.issue_date.year:04d}"
    SubElement(created, "month").text = f"{memo.issue_date.month:02d}"
    SubElement(created, "day").text = f"{memo.issue_date.day:02d}"
    if memo.document_number:
        SubElement(call, "adjustmentno").text = memo.document_number
    SubElement(call, "action").text = "Submit"
    SubElement(call, "description").text = f"vendor credit {credit_tag(reference)}"
    SubElement(call, "currency").text = memo.currency
    items = SubElement(call, "apadjustmentitems")
    for n, line in enumerate(memo.lines, start=1):
        if not line.account_id:
            raise ValueError(f"credit line {n} has no account: Intacct needs a glaccountno")
        item = SubElement(items, "lineitem")
        SubElement(item, "glaccountno").text = line.account_id
        SubElement(item, "amount").text = format(-cents(line.amount, f"credit line {n}"), "f")
        if line.description:
            SubElement(item, "memo").text = line.description
        for ref in line.tracking:
            SubElement(item, DIMENSION_FIELDS[ref.kind].lower()).text = ref.id
    return call


def credit_from_intacct(record: Element, *, reference: str | None = None) -> BillCreditMemo:
    """A debit memo read with `read` as remit's vendor credit (amounts made positive)."""
    lines = []
    items = record.find("APADJUSTMENTITEMS")
    for item in list(items) if items is not None else []:
        lines.append(
            BillLine(
                description=text(item, "ENTRYDESCRIPTION"),
                amount=-(money(item, "TRX_AMOUNT") or Decimal(0)),
                account_id=text(item, "ACCOUNTNO"),
            )
        )
    total = -(money(record, "TRX_TOTALENTERED") or Decimal(0))
    remaining = -(money(record, "TRX_TOTALDUE") or Decimal(0))
    issue = day(record, "WHENCREATED")
    if issue is None or not text(record, "RECORDNO"):
        raise WireError("an APADJUSTMENT without RECORDNO or WHENCREATED")
    return BillCreditMemo(
        id=text(record, "RECORDNO"),
        vendor_id=text(record, "VENDORID") or "",
        document_number=text(record, "RECORDID"),
        issue_date=issue,
        currency=text(record, "CURRENCY") or "",
        lines=lines,
        total=total,
        remaining=remaining,
        reference=reference,
    )
