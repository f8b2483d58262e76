"""Xero: connector (client.py), native JSON mapping (wire.py) and emulator (emulator.py)."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.base import ConnectionConfig
from connectors.oauth import OnTokens
from connectors.xero.client import XeroConnector
from connectors.xero.emulator import XeroEmulator


class XeroPlatform:
    """What the registry needs to build Xero connectors and emulators by name."""

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

    def emulator(self, **options: Any) -> XeroEmulator:
        return XeroEmulator(**options)


PLATFORM = XeroPlatform()

__all__ = ["PLATFORM", "XeroConnector", "XeroEmulator", "XeroPlatform"]
