"""The bill projection: revision ordering, exact money, UTC times, paging, duplicate look-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from store import InvalidCursor, Store
from tests.store.conftest import make_bill

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_an_older_revision_never_overwrites_a_newer_one(store: Store) -> None:
    assert store.upsert_bill(make_bill(revision=1, status="captured")) is True
    assert store.upsert_bill(make_bill(revision=3, status="approved", pending_approvers=[]))
    assert store.upsert_bill(make_bill(revision=2, status="awaiting_approval")) is False

    stored = store.get_bill("bill/conn-1/INV-1")
    assert stored is not None
    assert (stored.revision, stored.status, stored.pending_approvers) == (3, "approved", [])


def test_repeating_a_write_is_harmless_and_keeps_the_first_created_at(store: Store) -> None:
    first = make_bill(revision=1, created_at=T0, updated_at=T0)
    assert store.upsert_bill(first)
    assert store.upsert_bill(first) is False

    later = T0 + timedelta(hours=5)
    assert store.upsert_bill(make_bill(revision=2, step="pay", created_at=later, updated_at=later))

    stored = store.get_bill(first.workflow_id)
    assert stored is not None
    assert stored.step == "pay"
    assert stored.created_at == T0
    assert stored.updated_at == later
    assert len(store.list_bills()[0]) == 1


def test_get_bill_of_an_unknown_workflow_is_none(store: Store) -> None:
    assert store.get_bill("bill/none/none") is None


def test_decimals_round_trip_exactly(store: Store) -> None:
    total = Decimal("0.1") + Decimal("0.2")
    largest = Decimal("999999999999.999999")
    state = {"lines": [{"amount": Decimal("0.1")}, {"amount": Decimal("0.2")}], "n": 3}
    store.upsert_bill(make_bill(total=total, amount_due=largest, state=state))

    stored = store.get_bill("bill/conn-1/INV-1")
    assert stored is not None
    assert isinstance(stored.total, Decimal)
    assert stored.total == Decimal("0.3")
    assert stored.amount_due == largest
    assert stored.state == state
    amounts = [line["amount"] for line in stored.state["lines"]]
    assert all(isinstance(amount, Decimal) for amount in amounts)
    assert sum(amounts) == Decimal("0.3")


@pytest.mark.parametrize(
    "bad_total", [Decimal("0.0000001"), Decimal("1000000000000"), Decimal("NaN"), 0.3]
)
def test_amounts_the_column_cannot_hold_are_refused(store: Store, bad_total: object) -> None:
    with pytest.raises(Exception, match="decimal|fit|finite|float"):
        store.upsert_bill(make_bill(total=bad_total))
    assert store.get_bill("bill/conn-1/INV-1") is None


def test_datetimes_come_back_tz_aware_in_utc(store: Store) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2025, 3, 2, 8, 30, 15, 123456, tzinfo=tokyo)
    store.upsert_bill(make_bill(created_at=created, updated_at=created))

    stored = store.get_bill("bill/conn-1/INV-1")
    assert stored is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == created
    assert stored.created_at.hour == 23


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive"):
        store.upsert_bill(make_bill(created_at=datetime(2025, 3, 1, 9, 0)))


SEEDED = 11


def _connection_of(index: int) -> str:
    return "conn-1" if index % 3 else "conn-2"


def _seeded_id(index: int) -> str:
    return f"bill/{_connection_of(index)}/INV-{index:02d}"


def _seed(store: Store) -> list[str]:
    """Bills over two connections; pairs share a created_at so the tie-break is exercised.

    Returned in the order the store must list them: created_at, then workflow_id.
    """
    created_at: dict[str, datetime] = {}
    for index in range(SEEDED):
        workflow_id = _seeded_id(index)
        created = T0 + timedelta(minutes=index // 2)
        store.upsert_bill(
            make_bill(
                workflow_id,
                connection_id=_connection_of(index),
                status="paid" if index % 4 == 0 else "awaiting_approval",
                vendor_name="Globex 100% Corp" if index % 2 else "Acme Supplies Ltd",
                due_date=date(2025, 4, 1) + timedelta(days=index),
                pending_approvers=["user-bo", "user-cy"] if index % 5 == 0 else ["user-cy"],
                created_at=created,
                updated_at=created,
            )
        )
        created_at[workflow_id] = created
    return sorted(created_at, key=lambda workflow_id: (created_at[workflow_id], workflow_id))


def _all_pages(store: Store, limit: int, **filters: object) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        rows, cursor = store.list_bills(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        pages.append([row.workflow_id for row in rows])
        if cursor is None:
            return pages


def test_keyset_pages_cover_every_bill_once_in_creation_order(store: Store) -> None:
    expected = _seed(store)
    everything, cursor = store.list_bills(limit=100)
    assert cursor is None
    assert [row.workflow_id for row in everything] == expected

    pages = _all_pages(store, limit=3)
    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert [workflow_id for page in pages for workflow_id in page] == expected


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"connection_id": "conn-2"}, lambda i: i % 3 == 0),
        ({"status": "paid"}, lambda i: i % 4 == 0),
        ({"vendor": "GLOBEX"}, lambda i: i % 2 == 1),
        ({"vendor": "100%"}, lambda i: i % 2 == 1),
        ({"vendor": "0% c"}, lambda i: i % 2 == 1),
        ({"vendor": "%"}, lambda i: i % 2 == 1),
        ({"due_before": date(2025, 4, 6)}, lambda i: i < 5),
        ({"pending_approver": "user-bo"}, lambda i: i % 5 == 0),
        ({"pending_approver": "user-cy", "connection_id": "conn-1"}, lambda i: i % 3 != 0),
        ({"pending_approver": "user"}, lambda i: False),
    ],
)
def test_filters_hold_across_pages(store: Store, filters: dict[str, object], keep: object) -> None:
    order = _seed(store)
    wanted = {_seeded_id(index) for index in range(SEEDED) if keep(index)}  # type: ignore[operator]

    pages = _all_pages(store, limit=2, **filters)
    listed = [workflow_id for page in pages for workflow_id in page]
    assert listed == [workflow_id for workflow_id in order if workflow_id in wanted]


def test_a_cursor_stays_valid_while_new_bills_arrive(store: Store) -> None:
    _seed(store)
    first_page, cursor = store.list_bills(limit=4)
    newest = T0 + timedelta(days=1)
    store.upsert_bill(make_bill("bill/conn-1/LATE", created_at=newest, updated_at=newest))
    rest = _all_pages_from(store, cursor)
    seen = [row.workflow_id for row in first_page] + rest
    assert len(seen) == len(set(seen)) == 12
    assert seen[-1] == "bill/conn-1/LATE"


def _all_pages_from(store: Store, cursor: str | None) -> list[str]:
    seen: list[str] = []
    while cursor is not None:
        rows, cursor = store.list_bills(limit=4, cursor=cursor)
        seen.extend(row.workflow_id for row in rows)
    return seen


@pytest.mark.parametrize("cursor", ["not-a-cursor", "W10", "WyJ4IiwgMV0"])
def test_a_forged_cursor_is_refused(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        store.list_bills(cursor=cursor)


def test_page_size_is_bounded(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_bills(limit=0)


def test_similar_bills_match_on_document_number_or_amount_and_date(store: Store) -> None:
    same_number = make_bill("bill/conn-1/A", total=Decimal("99.00"), issue_date=date(2025, 1, 5))
    same_amount_and_day = make_bill(
        "bill/conn-1/B", document_number_key="other", total=Decimal("1250.000")
    )
    same_amount_days_later = make_bill(
        "bill/conn-1/C",
        document_number_key="third",
        total=Decimal("1250"),
        issue_date=date(2025, 3, 4),
    )
    other_vendor = make_bill("bill/conn-1/D", vendor_key="initech")
    other_connection = make_bill("bill/conn-2/E", connection_id="conn-2")
    different_amount = make_bill(
        "bill/conn-1/F", document_number_key="fourth", total=Decimal("1250.01")
    )
    for row in (
        same_number,
        same_amount_and_day,
        same_amount_days_later,
        other_vendor,
        other_connection,
        different_amount,
    ):
        store.upsert_bill(row)

    def similar(**overrides: object) -> list[str]:
        query: dict[str, object] = {
            "connection_id": "conn-1",
            "vendor_key": "acme supplies",
            "document_number_key": "inv1",
            "total": Decimal("1250.00"),
            "issue_date": date(2025, 3, 1),
            "exclude_workflow_id": "bill/conn-1/NEW",
        }
        query.update(overrides)
        return [row.workflow_id for row in store.find_similar_bills(**query)]  # type: ignore[arg-type]

    assert similar() == ["bill/conn-1/A", "bill/conn-1/B"]
    assert similar(issue_date_window=timedelta(days=3)) == [
        "bill/conn-1/A",
        "bill/conn-1/B",
        "bill/conn-1/C",
    ]
    assert similar(document_number_key=None) == ["bill/conn-1/B"]
    assert similar(exclude_workflow_id="bill/conn-1/A") == ["bill/conn-1/B"]
    assert similar(vendor_key="nobody") == []
