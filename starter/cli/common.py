"""What every `remit` subcommand shares: output, errors, the stack's endpoints and its clients."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from runtime.settings import Settings
from runtime.temporal import connect
from sandbox.stack import StackInfo, load_stack_info, stack_payload_codec
from starter.client import RemitClient
from store import Store

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="REMIT_DATA_DIR",
        help="The stack's data directory (holds stack.json).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def stack(data_dir: Path) -> StackInfo:
    try:
        return load_stack_info(data_dir)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None


def open_store(info: StackInfo) -> Store:
    # `remit up` migrated it already; a CLI call should not race it to do so again.
    return Store.open(info.database_url, run_migrations=False)


async def remit_client(info: StackInfo) -> RemitClient:
    settings = Settings(
        temporal_address=info.temporal.address, temporal_namespace=info.temporal.namespace
    )
    try:
        client = await connect(settings, codec=stack_payload_codec(Path(info.data_dir)))
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal at {info.temporal.address}: {exc}") from None
    return RemitClient(client, task_queue=info.temporal.task_queue)


def json_default(value: Any) -> Any:
    # Money stays exact: Decimal goes out as its string, never through float.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=json_default))


def api(data_dir: Path, user: str) -> httpx.Client:
    """An HTTP client to the stack's API with `user`'s demo key."""
    try:
        info: StackInfo = load_stack_info(data_dir)
        token = info.api_key_for(user)
    except (FileNotFoundError, LookupError) as exc:
        raise fail(str(exc)) from None
    return httpx.Client(
        base_url=info.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; a POST carries a fresh Idempotency-Key so the API may replay it."""
    headers = dict(kwargs.pop("headers", None) or {})
    if method == "POST":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    try:
        response = client.request(method, path, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the API at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['message']} ({error['type']}, request {error['request_id']})"
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        raise fail(f"{method} {path} answered {response.status_code}: {message}")
    return response.json() if response.content else None
