"""The QuickBooks Online connector as a books' mirror source: every kind, queries and CDC.

Full pass: `SELECT * FROM <Entity> [WHERE ...] ORDERBY Id STARTPOSITION n MAXRESULTS m` (QBO's
largest page is 1000), one entity after the other where a kind has several (tracking
categories: Class then Department; tax rates: TaxCode then TaxRate; currencies: the home
currency from Preferences, then CompanyCurrency, which lists only the foreign ones).

Incremental pass (`since` = a watermark): Change Data Capture, `GET /cdc?entities=<Entity>&
changedSince=<watermark>`, one entity per call, which answers what changed, deletions included
(`"status": "Deleted"` stubs, mirrored as deleted=True). CDC's limits decide the rest:
- it looks back 30 days at most: a watermark older than that (29 days here, for clock skew)
  makes this kind's pass a full one (the sync then applies it without a sweep, so a deletion
  older than the window is only found by the next full sync);
- it answers at most 1000 objects per entity: an answer at that ceiling may be cut, so its
  deletion stubs are kept and the live objects are read again by a query on
  `MetaData.LastUpdatedTime > watermark`;
- it has no TaxCode or TaxRate: those, and the few currencies, are read whole every pass.
A CDC answer is sorted here by (LastUpdatedTime, Id) and paged by the last key handed out, so
an object changed while the pass runs moves behind the key (seen now or in the next pass) and
nothing unchanged is skipped.

Cursor: "qbo-mirror:" + base64url JSON {"k": kind, "e": entity index, "m": mode ("q" query,
"c" CDC, "u" query since), "p": start position, "l": last Id handed out, "a": CDC key
reached, "s": since, "w": watermark}; nothing secret in it. A query page re-reads up to 20 rows
of the page before and starts after the last Id handed out, so an object deleted mid-pass does
not shift a live one out of the pass (which the sync would take for a deletion).

Watermark: the `time` of the pass's first answer (QBO stamps every answer with the server's
clock), so anything committed after the pass began is later. Ids: records carry QBO's Id
(Class and Department ones as the connector's TrackingCategory ids are), except tax rates,
whose TaxCode and TaxRate Ids are separate series ("TaxCode:2", "TaxRate:3").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from accounting import Bill, BillPayment, Currency, Customer, Item, ItemType, TaxRate
from connectors import mirror
from connectors.base import Rejected
from connectors.mirror import MirrorKind, MirrorRecord, SyncPage
from connectors.quickbooks import wire
from connectors.quickbooks.wire import JSONObject

log = logging.getLogger(__name__)

PLATFORM = "quickbooks"
MAX_PAGE_SIZE = 1000
CURSOR_PREFIX = "qbo-mirror:"
# CDC looks back at most 30 days and answers at most 1000 objects per entity.
CDC_LOOKBACK = timedelta(days=29)
CDC_CEILING = 1000
# Rows of the page before that a query page reads again (objects deleted mid-pass move the
# positions back; see _query_page).
OVERLAP = 20
PREFERENCES = "Preferences"

ENTITIES: dict[MirrorKind, tuple[str, ...]] = {
    MirrorKind.vendors: ("Vendor",),
    MirrorKind.customers: ("Customer",),
    MirrorKind.accounts: ("Account",),
    MirrorKind.tracking_categories: ("Class", "Department"),
    MirrorKind.items: ("Item",),
    MirrorKind.tax_rates: ("TaxCode", "TaxRate"),
    MirrorKind.currencies: (PREFERENCES, "CompanyCurrency"),
    MirrorKind.bills: ("Bill",),
    MirrorKind.bill_payments: ("BillPayment",),
    MirrorKind.vendor_credits: ("VendorCredit",),
    MirrorKind.attachments: ("Attachable",),
}
KINDS: tuple[MirrorKind, ...] = tuple(ENTITIES)
# Read whole on every pass: CDC has no TaxCode/TaxRate, and the currencies are a handful.
WHOLE_EVERY_PASS = frozenset({MirrorKind.tax_rates, MirrorKind.currencies})
# Only attachments of bills are the mirror's.
_WHERE = {"Attachable": " WHERE AttachableRef.EntityRef.Type = 'Bill'"}
_PREFIXED = frozenset({"TaxCode", "TaxRate"})

# Bank numbers and signed download links stay out of platform_data (it is passthrough).
_SECRET_KEYS = frozenset(
    {"VendorPaymentBankDetail", "BankAccountNumber", "TempDownloadUri", "FileAccessUri"}
)
_ITEM_TYPE = {
    "Inventory": ItemType.inventory,
    "NonInventory": ItemType.non_inventory,
    "Service": ItemType.service,
}


class QuickBooksReads(Protocol):
    """What the mirror uses of QuickBooksConnector (a protocol: the connector imports this)."""

    async def _get(self, path: str, params: dict[str, str] | None = None) -> JSONObject: ...

    async def _query_all(self, entity: str, where: str = "") -> list[JSONObject]: ...

    async def _bills_from(self, rows: list[JSONObject]) -> list[Bill]: ...

    async def _discounts_for(self, payments: list[JSONObject]) -> dict[str, str]: ...


def scrub(value: Any) -> Any:
    """The platform's object without bank numbers or signed links (recursively)."""
    return mirror.scrub(value, _SECRET_KEYS)


def encode_cursor(state: dict[str, Any]) -> str:
    return mirror.encode_page_cursor(CURSOR_PREFIX, state)


def decode_cursor(cursor: str, kind: MirrorKind) -> dict[str, Any]:
    """The state in a cursor this module gave for `kind`; Rejected for any other string."""
    state = mirror.decode_page_cursor(
        CURSOR_PREFIX, cursor, platform=PLATFORM, label="a QuickBooks mirror cursor"
    )
    anchor = state.get("a") if isinstance(state, dict) else None
    if (
        not isinstance(state, dict)
        or state.get("k") != kind.value
        or not isinstance(state.get("e"), int)
        or not 0 <= state["e"] < len(ENTITIES[kind])
        or state.get("m") not in ("q", "c", "u")
        or not isinstance(state.get("p"), int)
        or state["p"] < 1
        or not (state.get("l") is None or isinstance(state["l"], str))
        or not (
            anchor is None
            or (
                isinstance(anchor, list)
                and len(anchor) == 2
                and all(isinstance(a, str) for a in anchor)
            )
        )
    ):
        raise Rejected(f"a QuickBooks mirror cursor not given for {kind.value}", platform=PLATFORM)
    return state


def parse_watermark(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError as exc:
        raise Rejected(f"not a QuickBooks watermark: {since[:40]!r}", platform=PLATFORM) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def updated_at(raw: JSONObject) -> datetime | None:
    stamp = (raw.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def customer_from_qbo(raw: JSONObject) -> Customer:
    email = (raw.get("PrimaryEmailAddr") or {}).get("Address")
    return Customer(
        id=str(raw["Id"]),
        name=str(raw.get("DisplayName") or ""),
        legal_name=raw.get("CompanyName") or None,
        tax_id=raw.get("PrimaryTaxIdentifier") or raw.get("TaxIdentifier") or None,
        email=email or None,
        currency=wire.ref_value(raw, "CurrencyRef"),
        active=bool(raw.get("Active", True)),
        updated_at=updated_at(raw),
    )


def item_from_qbo(raw: JSONObject) -> Item:
    cost = raw.get("PurchaseCost")
    return Item(
        id=str(raw["Id"]),
        name=str(raw.get("Name") or ""),
        sku=raw.get("Sku") or None,
        description=raw.get("PurchaseDesc") or raw.get("Description") or None,
        type=_ITEM_TYPE.get(str(raw.get("Type")), ItemType.other),
        expense_account_id=wire.ref_value(raw, "ExpenseAccountRef"),
        income_account_id=wire.ref_value(raw, "IncomeAccountRef"),
        purchase_cost=wire.decimal(cost) if cost is not None else None,
        active=bool(raw.get("Active", True)),
        updated_at=updated_at(raw),
    )


def tax_rate_from_qbo(entity: str, raw: JSONObject, rates: Mapping[str, JSONObject]) -> TaxRate:
    """A TaxRate as itself; a TaxCode with the sum of the rates it applies (its purchase rates
    where it lists any, else its sales rates; none stated when a rate is not known)."""
    rate: Decimal | None
    if entity == "TaxRate":
        value = raw.get("RateValue")
        rate = wire.decimal(value) if value is not None else None
    else:
        details: list[JSONObject] = []
        for key in ("PurchaseTaxRateList", "SalesTaxRateList"):
            details = list((raw.get(key) or {}).get("TaxRateDetail") or [])
            if details:
                break
        values = [
            rates.get(str(wire.ref_value(d, "TaxRateRef")), {}).get("RateValue") for d in details
        ]
        if any(v is None for v in values):
            rate = None
        else:
            rate = sum((wire.decimal(v) for v in values), Decimal("0"))
    return TaxRate(
        id=f"{entity}:{raw['Id']}",
        name=str(raw.get("Name") or raw["Id"]),
        code=raw.get("Name") or None,
        rate_percent=rate,
        active=bool(raw.get("Active", True)),
        updated_at=updated_at(raw),
    )


def currency_from_qbo(raw: JSONObject) -> Currency:
    code = str(raw["Code"])
    return Currency(
        id=code,
        code=code,
        name=raw.get("Name") or None,
        active=bool(raw.get("Active", True)),
        updated_at=updated_at(raw),
    )


def _cdc_key(raw: JSONObject) -> tuple[str, str]:
    """(LastUpdatedTime in UTC, Id zero-padded): sortable as text, kept in the cursor."""
    moment = updated_at(raw)
    stamp = moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else ""
    return stamp, str(raw.get("Id", "")).rjust(24, "0")


class QuickBooksMirror:
    """connectors.mirror.MirrorSource over one QuickBooksConnector."""

    def __init__(self, connector: QuickBooksReads) -> None:
        self._connector = connector

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return KINDS

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        if kind not in ENTITIES:
            raise Rejected(f"QuickBooks has no {kind.value}", platform=PLATFORM)
        moment = parse_watermark(since)
        if cursor is None:
            incremental = (
                moment is not None
                and kind not in WHOLE_EVERY_PASS
                and datetime.now(UTC) - moment < CDC_LOOKBACK
            )
            state: dict[str, Any] = {
                "k": kind.value,
                "e": 0,
                "m": "c" if incremental else "q",
                "p": 1,
                "a": None,
                "l": None,
                "s": since,
                "w": None,
            }
        else:
            state = decode_cursor(cursor, kind)
            if state.get("s") != since:
                raise Rejected(
                    "a QuickBooks mirror cursor from a pass with another watermark",
                    platform=PLATFORM,
                )
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        if state["m"] == "c":
            return await self._cdc_page(kind, state, size)
        return await self._query_page(kind, state, size)

    # --- full pass (and the query fallback of a cut CDC answer) ----------------------------

    async def _query_page(self, kind: MirrorKind, state: dict[str, Any], size: int) -> SyncPage:
        entity = ENTITIES[kind][state["e"]]
        start = int(state["p"])
        if entity == PREFERENCES:
            payload = await self._connector._get("preferences")
            records = self._home_currency(payload.get("Preferences") or {})
            return self._page(kind, state, records, payload, more=False)
        where = _WHERE.get(entity, "")
        if state["m"] == "u":
            condition = f"MetaData.LastUpdatedTime > {wire.quote(str(state['s']))}"
            where = f"{where} AND {condition}" if where else f" WHERE {condition}"
        # Paged by position, a page re-reads the last rows of the one before: when objects
        # were deleted meanwhile the positions moved back, and the last Id handed out (or,
        # when it is gone too, the first Id after it) says where this page starts.
        last = state.get("l")
        back = min(OVERLAP, start - 1) if last is not None else 0
        wanted = min(size + back, MAX_PAGE_SIZE)
        payload = await self._connector._get(
            "query",
            {
                "query": f"SELECT * FROM {entity}{where} ORDERBY Id "
                f"STARTPOSITION {start - back} MAXRESULTS {wanted}"
            },
        )
        rows: list[JSONObject] = list((payload.get("QueryResponse") or {}).get(entity) or [])
        skip = _after_anchor(rows, last) if last is not None else 0
        chunk = rows[skip : skip + size]
        records = await self._records(kind, entity, chunk)
        reached = start - back + skip + len(chunk)
        state = {**state, "p": reached, "l": str(chunk[-1]["Id"]) if chunk else last}
        more = len(rows) >= wanted or skip + len(chunk) < len(rows)
        return self._page(kind, state, records, payload, more=more)

    # --- incremental pass -----------------------------------------------------------------

    async def _cdc_page(self, kind: MirrorKind, state: dict[str, Any], size: int) -> SyncPage:
        entity = ENTITIES[kind][state["e"]]
        payload = await self._connector._get(
            "cdc", {"entities": entity, "changedSince": str(state["s"])}
        )
        rows: list[JSONObject] = []
        for cdc in payload.get("CDCResponse") or []:
            for response in cdc.get("QueryResponse") or []:
                rows.extend(response.get(entity) or [])
        if len(rows) >= CDC_CEILING:
            # Possibly cut: keep the deletions it names, read the live changes by query.
            gone = [row for row in rows if row.get("status") == "Deleted"]
            records = await self._records(kind, entity, gone)
            state = {**state, "m": "u", "p": 1, "l": None}
            return self._page(kind, state, records, payload, more=True)
        rows.sort(key=_cdc_key)
        anchor = tuple(state["a"]) if state.get("a") else None
        ahead = [row for row in rows if anchor is None or _cdc_key(row) > anchor]
        chunk = ahead[:size]
        records = await self._records(kind, entity, chunk)
        more = len(ahead) > size
        reached = list(_cdc_key(chunk[-1])) if chunk else state.get("a")
        return self._page(kind, {**state, "a": reached}, records, payload, more=more)

    def _page(
        self,
        kind: MirrorKind,
        state: dict[str, Any],
        records: list[MirrorRecord],
        payload: JSONObject,
        *,
        more: bool,
    ) -> SyncPage:
        """The page, and the cursor to the rest of this entity or to the kind's next one."""
        watermark = state.get("w") or _server_time(payload)
        state = {**state, "w": watermark}
        next_state: dict[str, Any] | None = state if more else None
        if next_state is None and state["e"] + 1 < len(ENTITIES[kind]):
            mode = "c" if state["m"] in ("c", "u") else "q"
            next_state = {**state, "e": state["e"] + 1, "m": mode, "p": 1, "a": None, "l": None}
        next_cursor = encode_cursor(next_state) if next_state is not None else None
        return SyncPage(kind=kind, records=records, next_cursor=next_cursor, watermark=watermark)

    # --- QBO objects as records -----------------------------------------------------------

    async def _records(
        self, kind: MirrorKind, entity: str, rows: list[JSONObject]
    ) -> list[MirrorRecord]:
        gone = [row for row in rows if row.get("status") == "Deleted"]
        live = [row for row in rows if row.get("status") != "Deleted"]
        records = [
            MirrorRecord(
                kind=kind,
                platform_id=_platform_id(entity, row),
                platform_data=scrub(row),
                platform_updated_at=updated_at(row),
                deleted=True,
            )
            for row in gone
        ]
        records.extend(await self._live_records(kind, entity, live))
        return records

    async def _live_records(
        self, kind: MirrorKind, entity: str, rows: list[JSONObject]
    ) -> list[MirrorRecord]:
        connector = self._connector
        if not rows:
            return []
        if kind is MirrorKind.vendors:
            return _mapped(kind, entity, rows, wire.vendor_from_qbo)
        if kind is MirrorKind.customers:
            return _mapped(kind, entity, rows, customer_from_qbo)
        if kind is MirrorKind.accounts:
            return _mapped(kind, entity, rows, wire.account_from_qbo)
        if kind is MirrorKind.tracking_categories:
            return _mapped(kind, entity, rows, lambda r: wire.tracking_from_qbo(entity, r))
        if kind is MirrorKind.items:
            return _mapped(kind, entity, rows, item_from_qbo)
        if kind is MirrorKind.tax_rates:
            rates: dict[str, JSONObject] = {}
            if entity == "TaxCode":
                rates = {str(r["Id"]): r for r in await connector._query_all("TaxRate")}
            return _mapped(kind, entity, rows, lambda r: tax_rate_from_qbo(entity, r, rates))
        if kind is MirrorKind.currencies:
            return _mapped(kind, entity, rows, currency_from_qbo)
        if kind is MirrorKind.bills:
            return await self._bills(rows)
        if kind is MirrorKind.bill_payments:
            discounts = await connector._discounts_for(rows)
            return _mapped(kind, entity, rows, lambda r: _payment(r, discounts))
        if kind is MirrorKind.vendor_credits:
            # remit's early-payment discount credits are the payment lines' `discount`.
            credits = [r for r in rows if wire.discount_bill_of(r) is None]
            return _mapped(kind, entity, credits, wire.credit_memo_from_qbo)
        return _mapped(kind, entity, rows, _attachment)

    async def _bills(self, rows: list[JSONObject]) -> list[MirrorRecord]:
        records: list[MirrorRecord] = []
        for row in rows:
            # One by one, so one bill the unified model cannot hold skips only itself.
            try:
                [bill] = await self._connector._bills_from([row])
            except (ValueError, ValidationError, KeyError) as exc:
                log.warning("QuickBooks bill %s skipped from the mirror: %s", row.get("Id"), exc)
                continue
            records.append(
                MirrorRecord(
                    kind=MirrorKind.bills,
                    platform_id=str(row["Id"]),
                    data=bill.model_dump(mode="json"),
                    platform_data=scrub(row),
                    platform_updated_at=updated_at(row),
                )
            )
        return records

    def _home_currency(self, preferences: JSONObject) -> list[MirrorRecord]:
        """The home currency, which QBO keeps in Preferences, not among CompanyCurrency."""
        home, _ = wire.currency_prefs(preferences)
        if home is None:
            return []
        currency = Currency(id=home, code=home, home=True)
        prefs = {"CurrencyPrefs": preferences.get("CurrencyPrefs") or {}}
        return [
            MirrorRecord(
                kind=MirrorKind.currencies,
                platform_id=home,
                data=currency.model_dump(mode="json"),
                platform_data=prefs,
                platform_updated_at=updated_at(preferences),
            )
        ]


def _platform_id(entity: str, row: JSONObject) -> str:
    if entity in _PREFIXED:
        return f"{entity}:{row.get('Id')}"
    if entity == "CompanyCurrency" and row.get("Code"):
        return str(row["Code"])
    return str(row.get("Id") or "")


def _payment(raw: JSONObject, discounts: Mapping[str, str]) -> BaseModel | None:
    """The cash side of a BillPayment; a payment voided outside remit (QBO keeps no trace of
    what it paid) is a voided payment with no lines; None for a pure credit application."""
    payment = wire.bill_payment_from_qbo(raw, discounts)
    if payment is None and wire.is_voided(raw):
        header = wire._payment_header(raw)
        return BillPayment(**header, total=Decimal("0"), lines=[], voided=True)
    return payment


def _attachment(raw: JSONObject) -> BaseModel | None:
    for attachable_ref in raw.get("AttachableRef") or []:
        entity_ref = attachable_ref.get("EntityRef") or {}
        if entity_ref.get("type") == "Bill" and entity_ref.get("value"):
            return wire.attachment_from_qbo(raw, str(entity_ref["value"]))
    return None


def _id_order(value: Any) -> tuple[int, int, str]:
    """QBO's ORDERBY Id: numeric Ids by number."""
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def _after_anchor(rows: list[JSONObject], last: str) -> int:
    """How many of `rows` (ordered by Id) the page before already handed out."""
    for index, row in enumerate(rows):
        if str(row.get("Id")) == last:
            return index + 1
    anchor = _id_order(last)
    return sum(1 for row in rows if _id_order(row.get("Id")) <= anchor)


def _server_time(payload: JSONObject) -> str:
    """The answer's `time` (the server's clock, in the company's zone), else this clock's."""
    stamp = payload.get("time")
    try:
        moment = datetime.fromisoformat(str(stamp)) if stamp else datetime.now(UTC)
    except ValueError:
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds")


def _mapped(
    kind: MirrorKind,
    entity: str,
    raws: list[JSONObject],
    to_model: Callable[[JSONObject], BaseModel | None],
) -> list[MirrorRecord]:
    """Records of one kind; an object the unified model cannot hold (or has no place for: a
    Non-Posting account, a credit-only payment) is skipped, with a warning when it failed."""
    records: list[MirrorRecord] = []
    for raw in raws:
        platform_id = _platform_id(entity, raw)
        try:
            model = to_model(raw)
        except (ValueError, ValidationError, KeyError) as exc:
            log.warning("QuickBooks %s %s skipped from the mirror: %s", entity, platform_id, exc)
            continue
        if model is None:
            continue
        records.append(
            MirrorRecord(
                kind=kind,
                platform_id=platform_id,
                data=model.model_dump(mode="json"),
                platform_data=scrub(raw),
                platform_updated_at=updated_at(raw),
            )
        )
    return records
