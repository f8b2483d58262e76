"""Short bill ids resolved in the store (SQLite and PostgreSQL): tiers, wildcards, scoping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from starter.api.audit import _candidates
from starter.api.auth import Principal
from store import Store, make_engine, migrate
from tests.postgres import PostgresDatabases, reachable_postgres
from tests.store.conftest import make_bill


@dataclass
class _Context:
    store: Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
        yield opened
        opened.close()
        return
    admin, why = reachable_postgres()
    if admin is None:
        pytest.skip(f"PostgreSQL not reachable: {why}")
    databases = PostgresDatabases(admin)
    try:
        url = databases.create()
        migrate(url)
        opened = Store(make_engine(url))
        yield opened
        opened.close()
    finally:
        databases.drop_all()


EVERYONE = Principal(key_id="k1", user_id="olivia", scopes=frozenset({"admin"}), connections=None)


def test_a_short_id_names_one_bill_from_the_best_tier_that_matches(store: Store) -> None:
    ids = [
        "bill/conn-1/INV-77-0a1b2c3d",
        "bill/conn-1/INV-777-9f8e7d6c",
        "bill/conn-2/INV_50%-11223344",  # LIKE's wildcards, literally in a number
        "bill/conn-2/INV-50-55667788",
        "bill/conn-1/" + "e" * 64,  # the first form of id: the key whole
    ]
    for wid in ids:
        store.upsert_bill(make_bill(wid, connection_id=wid.split("/")[1]))
    context = _Context(store)

    def named(ref: str, principal: Principal = EVERYONE) -> list[str]:
        return _candidates(context, principal, ref)  # type: ignore[arg-type]

    assert named("INV-77-0a1b2c3d") == ["bill/conn-1/INV-77-0a1b2c3d"]  # the last part
    assert named("9f8e7d6c") == ["bill/conn-1/INV-777-9f8e7d6c"]  # the hash
    assert named("INV-77") == ["bill/conn-1/INV-77-0a1b2c3d", "bill/conn-1/INV-777-9f8e7d6c"]
    assert named("INV_50%") == ["bill/conn-2/INV_50%-11223344"]  # no wildcard matched INV-50
    assert named("e" * 64) == ["bill/conn-1/" + "e" * 64]
    assert named("nothing-like-it") == []


def test_another_connections_bills_are_never_named(store: Store) -> None:
    store.upsert_bill(make_bill("bill/conn-1/INV-9-aaaaaaaa", connection_id="conn-1"))
    store.upsert_bill(make_bill("bill/conn-2/INV-9-bbbbbbbb", connection_id="conn-2"))
    only_one = Principal(
        key_id="k2", user_id="sam", scopes=frozenset({"submit"}), connections=frozenset({"conn-2"})
    )

    found = _candidates(_Context(store), only_one, "INV-9")  # type: ignore[arg-type]

    assert found == ["bill/conn-2/INV-9-bbbbbbbb"]
