"""The inbox's sessions and used-link nonces in the store, on SQLite and PostgreSQL: shared by
every API process (two engines here), a link used once even when two race, sessions ended."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine
from sqlalchemy.engine import make_url

from store import InboxSessions, make_engine, migrate
from store.inbox_sessions import PURGE_AFTER
from tests.postgres import PostgresDatabases, postgres_admin_url

__all__ = ["postgres_admin_url"]  # a fixture

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[URL]:
    if request.param == "sqlite":
        url = make_url(f"sqlite:///{tmp_path / 'remit.db'}")
        migrate(url)
        yield url
        return
    databases = PostgresDatabases(request.getfixturevalue("postgres_admin_url"))
    try:
        url = databases.create()
        migrate(url)
        yield url
    finally:
        databases.drop_all()


@pytest.fixture
def engines(database_url: URL) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: what two API processes hold."""
    first, second = make_engine(database_url), make_engine(database_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def test_a_link_nonce_is_used_once_even_by_racing_processes(
    engines: tuple[Engine, Engine],
) -> None:
    first, second = InboxSessions(engines[0]), InboxSessions(engines[1])
    expires = NOW + timedelta(minutes=15)
    assert first.use_link("nonce-a", "bob", now=NOW, expires_at=expires)
    assert not second.use_link("nonce-a", "bob", now=NOW, expires_at=expires)
    assert not first.use_link("nonce-a", "bob", now=NOW, expires_at=expires)

    for attempt in range(5):
        nonce = f"raced-{attempt}"
        with ThreadPoolExecutor(max_workers=2) as pool:
            racing = [
                pool.submit(s.use_link, nonce, "dave", now=NOW, expires_at=expires)
                for s in (first, second)
            ]
            outcomes = [f.result() for f in racing]
        assert sorted(outcomes) == [False, True], nonce


def test_a_session_lives_until_ended_or_expired_in_every_process(
    engines: tuple[Engine, Engine],
) -> None:
    first, second = InboxSessions(engines[0]), InboxSessions(engines[1])
    row = first.start("alice", now=NOW, ttl=timedelta(hours=12))
    seen = second.live(row.id, now=NOW + timedelta(minutes=5))
    assert seen is not None and seen.user_id == "alice"
    stored = first.get(row.id)
    assert stored is not None and stored.last_seen_at == NOW + timedelta(minutes=5)
    assert second.live(row.id, now=NOW + timedelta(hours=12)) is None  # expired
    assert second.live("no-such-session", now=NOW) is None

    assert second.end(row.id, now=NOW + timedelta(minutes=6))
    assert not first.end(row.id, now=NOW + timedelta(minutes=7))  # already ended: harmless
    assert first.live(row.id, now=NOW + timedelta(minutes=8)) is None
    ended = first.get(row.id)
    assert ended is not None and ended.ended_at == NOW + timedelta(minutes=6)

    others = [first.start("bob", now=NOW, ttl=timedelta(hours=1)) for _ in range(2)]
    assert second.end_all("bob", now=NOW) == 2
    assert all(first.live(o.id, now=NOW) is None for o in others)


def test_purge_forgets_only_rows_long_expired(engines: tuple[Engine, Engine]) -> None:
    sessions = InboxSessions(engines[0])
    old = sessions.start("alice", now=NOW, ttl=timedelta(hours=1))
    fresh = sessions.start("alice", now=NOW, ttl=timedelta(hours=12))
    sessions.use_link("old-link", "alice", now=NOW, expires_at=NOW + timedelta(minutes=15))
    # Just expired: kept (another process's clock may run behind), so the nonce still counts.
    assert sessions.purge(now=NOW + timedelta(hours=1)) == 0
    assert not sessions.use_link(
        "old-link", "alice", now=NOW, expires_at=NOW + timedelta(minutes=15)
    )
    assert sessions.purge(now=NOW + timedelta(hours=1) + PURGE_AFTER) == 2
    assert sessions.get(old.id) is None and sessions.get(fresh.id) is not None
