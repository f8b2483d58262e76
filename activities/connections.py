"""Where activities get a Connector for a connection id and the PaymentRail to pay with."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import httpx
from temporalio import activity

from activities.request_log import Recorded, credential_values
from connectors.base import (
    AuthExpired,
    ConnectionConfig,
    ConnectionRevoked,
    Connector,
    ConnectorError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unavailable,
)
from connectors.caching import REFERENCE_DATA_TTL, ReferenceDataCache
from connectors.governance import ConnectionGovernor
from connectors.oauth import Credentials, OnTokens
from connectors.registry import platform
from store import ConnectionRow, Store

log = logging.getLogger("remit.connections")

TransportFor = Callable[[ConnectionConfig], httpx.AsyncBaseTransport | None]
# Failures that say something about the connection itself (not about one bill's data).
HEALTH_ERRORS = (AuthExpired, ConnectionRevoked, Unavailable, OutcomeUnknown)


class ConnectorProvider(Protocol):
    async def connector(self, connection_id: str) -> Connector: ...
    async def aclose(self) -> None: ...


class ConnectionLookup(Protocol):
    def __call__(self, connection_id: str) -> ConnectionConfig: ...


class ConnectionState(Protocol):
    """Where connectors report renewed tokens and the connection's health."""

    async def tokens_renewed(self, connection_id: str, credentials: Credentials) -> None:
        """Persist the new credentials before returning (a rotated refresh token depends on it)."""
        ...

    async def succeeded(self, connection_id: str) -> None: ...
    async def failed(self, connection_id: str, error: ConnectorError) -> None: ...


class Connectors:
    """Builds one connector per connection, each with its own pooled httpx client.

    `lookup` finds a connection's config (from the store, or a fixed dict in tests);
    `transport_for` lets tests route a platform to its in-process emulator. With `state`, the
    connectors renew tokens (reporting each new set to be persisted), and every call's outcome
    is reported as connection health; a revoked grant marks the connection `needs_relink`.
    """

    def __init__(
        self,
        lookup: ConnectionLookup,
        *,
        transport_for: TransportFor | None = None,
        timeout: float = 30.0,
        state: ConnectionState | None = None,
        governor: ConnectionGovernor | None = None,
        reference_data_ttl: float = REFERENCE_DATA_TTL,
    ) -> None:
        self._lookup = lookup
        self._reference_data_ttl = reference_data_ttl
        self._transport_for = transport_for
        self._timeout = timeout
        self._state = state
        self._governor = governor or ConnectionGovernor(clock=temporal_clock)
        self._cache: dict[str, tuple[ConnectionConfig, Connector, httpx.AsyncClient]] = {}

    async def connector(self, connection_id: str) -> Connector:
        config = self._lookup(connection_id)
        cached = self._cache.get(connection_id)
        if cached and cached[0] == config:
            return cached[1]
        if cached:
            # Credentials or settings changed (refresh elsewhere, relink): rebuild.
            await cached[2].aclose()
        transport = self._transport_for(config) if self._transport_for else None
        http = httpx.AsyncClient(transport=transport, timeout=self._timeout)
        connector: Connector
        if self._state is None:
            connector = platform(config.platform).connector(config, http)
        else:
            built = platform(config.platform).connector(
                config, http, on_tokens=self._on_tokens(connection_id, self._state)
            )
            connector = cast(Connector, _Tracked(built, connection_id, self._state))
        connector = self._governor.govern(connector, connection_id, max_concurrency(config))
        if self._reference_data_ttl > 0:
            connector = cast(Connector, ReferenceDataCache(connector, ttl=self._reference_data_ttl))
        # Each call's exchanges go to the request log (when one records), credentials masked.
        connector = cast(
            Connector,
            Recorded(
                connector,
                connection_id,
                secrets=lambda: self._secrets(connection_id),
                keep=(config.company_id,),
            ),
        )
        self._cache[connection_id] = (config, connector, http)
        return connector

    def _secrets(self, connection_id: str) -> list[str]:
        cached = self._cache.get(connection_id)
        return credential_values(dict(cached[0].credentials)) if cached else []

    def _on_tokens(self, connection_id: str, state: ConnectionState) -> OnTokens:
        async def on_tokens(credentials: Credentials) -> None:
            await state.tokens_renewed(connection_id, credentials)
            # The store now holds these credentials; keep the cached connector (its keeper
            # already uses them) instead of rebuilding it on the next lookup.
            cached = self._cache.get(connection_id)
            if cached is not None:
                config = cached[0].model_copy(update={"credentials": dict(credentials)})
                self._cache[connection_id] = (config, cached[1], cached[2])

        return on_tokens

    async def aclose(self) -> None:
        for _, _, http in self._cache.values():
            await http.aclose()
        self._cache.clear()


def temporal_clock() -> float:
    """Now, as Temporal sees it: inside an activity, when its attempt was scheduled.

    A 429's pause is honoured by Temporal's retry timer, so the governor must measure it on
    the same clock, or a retry Temporal holds back exactly long enough would be refused again
    (and under the time-skipping test server, forever). Elsewhere: the wall clock.
    """
    try:
        return activity.info().current_attempt_scheduled_time.timestamp()
    except RuntimeError:
        return time.time()


def max_concurrency(config: ConnectionConfig) -> int:
    """The connection's own cap (settings["max_concurrency"]) or its platform's."""
    configured = config.settings.get("max_concurrency")
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            log.warning("connection %s: max_concurrency %r is not a number", config.id, configured)
    return platform(config.platform).max_concurrency


class _Tracked:
    """A connector whose every call reports its outcome to a ConnectionState."""

    def __init__(self, inner: Connector, connection_id: str, state: ConnectionState) -> None:
        self._inner = inner
        self._connection_id = connection_id
        self._state = state

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or name == "aclose" or not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await value(*args, **kwargs)
            except ConnectorError as error:
                await _report(self._state.failed(self._connection_id, error))
                raise
            await _report(self._state.succeeded(self._connection_id))
            return result

        return tracked


async def _report(call: Any) -> None:
    # Health bookkeeping must never turn a working ERP call into a failed one.
    try:
        await call
    except Exception:
        log.warning("could not record connection health", exc_info=True)


class StoreConnectionState:
    """ConnectionState kept in the store: sealed credentials, health fields, needs_relink.

    Successes are written at most once per `success_interval` seconds per connection, so a
    busy connection does not turn every ERP call into a database write.
    """

    def __init__(
        self,
        store: Store,
        seal: Callable[[Credentials], bytes],
        *,
        success_interval: float = 30.0,
        on_needs_relink: Callable[[ConnectionRow], Awaitable[None]] | None = None,
    ) -> None:
        self._on_needs_relink = on_needs_relink
        self._store = store
        self._seal = seal
        self._success_interval = success_interval
        self._last_success: dict[str, float] = {}

    async def tokens_renewed(self, connection_id: str, credentials: Credentials) -> None:
        sealed = self._seal(credentials)
        await asyncio.to_thread(self._store.save_connection_credentials, connection_id, sealed)

    async def succeeded(self, connection_id: str) -> None:
        now = time.monotonic()
        last = self._last_success.get(connection_id)
        if last is not None and now - last < self._success_interval:
            return
        self._last_success[connection_id] = now
        await asyncio.to_thread(self._store.record_connection_success, connection_id)

    async def failed(self, connection_id: str, error: ConnectorError) -> None:
        if isinstance(error, RateLimited):
            until = datetime.now(UTC) + error.retry_after
            await asyncio.to_thread(self._store.record_rate_limit, connection_id, until=until)
        elif isinstance(error, ConnectionRevoked):
            self._last_success.pop(connection_id, None)
            before = await asyncio.to_thread(self._store.get_connection, connection_id)
            row = await asyncio.to_thread(
                self._store.mark_connection, connection_id, status="needs_relink", error=str(error)
            )
            newly = before is not None and before.status != "needs_relink"
            if newly and self._on_needs_relink is not None:
                # Once per revocation (not per bill that trips over it): say so to the outside.
                await _report(self._on_needs_relink(row))
        elif isinstance(error, HEALTH_ERRORS):
            await asyncio.to_thread(self._store.record_connection_error, connection_id, str(error))


def fixed_lookup(configs: dict[str, ConnectionConfig]) -> ConnectionLookup:
    def lookup(connection_id: str) -> ConnectionConfig:
        try:
            return configs[connection_id]
        except KeyError:
            raise NotFound(f"unknown connection {connection_id!r}") from None

    return lookup
