"""Inbox sessions kept server-side; magic links used once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool) -> sa.Column[Any]:
    return sa.Column(name, store.types.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "inbox_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("last_seen_at", nullable=False),
        _timestamp("expires_at", nullable=False),
        _timestamp("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_sessions")),
    )
    op.create_index("ix_inbox_sessions_user_id", "inbox_sessions", ["user_id"])
    op.create_index("ix_inbox_sessions_expires_at", "inbox_sessions", ["expires_at"])
    op.create_table(
        "inbox_link_uses",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        _timestamp("used_at", nullable=False),
        _timestamp("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_inbox_link_uses")),
    )
    op.create_index("ix_inbox_link_uses_expires_at", "inbox_link_uses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_link_uses_expires_at", table_name="inbox_link_uses")
    op.drop_table("inbox_link_uses")
    op.drop_index("ix_inbox_sessions_expires_at", table_name="inbox_sessions")
    op.drop_index("ix_inbox_sessions_user_id", table_name="inbox_sessions")
    op.drop_table("inbox_sessions")
