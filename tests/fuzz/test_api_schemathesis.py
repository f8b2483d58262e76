"""Schemathesis against the API's own OpenAPI: no request it can make gets a 5xx, and every 4xx
says, in words, what was wrong.

The app is the real one (starter.api.assemble_app) over a real worker on Temporal's test server,
the QuickBooks emulator and the sandbox bank (tests/starter/api_harness.py). Cases are generated
from /openapi.json by schemathesis and sent through httpx's ASGI transport on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from tests.starter.api_harness import ApiHarness, running_api, sample_bill

# Per operation; the profile in conftest.py bounds the other fuzz tests the same way.
EXAMPLES_PER_OPERATION = 40
LOOPBACK = ("127.0.0.1", "localhost", "::1", "remit")


@pytest.fixture
def no_outside_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Generated URLs must never leave the machine: refuse any real request off loopback."""
    real = httpx.AsyncHTTPTransport.handle_async_request

    async def guarded(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.host not in LOOPBACK:
            raise httpx.ConnectError(
                f"fuzzing sends nothing to {request.url.host}", request=request
            )
        return await real(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", guarded)
    yield


@pytest.fixture
async def api(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, no_outside_network: None
) -> AsyncIterator[ApiHarness]:
    async with running_api(time_skipping_env, tmp_path) as harness:
        yield harness


def usable_message(body: Any) -> str | None:
    """The human-readable reason in an error body, or None when there is none."""
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            return usable_message(body["error"])
        for key in ("detail", "message", "error", "title"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, list) and value:
                texts = [usable_message(item) for item in value]
                if all(texts):
                    return "; ".join(t for t in texts if t)
        if isinstance(body.get("msg"), str) and body["msg"].strip():
            return str(body["msg"])
        problems = body.get("problems")
        if isinstance(problems, list) and problems:
            return json.dumps(problems)
    return None


def to_httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis' requests-style transport kwargs, as httpx.AsyncClient.request takes them."""
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params") or None,
        "cookies": kwargs.get("cookies") or None,
    }
    if "json" in kwargs:
        request["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("files"):
        request["files"] = kwargs["files"]
        request["data"] = kwargs.get("data")
    elif "data" in kwargs and kwargs["data"] is not None:
        data = kwargs["data"]
        request["content"] = data if isinstance(data, bytes | str) else None
        if request["content"] is None:
            request["data"] = data
    return request


async def test_no_operation_answers_5xx_and_every_4xx_says_why(api: ApiHarness) -> None:
    transport = httpx.ASGITransport(app=api.http._transport.app)  # type: ignore[attr-defined]
    schema = schemathesis.openapi.from_asgi("/openapi.json", transport.app)
    # Each result is Ok(operation) or Err(InvalidSchema); an invalid schema fails here, loudly.
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert any(op.path.startswith("/v1/bills") for op in operations), "the /v1 API is missing"
    loop = asyncio.get_running_loop()
    # Real ids, so generated calls also reach existing bills and connections, not only 404s.
    submitted = await api.submit_json(sample_bill("INV-FUZZ-1"), key="fuzz-seed-bill")
    assert submitted.status_code in (200, 201, 202), submitted.text
    known_ids = {"bill_id": submitted.json()["id"], "connection_id": api.h.connection.id}
    failures: list[str] = []
    seen: dict[str, set[int]] = {}

    async def send(kwargs: dict[str, Any]) -> httpx.Response:
        return await api.http.request(**to_httpx(kwargs))

    def fuzz_operation(operation: Any) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(),
            user=st.sampled_from(["olivia", "sam", "alice", None]),
            use_known_ids=st.booleans(),
        )
        def check(case: Any, user: str | None, use_known_ids: bool) -> None:
            headers = api.auth(user) if user else {}
            if use_known_ids and case.path_parameters:
                for name in case.path_parameters:
                    if name in known_ids:
                        case.path_parameters[name] = known_ids[name]
            kwargs = case.as_transport_kwargs(base_url="http://remit", headers=headers)
            response = asyncio.run_coroutine_threadsafe(send(kwargs), loop).result(60)
            seen.setdefault(label, set()).add(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{label} → {response.status_code}: {response.text[:300]}\n"
                    f"  {case.as_curl_command()}"
                )
            elif response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = None
                if usable_message(body) is None:
                    failures.append(
                        f"{label} → {response.status_code} without a message: "
                        f"{response.text[:300]}\n  {case.as_curl_command()}"
                    )

        check()

    for operation in operations:
        # Hypothesis drives each operation synchronously in a thread; requests run on this loop.
        await asyncio.to_thread(fuzz_operation, operation)
    assert not failures, "\n".join(failures[:20])
    # Not only refusals: authenticated, well-formed calls got through somewhere.
    assert any(code < 300 for codes in seen.values() for code in codes), seen
