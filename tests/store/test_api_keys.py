"""API keys in the store: shown once, kept hashed; rotated, revoked, scoped to connections."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import URL, text, update

from store import ApiKeys, Store, make_engine, migrate
from store.api_keys import ALL_CONNECTIONS, LAST_USED_RESOLUTION, ApiKeyRow
from store.types import utcnow


def test_a_key_authenticates_only_with_its_exact_secret(store: Store) -> None:
    keys = ApiKeys(store.engine)

    issued = keys.issue("alice", ["decide", "submit"], connections=["c1"], name="laptop")

    assert issued.token.startswith(f"rk_{issued.row.id}.")
    assert issued.token not in repr(issued)
    row = keys.authenticate(issued.token)
    assert row is not None and row.user_id == "alice"
    assert row.scope_set == {"decide", "submit"}
    assert keys.authenticate(issued.token + "x") is None
    assert keys.authenticate(issued.token[:-1]) is None
    assert keys.authenticate("rk_nobody.secret") is None
    assert keys.authenticate("not a key") is None
    with store.engine.connect() as connection:
        stored = " ".join(str(v) for v in connection.execute(text("SELECT * FROM api_keys")).one())
    assert issued.token.split(".", 1)[1] not in stored


def test_issuing_a_known_id_rotates_the_secret(store: Store) -> None:
    keys = ApiKeys(store.engine)
    old = keys.issue("sam", ["submit"], connections=["c1"], key_id="demo-sam")

    new = keys.issue("sam", ["submit", "decide"], connections=ALL_CONNECTIONS, key_id="demo-sam")

    assert keys.authenticate(old.token) is None
    row = keys.authenticate(new.token)
    assert row is not None and row.scope_set == {"submit", "decide"}
    assert row.connection_scope is None  # the rotation widened it to every connection
    assert [k.id for k in keys.list_keys(user_id="sam")] == ["demo-sam"]


def test_a_revoked_key_no_longer_authenticates(store: Store) -> None:
    keys = ApiKeys(store.engine)
    issued = keys.issue("olivia", ["admin"], connections=ALL_CONNECTIONS, key_id="ops")

    assert keys.revoke("ops") is True
    assert keys.revoke("ops") is False

    assert keys.authenticate(issued.token) is None
    revoked = keys.get("ops")
    assert revoked is not None and revoked.revoked_at is not None


@pytest.mark.parametrize("scopes", [[], ["superuser"]])
def test_scopes_must_be_known(store: Store, scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="scope"):
        ApiKeys(store.engine).issue("sam", scopes, connections=["c1"])


def test_a_key_carries_the_connections_it_may_act_on(store: Store) -> None:
    keys = ApiKeys(store.engine)

    limited = keys.issue("sam", ["submit"], connections=["qb-2", "qb-1", "qb-1"])
    everything = keys.issue("olivia", ["admin"], connections=ALL_CONNECTIONS)

    row = keys.authenticate(limited.token)
    assert row is not None and row.connection_scope == {"qb-1", "qb-2"}
    assert keys.list_keys(user_id="sam")[0].connection_ids == ["qb-1", "qb-2"]
    admin = keys.authenticate(everything.token)
    assert admin is not None and admin.connection_scope is None


@pytest.mark.parametrize("connections", [[], [""]])
def test_a_key_needs_named_connections_or_all_of_them_explicitly(
    store: Store, connections: list[str]
) -> None:
    with pytest.raises(ValueError, match="connections"):
        ApiKeys(store.engine).issue("sam", ["submit"], connections=connections)
    with pytest.raises(TypeError, match="list of connection ids"):
        ApiKeys(store.engine).issue("sam", ["submit"], connections="qb-1")
    assert ApiKeys(store.engine).list_keys() == []


def test_last_used_at_is_recorded_at_most_once_a_minute(store: Store) -> None:
    keys = ApiKeys(store.engine)
    issued = keys.issue("sam", ["submit"], connections=["c1"], key_id="k1")
    assert issued.row.last_used_at is None

    keys.authenticate(issued.token)
    first = keys.get("k1")
    assert first is not None and first.last_used_at is not None
    keys.authenticate(issued.token)
    again = keys.get("k1")
    assert again is not None and again.last_used_at == first.last_used_at

    # A minute later (moved back rather than waited for) the next use is recorded.
    earlier = utcnow() - LAST_USED_RESOLUTION - timedelta(seconds=1)
    table = ApiKeyRow.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as connection:
        connection.execute(update(table).where(table.c.id == "k1").values(last_used_at=earlier))
    keys.authenticate(issued.token)
    later = keys.get("k1")
    assert later is not None and later.last_used_at is not None
    assert later.last_used_at > earlier + LAST_USED_RESOLUTION


def test_keys_issued_before_scoping_keep_every_connection(empty_database_url: URL) -> None:
    migrate(empty_database_url, "0005")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO api_keys (id, secret_hash, user_id, scopes, created_at) "
                    "VALUES ('old', 'x', 'olivia', 'admin', :now)"
                ),
                {"now": utcnow().isoformat()},
            )
        migrate(empty_database_url)
        row = ApiKeys(engine).get("old")
        assert row is not None and row.connection_scope is None
        new = ApiKeys(engine).issue("sam", ["submit"], connections=["c1"])
        assert new.row.connection_scope == {"c1"}
    finally:
        engine.dispose()
