"""SyncWorkflow: one sync of a connection's books into the mirror, page by page, resumable.

Each page is one activity that reads from the platform and writes the mirror itself, so the
history holds counts and cursors, never the books. The cursor lives in the workflow's state:
a worker killed mid-page retries that page, and continue-as-new carries the cursor on, so a
sync of any size keeps a small history and never starts again from zero.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from workflows import contract
    from workflows.bill import ERP_OPTIONS, BillWorkflow, describe_failure, failure_type
    from workflows.models import erp_task_queue
    from workflows.sync_models import (
        BeginSyncRequest,
        BillChange,
        FinishSyncRequest,
        SyncInput,
        SyncOutcome,
        SyncPageRequest,
        SyncProgress,
    )


PAGE_HEARTBEAT_TIMEOUT = timedelta(seconds=20)


def _reason(err: ActivityError) -> str:
    kind = failure_type(err)
    return f"{kind}: {describe_failure(err)}" if kind else describe_failure(err)


@workflow.defn(name="Sync")
class SyncWorkflow:
    def __init__(self) -> None:
        self._again = False
        self._progress: SyncProgress | None = None

    @workflow.signal
    def sync_again(self) -> None:
        """Changes arrived while this sync runs (a webhook, an on-demand request): one more
        incremental pass once this one ends, so none of them is missed. One that arrives
        before the run has read anything (signal-with-start's own) is covered by this run."""
        if self._progress is not None and self._progress.kinds:
            self._again = True

    @workflow.query
    def progress(self) -> SyncProgress | None:
        return self._progress

    def _erp(self, connection_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "task_queue": erp_task_queue(workflow.info().task_queue),
            "priority": Priority(fairness_key=connection_id),
            "start_to_close_timeout": timedelta(minutes=5),
            "schedule_to_close_timeout": timedelta(hours=6),
            "retry_policy": ERP_OPTIONS["retry_policy"],
            **extra,
        }

    @workflow.run
    async def run(self, inp: SyncInput) -> SyncOutcome:
        progress = inp.progress
        if progress is None:
            progress = SyncProgress(
                run_id=str(workflow.uuid4()), started_at=workflow.now(), full=inp.full
            )
            self._progress = progress
            try:
                begun = await workflow.execute_activity(
                    contract.begin_sync,
                    BeginSyncRequest(
                        connection_id=inp.connection_id,
                        run_id=progress.run_id,
                        full=inp.full,
                        trigger=inp.trigger,
                        workflow_id=workflow.info().workflow_id,
                        started_at=progress.started_at,
                    ),
                    summary=f"begin sync of {inp.connection_id}",
                    **self._erp(inp.connection_id),
                )
            except ActivityError as err:
                progress.errors.append(_reason(err))
                return await self._finish(inp, progress, "failed")
            progress.kinds = begun.kinds
            progress.watermarks = begun.watermarks
            progress.full = begun.full
        self._progress = progress
        self._again = self._again or progress.again
        pages_this_run = 0
        while progress.index < len(progress.kinds):
            kind = progress.kinds[progress.index]
            if (
                pages_this_run >= inp.pages_per_run
                or workflow.info().is_continue_as_new_suggested()
            ):
                progress.again = self._again
                workflow.continue_as_new(
                    SyncInput(
                        connection_id=inp.connection_id,
                        full=inp.full,
                        trigger=inp.trigger,
                        progress=progress,
                        pages_per_run=inp.pages_per_run,
                        page_size=inp.page_size,
                    )
                )
            try:
                page = await workflow.execute_activity(
                    contract.sync_page,
                    SyncPageRequest(
                        connection_id=inp.connection_id,
                        run_id=progress.run_id,
                        kind=kind,
                        since=None if progress.full else progress.watermarks.get(kind),
                        cursor=progress.cursor,
                        full=progress.full,
                        run_started_at=progress.started_at,
                        pass_watermark=progress.pass_watermark,
                        page_size=inp.page_size,
                    ),
                    summary=f"sync {kind} of {inp.connection_id}",
                    # The page beats while it runs: a page whose worker died is retried (with
                    # its cursor) within the heartbeat timeout, not after start_to_close.
                    **self._erp(inp.connection_id, heartbeat_timeout=PAGE_HEARTBEAT_TIMEOUT),
                )
            except ActivityError as err:
                progress.errors.append(f"{kind}: {_reason(err)}")
                if failure_type(err) == "ConnectionRevoked":
                    return await self._finish(inp, progress, "failed")
                # One kind the platform refuses does not stop the others.
                progress.index += 1
                progress.cursor = progress.pass_watermark = None
                continue
            pages_this_run += 1
            progress.pages += 1
            await self._tell_bills(page.bill_changes)
            if page.changed:
                progress.counts[kind] = progress.counts.get(kind, 0) + page.changed
            if progress.cursor is None:
                progress.pass_watermark = page.watermark
            if page.done:
                progress.index += 1
                progress.cursor = progress.pass_watermark = None
            else:
                progress.cursor = page.next_cursor
        status = "failed" if progress.errors and not progress.counts else "succeeded"
        return await self._finish(inp, progress, status)

    async def _tell_bills(self, changes: list[BillChange]) -> None:
        """Signal each open bill whose ERP bill changed (it re-reads and acts itself). A bill
        that ended meanwhile is not an error: the drift sweep watches finished bills."""
        for change in changes:
            handle = workflow.get_external_workflow_handle(change.workflow_id)
            try:
                await handle.signal(BillWorkflow.erp_bill_changed, change.notice)
            except FailureError as err:
                workflow.logger.info("bill %s not told: %s", change.workflow_id, err)

    async def _finish(self, inp: SyncInput, progress: SyncProgress, status: Any) -> SyncOutcome:
        await workflow.execute_activity(
            contract.finish_sync,
            FinishSyncRequest(
                run_id=progress.run_id,
                connection_id=inp.connection_id,
                counts=progress.counts,
                errors=progress.errors,
                status=status,
                full=progress.full,
                trigger=inp.trigger,
                workflow_id=workflow.info().workflow_id,
                started_at=progress.started_at,
            ),
            summary=f"sync of {inp.connection_id} {status}",
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._again:
            # What arrived during this run: one more incremental pass, as a fresh run.
            workflow.continue_as_new(
                SyncInput(connection_id=inp.connection_id, full=False, trigger="again")
            )
        return SyncOutcome(
            run_id=progress.run_id,
            connection_id=inp.connection_id,
            full=progress.full,
            status=status,
            counts=progress.counts,
            errors=progress.errors,
        )
