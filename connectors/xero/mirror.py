"""The Xero connector as a books' mirror source: every kind, Xero's paging, If-Modified-Since.

Paged endpoints (Contacts, Invoices, CreditNotes, Payments) are read with `page` and
`pageSize` (Xero's documented maximum is 1000); the others (Accounts, TrackingCategories,
Items, TaxRates, Currencies) answer in one piece and are sliced here. An incremental pass sends
`If-Modified-Since` with the watermark; Xero keeps deleted and voided documents (Status DELETED
/ VOIDED) and archived contacts, so they come back as changes. Attachments have no feed of their
own: they are listed per bill of the bill pass (full) or of the changed bills (incremental).

Cursor: "xero-mirror:" + base64url JSON {"k": kind, "p": page, "o": offset, "s": since,
"w": watermark, "ph": phase}; nothing secret in it, and it survives storage. An incremental
bills pass has a second phase that re-reads the partly paid open bills (edits Xero does not
date). Watermark: the server's
DateTimeUTC of the first answer of the pass (ISO 8601, milliseconds), so everything committed
after the pass began has a later UpdatedDateUTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from accounting import Bill, BillPayment, Currency, Customer, Item, ItemType, TaxRate
from connectors import mirror
from connectors.base import Rejected
from connectors.mirror import MirrorKind, MirrorRecord, SyncPage
from connectors.xero import wire
from connectors.xero.wire import JSONObject, Lookups


class XeroReads(Protocol):
    """What the mirror uses of XeroConnector (a protocol: the connector imports this module)."""

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        modified_since: datetime | None = None,
    ) -> JSONObject: ...

    async def lookups(self, *, refresh: bool = False) -> Lookups: ...

    async def home_currency(self) -> str: ...

    def _bill(self, raw: JSONObject, lookups: Lookups) -> Bill: ...

    async def _unified_payments(
        self, raws: list[JSONObject], *, reference: str | None = None
    ) -> list[BillPayment]: ...


log = logging.getLogger(__name__)

PLATFORM = wire.PLATFORM_NAME
MAX_PAGE_SIZE = 1000
CURSOR_PREFIX = "xero-mirror:"
PARTLY_PAID_BILLS = 'Type=="ACCPAY" AND Status=="AUTHORISED" AND AmountPaid>0'

KINDS: tuple[MirrorKind, ...] = (
    MirrorKind.vendors,
    MirrorKind.customers,
    MirrorKind.accounts,
    MirrorKind.tracking_categories,
    MirrorKind.items,
    MirrorKind.tax_rates,
    MirrorKind.currencies,
    MirrorKind.bills,
    MirrorKind.bill_payments,
    MirrorKind.vendor_credits,
    MirrorKind.attachments,
)

# Bank numbers and anything like them stay out of platform_data (it is passthrough).
_SECRET_KEYS = frozenset(
    {"BankAccountDetails", "BatchPayments", "BankAccountNumber", "AccountNumber", "Details"}
)

# Paged endpoints: path, envelope key, extra query, id field.
_PAGED: dict[MirrorKind, tuple[str, str, dict[str, str], str]] = {
    MirrorKind.vendors: ("/Contacts", "Contacts", {"includeArchived": "true"}, "ContactID"),
    MirrorKind.customers: ("/Contacts", "Contacts", {"includeArchived": "true"}, "ContactID"),
    MirrorKind.bills: ("/Invoices", "Invoices", {"where": 'Type=="ACCPAY"'}, "InvoiceID"),
    MirrorKind.attachments: ("/Invoices", "Invoices", {"where": 'Type=="ACCPAY"'}, "InvoiceID"),
    MirrorKind.vendor_credits: (
        "/CreditNotes",
        "CreditNotes",
        {"where": 'Type=="ACCPAYCREDIT"'},
        "CreditNoteID",
    ),
    MirrorKind.bill_payments: (
        "/Payments",
        "Payments",
        {"where": 'PaymentType=="ACCPAYPAYMENT"'},
        "PaymentID",
    ),
}


def scrub(value: Any) -> Any:
    """The platform's object without bank numbers (recursively)."""
    return mirror.scrub(value, _SECRET_KEYS)


def encode_cursor(state: dict[str, Any]) -> str:
    return mirror.encode_page_cursor(CURSOR_PREFIX, state)


def decode_cursor(cursor: str, kind: MirrorKind) -> dict[str, Any]:
    """The state in a cursor this module gave for `kind`; Rejected for any other string."""
    state = mirror.decode_page_cursor(
        CURSOR_PREFIX, cursor, platform=PLATFORM, label="a Xero mirror cursor"
    )
    if (
        not isinstance(state, dict)
        or state.get("k") != kind.value
        or not isinstance(state.get("p"), int)
        or not isinstance(state.get("o"), int)
        or state["p"] < 1
        or state["o"] < 0
        or state.get("ph", 0) not in (0, 1)
    ):
        raise Rejected(f"a Xero mirror cursor not given for {kind.value}", platform=PLATFORM)
    return state


def parse_watermark(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError as exc:
        raise Rejected(f"not a Xero watermark: {since[:40]!r}", platform=PLATFORM) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def item_from_xero(raw: JSONObject, lookups: Lookups) -> Item:
    purchase = raw.get("PurchaseDetails") or {}
    sales = raw.get("SalesDetails") or {}
    tracked = bool(raw.get("IsTrackedAsInventory"))
    expense_code = purchase.get("COGSAccountCode") if tracked else purchase.get("AccountCode")
    if not expense_code:
        expense_code = purchase.get("AccountCode")
    cost = purchase.get("UnitPrice")
    return Item(
        id=str(raw["ItemID"]),
        name=str(raw.get("Name") or raw.get("Code") or ""),
        sku=raw.get("Code") or None,
        description=raw.get("PurchaseDescription") or raw.get("Description") or None,
        type=ItemType.inventory if tracked else ItemType.other,
        expense_account_id=lookups.account_id_by_code.get(str(expense_code))
        if expense_code
        else None,
        income_account_id=lookups.account_id_by_code.get(str(sales.get("AccountCode")))
        if sales.get("AccountCode")
        else None,
        purchase_cost=wire.decimal(cost) if cost is not None else None,
        updated_at=wire.parse_datetime(raw.get("UpdatedDateUTC")),
    )


def customer_from_xero(raw: JSONObject) -> Customer:
    return Customer(
        id=str(raw["ContactID"]),
        name=str(raw.get("Name") or ""),
        tax_id=raw.get("TaxNumber") or None,
        email=raw.get("EmailAddress") or None,
        currency=raw.get("DefaultCurrency") or None,
        active=raw.get("ContactStatus", "ACTIVE") == "ACTIVE",
        updated_at=wire.parse_datetime(raw.get("UpdatedDateUTC")),
    )


def tax_rate_from_xero(raw: JSONObject) -> TaxRate:
    rate = raw.get("EffectiveRate", raw.get("DisplayTaxRate"))
    return TaxRate(
        id=str(raw["TaxType"]),
        name=str(raw.get("Name") or raw["TaxType"]),
        code=str(raw["TaxType"]),
        rate_percent=wire.decimal(rate) if rate is not None else None,
        active=raw.get("Status", "ACTIVE") == "ACTIVE",
    )


def currency_from_xero(raw: JSONObject, home: str | None) -> Currency:
    code = str(raw["Code"])
    return Currency(id=code, code=code, name=raw.get("Description") or None, home=code == home)


class XeroMirror:
    """connectors.mirror.MirrorSource over one XeroConnector."""

    def __init__(self, connector: XeroReads) -> None:
        self._connector = connector

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return KINDS

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        if kind not in KINDS:
            raise Rejected(f"Xero has no {kind.value}", platform=PLATFORM)
        if cursor is None:
            state: dict[str, Any] = {"k": kind.value, "p": 1, "o": 0, "s": since, "w": None}
        else:
            state = decode_cursor(cursor, kind)
            if state.get("s") != since:
                raise Rejected(
                    "a Xero mirror cursor from a pass with another watermark", platform=PLATFORM
                )
        modified_since = parse_watermark(since)
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        if kind in _PAGED:
            return await self._paged(kind, state, modified_since, size)
        return await self._listed(kind, state, modified_since, size)

    # --- paged endpoints ------------------------------------------------------------------

    async def _paged(
        self, kind: MirrorKind, state: dict[str, Any], since: datetime | None, size: int
    ) -> SyncPage:
        path, key, extra, _ = _PAGED[kind]
        page = int(state["p"])
        # Phase 1 of an incremental bills pass re-reads every partly paid open bill whole: Xero
        # leaves UpdatedDateUTC alone when only DueDate changes on one (erp-apis.md §3.14).
        rereading = kind is MirrorKind.bills and since is not None and state.get("ph") == 1
        if rereading:
            extra = {"where": PARTLY_PAID_BILLS}
            since = None
        query = {**extra, "page": str(page), "pageSize": str(size)}
        payload = await self._connector._json("GET", path, params=query, modified_since=since)
        raws: list[JSONObject] = list(payload.get(key) or [])
        watermark = state.get("w") or _server_time(payload)
        pagination = payload.get("pagination") or {}
        if pagination.get("pageCount") is not None:
            more = page < int(pagination["pageCount"])
        else:
            more = len(raws) >= size
        changed = [raw for raw in raws if _after(raw, since)]
        records = await self._records(kind, changed)
        next_cursor = (
            encode_cursor({**state, "p": page + 1, "w": watermark}) if more and raws else None
        )
        if next_cursor is None and kind is MirrorKind.bills and since is not None and not rereading:
            next_cursor = encode_cursor({**state, "p": 1, "ph": 1, "w": watermark})
        return SyncPage(kind=kind, records=records, next_cursor=next_cursor, watermark=watermark)

    async def _records(self, kind: MirrorKind, raws: list[JSONObject]) -> list[MirrorRecord]:
        connector = self._connector
        lookups = await connector.lookups()
        if kind is MirrorKind.vendors:
            return _mapped(kind, raws, "ContactID", lambda r: wire.vendor_from_xero(r, lookups))
        if kind is MirrorKind.customers:
            customers = [r for r in raws if r.get("IsCustomer")]
            return _mapped(kind, customers, "ContactID", customer_from_xero)
        if kind is MirrorKind.bills:
            return _mapped(
                kind,
                raws,
                "InvoiceID",
                lambda r: connector._bill(r, lookups),
                deleted=lambda r: r.get("Status") == "DELETED",
            )
        if kind is MirrorKind.vendor_credits:
            notes = [r for r in raws if not wire.is_discount_note(r)]
            return _mapped(
                kind,
                notes,
                "CreditNoteID",
                lambda r: _credit(r, lookups),
                deleted=lambda r: r.get("Status") == "DELETED",
            )
        if kind is MirrorKind.bill_payments:
            return await self._payments(raws)
        return await self._attachments(raws)

    async def _payments(self, raws: list[JSONObject]) -> list[MirrorRecord]:
        records: list[MirrorRecord] = []
        singles = [raw for raw in raws if not raw.get("BatchPaymentID")]
        batched: dict[str, JSONObject] = {}
        for raw in raws:
            if raw.get("BatchPaymentID"):
                batched.setdefault(str(raw["BatchPaymentID"]), raw)
        for raw in singles:
            records.extend(await self._payment_records([raw], raw, str(raw["PaymentID"])))
        for batch_id, member in batched.items():
            records.extend(await self._payment_records([member], member, batch_id))
        return records

    async def _payment_records(
        self, raws: list[JSONObject], raw: JSONObject, platform_id: str
    ) -> list[MirrorRecord]:
        try:
            unified = await self._connector._unified_payments(raws)
        except (ValueError, ValidationError) as exc:
            log.warning("Xero payment %s skipped from the mirror: %s", platform_id, exc)
            return []
        # A deleted Xero payment stays listed (Status DELETED): voided in `data`, and deleted.
        return [
            MirrorRecord(
                kind=MirrorKind.bill_payments,
                platform_id=str(payment.id or platform_id),
                data=payment.model_dump(mode="json"),
                platform_data=scrub(raw),
                platform_updated_at=wire.parse_datetime(raw.get("UpdatedDateUTC")),
                deleted=raw.get("Status") == "DELETED",
            )
            for payment in unified
        ]

    async def _attachments(self, invoices: list[JSONObject]) -> list[MirrorRecord]:
        records: list[MirrorRecord] = []
        for invoice in invoices:
            if invoice.get("Status") == "DELETED" or not invoice.get("HasAttachments"):
                continue
            bill_id = str(invoice["InvoiceID"])
            payload = await self._connector._json(
                "GET", f"/Invoices/{quote(bill_id, safe='')}/Attachments"
            )
            for raw in payload.get("Attachments") or []:
                attachment = wire.attachment_from_xero(raw, bill_id=bill_id)
                records.append(
                    MirrorRecord(
                        kind=MirrorKind.attachments,
                        platform_id=str(raw["AttachmentID"]),
                        data=attachment.model_dump(mode="json"),
                        platform_data=scrub({**raw, "InvoiceID": bill_id}),
                        platform_updated_at=wire.parse_datetime(invoice.get("UpdatedDateUTC")),
                    )
                )
        return records

    # --- endpoints answered in one piece --------------------------------------------------

    async def _listed(
        self, kind: MirrorKind, state: dict[str, Any], since: datetime | None, size: int
    ) -> SyncPage:
        connector = self._connector
        records: list[MirrorRecord]
        if kind is MirrorKind.accounts:
            payload = await connector._json("GET", "/Accounts")
            records = _mapped(
                kind, payload.get("Accounts") or [], "AccountID", wire.account_from_xero
            )
        elif kind is MirrorKind.tracking_categories:
            payload = await connector._json(
                "GET", "/TrackingCategories", params={"includeArchived": "true"}
            )
            records = _tracking_records(payload.get("TrackingCategories") or [])
        elif kind is MirrorKind.items:
            payload = await connector._json("GET", "/Items")
            lookups = await connector.lookups()
            records = _mapped(
                kind, payload.get("Items") or [], "ItemID", lambda r: item_from_xero(r, lookups)
            )
        elif kind is MirrorKind.tax_rates:
            payload = await connector._json("GET", "/TaxRates")
            records = _mapped(kind, payload.get("TaxRates") or [], "TaxType", tax_rate_from_xero)
        else:
            payload = await connector._json("GET", "/Currencies")
            home = await connector.home_currency()
            records = _mapped(
                kind,
                payload.get("Currencies") or [],
                "Code",
                lambda r: currency_from_xero(r, home),
            )
        # These lists are small and some carry no UpdatedDateUTC: every pass reads them whole
        # (an incremental pass too), so an archived or deleted one is never missed.
        del since
        watermark = state.get("w") or _server_time(payload)
        offset = int(state["o"])
        chunk = records[offset : offset + size]
        more = offset + size < len(records)
        next_cursor = encode_cursor({**state, "o": offset + size, "w": watermark}) if more else None
        return SyncPage(kind=kind, records=chunk, next_cursor=next_cursor, watermark=watermark)


def _credit(raw: JSONObject, lookups: Lookups) -> BaseModel:
    """A supplier credit note; one not in effect (DRAFT, SUBMITTED, VOIDED) has nothing left
    to apply (BillCreditMemo has no status: its Status stays in platform_data)."""
    memo = wire.credit_note_from_xero(raw, lookups)
    if raw.get("Status") not in ("AUTHORISED", "PAID"):
        return memo.model_copy(update={"remaining": Decimal("0")})
    return memo


def _server_time(payload: JSONObject) -> str:
    moment = wire.parse_datetime(payload.get("DateTimeUTC")) or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _after(raw: JSONObject, since: datetime | None) -> bool:
    """Xero filters to the second; the sub-second rest is filtered here (none lost: a missing
    UpdatedDateUTC counts as changed)."""
    if since is None:
        return True
    updated = wire.parse_datetime(raw.get("UpdatedDateUTC"))
    return updated is None or updated > since


def _mapped(
    kind: MirrorKind,
    raws: list[JSONObject],
    id_field: str,
    to_model: Callable[[JSONObject], BaseModel],
    *,
    deleted: Callable[[JSONObject], bool] | None = None,
) -> list[MirrorRecord]:
    """Records of one kind; an object the unified model cannot hold is skipped with a warning
    (a deleted one is still reported, with empty data)."""
    records: list[MirrorRecord] = []
    for raw in raws:
        platform_id = str(raw.get(id_field) or "")
        gone = deleted(raw) if deleted is not None else False
        try:
            data: dict[str, Any] = to_model(raw).model_dump(mode="json")
        except (ValueError, ValidationError, KeyError) as exc:
            if not gone:
                log.warning("Xero %s %s skipped from the mirror: %s", kind.value, platform_id, exc)
                continue
            data = {}
        records.append(
            MirrorRecord(
                kind=kind,
                platform_id=platform_id,
                data=data,
                platform_data=scrub(raw),
                platform_updated_at=wire.parse_datetime(raw.get("UpdatedDateUTC")),
                deleted=gone,
            )
        )
    return records


def _tracking_records(categories: list[JSONObject]) -> list[MirrorRecord]:
    """Each option of a Department/Class/Location category, as the connector maps them."""
    records: list[MirrorRecord] = []
    for category in categories:
        mapped = {t.id: t for t in wire.tracking_categories_from_xero([category])}
        for option in category.get("Options") or []:
            unified = mapped.get(str(option["TrackingOptionID"]))
            if unified is None:
                continue
            platform = {k: v for k, v in category.items() if k != "Options"}
            records.append(
                MirrorRecord(
                    kind=MirrorKind.tracking_categories,
                    platform_id=unified.id,
                    data=unified.model_dump(mode="json"),
                    platform_data=scrub({**option, "TrackingCategory": platform}),
                )
            )
    return records
