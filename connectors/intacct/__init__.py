"""Sage Intacct: connector (client.py), XML Web Services wire (wire.py) and sign-in (auth.py)."""

from __future__ import annotations

import httpx

from connectors.base import ConnectionConfig
from connectors.intacct.client import IntacctConnector
from connectors.oauth import OnTokens


class IntacctPlatform:
    """What the registry needs to build Intacct connectors by name."""

    name = "intacct"
    # About two concurrent requests per company at the base performance tier
    # (research/intacct-bc.md §1.6, community figure).
    max_concurrency = 2

    def connector(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> IntacctConnector:
        return IntacctConnector(connection, http, on_tokens=on_tokens)


PLATFORM = IntacctPlatform()

__all__ = ["PLATFORM", "IntacctConnector", "IntacctPlatform"]
