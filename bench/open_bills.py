"""Open-bills benchmark: N bills left waiting for approval, the worker's memory, then decisions.

    python -m bench.open_bills [--bills 10000] [--concurrency 50]

The worker runs as its own process (`python worker.py`, as in production), so its RSS is the
worker's alone. Once every bill waits for approval, all are approved at once, and the latency
from each decision to the payment the bank received for it (the bank's own created_at) is
reported as p50 and p99 (the decision's moment is when the workflow applied it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from accounting import BillDraft
from bench._common import machine_line, percentile, print_json, print_table, rss_mib
from bench.chaos import ACH_ACCOUNT, ChaosOptions, ChaosRun, log
from connectors.bank import SandboxBankRail
from connectors.base import RailKind

PLATFORM = "quickbooks"
APPROVER = "alice"


def waiting_bill(index: int, run: str) -> BillDraft:
    """Above the auto-approval limit, below the second tier: one approver from ap-approvers."""
    amount = Decimal(600) + Decimal(index) / 100  # distinct, so no duplicate is suspected
    return BillDraft.model_validate(
        {
            "document_number": f"OB-{run}-{index}",
            "issue_date": date(2026, 11, 2),
            "due_date": date(2026, 12, 2),
            "currency": "USD",
            "vendor": {
                "name": "Northwind Office Supply",
                "tax_id": "94-1234567",
                "bank_account": ACH_ACCOUNT,
            },
            "lines": [
                {"description": "supplies", "amount": str(amount), "account": "Office Supplies"}
            ],
            "total": str(amount),
        }
    )


async def wait_for_count(run: ChaosRun, query: str, target: int, within: float) -> float:
    assert run.client is not None
    started = time.monotonic()
    last = -1
    while time.monotonic() - started < within:
        count = (await run.client.count_workflows(query)).count
        if count != last:
            log(f"{count}/{target}: {query.split('AND')[-1].strip()}")
            last = count
        if count >= target:
            return time.monotonic() - started
        await asyncio.sleep(2)
    raise TimeoutError(f"only {last} of {target} after {within:.0f}s: {query}")


async def bench(bills: int, concurrency: int, data_dir: Path) -> dict[str, Any]:
    options = ChaosOptions(
        bills=bills, error_rate=0, throttle_rate=0, drop_rate=0, restart_temporal=False
    )
    run = ChaosRun(options, data_dir)
    try:
        await run.start()
        assert run.remit is not None and run.worker is not None and run.bank is not None
        remit, worker = run.remit, run.worker
        connection_id = run.connections[PLATFORM]
        tag = run.run_id
        today = datetime.now(UTC).date()
        gate = asyncio.Semaphore(concurrency)
        ids: list[str] = []

        async def submit(index: int) -> None:
            async with gate:
                result = await remit.submit_bill(
                    waiting_bill(index, tag),
                    connection_id=connection_id,
                    platform=PLATFORM,
                    submitted_by="sam",
                    key=f"open-{tag}-{index}",
                    pay_on=today,
                    rail=RailKind.ach,
                )
                ids.append(result.workflow_id)

        started = time.monotonic()
        await asyncio.gather(*(submit(i) for i in range(bills)))
        submit_seconds = time.monotonic() - started
        log(f"submitted {bills} bills in {submit_seconds:.0f}s")
        waiting_query = (
            "WorkflowType='BillWorkflow' AND ExecutionStatus='Running' AND "
            "BillStatus='awaiting_approval'"
        )
        await wait_for_count(run, waiting_query, bills, within=3 * 3600)
        settle_seconds = time.monotonic() - started
        assert worker.process is not None
        await asyncio.sleep(5)  # let the worker finish what it was doing before reading RSS
        worker_rss = rss_mib(worker.process.pid)

        decided_at: dict[str, float] = {}

        update_retries = 0

        async def decide(workflow_id: str) -> None:
            nonlocal update_retries
            async with gate:
                for _ in range(20):
                    try:
                        record = await remit.decide(
                            workflow_id,
                            actor=APPROVER,
                            approve=True,
                            request_id=f"{workflow_id}/ob",
                        )
                        break
                    except (WorkflowUpdateRPCTimeoutOrCancelledError, RPCError):
                        # A busy worker answers after the RPC deadline; the same update id
                        # makes asking again safe (the workflow applies it once).
                        update_retries += 1
                else:
                    raise RuntimeError(f"no answer to the decision on {workflow_id}")
                # When the workflow applied the decision (its clock is the server's).
                decided_at[workflow_id] = record.at.timestamp()

        started = time.monotonic()
        await asyncio.gather(*(decide(w) for w in ids))
        decide_seconds = time.monotonic() - started
        log(f"decided {bills} bills in {decide_seconds:.0f}s")
        # Payment initiated = the bank holds the payment; its created_at is the bank's clock.
        async with httpx.AsyncClient(timeout=60) as http:
            rail = SandboxBankRail(run.bank_url, run.bank.api_key, http)
            deadline = time.monotonic() + 3 * 3600
            while True:
                payments = await rail.list_payments()
                paid = {
                    p.metadata.get("workflow_id", ""): p
                    for p in payments
                    if p.metadata.get("workflow_id") in decided_at
                }
                if len(paid) >= bills or time.monotonic() > deadline:
                    break
                log(f"{len(paid)}/{bills} payments initiated")
                await asyncio.sleep(3)
        latencies = [
            payment.created_at.timestamp() - decided_at[workflow_id]
            for workflow_id, payment in paid.items()
        ]
        peak_worker_rss = rss_mib(worker.process.pid)
        return {
            "bills": bills,
            "submit_seconds": submit_seconds,
            "all_waiting_seconds": settle_seconds,
            "worker_rss_mib_waiting": worker_rss,
            "worker_rss_mib_after": peak_worker_rss,
            "decide_seconds": decide_seconds,
            "update_retries": update_retries,
            "payments_initiated": len(paid),
            "p50_seconds": percentile(latencies, 0.50),
            "p99_seconds": percentile(latencies, 0.99),
            "max_seconds": max(latencies, default=float("nan")),
        }
    finally:
        with contextlib.suppress(Exception):
            await run.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.open_bills", description=__doc__)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50, help="submits/decisions at once")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="remit-open-bills-") as tmp:
        figures = asyncio.run(bench(args.bills, args.concurrency, Path(tmp)))
    print_table(
        f"open bills: {args.bills} bills waiting for approval (QuickBooks emulator), worker in "
        f"its own process\nmachine: {machine_line()}",
        ["figure", "value"],
        [
            ["worker RSS with every bill waiting (MiB)", figures["worker_rss_mib_waiting"]],
            ["worker RSS after paying them (MiB)", figures["worker_rss_mib_after"]],
            ["seconds until all were waiting", figures["all_waiting_seconds"]],
            ["seconds to send every decision", figures["decide_seconds"]],
            ["decision updates asked again after an RPC timeout", figures["update_retries"]],
            ["payments initiated", figures["payments_initiated"]],
            ["decision → payment initiated p50 (s)", figures["p50_seconds"]],
            ["decision → payment initiated p99 (s)", figures["p99_seconds"]],
            ["decision → payment initiated max (s)", figures["max_seconds"]],
        ],
    )
    print_json(
        "open_bills", **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    )


if __name__ == "__main__":
    main()
