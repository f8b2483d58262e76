"""Sync activities: a page of the books read from the platform into the mirror, runs recorded."""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import activity

from activities.connections import ConnectorProvider
from activities.errors import classified
from connectors.feed_mirror import mirror_source
from connectors.mirror import MirrorKind
from store import Store
from store.mirror import MirrorStore
from store.types import utcnow
from workflows import contract
from workflows.contract import implements
from workflows.sync_models import (
    BeginSyncRequest,
    BeginSyncResult,
    FinishSyncRequest,
    SyncPageRequest,
    SyncPageResult,
)


class SyncActivities:
    def __init__(self, store: Store, connectors: ConnectorProvider) -> None:
        self._mirror = MirrorStore(store)
        self._connectors = connectors

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
        )

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
