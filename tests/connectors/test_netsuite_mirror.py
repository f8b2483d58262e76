"""The NetSuite connector as a books' mirror source, against the emulator over real HTTP.

What NetSuite's own REST API lists (record service and SuiteQL, raw through httpx) is the truth
each pass is compared with; changes are made through that API too, never through remit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import ConnectionConfig, Rejected
from connectors.mirror import MirrorKind, MirrorRecord, MirrorSource, SyncPage
from connectors.netsuite import wire
from connectors.netsuite.client import NetSuiteConnector
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
