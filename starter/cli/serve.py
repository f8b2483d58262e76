"""`remit migrate`, `remit api`, `remit worker`: the production processes, configured only from
the environment (REMIT_* settings, see runtime/settings.py and the README's Deploying)."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Annotated, Literal

import typer
from pydantic import ValidationError

from runtime.settings import Settings
from runtime.temporal import SearchAttributesMissing, connect, ensure_search_attributes
from starter.cli.common import console, fail
from store import SchemaNotCurrent, make_engine, migrate, schema_revisions

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

LogLevel = Annotated[
    str,
    typer.Option(
        "--log-level",
        envvar="REMIT_LOG_LEVEL",
        help="debug, info, warning or error.",
    ),
]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise fail(f"the REMIT_* environment is not valid: {problems}") from None


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise fail(f"--log-level must be debug, info, warning or error, not {value!r}")
    return level


def migrate_command(
    temporal: Annotated[
        bool,
        typer.Option(
            "--temporal/--no-temporal",
            help="Also add remit's search attributes to the Temporal namespace.",
        ),
    ] = True,
) -> None:
    """Bring the database to this remit's schema (before new API or worker processes).

    Safe to run again, and from several places at once. The database is REMIT_DATABASE_URL;
    the Temporal namespace gets the search attributes bills are found by.
    """
    settings = _settings()
    _migrate_database(settings)
    if temporal:
        _register_search_attributes(settings)


def _register_search_attributes(settings: Settings) -> None:
    async def register() -> list[str]:
        client = await connect(settings)
        return await ensure_search_attributes(client, settings.temporal_namespace)

    try:
        added = asyncio.run(register())
    except SearchAttributesMissing as exc:
        raise fail(str(exc)) from None
    except RuntimeError as exc:
        raise fail(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from None
    where = f"namespace {settings.temporal_namespace}"
    console.print(
        f"search attributes added to {where}: {', '.join(added)}"
        if added
        else f"search attributes already in {where}"
    )


def _migrate_database(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        before, head = schema_revisions(engine)
        if before == head:
            console.print(f"schema already at {head}")
            return
        migrate(engine)
        after, _ = schema_revisions(engine)
        console.print(f"schema migrated from {before or 'empty'} to {after}")
    except SchemaNotCurrent as exc:  # pragma: no cover - migrate raises only on real faults
        raise fail(str(exc)) from None
    finally:
        engine.dispose()


def new_secrets_command() -> None:
    """Print fresh secrets for a new deployment, as environment lines to keep in a vault.

    REMIT_SECRET_KEY seals ERP credentials and bank details in the store, REMIT_ENCRYPTION_KEYS
    encrypts Temporal payloads, REMIT_INBOX_SESSION_SECRET signs inbox sessions. Every API and
    worker process gets the same values; losing the first two loses what they sealed.
    """
    import secrets as token_source

    from runtime.codec import format_keys, generate_key
    from runtime.secrets import SecretBox

    key_id = f"k{datetime.now(UTC):%Y%m%d}"
    for name, value in (
        ("REMIT_SECRET_KEY", SecretBox.generate_key()),
        ("REMIT_ENCRYPTION_KEYS", format_keys({key_id: generate_key()})),
        ("REMIT_INBOX_SESSION_SECRET", token_source.token_urlsafe(32)),
    ):
        console.print(f"{name}={value}", highlight=False, soft_wrap=True)


def api_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each opens its own store and client).")
    ] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxies whose X-Forwarded-For/-Proto to trust (comma-separated IPs); "
            "default: none."
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log a line per request.")
    ] = False,
    log_level: LogLevel = "warning",
) -> None:
    """Serve the API: v1, the inbox, bank events, webhook endpoints, the codec endpoint.

    Configured from the environment (REMIT_*); runs until SIGTERM or Ctrl-C.
    """
    import uvicorn

    level = _log_level(log_level)
    settings = _settings()
    try:
        # Refuse to start half-configured, before uvicorn forks its workers.
        from starter.api.app import check_settings

        check_settings(settings)
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    # The factory runs in each uvicorn worker; the level reaches it through the environment.
    os.environ["REMIT_LOG_LEVEL"] = level
    uvicorn.run(
        "starter.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=level.lower(),
        access_log=access_log,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )


def worker_command(
    queues: Annotated[
        str,
        typer.Option(
            help="Which task queues to poll: bills (workflows, the bank, the store), erp "
            "(every ERP call, rate-limited), or both.",
        ),
    ] = "both",
    workflow_task_slots: Annotated[
        int | None,
        typer.Option(min=2, help="Workflow tasks at once (REMIT_WORKFLOW_TASK_SLOTS)."),
    ] = None,
    erp_concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="ERP calls at once (REMIT_ERP_CONCURRENT_ACTIVITIES)."),
    ] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run a worker: as many as you need, on any machines.

    Configured from the environment (REMIT_*). On SIGTERM or Ctrl-C, running activities get
    REMIT_WORKER_SHUTDOWN_SECONDS to finish.
    """
    import worker

    if queues not in ("bills", "erp", "both"):
        raise fail(f"--queues must be bills, erp or both, not {queues!r}")
    chosen: Literal["bills", "erp", "both"] = queues  # type: ignore[assignment]
    logging.basicConfig(level=_log_level(log_level), format=LOG_FORMAT)
    settings = _settings()
    overrides = {
        name: value
        for name, value in (
            ("workflow_task_slots", workflow_task_slots),
            ("erp_concurrent_activities", erp_concurrency),
        )
        if value is not None
    }
    if overrides:
        settings = settings.model_copy(update=overrides)
    try:
        asyncio.run(worker.run(settings, queues=chosen))
    except SchemaNotCurrent as exc:
        raise fail(str(exc)) from None
    except (RuntimeError, ValueError, OSError) as exc:
        raise fail(f"the worker stopped: {exc}") from None
