"""Drift findings: a reconciled bill compared with the mirror; each drift recorded once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.mirror import MirrorKind, MirrorRecord
from store import InvalidCursor, MirrorStore, Store
from store.drift import CLEARED, OPEN, RESOLVED, DriftStore, compare_bill
from tests.store.conftest import make_bill

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def reconciled(workflow_id: str = "bill/conn-1/INV-1", **overrides: Any) -> Any:
    state = {
        "status": "reconciled",
        "reconciliation": {"ok": True, "balance": "0.00"},
        "payments": [{"erp_payment_id": "P-1", "amount": "1250.00", "erp_voided": False}],
        "payment": {"amount": "1250.00"},
    }
    return make_bill(
        workflow_id,
        status="reconciled",
        step="done",
        erp_bill_id="B-1",
        erp_payment_id="P-1",
        state=state,
        **overrides,
    )


def erp_bill(**changes: Any) -> MirrorRecord:
    data: dict[str, Any] = {
        "id": "B-1",
        "vendor_id": "V-1",
        "issue_date": "2025-03-01",
        "currency": "USD",
        "lines": [{"amount": "1250.00"}],
        "total": "1250.00",
        "balance": "0.00",
        "status": "paid",
    }
    data.update(changes)
    return MirrorRecord(kind=MirrorKind.bills, platform_id="B-1", data=data)


def erp_payment(*, voided: bool = False, amount: str = "1250.00") -> MirrorRecord:
    return MirrorRecord(
        kind=MirrorKind.bill_payments,
        platform_id="P-1",
        data={
            "id": "P-1",
            "vendor_id": "V-1",
            "payment_date": "2025-03-20",
            "currency": "USD",
            "source_account_id": "A-1",
            "total": "0" if voided else amount,
            "lines": [] if voided else [{"bill_id": "B-1", "amount": amount, "discount": "0"}],
            "voided": voided,
        },
    )


def drifts_of(store: Store, *records: MirrorRecord) -> list[str]:
    mirror = MirrorStore(store)
    mirror.apply("conn-1", list(records), synced_at=NOW)
    bill = reconciled()
    return sorted(
        d.kind
        for d in compare_bill(
            bill,
            mirror.get("conn-1", MirrorKind.bills, "B-1"),
            {"P-1": mirror.get("conn-1", MirrorKind.bill_payments, "P-1")},
        )
    )


def test_a_bill_the_books_still_show_paid_has_no_drift(store: Store) -> None:
    assert drifts_of(store, erp_bill(), erp_payment()) == []


def test_a_deleted_payment_is_missing_and_reopens_the_balance(store: Store) -> None:
    mirror = MirrorStore(store)
    mirror.apply("conn-1", [erp_bill(), erp_payment()], synced_at=NOW)
    deleted = MirrorRecord(kind=MirrorKind.bill_payments, platform_id="P-1", deleted=True)
    reopened = erp_bill(balance="1250.00", status="open")
    assert drifts_of(store, reopened, deleted) == ["balance_reopened", "payment_missing"]


def test_voided_payment_edited_amount_total_and_vendor(store: Store) -> None:
    assert drifts_of(store, erp_bill(), erp_payment(voided=True)) == ["payment_voided"]
    assert drifts_of(store, erp_bill(), erp_payment(amount="1000.00")) == ["payment_changed"]
    edited = erp_bill(total="1300.00", lines=[{"amount": "1300.00"}], vendor_id="V-9")
    assert drifts_of(store, edited, erp_payment()) == ["total_changed", "vendor_changed"]


def test_a_voided_or_deleted_bill(store: Store) -> None:
    assert drifts_of(store, erp_bill(status="void"), erp_payment()) == ["bill_voided"]
    gone = MirrorRecord(kind=MirrorKind.bills, platform_id="B-1", deleted=True)
    assert drifts_of(store, gone) == ["bill_deleted"]


def test_messages_say_the_difference_as_money(store: Store) -> None:
    mirror = MirrorStore(store)
    mirror.apply("conn-1", [erp_bill(), erp_payment(amount="1000.00")], synced_at=NOW)
    [drift] = compare_bill(
        reconciled(),
        mirror.get("conn-1", MirrorKind.bills, "B-1"),
        {"P-1": mirror.get("conn-1", MirrorKind.bill_payments, "P-1")},
    )
    assert "USD 1,250.00 paid, USD 1,000.00 now (difference USD -250.00)" in drift.message
    assert drift.expected["amount"] == {"amount": "1250.00", "currency": "USD"}
    assert drift.found["amount"] == {"amount": "1000.00", "currency": "USD"}


def _observe(drifts: DriftStore, store: Store, *records: MirrorRecord, at: datetime) -> Any:
    mirror = MirrorStore(store)
    mirror.apply("conn-1", list(records), synced_at=at)
    found = compare_bill(
        reconciled(),
        mirror.get("conn-1", MirrorKind.bills, "B-1"),
        {"P-1": mirror.get("conn-1", MirrorKind.bill_payments, "P-1")},
    )
    return drifts.observe(
        workflow_id="bill/conn-1/INV-1",
        connection_id="conn-1",
        erp_bill_id="B-1",
        drifts=found,
        at=at,
    )


def test_a_finding_is_recorded_once_cleared_when_gone_and_new_when_back(store: Store) -> None:
    drifts = DriftStore(store)
    first = _observe(drifts, store, erp_bill(), erp_payment(voided=True), at=NOW)
    assert [f.kind for f in first.new] == ["payment_voided"]

    again = _observe(drifts, store, erp_bill(), erp_payment(voided=True), at=NOW + timedelta(1))
    assert again.new == [] and [f.id for f in again.still_open] == [first.new[0].id]
    rows, _ = drifts.list()
    assert [(r.id, r.status) for r in rows] == [(first.new[0].id, OPEN)]
    assert rows[0].detected_at == NOW and rows[0].last_seen_at == NOW + timedelta(1)

    fixed = _observe(drifts, store, erp_bill(), erp_payment(), at=NOW + timedelta(2))
    assert [f.id for f in fixed.cleared] == [first.new[0].id] and fixed.new == []
    assert drifts.count_open() == 0
    stored = drifts.get(first.new[0].id)
    assert stored is not None and stored.status == CLEARED

    back = _observe(drifts, store, erp_bill(), erp_payment(voided=True), at=NOW + timedelta(3))
    assert len(back.new) == 1 and back.new[0].id != first.new[0].id
    assert back.new[0].occurrence == 1


def test_resolve_and_pages(store: Store) -> None:
    drifts = DriftStore(store)
    for n in range(3):
        mirror = MirrorStore(store)
        mirror.apply("conn-1", [erp_bill(status="void"), erp_payment()], synced_at=NOW)
        drifts.observe(
            workflow_id=f"bill/conn-1/INV-{n}",
            connection_id="conn-1",
            erp_bill_id="B-1",
            drifts=compare_bill(
                reconciled(f"bill/conn-1/INV-{n}"),
                mirror.get("conn-1", MirrorKind.bills, "B-1"),
                {"P-1": mirror.get("conn-1", MirrorKind.bill_payments, "P-1")},
            ),
            at=NOW + timedelta(minutes=n),
        )
    first, cursor = drifts.list(limit=2, connection_ids={"conn-1"})
    assert len(first) == 2 and cursor is not None
    rest, end = drifts.list(limit=2, cursor=cursor)
    assert end is None and {r.workflow_id for r in first + rest} == {
        f"bill/conn-1/INV-{n}" for n in range(3)
    }
    assert drifts.list(connection_ids=set())[0] == []

    resolved = drifts.resolve(first[0].id, by="olivia", note="refund agreed", at=NOW)
    assert resolved.status == RESOLVED and resolved.resolved_by == "olivia"
    with pytest.raises(ValueError):
        drifts.resolve(first[0].id, by="olivia", note=None, at=NOW)
    with pytest.raises(KeyError):
        drifts.resolve("drift_nope", by="olivia", note=None, at=NOW)
    with pytest.raises(InvalidCursor):
        drifts.list(cursor="garbage")
    assert Decimal(reconciled().total) == Decimal("1250.00")
