"""The read API over the books' mirror: listings, filters, pages, bills with their payments,
money as written, connection scoping and the sync history, with the mirror filled through
MirrorStore.apply as the sync engine fills it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from accounting.model import (
    Account,
    AccountCategory,
    AccountType,
    Attachment,
    Bill,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    Vendor,
)
from connectors.mirror import MirrorKind, MirrorRecord
from runtime.secrets import SecretBox
from starter.api import assemble_app
from starter.api.erp import erp_router
from starter.api.erp_writes import router as erp_writes_router
from starter.client import RemitClient
from store import ApiKeys, ConnectionRow, Store, mirror
from store.api_keys import ALL_CONNECTIONS
from tests.postgres import PostgresDatabases, postgres_admin_url

__all__ = ["postgres_admin_url"]  # a fixture

CONNECTION = "books-qbo"
OTHER = "books-xero"
SYNCED = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@dataclass
class Books:
    http: httpx.AsyncClient
    store: Store
    tokens: dict[str, str]
    temporal: Client

    def auth(self, who: str = "reader") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def get(self, path: str, who: str = "reader", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth(who))

    async def ok(self, path: str, who: str = "reader", **params: Any) -> dict[str, Any]:
        response = await self.get(path, who, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _record(kind: MirrorKind, model: Any, platform: dict[str, Any], minutes: int) -> MirrorRecord:
    return MirrorRecord(
        kind=kind,
        platform_id=str(model.id),
        data=model.model_dump(mode="json"),
        platform_data=platform,
        platform_updated_at=SYNCED - timedelta(minutes=minutes),
    )


def vendors() -> list[MirrorRecord]:
    return [
        _record(
            MirrorKind.vendors,
            Vendor(id=f"V{n:02d}", name=f"Vendor {n}", tax_id=f"12-34567{n:02d}", active=n != 6),
            {"Id": f"V{n:02d}", "DisplayName": f"Vendor {n}", "Balance": Decimal("10.10") * n},
            minutes=60 - n,
        )
        for n in range(1, 8)
    ]


def accounts() -> list[MirrorRecord]:
    def account(number: str, name: str, kind: AccountType, cat: AccountCategory) -> MirrorRecord:
        return _record(
            MirrorKind.accounts,
            Account(id=f"A{number}", name=name, number=number, category=cat, account_type=kind),
            {"Id": f"A{number}", "AccountType": kind.value},
            minutes=30,
        )

    return [
        account("1000", "Checking", AccountType.bank, AccountCategory.asset),
        account(
            "2000", "Accounts Payable", AccountType.accounts_payable, AccountCategory.liability
        ),
        account("6100", "Office Supplies", AccountType.expense, AccountCategory.expense),
        account("6200", "Rent", AccountType.expense, AccountCategory.expense),
    ]


def bill(number: int, vendor: str, total: str, status: BillStatus, **extra: Any) -> MirrorRecord:
    amount = Decimal(total)
    model = Bill(
        id=f"B{number}",
        vendor_id=vendor,
        vendor_name=f"Vendor {vendor[1:]}",
        document_number=f"INV-{number}",
        issue_date=date(2026, 11, number),
        due_date=date(2026, 12, number),
        currency="USD",
        lines=[BillLine(amount=amount, account_id="A6100")],
        total=amount,
        balance=Decimal("0") if status == BillStatus.paid else amount,
        status=status,
        **extra,
    )
    return _record(
        MirrorKind.bills,
        model,
        {"Id": f"B{number}", "TotalAmt": amount, "DocNumber": f"INV-{number}"},
        minutes=10 - number,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'remit.db'}"
        return
    databases = PostgresDatabases(request.getfixturevalue("postgres_admin_url"))
    try:
        yield databases.create().render_as_string(hide_password=False)
    finally:
        databases.drop_all()


@pytest.fixture
async def own_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of these tests' own: the syncs they start have no worker, and a workflow
    left pending on the session's shared server stops its time skipping for every later test."""
    import os
    import shutil
    import sys

    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.contrib.pydantic import pydantic_data_converter

    from tests.conftest import indexed_value_types

    path = shutil.which("temporal-test-server") or shutil.which(
        "temporal-test-server", path=os.path.dirname(sys.executable)
    )
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=pydantic_data_converter
    )
    # Bills started here carry remit's search attributes.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes=indexed_value_types())
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def books(
    database_url: str, tmp_path: Path, own_temporal: WorkflowEnvironment
) -> AsyncIterator[Books]:
    time_skipping_env = own_temporal
    store = Store.open(database_url)
    now = datetime.now(UTC)
    for connection_id, platform in ((CONNECTION, "quickbooks"), (OTHER, "xero")):
        store.upsert_connection(
            ConnectionRow(
                id=connection_id,
                platform=platform,
                company_id=f"company-{connection_id}",
                display_name=connection_id,
                base_url="http://127.0.0.1:9",
                settings={},
                created_at=now,
                updated_at=now,
            )
        )
    keys = ApiKeys(store.engine)
    tokens = {
        "reader": keys.issue("sam", ("submit",), connections=ALL_CONNECTIONS).token,
        "scoped": keys.issue("xavier", ("submit",), connections=[OTHER]).token,
        "admin": keys.issue("olivia", ("admin",), connections=ALL_CONNECTIONS).token,
    }
    books_mirror = mirror.MirrorStore(store)
    payment = BillPayment(
        id="P1",
        vendor_id="V01",
        payment_date=date(2026, 11, 20),
        currency="USD",
        source_account_id="A1000",
        total=Decimal("400.00"),
        lines=[BillPaymentLine(bill_id="B2", amount=Decimal("400.00"))],
    )
    other_payment = BillPayment(
        id="P2",
        vendor_id="V01",
        payment_date=date(2026, 11, 21),
        currency="USD",
        source_account_id="A1000",
        total=Decimal("75.00"),
        lines=[BillPaymentLine(bill_id="B3", amount=Decimal("75.00"))],
    )
    records = [
        *vendors(),
        *accounts(),
        bill(1, "V01", "1250.5", BillStatus.open),
        bill(2, "V01", "400.00", BillStatus.paid, payment_ids=["P1"]),
        bill(3, "V01", "75.00", BillStatus.paid),
        bill(4, "V02", "99.99", BillStatus.open),
        bill(5, "V03", "10.00", BillStatus.open),  # deleted in the platform below
        _record(MirrorKind.bill_payments, payment, {"Id": "P1"}, minutes=5),
        _record(MirrorKind.bill_payments, other_payment, {"Id": "P2"}, minutes=5),
        _record(
            MirrorKind.attachments,
            Attachment(
                id="F1", bill_id="B2", file_name="inv-2.pdf", content_type="application/pdf", size=1
            ),
            {"Id": "F1"},
            minutes=5,
        ),
    ]
    books_mirror.apply(CONNECTION, records, synced_at=SYNCED)
    books_mirror.apply(
        CONNECTION,
        [MirrorRecord(kind=MirrorKind.bills, platform_id="B5", deleted=True)],
        synced_at=SYNCED,
    )
    for kind in MirrorKind:
        books_mirror.set_watermark(CONNECTION, kind, "w1", synced_at=SYNCED)
    books_mirror.apply(OTHER, vendors()[:2], synced_at=SYNCED)
    app = assemble_app(
        RemitClient(time_skipping_env.client),
        bank_webhook_secret="whsec_erp_tests",
        store=store,
        documents=_documents(tmp_path),
        secret_box=SecretBox(SecretBox.generate_key()),
        extra_routers=[erp_router(), erp_writes_router],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as http:
        yield Books(http=http, store=store, tokens=tokens, temporal=time_skipping_env.client)
    store.close()


def _documents(tmp_path: Path) -> Any:
    from store import DocumentStore

    return DocumentStore(tmp_path / "documents")


async def test_vendors_page_by_page_with_when_they_were_synced(books: Books) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await books.ok(f"/v1/connections/{CONNECTION}/vendors", **params)
        pages += 1
        assert len(page["data"]) <= 3
        assert page["last_synced_at"].startswith("2026-12-02T09:30")
        assert page["sync"]["running"] is False
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"V{n:02d}" for n in range(1, 8)]
    first = (await books.ok(f"/v1/connections/{CONNECTION}/vendors/V03"))["data"]
    assert first["tax_id"] == "12-3456703"


async def test_platform_fields_only_on_request_and_money_never_a_float(books: Books) -> None:
    plain = await books.ok(f"/v1/connections/{CONNECTION}/bills", status="open")
    assert all("platform_data" not in item for item in plain["data"])
    response = await books.get(
        f"/v1/connections/{CONNECTION}/bills", status="open", include="platform_data"
    )
    assert response.status_code == 200
    by_id = {item["id"]: item for item in response.json()["data"]}
    # The unified amount at the currency's minor units, as the bill routes write it...
    assert by_id["B1"]["data"]["total"] == "1250.50"
    assert by_id["B1"]["data"]["lines"][0]["amount"] == "1250.50"
    # ...and the platform's own number digit for digit, never through float.
    raw = json.loads(response.text, parse_float=Decimal)
    b1 = next(item for item in raw["data"] if item["id"] == "B1")
    assert b1["platform_data"]["TotalAmt"] == Decimal("1250.5")
    assert '"TotalAmt":99.99' in response.text


async def test_filters_that_apply_to_each_kind(books: Books) -> None:
    base = f"/v1/connections/{CONNECTION}"
    open_bills = await books.ok(f"{base}/bills", status="open")
    assert sorted(item["id"] for item in open_bills["data"]) == ["B1", "B4"]
    v02 = await books.ok(f"{base}/bills", vendor_id="V02")
    assert [item["id"] for item in v02["data"]] == ["B4"]
    expense = await books.ok(f"{base}/accounts", account_type="expense")
    assert sorted(item["data"]["name"] for item in expense["data"]) == ["Office Supplies", "Rent"]
    inactive = await books.ok(f"{base}/vendors", status="inactive")
    assert [item["id"] for item in inactive["data"]] == ["V06"]
    recent = await books.ok(
        f"{base}/bills", updated_since=(SYNCED - timedelta(minutes=7, seconds=30))
    )
    assert sorted(item["id"] for item in recent["data"]) == ["B3", "B4"]
    # A deleted bill is gone from the listing unless asked for, and says so.
    assert "B5" not in {item["id"] for item in (await books.ok(f"{base}/bills"))["data"]}
    everything = await books.ok(f"{base}/bills", include_deleted="true")
    assert {item["id"]: item["deleted"] for item in everything["data"]}["B5"] is True


async def test_a_filter_that_does_not_apply_is_refused_naming_what_does(books: Books) -> None:
    base = f"/v1/connections/{CONNECTION}"
    response = await books.get(f"{base}/vendors", vendor_id="V01")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "vendor_id"
    assert "updated_since" in error["message"] and "status" in error["message"]
    misspelt = await books.get(f"{base}/accounts", acount_type="expense")
    assert misspelt.status_code == 422 and misspelt.json()["error"]["param"] == "acount_type"
    bad_status = await books.get(f"{base}/bills", status="settled")
    assert bad_status.status_code == 422
    assert "open" in bad_status.json()["error"]["message"]
    bad_cursor = await books.get(f"{base}/vendors", cursor="not-one-of-ours")
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"]["param"] == "cursor"
    too_many = await books.get(f"{base}/vendors", limit=501)
    assert too_many.status_code == 422
    unknown_kind = await books.get(f"{base}/purchase-orders")
    assert unknown_kind.status_code == 404


async def test_a_bill_with_its_payments_and_attachments(books: Books) -> None:
    paid = await books.ok(f"/v1/connections/{CONNECTION}/bills/B2")
    assert paid["status"] == "paid"
    assert [p["id"] for p in paid["payments"]] == ["P1"]  # not P2, which pays B3
    assert paid["payments"][0]["data"]["total"] == "400.00"
    assert [a["data"]["file_name"] for a in paid["attachments"]] == ["inv-2.pdf"]
    missing = await books.get(f"/v1/connections/{CONNECTION}/bills/B404")
    assert missing.status_code == 404
    assert "B404" in missing.json()["error"]["message"]


async def test_a_key_for_other_connections_learns_nothing(books: Books) -> None:
    for path in ("vendors", "bills/B1", "sync-runs"):
        response = await books.get(f"/v1/connections/{CONNECTION}/{path}", "scoped")
        assert response.status_code == 404, path
        assert "V01" not in response.text and 'B1"' not in response.text
    theirs = await books.ok(f"/v1/connections/{OTHER}/vendors", "scoped")
    assert [item["id"] for item in theirs["data"]] == ["V01", "V02"]
    nobody = await books.get(f"/v1/connections/{CONNECTION}/vendors", "scoped")
    unknown = await books.get("/v1/connections/no-such/vendors")
    assert nobody.json()["error"]["message"].replace(CONNECTION, "x") == unknown.json()["error"][
        "message"
    ].replace("no-such", "x")


async def test_sync_history_and_a_running_sync_show_in_every_answer(books: Books) -> None:
    runs = mirror.MirrorStore(books.store)
    runs.start_run(
        run_id="run-1",
        connection_id=CONNECTION,
        mode="full",
        trigger="connect",
        workflow_id=f"sync/{CONNECTION}",
        started_at=SYNCED - timedelta(minutes=5),
    )
    runs.finish_run(
        "run-1",
        status="succeeded",
        objects_changed=16,
        counts={"vendors": 7, "accounts": 4, "bills": 5},
        errors=[],
        finished_at=SYNCED,
    )
    runs.start_run(
        run_id="run-2",
        connection_id=CONNECTION,
        mode="incremental",
        trigger="manual",
        workflow_id=f"sync/{CONNECTION}",
        started_at=SYNCED + timedelta(minutes=1),
    )
    history = await books.ok(f"/v1/connections/{CONNECTION}/sync-runs")
    assert [run["id"] for run in history["data"]] == ["run-2", "run-1"]
    done = history["data"][1]
    assert done["status"] == "succeeded" and done["objects_changed"] == 16
    assert done["counts"]["vendors"] == 7 and done["finished_at"].startswith("2026-12-02T09:30")
    assert history["counts"]["vendors"] == 7 and history["counts"]["bills"] == 4
    one = await books.ok(f"/v1/connections/{CONNECTION}/sync-runs/run-1")
    assert one["mode"] == "full" and one["trigger"] == "connect"
    listing = await books.ok(f"/v1/connections/{CONNECTION}/accounts")
    assert listing["sync"]["running"] is True
    assert listing["sync"]["latest_run"]["id"] == "run-2"
    elsewhere = await books.get(f"/v1/connections/{OTHER}/sync-runs/run-1")
    assert elsewhere.status_code == 404


async def test_post_sync_answers_a_job_and_refuses_who_may_not(books: Books) -> None:
    path = f"/v1/connections/{CONNECTION}/sync"
    first = await books.http.post(
        path, json={"full": False}, headers={**books.auth(), "Idempotency-Key": "sync-1"}
    )
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["object"] == "sync_job" and job["connection_id"] == CONNECTION
    assert job["links"]["self"] == f"/v1/sync-jobs/{job['id']}"
    replayed = await books.http.post(
        path, json={"full": False}, headers={**books.auth(), "Idempotency-Key": "sync-1"}
    )
    assert replayed.status_code == 202 and replayed.json()["id"] == job["id"]
    assert replayed.headers.get("idempotent-replayed") == "true"
    scoped = await books.http.post(path, headers=books.auth("scoped"))
    assert scoped.status_code == 404
    wrong_body = await books.http.post(path, json={"fulll": True}, headers=books.auth())
    assert wrong_body.status_code == 422
    not_a_sync = await books.get("/v1/sync-jobs/bill/books-qbo/INV-1")
    assert not_a_sync.status_code == 404
    theirs = await books.get(job["links"]["self"], "scoped")
    assert theirs.status_code == 404
    # No worker runs it here; end it so it holds nothing on the shared test server.
    await books.temporal.get_workflow_handle(job["id"]).terminate("test over")


async def test_the_listings_document_the_filters_each_takes(books: Books) -> None:
    schema = (await books.http.get("/openapi.json")).json()["paths"]

    def takes(kind: str) -> set[str]:
        get = schema[f"/v1/connections/{{connection_id}}/{kind}"]["get"]
        return {p["name"] for p in get["parameters"] if p["in"] == "query"}

    common = {"limit", "cursor", "updated_since", "include_deleted", "include"}
    assert takes("vendors") == common | {"status"}
    assert takes("accounts") == common | {"status", "account_type"}
    assert takes("bills") == common | {"status", "vendor_id"}
    assert takes("bill-payments") == common | {"vendor_id"}
    assert takes("attachments") == common | {"bill_id"}
    base = f"/v1/connections/{CONNECTION}"
    not_a_time = await books.get(f"{base}/bills", updated_since="yesterday")
    assert not_a_time.status_code == 422
    assert not_a_time.json()["error"]["param"] == "updated_since"
    unknown_include = await books.get(f"{base}/bills", include="everything")
    assert unknown_include.status_code == 422


# ---- bills already in the ERP, paid through remit (POST /v1/bills {"erp_bill_id"}) --------


async def _submit_erp(books: Books, who: str = "reader", **body: Any) -> httpx.Response:
    return await books.http.post(
        "/v1/bills", params={"connection_id": CONNECTION}, json=body, headers=books.auth(who)
    )


async def test_an_open_erp_bill_starts_one_workflow_that_pays_what_is_due(books: Books) -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from workflows.models import BillInput

    first = await _submit_erp(books, erp_bill_id="B1", pay_on="2026-12-20")
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert accepted["created"] is True and accepted["status"] == "received"
    again = await _submit_erp(books, erp_bill_id="B1")
    assert again.status_code == 202 and again.json() == {**accepted, "created": False}

    handle = books.temporal.get_workflow_handle(accepted["id"])
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [started_with] = pydantic_data_converter.payload_converter.from_payloads(
        started.input.payloads, [BillInput]
    )
    await handle.terminate(reason="test over")  # no worker serves these tests
    assert started_with.erp_bill_id == "B1" and started_with.connection_id == CONNECTION
    assert started_with.amount_due == Decimal("1250.5")
    assert started_with.pay_on == date(2026, 12, 20)
    draft = started_with.draft
    assert draft is not None and draft.document_number == "INV-1"
    assert draft.vendor.name == "Vendor 1" and draft.vendor.tax_id == "12-3456701"
    assert [line.account for line in draft.lines] == ["A6100"]


async def test_an_erp_bill_remit_cannot_pay_gets_an_answer_a_person_can_act_on(
    books: Books,
) -> None:
    paid = await _submit_erp(books, erp_bill_id="B2")
    assert paid.status_code == 409 and "paid" in paid.json()["error"]["message"]
    deleted = await _submit_erp(books, erp_bill_id="B5")
    assert deleted.status_code == 404
    assert "deleted in the ERP" in deleted.json()["error"]["message"]
    unknown = await _submit_erp(books, erp_bill_id="B999")
    message = unknown.json()["error"]["message"]
    assert unknown.status_code == 404 and f"/v1/connections/{CONNECTION}/sync" in message
    assert "2026-12-02 09:30" in message, "it says when the books were last synced"
    extra = await _submit_erp(books, erp_bill_id="B1", amount="5.00")
    assert extra.status_code == 422 and extra.json()["error"]["param"] == "amount"
    too_much = await _submit_erp(books, erp_bill_id="B4", pay_amount="100.00")
    assert too_much.status_code == 422 and "99.99" in too_much.json()["error"]["message"]
    hidden = await _submit_erp(books, "scoped", erp_bill_id="B1")
    assert hidden.status_code == 422 and "no connection" in hidden.json()["error"]["message"]


async def test_an_erp_bill_remit_already_has_is_not_a_second_bill(books: Books) -> None:
    from tests.store.conftest import make_bill

    books.store.upsert_bill(
        make_bill(f"bill/{CONNECTION}/INV-4-posted", connection_id=CONNECTION, erp_bill_id="B4")
    )
    answer = await _submit_erp(books, erp_bill_id="B4")
    assert answer.status_code == 409, answer.text
    assert f"bill/{CONNECTION}/INV-4-posted" in answer.json()["error"]["message"]
