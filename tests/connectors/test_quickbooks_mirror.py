"""The QuickBooks connector as a books' mirror source, against the emulator over real HTTP.

What QBO's own API lists (raw JSON through httpx, as any QBO client reads it) is the truth each
pass is compared with; changes are made through that API too, never through remit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import ConnectionConfig, Rejected
from connectors.mirror import MirrorKind, MirrorRecord, MirrorSource, SyncPage
from connectors.quickbooks import mirror as qbo_mirror
from connectors.quickbooks import wire
from connectors.quickbooks.client import QuickBooksConnector
from sandbox.quickbooks import QuickBooksEmulator
from sandbox.registry import DemoCompany
from tests.connectors.conftest import serve_asgi


@dataclass
class Books:
    """The emulator on a real port, a connector to it, and a raw client of QBO's API."""

    emulator: QuickBooksEmulator
    company: DemoCompany
    api: str
    http: httpx.AsyncClient
    connector: QuickBooksConnector

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.company.credentials['access_token']}",
            "Accept": "application/json",
        }

    async def get(self, resource: str, **params: str) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.api}/{resource}",
            params={"minorversion": "75", **params},
            headers=self.headers(),
        )
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = wire.loads(response.text)
        return payload

    async def rows(self, entity: str, where: str = "") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await self.get("query", query=f"SELECT * FROM {entity}{where} MAXRESULTS 1000")
        )["QueryResponse"].get(entity, [])
        return found

    async def post(self, resource: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.api}/{resource}",
            params={"minorversion": "75", **params},
            content=wire.dumps(body),
            headers={**self.headers(), "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = wire.loads(response.text)
        return payload

    async def one(self, entity: str, field: str, value: str) -> dict[str, Any]:
        [row] = await self.rows(entity, f" WHERE {field} = '{value}'")
        return row

    async def new_bill(self, amount: str) -> dict[str, Any]:
        vendor = await self.one("Vendor", "DisplayName", "Northwind Office Supply")
        account = await self.one("Account", "Name", "Office Supplies")
        body = {
            "VendorRef": {"value": vendor["Id"]},
            "DocNumber": "INV-" + uuid.uuid4().hex[:8],
            "TxnDate": "2026-07-01",
            "DueDate": "2026-07-31",
            "Line": [
                {
                    "Amount": Decimal(amount),
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account["Id"]}},
                }
            ],
        }
        bill: dict[str, Any] = (await self.post("bill", body))["Bill"]
        return bill

    async def pay(self, bill: dict[str, Any]) -> dict[str, Any]:
        body = {
            "VendorRef": bill["VendorRef"],
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": self.company.settings["bank_account_id"]}},
            "TxnDate": "2026-07-05",
            "TotalAmt": bill["TotalAmt"],
            "Line": [
                {
                    "Amount": bill["TotalAmt"],
                    "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}],
                }
            ],
        }
        payment: dict[str, Any] = (await self.post("billpayment", body))["BillPayment"]
        return payment


@pytest.fixture
async def books() -> AsyncIterator[Books]:
    emulator = QuickBooksEmulator()
    company = emulator.seed_demo_company()
    async with serve_asgi(emulator.app) as base_url, httpx.AsyncClient(timeout=10) as http:
        connection = ConnectionConfig(
            id="conn-qbo-mirror",
            platform="quickbooks",
            base_url=base_url,
            company_id=company.company_id,
            credentials=dict(company.credentials),
            settings=dict(company.settings),
        )
        yield Books(
            emulator,
            company,
            f"{base_url}/v3/company/{company.company_id}",
            http,
            QuickBooksConnector(connection, http),
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


async def test_every_kind_quickbooks_has_is_offered(books: Books) -> None:
    assert isinstance(books.connector, MirrorSource)
    kinds = set(books.connector.mirror_kinds())
    assert kinds == set(MirrorKind) - {MirrorKind.subsidiaries}


async def test_a_paged_full_pass_equals_what_qbos_api_lists(books: Books) -> None:
    for amount in ("100.00", "250.50", "75.25", "999.99", "12.00"):
        await books.new_bill(amount)
    raw_bills = await books.rows("Bill")
    records, pages = await full_pass(books.connector, MirrorKind.bills, page_size=2)
    assert [len(p.records) for p in pages] == [2, 2, 1]
    mirrored = by_id(records)
    assert set(mirrored) == {b["Id"] for b in raw_bills} and len(records) == 5
    for raw in raw_bills:
        record = mirrored[raw["Id"]]
        assert Decimal(record.data["total"]) == raw["TotalAmt"]
        assert record.data["document_number"] == raw["DocNumber"]
        assert record.data["status"] == "open"
        assert record.platform_data["Id"] == raw["Id"]
        assert record.platform_updated_at == datetime.fromisoformat(
            raw["MetaData"]["LastUpdatedTime"]
        )
    # Every page of one pass repeats the watermark of its first page, the server's time.
    assert {p.watermark for p in pages} == {pages[0].watermark}
    assert pages[0].watermark is not None
    assert datetime.fromisoformat(pages[0].watermark).utcoffset() == timedelta(hours=-7)

    # An AU-style vendor with bank details: the number never reaches the passthrough copy.
    await books.post(
        "vendor",
        {
            "DisplayName": "Bondi Couriers",
            "VendorPaymentBankDetail": {
                "BankAccountName": "Bondi Couriers",
                "BankBranchIdentifier": "062-000",
                "BankAccountNumber": "98765432",
            },
        },
    )
    raw_vendors = await books.rows("Vendor")
    vendors, _ = await full_pass(books.connector, MirrorKind.vendors, page_size=3)
    assert {v.platform_id: v.data["name"] for v in vendors} == {
        v["Id"]: v["DisplayName"] for v in raw_vendors
    }
    assert "98765432" not in wire.dumps([v.platform_data for v in vendors])


async def test_reference_kinds_match_the_platform(books: Books) -> None:
    accounts, _ = await full_pass(books.connector, MirrorKind.accounts, page_size=4)
    assert {a.platform_id: a.data["name"] for a in accounts} == {
        a["Id"]: a["Name"] for a in await books.rows("Account")
    }
    payable = next(a for a in accounts if a.data["account_type"] == "accounts_payable")
    assert payable.data["category"] == "liability"

    tracking, pages = await full_pass(books.connector, MirrorKind.tracking_categories, page_size=2)
    raw_tracking = {(c["Id"], "class", c["Name"]) for c in await books.rows("Class")} | {
        (d["Id"], "department", d["Name"]) for d in await books.rows("Department")
    }
    assert {(t.platform_id, t.data["kind"], t.data["name"]) for t in tracking} == raw_tracking
    assert len(pages) > 2 and {p.watermark for p in pages} == {pages[0].watermark}

    customers, _ = await full_pass(books.connector, MirrorKind.customers, page_size=10)
    assert {c.platform_id: (c.data["name"], c.data["email"]) for c in customers} == {
        c["Id"]: (c["DisplayName"], (c.get("PrimaryEmailAddr") or {}).get("Address"))
        for c in await books.rows("Customer")
    }

    supplies = await books.one("Account", "Name", "Office Supplies")
    created = (
        await books.post(
            "item",
            {
                "Name": "Toner",
                "Sku": "TONER-9",
                "Type": "NonInventory",
                "PurchaseCost": Decimal("61.40"),
                "ExpenseAccountRef": {"value": supplies["Id"]},
            },
        )
    )["Item"]
    items, _ = await full_pass(books.connector, MirrorKind.items, page_size=10)
    raw_items = await books.rows("Item")
    assert {i.platform_id for i in items} == {i["Id"] for i in raw_items}
    toner = by_id(items)[created["Id"]].data
    assert (toner["sku"], Decimal(toner["purchase_cost"]), toner["type"]) == (
        "TONER-9",
        Decimal("61.40"),
        "non_inventory",
    )
    assert toner["expense_account_id"] == supplies["Id"]

    rates, _ = await full_pass(books.connector, MirrorKind.tax_rates, page_size=10)
    raw_codes = await books.rows("TaxCode")
    raw_rates = await books.rows("TaxRate")
    assert {r.platform_id for r in rates} == {f"TaxCode:{c['Id']}" for c in raw_codes} | {
        f"TaxRate:{r['Id']}" for r in raw_rates
    }
    # A tax code states the rate it applies: the sum of its rates' RateValue.
    for code in raw_codes:
        listed = code["SalesTaxRateList"]["TaxRateDetail"]
        expected = sum(
            (
                next(r["RateValue"] for r in raw_rates if r["Id"] == d["TaxRateRef"]["value"])
                for d in listed
            ),
            Decimal("0"),
        )
        assert Decimal(by_id(rates)[f"TaxCode:{code['Id']}"].data["rate_percent"]) == expected

    currencies, _ = await full_pass(books.connector, MirrorKind.currencies, page_size=10)
    home = (await books.get("preferences"))["Preferences"]["CurrencyPrefs"]["HomeCurrency"]
    assert {c.data["code"] for c in currencies if c.data["home"]} == {home["value"]}
    assert {c.platform_id for c in currencies} == {home["value"]} | {
        c["Code"] for c in await books.rows("CompanyCurrency")
    }


async def test_attachments_and_vendor_credits(books: Books) -> None:
    bill = await books.new_bill("40.00")
    metadata = {
        "AttachableRef": [{"EntityRef": {"type": "Bill", "value": bill["Id"]}}],
        "FileName": "scan.pdf",
        "ContentType": "application/pdf",
    }
    upload = await books.http.post(
        f"{books.api}/upload",
        files=[
            ("file_metadata_01", (None, json.dumps(metadata).encode(), "application/json")),
            ("file_content_01", ("scan.pdf", b"%PDF-1.4 scan", "application/pdf")),
        ],
        headers=books.headers(),
    )
    assert upload.status_code == 200, upload.text
    attachments, _ = await full_pass(books.connector, MirrorKind.attachments, page_size=100)
    assert [(a.data["bill_id"], a.data["file_name"], a.data["size"]) for a in attachments] == [
        (bill["Id"], "scan.pdf", len(b"%PDF-1.4 scan"))
    ]
    # A signed download link is a credential for the file: not in the passthrough copy.
    assert "TempDownloadUri" in wire.loads(upload.text)["AttachableResponse"][0]["Attachable"]
    assert "TempDownloadUri" not in attachments[0].platform_data

    credit = (
        await books.post(
            "vendorcredit",
            {
                "VendorRef": bill["VendorRef"],
                "TxnDate": "2026-07-02",
                "Line": [
                    {
                        "Amount": Decimal("5.00"),
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "AccountBasedExpenseLineDetail": {
                            "AccountRef": bill["Line"][0]["AccountBasedExpenseLineDetail"][
                                "AccountRef"
                            ]
                        },
                    }
                ],
            },
        )
    )["VendorCredit"]
    credits, pages = await full_pass(books.connector, MirrorKind.vendor_credits, page_size=100)
    assert [
        (c.platform_id, Decimal(c.data["total"]), Decimal(c.data["remaining"])) for c in credits
    ] == [(credit["Id"], Decimal("5.00"), Decimal("5.00"))]
    mark = pages[0].watermark
    await books.post(
        "vendorcredit", {"Id": credit["Id"], "SyncToken": credit["SyncToken"]}, operation="delete"
    )
    changed, _ = await full_pass(
        books.connector, MirrorKind.vendor_credits, page_size=100, since=mark
    )
    assert [(c.platform_id, c.deleted) for c in changed] == [(credit["Id"], True)]


async def test_an_incremental_pass_sees_creates_edits_deletions_and_renames(books: Books) -> None:
    edited = await books.new_bill("100.00")
    deleted = await books.new_bill("300.00")
    untouched = await books.new_bill("400.00")
    paid = await books.new_bill("50.00")
    voided_paid = await books.new_bill("60.00")
    payment = await books.pay(paid)
    to_void = await books.pay(voided_paid)
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
    current = (await books.get(f"bill/{edited['Id']}"))["Bill"]
    line = {**current["Line"][0], "Amount": Decimal("120.00")}
    await books.post("bill", {**current, "Line": [line]})
    await books.post(
        "bill", {"Id": deleted["Id"], "SyncToken": deleted["SyncToken"]}, operation="delete"
    )
    await books.post(
        "billpayment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"]}, operation="delete"
    )
    await books.post(
        "billpayment",
        {"Id": to_void["Id"], "SyncToken": to_void["SyncToken"], "sparse": True},
        operation="update",
        include="void",
    )
    globex = await books.one("Vendor", "DisplayName", "Globex Software")
    await books.post(
        "vendor",
        {
            "Id": globex["Id"],
            "SyncToken": globex["SyncToken"],
            "sparse": True,
            "DisplayName": "Globex Software International",
        },
    )

    changes, pages = await full_pass(
        books.connector, MirrorKind.bills, page_size=2, since=bills_mark
    )
    assert len(pages) > 1
    seen = by_id(changes)
    assert untouched["Id"] not in seen
    assert Decimal(seen[created["Id"]].data["total"]) == Decimal("500.00")
    assert Decimal(seen[edited["Id"]].data["total"]) == Decimal("120.00")
    assert seen[deleted["Id"]].deleted and seen[deleted["Id"]].data == {}
    # The payment's deletion and the void reopened their bills: they changed too.
    assert Decimal(seen[paid["Id"]].data["balance"]) == Decimal("50.00")
    assert Decimal(seen[voided_paid["Id"]].data["balance"]) == Decimal("60.00")
    assert not any(r.deleted for pid, r in seen.items() if pid != deleted["Id"])

    paid_changes, _ = await full_pass(
        books.connector, MirrorKind.bill_payments, page_size=10, since=payments_mark
    )
    assert sorted((p.platform_id, p.deleted, p.data.get("voided")) for p in paid_changes) == sorted(
        [(payment["Id"], True, None), (to_void["Id"], False, True)]
    )

    vendor_changes, _ = await full_pass(
        books.connector, MirrorKind.vendors, page_size=10, since=vendors_mark
    )
    assert [(v.platform_id, v.data["name"]) for v in vendor_changes] == [
        (globex["Id"], "Globex Software International")
    ]


async def test_an_object_changed_during_a_paged_pass_is_not_lost(books: Books) -> None:
    bills = [await books.new_bill(f"{n}0.00") for n in range(1, 6)]
    first = await books.connector.read_mirror_page(
        MirrorKind.bills, since=None, cursor=None, page_size=2
    )
    assert first.next_cursor is not None and len(first.records) == 2
    # Mid-pass: a bill already read is edited, a new one is created.
    changed_id = first.records[0].platform_id
    current = (await books.get(f"bill/{changed_id}"))["Bill"]
    await books.post("bill", {**current, "Line": [{**current["Line"][0], "Amount": "777.00"}]})
    late = await books.new_bill("888.00")
    rest: list[MirrorRecord] = list(first.records)
    cursor: str | None = first.next_cursor
    while cursor is not None:
        page = await books.connector.read_mirror_page(
            MirrorKind.bills, since=None, cursor=cursor, page_size=2
        )
        rest.extend(page.records)
        cursor = page.next_cursor
    assert {b["Id"] for b in bills} <= {r.platform_id for r in rest}
    assert first.watermark is not None

    # The next incremental pass from this pass's watermark has both mid-pass changes; an edit
    # made while that (CDC) pass is paged is not lost either, nor is anything it skips.
    step = await books.connector.read_mirror_page(
        MirrorKind.bills, since=first.watermark, cursor=None, page_size=1
    )
    assert step.next_cursor is not None and len(step.records) == 1
    again = (await books.get(f"bill/{step.records[0].platform_id}"))["Bill"]
    await books.post("bill", {**again, "Line": [{**again["Line"][0], "Amount": "999.00"}]})
    changes = list(step.records)
    cursor = step.next_cursor
    while cursor is not None:
        page = await books.connector.read_mirror_page(
            MirrorKind.bills, since=first.watermark, cursor=cursor, page_size=1
        )
        changes.extend(page.records)
        cursor = page.next_cursor
    seen = by_id(changes)
    assert {changed_id, late["Id"]} <= set(seen)
    assert Decimal(seen[again["Id"]].data["total"]) == Decimal("999.00")


async def test_deletions_during_a_paged_full_pass_do_not_shift_live_bills_out(
    books: Books,
) -> None:
    bills = [await books.new_bill(f"{n}.00") for n in range(1, 9)]
    first = await books.connector.read_mirror_page(
        MirrorKind.bills, since=None, cursor=None, page_size=3
    )
    assert [r.platform_id for r in first.records] == [b["Id"] for b in bills[:3]]
    # Two bills already read and the last one read are deleted: the positions move back by 3.
    for bill in (bills[0], bills[1], bills[2]):
        await books.post(
            "bill", {"Id": bill["Id"], "SyncToken": bill["SyncToken"]}, operation="delete"
        )
    rest: list[MirrorRecord] = []
    cursor = first.next_cursor
    while cursor is not None:
        page = await books.connector.read_mirror_page(
            MirrorKind.bills, since=None, cursor=cursor, page_size=3
        )
        rest.extend(page.records)
        cursor = page.next_cursor
    assert [r.platform_id for r in rest] == [b["Id"] for b in bills[3:]]


async def test_a_watermark_past_cdcs_window_makes_a_full_pass(books: Books) -> None:
    bills = [await books.new_bill(amount) for amount in ("10.00", "20.00", "30.00")]
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    # QBO's CDC itself refuses to look back that far.
    too_far = await books.http.get(
        f"{books.api}/cdc",
        params={"entities": "Bill", "changedSince": old},
        headers=books.headers(),
    )
    assert too_far.status_code == 400
    records, pages = await full_pass(books.connector, MirrorKind.bills, page_size=2, since=old)
    assert {r.platform_id for r in records} == {b["Id"] for b in bills}
    assert pages[0].watermark is not None and pages[0].watermark > old


async def test_a_cdc_answer_at_its_ceiling_is_completed_by_a_query(
    books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    await books.new_bill("1.00")
    _, pages = await full_pass(books.connector, MirrorKind.bills, page_size=10)
    mark = pages[0].watermark
    made = [await books.new_bill(f"{n}.00") for n in range(2, 6)]
    gone = made.pop()
    await books.post("bill", {"Id": gone["Id"], "SyncToken": gone["SyncToken"]}, operation="delete")
    # Four objects in the answer: as if CDC had cut it at its ceiling.
    monkeypatch.setattr(qbo_mirror, "CDC_CEILING", 4)
    changes, pages = await full_pass(books.connector, MirrorKind.bills, page_size=2, since=mark)
    assert {(r.platform_id, r.deleted) for r in changes} == {(b["Id"], False) for b in made} | {
        (gone["Id"], True)
    }


async def test_foreign_cursors_and_watermarks_are_rejected(books: Books) -> None:
    await books.new_bill("10.00")
    await books.new_bill("20.00")
    page = await books.connector.read_mirror_page(
        MirrorKind.bills, since=None, cursor=None, page_size=1
    )
    assert page.next_cursor is not None and page.next_cursor.startswith("qbo-mirror:")
    for cursor in ("2", "not-a-cursor", "qbo-mirror:!!!", page.next_cursor[:-3] + "AAA"):
        with pytest.raises(Rejected):
            await books.connector.read_mirror_page(
                MirrorKind.bills, since=None, cursor=cursor, page_size=1
            )
    with pytest.raises(Rejected):  # a bills cursor does not continue another kind
        await books.connector.read_mirror_page(
            MirrorKind.vendors, since=None, cursor=page.next_cursor, page_size=1
        )
    with pytest.raises(Rejected):  # nor a pass with another watermark
        await books.connector.read_mirror_page(
            MirrorKind.bills, since=page.watermark, cursor=page.next_cursor, page_size=1
        )
    with pytest.raises(Rejected):
        await books.connector.read_mirror_page(
            MirrorKind.bills, since="last tuesday", cursor=None, page_size=1
        )
    with pytest.raises(Rejected):
        await books.connector.read_mirror_page(
            MirrorKind.subsidiaries, since=None, cursor=None, page_size=1
        )


async def test_cdc_has_no_tax_codes_so_they_are_read_whole(books: Books) -> None:
    _, pages = await full_pass(books.connector, MirrorKind.tax_rates, page_size=10)
    mark = pages[0].watermark
    assert mark is not None
    refused = await books.http.get(
        f"{books.api}/cdc",
        params={"entities": "TaxCode", "changedSince": mark},
        headers=books.headers(),
    )
    assert refused.status_code == 400
    again, _ = await full_pass(books.connector, MirrorKind.tax_rates, page_size=10, since=mark)
    assert {r.platform_id for r in again} == {
        f"TaxCode:{c['Id']}" for c in await books.rows("TaxCode")
    } | {f"TaxRate:{r['Id']}" for r in await books.rows("TaxRate")}


async def test_the_emulators_new_records_survive_a_restart(tmp_path: Any) -> None:
    state_file = tmp_path / "quickbooks.state"
    emulator = QuickBooksEmulator(state_file=state_file)
    company = emulator.seed_demo_company()
    async with serve_asgi(emulator.app) as base_url, httpx.AsyncClient(timeout=10) as http:
        api = f"{base_url}/v3/company/{company.company_id}"
        headers = {"Authorization": f"Bearer {company.credentials['access_token']}"}
        made = await http.post(
            f"{api}/item", json={"Name": "Staples", "Type": "NonInventory"}, headers=headers
        )
        assert made.status_code == 200, made.text
        vendors = await http.get(
            f"{api}/query", params={"query": "SELECT * FROM Vendor"}, headers=headers
        )
        vendor = vendors.json()["QueryResponse"]["Vendor"][0]
        accounts = await http.get(
            f"{api}/query", params={"query": "SELECT * FROM Account"}, headers=headers
        )
        account = accounts.json()["QueryResponse"]["Account"][-1]
        line = {
            "Amount": 9,
            "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account["Id"]}},
        }
        made_bill = await http.post(
            f"{api}/bill",
            json={"VendorRef": {"value": vendor["Id"]}, "Line": [line]},
            headers=headers,
        )
        assert made_bill.status_code == 200, made_bill.text
        gone = made_bill.json()["Bill"]
        # A deletion: its CDC stub must outlive the restart.
        deleted = await http.post(
            f"{api}/bill",
            params={"operation": "delete"},
            json={"Id": gone["Id"], "SyncToken": gone["SyncToken"]},
            headers=headers,
        )
        assert deleted.status_code == 200, deleted.text
    emulator.configure_webhooks("http://127.0.0.1:9/hooks", "a verifier token")
    emulator.save_state()
    await emulator.webhooks.aclose()

    again = QuickBooksEmulator(state_file=state_file)
    assert again.restored
    realm = again.realms[company.company_id]
    assert "Staples" in {item["Name"] for item in realm.entities["Item"].values()}
    assert {r["Code"] for r in realm.entities["CompanyCurrency"].values()} == {"EUR", "GBP"}
    assert ("Bill", gone["Id"]) in {(entity, entity_id) for entity, entity_id, _ in realm.deleted}
    assert again.webhooks.state.url == "http://127.0.0.1:9/hooks"
