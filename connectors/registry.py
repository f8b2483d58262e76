"""Which platforms exist and how to build their connectors and emulators, by name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from connectors.base import ConnectionConfig, Connector
from connectors.emulation import ASGIApp, Faults

ERP_PLATFORMS = ("quickbooks", "xero", "netsuite")


@dataclass
class DemoCompany:
    """What an emulator's seeded demo company is, as a connection sees it."""

    company_id: str
    company_name: str
    credentials: dict[str, str]
    settings: dict[str, str]
    inspector_token: str


class Emulator(Protocol):
    """An ERP emulator: an ASGI app with fault switches and a way to seed a demo company."""

    app: ASGIApp
    faults: Faults
    # "vendor" / "bill" / "bill_payment" → a fragment of that write's request line.
    write_matches: dict[str, str]

    def seed_demo_company(self, company_id: str | None = None) -> DemoCompany: ...


class Platform(Protocol):
    """What each connectors/<platform>/__init__.py exports as `PLATFORM`."""

    name: str

    def connector(self, connection: ConnectionConfig, http: httpx.AsyncClient) -> Connector: ...
    def emulator(self, **options: Any) -> Emulator: ...


def platform(name: str) -> Platform:
    if name not in ERP_PLATFORMS:
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(ERP_PLATFORMS)}")
    module = importlib.import_module(f"connectors.{name}")
    return module.PLATFORM  # type: ignore[no-any-return]


def available_platforms() -> list[str]:
    """The platforms whose package is present (all three once every connector lands)."""
    found = []
    for name in ERP_PLATFORMS:
        try:
            module = importlib.import_module(f"connectors.{name}")
        except ModuleNotFoundError:
            continue
        if hasattr(module, "PLATFORM"):
            found.append(name)
    return found
