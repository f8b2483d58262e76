"""Where activities get a Connector for a connection id and the PaymentRail to pay with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import httpx

from connectors.base import ConnectionConfig, Connector, NotFound
from connectors.registry import platform

TransportFor = Callable[[ConnectionConfig], httpx.AsyncBaseTransport | None]


class ConnectorProvider(Protocol):
    async def connector(self, connection_id: str) -> Connector: ...
    async def aclose(self) -> None: ...


class ConnectionLookup(Protocol):
    def __call__(self, connection_id: str) -> ConnectionConfig: ...


class Connectors:
    """Builds one connector per connection, each with its own pooled httpx client.

    `lookup` finds a connection's config (from the store, or a fixed dict in tests);
    `transport_for` lets tests route a platform to its in-process emulator.
    """

    def __init__(
        self,
        lookup: ConnectionLookup,
        *,
        transport_for: TransportFor | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._lookup = lookup
        self._transport_for = transport_for
        self._timeout = timeout
        self._cache: dict[str, tuple[ConnectionConfig, Connector, httpx.AsyncClient]] = {}

    async def connector(self, connection_id: str) -> Connector:
        config = self._lookup(connection_id)
        cached = self._cache.get(connection_id)
        if cached and cached[0] == config:
            return cached[1]
        if cached:
            # Credentials or settings changed (refresh, relink): rebuild with the new config.
            await cached[2].aclose()
        transport = self._transport_for(config) if self._transport_for else None
        http = httpx.AsyncClient(transport=transport, timeout=self._timeout)
        connector = platform(config.platform).connector(config, http)
        self._cache[connection_id] = (config, connector, http)
        return connector

    async def aclose(self) -> None:
        for _, _, http in self._cache.values():
            await http.aclose()
        self._cache.clear()


def fixed_lookup(configs: dict[str, ConnectionConfig]) -> ConnectionLookup:
    def lookup(connection_id: str) -> ConnectionConfig:
        try:
            return configs[connection_id]
        except KeyError:
            raise NotFound(f"unknown connection {connection_id!r}") from None

    return lookup
