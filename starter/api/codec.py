"""Temporal's remote codec protocol over HTTP, so the Temporal UI and CLI show decoded payloads.

`POST {prefix}/decode` and `POST {prefix}/encode` take and return `{"payloads": [...]}` in the
proto3 JSON form of `temporalio.api.common.v1.Payloads` (metadata values and data in base64).
The routes are also served as `{prefix}/{namespace}/decode|encode` for the CLI's
`--codec-endpoint 'http://.../codec/{namespace}'` templating; the Temporal UI names the namespace
in an `X-Namespace` header instead.

Who may call it. The endpoint hands out plaintext (bank details included), so:
- Browsers: only the Temporal UI's own origins get CORS headers, and a request carrying any other
  `Origin` is refused, so no other web page can use the endpoint through an operator's browser.
- Namespaces: only the namespaces this deployment encrypts are served.
- Credentials: `authorize` checks each request when given (production: put the check behind the
  `Authorization` header the Temporal UI forwards with `codec.passAccessToken`). The embedded
  stack (`remit up`) passes none: its API listens on 127.0.0.1 only, next to a UI that has no
  login either, and the dev server's UI cannot send credentials to a codec endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from runtime.codec import PayloadDecryptionError

CODEC_PATH = "/codec"
NAMESPACE_HEADER = "X-Namespace"
ALLOWED_HEADERS = "content-type, x-namespace, authorization"
PREFLIGHT_MAX_AGE_SECONDS = 600

# Returns None to let the request through, or the reason it is refused (answered with 401).
Authorize = Callable[[Request], Awaitable[str | None]]


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
    authorize: Authorize | None = None,
    prefix: str = CODEC_PATH,
) -> APIRouter:
    """Routes for `app.include_router(...)`; the UI's codec endpoint is the API URL + prefix.

    `namespaces` None serves every namespace; `allowed_origins` are the UI's origins
    (see `ui_origins`).
    """
    origins = {origin.rstrip("/") for origin in allowed_origins}
    router = APIRouter(prefix=prefix, tags=["codec"])

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
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
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
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return problem(request, 403, f"origin {origin} may not call the codec endpoint")
        if authorize is not None:
            refusal = await authorize(request)
            if refusal is not None:
                return problem(request, 401, refusal)
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
    async def decode(request: Request) -> Response:
        return await run(request, None, codec.decode)

    @router.post("/encode", summary="Encode payloads the Temporal UI or CLI sends")
    async def encode(request: Request) -> Response:
        return await run(request, None, codec.encode)

    @router.post("/{namespace}/decode", include_in_schema=False)
    async def decode_in(namespace: str, request: Request) -> Response:
        return await run(request, namespace, codec.decode)

    @router.post("/{namespace}/encode", include_in_schema=False)
    async def encode_in(namespace: str, request: Request) -> Response:
        return await run(request, namespace, codec.encode)

    for path in ("/decode", "/encode", "/{namespace}/decode", "/{namespace}/encode"):
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)

    return router
