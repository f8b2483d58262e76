"""The payee master, reviewed payee changes, vendor credits and their applications, payment runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _timestamp(name: str, *, nullable: bool) -> sa.Column[Any]:
    return sa.Column(name, store.types.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "payees",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("vendor_id", sa.String(length=255), nullable=False),
        sa.Column("vendor_name", sa.String(length=500), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("details_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("masked", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rail", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("verified_by", sa.String(length=255), nullable=False),
        sa.Column("verification_method", sa.String(length=500), nullable=False),
        _timestamp("verified_at", nullable=False),
        sa.Column("approved_by", _json(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payees")),
        sa.UniqueConstraint(
            "connection_id", "vendor_id", name=op.f("uq_payees_connection_id_vendor_id")
        ),
    )
    op.create_table(
        "payee_changes",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("vendor_id", sa.String(length=255), nullable=False),
        sa.Column("vendor_name", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("proposed_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("bill_workflow_id", sa.String(length=255), nullable=True),
        sa.Column("details_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("masked", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("replaces_version", sa.Integer(), nullable=True),
        sa.Column("replaces_masked", sa.String(length=200), nullable=True),
        sa.Column("verification_method", sa.String(length=500), nullable=True),
        sa.Column("verification_note", sa.Text(), nullable=True),
        sa.Column("verified_by", sa.String(length=255), nullable=True),
        _timestamp("verified_at", nullable=True),
        sa.Column("approvals", _json(), nullable=False),
        sa.Column("rejected_by", sa.String(length=255), nullable=True),
        _timestamp("rejected_at", nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("open_key", sa.String(length=500), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payee_changes")),
        sa.UniqueConstraint("open_key", name=op.f("uq_payee_changes_open_key")),
    )
    op.create_index(
        "ix_payee_changes_connection_id_vendor_id",
        "payee_changes",
        ["connection_id", "vendor_id"],
    )
    op.create_index("ix_payee_changes_status_created_at", "payee_changes", ["status", "created_at"])

    op.create_table(
        "vendor_credits",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("vendor_id", sa.String(length=255), nullable=False),
        sa.Column("vendor_name", sa.String(length=500), nullable=False),
        sa.Column("erp_credit_id", sa.String(length=255), nullable=False),
        sa.Column("document_number", sa.String(length=255), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", store.types.ExactDecimal(), nullable=False),
        sa.Column("remaining", store.types.ExactDecimal(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_credits")),
    )
    op.create_index(
        "ix_vendor_credits_connection_id_vendor_id",
        "vendor_credits",
        ["connection_id", "vendor_id"],
    )
    op.create_table(
        "credit_applications",
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("credit_id", sa.String(length=255), nullable=False),
        sa.Column("bill_workflow_id", sa.String(length=255), nullable=False),
        sa.Column("erp_bill_id", sa.String(length=255), nullable=False),
        sa.Column("amount", store.types.ExactDecimal(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("erp_application_id", sa.String(length=255), nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_credit_applications")),
    )
    op.create_index("ix_credit_applications_credit_id", "credit_applications", ["credit_id"])
    op.create_index(
        "ix_credit_applications_bill_workflow_id", "credit_applications", ["bill_workflow_id"]
    )

    op.create_table(
        "payment_runs",
        sa.Column("run_id", sa.String(length=500), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_payment_runs")),
    )
    op.create_index(
        "ix_payment_runs_connection_id_run_date", "payment_runs", ["connection_id", "run_date"]
    )


def downgrade() -> None:
    op.drop_index("ix_payment_runs_connection_id_run_date", table_name="payment_runs")
    op.drop_table("payment_runs")
    op.drop_index("ix_credit_applications_bill_workflow_id", table_name="credit_applications")
    op.drop_index("ix_credit_applications_credit_id", table_name="credit_applications")
    op.drop_table("credit_applications")
    op.drop_index("ix_vendor_credits_connection_id_vendor_id", table_name="vendor_credits")
    op.drop_table("vendor_credits")
    op.drop_index("ix_payee_changes_status_created_at", table_name="payee_changes")
    op.drop_index("ix_payee_changes_connection_id_vendor_id", table_name="payee_changes")
    op.drop_table("payee_changes")
    op.drop_table("payees")
