"""Shared machinery for the emulators: switchable faults (5xx, 429, latency, commit-then-drop)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# (status, headers, body) an emulator answers with when a fault fires, in the platform's format.
FaultResponse = tuple[int, list[tuple[bytes, bytes]], bytes]


RATES = ("error_rate", "throttle_rate", "drop_rate", "latency_seconds", "retry_after_seconds")


@dataclass
class ScriptedFault:
    """Fire `kind` on the next `times` requests whose "METHOD /path" contains `match`."""

    kind: str  # "5xx" | "429" | "drop" | "revoke"
    match: str = ""
    times: int = 1


@dataclass
class Faults:
    """Fault switches for one emulator. Rates are probabilities per request (0..1).

    `drop_rate` commits the request and then drops the connection before the response
    (the case that makes "did the write happen?" a real question); it applies to writes only.
    Scripted faults fire first and deterministically, for tests.
    """

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    latency_seconds: float = 0.0
    retry_after_seconds: float = 1.0
    seed: int | None = None
    scripted: list[ScriptedFault] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def script(self, kind: str, match: str = "", times: int = 1) -> None:
        self.scripted.append(ScriptedFault(kind, match, times))

    def clear(self) -> None:
        self.error_rate = self.throttle_rate = self.drop_rate = self.latency_seconds = 0.0
        self.scripted.clear()

    def to_json(self) -> dict[str, Any]:
        """The switches and what fired, as the emulators' `/_emulator/faults` show them."""
        return {
            "error_rate": self.error_rate,
            "throttle_rate": self.throttle_rate,
            "drop_rate": self.drop_rate,
            "latency_seconds": self.latency_seconds,
            "retry_after_seconds": self.retry_after_seconds,
            "scripted": [
                {"kind": s.kind, "match": s.match, "times": s.times} for s in self.scripted
            ],
            "fired": dict(self.fired),
        }

    def apply_json(self, body: Any, *, kinds: tuple[str, ...] | None = None) -> None:
        """Set the switches named in a `PUT /_emulator/faults` body; `scripted` replaces the
        script. ValueError/TypeError on a malformed body (or a kind not in `kinds`)."""
        if not isinstance(body, dict):
            raise TypeError("expected a JSON object")
        for name in RATES:
            if name in body:
                setattr(self, name, float(body[name]))
        if "scripted" in body:
            scripted = []
            for item in body["scripted"]:
                kind = str(item["kind"])
                if kinds is not None and kind not in kinds:
                    raise ValueError(f"unknown fault kind {kind!r}")
                scripted.append(
                    ScriptedFault(kind, str(item.get("match", "")), int(item.get("times", 1)))
                )
            self.scripted[:] = scripted

    def pick(self, request_line: str, is_write: bool) -> str | None:
        for fault in self.scripted:
            if fault.times > 0 and fault.match in request_line:
                if fault.kind == "drop" and not is_write:
                    continue
                fault.times -= 1
                if fault.times == 0:
                    self.scripted.remove(fault)
                return self._count(fault.kind)
        roll = self._random.random()
        if roll < self.throttle_rate:
            return self._count("429")
        if roll < self.throttle_rate + self.error_rate:
            return self._count("5xx")
        if is_write and self._random.random() < self.drop_rate:
            return self._count("drop")
        return None

    def _count(self, kind: str) -> str:
        self.fired[kind] = self.fired.get(kind, 0) + 1
        return kind


class FaultInjector:
    """ASGI middleware that applies `Faults` in front of an emulator app.

    `exempt` paths (consent pages, inspection endpoints, fault controls) never see faults.
    """

    def __init__(
        self,
        app: ASGIApp,
        faults: Faults,
        *,
        server_error: Callable[[], FaultResponse],
        throttled: Callable[[float], FaultResponse],
        exempt: tuple[str, ...] = ("/_emulator",),
    ) -> None:
        self.app = app
        self.faults = faults
        self.server_error = server_error
        self.throttled = throttled
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        line = f"{method} {scope['path']}?{scope.get('query_string', b'').decode()}"
        if self.faults.latency_seconds:
            await asyncio.sleep(self.faults.latency_seconds)
        kind = self.faults.pick(line, is_write=method in ("POST", "PUT", "PATCH", "DELETE"))
        if kind == "5xx":
            await _respond(send, *self.server_error())
        elif kind == "429":
            await _respond(send, *self.throttled(self.faults.retry_after_seconds))
        elif kind == "drop":
            await self._commit_then_drop(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _commit_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Let the app do (and commit) the work, throw its answer away, then start a response
        # and cut the connection: a real server (uvicorn) closes the socket mid-response and
        # an in-process client (httpx ASGITransport) sees the same transport error.
        async def swallow(message: dict[str, Any]) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        raise httpx.RemoteProtocolError("emulated fault: connection dropped after commit")


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
