"""Starting and following syncs of a connection's books: on demand, by webhook, on a schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from runtime.settings import Settings
from worker import ensure_sync_schedule, sync_interval
from workflows.sync import SyncWorkflow
from workflows.sync_models import (
    SyncInput,
    SyncOutcome,
    SyncTrigger,
    sync_workflow_id,
)

__all__ = ["SyncJob", "ensure_sync_schedule", "start_sync", "sync_interval", "sync_status"]


@dataclass(frozen=True)
class SyncJob:
    workflow_id: str
    run_id: str | None
    started: bool
    """False: a sync of the connection was running already; it makes one more pass for this."""


async def start_sync(
    client: Client,
    settings: Settings,
    connection_id: str,
    *,
    trigger: SyncTrigger,
    full: bool = False,
) -> SyncJob:
    """One sync of the connection (signal-with-start: a sync already running is asked for one
    more incremental pass when it ends, so what this request is about is never missed)."""
    workflow_id = sync_workflow_id(connection_id)
    running = False
    try:
        before = await client.get_workflow_handle(workflow_id).describe()
        running = before.status == WorkflowExecutionStatus.RUNNING
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    handle = await client.start_workflow(
        SyncWorkflow.run,
        SyncInput(connection_id=connection_id, full=full, trigger=trigger),
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal="sync_again",
    )
    # Ending between the look and the start is harmless: then this request started one.
    started = not running
    return SyncJob(workflow_id=workflow_id, run_id=handle.result_run_id, started=started)


async def sync_status(client: Client, settings: Settings, job_workflow_id: str) -> dict[str, Any]:
    """A sync job as the API shows it: running (with what changed so far) or its outcome.

    Raises RPCError (NOT_FOUND) for a job that does not exist."""
    handle = client.get_workflow_handle(job_workflow_id)
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        progress = await handle.query(SyncWorkflow.progress)
        return {
            "status": "running",
            "run_id": progress.run_id if progress else None,
            "mode": ("full" if progress.full else "incremental") if progress else None,
            "counts": dict(progress.counts) if progress else {},
            "errors": list(progress.errors) if progress else [],
        }
    if description.status == WorkflowExecutionStatus.COMPLETED:
        outcome = await client.get_workflow_handle(
            job_workflow_id, result_type=SyncOutcome
        ).result()
        return {
            "status": outcome.status,
            "run_id": outcome.run_id,
            "mode": "full" if outcome.full else "incremental",
            "counts": outcome.counts,
            "errors": outcome.errors,
        }
    ended = description.status.name.lower() if description.status else "in an unknown state"
    return {
        "status": "failed",
        "run_id": None,
        "mode": None,
        "counts": {},
        "errors": [f"the sync workflow ended {ended}"],
    }
