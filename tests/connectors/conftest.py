"""Fixtures for connector tests: an emulator, a seeded demo company and a connector over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import httpx
import pytest
import uvicorn

from accounting import Bill, BillLine, Page, TrackingKind, TrackingRef, Vendor
from connectors.base import ConnectionConfig, Connector
from connectors.registry import ERP_PLATFORMS, Platform, available_platforms, platform
from sandbox.faults import ASGIApp
from sandbox.registry import DemoCompany, Emulator, new_emulator


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Harness:
    """One platform's emulator, its seeded demo company and a connector to it."""

    name: str
    platform: Platform
    emulator: Emulator
    company: DemoCompany
    connector: Connector
    http: httpx.AsyncClient
    extra: list[Connector] = field(default_factory=list)

    def connection(
        self,
        *,
        settings: dict[str, str] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> ConnectionConfig:
        return ConnectionConfig(
            id=f"conn-{self.name}-{self.company.company_id}",
            platform=self.name,
            base_url=f"http://{self.name}.emulator",
            company_id=self.company.company_id,
            credentials=dict(self.company.credentials if credentials is None else credentials),
            settings={**self.company.settings, **(settings or {})},
        )

    def connect(
        self,
        *,
        settings: dict[str, str] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> Connector:
        """Another connector to the same company, e.g. with a small page size or bad tokens."""
        connector = self.platform.connector(
            self.connection(settings=settings, credentials=credentials), self.http
        )
        self.extra.append(connector)
        return connector

    # demo-company lookups through the connector's own reads (never emulator internals)

    async def account_id(self, name: str) -> str:
        for account in await self.connector.list_accounts():
            if account.name == name:
                return account.id
        raise AssertionError(f"the demo company has no account named {name!r}")

    async def vendor(self, name: str) -> Vendor:
        for vendor in await all_pages(self.connector.list_vendors):
            if vendor.name == name:
                return vendor
        raise AssertionError(f"the demo company has no vendor named {name!r}")

    async def tracking(self) -> list[TrackingRef]:
        """One value of every tracking dimension the platform has, to put on bill lines."""
        picked: dict[TrackingKind, TrackingRef] = {}
        for category in await self.connector.list_tracking_categories():
            if category.active and category.kind not in picked:
                picked[category.kind] = TrackingRef(kind=category.kind, id=category.id)
        return list(picked.values())

    async def new_bill(
        self,
        *,
        vendor_name: str = "Northwind Office Supply",
        amounts: tuple[str, ...] = ("425.00", "475.00"),
        account: str = "Office Supplies",
        with_tracking: bool = True,
    ) -> Bill:
        vendor = await self.vendor(vendor_name)
        assert vendor.id is not None
        account_id = await self.account_id(account)
        tracking = await self.tracking() if with_tracking else []
        lines = [
            BillLine(
                description=f"line {n}",
                amount=Decimal(amount),
                account_id=account_id,
                tracking=tracking,
            )
            for n, amount in enumerate(amounts, start=1)
        ]
        today = date.today()
        return Bill(
            vendor_id=vendor.id,
            document_number=unique("INV")[:20],
            issue_date=today,
            due_date=today + timedelta(days=30),
            currency=self.company.settings.get("home_currency", "USD"),
            lines=lines,
            total=sum((Decimal(a) for a in amounts), Decimal("0")),
            memo="conformance test bill",
        )


T = TypeVar("T")


def asgi_transport(app: ASGIApp) -> httpx.ASGITransport:
    """httpx over an emulator in-process (emulation.ASGIApp types scopes as dict, httpx as
    MutableMapping: the same thing at runtime, hence the cast)."""
    return httpx.ASGITransport(app=cast(Any, app))


async def all_pages(list_page: Callable[[str | None], Awaitable[Page[T]]]) -> list[T]:
    """Every item of a paged listing, following next_cursor to the end."""
    items: list[T] = []
    cursor: str | None = None
    while True:
        page = await list_page(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def platform_names() -> list[str]:
    """available_platforms(), except that a platform package that fails to import still
    appears (its tests then fail with the import error) instead of hiding every result."""
    try:
        return available_platforms()
    except Exception:
        names = []
        for name in ERP_PLATFORMS:
            try:
                platform(name)
            except ModuleNotFoundError as exc:
                if exc.name != f"connectors.{name}":
                    names.append(name)
            except Exception:
                names.append(name)
            else:
                names.append(name)
        return names


@pytest.fixture(params=platform_names())
def platform_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def harness(platform_name: str) -> AsyncIterator[Harness]:
    erp = platform(platform_name)
    emulator = new_emulator(platform_name)
    company = emulator.seed_demo_company()
    http = httpx.AsyncClient(transport=asgi_transport(emulator.app), timeout=10)
    connection = ConnectionConfig(
        id=f"conn-{platform_name}-{company.company_id}",
        platform=platform_name,
        base_url=f"http://{platform_name}.emulator",
        company_id=company.company_id,
        credentials=dict(company.credentials),
        settings=dict(company.settings),
    )
    connector = erp.connector(connection, http)
    h = Harness(platform_name, erp, emulator, company, connector, http)
    try:
        yield h
    finally:
        for extra in h.extra:
            await extra.aclose()
        await connector.aclose()
        await http.aclose()


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl-C to pytest


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app (an emulator, a receiver) on a free loopback port: its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn runs: a connection made now waits in the backlog, not refused.
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
