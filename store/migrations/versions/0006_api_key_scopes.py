"""API keys scoped to connections (named ids, or all of them explicitly); last_used_at kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Keys issued before this revision could act on every connection; they keep doing so (marked
all_connections), so an upgrade locks nobody out. Restrict them by reissuing
(`remit keys create ... --connection ID`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("all_connections", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("connection_ids", sa.JSON(), nullable=True))
    keys = sa.table("api_keys", sa.column("all_connections", sa.Boolean()))
    op.execute(keys.update().values(all_connections=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("connection_ids")
        batch.drop_column("all_connections")
