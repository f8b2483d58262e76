"""A worker killed while paying: the payment landed, its response was lost; the next worker
finds it by the workflow's key and pays nothing twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
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


@pytest.mark.skip(
    reason="the time-skipping test server stops answering after a worker shuts down with an "
    "activity in flight (history long-polls end early, then RPC timeouts); move to a "
    "dev-server environment with short activity timeouts"
)
async def test_worker_restart_while_paying_leaves_exactly_one_payment(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    gate = HoldFirstPayment()
    async with running_remit(time_skipping_env, tmp_path, bank_gate=gate, start_worker=False) as h:
        first = build_worker(h.env.client, h.deps, task_queue=h.task_queue)
        running = asyncio.create_task(first.run())
        today = (await h.env.get_current_time()).date()
        wid = await h.submit(draft(amount="120.00"), pay_on=today)
        await asyncio.wait_for(gate.committed.wait(), timeout=60)
        await first.shutdown()  # the bank has the payment; the activity never heard back
        await running
        gate.release.set()
        row = h.store.get_bill(wid)  # no worker is left to answer a query
        assert row is not None and row.status == S.paying
        async with build_worker(h.env.client, h.deps, task_queue=h.task_queue):
            # Skip past the lost attempt's start-to-close timeout and the settlement poll.
            for _ in range(10):
                await h.env.sleep(timedelta(minutes=2))
                final = await h.state(wid)
                if final.status == S.reconciled:
                    break
        assert final.status == S.reconciled, final.last_error
        assert [p.amount for p in await h.bank_payments()] == [Decimal("120.00")]
        assert final.erp_bill_id
        assert len(await h.bill_payments(final.erp_bill_id)) == 1
