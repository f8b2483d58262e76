"""Linking ERP companies: the OAuth flows that create and relink connections, and their health.

Used by the CLI (`remit connections ...`) and meant for the API. Which flow a platform uses
comes from connectors.registry.auth(): authorization code (a person consents in a browser and
picks the company) or client credentials (an administrator maps a key to the account).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, Field

from activities.connections import Connectors, StoreConnectionState
from connectors.base import ConnectionRevoked, ConnectorError
from connectors.oauth import (
    AuthorizationRequest,
    Credentials,
    LinkRefused,
    TokenSet,
    authorization_request,
    callback_params,
    exchange_code,
    parse_callback,
)
from connectors.registry import AuthorizationCodeAuth, LinkedCompany, PlatformAuth, auth
from runtime.secrets import SecretBox
from store import ConnectionRow, Store
from worker import store_lookup

PENDING_LIFETIME = timedelta(minutes=15)

# The platform's base URL -> the transport to reach it (tests route to in-process emulators).
TransportFor = Callable[[str], httpx.AsyncBaseTransport | None]
OnRelinked = Callable[[str], Awaitable[None]]


class LinkStart(BaseModel):
    """Send the person to `authorize_url`; the platform returns them to `redirect_uri`."""

    platform: str
    connection_id: str | None
    authorize_url: str
    state: str
    redirect_uri: str
    expires_at: datetime


class ConnectionHealth(BaseModel):
    """A connection as an operator sees it (CLI and API alike): no secrets, whether it works."""

    id: str
    platform: str
    company_id: str
    display_name: str
    status: str
    healthy: bool = Field(
        description="active, not rate limited, and no error since the last success"
    )
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    rate_limited_until: datetime | None
    rate_limited: bool
    token_expires_at: datetime | None
    renewable: bool

    @classmethod
    def of(cls, row: ConnectionRow, credentials: Credentials) -> ConnectionHealth:
        """`credentials` are the opened ones ({} when they cannot be opened here)."""
        expires = credentials.get("expires_at")
        limited = row.rate_limited_until
        if limited is not None and limited.tzinfo is None:
            limited = limited.replace(tzinfo=UTC)
        rate_limited = limited is not None and limited > datetime.now(UTC)
        errored_since = row.last_error_at is not None and (
            row.last_success_at is None or row.last_success_at <= row.last_error_at
        )
        return cls(
            id=row.id,
            platform=row.platform,
            company_id=row.company_id,
            display_name=row.display_name,
            status=row.status,
            healthy=row.status == "active" and not rate_limited and not errored_since,
            last_success_at=row.last_success_at,
            last_error_at=row.last_error_at,
            last_error=row.last_error,
            rate_limited_until=row.rate_limited_until,
            rate_limited=rate_limited,
            token_expires_at=datetime.fromisoformat(expires) if expires else None,
            renewable=bool(credentials.get("refresh_token") or credentials.get("private_key")),
        )


@dataclass
class _Pending:
    platform: str
    base_url: str
    client_id: str
    client_secret: str
    request: AuthorizationRequest
    connection_id: str | None
    company_id: str | None
    display_name: str | None
    settings: dict[str, str]
    expires_at: datetime
    extra_credentials: dict[str, str] = field(default_factory=dict)


class ConnectionService:
    """Creates, relinks and reports on connections in the store (credentials sealed).

    Link requests in progress are kept in this object (state -> what the callback needs), so
    `begin_link` and `complete_link` must reach the same instance within PENDING_LIFETIME.
    `on_relinked(connection_id)` runs after a connection that already existed gets a new grant:
    the place to resume the bills that paused waiting for it. `on_linked(connection_id)` runs
    after a new connection is saved: the place to start its first sync and its schedule.
    """

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        transport_for: TransportFor | None = None,
        on_relinked: OnRelinked | None = None,
        on_linked: OnRelinked | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._box = box
        self._transport_for = transport_for
        self.on_relinked = on_relinked
        self.on_linked = on_linked
        self._timeout = timeout
        self._pending: dict[str, _Pending] = {}

    @contextlib.asynccontextmanager
    async def http(self, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = self._transport_for(base_url) if self._transport_for else None
        async with httpx.AsyncClient(transport=transport, timeout=self._timeout) as client:
            yield client

    # -- authorization code -------------------------------------------------------------------

    async def begin_link(
        self,
        platform: str,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        connection_id: str | None = None,
        company_id: str | None = None,
        display_name: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> LinkStart:
        """The authorize URL for a new connection (or for `connection_id`, replacing its grant).

        `company_id`, when given, is the only company the callback may connect.
        """
        spec = _authorization_code(platform)
        request = authorization_request(
            spec.authorize_url(base_url),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=spec.scope,
        )
        now = datetime.now(UTC)
        self._pending = {s: p for s, p in self._pending.items() if p.expires_at > now}
        pending = _Pending(
            platform=platform,
            base_url=base_url,
            client_id=client_id,
            client_secret=client_secret,
            request=request,
            connection_id=connection_id,
            company_id=company_id,
            display_name=display_name,
            settings=dict(settings or {}),
            expires_at=now + PENDING_LIFETIME,
        )
        self._pending[request.state] = pending
        return LinkStart(
            platform=platform,
            connection_id=connection_id,
            authorize_url=request.url,
            state=request.state,
            redirect_uri=redirect_uri,
            expires_at=pending.expires_at,
        )

    async def complete_link(
        self,
        callback_url: str | None = None,
        *,
        code: str | None = None,
        state: str | None = None,
    ) -> ConnectionRow:
        """Finish a link from the URL the platform redirected to (or its code and state)."""
        if callback_url is None:
            if not code or not state:
                raise LinkRefused("give the callback URL, or both its code and state")
            callback_url = "http://callback.invalid/?" + urlencode({"code": code, "state": state})
        params = callback_params(callback_url)
        pending = self._pending.pop(params.get("state", ""), None)
        if pending is None or pending.expires_at <= datetime.now(UTC):
            raise LinkRefused(
                "this callback matches no link in progress (expired, already used, or started "
                "elsewhere): start again with `remit connections add` or `relink`"
            )
        params = parse_callback(callback_url, pending.request.state)
        spec = _authorization_code(pending.platform)
        async with self.http(pending.base_url) as http:
            try:
                tokens, _ = await exchange_code(
                    http,
                    spec.token_url(pending.base_url),
                    client_id=pending.client_id,
                    client_secret=pending.client_secret,
                    code=params["code"],
                    redirect_uri=pending.request.redirect_uri,
                    code_verifier=pending.request.code_verifier,
                    platform=pending.platform,
                )
            except ConnectionRevoked as exc:
                raise LinkRefused(f"the authorization code was refused: {exc}") from exc
            company = await self._linked(spec, http, pending.base_url, tokens, params, pending)
        credentials = {
            "client_id": pending.client_id,
            "client_secret": pending.client_secret,
            **tokens.credentials(),
        }
        return await self._save(
            pending.platform,
            base_url=pending.base_url,
            company=company,
            credentials=credentials,
            connection_id=pending.connection_id,
            display_name=pending.display_name,
            settings=pending.settings,
        )

    async def _linked(
        self,
        spec: PlatformAuth,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSet,
        params: dict[str, str],
        pending: _Pending,
    ) -> LinkedCompany:
        try:
            return await spec.linked_company(
                http, base_url, tokens, params, wanted=pending.company_id
            )
        except (ValueError, ConnectionRevoked) as exc:
            raise LinkRefused(str(exc)) from exc

    # -- client credentials -------------------------------------------------------------------

    async def link_client_credentials(
        self,
        platform: str,
        *,
        base_url: str,
        company_id: str,
        credentials: Credentials,
        connection_id: str | None = None,
        display_name: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> ConnectionRow:
        """Mint a first token with the given key material, then save the connection."""
        spec = auth(platform)
        async with self.http(base_url) as http:
            try:
                tokens = await spec.renew(http, base_url, credentials)
            except ConnectionRevoked as exc:
                raise LinkRefused(f"the platform refused these credentials: {exc}") from exc
            company = await spec.linked_company(http, base_url, tokens, {}, wanted=company_id)
        return await self._save(
            platform,
            base_url=base_url,
            company=company,
            credentials={**credentials, **tokens.credentials()},
            connection_id=connection_id,
            display_name=display_name,
            settings=settings or {},
        )

    # -- relink ------------------------------------------------------------------------------

    async def relink(
        self,
        connection_id: str,
        *,
        redirect_uri: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        credentials: Credentials | None = None,
    ) -> LinkStart | ConnectionRow:
        """Give a connection a new grant for the same company.

        Authorization code: returns the LinkStart to send a person to (finish with
        `complete_link`). Client credentials: mints with the stored (or the given new) key
        material at once and returns the relinked connection.
        """
        row = self.row(connection_id)
        stored = self._credentials(row)
        base_url = row.base_url or ""
        spec = auth(row.platform)
        if spec.flow == "client_credentials":
            return await self.link_client_credentials(
                row.platform,
                base_url=base_url,
                company_id=row.company_id,
                credentials={**stored, **(credentials or {})},
                connection_id=row.id,
            )
        if not redirect_uri:
            raise LinkRefused("relinking needs the redirect URI the platform returns the person to")
        return await self.begin_link(
            row.platform,
            base_url=base_url,
            client_id=client_id or stored.get("client_id", ""),
            client_secret=client_secret or stored.get("client_secret", ""),
            redirect_uri=redirect_uri,
            connection_id=row.id,
            company_id=row.company_id,
        )

    # -- reading -----------------------------------------------------------------------------

    def list_health(self) -> list[ConnectionHealth]:
        return [self.describe(row) for row in self._store.list_connections()]

    async def health(self, connection_id: str, *, probe: bool = False) -> ConnectionHealth:
        """The recorded health; with `probe`, after one live read through the connector (which
        renews tokens, records the outcome and marks a revoked grant needs_relink)."""
        if probe:
            await self.probe(connection_id)
        return self.describe(self.row(connection_id))

    async def probe(self, connection_id: str) -> ConnectorError | None:
        """One cheap read through the connection; the error it raised, if any."""
        row = self.row(connection_id)
        transport_for = self._transport_for
        connectors = Connectors(
            store_lookup(self._store, self._box),
            transport_for=(lambda config: transport_for(config.base_url))
            if transport_for
            else None,
            timeout=self._timeout,
            state=StoreConnectionState(self._store, self._box.seal, success_interval=0),
        )
        try:
            connector = await connectors.connector(row.id)
            await connector.list_accounts()
        except ConnectorError as error:
            return error
        finally:
            await connectors.aclose()
        return None

    # -- helpers -----------------------------------------------------------------------------

    def row(self, connection_id: str) -> ConnectionRow:
        row = self._store.get_connection(connection_id)
        if row is None:
            raise KeyError(f"no connection {connection_id!r}: see `remit connections list`")
        return row

    def _credentials(self, row: ConnectionRow) -> Credentials:
        return self._box.open(row.credentials_encrypted) if row.credentials_encrypted else {}

    def describe(self, row: ConnectionRow) -> ConnectionHealth:
        return ConnectionHealth.of(row, self._credentials(row))

    async def _save(
        self,
        platform: str,
        *,
        base_url: str,
        company: LinkedCompany,
        credentials: Credentials,
        connection_id: str | None,
        display_name: str | None,
        settings: dict[str, str],
    ) -> ConnectionRow:
        connection_id = connection_id or f"{platform}-{company.company_id}".lower()
        existing = await asyncio.to_thread(self._store.get_connection, connection_id)
        if existing is not None and (
            existing.platform != platform or existing.company_id != company.company_id
        ):
            raise LinkRefused(
                f"connection {connection_id} is {existing.platform} company "
                f"{existing.company_id}; this grant is for {platform} company "
                f"{company.company_id}"
            )
        now = datetime.now(UTC)
        row = ConnectionRow(
            id=connection_id,
            platform=platform,
            company_id=company.company_id,
            display_name=display_name
            or (existing.display_name if existing else f"{company.company_name} ({platform})"),
            base_url=base_url,
            status="active",
            credentials_encrypted=self._box.seal(credentials),
            settings={**(existing.settings if existing else {}), **settings},
            created_at=existing.created_at if existing else now,
            updated_at=now,
        )
        saved = await asyncio.to_thread(self._store.upsert_connection, row)
        if existing is not None and self.on_relinked is not None:
            await self.on_relinked(connection_id)
        if existing is None and self.on_linked is not None:
            await self.on_linked(connection_id)
        return saved


def _authorization_code(platform: str) -> AuthorizationCodeAuth:
    spec = auth(platform)
    if spec.flow != "authorization_code":
        raise LinkRefused(
            f"{platform} connections use {spec.flow.replace('_', ' ')}, not a consent page"
        )
    return cast(AuthorizationCodeAuth, spec)
