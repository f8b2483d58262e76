"""The API over the money surface: payee changes step by step, payments in parts, credits,
payment runs; masked details only, and a reason with every refusal."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from store import WebhookStore
from tests.starter.api_harness import ApiHarness, fresh_time_skipping_env, running_api, sample_bill
from workflows.approval import PaymentRunPolicy
from workflows.models import LifecycleStatus as S

NEW_DETAILS = {"routing_number": "011000015", "account_number": "000987654321", "rail": "ach"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with fresh_time_skipping_env() as env, running_api(env, tmp_path) as harness:
        yield harness


async def northwind_id(api: ApiHarness) -> str:
    [vendor] = await api.h.erp.find_vendors(name="Northwind Office Supply")
    assert vendor.id
    return vendor.id


async def post(api: ApiHarness, path: str, user: str, body: Any = None) -> Any:
    return await api.http.post(path, json=body, headers=api.auth(user))


async def test_the_payee_master_shows_masked_details_only(api: ApiHarness) -> None:
    listed = await api.http.get(
        "/v1/payees", params={"connection": api.h.connection.id}, headers=api.auth("sam")
    )
    assert listed.status_code == 200
    northwind = next(p for p in listed.json()["data"] if p["vendor_name"].startswith("Northwind"))
    assert northwind["details"] == "ACH ••••6789" and northwind["status"] == "verified"
    assert "000123456789" not in listed.text and "021000021" not in listed.text
    one = await api.http.get(f"/v1/payees/{northwind['id']}", headers=api.auth("sam"))
    assert one.json()["version"] == 1
    missing = await api.http.get("/v1/payees/py_nope", headers=api.auth("sam"))
    assert missing.status_code == 404 and "no payee" in missing.json()["error"]["message"]


async def test_a_payee_change_goes_through_every_step_with_the_right_people(
    api: ApiHarness,
) -> None:
    vendor_id = await northwind_id(api)
    body = {
        "connection_id": api.h.connection.id,
        "vendor_id": vendor_id,
        "vendor_name": "Northwind Office Supply",
        "details": NEW_DETAILS,
        "reason": "letter of 2026-11-30 on the vendor's letterhead",
    }
    bad = await post(api, "/v1/payees/changes", "sam", {**body, "details": {"iban": "DE00"}})
    assert bad.status_code == 422 and "IBAN" in bad.json()["error"]["message"]
    proposed = await post(api, "/v1/payees/changes", "sam", body)
    assert proposed.status_code == 201, proposed.text
    change = proposed.json()
    assert change["details"] == "ACH ••••4321" and change["replaces"] == "ACH ••••6789"
    assert "000987654321" not in proposed.text
    again = await post(api, "/v1/payees/changes", "sam", body)
    assert again.status_code == 200 and again.json()["id"] == change["id"]
    base = f"/v1/payees/changes/{change['id']}"

    async def refused(step: str, user: str, payload: Any, status: int, words: str) -> None:
        response = await post(api, f"{base}/{step}", user, payload)
        assert response.status_code == status, response.text
        assert words in response.json()["error"]["message"]

    await refused("approve", "carol", {}, 409, "not verified yet")
    await refused("verify", "sam", {"method": "call-back"}, 403, "decide")  # sam lacks the scope
    await refused("verify", "alice", {"method": "call-back"}, 403, "may not verify")
    verified = await post(api, f"{base}/verify", "olivia", {"method": "call-back on file"})
    assert verified.status_code == 200 and verified.json()["status"] == "verified"
    await refused("approve", "alice", {}, 403, "may not approve")
    first = await post(api, f"{base}/approve", "carol", {"comment": "matches the letter"})
    assert first.json()["next_step"].startswith("1 more approval")
    await refused("approve", "carol", {}, 409, "already approved")
    second = await post(api, f"{base}/approve", "erin", {})
    assert second.status_code == 200 and second.json()["status"] == "approved"
    await refused("reject", "carol", {"reason": "too late"}, 409, "already approved")

    payees = (await api.http.get("/v1/payees", headers=api.auth("sam"))).json()["data"]
    northwind = next(p for p in payees if p["vendor_id"] == vendor_id)
    assert (northwind["details"], northwind["version"]) == ("ACH ••••4321", 2)
    assert northwind["approved_by"] == ["carol", "erin"] and northwind["verified_by"] == "olivia"
    kinds = [
        e.type
        for e in WebhookStore(api.h.store).events_since(
            datetime(2000, 1, 1, tzinfo=UTC),
            event_types=[
                "payee.change_proposed",
                "payee.change_verified",
                "payee.change_approved",
            ],
            limit=10,
        )
    ]
    assert kinds == ["payee.change_proposed", "payee.change_verified", "payee.change_approved"]
    unknown = await post(api, "/v1/payees/changes/pc_nope/verify", "olivia", {"method": "x y z"})
    assert unknown.status_code == 404


async def test_a_bill_shows_its_payee_and_waits_for_a_reviewed_change(api: ApiHarness) -> None:
    bill = sample_bill("INV-API-PAYEE", "120.00", bank_account="011000015/000987654321")
    accepted = await api.submit_json(bill)
    bill_id = accepted.json()["id"]
    detail = await api.until(bill_id, lambda s: s["status"] == S.needs_review and s["payee"])
    payee = detail["state"]["payee"]
    assert payee["status"] == "changed" and payee["document_masked"] == "ACH ••••4321"
    listed = await api.listed(status="needs_review")
    [summary] = [b for b in listed if b["id"] == bill_id]
    assert summary["payee"].startswith("ACH ••••4321 (changed bank details; change pc_")
    assert "000987654321" not in json.dumps(listed)


async def test_a_bill_paid_in_parts_through_the_api(api: ApiHarness) -> None:
    accepted = await api.submit_json(
        sample_bill("INV-API-PARTS", "900.00"), params={"pay_amount": "400.00"}
    )
    assert accepted.status_code == 202, accepted.text
    bill_id = accepted.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)
    decided = await post(api, f"/v1/bills/{bill_id}/decisions", "alice", {"decision": "approve"})
    assert decided.status_code == 200
    await api.until(bill_id, lambda s: s["status"] == S.partially_paid)
    too_much = await post(api, f"/v1/bills/{bill_id}/payments", "paula", {"amount": "600.00"})
    # An amount no ledger holds is the caller's mistake, said at the edge (it was a 500).
    too_fine = await post(api, f"/v1/bills/{bill_id}/payments", "paula", {"amount": "0.4974802"})
    assert too_fine.status_code == 422 and too_fine.json()["error"]["param"] == "amount"
    assert too_much.status_code == 409 and "more than" in too_much.json()["error"]["message"]
    not_sam = await post(api, f"/v1/bills/{bill_id}/payments", "sam", {"amount": "500.00"})
    assert not_sam.status_code == 403
    not_a_payer = await post(api, f"/v1/bills/{bill_id}/payments", "carol", {"amount": "500.00"})
    assert (
        not_a_payer.status_code == 409 and "not a payer" in not_a_payer.json()["error"]["message"]
    )
    paid = await post(api, f"/v1/bills/{bill_id}/payments", "paula", {"amount": "500.00"})
    assert paid.status_code == 200, paid.text
    done = await api.until(bill_id, lambda s: s["status"] == S.reconciled)
    assert [p["amount"] for p in done["state"]["payments"]] == ["400.00", "500.00"]
    over = await api.submit_json(
        sample_bill("INV-API-OVER", "100.00"), params={"pay_amount": "150.00"}
    )
    assert over.status_code == 422 and over.json()["error"]["param"] == "pay_amount"


async def test_a_credit_through_the_api_is_applied_and_shown_as_spent(api: ApiHarness) -> None:
    credit = sample_bill("CM-API-1", "100.00")
    credit["vendor"].pop("bank_account")
    accepted = await api.http.post(
        "/v1/credits", content=json.dumps(credit), headers=api.auth("sam")
    )
    assert accepted.status_code == 202, accepted.text
    credit_id = accepted.json()["id"]
    async with api.h.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        await api.h.remit.temporal.get_workflow_handle(credit_id).result()
    listed = (await api.http.get("/v1/credits", headers=api.auth("sam"))).json()
    assert [c["remaining"] for c in listed["data"]] == ["100.00"]
    bill = await api.submit_json(sample_bill("INV-API-NET", "300.00"))
    bill_id = bill.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.reconciled)
    after = (await api.http.get("/v1/credits", headers=api.auth("sam"))).json()
    [row] = after["data"]
    assert row["remaining"] == "0.00" and [a["bill_id"] for a in row["applications"]] == [bill_id]
    assert [p.amount for p in await api.h.bank_payments()] == [Decimal("200.00")]


async def test_a_payment_run_through_the_api(api: ApiHarness) -> None:
    h = api.h
    h.deps.policy.payment_runs[h.connection.id] = PaymentRunPolicy(days=["tuesday"])
    today = (await h.env.get_current_time()).date()
    bill = sample_bill("INV-API-RUN", "120.00")
    bill["issue_date"], bill["due_date"] = today.isoformat(), today.isoformat()
    bill_id = (await api.submit_json(bill)).json()["id"]
    await api.until(bill_id, lambda s: s["awaiting_run"])
    await h.until_recorded(bill_id, lambda row: bool(row.state.get("awaiting_run")))
    started = await post(
        api,
        "/v1/payment-runs",
        "olivia",
        {"connection_id": h.connection.id, "run_date": str(today)},
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    await h.until_run(run_id, lambda r: r.status == "proposed")
    shown = await api.http.get(f"/v1/payment-runs/{run_id}", headers=api.auth("sam"))
    assert shown.json()["state"]["groups"][0]["bills"][0]["workflow_id"] == bill_id
    refused = await post(api, f"/v1/payment-runs/{run_id}/release", "alice", {})
    assert refused.status_code == 409 and "not a payer" in refused.json()["error"]["message"]
    released = await post(api, f"/v1/payment-runs/{run_id}/release", "paula", {})
    assert released.status_code == 200, released.text
    await api.until(bill_id, lambda s: s["status"] == S.reconciled)
    await h.until_run(run_id, lambda r: r.status == "paid")
    listed = (await api.http.get("/v1/payment-runs", headers=api.auth("sam"))).json()["data"]
    assert [(r["id"], r["status"], r["totals"]) for r in listed] == [
        (run_id, "paid", {"USD": "120.00"})
    ]
    unknown = await api.http.get("/v1/payment-runs/payment-run/nope", headers=api.auth("sam"))
    assert unknown.status_code == 404
    assert date.fromisoformat(str(today))
