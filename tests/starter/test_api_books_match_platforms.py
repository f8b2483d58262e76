"""The read API against each platform's own API: bills entered in the platform, the mirror filled
through the connector page by page (as a full sync fills it), then every page of the API's
vendors, accounts and bills equals what the platform itself lists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import ConnectionConfig, Connector
from connectors.feed_mirror import mirror_source
from connectors.mirror import MirrorKind
from connectors.registry import platform
from sandbox.registry import DemoCompany, new_emulator
from store import ConnectionRow, mirror
from tests.connectors.conftest import serve_asgi
from tests.starter.test_api_erp import (
    SYNCED,
    Books,
    books,
    database_url,
    own_temporal,
    postgres_admin_url,
)

__all__ = ["books", "database_url", "own_temporal", "postgres_admin_url"]  # fixtures

LIVE = "platform-live"
AMOUNTS = ("100.00", "250.50", "75.25")
"""The bills a person enters in the platform itself before the comparison."""


@dataclass
class Listed:
    """What a platform's own API lists, by platform id."""

    vendors: dict[str, str]  # id -> name
    accounts: set[str]
    bills: dict[str, Decimal]  # id -> total


@dataclass
class PlatformApi:
    """A platform's own API, spoken directly (no remit code): enter bills, list everything."""

    http: httpx.AsyncClient
    base_url: str
    company: DemoCompany
    enter_bills: Callable[[PlatformApi], Awaitable[None]]
    list_all: Callable[[PlatformApi], Awaitable[Listed]]

    @property
    def bearer(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.company.credentials['access_token']}",
            "Accept": "application/json",
        }

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.bearer, **kwargs.pop("headers", {})}
        response = await self.http.request(
            method, f"{self.base_url}{path}", headers=headers, **kwargs
        )
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else None


# ---- QuickBooks Online: /v3/company/{realm}, query language with STARTPOSITION paging ------


def _qbo_path(api: PlatformApi, resource: str) -> str:
    return f"/v3/company/{api.company.company_id}/{resource}"


async def _qbo_query(api: PlatformApi, entity: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    start = 1
    while True:
        answer = await api.call(
            "GET",
            _qbo_path(api, "query"),
            params={"query": f"select * from {entity} STARTPOSITION {start} MAXRESULTS 50"},
        )
        rows: list[dict[str, Any]] = answer["QueryResponse"].get(entity, [])
        found += rows
        if len(rows) < 50:
            return found
        start += 50


async def _qbo_enter_bills(api: PlatformApi) -> None:
    vendors = await _qbo_query(api, "Vendor")
    accounts = await _qbo_query(api, "Account")
    vendor = next(v for v in vendors if v["DisplayName"] == "Northwind Office Supply")
    expense = next(a for a in accounts if a["Name"] == "Office Supplies")
    for n, amount in enumerate(AMOUNTS):
        detail = {"AccountRef": {"value": expense["Id"]}}
        await api.call(
            "POST",
            _qbo_path(api, "bill"),
            json={
                "VendorRef": {"value": vendor["Id"]},
                "TxnDate": "2026-07-01",
                "DueDate": "2026-07-31",
                "DocNumber": f"QB-{n}",
                "Line": [
                    {
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "Amount": amount,
                        "Description": "paper",
                        "AccountBasedExpenseLineDetail": detail,
                    }
                ],
            },
        )


async def _qbo_list(api: PlatformApi) -> Listed:
    return Listed(
        vendors={v["Id"]: v["DisplayName"] for v in await _qbo_query(api, "Vendor")},
        accounts={a["Id"] for a in await _qbo_query(api, "Account")},
        bills={b["Id"]: Decimal(str(b["TotalAmt"])) for b in await _qbo_query(api, "Bill")},
    )


# ---- Xero: /api.xro/2.0 with the tenant header --------------------------------------------


async def _xero(api: PlatformApi, path: str) -> list[dict[str, Any]]:
    answer = await api.call(
        "GET", f"/api.xro/2.0/{path}", headers={"xero-tenant-id": api.company.company_id}
    )
    rows: list[dict[str, Any]] = answer[path]
    return rows


async def _xero_enter_bills(api: PlatformApi) -> None:
    contacts = await _xero(api, "Contacts")
    supplier = next(c for c in contacts if c["Name"] == "Northwind Office Supply")
    for n, amount in enumerate(AMOUNTS):
        bill = {
            "Type": "ACCPAY",
            "Contact": {"ContactID": supplier["ContactID"]},
            "Date": "2026-07-01",
            "DueDate": "2026-07-31",
            "InvoiceNumber": f"XB-{n}",
            "LineAmountTypes": "Exclusive",
            "Status": "AUTHORISED",
            "LineItems": [
                {"Description": "paper", "Quantity": 1, "UnitAmount": amount, "AccountCode": "453"}
            ],
        }
        await api.call(
            "PUT",
            "/api.xro/2.0/Invoices",
            json={"Invoices": [bill]},
            headers={"xero-tenant-id": api.company.company_id},
        )


async def _xero_list(api: PlatformApi) -> Listed:
    return Listed(
        vendors={c["ContactID"]: c["Name"] for c in await _xero(api, "Contacts")},
        accounts={a["AccountID"] for a in await _xero(api, "Accounts")},
        bills={
            i["InvoiceID"]: Decimal(str(i["Total"]))
            for i in await _xero(api, "Invoices")
            if i["Type"] == "ACCPAY"
        },
    )


# ---- NetSuite: the REST record service, listed with limit/offset, each record read --------

_RECORD = "/services/rest/record/v1"


async def _netsuite_records(api: PlatformApi, record_type: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await api.call(
            "GET", f"{_RECORD}/{record_type}", params={"limit": "5", "offset": str(offset)}
        )
        for item in page["items"]:
            records.append(await api.call("GET", f"{_RECORD}/{record_type}/{item['id']}"))
        if not page["hasMore"]:
            return records
        offset += len(page["items"])


async def _netsuite_enter_bills(api: PlatformApi) -> None:
    vendor = next(
        v
        for v in await _netsuite_records(api, "vendor")
        if v["companyName"] == "Northwind Office Supply"
    )
    expense = next(
        a for a in await _netsuite_records(api, "account") if a["acctName"] == "Office Supplies"
    )
    settings = api.company.settings
    for n, amount in enumerate(AMOUNTS):
        await api.call(
            "POST",
            f"{_RECORD}/vendorBill",
            json={
                "entity": {"id": vendor["id"]},
                "subsidiary": {"id": settings["subsidiary_id"]},
                "account": {"id": settings["ap_account_id"]},
                "tranId": f"NS-{n}",
                "tranDate": "2026-07-01",
                "dueDate": "2026-07-31",
                "expense": {
                    "items": [{"account": {"id": expense["id"]}, "amount": amount, "memo": "paper"}]
                },
            },
        )


async def _netsuite_list(api: PlatformApi) -> Listed:
    return Listed(
        vendors={v["id"]: v["companyName"] for v in await _netsuite_records(api, "vendor")},
        accounts={a["id"] for a in await _netsuite_records(api, "account")},
        bills={
            b["id"]: Decimal(str(b["total"])) for b in await _netsuite_records(api, "vendorBill")
        },
    )


PLATFORMS = {
    "quickbooks": (_qbo_enter_bills, _qbo_list),
    "xero": (_xero_enter_bills, _xero_list),
    "netsuite": (_netsuite_enter_bills, _netsuite_list),
}


@pytest.fixture(params=sorted(PLATFORMS))
async def live(
    request: pytest.FixtureRequest, books: Books
) -> AsyncIterator[tuple[PlatformApi, Connector]]:
    """The platform's emulator over real HTTP, its demo company as a remit connection."""
    name: str = request.param
    emulator = new_emulator(name)
    company = emulator.seed_demo_company()
    now = datetime.now(UTC)
    books.store.upsert_connection(
        ConnectionRow(
            id=LIVE,
            platform=name,
            company_id=company.company_id,
            display_name=LIVE,
            base_url="http://127.0.0.1:9",
            settings={},
            created_at=now,
            updated_at=now,
        )
    )
    enter, list_all = PLATFORMS[name]
    async with serve_asgi(emulator.app) as base_url, httpx.AsyncClient(timeout=10) as http:
        connector = platform(name).connector(
            ConnectionConfig(
                id=LIVE,
                platform=name,
                base_url=base_url,
                company_id=company.company_id,
                credentials=dict(company.credentials),
                settings=dict(company.settings),
            ),
            http,
        )
        yield PlatformApi(http, base_url, company, enter, list_all), connector


async def _fill_mirror(books: Books, connector: Connector, kinds: tuple[MirrorKind, ...]) -> None:
    """What a full sync does: every page of every kind into the mirror, then the watermark."""
    store = mirror.MirrorStore(books.store)
    source = mirror_source(connector)  # what the sync activity reads through
    for kind in kinds:
        cursor: str | None = None
        while True:
            page = await source.read_mirror_page(kind, since=None, cursor=cursor, page_size=2)
            store.apply(LIVE, page.records, synced_at=SYNCED)
            cursor = page.next_cursor
            if cursor is None:
                break
        store.set_watermark(LIVE, kind, page.watermark, synced_at=SYNCED)


async def _every(books: Books, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await books.ok(
            f"/v1/connections/{LIVE}/{kind}", limit=2, **({"cursor": cursor} if cursor else {})
        )
        assert page["last_synced_at"] is not None
        found += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_what_the_api_lists_is_what_the_platforms_own_api_lists(
    books: Books, live: tuple[PlatformApi, Connector]
) -> None:
    api, connector = live
    await api.enter_bills(api)
    await _fill_mirror(
        books, connector, (MirrorKind.vendors, MirrorKind.accounts, MirrorKind.bills)
    )
    platform_says = await api.list_all(api)
    assert platform_says.vendors and platform_says.accounts

    vendors = await _every(books, "vendors")
    assert {v["id"]: v["data"]["name"] for v in vendors} == platform_says.vendors
    accounts = await _every(books, "accounts")
    assert {a["id"] for a in accounts} == platform_says.accounts
    bills = await _every(books, "bills")
    listed_bills = {b["id"]: Decimal(b["data"]["total"]) for b in bills}
    # The bills entered in the platform are there, and nothing else differs.
    assert len(platform_says.bills) >= len(AMOUNTS)
    assert listed_bills == platform_says.bills
    # Open bills through the status filter: the three just entered are open and owed in full.
    open_bills = await books.ok(f"/v1/connections/{LIVE}/bills", status="open", limit=100)
    open_totals = sorted(Decimal(b["data"]["total"]) for b in open_bills["data"])
    for amount in AMOUNTS:
        assert Decimal(amount) in open_totals
