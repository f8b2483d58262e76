"""The books' mirror: each connection's ERP objects as last synced, their watermarks, sync runs.

The ERP is the source of truth; the mirror is what remit last read of it, so the read API can
answer without a call to the platform and sync can tell what changed. One table holds every
kind (the unified fields and the platform's own as JSON, with the few columns the read API
filters on pulled out), because the kinds change together and are read the same way.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, Index, Integer, String, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session

from connectors.mirror import MirrorKind, MirrorRecord
from store.db import InvalidCursor, Store, decode_cursor, encode_cursor
from store.models import _id, _json, _StoreModel, _timestamp
from store.types import utcnow

MAX_LIST_LIMIT = 500
_BATCH = 500
"""Rows per statement: well under SQLite's and PostgreSQL's bound-parameter limits."""


class MirrorRow(_StoreModel, table=True):
    """One ERP object of one connection as last synced (deleted ones kept, marked)."""

    __tablename__ = "mirror_objects"
    __table_args__ = (
        Index("ix_mirror_objects_updated", "connection_id", "kind", "platform_updated_at"),
        Index("ix_mirror_objects_status", "connection_id", "kind", "status"),
        Index("ix_mirror_objects_vendor_id", "connection_id", "kind", "vendor_id"),
        Index("ix_mirror_objects_parent_id", "connection_id", "kind", "parent_id"),
        Index("ix_mirror_objects_last_synced_at", "connection_id", "kind", "last_synced_at"),
    )

    connection_id: str = _id(primary_key=True)
    kind: str = Field(sa_column=Column(String(32), primary_key=True))
    platform_id: str = _id(primary_key=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))
    platform_data: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(_json(), nullable=False)
    )
    platform_updated_at: datetime | None = _timestamp(nullable=True)
    last_synced_at: datetime = _timestamp(nullable=False)
    deleted_at: datetime | None = _timestamp(nullable=True)
    status: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    vendor_id: str | None = _id(nullable=True)
    account_type: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    parent_id: str | None = _id(nullable=True)
    content_hash: str = Field(sa_column=Column(String(64), nullable=False))
    seen_run: str | None = Field(
        default=None,
        sa_column=Column(String(64), nullable=True),
        description="the sync run that last saw it: a full pass sweeps what it did not see",
    )


class MirrorKindRow(_StoreModel, table=True):
    """Where the next incremental pass of one kind starts, and when the last pass finished."""

    __tablename__ = "mirror_watermarks"

    connection_id: str = _id(primary_key=True)
    kind: str = Field(sa_column=Column(String(32), primary_key=True))
    watermark: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    last_synced_at: datetime = _timestamp(nullable=False)


class SyncRunRow(_StoreModel, table=True):
    """One sync of one connection: when, why, what changed per kind, what went wrong."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_connection_id_started_at", "connection_id", "started_at"),
    )

    run_id: str = _id(primary_key=True)
    connection_id: str = _id()
    mode: str = Field(sa_column=Column(String(16), nullable=False))
    trigger: str = Field(sa_column=Column(String(16), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    started_at: datetime = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp(nullable=True)
    objects_changed: int = Field(default=0, sa_column=Column(Integer(), nullable=False))
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))
    errors: list[str] = Field(default_factory=list, sa_column=Column(_json(), nullable=False))
    workflow_id: str = _id()


@dataclass(frozen=True)
class ApplyResult:
    created: int
    updated: int
    deleted: int
    unchanged: int
    changed_bill_ids: list[str]
    new_bill_ids: list[str] = field(default_factory=list)
    """Bills the mirror did not have before (a subset of changed_bill_ids)."""

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deleted


@dataclass(frozen=True)
class MirrorListing:
    items: list[MirrorRow]
    next_cursor: str | None
    last_synced_at: datetime | None


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def content_hash(record: MirrorRecord) -> str:
    canonical = json.dumps(
        [record.data, record.platform_data, record.deleted],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _status(record: MirrorRecord) -> str | None:
    data = record.data
    if record.kind is MirrorKind.bills:
        return str(data["status"]) if data.get("status") else None
    if record.kind is MirrorKind.bill_payments:
        return "void" if data.get("voided") else "posted"
    if "active" in data:
        return "active" if data["active"] else "inactive"
    return None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _columns(record: MirrorRecord) -> dict[str, Any]:
    data = record.data
    return {
        "status": _status(record),
        "vendor_id": _text(data.get("vendor_id")),
        "account_type": _text(data.get("account_type"))
        if record.kind is MirrorKind.accounts
        else None,
        "parent_id": _text(data.get("bill_id")) if record.kind is MirrorKind.attachments else None,
    }


def _decode_cursor(cursor: str, kind: MirrorKind) -> str:
    listing, platform_id = decode_cursor(cursor, "mirror", str, str)
    if listing != kind.value:
        raise InvalidCursor(f"this cursor does not continue a listing of {kind.value}")
    return str(platform_id)


class MirrorStore:
    """The mirror's rows, watermarks and sync runs. Synchronous, like Store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self._dialect = store.engine.dialect.name

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _insert(self, model: type[Any]) -> Any:
        table = _table(model)
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- objects ---------------------------------------------------------------------------

    def apply(
        self,
        connection_id: str,
        records: Sequence[MirrorRecord],
        *,
        synced_at: datetime,
        run_id: str | None = None,
    ) -> ApplyResult:
        """Upsert a page of records: new and changed ones written, unchanged ones only marked
        as seen, deletions marked. Safe to repeat (a retried page changes nothing more)."""
        created = updated = deleted = unchanged = 0
        changed_bills: list[str] = []
        new_bills: list[str] = []
        table = _table(MirrorRow)
        # The last word on an object within one page wins (a page may repeat one).
        latest: dict[tuple[str, str], MirrorRecord] = {}
        for record in records:
            latest[(record.kind.value, record.platform_id)] = record
        with self._session() as session:
            for kind in {k for k, _ in latest}:
                ids = [pid for k, pid in latest if k == kind]
                for start in range(0, len(ids), _BATCH):
                    batch = ids[start : start + _BATCH]
                    found = {
                        row.platform_id: (row.content_hash, row.deleted_at)
                        for row in session.execute(
                            select(
                                table.c.platform_id, table.c.content_hash, table.c.deleted_at
                            ).where(
                                table.c.connection_id == connection_id,
                                table.c.kind == kind,
                                table.c.platform_id.in_(batch),
                            )
                        )
                    }
                    writes: list[dict[str, Any]] = []
                    seen: list[str] = []
                    gone: list[tuple[str, datetime | None]] = []
                    for platform_id in batch:
                        record = latest[(kind, platform_id)]
                        digest = content_hash(record)
                        before = found.get(platform_id)
                        if record.deleted:
                            if before is None or before[1] is not None:
                                if before is not None:
                                    seen.append(platform_id)
                                    unchanged += 1
                                continue  # never had it, or already gone: nothing to tell
                            deleted += 1
                            if not record.data:
                                # A bare deletion keeps the object's last known fields: the
                                # mirror can still say what was deleted.
                                gone.append((platform_id, record.platform_updated_at))
                                if record.kind is MirrorKind.bills:
                                    changed_bills.append(platform_id)
                                continue
                        elif before is None:
                            created += 1
                            if record.kind is MirrorKind.bills:
                                new_bills.append(platform_id)
                        elif before[0] == digest and before[1] is None:
                            seen.append(platform_id)
                            unchanged += 1
                            continue
                        else:
                            updated += 1
                        if record.kind is MirrorKind.bills:
                            changed_bills.append(platform_id)
                        writes.append(
                            {
                                "connection_id": connection_id,
                                "kind": kind,
                                "platform_id": platform_id,
                                "data": record.data,
                                "platform_data": record.platform_data,
                                "platform_updated_at": record.platform_updated_at,
                                "last_synced_at": synced_at,
                                "deleted_at": synced_at if record.deleted else None,
                                "content_hash": digest,
                                "seen_run": run_id,
                                **_columns(record),
                            }
                        )
                    if writes:
                        insert = self._insert(MirrorRow)
                        keep = {"connection_id", "kind", "platform_id"}
                        statement = insert.on_conflict_do_update(
                            index_elements=list(table.primary_key.columns),
                            set_={
                                name: insert.excluded[name]
                                for name in writes[0]
                                if name not in keep
                            },
                        )
                        session.execute(statement, writes)
                    for platform_id, modified in gone:
                        values: dict[str, Any] = {
                            "deleted_at": synced_at,
                            "last_synced_at": synced_at,
                            "content_hash": "deleted",
                            "seen_run": run_id,
                        }
                        if modified is not None:
                            values["platform_updated_at"] = modified
                        session.execute(
                            update(table)
                            .where(
                                table.c.connection_id == connection_id,
                                table.c.kind == kind,
                                table.c.platform_id == platform_id,
                            )
                            .values(**values)
                        )
                    if seen:
                        session.execute(
                            update(table)
                            .where(
                                table.c.connection_id == connection_id,
                                table.c.kind == kind,
                                table.c.platform_id.in_(seen),
                            )
                            .values(last_synced_at=synced_at, seen_run=run_id)
                        )
            session.commit()
        return ApplyResult(created, updated, deleted, unchanged, changed_bills, new_bills)

    def sweep_unseen(
        self,
        connection_id: str,
        kind: MirrorKind,
        *,
        run_id: str | None = None,
        not_seen_since: datetime | None = None,
    ) -> builtins.list[str]:
        """After a full pass: what the pass did not see is gone from the platform.

        By `run_id` (what that run did not mark seen; no clock involved, so workers' clocks
        may disagree) or, without one, by `not_seen_since` (rows last synced before it)."""
        table = _table(MirrorRow)
        if run_id is not None:
            unseen = or_(table.c.seen_run.is_(None), table.c.seen_run != run_id)
        elif not_seen_since is not None:
            unseen = table.c.last_synced_at < not_seen_since
        else:
            raise ValueError("sweep_unseen needs the run's id or a time")
        where = and_(
            table.c.connection_id == connection_id,
            table.c.kind == kind.value,
            table.c.deleted_at.is_(None),
            unseen,
        )
        marked_at = not_seen_since or utcnow()
        with self._session() as session:
            gone = [row[0] for row in session.execute(select(table.c.platform_id).where(where))]
            if gone:
                session.execute(update(table).where(where).values(deleted_at=marked_at))
                session.commit()
        return gone

    def list(
        self,
        connection_id: str,
        kind: MirrorKind,
        *,
        updated_since: datetime | None = None,
        status: str | None = None,
        vendor_id: str | None = None,
        account_type: str | None = None,
        parent_id: str | None = None,
        include_deleted: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MirrorListing:
        """A page of one kind in platform-id order (stable under concurrent syncs)."""
        table = _table(MirrorRow)
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        clauses = [table.c.connection_id == connection_id, table.c.kind == kind.value]
        if not include_deleted:
            clauses.append(table.c.deleted_at.is_(None))
        if updated_since is not None:
            # Objects the platform gives no modified time are compared by when remit saw them.
            clauses.append(
                or_(
                    table.c.platform_updated_at > updated_since,
                    and_(
                        table.c.platform_updated_at.is_(None),
                        table.c.last_synced_at > updated_since,
                    ),
                )
            )
        for column, value in (
            (table.c.status, status),
            (table.c.vendor_id, vendor_id),
            (table.c.account_type, account_type),
            (table.c.parent_id, parent_id),
        ):
            if value is not None:
                clauses.append(column == value)
        if cursor:
            clauses.append(table.c.platform_id > _decode_cursor(cursor, kind))
        statement = select(MirrorRow).where(*clauses).order_by(table.c.platform_id).limit(limit + 1)
        with self._session() as session:
            rows = builtins.list(session.exec(statement).scalars())  # type: ignore[call-overload]
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            encode_cursor("mirror", kind.value, rows[-1].platform_id) if more and rows else None
        )
        return MirrorListing(rows, next_cursor, self.last_synced_at(connection_id, kind))

    def get(self, connection_id: str, kind: MirrorKind, platform_id: str) -> MirrorRow | None:
        with self._session() as session:
            return session.get(MirrorRow, (connection_id, kind.value, platform_id))

    def counts(self, connection_id: str) -> dict[str, int]:
        table = _table(MirrorRow)
        with self._session() as session:
            rows = session.execute(
                select(table.c.kind, func.count())
                .where(table.c.connection_id == connection_id, table.c.deleted_at.is_(None))
                .group_by(table.c.kind)
            )
            return {kind: int(count) for kind, count in rows}

    def bills_paid_by(self, connection_id: str, bill_id: str) -> builtins.list[MirrorRow]:
        """The mirror's bill payments with a line for `bill_id` (JSON lines: filtered here;
        a bill has a handful of payments and its vendor's are indexed)."""
        bill = self.get(connection_id, MirrorKind.bills, bill_id)
        if bill is None:
            return []
        table = _table(MirrorRow)
        statement = select(MirrorRow).where(
            table.c.connection_id == connection_id,
            table.c.kind == MirrorKind.bill_payments.value,
            table.c.vendor_id == bill.vendor_id,
        )
        with self._session() as session:
            rows = builtins.list(session.exec(statement).scalars())  # type: ignore[call-overload]
        return [
            row
            for row in rows
            if any(line.get("bill_id") == bill_id for line in row.data.get("lines") or [])
        ]

    def recent_vendor_bills(
        self, connection_id: str, vendor_id: str, *, limit: int
    ) -> builtins.list[dict[str, Any]]:
        """The vendor's last `limit` bills as the mirror has them (the unified Bill's JSON),
        newest first: by issue date, then by when the platform last changed them. Void and
        deleted bills are left out (their coding no longer stands)."""
        table = _table(MirrorRow)
        issued = table.c.data["issue_date"].as_string()
        statement = (
            select(table.c.data)
            .where(
                table.c.connection_id == connection_id,
                table.c.kind == MirrorKind.bills.value,
                table.c.vendor_id == vendor_id,
                table.c.deleted_at.is_(None),
                or_(table.c.status.is_(None), table.c.status != "void"),
            )
            .order_by(
                issued.desc(),
                table.c.platform_updated_at.desc().nulls_last(),
                table.c.platform_id.desc(),
            )
            .limit(max(1, min(limit, MAX_LIST_LIMIT)))
        )
        with self._session() as session:
            return [dict(row[0]) for row in session.execute(statement)]

    # -- watermarks -------------------------------------------------------------------------

    def watermark(self, connection_id: str, kind: MirrorKind) -> str | None:
        with self._session() as session:
            row = session.get(MirrorKindRow, (connection_id, kind.value))
            return row.watermark if row else None

    def set_watermark(
        self,
        connection_id: str,
        kind: MirrorKind,
        watermark: str | None,
        *,
        synced_at: datetime,
    ) -> None:
        insert = self._insert(MirrorKindRow).values(
            connection_id=connection_id,
            kind=kind.value,
            watermark=watermark,
            last_synced_at=synced_at,
        )
        statement = insert.on_conflict_do_update(
            index_elements=["connection_id", "kind"],
            set_={"watermark": insert.excluded.watermark, "last_synced_at": synced_at},
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()

    def last_synced_at(self, connection_id: str, kind: MirrorKind | None = None) -> datetime | None:
        """When the last pass of `kind` finished (any kind: the oldest of them, so "synced at"
        never claims more than every kind has)."""
        table = _table(MirrorKindRow)
        with self._session() as session:
            if kind is not None:
                row = session.get(MirrorKindRow, (connection_id, kind.value))
                return row.last_synced_at if row else None
            value = session.execute(
                select(func.min(table.c.last_synced_at)).where(
                    table.c.connection_id == connection_id
                )
            ).scalar()
            return cast(datetime | None, value)

    # -- sync runs --------------------------------------------------------------------------

    def start_run(
        self,
        *,
        run_id: str,
        connection_id: str,
        mode: str,
        trigger: str,
        workflow_id: str,
        started_at: datetime,
    ) -> SyncRunRow:
        insert = self._insert(SyncRunRow).values(
            run_id=run_id,
            connection_id=connection_id,
            mode=mode,
            trigger=trigger,
            status="running",
            started_at=started_at,
            objects_changed=0,
            counts={},
            errors=[],
            workflow_id=workflow_id,
        )
        with self._session() as session:
            session.execute(insert.on_conflict_do_nothing(index_elements=["run_id"]))
            session.commit()
            row = session.get(SyncRunRow, run_id)
            assert row is not None
            return row

    def add_progress(
        self, run_id: str, *, changed: dict[str, int], errors: Sequence[str] = ()
    ) -> None:
        with self._session() as session:
            row = session.get(SyncRunRow, run_id, with_for_update=True)
            if row is None:
                return
            counts = dict(row.counts)
            for kind, count in changed.items():
                counts[kind] = counts.get(kind, 0) + count
            row.counts = counts
            row.objects_changed = sum(counts.values())
            if errors:
                row.errors = [*row.errors, *errors]
            session.add(row)
            session.commit()

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        objects_changed: int,
        counts: dict[str, int],
        errors: builtins.list[str],
        finished_at: datetime,
    ) -> SyncRunRow:
        with self._session() as session:
            row = session.get(SyncRunRow, run_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no sync run {run_id!r}")
            row.status = status
            row.objects_changed = objects_changed
            row.counts = dict(counts)
            row.errors = list(errors)
            row.finished_at = finished_at
            session.add(row)
            session.commit()
            return row

    def list_runs(self, connection_id: str, *, limit: int = 20) -> builtins.list[SyncRunRow]:
        table = _table(SyncRunRow)
        statement = (
            select(SyncRunRow)
            .where(table.c.connection_id == connection_id)
            .order_by(table.c.started_at.desc(), table.c.run_id.desc())
            .limit(max(1, min(limit, MAX_LIST_LIMIT)))
        )
        with self._session() as session:
            return builtins.list(session.exec(statement).scalars())  # type: ignore[call-overload]

    def get_run(self, run_id: str) -> SyncRunRow | None:
        with self._session() as session:
            return session.get(SyncRunRow, run_id)
