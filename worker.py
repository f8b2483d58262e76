"""The Temporal worker: registers BillWorkflow and every activity, with their clients injected.

`remit worker` runs it in production (`run`); `build_worker` is what the stack and tests use.
"""

from __future__ import annotations

import asyncio
import compileall
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import workflows
from accounting.payees import fingerprint_key
from activities.connections import (
    ConnectionLookup,
    ConnectorProvider,
    Connectors,
    StoreConnectionState,
)
from activities.drift import DriftActivities
from activities.ledger import DocumentSource, LedgerActivities
from activities.match import MatchActivities, mirror_history
from activities.payees import PayeeActivities, PayeeGate, PayeeImportActivities
from activities.payment import PaymentActivities
from activities.policy import PolicyActivities, load_directory, load_policy
from activities.record import NotifyActivities, RecordActivities
from activities.request_log import RequestLog, RequestLogInterceptor
from activities.retention import RetentionActivities
from activities.runs import RunActivities
from activities.sync import SyncActivities
from activities.webhooks import (
    DispatchOptions,
    WebhookActivities,
    WebhookDispatcher,
    WebhookOutbox,
    WebhookSender,
)
from connectors.bank import SandboxBankRail
from connectors.base import ConnectionConfig, ConnectionRevoked, NotFound, PaymentRail
from connectors.fx import RateSource
from runtime.secrets import SecretBox
from runtime.settings import WORKFLOW_TASK_SLOTS, Settings
from runtime.temporal import connect
from store import (
    ConnectionRow,
    CreditStore,
    DocumentStore,
    PayeeStore,
    RequestLogStore,
    Store,
    WebhookStore,
)
from store.mirror import MirrorStore
from workflows import contract
from workflows.approval import WEEKDAYS, ApprovalPolicy, Directory, PaymentRunPolicy
from workflows.bill import BillWorkflow
from workflows.credit import CreditWorkflow
from workflows.drift import DriftSweepWorkflow
from workflows.drift_models import DRIFT_SCHEDULE_ID, DriftSweepRequest
from workflows.erp_write import ErpWriteWorkflow
from workflows.models import erp_task_queue
from workflows.payees import PayeeImportWorkflow
from workflows.payment_run import PaymentRunWorkflow, RunInput
from workflows.retention import (
    RETENTION_EVERY,
    RETENTION_SCHEDULE_ID,
    RetentionRequest,
    RetentionWorkflow,
)
from workflows.sync import SyncWorkflow
from workflows.sync_models import SyncInput, sync_schedule_id, sync_workflow_id
from workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger("remit.worker")

Queues = Literal["bills", "erp", "both"]
"""Which task queues a worker process polls: bills (workflows, the bank, the store), erp (every
ERP call, rate-limited), or both. Split them to scale ERP calls apart from workflow tasks."""


@dataclass
class Dependencies:
    """What the activities talk to; tests build these around emulators."""

    connectors: ConnectorProvider
    rail: PaymentRail
    store: Store
    documents: DocumentSource
    policy: ApprovalPolicy
    directory: Directory
    payees: PayeeStore
    """The payee master: the only bank details a payment goes to."""
    rates: RateSource | None = None
    """Exchange rates where the ERP keeps none (the bank's quotes, configured rates)."""
    # Opens webhook signing secrets; without it deliveries fail with WebhooksNotConfigured.
    webhook_box: SecretBox | None = None
    # Where webhooks are POSTed from (tests inject an ASGI transport); None: a default client.
    webhook_http: httpx.AsyncClient | None = field(default=None, repr=False)
    # Let webhooks go to private and loopback addresses (settings' webhook_allow_private_targets).
    webhook_allow_private_targets: bool = False
    # How long the request log keeps each ERP call (settings' request_log_retention_days).
    request_log_retention: timedelta | None = timedelta(days=30)


@dataclass(frozen=True)
class ErpLimits:
    """How hard this deployment may drive the ERPs, whatever the number of workers."""

    activities_per_second: float | None = None
    """Server-side limit on the ERP queue, shared by every worker polling it (None: none)."""
    concurrent_activities: int = 50
    """ERP calls one worker runs at once (the per-connection cap is in the connectors)."""


class RemitWorker:
    """One process's workers, run and stopped together: bills (workflows, bank, store) and ERP
    (every ERP call, on its own rate-limited task queue; see `workflows.models.erp_task_queue`),
    and beside them the webhook dispatcher, which sends the outbox without Temporal.
    """

    def __init__(
        self,
        workers: list[Worker],
        dispatcher: WebhookDispatcher | None = None,
        *,
        graceful_shutdown: timedelta = timedelta(0),
    ) -> None:
        self.workers = workers
        self.dispatcher = dispatcher
        self._graceful_shutdown = graceful_shutdown

    async def _stop_dispatcher(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.stop(self._graceful_shutdown)

    async def run(self) -> None:
        """Poll until `shutdown`; if one worker fails, stop the others and raise its error."""
        if self.dispatcher is not None:
            self.dispatcher.start()
        try:
            await self._run_workers()
        finally:
            await self._stop_dispatcher()

    async def _run_workers(self) -> None:
        tasks = [asyncio.create_task(w.run()) for w in self.workers]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in done if t.exception() is not None]
        if failed:
            await asyncio.gather(
                *(w.shutdown() for w in self.workers if w.is_running), return_exceptions=True
            )
            await asyncio.gather(*tasks, return_exceptions=True)
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.gather(*tasks)

    async def shutdown(self) -> None:
        await asyncio.gather(
            self._stop_dispatcher(), *(w.shutdown() for w in self.workers if w.is_running)
        )

    async def __aenter__(self) -> RemitWorker:
        for w in self.workers:
            await w.__aenter__()
        if self.dispatcher is not None:
            self.dispatcher.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(
            self._stop_dispatcher(), *(w.__aexit__(None, None, None) for w in self.workers)
        )


def build_worker(
    client: Client,
    deps: Dependencies,
    *,
    task_queue: str,
    erp_limits: ErpLimits = ErpLimits(),
    queues: Queues = "both",
    graceful_shutdown: timedelta = timedelta(0),
    webhook_dispatch: DispatchOptions = DispatchOptions(),
    **options: object,
) -> RemitWorker:
    """The workers for `task_queue` and its ERP queue (or one of them, by `queues`); `options`
    go to the bills worker. On shutdown, running activities get `graceful_shutdown` to finish
    before they are cancelled (Temporal retries them on another worker either way).

    With the bills queue and a webhook key (`deps.webhook_box`), the webhook dispatcher runs
    beside the workers: it sends every delivery the outbox queues, at no Temporal cost."""
    precompile_workflows()
    options.setdefault("max_concurrent_workflow_tasks", WORKFLOW_TASK_SLOTS)
    sender = WebhookSender(
        WebhookStore(deps.store),
        deps.webhook_box,
        deps.webhook_http,
        allow_private_targets=deps.webhook_allow_private_targets,
    )
    dispatcher = (
        WebhookDispatcher(sender, webhook_dispatch)
        if sender.configured and queues != "erp"
        else None
    )
    webhook_outbox = WebhookOutbox(
        sender.store, notify=dispatcher.wake if dispatcher is not None else None
    )
    webhooks = WebhookActivities(sender, outbox=webhook_outbox)
    record = RecordActivities(deps.store, webhooks=webhook_outbox)
    gate = PayeeGate(deps.payees, announce=webhook_outbox.payee_change)
    match = MatchActivities(
        deps.connectors,
        similar_bills=record.similar_bills,
        payees=gate,
        vendor_history=mirror_history(MirrorStore(deps.store)),
    )
    ledger = LedgerActivities(
        deps.connectors, deps.documents, credits=CreditStore(deps.store), rates=deps.rates
    )
    payment = PaymentActivities(deps.rail, gate, deps.store)
    payees = PayeeActivities(gate)
    payee_import = PayeeImportActivities(deps.connectors, gate)
    runs = RunActivities(
        deps.store, deps.connectors, gate, deps.policy, deps.directory, webhooks=webhook_outbox
    )
    policy = PolicyActivities(deps.policy, deps.directory)
    notify = NotifyActivities(deps.store)
    retention = RetentionActivities(deps.store, webhook_outbox.store)
    drift = DriftActivities(deps.store, webhooks=webhook_outbox)
    sync = SyncActivities(
        deps.store, deps.connectors, policy=deps.policy, bills_task_queue=task_queue
    )
    # Every ERP call an activity makes lands in the connection's request log, once per activity.
    request_log = RequestLog(RequestLogStore(deps.store), retention=deps.request_log_retention)
    interceptors = [RequestLogInterceptor(request_log)]
    implemented = contract_activities(
        match,
        ledger,
        payment,
        payees,
        payee_import,
        runs,
        policy,
        record,
        notify,
        retention,
        drift,
        webhooks,
        sync,
    )
    bills = Worker(
        client,
        task_queue=task_queue,
        workflows=[
            BillWorkflow,
            CreditWorkflow,
            PaymentRunWorkflow,
            PayeeImportWorkflow,
            WebhookDeliveryWorkflow,
            RetentionWorkflow,
            SyncWorkflow,
            ErpWriteWorkflow,
            DriftSweepWorkflow,
        ],
        activities=implemented["bills"],
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=interceptors,
        **options,  # type: ignore[arg-type]
    )
    erp = Worker(
        client,
        task_queue=erp_task_queue(task_queue),
        activities=implemented["erp"],
        max_concurrent_activities=erp_limits.concurrent_activities,
        max_task_queue_activities_per_second=erp_limits.activities_per_second,
        graceful_shutdown_timeout=graceful_shutdown,
        interceptors=interceptors,
    )
    chosen = {"bills": [bills], "erp": [erp], "both": [bills, erp]}[queues]
    return RemitWorker(chosen, dispatcher, graceful_shutdown=graceful_shutdown)


def contract_activities(*providers: object) -> dict[contract.Queue, list[Callable[..., Any]]]:
    """Every activity `workflows.contract` declares, implemented by one of `providers` (bound
    methods marked with `implements`), by the queue it runs on.

    Raises at start rather than at the first bill: a declared activity nobody implements would
    leave bills waiting on a queue no worker serves.
    """
    found: dict[str, Callable[..., Any]] = {}
    for provider in providers:
        for attribute in dir(type(provider)):
            name = getattr(getattr(type(provider), attribute), contract.IMPLEMENTS, None)
            if name is None:
                continue
            if name in found:
                raise ValueError(f"activity {name} is implemented twice")
            found[name] = getattr(provider, attribute)
    missing = sorted(set(contract.DECLARED) - set(found))
    if missing:
        raise ValueError(f"no implementation of activities {', '.join(missing)}")
    by_queue: dict[contract.Queue, list[Callable[..., Any]]] = {"bills": [], "erp": []}
    for name, declared in contract.DECLARED.items():
        by_queue[declared.queue].append(found[name])
    return by_queue


def precompile_workflows() -> None:
    """Write bytecode for the workflow modules if it is missing.

    The sandbox imports a workflow's module afresh for every bill it runs or replays; without
    a .pyc (PYTHONDONTWRITEBYTECODE, a read-only checkout) that means compiling bill.py from
    source each time: replaying a bill half-way through (45 events) took 73 ms instead of 52
    on a 2-core Xeon (`python -m bench.replay` measures whole recorded lives).
    """
    for folder in workflows.__path__:
        if not compileall.compile_dir(Path(folder), quiet=2):
            # A read-only install: the sandbox compiles from source, which is slower but right.
            log.info("could not write bytecode for %s", folder)


def payee_store(store: Store, box: SecretBox, settings: Settings) -> PayeeStore:
    """The payee master, sealed with the deployment's secret key (like credentials)."""
    return PayeeStore(
        store, box, fingerprint_key=fingerprint_key(settings.secret_key.get_secret_value())
    )


def store_lookup(store: Store, box: SecretBox) -> ConnectionLookup:
    """Connections as the store holds them, credentials decrypted only in this process."""

    def lookup(connection_id: str) -> ConnectionConfig:
        row = store.get_connection(connection_id)
        if row is None:
            raise NotFound(f"unknown connection {connection_id!r}")
        if row.status == "needs_relink":
            # Known dead: don't spend the platform's quota proving it again for every bill.
            raise ConnectionRevoked(
                f"connection {connection_id} needs relink: {row.last_error or 'grant revoked'}",
                platform=row.platform,
            )
        return ConnectionConfig(
            id=row.id,
            platform=row.platform,
            base_url=row.base_url or "",
            company_id=row.company_id,
            credentials=box.open(row.credentials_encrypted) if row.credentials_encrypted else {},
            settings={k: str(v) for k, v in row.settings.items()},
        )

    return lookup


def connection_state(store: Store, box: SecretBox) -> StoreConnectionState:
    """Connection health in the store; a newly revoked connection is announced by webhook."""
    outbox = WebhookOutbox(WebhookStore(store))

    async def announce(row: ConnectionRow) -> None:
        await outbox.connection_needs_relink(
            row.id,
            platform=row.platform,
            reason=row.last_error or "grant revoked",
            occurrence=(row.last_error_at or row.updated_at).isoformat(),
        )

    return StoreConnectionState(store, box.seal, on_needs_relink=announce)


def retention_request(settings: Settings) -> RetentionRequest:
    return RetentionRequest(
        idempotency_keys_for=timedelta(days=settings.idempotency_retention_days),
        webhook_history_for=timedelta(days=settings.webhook_retention_days),
    )


async def ensure_retention_schedule(
    client: Client, *, task_queue: str, request: RetentionRequest
) -> None:
    """The hourly retention schedule, created or brought up to these settings.

    Every worker calls this at start; the schedule id makes it one schedule however many run.
    """
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RetentionWorkflow.run, request, id=RETENTION_SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=RETENTION_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    await ensure_schedule(client, RETENTION_SCHEDULE_ID, schedule)


async def ensure_drift_schedule(client: Client, settings: Settings) -> None:
    """The drift sweep every `drift_sweep_interval_hours` (one schedule however many workers)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            DriftSweepWorkflow.run,
            DriftSweepRequest(window_days=settings.drift_window_days),
            id=DRIFT_SCHEDULE_ID,
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[
                ScheduleIntervalSpec(every=timedelta(hours=settings.drift_sweep_interval_hours))
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    await ensure_schedule(client, DRIFT_SCHEDULE_ID, schedule)


# Temporal's calendar counts weekdays from Sunday = 0.
TEMPORAL_WEEKDAY = {day: (index + 1) % 7 for index, day in enumerate(WEEKDAYS)}


def payment_run_schedule(connection_id: str, run: PaymentRunPolicy, task_queue: str) -> Schedule:
    """A connection's payment runs on the policy's calendar (UTC)."""
    hour, minute = (int(part) for part in run.at.split(":"))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PaymentRunWorkflow.run,
            RunInput(connection_id=connection_id, horizon_days=run.horizon_days),
            id=f"payment-run/{connection_id}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_week=[ScheduleRange(TEMPORAL_WEEKDAY[day.lower()]) for day in run.days],
                    hour=[ScheduleRange(hour)],
                    minute=[ScheduleRange(minute)],
                )
            ]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_payment_run_schedules(
    client: Client, policy: ApprovalPolicy, *, task_queue: str
) -> None:
    """One schedule per connection the policy pays in runs (created or brought up to date)."""
    for connection_id, run in policy.payment_runs.items():
        await ensure_schedule(
            client,
            f"payment-run/{connection_id}",
            payment_run_schedule(connection_id, run, task_queue),
        )


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    try:
        await client.create_schedule(schedule_id, schedule)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        log.warning("this Temporal server has no schedules: %s will not run", schedule_id)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)


DEFAULT_SYNC_INTERVAL = timedelta(minutes=15)
SYNC_INTERVAL_SETTING = "sync_interval_minutes"
"""The connection setting that sets its incremental syncs' interval (minutes)."""


def sync_interval(connection_settings: dict[str, str]) -> timedelta:
    """A connection's sync interval from its settings (15 minutes unless it says)."""
    raw = connection_settings.get(SYNC_INTERVAL_SETTING)
    if not raw:
        return DEFAULT_SYNC_INTERVAL
    try:
        minutes = float(raw)
    except ValueError as exc:
        raise ValueError(
            f"{SYNC_INTERVAL_SETTING} must be a number of minutes, not {raw!r}"
        ) from exc
    if minutes < 1:
        raise ValueError(f"{SYNC_INTERVAL_SETTING} must be at least 1 minute, not {raw!r}")
    return timedelta(minutes=minutes)


def sync_schedule(connection_id: str, interval: timedelta, task_queue: str) -> Schedule:
    """A connection's incremental syncs. Its runs take the schedule's own id (plus the time)
    and skip while one runs; an on-demand sync in between only reads what changed since."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SyncWorkflow.run,
            SyncInput(connection_id=connection_id, trigger="schedule"),
            id=f"{sync_workflow_id(connection_id)}/scheduled",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_sync_schedule(
    client: Client,
    settings: Settings,
    connection_id: str,
    *,
    interval: timedelta | None = None,
) -> str:
    """The connection's sync schedule, created or brought up to `interval`; its id."""
    schedule_id = sync_schedule_id(connection_id)
    await ensure_schedule(
        client,
        schedule_id,
        sync_schedule(connection_id, interval or DEFAULT_SYNC_INTERVAL, settings.task_queue),
    )
    return schedule_id


async def ensure_sync_schedules(client: Client, store: Store, settings: Settings) -> None:
    """One sync schedule per stored connection (a connection made while no worker ran gets
    its schedule when one starts)."""
    for row in await asyncio.to_thread(store.list_connections):
        try:
            interval = sync_interval({k: str(v) for k, v in (row.settings or {}).items()})
        except ValueError as err:
            log.warning("connection %s: %s; syncing every 15 minutes", row.id, err)
            interval = DEFAULT_SYNC_INTERVAL
        await ensure_sync_schedule(client, settings, row.id, interval=interval)


async def run(settings: Settings, *, queues: Queues = "both", migrate: bool = False) -> None:
    """One production worker process until SIGTERM or SIGINT (then a graceful shutdown).

    The schema must be current (`remit migrate`) unless `migrate` says to bring it there.
    """
    store = Store.open(settings.database_url, run_migrations=migrate)
    box = SecretBox(settings.secret_key.get_secret_value())
    client = await connect(settings)
    connectors = Connectors(
        store_lookup(store, box),
        state=connection_state(store, box),
    )
    async with httpx.AsyncClient(timeout=30) as bank_http:
        rail = SandboxBankRail(
            settings.bank_url, settings.bank_api_key.get_secret_value(), bank_http
        )
        deps = Dependencies(
            connectors=connectors,
            rail=rail,
            store=store,
            documents=DocumentStore(settings.documents_dir),
            policy=load_policy(settings.policy_file),
            directory=load_directory(settings.directory_file),
            payees=payee_store(store, box, settings),
            rates=rail,
            webhook_box=box,
            webhook_allow_private_targets=settings.webhook_allow_private_targets,
            request_log_retention=timedelta(days=settings.request_log_retention_days),
        )
        worker = build_worker(
            client,
            deps,
            task_queue=settings.task_queue,
            erp_limits=ErpLimits(
                activities_per_second=settings.erp_activities_per_second,
                concurrent_activities=settings.erp_concurrent_activities,
            ),
            queues=queues,
            graceful_shutdown=timedelta(seconds=settings.worker_shutdown_seconds),
            webhook_dispatch=DispatchOptions(
                poll_interval=timedelta(seconds=settings.webhook_poll_seconds),
                lease=timedelta(seconds=settings.webhook_lease_seconds),
            ),
            max_concurrent_workflow_tasks=settings.workflow_task_slots,
        )
        if queues != "erp":
            await ensure_retention_schedule(
                client, task_queue=settings.task_queue, request=retention_request(settings)
            )
            await ensure_payment_run_schedules(client, deps.policy, task_queue=settings.task_queue)
            await ensure_drift_schedule(client, settings)
            await ensure_sync_schedules(client, store, settings)
        stop_on_signals(worker)
        log.info(
            "worker polling %s (%s) on %s",
            settings.task_queue,
            queues,
            settings.temporal_address,
        )
        try:
            await worker.run()
        finally:
            await connectors.aclose()
            store.close()
        log.info("worker stopped")


def stop_on_signals(worker: RemitWorker) -> None:
    """SIGTERM (what an orchestrator sends) and SIGINT shut the worker down gracefully."""
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop() -> None:
        if not stopping:
            log.info("worker stopping: finishing running tasks")
            stopping.append(loop.create_task(worker.shutdown()))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)


def main() -> None:
    """`python -m worker`: both queues, as `remit worker` runs by default."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(Settings()))


if __name__ == "__main__":
    main()
