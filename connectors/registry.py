"""Which platforms exist and how to build their connectors and emulators, by name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import httpx

from connectors.base import ConnectionConfig, Connector
from connectors.mirror import PlatformWebhooks
from connectors.oauth import Credentials, OnTokens, TokenSet

ERP_PLATFORMS = ("quickbooks", "xero", "netsuite")


class Platform(Protocol):
    """What each connectors/<platform>/__init__.py exports as `PLATFORM`."""

    name: str
    max_concurrency: int
    """Calls in flight to one company the platform tolerates (connections may lower or raise it)."""

    def connector(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> Connector:
        """A connector; with `on_tokens` it also renews tokens and reports every new set."""
        ...


@dataclass(frozen=True)
class LinkedCompany:
    """The company (QBO realm, Xero tenant, NetSuite account) a new grant reaches."""

    company_id: str
    company_name: str


class PlatformAuth(Protocol):
    """How a platform's connections are granted and renewed (`AUTH` in <platform>/auth.py).

    `flow` is "authorization_code" (a person consents in a browser; see AuthorizationCodeAuth)
    or "client_credentials" (an administrator maps a key; see ClientCredentialsAuth).
    """

    flow: str
    scope: str

    def token_url(self, base_url: str) -> str: ...

    async def renew(
        self, http: httpx.AsyncClient, base_url: str, credentials: Credentials
    ) -> TokenSet: ...

    async def linked_company(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSet,
        callback: dict[str, str],
        *,
        wanted: str | None = None,
    ) -> LinkedCompany: ...


class AuthorizationCodeAuth(PlatformAuth, Protocol):
    def authorize_url(self, base_url: str) -> str: ...


class ClientCredentialsAuth(PlatformAuth, Protocol):
    """An administrator maps a key pair to the account; tokens are minted from it."""


def platform(name: str) -> Platform:
    if name not in ERP_PLATFORMS:
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(ERP_PLATFORMS)}")
    module = importlib.import_module(f"connectors.{name}")
    return module.PLATFORM  # type: ignore[no-any-return]


def auth(name: str) -> PlatformAuth:
    """How connections to platform `name` are granted and renewed."""
    if name not in ERP_PLATFORMS:
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(ERP_PLATFORMS)}")
    module = importlib.import_module(f"connectors.{name}.auth")
    return module.AUTH  # type: ignore[no-any-return]


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


def webhooks(name: str) -> PlatformWebhooks | None:
    """How platform `name` signs the webhooks it sends, or None where it sends none."""
    if name not in ERP_PLATFORMS:
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(ERP_PLATFORMS)}")
    try:
        module = importlib.import_module(f"connectors.{name}.webhooks")
    except ModuleNotFoundError:
        return None
    return module.WEBHOOKS  # type: ignore[no-any-return]
