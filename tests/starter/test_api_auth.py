"""API keys and scopes, typed errors, request ids, request logs, connections and the docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from store import ApiKeys
from store.api_keys import ALL_CONNECTIONS
from tests.starter.api_harness import ApiHarness, running_api, sample_bill

BILL_ID = "bill/test/nothing"


@pytest.fixture
async def api(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[ApiHarness]:
    # These tests start no bill, so the shared test server is safe to use.
    async with running_api(time_skipping_env, tmp_path) as harness:
        yield harness


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer rk_test-sam.not-the-secret", id="wrong-secret"),
        pytest.param("Bearer rk_nobody.whatever", id="unknown-key"),
        pytest.param("Basic c2FtOnNlY3JldA==", id="not-bearer"),
        pytest.param("Bearer garbage", id="malformed"),
    ],
)
async def test_requests_without_a_valid_key_are_401(
    api: ApiHarness, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    listing = await api.http.get("/v1/bills", headers=headers)
    submit = await api.http.post("/v1/bills", json=sample_bill(), headers=headers)

    for response in (listing, submit):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "authentication_error"
        assert error["request_id"] == response.headers["x-request-id"]
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_revoked_key_is_401(api: ApiHarness) -> None:
    keys = ApiKeys(api.h.store.engine)
    issued = keys.issue("sam", ["submit"], connections=ALL_CONNECTIONS, key_id="to-revoke")
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert (await api.http.get("/v1/bills", headers=headers)).status_code == 200

    assert keys.revoke("to-revoke")

    assert (await api.http.get("/v1/bills", headers=headers)).status_code == 401


async def test_a_missing_scope_is_403_naming_it_and_admin_has_every_scope(api: ApiHarness) -> None:
    as_approver = await api.http.post("/v1/bills", json=sample_bill(), headers=api.auth("alice"))
    clerk_connections = await api.http.get("/v1/connections", headers=api.auth("sam"))
    approver_cancels = await api.http.post(f"/v1/bills/{BILL_ID}/cancel", headers=api.auth("bob"))
    admin_decides = await api.http.post(
        f"/v1/bills/{BILL_ID}/decisions", json={"decision": "approve"}, headers=api.auth("olivia")
    )

    assert as_approver.status_code == 403
    assert as_approver.json()["error"]["type"] == "permission_error"
    assert "'submit' scope" in as_approver.json()["error"]["message"]
    assert clerk_connections.status_code == 403
    assert "'admin' scope" in clerk_connections.json()["error"]["message"]
    assert approver_cancels.status_code == 403
    # admin passes the scope check; the bill simply does not exist.
    assert admin_decides.status_code == 404


async def test_any_valid_key_may_read(api: ApiHarness) -> None:
    for user in api.tokens:
        response = await api.http.get("/v1/bills", headers=api.auth(user))
        assert response.status_code == 200
        assert response.json() == {"data": [], "has_more": False, "next_cursor": None}


async def test_body_validation_errors_are_typed_with_the_failing_field(api: ApiHarness) -> None:
    response = await api.http.post(
        f"/v1/bills/{BILL_ID}/decisions",
        json={"decision": "maybe"},
        headers=api.auth("alice"),
    )
    not_json = await api.http.post(
        f"/v1/bills/{BILL_ID}/decisions",
        content=b"{nope",
        headers=api.auth("alice", **{"Content-Type": "application/json"}),
    )
    bad_limit = await api.http.get("/v1/bills", params={"limit": 0}, headers=api.auth("sam"))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "decision"
    assert "approve" in error["message"]
    assert not_json.status_code == 422 and "JSON" in not_json.json()["error"]["message"]
    assert bad_limit.status_code == 422 and bad_limit.json()["error"]["param"] == "limit"


async def test_every_response_carries_a_request_id(api: ApiHarness) -> None:
    responses = [
        await api.http.get("/healthz"),
        await api.http.get("/no/such/route"),
        await api.http.get("/v1/bills", headers=api.auth("sam")),
        await api.http.get("/v1/bills"),
        await api.http.get("/openapi.json"),
        await api.http.post("/v1/rails/sandbox-bank/events", content=b"{}"),
    ]
    ids = [response.headers["x-request-id"] for response in responses]
    assert all(request_id.startswith("req_") for request_id in ids)
    assert len(set(ids)) == len(ids)
    assert responses[1].status_code == 404
    assert responses[1].json()["error"]["type"] == "not_found"
    assert responses[1].json()["error"]["request_id"] == ids[1]

    echoed = await api.http.get("/healthz", headers={"X-Request-Id": "client-trace-42"})
    replaced = await api.http.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert echoed.headers["x-request-id"] == "client-trace-42"
    assert replaced.headers["x-request-id"].startswith("req_")


async def test_each_request_is_logged_once_without_secrets(
    api: ApiHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="remit.api.access")
    token = api.tokens["olivia"]

    response = await api.http.post(
        "/v1/connections",
        json={
            "platform": "quickbooks",
            "company_id": "123",
            "base_url": "http://qbo.example",
            "credentials": {"refresh_token": "super-secret-refresh"},
        },
        headers=api.auth("olivia", **{"X-Request-Id": "trace-log-1"}),
    )

    lines = [r.getMessage() for r in caplog.records if r.name == "remit.api.access"]
    [line] = [line for line in lines if "trace-log-1" in line]
    assert response.status_code == 201
    assert "POST /v1/connections 201" in line and "key_id=test-olivia" in line
    assert "ms" in line
    logged = caplog.text
    assert token not in logged and token.split(".")[1] not in logged
    assert "super-secret-refresh" not in logged


async def test_connections_never_show_credentials(api: ApiHarness) -> None:
    created = await api.http.post(
        "/v1/connections",
        json={
            "id": "acme-xero",
            "platform": "xero",
            "company_id": "tenant-1",
            "base_url": "https://api.xero.example/",
            "credentials": {"access_token": "tok-123", "refresh_token": "ref-456"},
            "settings": {"default_expense_account": "Office Supplies"},
        },
        headers=api.auth("olivia"),
    )
    listed = await api.http.get("/v1/connections", headers=api.auth("olivia"))
    health = await api.http.get("/v1/connections/acme-xero/health", headers=api.auth("olivia"))
    again = await api.http.post(
        "/v1/connections",
        json={"id": "acme-xero", "platform": "xero", "company_id": "t", "base_url": "http://x"},
        headers=api.auth("olivia"),
    )
    unknown_platform = await api.http.post(
        "/v1/connections",
        json={"platform": "sap", "company_id": "t", "base_url": "http://x"},
        headers=api.auth("olivia"),
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == "acme-xero" and body["has_credentials"] is True
    assert body["base_url"] == "https://api.xero.example"
    for text in (created.text, listed.text, health.text):
        assert "tok-123" not in text and "ref-456" not in text and '"credentials"' not in text
    assert {c["id"] for c in listed.json()["data"]} == {api.h.connection.id, "acme-xero"}
    stored = api.h.store.get_connection("acme-xero")
    assert stored is not None and stored.credentials_encrypted is not None
    assert b"tok-123" not in stored.credentials_encrypted
    assert api.box.open(stored.credentials_encrypted)["access_token"] == "tok-123"
    assert health.status_code == 200
    assert health.json()["healthy"] is True and health.json()["status"] == "active"
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"
    assert unknown_platform.status_code == 422
    assert unknown_platform.json()["error"]["param"] == "platform"
    missing = await api.http.get("/v1/connections/nope/health", headers=api.auth("olivia"))
    assert missing.status_code == 404


async def test_a_failing_connection_reports_unhealthy(api: ApiHarness) -> None:
    api.h.store.mark_connection(api.h.connection.id, status="needs_relink", error="token revoked")

    health = await api.http.get(
        f"/v1/connections/{api.h.connection.id}/health", headers=api.auth("olivia")
    )

    assert health.json()["healthy"] is False
    assert health.json()["status"] == "needs_relink"
    assert health.json()["last_error"] == "token revoked"


async def test_openapi_documents_the_v1_api_at_docs(api: ApiHarness) -> None:
    docs = await api.http.get("/docs")
    schema = (await api.http.get("/openapi.json")).json()

    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = schema["paths"]
    assert {"/v1/bills", "/v1/bills/{bill_id}/decisions", "/v1/connections"} <= set(paths)
    submit = paths["/v1/bills"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(submit["requestBody"]["content"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
