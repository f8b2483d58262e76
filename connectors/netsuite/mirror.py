"""The NetSuite connector as a books' mirror source: vendors, bills, bill payments by SuiteQL.

Paging is keyset (`WHERE id > :last ORDER BY id` with `limit`=page size, `offset`=0), not
`offset`: NetSuite's offset paging rescans the skipped rows on every page and drifts when rows
are inserted or deleted mid-pass, while keyset stays fast on big tables and never skips a row.
Each page's ids are then read from the record service (`expandSubResources`) and mapped by
connectors/netsuite/wire.py as the connector's other reads are.

Incremental (`since` = watermark): `lastmodifieddate > '<watermark>'` on the same query, then a
second phase reading NetSuite's `deletedrecord` table (`deleteddate > '<watermark>'`), each row a
MirrorRecord(deleted=True). Watermark: the server's clock from the HTTP `Date` header of the
first answer of the pass, minus SAFETY_MARGIN (the header has whole seconds, and a record
committed in the same second as the read could otherwise fall before it); seeing a record again
is harmless.

Cursor: "netsuite-mirror:" + base64url JSON {"k": kind, "l": last id, "ph": phase (0 live,
1 deletions), "w": watermark}; nothing secret in it.

Known limits (see the report): each page costs one GET per record (bills are not yet read as a
header query plus one transactionline query); the other kinds still come from the feed mirror.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from accounting import Account, Bill, TrackingCategory
from connectors import mirror
from connectors.base import Rejected
from connectors.mirror import MirrorKind, MirrorRecord, SyncPage
from connectors.netsuite import wire
from connectors.netsuite.wire import JSON, CurrencyMap

PLATFORM = "netsuite"
CURSOR_PREFIX = "netsuite-mirror:"
MAX_PAGE_SIZE = 1000
SAFETY_MARGIN = timedelta(seconds=2)

KINDS: tuple[MirrorKind, ...] = (
    MirrorKind.vendors,
    MirrorKind.accounts,
    MirrorKind.tracking_categories,
    MirrorKind.bills,
    MirrorKind.bill_payments,
)
LISTED = "listed"
"""The watermark of a kind read whole every pass (accounts, tracking categories: no deletion
feed is read for them yet, so every pass is a full one and the sync infers deletions)."""

# kind -> (record type, SuiteQL table, extra condition, deletedrecord type)
_SOURCES: dict[MirrorKind, tuple[str, str, str, str]] = {
    MirrorKind.vendors: ("vendor", "vendor", "", "vendor"),
    MirrorKind.bills: ("vendorBill", "transaction", "type = 'VendBill'", "vendorbill"),
    MirrorKind.bill_payments: (
        "vendorPayment",
        "transaction",
        "type = 'VendPymt'",
        "vendorpayment",
    ),
}

# Bank numbers stay out of platform_data (it is passthrough).
_SECRET_KEYS = frozenset({"accountNumber", "bankAccountNumber", "iban", "achAcct"})


class NetSuiteReads(Protocol):
    """What the mirror uses of NetSuiteConnector (a protocol: the connector imports this)."""

    _suiteql_url: str

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        is_write: bool = False,
    ) -> httpx.Response: ...

    async def _record(self, record_type: str, key: str) -> JSON: ...

    async def _currency_map(self) -> CurrencyMap: ...

    async def _bills(self, records: list[JSON]) -> list[Bill]: ...

    async def list_accounts(self) -> list[Account]: ...

    async def list_tracking_categories(self) -> list[TrackingCategory]: ...


def scrub(value: Any) -> Any:
    """The platform's object without bank numbers (recursively)."""
    return mirror.scrub(value, _SECRET_KEYS)


def encode_cursor(state: dict[str, Any]) -> str:
    return mirror.encode_page_cursor(CURSOR_PREFIX, state)


def decode_cursor(cursor: str, kind: MirrorKind) -> dict[str, Any]:
    """The state in a cursor this module gave for `kind`; Rejected for any other string."""
    state = mirror.decode_page_cursor(
        CURSOR_PREFIX, cursor, platform=PLATFORM, label="a NetSuite mirror cursor"
    )
    if (
        not isinstance(state, dict)
        or state.get("k") != kind.value
        or not isinstance(state.get("l"), int)
        or state.get("ph") not in (0, 1)
    ):
        raise Rejected(f"a NetSuite mirror cursor not given for {kind.value}", platform=PLATFORM)
    return state


def parse_watermark(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError as exc:
        raise Rejected(f"not a NetSuite watermark: {since[:40]!r}", platform=PLATFORM) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sql_string(text: str) -> str:
    """A SuiteQL string literal (single quotes, doubled inside)."""
    return "'" + text.replace("'", "''") + "'"


def _literal(moment: datetime) -> str:
    return _sql_string(moment.astimezone(UTC).isoformat())


def _listed_id(model: Any) -> str:
    # Departments, classes and locations number their ids separately (department 1 and
    # class 1 both exist), so a tracking category's mirror id carries its kind.
    if isinstance(model, TrackingCategory):
        return f"{model.kind.value}:{model.id}"
    return str(model.id)


class NetSuiteMirror:
    """connectors.mirror.MirrorSource for one NetSuite connection."""

    def __init__(self, reads: NetSuiteReads) -> None:
        self._reads = reads

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return KINDS

    async def _query(self, statement: str, limit: int) -> tuple[list[JSON], datetime | None]:
        """One SuiteQL page (offset 0: the keyset is in the statement) and the server's clock."""
        response = await self._reads._send(
            "POST",
            self._reads._suiteql_url,
            params={"limit": str(limit), "offset": "0"},
            body={"q": statement},
            headers={"Prefer": "transient"},
        )
        payload = wire.loads(response.text)
        clock: datetime | None = None
        if response.headers.get("Date"):
            clock = parsedate_to_datetime(response.headers["Date"]).astimezone(UTC)
        return list(payload.get("items") or []), clock

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        if kind in (MirrorKind.accounts, MirrorKind.tracking_categories):
            return await self._listed(kind, cursor=cursor, page_size=page_size)
        if kind not in _SOURCES:
            raise Rejected(f"NetSuite mirrors no {kind.value}", platform=PLATFORM)
        state: dict[str, Any] = (
            decode_cursor(cursor, kind) if cursor else {"k": kind.value, "l": 0, "ph": 0, "w": None}
        )
        moment = parse_watermark(since)
        limit = max(1, min(page_size, MAX_PAGE_SIZE))
        record_type, table, condition, deleted_type = _SOURCES[kind]
        records: list[MirrorRecord] = []
        if state["ph"] == 0:
            where = [f"id > {int(state['l'])}"]
            if condition:
                where.append(condition)
            if moment is not None:
                where.append(f"lastmodifieddate > {_literal(moment)}")
            rows, clock = await self._query(
                f"SELECT id, lastmodifieddate FROM {table} WHERE {' AND '.join(where)} ORDER BY id",
                limit,
            )
            if state["w"] is None:
                state["w"] = ((clock or datetime.now(UTC)) - SAFETY_MARGIN).isoformat()
            records = await self._records(kind, record_type, [str(r["id"]) for r in rows])
            if len(rows) == limit:
                state["l"] = int(str(rows[-1]["id"]))
            elif moment is not None:
                state["ph"], state["l"] = 1, 0
            else:
                return SyncPage(kind=kind, records=records, watermark=state["w"])
            return SyncPage(
                kind=kind, records=records, next_cursor=encode_cursor(state), watermark=state["w"]
            )
        assert moment is not None, "a deletions phase only follows an incremental pass"
        rows, _ = await self._query(
            "SELECT recordid, type, deleteddate FROM deletedrecord WHERE "
            f"type = {_sql_string(deleted_type)} AND deleteddate > {_literal(moment)} "
            f"AND recordid > {int(state['l'])} ORDER BY recordid",
            limit,
        )
        records = [
            MirrorRecord(
                kind=kind,
                platform_id=str(row["recordid"]),
                platform_data={k: v for k, v in row.items() if k != "links"},
                platform_updated_at=wire.parse_datetime(row.get("deleteddate")),
                deleted=True,
            )
            for row in rows
        ]
        if len(rows) == limit:
            state["l"] = int(str(rows[-1]["recordid"]))
            next_cursor: str | None = encode_cursor(state)
        else:
            next_cursor = None
        return SyncPage(kind=kind, records=records, next_cursor=next_cursor, watermark=state["w"])

    async def _listed(self, kind: MirrorKind, *, cursor: str | None, page_size: int) -> SyncPage:
        """A kind read whole (the connector's listing) and sliced into pages."""
        state: dict[str, Any] = (
            decode_cursor(cursor, kind) if cursor else {"k": kind.value, "l": 0, "ph": 0}
        )
        models: list[Any] = list(
            await self._reads.list_accounts()
            if kind is MirrorKind.accounts
            else await self._reads.list_tracking_categories()
        )
        start, limit = int(state["l"]), max(1, min(page_size, MAX_PAGE_SIZE))
        records = [
            MirrorRecord(kind=kind, platform_id=_listed_id(m), data=m.model_dump(mode="json"))
            for m in models[start : start + limit]
            if m.id
        ]
        next_cursor = None
        if start + limit < len(models):
            next_cursor = encode_cursor({**state, "l": start + limit})
        return SyncPage(kind=kind, records=records, next_cursor=next_cursor, watermark=LISTED)

    async def _records(
        self, kind: MirrorKind, record_type: str, ids: list[str]
    ) -> list[MirrorRecord]:
        raws = [await self._reads._record(record_type, record_id) for record_id in ids]
        currencies = await self._reads._currency_map()
        models: list[Any]
        if kind is MirrorKind.vendors:
            models = [wire.vendor_from_netsuite(raw, currencies) for raw in raws]
        elif kind is MirrorKind.bills:
            models = await self._reads._bills(raws)
        else:
            models = [wire.payment_from_netsuite(raw, currencies) for raw in raws]
        return [
            MirrorRecord(
                kind=kind,
                platform_id=str(raw["id"]),
                data=model.model_dump(mode="json"),
                platform_data=scrub({k: v for k, v in raw.items() if k != "links"}),
                platform_updated_at=wire.parse_datetime(raw.get("lastModifiedDate")),
            )
            for raw, model in zip(raws, models, strict=True)
        ]
