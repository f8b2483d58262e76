"""The NetSuite connector as a books' mirror source, against the emulator over real HTTP.

What NetSuite's own REST API lists (record service and SuiteQL, raw through httpx) is the truth
each pass is compared with; changes are made through that API too, never through remit.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import ConnectionConfig, Rejected
from connectors.mirror import MirrorKind, MirrorRecord, MirrorSource, SyncPage
from connectors.netsuite import wire
from connectors.netsuite.client import NetSuiteConnector
from connectors.netsuite.query import parse_suiteql
from sandbox.netsuite import NetSuiteEmulator
from sandbox.registry import DemoCompany
from tests.connectors.conftest import serve_asgi

RECORD = "/services/rest/record/v1"
SUITEQL = "/services/rest/query/v1/suiteql"


@dataclass
class Books:
    """The emulator on a real port, a connector to it, and a raw client of NetSuite's API."""

    emulator: NetSuiteEmulator
    company: DemoCompany
    base: str
    http: httpx.AsyncClient
    connector: NetSuiteConnector

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        headers = {
            "Authorization": f"Bearer {self.company.credentials['access_token']}",
            "Prefer": "transient",
        }
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = wire.dumps(body)
        response = await self.http.request(
            method, self.base + path, params=params or None, headers=headers, content=content
        )
        assert response.status_code in (200, 204), response.text
        if response.status_code == 204:
            return response.headers.get("Location")
        return wire.loads(response.text)

    async def suiteql(self, q: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (await self.call("POST", SUITEQL, {"q": q}))["items"]
        return rows

    async def ids(self, record_type: str) -> set[str]:
        listing = await self.call("GET", f"{RECORD}/{record_type}", limit="1000")
        return {str(item["id"]) for item in listing["items"]}

    async def new_bill(self, amount: str) -> str:
        vendor = (await self.suiteql("SELECT id FROM vendor WHERE companyname = 'Northwind Office Supply'"))[0]["id"]  # fmt: skip  # noqa: E501
        account = (await self.call("GET", f"{RECORD}/account", q='acctName IS "Office Supplies"'))[
            "items"
        ][0]["id"]
        location = await self.call(
            "POST",
            f"{RECORD}/vendorBill",
            {
                "entity": {"id": str(vendor)},
                "subsidiary": {"id": self.company.settings["subsidiary_id"]},
                "tranId": "INV-" + uuid.uuid4().hex[:8],
                "tranDate": "2026-07-01",
                "currency": {"id": "1"},
                "expense": {
                    "items": [
                        {"account": {"id": str(account)}, "amount": Decimal(amount), "memo": "x"}
                    ]
                },
            },
        )
        return wire.id_from_location(str(location))


@pytest.fixture
async def books() -> AsyncIterator[Books]:
    emulator = NetSuiteEmulator()
    company = emulator.seed_demo_company()
    async with serve_asgi(emulator.app) as base_url, httpx.AsyncClient(timeout=10) as http:
        connection = ConnectionConfig(
            id="conn-ns-mirror",
            platform="netsuite",
            base_url=base_url,
            company_id=company.company_id,
            credentials=dict(company.credentials),
            settings=dict(company.settings),
        )
        yield Books(emulator, company, base_url, http, NetSuiteConnector(connection, http))


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


async def test_the_connector_is_a_mirror_source(books: Books) -> None:
    assert isinstance(books.connector, MirrorSource)
    assert MirrorKind.bills in books.connector.mirror_kinds()


async def test_a_paged_full_pass_equals_what_the_api_lists(books: Books) -> None:
    for amount in ("100.00", "250.50", "75.25", "999.99", "12.00"):
        await books.new_bill(amount)
    raw_ids = await books.ids("vendorBill")
    records, pages = await full_pass(books.connector, MirrorKind.bills, page_size=2)
    assert len(pages) >= 3
    assert max(len(p.records) for p in pages) <= 2
    mirrored = by_id(records)
    assert len(records) == len(mirrored) == len(raw_ids)
    assert set(mirrored) == raw_ids
    for bill_id in raw_ids:
        raw = await books.call("GET", f"{RECORD}/vendorBill/{bill_id}", expandSubResources="true")
        record = mirrored[bill_id]
        assert Decimal(record.data["total"]) == raw["total"]
        assert record.data["document_number"] == raw["tranId"]
        assert record.platform_updated_at is not None
    assert {p.watermark for p in pages} == {pages[0].watermark}

    vendors, _ = await full_pass(books.connector, MirrorKind.vendors, page_size=3)
    raw_vendors = await books.suiteql("SELECT id, companyname FROM vendor")
    assert {v.platform_id for v in vendors} == {str(r["id"]) for r in raw_vendors}

    payments, _ = await full_pass(books.connector, MirrorKind.bill_payments, page_size=3)
    assert {p.platform_id for p in payments} == await books.ids("vendorPayment")


async def test_accounts_and_tracking_categories_match_the_platform(books: Books) -> None:
    accounts, pages = await full_pass(books.connector, MirrorKind.accounts, page_size=3)
    assert len(pages) > 1
    listing = await books.ids("account")
    assert len(accounts) == len({a.platform_id for a in accounts})
    assert {a.platform_id for a in accounts} == listing
    tracking, _ = await full_pass(books.connector, MirrorKind.tracking_categories, page_size=2)
    raw_tracking: set[tuple[str, str]] = set()
    for record_type in ("department", "classification", "location"):
        kind = wire.TRACKING_RECORDS[record_type].value
        raw_tracking |= {(kind, i) for i in await books.ids(record_type)}
    # Every department, class and location once, though their ids overlap across types.
    assert len(tracking) == len({t.platform_id for t in tracking})
    assert {(t.data["kind"], t.data["id"]) for t in tracking} == raw_tracking


async def test_an_incremental_pass_sees_creations_edits_deletions_and_renames(
    books: Books,
) -> None:
    kept = await books.new_bill("10.00")
    doomed = await books.new_bill("20.00")
    _, bill_pages = await full_pass(books.connector, MirrorKind.bills, page_size=50)
    _, vendor_pages = await full_pass(books.connector, MirrorKind.vendors, page_size=50)
    bills_since, vendors_since = bill_pages[0].watermark, vendor_pages[0].watermark
    assert bills_since and vendors_since

    created = await books.new_bill("30.00")
    await books.call("PATCH", f"{RECORD}/vendorBill/{kept}", {"memo": "edited"})
    await books.call("DELETE", f"{RECORD}/vendorBill/{doomed}")
    vendor = (await books.suiteql("SELECT id FROM vendor ORDER BY id"))[0]["id"]
    await books.call("PATCH", f"{RECORD}/vendor/{vendor}", {"companyName": "Renamed Ltd"})

    changed, _ = await full_pass(books.connector, MirrorKind.bills, page_size=1, since=bills_since)
    seen = by_id(changed)
    assert {created, kept, doomed} <= set(seen)
    assert seen[doomed].deleted and not seen[created].deleted and not seen[kept].deleted
    assert seen[kept].data["memo"] == "edited"
    assert Decimal(seen[created].data["total"]) == Decimal("30.00")

    renamed, _ = await full_pass(
        books.connector, MirrorKind.vendors, page_size=5, since=vendors_since
    )
    assert by_id(renamed)[str(vendor)].data["name"] == "Renamed Ltd"


async def test_a_foreign_cursor_is_refused(books: Books) -> None:
    with pytest.raises(Rejected):
        await books.connector.read_mirror_page(
            MirrorKind.bills, since=None, cursor="xero-mirror:e30", page_size=10
        )
    page = await books.connector.read_mirror_page(
        MirrorKind.vendors, since=None, cursor=None, page_size=1
    )
    assert page.next_cursor
    with pytest.raises(Rejected):
        await books.connector.read_mirror_page(
            MirrorKind.bills, since=None, cursor=page.next_cursor, page_size=1
        )


# ---------------------------------------------------------------------------------------------
# Every other kind: customers, items, subsidiaries, currencies, tax rates, vendor credits,
# attachments (each as NetSuite keeps it, changed through NetSuite's own API)
# ---------------------------------------------------------------------------------------------

DOCUMENT = "/services/rest/document/v1"
ITEM_RECORDS = ("inventoryItem", "nonInventoryPurchaseItem", "nonInventoryResaleItem",
                "servicePurchaseItem")  # fmt: skip


async def account_id(books: Books, name: str) -> str:
    q = f"acctName IS {wire.q_string(name)}"
    return str((await books.call("GET", f"{RECORD}/account", q=q))["items"][0]["id"])


async def vendor_id(books: Books, name: str) -> str:
    rows = await books.suiteql(f"SELECT id FROM vendor WHERE companyname = '{name}'")
    return str(rows[0]["id"])


async def create(books: Books, path: str, body: dict[str, Any]) -> str:
    return wire.id_from_location(str(await books.call("POST", path, body)))


async def new_file(books: Books, name: str) -> str:
    folder = (await books.call("GET", f"{DOCUMENT}/folder"))["items"][0]["id"]
    content = base64.b64encode(b"%PDF-1.7 " + name.encode()).decode()
    body = {"name": name, "folder": {"id": str(folder)}, "fileType": "PDF", "content": content}
    return await create(books, f"{DOCUMENT}/file", body)


async def attached_file(books: Books, name: str) -> str:
    """A file uploaded to the file cabinet and attached to a new bill."""
    bill = await books.new_bill("40.00")
    file_id = await new_file(books, name)
    await books.call("POST", f"{RECORD}/vendorBill/{bill}/!attach/file/{file_id}")
    return file_id


@dataclass
class Kind:
    """How one kind is made, changed and found in NetSuite, and what the mirror must say."""

    kind: MirrorKind
    path: str  # the record's collection in NetSuite's API
    listing: tuple[str, ...]  # the record types whose listing is the kind's truth
    make: Callable[[Books, str], Awaitable[str]]  # (books, a unique name) -> new id
    edit: dict[str, Any]
    edited: Callable[[dict[str, Any]], bool]  # the edit, as the unified data shows it


async def _customer(books: Books, name: str) -> str:
    subsidiary = books.company.settings["subsidiary_id"]
    body = {"companyName": name, "subsidiary": {"id": subsidiary}, "email": "a@example.com"}
    return await create(books, f"{RECORD}/customer", body)


async def _item(books: Books, name: str) -> str:
    return await create(books, f"{RECORD}/nonInventoryPurchaseItem", {
        "itemId": name, "displayName": f"{name} (display)", "cost": Decimal("5.25"),
        "expenseAccount": {"id": await account_id(books, "Office Supplies")},
    })  # fmt: skip


async def _subsidiary(books: Books, name: str) -> str:
    return await create(books, f"{RECORD}/subsidiary", {
        "name": name, "currency": {"id": "3"}, "country": "GB",
        "parent": {"id": books.company.settings["subsidiary_id"]},
    })  # fmt: skip


async def _currency(books: Books, name: str) -> str:
    symbol = {"a": "CHF", "b": "JPY", "c": "SEK"}[name[-1]]
    return await create(books, f"{RECORD}/currency", {
        "name": name, "symbol": symbol, "isBaseCurrency": False, "exchangeRate": Decimal("1.1"),
    })  # fmt: skip


async def _tax_code(books: Books, name: str) -> str:
    return await create(books, f"{RECORD}/salesTaxItem", {
        "name": name, "description": f"{name} sales tax", "rate": Decimal("8.875"),
        "taxType": {"id": "1"},
    })  # fmt: skip


async def _vendor_credit(books: Books, name: str) -> str:
    return await create(books, f"{RECORD}/vendorCredit", {
        "entity": {"id": await vendor_id(books, "Northwind Office Supply")},
        "subsidiary": {"id": books.company.settings["subsidiary_id"]},
        "tranId": name, "tranDate": "2026-07-02", "currency": {"id": "1"},
        "expense": {"items": [{"account": {"id": await account_id(books, "Office Supplies")},
                               "amount": Decimal("30.00"), "memo": "returned"}]},
    })  # fmt: skip


KINDS = [
    Kind(MirrorKind.customers, f"{RECORD}/customer", ("customer",), _customer,
         {"companyName": "Renamed Customer"}, lambda d: d["name"] == "Renamed Customer"),
    Kind(MirrorKind.items, f"{RECORD}/nonInventoryPurchaseItem", ITEM_RECORDS, _item,
         {"cost": Decimal("6.75")}, lambda d: Decimal(d["purchase_cost"]) == Decimal("6.75")),
    Kind(MirrorKind.subsidiaries, f"{RECORD}/subsidiary", ("subsidiary",), _subsidiary,
         {"country": "IE"}, lambda d: d["country"] == "IE"),
    Kind(MirrorKind.currencies, f"{RECORD}/currency", ("currency",), _currency,
         {"isInactive": True}, lambda d: d["active"] is False),
    Kind(MirrorKind.tax_rates, f"{RECORD}/salesTaxItem", ("salesTaxItem",), _tax_code,
         {"rate": Decimal("9.125")}, lambda d: Decimal(d["rate_percent"]) == Decimal("9.125")),
    Kind(MirrorKind.vendor_credits, f"{RECORD}/vendorCredit", ("vendorCredit",),
         _vendor_credit, {"tranId": "CM-EDITED"}, lambda d: d["document_number"] == "CM-EDITED"),
    Kind(MirrorKind.attachments, f"{DOCUMENT}/file", (), attached_file,
         {"name": "renamed.pdf"}, lambda d: d["file_name"] == "renamed.pdf"),
]  # fmt: skip


async def truth(books: Books, spec: Kind) -> set[str]:
    """The kind's ids as NetSuite's own API lists them."""
    if spec.kind is MirrorKind.attachments:
        rows = await books.suiteql("SELECT transaction, file FROM transactionfile ORDER BY file")
        bills = await books.ids("vendorBill")
        return {str(r["file"]) for r in rows if str(r["transaction"]) in bills}
    found: set[str] = set()
    for record_type in spec.listing:
        found |= await books.ids(record_type)
    return found


async def test_every_kind_is_mirrored_natively(books: Books) -> None:
    assert set(books.connector.mirror_kinds()) == set(MirrorKind)
    assert len(books.connector.mirror_kinds()) == len(MirrorKind)


@pytest.mark.parametrize("spec", KINDS, ids=[k.kind.value for k in KINDS])
async def test_a_kind_paged_then_incremental_with_edits_and_deletions(
    books: Books, spec: Kind
) -> None:
    kept, doomed = [await spec.make(books, f"Seed {uuid.uuid4().hex[:6]} {c}") for c in "ab"]
    records, pages = await full_pass(books.connector, spec.kind, page_size=2)
    listed = await truth(books, spec)
    assert len(pages) >= 2 and max(len(p.records) for p in pages) <= 2
    mirrored = by_id(records)
    assert len(records) == len(mirrored) and set(mirrored) == listed
    assert all(r.platform_updated_at is not None and r.data for r in records)
    assert {p.watermark for p in pages} == {pages[0].watermark}
    since = pages[0].watermark
    assert since

    created = await spec.make(books, f"New {uuid.uuid4().hex[:6]} c")
    await books.call("PATCH", f"{spec.path}/{kept}", spec.edit)
    await books.call("DELETE", f"{spec.path}/{doomed}")

    changed, _ = await full_pass(books.connector, spec.kind, page_size=1, since=since)
    seen = by_id(changed)
    # What changed is seen (records written within the watermark's margin may come again).
    assert {created, kept, doomed} <= set(seen)
    assert [r.platform_id for r in changed if r.deleted] == [doomed]
    assert spec.edited(seen[kept].data)
    assert seen[created].data["id"] == created


async def test_a_pass_resumes_from_its_stored_cursor_on_another_worker(books: Books) -> None:
    for kind in (MirrorKind.items, MirrorKind.customers, MirrorKind.tax_rates):
        first = await books.connector.read_mirror_page(kind, since=None, cursor=None, page_size=2)
        assert first.next_cursor
        # A new connector (another worker) continues from the cursor the sync stored.
        other = NetSuiteConnector(books.connector.connection, books.http)
        rest, _ = await _resume(other, kind, json.loads(json.dumps(first.next_cursor)))
        whole, _ = await full_pass(books.connector, kind, page_size=2)
        ids = [r.platform_id for r in (*first.records, *rest)]
        assert ids == [r.platform_id for r in whole] and len(set(ids)) == len(ids)


async def _resume(
    source: MirrorSource, kind: MirrorKind, cursor: str
) -> tuple[list[MirrorRecord], int]:
    records: list[MirrorRecord] = []
    pages = 0
    next_cursor: str | None = cursor
    while next_cursor is not None:
        page = await source.read_mirror_page(kind, since=None, cursor=next_cursor, page_size=2)
        records.extend(page.records)
        next_cursor, pages = page.next_cursor, pages + 1
    return records, pages


async def test_the_seeded_books_read_as_netsuite_keeps_them(books: Books) -> None:
    items = by_id((await full_pass(books.connector, MirrorKind.items, page_size=50))[0])
    raw_items = await books.suiteql("SELECT id, itemid, itemtype FROM item")
    kinds = {"InvtPart": "inventory", "NonInvtPart": "non_inventory", "Service": "service"}
    assert {i: r.data["type"] for i, r in items.items()} == {
        str(row["id"]): kinds[row["itemtype"]] for row in raw_items
    }
    paper = next(r.data for r in items.values() if r.data["sku"] == "PAPER-A4")
    assert Decimal(paper["purchase_cost"]) == Decimal("24.50")
    assert paper["expense_account_id"] == await account_id(books, "Cost of Goods Sold")

    rates = by_id((await full_pass(books.connector, MirrorKind.tax_rates, page_size=50))[0])
    assert {r.data["code"]: Decimal(r.data["rate_percent"]) for r in rates.values()} == {
        "CA-SF": Decimal("8.625"), "US-EXEMPT": Decimal("0"), "DE-S-19": Decimal("19"),
        "DE-R-7": Decimal("7"),
    }  # fmt: skip

    currencies = (await full_pass(books.connector, MirrorKind.currencies, page_size=50))[0]
    assert {c.data["code"]: c.data["home"] for c in currencies} == {
        "USD": True, "EUR": False, "GBP": False, "CAD": False,
    }  # fmt: skip

    subsidiaries = (await full_pass(books.connector, MirrorKind.subsidiaries, page_size=50))[0]
    parent = books.company.settings["subsidiary_id"]
    assert {(s.data["name"], s.data["currency"], s.data["parent_id"]) for s in subsidiaries} == {
        ("Remit Demo Inc.", "USD", None), ("Remit Demo GmbH", "EUR", parent),
    }  # fmt: skip

    customers = (await full_pass(books.connector, MirrorKind.customers, page_size=50))[0]
    assert {c.data["name"]: c.data["currency"] for c in customers} == {
        "Contoso Retail": "USD", "Tailspin Toys": "USD", "Wingtip Handels AG": "EUR",
    }  # fmt: skip

    credits = (await full_pass(books.connector, MirrorKind.vendor_credits, page_size=50))[0]
    assert {(c.data["document_number"], Decimal(c.data["total"])) for c in credits} == {
        ("CM-GLX-0042", Decimal("120.00")), ("CM-INI-7", Decimal("75.50")),
    }  # fmt: skip


async def test_a_credit_applied_to_a_bill_reaches_both_in_the_next_pass(books: Books) -> None:
    bill = await books.new_bill("100.00")
    credit = await _vendor_credit(books, "CM-" + uuid.uuid4().hex[:6])
    _, credit_pages = await full_pass(books.connector, MirrorKind.vendor_credits, page_size=50)
    _, bill_pages = await full_pass(books.connector, MirrorKind.bills, page_size=50)

    await books.call("PATCH", f"{RECORD}/vendorCredit/{credit}", {
        "apply": {"items": [{"doc": {"id": bill}, "apply": True, "amount": Decimal("30.00")}]},
    })  # fmt: skip

    credits, _ = await full_pass(
        books.connector, MirrorKind.vendor_credits, page_size=5, since=credit_pages[0].watermark
    )
    applied = by_id(credits)[credit]
    assert Decimal(applied.data["remaining"]) == 0
    [line] = applied.platform_data["apply"]["items"]
    assert (line["doc"]["id"], line["amount"]) == (bill, Decimal("30.00"))
    bills, _ = await full_pass(
        books.connector, MirrorKind.bills, page_size=5, since=bill_pages[0].watermark
    )
    assert Decimal(by_id(bills)[bill].data["balance"]) == Decimal("70.00")


async def test_only_files_attached_to_bills_are_attachments(books: Books) -> None:
    on_bill = await attached_file(books, "invoice.pdf")
    loose = await new_file(books, "loose.pdf")
    credit = await _vendor_credit(books, "CM-" + uuid.uuid4().hex[:6])
    on_credit = await new_file(books, "credit.pdf")
    await books.call("POST", f"{RECORD}/vendorCredit/{credit}/!attach/file/{on_credit}")

    records = by_id((await full_pass(books.connector, MirrorKind.attachments, page_size=1))[0])
    assert set(records) == {on_bill}
    attachment = records[on_bill].data
    raw = await books.call("GET", f"{DOCUMENT}/file/{on_bill}")
    [link] = await books.suiteql(f"SELECT transaction FROM transactionfile WHERE file = {on_bill}")
    assert attachment["bill_id"] == str(link["transaction"])
    assert (attachment["file_name"], attachment["content_type"], attachment["size"]) == (
        "invoice.pdf", "application/pdf", raw["fileSize"],
    )  # fmt: skip
    assert loose not in records and on_credit not in records

    # Deleting the bill takes its file links with it: the file is no longer an attachment.
    await books.call("DELETE", f"{RECORD}/vendorBill/{attachment['bill_id']}")
    assert (await full_pass(books.connector, MirrorKind.attachments, page_size=5))[0] == []


async def test_bills_come_from_suiteql_alone_and_read_as_the_record_service_does(
    books: Books,
) -> None:
    supplies = await account_id(books, "Office Supplies")
    fees = await account_id(books, "Professional Fees")
    department = sorted(await books.ids("department"), key=int)[0]
    klass = sorted(await books.ids("classification"), key=int)[-1]
    terms = (await books.call("GET", f"{RECORD}/term", q='name IS "2% 10 Net 30"'))["items"]
    coded = await create(books, f"{RECORD}/vendorBill", {
        "entity": {"id": await vendor_id(books, "Initech Consulting")},
        "subsidiary": {"id": books.company.settings["subsidiary_id"]},
        "tranId": "INV-CODED", "tranDate": "2026-07-03", "currency": {"id": "1"},
        "terms": {"id": terms[0]["id"]}, "taxTotal": Decimal("8.00"),
        "memo": "coded [remit-ref:ref-coded]",
        "expense": {"items": [
            {"account": {"id": fees}, "amount": Decimal("60.00"), "memo": "advice",
             "department": {"id": department}, "class": {"id": klass}},
            {"account": {"id": supplies}, "amount": Decimal("40.00"), "memo": "binders"},
        ]},
    })  # fmt: skip
    paid = await books.new_bill("90.00")
    bank = books.company.settings["bank_account_id"]
    await books.call("POST", f"{RECORD}/vendorPayment", {
        "entity": {"id": await vendor_id(books, "Northwind Office Supply")},
        "subsidiary": {"id": books.company.settings["subsidiary_id"]},
        "account": {"id": bank}, "currency": {"id": "1"},
        "apply": {"items": [{"doc": {"id": paid}, "apply": True, "amount": Decimal("30.00")}]},
    })  # fmt: skip
    for amount in ("5.00", "6.00", "7.00"):
        await books.new_bill(amount)

    gets: list[str] = []

    async def count(request: httpx.Request) -> None:
        if "/record/v1/vendorBill/" in request.url.path:
            gets.append(request.url.path)

    books.http.event_hooks["request"].append(count)
    records, pages = await full_pass(books.connector, MirrorKind.bills, page_size=2)
    books.http.event_hooks["request"].remove(count)
    assert gets == [] and len(pages) >= 3
    assert set(by_id(records)) == await books.ids("vendorBill")
    for record in records:
        expected = (await books.connector.get_bill(record.platform_id)).model_dump(mode="json")
        # SuiteQL answers the modification time to the second (TO_CHAR), the record to the µs.
        assert record.data.pop("updated_at")[:19] == expected.pop("updated_at")[:19]
        assert record.data == expected
    bill = by_id(records)[coded].data
    assert [line["tracking"] for line in bill["lines"]][0] == [
        {"kind": "department", "id": department, "name": "Operations"},
        {"kind": "class", "id": klass, "name": "West"},
    ]
    assert (bill["reference"], Decimal(bill["tax_amount"]), bill["terms"]["net_days"]) == (
        "ref-coded", Decimal("8.00"), 30,
    )  # fmt: skip
    partly = by_id(records)[paid].data
    assert (partly["status"], Decimal(partly["balance"]), len(partly["payment_ids"])) == (
        "partially_paid", Decimal("60.00"), 1,
    )  # fmt: skip


def test_suiteql_in_lists_match_as_equality_does() -> None:
    statement = parse_suiteql(
        "SELECT id FROM t WHERE id IN (2, 10, 'VendBill') ORDER BY id",
        lambda table: {"id"} if table == "t" else None,
    )
    rows = [{"id": v} for v in ("2", "02", 10, Decimal("10.0"), "3", "VendBill", "vendbill", None)]
    assert [row["id"] for row in rows if statement.where(row)] == [
        "2", "02", 10, Decimal("10.0"), "VendBill",
    ]  # fmt: skip
