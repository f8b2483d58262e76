"""How Business Central connections are granted: OAuth 2.0 client credentials against Entra ID."""

from __future__ import annotations

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from connectors.base import ConnectionRevoked
from connectors.oauth import Credentials, TokenSet, token_request
from connectors.registry import LinkedCompany

PLATFORM_NAME = "business_central"
SCOPE = "https://api.businesscentral.dynamics.com/.default"
# Entra ID's host; an emulator answers the same path on its own host (the `authority`
# credential, else the connection's base URL).
ENTRA_AUTHORITY = "https://login.microsoftonline.com"


class BusinessCentralAuth:
    """connectors.registry.PlatformAuth for Business Central (service-to-service).

    An Entra app with the `API.ReadWrite.All` application permission, consented by the
    tenant's admin and registered in Business Central, gets tokens for
    `https://api.businesscentral.dynamics.com/.default` with its client id and secret. There is
    no refresh token: a renewal asks for a new token, so nothing rotates and nothing is lost
    when a new token set is not stored.
    """

    flow = "client_credentials"
    scope = SCOPE

    def token_url(self, base_url: str, tenant_id: str = "organizations") -> str:
        # Entra ID: https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token
        return f"{base_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"

    async def renew(
        self, http: httpx.AsyncClient, base_url: str, credentials: Credentials
    ) -> TokenSet:
        tenant_id = credentials.get("tenant_id", "")
        client_id = credentials.get("client_id", "")
        secret = credentials.get("client_secret", "")
        if not (tenant_id and client_id and secret):
            raise ConnectionRevoked(
                "the Business Central connection needs tenant_id, client_id and client_secret "
                "(an Entra app registration with API.ReadWrite.All)",
                platform=PLATFORM_NAME,
            )
        url = credentials.get("token_url") or self.token_url(
            credentials.get("authority") or base_url, tenant_id
        )
        body = prepare_token_request(
            "client_credentials", scope=SCOPE, client_id=client_id, client_secret=secret
        )
        payload = await token_request(http, url, body, platform=PLATFORM_NAME)
        return TokenSet.from_response(payload)

    async def linked_company(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSet,
        callback: dict[str, str],
        *,
        wanted: str | None = None,
    ) -> LinkedCompany:
        """Client credentials: the company id is given up front (one environment has several)."""
        company_id = wanted or callback.get("company_id", "")
        if not company_id:
            raise ValueError("a Business Central connection needs its company id")
        return LinkedCompany(
            company_id=company_id, company_name=f"Business Central company {company_id}"
        )


AUTH = BusinessCentralAuth()
