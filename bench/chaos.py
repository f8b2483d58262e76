"""Chaos run: bills on every platform through faulty ERPs and bank, a worker killed with SIGKILL
about every 20 s, the Temporal dev server restarted once; then an audit of the books.

    python -m bench.chaos --bills 1000 [--kill-every 20] [--max-kills N] [--no-temporal-restart]

The emulators and the bank answer 20 % of requests with a 5xx, 10 % with a 429 and Retry-After,
and commit 5 % of writes before dropping the connection; every connection's access token is
expired once mid-run. The worker is a separate process (`python worker.py`, configured by
REMIT_* variables) so it can be killed for real.

The bills are a seeded mix (bench/_mix.py): known and new vendors, bills paid in two
installments, Northwind credits submitted before some bills, EUR bills from Fabrikam paid by
wire, and payments the bank returns after they settled. Each connection's demo vendors have
their verified payees (sealed and fingerprinted with the worker's secret key), and a finance
team (bench/_finance.py) approves bills, reviews the payee changes new vendors cause, instructs
second installments and pays returned bills again. The bank's signed webhooks reach remit's
API, which starts a follow-up run of a finished bill when its money comes back.

At the end the audit reads the ERPs (through each platform's own API) and the bank directly,
not remit's view, and exits 1 on any lost bill, duplicate (bank payment per payment key, ERP
bill, ERP bill payment, ERP vendor credit), books that do not tie (payments in effect + credits
+ discounts = total - balance for every bill; a returned payment voided in the ERP) or
open-balance mismatch between the ERP and remit for any vendor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from accounting import Bill, BillCreditMemo, CreditApplication, Vendor
from activities.policy import load_directory, load_policy
from bench._common import machine_line, print_json, print_table
from bench._emulated import UNTHROTTLED
from bench._finance import OPERATOR, FinanceTeam
from bench._mix import NORTHWIND, NORTHWIND_ACH, Kind, MixRates, PlannedBill, plan_mix
from bench._views import RemitView
from connectors.bank import SandboxBankRail
from connectors.base import (
    ConnectionConfig,
    Connector,
    ConnectorError,
    RailKind,
    RailPayment,
    RailPaymentStatus,
)
from connectors.oauth import Credentials, OnTokens
from connectors.registry import ERP_PLATFORMS, platform
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.temporal import connect
from sandbox.bank import ReturnRule, SandboxBank
from sandbox.faults import Faults
from sandbox.payees import seed_demo_payees
from sandbox.registry import Emulator, new_emulator
from sandbox.stack import dev_server_command, temporal_executable
from starter.api import BANK_EVENTS_PATH, assemble_app
from starter.client import RemitClient
from starter.payees import PayeeService
from store import ConnectionRow, DocumentStore, PayeeStore, Store
from worker import payee_store
from workflows.credit import CreditWorkflow
from workflows.models import FINAL_STATUSES, TASK_QUEUE, LifecycleStatus, bill_workflow_id

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"
ACH_ACCOUNT = NORTHWIND_ACH  # Northwind's verified ACH details, as documents name them
DEFAULT_EXPENSE_ACCOUNT = "Repairs and Maintenance"
HELD = {LifecycleStatus.needs_attention, LifecycleStatus.needs_review}
LIVE = (RailPaymentStatus.settled, RailPaymentStatus.pending)
RETURN_EVENTS = {"payment.returned", "payment.failed"}
T = TypeVar("T")


@dataclass
class ChaosOptions:
    bills: int = 1000
    kill_every: float = 20.0
    max_kills: int | None = None
    restart_temporal: bool = True
    error_rate: float = 0.20
    throttle_rate: float = 0.10
    drop_rate: float = 0.05
    timeout: float = 3600.0
    seed: int = 7
    submit_rate: float = 20.0  # bills per second at most
    # How long an activity attempt may run before Temporal retries it. After a SIGKILL nothing
    # reports the attempts that died with the worker, so this is how long their bills stall;
    # the emulators answer in milliseconds, so 15 s leaves ample room (production keeps 60 s
    # for real ERPs).
    attempt_timeout: float = 15.0
    temporal_restart_after: float | None = None
    data_dir: Path | None = None
    mix: MixRates = field(default_factory=MixRates)


@dataclass
class Counters:
    worker_kills: int = 0
    worker_restarts: int = 0
    worker_crashes: int = 0
    temporal_restarts: int = 0
    tokens_expired: int = 0
    submit_retries: int = 0
    payees_seeded: int = 0


@dataclass
class SubmittedBill:
    workflow_id: str
    connection_id: str
    platform: str
    document_number: str
    vendor_name: str
    total: Decimal
    currency: str
    kind: Kind
    late_return: bool | None = None


@dataclass
class SubmittedCredit:
    workflow_id: str
    connection_id: str
    platform: str
    document_number: str
    total: Decimal


@dataclass
class Audit:
    submitted: int = 0
    reconciled: int = 0
    held: dict[str, list[str]] = field(default_factory=dict)  # workflow id → reasons
    lost: dict[str, str] = field(default_factory=dict)  # workflow id → why
    # Still moving when the run's time was up (retrying an ERP, waiting for settlement): not
    # lost, since Temporal would carry them on, but the run did not settle in time.
    unfinished: dict[str, str] = field(default_factory=dict)
    other_final: dict[str, str] = field(default_factory=dict)
    duplicate_bank_payments: dict[str, int] = field(default_factory=dict)
    duplicate_erp_bills: dict[str, int] = field(default_factory=dict)
    duplicate_erp_bill_payments: dict[str, int] = field(default_factory=dict)
    duplicate_erp_credits: dict[str, int] = field(default_factory=dict)
    # Bills (and credits) whose books do not tie: payments in effect + credits + discounts ≠
    # total − balance, a returned payment still in effect, remit's payment or credit missing.
    book_errors: dict[str, str] = field(default_factory=dict)
    balance_mismatches: dict[str, dict[str, str]] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(
            self.lost
            or self.duplicate_bank_payments
            or self.duplicate_erp_bills
            or self.duplicate_erp_bill_payments
            or self.duplicate_erp_credits
            or self.book_errors
            or self.balance_mismatches
        )


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOCALHOST, 0))
    # A plain socket.socket() has proto 0, so asyncio never sets TCP_NODELAY on what it accepts.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(1024)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class _QuietServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to the run, which stops every server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Servers:
    """uvicorn servers in this process's loop (emulators, bank, the API's bank endpoint)."""

    def __init__(self) -> None:
        self.running: list[tuple[uvicorn.Server, asyncio.Task[None], socket.socket]] = []

    def serve(self, app: Any, sock: socket.socket) -> None:
        config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve([sock]))
        self.running.append((server, task, sock))

    async def started(self) -> None:
        while not all(server.started for server, _, _ in self.running):
            for _, task, _ in self.running:
                if task.done():
                    raise RuntimeError(f"a server stopped: {task.exception()!r}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for server, _, _ in self.running:
            server.should_exit = True
        for _, task, sock in self.running:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            sock.close()


class TemporalServer:
    """The dev server as a child process, restartable on the same port and SQLite file."""

    def __init__(self, data_dir: Path) -> None:
        probe = listening_socket()
        self.port = probe.getsockname()[1]
        probe.close()
        self.address = f"{LOCALHOST}:{self.port}"
        self.command = dev_server_command(
            temporal_executable(),
            host=LOCALHOST,
            port=self.port,
            ui_port=None,
            db_file=data_dir / "temporal.db",
            namespace="default",
        )
        self.log_path = data_dir / "temporal.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WorkerProcess:
    """`python worker.py` with the run's REMIT_* settings; killable with SIGKILL."""

    def __init__(self, env: dict[str, str], data_dir: Path) -> None:
        self.env = env
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.generation = 0

    def start(self) -> None:
        self.generation += 1
        log_path = self.data_dir / f"worker-{self.generation}.log"
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "worker.py")],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def base_key(key: str) -> str:
    """A payment key without the renewal a rejected attempt gets (`fresh_key`): two live bank
    payments under one base key would be the same installment paid twice."""
    return re.sub(r"/retry-\d+$", "", key)


async def with_retries(read: Callable[[], Awaitable[T]], *, attempts: int = 20) -> T:
    """A read against a faulty ERP, tried again as a person would (setup only)."""
    for attempt in range(attempts):
        try:
            return await read()
        except ConnectorError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def all_vendors(erp: Connector) -> list[Vendor]:
    vendors: list[Vendor] = []
    cursor: str | None = None
    while True:
        page = await erp.list_vendors(cursor)
        vendors.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return vendors


class ChaosRun:
    def __init__(self, options: ChaosOptions, data_dir: Path) -> None:
        self.options = options
        self.data_dir = data_dir
        self.rng = random.Random(options.seed)
        self.run_id = f"{options.seed}{random.Random().randrange(16**4):04x}"
        self.counters = Counters()
        self.servers = Servers()
        self.emulators: dict[str, Emulator] = {}
        self.connections: dict[str, str] = {name: f"chaos-{name}" for name in ERP_PLATFORMS}
        self.plan = plan_mix(options.bills, self.run_id, options.mix, seed=options.seed)
        self.planned_ids = {self.target(bill.index)[3] for bill in self.plan}
        self.submitted: list[SubmittedBill] = []
        self.credits: list[SubmittedCredit] = []
        self.northwind: dict[str, str] = {}  # connection id → Northwind's vendor id in the ERP
        self.fault_sets: dict[str, Faults] = {}
        self.secret_key = SecretBox.generate_key()
        self.box = SecretBox(self.secret_key)
        self.database_url = f"sqlite:///{data_dir / 'remit.db'}"
        self.temporal = TemporalServer(data_dir)
        self.store: Store | None = None
        self.payees: PayeeStore | None = None
        self.bank: SandboxBank | None = None
        self.bank_url = ""
        self.client: Client | None = None
        self.remit: RemitClient | None = None
        self.team: FinanceTeam | None = None
        self.worker: WorkerProcess | None = None
        self.submitting_done = asyncio.Event()

    def target(self, index: int) -> tuple[str, str, str, str]:
        """Bill `index`'s platform, connection, key and workflow id (round robin)."""
        name = ERP_PLATFORMS[index % len(ERP_PLATFORMS)]
        connection_id = self.connections[name]
        key = f"chaos-{self.run_id}-{index}"
        # An explicit key names the bill (starter.client.bill_label_for).
        return name, connection_id, key, bill_workflow_id(connection_id, key, key)

    def is_ours(self, workflow_id: str) -> bool:
        return workflow_id in self.planned_ids

    # -- setting up ----------------------------------------------------------------------------

    def faults(self, name: str) -> Faults:
        faults = Faults(
            error_rate=self.options.error_rate,
            throttle_rate=self.options.throttle_rate,
            drop_rate=self.options.drop_rate,
            retry_after_seconds=1.0,
            seed=self.rng.randrange(2**31),
        )
        self.fault_sets[name] = faults
        return faults

    def return_rules(self) -> list[ReturnRule]:
        """The first payment of every bill planned to come back: settled, then returned.

        Matched by the workflow id in the payment's metadata rather than by amount: a credit
        applied before paying changes the amount, and the id names exactly one bill.
        """
        rules = []
        for bill in self.plan:
            if bill.returns is not None:
                rules.append(
                    ReturnRule(
                        code=bill.returns.code,
                        return_after=bill.returns.after,
                        match_metadata={"workflow_id": self.target(bill.index)[3]},
                        times=1,
                    )
                )
        return rules

    async def start(self) -> None:
        self.temporal.start()
        self.store = await asyncio.to_thread(Store.open, self.database_url)
        # Sealed and fingerprinted exactly as the worker's own (worker.payee_store, with the
        # REMIT_SECRET_KEY it gets below), so both read and compare the same payees.
        self.payees = payee_store(
            self.store, self.box, Settings(secret_key=SecretStr(self.secret_key))
        )
        api_sock, bank_sock = listening_socket(), listening_socket()
        self.bank = SandboxBank(
            settlement_delay={kind: timedelta(seconds=1) for kind in RailKind},
            faults=self.faults("bank"),
            api_key="sk_test_chaos",
            webhook_url=url_of(api_sock) + BANK_EVENTS_PATH,
        )
        self.bank.set_return_rules(self.return_rules())
        self.bank_url = url_of(bank_sock)
        self.servers.serve(self.bank.app, bank_sock)
        now = datetime.now(UTC)
        for name in ERP_PLATFORMS:
            emulator = new_emulator(name, faults=self.faults(name), **UNTHROTTLED[name])
            company = emulator.seed_demo_company()
            sock = listening_socket()
            self.servers.serve(emulator.app, sock)
            self.emulators[name] = emulator
            await asyncio.to_thread(
                self.store.upsert_connection,
                ConnectionRow(
                    id=self.connections[name],
                    platform=name,
                    company_id=company.company_id,
                    display_name=f"chaos {name}",
                    base_url=url_of(sock),
                    status="active",
                    credentials_encrypted=self.box.seal(company.credentials),
                    settings={
                        **company.settings,
                        "default_expense_account": DEFAULT_EXPENSE_ACCOUNT,
                    },
                    created_at=now,
                    updated_at=now,
                ),
            )
        await self.servers.started()
        await self.seed_payees()
        self.client = await self.connect_temporal()
        self.remit = RemitClient(self.client, task_queue=TASK_QUEUE)
        self.team = FinanceTeam(
            remit=self.remit,
            client=self.client,
            store=self.store,
            payees=PayeeService(
                self.payees, self.store, load_policy(), load_directory(), remit=self.remit
            ),
            connections=set(self.connections.values()),
            ours=self.is_ours,
        )
        # With the store, the API starts a follow-up run of a finished bill whose payment the
        # bank reports returned (its signed webhook comes here).
        api = assemble_app(
            self.remit,
            bank_webhook_secret=self.bank.webhook_secret,
            store=self.store,
            documents=DocumentStore(self.data_dir / "documents"),
        )
        self.servers.serve(api, api_sock)
        await self.servers.started()
        self.settlement = asyncio.create_task(self.bank.run_settlement_loop(0.2))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("REMIT_", "TEMPORAL_"))},
            "REMIT_TEMPORAL_ADDRESS": self.temporal.address,
            "REMIT_DATABASE_URL": self.database_url,
            "REMIT_DATA_DIR": str(self.data_dir),
            "REMIT_SECRET_KEY": self.secret_key,
            "REMIT_BANK_URL": self.bank_url,
            "REMIT_BANK_API_KEY": self.bank.api_key,
            "PYTHONUNBUFFERED": "1",
        }
        self.worker = WorkerProcess(env, self.data_dir)
        self.worker.start()

    async def seed_payees(self) -> None:
        """Each connection's demo vendors, listed through its connector, get their verified
        payees (the sandbox's demo data), as `remit up` seeds its demo connections."""
        assert self.payees is not None
        for name, connection_id in self.connections.items():
            async with self.erp(name, connection_id) as erp:
                vendors = await with_retries(functools.partial(all_vendors, erp))
            seeded = await asyncio.to_thread(seed_demo_payees, self.payees, connection_id, vendors)
            self.counters.payees_seeded += len(seeded)
            northwind = next((v.id for v in vendors if v.name == NORTHWIND[0]), None)
            if northwind is None:
                raise RuntimeError(f"the {name} demo company has no {NORTHWIND[0]}")
            self.northwind[connection_id] = northwind
        log(f"seeded {self.counters.payees_seeded} verified demo payees")

    @contextlib.asynccontextmanager
    async def erp(self, name: str, connection_id: str) -> AsyncIterator[Connector]:
        """A connector on the connection as the store holds it now (tokens renewed and saved,
        as the worker does, so nobody reads with a stale one)."""
        assert self.store is not None
        row = await asyncio.to_thread(self.store.get_connection, connection_id)
        assert row is not None
        config = ConnectionConfig(
            id=row.id,
            platform=row.platform,
            base_url=row.base_url or "",
            company_id=row.company_id,
            credentials=self.box.open(row.credentials_encrypted)
            if row.credentials_encrypted
            else {},
            settings={k: str(v) for k, v in row.settings.items()},
        )
        async with httpx.AsyncClient(timeout=60) as http:
            connector = platform(name).connector(
                config, http, on_tokens=self._save_credentials(connection_id)
            )
            try:
                yield connector
            finally:
                await connector.aclose()

    async def connect_temporal(self, within: float = 60) -> Client:
        deadline = time.monotonic() + within
        settings = Settings(temporal_address=self.temporal.address)
        while True:
            try:
                client = await connect(settings)
                await client.count_workflows("WorkflowType='BillWorkflow'")
                return client
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        task = getattr(self, "settlement", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.servers.stop()
        if self.bank is not None:
            await self.bank.aclose()
        self.temporal.stop()
        if self.store is not None:
            self.store.close()

    # -- the run -------------------------------------------------------------------------------

    async def _until_temporal_answers(self, start: Callable[[], Awaitable[T]]) -> T:
        """Start something; while Temporal restarts, try again (the same key makes it safe)."""
        while True:
            try:
                return await start()
            except RPCError:
                self.counters.submit_retries += 1
                await asyncio.sleep(0.5)

    async def submit_all(self) -> None:
        assert self.remit is not None
        remit = self.remit
        today = datetime.now(UTC).date()
        interval = 1 / self.options.submit_rate
        for planned in self.plan:
            name, connection_id, key, _ = self.target(planned.index)
            if planned.credit_before is not None:
                await self.submit_credit(planned, name, connection_id)
            result = await self._until_temporal_answers(
                functools.partial(
                    remit.submit_bill,
                    planned.draft,
                    connection_id=connection_id,
                    platform=name,
                    submitted_by="sam",
                    key=key,
                    pay_on=today,
                    rail=planned.rail,
                    installments=planned.installments,
                    attempt_timeout=timedelta(seconds=self.options.attempt_timeout),
                )
            )
            self.submitted.append(
                SubmittedBill(
                    workflow_id=result.workflow_id,
                    connection_id=connection_id,
                    platform=name,
                    document_number=planned.draft.document_number,
                    vendor_name=planned.vendor_name,
                    total=planned.draft.total,
                    currency=planned.currency,
                    kind=planned.kind,
                    late_return=planned.returns.late if planned.returns else None,
                )
            )
            if planned.index == self.options.bills // 3:
                await self.expire_tokens()
            await asyncio.sleep(interval)
        self.submitting_done.set()
        log(f"submitted {len(self.submitted)} bills and {len(self.credits)} vendor credits")

    async def submit_credit(self, planned: PlannedBill, name: str, connection_id: str) -> None:
        """A Northwind credit memo, on the connection of the bill it comes just before."""
        assert self.remit is not None and planned.credit_before is not None
        remit, credit = self.remit, planned.credit_before
        result = await self._until_temporal_answers(
            functools.partial(
                remit.submit_credit,
                credit.draft,
                connection_id=connection_id,
                platform=name,
                submitted_by="sam",
                key=f"chaos-{self.run_id}-{credit.number}",
            )
        )
        self.credits.append(
            SubmittedCredit(
                workflow_id=result.workflow_id,
                connection_id=connection_id,
                platform=name,
                document_number=credit.number,
                total=credit.amount,
            )
        )

    async def expire_tokens(self) -> None:
        """Expire each connection's current access token (the worker must refresh it)."""
        assert self.store is not None
        for name, connection_id in self.connections.items():
            row = await asyncio.to_thread(self.store.get_connection, connection_id)
            if row is None or not row.credentials_encrypted:
                continue
            token = self.box.open(row.credentials_encrypted).get("access_token")
            if token:
                self.emulators[name].expire_token(token)  # type: ignore[attr-defined]
                self.counters.tokens_expired += 1
        log(f"expired {self.counters.tokens_expired} access tokens")

    async def chaos_monkey(self) -> None:
        assert self.worker is not None
        started = time.monotonic()
        next_kill = started + self.options.kill_every * (0.75 + self.rng.random() / 2)
        restart_after = self.options.temporal_restart_after
        if restart_after is None:
            restart_after = max(30.0, self.options.kill_every * 1.5)
        restart_temporal_at = started + restart_after
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if not self.worker.alive():
                # It died by itself (e.g. lost Temporal for too long): bring it back.
                self.counters.worker_crashes += 1
                log("the worker exited by itself; restarting it")
                self.worker.start()
                self.counters.worker_restarts += 1
            kills_left = (
                self.options.max_kills is None
                or self.counters.worker_kills < self.options.max_kills
            )
            if kills_left and now >= next_kill:
                self.worker.kill()
                self.counters.worker_kills += 1
                log(f"SIGKILL worker (kill {self.counters.worker_kills})")
                await asyncio.sleep(1)
                self.worker.start()
                self.counters.worker_restarts += 1
                next_kill = now + self.options.kill_every * (0.75 + self.rng.random() / 2)
            if (
                self.options.restart_temporal
                and self.counters.temporal_restarts == 0
                and now >= restart_temporal_at
            ):
                log("restarting the Temporal dev server (SQLite file kept)")
                await asyncio.to_thread(self.temporal.stop)
                await asyncio.sleep(2)
                self.temporal.start()
                self.counters.temporal_restarts += 1
                await self.connect_temporal()
                log("Temporal is back")

    async def unfinished(self) -> int:
        """Bills still moving: running and not held for a person (from visibility)."""
        assert self.client is not None
        query = (
            "WorkflowType='BillWorkflow' AND ExecutionStatus='Running' AND "
            "BillStatus NOT IN ('needs_attention', 'needs_review')"
        )
        return (await self.client.count_workflows(query)).count

    async def credits_moving(self) -> int:
        """Vendor credits not yet available to bills (and not held for a person)."""
        assert self.client is not None
        ours = {credit.workflow_id for credit in self.credits}
        moving = 0
        async for execution in self.client.list_workflows(
            "WorkflowType='CreditWorkflow' AND ExecutionStatus='Running'"
        ):
            if execution.id not in ours:
                continue
            handle = self.client.get_workflow_handle_for(CreditWorkflow.run, execution.id)
            state = await asyncio.wait_for(handle.query(CreditWorkflow.state_query), 10)
            if state.status != "needs_review":
                moving += 1
        return moving

    def bank_view(self) -> SandboxBankRail:
        """The bank's own API without its fault injector: what an auditor reads."""
        assert self.bank is not None
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.bank.api), timeout=60)
        return SandboxBankRail("http://bank.audit", self.bank.api_key, http)

    async def returns_pending(self) -> int:
        """Returns the bank still owes the run: a planned return whose first payment has not
        come back yet, or a return notice not yet delivered to remit's API."""
        assert self.bank is not None
        planned = [bill for bill in self.submitted if bill.late_return is not None]
        pending = 0
        rail = self.bank_view()
        try:
            for bill in planned:
                payments = await rail.list_payments(metadata={"workflow_id": bill.workflow_id})
                if payments and min(payments, key=lambda p: p.created_at).status in LIVE:
                    pending += 1
        finally:
            await rail.aclose()
        undelivered = [
            event
            for event in self.bank.undelivered_events
            if event.type in RETURN_EVENTS
            and self.is_ours(event.payment.metadata.get("workflow_id", ""))
        ]
        return pending + len(undelivered)

    async def wait_until_settled(self) -> bool:
        """Until nothing moves, nobody has anything left to do and the bank owes no returns
        (seen twice in a row: a return delivered between two looks starts a follow-up run)."""
        assert self.team is not None
        deadline = time.monotonic() + self.options.timeout
        last_report = 0.0
        quiet_rounds = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            if not self.submitting_done.is_set():
                continue
            try:
                moving = await self.unfinished()
                credits = await self.credits_moving()
                waiting = await self.team.outstanding()
                returns = await self.returns_pending()
            except Exception:
                quiet_rounds = 0
                continue
            if time.monotonic() - last_report > 15:
                team = ", ".join(f"{n} {what}" for what, n in waiting.items()) or "nothing"
                log(
                    f"{moving} bills and {credits} credits still moving; waiting for the team: "
                    f"{team}; {returns} returns to come"
                )
                last_report = time.monotonic()
            if moving == 0 and credits == 0 and not waiting and returns == 0:
                quiet_rounds += 1
                if quiet_rounds >= 2:
                    return True
            else:
                quiet_rounds = 0
        return False

    # -- the audit -----------------------------------------------------------------------------

    async def remit_states(self) -> dict[str, RemitView | str]:
        """Each submitted bill's state (its latest run's), or why there is none."""
        assert self.client is not None
        client = self.client
        states: dict[str, RemitView | str] = {}
        gate = asyncio.Semaphore(20)

        async def one(bill: SubmittedBill) -> None:
            async with gate:
                # Untyped: a worker restarted on newer code may hold fields this process
                # does not know; the audit needs only a few.
                raw = client.get_workflow_handle(bill.workflow_id)
                try:
                    description = await raw.describe()
                    if description.status == WorkflowExecutionStatus.COMPLETED:
                        states[bill.workflow_id] = RemitView.model_validate(await raw.result())
                    elif description.status == WorkflowExecutionStatus.RUNNING:
                        answer = await asyncio.wait_for(raw.query("state_query"), 60)
                        states[bill.workflow_id] = RemitView.model_validate(answer)
                    else:
                        status = description.status.name if description.status else "unknown"
                        states[bill.workflow_id] = f"workflow {status.lower()}"
                except RPCError as exc:
                    states[bill.workflow_id] = f"no workflow: {exc}"
                except Exception as exc:
                    states[bill.workflow_id] = f"unreadable: {exc!r}"

        await asyncio.gather(*(one(bill) for bill in self.submitted))
        return states

    async def credit_states(self) -> dict[str, str]:
        """Each submitted credit's status (available, needs_review, ...), or why there is none."""
        assert self.client is not None
        found: dict[str, str] = {}
        for credit in self.credits:
            handle = self.client.get_workflow_handle_for(CreditWorkflow.run, credit.workflow_id)
            try:
                description = await handle.describe()
                if description.status == WorkflowExecutionStatus.COMPLETED:
                    found[credit.workflow_id] = (await handle.result()).status
                elif description.status == WorkflowExecutionStatus.RUNNING:
                    state = await asyncio.wait_for(handle.query(CreditWorkflow.state_query), 60)
                    found[credit.workflow_id] = state.status
                else:
                    status = description.status.name if description.status else "unknown"
                    found[credit.workflow_id] = f"workflow {status.lower()}"
            except Exception as exc:
                found[credit.workflow_id] = f"unreadable: {exc!r}"
        return found

    def quiet(self) -> None:
        for faults in self.fault_sets.values():
            faults.clear()

    def _save_credentials(self, connection_id: str) -> OnTokens:
        async def save(credentials: Credentials) -> None:
            assert self.store is not None
            sealed = self.box.seal(credentials)
            await asyncio.to_thread(self.store.save_connection_credentials, connection_id, sealed)

        return save

    async def audit(self) -> Audit:
        assert self.store is not None and self.bank is not None and self.team is not None
        self.quiet()  # the audit reads the books; faults would only slow it down
        audit = Audit(submitted=len(self.submitted))
        states = await self.remit_states()
        by_id = {bill.workflow_id: bill for bill in self.submitted}
        views: dict[str, RemitView] = {}
        for workflow_id, state in states.items():
            if isinstance(state, str):
                audit.lost[workflow_id] = state
                continue
            views[workflow_id] = state
            if state.status == LifecycleStatus.reconciled:
                audit.reconciled += 1
            elif state.status in HELD:
                audit.held[workflow_id] = [state.last_error or ""] + state.review_reasons
            elif state.status in FINAL_STATUSES:
                audit.other_final[workflow_id] = state.status.value
            else:
                audit.unfinished[workflow_id] = f"{state.status.value}: {state.waiting_for}"

        # The bank, directly: every payment for our workflows, by workflow.
        rail = self.bank_view()
        try:
            payments = await rail.list_payments()
        finally:
            await rail.aclose()
        at_bank: dict[str, list[RailPayment]] = defaultdict(list)
        for payment in payments:
            workflow_id = payment.metadata.get("workflow_id", "")
            if workflow_id in by_id:
                at_bank[workflow_id].append(payment)
        for workflow_id, made in at_bank.items():
            live = [p for p in made if p.status in LIVE]
            per_key = Counter(base_key(p.idempotency_key) for p in live)
            view = views.get(workflow_id)
            expected = (
                None
                if view is None
                else len([p for p in view.payments if p.status not in ("returned", "failed")])
            )
            if (
                max(per_key.values(), default=0) > 1
                or (expected is not None and len(live) > expected)
                or sum((p.amount for p in live), Decimal(0)) > by_id[workflow_id].total
            ):
                audit.duplicate_bank_payments[workflow_id] = len(live)

        # The ERPs, directly, through each platform's API with the connection's own tokens.
        erp_balance: dict[str, Decimal] = defaultdict(Decimal)
        remit_balance: dict[str, Decimal] = defaultdict(Decimal)
        numbers = {bill.document_number: bill for bill in self.submitted}
        credit_numbers = {credit.document_number: credit for credit in self.credits}
        books: dict[str, BillBooks] = {}  # workflow id → what the ERP shows of remit's bill
        applied: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # (conn., memo) → used
        credits_posted = 0
        for name, connection_id in self.connections.items():
            async with self.erp(name, connection_id) as erp:
                ours: dict[str, list[Bill]] = defaultdict(list)
                cursor: str | None = None
                while True:
                    page = await erp.list_bills(cursor)
                    for bill in page.items:
                        if bill.document_number in numbers:
                            ours[bill.document_number].append(bill)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                for number, found in ours.items():
                    submitted = numbers[number]
                    workflow_id = submitted.workflow_id
                    vendor = f"{name}: {submitted.vendor_name} ({submitted.currency})"
                    view = views.get(workflow_id)
                    if len(found) > 1:
                        audit.duplicate_erp_bills[workflow_id] = len(found)
                    for erp_bill in found:
                        shown = await read_books(erp, erp_bill)
                        if not shown.ties:
                            audit.book_errors[workflow_id] = shown.why_not
                        erp_balance[vendor] += shown.balance
                        for application in shown.applications:
                            applied[(connection_id, application.credit_memo_id)] += (
                                application.amount
                            )
                        if view is not None and erp_bill.id == view.erp_bill_id:
                            books[workflow_id] = shown
                    if view is not None and view.erp_bill_id:
                        remit_balance[vendor] += view.expected_erp_balance()
                        if workflow_id not in books:
                            audit.lost[workflow_id] = (
                                f"bill {view.erp_bill_id} missing in {name} (another has its "
                                "number)"
                            )
                            continue
                        self.compare_payments(audit, view, books[workflow_id], workflow_id)
                # A bill remit says it wrote must be in the ERP.
                for sent in self.submitted:
                    view = views.get(sent.workflow_id)
                    if (
                        sent.platform == name
                        and view is not None
                        and view.erp_bill_id
                        and sent.document_number not in ours
                    ):
                        audit.lost[sent.workflow_id] = f"bill {view.erp_bill_id} missing in {name}"
                # The vendor credits: each once, and used exactly by what our bills show applied.
                memos: dict[str, list[BillCreditMemo]] = defaultdict(list)
                for memo in await erp.list_credit_memos(vendor_id=self.northwind[connection_id]):
                    if memo.document_number in credit_numbers:
                        memos[memo.document_number].append(memo)
                for number, found_memos in memos.items():
                    credit = credit_numbers[number]
                    credits_posted += 1
                    if len(found_memos) > 1:
                        audit.duplicate_erp_credits[credit.workflow_id] = len(found_memos)
                    for memo in found_memos:
                        if memo.remaining is None or memo.id is None:
                            continue
                        used = memo.total - memo.remaining
                        on_bills = applied.get((connection_id, memo.id), Decimal(0))
                        if used != on_bills:
                            audit.book_errors[credit.workflow_id] = (
                                f"credit {number}: {used} used in the ERP, {on_bills} applied "
                                "to the run's bills"
                            )
        for vendor in sorted(set(erp_balance) | set(remit_balance)):
            if erp_balance[vendor] != remit_balance[vendor]:
                audit.balance_mismatches[vendor] = {
                    "erp": str(erp_balance[vendor]),
                    "remit": str(remit_balance[vendor]),
                }

        # Reconciled means paid in full: the bank's settled cash plus the credits and discounts
        # the ERP shows make the bill's total.
        for workflow_id, view in views.items():
            if view.status != LifecycleStatus.reconciled or workflow_id not in books:
                continue
            shown = books[workflow_id]
            cash = sum(
                (p.amount for p in at_bank.get(workflow_id, []) if p.status == "settled"),
                Decimal(0),
            )
            if cash + shown.credits + shown.discounts != view.total:
                audit.lost[workflow_id] = (
                    f"reconciled in remit, but the bank paid {cash} (+ credits {shown.credits}, "
                    f"discounts {shown.discounts}) of {view.total}"
                )
        audit.features = await self.features(views, books, at_bank, credits_posted)
        return audit

    @staticmethod
    def compare_payments(audit: Audit, view: RemitView, shown: BillBooks, workflow_id: str) -> None:
        """One ERP payment in effect per installment remit paid and did not take back; every
        returned one voided; the credits remit applied, applied."""
        expected = {p.erp_payment_id for p in view.in_effect if p.erp_payment_id}
        extra = shown.in_effect - expected
        if extra:
            audit.duplicate_erp_bill_payments[workflow_id] = len(shown.in_effect)
        problems = []
        if missing := expected - shown.in_effect:
            problems.append(f"remit's payment(s) {sorted(missing)} not in effect in the ERP")
        for payment in view.returned_payments:
            if payment.erp_payment_id in shown.in_effect and (
                payment.erp_voided or view.status == LifecycleStatus.reconciled
            ):
                problems.append(
                    f"payment {payment.rail_payment_id} came back, but its ERP payment "
                    f"{payment.erp_payment_id} is still in effect"
                )
        if shown.credits != view.credits_total:
            problems.append(
                f"the ERP shows {shown.credits} of credits applied; remit applied "
                f"{view.credits_total}"
            )
        if problems:
            audit.book_errors[workflow_id] = "; ".join(problems)

    async def features(
        self,
        views: dict[str, RemitView],
        books: dict[str, BillBooks],
        at_bank: dict[str, list[RailPayment]],
        credits_posted: int,
    ) -> dict[str, Any]:
        """How much of each money feature the run exercised, counted from the books."""
        assert self.store is not None and self.team is not None
        store = self.store
        kinds = Counter(bill.kind for bill in self.submitted)
        reconciled = {
            wid for wid, view in views.items() if view.status == LifecycleStatus.reconciled
        }

        def of(kind: Kind) -> list[SubmittedBill]:
            return [bill for bill in self.submitted if bill.kind == kind]

        returned_bills = [
            wid
            for wid, payments in at_bank.items()
            if any(p.status == RailPaymentStatus.returned for p in payments)
        ]
        repaid = [
            wid
            for wid in returned_bills
            if wid in reconciled
            and any(p.status == RailPaymentStatus.settled for p in at_bank[wid])
        ]
        voided = sum(
            1
            for wid in returned_bills
            if wid in views and wid in books
            for p in views[wid].returned_payments
            if p.erp_payment_id and p.erp_payment_id not in books[wid].in_effect
        )

        def resumed(workflow_id: str) -> bool:
            return any(e.kind == "resumed" for e in store.audit_for(workflow_id))

        def released_only_by_a_repeat(workflow_id: str) -> bool:
            """Held for its payee, and woken by none of the approvals' own notices."""
            notices = [e for e in store.audit_for(workflow_id) if e.kind == "payee_notice"]
            return bool(notices) and all(e.actor == OPERATOR for e in notices)

        followed_up = [wid for wid in repaid if await asyncio.to_thread(resumed, wid)]
        repeats_needed = [
            bill.workflow_id
            for bill in of(Kind.new_vendor)
            if await asyncio.to_thread(released_only_by_a_repeat, bill.workflow_id)
        ]
        applications = [a for shown in books.values() for a in shown.applications]
        counters = self.team.counters
        credit_states = Counter((await self.credit_states()).values())
        return {
            "bills_read_back_from_the_erps": len(books),
            "payees_seeded": self.counters.payees_seeded,
            "new_vendor_bills": kinds[Kind.new_vendor],
            "payee_changes_verified": counters.payee_changes_verified,
            "payee_changes_approved": counters.payee_changes_approved,
            "payee_notices_repeated": counters.payee_rereleases,
            "payee_bills_released_only_by_a_repeat": len(repeats_needed),
            "two_part_bills": kinds[Kind.two_part],
            "second_parts_instructed": counters.second_parts_instructed,
            "paid_in_two_parts": sum(
                1
                for bill in of(Kind.two_part)
                if bill.workflow_id in reconciled
                and len(books.get(bill.workflow_id, EMPTY_BOOKS).in_effect) == 2
            ),
            "credits_submitted": len(self.credits),
            "credits_available": credit_states.get("available", 0),
            "credits_posted_in_erp": credits_posted,
            "credit_applications": len(applications),
            "credit_amount_applied": f"{sum((a.amount for a in applications), Decimal(0)):.2f}",
            "bills_paid_net_of_credit": sum(1 for shown in books.values() if shown.credits),
            "eur_bills": kinds[Kind.eur],
            "eur_reconciled": sum(1 for bill in of(Kind.eur) if bill.workflow_id in reconciled),
            "returns_planned": kinds[Kind.returned],
            "payments_returned": sum(
                1
                for payments in at_bank.values()
                for p in payments
                if p.status == RailPaymentStatus.returned
            ),
            "returned_erp_payments_voided": voided,
            "returns_retried": counters.returns_retried,
            "returned_bills_repaid": len(repaid),
            "returns_after_finish": len(followed_up),
        }


@dataclass
class BillBooks:
    """One ERP bill as the ERP's own API shows it."""

    total: Decimal
    balance: Decimal
    cash: Decimal = Decimal(0)
    discounts: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    in_effect: set[str] = field(default_factory=set)
    voided: set[str] = field(default_factory=set)
    applications: list[CreditApplication] = field(default_factory=list)

    @property
    def ties(self) -> bool:
        return self.total - self.balance == self.cash + self.discounts + self.credits

    @property
    def why_not(self) -> str:
        return (
            f"total {self.total} − balance {self.balance} = {self.total - self.balance}, but "
            f"payments in effect ({self.cash}) + discounts ({self.discounts}) + credits "
            f"({self.credits}) = {self.cash + self.discounts + self.credits}"
        )


EMPTY_BOOKS = BillBooks(total=Decimal(0), balance=Decimal(0))


async def read_books(erp: Connector, bill: Bill) -> BillBooks:
    assert bill.id is not None
    shown = BillBooks(
        total=bill.total, balance=bill.balance if bill.balance is not None else bill.total
    )
    for payment in await erp.list_bill_payments(bill_id=bill.id):
        if payment.voided:
            if payment.id:
                shown.voided.add(payment.id)
            continue
        if payment.id:
            shown.in_effect.add(payment.id)
        for line in payment.lines:
            if line.bill_id == bill.id:
                shown.cash += line.amount
                shown.discounts += line.discount
    shown.applications = await erp.list_credit_applications(bill_id=bill.id)
    shown.credits = sum((a.amount for a in shown.applications), Decimal(0))
    return shown


async def run_chaos(options: ChaosOptions, data_dir: Path) -> tuple[Audit, ChaosRun, float, bool]:
    chaos = ChaosRun(options, data_dir)
    started = time.monotonic()
    try:
        await chaos.start()
        assert chaos.team is not None
        log(
            f"stack up (Temporal {chaos.temporal.address}); submitting {options.bills} bills "
            f"across {', '.join(ERP_PLATFORMS)}"
        )
        background = [
            asyncio.create_task(chaos.submit_all()),
            asyncio.create_task(chaos.team.run()),
            asyncio.create_task(chaos.chaos_monkey()),
        ]
        settled = await chaos.wait_until_settled()
        for task in background[1:]:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if chaos.worker is not None and not chaos.worker.alive():
            chaos.worker.start()
        log("auditing the bank and the ERPs")
        audit = await chaos.audit()
        return audit, chaos, time.monotonic() - started, settled
    finally:
        await chaos.stop()


def report(audit: Audit, chaos: ChaosRun, seconds: float, settled: bool) -> None:
    counters = chaos.counters
    assert chaos.team is not None
    team = chaos.team.counters
    f = audit.features
    reasons = Counter((reasons[0] if reasons else "?")[:90] for reasons in audit.held.values())
    print_table(
        f"chaos run: {audit.submitted} bills, {seconds:.0f}s, worker SIGKILLed "
        f"{counters.worker_kills}×, Temporal restarted {counters.temporal_restarts}×\n"
        f"machine: {machine_line()}",
        ["what", "count"],
        [
            ["bills submitted", audit.submitted],
            ["reconciled", audit.reconciled],
            ["needs_attention / needs_review", len(audit.held)],
            ["lost", len(audit.lost)],
            ["still moving when time was up", len(audit.unfinished)],
            ["ended otherwise (rejected, cancelled, ...)", len(audit.other_final)],
            ["duplicate bank payments", len(audit.duplicate_bank_payments)],
            ["duplicate ERP bills", len(audit.duplicate_erp_bills)],
            ["duplicate ERP bill payments", len(audit.duplicate_erp_bill_payments)],
            ["duplicate ERP vendor credits", len(audit.duplicate_erp_credits)],
            ["bills whose books do not tie", len(audit.book_errors)],
            ["vendors with ERP ≠ remit open balance", len(audit.balance_mismatches)],
        ],
    )
    print_table(
        "money features exercised (counted from the bank and the ERPs)",
        ["what", "count"],
        [
            ["new-vendor bills (payee change verified + 2 approvals)", f["new_vendor_bills"]],
            ["  payee changes approved", f["payee_changes_approved"]],
            [
                "  held bills only a repeated notice released",
                f["payee_bills_released_only_by_a_repeat"],
            ],
            ["bills in two installments", f["two_part_bills"]],
            ["  second parts instructed", f["second_parts_instructed"]],
            ["  reconciled with 2 payments in effect", f["paid_in_two_parts"]],
            ["Northwind credits submitted", f["credits_submitted"]],
            ["  posted in the ERP", f["credits_posted_in_erp"]],
            ["  applied to bills (ERP applications)", f["credit_applications"]],
            ["  amount applied", f["credit_amount_applied"]],
            ["EUR bills (Fabrikam, rate locked at approval)", f["eur_bills"]],
            ["  reconciled", f["eur_reconciled"]],
            ["bills planned to be returned", f["returns_planned"]],
            ["  payments returned after settling", f["payments_returned"]],
            ["  returned ERP payments voided", f["returned_erp_payments_voided"]],
            ["  retried by olivia", f["returns_retried"]],
            ["  paid again and reconciled", f["returned_bills_repaid"]],
            ["  of which after the bill had finished", f["returns_after_finish"]],
        ],
    )
    if reasons:
        print_table("held bills, by reason", ["reason", "bills"], reasons.most_common())
    for workflow_id, why in list(audit.lost.items())[:20]:
        print(f"LOST {workflow_id}: {why}")
    for workflow_id, why in list(audit.book_errors.items())[:20]:
        print(f"BOOKS {workflow_id}: {why}")
    unfinished = Counter(why.split(":")[0] for why in audit.unfinished.values())
    if unfinished:
        print_table(
            "still moving when time was up, by status",
            ["status", "bills"],
            unfinished.most_common(),
        )
    for vendor, balances in audit.balance_mismatches.items():
        print(f"MISMATCH {vendor}: ERP {balances['erp']} vs remit {balances['remit']}")
    faults = {name: dict(fs.fired) for name, fs in chaos.fault_sets.items()}
    print_table(
        "faults fired",
        ["system", "5xx", "429", "dropped after commit"],
        [[n, fs.get("5xx", 0), fs.get("429", 0), fs.get("drop", 0)] for n, fs in faults.items()],
    )
    print_json(
        "chaos",
        ok=not audit.failed,
        settled_before_timeout=settled,
        seconds=round(seconds, 1),
        submitted=audit.submitted,
        reconciled=audit.reconciled,
        needs_attention=len(audit.held),
        needs_attention_reasons=dict(reasons),
        lost=len(audit.lost),
        lost_detail=dict(list(audit.lost.items())[:20]),
        unfinished=len(audit.unfinished),
        unfinished_by_status=dict(unfinished),
        other_final=dict(Counter(audit.other_final.values())),
        duplicate_bank_payments=len(audit.duplicate_bank_payments),
        duplicate_erp_bills=len(audit.duplicate_erp_bills),
        duplicate_erp_bill_payments=len(audit.duplicate_erp_bill_payments),
        duplicate_erp_credits=len(audit.duplicate_erp_credits),
        book_errors=dict(list(audit.book_errors.items())[:20]),
        balance_mismatches=audit.balance_mismatches,
        features=audit.features,
        worker_kills=counters.worker_kills,
        worker_crashes=counters.worker_crashes,
        temporal_restarts=counters.temporal_restarts,
        tokens_expired=counters.tokens_expired,
        approvals=team.approvals,
        team={
            "approvals": team.approvals,
            "payee_changes_verified": team.payee_changes_verified,
            "payee_changes_approved": team.payee_changes_approved,
            "payee_rereleases": team.payee_rereleases,
            "second_parts_instructed": team.second_parts_instructed,
            "returns_retried": team.returns_retried,
            "refusals": dict(team.refusals),
            "errors": dict(team.errors),
        },
        faults_fired=faults,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--bills", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between kills")
    parser.add_argument("--max-kills", type=int, default=None)
    parser.add_argument("--no-temporal-restart", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to settle")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--error-rate", type=float, default=0.20, help="5xx share of requests")
    parser.add_argument("--throttle-rate", type=float, default=0.10, help="429 share of requests")
    parser.add_argument(
        "--drop-rate", type=float, default=0.05, help="share of writes committed, then dropped"
    )
    parser.add_argument(
        "--temporal-restart-after",
        type=float,
        default=None,
        help="seconds into the run (default: 1.5 × --kill-every, at least 30)",
    )
    parser.add_argument("--submit-rate", type=float, default=20.0, help="bills per second")
    parser.add_argument(
        "--attempt-timeout",
        type=float,
        default=15.0,
        help="seconds an ERP or bank call may take before Temporal retries it",
    )
    mix = MixRates()
    rates = parser.add_argument_group(
        "the mix of bills (shares of --bills; at least one each when above zero)"
    )
    rates.add_argument("--above-limit-rate", type=float, default=mix.above_limit)
    rates.add_argument("--new-vendor-rate", type=float, default=mix.new_vendor)
    rates.add_argument(
        "--two-part-rate", type=float, default=mix.two_part, help="bills paid in two installments"
    )
    rates.add_argument(
        "--eur-rate", type=float, default=mix.eur, help="EUR bills from Fabrikam GmbH"
    )
    rates.add_argument(
        "--return-rate",
        type=float,
        default=mix.returned,
        help="bills whose payment the bank returns after it settled",
    )
    rates.add_argument(
        "--credit-rate",
        type=float,
        default=mix.credits,
        help="bills a Northwind vendor credit is submitted before",
    )
    rates.add_argument(
        "--return-after",
        type=float,
        default=mix.late_return_after.total_seconds(),
        help="seconds after settling that a late return comes back (half of the returns)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="keep logs and databases")
    args = parser.parse_args(argv)
    options = ChaosOptions(
        bills=args.bills,
        kill_every=args.kill_every,
        max_kills=args.max_kills,
        restart_temporal=not args.no_temporal_restart,
        timeout=args.timeout,
        seed=args.seed,
        submit_rate=args.submit_rate,
        error_rate=args.error_rate,
        throttle_rate=args.throttle_rate,
        drop_rate=args.drop_rate,
        temporal_restart_after=args.temporal_restart_after,
        attempt_timeout=args.attempt_timeout,
        mix=MixRates(
            above_limit=args.above_limit_rate,
            new_vendor=args.new_vendor_rate,
            two_part=args.two_part_rate,
            eur=args.eur_rate,
            returned=args.return_rate,
            credits=args.credit_rate,
            late_return_after=timedelta(seconds=args.return_after),
        ),
    )
    with contextlib.ExitStack() as stack:
        if args.data_dir is not None:
            data_dir = args.data_dir.resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="remit-chaos-")))
        audit, chaos, seconds, settled = asyncio.run(run_chaos(options, data_dir))
        report(audit, chaos, seconds, settled)
    sys.exit(1 if audit.failed or not settled else 0)


if __name__ == "__main__":
    main()
