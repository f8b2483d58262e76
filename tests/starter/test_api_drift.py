"""GET /v1/bills/drift, POST .../drift/{finding}/resolve, GET /v1/connections/{id}/requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from runtime.secrets import SecretBox
from sandbox.cli import app as cli_app
from starter.api import assemble_app
from starter.client import RemitClient
from store import ApiKeys, ConnectionRow, DocumentStore, RequestLogRow, RequestLogStore, Store
from store.api_keys import ALL_CONNECTIONS
from store.drift import Drift, DriftStore
from tests.starter.test_cli_api import serving
from tests.store.conftest import make_bill

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BILL = "bill/conn-1/INV-1"


@pytest.fixture
async def api(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> AsyncIterator[tuple[httpx.AsyncClient, Store, dict[str, str]]]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    for connection_id in ("conn-1", "conn-2"):
        store.upsert_connection(
            ConnectionRow(
                id=connection_id,
                platform="quickbooks",
                company_id="123",
                display_name=connection_id,
                settings={},
                created_at=NOW,
                updated_at=NOW,
            )
        )
    store.upsert_bill(
        make_bill(
            BILL,
            status="needs_attention",
            erp_bill_id="B-1",
            last_error="drift after reconcile: ...",
            state={"status": "reconciled"},
        )
    )
    DriftStore(store).observe(
        workflow_id=BILL,
        connection_id="conn-1",
        erp_bill_id="B-1",
        drifts=[
            Drift(
                kind="payment_voided",
                subject="P-1",
                expected={"payment_id": "P-1", "amount": {"amount": "120.00", "currency": "USD"}},
                found={"payment_id": "P-1", "voided": True},
                message="remit's payment P-1 of USD 120.00 for bill INV-1 was voided",
            )
        ],
        at=NOW,
    )
    RequestLogStore(store).append(
        [
            RequestLogRow(
                connection_id="conn-1",
                at=NOW + timedelta(seconds=n),
                actor="post_bill_payment (attempt 1)",
                workflow_id=BILL,
                method="POST",
                path="/v3/company/123/billpayment",
                status=status,
                outcome="ok" if status < 400 else "Rejected",
                error_message=None if status < 400 else "Business Validation Error",
                duration_ms=5.0,
                attempt=1,
            )
            for n, status in enumerate((200, 400, 200))
        ]
    )
    keys = ApiKeys(store.engine)
    tokens = {
        "admin": keys.issue("olivia", ("admin",), connections=ALL_CONNECTIONS).token,
        "reader": keys.issue("sam", ("submit",), connections=ALL_CONNECTIONS).token,
        "scoped": keys.issue("xavier", ("submit",), connections=["conn-2"]).token,
    }
    app = assemble_app(
        RemitClient(time_skipping_env.client),
        bank_webhook_secret="whsec_drift_tests",
        store=store,
        documents=DocumentStore(tmp_path / "documents"),
        secret_box=SecretBox(SecretBox.generate_key()),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://remit"
    ) as http:
        yield http, store, tokens
    store.close()


def auth(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


async def test_open_findings_listed_scoped_and_resolved_with_a_note(api: Any) -> None:
    http, store, tokens = api
    listed = (await http.get("/v1/bills/drift", headers=auth(tokens, "reader"))).json()
    [finding] = listed["data"]
    assert finding["bill_id"] == BILL and finding["kind"] == "payment_voided"
    assert finding["expected"]["amount"] == {"amount": "120.00", "currency": "USD"}
    bill = (await http.get(f"/v1/bills/{BILL}", headers=auth(tokens, "reader"))).json()
    assert [d["id"] for d in bill["drift"]] == [finding["id"]]
    hidden = await http.get("/v1/bills/drift", headers=auth(tokens, "scoped"))
    assert hidden.json()["data"] == []

    path = f"/v1/bills/{BILL}/drift/{finding['id']}/resolve"
    refused = await http.post(path, json={"note": "x"}, headers=auth(tokens, "reader"))
    assert refused.status_code == 403
    empty = await http.post(path, json={}, headers=auth(tokens, "admin"))
    assert empty.status_code == 422
    done = await http.post(path, json={"note": "vendor refunded"}, headers=auth(tokens, "admin"))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved" and done.json()["resolved_by"] == "olivia"
    again = await http.post(path, json={"note": "again"}, headers=auth(tokens, "admin"))
    assert again.status_code == 409

    assert (await http.get("/v1/bills/drift", headers=auth(tokens, "reader"))).json()["data"] == []
    bill = (await http.get(f"/v1/bills/{BILL}", headers=auth(tokens, "reader"))).json()
    assert bill["drift"] == []
    row = store.get_bill(BILL)
    assert row is not None and row.status == "reconciled"
    assert any(e.actor == "olivia" and e.kind == "drift" for e in store.audit_for(BILL))


async def test_the_request_log_newest_first_filtered_and_scoped(api: Any) -> None:
    http, _, tokens = api
    page = await http.get(
        "/v1/connections/conn-1/requests", params={"limit": 2}, headers=auth(tokens, "reader")
    )
    body = page.json()
    assert [r["status"] for r in body["data"]] == [200, 400] and body["has_more"]
    rest = await http.get(
        "/v1/connections/conn-1/requests",
        params={"cursor": body["next_cursor"]},
        headers=auth(tokens, "reader"),
    )
    assert [r["status"] for r in rest.json()["data"]] == [200]
    failed = await http.get(
        "/v1/connections/conn-1/requests",
        params={"min_status": 400},
        headers=auth(tokens, "reader"),
    )
    [error] = failed.json()["data"]
    assert error["error_message"] == "Business Validation Error" and error["bill_id"] == BILL
    other = await http.get("/v1/connections/conn-1/requests", headers=auth(tokens, "scoped"))
    assert other.status_code == 404
    bad = await http.get(
        "/v1/connections/conn-1/requests",
        params={"cursor": "nope"},
        headers=auth(tokens, "reader"),
    )
    assert bad.status_code == 400


async def test_remit_bills_drift_and_connections_requests(api: Any, tmp_path: Path) -> None:
    http, _, tokens = api

    async def run(*args: str) -> Result:
        env = {
            "REMIT_API_URL": url,
            "REMIT_API_KEY": tokens["reader"],
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "REMIT_PROFILE": "",
            "COLUMNS": "200",
        }
        return await asyncio.to_thread(
            lambda: CliRunner().invoke(cli_app, list(args), env=env, catch_exceptions=False)
        )

    async with serving(http._transport.app) as url:
        listed = await run("bills", "drift", "--json", "--connection", "conn-1")
        assert listed.exit_code == 0, listed.output
        [finding] = json.loads(listed.output)
        assert finding["bill_id"] == BILL and finding["kind"] == "payment_voided"
        shown = await run("bills", "drift")
        assert "was voided" in shown.output and BILL in shown.output
        requests = await run("connections", "requests", "conn-1", "--failed", "--json")
        assert requests.exit_code == 0, requests.output
        assert [r["status"] for r in json.loads(requests.output)] == [400]
