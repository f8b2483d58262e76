"""Payment runs as the store lists them: one row per run, the run workflow's last recorded state.

The workflow is the source of truth (a run's page reads it live); this is for listing, and it
only ever moves forward in the run's own revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Column, Date, Index, Integer, String, Table, select
from sqlmodel import Field, Session

from store.db import Store
from store.models import _id, _json, _StoreModel, _timestamp
from store.types import utcnow


class PaymentRunRow(_StoreModel, table=True):
    __tablename__ = "payment_runs"
    __table_args__ = (Index("ix_payment_runs_connection_id_run_date", "connection_id", "run_date"),)

    run_id: str = Field(sa_column=Column(String(500), primary_key=True))
    connection_id: str = _id()
    run_date: date = Field(sa_column=Column(Date(), nullable=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    revision: int = Field(sa_column=Column(Integer(), nullable=False))
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


def _table() -> Table:
    return cast(Table, PaymentRunRow.__table__)  # type: ignore[attr-defined]


class RunStore:
    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def record(
        self,
        *,
        run_id: str,
        connection_id: str,
        run_date: date,
        status: str,
        revision: int,
        state: dict[str, Any],
    ) -> PaymentRunRow:
        """Store the run's state unless a newer revision is stored already."""
        with self._session() as session:
            row = session.get(PaymentRunRow, run_id)
            now = utcnow()
            if row is None:
                row = PaymentRunRow(
                    run_id=run_id,
                    connection_id=connection_id,
                    run_date=run_date,
                    status=status,
                    revision=revision,
                    state=state,
                    created_at=now,
                    updated_at=now,
                )
            elif row.revision >= revision:
                return row
            else:
                row.status, row.revision, row.state, row.updated_at = status, revision, state, now
            session.add(row)
            session.commit()
            return row

    def get(self, run_id: str) -> PaymentRunRow | None:
        with self._session() as session:
            return session.get(PaymentRunRow, run_id)

    def list(self, *, connection_id: str | None = None, limit: int = 50) -> list[PaymentRunRow]:
        table = _table()
        statement = select(PaymentRunRow).order_by(
            table.c.run_date.desc(), table.c.created_at.desc()
        )
        if connection_id is not None:
            statement = statement.where(table.c.connection_id == connection_id)
        with self._session() as session:
            return list(session.scalars(statement.limit(limit)))
