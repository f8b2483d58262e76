"""BooksReader: the customer's books as the mirror holds them, for the API and Python callers.

Every read comes from the store (never the platform): vendors, accounts, bills and the rest,
paged, filtered, each answer saying when its kind was last synced and whether a sync runs now.
Money stays exact: unified amounts are the strings the accounting model wrote (trimmed to the
currency's minor units where that loses nothing), the platform's own numbers stay Decimal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from accounting.money import as_written
from connectors.mirror import MirrorKind
from store import Store
from store.mirror import MirrorRow, MirrorStore, SyncRunRow

MONEY_KEYS = frozenset(
    {"total", "balance", "tax_amount", "amount", "discount", "remaining", "purchase_cost"}
)
"""Unified fields that hold money in the record's `currency` (see accounting/model.py)."""

BILL_LINKED = (MirrorKind.bills, MirrorKind.bill_payments, MirrorKind.vendor_credits)
"""Kinds whose rows name their vendor (the `vendor_id` filter)."""
HAS_ACTIVE = frozenset(MirrorKind) - {
    MirrorKind.bills,
    MirrorKind.bill_payments,
    MirrorKind.vendor_credits,
    MirrorKind.attachments,
}
"""Kinds whose rows are active or inactive (the `status` filter: active / inactive)."""


def _written(value: Any, currency: str | None) -> Any:
    if currency is None or isinstance(value, bool):
        return value
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return value
    if not amount.is_finite():
        return value
    exact = as_written(amount, currency)
    # Strings stay strings (as the model wrote them); Decimal stays a JSON number.
    return f"{exact:f}" if isinstance(value, str) else exact


def exact_money(data: Any, currency: str | None = None) -> Any:
    """`data` with every money field at its currency's minor units when exact (`900.000000` →
    `900.00`), never rounded, never a float; nested lines use their document's currency."""
    if isinstance(data, dict):
        own = data.get("currency")
        currency = own if isinstance(own, str) else currency
        return {
            key: _written(value, currency)
            if key in MONEY_KEYS and not isinstance(value, dict | list)
            else exact_money(value, currency)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [exact_money(item, currency) for item in data]
    return data


def object_view(row: MirrorRow, *, platform_data: bool = False) -> dict[str, Any]:
    """One mirror row as the API answers it (`platform_data` only when asked for)."""
    view: dict[str, Any] = {
        "id": row.platform_id,
        "kind": row.kind,
        "status": row.status,
        "data": exact_money(row.data),
        "platform_updated_at": row.platform_updated_at,
        "last_synced_at": row.last_synced_at,
        "deleted": row.deleted_at is not None,
        "deleted_at": row.deleted_at,
    }
    if platform_data:
        view["platform_data"] = row.platform_data
    return view


def run_view(run: SyncRunRow) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "connection_id": run.connection_id,
        "mode": run.mode,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "objects_changed": run.objects_changed,
        "counts": dict(run.counts),
        "errors": list(run.errors),
        "workflow_id": run.workflow_id,
    }


@dataclass(frozen=True)
class ListFilters:
    """The filters a listing takes (which apply depends on the kind: `filters_for`)."""

    updated_since: datetime | None = None
    status: str | None = None
    vendor_id: str | None = None
    account_type: str | None = None
    bill_id: str | None = None
    include_deleted: bool = False


def filters_for(kind: MirrorKind) -> tuple[str, ...]:
    """The filter names that make sense for `kind` (the API's query parameters)."""
    names = ["updated_since", "include_deleted"]
    if kind in HAS_ACTIVE or kind == MirrorKind.bills:
        names.append("status")
    if kind in BILL_LINKED:
        names.append("vendor_id")
    if kind == MirrorKind.accounts:
        names.append("account_type")
    if kind == MirrorKind.attachments:
        names.append("bill_id")
    return tuple(names)


class BooksReader:
    """Reads of one store's mirror; synchronous (call it in a thread from async code)."""

    def __init__(self, mirror: MirrorStore) -> None:
        self.mirror = mirror

    @classmethod
    def of(cls, store: Store) -> BooksReader:
        return cls(MirrorStore(store))

    def sync_state(self, connection_id: str) -> dict[str, Any]:
        """The newest sync run, and whether one is running now."""
        runs = list(self.mirror.list_runs(connection_id, limit=1))
        latest = runs[0] if runs else None
        return {
            "running": latest is not None and latest.status == "running",
            "latest_run": run_view(latest) if latest is not None else None,
        }

    def page(
        self,
        connection_id: str,
        kind: MirrorKind,
        filters: ListFilters,
        *,
        limit: int = 100,
        cursor: str | None = None,
        platform_data: bool = False,
    ) -> dict[str, Any]:
        """One page: `data`, `has_more`, `next_cursor`, `last_synced_at`, `sync`. Raises
        store.db.InvalidCursor for a cursor this store did not give."""
        listing = self.mirror.list(
            connection_id,
            kind,
            updated_since=filters.updated_since,
            status=filters.status,
            vendor_id=filters.vendor_id,
            account_type=filters.account_type,
            parent_id=filters.bill_id,
            include_deleted=filters.include_deleted,
            limit=limit,
            cursor=cursor,
        )
        return {
            "object": "list",
            "kind": kind.value,
            "connection_id": connection_id,
            "data": [object_view(row, platform_data=platform_data) for row in listing.items],
            "has_more": listing.next_cursor is not None,
            "next_cursor": listing.next_cursor,
            "last_synced_at": listing.last_synced_at,
            "sync": self.sync_state(connection_id),
        }

    def all_rows(
        self, connection_id: str, kind: MirrorKind, filters: ListFilters
    ) -> Iterator[MirrorRow]:
        cursor: str | None = None
        while True:
            listing = self.mirror.list(
                connection_id,
                kind,
                vendor_id=filters.vendor_id,
                parent_id=filters.bill_id,
                include_deleted=filters.include_deleted,
                limit=500,
                cursor=cursor,
            )
            yield from listing.items
            cursor = listing.next_cursor
            if cursor is None:
                return

    def one(
        self, connection_id: str, kind: MirrorKind, platform_id: str, *, platform_data: bool
    ) -> dict[str, Any] | None:
        """One object (a deleted one too, marked so), or None; a bill with its payments and
        attachments."""
        row: MirrorRow | None = self.mirror.get(connection_id, kind, platform_id)
        if row is None:
            return None
        view = object_view(row, platform_data=platform_data)
        if kind == MirrorKind.bills:
            view["payments"] = [
                object_view(payment, platform_data=platform_data)
                for payment in self.payments_of(row)
            ]
            view["attachments"] = [
                object_view(attachment, platform_data=platform_data)
                for attachment in self.all_rows(
                    connection_id, MirrorKind.attachments, ListFilters(bill_id=platform_id)
                )
            ]
        view["last_synced_at_kind"] = self.mirror.last_synced_at(connection_id, kind)
        view["sync"] = self.sync_state(connection_id)
        return view

    def payments_of(self, bill: MirrorRow) -> list[MirrorRow]:
        """The live payments whose lines name this bill (the vendor's payments, read through)."""
        found: dict[str, MirrorRow] = {}
        rows: Iterator[MirrorRow] = self.all_rows(
            bill.connection_id,
            MirrorKind.bill_payments,
            ListFilters(vendor_id=bill.vendor_id or bill.data.get("vendor_id")),
        )
        for payment in rows:
            lines = payment.data.get("lines") or []
            if any(str(line.get("bill_id")) == bill.platform_id for line in lines):
                found[payment.platform_id] = payment
        # A payment the bill names but whose lines were zeroed (a void) still belongs to it.
        for payment_id in bill.data.get("payment_ids") or []:
            if str(payment_id) not in found:
                named = self.mirror.get(
                    bill.connection_id, MirrorKind.bill_payments, str(payment_id)
                )
                if named is not None:
                    found[named.platform_id] = named
        return list(found.values())

    def counts(self, connection_id: str) -> dict[str, int]:
        return dict(self.mirror.counts(connection_id))

    def runs(self, connection_id: str, *, limit: int = 20) -> list[dict[str, Any]]:
        return [run_view(run) for run in self.mirror.list_runs(connection_id, limit=limit)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        found = self.mirror.get_run(run_id)
        return run_view(found) if found is not None else None

    def summary(self, connection_id: str, *, runs: int = 10) -> dict[str, Any]:
        """What `remit connections show` prints: mirror counts per kind, last synced (overall
        and per kind), the last sync runs."""
        return {
            "connection_id": connection_id,
            "counts": self.counts(connection_id),
            "last_synced_at": self.mirror.last_synced_at(connection_id),
            "kinds_last_synced_at": {
                kind.value: self.mirror.last_synced_at(connection_id, kind) for kind in MirrorKind
            },
            "runs": self.runs(connection_id, limit=runs),
        }
