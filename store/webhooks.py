"""Outbound webhooks in the store: endpoints, the events table, deliveries and their attempt log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlmodel import Field, Session

from store.db import RecordNotFound, Store
from store.models import ID_LENGTH, _id, _json, _StoreModel, _text, _timestamp
from store.types import UTCDateTime, utcnow

ENDPOINT_STATUSES = ("enabled", "disabled")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
EVENT_ID_LENGTH = 500


class WebhookEndpointRow(_StoreModel, table=True):
    """A receiver's URL, the event types it wants, and its signing secret (encrypted)."""

    __tablename__ = "webhook_endpoints"

    id: str = _id(primary_key=True)
    url: str = Field(sa_column=Column(String(2000), nullable=False))
    description: str | None = _text(500, nullable=True)
    event_types: list[str] = Field(default_factory=list, sa_column=Column(_json(), nullable=False))
    status: str = Field(
        default="enabled",
        sa_column=Column(String(32), nullable=False),
        description="enabled or disabled",
    )
    disabled_reason: str | None = _text(nullable=True)
    # Sealed by the caller (SecretBox); kept out of repr so it never reaches a log line.
    secret_encrypted: bytes = Field(repr=False, sa_column=Column(LargeBinary(), nullable=False))
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)

    def wants(self, event_type: str) -> bool:
        return self.status == "enabled" and event_type in self.event_types


class WebhookEventRow(_StoreModel, table=True):
    """One event remit published, kept so deliveries can be replayed later."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_created_at", "created_at", "id"),
        Index("ix_webhook_events_subject_dispatched_at", "subject", "dispatched_at"),
        Index("ix_webhook_events_dispatched_at_created_at", "dispatched_at", "created_at"),
    )

    id: str = Field(sa_column=Column(String(EVENT_ID_LENGTH), primary_key=True))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    subject: str = Field(
        sa_column=Column(String(ID_LENGTH), nullable=False),
        description="what the event is about: a bill's workflow id, a connection id",
    )
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))
    created_at: datetime = _timestamp(nullable=False)
    dispatched_at: datetime | None = _timestamp(nullable=True)


class WebhookDeliveryRow(_StoreModel, table=True):
    """One event on its way to one endpoint: a row of the outbox the worker's dispatcher sends.

    Deliveries from before the outbox have no `next_attempt_at`: their own workflow (whose id
    is this id) delivers them, and the dispatcher leaves them alone.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
        Index("ix_webhook_deliveries_created_at", "created_at"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: str = Field(sa_column=Column(String(1000), primary_key=True))
    endpoint_id: str = _id()
    event_id: str = Field(sa_column=Column(String(EVENT_ID_LENGTH), nullable=False))
    event_type: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(
        default="pending",
        sa_column=Column(String(32), nullable=False),
        description="pending, delivered or failed",
    )
    attempts: int = Field(default=0, sa_column=Column(Integer(), nullable=False))
    last_status_code: int | None = Field(default=None, sa_column=Column(Integer(), nullable=True))
    last_error: str | None = _text(nullable=True)
    replay_of: str | None = _text(1000, nullable=True)
    created_at: datetime = _timestamp(nullable=False)
    completed_at: datetime | None = _timestamp(nullable=True)
    next_attempt_at: datetime | None = Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=True),
        description="when the dispatcher sends the next attempt; None once finished, and for "
        "deliveries a workflow of their own sends",
    )
    claimed_by: str | None = Field(
        default=None,
        sa_column=Column(String(64), nullable=True),
        description="the dispatcher holding the delivery while it sends an attempt",
    )
    claimed_until: datetime | None = Field(
        default=None,
        sa_column=Column(UTCDateTime(), nullable=True),
        description="the claim's lease: past it, another dispatcher may take the delivery over",
    )


class WebhookAttemptRow(_StoreModel, table=True):
    """One HTTP attempt of a delivery: what the receiver answered, and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt"),
        Index("ix_webhook_attempts_endpoint_id_at", "endpoint_id", "at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    delivery_id: str = Field(sa_column=Column(String(1000), nullable=False))
    endpoint_id: str = _id()
    event_id: str = Field(sa_column=Column(String(EVENT_ID_LENGTH), nullable=False))
    attempt: int = Field(sa_column=Column(Integer(), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer(), nullable=True))
    error: str | None = _text(nullable=True)
    duration_ms: int = Field(sa_column=Column(Integer(), nullable=False))
    at: datetime = _timestamp(nullable=False)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


class WebhookStore:
    """Typed access to the webhook tables over the Store's engine. Synchronous, like Store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self._dialect = self.engine.dialect.name

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _insert(self, model: type[Any]) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(_table(model))
        return sqlite.insert(_table(model))

    # -- endpoints -------------------------------------------------------------------------

    def create_endpoint(self, row: WebhookEndpointRow) -> WebhookEndpointRow:
        with self._session() as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpointRow | None:
        with self._session() as session:
            return session.get(WebhookEndpointRow, endpoint_id)

    def list_endpoints(self, *, status: str | None = None) -> list[WebhookEndpointRow]:
        table = _table(WebhookEndpointRow)
        statement = select(WebhookEndpointRow).order_by(table.c.created_at, table.c.id)
        if status is not None:
            statement = statement.where(table.c.status == status)
        with self._session() as session:
            return list(session.scalars(statement))

    def endpoints_for(self, event_type: str) -> list[WebhookEndpointRow]:
        """Enabled endpoints subscribed to `event_type` (filtered here: JSON lists are small)."""
        return [row for row in self.list_endpoints(status="enabled") if row.wants(event_type)]

    def set_endpoint_status(
        self, endpoint_id: str, *, status: str, reason: str | None = None
    ) -> WebhookEndpointRow:
        if status not in ENDPOINT_STATUSES:
            raise ValueError(f"endpoint status must be one of {', '.join(ENDPOINT_STATUSES)}")
        table = _table(WebhookEndpointRow)
        statement = (
            update(table)
            .where(table.c.id == endpoint_id)
            .values(
                status=status,
                disabled_reason=reason if status == "disabled" else None,
                updated_at=utcnow(),
            )
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()
            row = session.get(WebhookEndpointRow, endpoint_id, populate_existing=True)
        if row is None:
            raise RecordNotFound(f"unknown webhook endpoint {endpoint_id!r}")
        return row

    def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove an endpoint with its delivery history; in-flight deliveries then fail."""
        with self._session() as session:
            for model in (WebhookAttemptRow, WebhookDeliveryRow):
                table = _table(model)
                session.execute(sql_delete(table).where(table.c.endpoint_id == endpoint_id))
            endpoints = _table(WebhookEndpointRow)
            result = session.execute(sql_delete(endpoints).where(endpoints.c.id == endpoint_id))
            session.commit()
            return cast(Any, result).rowcount == 1

    # -- events ----------------------------------------------------------------------------

    def add_event(self, row: WebhookEventRow) -> WebhookEventRow:
        """Store an event once: a repeat with the same id returns the first one, unchanged."""
        table = _table(WebhookEventRow)
        values = {column.name: getattr(row, column.name) for column in table.columns}
        statement = (
            self._insert(WebhookEventRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[table.c.id])
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()
            stored = session.get(WebhookEventRow, row.id, populate_existing=True)
            assert stored is not None
            return stored

    def get_event(self, event_id: str) -> WebhookEventRow | None:
        with self._session() as session:
            return session.get(WebhookEventRow, event_id)

    def undispatched_events(self, subject: str) -> list[WebhookEventRow]:
        table = _table(WebhookEventRow)
        statement = (
            select(WebhookEventRow)
            .where(table.c.subject == subject, table.c.dispatched_at.is_(None))
            .order_by(table.c.created_at, table.c.id)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    def stranded_subjects(self, *, created_before: datetime, limit: int = 100) -> list[str]:
        """Subjects with events stored before `created_before` and never fanned out to their
        endpoints (the process that stored them died first), oldest first."""
        table = _table(WebhookEventRow)
        oldest = func.min(table.c.created_at)
        statement = (
            select(table.c.subject)
            .where(table.c.dispatched_at.is_(None), table.c.created_at < created_before)
            .group_by(table.c.subject)
            .order_by(oldest)
            .limit(limit)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    def mark_dispatched(self, event_id: str) -> None:
        table = _table(WebhookEventRow)
        statement = (
            update(table)
            .where(table.c.id == event_id, table.c.dispatched_at.is_(None))
            .values(dispatched_at=utcnow())
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()

    def events_since(
        self, since: datetime, *, event_types: Sequence[str], limit: int
    ) -> list[WebhookEventRow]:
        """Events of the given types created at or after `since`, oldest first."""
        table = _table(WebhookEventRow)
        statement = (
            select(WebhookEventRow)
            .where(table.c.created_at >= since, table.c.type.in_(list(event_types)))
            .order_by(table.c.created_at, table.c.id)
            .limit(limit)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    # -- deliveries ------------------------------------------------------------------------

    def add_delivery(self, row: WebhookDeliveryRow) -> tuple[WebhookDeliveryRow, bool]:
        """Store a delivery unless one with its id exists; says whether this call created it."""
        table = _table(WebhookDeliveryRow)
        values = {column.name: getattr(row, column.name) for column in table.columns}
        statement = (
            self._insert(WebhookDeliveryRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[table.c.id])
            .returning(table.c.id)
        )
        with self._session() as session:
            created = session.execute(statement).first() is not None
            session.commit()
            stored = session.get(WebhookDeliveryRow, row.id, populate_existing=True)
            assert stored is not None
            return stored, created

    def get_delivery(self, delivery_id: str) -> WebhookDeliveryRow | None:
        with self._session() as session:
            return session.get(WebhookDeliveryRow, delivery_id)

    def deliveries_for_endpoint(
        self, endpoint_id: str, *, limit: int = 100
    ) -> list[WebhookDeliveryRow]:
        """An endpoint's deliveries, newest first."""
        table = _table(WebhookDeliveryRow)
        statement = (
            select(WebhookDeliveryRow)
            .where(table.c.endpoint_id == endpoint_id)
            .order_by(table.c.created_at.desc(), table.c.id.desc())
            .limit(limit)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    def count_deliveries(self, endpoint_id: str, event_id: str) -> int:
        table = _table(WebhookDeliveryRow)
        statement = select(func.count()).where(
            table.c.endpoint_id == endpoint_id, table.c.event_id == event_id
        )
        with self._session() as session:
            return int(session.execute(statement).scalar_one())

    def record_attempt(self, row: WebhookAttemptRow) -> None:
        """Log one attempt (once per attempt number) and keep the delivery's summary current."""
        attempts = _table(WebhookAttemptRow)
        values = {column.name: getattr(row, column.name) for column in attempts.columns}
        values.pop("id")
        insert = (
            self._insert(WebhookAttemptRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[attempts.c.delivery_id, attempts.c.attempt])
        )
        deliveries = _table(WebhookDeliveryRow)
        summary = (
            update(deliveries)
            .where(deliveries.c.id == row.delivery_id, deliveries.c.attempts <= row.attempt)
            .values(attempts=row.attempt, last_status_code=row.status_code, last_error=row.error)
        )
        with self._session() as session:
            session.execute(insert)
            session.execute(summary)
            session.commit()

    def finish_delivery(self, delivery_id: str, *, status: str, error: str | None = None) -> None:
        if status not in ("delivered", "failed"):
            raise ValueError("a delivery finishes delivered or failed")
        table = _table(WebhookDeliveryRow)
        changes: dict[str, Any] = {"status": status, "completed_at": utcnow()}
        if error is not None:
            changes["last_error"] = error
        statement = (
            update(table)
            .where(table.c.id == delivery_id, table.c.status == "pending")
            .values(**changes)
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()

    # -- the outbox: claims of due deliveries ---------------------------------------------

    def claim_due(
        self, *, claimant: str, now: datetime, lease: timedelta, limit: int
    ) -> list[WebhookDeliveryRow]:
        """Take up to `limit` due deliveries for `claimant` until `now + lease`, oldest due first.

        One statement, so two dispatchers never hold one delivery: PostgreSQL skips rows
        another transaction has locked; SQLite runs one writer at a time, and the conditions
        are checked again on the row being updated. An expired lease (a dispatcher that died
        mid-attempt) makes the delivery claimable again.
        """
        table = _table(WebhookDeliveryRow)
        claimable = (
            (table.c.status == "pending")
            & (table.c.next_attempt_at.is_not(None))
            & (table.c.next_attempt_at <= now)
            & ((table.c.claimed_until.is_(None)) | (table.c.claimed_until <= now))
        )
        due = select(table.c.id).where(claimable).order_by(table.c.next_attempt_at).limit(limit)
        if self._dialect == "postgresql":
            # Locked and limited once, in a materialized CTE: as an IN (subquery) PostgreSQL may
            # run the subquery again per row, each run skipping other locks, claiming past limit.
            chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
            where = (table.c.id == chosen.c.id) & claimable
        else:
            where = table.c.id.in_(due.scalar_subquery()) & claimable
        statement = (
            update(table)
            .where(where)
            .values(claimed_by=claimant, claimed_until=now + lease)
            .returning(*table.columns)
        )
        with self._session() as session:
            rows = [
                WebhookDeliveryRow.model_validate(dict(r._mapping))
                for r in session.execute(statement)
            ]
            session.commit()
        return sorted(rows, key=lambda r: (r.next_attempt_at or now, r.id))

    def settle_attempt(
        self,
        delivery_id: str,
        *,
        claimant: str,
        attempt: WebhookAttemptRow | None,
        status: str,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Log an attempt and move its delivery on (due again, delivered or failed), releasing
        the claim, all at once; False (and nothing written) if the claim was no longer held."""
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"delivery status must be one of {', '.join(DELIVERY_STATUSES)}")
        if (status == "pending") != (next_attempt_at is not None):
            raise ValueError("a pending delivery needs its next attempt's time, and only it")
        deliveries = _table(WebhookDeliveryRow)
        changes: dict[str, Any] = {
            "status": status,
            "next_attempt_at": next_attempt_at,
            "claimed_by": None,
            "claimed_until": None,
        }
        if attempt is not None:
            changes.update(
                attempts=attempt.attempt,
                last_status_code=attempt.status_code,
                last_error=attempt.error,
            )
        if error is not None:
            changes["last_error"] = error
        if status != "pending":
            changes["completed_at"] = utcnow()
        held = (
            (deliveries.c.id == delivery_id)
            & (deliveries.c.claimed_by == claimant)
            & (deliveries.c.status == "pending")
        )
        with self._session() as session:
            result = session.execute(update(deliveries).where(held).values(**changes))
            if cast(CursorResult[Any], result).rowcount != 1:
                session.rollback()
                return False
            if attempt is not None:
                attempts = _table(WebhookAttemptRow)
                values = {c.name: getattr(attempt, c.name) for c in attempts.columns}
                values.pop("id")
                session.execute(
                    self._insert(WebhookAttemptRow)
                    .values(**values)
                    .on_conflict_do_nothing(
                        index_elements=[attempts.c.delivery_id, attempts.c.attempt]
                    )
                )
            session.commit()
            return True

    def release_claim(self, delivery_id: str, *, claimant: str) -> None:
        """Give a claimed delivery back untouched (a dispatcher stopping mid-attempt)."""
        table = _table(WebhookDeliveryRow)
        statement = (
            update(table)
            .where(table.c.id == delivery_id, table.c.claimed_by == claimant)
            .values(claimed_by=None, claimed_until=None)
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()

    def attempts_for(self, delivery_id: str) -> list[WebhookAttemptRow]:
        table = _table(WebhookAttemptRow)
        statement = (
            select(WebhookAttemptRow)
            .where(table.c.delivery_id == delivery_id)
            .order_by(table.c.attempt)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    def purge(self, *, older_than: datetime) -> int:
        """Delete what finished before `older_than`; how many rows went.

        Finished deliveries (and their attempt log) go; pending ones stay, however old, since
        the dispatcher (or, for older ones, their workflow) still writes to them. Events go once
        dispatched and left without deliveries, so replay reaches back only as far as this.
        """
        deliveries = _table(WebhookDeliveryRow)
        attempts = _table(WebhookAttemptRow)
        events = _table(WebhookEventRow)
        finished = select(deliveries.c.id).where(
            deliveries.c.created_at < older_than, deliveries.c.status != "pending"
        )
        with self._session() as session:
            purged = cast(
                CursorResult[Any],
                session.execute(sql_delete(attempts).where(attempts.c.delivery_id.in_(finished))),
            ).rowcount
            purged += cast(
                CursorResult[Any],
                session.execute(
                    sql_delete(deliveries).where(
                        deliveries.c.created_at < older_than, deliveries.c.status != "pending"
                    )
                ),
            ).rowcount
            still_delivering = select(deliveries.c.event_id).where(
                deliveries.c.event_id == events.c.id
            )
            purged += cast(
                CursorResult[Any],
                session.execute(
                    sql_delete(events).where(
                        events.c.dispatched_at < older_than, ~still_delivering.exists()
                    )
                ),
            ).rowcount
            session.commit()
            return purged


__all__: Sequence[str] = (
    "DELIVERY_STATUSES",
    "ENDPOINT_STATUSES",
    "WebhookAttemptRow",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
    "WebhookEventRow",
    "WebhookStore",
)
