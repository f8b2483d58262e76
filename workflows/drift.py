"""DriftSweepWorkflow: every bill remit reconciled lately compared with the books' mirror.

Run by the `drift-sweep` schedule. One activity per page of one connection's bills (store
reads only, no ERP call: the mirror is what sync last read of the books); a long sweep
continues as new so its history stays small.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import contract
    from workflows.drift_models import (
        DriftConnectionsRequest,
        DriftPageRequest,
        DriftSweepRequest,
        DriftSweepResult,
    )

PAGES_PER_RUN = 200
_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=10)


@workflow.defn(name="DriftSweep")
class DriftSweepWorkflow:
    @workflow.run
    async def run(self, req: DriftSweepRequest) -> DriftSweepResult:
        connections = req.connection_ids
        if connections is None:
            connections = await workflow.execute_activity(
                contract.drift_connections,
                DriftConnectionsRequest(),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=_RETRY,
            )
        checked, new, cleared = req.checked, req.new_findings, req.cleared
        cursor = req.cursor
        pages = 0
        for index in range(req.next_connection, len(connections)):
            while True:
                if pages >= PAGES_PER_RUN:
                    workflow.continue_as_new(
                        req.model_copy(
                            update={
                                "connection_ids": connections,
                                "next_connection": index,
                                "cursor": cursor,
                                "checked": checked,
                                "new_findings": new,
                                "cleared": cleared,
                            }
                        )
                    )
                page = await workflow.execute_activity(
                    contract.sweep_drift_page,
                    DriftPageRequest(
                        connection_id=connections[index],
                        window_days=req.window_days,
                        page_size=req.page_size,
                        cursor=cursor,
                    ),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=_RETRY,
                    summary=f"drift of {connections[index]}",
                )
                pages += 1
                checked += page.checked
                new += page.new_findings
                cleared += page.cleared
                cursor = page.next_cursor
                if cursor is None:
                    break
        return DriftSweepResult(
            connections=len(connections), checked=checked, new_findings=new, cleared=cleared
        )
