"""`remit keys`: create (secret printed once), list and revoke keys in the configured store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.cli.keys import keys_app
from store import ApiKeys, ConnectionRow, Store, migrate

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'remit.db'}"
    monkeypatch.setenv("REMIT_DATABASE_URL", url)
    return url


def _keys(url: str) -> tuple[Store, ApiKeys]:
    store = Store.open(url, run_migrations=False)
    return store, ApiKeys(store.engine)


def _add_connection(url: str, connection_id: str) -> None:
    store = Store.open(url, run_migrations=False)
    now = datetime.now(UTC)
    try:
        store.upsert_connection(
            ConnectionRow(
                id=connection_id,
                platform="quickbooks",
                company_id="1",
                display_name="Test company",
                created_at=now,
                updated_at=now,
            )
        )
    finally:
        store.close()


def test_a_key_is_created_with_its_connections_and_its_secret_shown_once(database: str) -> None:
    migrate(database)
    _add_connection(database, "qb-1")

    made = runner.invoke(
        keys_app,
        ["create", "--user", "sam", "--scope", "submit", "--connection", "qb-1"],
    )
    admin = runner.invoke(keys_app, ["create", "--user", "olivia", "--scope", "admin"])

    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert token.startswith("rk_") and "connections: qb-1" in made.output
    assert admin.exit_code == 0, admin.output
    admin_token = admin.output.strip().splitlines()[-1]
    store, keys = _keys(database)
    try:
        row = keys.authenticate(token)
        assert row is not None and row.user_id == "sam"
        assert row.scope_set == {"submit"} and row.connection_scope == {"qb-1"}
        operator = keys.authenticate(admin_token)
        assert operator is not None and operator.connection_scope is None
    finally:
        store.close()

    listed = runner.invoke(keys_app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["user_id"]: row for row in json.loads(listed.output)}
    assert rows["sam"]["connections"] == ["qb-1"] and rows["olivia"]["connections"] == "all"
    assert rows["sam"]["last_used_at"] is not None  # authenticated above
    assert token.split(".", 1)[1] not in listed.output  # the secret is never shown again

    revoked = runner.invoke(keys_app, ["revoke", rows["sam"]["id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    store, keys = _keys(database)
    try:
        assert keys.authenticate(token) is None
    finally:
        store.close()
    unknown = runner.invoke(keys_app, ["revoke", "no-such-key"])
    assert unknown.exit_code == 1 and "no key 'no-such-key'" in unknown.output


def test_a_key_that_is_not_admin_names_its_connections_or_all_explicitly(database: str) -> None:
    migrate(database)

    vague = runner.invoke(keys_app, ["create", "--user", "sam", "--scope", "submit"])
    unknown = runner.invoke(
        keys_app, ["create", "--user", "sam", "--scope", "root", "--all-connections"]
    )
    broad = runner.invoke(
        keys_app, ["create", "--user", "sam", "--scope", "submit", "--all-connections"]
    )

    assert vague.exit_code == 2 and "--connection" in vague.output
    typo = runner.invoke(
        keys_app, ["create", "--user", "sam", "--scope", "submit", "--connection", "qb-l"]
    )
    assert typo.exit_code == 2 and "no connection 'qb-l'" in typo.output
    assert unknown.exit_code == 2 and "unknown scope" in unknown.output
    assert broad.exit_code == 0 and "connections: all" in broad.output


def test_an_unmigrated_store_says_to_migrate(database: str) -> None:
    result = runner.invoke(keys_app, ["list"])

    assert result.exit_code == 1
    assert "remit migrate" in result.output
