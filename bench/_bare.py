"""The bare workflow the throughput benchmark compares a bill with: no-op activities and signals."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BARE_TASK_QUEUE = "bench-bare"


@activity.defn
async def bare_step(index: int) -> int:
    return index


@workflow.defn
class BareWorkflow:
    """Runs `activities` no-op activities one after another, then waits for `signals` signals."""

    def __init__(self) -> None:
        self.received = 0

    @workflow.signal
    def poke(self) -> None:
        self.received += 1

    @workflow.run
    async def run(self, activities: int, signals: int) -> int:
        for index in range(activities):
            await workflow.execute_activity(
                bare_step, index, start_to_close_timeout=timedelta(seconds=30)
            )
        await workflow.wait_condition(lambda: self.received >= signals)
        return activities
