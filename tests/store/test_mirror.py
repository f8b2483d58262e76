"""The books' mirror in the store: upserts that count real changes, deletions, pages, runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from accounting import Bill, BillLine, BillPayment, BillPaymentLine, Vendor
from connectors.mirror import MirrorKind, MirrorRecord
from store import InvalidCursor, Store
from store.mirror import MirrorStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _vendor(number: int, *, name: str | None = None, active: bool = True) -> MirrorRecord:
    vendor = Vendor(id=f"V{number:04d}", name=name or f"Vendor {number}", active=active)
    return MirrorRecord(
        kind=MirrorKind.vendors,
        platform_id=vendor.id or "",
        data=vendor.model_dump(mode="json"),
        platform_data={"DisplayName": vendor.name, "SyncToken": "0"},
        platform_updated_at=T0,
    )


def _bill(bill_id: str, *, total: str = "120.00", status: str = "open") -> MirrorRecord:
    bill = Bill(
        id=bill_id,
        vendor_id="V0001",
        document_number=f"INV-{bill_id}",
        issue_date=T0.date(),
        currency="USD",
        lines=[BillLine(amount=Decimal(total), account_id="7")],
        total=Decimal(total),
        status=status,
    )
    return MirrorRecord(
        kind=MirrorKind.bills,
        platform_id=bill_id,
        data=bill.model_dump(mode="json"),
        platform_data={"Id": bill_id},
        platform_updated_at=T0,
    )


def _payment(payment_id: str, bill_id: str, amount: str) -> MirrorRecord:
    payment = BillPayment(
        id=payment_id,
        vendor_id="V0001",
        payment_date=T0.date(),
        currency="USD",
        source_account_id="35",
        total=Decimal(amount),
        lines=[BillPaymentLine(bill_id=bill_id, amount=Decimal(amount))],
    )
    return MirrorRecord(
        kind=MirrorKind.bill_payments,
        platform_id=payment_id,
        data=payment.model_dump(mode="json"),
        platform_updated_at=T0,
    )


def _gone(kind: MirrorKind, platform_id: str) -> MirrorRecord:
    return MirrorRecord(kind=kind, platform_id=platform_id, deleted=True)


@pytest.fixture
def mirror(store: Store) -> MirrorStore:
    return MirrorStore(store)


def test_apply_counts_only_what_changed_and_a_repeat_changes_nothing(mirror: MirrorStore) -> None:
    page = [_vendor(n) for n in range(1, 6)] + [_bill("B1")]
    first = mirror.apply("c1", page, synced_at=T0)
    assert (first.created, first.updated, first.unchanged) == (6, 0, 0)
    assert first.changed_bill_ids == ["B1"]

    again = mirror.apply("c1", page, synced_at=T0 + timedelta(minutes=1))
    assert (again.created, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 6)
    assert again.changed_bill_ids == []
    row = mirror.get("c1", MirrorKind.vendors, "V0001")
    assert row is not None and row.last_synced_at == T0 + timedelta(minutes=1)

    edited = mirror.apply(
        "c1", [_vendor(2, name="Renamed Ltd"), _bill("B1", total="99.50")], synced_at=T0
    )
    assert (edited.updated, edited.unchanged) == (2, 0)
    assert edited.changed_bill_ids == ["B1"]
    bill = mirror.get("c1", MirrorKind.bills, "B1")
    assert bill is not None and bill.data["total"] == "99.50"
    renamed = mirror.get("c1", MirrorKind.vendors, "V0002")
    assert renamed is not None and renamed.data["name"] == "Renamed Ltd"


def test_connections_do_not_see_each_others_books(mirror: MirrorStore) -> None:
    mirror.apply("c1", [_vendor(1)], synced_at=T0)
    mirror.apply("c2", [_vendor(1, name="Other company's vendor")], synced_at=T0)
    assert mirror.get("c1", MirrorKind.vendors, "V0001").data["name"] == "Vendor 1"  # type: ignore[union-attr]
    assert mirror.counts("c1") == {"vendors": 1}
    assert mirror.list("c2", MirrorKind.vendors).items[0].data["name"] == "Other company's vendor"


def test_a_deletion_keeps_what_was_deleted_and_hides_it_from_listings(mirror: MirrorStore) -> None:
    mirror.apply("c1", [_bill("B1"), _bill("B2")], synced_at=T0)
    result = mirror.apply(
        "c1", [_gone(MirrorKind.bills, "B2"), _gone(MirrorKind.bills, "B9")], synced_at=T0
    )
    assert (result.deleted, result.created) == (1, 0)  # B9 was never mirrored: nothing to say
    assert result.changed_bill_ids == ["B2"]

    live = mirror.list("c1", MirrorKind.bills)
    assert [row.platform_id for row in live.items] == ["B1"]
    everything = mirror.list("c1", MirrorKind.bills, include_deleted=True)
    assert [row.platform_id for row in everything.items] == ["B1", "B2"]
    deleted = mirror.get("c1", MirrorKind.bills, "B2")
    assert deleted is not None and deleted.deleted_at == T0
    assert deleted.data["document_number"] == "INV-B2"  # the last known fields stay

    repeat = mirror.apply("c1", [_gone(MirrorKind.bills, "B2")], synced_at=T0)
    assert repeat.deleted == 0 and repeat.changed_bill_ids == []

    back = mirror.apply("c1", [_bill("B2")], synced_at=T0 + timedelta(hours=1))
    assert back.updated == 1
    assert mirror.get("c1", MirrorKind.bills, "B2").deleted_at is None  # type: ignore[union-attr]


def test_a_full_pass_sweeps_what_its_run_did_not_see_whatever_the_clocks(
    mirror: MirrorStore,
) -> None:
    mirror.apply("c1", [_vendor(n) for n in range(1, 5)], synced_at=T0, run_id="run-1")
    # The next run's worker clock runs behind the first's: time cannot tell what it saw.
    behind = T0 - timedelta(minutes=3)
    mirror.apply("c1", [_vendor(1), _vendor(3)], synced_at=behind, run_id="run-2")
    mirror.apply("c1", [_vendor(3)], synced_at=behind, run_id="run-2")  # a retried page
    gone = mirror.sweep_unseen("c1", MirrorKind.vendors, run_id="run-2")
    assert sorted(gone) == ["V0002", "V0004"]
    assert [row.platform_id for row in mirror.list("c1", MirrorKind.vendors).items] == [
        "V0001",
        "V0003",
    ]
    assert mirror.sweep_unseen("c1", MirrorKind.vendors, run_id="run-2") == []


def test_a_full_pass_sweeps_what_it_did_not_see(mirror: MirrorStore) -> None:
    mirror.apply("c1", [_vendor(n) for n in range(1, 5)], synced_at=T0)
    later = T0 + timedelta(minutes=15)
    mirror.apply("c1", [_vendor(1), _vendor(3)], synced_at=later)
    gone = mirror.sweep_unseen("c1", MirrorKind.vendors, not_seen_since=later)
    assert sorted(gone) == ["V0002", "V0004"]
    assert [row.platform_id for row in mirror.list("c1", MirrorKind.vendors).items] == [
        "V0001",
        "V0003",
    ]
    assert mirror.sweep_unseen("c1", MirrorKind.vendors, not_seen_since=later) == []


def test_pages_follow_the_cursor_to_the_end_without_repeats(mirror: MirrorStore) -> None:
    mirror.apply("c1", [_vendor(n) for n in range(1, 24)], synced_at=T0)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = mirror.list("c1", MirrorKind.vendors, limit=5, cursor=cursor)
        seen.extend(row.platform_id for row in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert seen == [f"V{n:04d}" for n in range(1, 24)]


def test_a_cursor_from_another_listing_or_altered_is_refused(mirror: MirrorStore) -> None:
    mirror.apply("c1", [_vendor(n) for n in range(1, 4)] + [_bill("B1"), _bill("B2")], synced_at=T0)
    cursor = mirror.list("c1", MirrorKind.vendors, limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        mirror.list("c1", MirrorKind.bills, cursor=cursor)
    with pytest.raises(InvalidCursor):
        mirror.list("c1", MirrorKind.vendors, cursor="not-a-cursor!")


def test_filters_pick_by_status_vendor_and_time(mirror: MirrorStore) -> None:
    records: list[Any] = [
        _bill("B1"),
        _bill("B2", status="paid"),
        _bill("B3", status="void"),
        _vendor(7, active=False),
        _vendor(8),
    ]
    mirror.apply("c1", records, synced_at=T0)
    assert [r.platform_id for r in mirror.list("c1", MirrorKind.bills, status="paid").items] == [
        "B2"
    ]
    assert len(mirror.list("c1", MirrorKind.bills, vendor_id="V0001").items) == 3
    assert mirror.list("c1", MirrorKind.bills, vendor_id="V0404").items == []
    assert [
        r.platform_id for r in mirror.list("c1", MirrorKind.vendors, status="inactive").items
    ] == ["V0007"]
    newer = _bill("B4").model_copy(update={"platform_updated_at": T0 + timedelta(days=1)})
    mirror.apply("c1", [newer], synced_at=T0)
    since = mirror.list("c1", MirrorKind.bills, updated_since=T0 + timedelta(hours=1))
    assert [r.platform_id for r in since.items] == ["B4"]


def test_a_bills_payments_are_found_by_their_lines(mirror: MirrorStore) -> None:
    mirror.apply(
        "c1",
        [_bill("B1"), _bill("B2"), _payment("P1", "B1", "20.00"), _payment("P2", "B2", "5.00")],
        synced_at=T0,
    )
    assert [row.platform_id for row in mirror.bills_paid_by("c1", "B1")] == ["P1"]
    assert mirror.bills_paid_by("c1", "B404") == []


def test_watermarks_and_last_synced(mirror: MirrorStore) -> None:
    assert mirror.watermark("c1", MirrorKind.bills) is None
    assert mirror.last_synced_at("c1") is None
    mirror.set_watermark("c1", MirrorKind.bills, "2026-11-02T09:00:00Z", synced_at=T0)
    mirror.set_watermark("c1", MirrorKind.vendors, "w1", synced_at=T0 + timedelta(minutes=5))
    mirror.set_watermark("c1", MirrorKind.bills, "w2", synced_at=T0 + timedelta(minutes=10))
    assert mirror.watermark("c1", MirrorKind.bills) == "w2"
    assert mirror.last_synced_at("c1", MirrorKind.bills) == T0 + timedelta(minutes=10)
    assert mirror.last_synced_at("c1") == T0 + timedelta(minutes=5)  # the oldest kind
    assert mirror.watermark("c2", MirrorKind.bills) is None


def test_sync_runs_record_progress_and_outcome(mirror: MirrorStore) -> None:
    run = mirror.start_run(
        run_id="r1",
        connection_id="c1",
        mode="full",
        trigger="connect",
        workflow_id="sync/c1",
        started_at=T0,
    )
    assert run.status == "running"
    assert (
        mirror.start_run(  # a retried start is the same run
            run_id="r1",
            connection_id="c1",
            mode="full",
            trigger="connect",
            workflow_id="sync/c1",
            started_at=T0 + timedelta(seconds=3),
        ).started_at
        == T0
    )
    mirror.add_progress("r1", changed={"vendors": 3})
    mirror.add_progress("r1", changed={"vendors": 2, "bills": 4}, errors=["items: refused"])
    mid = mirror.get_run("r1")
    assert mid is not None and mid.counts == {"vendors": 5, "bills": 4} and mid.objects_changed == 9
    mirror.finish_run(
        "r1",
        status="succeeded",
        objects_changed=9,
        counts={"vendors": 5, "bills": 4},
        errors=["items: refused"],
        finished_at=T0 + timedelta(minutes=1),
    )
    mirror.start_run(
        run_id="r2",
        connection_id="c1",
        mode="incremental",
        trigger="schedule",
        workflow_id="sync/c1",
        started_at=T0 + timedelta(minutes=15),
    )
    assert [r.run_id for r in mirror.list_runs("c1")] == ["r2", "r1"]
    done = mirror.get_run("r1")
    assert done is not None and done.status == "succeeded" and done.errors == ["items: refused"]
