"""Bounded retries of reads inside one activity attempt: a few quick tries, then Temporal's turn.

Temporal retries a failed activity as a whole, with exponential backoff. An activity that makes
six reads against an ERP answering 30 % of requests with a 5xx or a 429 fails most attempts, so
it climbs that backoff to minutes for faults that last one request. A read is safe to send
again, so it gets a few tries here, at once or after the platform's (short) Retry-After. The
budget is small and fixed: a longer wait, or the last failure, goes to Temporal unchanged, where
the wait is durable and visible. Writes are never retried here: a write whose answer was lost
needs the look-up the activities do, not a blind resend.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from connectors.base import RateLimited, Unavailable

T = TypeVar("T")

READ_ATTEMPTS = 3
"""Tries of one read in one activity attempt (the setting `read_attempts` overrides it)."""

MAX_INLINE_WAIT = timedelta(seconds=2)
"""The longest Retry-After waited out here; longer ones go to Temporal's next_retry_delay."""

FIRST_BACKOFF = 0.05
"""Seconds before the second try after a 5xx; doubled (with jitter) for each further one."""


def read_attempts(settings: dict[str, str]) -> int:
    """The connection's `read_attempts` setting, at least 1 (1 turns inline retries off)."""
    return max(1, int(settings.get("read_attempts", READ_ATTEMPTS)))


async def retrying_read(
    read: Callable[[], Awaitable[T]],
    *,
    attempts: int = READ_ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`read()`, tried up to `attempts` times while it fails with Unavailable or a short 429."""
    backoff = FIRST_BACKOFF
    for attempt in range(1, attempts + 1):
        try:
            return await read()
        except RateLimited as err:
            if attempt == attempts or err.retry_after > MAX_INLINE_WAIT:
                raise
            await sleep(err.retry_after.total_seconds())
        except Unavailable:
            if attempt == attempts:
                raise
            await sleep(backoff * (0.5 + random.random()))
            backoff *= 2
    raise AssertionError("unreachable: the loop returns or raises")
