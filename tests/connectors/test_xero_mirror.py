"""The Xero connector as a books' mirror source, against the emulator over real HTTP.

What the platform's own API lists (raw JSON through httpx, as any Xero client reads it) is the
truth each pass is compared with; changes are made through that API too, never through remit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import ConnectionConfig, Rejected
from connectors.mirror import MirrorKind, MirrorRecord, MirrorSource, SyncPage
from connectors.xero import wire
from connectors.xero.client import XeroConnector
from sandbox.registry import DemoCompany
from sandbox.xero import XeroEmulator
from tests.connectors.conftest import serve_asgi


@dataclass
class Books:
    """The emulator on a real port, a connector to it, and a raw client of Xero's API."""

    emulator: XeroEmulator
    company: DemoCompany
    api: str
    http: httpx.AsyncClient
    connector: XeroConnector

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.company.credentials['access_token']}",
            "xero-tenant-id": self.company.company_id,
            "Accept": "application/json",
        }

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        response = await self.http.get(self.api + path, params=params, headers=self.headers())
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    async def send(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.request(
            method, self.api + path, json=body, headers=self.headers()
        )
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    async def contact_id(self, name: str) -> str:
        contacts = (await self.get("/Contacts"))["Contacts"]
        return str(next(c["ContactID"] for c in contacts if c["Name"] == name))

    async def new_bill(self, amount: str, *, status: str = "AUTHORISED") -> dict[str, Any]:
        body = {
            "Type": "ACCPAY",
            "Contact": {"ContactID": await self.contact_id("Northwind Office Supply")},
            "Date": "2026-07-01",
            "DueDate": "2026-07-31",
            "InvoiceNumber": "INV-" + uuid.uuid4().hex[:8],
            "LineAmountTypes": "Exclusive",
            "Status": status,
            "LineItems": [
                {"Description": "paper", "Quantity": 1, "UnitAmount": amount, "AccountCode": "453"}
            ],
        }
        invoice: dict[str, Any] = (await self.send("PUT", "/Invoices", {"Invoices": [body]}))[
            "Invoices"
        ][0]
        return invoice


@pytest.fixture
async def books() -> AsyncIterator[Books]:
    emulator = XeroEmulator()
    company = emulator.seed_demo_company()
    async with serve_asgi(emulator.app) as base_url, httpx.AsyncClient(timeout=10) as http:
        connection = ConnectionConfig(
            id="conn-xero-mirror",
            platform="xero",
            base_url=base_url,
            company_id=company.company_id,
            credentials=dict(company.credentials),
            settings=dict(company.settings),
        )
        yield Books(
            emulator, company, base_url + "/api.xro/2.0", http, XeroConnector(connection, http)
        )


async def full_pass(
    source: MirrorSource, kind: MirrorKind, *, page_size: int, since: str | None = None
) -> tuple[list[MirrorRecord], list[SyncPage]]:
    records: list[MirrorRecord] = []
    pages: list[SyncPage] = []
    cursor: str | None = None
    while True:
        page = await source.read_mirror_page(kind, since=since, cursor=cursor, page_size=page_size)
        pages.append(page)
        records.extend(page.records)
        if page.next_cursor is None:
            return records, pages
        # What a resumed sync does: the cursor was stored as text and read back.
        cursor = json.loads(json.dumps(page.next_cursor))


def by_id(records: list[MirrorRecord]) -> dict[str, MirrorRecord]:
    return {r.platform_id: r for r in records}


async def test_every_kind_xero_has_is_offered(books: Books) -> None:
    assert isinstance(books.connector, MirrorSource)
    kinds = set(books.connector.mirror_kinds())
    assert MirrorKind.subsidiaries not in kinds
    assert kinds == set(MirrorKind) - {MirrorKind.subsidiaries}


async def test_a_paged_full_pass_equals_what_xeros_api_lists(books: Books) -> None:
    for amount in ("100.00", "250.50", "75.25", "999.99", "12.00"):
        await books.new_bill(amount)
    raw_bills = [
        i for i in (await books.get("/Invoices", page="1"))["Invoices"] if i["Type"] == "ACCPAY"
    ]
    records, pages = await full_pass(books.connector, MirrorKind.bills, page_size=2)
    assert len(pages) == 3
    mirrored = by_id(records)
    assert set(mirrored) == {b["InvoiceID"] for b in raw_bills}
    for raw in raw_bills:
        record = mirrored[raw["InvoiceID"]]
        assert Decimal(record.data["total"]) == Decimal(str(raw["Total"]))
        assert record.data["document_number"] == raw["InvoiceNumber"]
        assert record.data["status"] == "open"
        assert record.platform_data["InvoiceID"] == raw["InvoiceID"]
        assert record.platform_updated_at is not None
    # Every page of one pass repeats the watermark of its first page.
    assert {p.watermark for p in pages} == {pages[0].watermark}

    raw_contacts = (await books.get("/Contacts", includeArchived="true"))["Contacts"]
    vendors, _ = await full_pass(books.connector, MirrorKind.vendors, page_size=3)
    assert {v.platform_id: v.data["name"] for v in vendors} == {
        c["ContactID"]: c["Name"] for c in raw_contacts
    }
    # Bank numbers never reach the passthrough copy.
    assert not any("BankAccountDetails" in v.platform_data for v in vendors)
    assert "021000021" not in json.dumps([v.platform_data for v in vendors])


async def test_reference_kinds_match_the_platform(books: Books) -> None:
    accounts, _ = await full_pass(books.connector, MirrorKind.accounts, page_size=4)
    raw_accounts = (await books.get("/Accounts"))["Accounts"]
    assert {a.platform_id: a.data["name"] for a in accounts} == {
        a["AccountID"]: a["Name"] for a in raw_accounts
    }
    payable = next(a for a in accounts if a.data["account_type"] == "accounts_payable")
    assert payable.data["category"] == "liability"

    tracking, _ = await full_pass(books.connector, MirrorKind.tracking_categories, page_size=50)
    raw_tracking = (await books.get("/TrackingCategories"))["TrackingCategories"]
    options = {o["TrackingOptionID"] for c in raw_tracking for o in c["Options"]}
    assert {t.platform_id for t in tracking} <= options and tracking

    await books.send(
        "PUT",
        "/Items",
        {
            "Items": [
                {
                    "Code": "PAPER-A4",
                    "Name": "A4 paper",
                    "PurchaseDetails": {"UnitPrice": "4.25", "AccountCode": "453"},
                }
            ]
        },
    )
    items, _ = await full_pass(books.connector, MirrorKind.items, page_size=10)
    assert [(i.data["sku"], i.data["purchase_cost"]) for i in items] == [("PAPER-A4", "4.25")]
    assert items[0].data["expense_account_id"] is not None

    rates, _ = await full_pass(books.connector, MirrorKind.tax_rates, page_size=10)
    raw_rates = (await books.get("/TaxRates"))["TaxRates"]
    assert {r.platform_id for r in rates} == {r["TaxType"] for r in raw_rates}

    currencies, _ = await full_pass(books.connector, MirrorKind.currencies, page_size=10)
    home = {c.data["code"] for c in currencies if c.data["home"]}
    assert home == {books.company.settings["home_currency"]}
    assert {c.platform_id for c in currencies} == {
        c["Code"] for c in (await books.get("/Currencies"))["Currencies"]
    }


async def test_customers_attachments_and_credits(books: Books) -> None:
    acme = await books.contact_id("Acme Corp")
    sale = {
        "Type": "ACCREC",
        "Contact": {"ContactID": acme},
        "Date": "2026-07-01",
        "DueDate": "2026-07-31",
        "Status": "AUTHORISED",
        "LineItems": [
            {"Description": "x", "Quantity": 1, "UnitAmount": "10", "AccountCode": "200"}
        ],
    }
    response = await books.http.put(
        books.api + "/Invoices", json={"Invoices": [sale]}, headers=books.headers()
    )
    assert response.status_code == 200, response.text
    customers, _ = await full_pass(books.connector, MirrorKind.customers, page_size=100)
    assert [c.platform_id for c in customers] == [acme]

    bill = await books.new_bill("40.00")
    put = await books.http.put(
        f"{books.api}/Invoices/{bill['InvoiceID']}/Attachments/scan.pdf",
        content=b"%PDF-1.4 scan",
        headers={**books.headers(), "Content-Type": "application/pdf"},
    )
    assert put.status_code == 200, put.text
    attachments, _ = await full_pass(books.connector, MirrorKind.attachments, page_size=100)
    assert [(a.data["bill_id"], a.data["file_name"], a.data["size"]) for a in attachments] == [
        (bill["InvoiceID"], "scan.pdf", len(b"%PDF-1.4 scan"))
    ]

    note = {
        "Type": "ACCPAYCREDIT",
        "Contact": {"ContactID": bill["Contact"]["ContactID"]},
        "Date": "2026-07-02",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{"Description": "r", "Quantity": 1, "UnitAmount": "5", "AccountCode": "453"}],
    }
    created = (await books.send("PUT", "/CreditNotes", {"CreditNotes": [note]}))["CreditNotes"][0]
    credits, pages = await full_pass(books.connector, MirrorKind.vendor_credits, page_size=100)
    assert [(c.platform_id, Decimal(c.data["total"])) for c in credits] == [
        (created["CreditNoteID"], Decimal("5"))
    ]
    assert Decimal(credits[0].data["remaining"]) == Decimal("5")
    mark = pages[0].watermark
    await books.send("POST", f"/CreditNotes/{created['CreditNoteID']}", {"Status": "VOIDED"})
    changed, _ = await full_pass(
        books.connector, MirrorKind.vendor_credits, page_size=100, since=mark
    )
    assert [
        (c.platform_id, Decimal(c.data["remaining"]), c.platform_data["Status"]) for c in changed
    ] == [(created["CreditNoteID"], Decimal("0"), "VOIDED")]


async def test_an_incremental_pass_sees_creates_edits_voids_and_deletions(books: Books) -> None:
    edited = await books.new_bill("100.00")
    voided = await books.new_bill("200.00")
    draft = await books.new_bill("300.00", status="DRAFT")
    untouched = await books.new_bill("400.00")
    paid = await books.new_bill("50.00")
    bank = books.company.settings["bank_account_id"]
    payment = (
        await books.send(
            "PUT",
            "/Payments",
            {
                "Payments": [
                    {
                        "Invoice": {"InvoiceID": paid["InvoiceID"]},
                        "Account": {"AccountID": bank},
                        "Date": "2026-07-05",
                        "Amount": "50.00",
                    }
                ]
            },
        )
    )["Payments"][0]
    _, pages = await full_pass(books.connector, MirrorKind.bills, page_size=100)
    bills_mark = pages[0].watermark
    _, pages = await full_pass(books.connector, MirrorKind.bill_payments, page_size=100)
    payments_mark = pages[0].watermark
    _, pages = await full_pass(books.connector, MirrorKind.vendors, page_size=100)
    vendors_mark = pages[0].watermark
    assert bills_mark and payments_mark and vendors_mark
    # The watermark is stored as text and comes back later.
    bills_mark = json.loads(json.dumps(bills_mark))

    created = await books.new_bill("500.00")
    lines = [{"Description": "more", "Quantity": 1, "UnitAmount": "120.00", "AccountCode": "453"}]
    await books.send(
        "POST", f"/Invoices/{edited['InvoiceID']}", {"Invoices": [{"LineItems": lines}]}
    )
    await books.send("POST", f"/Invoices/{voided['InvoiceID']}", {"Status": "VOIDED"})
    await books.send("POST", f"/Invoices/{draft['InvoiceID']}", {"Status": "DELETED"})
    await books.send("POST", f"/Payments/{payment['PaymentID']}", {"Status": "DELETED"})
    globex = await books.contact_id("Globex Software")
    await books.send("POST", f"/Contacts/{globex}", {"Contacts": [{"ContactStatus": "ARCHIVED"}]})

    changes, _ = await full_pass(books.connector, MirrorKind.bills, page_size=2, since=bills_mark)
    seen = by_id(changes)
    assert untouched["InvoiceID"] not in seen
    assert Decimal(seen[created["InvoiceID"]].data["total"]) == Decimal("500.00")
    assert Decimal(seen[edited["InvoiceID"]].data["total"]) == Decimal("120.00")
    assert seen[voided["InvoiceID"]].data["status"] == "void"
    assert not seen[voided["InvoiceID"]].deleted
    assert seen[draft["InvoiceID"]].deleted
    # The payment's deletion reopened the bill: it changed too.
    assert seen[paid["InvoiceID"]].data["balance"] in ("50.00", "50")

    paid_changes, _ = await full_pass(
        books.connector, MirrorKind.bill_payments, page_size=10, since=payments_mark
    )
    assert [(p.platform_id, p.deleted, p.data["voided"]) for p in paid_changes] == [
        (payment["PaymentID"], True, True)
    ]

    vendor_changes, _ = await full_pass(
        books.connector, MirrorKind.vendors, page_size=10, since=vendors_mark
    )
    assert {v.platform_id: v.data["active"] for v in vendor_changes}[globex] is False


async def test_an_object_changed_during_a_paged_pass_is_not_lost(books: Books) -> None:
    bills = [await books.new_bill(f"{n}0.00") for n in range(1, 6)]
    first = await books.connector.read_mirror_page(
        MirrorKind.bills, since=None, cursor=None, page_size=2
    )
    assert first.next_cursor is not None and len(first.records) == 2
    # Mid-pass: a bill already read is edited, a new one is created.
    changed_id = first.records[0].platform_id
    lines = [{"Description": "x", "Quantity": 1, "UnitAmount": "777.00", "AccountCode": "453"}]
    await books.send("POST", f"/Invoices/{changed_id}", {"Invoices": [{"LineItems": lines}]})
    late = await books.new_bill("888.00")
    rest: list[MirrorRecord] = list(first.records)
    cursor: str | None = first.next_cursor
    while cursor is not None:
        page = await books.connector.read_mirror_page(
            MirrorKind.bills, since=None, cursor=cursor, page_size=2
        )
        rest.extend(page.records)
        cursor = page.next_cursor
    assert {b["InvoiceID"] for b in bills} <= {r.platform_id for r in rest}
    # The next incremental pass from this pass's watermark has both mid-pass changes.
    assert first.watermark is not None
    changes, _ = await full_pass(
        books.connector, MirrorKind.bills, page_size=2, since=first.watermark
    )
    seen = by_id(changes)
    assert Decimal(seen[changed_id].data["total"]) == Decimal("777.00")
    assert late["InvoiceID"] in seen


async def test_a_page_of_one(books: Books) -> None:
    records, pages = await full_pass(books.connector, MirrorKind.vendors, page_size=1)
    raw = (await books.get("/Contacts", includeArchived="true"))["Contacts"]
    assert len(pages) == len(raw) and all(len(p.records) == 1 for p in pages)
    assert len({r.platform_id for r in records}) == len(raw)
    accounts, account_pages = await full_pass(books.connector, MirrorKind.accounts, page_size=1)
    assert len(account_pages) == len(accounts) == len((await books.get("/Accounts"))["Accounts"])


async def test_foreign_cursors_and_watermarks_are_rejected(books: Books) -> None:
    await books.new_bill("10.00")
    await books.new_bill("20.00")
    page = await books.connector.read_mirror_page(
        MirrorKind.bills, since=None, cursor=None, page_size=1
    )
    assert page.next_cursor is not None
    for cursor in ("2", "not-a-cursor", "xero-mirror:!!!", page.next_cursor[:-3] + "AAA"):
        with pytest.raises(Rejected):
            await books.connector.read_mirror_page(
                MirrorKind.bills, since=None, cursor=cursor, page_size=1
            )
    with pytest.raises(Rejected):  # a bills cursor does not continue another kind
        await books.connector.read_mirror_page(
            MirrorKind.vendors, since=None, cursor=page.next_cursor, page_size=1
        )
    with pytest.raises(Rejected):
        await books.connector.read_mirror_page(
            MirrorKind.bills, since="last tuesday", cursor=None, page_size=1
        )
    with pytest.raises(Rejected):
        await books.connector.read_mirror_page(
            MirrorKind.subsidiaries, since=None, cursor=None, page_size=1
        )


async def test_the_emulators_new_records_survive_a_restart(tmp_path: Any) -> None:
    state_file = tmp_path / "xero.state"
    emulator = XeroEmulator(state_file=state_file)
    company = emulator.seed_demo_company()
    async with serve_asgi(emulator.app) as base_url, httpx.AsyncClient(timeout=10) as http:
        headers = {
            "Authorization": f"Bearer {company.credentials['access_token']}",
            "xero-tenant-id": company.company_id,
        }
        response = await http.put(
            base_url + "/api.xro/2.0/Items",
            json={"Items": [{"Code": "TONER", "Name": "Toner"}]},
            headers=headers,
        )
        assert response.status_code == 200, response.text
    emulator.configure_webhooks("http://127.0.0.1:9/hooks", "a key")
    emulator.save_state()
    await emulator.webhooks.aclose()

    again = XeroEmulator(state_file=state_file)
    assert again.restored
    tenant = again.tenants[company.company_id]
    assert [item["Code"] for item in tenant.items.values()] == ["TONER"]
    assert "INPUT" in tenant.tax_rates
    assert again.webhooks.state.url == "http://127.0.0.1:9/hooks"


async def test_an_undated_edit_of_a_partly_paid_bill_is_still_seen(books: Books) -> None:
    bill = await books.new_bill("100.00")
    bank = books.company.settings["bank_account_id"]
    await books.send(
        "PUT",
        "/Payments",
        {
            "Payments": [
                {
                    "Invoice": {"InvoiceID": bill["InvoiceID"]},
                    "Account": {"AccountID": bank},
                    "Date": "2026-07-05",
                    "Amount": "30.00",
                }
            ]
        },
    )
    _, pages = await full_pass(books.connector, MirrorKind.bills, page_size=10)
    mark = pages[0].watermark
    before = (await books.get(f"/Invoices/{bill['InvoiceID']}"))["Invoices"][0]
    await books.send("POST", f"/Invoices/{bill['InvoiceID']}", {"DueDate": "2026-09-30"})
    after = (await books.get(f"/Invoices/{bill['InvoiceID']}"))["Invoices"][0]
    # Xero does not move UpdatedDateUTC for this edit; If-Modified-Since alone would miss it.
    assert after["UpdatedDateUTC"] == before["UpdatedDateUTC"]
    updated = wire.parse_datetime(after["UpdatedDateUTC"])
    assert mark is not None and updated is not None
    assert updated <= datetime.fromisoformat(mark)

    changes, _ = await full_pass(books.connector, MirrorKind.bills, page_size=10, since=mark)
    seen = by_id(changes)
    assert seen[bill["InvoiceID"]].data["due_date"] == "2026-09-30"
    assert seen[bill["InvoiceID"]].data["status"] == "partially_paid"
