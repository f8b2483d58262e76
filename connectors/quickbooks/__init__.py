"""QuickBooks Online: connector and wire mapping, registered as `PLATFORM`."""

from __future__ import annotations

import httpx

from connectors.base import ConnectionConfig
from connectors.oauth import OnTokens
from connectors.quickbooks.client import QuickBooksConnector


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


PLATFORM = QuickBooksPlatform()

__all__ = ["PLATFORM", "QuickBooksConnector", "QuickBooksPlatform"]
