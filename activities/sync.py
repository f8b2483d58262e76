"""Sync activities: a page of the books read from the platform into the mirror, runs recorded."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from activities.connections import ConnectorProvider
from activities.errors import classified
from connectors.feed_mirror import mirror_source
from connectors.mirror import MirrorKind, MirrorRecord
from store import Store
from store.mirror import MirrorStore, open_bill_workflows
from store.types import utcnow
from workflows import contract
from workflows.contract import implements
from workflows.models import FINAL_STATUSES, ErpBillChanged
from workflows.sync_models import (
    BeginSyncRequest,
    BeginSyncResult,
    FinishSyncRequest,
    SyncPageRequest,
    SyncPageResult,
)

log = logging.getLogger(__name__)

ERP_BILL_CHANGED = "erp_bill_changed"
"""BillWorkflow's signal for a change sync saw to its ERP bill (a hint: it re-reads)."""


class SyncActivities:
    def __init__(self, store: Store, connectors: ConnectorProvider, client: Client) -> None:
        self._store = store
        self._mirror = MirrorStore(store)
        self._connectors = connectors
        self._client = client

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
        kind = MirrorKind(req.kind)
        source = mirror_source(await self._connectors.connector(req.connection_id))
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
        signalled = await self._tell_open_bills(req, page.records, applied.changed_bill_ids)
        done = page.next_cursor is None
        # The pass's watermark is the one its first page gave (taken before reading).
        watermark = req.pass_watermark if req.cursor is not None else page.watermark
        if done:
            if req.full:
                await asyncio.to_thread(
                    self._mirror.sweep_unseen,
                    req.connection_id,
                    kind,
                    run_id=req.run_id,
                )
            await asyncio.to_thread(
                self._mirror.set_watermark,
                req.connection_id,
                kind,
                watermark if watermark is not None else req.since,
                synced_at=synced_at,
            )
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
            signalled=signalled,
        )

    async def _tell_open_bills(
        self, req: SyncPageRequest, records: list[MirrorRecord], changed: list[str]
    ) -> int:
        if not changed:
            return 0
        open_bills = await asyncio.to_thread(
            open_bill_workflows,
            self._store,
            req.connection_id,
            changed,
            final=[status.value for status in FINAL_STATUSES],
        )
        by_id = {r.platform_id: r for r in records if r.kind is MirrorKind.bills}
        told = 0
        for erp_bill_id, workflow_id in open_bills.items():
            record = by_id.get(erp_bill_id)
            change = ErpBillChanged(
                connection_id=req.connection_id,
                erp_bill_id=erp_bill_id,
                deleted=bool(record is not None and record.deleted),
                platform_updated_at=record.platform_updated_at if record is not None else None,
                sync_run_id=req.run_id,
            )
            try:
                await self._client.get_workflow_handle(workflow_id).signal(ERP_BILL_CHANGED, change)
                told += 1
            except RPCError as err:  # finished meanwhile: nothing left to tell
                log.info("bill %s not told of its ERP change: %s", workflow_id, err.message)
        return told

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
