"""The worker's own settings: few workflow task slots, and bytecode for the sandbox."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

import workflows.bill
from runtime.settings import WORKFLOW_TASK_SLOTS, Settings
from tests.workflows.harness import running_remit
from worker import build_worker, precompile_workflows


async def test_the_bills_worker_takes_a_few_workflow_tasks_at_once(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # The SDK's default (100) lets a restarted worker take 100 replays at once; on one GIL the
    # last waits behind the other 99 and times out (see WORKFLOW_TASK_SLOTS).
    async with running_remit(time_skipping_env, tmp_path, start_worker=False) as h:
        default = build_worker(h.env.client, h.deps, task_queue=h.task_queue)
        assert default.workers[0].config()["max_concurrent_workflow_tasks"] == WORKFLOW_TASK_SLOTS
        chosen = build_worker(
            h.env.client, h.deps, task_queue=f"{h.task_queue}-2", max_concurrent_workflow_tasks=3
        )
        assert chosen.workers[0].config()["max_concurrent_workflow_tasks"] == 3


def test_workflow_task_slots_below_two_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Temporal's sticky cache needs two slots; one would fail only when the worker starts.
    monkeypatch.setenv("REMIT_WORKFLOW_TASK_SLOTS", "1")
    with pytest.raises(ValidationError, match="workflow_task_slots"):
        Settings()
    monkeypatch.setenv("REMIT_WORKFLOW_TASK_SLOTS", "4")
    assert Settings().workflow_task_slots == 4


def test_workflow_modules_get_bytecode_for_the_sandbox() -> None:
    source = Path(workflows.bill.__file__)
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.unlink(missing_ok=True)
    precompile_workflows()
    assert cached.exists()
    assert cached.stat().st_mtime >= source.stat().st_mtime
