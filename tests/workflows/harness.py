"""A remit worker wired to in-process emulators (real HTTP over ASGI) and the test server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from temporalio.testing import WorkflowEnvironment

from accounting import BillDraft
from activities.connections import Connectors, fixed_lookup
from activities.policy import load_directory, load_policy
from connectors.bank import SandboxBank, SandboxBankRail
from connectors.base import ConnectionConfig, Connector, RailKind
from connectors.registry import DemoCompany, Emulator, platform
from starter.client import RemitClient
from store import DocumentStore, Store
from worker import Dependencies, build_worker
from workflows.models import BillState, LifecycleStatus

ACH_ACCOUNT = "021000021/000123456789"


def draft(
    *,
    number: str = "INV-1001",
    vendor: str = "Northwind Office Supply",
    tax_id: str | None = "94-1234567",
    amount: str = "900.00",
    account: str | None = "Office Supplies",
    department: str | None = None,
    currency: str = "USD",
    issue: date = date(2026, 11, 2),
    due: date | None = date(2026, 12, 2),
    bank_account: str | None = ACH_ACCOUNT,
) -> BillDraft:
    return BillDraft.model_validate(
        {
            "document_number": number,
            "issue_date": issue,
            "due_date": due,
            "currency": currency,
            "vendor": {"name": vendor, "tax_id": tax_id, "bank_account": bank_account},
            "lines": [
                {
                    "description": "goods",
                    "amount": amount,
                    "account": account,
                    "department": department,
                }
            ],
            "total": amount,
        }
    )


@dataclass
class Harness:
    env: WorkflowEnvironment
    remit: RemitClient
    emulator: Emulator
    company: DemoCompany
    connection: ConnectionConfig
    erp: Connector
    bank: SandboxBank
    rail: SandboxBankRail
    store: Store
    documents: DocumentStore
    deps: Dependencies
    task_queue: str

    @property
    def platform(self) -> str:
        return self.connection.platform

    async def submit(self, bill: BillDraft, *, submitted_by: str = "sam", **kw: Any) -> str:
        result = await self.remit.submit_bill(
            bill,
            connection_id=self.connection.id,
            platform=self.platform,
            submitted_by=submitted_by,
            **kw,
        )
        return result.workflow_id

    async def state(self, workflow_id: str) -> BillState:
        return await self.remit.state(workflow_id)

    async def until(
        self, workflow_id: str, check: Callable[[BillState], bool], *, within: float = 30.0
    ) -> BillState:
        """Poll the state query until `check` holds (bounded), without skipping time."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            state = await self.state(workflow_id)
            if check(state):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{workflow_id} never got there; last state: "
                    f"{state.status} waiting for {state.waiting_for}"
                )
            await asyncio.sleep(0.05)

    async def status(self, workflow_id: str, *statuses: LifecycleStatus) -> BillState:
        return await self.until(workflow_id, lambda s: s.status in statuses)

    async def result(self, workflow_id: str) -> BillState:
        """Run the bill to its end; the test server skips every timer on the way.

        Only handles the test client started itself unlock time skipping, so unlock it here
        for a handle looked up by id (as every caller of RemitClient does).
        """
        unlocked = getattr(self.env, "time_skipping_unlocked", None)
        for _ in range(5):
            try:
                if unlocked is None:
                    return await self.remit.handle(workflow_id).result()
                async with unlocked():
                    return await self.remit.handle(workflow_id).result()
            except RuntimeError as err:
                # The Java test server sometimes ends a history long-poll of a running
                # workflow early; ask again rather than fail (bounded).
                if "No completion event found" not in str(err):
                    raise
        raise AssertionError(f"{workflow_id} did not complete")

    async def bill_payments(self, bill_id: str) -> list[Any]:
        return [p for p in await self.erp.list_bill_payments(bill_id=bill_id) if not p.voided]

    async def bank_payments(self) -> list[Any]:
        return await self.rail.list_payments()


@asynccontextmanager
async def running_remit(
    env: WorkflowEnvironment,
    tmp_path: Path,
    platform_name: str = "quickbooks",
    *,
    bank_delay: timedelta = timedelta(0),
    bank_gate: Any = None,
    start_worker: bool = True,
) -> AsyncIterator[Harness]:
    emulator = platform(platform_name).emulator()
    company = emulator.seed_demo_company()
    connection = ConnectionConfig(
        id=f"test-{platform_name}-{uuid.uuid4().hex[:8]}",
        platform=platform_name,
        base_url=f"http://{platform_name}.emulator",
        company_id=company.company_id,
        credentials=company.credentials,
        settings=company.settings,
    )

    def transport_for(config: ConnectionConfig) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=cast(Any, emulator.app))

    connectors = Connectors(fixed_lookup({connection.id: connection}), transport_for=transport_for)
    bank = SandboxBank(settlement_delay={kind: bank_delay for kind in RailKind})
    bank_app = bank_gate(bank.app) if bank_gate else bank.app
    bank_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, bank_app)))
    rail = SandboxBankRail("http://bank.emulator", bank.api_key, bank_http)
    erp_http = httpx.AsyncClient(transport=transport_for(connection))
    erp = platform(platform_name).connector(connection, erp_http)
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    documents = DocumentStore(tmp_path / "documents")
    deps = Dependencies(
        connectors=connectors,
        rail=rail,
        store=store,
        documents=documents,
        policy=load_policy(),
        directory=load_directory(),
    )
    task_queue = f"bills-{uuid.uuid4()}"
    harness = Harness(
        env=env,
        remit=RemitClient(env.client, task_queue=task_queue),
        emulator=emulator,
        company=company,
        connection=connection,
        erp=erp,
        bank=bank,
        rail=rail,
        store=store,
        documents=documents,
        deps=deps,
        task_queue=task_queue,
    )
    try:
        if start_worker:
            async with build_worker(env.client, deps, task_queue=task_queue):
                yield harness
        else:
            yield harness
    finally:
        await connectors.aclose()
        await bank_http.aclose()
        await erp_http.aclose()
        store.close()
