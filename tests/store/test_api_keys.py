"""API keys in the store: the secret is shown once, kept only hashed, rotated and revoked."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from store import ApiKeys, Store


def test_a_key_authenticates_only_with_its_exact_secret(store: Store) -> None:
    keys = ApiKeys(store.engine)

    issued = keys.issue("alice", ["decide", "submit"], name="laptop")

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
    old = keys.issue("sam", ["submit"], key_id="demo-sam")

    new = keys.issue("sam", ["submit", "decide"], key_id="demo-sam")

    assert keys.authenticate(old.token) is None
    row = keys.authenticate(new.token)
    assert row is not None and row.scope_set == {"submit", "decide"}
    assert [k.id for k in keys.list_keys(user_id="sam")] == ["demo-sam"]


def test_a_revoked_key_no_longer_authenticates(store: Store) -> None:
    keys = ApiKeys(store.engine)
    issued = keys.issue("olivia", ["admin"], key_id="ops")

    assert keys.revoke("ops") is True
    assert keys.revoke("ops") is False

    assert keys.authenticate(issued.token) is None
    revoked = keys.get("ops")
    assert revoked is not None and revoked.revoked_at is not None


@pytest.mark.parametrize("scopes", [[], ["superuser"]])
def test_scopes_must_be_known(store: Store, scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="scope"):
        ApiKeys(store.engine).issue("sam", scopes)
