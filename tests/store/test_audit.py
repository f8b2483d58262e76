"""The audit log: appends are safe to repeat, and a bill's trail reads back in order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from store import AuditEventRow, Store

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_the_same_event_key_twice_stores_one_event(store: Store) -> None:
    first = store.append_audit(
        event_key="bill/conn-1/INV-1/approve/1",
        workflow_id="bill/conn-1/INV-1",
        actor="user-bo",
        kind="decision",
        summary="approved level 1",
        at=T0,
        policy_version="2025-01",
        detail={"level": 1, "amount": Decimal("1250.00")},
    )
    again = store.append_audit(
        event_key="bill/conn-1/INV-1/approve/1",
        workflow_id="bill/conn-1/INV-1",
        actor="someone-else",
        kind="decision",
        summary="a retried activity with a different clock",
        at=T0 + timedelta(seconds=30),
    )

    assert again.id == first.id
    assert again.actor == "user-bo"
    trail = store.audit_for("bill/conn-1/INV-1")
    assert [event.id for event in trail] == [first.id]
    assert trail[0].at == T0
    assert trail[0].detail == {"level": 1, "amount": Decimal("1250.00")}
    assert trail[0].policy_version == "2025-01"


def test_a_trail_is_in_time_order_and_only_for_its_bill(store: Store) -> None:
    appended = []
    # Appended out of order, as retried activities can be.
    for key, minutes in (("c", 2), ("a", 0), ("b", 1)):
        appended.append(
            store.append_audit(
                event_key=f"wf-1/{key}",
                workflow_id="wf-1",
                actor="remit",
                kind="status",
                summary=key,
                at=T0 + timedelta(minutes=minutes),
            )
        )
    store.append_audit(
        event_key="wf-2/a", workflow_id="wf-2", actor="remit", kind="status", summary="other"
    )

    trail = store.audit_for("wf-1")
    assert [event.summary for event in trail] == ["a", "b", "c"]
    assert all(event.at.utcoffset() == timedelta(0) for event in trail)
    assert store.audit_for("nobody") == []


def test_concurrent_repeats_of_one_append_store_one_event(store: Store) -> None:
    racers = 4
    start = threading.Barrier(racers)

    def append(actor: int) -> AuditEventRow:
        start.wait()
        return store.append_audit(
            event_key="wf-race/erp_write/1",
            workflow_id="wf-race",
            actor=f"worker-{actor}",
            kind="erp_write",
            summary="created bill",
            idempotency_key="wf-race/write_bill",
            result="created 146",
        )

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(append, range(racers)))

    assert len({event.id for event in results}) == 1
    assert len({event.actor for event in results}) == 1
    assert len(store.audit_for("wf-race")) == 1


def test_the_store_offers_no_way_to_change_the_audit_log() -> None:
    mutators = [
        name
        for name in dir(Store)
        if "audit" in name and any(verb in name for verb in ("update", "delete", "remove", "edit"))
    ]
    assert mutators == []
