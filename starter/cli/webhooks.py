"""`remit webhooks`: endpoints, their deliveries and replays (through the API), and a receiver."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from runtime.webhook_signing import (
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    InvalidSignature,
    verify,
)
from starter.cli.common import (
    DEFAULT_DATA_DIR,
    AsJson,
    DataDir,
    api,
    call,
    console,
    fail,
    print_json,
    print_rows,
)

webhooks_app = typer.Typer(
    help="Signed webhooks: add endpoints, see deliveries, replay them, run a local receiver.",
    no_args_is_help=True,
)

AsUser = Annotated[str, typer.Option("--as", help="Whose API key to use (needs the admin scope).")]
OPERATOR = "olivia"


def _print_endpoints(rows: list[dict[str, Any]]) -> None:
    print_rows(
        ("id", "url", "events", "status", "created"),
        [
            (
                row["id"],
                row["url"],
                ", ".join(row["event_types"]) or "all",
                row["status"]
                + (f" ({row['disabled_reason']})" if row.get("disabled_reason") else ""),
                row["created_at"][:19],
            )
            for row in rows
        ],
    )


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Where remit POSTs events.")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event type to send (repeat); default: all."),
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(help="Write the signing secret to this file (0600) instead of printing it."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: AsUser = OPERATOR,
    as_json: AsJson = False,
) -> None:
    """Register an endpoint; its signing secret is given only this once."""
    body: dict[str, Any] = {"url": url, "description": description}
    if event:
        body["event_types"] = event
    with api(data_dir, user) as client:
        created = call(client, "POST", "/v1/webhook-endpoints", json=body)
    if secret_file is not None:
        write_secret(secret_file, created.pop("secret"))
    if as_json:
        print_json(created)
        return
    _print_endpoints([created])
    if secret_file is not None:
        console.print(f"signing secret written to {secret_file} (mode 0600)", highlight=False)
    else:
        console.print(f"signing secret (store it now, it is not shown again): {created['secret']}")


def write_secret(path: Path, secret: str) -> None:
    """The secret in a file only its owner reads, replaced whole (never half written)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(secret + "\n")
    os.replace(temporary, path)


def endpoint_of(client: httpx.Client, given: str) -> str:
    """An endpoint's id: `given` itself, or the id of the one endpoint registered at that URL."""
    if not given.startswith(("http://", "https://")):
        return given
    rows = call(client, "GET", "/v1/webhook-endpoints")["data"]
    found = [row["id"] for row in rows if row["url"] == given]
    if len(found) != 1:
        raise fail(
            f"{len(found) or 'no'} endpoints registered at {given}"
            + (f" ({', '.join(found)}): give the id" if found else "; `remit webhooks list`")
        )
    return str(found[0])


@webhooks_app.command("list")
def list_endpoints(
    data_dir: DataDir = DEFAULT_DATA_DIR, user: AsUser = OPERATOR, as_json: AsJson = False
) -> None:
    """Every endpoint (never their secrets)."""
    with api(data_dir, user) as client:
        rows = call(client, "GET", "/v1/webhook-endpoints")["data"]
    if as_json:
        print_json(rows)
    else:
        _print_endpoints(rows)


@webhooks_app.command("remove")
def remove(endpoint_id: str, data_dir: DataDir = DEFAULT_DATA_DIR, user: AsUser = OPERATOR) -> None:
    """Delete an endpoint and its delivery log."""
    with api(data_dir, user) as client:
        endpoint_id = endpoint_of(client, endpoint_id)
        call(client, "DELETE", f"/v1/webhook-endpoints/{endpoint_id}")
    console.print(f"removed {endpoint_id}")


def _switch(endpoint_id: str, action: str, data_dir: Path, user: str, as_json: bool) -> None:
    with api(data_dir, user) as client:
        endpoint_id = endpoint_of(client, endpoint_id)
        row = call(client, "POST", f"/v1/webhook-endpoints/{endpoint_id}/{action}")
    print_json(row) if as_json else _print_endpoints([row])


@webhooks_app.command("disable")
def disable(
    endpoint_id: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: AsUser = OPERATOR,
    as_json: AsJson = False,
) -> None:
    """Stop sending to an endpoint (events keep being recorded; replay them later)."""
    _switch(endpoint_id, "disable", data_dir, user, as_json)


@webhooks_app.command("enable")
def enable(
    endpoint_id: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: AsUser = OPERATOR,
    as_json: AsJson = False,
) -> None:
    """Send to a disabled endpoint again."""
    _switch(endpoint_id, "enable", data_dir, user, as_json)


@webhooks_app.command("deliveries")
def deliveries(
    endpoint_id: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: AsUser = OPERATOR,
    as_json: AsJson = False,
) -> None:
    """An endpoint's delivery log: each event, its status and attempts."""
    with api(data_dir, user) as client:
        endpoint_id = endpoint_of(client, endpoint_id)
        rows = call(client, "GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries")["data"]
    if as_json:
        print_json(rows)
        return
    print_rows(
        ("delivery", "event", "status", "attempts", "last answer", "created"),
        [
            (
                row["id"],
                row["event_type"],
                row["status"],
                str(row["attempts"]),
                row["last_error"] or (str(row["last_status_code"] or "") or "-"),
                row["created_at"][:19],
            )
            for row in rows
        ],
    )


@webhooks_app.command("replay")
def replay(
    endpoint_id: str,
    delivery: Annotated[str | None, typer.Option(help="Send this delivery's event again.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Send every event since this time (ISO 8601 with zone) again."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: AsUser = OPERATOR,
    as_json: AsJson = False,
) -> None:
    """Deliver one event again, or everything since a time."""
    if (delivery is None) == (since is None):
        raise fail("give exactly one of --delivery or --since", code=2)
    with api(data_dir, user) as client:
        endpoint_id = endpoint_of(client, endpoint_id)
        if delivery is not None:
            path = f"/v1/webhook-endpoints/{endpoint_id}/deliveries/replay"
            rows = [call(client, "POST", path, json={"delivery_id": delivery})]
        else:
            assert since is not None
            if since.tzinfo is None:
                raise fail("--since needs a time zone, e.g. 2026-11-21T09:00:00+00:00", code=2)
            path = f"/v1/webhook-endpoints/{endpoint_id}/replay"
            rows = call(client, "POST", path, json={"since": since.isoformat()})["data"]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(f"replaying {row['event_type']} as {row['id']}")
    console.print(f"{len(rows)} deliveries started")


def receiver_app(secret: str, out: Console, *, tolerance: int = 300) -> Any:
    """A tiny ASGI receiver: verifies each delivery's signature and prints the event."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            verify(secret, headers.get(SIGNATURE_HEADER.lower()), body, tolerance=tolerance)
        except InvalidSignature as exc:
            out.print(f"[red]refused[/red] a delivery with a bad signature: {exc}")
            status = 400
        else:
            event = json.loads(body)
            data = event.get("data", {})
            out.print(
                f"[green]verified[/green] {headers.get(EVENT_TYPE_HEADER.lower())} "
                f"{data.get('id', '')} {data.get('status', '')}",
                highlight=False,
            )
            status = 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


@webhooks_app.command("listen")
def listen(
    secret: Annotated[
        str | None,
        typer.Option(envvar="REMIT_WEBHOOK_SECRET", help="The endpoint's signing secret."),
    ] = None,
    secret_file: Annotated[
        Path | None, typer.Option(help="Read it from this file (`webhooks add --secret-file`).")
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8765,
) -> None:
    """Receive webhooks locally, verify each signature and print the events (Ctrl-C stops)."""
    import uvicorn

    if (secret is None) == (secret_file is None):
        raise fail("give the signing secret: --secret (REMIT_WEBHOOK_SECRET) or --secret-file", 2)
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as exc:
            raise fail(f"cannot read {secret_file}: {exc.strerror}", 2) from None
    assert secret is not None

    console.print(f"listening on http://127.0.0.1:{port}/ — register it with `remit webhooks add`")
    uvicorn.run(receiver_app(secret, console), host="127.0.0.1", port=port, log_level="warning")
