"""Throughput benchmark: happy-path bills against a bare workflow, on one embedded stack.

    python -m bench.throughput [--bills 300] [--concurrency 100]

Every bill is auto-approved (under the policy's 500 limit), from a known vendor, paid today on
an instantly settling rail, and written back to the QuickBooks emulator. The bare workflow runs
as many no-op activities and receives as many signals as a bill did, on the same Temporal dev
server and in the same process, so the ratio shows what remit's own work costs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from accounting import BillDraft
from bench._bare import BARE_TASK_QUEUE, BareWorkflow, bare_step
from bench._common import machine_line, print_json, print_table, rss_mib
from bench._emulated import lift_rate_limits
from bench._history import billable_actions, event_counts
from connectors.base import RailKind
from sandbox.stack import Stack, StackOptions
from starter.client import RemitClient
from workflows.models import BillState, LifecycleStatus

T = TypeVar("T")

CONNECTION_ID = "demo-quickbooks"
PLATFORM = "quickbooks"
ACH_ACCOUNT = "021000021/000123456789"
BILL_DEADLINE_SECONDS = 600


def happy_bill(index: int, run: str) -> BillDraft:
    """A bill that goes straight through: known vendor, coded line, under the approval limit."""
    # Distinct amounts and numbers, so duplicate detection never holds one for review.
    amount = Decimal(100) + Decimal(index) / 100
    return BillDraft.model_validate(
        {
            "document_number": f"TP-{run}-{index}",
            "issue_date": date(2026, 11, 2),
            "due_date": date(2026, 12, 2),
            "currency": "USD",
            "vendor": {
                "name": "Northwind Office Supply",
                "tax_id": "94-1234567",
                "bank_account": ACH_ACCOUNT,
            },
            "lines": [
                {"description": "paper", "amount": str(amount), "account": "Office Supplies"}
            ],
            "total": str(amount),
        }
    )


async def bounded(limit: int, calls: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


async def run_bills(
    remit: RemitClient, count: int, concurrency: int, run: str, *, first: int = 0
) -> tuple[float, list[str]]:
    """Submit bills first..first+count and wait for every one to be reconciled."""
    today = datetime.now(UTC).date()
    started = time.perf_counter()

    async def submit_and_finish(index: int) -> str:
        result = await remit.submit_bill(
            happy_bill(index, run),
            connection_id=CONNECTION_ID,
            platform=PLATFORM,
            submitted_by="sam",
            key=f"throughput-{run}-{index}",
            pay_on=today,
            rail=RailKind.ach,
        )
        try:
            state: BillState = await asyncio.wait_for(
                remit.handle(result.workflow_id).result(), BILL_DEADLINE_SECONDS
            )
        except TimeoutError:
            state = await remit.state(result.workflow_id)
            raise RuntimeError(
                f"{result.workflow_id} not done after {BILL_DEADLINE_SECONDS}s: "
                f"{state.status.value}, waiting for {state.waiting_for}"
            ) from None
        if state.status != LifecycleStatus.reconciled:
            raise RuntimeError(
                f"{result.workflow_id} ended {state.status.value}: {state.last_error}"
            )
        return result.workflow_id

    ids = await bounded(
        concurrency, (functools.partial(submit_and_finish, i) for i in range(first, first + count))
    )
    return time.perf_counter() - started, ids


async def run_bare(
    client: Client, count: int, concurrency: int, activities: int, signals: int, run: str
) -> tuple[float, list[str]]:
    started = time.perf_counter()

    async def one(index: int) -> str:
        handle = await client.start_workflow(
            BareWorkflow.run,
            args=[activities, signals],
            id=f"bare/{run}/{index}",
            task_queue=BARE_TASK_QUEUE,
        )
        for _ in range(signals):
            await handle.signal(BareWorkflow.poke)
        await handle.result()
        return handle.id

    ids = await bounded(concurrency, (functools.partial(one, i) for i in range(count)))
    return time.perf_counter() - started, ids


async def history_figures(client: Client, workflow_ids: list[str], sample: int) -> dict[str, Any]:
    """Mean events and billable actions per workflow over (a sample of) the histories."""
    chosen = workflow_ids[:sample]
    histories = await bounded(20, (client.get_workflow_handle(w).fetch_history for w in chosen))
    events = [len(h.events) for h in histories]
    actions = [billable_actions(list(h.events)) for h in histories]
    kinds: dict[str, float] = {}
    for action in actions:
        for kind, n in action.by_kind.items():
            kinds[kind] = kinds.get(kind, 0) + n
    first = list(histories[0].events)
    return {
        "sampled": len(histories),
        "events": statistics.mean(events),
        "actions": statistics.mean(a.total for a in actions),
        "actions_by_kind": {k: round(v / len(actions), 2) for k, v in sorted(kinds.items())},
        "activities": sum(
            1 for e in first if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ),
        "signals": sum(
            1 for e in first if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ),
        "event_types": dict(event_counts(first)),
    }


async def bench(bills: int, concurrency: int, sample: int, data_dir: Path) -> dict[str, Any]:
    instant = {kind: timedelta(0) for kind in RailKind}
    options = StackOptions.on_free_ports(
        data_dir, temporal_ui=False, settlement_delay=instant, settlement_interval_seconds=0.05
    )
    run = uuid.uuid4().hex[:6]
    async with Stack(options) as stack:
        assert stack.remit is not None and stack.temporal_client is not None
        remit, client = stack.remit, stack.temporal_client
        # The emulators model QuickBooks' 500 requests/minute; this measures remit, not that.
        for name, emulator in stack.emulators.items():
            lift_rate_limits(name, emulator)
        # One bill first: its history says how many activities and signals the bare one gets.
        _, warmup_ids = await run_bills(remit, 1, 1, run, first=bills)
        shape = await history_figures(client, warmup_ids, 1)
        async with Worker(
            client, task_queue=BARE_TASK_QUEUE, workflows=[BareWorkflow], activities=[bare_step]
        ):
            await run_bare(client, 1, 1, shape["activities"], shape["signals"], run + "w")
            bill_seconds, bill_ids = await run_bills(remit, bills, concurrency, run)
            bare_seconds, bare_ids = await run_bare(
                client, bills, concurrency, shape["activities"], shape["signals"], run
            )
        bill_history = await history_figures(client, bill_ids, sample)
        bare_history = await history_figures(client, bare_ids, sample)
        rss = rss_mib()
    return {
        "bills": bills,
        "concurrency": concurrency,
        "bill_seconds": bill_seconds,
        "bills_per_second": bills / bill_seconds,
        "bare_seconds": bare_seconds,
        "bare_per_second": bills / bare_seconds,
        "ratio": (bills / bill_seconds) / (bills / bare_seconds),
        "bill_history": bill_history,
        "bare_history": bare_history,
        "process_rss_mib": rss,
    }


def patch_tcp_nodelay() -> None:
    """Experiment: the stack's listeners with TCP_NODELAY (asyncio sets it only on sockets
    created with proto=IPPROTO_TCP; without it each keep-alive response can wait ~40 ms for a
    delayed ACK). Measures what that one-line change in starter/stack.py `_bind` would give."""
    import socket

    import sandbox.stack

    original = sandbox.stack._bind

    def bind_with_nodelay(host: str, port: int) -> socket.socket:
        sock = original(host, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    sandbox.stack._bind = bind_with_nodelay


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--bills", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=100, help="bills in flight at once")
    parser.add_argument("--sample", type=int, default=100, help="histories read for the counts")
    parser.add_argument(
        "--tcp-nodelay",
        action="store_true",
        help="experiment: set TCP_NODELAY on the stack's listeners (see patch_tcp_nodelay)",
    )
    args = parser.parse_args(argv)
    if args.tcp_nodelay:
        patch_tcp_nodelay()
    with tempfile.TemporaryDirectory(prefix="remit-bench-") as tmp:
        figures = asyncio.run(bench(args.bills, args.concurrency, args.sample, Path(tmp)))
    bill, bare = figures["bill_history"], figures["bare_history"]
    print_table(
        f"throughput: {args.bills} happy-path bills (QuickBooks emulator, instant ACH) vs "
        f"{args.bills} bare workflows ({bill['activities']} activities + {bill['signals']} "
        f"signal(s) each), {args.concurrency} in flight; one embedded stack, worker in-process\n"
        f"machine: {machine_line()}",
        ["workflow", "per second", "seconds", "history events", "billable actions"],
        [
            [
                "bill",
                figures["bills_per_second"],
                figures["bill_seconds"],
                bill["events"],
                bill["actions"],
            ],
            [
                "bare",
                figures["bare_per_second"],
                figures["bare_seconds"],
                bare["events"],
                bare["actions"],
            ],
        ],
    )
    print(f"bills/s ÷ bare workflows/s = {figures['ratio']:.2f}")
    print_table(
        "billable actions per bill, by kind (Temporal Cloud rules; queries not in history)",
        ["kind", "per bill"],
        list(bill["actions_by_kind"].items()),
    )
    print_json(
        "throughput",
        bills=args.bills,
        concurrency=args.concurrency,
        tcp_nodelay_experiment=args.tcp_nodelay,
        bills_per_second=round(figures["bills_per_second"], 2),
        bare_workflows_per_second=round(figures["bare_per_second"], 2),
        ratio=round(figures["ratio"], 3),
        history_events_per_bill=round(bill["events"], 1),
        billable_actions_per_bill=round(bill["actions"], 2),
        billable_actions_by_kind=bill["actions_by_kind"],
        history_events_per_bare=round(bare["events"], 1),
        billable_actions_per_bare=round(bare["actions"], 2),
        activities_per_bill=bill["activities"],
        signals_per_bill=bill["signals"],
        process_rss_mib=round(figures["process_rss_mib"], 1),
    )


if __name__ == "__main__":
    main()
