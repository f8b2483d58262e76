"""The API's edge as `remit api` builds it: hosts, origins, body limits, rate limits, strict
queries, codec credentials and offline docs (issue 11's hardening)."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.testing import WorkflowEnvironment

from runtime.codec import format_keys, generate_key
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.temporal import payload_codec
from starter.api import BANK_EVENTS_PATH
from starter.api.app import base_app, mount, parts_from
from starter.api.codec import CODEC_PATH, INBOX_CODEC_PATH
from starter.api.inbox import SESSION_COOKIE, magic_link
from starter.client import RemitClient
from store import ApiKeys, Store
from store.api_keys import ALL_CONNECTIONS

UI = "http://127.0.0.1:8233"
SESSION_SECRET = "inbox-session-secret-for-edge-tests"
ACCOUNT = "000123456789"


@asynccontextmanager
async def edge_api(
    env: WorkflowEnvironment, tmp_path: Path, base_url: str = "http://localhost", **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], Settings]]:
    """The production app (`create_app` without its lifespan) on a fresh SQLite store."""
    # The loopback default, whatever the test process's environment allows.
    overrides.setdefault("allowed_hosts", Settings.model_fields["allowed_hosts"].default)
    settings = Settings(
        data_dir=tmp_path,
        secret_key=SecretBox.generate_key(),
        bank_webhook_secret="whsec_edge",
        inbox_session_secret=SESSION_SECRET,
        encryption_keys=format_keys({"k1": generate_key()}),
        temporal_ui_url=UI,
        **overrides,
    )
    store = await asyncio.to_thread(Store.open, settings.database_url)
    try:
        keys = ApiKeys(store.engine)
        tokens = {
            user: keys.issue(user, [scope], connections=ALL_CONNECTIONS).token
            for user, scope in (
                ("sam", "submit"),
                ("alice", "decide"),
                ("olivia", "admin"),
                ("temporal-ui", "codec"),
            )
        }
        app = mount(base_app(settings), parts_from(settings, store, RemitClient(env.client)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http, tokens, settings
    finally:
        store.close()


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# ---------------------------------------------------------------------------------------------
# Trusted hosts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/healthz", "/v1/bills", "/inbox/login", CODEC_PATH + "/decode", BANK_EVENTS_PATH]
)
async def test_a_foreign_host_is_refused_on_every_surface(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, path: str
) -> None:
    # A DNS-rebinding page reaches 127.0.0.1, but its requests name the attacker's host.
    async with edge_api(time_skipping_env, tmp_path, base_url="http://rebind.evil.example") as (
        http,
        tokens,
        _,
    ):
        for method in ("GET", "POST"):
            response = await http.request(method, path, headers=bearer(tokens["olivia"]))
            assert response.status_code == 400, (method, response.text)
            error = error_of(response)
            assert "REMIT_ALLOWED_HOSTS" in error["message"]
            assert "rebind.evil.example" in error["message"] and error["param"] == "Host"


async def test_loopback_names_are_served_by_default(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, _, settings):
        assert settings.allowed_hosts == "localhost,127.0.0.1,[::1]"
        for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
            response = await http.get("/healthz", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        for host in ("localhost.evil.example", "127.0.0.1.nip.io", "[::2]", "local host"):
            response = await http.get("/healthz", headers={"Host": host})
            assert response.status_code == 400, host


async def test_configured_hosts_and_subdomain_patterns(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(
        time_skipping_env, tmp_path, allowed_hosts="remit.example.com, *.ap.example.com"
    ) as (http, _, _):
        for host, status in (
            ("remit.example.com", 200),
            ("eu.ap.example.com:443", 200),
            ("ap.example.com", 400),  # the pattern names subdomains only
            ("localhost", 400),  # configured hosts replace the loopback default
            ("evilremit.example.com", 400),
        ):
            response = await http.get("/healthz", headers={"Host": host})
            assert response.status_code == status, (host, response.text)


def test_a_bad_host_pattern_is_refused_at_startup(tmp_path: Path) -> None:
    for bad in ("https://remit.example.com", "remit.example.com:8000", "*remit.com", " , "):
        with pytest.raises(ValueError, match="REMIT_ALLOWED_HOSTS"):
            base_app(Settings(data_dir=tmp_path, allowed_hosts=bad))


# ---------------------------------------------------------------------------------------------
# Origin / Sec-Fetch-Site on state-changing browser requests
# ---------------------------------------------------------------------------------------------


async def test_a_cross_site_page_cannot_change_anything(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, _):
        # The inbox's forms, posted from another site's page with the operator's cookie.
        for headers in (
            {"Origin": "http://evil.example", "Cookie": f"{SESSION_COOKIE}=stolen"},
            {"Sec-Fetch-Site": "cross-site", "Cookie": f"{SESSION_COOKIE}=stolen"},
            {"Origin": "null"},
        ):
            response = await http.post("/inbox/decisions/bill-1", headers=headers, content=b"x=1")
            assert response.status_code == 403, (headers, response.text)
            assert "cross-site request refused" in error_of(response)["message"]
        # A key in a browser page elsewhere is no better.
        refused = await http.post(
            "/v1/payment-runs",
            json={},
            headers=bearer(tokens["olivia"], Origin="http://evil.example"),
        )
        assert refused.status_code == 403 and error_of(refused)["param"] == "Origin"
        # Reading is not state-changing: a GET from a link elsewhere still answers.
        page = await http.get("/inbox/login", headers={"Sec-Fetch-Site": "cross-site"})
        assert page.status_code == 200


async def test_remits_own_pages_and_api_clients_pass_the_origin_check(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, _):
        # Our own page (same origin) and a plain API client (no Origin) reach the route.
        for headers in (
            {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"},
            {"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-site"},
            {},
        ):
            response = await http.post(
                "/v1/bills/no-such-bill/decisions",
                json={"decision": "approve"},
                headers=bearer(tokens["alice"], **headers),
            )
            assert response.status_code not in (400, 403), (headers, response.text)
            assert "cross-site" not in response.text


# ---------------------------------------------------------------------------------------------
# Body limits, while reading
# ---------------------------------------------------------------------------------------------


class Counting:
    """A request body that records how much of it the server pulled."""

    def __init__(self, total: int, size: int = 64 * 1024) -> None:
        self.total, self.size, self.pulled = total, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            piece = min(self.size, self.total - self.pulled)
            self.pulled += piece
            yield b"x" * piece


async def test_a_declared_length_over_the_limit_is_refused_unread(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, _):
        for path, limit, setting in (
            (BANK_EVENTS_PATH, "64 KiB", "REMIT_MAX_BANK_EVENT_BYTES"),
            (CODEC_PATH + "/decode", "4 MiB", "REMIT_MAX_CODEC_BODY_BYTES"),
            ("/v1/payment-runs", "1 MiB", "REMIT_MAX_BODY_BYTES"),
            ("/v1/bills", "16 MiB", "REMIT_MAX_DOCUMENT_BYTES"),
        ):
            size = {"64 KiB": 64 * 1024, "4 MiB": 4 << 20, "1 MiB": 1 << 20, "16 MiB": 16 << 20}
            body = Counting(size[limit] + 1)
            response = await http.post(
                path,
                content=body,
                headers=bearer(tokens["olivia"], **{"Content-Length": str(size[limit] + 1)}),
            )
            assert response.status_code == 413, (path, response.text)
            message = error_of(response)["message"]
            assert limit in message and setting in message, message
            assert body.pulled == 0  # refused before a byte was read


async def test_a_body_without_a_length_is_cut_off_at_the_limit(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # Unauthenticated surfaces first: no signature or key is checked before the limit.
    async with edge_api(time_skipping_env, tmp_path, max_bank_event_bytes=4096) as (
        http,
        tokens,
        _,
    ):
        body = Counting(10 * 1024 * 1024, size=1024)
        response = await http.post(BANK_EVENTS_PATH, content=body)
        assert response.status_code == 413, response.text
        assert "4 KiB" in error_of(response)["message"]
        assert body.pulled <= 4096 + 1024  # stopped reading one chunk past the limit

        # With an Idempotency-Key the body is counted before it is buffered for replays.
        big = Counting(8 * 1024 * 1024)
        response = await http.post(
            "/v1/payment-runs",
            content=big,
            headers=bearer(tokens["olivia"], **{"Idempotency-Key": "edge-1"}),
        )
        assert response.status_code == 413 and "1 MiB" in error_of(response)["message"]
        assert big.pulled <= (1 << 20) + 64 * 1024

        # A streamed multipart document over the limit: 413, not the form parser's 400.
        async def multipart() -> AsyncIterator[bytes]:
            yield (
                b'--edge\r\nContent-Disposition: form-data; name="file"; '
                b'filename="bill.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
            )
            async for piece in Counting(17 * 1024 * 1024):
                yield piece
            yield b"\r\n--edge--\r\n"

        response = await http.post(
            "/v1/bills",
            content=multipart(),
            headers=bearer(tokens["sam"], **{"Content-Type": "multipart/form-data; boundary=edge"}),
        )
        assert response.status_code == 413, response.text
        assert "16 MiB" in error_of(response)["message"]


async def test_over_real_http_a_stream_is_cut_off_and_a_foreign_host_refused(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Through uvicorn, as `remit api` serves it: the bank's unauthenticated endpoint stops
    reading a body that never ends, and answers 413 while the client is still sending."""
    settings = Settings(
        data_dir=tmp_path,
        secret_key=SecretBox.generate_key(),
        bank_webhook_secret="whsec_edge",
        inbox_session_secret=SESSION_SECRET,
        allowed_hosts="127.0.0.1",
    )
    store = await asyncio.to_thread(Store.open, settings.database_url)
    app = mount(
        base_app(settings), parts_from(settings, store, RemitClient(time_skipping_env.client))
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    # The socket already listens: requests wait in its backlog until uvicorn takes them.
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        # A chunked body that has sent 4 times the limit and is not done: the answer comes
        # now. (The server drops, unread, whatever a client sends after it.)
        reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        writer.write(
            f"POST {BANK_EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 1024
        for _ in range(4 * 64):
            writer.write(b"400\r\n" + chunk + b"\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        assert head.startswith(b"HTTP/1.1 413"), head
        length = re.search(rb"content-length: (\d+)", head.lower())
        assert length is not None, head
        body = await reader.readexactly(int(length.group(1)))
        assert b"64 KiB" in body and b"REMIT_MAX_BANK_EVENT_BYTES" in body
        writer.close()

        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            rebound = await http.get("/healthz", headers={"Host": "rebind.evil.example"})
            assert rebound.status_code == 400 and "REMIT_ALLOWED_HOSTS" in rebound.text
            assert (await http.get("/healthz")).status_code == 200
    finally:
        server.should_exit = True
        await serving
        store.close()


# ---------------------------------------------------------------------------------------------
# Unknown query parameters
# ---------------------------------------------------------------------------------------------


async def test_an_unknown_query_parameter_is_refused_naming_the_known_ones(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, _):
        # The issue's case: `connection` is the list's filter; the submit takes connection_id.
        response = await http.post(
            "/v1/bills",
            params={"connection": "demo-sage"},
            content=b'{"document_number": "X"}',
            headers=bearer(tokens["sam"], **{"Content-Type": "application/json"}),
        )
        assert response.status_code == 422, response.text
        error = error_of(response)
        assert error["param"] == "connection"
        assert "'connection'" in error["message"] and "connection_id" in error["message"]
        assert "pay_on" in error["message"]

        listed = await http.get(
            "/v1/bills", params={"status": "open", "vendr": "acme"}, headers=bearer(tokens["sam"])
        )
        assert listed.status_code == 422 and "'vendr'" in error_of(listed)["message"]
        health = await http.get("/healthz", params={"verbose": "1"})
        assert health.status_code == 422
        assert "takes: no query parameters" in error_of(health)["message"]
        # Declared parameters still pass.
        ok = await http.get("/v1/bills", params={"limit": "5"}, headers=bearer(tokens["sam"]))
        assert ok.status_code == 200, ok.text


async def test_odd_edge_inputs_get_a_4xx_with_a_message_never_a_5xx(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, _):
        odd: list[tuple[str, str, dict[str, str], bytes]] = [
            ("GET", "/healthz", {"Host": "[::1"}, b""),
            ("GET", "/healthz", {"Host": "loc\xe4lhost"}, b""),
            ("GET", "/healthz", {"Host": "localhost:port"}, b""),
            ("GET", "/healthz", {"Host": ""}, b""),
            ("POST", "/v1/payment-runs", {"Origin": "http://["}, b"{}"),
            ("POST", "/v1/payment-runs", {"Origin": "http://localhost:99999"}, b"{}"),
            ("POST", "/v1/payment-runs", {"Origin": "javascript:alert(1)"}, b"{}"),
            ("POST", "/v1/payment-runs", {"Content-Length": "99999999999999999999999"}, b""),
            ("POST", BANK_EVENTS_PATH, {"Content-Length": "-1"}, b""),
            ("GET", "/v1/bills?%ZZ=1&\xff=2", {}, b""),
            ("GET", "/v1/bills?status", {}, b""),
        ]
        for method, path, headers, body in odd:
            request = http.build_request(method, path, headers=bearer(tokens["olivia"]))
            for name, value in headers.items():
                request.headers[name] = value
            request.stream = httpx.ByteStream(body)
            response = await http.send(request)
            assert 400 <= response.status_code < 500, (path, headers, response.text)
            assert error_of(response)["message"], (path, headers)


# ---------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------


async def test_an_api_key_over_its_rate_gets_429_with_retry_after(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path, api_key_rate_limit="3/minute") as (
        http,
        tokens,
        _,
    ):
        for _ in range(3):
            response = await http.get("/v1/connections", headers=bearer(tokens["olivia"]))
            assert response.status_code == 200, response.text
        refused = await http.get("/v1/connections", headers=bearer(tokens["olivia"]))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        error = error_of(refused)
        assert error["type"] == "rate_limit_error"
        assert (
            "REMIT_API_KEY_RATE_LIMIT" in error["message"] and "3 per 1 minute" in error["message"]
        )
        # Another key has its own budget.
        other = await http.get("/v1/connections", headers=bearer(tokens["sam"]))
        assert other.status_code != 429


async def test_one_client_address_is_limited_across_keys_and_without_one(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path, client_rate_limit="4/minute") as (
        http,
        tokens,
        _,
    ):
        statuses = [
            (await http.get("/v1/bills", headers=headers)).status_code
            for headers in (
                bearer(tokens["olivia"]),
                bearer(tokens["sam"]),
                bearer("rk_made.up"),
                {},
                {},
            )
        ]
        assert statuses[:4] == [200, 200, 401, 401] and statuses[4] == 429
        assert (await http.get("/healthz")).status_code == 200  # health checks are not limited


async def test_inbox_sign_in_is_rate_limited_per_address(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path, login_rate_limit="2/minute") as (
        http,
        _,
        _,
    ):
        for _ in range(2):
            guess = await http.get("/inbox/login/magic", params={"token": "guess"})
            assert guess.status_code == 400
        refused = await http.get("/inbox/login/magic", params={"token": "guess"})
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert "REMIT_LOGIN_RATE_LIMIT" in error_of(refused)["message"]
        posted = await http.post("/inbox/login", data={"email": "olivia@demo.remit"})
        assert posted.status_code == 429


def test_a_bad_rate_limit_setting_is_refused_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="REMIT_API_KEY_RATE_LIMIT"):
        base_app(Settings(data_dir=tmp_path, api_key_rate_limit="lots"))
    with pytest.raises(ValueError, match="REMIT_RATE_LIMIT_STORAGE_URI"):
        base_app(Settings(data_dir=tmp_path, rate_limit_storage_uri="nosuch://x"))


# ---------------------------------------------------------------------------------------------
# The codec endpoint needs credentials
# ---------------------------------------------------------------------------------------------


async def sealed_account(settings: Settings) -> dict[str, Any]:
    codec = payload_codec(settings)
    assert codec is not None
    plain = Payload(metadata={"encoding": b"json/plain"}, data=f'"{ACCOUNT}"'.encode())
    return MessageToDict(Payloads(payloads=await codec.encode([plain])))


def plaintext(response: httpx.Response) -> bytes:
    return b"".join(base64.b64decode(p.get("data", "")) for p in response.json()["payloads"])


async def test_the_codec_refuses_callers_without_credentials(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, settings):
        sealed = await sealed_account(settings)
        for path in (CODEC_PATH + "/decode", CODEC_PATH + "/default/decode"):
            for headers in (
                {"Origin": UI},
                bearer("rk_made.up", Origin=UI),
                bearer(tokens["sam"]),  # a submit key may not read bank details
                {"Cookie": f"{SESSION_COOKIE}=forged"},
            ):
                response = await http.post(path, json=sealed, headers=headers)
                assert response.status_code == 401, (path, headers, response.text)
                assert ACCOUNT not in response.text
        refused = await http.post(CODEC_PATH + "/decode", json=sealed, headers={"Origin": UI})
        assert "passAccessToken" in refused.json()["detail"]
        assert refused.headers["access-control-allow-origin"] == UI  # the UI can show why

        # The preflight carries no credentials and is still answered for the UI.
        preflight = await http.options(
            CODEC_PATH + "/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == UI


async def test_the_codec_decodes_for_an_admin_key(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, settings):
        sealed = await sealed_account(settings)
        for path in (CODEC_PATH + "/decode", INBOX_CODEC_PATH + "/decode"):
            response = await http.post(
                path, json=sealed, headers=bearer(tokens["olivia"], Origin=UI)
            )
            assert response.status_code == 200, response.text
            assert ACCOUNT.encode() in plaintext(response)


async def test_a_codec_key_decodes_payloads_and_nothing_else(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # The key a Temporal UI (or `temporal --codec-auth`) is given: it reads payloads (what it
    # could read of a bill anyway) and may neither submit nor decide.
    async with edge_api(time_skipping_env, tmp_path) as (http, tokens, settings):
        sealed = await sealed_account(settings)
        decoded = await http.post(
            CODEC_PATH + "/decode", json=sealed, headers=bearer(tokens["temporal-ui"], Origin=UI)
        )
        assert decoded.status_code == 200, decoded.text
        assert ACCOUNT.encode() in plaintext(decoded)
        submitted = await http.post(
            "/v1/bills", json={}, headers=bearer(tokens["temporal-ui"], **{"Idempotency-Key": "c1"})
        )
        assert submitted.status_code == 403, submitted.text


async def sign_in(http: httpx.AsyncClient, user: str) -> str:
    link = magic_link(SESSION_SECRET, user)
    response = await http.get(link)
    assert response.status_code == 303, response.text
    return http.cookies[SESSION_COOKIE]


async def test_the_codec_decodes_for_an_operators_inbox_session_only(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, _, settings):
        sealed = await sealed_account(settings)
        operator = await sign_in(http, "olivia")
        http.cookies.clear()
        clerk = await sign_in(http, "sam")
        http.cookies.clear()

        def post(cookie: str, path: str = INBOX_CODEC_PATH + "/decode") -> Any:
            return http.post(
                path, json=sealed, headers={"Origin": UI, "Cookie": f"{SESSION_COOKIE}={cookie}"}
            )

        allowed = await post(operator)
        assert allowed.status_code == 200, allowed.text
        assert ACCOUNT.encode() in plaintext(allowed)
        assert allowed.headers["access-control-allow-credentials"] == "true"

        refused = await post(clerk)
        assert refused.status_code == 401 and "sam may not decode" in refused.json()["detail"]
        assert ACCOUNT not in refused.text


# ---------------------------------------------------------------------------------------------
# The docs, offline
# ---------------------------------------------------------------------------------------------


async def test_the_docs_are_served_from_the_app_with_no_external_url(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with edge_api(time_skipping_env, tmp_path) as (http, _, _):
        page = await http.get("/docs")
        assert page.status_code == 200
        html = page.text
        external = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""", html)
        urls = [a or b for a, b in external]
        assert urls, html
        assert not [u for u in urls if urlsplit(u).netloc], urls
        assert "cdn" not in html.lower() and "validator.swagger.io" not in html
        assert '"validatorUrl": null' in html
        for url in urls:
            asset = await http.get(url)
            assert asset.status_code == 200, url
        script = await http.get("/docs/assets/swagger-ui-bundle.js")
        assert "javascript" in script.headers["content-type"] and len(script.content) > 100_000
        assert (await http.get("/openapi.json")).json()["info"]["title"] == "remit"
        assert (await http.get("/redoc")).status_code == 404  # redoc would load from a CDN
