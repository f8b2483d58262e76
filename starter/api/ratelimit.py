"""Rate limits per API key and per client address (the `limits` library, moving window)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from runtime.settings import Settings
from starter.api.auth import principal_from_scope
from starter.api.security import Refusal

log = logging.getLogger("remit.api")

Scope = MutableMapping[str, Any]

LOGIN_PATHS = frozenset(
    {("POST", "/inbox/login"), ("GET", "/inbox/login/magic"), ("POST", "/inbox/login/magic")}
)
"""Where someone signs in to the inbox: limited per client address, much tighter."""
LIMITED_PREFIXES = ("/v1/", "/codec/", "/inbox/codec/")
"""The API proper (the bank's signed notices are not limited: the bank retries them)."""


@dataclass(frozen=True)
class _Rule:
    items: list[RateLimitItem]
    setting: str
    who: str


def _rule(text: str, setting: str, who: str) -> _Rule:
    try:
        items = parse_many(text)
    except ValueError as exc:
        message = f"{setting}: {text!r} is not a rate limit like 600/minute ({exc})"
        raise ValueError(message) from None
    if not items:
        raise ValueError(f"{setting} is empty; give a rate limit like 600/minute")
    return _Rule(items, setting, who)


def _async_uri(uri: str) -> str:
    # The API runs on an event loop: use the storage's asyncio flavour.
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimits:
    """Checks a request against its limits; `refusal` answers 429 with Retry-After."""

    def __init__(
        self,
        *,
        per_key: str = "600/minute",
        per_client: str = "1200/minute",
        login: str = "10/minute",
        storage_uri: str = "memory://",
    ) -> None:
        self.per_key = _rule(per_key, "REMIT_API_KEY_RATE_LIMIT", "this API key")
        self.per_client = _rule(per_client, "REMIT_CLIENT_RATE_LIMIT", "this address")
        self.login = _rule(login, "REMIT_LOGIN_RATE_LIMIT", "this address")
        try:
            storage = storage_from_string(_async_uri(storage_uri))
        except Exception as exc:  # limits raises several kinds for a bad URI
            raise ValueError(
                f"REMIT_RATE_LIMIT_STORAGE_URI: {storage_uri!r} cannot be used (give "
                f"memory://, or redis://host:6379 with the coredis package installed): {exc}"
            ) from None
        self.limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            per_key=settings.api_key_rate_limit,
            per_client=settings.client_rate_limit,
            login=settings.login_rate_limit,
            storage_uri=settings.rate_limit_storage_uri,
        )

    async def refusal(self, scope: Scope) -> Refusal | None:
        method, path = scope["method"], scope["path"]
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if (method, path.rstrip("/")) in LOGIN_PATHS:
            return await self._hit(self.login, "login", address)
        if not path.startswith(LIMITED_PREFIXES):
            return None
        refused = await self._hit(self.per_client, "client", address)
        if refused is not None:
            return refused
        # Only a key that authenticates counts as one (a made-up key id must not use up
        # someone else's budget); the lookup is cached for the route.
        principal = await principal_from_scope(scope)
        if principal is not None:
            return await self._hit(self.per_key, "key", principal.key_id)
        return None

    async def _hit(self, rule: _Rule, kind: str, identity: str) -> Refusal | None:
        try:
            for item in rule.items:
                if not await self.limiter.hit(item, kind, identity):
                    stats = await self.limiter.get_window_stats(item, kind, identity)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    return Refusal(
                        429,
                        "rate_limit_error",
                        f"too many requests from {rule.who}: at most {item} ({rule.setting}); "
                        f"retry in {wait} s",
                        headers=(("retry-after", str(wait)),),
                    )
        except Exception:  # a shared storage that is down: serve rather than refuse everyone
            log.warning("rate limit storage failed; request let through", exc_info=True)
        return None
