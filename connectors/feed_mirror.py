"""A MirrorSource over any Connector: its listings and its change feed (`changes_since`).

Platforms whose connector reads the mirror natively (every kind, its own paging, deletions
from its own feed) implement `connectors.mirror.MirrorSource` themselves and are used as they
are; for the others this gives the kinds every Connector already reads: vendors, bills and
bill payments from the change feed, accounts and tracking categories from their listings.
What it cannot give: deletions in an incremental pass (a full pass finds them), and a bounded
page (the feed answers in one piece).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from connectors.base import Changes, Connector, Rejected
from connectors.mirror import MirrorKind, MirrorRecord, MirrorSource, SyncPage

FEED_KINDS = (MirrorKind.vendors, MirrorKind.bills, MirrorKind.bill_payments)
LISTED_KINDS = (MirrorKind.accounts, MirrorKind.tracking_categories)
LISTED = "listed"
"""The watermark of a kind read whole every pass (no change feed for it): it has been read."""
_FEED_REUSE_SECONDS = 120.0
"""How long one feed answer serves the other feed kinds of the same pass (one call, three
kinds): long enough for a pass, short enough that a later pass asks again."""


def _record(kind: MirrorKind, model: BaseModel) -> MirrorRecord:
    data: dict[str, Any] = model.model_dump(mode="json")
    updated = getattr(model, "updated_at", None)
    return MirrorRecord(
        kind=kind,
        platform_id=str(data.get("id") or ""),
        data=data,
        platform_updated_at=updated if isinstance(updated, datetime) else None,
    )


class FeedMirror:
    """connectors.mirror.MirrorSource for a Connector that has only the common reads."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._feed: dict[str | None, tuple[float, Changes]] = {}

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return (*LISTED_KINDS, *FEED_KINDS)

    async def _changes(self, since: str | None) -> Changes:
        now = time.monotonic()
        cached = self._feed.get(since)
        if cached is not None and now - cached[0] < _FEED_REUSE_SECONDS:
            return cached[1]
        changes = await self._connector.changes_since(since)
        self._feed = {since: (now, changes)}
        return changes

    async def read_mirror_page(
        self,
        kind: MirrorKind,
        *,
        since: str | None,
        cursor: str | None,
        page_size: int,
    ) -> SyncPage:
        if cursor is not None:
            raise Rejected(
                f"not a cursor of this listing: {cursor!r}", platform=self._connector.platform
            )
        if kind is MirrorKind.accounts:
            accounts = await self._connector.list_accounts()
            return SyncPage(
                kind=kind, records=[_record(kind, a) for a in accounts], watermark=LISTED
            )
        if kind is MirrorKind.tracking_categories:
            categories = await self._connector.list_tracking_categories()
            return SyncPage(
                kind=kind, records=[_record(kind, c) for c in categories], watermark=LISTED
            )
        if kind not in FEED_KINDS:
            raise Rejected(
                f"{self._connector.platform} has no {kind.value} here",
                platform=self._connector.platform,
            )
        changes = await self._changes(since)
        feed: dict[MirrorKind, list[Any]] = {
            MirrorKind.vendors: list(changes.vendors),
            MirrorKind.bills: list(changes.bills),
            MirrorKind.bill_payments: list(changes.bill_payments),
        }
        models = feed[kind]
        records = [_record(kind, model) for model in models if getattr(model, "id", None)]
        return SyncPage(kind=kind, records=records, watermark=changes.cursor or None)


def mirror_source(connector: Connector) -> MirrorSource:
    """The connector itself where it reads the mirror natively, else FeedMirror over it."""
    if callable(getattr(connector, "read_mirror_page", None)) and callable(
        getattr(connector, "mirror_kinds", None)
    ):
        return connector  # type: ignore[return-value]
    return FeedMirror(connector)
