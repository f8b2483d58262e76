"""The emulators by platform name, their demo companies, and the setup a person does by hand
on a real platform (registering an OAuth app, mapping an M2M key pair), done on an emulator."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from connectors.base import Rejected
from connectors.netsuite.auth import AUTH as NETSUITE_AUTH
from connectors.oauth import Credentials, new_private_key_pem
from connectors.registry import ERP_PLATFORMS, auth
from sandbox.consent import read_consent_page
from sandbox.faults import ASGIApp, Faults
from starter.connections import ConnectionService

_EMULATORS = {
    "quickbooks": "sandbox.quickbooks:QuickBooksEmulator",
    "xero": "sandbox.xero:XeroEmulator",
    "netsuite": "sandbox.netsuite:NetSuiteEmulator",
}


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
    # Kept across restarts when built with `state_file=` (sandbox/persist.py): whether earlier
    # records were read back, and the demo company seeded into them.
    restored: bool
    demo_company: DemoCompany | None

    def seed_demo_company(self, company_id: str | None = None) -> DemoCompany: ...

    def save_state(self) -> None: ...


def new_emulator(name: str, **options: Any) -> Emulator:
    """A fresh emulator of platform `name` (options such as `faults=` go to its constructor)."""
    if name not in ERP_PLATFORMS:
        raise KeyError(f"unknown platform {name!r}; known: {', '.join(ERP_PLATFORMS)}")
    module, _, cls = _EMULATORS[name].partition(":")
    built: Emulator = getattr(importlib.import_module(module), cls)(**options)
    return built


class LinkRefused(Exception):
    """The emulator refused the setup (answered with its reason)."""


async def provision_emulator_client(
    http: httpx.AsyncClient,
    platform: str,
    *,
    base_url: str,
    inspector_token: str | None = None,
    redirect_uri: str | None = None,
    company_id: str | None = None,
) -> Credentials:
    """On an emulator, do the developer's or administrator's setup a real platform needs done
    by hand: register an OAuth app (client id and secret), or map a new M2M key pair."""
    if auth(platform).flow == "client_credentials":
        return await map_key_pair(http, base_url, company_id=company_id)
    response = await http.post(
        f"{base_url.rstrip('/')}/_emulator/apps",
        json={"redirect_uris": [redirect_uri] if redirect_uri else []},
        headers={"Authorization": f"Bearer {inspector_token or ''}"},
    )
    if response.status_code != 201:
        raise LinkRefused(
            f"the emulator refused to register an app ({response.status_code}): "
            f"{response.text[:300]}"
        )
    app = response.json()
    return {"client_id": str(app["client_id"]), "client_secret": str(app["client_secret"])}


async def map_key_pair(
    http: httpx.AsyncClient, base_url: str, *, company_id: str | None = None
) -> Credentials:
    """What a NetSuite administrator does on the M2M setup page, for an emulator: a new key
    pair, its public half mapped to an account. Returns the credentials to mint tokens with."""
    page = await read_consent_page(http, NETSUITE_AUTH.setup_url(base_url))
    if company_id is not None and company_id not in page.choices:
        raise Rejected(f"the setup page offers no account {company_id!r}: {page.choices}")
    account_id = company_id or (page.choices[0] if page.choices else "")
    private_pem, public_pem = new_private_key_pem()
    response = await http.post(
        page.action,
        data={"company": account_id, "certificate": public_pem},
        headers={"Accept": "application/json"},
    )
    if response.status_code != 201:
        raise Rejected(f"the M2M setup page answered {response.status_code}: {response.text}")
    mapping = response.json()
    return {
        "account_id": str(mapping["account_id"]),
        "client_id": str(mapping["client_id"]),
        "certificate_id": str(mapping["certificate_id"]),
        "private_key": private_pem,
        "scope": NETSUITE_AUTH.scope,
    }


async def provision_with(
    service: ConnectionService,
    platform: str,
    *,
    base_url: str,
    inspector_token: str | None = None,
    redirect_uri: str | None = None,
    company_id: str | None = None,
) -> Credentials:
    """`provision_emulator_client` over the connection service's own HTTP (and transports)."""
    async with service.http(base_url) as http:
        return await provision_emulator_client(
            http,
            platform,
            base_url=base_url,
            inspector_token=inspector_token,
            redirect_uri=redirect_uri,
            company_id=company_id,
        )
