"""The stage's Temporal UI served through remit's API origin: a small streaming reverse proxy.

Why: the dev server's UI listens on its own port, so the browser treats its codec calls to
remit as cross-origin and sends no inbox session cookie unless the operator switches on
"Include cross-origin credentials". Under `UI_PUBLIC_PATH` on the API's own origin (the dev
server started with `--ui-public-path`), the UI's fetch to `/inbox/codec` is same-origin and
the cookie goes along by fetch's default.

Only the stage mounts it (sandbox/stack.py): production runs its own Temporal UI behind its own
ingress, and remit's API is no place to relay a cluster's UI. The proxied paths stay behind the
API's edge (trusted Host, cross-site Origin refusal on state-changing requests); the proxy adds
no route around them, and never forwards remit's own credentials (Authorization, the inbox
session cookie) to the UI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from starter.api.inbox import SESSION_COOKIE

UI_PUBLIC_PATH = "/temporal"
"""Where the stage's Temporal UI is served on the API's origin (and its --ui-public-path)."""

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {"authorization", "content-length"}


def _cookie_header(value: str) -> str:
    # The session cookie is scoped to /inbox and never reaches here; still, not relayed.
    kept = [
        part.strip()
        for part in value.split(";")
        if part.strip() and part.strip().split("=", 1)[0] != SESSION_COOKIE
    ]
    return "; ".join(kept)


def ui_proxy_router(ui_url: str, *, public_path: str = UI_PUBLIC_PATH) -> APIRouter:
    """Routes relaying `public_path` and below to the UI at `ui_url` (started with that
    public path), streaming both ways."""
    upstream = ui_url.rstrip("/")
    upstream_origin = "{0.scheme}://{0.netloc}".format(urlsplit(upstream))
    client = httpx.AsyncClient(base_url=upstream_origin, timeout=httpx.Timeout(30.0, read=None))
    router = APIRouter(include_in_schema=False)

    async def relay(request: Request) -> Response:
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _NOT_FORWARDED and name.lower() != "cookie"
        ]
        if "cookie" in request.headers:
            cookies = _cookie_header(request.headers["cookie"])
            if cookies:
                headers.append(("cookie", cookies))
        body: AsyncIterator[bytes] = request.stream()
        # The path as sent, still percent-encoded: the UI puts ids like `bill%2F...` in it.
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        target = raw_path.decode("latin-1")
        query = request.scope.get("query_string", b"").decode("latin-1")
        outgoing = client.build_request(
            request.method,
            target + (f"?{query}" if query else ""),
            headers=headers,
            content=body if request.method not in ("GET", "HEAD") else None,
        )
        try:
            answer = await client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            return Response(
                f"the stage's Temporal UI at {upstream} does not answer ({exc!r}); is the dev "
                "server still running? (see temporal.log in the stack's data dir)",
                status_code=502,
                media_type="text/plain",
            )
        relayed = [
            (name, value)
            for name, value in answer.headers.multi_items()
            if name.lower() not in _HOP_BY_HOP
        ]
        # A redirect to the UI's own address is shown on the API's origin.
        relayed = [
            (name, value.replace(upstream_origin, "", 1) if name.lower() == "location" else value)
            for name, value in relayed
        ]
        response = StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )
        response.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in relayed
        ]
        return response

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    # Plain routes, not FastAPI's: the UI's own query parameters are its business, not the
    # API's unknown-query check (refuse_unknown_query runs for API routes only).
    router.add_route(public_path, relay, methods=methods, include_in_schema=False)
    router.add_route(public_path + "/{rest:path}", relay, methods=methods, include_in_schema=False)
    return router
