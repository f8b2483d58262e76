"""NetSuite (SuiteTalk REST): the connector, its wire mapping and its emulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import ConnectionConfig
from connectors.netsuite.client import NetSuiteConnector
from connectors.netsuite.emulator import NetSuiteEmulator


@dataclass(frozen=True)
class NetSuitePlatform:
    """How the registry builds NetSuite connectors and emulators."""

    name: str = "netsuite"

    def connector(self, connection: ConnectionConfig, http: httpx.AsyncClient) -> NetSuiteConnector:
        return NetSuiteConnector(connection, http)

    def emulator(self, **options: Any) -> NetSuiteEmulator:
        return NetSuiteEmulator(**options)


PLATFORM = NetSuitePlatform()

__all__ = ["PLATFORM", "NetSuiteConnector", "NetSuiteEmulator", "NetSuitePlatform"]
