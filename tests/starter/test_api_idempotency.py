"""Idempotency-Key on POSTs: one run per key and body, replays, conflicts, and 5xx released."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from starter.api import Principal, require_scope
from tests.starter.api_harness import (
    ApiHarness,
    fresh_time_skipping_env,
    running_api,
    sample_bill,
)


class FlakyRoute:
    """A real route (as another router would add) that fails with 503 until told to work."""

    def __init__(self) -> None:
        self.calls = 0
        self.working = False
        self.crash = False
        self.router = APIRouter()

        @self.router.post("/v1/test-flaky")
        async def flaky(principal: Principal = Depends(require_scope("submit"))) -> JSONResponse:
            self.calls += 1
            if self.crash:
                raise RuntimeError("a bug, with a secret inside: sk_live_123")
            if not self.working:
                return JSONResponse({"error": {"type": "api_error"}}, status_code=503)
            return JSONResponse({"call": self.calls, "user": principal.user_id}, status_code=201)


@pytest.fixture
async def flaky() -> FlakyRoute:
    return FlakyRoute()


@pytest.fixture
async def api(tmp_path: Path, flaky: FlakyRoute) -> AsyncIterator[ApiHarness]:
    async with (
        fresh_time_skipping_env() as env,
        running_api(env, tmp_path, extra_routers=[flaky.router]) as harness,
    ):
        yield harness


async def test_a_retried_submit_replays_the_first_answer_and_starts_one_bill(
    api: ApiHarness,
) -> None:
    bill = sample_bill("INV-IDEM-1", "900.00")

    first = await api.submit_json(bill, key="idem-1")
    again = await api.submit_json(bill, key="idem-1")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and first.json()["created"] is True
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["original-request-id"] == first.headers["x-request-id"]
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    # Without the key the same document is still one bill, but the answer is not a replay.
    fresh = await api.submit_json(bill)
    assert fresh.json() == {**first.json(), "created": False, "status": fresh.json()["status"]}


async def test_the_same_key_with_another_body_is_409(api: ApiHarness) -> None:
    first = await api.submit_json(sample_bill("INV-IDEM-2", "900.00"), key="idem-2")
    other = await api.submit_json(sample_bill("INV-IDEM-2", "901.00"), key="idem-2")
    other_path = await api.http.post(
        "/v1/bills/whatever/cancel",
        headers=api.auth("sam", **{"Idempotency-Key": "idem-2"}),
    )

    assert first.status_code == 202
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["type"] == "idempotency_error" and error["param"] == "Idempotency-Key"
    assert "different request" in error["message"]
    assert other_path.status_code == 409
    assert len(await api.listed()) <= 1  # nothing was started for the second body


async def test_keys_belong_to_one_api_key(api: ApiHarness) -> None:
    bill = sample_bill("INV-IDEM-3", "900.00")

    as_sam = await api.submit_json(bill, key="shared-key")
    as_olivia = await api.http.post(
        "/v1/bills",
        content=json.dumps(sample_bill("INV-IDEM-3B", "900.00")),
        headers=api.auth("olivia", **{"Idempotency-Key": "shared-key"}),
    )

    assert as_sam.status_code == 202
    assert as_olivia.status_code == 202  # another key's record, not a mismatch
    assert as_olivia.json()["id"] != as_sam.json()["id"]


async def test_two_concurrent_requests_with_one_key_start_exactly_one_bill(
    api: ApiHarness,
) -> None:
    bill = sample_bill("INV-IDEM-RACE", "900.00")

    responses = await asyncio.gather(
        *(api.submit_json(bill, key="race", params={"key": "race-bill"}) for _ in range(2))
    )

    statuses = sorted(r.status_code for r in responses)
    created = [r for r in responses if r.status_code == 202]
    assert statuses in ([202, 202], [202, 409]), [r.text for r in responses]
    assert created[0].json()["created"] is True
    if statuses == [202, 202]:  # the second waited out the first: it must be a replay
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 1
        assert responses[0].json() == responses[1].json()
    else:
        conflict = next(r for r in responses if r.status_code == 409)
        assert "in progress" in conflict.json()["error"]["message"]
    # Only one request ran: the retry after both gives the stored answer.
    replay = await api.submit_json(bill, key="race", params={"key": "race-bill"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == created[0].json()
    assert [b["id"] for b in await api.listed()] in ([], [created[0].json()["id"]])


async def test_a_refused_document_is_replayed_as_refused(api: ApiHarness) -> None:
    bill = sample_bill("INV-IDEM-BAD", "900.00")
    bill["total_amount"] = "oops"

    first = await api.submit_json(bill, key="bad-doc")
    again = await api.submit_json(bill, key="bad-doc")

    assert first.status_code == again.status_code == 422
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_server_errors_are_not_stored_so_the_client_can_retry(
    api: ApiHarness, flaky: FlakyRoute
) -> None:
    headers = api.auth("sam", **{"Idempotency-Key": "flaky-1"})

    failed = await api.http.post("/v1/test-flaky", headers=headers)
    flaky.working = True
    worked = await api.http.post("/v1/test-flaky", headers=headers)
    replayed = await api.http.post("/v1/test-flaky", headers=headers)

    assert failed.status_code == 503 and worked.status_code == 201
    assert worked.json() == {"call": 2, "user": "sam"}
    assert replayed.json() == worked.json() and flaky.calls == 2
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_auth_failures_are_not_stored_under_the_key(api: ApiHarness) -> None:
    # alice may only decide: her refusal is about the key, so it is not remembered.
    token = api.tokens["alice"]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "scope-1"}

    refused = await api.http.post("/v1/test-flaky", headers=headers)
    record = api.h.store.get("api_key:test-alice", "scope-1")

    assert refused.status_code == 403
    assert record is None


async def test_a_bad_idempotency_key_is_400(api: ApiHarness) -> None:
    response = await api.submit_json(sample_bill(), key="x" * 300)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"


async def test_an_unexpected_failure_is_a_typed_500_and_releases_the_key(
    api: ApiHarness, flaky: FlakyRoute
) -> None:
    headers = api.auth("sam", **{"Idempotency-Key": "crash-1"})
    flaky.crash = True

    crashed = await api.http.post("/v1/test-flaky", headers=headers)
    flaky.crash, flaky.working = False, True
    retried = await api.http.post("/v1/test-flaky", headers=headers)

    assert crashed.status_code == 500
    error = crashed.json()["error"]
    assert error["type"] == "api_error" and error["request_id"] == crashed.headers["x-request-id"]
    assert "sk_live_123" not in crashed.text
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers


async def test_stored_answers_are_sealed_at_rest(api: ApiHarness, flaky: FlakyRoute) -> None:
    """A replayable answer may hold a secret shown once; the database never holds it readable."""
    flaky.working = True
    headers = api.auth("sam", **{"Idempotency-Key": "k-sealed"})
    first = await api.http.post("/v1/test-flaky", headers=headers)
    assert first.status_code == 201 and first.json()["user"] == "sam"

    with api.h.store.engine.connect() as connection:
        bodies = [
            str(body)
            for (body,) in connection.exec_driver_sql("select response_body from idempotency_keys")
        ]
    assert bodies and all("sealed" in body and "sam" not in body for body in bodies)
    again = await api.http.post("/v1/test-flaky", headers=headers)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
