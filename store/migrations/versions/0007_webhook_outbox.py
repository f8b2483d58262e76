"""Webhook deliveries become an outbox: when the next attempt is due, and who holds it till when.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Deliveries already stored keep no `next_attempt_at`: a WebhookDelivery workflow of their own
still delivers each of them, and the worker's dispatcher (which sends the new ones) skips them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("next_attempt_at", store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("claimed_until", store.types.UTCDateTime(), nullable=True))
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at",
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    # Events stored but never fanned out (their process died first), for the dispatcher's sweep.
    op.create_index(
        "ix_webhook_events_dispatched_at_created_at",
        "webhook_events",
        ["dispatched_at", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_dispatched_at_created_at", table_name="webhook_events")
    op.drop_index("ix_webhook_deliveries_status_next_attempt_at", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
        batch.drop_column("next_attempt_at")
