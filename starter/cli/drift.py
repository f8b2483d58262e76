"""`remit bills drift` (reconciled bills the books no longer agree with) and
`remit connections requests CONNECTION` (the request log), through any remit API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from starter.cli.common import (
    DEFAULT_DATA_DIR,
    AsJson,
    DataDir,
    api,
    call,
    console,
    print_json,
    print_rows,
)
from starter.cli.erp import connection_path


def _pages(client: Any, path: str, params: dict[str, Any], *, everything: bool) -> list[Any]:
    rows: list[Any] = []
    cursor: str | None = None
    while True:
        page = call(
            client, "GET", path, params={**params, **({"cursor": cursor} if cursor else {})}
        )
        rows.extend(page["data"])
        cursor = page.get("next_cursor")
        if cursor is None or not everything:
            return rows


def drift_command(
    connection: Annotated[str | None, typer.Option(help="Only this connection's bills.")] = None,
    status: Annotated[
        str, typer.Option(help="open (default), cleared (gone from the ERP) or resolved.")
    ] = "open",
    as_json: AsJson = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Drift findings: where the ERP changed a bill after remit reconciled it."""
    params: dict[str, Any] = {"limit": 500, "status": status}
    if connection is not None:
        params["connection"] = connection
    with api(data_dir, "olivia") as client:
        rows = _pages(client, "/v1/bills/drift", params, everything=True)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no {status} drift findings", highlight=False)
        return
    for row in rows:
        console.print(
            f"{row['id']}  {row['bill_id']}  {row['kind']}  {row['status']}",
            highlight=False,
            markup=False,
        )
        console.print(f"    {row['message']}", highlight=False, markup=False)


def requests_command(
    connection_id: Annotated[str, typer.Argument(help="The connection.")],
    failed: Annotated[bool, typer.Option(help="Only calls that failed.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many (newest first).")] = 50,
    as_json: AsJson = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The connection's request log: each ERP call remit made, who made it, the answer."""
    params: dict[str, Any] = {"limit": limit}
    if failed:
        params["failed"] = "true"
    with api(data_dir, "olivia") as client:
        rows = _pages(client, connection_path(connection_id, "requests"), params, everything=False)
    if as_json:
        print_json(rows)
        return
    print_rows(
        ("at", "who", "request", "answer"),
        [
            [
                str(r["at"]),
                r["actor"],
                f"{r['method']} {r['path']}",
                f"{r['status'] or '-'} {r['outcome']}"
                + (f": {r['error_message']}" if r.get("error_message") else ""),
            ]
            for r in rows
        ],
        title=f"{len(rows)} requests",
    )


def register(bills: typer.Typer, connections: typer.Typer | None = None) -> None:
    """Add `drift` to `remit bills` and `requests` to `remit connections` (the stage owns
    that group)."""
    bills.command("drift")(drift_command)
    if connections is not None:
        connections.command("requests")(requests_command)
