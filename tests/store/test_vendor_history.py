"""A vendor's recent bills from the books' mirror, and the coding they say is usual for it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from accounting import Bill, BillLine, TrackingCategory, TrackingKind, TrackingRef
from activities.match import HISTORY_BILLS, PastLine, mirror_history, usual_coding
from connectors.mirror import MirrorKind, MirrorRecord
from store import Store
from store.mirror import MirrorStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SALES = TrackingRef(kind=TrackingKind.department, id="D1", name="Sales")


def _bill(
    bill_id: str,
    issued: date,
    *accounts: str,
    vendor_id: str = "V1",
    status: str = "open",
    tracking: tuple[TrackingRef, ...] = (),
    changed: datetime = T0,
) -> MirrorRecord:
    bill = Bill(
        id=bill_id,
        vendor_id=vendor_id,
        issue_date=issued,
        currency="USD",
        lines=[
            BillLine(amount=Decimal("10.00"), account_id=account, tracking=list(tracking))
            for account in accounts
        ],
        total=Decimal("10.00") * len(accounts),
        status=status,
    )
    return MirrorRecord(
        kind=MirrorKind.bills,
        platform_id=bill_id,
        data=bill.model_dump(mode="json"),
        platform_updated_at=changed,
    )


def test_the_vendors_last_bills_come_newest_first_without_void_or_deleted_ones(
    store: Store,
) -> None:
    mirror = MirrorStore(store)
    day = date(2026, 10, 1)
    mirror.apply(
        "c1",
        [
            _bill("B1", day, "7"),
            _bill("B2", day + timedelta(days=2), "8"),
            # Same issue date as B2, changed later in the platform: the newer of the two.
            _bill("B3", day + timedelta(days=2), "9", changed=T0 + timedelta(hours=1)),
            _bill("B4", day + timedelta(days=5), "7", status="void"),
            _bill("B5", day + timedelta(days=6), "7", vendor_id="V2"),
            _bill("B6", day + timedelta(days=7), "7"),
        ],
        synced_at=T0,
    )
    mirror.apply("c2", [_bill("B9", day, "7")], synced_at=T0)  # another connection's books
    gone = MirrorRecord(kind=MirrorKind.bills, platform_id="B6", deleted=True)
    mirror.apply("c1", [gone], synced_at=T0)

    ids = [bill["id"] for bill in mirror.recent_vendor_bills("c1", "V1", limit=10)]
    assert ids == ["B3", "B2", "B1"]
    assert [b["id"] for b in mirror.recent_vendor_bills("c1", "V1", limit=2)] == ["B3", "B2"]
    assert mirror.recent_vendor_bills("c1", "V-none", limit=10) == []


async def test_the_mirror_history_gives_each_bills_coded_lines(store: Store) -> None:
    mirror = MirrorStore(store)
    day = date(2026, 10, 1)
    mirror.apply(
        "c1",
        [_bill(f"B{n:02d}", day + timedelta(days=n), "7", tracking=(SALES,)) for n in range(20)],
        synced_at=T0,
    )

    history = await mirror_history(mirror)("c1", "V1")

    assert len(history) == HISTORY_BILLS
    assert history[0] == [PastLine(account_id="7", tracking=(SALES,))]


def _lines(*accounts: str, tracking: tuple[TrackingRef, ...] = ()) -> list[PastLine]:
    return [PastLine(account_id=a, tracking=tracking) for a in accounts]


def _tracking(kind: TrackingKind, ref_id: str) -> TrackingCategory | None:
    known = {("D1", "Sales"), ("D2", "Ops")}
    for known_id, name in known:
        if kind is TrackingKind.department and ref_id == known_id:
            return TrackingCategory(id=known_id, name=name, kind=kind)
    return None


def test_the_most_used_account_wins_counted_once_per_bill() -> None:
    # Newest first: "8" is on 3 bills (one of them twice), "7" on 2.
    history = [_lines("8", "8"), _lines("7"), _lines("8"), _lines("7"), _lines("8")]

    usual = usual_coding(history, vendor_name="Acme", codable=lambda a: True, tracking=_tracking)

    assert usual is not None
    assert usual.account_id == "8"
    assert usual.reason == "most used on Acme's last 5 bills (3 of 5)"


def test_a_tie_goes_to_the_account_used_most_recently() -> None:
    history = [_lines("7"), _lines("8"), _lines("8"), _lines("7")]

    usual = usual_coding(history, vendor_name="Acme", codable=lambda a: True, tracking=_tracking)

    assert usual is not None and usual.account_id == "7"


def test_an_account_that_can_no_longer_be_coded_to_is_passed_over() -> None:
    history = [_lines("8"), _lines("8"), _lines("7")]

    usual = usual_coding(
        history, vendor_name="Acme", codable=lambda a: a != "8", tracking=_tracking
    )

    assert usual is not None and usual.account_id == "7"
    assert usual.reason == "most used on Acme's last 3 bills (1 of 3)"
    nothing = usual_coding(history, vendor_name="Acme", codable=lambda a: False, tracking=_tracking)
    assert nothing is None


def test_only_the_last_bills_count() -> None:
    old = [_lines("9") for _ in range(HISTORY_BILLS)]
    history = [_lines("7"), *old]  # 1 recent bill on 7, then a year and more on 9

    usual = usual_coding(history, vendor_name="Acme", codable=lambda a: True, tracking=_tracking)

    assert usual is not None and usual.account_id == "9"
    n = HISTORY_BILLS
    assert usual.reason == f"most used on Acme's last {n} bills ({n - 1} of {n})"


def test_tracking_comes_from_the_chosen_accounts_lines_and_must_still_exist() -> None:
    ops = TrackingRef(kind=TrackingKind.department, id="D2")
    gone = TrackingRef(kind=TrackingKind.class_, id="C9")
    history = [
        _lines("7", tracking=(ops, gone)),
        _lines("7", tracking=(SALES, gone)),
        _lines("7", tracking=(SALES,)),
        _lines("8", tracking=(ops,)),
        _lines("8", tracking=(ops,)),
    ]

    usual = usual_coding(history, vendor_name="Acme", codable=lambda a: True, tracking=_tracking)

    assert usual is not None and usual.account_id == "7"
    assert [(r.kind, r.id, r.name) for r in usual.tracking] == [
        (TrackingKind.department, "D1", "Sales")
    ]


def test_no_history_suggests_nothing() -> None:
    assert usual_coding([], vendor_name="Acme", codable=lambda a: True, tracking=_tracking) is None
    uncoded = usual_coding(
        [_lines()], vendor_name="Acme", codable=lambda a: True, tracking=_tracking
    )
    assert uncoded is None
