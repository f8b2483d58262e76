"""Writes around bills through the API, on every ERP emulator: a vendor created with its tax
id, an account added to the chart, a file attached to an ERP bill; each a job, the same
Idempotency-Key one write."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from connectors.registry import available_platforms
from starter.api import assemble_app
from starter.api.erp import erp_router
from starter.api.erp_writes import router as erp_writes_router
from store import ApiKeys
from store.api_keys import ALL_CONNECTIONS
from tests.workflows.harness import Harness, running_remit
from tests.workflows.test_erp_bills import enter_in_erp, sync
from workflows.erp_write import ErpWriteWorkflow


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        harness.store_connection()
        yield harness


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = assemble_app(
        h.remit,
        bank_webhook_secret="whsec_writes",
        store=h.store,
        documents=h.documents,
        extra_routers=[erp_router(), erp_writes_router],
    )
    token = ApiKeys(h.store.engine).issue("sam", ("submit",), connections=ALL_CONNECTIONS).token
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://remit",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


async def finished(api: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    """Follow a job to its end, as a caller does (bounded)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        answer = await api.get(job["links"]["self"])
        assert answer.status_code == 200, answer.text
        state: dict[str, Any] = answer.json()
        if state["status"] != "running":
            return state
        assert asyncio.get_running_loop().time() < deadline, f"{job['id']} still running"
        await asyncio.sleep(0.05)


async def test_a_vendor_created_through_the_api_once_per_key(
    h: Harness, api: httpx.AsyncClient
) -> None:
    await sync(h)
    key = {"Idempotency-Key": f"vendor-{uuid.uuid4()}"}
    body = {"name": "Acme Paper Co", "tax_id": "12-9999999", "email": "ap@acme.example"}
    first = await api.post(f"/v1/connections/{h.connection.id}/vendors", json=body, headers=key)
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["operation"] == "create_vendor" and job["connection_id"] == h.connection.id
    done = await finished(api, job)
    assert done["status"] == "succeeded", done
    again = await api.post(f"/v1/connections/{h.connection.id}/vendors", json=body, headers=key)
    assert again.status_code == 202 and again.json()["id"] == job["id"]

    found = [v for v in await h.erp.find_vendors(name="Acme Paper Co") if v.name == body["name"]]
    assert [v.id for v in found] == [done["object_id"]], "one vendor, the job's"
    assert found[0].tax_id == "12-9999999"

    history = await h.env.client.get_workflow_handle(job["id"]).fetch_history()
    replayer = Replayer(workflows=[ErpWriteWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_a_vendor_the_erp_already_has_is_refused_naming_it(
    h: Harness, api: httpx.AsyncClient
) -> None:
    await sync(h)
    taken = await api.post(
        f"/v1/connections/{h.connection.id}/vendors", json={"name": "northwind office supply"}
    )
    assert taken.status_code == 409, taken.text
    assert await h.vendor_id("Northwind Office Supply") in taken.json()["error"]["message"]
    bad = await api.post(f"/v1/connections/{h.connection.id}/vendors", json={"name": ""})
    assert bad.status_code == 422


async def test_an_account_added_through_the_api_once_per_key_and_usable(
    h: Harness, api: httpx.AsyncClient
) -> None:
    await sync(h)
    accounts = f"/v1/connections/{h.connection.id}/accounts"
    key = {"Idempotency-Key": f"account-{uuid.uuid4()}"}
    body = {"name": "Cloud Hosting", "number": "6915", "account_type": "expense"}
    first = await api.post(accounts, json=body, headers=key)
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["operation"] == "create_account"
    done = await finished(api, job)
    assert done["status"] == "succeeded", done
    again = await api.post(accounts, json=body, headers=key)
    assert again.status_code == 202 and again.json()["id"] == job["id"]

    chart = [a for a in await h.erp.list_accounts() if a.name == body["name"]]
    assert [a.id for a in chart] == [done["object_id"]], "one account, the job's"
    assert (chart[0].number, chart[0].account_type.value) == ("6915", "expense")
    # Once synced, the books list it and a second request for it is refused before any job.
    await sync(h)
    listed = (await api.get(accounts, params={"account_type": "expense", "limit": 500})).json()
    assert done["object_id"] in {a["id"] for a in listed["data"]}
    taken = await api.post(accounts, json={**body, "name": "Hosting Fees"})
    assert taken.status_code == 409 and taken.json()["error"]["param"] == "number"
    assert done["object_id"] in taken.json()["error"]["message"]

    history = await h.env.client.get_workflow_handle(job["id"]).fetch_history()
    replayer = Replayer(workflows=[ErpWriteWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_an_account_remit_does_not_create_or_the_chart_has_gets_a_clear_answer(
    h: Harness, api: httpx.AsyncClient
) -> None:
    await sync(h)
    accounts = f"/v1/connections/{h.connection.id}/accounts"
    bank = await api.post(
        accounts, json={"name": "New Bank", "number": "1090", "account_type": "bank"}
    )
    assert bank.status_code == 422, bank.text
    assert "expense" in bank.json()["error"]["message"]  # it names the types it does create
    same = await api.post(
        accounts, json={"name": "office supplies", "number": "6999", "account_type": "expense"}
    )
    assert same.status_code == 409 and same.json()["error"]["param"] == "name"
    # Entered in the ERP since the last sync: the mirror cannot tell, the job's look-up does.
    from accounting import NewAccount

    await h.erp.create_account(
        NewAccount(name="Travel Meals", number="6420", account_type="expense"),
        idempotency_key=f"direct-{uuid.uuid4()}",
    )
    clash = await api.post(
        accounts, json={"name": "Travel Meals", "number": "6943", "account_type": "expense"}
    )
    assert clash.status_code == 202, clash.text
    failed = await finished(api, clash.json())
    assert failed["status"] == "failed"
    assert "Travel Meals" in failed["error"] and failed["error_type"] == "Rejected"


async def test_a_file_attached_to_an_erp_bill(h: Harness, api: httpx.AsyncClient) -> None:
    typed = await enter_in_erp(h, amount="45.00", number="NW-8001")
    assert typed.id is not None
    await sync(h)
    content = b"%PDF-1.4 receipt for NW-8001\n%%EOF\n"
    answer = await api.post(
        f"/v1/connections/{h.connection.id}/bills/{typed.id}/attachments",
        content=content,
        headers={
            "Content-Type": "application/pdf",
            "Content-Disposition": 'attachment; filename="receipt NW-8001.pdf"',
            "Idempotency-Key": f"attach-{uuid.uuid4()}",
        },
    )
    assert answer.status_code == 202, answer.text
    done = await finished(api, answer.json())
    assert done["status"] == "succeeded", done
    [attached] = [a for a in await h.erp.list_attachments(typed.id) if a.id == done["object_id"]]
    assert attached.file_name == "receipt NW-8001.pdf"
    assert attached.size in (None, len(content))

    missing = await api.post(
        f"/v1/connections/{h.connection.id}/bills/no-such-bill/attachments",
        content=content,
        headers={"Content-Disposition": 'attachment; filename="x.pdf"'},
    )
    assert missing.status_code == 404 and "/sync" in missing.json()["error"]["message"]
    unnamed = await api.post(
        f"/v1/connections/{h.connection.id}/bills/{typed.id}/attachments", content=content
    )
    assert unnamed.status_code == 422 and "filename" in unnamed.json()["error"]["message"]


async def test_a_vendor_changed_through_the_api_keeps_what_was_not_named(
    h: Harness, api: httpx.AsyncClient
) -> None:
    await sync(h)
    vendor_id = await h.vendor_id("Northwind Office Supply")
    before = await h.erp.get_vendor(vendor_id)
    answer = await api.patch(
        f"/v1/connections/{h.connection.id}/vendors/{vendor_id}",
        json={"tax_id": "94-7654321", "email": "billing@northwind.example"},
        headers={"Idempotency-Key": f"update-{uuid.uuid4()}"},
    )
    assert answer.status_code == 202, answer.text
    done = await finished(api, answer.json())
    assert done["status"] == "succeeded" and done["operation"] == "update_vendor", done
    after = await h.erp.get_vendor(vendor_id)
    assert (after.tax_id, after.email) == ("94-7654321", "billing@northwind.example")
    assert after.name == before.name and after.active == before.active

    nothing = await api.patch(f"/v1/connections/{h.connection.id}/vendors/{vendor_id}", json={})
    assert nothing.status_code == 422 and "nothing to change" in nothing.text
    unknown = await api.patch(
        f"/v1/connections/{h.connection.id}/vendors/no-such-vendor", json={"email": "a@b.c"}
    )
    assert unknown.status_code == 404
