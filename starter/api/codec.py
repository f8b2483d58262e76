"""Temporal's remote codec protocol over HTTP, so the Temporal UI and CLI show decoded payloads.

`POST {prefix}/decode` and `POST {prefix}/encode` take and return `{"payloads": [...]}` in the
proto3 JSON form of `temporalio.api.common.v1.Payloads` (metadata values and data in base64).
The routes are also served as `{prefix}/{namespace}/decode|encode` for the CLI's
`--codec-endpoint 'http://.../codec/{namespace}'` templating; the Temporal UI names the namespace
in an `X-Namespace` header instead.

Who may call it. The endpoint hands out plaintext (bank details included), so:
- Credentials, always (`authorize`; `codec_authorizer` is remit's): a remit API key with the
  admin or codec scope as `Authorization: Bearer` (what the CLI sends with `--codec-auth`),
  the signed-in user's OIDC access token (what a Temporal UI with OIDC forwards with
  `codec.passAccessToken`; starter/api/codec_oidc.py verifies it), or, under
  `INBOX_CODEC_PATH`, the inbox session cookie of an operator (what the UI sends with
  `codec.includeCredentials` when it runs on the API's site, as in `remit up`: the cookie is
  scoped to /inbox, hence the second mount). Anything else gets 401.
- Browsers: only the Temporal UI's own origins get CORS headers (preflights included, which
  carry no credentials), and a request carrying any other `Origin` is refused, so no other
  web page can use the endpoint through an operator's browser.
- Namespaces: only the namespaces this deployment encrypts are served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from runtime.codec import PayloadDecryptionError
from starter.api.auth import bearer_token, principal_from_scope
from starter.api.codec_oidc import OidcVerifier, looks_like_jwt
from starter.api.inbox import SESSION_COOKIE, verify_session_cookie
from store import InboxSessions, Store
from store.api_keys import TOKEN_PREFIX
from workflows.approval import Directory

log = logging.getLogger("remit.api")

CODEC_PATH = "/codec"
INBOX_CODEC_PATH = "/inbox/codec"
"""The codec again where the inbox's session cookie (path /inbox) reaches it."""
CODEC_SCOPE = "codec"
NAMESPACE_HEADER = "X-Namespace"
ALLOWED_HEADERS = "content-type, x-namespace, authorization"
PREFLIGHT_MAX_AGE_SECONDS = 600

PreserveStorageRefs = Annotated[
    bool,
    Query(
        alias="preserveStorageRefs",
        description="sent by the Temporal UI (2.5x); remit stores no payloads elsewhere, so "
        "there are no storage references to keep: accepted and ignored",
    ),
]
"""Declared so the API's unknown-query check lets the UI's decode calls through."""

# Returns None to let the request through, or the reason it is refused (answered with 401).
Authorize = Callable[[Request], Awaitable[str | None]]
# The user id of the live inbox session a cookie names, or None (reads the store: sync).
SessionUser = Callable[[str], str | None]


def codec_authorizer(
    *,
    session_cookie: str | None = None,
    session_user: SessionUser | None = None,
    user_groups: Callable[[str], Collection[str]] = lambda _: (),
    groups: Collection[str] = ("operators",),
    oidc: OidcVerifier | None = None,
) -> Authorize:
    """remit's codec credentials: a bearer API key with the admin or codec scope (looked up
    through the app's ApiContext), an OIDC access token (`oidc`, when configured) whose groups
    claim names one of `groups`, or an inbox session of a user in `groups`.

    A bearer value is told apart by its shape: remit's keys start `rk_`; a JWT is three
    base64url parts with a JSON header (`eyJ...`). Only the one that fits is tried."""
    allowed_groups = frozenset(groups)

    async def authorize(request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            token = bearer_token(authorization)
            if token is None:
                return "send `Authorization: Bearer <remit API key or OIDC access token>`"
            if oidc is not None and not token.startswith(TOKEN_PREFIX) and looks_like_jwt(token):
                refusal, user = await oidc.refusal(token, allowed_groups)
                # The user the token names, never the token.
                log.info(
                    "codec %s by oidc user %s: %s",
                    request.url.path,
                    user,
                    "allowed" if refusal is None else f"refused ({refusal})",
                )
                return refusal
            principal = await principal_from_scope(request.scope)
            if principal is None:
                return "the API key is not valid (unknown, revoked or mistyped)"
            if principal.allows(CODEC_SCOPE) or "operator" in principal.scopes:
                return None
            return (
                "this API key may not decode payloads: it needs the admin or codec scope "
                f"(it has: {', '.join(sorted(principal.scopes)) or 'none'})"
            )
        token = request.cookies.get(session_cookie) if session_cookie else None
        if token and session_user is not None and request.url.path.startswith(INBOX_CODEC_PATH):
            user_id = await asyncio.to_thread(session_user, token)
            if user_id is None:
                return "the inbox session has ended or expired; sign in to the inbox again"
            if allowed_groups & set(user_groups(user_id)):
                return None
            return (
                f"{user_id} may not decode payloads (only members of "
                f"{', '.join(sorted(allowed_groups))} may)"
            )
        return (
            "decoding needs credentials: a remit API key with the admin or codec scope as "
            "`Authorization: Bearer <key>` (the Temporal UI's codec.passAccessToken), or an "
            f"operator's inbox session on {INBOX_CODEC_PATH} (codec.includeCredentials)"
        )

    return authorize


def ui_origins(ui_url: str) -> list[str]:
    """The origins a browser may report for a UI at `ui_url`: loopback by number and by name."""
    parts = urlsplit(ui_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return [
            f"{parts.scheme}://127.0.0.1:{parts.port}",
            f"{parts.scheme}://localhost:{parts.port}",
        ]
    return [origin]


def codec_router(
    codec: PayloadCodec,
    *,
    allowed_origins: Collection[str] = (),
    namespaces: Collection[str] | None = None,
    authorize: Authorize,
    prefix: str = CODEC_PATH,
) -> APIRouter:
    """Routes for `app.include_router(...)`; the UI's codec endpoint is the API URL + prefix.

    `namespaces` None serves every namespace; `allowed_origins` are the UI's origins
    (see `ui_origins`); `authorize` decides who may call (see `codec_authorizer`).
    """
    origins = {origin.rstrip("/") for origin in allowed_origins}
    router = APIRouter(prefix=prefix, tags=["codec"])

    def refused_origin(request: Request) -> str | None:
        """The request's Origin when no page there may call: neither a UI origin nor this
        API's own (the stage serves the UI on it: sandbox/ui_proxy.py; its Host passed the
        edge's trusted-host check)."""
        origin = request.headers.get("origin")
        if origin is None or origin in origins:
            return None
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return None if origin == own else origin

    def cors_headers(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or origin not in origins:
            return {}
        # The UI may send cookies (its "include cross-origin credentials" setting); a
        # credentialed request needs the exact origin echoed, never "*".
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def problem(request: Request, status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=cors_headers(request))

    def preflight(request: Request) -> Response:
        origin = refused_origin(request)
        if origin is not None:
            return problem(request, 403, f"origin {origin} may not call the codec endpoint")
        return Response(
            status_code=204,
            headers={
                **cors_headers(request),
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
            },
        )

    async def run(
        request: Request,
        path_namespace: str | None,
        transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]],
    ) -> Response:
        origin = refused_origin(request)
        if origin is not None:
            return problem(request, 403, f"origin {origin} may not call the codec endpoint")
        refusal = await authorize(request)
        if refusal is not None:
            response = problem(request, 401, refusal)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        namespace = path_namespace or request.headers.get(NAMESPACE_HEADER)
        if namespaces is not None and namespace is not None and namespace not in namespaces:
            return problem(
                request,
                404,
                f"namespace {namespace!r} is not served here (served: {', '.join(namespaces)})",
            )
        try:
            body: Any = await request.json()
        except ValueError:
            return problem(request, 400, 'send JSON: {"payloads": [{"metadata": {}, "data": ""}]}')
        if not isinstance(body, dict):
            return problem(request, 400, 'send a JSON object: {"payloads": [...]}')
        try:
            payloads = ParseDict(body, Payloads())
        except ParseError as exc:
            return problem(
                request,
                400,
                f"not Temporal payloads in proto JSON (metadata values and data in base64): {exc}",
            )
        try:
            result = await transform(list(payloads.payloads))
        except PayloadDecryptionError as exc:
            return problem(request, 400, str(exc))
        return JSONResponse(
            MessageToDict(Payloads(payloads=result)) or {"payloads": []},
            headers=cors_headers(request),
        )

    @router.post("/decode", summary="Decode payloads for the Temporal UI and CLI")
    async def decode(request: Request, _refs: PreserveStorageRefs = False) -> Response:
        return await run(request, None, codec.decode)

    @router.post("/encode", summary="Encode payloads the Temporal UI or CLI sends")
    async def encode(request: Request, _refs: PreserveStorageRefs = False) -> Response:
        return await run(request, None, codec.encode)

    @router.post("/{namespace}/decode", include_in_schema=False)
    async def decode_in(
        namespace: str, request: Request, _refs: PreserveStorageRefs = False
    ) -> Response:
        return await run(request, namespace, codec.decode)

    @router.post("/{namespace}/encode", include_in_schema=False)
    async def encode_in(
        namespace: str, request: Request, _refs: PreserveStorageRefs = False
    ) -> Response:
        return await run(request, namespace, codec.encode)

    for path in ("/decode", "/encode", "/{namespace}/decode", "/{namespace}/encode"):
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)

    return router


def codec_routers(
    codec: PayloadCodec,
    *,
    store: Store,
    directory: Directory,
    session_secret: str,
    allowed_origins: Collection[str] = (),
    namespaces: Collection[str] | None = None,
    groups: Collection[str] = ("operators",),
    authorize: Authorize | None = None,
    oidc: OidcVerifier | None = None,
) -> list[APIRouter]:
    """The codec as remit serves it: at CODEC_PATH and INBOX_CODEC_PATH, guarded by
    `codec_authorizer` (API keys, and operators' inbox sessions from `store`)."""
    sessions = InboxSessions(store.engine)
    users = directory.users
    guard = authorize or codec_authorizer(
        session_cookie=SESSION_COOKIE,
        session_user=lambda token: verify_session_cookie(
            token, session_secret=session_secret, sessions=sessions
        ),
        user_groups=lambda user_id: users[user_id].groups if user_id in users else (),
        groups=groups,
        oidc=oidc,
    )
    return [
        codec_router(
            codec,
            allowed_origins=allowed_origins,
            namespaces=namespaces,
            authorize=guard,
            prefix=prefix,
        )
        for prefix in (CODEC_PATH, INBOX_CODEC_PATH)
    ]
