"""Dynamics 365 Business Central: connector (client.py), wire mapping (wire.py), auth (auth.py)."""

from __future__ import annotations

import httpx

from connectors.base import ConnectionConfig
from connectors.business_central.client import BusinessCentralConnector
from connectors.oauth import OnTokens


class BusinessCentralPlatform:
    """What the registry needs to build Business Central connectors by name."""

    name = "business_central"
    # BC processes 5 requests of one user at once and queues the rest (operational limits).
    max_concurrency = 5

    def connector(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> BusinessCentralConnector:
        return BusinessCentralConnector(connection, http, on_tokens=on_tokens)


PLATFORM = BusinessCentralPlatform()

__all__ = ["PLATFORM", "BusinessCentralConnector", "BusinessCentralPlatform"]
