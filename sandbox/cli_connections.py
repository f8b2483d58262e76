"""`remit connections`: list and check connections through any remit API; add and relink them
against the platforms (and the stack's emulators) from here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast
from urllib.parse import quote

import typer
from rich.table import Table
from temporalio.service import RPCError

from connectors.base import ConnectorError
from connectors.oauth import LinkRefused
from connectors.registry import ERP_PLATFORMS, auth
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.temporal import connect
from starter.cli.common import (
    DEFAULT_DATA_DIR,
    ApiTarget,
    AsJson,
    DataDir,
    call,
    client_for,
    configured_target,
    console,
    errors,
    fail,
)
from starter.cli.drift import requests_command
from starter.cli.erp import connection_show
from starter.client import RemitClient, resume_bills_after_relink
from starter.connections import ConnectionHealth, ConnectionService, LinkStart, OnRelinked
from store import ConnectionRow, Store

if TYPE_CHECKING:
    from sandbox.stack import EmulatorInfo, StackInfo

# Linking drives the stack's emulators (consent pages, provisioning) and reads its stack.json:
# the stage is imported where a command needs it, so the rest of the CLI never loads it.

connections_app = typer.Typer(
    help="Link ERP companies through their real auth flow, relink them, watch their health.",
    no_args_is_help=True,
)
# `show` (health, mirror counts, sync runs) reads through any remit API: the product's CLI.
connections_app.command("show")(connection_show)
# `requests` (the request log) too.
connections_app.command("requests")(requests_command)

T = TypeVar("T")

AutoConsent = Annotated[
    bool,
    typer.Option(
        "--auto-consent",
        help="Emulators only: fill in the consent (or M2M setup) page over HTTP yourself.",
    ),
]
RedirectUri = Annotated[
    str | None,
    typer.Option(help="Where the platform sends the browser back (default: the API's callback)."),
]


def stack(data_dir: Path) -> StackInfo:
    from sandbox.stack import load_stack_info

    try:
        return load_stack_info(data_dir)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None


async def remit_client(info: StackInfo) -> RemitClient:
    """Linking drives the stack's consent pages and resumes its paused bills over Temporal."""
    from sandbox.stack import stack_payload_codec

    settings = Settings(
        temporal_address=info.temporal.address, temporal_namespace=info.temporal.namespace
    )
    try:
        client = await connect(settings, codec=stack_payload_codec(Path(info.data_dir)))
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal at {info.temporal.address}: {exc}") from None
    return RemitClient(client, task_queue=info.temporal.task_queue)


def relinked_hook(info: StackInfo, store: Store) -> OnRelinked:
    """What runs after a connection gets a new grant: resume the bills paused on it."""

    async def resume(connection_id: str) -> None:
        try:
            remit = await remit_client(info)
            resumed = await resume_bills_after_relink(
                remit, store, connection_id, actor="remit connections relink"
            )
        except (typer.Exit, RuntimeError, RPCError) as exc:
            # The grant is saved either way; bills paused on it wait until told.
            errors.print(
                f"[yellow]warning:[/yellow] {connection_id} is relinked, but its paused bills "
                f"were not told ({exc or 'Temporal unreachable'}); send them `remit bills retry`"
            )
            return
        errors.print(f"resumed {len(resumed)} bill(s) paused on {connection_id}")

    return resume


def linked_hook(info: StackInfo) -> OnRelinked:
    """What runs after a new connection is saved: its first sync now, then its schedule."""

    async def first_sync(connection_id: str) -> None:
        from starter.sync import ensure_sync_schedule, start_sync

        settings = Settings(task_queue=info.temporal.task_queue)
        try:
            remit = await remit_client(info)
            await start_sync(remit.temporal, settings, connection_id, trigger="connect")
            await ensure_sync_schedule(remit.temporal, settings, connection_id)
        except (typer.Exit, RuntimeError, RPCError) as exc:
            # The connection is saved either way; every worker makes its schedule at start.
            errors.print(
                f"[yellow]warning:[/yellow] {connection_id} is linked, but its books were not "
                f"synced yet ({exc or 'Temporal unreachable'}); "
                f"run `remit erp sync {connection_id}`"
            )
            return
        errors.print(f"syncing {connection_id}'s books (see `remit connections show`)")

    return first_sync


def _service(info: StackInfo) -> tuple[ConnectionService, Store]:
    from sandbox.stack import load_or_create_secret_key

    data_dir = Path(info.data_dir)
    key = Settings(data_dir=data_dir).secret_key.get_secret_value() or load_or_create_secret_key(
        data_dir
    )
    store = Store.open(info.database_url, run_migrations=False)
    service = ConnectionService(
        store,
        SecretBox(key),
        on_relinked=relinked_hook(info, store),
        on_linked=linked_hook(info),
    )
    return service, store


def _run(info: StackInfo, work: Callable[[ConnectionService], Awaitable[T]]) -> T:
    service, store = _service(info)
    try:
        return asyncio.run(cast(Any, work(service)))  # type: ignore[no-any-return]
    except (LinkRefused, ConnectorError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise fail(str(message)) from None
    finally:
        store.close()


def _emulator(info: StackInfo, platform: str) -> EmulatorInfo | None:
    return next((e for e in info.emulators if e.platform == platform), None)


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise fail(f"--setting {pair!r} is not NAME=VALUE", 2)
        settings[name] = value
    return settings


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


def _print_health(rows: list[ConnectionHealth], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps([row.model_dump(mode="json") for row in rows]))
        return
    table = Table(title="connections", title_justify="left")
    # Ids and statuses are what people copy and scan for: never wrap them.
    table.add_column("id", no_wrap=True)
    table.add_column("platform")
    table.add_column("company")
    table.add_column("status", no_wrap=True)
    for column in ("last success", "last error", "limits"):
        table.add_column(column)
    for row in rows:
        style = {"active": "green", "needs_relink": "red"}.get(row.status, "yellow")
        error = f"{_when(row.last_error_at)} {row.last_error or ''}" if row.last_error else "—"
        limits = f"until {_when(row.rate_limited_until)}" if row.rate_limited else "—"
        table.add_row(
            row.id,
            row.platform,
            f"{row.display_name} ({row.company_id})",
            f"[{style}]{row.status}[/{style}]",
            _when(row.last_success_at),
            error,
            limits,
        )
    console.print(table)


def _print_connection(row: ConnectionRow, service: ConnectionService, as_json: bool) -> None:
    _print_health([service.describe(row)], as_json)


async def _finish(
    service: ConnectionService,
    start: LinkStart,
    *,
    base_url: str,
    auto_consent: bool,
    company: str | None,
) -> ConnectionRow:
    """Take the person through the consent page (or do it for them on an emulator)."""
    if auto_consent:
        from sandbox.consent import drive_consent

        async with service.http(base_url) as http:
            callback = await drive_consent(http, start.authorize_url, company_id=company)
    else:
        errors.print("Open this address, choose the company and approve:", highlight=False)
        errors.print(start.authorize_url, highlight=False, soft_wrap=True)
        callback = typer.prompt("Then paste the address your browser was sent to")
    return await service.complete_link(callback)


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def _health_over_api(target: ApiTarget, connection_id: str | None) -> list[ConnectionHealth]:
    """Connections' health as a remit API reports it (an admin key; scoped keys see theirs)."""
    with client_for(target) as client:
        ids = (
            [connection_id]
            if connection_id
            else [row["id"] for row in call(client, "GET", "/v1/connections")["data"]]
        )
        return [
            ConnectionHealth.model_validate(
                call(client, "GET", f"/v1/connections/{quote(one, safe='')}/health")
            )
            for one in ids
        ]


@connections_app.command("list")
def list_connections(data_dir: DataDir = DEFAULT_DATA_DIR, as_json: AsJson = False) -> None:
    """Every connection, its status and health."""
    target = configured_target()
    if target is not None:
        _print_health(_health_over_api(target, None), as_json)
        return
    info = stack(data_dir)

    async def go(service: ConnectionService) -> list[ConnectionHealth]:
        return service.list_health()

    _print_health(_run(info, go), as_json)


@connections_app.command()
def add(
    platform: Annotated[str, typer.Argument(help=f"One of {', '.join(ERP_PLATFORMS)}.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    base_url: Annotated[
        str | None, typer.Option(help="The platform's API base URL (default: the emulator).")
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="Your app's OAuth client id.")] = None,
    client_secret: Annotated[
        str | None,
        typer.Option(help="Your app's OAuth client secret.", envvar="REMIT_CLIENT_SECRET"),
    ] = None,
    certificate_id: Annotated[
        str | None, typer.Option(help="Client credentials: the certificate id (JWT kid).")
    ] = None,
    private_key_file: Annotated[
        Path | None, typer.Option(help="Client credentials: the PEM private key.")
    ] = None,
    company: Annotated[
        str | None, typer.Option(help="The company / tenant / account id to connect.")
    ] = None,
    connection_id: Annotated[
        str | None, typer.Option("--id", help="The connection id (default: platform-company).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A display name.")] = None,
    setting: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE connection setting (repeatable).")
    ] = None,
    redirect_uri: RedirectUri = None,
    auto_consent: AutoConsent = False,
    as_json: AsJson = False,
) -> None:
    """Link a company through the platform's own auth flow."""
    if platform not in ERP_PLATFORMS:
        raise fail(f"unknown platform {platform!r}; known: {', '.join(ERP_PLATFORMS)}", 2)
    info = stack(data_dir)
    emulator = _emulator(info, platform)
    url = base_url or (emulator.base_url if emulator else None)
    if url is None:
        raise fail(f"no {platform} emulator in this stack: give --base-url", 2)
    callback_to = redirect_uri or f"{info.api_url.rstrip('/')}/connections/callback"
    settings = _settings(setting or [])
    flow = auth(platform).flow
    if auto_consent and emulator is None:
        raise fail("--auto-consent works against the stack's emulators only", 2)

    async def go(service: ConnectionService) -> tuple[ConnectionRow, ConnectionService]:
        if flow == "client_credentials":
            if client_id and certificate_id and private_key_file and company:
                credentials = {
                    "client_id": client_id,
                    "certificate_id": certificate_id,
                    "private_key": private_key_file.read_text(),
                }
                account = company
            elif auto_consent:
                from sandbox.registry import provision_with

                credentials = await provision_with(
                    service, platform, base_url=url, company_id=company
                )
                account = credentials.pop("account_id")
            else:
                raise LinkRefused(
                    f"{platform} links with client credentials: give --client-id, "
                    "--certificate-id, --private-key-file and --company (or --auto-consent)"
                )
            row = await service.link_client_credentials(
                platform,
                base_url=url,
                company_id=account,
                credentials=credentials,
                connection_id=connection_id,
                display_name=name,
                settings=settings,
            )
            return row, service
        app_id, app_secret = client_id, client_secret
        if not app_id or not app_secret:
            if not auto_consent or emulator is None:
                raise LinkRefused("give --client-id and --client-secret of your app")
            from sandbox.registry import provision_with

            app = await provision_with(
                service,
                platform,
                base_url=url,
                inspector_token=emulator.inspector_token,
                redirect_uri=callback_to,
            )
            app_id, app_secret = app["client_id"], app["client_secret"]
        start = await service.begin_link(
            platform,
            base_url=url,
            client_id=app_id,
            client_secret=app_secret,
            redirect_uri=callback_to,
            connection_id=connection_id,
            display_name=name,
            settings=settings,
        )
        row = await _finish(
            service, start, base_url=url, auto_consent=auto_consent, company=company
        )
        return row, service

    row, service = _run(info, go)
    if not as_json:
        console.print(f"[green]linked[/green] {row.id}: {row.display_name}", highlight=False)
    _print_connection(row, service, as_json)


@connections_app.command()
def relink(
    connection_id: Annotated[str, typer.Argument(help="The connection to give a new grant.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    redirect_uri: RedirectUri = None,
    auto_consent: AutoConsent = False,
    as_json: AsJson = False,
) -> None:
    """Give a connection a new grant for the same company; its paused bills resume."""
    info = stack(data_dir)
    callback_to = redirect_uri or f"{info.api_url.rstrip('/')}/connections/callback"

    async def go(service: ConnectionService) -> tuple[ConnectionRow, ConnectionService]:
        started = await service.relink(connection_id, redirect_uri=callback_to)
        if isinstance(started, ConnectionRow):
            return started, service
        row = service.row(connection_id)
        if auto_consent and not any(e.base_url == row.base_url for e in info.emulators):
            raise LinkRefused("--auto-consent works against the stack's emulators only")
        relinked = await _finish(
            service,
            started,
            base_url=row.base_url or "",
            auto_consent=auto_consent,
            company=row.company_id,
        )
        return relinked, service

    row, service = _run(info, go)
    if not as_json:
        console.print(f"[green]relinked[/green] {row.id}", highlight=False)
    _print_connection(row, service, as_json)


@connections_app.command()
def health(
    connection_id: Annotated[
        str | None, typer.Argument(help="One connection (default: all).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    probe: Annotated[
        bool, typer.Option("--probe", help="Make one live read through each connection first.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Last success, last error and rate-limit state; exit 1 if any needs relinking."""
    target = configured_target()
    if target is not None:
        if probe:
            raise fail("--probe reads through the connection from this machine: the stack only", 2)
        rows = _health_over_api(target, connection_id)
        _print_health(rows, as_json)
        if any(row.status == "needs_relink" for row in rows):
            raise typer.Exit(1)
        return
    info = stack(data_dir)

    async def go(service: ConnectionService) -> list[ConnectionHealth]:
        ids = [connection_id] if connection_id else [c.id for c in service.list_health()]
        return [await service.health(one, probe=probe) for one in ids]

    rows = _run(info, go)
    _print_health(rows, as_json)
    if any(row.status == "needs_relink" for row in rows):
        raise typer.Exit(1)
