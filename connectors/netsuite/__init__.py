"""NetSuite (SuiteTalk REST): the connector, its wire mapping and its emulator."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from connectors.base import ConnectionConfig
from connectors.netsuite.client import NetSuiteConnector
from connectors.oauth import OnTokens


@dataclass(frozen=True)
class NetSuitePlatform:
    """How the registry builds NetSuite connectors."""

    name: str = "netsuite"
    # The account-wide limit is shared with every other integration; the smallest tier allows 5
    # (erp-apis.md §4.7). Raise it per connection with settings["max_concurrency"].
    max_concurrency: int = 5

    def connector(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> NetSuiteConnector:
        return NetSuiteConnector(connection, http, on_tokens=on_tokens)


PLATFORM = NetSuitePlatform()

__all__ = ["PLATFORM", "NetSuiteConnector", "NetSuitePlatform"]
