"""How Xero connections are granted: OAuth 2.0 authorization code, tenant from GET /connections."""

from __future__ import annotations

import httpx

from connectors.base import ConnectionRevoked, Unavailable
from connectors.oauth import Credentials, TokenSet, refresh_stored_grant
from connectors.registry import LinkedCompany

PLATFORM_NAME = "xero"


class XeroAuth:
    """connectors.registry.PlatformAuth for Xero (the refresh token rotates on every refresh)."""

    flow = "authorization_code"
    scope = (
        "offline_access accounting.transactions accounting.contacts accounting.settings "
        "accounting.attachments"
    )

    def authorize_url(self, base_url: str) -> str:
        # Xero: https://login.xero.com/identity/connect/authorize
        return f"{base_url.rstrip('/')}/identity/connect/authorize"

    def token_url(self, base_url: str) -> str:
        # Xero: https://identity.xero.com/connect/token
        return f"{base_url.rstrip('/')}/connect/token"

    def connections_url(self, base_url: str) -> str:
        # Xero: https://api.xero.com/connections
        return f"{base_url.rstrip('/')}/connections"

    async def renew(
        self, http: httpx.AsyncClient, base_url: str, credentials: Credentials
    ) -> TokenSet:
        return await refresh_stored_grant(
            http, self.token_url(base_url), credentials, platform=PLATFORM_NAME
        )

    async def linked_company(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSet,
        callback: dict[str, str],
        *,
        wanted: str | None = None,
    ) -> LinkedCompany:
        """The tenant the grant connects: `wanted` if listed, else the most recently connected."""
        try:
            response = await http.get(
                self.connections_url(base_url),
                headers={
                    "Authorization": f"Bearer {tokens.access_token.get_secret_value()}",
                    "Accept": "application/json",
                },
            )
        except httpx.TransportError as exc:
            raise Unavailable(f"Xero /connections unreachable: {exc!r}", platform="xero") from exc
        if response.status_code != 200:
            raise Unavailable(
                f"Xero /connections answered {response.status_code}",
                platform=PLATFORM_NAME,
                status=response.status_code,
            )
        tenants = [c for c in response.json() if c.get("tenantType") == "ORGANISATION"]
        if wanted is not None:
            tenants = [c for c in tenants if c.get("tenantId") == wanted]
        if not tenants:
            raise ConnectionRevoked(
                "the Xero grant connects no organisation"
                + (f" with tenant id {wanted}" if wanted else ""),
                platform=PLATFORM_NAME,
            )
        newest = max(tenants, key=lambda c: str(c.get("createdDateUtc", "")))
        return LinkedCompany(
            company_id=str(newest["tenantId"]),
            company_name=str(newest.get("tenantName") or newest["tenantId"]),
        )


AUTH = XeroAuth()
