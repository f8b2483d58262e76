"""Per-connection limits inside one process: a concurrency cap and a shared Retry-After pause.

A platform's limits are per company (QBO realm, Xero tenant, NetSuite account), not per bill:
ten bills of one company paying at once must not open ten calls when Xero allows five, and
after one 429 the other bills of that company wait out the platform's delay instead of each
collecting its own 429. Limits across processes are the ERP task queue's job (see
`workflows.models.erp_task_queue`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from connectors.base import Connector, RateLimited
from connectors.retries import MAX_INLINE_WAIT

DEFAULT_MAX_CONCURRENCY = 5
"""Calls in flight to one company when neither the platform nor the connection says more."""

FIRST_SHARED_PAUSE = timedelta(seconds=1)
MAX_SHARED_PAUSE = timedelta(seconds=10)
"""How long other callers hold back after a 429. The caller that was told waits the platform's
whole delay (Temporal's next_retry_delay); the others hold back FIRST_SHARED_PAUSE after one
429, twice that after each further 429 with no success in between, never more than this (nor
more than the platform asked). A company really over its limit keeps answering 429, so the
pause reaches the cap within a few calls; a stray 429 (QuickBooks answers one whenever more
than ten calls overlap, and sends no Retry-After, so its "60 s" is our guess) costs the
connection one second instead of stalling it.

A caller that finds the connection paused for MAX_INLINE_WAIT or less waits here and then
calls; a longer pause fails the attempt at once with the remaining wait as its Retry-After.
Failing on every short pause spent a Temporal attempt each time, and a bill whose attempt
count had climbed that way backed off five minutes (the retry policy's cap) on its next 5xx:
the one QuickBooks payment left over in each full-rate chaos run had spent attempts 8-12 so."""


class ConnectionGovernor:
    """The gates and pauses of every connection this process talks to."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self.sleep = sleep
        self._gates: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._paused_until: dict[str, float] = {}
        self._throttle_streak: dict[str, int] = {}

    def gate(self, connection_id: str, limit: int) -> asyncio.Semaphore:
        current = self._gates.get(connection_id)
        if current is None or current[0] != limit:
            # A changed limit takes effect for new calls; calls in flight finish on the old gate.
            current = (limit, asyncio.Semaphore(limit))
            self._gates[connection_id] = current
        return current[1]

    def pause(self, connection_id: str, delay: timedelta) -> None:
        """Nobody calls this connection for `delay` (at most MAX_SHARED_PAUSE)."""
        until = self._clock() + min(delay, MAX_SHARED_PAUSE).total_seconds()
        self._paused_until[connection_id] = max(until, self._paused_until.get(connection_id, 0))

    def throttled(self, connection_id: str, retry_after: timedelta) -> None:
        """The platform answered 429: hold the others back, longer the more it repeats."""
        streak = self._throttle_streak.get(connection_id, 0) + 1
        self._throttle_streak[connection_id] = streak
        escalated = FIRST_SHARED_PAUSE * 2 ** min(streak - 1, 16)
        self.pause(connection_id, min(retry_after, escalated))

    def succeeded(self, connection_id: str) -> None:
        """A call went through: the next 429 starts the escalation again."""
        self._throttle_streak.pop(connection_id, None)

    def paused_for(self, connection_id: str) -> timedelta:
        remaining = self._paused_until.get(connection_id, 0) - self._clock()
        return timedelta(seconds=remaining) if remaining > 0 else timedelta(0)

    def govern(self, connector: Connector, connection_id: str, limit: int) -> Connector:
        """`connector` with every call through this connection's gate and pause."""
        return _Governed(connector, self, connection_id, limit)  # type: ignore[return-value]


class _Governed:
    """Wraps a connector's coroutine methods; everything else passes straight through."""

    def __init__(
        self, inner: Connector, governor: ConnectionGovernor, connection_id: str, limit: int
    ) -> None:
        self._inner = inner
        self._governor = governor
        self._connection_id = connection_id
        self._gate = governor.gate(connection_id, limit)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        async def governed(*args: Any, **kwargs: Any) -> Any:
            waiting = self._governor.paused_for(self._connection_id)
            if waiting and waiting <= MAX_INLINE_WAIT:
                await self._governor.sleep(waiting.total_seconds())
            elif waiting:
                # Fail fast with the remaining wait; Temporal retries the activity after it.
                raise RateLimited(
                    f"connection {self._connection_id} is paused for {waiting.total_seconds():.0f}s"
                    " after the platform asked us to slow down",
                    retry_after=waiting,
                    platform=getattr(self._inner, "platform", ""),
                )
            async with self._gate:
                try:
                    result = await attribute(*args, **kwargs)
                except RateLimited as err:
                    if err.retry_after:
                        self._governor.throttled(self._connection_id, err.retry_after)
                    raise
                self._governor.succeeded(self._connection_id)
                return result

        return governed
