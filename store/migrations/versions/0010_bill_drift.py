"""Bill drift findings: differences between reconciled bills and the books' mirror.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

import store.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "drift_findings",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("erp_bill_id", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("expected", json, nullable=False),
        sa.Column("found", json, nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detected_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", store.types.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", store.types.UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=255), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_findings")),
        sa.UniqueConstraint(
            "workflow_id",
            "kind",
            "subject",
            "occurrence",
            name=op.f("uq_drift_findings_workflow_id_kind_subject_occurrence"),
        ),
    )
    op.create_index(
        "ix_drift_findings_status_detected_at", "drift_findings", ["status", "detected_at", "id"]
    )
    op.create_index(
        "ix_drift_findings_connection_id_status", "drift_findings", ["connection_id", "status"]
    )
    op.create_index(
        "ix_drift_findings_workflow_id_status", "drift_findings", ["workflow_id", "status"]
    )


def downgrade() -> None:
    op.drop_table("drift_findings")
