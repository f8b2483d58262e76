"""Replay benchmark: what it costs a worker to rebuild one bill from its history.

    python -m bench.replay [--rounds 20]

A worker that restarts (a deploy, a crash, a SIGKILL in the chaos run) has an empty cache, so
the next workflow task of every open bill replays that bill's whole history first. This
replays the recorded histories of tests/workflows/histories through the sandboxed runner the
worker uses (bytecode precompiled, as `build_worker` does) and through the unsandboxed runner,
the floor, and prints milliseconds per bill and what a restart costs with 1,000 bills open.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench._common import machine_line, print_json, print_table
from runtime.codec import remit_data_converter
from worker import precompile_workflows
from workflows.bill import BillWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "workflows" / "histories"
OPEN_BILLS = 1000


def recorded_histories() -> list[WorkflowHistory]:
    return [
        WorkflowHistory.from_json(path.stem, path.read_text())
        for path in sorted(HISTORIES.glob("*.json"))
    ]


async def ms_per_replay(
    runner: WorkflowRunner, histories: list[WorkflowHistory], rounds: int
) -> float:
    replayer = Replayer(
        workflows=[BillWorkflow], data_converter=remit_data_converter(), workflow_runner=runner
    )

    async def each(times: int) -> AsyncIterator[WorkflowHistory]:
        for _ in range(times):
            for history in histories:
                yield history

    await replayer.replay_workflows(each(1))  # warm: first imports, the build id
    started = time.perf_counter()
    await replayer.replay_workflows(each(rounds))
    return (time.perf_counter() - started) * 1000 / (rounds * len(histories))


async def run(rounds: int) -> None:
    precompile_workflows()
    histories = recorded_histories()
    events = sum(len(h.events) for h in histories) / len(histories)
    figures = {
        "sandboxed": await ms_per_replay(SandboxedWorkflowRunner(), histories, rounds),
        "unsandboxed": await ms_per_replay(UnsandboxedWorkflowRunner(), histories, rounds),
    }
    print_table(
        f"replay: {len(histories)} recorded bill histories ({events:.0f} events on average), "
        f"{rounds} rounds\nmachine: {machine_line()}",
        ["runner", "ms per bill", f"CPU s to replay {OPEN_BILLS:,} open bills"],
        [[name, ms, ms * OPEN_BILLS / 1000] for name, ms in figures.items()],
    )
    print_json(
        "replay",
        histories=len(histories),
        events_per_history=round(events, 1),
        rounds=rounds,
        ms_per_bill={name: round(ms, 2) for name, ms in figures.items()},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
