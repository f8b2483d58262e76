"""Retention: the hourly schedule, and a purge that forgets only what is past its window."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from store import IdempotencyRow
from store.types import utcnow
from tests.workflows.harness import running_remit
from worker import ensure_retention_schedule
from workflows.retention import (
    RETENTION_EVERY,
    RETENTION_SCHEDULE_ID,
    RetentionRequest,
    RetentionResult,
    RetentionWorkflow,
)


async def test_the_purge_forgets_keys_past_their_window_only(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path) as h:
        for key in ("old", "recent"):
            h.store.claim("api-key-1", key, "hash")
            h.store.complete("api-key-1", key, status_code=202, response_body={"id": key})
        table = IdempotencyRow.__table__  # type: ignore[attr-defined]
        with h.store.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.key == "old")
                .values(created_at=utcnow() - timedelta(days=8))
            )

        result = await time_skipping_env.client.execute_workflow(
            RetentionWorkflow.run,
            RetentionRequest(idempotency_keys_for=timedelta(days=7)),
            id=f"retention-{uuid.uuid4()}",
            task_queue=h.task_queue,
        )

        assert result == RetentionResult(idempotency_keys=1, webhook_rows=0)
        assert h.store.get("api-key-1", "old") is None
        assert h.store.get("api-key-1", "recent") is not None


async def test_every_worker_ensures_one_schedule_with_the_current_settings(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    first = RetentionRequest()
    changed = RetentionRequest(webhook_history_for=timedelta(days=10))
    try:
        await ensure_retention_schedule(client, task_queue="remit-bills", request=first)
        await ensure_retention_schedule(client, task_queue="remit-bills", request=changed)

        described = await client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
        assert [i.every for i in described.schedule.spec.intervals] == [RETENTION_EVERY]
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "Retention" and action.task_queue == "remit-bills"
        (argument,) = await client.data_converter.decode(action.args)  # type: ignore[arg-type]
        assert RetentionRequest.model_validate(argument) == changed
    finally:
        await client.get_schedule_handle(RETENTION_SCHEDULE_ID).delete()
