"""What every `remit` subcommand shares: output, errors, and the remit API it talks to."""

from __future__ import annotations

import json
import os
import stat
import textwrap
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from accounting import format_money

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
# Where `remit up` writes stack.json unless told otherwise (sandbox/stack.py's default too).
DEFAULT_DATA_DIR = Path("stack-data")
STACK_FILE = "stack.json"

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def json_default(value: Any) -> Any:
    # Money stays exact: Decimal goes out as its string, never through float.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def money(amount: Any, currency: Any) -> str:
    """An amount from the API (a string, exact) as remit prints money: `USD 1,234.50`."""
    if amount is None or amount == "":
        return ""
    return format_money(Decimal(str(amount)), str(currency))


INDENT = "    "


def print_rows(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """Rows with an id first: a table when it fits the terminal with every cell whole, else
    each id whole on a line of its own and the rest indented below it. An id is there to be
    copied, so it is never cut short with an ellipsis."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Each column as wide as its widest cell, plus a space either side and the rules between.
    widths = [max(cell_len(str(c)) for c in column) for column in zip(columns, *rows, strict=True)]
    if sum(widths) + 3 * len(widths) + 1 <= console.width:
        console.print(table)
        return
    if title:
        console.print(title, highlight=False)
    for first, *rest in rows:
        console.print(first, highlight=False, soft_wrap=True)
        details = " · ".join(c for c in rest if c)
        if details:
            console.print(
                textwrap.fill(
                    details, console.width, initial_indent="    ", subsequent_indent="    "
                ),
                highlight=False,
                markup=False,
            )


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=json_default))


# ---------------------------------------------------------------------------------------------
# which remit API the CLI talks to
# ---------------------------------------------------------------------------------------------

API_URL_ENV = "REMIT_API_URL"
API_KEY_ENV = "REMIT_API_KEY"
PROFILE_ENV = "REMIT_PROFILE"
DEFAULT_PROFILE = "default"
CONFIG_EXAMPLE = '[default]\napi_url = "https://remit.example.com"\napi_key = "rk_..."'

# Set by `remit --profile NAME`; the environment's REMIT_PROFILE otherwise.
chosen_profile: str | None = None


@dataclass(frozen=True)
class ApiTarget:
    """A remit API and the key to call it with; `via` says where they came from."""

    url: str
    key: str
    via: str
    demo_keys: bool = False
    """True for a local stack: `--as USER` picks that user's demo key."""


def config_path() -> Path:
    """~/.config/remit/config.toml, or under $XDG_CONFIG_HOME when that is set."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "remit" / "config.toml"


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """The profiles of a config file; refused unless only its owner can read it (keys)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise fail(
            f"{path} holds API keys but is readable by others (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        parsed = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"{path} is not valid TOML: {exc}") from None
    return {name: value for name, value in parsed.items() if isinstance(value, dict)}


def _from_profile(path: Path, name: str, profile: dict[str, Any]) -> ApiTarget:
    url, key = profile.get("api_url"), profile.get("api_key")
    if not isinstance(url, str) or not url or not isinstance(key, str) or not key:
        raise fail(
            f"profile {name!r} in {path} needs api_url and api_key (strings), e.g.\n"
            + CONFIG_EXAMPLE.replace("default", name)
        )
    return ApiTarget(url=url.rstrip("/"), key=key, via=f"profile {name!r} of {path}")


def read_stack(data_dir: Path) -> dict[str, Any]:
    """What `remit up` wrote to DIR/stack.json (its API, its demo users' keys)."""
    path = Path(data_dir) / STACK_FILE
    try:
        parsed: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise fail(
            f"{path} not found: start the stack with `remit up --data-dir {data_dir}`, or point "
            f"the CLI at a remit API ({API_URL_ENV} and {API_KEY_ENV}, or a profile in "
            f"{config_path()})"
        ) from None
    except (OSError, ValueError) as exc:
        raise fail(f"{path} cannot be read: {exc}") from None
    return parsed


def configured_target() -> ApiTarget | None:
    """The API the user named: a profile (--profile, REMIT_PROFILE), else REMIT_API_URL and
    REMIT_API_KEY, else the config file's default profile; None when none is (the stack)."""
    named = chosen_profile or os.environ.get(PROFILE_ENV) or None
    path = config_path()
    if named is not None:
        if not path.is_file():
            raise fail(f"profile {named!r} asked for, but {path} does not exist")
        profiles = read_profiles(path)
        if named not in profiles:
            raise fail(f"no profile {named!r} in {path} (it has: {', '.join(profiles) or 'none'})")
        return _from_profile(path, named, profiles[named])
    url = os.environ.get(API_URL_ENV)
    if url:
        key = os.environ.get(API_KEY_ENV)
        if not key:
            raise fail(f"{API_URL_ENV} is set but {API_KEY_ENV} is not: give the API key too")
        return ApiTarget(url=url.rstrip("/"), key=key, via=API_URL_ENV)
    if path.is_file():
        profiles = read_profiles(path)
        if DEFAULT_PROFILE in profiles:
            return _from_profile(path, DEFAULT_PROFILE, profiles[DEFAULT_PROFILE])
    return None


def api_target(data_dir: Path, user: str | None) -> ApiTarget:
    """The API to call: the one the user named (`configured_target`), else the local stack
    (its stack.json, with `user`'s demo key)."""
    configured = configured_target()
    if configured is not None:
        return configured
    info = read_stack(data_dir)
    who = user or "sam"
    token = next(
        (k.get("token") for k in info.get("api_keys") or [] if k.get("user_id") == who), None
    )
    if not token:
        raise fail(f"no demo API key for {who!r} in this stack (--as names a demo user)")
    return ApiTarget(
        url=str(info["api_url"]).rstrip("/"),
        key=str(token),
        via=f"{Path(data_dir) / STACK_FILE}",
        demo_keys=True,
    )


def api(data_dir: Path, user: str | None) -> httpx.Client:
    """An HTTP client to the remit API `api_target` chooses (closed by its `with`)."""
    return client_for(api_target(data_dir, user))


def client_for(target: ApiTarget) -> httpx.Client:
    return httpx.Client(
        base_url=target.url,
        headers={"Authorization": f"Bearer {target.key}"},
        timeout=30,
    )


def send(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One API call, its answer whatever the status; a POST carries a fresh Idempotency-Key so
    the API may replay it."""
    headers = dict(kwargs.pop("headers", None) or {})
    if method == "POST":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    try:
        return client.request(method, path, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the API at {client.base_url}: {exc}") from None


def error_message(response: httpx.Response) -> str:
    """The API's own words for a refusal (its typed error body), else the start of the body."""
    try:
        error = response.json()["error"]
        return f"{error['message']} ({error['type']}, request {error['request_id']})"
    except (ValueError, KeyError, TypeError):
        return response.text[:500] or response.reason_phrase


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """One API call: its JSON answer, or the CLI fails with the API's message."""
    response = send(client, method, path, **kwargs)
    if response.status_code >= 400:
        raise fail(f"{method} {path} answered {response.status_code}: {error_message(response)}")
    return response.json() if response.content else None


def bill_path(bill_id: str, *rest: str) -> str:
    """/v1/bills/<id>[/rest]: an id's slashes stay path separators, anything else is quoted."""
    return "/".join([f"/v1/bills/{quote(bill_id, safe='/')}", *rest])


def resolve_bill(client: httpx.Client, ref: str) -> str:
    """The full id of the bill `ref` names: a full id as it is, else a short one (the
    `<document number>-<hash>` part, the hash, a prefix) the API resolves among the caller's
    bills; unknown or ambiguous fails with what the API said."""
    if ref.startswith("bill/"):
        return ref
    response = send(client, "GET", "/v1/bills/resolve", params={"ref": ref})
    if response.status_code >= 400:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = error_message(response)
        raise fail(message)
    return str(response.json()["id"])
