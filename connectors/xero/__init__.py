"""Xero: connector (client.py), native JSON mapping (wire.py) and emulator (emulator.py)."""

from __future__ import annotations

import httpx

from connectors.base import ConnectionConfig
from connectors.oauth import OnTokens
from connectors.xero.client import XeroConnector


class XeroPlatform:
    """What the registry needs to build Xero connectors by name."""

    name = "xero"
    # 5 concurrent calls per tenant (erp-apis.md §3.13)
    max_concurrency = 5

    def connector(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> XeroConnector:
        return XeroConnector(connection, http, on_tokens=on_tokens)


PLATFORM = XeroPlatform()

__all__ = ["PLATFORM", "XeroConnector", "XeroPlatform"]
