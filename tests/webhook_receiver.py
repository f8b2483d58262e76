"""A webhook receiver on a real loopback HTTP port for tests: scripted answers, all it got kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from runtime.webhook_signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, verify

SECRET = "whsec_test-secret"


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Receiver:
    """Answers from `script` (then 200), keeping what it was sent. While `hold` is set to an
    unset event, requests wait for it (an attempt caught mid-way), until `release_at` requests
    are waiting if that is set (attempts known to be in flight side by side)."""

    script: list[Answer | int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    release_at: int | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: int = 0
    url: str = ""
    _answered: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def answered(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` requests have been answered (failing after `timeout` seconds)."""

        async def enough() -> None:
            async with self._answered:
                await self._answered.wait_for(lambda: len(self.received) >= count)

        await asyncio.wait_for(enough(), timeout)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.arrived.set()
        self.arrivals += 1
        if self.hold is not None and self.release_at is not None:
            if self.arrivals >= self.release_at:
                self.hold.set()
        if self.hold is not None:
            await self.hold.wait()
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        answer = self.script.pop(0) if self.script else Answer()
        if isinstance(answer, int):
            answer = Answer(answer)
        self.received.append((headers, body, answer.status))
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [(k.encode(), v.encode()) for k, v in answer.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})
        async with self._answered:
            self._answered.notify_all()

    def delivered(self, secret: str = SECRET) -> list[dict[str, Any]]:
        """The bodies the receiver accepted, each checked against the signing secret."""
        bodies = []
        for headers, body, status in self.received:
            verify(secret, headers[SIGNATURE_HEADER.lower()], body)
            event = json.loads(body)
            assert headers[EVENT_ID_HEADER.lower()] == event["id"]
            assert headers[EVENT_TYPE_HEADER.lower()] == event["type"]
            if 200 <= status < 300:
                bodies.append(event)
        return bodies

    def statuses(self) -> list[int]:
        return [status for _, _, status in self.received]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl-C to pytest


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve `receiver` on a free loopback port; its `url` says where."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn runs: a connection made now waits in the backlog, not refused.
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    receiver.url = f"http://{host}:{port}/hooks"
    config = uvicorn.Config(
        receiver, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.should_exit = True
        await task
        sock.close()
