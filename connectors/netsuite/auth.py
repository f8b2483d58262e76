"""How NetSuite connections are granted: OAuth 2.0 client credentials with a signed JWT (M2M)."""

from __future__ import annotations

import httpx

from connectors.base import ConnectionRevoked
from connectors.oauth import (
    Credentials,
    TokenSet,
    client_credentials_grant,
    refresh_grant,
    signed_client_assertion,
)
from connectors.registry import LinkedCompany

PLATFORM_NAME = "netsuite"
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
M2M_SETUP_PATH = "/app/oauth2/m2m/setup.nl"


class NetSuiteAuth:
    """connectors.registry.PlatformAuth for NetSuite M2M: no refresh token, re-mint instead.

    The credentials hold the integration's client id, the certificate id of the M2M mapping
    and the private key; every renewal signs a new assertion (exp < 60 min after iat).
    Connections made by the authorization-code flow (a refresh token, no key) still renew.
    """

    flow = "client_credentials"
    # REST web services and SuiteQL, plus RESTlets: voiding a bill payment runs remit's RESTlet.
    scope = "rest_webservices,restlets"

    def token_url(self, base_url: str) -> str:
        # NetSuite: https://{accountId}.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token
        return f"{base_url.rstrip('/')}{TOKEN_PATH}"

    def setup_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}{M2M_SETUP_PATH}"

    async def renew(
        self, http: httpx.AsyncClient, base_url: str, credentials: Credentials
    ) -> TokenSet:
        token_url = credentials.get("token_url") or self.token_url(base_url)
        if credentials.get("private_key") and credentials.get("certificate_id"):
            assertion = signed_client_assertion(
                client_id=credentials.get("client_id", ""),
                key_id=credentials["certificate_id"],
                private_key_pem=credentials["private_key"],
                audience=token_url,
                scope=credentials.get("scope", self.scope),
            )
            return await client_credentials_grant(
                http, token_url, assertion=assertion, platform=PLATFORM_NAME
            )
        if credentials.get("refresh_token"):
            return await refresh_grant(
                http,
                token_url,
                client_id=credentials.get("client_id", ""),
                client_secret=credentials.get("client_secret", ""),
                refresh_token=credentials["refresh_token"],
                platform=PLATFORM_NAME,
            )
        raise ConnectionRevoked(
            "the NetSuite connection has neither an M2M certificate key nor a refresh token",
            platform=PLATFORM_NAME,
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
        """M2M: the account id is given up front (it is part of the real host name)."""
        account_id = wanted or callback.get("account_id", "")
        if not account_id:
            raise ValueError("a NetSuite connection needs its account id")
        return LinkedCompany(company_id=account_id, company_name=f"NetSuite account {account_id}")


AUTH = NetSuiteAuth()
