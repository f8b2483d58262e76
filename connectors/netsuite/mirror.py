"""The NetSuite connector as a books' mirror source: every kind, by SuiteQL keyset pages.

Paging is keyset (`WHERE id > :last ORDER BY id` with `limit`=page size, `offset`=0), not
`offset`: NetSuite's offset paging rescans the skipped rows on every page and drifts when rows
are inserted or deleted mid-pass, while keyset stays fast on big tables and never skips a row.
What a kind's page holds comes from one of three places:
- the SuiteQL row itself, for the flat lists (customers `customer`, items `item` of itemtype
  InvtPart / NonInvtPart / Service, subsidiaries `subsidiary`, currencies `currency`, tax rates
  `salestaxitem`, attachments `file`): one query per page, `lastmodifieddate` selected as
  TO_CHAR(..., 'YYYY-MM-DD HH24:MI:SS') and read as UTC;
- SuiteQL rows put together, for bills: the page's `transaction` rows, their expense lines
  (`transactionline`, mainline and tax lines left out, paged by `uniquekey`), the vendors' and
  the lines' departments', classes' and locations' names (what the record service answers as
  refName), then the connector's term and payment look-ups; no GET per bill;
- the record service (`expandSubResources`), one GET per id of the page, for vendors (read
  as the connector's vendor reads read them, default expense account included), bill payments
  and vendor credits (their apply sublists, which SuiteQL would need link queries for), mapped
  by connectors/netsuite/wire.py as the connector's other reads are.
Tax rates are SuiteTax tax codes (`salestaxitem`): REST web services support SuiteTax only, and
tax groups (`taxGroup`) need the legacy tax feature, so there are none to read. Attachments are
the files (`file`) linked to a bill (`transactionfile` rows whose transaction is a VendBill);
a file linked to no bill is not one, and a file linked to several bills is mirrored once, with
the lowest bill id.

Incremental (`since` = watermark): `lastmodifieddate > '<watermark>'` on the same query, then a
second phase reading NetSuite's `deletedrecord` table (`deleteddate > '<watermark>'`, the kind's
record types), each row a MirrorRecord(deleted=True). Watermark: the server's clock from the
HTTP `Date` header of the first answer of the pass, minus SAFETY_MARGIN (the header has whole
seconds, and a record committed in the same second as the read could otherwise fall before
it); seeing a record again is harmless.

Cursor: "netsuite-mirror:" + base64url JSON {"k": kind, "l": last id, "ph": phase (0 live,
1 deletions), "w": watermark}; nothing secret in it.

Known limits: vendors, bill payments and vendor credits cost one GET per record; attaching
an existing, unchanged file to a bill changes neither the file's nor (in NetSuite) the bill's
lastmodifieddate, so an incremental pass does not see that link: the next full pass does.
Accounts and tracking categories are read whole every pass (no deletion feed read for them yet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ValidationError

from accounting import Account, Bill, TrackingCategory
from connectors import mirror
from connectors.base import Rejected
from connectors.mirror import MirrorKind, MirrorRecord, SyncPage
from connectors.netsuite import wire
from connectors.netsuite.wire import JSON, CurrencyMap

log = logging.getLogger(__name__)

PLATFORM = "netsuite"
CURSOR_PREFIX = "netsuite-mirror:"
MAX_PAGE_SIZE = 1000
SAFETY_MARGIN = timedelta(seconds=2)
LISTED = "listed"
"""The watermark of a kind read whole every pass (accounts, tracking categories: no deletion
feed is read for them yet, so every pass is a full one and the sync infers deletions)."""


@dataclass(frozen=True)
class _Source:
    """Where one kind's pages come from."""

    table: str  # the SuiteQL table the keyset pages
    deleted_types: tuple[str, ...]  # its record types in `deletedrecord`
    condition: str = ""  # what else a row of the table must be to be of the kind
    record_type: str | None = None  # read each id from the record service (sublists)
    columns: tuple[str, ...] = ()  # else: these columns, the row mapped as it is


_LAST_MODIFIED = f"TO_CHAR(lastmodifieddate, '{wire.SUITEQL_MOMENT}') AS lastmodified"
_ITEM_RECORDS = (
    "inventoryitem",
    "noninventorypurchaseitem",
    "noninventoryresaleitem",
    "noninventorysaleitem",
    "servicepurchaseitem",
    "serviceresaleitem",
    "servicesaleitem",
)
_SOURCES: dict[MirrorKind, _Source] = {
    MirrorKind.vendors: _Source("vendor", ("vendor",), record_type="vendor"),
    MirrorKind.customers: _Source(
        "customer",
        ("customer",),
        columns=(
            "id",
            "entityid",
            "companyname",
            "isperson",
            "firstname",
            "lastname",
            "email",
            "currency",
            "subsidiary",
            "isinactive",
            "externalid",
        ),
    ),  # fmt: skip
    MirrorKind.items: _Source(
        "item",
        _ITEM_RECORDS,
        condition=f"itemtype IN ({', '.join(map(repr, wire.ITEM_TYPES))})",
        columns=(
            "id",
            "itemid",
            "displayname",
            "itemtype",
            "subtype",
            "purchasedescription",
            "description",
            "cost",
            "expenseaccount",
            "incomeaccount",
            "isinactive",
            "externalid",
        ),
    ),  # fmt: skip
    MirrorKind.subsidiaries: _Source(
        "subsidiary",
        ("subsidiary",),
        columns=("id", "name", "parent", "currency", "country", "isinactive", "externalid"),
    ),
    MirrorKind.tax_rates: _Source(
        "salestaxitem",
        ("salestaxitem",),
        columns=("id", "name", "description", "rate", "taxtype", "isinactive", "externalid"),
    ),
    MirrorKind.currencies: _Source(
        "currency",
        ("currency",),
        columns=("id", "name", "symbol", "isbasecurrency", "isinactive", "externalid"),
    ),
    MirrorKind.bills: _Source(
        "transaction",
        ("vendorbill",),
        condition="type = 'VendBill'",
        columns=(
            "id",
            "tranid",
            "entity",
            "TO_CHAR(trandate, 'YYYY-MM-DD') AS trandate",
            "TO_CHAR(duedate, 'YYYY-MM-DD') AS duedate",
            "currency",
            "exchangerate",
            "terms",
            "memo",
            "status",
            "foreigntotal",
            "foreignamountunpaid",
            "taxtotal",
            "externalid",
        ),
    ),  # fmt: skip
    MirrorKind.bill_payments: _Source(
        "transaction",
        ("vendorpayment",),
        condition="type = 'VendPymt'",
        record_type="vendorPayment",
    ),
    MirrorKind.vendor_credits: _Source(
        "transaction",
        ("vendorcredit",),
        condition="type = 'VendCred'",
        record_type="vendorCredit",
    ),
    MirrorKind.attachments: _Source(
        "file", ("file",), columns=("id", "name", "filetype", "filesize", "folder", "externalid")
    ),
}
KINDS: tuple[MirrorKind, ...] = (
    MirrorKind.vendors,
    MirrorKind.customers,
    MirrorKind.accounts,
    MirrorKind.tracking_categories,
    MirrorKind.items,
    MirrorKind.subsidiaries,
    MirrorKind.tax_rates,
    MirrorKind.currencies,
    MirrorKind.bills,
    MirrorKind.bill_payments,
    MirrorKind.vendor_credits,
    MirrorKind.attachments,
)

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


def _plain(row: JSON) -> JSON:
    return {k: v for k, v in row.items() if k != "links"}


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
        source = _SOURCES[kind]
        records: list[MirrorRecord] = []
        if state["ph"] == 0:
            where = [f"id > {int(state['l'])}"]
            if source.condition:
                where.append(source.condition)
            if moment is not None:
                where.append(f"lastmodifieddate > {_literal(moment)}")
            columns = ", ".join((*(source.columns or ("id",)), _LAST_MODIFIED))
            rows, clock = await self._query(
                f"SELECT {columns} FROM {source.table} WHERE {' AND '.join(where)} ORDER BY id",
                limit,
            )
            if state["w"] is None:
                state["w"] = ((clock or datetime.now(UTC)) - SAFETY_MARGIN).isoformat()
            records = await self._page_records(kind, source, rows)
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
        types = ", ".join(_sql_string(t) for t in source.deleted_types)
        rows, _ = await self._query(
            "SELECT recordid, type, deleteddate FROM deletedrecord WHERE "
            f"type IN ({types}) AND deleteddate > {_literal(moment)} "
            f"AND recordid > {int(state['l'])} ORDER BY recordid",
            limit,
        )
        records = [
            MirrorRecord(
                kind=kind,
                platform_id=str(row["recordid"]),
                platform_data=_plain(row),
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

    async def _page_records(
        self, kind: MirrorKind, source: _Source, rows: list[JSON]
    ) -> list[MirrorRecord]:
        if source.record_type is not None:
            return await self._records(kind, source.record_type, [str(r["id"]) for r in rows])
        if kind is MirrorKind.attachments:
            return await self._attachments(rows)
        if kind is MirrorKind.bills:
            return await self._bill_records(rows)
        currencies = await self._reads._currency_map()
        to_model: dict[MirrorKind, Callable[[JSON], BaseModel]] = {
            MirrorKind.customers: lambda row: wire.customer_from_suiteql(row, currencies),
            MirrorKind.items: wire.item_from_suiteql,
            MirrorKind.subsidiaries: lambda row: wire.subsidiary_from_suiteql(row, currencies),
            MirrorKind.currencies: wire.currency_from_suiteql,
            MirrorKind.tax_rates: wire.tax_rate_from_suiteql,
        }
        return _mapped(kind, rows, to_model[kind])

    async def _rows(self, statement: str, key: str) -> list[JSON]:
        """Every row of a statement (`... AND <key> > n ORDER BY <key>` pages appended)."""
        rows: list[JSON] = []
        last = -1
        while True:
            page, _ = await self._query(
                f"{statement} AND {key} > {last} ORDER BY {key}", MAX_PAGE_SIZE
            )
            rows += page
            if len(page) < MAX_PAGE_SIZE:
                return rows
            last = int(str(page[-1][key]))

    async def _names(self, table: str, ids: set[str], *columns: str) -> dict[str, JSON]:
        """Rows of `table` by id, for the ids given (a SuiteQL IN list of at most 1000)."""
        wanted = sorted({str(int(i)) for i in ids if str(i).isdigit()}, key=int)
        found: dict[str, JSON] = {}
        for start in range(0, len(wanted), MAX_PAGE_SIZE):
            chunk = ", ".join(wanted[start : start + MAX_PAGE_SIZE])
            rows, _ = await self._query(
                f"SELECT id, {', '.join(columns)} FROM {table} WHERE id IN ({chunk}) ORDER BY id",
                MAX_PAGE_SIZE,
            )
            found.update((str(row["id"]), row) for row in rows)
        return found

    async def _bill_records(self, headers: list[JSON]) -> list[MirrorRecord]:
        """A page of bills from SuiteQL alone: its `transaction` rows (the keyset query), their
        expense lines (`transactionline`), the vendors' and tracking categories' names, and
        (through the connector's _bills) their terms and payments. No GET per bill."""
        ids = [str(int(str(row["id"]))) for row in headers]
        if not ids:
            return []
        lines = await self._rows(
            "SELECT transaction, uniquekey, linesequencenumber, expenseaccount, memo, "
            "foreignamount, department, class, location, taxcode FROM transactionline WHERE "
            f"transaction IN ({', '.join(ids)}) AND mainline = 'F' AND taxline = 'F'",
            "uniquekey",
        )
        lines_of: dict[str, list[JSON]] = {}
        for line in sorted(lines, key=lambda r: int(str(r.get("linesequencenumber") or 0))):
            lines_of.setdefault(str(line["transaction"]), []).append(line)
        vendors = await self._names(
            "vendor", {str(h["entity"]) for h in headers if h.get("entity")}, "companyname",
            "entityid",
        )  # fmt: skip
        tracking: dict[tuple[str, str], str] = {}
        for table, field in (
            ("department", "department"), ("classification", "class"), ("location", "location")
        ):  # fmt: skip
            used = {str(line[field]) for line in lines if line.get(field)}
            for found_id, row in (await self._names(table, used, "name")).items():
                tracking[(field, found_id)] = str(row.get("name") or "")
        records: list[JSON] = []
        for header in headers:
            vendor = vendors.get(str(header.get("entity")), {})
            records.append(
                wire.bill_record_from_suiteql(
                    header,
                    lines_of.get(str(header["id"]), []),
                    vendor_name=vendor.get("companyname") or vendor.get("entityid"),
                    tracking_names=tracking,
                )
            )
        bills = await self._reads._bills(records)
        mirrored: list[MirrorRecord] = []
        for header, bill in zip(headers, bills, strict=True):
            lines_seen = [_plain(line) for line in lines_of.get(str(header["id"]), [])]
            mirrored.append(
                MirrorRecord(
                    kind=MirrorKind.bills,
                    platform_id=str(header["id"]),
                    data=bill.model_dump(mode="json"),
                    platform_data=scrub({**_plain(header), "lines": lines_seen}),
                    platform_updated_at=wire.parse_suiteql_moment(header.get("lastmodified")),
                )
            )
        return mirrored

    async def _attachments(self, files: list[JSON]) -> list[MirrorRecord]:
        """The page's files that are attached to a bill (two more queries, not one per file)."""
        ids = [str(int(str(row["id"]))) for row in files]
        if not ids:
            return []
        links, _ = await self._query(
            f"SELECT transaction, file FROM transactionfile WHERE file IN ({', '.join(ids)}) "
            "ORDER BY transaction",
            MAX_PAGE_SIZE,
        )
        linked = sorted({str(int(str(link["transaction"]))) for link in links}, key=int)
        bills: set[str] = set()
        if linked:
            rows, _ = await self._query(
                f"SELECT id FROM transaction WHERE type = 'VendBill' AND id IN "
                f"({', '.join(linked)}) ORDER BY id",
                MAX_PAGE_SIZE,
            )
            bills = {str(row["id"]) for row in rows}
        bill_of: dict[str, str] = {}
        for link in links:
            transaction, file_id = str(link["transaction"]), str(link["file"])
            if transaction in bills and (
                file_id not in bill_of or int(transaction) < int(bill_of[file_id])
            ):
                bill_of[file_id] = transaction
        return _mapped(
            MirrorKind.attachments,
            [row for row in files if str(row["id"]) in bill_of],
            lambda row: wire.attachment_from_suiteql(row, bill_of[str(row["id"])]),
        )

    async def _records(
        self, kind: MirrorKind, record_type: str, ids: list[str]
    ) -> list[MirrorRecord]:
        raws = [await self._reads._record(record_type, record_id) for record_id in ids]
        currencies = await self._reads._currency_map()
        models: list[Any]
        if kind is MirrorKind.vendors:
            models = [wire.vendor_from_netsuite(raw, currencies) for raw in raws]
        elif kind is MirrorKind.vendor_credits:
            models = [wire.credit_from_netsuite(raw, currencies) for raw in raws]
        else:
            models = [wire.payment_from_netsuite(raw, currencies) for raw in raws]
        return [
            MirrorRecord(
                kind=kind,
                platform_id=str(raw["id"]),
                data=model.model_dump(mode="json"),
                platform_data=scrub(_plain(raw)),
                platform_updated_at=wire.parse_datetime(raw.get("lastModifiedDate")),
            )
            for raw, model in zip(raws, models, strict=True)
        ]


def _mapped(
    kind: MirrorKind, rows: list[JSON], to_model: Callable[[JSON], BaseModel]
) -> list[MirrorRecord]:
    """Records of SuiteQL rows; a row the unified model cannot hold (a currency whose symbol
    is no ISO 4217 code) is skipped, with a warning."""
    records: list[MirrorRecord] = []
    for row in rows:
        try:
            model = to_model(row)
        except (ValueError, ValidationError, KeyError) as exc:
            log.warning(
                "NetSuite %s %s skipped from the mirror: %s", kind.value, row.get("id"), exc
            )
            continue
        records.append(
            MirrorRecord(
                kind=kind,
                platform_id=str(row["id"]),
                data=model.model_dump(mode="json"),
                platform_data=scrub(_plain(row)),
                platform_updated_at=wire.parse_suiteql_moment(row.get("lastmodified")),
            )
        )
    return records
