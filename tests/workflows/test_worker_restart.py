"""A worker stopped while paying: the payment landed, its response was lost; the next worker
finds it by the workflow's key and pays nothing twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import draft, running_remit
from worker import build_worker
from workflows.models import LifecycleStatus as S


class HoldFirstPayment:
    """Lets the bank commit the first payment, then holds its response until released."""

    def __init__(self) -> None:
        self.committed = asyncio.Event()
        self.release = asyncio.Event()

    def __call__(self, app: Any) -> Any:
        async def gated(scope: dict[str, Any], receive: Any, send: Any) -> None:
            first = (
                scope["type"] == "http"
                and scope["method"] == "POST"
                and scope["path"] == "/v1/payments"
                and not self.committed.is_set()
            )
            if not first:
                await app(scope, receive, send)
                return
            responses: list[dict[str, Any]] = []

            async def keep(message: dict[str, Any]) -> None:
                responses.append(message)

            await app(scope, receive, keep)
            self.committed.set()
            await self.release.wait()
            for message in responses:
                await send(message)

        return gated


async def _reconciled_with_one_payment(h: Any, wid: str) -> None:
    final = await asyncio.wait_for(h.result(wid), timeout=120)
    assert final.status == S.reconciled, final.last_error
    assert [p.amount for p in await h.bank_payments()] == [Decimal("120.00")]
    assert final.erp_bill_id
    assert len(await h.bill_payments(final.erp_bill_id)) == 1


async def test_worker_restart_while_paying_leaves_exactly_one_payment(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    gate = HoldFirstPayment()
    async with running_remit(dev_server_env, tmp_path, bank_gate=gate, start_worker=False) as h:
        first = build_worker(h.env.client, h.deps, task_queue=h.task_queue)
        running = asyncio.create_task(first.run())
        today = (await h.env.get_current_time()).date()
        wid = await h.submit(
            draft(amount="120.00"), pay_on=today, attempt_timeout=timedelta(seconds=5)
        )
        await asyncio.wait_for(gate.committed.wait(), timeout=60)
        await first.shutdown()  # the bank has the payment; the activity never heard back
        await running
        row = h.store.get_bill(wid)  # no worker is left to answer a query
        assert row is not None and row.status == S.paying
        async with build_worker(h.env.client, h.deps, task_queue=h.task_queue):
            await _reconciled_with_one_payment(h, wid)


async def test_hung_payment_attempt_times_out_and_is_found_not_repeated(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A worker that never answers (a hung process, a dead host): Temporal times the attempt
    out after `attempt_timeout` and the retry finds the payment by its key."""
    gate = HoldFirstPayment()  # never released: the first attempt never completes
    async with running_remit(dev_server_env, tmp_path, bank_gate=gate) as h:
        today = (await h.env.get_current_time()).date()
        wid = await h.submit(
            draft(amount="120.00"), pay_on=today, attempt_timeout=timedelta(seconds=3)
        )
        await _reconciled_with_one_payment(h, wid)
        assert gate.committed.is_set()
        gate.release.set()
