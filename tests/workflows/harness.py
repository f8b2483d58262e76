"""A remit worker wired to in-process emulators (real HTTP over ASGI) and the test server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from accounting import BillDraft
from accounting.payees import fingerprint_key
from activities.connections import ConnectionLookup, Connectors, StoreConnectionState, fixed_lookup
from activities.policy import load_directory, load_policy
from activities.webhooks import WebhookOutbox
from connectors.bank import SandboxBankRail
from connectors.base import ConnectionConfig, Connector, RailKind, all_vendors
from connectors.registry import auth, platform
from runtime.secrets import SecretBox
from sandbox.bank import SandboxBank
from sandbox.consent import drive_consent
from sandbox.payees import seed_demo_payees
from sandbox.registry import DemoCompany, Emulator, new_emulator, provision_with
from starter.client import RemitClient, resume_bills_after_relink
from starter.connections import ConnectionService, LinkStart
from starter.payees import PayeeService
from store import BillRow, ConnectionRow, DocumentStore, PayeeStore, Store, WebhookStore
from worker import Dependencies, build_worker, store_lookup
from workflows.models import BillState, LifecycleStatus, SubmitResult
from workflows.payment_run import RunState

ACH_ACCOUNT = "021000021/000123456789"
# Where the emulators' consent pages send the browser back to (a linked harness's app).
REDIRECT_URI = "https://remit.example/connections/callback"
RELINK_ACTOR = "remit connections relink"


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


class BankClock:
    """The sandbox bank's clock: real time, plus whatever a test moved it on (a return that
    arrives days after settlement happens when the test says so)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def advance(self, by: timedelta) -> None:
        self.ahead += by


@dataclass
class Harness:
    env: WorkflowEnvironment
    remit: RemitClient
    emulator: Emulator
    company: DemoCompany
    connection: ConnectionConfig
    erp: Connector
    payees: PayeeStore
    bank: SandboxBank
    bank_clock: BankClock
    rail: SandboxBankRail
    store: Store
    documents: DocumentStore
    deps: Dependencies
    task_queue: str
    erp_http: httpx.AsyncClient
    # Only for `running_remit(..., linked=True)`: the connection lives in the store, made (and
    # relinked) through the platform's own auth flow by `connections`, sealed with `box`.
    connections: ConnectionService | None = None
    box: SecretBox | None = None
    # The bill ids each relink's `on_relinked` hook signalled, one list per relink.
    resumed: list[list[str]] = field(default_factory=list)

    @property
    def platform(self) -> str:
        return self.connection.platform

    def _linked(self) -> tuple[ConnectionService, SecretBox]:
        if self.connections is None or self.box is None:
            raise AssertionError("only a harness made with running_remit(..., linked=True)")
        return self.connections, self.box

    def store_connection(self) -> None:
        """Keep the (fixed-lookup) connection in the store too, as the API finds connections
        there (visible_connection, the platform webhooks' company lookup)."""
        now = datetime.now(UTC)
        self.store.upsert_connection(
            ConnectionRow(
                id=self.connection.id,
                platform=self.platform,
                company_id=self.company.company_id,
                display_name="test company",
                settings={},
                created_at=now,
                updated_at=now,
            )
        )

    def connection_row(self) -> ConnectionRow:
        row = self.store.get_connection(self.connection.id)
        assert row is not None, f"no stored connection {self.connection.id}"
        return row

    def stored_credentials(self) -> dict[str, str]:
        """The credentials the store holds now (renewals and relinks replace them)."""
        _, box = self._linked()
        sealed = self.connection_row().credentials_encrypted
        assert sealed is not None
        return box.open(sealed)

    def current_erp(self) -> Connector:
        """A connector on the connection as it is now; `erp` keeps the first credentials,
        which a revoke ends. For inspection only: it neither renews nor reports health."""
        if self.connections is None:
            return self.erp
        _, box = self._linked()
        row = self.connection_row()
        config = ConnectionConfig(
            id=row.id,
            platform=row.platform,
            base_url=row.base_url or "",
            company_id=row.company_id,
            credentials=self.stored_credentials(),
            settings={k: str(v) for k, v in row.settings.items()},
        )
        return platform(self.platform).connector(config, self.erp_http)

    def change_settings(self, **changes: str) -> None:
        """Change the connection's settings where the worker reads them (dict or store)."""
        if self.connections is None:
            self.connection.settings.update(changes)
            return
        row = self.connection_row()
        settings = {**row.settings, **changes}
        self.store.upsert_connection(row.model_copy(update={"settings": settings}))

    def revoke_grant(self) -> None:
        """The company disconnects remit in the ERP: the stored access and refresh tokens (and
        an M2M certificate mapping) stop working, so every call and every renewal fails."""
        credentials = self.stored_credentials()
        emulator = cast(Any, self.emulator)
        for name in ("access_token", "refresh_token"):
            if credentials.get(name):
                emulator.revoke_token(credentials[name])
        if credentials.get("certificate_id"):
            emulator.revoke_certificate(credentials["client_id"], credentials["certificate_id"])

    async def relink(self) -> ConnectionRow:
        """Give the connection a new grant through `ConnectionService.relink`: a person consents
        again on the emulator's page, or an administrator maps a new certificate (M2M)."""
        service, _ = self._linked()
        spec = auth(self.platform)
        if spec.flow == "client_credentials":
            new_key = await provision_with(
                service,
                self.platform,
                base_url=self.connection.base_url,
                company_id=self.company.company_id,
            )
            new_key.pop("account_id", None)
            relinked = await service.relink(self.connection.id, credentials=new_key)
            assert isinstance(relinked, ConnectionRow)
            return relinked
        start = await service.relink(self.connection.id, redirect_uri=REDIRECT_URI)
        assert isinstance(start, LinkStart)
        async with service.http(self.connection.base_url) as http:
            callback = await drive_consent(
                http, start.authorize_url, company_id=self.company.company_id
            )
        return await service.complete_link(callback)

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

    async def until_run(
        self, run_id: str, check: Callable[[RunState], bool], *, within: float = 30.0
    ) -> RunState:
        """Poll a payment run's state until `check` holds (bounded), skipping the timers of
        settlement polls on the way."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            state = await self.remit.run_state(run_id)
            if check(state):
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{run_id} never got there; last: {state.status} {state.log}")
            await asyncio.sleep(0.05)

    async def until_recorded(
        self, workflow_id: str, check: Callable[[BillRow], bool], *, within: float = 30.0
    ) -> BillRow:
        """Poll the store's projection of a bill (what payment runs read) until `check` holds."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            row = self.store.get_bill(workflow_id)
            if row is not None and check(row):
                return row
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{workflow_id} was never recorded so")
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

    async def vendor_id(self, name: str) -> str:
        [vendor] = [v for v in await self.erp.find_vendors(name=name) if v.name == name]
        assert vendor.id is not None
        return vendor.id

    def payee_service(self) -> PayeeService:
        return PayeeService(
            self.payees,
            self.store,
            self.deps.policy,
            self.deps.directory,
            remit=self.remit,
            webhooks=WebhookOutbox(WebhookStore(self.store)),
        )

    async def review_payee_change(
        self,
        change_id: str,
        *,
        verifier: str = "olivia",
        approvers: tuple[str, ...] = ("carol", "dave"),
    ) -> None:
        """What the finance team does with a proposed payee: a call-back, then two approvals."""
        service = self.payee_service()
        await service.verify(change_id, by=verifier, method="call-back to the number on file")
        for approver in approvers:
            await service.approve(change_id, by=approver)

    def bank_app(self) -> Any:
        """remit's API as the bank's webhooks reach it (signed bank events only)."""
        from starter.api import assemble_app

        return assemble_app(
            self.remit,
            bank_webhook_secret=self.bank.webhook_secret,
            store=self.store,
            documents=self.documents,
        )

    def bank_webhooks_to_the_api(self) -> None:
        """Have the bank POST its signed events to remit's API, as in production."""
        from starter.api import BANK_EVENTS_PATH

        self.bank.set_webhook("http://remit.api" + BANK_EVENTS_PATH)
        self.bank._webhook_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=cast(Any, self.bank_app()))
        )
        self.bank._owns_webhook_http = True

    async def bank_payees(self) -> list[str]:
        """The last four digits of what each bank payment was sent to, oldest first."""
        response = await self.rail._http.get(
            self.rail.base_url + "/v1/payments",
            params={"limit": "100"},
            headers={"Authorization": f"Bearer {self.bank.api_key}"},
        )
        payees = [p["payee"] for p in response.json()["data"]]
        return [p.get("account_number_last4") or p.get("iban_last4") or "check" for p in payees]

    async def bill_payments(self, bill_id: str) -> list[Any]:
        erp = self.current_erp()
        return [p for p in await erp.list_bill_payments(bill_id=bill_id) if not p.voided]

    async def bank_payments(self) -> list[Any]:
        return await self.rail.list_payments()


async def link_connection(
    service: ConnectionService, emulator: Emulator, company: DemoCompany, platform_name: str
) -> ConnectionRow:
    """Link the demo company through its platform's real auth flow, as `remit connections add
    --auto-consent` does: register an app and consent (code flow) or map a key pair (M2M).

    The connection keeps the demo company's settings (bank and AP accounts, defaults).
    """
    base_url = f"http://{platform_name}.emulator"
    connection_id = f"test-{platform_name}-{uuid.uuid4().hex[:8]}"
    settings = dict(company.settings)
    if auth(platform_name).flow == "client_credentials":
        key = await provision_with(
            service, platform_name, base_url=base_url, company_id=company.company_id
        )
        account = key.pop("account_id")
        return await service.link_client_credentials(
            platform_name,
            base_url=base_url,
            company_id=account,
            credentials=key,
            connection_id=connection_id,
            settings=settings,
        )
    app = await provision_with(
        service,
        platform_name,
        base_url=base_url,
        inspector_token=company.inspector_token,
        redirect_uri=REDIRECT_URI,
    )
    start = await service.begin_link(
        platform_name,
        base_url=base_url,
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        redirect_uri=REDIRECT_URI,
        connection_id=connection_id,
        company_id=company.company_id,
        settings=settings,
    )
    async with service.http(base_url) as http:
        callback = await drive_consent(http, start.authorize_url, company_id=company.company_id)
    return await service.complete_link(callback)


@asynccontextmanager
async def running_remit(
    env: WorkflowEnvironment,
    tmp_path: Path,
    platform_name: str = "quickbooks",
    *,
    bank_delay: timedelta = timedelta(0),
    bank_gate: Any = None,
    erp_gate: Any = None,
    start_worker: bool = True,
    data_converter: DataConverter | None = None,
    linked: bool = False,
    seed_payees: bool = True,
) -> AsyncIterator[Harness]:
    """`data_converter` (say, one that encrypts) replaces the env's for both client and worker.

    By default the worker reaches the seeded demo connection through a fixed lookup. With
    `linked`, the connection is made through the platform's auth flow by a ConnectionService and
    kept (sealed) in the store, as in production: the worker reads it from there, persists
    renewed tokens, marks it needs_relink when the grant is revoked, and a relink resumes the
    bills paused on it (`Harness.relink`, `Harness.resumed`).
    """
    client = env.client
    if data_converter is not None:
        client = Client(
            env.client.service_client,
            namespace=env.client.namespace,
            data_converter=data_converter,
        )
    emulator = new_emulator(platform_name)
    company = emulator.seed_demo_company()
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")

    # `erp_gate` wraps the emulator's app as the worker's connectors reach it (faults, holds).
    erp_app = erp_gate(emulator.app) if erp_gate else emulator.app

    def transport_for(config: ConnectionConfig) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=cast(Any, erp_app))

    box: SecretBox | None = None
    service: ConnectionService | None = None
    resumed: list[list[str]] = []
    remit: RemitClient | None = None
    lookup: ConnectionLookup
    state: StoreConnectionState | None = None
    if linked:
        box = SecretBox(SecretBox.generate_key())
        emulator_transport = httpx.ASGITransport(app=cast(Any, emulator.app))

        async def on_relinked(connection_id: str) -> None:
            # What `remit connections relink` does after saving the new grant.
            assert remit is not None
            resumed.append(
                await resume_bills_after_relink(remit, store, connection_id, actor=RELINK_ACTOR)
            )

        service = ConnectionService(
            store, box, transport_for=lambda _url: emulator_transport, on_relinked=on_relinked
        )
        try:
            row = await link_connection(service, emulator, company, platform_name)
        except BaseException:
            store.close()
            raise
        lookup = store_lookup(store, box)
        state = StoreConnectionState(store, box.seal)
        connection = lookup(row.id)
    else:
        connection = ConnectionConfig(
            id=f"test-{platform_name}-{uuid.uuid4().hex[:8]}",
            platform=platform_name,
            base_url=f"http://{platform_name}.emulator",
            company_id=company.company_id,
            credentials=company.credentials,
            settings=company.settings,
        )
        lookup = fixed_lookup({connection.id: connection})

    connectors = Connectors(lookup, transport_for=transport_for, state=state)
    bank_clock = BankClock()
    bank = SandboxBank(settlement_delay={kind: bank_delay for kind in RailKind}, clock=bank_clock)
    bank_app = bank_gate(bank.app) if bank_gate else bank.app
    bank_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, bank_app)))
    rail = SandboxBankRail("http://bank.emulator", bank.api_key, bank_http)
    erp_http = httpx.AsyncClient(transport=transport_for(connection))
    erp = platform(platform_name).connector(connection, erp_http)
    documents = DocumentStore(tmp_path / "documents")
    payees = PayeeStore(
        store, box or SecretBox(SecretBox.generate_key()), fingerprint_key=fingerprint_key("t")
    )
    if seed_payees:
        await seed_demo_payees_of(payees, connection.id, erp)
    deps = Dependencies(
        connectors=connectors,
        rail=rail,
        store=store,
        documents=documents,
        policy=load_policy(),
        directory=load_directory(),
        payees=payees,
        rates=rail,
    )
    task_queue = f"bills-{uuid.uuid4()}"
    remit = _TrackingRemitClient(client, task_queue=task_queue)
    harness = Harness(
        env=env,
        remit=remit,
        emulator=emulator,
        company=company,
        connection=connection,
        erp=erp,
        payees=payees,
        bank=bank,
        bank_clock=bank_clock,
        rail=rail,
        store=store,
        documents=documents,
        deps=deps,
        task_queue=task_queue,
        erp_http=erp_http,
        connections=service,
        box=box,
        resumed=resumed,
    )
    try:
        if start_worker:
            async with build_worker(client, deps, task_queue=task_queue):
                yield harness
        else:
            yield harness
    finally:
        await remit.terminate_unfinished()
        await connectors.aclose()
        await bank.aclose()
        await bank_http.aclose()
        await erp_http.aclose()
        store.close()


async def seed_demo_payees_of(payees: PayeeStore, connection_id: str, erp: Connector) -> None:
    """The sandbox's verified demo payees for the vendors of this company (by their ERP ids)."""
    seed_demo_payees(payees, connection_id, await all_vendors(erp))


class _TrackingRemitClient(RemitClient):
    """A RemitClient that ends, after the test, the bills it started that still run.

    The time-skipping server is shared by the whole session and skips to the next timer of
    *any* workflow; a bill left waiting by an earlier test would otherwise drag the clock
    (up to its execution timeout) while a later test waits for its own result.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: list[str] = []

    async def submit_bill(self, *args: Any, **kwargs: Any) -> SubmitResult:
        result = await super().submit_bill(*args, **kwargs)
        if result.created:
            self.started.append(result.workflow_id)
        return result

    async def terminate_unfinished(self) -> None:
        for workflow_id in self.started:
            try:
                await self.handle(workflow_id).terminate(reason="test finished")
            except RPCError:
                pass  # already closed
