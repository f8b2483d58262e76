"""Sync activities: a page of the books read from the platform into the mirror, runs recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from pydantic import ValidationError
from temporalio import activity

from accounting import Bill, BillStatus, Vendor, draft_of_erp_bill
from activities.connections import ConnectorProvider
from activities.errors import classified
from connectors.base import ConnectionConfig
from connectors.feed_mirror import mirror_source
from connectors.mirror import MirrorKind, MirrorRecord
from runtime.bills import start_bill
from store import BillRow, Store
from store.mirror import MirrorStore
from store.types import utcnow
from workflows import contract
from workflows.approval import ApprovalPolicy
from workflows.contract import implements
from workflows.models import FINAL_STATUSES, ErpBillChanged, LifecycleStatus
from workflows.sync_models import (
    BeginSyncRequest,
    BeginSyncResult,
    BillChange,
    FinishSyncRequest,
    SyncPageRequest,
    SyncPageResult,
)

HEARTBEAT_EVERY = 5.0
"""Seconds between a running page's heartbeats (the workflow's timeout is 20 s)."""


@asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the body runs: the server then knows within its heartbeat timeout
    when the worker running a page died, and retries the page elsewhere."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()


def news_for(row: BillRow, record: MirrorRecord) -> ErpBillChanged | None:
    """What a bill's workflow should hear of its ERP bill's new state, or None when it is
    what remit itself wrote (posting it, paying it): only news is worth a signal."""
    seen_at = utcnow()
    if record.deleted:
        return ErpBillChanged(erp_bill_id=record.platform_id, deleted=True, seen_at=seen_at)
    try:
        bill = Bill.model_validate(record.data)
    except ValidationError:
        return None  # not a bill remit can read; the workflow's own re-read decides later
    balance = bill.balance if bill.balance is not None else bill.total
    if bill.status not in (BillStatus.void, BillStatus.paid) and (
        bill.total == row.total and balance == row.amount_due
    ):
        return None
    if bill.status is BillStatus.paid and row.amount_due <= 0:
        return None
    return ErpBillChanged(
        erp_bill_id=record.platform_id,
        status=bill.status.value,
        total=bill.total,
        balance=balance,
        seen_at=seen_at,
    )


def starts_new_erp_bills(connection: ConnectionConfig, policy: ApprovalPolicy | None) -> bool:
    """The connection's `start_new_erp_bills` setting when it has one, else the policy's."""
    setting = str(connection.settings.get("start_new_erp_bills") or "").strip().lower()
    if setting in ("true", "false"):
        return setting == "true"
    return policy is not None and policy.start_new_erp_bills


SYNC_ACTOR = "sync"
"""Who submitted a bill the sync started for a new ERP bill (the audit trail says so)."""


class SyncActivities:
    def __init__(
        self,
        store: Store,
        connectors: ConnectorProvider,
        *,
        policy: ApprovalPolicy | None = None,
        bills_task_queue: str | None = None,
    ) -> None:
        """`policy` and `bills_task_queue`: where bills for new ERP bills start, when the
        policy (or the connection's `start_new_erp_bills` setting) says to start them."""
        self._store = store
        self._mirror = MirrorStore(store)
        self._connectors = connectors
        self._policy = policy
        self._bills_task_queue = bills_task_queue

    @implements(contract.begin_sync)
    @classified
    async def begin_sync(self, req: BeginSyncRequest) -> BeginSyncResult:
        source = mirror_source(await self._connectors.connector(req.connection_id))
        kinds = [kind.value for kind in source.mirror_kinds()]
        watermarks = {
            kind: await asyncio.to_thread(
                self._mirror.watermark, req.connection_id, MirrorKind(kind)
            )
            for kind in kinds
        }
        # Nothing synced before (or a kind added since): that kind needs a full pass, and a
        # run is full or incremental as a whole, so the cursors of one run stay comparable.
        full = req.full or any(watermarks[kind] is None for kind in kinds)
        await asyncio.to_thread(
            self._mirror.start_run,
            run_id=req.run_id,
            connection_id=req.connection_id,
            mode="full" if full else "incremental",
            trigger=req.trigger,
            workflow_id=req.workflow_id,
            started_at=req.started_at,
        )
        return BeginSyncResult(kinds=kinds, watermarks=watermarks, full=full)

    @implements(contract.sync_page)
    @classified
    async def sync_page(self, req: SyncPageRequest) -> SyncPageResult:
        async with _heartbeating():
            return await self._sync_page(req)

    async def _sync_page(self, req: SyncPageRequest) -> SyncPageResult:
        kind = MirrorKind(req.kind)
        erp = await self._connectors.connector(req.connection_id)
        source = mirror_source(erp)
        page = await source.read_mirror_page(
            kind, since=req.since, cursor=req.cursor, page_size=req.page_size
        )
        synced_at = utcnow()
        applied = await asyncio.to_thread(
            self._mirror.apply,
            req.connection_id,
            page.records,
            synced_at=synced_at,
            run_id=req.run_id,
        )
        if applied.changed:
            await asyncio.to_thread(
                self._mirror.add_progress, req.run_id, changed={kind.value: applied.changed}
            )
        told = set(applied.changed_bill_ids)
        changed_bills = {
            r.platform_id: r
            for r in page.records
            if r.kind is MirrorKind.bills and r.platform_id in told
        }
        done = page.next_cursor is None
        # The pass's watermark is the one its first page gave (taken before reading).
        watermark = req.pass_watermark if req.cursor is not None else page.watermark
        if done:
            if req.full:
                gone = await asyncio.to_thread(
                    self._mirror.sweep_unseen,
                    req.connection_id,
                    kind,
                    run_id=req.run_id,
                )
                if kind is MirrorKind.bills:
                    # Not in a full pass: deleted in the ERP (platforms without a deletion feed).
                    changed_bills.update(
                        (pid, MirrorRecord(kind=kind, platform_id=pid, deleted=True))
                        for pid in gone
                    )
            await asyncio.to_thread(
                self._mirror.set_watermark,
                req.connection_id,
                kind,
                watermark if watermark is not None else req.since,
                synced_at=synced_at,
            )
        bill_changes = (
            await asyncio.to_thread(self._bill_changes, req.connection_id, changed_bills)
            if changed_bills
            else []
        )
        if applied.new_bill_ids and not req.full and self._starts_new_bills(erp.connection):
            await self._start_new_bills(erp.connection, page.records, applied.new_bill_ids)
        activity.logger.info(
            "sync %s %s: %d records, %d changed",
            req.connection_id,
            kind,
            len(page.records),
            applied.changed,
        )
        return SyncPageResult(
            changed=applied.changed,
            next_cursor=page.next_cursor,
            watermark=watermark,
            done=done,
            bill_changes=bill_changes,
        )

    def _starts_new_bills(self, connection: ConnectionConfig) -> bool:
        return self._bills_task_queue is not None and starts_new_erp_bills(connection, self._policy)

    async def _start_new_bills(
        self, connection: ConnectionConfig, records: list[MirrorRecord], new_ids: list[str]
    ) -> None:
        """A bill for each new open ERP bill an incremental pass found (the first, full sync
        is the company's backlog: those are started on request). Starting is safe to repeat:
        one ERP bill is one workflow id."""
        assert self._bills_task_queue is not None
        fresh = set(new_ids)
        known = {
            row.erp_bill_id
            for row in await asyncio.to_thread(
                self._store.bills_of_erp_bills, connection.id, sorted(fresh)
            )
        }
        temporal = activity.client()
        for record in records:
            if record.kind is not MirrorKind.bills or record.platform_id not in fresh:
                continue
            if record.deleted or record.platform_id in known:
                continue
            try:
                bill = Bill.model_validate(record.data)
            except ValidationError:
                continue
            if bill.status not in (BillStatus.open, BillStatus.partially_paid):
                continue
            if bill.reference and bill.reference.startswith(f"bill/{connection.id}/"):
                continue  # remit posted it; its bill's projection has not caught up yet
            vendor_row = await asyncio.to_thread(
                self._mirror.get, connection.id, MirrorKind.vendors, bill.vendor_id
            )
            try:
                vendor = Vendor.model_validate(vendor_row.data) if vendor_row else None
                draft = draft_of_erp_bill(bill, vendor=vendor)
            except ValueError as exc:  # pydantic's ValidationError is one
                activity.logger.warning(
                    "ERP bill %s of %s not started: %s", bill.id, connection.id, exc
                )
                continue
            result = await start_bill(
                temporal,
                draft,
                task_queue=self._bills_task_queue,
                connection_id=connection.id,
                platform=connection.platform,
                submitted_by=SYNC_ACTOR,
                erp_bill_id=record.platform_id,
                amount_due=bill.balance if bill.balance is not None else bill.total,
            )
            activity.logger.info(
                "ERP bill %s of %s: bill %s %s",
                record.platform_id,
                connection.id,
                result.workflow_id,
                "started" if result.created else "already started",
            )

    def _bill_changes(
        self, connection_id: str, changed: dict[str, MirrorRecord]
    ) -> list[BillChange]:
        """The open bills among these changed ERP bills, and what each should hear."""
        found: list[BillChange] = []
        for row in self._store.bills_of_erp_bills(connection_id, list(changed)):
            record = changed.get(row.erp_bill_id or "")
            if record is None or LifecycleStatus(row.status) in FINAL_STATUSES:
                continue
            notice = news_for(row, record)
            if notice is not None:
                found.append(BillChange(workflow_id=row.workflow_id, notice=notice))
        return found

    @implements(contract.finish_sync)
    async def finish_sync(self, req: FinishSyncRequest) -> None:
        finished: datetime = utcnow()
        if await asyncio.to_thread(self._mirror.get_run, req.run_id) is None:
            # The run failed before it began (the platform refused its first call).
            await asyncio.to_thread(
                self._mirror.start_run,
                run_id=req.run_id,
                connection_id=req.connection_id,
                mode="full" if req.full else "incremental",
                trigger=req.trigger,
                workflow_id=req.workflow_id,
                started_at=req.started_at or finished,
            )
        await asyncio.to_thread(
            self._mirror.finish_run,
            req.run_id,
            status=req.status,
            objects_changed=sum(req.counts.values()),
            counts=req.counts,
            errors=req.errors,
            finished_at=finished,
        )
