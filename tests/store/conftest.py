"""Fixtures for store tests: every test runs on SQLite and, where reachable, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, text
from sqlalchemy.engine import make_url

from store import BillRow, Store, make_engine, migrate
from store.models import metadata
from tests.postgres import PostgresDatabases, postgres_admin_url

__all__ = ["postgres_admin_url"]  # a fixture, shared with tests/deploy


@pytest.fixture(scope="session")
def postgres_databases(postgres_admin_url: URL) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_admin_url)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_store_url(postgres_databases: PostgresDatabases) -> URL:
    url = postgres_databases.create()
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """A database with nothing in it yet."""
    if request.param == "sqlite":
        return make_url(f"sqlite:///{tmp_path / 'empty.db'}")
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store."""
    if request.param == "sqlite":
        opened = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    else:
        url: URL = request.getfixturevalue("postgres_store_url")
        engine = make_engine(url)
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        opened = Store(engine)
    yield opened
    opened.close()


def make_bill(workflow_id: str = "bill/conn-1/INV-1", **overrides: Any) -> BillRow:
    values: dict[str, Any] = {
        "workflow_id": workflow_id,
        "connection_id": "conn-1",
        "platform": "quickbooks",
        "bill_key": workflow_id.rsplit("/", 1)[-1],
        "status": "awaiting_approval",
        "step": "approve",
        "vendor_name": "Acme Supplies Ltd",
        "vendor_id": "V-1",
        "vendor_key": "acme supplies",
        "document_number": "INV-1",
        "document_number_key": "inv1",
        "currency": "USD",
        "total": Decimal("1250.00"),
        "amount_due": Decimal("1250.00"),
        "issue_date": date(2025, 3, 1),
        "due_date": date(2025, 3, 31),
        "pay_on": None,
        "submitted_by": "user-ana",
        "pending_approvers": ["user-bo"],
        "state": {"status": "awaiting_approval", "total": "1250.00"},
        "revision": 1,
        "created_at": datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        "updated_at": datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return BillRow(**values)
