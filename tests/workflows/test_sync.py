"""SyncWorkflow: a connection's books into the mirror, on every ERP emulator (time skipping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from accounting import Bill, BillLine
from connectors.base import all_vendors
from connectors.mirror import MirrorKind
from connectors.registry import available_platforms
from runtime.settings import Settings
from starter.sync import ensure_sync_schedule, start_sync, sync_status
from store.mirror import MirrorStore
from tests.workflows.harness import Harness, running_remit
from worker import build_worker
from workflows.sync import SyncWorkflow
from workflows.sync_models import SyncInput, SyncOutcome, SyncPageRequest, sync_schedule_id


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


def _settings(h: Harness) -> Settings:
    return Settings(task_queue=h.task_queue)


async def _sync(h: Harness, *, full: bool = False) -> SyncOutcome:
    job = await start_sync(h.env.client, _settings(h), h.connection.id, trigger="manual", full=full)
    handle = h.env.client.get_workflow_handle(job.workflow_id, result_type=SyncOutcome)
    return await handle.result()


async def _all_bills(h: Harness) -> list[Bill]:
    bills: list[Bill] = []
    cursor: str | None = None
    while True:
        page = await h.erp.list_bills(cursor)
        bills.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return bills


def _mirrored(mirror: MirrorStore, connection_id: str, kind: MirrorKind) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    cursor: str | None = None
    while True:
        page = mirror.list(connection_id, kind, limit=50, cursor=cursor)
        rows.update({row.platform_id: row.data for row in page.items})
        cursor = page.next_cursor
        if cursor is None:
            return rows


def _new_bill(vendor_id: str, number: str, amount: str, account_id: str) -> Bill:
    return Bill(
        vendor_id=vendor_id,
        document_number=number,
        issue_date=date(2026, 11, 20),
        due_date=date(2026, 12, 20),
        currency="USD",
        lines=[BillLine(description="Paper", amount=Decimal(amount), account_id=account_id)],
        total=Decimal(amount),
    )


async def test_the_first_sync_mirrors_what_the_platform_lists(h: Harness) -> None:
    outcome = await _sync(h)
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.full  # nothing synced before: a full pass
    mirror = MirrorStore(h.store)

    vendors = {v.id or "": v for v in await all_vendors(h.erp)}
    mirrored_vendors = _mirrored(mirror, h.connection.id, MirrorKind.vendors)
    assert set(mirrored_vendors) == set(vendors)
    for vendor_id, vendor in vendors.items():
        assert mirrored_vendors[vendor_id]["name"] == vendor.name

    bills = {b.id or "": b for b in await _all_bills(h)}
    mirrored_bills = _mirrored(mirror, h.connection.id, MirrorKind.bills)
    assert set(mirrored_bills) == set(bills)
    for bill_id, bill in bills.items():
        assert Decimal(mirrored_bills[bill_id]["total"]) == bill.total
        assert mirrored_bills[bill_id]["status"] == bill.status.value

    accounts = {a.id: a for a in await h.erp.list_accounts()}
    mirrored_accounts = _mirrored(mirror, h.connection.id, MirrorKind.accounts)
    assert set(mirrored_accounts) == set(accounts)
    assert outcome.counts.get("vendors") == len(vendors), outcome

    runs = mirror.list_runs(h.connection.id)
    assert [(r.status, r.mode, r.trigger) for r in runs] == [("succeeded", "full", "manual")]
    assert runs[0].counts == outcome.counts
    assert mirror.last_synced_at(h.connection.id) is not None


async def test_the_next_sync_reads_only_what_changed(h: Harness) -> None:
    await _sync(h)
    mirror = MirrorStore(h.store)
    quiet = await _sync(h)
    assert not quiet.full
    assert quiet.counts.get("bills", 0) == 0 and quiet.counts.get("vendors", 0) == 0

    vendor = next(v for v in await all_vendors(h.erp) if v.active)
    account = next(a for a in await h.erp.list_accounts() if a.account_type.value == "expense")
    created = await h.erp.create_bill(
        _new_bill(vendor.id or "", "SYNC-1", "42.10", account.id),
        reference="sync-test-1",
        idempotency_key="sync-test-1",
    )
    assert created.id is not None
    changed = await _sync(h)
    assert not changed.full
    assert changed.counts.get("bills") == 1, changed.counts
    row = mirror.get(h.connection.id, MirrorKind.bills, created.id)
    assert row is not None and row.deleted_at is None
    assert row.data["total"] == "42.10" and row.data["document_number"] == "SYNC-1"
    assert [r.mode for r in mirror.list_runs(h.connection.id)] == ["incremental"] * 2 + ["full"]


async def test_a_long_sync_continues_as_new_and_ends_the_same(h: Harness) -> None:
    handle = await h.env.client.start_workflow(
        SyncWorkflow.run,
        SyncInput(connection_id=h.connection.id, pages_per_run=1),
        id=f"sync/{h.connection.id}",
        task_queue=h.task_queue,
    )
    first_run_id = handle.first_execution_run_id
    outcome = await handle.result()
    assert outcome.status == "succeeded", outcome.errors
    mirror = MirrorStore(h.store)
    assert len(_mirrored(mirror, h.connection.id, MirrorKind.vendors)) == len(
        await all_vendors(h.erp)
    )
    # Each page ran in its own run of the workflow: the cursor and counts travelled on.
    latest = await h.env.client.get_workflow_handle(f"sync/{h.connection.id}").describe()
    assert latest.run_id != first_run_id
    runs = mirror.list_runs(h.connection.id)
    assert len(runs) == 1 and runs[0].counts == outcome.counts  # one sync run, not one per page


async def test_a_sync_job_reports_its_outcome(h: Harness) -> None:
    job = await start_sync(h.env.client, _settings(h), h.connection.id, trigger="manual")
    assert job.started
    await h.env.client.get_workflow_handle(job.workflow_id).result()
    status = await sync_status(h.env.client, _settings(h), job.workflow_id)
    assert status["status"] == "succeeded" and status["mode"] == "full"
    assert status["counts"]["vendors"] > 0


async def test_each_connection_gets_one_sync_schedule(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(dev_server_env, tmp_path, "quickbooks") as h:
        schedule_id = await ensure_sync_schedule(h.env.client, _settings(h), h.connection.id)
        assert schedule_id == sync_schedule_id(h.connection.id)
        again = await ensure_sync_schedule(
            h.env.client, _settings(h), h.connection.id, interval=timedelta(minutes=5)
        )
        assert again == schedule_id  # a second call brings the same schedule up to date
        handle = h.env.client.get_schedule_handle(schedule_id)
        described = await handle.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(minutes=5)
        await handle.delete()


async def test_two_syncs_asked_at_once_are_one_sync(h: Harness) -> None:
    """A webhook and a person asking together: one workflow, one full pass of the books (and
    at most one more incremental pass for what the second asker was about)."""
    first = await start_sync(h.env.client, _settings(h), h.connection.id, trigger="webhook")
    second = await start_sync(h.env.client, _settings(h), h.connection.id, trigger="manual")
    assert first.started and not second.started
    assert second.workflow_id == first.workflow_id
    outcome: SyncOutcome = await h.env.client.get_workflow_handle(
        first.workflow_id, result_type=SyncOutcome
    ).result()
    assert outcome.status == "succeeded", outcome.errors
    runs = MirrorStore(h.store).list_runs(h.connection.id)
    assert [r.mode for r in runs].count("full") == 1 and len(runs) <= 2, runs
    full = next(r for r in runs if r.mode == "full")
    assert full.counts["vendors"] == len(await all_vendors(h.erp)), "each vendor read once"
    assert all(r.counts.get("vendors", 0) == 0 for r in runs if r.mode == "incremental")


class HoldARequest:
    """Holds the `nth` request to the ERP once armed (a page part-read when the worker dies)."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.seen = 0
        self.armed = False
        self.holding = asyncio.Event()

    def __call__(self, app: Any) -> Any:
        async def gated(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if self.armed and scope["type"] == "http":
                self.seen += 1
                if self.seen == self.nth:
                    self.holding.set()
                    await asyncio.Event().wait()  # until the dying worker cancels it
            await app(scope, receive, send)

        return gated


async def test_a_sync_killed_part_way_resumes_from_its_cursor(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    gate = HoldARequest(nth=6)
    async with running_remit(time_skipping_env, tmp_path, erp_gate=gate, start_worker=False) as h:
        vendors = await all_vendors(h.erp)
        gate.armed = True
        # No workflow cache: the next workflow task is not left on the dead worker's sticky
        # queue (the test server does not time sticky tasks out to the shared queue).
        first = build_worker(h.env.client, h.deps, task_queue=h.task_queue, max_cached_workflows=0)
        running = asyncio.create_task(first.run())
        handle = await h.env.client.start_workflow(
            SyncWorkflow.run,
            SyncInput(connection_id=h.connection.id, page_size=2),
            id=f"sync/{h.connection.id}",
            task_queue=h.task_queue,
        )
        await asyncio.wait_for(gate.holding.wait(), timeout=60)
        await first.shutdown()  # the page in flight dies with its worker
        await running
        async with build_worker(h.env.client, h.deps, task_queue=h.task_queue):
            # Its heartbeats stop: the server retries the page within the heartbeat timeout.
            outcome = await handle.result()
        assert outcome.status == "succeeded", outcome.errors

        history = await handle.fetch_history()
        pages = [
            e.activity_task_scheduled_event_attributes
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "sync_page"
        ]
        requests = [
            pydantic_data_converter.payload_converter.from_payloads(
                p.input.payloads, [SyncPageRequest]
            )[0]
            for p in pages
        ]
        read = [(r.kind, r.cursor) for r in requests]
        assert len(read) == len(set(read)), "no page was read again from the start"
        retried = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert max(retried) >= 2, "the page in flight was retried, with its cursor"
        mirrored = _mirrored(MirrorStore(h.store), h.connection.id, MirrorKind.vendors)
        assert set(mirrored) == {v.id for v in vendors}
        assert outcome.counts["vendors"] == len(vendors), "each vendor counted once"
