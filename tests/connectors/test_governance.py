"""Per-connection governance over each emulator: the concurrency cap and the shared 429 pause."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from connectors.base import RateLimited
from connectors.governance import FIRST_SHARED_PAUSE, MAX_SHARED_PAUSE, ConnectionGovernor
from connectors.retries import MAX_INLINE_WAIT
from tests.connectors.conftest import Harness, asgi_transport


class InFlight:
    """ASGI middleware counting the requests an emulator is serving at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.peak = 0
        self.total = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def counted(harness: Harness) -> Any:
    meter = InFlight(harness.emulator.app)
    async with httpx.AsyncClient(transport=asgi_transport(meter)) as http:
        # One try per read, so a scripted 429 reaches the governor (connectors.retries).
        connection = harness.connection(settings={"read_attempts": "1"})
        yield meter, harness.platform.connector(connection, http)


async def test_no_more_calls_in_flight_than_the_cap(harness: Harness, counted: Any) -> None:
    meter, connector = counted
    harness.emulator.faults.latency_seconds = 0.02  # keeps calls overlapping
    governed = ConnectionGovernor().govern(connector, "conn-1", limit=2)

    results = await asyncio.gather(*(governed.list_accounts() for _ in range(8)))

    assert all(accounts for accounts in results)
    assert meter.peak == 2
    assert meter.total >= 8


async def test_a_429_pauses_the_connection_for_every_caller(harness: Harness, counted: Any) -> None:
    meter, connector = counted
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    governor = ConnectionGovernor(clock=clock, sleep=sleep)
    governed = governor.govern(connector, "conn-1", limit=5)
    other_bill = governor.govern(connector, "conn-1", limit=5)
    harness.emulator.faults.script("429")

    with pytest.raises(RateLimited) as first:
        await governed.list_accounts()
    served = meter.total
    assert first.value.retry_after > timedelta(0)

    # Another bill of the same company waits out the short pause a first 429 costs, then calls:
    # failing would spend one of its Temporal attempts on our own pacing.
    assert await other_bill.list_accounts()
    shared = min(first.value.retry_after, FIRST_SHARED_PAUSE)
    assert len(slept) == 1 and 0 < slept[0] <= shared.total_seconds()
    assert meter.total > served

    # A pause longer than MAX_INLINE_WAIT fails at once, without a call, with what is left.
    governor.pause("conn-1", MAX_INLINE_WAIT * 2)
    served = meter.total
    with pytest.raises(RateLimited) as held:
        await other_bill.list_accounts()
    assert meter.total == served and len(slept) == 1
    assert MAX_INLINE_WAIT < held.value.retry_after <= MAX_INLINE_WAIT * 2


async def test_other_connections_are_not_paused(harness: Harness, counted: Any) -> None:
    _, connector = counted
    governor = ConnectionGovernor(clock=Clock())
    governor.pause("conn-1", timedelta(minutes=1))
    assert await governor.govern(connector, "conn-2", limit=1).list_accounts()


def test_repeated_429s_lengthen_the_shared_pause_up_to_the_cap() -> None:
    clock = Clock()
    governor = ConnectionGovernor(clock=clock)
    platform_wait = timedelta(seconds=60)  # QuickBooks' documented wait, larger than the cap

    pauses = []
    for _ in range(6):
        governor.throttled("conn-1", platform_wait)
        pauses.append(governor.paused_for("conn-1"))
        clock.now += pauses[-1].total_seconds()

    assert pauses == [FIRST_SHARED_PAUSE * n for n in (1, 2, 4, 8)] + [MAX_SHARED_PAUSE] * 2


def test_a_success_resets_the_escalation_and_a_short_retry_after_bounds_it() -> None:
    clock = Clock()
    governor = ConnectionGovernor(clock=clock)
    for _ in range(3):
        governor.throttled("conn-1", timedelta(seconds=60))
    clock.now += 60
    governor.succeeded("conn-1")

    governor.throttled("conn-1", timedelta(seconds=60))
    assert governor.paused_for("conn-1") == FIRST_SHARED_PAUSE
    clock.now += 60
    governor.throttled("conn-1", timedelta(milliseconds=300))  # the platform asked for less
    assert governor.paused_for("conn-1") == timedelta(milliseconds=300)
