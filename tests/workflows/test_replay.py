"""Replays recorded bill histories: a code change that would break in-flight bills fails here.

Record new histories (after a deliberate, patched change) with
`REMIT_RECORD_HISTORIES=1 python -m pytest tests/workflows/test_replay.py -k record`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from connectors.bank import ReturnRule
from tests.workflows.harness import draft, running_remit
from workflows.bill import BillWorkflow
from workflows.models import LifecycleStatus as S

HISTORIES = Path(__file__).parent / "histories"


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[BillWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


def test_histories_are_recorded() -> None:
    names = {p.stem for p in recorded()}
    assert {
        "auto_approved",
        "two_level_approval",
        "bank_return_retry",
        "duplicate_cancelled",
        "rejected",
    } <= names


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:

        async def save(name: str, wid: str) -> None:
            await h.result(wid)
            history = await h.remit.handle(wid).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())

        await save("auto_approved", await h.submit(draft(number="R-1", amount="120.00")))

        wid = await h.submit(draft(number="R-2", amount="25000.00"))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="alice", approve=True)
        await h.until(wid, lambda s: s.level == 1)
        await h.remit.decide(wid, actor="carol", approve=True)
        await save("two_level_approval", wid)

        wid = await h.submit(draft(number="R-3", amount="900.00"))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="bob", approve=False, comment="not ours")
        await save("rejected", wid)

        h.bank.set_return_rules([ReturnRule(code="R01", times=1)])
        wid = await h.submit(draft(number="R-4", amount="130.00"))
        await h.status(wid, S.needs_attention)
        await h.remit.retry(wid, actor="olivia")
        await save("bank_return_retry", wid)

        wid = await h.submit(draft(number="R-1", amount="120.00"), key="again")
        await h.status(wid, S.needs_review)
        await h.remit.cancel(wid, actor="olivia", reason="duplicate")
        await save("duplicate_cancelled", wid)
