"""The books' mirror from Business Central: full passes by nextLink, changes by modification time.

A full pass (`since` None) pages each entity set by `@odata.nextLink`; an incremental pass asks
for `lastModifiedDateTime gt <watermark>`. Business Central's filter cannot show deletions
(its webhooks do), so deletions are what a full pass no longer sees. The watermark is the
server's clock (the HTTP `Date` of the pass's first answer) less a margin, so a record committed
while the first page was read is seen again rather than missed.

Cursor: "bcm1." + base64url JSON {"k": kind, "w": watermark, "n": nextLink | null, "o": offset};
nothing secret in it (the nextLink holds the company's API path, not a token).
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from accounting import Bill, BillPayment
from connectors import mirror
from connectors.base import Rejected
from connectors.business_central import wire
from connectors.business_central.wire import JSONObject
from connectors.http import HttpClient
from connectors.mirror import MirrorKind, MirrorRecord, SyncPage

PLATFORM = wire.PLATFORM_NAME
CURSOR_PREFIX = "bcm1."
# How far before the server's clock a pass's watermark is set (see the module docstring).
WATERMARK_MARGIN = timedelta(seconds=60)
KINDS = (
    MirrorKind.vendors,
    MirrorKind.accounts,
    MirrorKind.tracking_categories,
    MirrorKind.bills,
    MirrorKind.bill_payments,
)
_ENTITY_SETS = {
    MirrorKind.vendors: ("vendors", None),
    MirrorKind.accounts: ("accounts", None),
    MirrorKind.tracking_categories: ("dimensionValues", None),
    MirrorKind.bills: ("purchaseInvoices", "purchaseInvoiceLines($expand=dimensionSetLines)"),
}
_SECRET_KEYS = frozenset({"iban", "bankAccountNumber"})


def _server_time(response: httpx.Response) -> datetime:
    # The first Date only: a server in front may add its own.
    stamps = response.headers.get_list("date")
    stamp = stamps[0] if stamps else None
    if stamp:
        try:
            parsed = email.utils.parsedate_to_datetime(stamp)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _odata_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BusinessCentralReads(Protocol):
    """What the mirror uses of BusinessCentralConnector (a protocol: the connector imports
    this module)."""

    _company: str
    _client: HttpClient

    def _url(self, path: str) -> str: ...

    async def _all(self, path: str, params: dict[str, str] | None = None) -> list[JSONObject]: ...

    async def _bills(self, raws: list[JSONObject], reference: str | None = None) -> list[Bill]: ...

    async def _payments_from_entries(
        self, entries: list[JSONObject], *, reference: str | None = None
    ) -> list[BillPayment]: ...


class BusinessCentralMirror:
    """connectors.mirror.MirrorSource for one connector."""

    def __init__(self, connector: BusinessCentralReads) -> None:
        self.connector = connector

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return KINDS

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        if kind not in KINDS:
            raise Rejected(f"Business Central has no {kind.value} in the mirror", platform=PLATFORM)
        since_at = _parse_watermark(since)
        state: dict[str, Any] = (
            self._decode(cursor, kind) if cursor else {"k": kind.value, "n": None, "o": 0}
        )
        if kind is MirrorKind.bill_payments:
            return await self._payments_page(kind, since_at, state, page_size)
        entity_set, expand = _ENTITY_SETS[kind]
        params: dict[str, str] = {}
        if expand:
            params["$expand"] = expand
        if since_at is not None:
            params["$filter"] = f"lastModifiedDateTime gt {_odata_datetime(since_at)}"
        link = state.get("n")
        raws, next_link, server = await self._fetch(
            entity_set, params, str(link) if link else None, page_size
        )
        watermark = state.get("w") or _odata_datetime(server - WATERMARK_MARGIN)
        records = await self._records(kind, raws)
        next_cursor = self._encode({**state, "n": next_link, "w": watermark}) if next_link else None
        return SyncPage(kind=kind, records=records, next_cursor=next_cursor, watermark=watermark)

    async def _payments_page(
        self, kind: MirrorKind, since: datetime | None, state: dict[str, Any], page_size: int
    ) -> SyncPage:
        # A payment is several G/L entries that may fall on different pages: the pass reads
        # them all, then hands out whole payments a page at a time.
        where = "documentType eq 'Payment'"
        if since is not None:
            where += f" and lastModifiedDateTime gt {_odata_datetime(since)}"
        entries: list[JSONObject] = []
        link: str | None = None
        server: datetime | None = None
        while True:
            found, link, answered = await self._fetch(
                "generalLedgerEntries", {"$filter": where}, link, 1000
            )
            server = server or answered
            entries.extend(found)
            if link is None:
                break
        assert server is not None
        payments = await self.connector._payments_from_entries(entries)
        watermark = state.get("w") or _odata_datetime(server - WATERMARK_MARGIN)
        offset = int(state.get("o") or 0)
        chunk = payments[offset : offset + page_size]
        more = offset + page_size < len(payments)
        records = [self._payment_record(payment) for payment in chunk]
        next_cursor = (
            self._encode({**state, "o": offset + page_size, "w": watermark}) if more else None
        )
        return SyncPage(kind=kind, records=records, next_cursor=next_cursor, watermark=watermark)

    async def _fetch(
        self, entity_set: str, params: dict[str, str], link: str | None, page_size: int
    ) -> tuple[list[JSONObject], str | None, datetime]:
        connector = self.connector
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        if link and not link.startswith(connector._company + "/"):
            raise Rejected(
                "a Business Central mirror cursor for another company", platform=PLATFORM
            )

        def read(response: httpx.Response) -> tuple[JSONObject, datetime]:
            return connector._client.json_object(response), _server_time(response)

        payload, server = await connector._client.send(
            "GET",
            link or connector._url(entity_set),
            params=None if link else params,
            headers=headers,
            read=read,
        )
        raws = list(payload.get("value") or [])
        next_link = payload.get("@odata.nextLink")
        return raws, str(next_link) if next_link else None, server

    async def _records(self, kind: MirrorKind, raws: list[JSONObject]) -> list[MirrorRecord]:
        records = []
        if kind is MirrorKind.tracking_categories:
            dimensions = await self.connector._all("dimensions")
            models: list[Any] = wire.tracking_from_bc(dimensions, raws)
        elif kind is MirrorKind.bills:
            models = await self.connector._bills(raws)
        elif kind is MirrorKind.vendors:
            models = [wire.vendor_from_bc(raw) for raw in raws]
        else:
            models = [wire.account_from_bc(raw) for raw in raws]
        by_id = {str(raw["id"]): raw for raw in raws}
        for model in models:
            raw = by_id.get(str(model.id), {})
            records.append(
                MirrorRecord(
                    kind=kind,
                    platform_id=str(model.id),
                    data=model.model_dump(mode="json"),
                    platform_data=mirror.scrub(wire.loads(wire.dumps(raw)), _SECRET_KEYS),
                    platform_updated_at=wire.parse_datetime(raw.get("lastModifiedDateTime")),
                )
            )
        return records

    @staticmethod
    def _payment_record(payment: BillPayment) -> MirrorRecord:
        return MirrorRecord(
            kind=MirrorKind.bill_payments,
            platform_id=str(payment.id),
            data=payment.model_dump(mode="json"),
            platform_data={"documentNumber": payment.id},
            platform_updated_at=payment.updated_at,
        )

    @staticmethod
    def _encode(state: dict[str, Any]) -> str:
        return mirror.encode_page_cursor(CURSOR_PREFIX, state)

    @staticmethod
    def _decode(cursor: str, kind: MirrorKind) -> dict[str, Any]:
        state = mirror.decode_page_cursor(
            CURSOR_PREFIX, cursor, platform=PLATFORM, label="a Business Central mirror cursor"
        )
        if not isinstance(state, dict) or state.get("k") != kind.value:
            raise Rejected(
                f"a Business Central mirror cursor not given for {kind.value}", platform=PLATFORM
            )
        return state


def _parse_watermark(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        parsed = wire.parse_datetime(since)
    except ValueError as exc:
        raise Rejected(
            f"not a Business Central watermark: {since[:40]!r}", platform=PLATFORM
        ) from exc
    if parsed is None:
        raise Rejected("an empty Business Central watermark", platform=PLATFORM)
    return parsed
