"""Initial schema: bills projection, audit events, connections, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _timestamp(name: str, *, nullable: bool) -> sa.Column[Any]:
    return sa.Column(name, store.types.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_key", sa.String(length=500), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        _timestamp("at", nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=500), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("policy_version", sa.String(length=64), nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_audit_events_event_key")),
    )
    op.create_index("ix_audit_events_workflow_id_at", "audit_events", ["workflow_id", "at", "id"])

    op.create_table(
        "bills",
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("bill_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("vendor_name", sa.String(length=500), nullable=False),
        sa.Column("vendor_id", sa.String(length=255), nullable=True),
        sa.Column("vendor_key", sa.String(length=500), nullable=False),
        sa.Column("document_number", sa.String(length=255), nullable=True),
        sa.Column("document_number_key", sa.String(length=255), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", store.types.ExactDecimal(), nullable=False),
        sa.Column("amount_due", store.types.ExactDecimal(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("pay_on", sa.Date(), nullable=True),
        sa.Column("submitted_by", sa.String(length=255), nullable=True),
        sa.Column("pending_approvers", _json(), nullable=False),
        sa.Column("erp_bill_id", sa.String(length=255), nullable=True),
        sa.Column("erp_payment_id", sa.String(length=255), nullable=True),
        sa.Column("rail_payment_id", sa.String(length=255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("state", _json(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_bills")),
    )
    op.create_index("ix_bills_created_at_workflow_id", "bills", ["created_at", "workflow_id"])
    op.create_index("ix_bills_status_created_at", "bills", ["status", "created_at", "workflow_id"])
    op.create_index(
        "ix_bills_connection_id_created_at", "bills", ["connection_id", "created_at", "workflow_id"]
    )
    op.create_index("ix_bills_due_date", "bills", ["due_date"])
    op.create_index(
        "ix_bills_similar_document", "bills", ["connection_id", "vendor_key", "document_number_key"]
    )
    op.create_index(
        "ix_bills_similar_amount", "bills", ["connection_id", "vendor_key", "total", "issue_date"]
    )
    if op.get_bind().dialect.name == "postgresql":
        # Only PostgreSQL can index JSON containment; SQLite scans json_each instead.
        op.create_index(
            "ix_bills_pending_approvers",
            "bills",
            ["pending_approvers"],
            postgresql_using="gin",
            postgresql_ops={"pending_approvers": "jsonb_path_ops"},
        )

    op.create_table(
        "connections",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=500), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("credentials_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("settings", _json(), nullable=False),
        _timestamp("last_success_at", nullable=True),
        _timestamp("last_error_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("rate_limited_until", nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("request_hash", sa.String(length=128), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", _json(), nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("locked_until", nullable=True),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("connections")
    op.drop_table("bills")
    op.drop_table("audit_events")
