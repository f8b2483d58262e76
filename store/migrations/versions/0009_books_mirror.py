"""The books' mirror, its watermarks and sync runs; bills found by their ERP bill.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

import store.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool) -> sa.Column[Any]:
    return sa.Column(name, store.types.UTCDateTime(), nullable=nullable)


def _json(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False)


def _id(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=255), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mirror_objects",
        _id("connection_id"),
        sa.Column("kind", sa.String(length=32), nullable=False),
        _id("platform_id"),
        _json("data"),
        _json("platform_data"),
        _timestamp("platform_updated_at", nullable=True),
        _timestamp("last_synced_at", nullable=False),
        _timestamp("deleted_at", nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        _id("vendor_id", nullable=True),
        sa.Column("account_type", sa.String(length=64), nullable=True),
        _id("parent_id", nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("seen_run", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint(
            "connection_id", "kind", "platform_id", name=op.f("pk_mirror_objects")
        ),
    )
    for name, column in (
        ("updated", "platform_updated_at"),
        ("status", "status"),
        ("vendor_id", "vendor_id"),
        ("parent_id", "parent_id"),
        ("last_synced_at", "last_synced_at"),
    ):
        op.create_index(
            f"ix_mirror_objects_{name}", "mirror_objects", ["connection_id", "kind", column]
        )
    op.create_table(
        "mirror_watermarks",
        _id("connection_id"),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("watermark", sa.String(length=500), nullable=True),
        _timestamp("last_synced_at", nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "kind", name=op.f("pk_mirror_watermarks")),
    )
    op.create_table(
        "sync_runs",
        _id("run_id"),
        _id("connection_id"),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _timestamp("started_at", nullable=False),
        _timestamp("finished_at", nullable=True),
        sa.Column("objects_changed", sa.Integer(), nullable=False),
        _json("counts"),
        _json("errors"),
        _id("workflow_id"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_sync_runs")),
    )
    op.create_index(
        "ix_sync_runs_connection_id_started_at", "sync_runs", ["connection_id", "started_at"]
    )
    op.create_index("ix_bills_connection_id_erp_bill_id", "bills", ["connection_id", "erp_bill_id"])


def downgrade() -> None:
    op.drop_index("ix_bills_connection_id_erp_bill_id", table_name="bills")
    op.drop_index("ix_sync_runs_connection_id_started_at", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("mirror_watermarks")
    for name in ("last_synced_at", "parent_id", "vendor_id", "status", "updated"):
        op.drop_index(f"ix_mirror_objects_{name}", table_name="mirror_objects")
    op.drop_table("mirror_objects")
