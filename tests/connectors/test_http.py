"""The shared send loop over real HTTP: retries, Retry-After, renewal after 401, lost answers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from connectors import registry
from connectors.bank.client import SandboxBankRail
from connectors.base import (
    AuthExpired,
    ConnectionConfig,
    ConnectorError,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    parse_retry_after,
)
from connectors.http import BearerTokens, HttpClient, StaticAuth
from connectors.oauth import Credentials, TokenKeeper, TokenSet
from connectors.retries import MAX_INLINE_WAIT, READ_ATTEMPTS

HANG = "hang"
"""A scripted answer that never comes (until the test ends): the client's timeout fires."""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Platform:
    """A scripted platform on a loopback port: answers from `script` in order, then 200 with
    the request body echoed; every request it received is in `seen`."""

    url: str = ""
    script: deque[tuple[int, dict[str, str], bytes] | str] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    tokens: set[str] | None = None
    """When set, a request whose bearer token is not in it gets a 401."""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def answer(
        self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None
    ) -> None:
        self.script.append((status, {"content-type": "application/json", **(headers or {})}, body))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        self.seen.append(
            Seen(request.method, request.url.path, dict(request.headers), body, time.monotonic())
        )
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.tokens is not None and token not in self.tokens:
            response = Response(b'{"error":"token refused"}', 401)
        elif self.script:
            step = self.script.popleft()
            if isinstance(step, str):  # HANG
                await self.release.wait()
                response = Response(b"{}", 200)
            else:
                status, headers, content = step
                response = Response(content, status, headers=headers)
        else:
            response = Response(body or b'{"ok":true}', 200, media_type="application/json")
        await response(scope, receive, send)


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    app = Platform()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: the kernel queues the first connection, so no test has
    # to wait for the server to come up.
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    app.url = f"http://{host}:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield app
    finally:
        app.release.set()
        server.should_exit = True
        await serving
        sock.close()


def error_for(response: httpx.Response) -> ConnectorError:
    """A plain platform's error mapping (each connector brings its own)."""
    common: dict[str, Any] = {"platform": "plain", "status": response.status_code}
    if response.status_code == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"), timedelta(seconds=60))
        return RateLimited("throttled", retry_after=wait, **common)
    if response.status_code == 401:
        return AuthExpired("token refused", **common)
    if response.status_code >= 500:
        return Unavailable(f"answered {response.status_code}", **common)
    return Rejected(f"refused ({response.status_code})", **common)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.5)) as client:
        yield client


def client(http: httpx.AsyncClient, **kwargs: Any) -> HttpClient:
    kwargs.setdefault("auth", StaticAuth({"Authorization": "Bearer sk_test"}))
    return HttpClient(http, platform="plain", error_for=error_for, **kwargs)


async def test_retry_after_is_waited_out_before_the_next_try(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    platform.answer(429, headers={"Retry-After": "1"})

    answer = await client(http).send_json("GET", f"{platform.url}/accounts")

    assert answer == {"ok": True}
    first, second = platform.seen
    assert second.at - first.at >= 1.0  # the platform's own wait, not our backoff


async def test_a_long_retry_after_goes_to_temporal_with_the_platform_wait(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    platform.answer(429, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as raised:
        await client(http, sleep=sleep).send("GET", f"{platform.url}/accounts")

    assert raised.value.retry_after == timedelta(seconds=30) > MAX_INLINE_WAIT
    assert len(platform.seen) == 1 and waits == []


async def test_a_401_earns_one_renewal_and_one_resend(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    stored: list[Credentials] = []

    async def renew(credentials: Credentials) -> TokenSet:
        return TokenSet(access_token=SecretStr("fresh"), refresh_token=SecretStr("r2"))

    async def on_tokens(credentials: Credentials) -> None:
        stored.append(credentials)

    keeper = TokenKeeper(
        {"access_token": "stale", "refresh_token": "r1"}, renew, on_tokens=on_tokens
    )
    platform.tokens = {"fresh"}

    answer = await client(http, auth=BearerTokens(keeper)).send_json(
        "POST", f"{platform.url}/bills", json={"n": 1}
    )

    assert answer == {"n": 1}
    assert [s.headers["authorization"] for s in platform.seen] == ["Bearer stale", "Bearer fresh"]
    assert keeper.renewals == 1
    assert stored[-1]["access_token"] == "fresh" and stored[-1]["refresh_token"] == "r2"


async def test_a_401_after_the_renewal_is_auth_expired_not_a_loop(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    async def renew(credentials: Credentials) -> TokenSet:
        return TokenSet(access_token=SecretStr(f"t{len(platform.seen)}"))

    async def on_tokens(credentials: Credentials) -> None:
        return None

    keeper = TokenKeeper({"access_token": "stale"}, renew, on_tokens=on_tokens)
    platform.tokens = set()  # the grant is gone: every token is refused

    with pytest.raises(AuthExpired):
        await client(http, auth=BearerTokens(keeper)).send("GET", f"{platform.url}/accounts")

    assert len(platform.seen) == 2 and keeper.renewals == 1


async def test_a_401_the_hook_calls_hopeless_is_not_renewed(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    async def renew(credentials: Credentials) -> TokenSet:
        raise AssertionError("a revoked grant must not be renewed")

    async def on_tokens(credentials: Credentials) -> None:
        return None

    keeper = TokenKeeper({"access_token": "stale"}, renew, on_tokens=on_tokens)
    platform.tokens = set()
    auth = BearerTokens(keeper, renewable=lambda response: False)

    with pytest.raises(AuthExpired):
        await client(http, auth=auth).send("GET", f"{platform.url}/accounts")
    assert len(platform.seen) == 1


async def test_a_passing_503_is_outlasted_by_a_read(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    for _ in range(READ_ATTEMPTS - 1):
        platform.answer(503, b"down for a moment")

    answer = await client(http).send_json("GET", f"{platform.url}/accounts")

    assert answer == {"ok": True}
    assert len(platform.seen) == READ_ATTEMPTS


async def test_a_503_that_persists_is_unavailable_after_the_bounded_tries(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    for _ in range(READ_ATTEMPTS + 1):
        platform.answer(503, b"down")

    with pytest.raises(Unavailable) as raised:
        await client(http).send("GET", f"{platform.url}/accounts")

    assert raised.value.status == 503 and len(platform.seen) == READ_ATTEMPTS


async def test_a_write_503_is_sent_once(platform: Platform, http: httpx.AsyncClient) -> None:
    platform.answer(503, b"down")
    with pytest.raises(Unavailable):
        await client(http).send("POST", f"{platform.url}/bills", json={"n": 1})
    assert len(platform.seen) == 1


async def test_a_query_sent_as_post_gets_the_read_retries(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    platform.answer(503, b"down")
    answer = await client(http).send_json(
        "POST", f"{platform.url}/query", json={"q": "SELECT 1"}, repeatable=True
    )
    assert answer == {"q": "SELECT 1"} and len(platform.seen) == 2


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "k-1"}])
async def test_a_write_whose_answer_times_out_is_outcome_unknown_and_not_resent(
    platform: Platform, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    platform.script.append(HANG)

    with pytest.raises(OutcomeUnknown) as raised:
        await client(http).send("POST", f"{platform.url}/payments", json={"n": 1}, headers=headers)

    assert "look the object up by its reference" in raised.value.message
    assert len(platform.seen) == 1


async def test_a_read_whose_answer_times_out_is_asked_again(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    platform.script.append(HANG)
    assert await client(http).send_json("GET", f"{platform.url}/accounts") == {"ok": True}
    assert len(platform.seen) == 2


async def test_a_refused_connection_is_unavailable_for_a_write_too(
    http: httpx.AsyncClient,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/bills"
    closed.close()  # nothing listens there: the request never left

    with pytest.raises(Unavailable, match="could not reach plain"):
        await client(http).send("POST", url, json={"n": 1})


async def test_the_body_carries_decimals_exactly_both_ways(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    body = {"total": Decimal("1234567890.123456789"), "lines": [Decimal("0.10"), Decimal("-3")]}

    echoed = await client(http).send_json("POST", f"{platform.url}/bills", json=body)

    assert platform.seen[0].body == b'{"total":1234567890.123456789,"lines":[0.10,-3]}'
    assert platform.seen[0].headers["content-type"] == "application/json"
    assert echoed == body and isinstance(echoed["total"], Decimal)
    assert str(echoed["lines"][0]) == "0.10"


async def test_a_float_is_refused_before_sending_where_every_number_may_be_money(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        await client(http).send("POST", f"{platform.url}/bills", json={"x": 0.1}, floats=False)
    assert platform.seen == []


async def test_a_garbled_success_is_unavailable_not_a_refusal(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    for _ in range(READ_ATTEMPTS):
        platform.answer(200, b"<html>proxy error</html>")
    with pytest.raises(Unavailable, match="unreadable JSON"):
        await client(http).send_json("GET", f"{platform.url}/accounts")
    assert len(platform.seen) == READ_ATTEMPTS


@pytest.mark.parametrize("name", ["quickbooks", "xero", "netsuite", "bank"])
async def test_every_connector_reads_through_the_loop(
    platform: Platform, http: httpx.AsyncClient, name: str
) -> None:
    """A garbled 200 is a fault of the way there for every platform alike: Unavailable, with
    the read's quick tries (before, QuickBooks called it a refusal, NetSuite let a ValueError
    out, the bank returned {} and Xero gave up at the first one)."""
    for _ in range(READ_ATTEMPTS):
        platform.answer(200, b'{"truncated": ')
    read: Any
    if name == "bank":
        read = SandboxBankRail(platform.url, "sk_test", http).get_payment("pay_1")
    else:
        connection = ConnectionConfig(
            id=f"conn-{name}",
            platform=name,
            base_url=platform.url,
            company_id="1",
            credentials={"access_token": "at"},
        )
        read = registry.platform(name).connector(connection, http).get_vendor("1")

    with pytest.raises(Unavailable, match="unreadable JSON"):
        await read
    assert len(platform.seen) == READ_ATTEMPTS
    assert all(s.headers["authorization"].startswith("Bearer ") for s in platform.seen)
