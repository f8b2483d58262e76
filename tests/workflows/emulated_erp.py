"""A connector over real HTTP (ASGI) to a fresh ERP emulator with its seeded demo company."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx

from connectors.base import ConnectionConfig, Connector
from connectors.registry import platform
from sandbox.registry import new_emulator


class OneConnector:
    """The ConnectorProvider of a single connection."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def connector(self, connection_id: str) -> Connector:
        assert connection_id == self._connector.connection.id, connection_id
        return self._connector

    async def aclose(self) -> None:
        return None


@asynccontextmanager
async def emulated_erp(name: str) -> AsyncIterator[Connector]:
    emulator = new_emulator(name)
    company = emulator.seed_demo_company()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, emulator.app)))
    connector = platform(name).connector(
        ConnectionConfig(
            id=f"conn-{name}-{company.company_id}",
            platform=name,
            base_url=f"http://{name}.emulator",
            company_id=company.company_id,
            credentials=dict(company.credentials),
            settings=dict(company.settings),
        ),
        http,
    )
    try:
        yield connector
    finally:
        await connector.aclose()
        await http.aclose()
