"""Coding uncoded lines from the vendor's history in the books' mirror, on every ERP emulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from accounting import Bill, BillDraft, BillLine, TrackingKind, TrackingRef, Vendor
from activities.match import HISTORY_BILLS, MatchActivities, mirror_history
from connectors.base import Connector
from connectors.feed_mirror import mirror_source
from connectors.mirror import MirrorKind
from connectors.registry import available_platforms
from runtime.settings import Settings
from starter.sync import start_sync
from store import Store
from store.mirror import MirrorStore
from tests.workflows.emulated_erp import OneConnector, emulated_erp
from tests.workflows.harness import draft, running_remit
from workflows.models import LifecycleStatus as S
from workflows.models import MatchRequest, MatchResult
from workflows.sync_models import SyncOutcome

VENDOR = "Northwind Office Supply"  # its tax id is the harness draft's
USUAL, OCCASIONAL = "Professional Fees", "Software Subscriptions"


@dataclass
class Books:
    erp: Connector
    mirror: MirrorStore
    activities: MatchActivities
    vendor: Vendor
    accounts: dict[str, str]
    """Account ids by name."""

    async def bill(
        self, account: str, issued: date, tracking: tuple[TrackingRef, ...] = ()
    ) -> None:
        """A bill entered in the ERP for the vendor, coded to `account` (and `tracking`)."""
        assert self.vendor.id
        key = f"history-{uuid.uuid4().hex[:12]}"
        await self.erp.create_bill(
            Bill(
                vendor_id=self.vendor.id,
                document_number=key[:20],
                issue_date=issued,
                due_date=issued + timedelta(days=30),
                currency="USD",
                lines=[
                    BillLine(
                        amount=Decimal("50.00"),
                        account_id=self.accounts[account],
                        tracking=list(tracking),
                    )
                ],
                total=Decimal("50.00"),
            ),
            reference=key,
            idempotency_key=key,
        )

    async def sync_bills(self) -> None:
        """What a full sync of bills puts in the mirror."""
        source = mirror_source(self.erp)
        cursor: str | None = None
        while True:
            page = await source.read_mirror_page(
                MirrorKind.bills, since=None, cursor=cursor, page_size=100
            )
            self.mirror.apply(self.erp.connection.id, page.records, synced_at=datetime.now(UTC))
            cursor = page.next_cursor
            if cursor is None:
                return

    async def match(self, bill: BillDraft, *, account: str | None = None) -> MatchResult:
        return await self.activities.match_bill(
            MatchRequest(
                workflow_id=f"bill/{self.erp.connection.id}/{bill.document_number}",
                connection_id=self.erp.connection.id,
                draft=bill,
                account=account,
            )
        )


@pytest.fixture(params=available_platforms())
async def books(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Books]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    try:
        async with emulated_erp(request.param) as erp:
            mirror = MirrorStore(store)
            activities = MatchActivities(OneConnector(erp), vendor_history=mirror_history(mirror))
            [vendor] = [v for v in await erp.find_vendors(name=VENDOR) if v.name == VENDOR]
            accounts = {a.name: a.id for a in await erp.list_accounts()}
            yield Books(erp, mirror, activities, vendor, accounts)
    finally:
        store.close()


async def a_year_of_bills(books: Books) -> None:
    """HISTORY_BILLS monthly bills, 3 of every 4 on USUAL, then the mirror synced."""
    first = date(2026, 1, 5)
    for month in range(HISTORY_BILLS):
        account = OCCASIONAL if month % 4 == 1 else USUAL
        await books.bill(account, first + timedelta(days=30 * month))
    await books.sync_bills()


def uncoded() -> BillDraft:
    return draft(account=None, number=f"INV-{uuid.uuid4().hex[:8]}")


async def test_an_uncoded_line_takes_the_account_the_vendors_last_bills_mostly_have(
    books: Books,
) -> None:
    await a_year_of_bills(books)

    result = await books.match(uncoded())

    assert result.vendor is not None and result.vendor.id == books.vendor.id
    [line] = result.lines
    assert line.account_id == books.accounts[USUAL]
    n = HISTORY_BILLS
    assert line.coding_reason == f"most used on {VENDOR}'s last {n} bills ({n * 3 // 4} of {n})"
    assert result.problems == []


async def test_the_document_and_a_persons_choice_still_win_over_the_history(
    books: Books,
) -> None:
    await a_year_of_bills(books)

    written = await books.match(draft(account=OCCASIONAL, number="INV-W1"))
    chosen = await books.match(uncoded(), account=OCCASIONAL)

    for result in (written, chosen):
        [line] = result.lines
        assert line.account_id == books.accounts[OCCASIONAL]
    assert written.lines[0].coding_reason == "as written on the document"
    assert chosen.lines[0].coding_reason == "the account chosen in review"


async def test_without_history_the_defaults_code_the_line_and_say_so(books: Books) -> None:
    # The connection names a default too; the vendor's own comes first where the platform
    # keeps one (Xero, NetSuite), the connection's where it does not (QuickBooks here).
    books.erp.connection.settings["default_expense_account"] = OCCASIONAL
    await books.sync_bills()  # the vendor has no bills in the ERP

    result = await books.match(uncoded())

    [line] = result.lines
    if books.vendor.default_expense_account_id:
        assert line.account_id == books.vendor.default_expense_account_id
        assert line.coding_reason == "the vendor's default expense account"
    else:
        assert line.account_id == books.accounts[OCCASIONAL]
        assert line.coding_reason == "the connection's default expense account"


async def test_the_usual_tracking_comes_along_unless_the_document_names_its_own(
    books: Books,
) -> None:
    by_kind: dict[TrackingKind, list[TrackingRef]] = {}
    for category in await books.erp.list_tracking_categories():
        if category.active:
            ref = TrackingRef(kind=category.kind, id=category.id, name=category.name)
            by_kind.setdefault(category.kind, []).append(ref)
    usual = tuple(refs[0] for refs in by_kind.values())
    for n in range(3):
        await books.bill(USUAL, date(2026, 3, 1) + timedelta(days=30 * n), tracking=usual)
    await books.sync_bills()

    result = await books.match(uncoded())

    [line] = result.lines
    assert line.account_id == books.accounts[USUAL]
    assert {(r.kind, r.id) for r in line.tracking} == {(r.kind, r.id) for r in usual}
    assert line.coding_reason is not None
    assert line.coding_reason.startswith(f"most used on {VENDOR}'s last 3 bills (3 of 3), with ")
    for ref in usual:
        assert f"{ref.kind.value} {ref.name}" in line.coding_reason

    # A department the document names is kept; the history's fills only the other dimensions.
    own = by_kind[TrackingKind.department][1]
    named = await books.match(draft(account=None, number="INV-D1", department=own.name))
    [line] = named.lines
    assert [r.id for r in line.tracking if r.kind is TrackingKind.department] == [own.id]
    assert {(r.kind, r.id) for r in line.tracking if r.kind is not TrackingKind.department} == {
        (r.kind, r.id) for r in usual if r.kind is not TrackingKind.department
    }


async def test_the_worker_codes_from_what_the_sync_mirrored(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path, "quickbooks") as h:
        vendor_id = await h.vendor_id(VENDOR)
        accounts = {a.name: a.id for a in await h.erp.list_accounts()}
        for n, account in enumerate((USUAL, USUAL, OCCASIONAL)):
            issued = date(2026, 9, 1) + timedelta(days=30 * n)
            key = f"history-{n}-{uuid.uuid4().hex[:8]}"
            await h.erp.create_bill(
                Bill(
                    vendor_id=vendor_id,
                    document_number=key[:20],
                    issue_date=issued,
                    currency="USD",
                    lines=[BillLine(amount=Decimal("75.00"), account_id=accounts[account])],
                    total=Decimal("75.00"),
                ),
                reference=key,
                idempotency_key=key,
            )
        settings = Settings(task_queue=h.task_queue)
        job = await start_sync(h.env.client, settings, h.connection.id, trigger="manual")
        await h.env.client.get_workflow_handle(job.workflow_id, result_type=SyncOutcome).result()

        # Under the auto-approval limit and run to its end: a bill cut off mid-activity would
        # hold the shared test server's clock still for every test after this one.
        bill = uncoded().model_copy(update={"lines": [], "total": Decimal("120.00")})
        line_120 = uncoded().lines[0].model_copy(update={"amount": Decimal("120.00")})
        wid = await h.submit(bill.model_copy(update={"lines": [line_120]}))
        state = await h.result(wid)

        [line] = state.lines
        assert line.account_id == accounts[USUAL]
        assert line.coding_reason == f"most used on {VENDOR}'s last 3 bills (2 of 3)"
        assert state.status == S.reconciled, (state.review_reasons, state.last_error)
