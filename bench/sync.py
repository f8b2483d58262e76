"""Sync benchmark: read N bills and their vendors from each ERP emulator through the connectors.

    python -m bench.sync [--bills 100000] [--vendors N] [--page-size 1000] [--platform NAME ...]

Each emulator runs seeded in its own process and is read over real HTTP on loopback by a fresh
reader process, so the reader's peak RSS is the connector's own, not the emulator's data.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

import httpx

from bench._common import machine_line, peak_rss_mib, print_json, print_table
from bench._emulated import EmulatorProcess, ServedEmulator
from connectors.base import RateLimited, Unavailable
from connectors.registry import ERP_PLATFORMS, platform

MAX_RETRIES = 20


async def _with_retries(call: Any) -> Any:
    """What a sync does with a flaky platform: wait Retry-After (or back off) and ask again."""
    for attempt in range(MAX_RETRIES):
        try:
            return await call()
        except RateLimited as exc:
            await asyncio.sleep(exc.retry_after.total_seconds())
        except Unavailable:
            await asyncio.sleep(min(2**attempt * 0.1, 5))
    return await call()


async def _read_all(served: ServedEmulator, page_size: int) -> dict[str, Any]:
    connection = served.connection("bench-sync", page_size=str(page_size))
    async with httpx.AsyncClient(timeout=httpx.Timeout(120)) as http:
        connector = platform(served.platform).connector(connection, http)
        started = time.perf_counter()
        counts: dict[str, int] = {}
        for kind, listing in (("vendors", connector.list_vendors), ("bills", connector.list_bills)):
            cursor: str | None = None
            total = 0
            while True:
                page = await _with_retries(lambda c=cursor, f=listing: f(c))  # type: ignore[misc]
                total += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            counts[kind] = total
        seconds = time.perf_counter() - started
        await connector.aclose()
    return {
        "vendors_read": counts["vendors"],
        "bills_read": counts["bills"],
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


async def _through_workflow(served: ServedEmulator, page_size: int) -> dict[str, Any]:
    """A full sync of the company through SyncWorkflow: a dev server, one worker in this
    process, the mirror in SQLite; what a connection's first sync costs in production."""
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from accounting.payees import fingerprint_key
    from activities.connections import Connectors, fixed_lookup
    from activities.policy import load_directory, load_policy
    from connectors.bank import SandboxBankRail
    from runtime.secrets import SecretBox
    from store import DocumentStore, PayeeStore, Store
    from store.mirror import MirrorStore
    from worker import Dependencies, build_worker
    from workflows.sync import SyncWorkflow
    from workflows.sync_models import SyncInput

    connection = served.connection("bench-sync", page_size=str(page_size))
    with tempfile.TemporaryDirectory(prefix="remit-bench-sync-") as tmp:
        data = Path(tmp)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=shutil.which("temporal")
            or shutil.which("temporal", path=str(Path(sys.executable).parent)),
            data_converter=pydantic_data_converter,
        )
        store = Store.open(f"sqlite:///{data / 'remit.db'}")
        connectors = Connectors(fixed_lookup({connection.id: connection}))
        unused_bank = httpx.AsyncClient()
        rail = SandboxBankRail("http://127.0.0.1:9", "unused", unused_bank)  # never called
        deps = Dependencies(
            connectors=connectors,
            rail=rail,
            store=store,
            documents=DocumentStore(data / "documents"),
            policy=load_policy(),
            directory=load_directory(),
            payees=PayeeStore(
                store, SecretBox(SecretBox.generate_key()), fingerprint_key=fingerprint_key("b")
            ),
        )
        try:
            async with build_worker(env.client, deps, task_queue="bench-sync"):
                started = time.perf_counter()
                outcome = await env.client.execute_workflow(
                    SyncWorkflow.run,
                    SyncInput(connection_id=connection.id, full=True, page_size=page_size),
                    id="sync/bench-sync",
                    task_queue="bench-sync",
                )
                seconds = time.perf_counter() - started
            counts = MirrorStore(store).counts(connection.id)
        finally:
            await connectors.aclose()
            await unused_bank.aclose()
            store.close()
            await env.shutdown()
    return {
        "vendors_read": counts.get("vendors", 0),
        "bills_read": counts.get("bills", 0),
        "objects_mirrored": sum(counts.values()),
        "sync_status": outcome.status,
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def _reader(served: ServedEmulator, page_size: int, through_workflow: bool, results: Any) -> None:
    read = _through_workflow if through_workflow else _read_all
    results.put(asyncio.run(read(served, page_size)))


def run_platform(
    name: str, bills: int, vendors: int, page_size: int, through_workflow: bool = False
) -> dict[str, Any]:
    emulator = EmulatorProcess(name, vendors=vendors, bills=bills)
    seed_started = time.perf_counter()
    served = emulator.start()
    seed_seconds = time.perf_counter() - seed_started
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        reader = context.Process(
            target=_reader, args=(served, page_size, through_workflow, results), daemon=True
        )
        reader.start()
        outcome: dict[str, Any] = results.get(timeout=3600)
        reader.join(30)
    finally:
        emulator.stop()
    objects = outcome["vendors_read"] + outcome["bills_read"]
    return {
        "platform": name,
        **outcome,
        "objects": objects,
        "objects_per_second": objects / outcome["seconds"],
        "seeded_bills": served.bills,
        "seeded_vendors": served.vendors,
        "seed_seconds": seed_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__)
    parser.add_argument("--bills", type=int, default=100_000)
    parser.add_argument(
        "--vendors",
        type=int,
        default=None,
        help="default: bills / 10, at most 200 (the QuickBooks emulator computes each vendor's "
        "balance over every bill, so vendors × bills bounds the emulator's own time)",
    )
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--platform", action="append", choices=ERP_PLATFORMS)
    parser.add_argument(
        "--through-workflow",
        action="store_true",
        help="a full sync through SyncWorkflow into the mirror (dev server, worker, SQLite) "
        "instead of the connector's bare listings; peak RSS is the worker's",
    )
    args = parser.parse_args(argv)
    vendors = args.vendors if args.vendors is not None else max(1, min(200, args.bills // 10))
    rows = []
    for name in args.platform or ERP_PLATFORMS:
        print(
            f"{name}: seeding {args.bills:,} bills and {vendors:,} vendors, then reading…",
            flush=True,
        )
        rows.append(run_platform(name, args.bills, vendors, args.page_size, args.through_workflow))
    how = (
        "a full sync through SyncWorkflow into the mirror (dev server, one worker, SQLite)"
        if args.through_workflow
        else "read every vendor and bill through the connector"
    )
    print_table(
        f"sync: {how} (page size {args.page_size}; "
        f"emulator in its own process, real HTTP on loopback)\nmachine: {machine_line()}",
        ["platform", "vendors", "bills", "seconds", "objects/s", "reader peak RSS MiB"],
        [
            [
                r["platform"],
                r["vendors_read"],
                r["bills_read"],
                r["seconds"],
                r["objects_per_second"],
                r["peak_rss_mib"],
            ]
            for r in rows
        ],
    )
    print_json(
        "sync",
        bills=args.bills,
        vendors=vendors,
        page_size=args.page_size,
        through_workflow=args.through_workflow,
        platforms={
            r["platform"]: {
                "vendors_read": r["vendors_read"],
                "bills_read": r["bills_read"],
                "seconds": round(r["seconds"], 2),
                "objects_per_second": round(r["objects_per_second"], 1),
                "peak_rss_mib": round(r["peak_rss_mib"], 1),
            }
            for r in rows
        },
    )


if __name__ == "__main__":
    main()
