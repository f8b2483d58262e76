"""The reference-data cache: fewer ERP calls per bill, and never a refusal caused by staleness."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from accounting import Account, AccountCategory, AccountType, BillDraft, TrackingCategory
from activities.match import code_lines
from connectors.base import ConnectionConfig
from connectors.caching import ReferenceDataCache
from tests.connectors.conftest import Harness, asgi_transport
from tests.connectors.test_governance import Clock, InFlight
from workflows.models import MatchRequest, MatchResult


async def test_reads_within_the_ttl_reach_the_erp_once(harness: Harness) -> None:
    meter = InFlight(harness.emulator.app)
    clock = Clock()
    async with httpx.AsyncClient(transport=asgi_transport(meter)) as http:
        inner = harness.platform.connector(harness.connection(), http)
        cached = ReferenceDataCache(inner, ttl=60, clock=clock)

        first = await cached.list_accounts()
        calls = meter.total
        assert await cached.list_accounts() == first
        assert await cached.list_tracking_categories()
        after_tracking = meter.total
        assert await cached.list_tracking_categories()
        assert meter.total == after_tracking > calls  # tracking read once, accounts not again

        clock.now += 61
        assert await cached.list_accounts() == first
        assert meter.total > after_tracking  # expired: read again


class Chart:
    """A company's accounts as an ERP would answer them, changeable mid-test."""

    connection = ConnectionConfig(
        id="conn-chart", platform="quickbooks", base_url="http://unused", company_id="1"
    )

    def __init__(self) -> None:
        self.accounts = [
            Account(
                id="1",
                name="Office Supplies",
                category=AccountCategory.expense,
                account_type=AccountType.expense,
            )
        ]
        self.reads = 0

    async def list_accounts(self) -> list[Account]:
        self.reads += 1
        return list(self.accounts)

    async def list_tracking_categories(self) -> list[TrackingCategory]:
        return []


def request_naming(account: str) -> MatchRequest:
    draft = BillDraft.model_validate(
        {
            "document_number": "INV-1",
            "issue_date": date(2026, 11, 2),
            "currency": "USD",
            "vendor": {"name": "Acme"},
            "lines": [{"description": "chairs", "amount": "10.00", "account": account}],
            "total": "10.00",
        }
    )
    return MatchRequest(workflow_id="bill/x", connection_id="conn-chart", draft=draft)


async def test_an_account_created_after_caching_is_found() -> None:
    chart = Chart()
    erp: Any = ReferenceDataCache(chart, ttl=3600)  # type: ignore[arg-type]
    known = MatchResult()
    await code_lines(erp, request_naming("Office Supplies"), known)
    assert known.problems == [] and chart.reads == 1

    chart.accounts.append(
        Account(
            id="2",
            name="Furniture",
            category=AccountCategory.expense,
            account_type=AccountType.expense,
        )
    )
    fresh = MatchResult()
    await code_lines(erp, request_naming("Furniture"), fresh)

    assert fresh.problems == [] and fresh.lines[0].account_id == "2"
    assert chart.reads == 2  # the miss re-read the chart once

    missing = MatchResult()
    await code_lines(erp, request_naming("Nonexistent"), missing)
    assert missing.problems == ["line 1: no account named 'Nonexistent' in the ERP"]
    assert chart.reads == 3  # one re-read per miss, not a loop
