"""Bearer API keys: who is calling (a Principal) and what they may do (scopes)."""

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

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes


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
    return Principal(key_id=row.id, user_id=row.user_id, scopes=row.scope_set)


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
