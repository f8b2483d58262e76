"""The store's tables as SQLModel rows: bill projection, audit log, connections, idempotency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from store.types import ExactDecimal, UTCDateTime, utcnow

# Fixed constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

store_registry = registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))
metadata = store_registry.metadata
"""Everything Alembic manages for the store, apart from any other SQLModel tables in the process."""

ID_LENGTH = 255
ONLY_ON_DIALECT = "only_on_dialect"
"""Key in a schema object's `info` naming the one backend it exists on (see `schema_filter`)."""


def schema_filter(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's include_object hook for one backend: leaves out objects of other backends."""

    def include(
        schema_object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        only_on = getattr(schema_object, "info", {}).get(ONLY_ON_DIALECT)
        return only_on is None or only_on == dialect_name

    return include


def _json() -> TypeEngine[Any]:
    # JSONB on PostgreSQL so containment (pending approvers) is a plain, indexable operator.
    return JSON().with_variant(JSONB(), "postgresql")


def _id(*, primary_key: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(String(ID_LENGTH), primary_key=primary_key, nullable=nullable))


def _text(length: int | None = None, *, nullable: bool = False) -> Any:
    column_type = String(length) if length else Text()
    return Field(default=None, sa_column=Column(column_type, nullable=nullable))


def _timestamp(*, nullable: bool) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class _StoreModel(SQLModel, registry=store_registry):
    pass


class BillRow(_StoreModel, table=True):
    """One bill's current state, projected from its workflow for listing and search.

    The workflow is the source of truth; `revision` is its own counter and the store only
    ever moves a row forward in it.
    """

    __tablename__ = "bills"
    __table_args__ = (
        Index("ix_bills_created_at_workflow_id", "created_at", "workflow_id"),
        Index("ix_bills_status_created_at", "status", "created_at", "workflow_id"),
        Index("ix_bills_connection_id_created_at", "connection_id", "created_at", "workflow_id"),
        Index("ix_bills_due_date", "due_date"),
        Index("ix_bills_connection_id_erp_bill_id", "connection_id", "erp_bill_id"),
        Index("ix_bills_similar_document", "connection_id", "vendor_key", "document_number_key"),
        Index("ix_bills_similar_amount", "connection_id", "vendor_key", "total", "issue_date"),
        Index(
            "ix_bills_pending_approvers",
            "pending_approvers",
            postgresql_using="gin",
            postgresql_ops={"pending_approvers": "jsonb_path_ops"},
            info={ONLY_ON_DIALECT: "postgresql"},
        ).ddl_if(dialect="postgresql"),
    )

    workflow_id: str = _id(primary_key=True)
    connection_id: str = _id()
    platform: str = Field(sa_column=Column(String(64), nullable=False))
    bill_key: str = _id()
    status: str = Field(sa_column=Column(String(64), nullable=False))
    step: str = Field(sa_column=Column(String(64), nullable=False))
    vendor_name: str = Field(sa_column=Column(String(500), nullable=False))
    vendor_id: str | None = _id(nullable=True)
    vendor_key: str = Field(
        sa_column=Column(String(500), nullable=False),
        description="normalized vendor identity (tax id or name) given by the caller",
    )
    document_number: str | None = _text(ID_LENGTH, nullable=True)
    document_number_key: str | None = _text(ID_LENGTH, nullable=True)
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    total: Decimal = Field(sa_column=Column(ExactDecimal(), nullable=False))
    amount_due: Decimal = Field(sa_column=Column(ExactDecimal(), nullable=False))
    issue_date: date = Field(sa_column=Column(Date(), nullable=False))
    due_date: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    pay_on: date | None = Field(default=None, sa_column=Column(Date(), nullable=True))
    submitted_by: str | None = _id(nullable=True)
    pending_approvers: list[str] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False)
    )
    erp_bill_id: str | None = _id(nullable=True)
    erp_payment_id: str | None = _id(nullable=True)
    rail_payment_id: str | None = _id(nullable=True)
    last_error: str | None = _text(nullable=True)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))
    revision: int = Field(sa_column=Column(BigInteger(), nullable=False))
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class AuditEventRow(_StoreModel, table=True):
    """One entry of the append-only audit log: who did what to which bill, and why."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("event_key"),
        Index("ix_audit_events_workflow_id_at", "workflow_id", "at", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    event_key: str = Field(sa_column=Column(String(500), nullable=False))
    workflow_id: str = _id()
    at: datetime = _timestamp(nullable=False)
    actor: str = _id()
    kind: str = Field(
        sa_column=Column(String(64), nullable=False),
        description="decision, erp_write, bank_write, status, operator, ...",
    )
    summary: str = Field(sa_column=Column(Text(), nullable=False))
    idempotency_key: str | None = _text(500, nullable=True)
    result: str | None = _text(nullable=True)
    policy_version: str | None = _text(64, nullable=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))


class ConnectionRow(_StoreModel, table=True):
    """A customer's link to one ERP company, with its health."""

    __tablename__ = "connections"

    id: str = _id(primary_key=True)
    platform: str = Field(sa_column=Column(String(64), nullable=False))
    company_id: str = _id()
    display_name: str = Field(sa_column=Column(String(500), nullable=False))
    base_url: str | None = _text(2000, nullable=True)
    status: str = Field(
        default="active",
        sa_column=Column(String(32), nullable=False),
        description="active, needs_relink or disabled",
    )
    # Already encrypted by the caller; kept out of repr so it never reaches a log line.
    credentials_encrypted: bytes | None = Field(
        default=None, repr=False, sa_column=Column(LargeBinary(), nullable=True)
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(_json(), nullable=False)
    )
    last_success_at: datetime | None = _timestamp(nullable=True)
    last_error_at: datetime | None = _timestamp(nullable=True)
    last_error: str | None = _text(nullable=True)
    rate_limited_until: datetime | None = _timestamp(nullable=True)
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class IdempotencyRow(_StoreModel, table=True):
    """A request remembered under a caller's idempotency key, so a retry gets the same answer."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    scope: str = Field(sa_column=Column(String(ID_LENGTH), primary_key=True))
    key: str = Field(sa_column=Column(String(500), primary_key=True))
    request_hash: str = Field(sa_column=Column(String(128), nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer(), nullable=True))
    response_body: Any | None = Field(default=None, sa_column=Column(_json(), nullable=True))
    created_at: datetime = _timestamp(nullable=False)
    locked_until: datetime | None = _timestamp(nullable=True)


CONNECTION_STATUSES = ("active", "needs_relink", "disabled")
