"""How QuickBooks Online connections are granted: OAuth 2.0 authorization code, then realmId."""

from __future__ import annotations

import httpx

from connectors.oauth import Credentials, TokenSet, refresh_stored_grant
from connectors.registry import LinkedCompany

PLATFORM_NAME = "quickbooks"


class QuickBooksAuth:
    """connectors.registry.PlatformAuth for QBO (refresh tokens may rotate; keep the latest)."""

    flow = "authorization_code"
    scope = "com.intuit.quickbooks.accounting"

    def authorize_url(self, base_url: str) -> str:
        # Intuit: https://appcenter.intuit.com/connect/oauth2 (the emulator serves the same path).
        return f"{base_url.rstrip('/')}/connect/oauth2"

    def token_url(self, base_url: str) -> str:
        # Intuit: https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer
        return f"{base_url.rstrip('/')}/oauth2/v1/tokens/bearer"

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
        """QBO names the company the person chose in the redirect: `realmId`."""
        realm_id = callback.get("realmId", "")
        if not realm_id:
            raise ValueError("the QuickBooks callback carries no realmId")
        if wanted is not None and realm_id != wanted:
            raise ValueError(f"the person connected company {realm_id}, not {wanted}")
        return LinkedCompany(company_id=realm_id, company_name=f"QuickBooks company {realm_id}")


AUTH = QuickBooksAuth()
