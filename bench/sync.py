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


def _reader(served: ServedEmulator, page_size: int, results: Any) -> None:
    results.put(asyncio.run(_read_all(served, page_size)))


def run_platform(name: str, bills: int, vendors: int, page_size: int) -> dict[str, Any]:
    emulator = EmulatorProcess(name, vendors=vendors, bills=bills)
    seed_started = time.perf_counter()
    served = emulator.start()
    seed_seconds = time.perf_counter() - seed_started
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        reader = context.Process(target=_reader, args=(served, page_size, results), daemon=True)
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
    args = parser.parse_args(argv)
    vendors = args.vendors if args.vendors is not None else max(1, min(200, args.bills // 10))
    rows = []
    for name in args.platform or ERP_PLATFORMS:
        print(
            f"{name}: seeding {args.bills:,} bills and {vendors:,} vendors, then reading…",
            flush=True,
        )
        rows.append(run_platform(name, args.bills, vendors, args.page_size))
    print_table(
        f"sync: read every vendor and bill through the connector (page size {args.page_size}; "
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
