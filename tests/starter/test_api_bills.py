"""/v1/bills on a real worker: submit (JSON, UBL, refused), read, list, decide, steer, download."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from store import ApiKeys
from store.api_keys import ALL_CONNECTIONS
from tests.starter.api_harness import (
    EXAMPLES,
    ApiHarness,
    fresh_time_skipping_env,
    running_api,
    sample_bill,
)
from workflows.models import LifecycleStatus as S
from workflows.models import bill_workflow_id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with fresh_time_skipping_env() as env, running_api(env, tmp_path) as harness:
        yield harness


async def test_a_json_bill_is_accepted_and_its_state_readable(api: ApiHarness) -> None:
    bill = sample_bill("INV-API-JSON", "900.00")

    response = await api.submit_json(bill)

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["created"] is True and accepted["status"] == "received"
    assert accepted["id"].startswith(f"bill/{api.h.connection.id}/")
    body = await api.until(accepted["id"], lambda s: s["status"] == S.awaiting_approval)
    assert body["id"] == accepted["id"] and body["source"] == "workflow"
    state = body["state"]
    assert state["submitted_by"] == "sam"  # the API key's user, not anything in the body
    assert state["document_number"] == "INV-API-JSON"
    assert state["total"] == "900.00" and state["currency"] == "USD"
    assert state["pending_approvers"] == ["alice", "bob", "dave"]


async def test_options_choose_the_key_pay_date_and_rail(api: ApiHarness) -> None:
    response = await api.submit_json(
        sample_bill("INV-API-OPT", "120.00"),
        params={"key": "inv-api-opt", "pay_on": "2026-11-20", "rail": "wire"},
    )

    assert response.status_code == 202, response.text
    # The id shows the caller's key and hashes it (workflows.models.bill_workflow_id).
    expected = bill_workflow_id(api.h.connection.id, "inv-api-opt", "inv-api-opt")
    assert response.json()["id"] == expected
    state = (await api.bill(response.json()["id"]))["state"]
    assert state["pay_on"] == "2026-11-20"


async def test_a_callers_key_alone_decides_the_bill_whatever_the_document_says(
    api: ApiHarness,
) -> None:
    # A corrected document (another number) sent again under the same key is the same bill:
    # were the number part of the identity, the second submit would be a second payment.
    first = await api.submit_json(sample_bill("INV-KEY-1", "310.00"), params={"key": "po-7731"})
    again = await api.submit_json(sample_bill("INV-KEY-1B", "310.00"), params={"key": "po-7731"})

    assert first.status_code == 202, first.text
    assert again.status_code < 300, again.text
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["created"] is True and again.json()["created"] is False


async def test_a_ubl_invoice_is_accepted_as_multipart_and_downloadable(api: ApiHarness) -> None:
    content = (EXAMPLES / "invoice-ubl.xml").read_bytes()

    response = await api.http.post(
        "/v1/bills",
        files={"file": ("invoice-ubl.xml", content, "application/xml")},
        data={"key": "ubl-1"},
        headers=api.auth("sam"),
    )

    assert response.status_code == 202, response.text
    bill_id = response.json()["id"]
    assert bill_id == bill_workflow_id(api.h.connection.id, "ubl-1", "ubl-1")
    body = await api.bill(bill_id)
    digest = hashlib.sha256(content).hexdigest()
    [attachment] = body["attachments"]
    assert attachment["id"] == digest and attachment["file_name"] == "invoice-ubl.xml"

    download = await api.http.get(attachment["url"], headers=api.auth("alice"))

    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"].startswith("application/xml")
    assert "invoice-ubl.xml" in download.headers["content-disposition"]
    other = await api.http.get(
        f"/v1/bills/{bill_id}/attachments/{'0' * 64}", headers=api.auth("sam")
    )
    assert other.status_code == 404 and other.json()["error"]["type"] == "not_found"


async def test_url_encoded_bill_ids_work_too(api: ApiHarness) -> None:
    response = await api.submit_json(sample_bill("INV-API-ENC", "120.00"), params={"key": "enc"})
    bill_id = response.json()["id"]

    encoded = bill_id.replace("/", "%2F")
    got = await api.http.get(f"/v1/bills/{encoded}", headers=api.auth("sam"))

    assert got.status_code == 200 and got.json()["id"] == bill_id


async def test_a_document_with_problems_is_422_with_each_location(api: ApiHarness) -> None:
    bill = sample_bill("INV-API-BAD", "900.00")
    bill["total_amount"] = "1,000.00"
    del bill["issue_date"]

    response = await api.submit_json(bill)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    locations = {problem["location"] for problem in error["problems"]}
    assert {"issue_date", "total_amount"} <= locations
    assert error["param"] in locations
    assert "thousands" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]


async def test_malformed_json_is_422_naming_the_document(api: ApiHarness) -> None:
    response = await api.http.post(
        "/v1/bills",
        content=b'{"document_number": "INV-1", ',
        headers=api.auth("sam", **{"Content-Type": "application/json"}),
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] and error["problems"]
    assert "JSON" in error["message"]


async def test_a_broken_pdf_is_refused_naming_what_is_wrong(api: ApiHarness) -> None:
    response = await api.http.post(
        "/v1/bills",
        files={"file": ("invoice.pdf", b"%PDF-1.7\n...", "application/pdf")},
        headers=api.auth("sam"),
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "document"
    assert "not a readable PDF" in error["message"]


async def test_bad_options_are_422_naming_the_option(api: ApiHarness) -> None:
    bad_date = await api.submit_json(sample_bill(), params={"pay_on": "next tuesday"})
    bad_rail = await api.submit_json(sample_bill(), params={"rail": "pigeon"})
    no_connection = await api.submit_json(sample_bill(), params={"connection_id": "nope"})
    no_file = await api.http.post(
        "/v1/bills", data={"key": "k"}, files={"other": ("x", b"x")}, headers=api.auth("sam")
    )

    assert (bad_date.status_code, bad_date.json()["error"]["param"]) == (422, "pay_on")
    assert (bad_rail.status_code, bad_rail.json()["error"]["param"]) == (422, "rail")
    assert (no_connection.status_code, no_connection.json()["error"]["param"]) == (
        422,
        "connection_id",
    )
    assert (no_file.status_code, no_file.json()["error"]["param"]) == (422, "file")


async def test_decisions_act_as_the_keys_user_and_refusals_are_403(api: ApiHarness) -> None:
    response = await api.submit_json(sample_bill("INV-API-DEC", "900.00"))
    bill_id = response.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)

    async def decide(user: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        answer = await api.http.post(
            f"/v1/bills/{bill_id}/decisions", json=body, headers=api.auth(user)
        )
        return answer.status_code, answer.json()

    # The submitter holds only `submit`: no decisions at all.
    status, body = await decide("sam", {"decision": "approve"})
    assert status == 403 and "'decide' scope" in str(body["error"]["message"])  # type: ignore[index]
    # carol may decide, but not at this level: the workflow's validator says why.
    status, body = await decide("carol", {"decision": "approve", "actor": "alice"})
    assert status == 422  # `actor` is not a field: nobody acts for someone else
    status, body = await decide("carol", {"decision": "approve"})
    assert status == 403
    error = body["error"]
    assert isinstance(error, dict) and error["type"] == "permission_error"
    assert "carol is not in ap-approvers" in error["message"]
    status, body = await decide("alice", {"decision": "reject"})
    assert status == 422 and body["error"]["param"] == "comment"  # type: ignore[index]

    status, body = await decide("alice", {"decision": "approve", "comment": "ordered"})

    assert status == 200, body
    assert body["actor"] == "alice" and body["outcome"] == "approve" and body["via"] == "update"
    await api.until(bill_id, lambda s: s["status"] != S.awaiting_approval)
    status, body = await decide("bob", {"decision": "approve"})
    assert status == 403 and "not waiting" in str(body)
    final = await api.h.result(bill_id)
    assert final.status == S.reconciled, final.last_error
    assert [d.actor for d in final.decisions] == ["alice"]


async def test_the_submitter_cannot_approve_their_own_bill(api: ApiHarness) -> None:
    # dave holds `submit` and `decide` here; the workflow still keeps duties apart.
    keys = ApiKeys(api.h.store.engine)
    token = keys.issue(
        "dave", ["submit", "decide"], connections=ALL_CONNECTIONS, key_id="test-dave-both"
    ).token
    headers = {"Authorization": f"Bearer {token}"}
    response = await api.http.post(
        "/v1/bills", content=json.dumps(sample_bill("INV-API-SOD", "900.00")), headers=headers
    )
    bill_id = response.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)

    refused = await api.http.post(
        f"/v1/bills/{bill_id}/decisions", json={"decision": "approve"}, headers=headers
    )

    assert refused.status_code == 403
    assert "separation of duties" in refused.json()["error"]["message"]


async def test_list_filters_and_pages_with_a_cursor(api: ApiHarness) -> None:
    ids = []
    bills = [("Northwind Office Supply", "900.00"), ("Northwind Office Supply", "950.00")] + [
        ("Contoso Cleaning", f"{700 + i}.00") for i in range(3)
    ]
    amounts = [amount for _, amount in bills]
    for index, (vendor, amount) in enumerate(bills):
        bill = sample_bill(f"INV-LIST-{index}", amount, name=vendor)
        if vendor != "Northwind Office Supply":
            bill["vendor"].pop("tax_id", None)
        response = await api.submit_json(bill)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    # The store's projection is written by the worker: wait until it shows every bill.
    for bill_id in ids:
        await api.until(bill_id, lambda s: s["status"] != S.received)
    deadline = asyncio.get_running_loop().time() + 30
    while len(await api.listed()) < len(ids):
        assert asyncio.get_running_loop().time() < deadline, "the projection never caught up"
        await asyncio.sleep(0.05)

    first = await api.http.get("/v1/bills", params={"limit": 2}, headers=api.auth("bob"))
    assert first.status_code == 200
    page = first.json()
    assert len(page["data"]) == 2 and page["has_more"] and page["next_cursor"]
    everything = await api.listed(limit="2")
    assert [b["id"] for b in everything] == ids  # oldest first, each once, across pages
    contoso = await api.listed(vendor="contoso")
    assert {b["id"] for b in contoso} == set(ids[2:])
    assert {b["vendor_name"] for b in contoso} == {"Contoso Cleaning"}
    assert await api.listed(connection="someone-else") == []
    assert await api.listed(due_before="2026-01-01") == []
    assert len(await api.listed(due_before="2027-01-01")) == len(ids)
    awaiting = await api.listed(status="awaiting_approval", connection=api.h.connection.id)
    assert {b["status"] for b in awaiting} == {"awaiting_approval"}
    # Money goes out as exact decimal strings, never floats.
    assert [Decimal(b["total"]) for b in everything] == [Decimal(a) for a in amounts]
    assert all(isinstance(b["total"], str) for b in everything)
    bad = await api.http.get("/v1/bills", params={"cursor": "garbage"}, headers=api.auth("sam"))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"
    bad = await api.http.get("/v1/bills", params={"status": "nope"}, headers=api.auth("sam"))
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "status"


async def test_operator_actions_need_admin_and_unknown_bills_are_404(api: ApiHarness) -> None:
    response = await api.submit_json(sample_bill("INV-API-OPS", "900.00"))
    bill_id = response.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)

    as_clerk = await api.http.post(f"/v1/bills/{bill_id}/cancel", headers=api.auth("sam"))
    assert as_clerk.status_code == 403 and "'admin' scope" in as_clerk.json()["error"]["message"]
    unknown = await api.http.post(
        "/v1/bills/bill/nowhere/nothing/retry", json={}, headers=api.auth("olivia")
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
    missing = await api.http.get("/v1/bills/bill/nowhere/nothing", headers=api.auth("sam"))
    assert missing.status_code == 404

    cancelled = await api.http.post(
        f"/v1/bills/{bill_id}/cancel", json={"reason": "ordered twice"}, headers=api.auth("olivia")
    )

    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json() == {"id": bill_id, "action": "cancel", "accepted": True}
    final = await api.h.result(bill_id)
    assert final.status == S.cancelled
    assert any("cancelled by olivia" in e.summary for e in api.h.store.audit_for(bill_id))
    # Closed now: steering it again is a conflict, and reading it still works.
    again = await api.http.post(f"/v1/bills/{bill_id}/retry", headers=api.auth("olivia"))
    assert again.status_code in (202, 409)
    body = await api.bill(bill_id)
    assert body["status"] == "cancelled"


async def test_resolve_passes_the_operators_account(api: ApiHarness) -> None:
    api.h.connection.settings.pop("default_expense_account", None)
    bill = sample_bill("INV-API-RES", "120.00", name="Uncoded Parts GmbH")
    bill["vendor"].pop("tax_id", None)
    bill["line_items"][0].pop("account")
    response = await api.submit_json(bill)
    bill_id = response.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.needs_review)

    resolved = await api.http.post(
        f"/v1/bills/{bill_id}/resolve",
        json={"account": "Office Supplies", "reason": "usual account"},
        headers=api.auth("olivia"),
    )

    assert resolved.status_code == 202, resolved.text
    body = await api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)
    assert body["state"]["lines"][0]["account_id"]


async def test_listed_amounts_are_written_in_the_currencys_minor_units(api: ApiHarness) -> None:
    # The store's NUMERIC(…, 6) column answered "900.000000"; a client shows what we send.
    accepted = await api.submit_json(sample_bill("INV-API-PLACES", "900.00"))
    assert accepted.status_code == 202, accepted.text
    bill_id = accepted.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == "awaiting_approval")
    [summary] = [b for b in await api.listed(status="awaiting_approval") if b["id"] == bill_id]
    assert summary["total"] == "900.00" and summary["amount_due"] == "900.00"
