"""A short-lived, per-process cache of a connection's reference data (accounts, tracking).

Every bill's match reads the chart of accounts and the tracking categories to code its lines.
They change rarely, yet re-reading them costs each bill several calls (on NetSuite, whose record
lists carry ids only, a GET per account and per category), which is most of a company's rate
limit when bills arrive in bulk. A caller that finds a name missing from a cached answer calls
`forget_reference_data()` and reads again, so an account created a moment ago is never refused
because of the cache.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from connectors.base import Connector

REFERENCE_DATA_TTL = 60.0
"""Seconds a cached chart of accounts or list of tracking categories is served."""

CACHED_READS = frozenset({"list_accounts", "list_tracking_categories"})


class ReferenceDataCache:
    """`connector` with CACHED_READS answered from memory for `ttl` seconds."""

    def __init__(
        self,
        inner: Connector,
        *,
        ttl: float = REFERENCE_DATA_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._clock = clock
        self._answers: dict[str, tuple[float, list[Any]]] = {}

    def forget_reference_data(self) -> None:
        self._answers.clear()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in CACHED_READS:
            return attribute

        @functools.wraps(attribute)
        async def cached() -> list[Any]:
            kept = self._answers.get(name)
            if kept is not None and self._clock() - kept[0] < self._ttl:
                return list(kept[1])
            answer = list(await attribute())
            self._answers[name] = (self._clock(), answer)
            return list(answer)

        return cached


def forget_reference_data(connector: Connector) -> bool:
    """Drop `connector`'s cached reference data; False when it keeps none (nothing to re-read)."""
    forget = getattr(connector, "forget_reference_data", None)
    if forget is None:
        return False
    forget()
    return True
