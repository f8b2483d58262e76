"""Bearer API keys: who is calling (a Principal), what they may do (scopes) and on which
connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from starter.api.context import context_of_app
from starter.api.errors import ApiError
from store import ApiKeys
from store.api_keys import SCOPES

PRINCIPAL_STATE = "remit.principal"
ADMIN = "admin"

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer rk_<id>.<secret>`",
)


@dataclass(frozen=True)
class Principal:
    """The caller behind an API key; a person acts only as themselves (`user_id`)."""

    key_id: str
    user_id: str
    scopes: frozenset[str]
    connections: frozenset[str] | None = frozenset()
    """The connections this key may act on; None: every one (keys issued so, explicitly)."""

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    @property
    def every_connection(self) -> bool:
        return self.connections is None

    def sees(self, connection_id: str | None) -> bool:
        """Whether this key may read or act on `connection_id`'s objects (None: an object whose
        connection is unknown, which only a key for every connection may touch)."""
        if self.connections is None:
            return True
        return connection_id is not None and connection_id in self.connections

    def visible(self, requested: str | None = None) -> frozenset[str] | None:
        """What a list may show: None no restriction; else these connections (maybe none)."""
        if requested is not None:
            return frozenset({requested}) if self.sees(requested) else frozenset()
        return self.connections


def connection_of(object_id: str) -> str | None:
    """The connection a workflow id names: `<kind>/<connection>/<rest>` (bills, credits, runs)."""
    parts = object_id.split("/", 2)
    return parts[1] if len(parts) == 3 and parts[1] else None


def every_connection_required(principal: Principal, what: str) -> None:
    """Refuse (403) a key limited to some connections an action that spans all of them."""
    if not principal.every_connection:
        raise ApiError(
            403,
            "permission_error",
            f"{what} needs a key for every connection; this one is limited to "
            f"{', '.join(sorted(principal.connections or ())) or 'none'}",
            replayable=False,
        )


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def lookup_principal(api_keys: ApiKeys, token: str | None) -> Principal | None:
    """Synchronous (it reads the store): call it in a thread from async code."""
    if token is None:
        return None
    row = api_keys.authenticate(token)
    if row is None:
        return None
    return Principal(
        key_id=row.id,
        user_id=row.user_id,
        scopes=row.scope_set,
        connections=row.connection_scope,
    )


async def principal_from_scope(scope: MutableMapping[str, Any]) -> Principal | None:
    """The caller of an ASGI request, cached on the request (middleware and routes share it)."""
    state = scope.setdefault("state", {})
    if PRINCIPAL_STATE in state:
        cached: Principal | None = state[PRINCIPAL_STATE]
        return cached
    context = context_of_app(scope.get("app"))
    if context is None:
        return None
    authorization = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    principal = await asyncio.to_thread(
        lookup_principal, context.api_keys, bearer_token(authorization)
    )
    state[PRINCIPAL_STATE] = principal
    return principal


async def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """FastAPI dependency: any valid API key, else 401."""
    if context_of_app(request.app) is None:
        raise ApiError(503, "api_error", "API keys are not configured on this remit API")
    if credentials is None:
        raise ApiError(
            401,
            "authentication_error",
            "no API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
            replayable=False,
        )
    principal = await principal_from_scope(request.scope)
    if principal is None:
        raise ApiError(
            401,
            "authentication_error",
            "the API key is not valid (unknown, revoked or mistyped)",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            replayable=False,
        )
    return principal


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency factory: a valid key that has `scope` (admin has every scope)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")

    async def dependency(principal: Principal = Depends(authenticated)) -> Principal:
        if not principal.allows(scope):
            held = ", ".join(sorted(principal.scopes)) or "none"
            raise ApiError(
                403,
                "permission_error",
                f"this API key lacks the {scope!r} scope (it has: {held})",
                param="scope",
                replayable=False,
            )
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
