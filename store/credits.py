"""Vendor credits remit wrote to the ERP, what is left of each, and every application to a bill.

A bill takes credit in two steps: `reserve` (in one transaction: the credit's remaining falls
and an application row appears, keyed by the bill's step so a retried activity reserves once),
then `mark_applied` once the ERP holds the application, or `release` if the ERP refused it.
Two bills of one vendor can therefore never spend the same credit twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Column, Index, Integer, String, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Field, Session

from store.db import RecordNotFound, Store
from store.models import _id, _StoreModel, _text, _timestamp
from store.types import ExactDecimal, utcnow

_CREDIT_REVISION = Column("revision", Integer(), nullable=False)


class VendorCreditRow(_StoreModel, table=True):
    """One vendor credit remit posted to the ERP, and how much of it is still unapplied."""

    __tablename__ = "vendor_credits"
    __table_args__ = (
        Index("ix_vendor_credits_connection_id_vendor_id", "connection_id", "vendor_id"),
    )
    __mapper_args__ = {"version_id_col": _CREDIT_REVISION}

    id: str = _id(primary_key=True)
    workflow_id: str = _id()
    connection_id: str = _id()
    vendor_id: str = _id()
    vendor_name: str = Field(sa_column=Column(String(500), nullable=False))
    erp_credit_id: str = _id()
    document_number: str | None = _text(255, nullable=True)
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    total: Decimal = Field(sa_column=Column(ExactDecimal(), nullable=False))
    remaining: Decimal = Field(sa_column=Column(ExactDecimal(), nullable=False))
    revision: int = Field(default=1, sa_column=_CREDIT_REVISION)
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class CreditApplicationRow(_StoreModel, table=True):
    """Credit a bill took: reserved, then applied in the ERP (or released if refused)."""

    __tablename__ = "credit_applications"
    __table_args__ = (
        Index("ix_credit_applications_credit_id", "credit_id"),
        Index("ix_credit_applications_bill_workflow_id", "bill_workflow_id"),
    )

    key: str = Field(sa_column=Column(String(1000), primary_key=True))
    credit_id: str = _id()
    bill_workflow_id: str = _id()
    erp_bill_id: str = _id()
    amount: Decimal = Field(sa_column=Column(ExactDecimal(), nullable=False))
    status: str = Field(
        default="reserved",
        sa_column=Column(String(32), nullable=False),
        description="reserved, applied or released",
    )
    erp_application_id: str | None = _id(nullable=True)
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class CreditUnavailable(ValueError):
    """The credit has less left than asked (another bill took it first)."""


@dataclass(frozen=True)
class Reservation:
    application: CreditApplicationRow
    credit: VendorCreditRow


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


class CreditStore:
    """Typed access to the credit tables over the Store's engine. Synchronous, like Store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def record(self, row: VendorCreditRow) -> VendorCreditRow:
        """Store a posted credit once (a retried activity finds the first)."""
        with self._session() as session:
            existing = session.get(VendorCreditRow, row.id)
            if existing is not None:
                return existing
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                raced = session.get(VendorCreditRow, row.id)
                if raced is None:
                    raise
                return raced
            return row

    def get(self, credit_id: str) -> VendorCreditRow | None:
        with self._session() as session:
            return session.get(VendorCreditRow, credit_id)

    def find(
        self,
        *,
        connection_id: str | None = None,
        vendor_id: str | None = None,
        currency: str | None = None,
        open_only: bool = False,
    ) -> list[VendorCreditRow]:
        table = _table(VendorCreditRow)
        statement = select(VendorCreditRow).order_by(table.c.created_at, table.c.id)
        if connection_id is not None:
            statement = statement.where(table.c.connection_id == connection_id)
        if vendor_id is not None:
            statement = statement.where(table.c.vendor_id == vendor_id)
        if currency is not None:
            statement = statement.where(table.c.currency == currency)
        if open_only:
            statement = statement.where(table.c.remaining > 0)
        with self._session() as session:
            return list(session.scalars(statement))

    def applications_of(
        self, *, credit_id: str | None = None, bill_workflow_id: str | None = None
    ) -> list[CreditApplicationRow]:
        table = _table(CreditApplicationRow)
        statement = select(CreditApplicationRow).order_by(table.c.created_at, table.c.key)
        if credit_id is not None:
            statement = statement.where(table.c.credit_id == credit_id)
        if bill_workflow_id is not None:
            statement = statement.where(table.c.bill_workflow_id == bill_workflow_id)
        with self._session() as session:
            return list(session.scalars(statement))

    def reserve(
        self, *, key: str, credit_id: str, bill_workflow_id: str, erp_bill_id: str, amount: Decimal
    ) -> Reservation:
        """Take `amount` of the credit for a bill; the same key returns the same reservation."""
        for _ in range(5):
            with self._session() as session:
                existing = session.get(CreditApplicationRow, key)
                credit = session.get(VendorCreditRow, credit_id)
                if credit is None:
                    raise RecordNotFound(f"no vendor credit {credit_id!r}")
                if existing is not None:
                    return Reservation(existing, credit)
                if credit.remaining < amount:
                    raise CreditUnavailable(
                        f"credit {credit.document_number or credit_id} has "
                        f"{credit.currency} {credit.remaining} left, not {amount}"
                    )
                now = utcnow()
                credit.remaining = credit.remaining - amount
                credit.updated_at = now
                application = CreditApplicationRow(
                    key=key,
                    credit_id=credit_id,
                    bill_workflow_id=bill_workflow_id,
                    erp_bill_id=erp_bill_id,
                    amount=amount,
                    created_at=now,
                    updated_at=now,
                )
                session.add(credit)
                session.add(application)
                try:
                    session.commit()
                except (StaleDataError, IntegrityError):
                    session.rollback()
                    continue  # another bill (or a retry) reserved at the same moment
                return Reservation(application, credit)
        raise CreditUnavailable(f"credit {credit_id} is being taken by other bills; try again")

    def mark_applied(self, key: str, *, erp_application_id: str | None) -> CreditApplicationRow:
        with self._session() as session:
            application = session.get(CreditApplicationRow, key)
            if application is None:
                raise RecordNotFound(f"no credit application {key!r}")
            if application.status != "applied":
                application.status = "applied"
                application.erp_application_id = erp_application_id
                application.updated_at = utcnow()
                session.add(application)
                session.commit()
            return application

    def release(self, key: str) -> None:
        """Give a reservation's amount back to the credit (the ERP refused the application)."""
        for _ in range(5):
            with self._session() as session:
                application = session.get(CreditApplicationRow, key)
                if application is None or application.status != "reserved":
                    return
                credit = session.get(VendorCreditRow, application.credit_id)
                assert credit is not None
                credit.remaining = credit.remaining + application.amount
                credit.updated_at = utcnow()
                application.status = "released"
                application.updated_at = credit.updated_at
                session.add(credit)
                session.add(application)
                try:
                    session.commit()
                except StaleDataError:
                    session.rollback()
                    continue
                return
        raise CreditUnavailable(f"credit application {key} could not be released; try again")
