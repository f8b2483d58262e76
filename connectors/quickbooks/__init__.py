"""QuickBooks Online: connector, wire mapping and emulator, registered as `PLATFORM`."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import ConnectionConfig
from connectors.emulation import Faults
from connectors.oauth import OnTokens
from connectors.quickbooks.client import QuickBooksConnector
from connectors.quickbooks.emulator import QuickBooksEmulator


class QuickBooksPlatform:
    """connectors.registry.Platform for QuickBooks Online."""

    name = "quickbooks"
    # "more than 10 concurrent requests to one realm → 429" (erp-apis.md §2.14)
    max_concurrency = 10

    def connector(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> QuickBooksConnector:
        return QuickBooksConnector(connection, http, on_tokens=on_tokens)

    def emulator(self, **options: Any) -> QuickBooksEmulator:
        faults: Faults | None = options.pop("faults", None)
        return QuickBooksEmulator(faults, **options)


PLATFORM = QuickBooksPlatform()

__all__ = ["PLATFORM", "QuickBooksConnector", "QuickBooksEmulator", "QuickBooksPlatform"]
