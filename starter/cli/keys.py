"""`remit keys`: issue, list and revoke API keys in the store (REMIT_DATABASE_URL), like migrate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from starter.cli.common import AsJson, console, fail, print_json
from store import ApiKeys, SchemaNotCurrent, Store, StoreSettings
from store.api_keys import ALL_CONNECTIONS, SCOPES, ApiKeyRow

keys_app = typer.Typer(
    help="API keys: create one (its secret is shown once), list them, revoke one. Works on the "
    "store REMIT_DATABASE_URL names, as `remit migrate` does.",
    no_args_is_help=True,
)


@contextmanager
def _store() -> Iterator[Store]:
    try:
        url = StoreSettings().database_url
    except ValidationError as exc:
        raise fail(f"the REMIT_* environment is not valid: {exc.errors()[0]['msg']}") from None
    try:
        store = Store.open(url, run_migrations=False)
    except SchemaNotCurrent as exc:
        raise fail(str(exc)) from None  # it says to run `remit migrate`
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _keys() -> Iterator[ApiKeys]:
    with _store() as store:
        yield ApiKeys(store.engine)


def _connections(row: ApiKeyRow) -> str:
    scope = row.connection_scope
    return "all" if scope is None else ", ".join(sorted(scope))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


@keys_app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", help="Who the key acts as (a directory user).")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"What it may do (repeat): {', '.join(SCOPES)}."),
    ],
    connection: Annotated[
        list[str] | None,
        typer.Option("--connection", help="A connection it may act on (repeat)."),
    ] = None,
    all_connections: Annotated[
        bool,
        typer.Option(
            "--all-connections",
            help="Act on every connection (what an admin key does unless --connection limits "
            "it; other keys must say so).",
        ),
    ] = False,
    name: Annotated[str | None, typer.Option(help="A note: whose laptop, which service.")] = None,
    as_json: AsJson = False,
) -> None:
    """Issue a key; the secret is printed this once and kept only as its hash."""
    if connection and all_connections:
        raise fail("give --connection or --all-connections, not both", 2)
    if not connection and not all_connections and "admin" not in scope:
        raise fail(
            "name the connections the key may act on (--connection ID, repeated), or give "
            "--all-connections for a key that acts on every one",
            2,
        )
    with _store() as store:
        # A mistyped id would make a key that sees nothing: refuse it while the typo is fresh.
        unknown = [c for c in connection or [] if store.get_connection(c) is None]
        if unknown:
            raise fail(
                f"no connection {', '.join(map(repr, unknown))} in the store "
                "(`remit connections list` shows them)",
                2,
            )
        try:
            issued = ApiKeys(store.engine).issue(
                user, scope, connections=connection or ALL_CONNECTIONS, name=name
            )
        except ValueError as exc:
            raise fail(str(exc), 2) from None
    row = issued.row
    if as_json:
        print_json(
            {
                "id": row.id,
                "user_id": row.user_id,
                "scopes": sorted(row.scope_set),
                "connections": "all"
                if row.connection_scope is None
                else sorted(row.connection_scope),
                "token": issued.token,
            }
        )
        return
    console.print(
        f"key {row.id} for {row.user_id} ({', '.join(sorted(row.scope_set))}; connections: "
        f"{_connections(row)})"
    )
    console.print("the secret, shown only now (send it as `Authorization: Bearer <key>`):")
    # Printed bare, so `| tail -1` or a copy takes exactly the key.
    print(issued.token)


@keys_app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
    as_json: AsJson = False,
) -> None:
    """Every key (never a secret): who, what, where, when last used, whether revoked."""
    with _keys() as keys:
        rows = keys.list_keys(user_id=user)
    if as_json:
        print_json(
            [
                {
                    "id": row.id,
                    "user_id": row.user_id,
                    "name": row.name,
                    "scopes": sorted(row.scope_set),
                    "connections": "all"
                    if row.connection_scope is None
                    else sorted(row.connection_scope),
                    "created_at": row.created_at,
                    "last_used_at": row.last_used_at,
                    "revoked_at": row.revoked_at,
                }
                for row in rows
            ]
        )
        return
    table = Table("id", "user", "scopes", "connections", "last used", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.user_id,
            " ".join(sorted(row.scope_set)),
            _connections(row),
            _when(row.last_used_at),
            _when(row.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`remit keys list`).")],
) -> None:
    """Revoke a key at once: every API process refuses it from its next request."""
    with _keys() as keys:
        if keys.revoke(key_id):
            console.print(f"key {key_id} revoked")
            return
        row = keys.get(key_id)
    if row is None:
        raise fail(f"no key {key_id!r}: see `remit keys list`")
    console.print(f"key {key_id} was already revoked on {_when(row.revoked_at)}")
