"""Chaos run: bills on every platform through faulty ERPs and bank, a worker killed with SIGKILL
about every 20 s, the Temporal dev server restarted once; then an audit of the books.

    python -m bench.chaos --bills 1000 [--kill-every 20] [--max-kills N] [--no-temporal-restart]

The emulators and the bank answer 20 % of requests with a 5xx, 10 % with a 429 and Retry-After,
and commit 5 % of writes before dropping the connection; every connection's access token is
expired once mid-run. The worker is a separate process (`python worker.py`, configured by
REMIT_* variables) so it can be killed for real. At the end the audit reads the ERPs (through
each platform's own API) and the bank directly, not remit's view, and exits 1 on any duplicate
payment, lost bill or open-balance mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from accounting import BillDraft
from bench._common import machine_line, print_json, print_table
from bench._emulated import UNTHROTTLED
from connectors.bank import SandboxBank, SandboxBankRail
from connectors.base import ConnectionConfig, RailKind, RailPaymentStatus
from connectors.emulation import Faults
from connectors.oauth import Credentials, OnTokens
from connectors.registry import ERP_PLATFORMS, Emulator, platform
from starter.api import BANK_EVENTS_PATH, create_app
from starter.client import RemitClient
from starter.config import Settings
from starter.secrets import SecretBox
from starter.stack import dev_server_command, temporal_executable
from starter.temporal import connect
from store import ConnectionRow, Store
from workflows.models import FINAL_STATUSES, TASK_QUEUE, LifecycleStatus

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"
ACH_ACCOUNT = "021000021/000123456789"
DEFAULT_EXPENSE_ACCOUNT = "Repairs and Maintenance"
HELD = {LifecycleStatus.needs_attention, LifecycleStatus.needs_review}
APPROVER = "alice"


class _PaymentView(BaseModel):
    model_config = ConfigDict(extra="ignore")

    amount: Decimal | None = None


class RemitView(BaseModel):
    """The part of a bill's state (workflows.models.BillState) the audit compares."""

    model_config = ConfigDict(extra="ignore")

    status: LifecycleStatus
    total: Decimal
    amount_due: Decimal
    erp_bill_id: str | None = None
    erp_payment_id: str | None = None
    payment: _PaymentView = _PaymentView()
    last_error: str | None = None
    review_reasons: list[str] = []
    waiting_for: str | None = None


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


@dataclass
class Counters:
    worker_kills: int = 0
    worker_restarts: int = 0
    worker_crashes: int = 0
    temporal_restarts: int = 0
    tokens_expired: int = 0
    approvals: int = 0
    submit_retries: int = 0


@dataclass
class SubmittedBill:
    workflow_id: str
    connection_id: str
    platform: str
    document_number: str
    vendor_name: str
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
    balance_mismatches: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(
            self.lost
            or self.duplicate_bank_payments
            or self.duplicate_erp_bills
            or self.duplicate_erp_bill_payments
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


def chaos_bill(index: int, run: str, *, rng: random.Random) -> tuple[BillDraft, str]:
    """Mostly auto-approved known-vendor bills; some above the limit, some from new vendors."""
    roll = rng.random()
    cents = Decimal(index) / 100  # distinct amounts: duplicate detection must not fire
    if roll < 0.70:
        amount, vendor, tax_id = Decimal(100) + cents, "Northwind Office Supply", "94-1234567"
    elif roll < 0.85:
        amount, vendor, tax_id = Decimal(1000) + cents, "Northwind Office Supply", "94-1234567"
    else:
        amount, vendor, tax_id = Decimal(200) + cents, f"Chaos Vendor {run} {index}", None
    number = f"CH-{run}-{index}"
    draft = BillDraft.model_validate(
        {
            "document_number": number,
            "issue_date": date(2026, 11, 2),
            "due_date": date(2026, 12, 2),
            "currency": "USD",
            "vendor": {"name": vendor, "tax_id": tax_id, "bank_account": ACH_ACCOUNT},
            "lines": [
                {"description": "chaos", "amount": str(amount), "account": "Office Supplies"}
            ],
            "total": str(amount),
        }
    )
    return draft, vendor


class ChaosRun:
    def __init__(self, options: ChaosOptions, data_dir: Path) -> None:
        self.options = options
        self.data_dir = data_dir
        self.rng = random.Random(options.seed)
        self.run_id = f"{options.seed}{random.Random().randrange(16**4):04x}"
        self.counters = Counters()
        self.servers = Servers()
        self.emulators: dict[str, Emulator] = {}
        self.connections: dict[str, str] = {}  # platform → connection id
        self.submitted: list[SubmittedBill] = []
        self.fault_sets: dict[str, Faults] = {}
        self.secret_key = SecretBox.generate_key()
        self.box = SecretBox(self.secret_key)
        self.database_url = f"sqlite:///{data_dir / 'remit.db'}"
        self.temporal = TemporalServer(data_dir)
        self.store: Store | None = None
        self.bank: SandboxBank | None = None
        self.bank_url = ""
        self.client: Client | None = None
        self.remit: RemitClient | None = None
        self.worker: WorkerProcess | None = None
        self.submitting_done = asyncio.Event()

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

    async def start(self) -> None:
        self.temporal.start()
        self.store = await asyncio.to_thread(Store.open, self.database_url)
        api_sock, bank_sock = listening_socket(), listening_socket()
        self.bank = SandboxBank(
            settlement_delay={kind: timedelta(seconds=1) for kind in RailKind},
            faults=self.faults("bank"),
            api_key="sk_test_chaos",
            webhook_url=url_of(api_sock) + BANK_EVENTS_PATH,
        )
        self.bank_url = url_of(bank_sock)
        self.servers.serve(self.bank.app, bank_sock)
        now = datetime.now(UTC)
        for name in ERP_PLATFORMS:
            emulator = platform(name).emulator(faults=self.faults(name), **UNTHROTTLED[name])
            company = emulator.seed_demo_company()
            sock = listening_socket()
            self.servers.serve(emulator.app, sock)
            self.emulators[name] = emulator
            connection_id = f"chaos-{name}"
            self.connections[name] = connection_id
            await asyncio.to_thread(
                self.store.upsert_connection,
                ConnectionRow(
                    id=connection_id,
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
        self.client = await self.connect_temporal()
        self.remit = RemitClient(self.client, task_queue=TASK_QUEUE)
        api = create_app(self.remit, bank_webhook_secret=self.bank.webhook_secret)
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

    async def submit_all(self) -> None:
        assert self.remit is not None
        today = datetime.now(UTC).date()
        names = list(ERP_PLATFORMS)
        interval = 1 / self.options.submit_rate
        for index in range(self.options.bills):
            name = names[index % len(names)]
            draft, vendor = chaos_bill(index, self.run_id, rng=self.rng)
            connection_id = self.connections[name]
            while True:
                try:
                    result = await self.remit.submit_bill(
                        draft,
                        connection_id=connection_id,
                        platform=name,
                        submitted_by="sam",
                        key=f"chaos-{self.run_id}-{index}",
                        pay_on=today,
                        rail=RailKind.ach,
                        attempt_timeout=timedelta(seconds=self.options.attempt_timeout),
                    )
                    break
                except RPCError:  # Temporal is restarting: the same key makes a retry safe
                    self.counters.submit_retries += 1
                    await asyncio.sleep(0.5)
            self.submitted.append(
                SubmittedBill(
                    workflow_id=result.workflow_id,
                    connection_id=connection_id,
                    platform=name,
                    document_number=draft.document_number,
                    vendor_name=vendor,
                    total=draft.total,
                )
            )
            if index == self.options.bills // 3:
                await self.expire_tokens()
            await asyncio.sleep(interval)
        self.submitting_done.set()
        log(f"submitted {len(self.submitted)} bills")

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

    async def approve_waiting(self) -> None:
        """Act as the approver: decide every bill waiting for approval (idempotent updates)."""
        assert self.client is not None and self.remit is not None
        decided: set[str] = set()
        while True:
            try:
                async for execution in self.client.list_workflows(
                    "WorkflowType='BillWorkflow' AND ExecutionStatus='Running' "
                    "AND BillStatus='awaiting_approval'"
                ):
                    if execution.id in decided:
                        continue
                    try:
                        await asyncio.wait_for(
                            self.remit.decide(
                                execution.id,
                                actor=APPROVER,
                                approve=True,
                                comment="chaos",
                                request_id=f"{execution.id}/chaos-approval",
                            ),
                            30,
                        )
                        decided.add(execution.id)
                        self.counters.approvals += 1
                    except Exception:  # worker down or server restarting: next round
                        pass
            except Exception:
                pass
            await asyncio.sleep(2)

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

    async def wait_until_settled(self) -> bool:
        deadline = time.monotonic() + self.options.timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            if not self.submitting_done.is_set():
                continue
            try:
                moving = await self.unfinished()
            except Exception:
                continue
            if time.monotonic() - last_report > 15:
                log(f"{moving} bills still moving")
                last_report = time.monotonic()
            if moving == 0:
                return True
        return False

    # -- the audit -----------------------------------------------------------------------------

    async def remit_states(self) -> dict[str, RemitView | str]:
        """Each submitted bill's state, or why there is none."""
        assert self.remit is not None and self.client is not None
        states: dict[str, RemitView | str] = {}
        gate = asyncio.Semaphore(20)

        async def one(bill: SubmittedBill) -> None:
            async with gate:
                handle = self.remit.handle(bill.workflow_id)  # type: ignore[union-attr]
                try:
                    description = await handle.describe()
                    # Untyped: a worker restarted on newer code may hold fields this process
                    # does not know; the audit needs only a few.
                    raw = self.client.get_workflow_handle(bill.workflow_id)  # type: ignore[union-attr]
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
        assert self.store is not None and self.bank is not None
        self.quiet()  # the audit reads the books; faults would only slow it down
        audit = Audit(submitted=len(self.submitted))
        states = await self.remit_states()
        by_id = {bill.workflow_id: bill for bill in self.submitted}
        for workflow_id, state in states.items():
            if isinstance(state, str):
                audit.lost[workflow_id] = state
            elif state.status == LifecycleStatus.reconciled:
                audit.reconciled += 1
            elif state.status in HELD:
                audit.held[workflow_id] = [state.last_error or ""] + state.review_reasons
            elif state.status in FINAL_STATUSES:
                audit.other_final[workflow_id] = state.status.value
            else:
                audit.unfinished[workflow_id] = f"{state.status.value}: {state.waiting_for}"

        # The bank, directly: every payment for our workflows, by workflow.
        async with httpx.AsyncClient(timeout=60) as http:
            rail = SandboxBankRail(self.bank_url, self.bank.api_key, http)
            payments = await rail.list_payments()
        live = defaultdict(list)
        for payment in payments:
            workflow_id = payment.metadata.get("workflow_id", "")
            if workflow_id in by_id and payment.status in (
                RailPaymentStatus.settled,
                RailPaymentStatus.pending,
            ):
                live[workflow_id].append(payment)
        for workflow_id, at_bank in live.items():
            if len(at_bank) > 1:
                audit.duplicate_bank_payments[workflow_id] = len(at_bank)
        for workflow_id, state in states.items():
            if isinstance(state, RemitView) and state.status == LifecycleStatus.reconciled:
                settled = [p for p in live.get(workflow_id, []) if p.status == "settled"]
                if sum((p.amount for p in settled), Decimal(0)) != by_id[workflow_id].total:
                    audit.lost[workflow_id] = "reconciled in remit but not paid in full at the bank"

        # The ERPs, directly, through each platform's API with the connection's own tokens.
        erp_balance: dict[str, Decimal] = defaultdict(Decimal)
        remit_balance: dict[str, Decimal] = defaultdict(Decimal)
        numbers = {bill.document_number: bill for bill in self.submitted}
        for name, connection_id in self.connections.items():
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
                # A long run outlives an access token (Xero's last 30 min): renew it and save
                # the new set, as the worker does, so the audit never reads with a stale one.
                erp = platform(name).connector(
                    config, http, on_tokens=self._save_credentials(connection_id)
                )
                ours: dict[str, list[Any]] = defaultdict(list)
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
                    if len(found) > 1:
                        audit.duplicate_erp_bills[submitted.workflow_id] = len(found)
                    for erp_bill in found:
                        assert erp_bill.id is not None
                        recorded = await erp.list_bill_payments(bill_id=erp_bill.id)
                        paid = [p for p in recorded if not p.voided]
                        if len(paid) > 1:
                            audit.duplicate_erp_bill_payments[submitted.workflow_id] = len(paid)
                        balance = (
                            erp_bill.balance if erp_bill.balance is not None else erp_bill.total
                        )
                        erp_balance[f"{name}: {submitted.vendor_name}"] += balance
                    remit_view = states.get(submitted.workflow_id)
                    if isinstance(remit_view, RemitView) and remit_view.erp_bill_id:
                        remit_balance[f"{name}: {submitted.vendor_name}"] += expected_erp_balance(
                            remit_view
                        )
                # A bill remit says it wrote must be in the ERP.
                for sent in self.submitted:
                    view = states.get(sent.workflow_id)
                    if (
                        sent.platform == name
                        and isinstance(view, RemitView)
                        and view.erp_bill_id
                        and sent.document_number not in ours
                    ):
                        audit.lost[sent.workflow_id] = f"bill {view.erp_bill_id} missing in {name}"
                await erp.aclose()
        for vendor in sorted(set(erp_balance) | set(remit_balance)):
            if erp_balance[vendor] != remit_balance[vendor]:
                audit.balance_mismatches[vendor] = {
                    "erp": str(erp_balance[vendor]),
                    "remit": str(remit_balance[vendor]),
                }
        return audit


def expected_erp_balance(state: RemitView) -> Decimal:
    """What remit believes the ERP shows as still open: the total until it wrote a payment."""
    if state.erp_payment_id and state.payment.amount is not None:
        return state.total - state.payment.amount
    return state.total


async def run_chaos(options: ChaosOptions, data_dir: Path) -> tuple[Audit, ChaosRun, float, bool]:
    chaos = ChaosRun(options, data_dir)
    started = time.monotonic()
    try:
        await chaos.start()
        log(
            f"stack up (Temporal {chaos.temporal.address}); submitting {options.bills} bills "
            f"across {', '.join(ERP_PLATFORMS)}"
        )
        background = [
            asyncio.create_task(chaos.submit_all()),
            asyncio.create_task(chaos.approve_waiting()),
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
            ["vendors with ERP ≠ remit open balance", len(audit.balance_mismatches)],
        ],
    )
    if reasons:
        print_table("held bills, by reason", ["reason", "bills"], reasons.most_common())
    for workflow_id, why in list(audit.lost.items())[:20]:
        print(f"LOST {workflow_id}: {why}")
    unfinished = Counter(why.split(":")[0] for why in audit.unfinished.values())
    if unfinished:
        print_table(
            "still moving when time was up, by status",
            ["status", "bills"],
            unfinished.most_common(),
        )
    for vendor, balances in audit.balance_mismatches.items():
        print(f"MISMATCH {vendor}: ERP {balances['erp']} vs remit {balances['remit']}")
    faults = {name: dict(f.fired) for name, f in chaos.fault_sets.items()}
    print_table(
        "faults fired",
        ["system", "5xx", "429", "dropped after commit"],
        [[n, f.get("5xx", 0), f.get("429", 0), f.get("drop", 0)] for n, f in faults.items()],
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
        balance_mismatches=audit.balance_mismatches,
        worker_kills=counters.worker_kills,
        worker_crashes=counters.worker_crashes,
        temporal_restarts=counters.temporal_restarts,
        tokens_expired=counters.tokens_expired,
        approvals=counters.approvals,
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
