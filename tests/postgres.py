"""Throw-away PostgreSQL databases for tests, on the machine's server (skipped where none)."""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import OperationalError

from store.db import normalize_database_url

_POSTGRES_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


def reachable_postgres() -> tuple[URL | None, str]:
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
    url, why = reachable_postgres()
    if url is None:
        pytest.skip(f"PostgreSQL not reachable (set REMIT_TEST_POSTGRES_URL): {why}")
    return url


class PostgresDatabases:
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
