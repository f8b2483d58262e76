"""Fixtures for store tests: every test runs on SQLite and, where reachable, on PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from store import BillRow, Store, make_engine, migrate
from store.db import normalize_database_url
from store.models import metadata

_POSTGRES_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def _reachable_postgres() -> tuple[URL | None, str]:
    configured = os.environ.get("REMIT_TEST_POSTGRES_URL")
    candidates = (configured,) if configured else _POSTGRES_CANDIDATES
    failures = []
    for candidate in candidates:
        url = normalize_database_url(candidate)
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return url, ""
        except OperationalError as exc:
            reason = str(exc.orig).splitlines()[0]
            failures.append(f"{url.render_as_string(hide_password=True)}: {reason}")
        finally:
            engine.dispose()
    return None, "; ".join(failures)


@pytest.fixture(scope="session")
def postgres_admin_url() -> URL:
    url, why = _reachable_postgres()
    if url is None:
        pytest.skip(f"PostgreSQL not reachable (set REMIT_TEST_POSTGRES_URL): {why}")
    return url


class _PostgresDatabases:
    """Creates throw-away databases next to the admin one and drops them all at the end."""

    def __init__(self, admin_url: URL) -> None:
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._admin_url = admin_url
        self._created: list[str] = []

    def create(self) -> URL:
        name = f"remit_test_{secrets.token_hex(6)}"
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        return self._admin_url.set(database=name)

    def drop_all(self) -> None:
        with self._admin.connect() as connection:
            for name in self._created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases(postgres_admin_url: URL) -> Iterator[_PostgresDatabases]:
    databases = _PostgresDatabases(postgres_admin_url)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_store_url(postgres_databases: _PostgresDatabases) -> URL:
    url = postgres_databases.create()
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """A database with nothing in it yet."""
    if request.param == "sqlite":
        return make_url(f"sqlite:///{tmp_path / 'empty.db'}")
    databases: _PostgresDatabases = request.getfixturevalue("postgres_databases")
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
