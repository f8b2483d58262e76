"""The Business Central connector as a books' mirror source, against its emulator over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from accounting import BillStatus
from connectors.base import Rejected
from connectors.business_central.wire import parse_datetime
from connectors.mirror import MirrorKind, MirrorRecord, MirrorSource
from sandbox.business_central import BusinessCentralEmulator
from tests.connectors.conftest import all_pages, asgi_transport, serve_asgi
from tests.connectors.test_business_central import BC


@pytest.fixture
async def bc() -> AsyncIterator[BC]:
    emulator = BusinessCentralEmulator()
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi_transport(emulator.app), timeout=10) as http:
        harness = BC(emulator, company, http, None)  # type: ignore[arg-type]
        harness.connector = harness.connect()
        yield harness


async def full_pass(
    source: MirrorSource, kind: MirrorKind, *, since: str | None = None, page_size: int = 2
) -> tuple[list[MirrorRecord], str | None, int]:
    """Every record of one pass, the pass's watermark, and how many pages it took."""
    records: list[MirrorRecord] = []
    cursor: str | None = None
    watermarks: set[str | None] = set()
    pages = 0
    while True:
        page = await source.read_mirror_page(kind, since=since, cursor=cursor, page_size=page_size)
        pages += 1
        records.extend(page.records)
        watermarks.add(page.watermark)
        cursor = page.next_cursor
        if cursor is None:
            assert len(watermarks) == 1, "every page of a pass repeats the first page's watermark"
            return records, watermarks.pop(), pages


async def test_a_full_pass_pages_every_kind_to_what_the_api_lists(bc: BC) -> None:
    connector = bc.connector
    assert isinstance(connector, MirrorSource)
    vendors, watermark, pages = await full_pass(connector, MirrorKind.vendors)
    assert watermark is not None and pages == 3
    assert [r.platform_id for r in vendors] == [
        v.id for v in await all_pages(connector.list_vendors)
    ]
    northwind = next(r for r in vendors if r.data["name"] == "Northwind Office Supply")
    assert northwind.data["tax_id"] == "94-1234567"
    assert northwind.platform_data["number"] == "10000"
    assert northwind.platform_updated_at is not None
    accounts, _, _ = await full_pass(connector, MirrorKind.accounts, page_size=100)
    assert {r.platform_id for r in accounts} == {a.id for a in await connector.list_accounts()}
    tracking, _, _ = await full_pass(connector, MirrorKind.tracking_categories)
    assert {r.data["name"] for r in tracking} == {"Operations", "Finance", "Sales", "East", "West"}
    bills, _, _ = await full_pass(connector, MirrorKind.bills)
    assert {r.data["document_number"] for r in bills} == {"GLX-2026-001", "INI-0042"}


async def test_an_incremental_pass_returns_only_what_changed_after_the_watermark(bc: BC) -> None:
    connector = bc.connector
    # The first pass runs a while after the demo company was set up (more than the margin).
    later = bc.emulator.clock() + timedelta(minutes=5)
    bc.emulator.clock = lambda: later
    _, bills_mark, _ = await full_pass(connector, MirrorKind.bills)
    _, vendors_mark, _ = await full_pass(connector, MirrorKind.vendors)
    _, payments_mark, _ = await full_pass(connector, MirrorKind.bill_payments)
    bill = await connector.create_bill(
        await bc.new_bill(tracking=False), reference="mirror", idempotency_key="k"
    )
    paid = await connector.create_bill_payment(
        bc.payment(bill, "900.00"), reference="mirror-pay", idempotency_key="p"
    )
    changed, next_mark, _ = await full_pass(connector, MirrorKind.bills, since=bills_mark)
    assert [r.platform_id for r in changed] == [bill.id]
    assert changed[0].data["status"] == BillStatus.paid
    assert next_mark is not None and next_mark >= (bills_mark or "")
    assert (await full_pass(connector, MirrorKind.vendors, since=vendors_mark))[0] == []
    payments, _, _ = await full_pass(connector, MirrorKind.bill_payments, since=payments_mark)
    assert [(r.platform_id, Decimal(r.data["total"])) for r in payments] == [
        (paid.id, Decimal("900.00"))
    ]


async def test_cursors_and_watermarks_it_did_not_give_are_refused(bc: BC) -> None:
    connector = bc.connector
    first = await connector.read_mirror_page(
        MirrorKind.vendors, since=None, cursor=None, page_size=2
    )
    assert first.next_cursor is not None
    with pytest.raises(Rejected, match="not given for bills"):
        await connector.read_mirror_page(
            MirrorKind.bills, since=None, cursor=first.next_cursor, page_size=2
        )
    with pytest.raises(Rejected, match="mirror cursor"):
        await connector.read_mirror_page(
            MirrorKind.vendors, since=None, cursor="page-2", page_size=2
        )
    with pytest.raises(Rejected, match="watermark"):
        await connector.read_mirror_page(
            MirrorKind.vendors, since="yesterday", cursor=None, page_size=2
        )
    with pytest.raises(Rejected, match="no vendor-credits"):
        await connector.read_mirror_page(
            MirrorKind.vendor_credits, since=None, cursor=None, page_size=2
        )


async def test_the_watermark_is_the_servers_clock_over_a_real_socket(bc: BC) -> None:
    async with serve_asgi(bc.emulator.app) as url, httpx.AsyncClient(timeout=10) as http:
        connector = bc.connect(base_url=url, http=http)
        page = await connector.read_mirror_page(
            MirrorKind.accounts, since=None, cursor=None, page_size=50
        )
        assert page.watermark is not None
        server = bc.emulator.clock()
        mark = parse_datetime(page.watermark)
        assert mark is not None
        assert server - timedelta(minutes=2) < mark < server
