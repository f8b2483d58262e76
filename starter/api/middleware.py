"""ASGI middleware: request ids, access logs, the edge checks and Idempotency-Key replays."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, MutableHeaders

from starter.api.auth import PRINCIPAL_STATE, principal_from_scope
from starter.api.context import context_of_app
from starter.api.errors import (
    REQUEST_ID_STATE,
    SKIP_IDEMPOTENCY_STATE,
    ErrorType,
    error_body,
)
from starter.api.ratelimit import RateLimits
from starter.api.security import BodyTooLarge, Edge, Refusal
from store import RecordNotFound

access_log = logging.getLogger("remit.api.access")
log = logging.getLogger("remit.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ORIGINAL_REQUEST_ID_HEADER = "Original-Request-Id"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_IDEMPOTENT_BODY_BYTES = 16 * 1024 * 1024
IDEMPOTENCY_LOCK = timedelta(minutes=2)
"""How long a claimed key stays locked; a request that died is taken over after this."""

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_SANE_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]+$")


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def request_fingerprint(method: str, path: str, query: str, content_type: str, body: bytes) -> str:
    """What makes two requests 'the same' for an Idempotency-Key: method, path, query, body.

    A multipart body's boundary is chosen at random by each client send, so it is left out.
    """
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media == "multipart/form-data":
        boundary = dict(
            (part.strip().split("=", 1) + [""])[:2] for part in parameters.split(";") if part
        ).get("boundary", "")
        boundary = boundary.strip('"')
        if boundary:
            body = body.replace(boundary.encode("latin-1"), b"<boundary>")
    digest = hashlib.sha256()
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(query, True)))
    for part in (method.upper(), path, canonical_query, media):
        digest.update(part.encode())
        digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def _json_error(
    status: int, type: ErrorType, message: str, request_id: str, *, param: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(error_body(type, message, request_id=request_id, param=param)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return status, headers, body


def _refusal_answer(
    refusal: Refusal, request_id: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, headers, body = _json_error(
        refusal.status, refusal.type, refusal.message, request_id, param=refusal.param
    )
    headers += [(name.encode(), value.encode()) for name, value in refusal.headers]
    return status, headers, body


async def _send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class RemitApiMiddleware:
    """Outermost layer of the API: every response carries X-Request-Id and is logged once.

    Before any route (or the idempotency store) sees a request, the `edge` checks its Host,
    Origin, declared size and query, and `rate_limits` its caller; the body is then counted
    as it is read, and refused (413) once past its route's limit.

    POSTs with an Idempotency-Key (all but `exempt_paths`) are run at most once per API key:
    the first result below 500 is stored and replayed; 5xx results release the key.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        exempt_paths: frozenset[str] = frozenset(),
        edge: Edge | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.app = app
        self.exempt_paths = exempt_paths
        self.edge = edge or Edge()
        self.rate_limits = rate_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _SANE_REQUEST_ID.fullmatch(given) else new_request_id()
        state = scope.setdefault("state", {})
        state[REQUEST_ID_STATE] = request_id
        started = time.perf_counter()
        outcome = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                outcome["started"] = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            refusal = self.edge.refusal(scope, headers)
            if refusal is None and self.rate_limits is not None:
                refusal = await self.rate_limits.refusal(scope)
            if refusal is not None:
                await _send_whole(send_with_id, *_refusal_answer(refusal, request_id))
                return
            receive = self.edge.counted(scope, receive)
            if (
                scope["method"] == "POST"
                and IDEMPOTENCY_HEADER.lower() in headers
                and scope["path"] not in self.exempt_paths
            ):
                await self._idempotent(scope, receive, send_with_id, headers, request_id)
            else:
                await self.app(scope, receive, send_with_id)
        except BodyTooLarge as exc:
            if not outcome["started"]:
                await _send_whole(send_with_id, *_refusal_answer(exc.refusal, request_id))
        except Exception:
            log.exception("request %s failed", request_id)
            if not outcome["started"]:
                await _send_whole(
                    send_with_id,
                    *_json_error(500, "api_error", "remit failed to answer; try again", request_id),
                )
        finally:
            principal = state.get(PRINCIPAL_STATE)
            # Never the Authorization header, the query string or a body: they may hold secrets.
            access_log.info(
                "%s %s %s %.1fms request_id=%s key_id=%s",
                scope["method"],
                scope["path"],
                outcome["status"],
                (time.perf_counter() - started) * 1000,
                request_id,
                principal.key_id if principal is not None else "-",
            )

    async def _idempotent(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, request_id: str
    ) -> None:
        context = context_of_app(scope.get("app"))
        principal = await principal_from_scope(scope) if context is not None else None
        if context is None or principal is None:
            # No key to scope the record to: the route answers (401) and nothing is stored.
            await self.app(scope, receive, send)
            return
        key = headers[IDEMPOTENCY_HEADER].strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not _SANE_IDEMPOTENCY_KEY.match(key):
            await _send_whole(
                send,
                *_json_error(
                    400,
                    "invalid_request_error",
                    f"{IDEMPOTENCY_HEADER} must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable "
                    "ASCII characters without spaces (a UUID is a good choice)",
                    request_id,
                    param=IDEMPOTENCY_HEADER,
                ),
            )
            return

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_IDEMPOTENT_BODY_BYTES:
                await _send_whole(
                    send,
                    *_json_error(
                        413,
                        "invalid_request_error",
                        f"the body is larger than {MAX_IDEMPOTENT_BODY_BYTES // (1024 * 1024)} MB",
                        request_id,
                    ),
                )
                return
            if not message.get("more_body", False):
                break
        fingerprint = request_fingerprint(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            headers.get("content-type", ""),
            bytes(body),
        )
        store = context.store
        record_scope = f"api_key:{principal.key_id}"
        try:
            claim = await asyncio.to_thread(
                store.claim, record_scope, key, fingerprint, lock_for=IDEMPOTENCY_LOCK
            )
        except RecordNotFound:  # released by its holder just now: one more try decides it
            claim = await asyncio.to_thread(
                store.claim, record_scope, key, fingerprint, lock_for=IDEMPOTENCY_LOCK
            )

        if claim.outcome == "mismatch":
            await _send_whole(
                send,
                *_json_error(
                    409,
                    "idempotency_error",
                    f"this {IDEMPOTENCY_HEADER} was already used for a different request "
                    "(another method, path or body); use a new key for a new request",
                    request_id,
                    param=IDEMPOTENCY_HEADER,
                ),
            )
            return
        if claim.outcome == "in_progress":
            status, response_headers, payload = _json_error(
                409,
                "idempotency_error",
                f"a request with this {IDEMPOTENCY_HEADER} is in progress; retry once it "
                "has finished to get its result",
                request_id,
                param=IDEMPOTENCY_HEADER,
            )
            await _send_whole(send, status, [*response_headers, (b"retry-after", b"1")], payload)
            return
        if claim.outcome == "completed":
            stored = claim.record.response_body or {}
            if "sealed" in stored and context.secret_box is not None:
                stored = context.secret_box.open(str(stored["sealed"]).encode())
            payload = str(stored.get("body", "")).encode()
            replay_headers = [
                (b"content-type", str(stored.get("media_type", "application/json")).encode()),
                (b"content-length", str(len(payload)).encode()),
                (REPLAYED_HEADER.lower().encode(), b"true"),
                (
                    ORIGINAL_REQUEST_ID_HEADER.lower().encode(),
                    str(stored.get("request_id", "")).encode(),
                ),
            ]
            await _send_whole(send, int(claim.record.status_code or 200), replay_headers, payload)
            return

        # Claimed: run the request once, remember its answer, then send it.
        replayed = False

        async def receive_body() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        try:
            await self.app(scope, receive_body, capture)
        except BaseException:
            await asyncio.to_thread(store.release, record_scope, key)
            raise
        status = int(captured["status"])
        payload = bytes(captured["body"])
        produced = Headers(raw=captured["headers"])
        storable = status < 500 and not scope["state"].get(SKIP_IDEMPOTENCY_STATE)
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            storable = False
        if storable:
            answer: dict[str, str] = {
                "body": text,
                "media_type": produced.get("content-type", "application/json"),
                "request_id": request_id,
            }
            if context.secret_box is not None:
                # Answers may carry secrets shown once (a webhook endpoint's signing secret):
                # kept for replay, but never readable in the database.
                answer = {"sealed": context.secret_box.seal(answer).decode()}
            await asyncio.to_thread(
                store.complete, record_scope, key, status_code=status, response_body=answer
            )
        else:
            await asyncio.to_thread(store.release, record_scope, key)
        await _send_whole(send, status, captured["headers"], payload)
