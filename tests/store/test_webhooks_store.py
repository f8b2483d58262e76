"""Webhook tables: endpoints, events stored once, deliveries claimed under a lease, attempt log."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from store import (
    RecordNotFound,
    Store,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    WebhookStore,
    make_engine,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.fixture
def hooks(store: Store) -> WebhookStore:
    return WebhookStore(store)


def _endpoint(endpoint_id: str = "we_1", **overrides: object) -> WebhookEndpointRow:
    values: dict[str, object] = {
        "id": endpoint_id,
        "url": "https://receiver.example/hooks",
        "event_types": ["bill.paid", "bill.reconciled"],
        "secret_encrypted": b"\x00sealed\xff",
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return WebhookEndpointRow(**values)  # type: ignore[arg-type]


def _event(event_id: str, *, type: str = "bill.paid", at: datetime = T0) -> WebhookEventRow:
    return WebhookEventRow(
        id=event_id,
        type=type,
        subject="bill/conn-1/INV-1",
        payload={"id": event_id, "type": type, "data": {"amount": {"value": "10.00"}}},
        created_at=at,
    )


def test_endpoints_filter_by_subscription_and_status_and_hide_the_secret(
    hooks: WebhookStore,
) -> None:
    hooks.create_endpoint(_endpoint("we_1"))
    hooks.create_endpoint(_endpoint("we_2", event_types=["bill.created"]))
    assert [e.id for e in hooks.endpoints_for("bill.paid")] == ["we_1"]
    assert "sealed" not in repr(hooks.get_endpoint("we_1"))

    disabled = hooks.set_endpoint_status("we_1", status="disabled", reason="410 Gone")
    assert disabled.status == "disabled" and disabled.disabled_reason == "410 Gone"
    assert hooks.endpoints_for("bill.paid") == []
    enabled = hooks.set_endpoint_status("we_1", status="enabled")
    assert enabled.disabled_reason is None and [e.id for e in hooks.endpoints_for("bill.paid")]

    with pytest.raises(RecordNotFound):
        hooks.set_endpoint_status("we_missing", status="disabled")
    with pytest.raises(ValueError, match="enabled, disabled"):
        hooks.set_endpoint_status("we_1", status="paused")


def test_an_event_is_stored_once_and_dispatch_is_tracked(hooks: WebhookStore) -> None:
    first = hooks.add_event(_event("bill/conn-1/INV-1/paid/7"))
    again = hooks.add_event(
        _event("bill/conn-1/INV-1/paid/7", at=T0 + timedelta(minutes=5)).model_copy(
            update={"payload": {"changed": True}}
        )
    )
    assert again.payload == first.payload and again.created_at == T0
    assert [e.id for e in hooks.undispatched_events("bill/conn-1/INV-1")] == [first.id]

    hooks.mark_dispatched(first.id)
    assert hooks.undispatched_events("bill/conn-1/INV-1") == []
    stored = hooks.get_event(first.id)
    assert stored is not None and stored.dispatched_at is not None


def test_events_since_keeps_time_order_and_the_endpoints_types(hooks: WebhookStore) -> None:
    hooks.add_event(_event("e-old", at=T0 - timedelta(days=1)))
    hooks.add_event(_event("e-2", at=T0 + timedelta(hours=2)))
    hooks.add_event(_event("e-1", at=T0))
    hooks.add_event(_event("e-other", type="bill.created", at=T0 + timedelta(hours=1)))
    found = hooks.events_since(T0, event_types=["bill.paid", "bill.reconciled"], limit=10)
    assert [e.id for e in found] == ["e-1", "e-2"]
    assert [e.id for e in hooks.events_since(T0, event_types=["bill.paid"], limit=1)] == ["e-1"]


def test_attempts_are_logged_once_each_and_summarised_on_the_delivery(
    hooks: WebhookStore,
) -> None:
    hooks.create_endpoint(_endpoint())
    delivery, created = hooks.add_delivery(
        WebhookDeliveryRow(
            id="webhook/we_1/e-1", endpoint_id="we_1", event_id="e-1", event_type="bill.paid"
        )
    )
    assert created and delivery.status == "pending"
    _, created_again = hooks.add_delivery(delivery.model_copy())
    assert not created_again

    def attempt(n: int, code: int | None, error: str | None) -> WebhookAttemptRow:
        return WebhookAttemptRow(
            delivery_id=delivery.id,
            endpoint_id="we_1",
            event_id="e-1",
            attempt=n,
            status_code=code,
            error=error,
            duration_ms=12,
            at=T0 + timedelta(seconds=n),
        )

    hooks.record_attempt(attempt(1, 500, "HTTP 500"))
    hooks.record_attempt(attempt(1, 500, "HTTP 500"))  # a retried write of the same attempt
    hooks.record_attempt(attempt(2, None, "timed out after 10 s"))
    hooks.record_attempt(attempt(3, 200, None))
    assert [(a.attempt, a.status_code) for a in hooks.attempts_for(delivery.id)] == [
        (1, 500),
        (2, None),
        (3, 200),
    ]
    hooks.finish_delivery(delivery.id, status="delivered")
    hooks.finish_delivery(delivery.id, status="failed", error="late duplicate")
    done = hooks.get_delivery(delivery.id)
    assert done is not None
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == (
        "delivered",
        3,
        200,
        None,
    )
    assert done.completed_at is not None
    assert hooks.count_deliveries("we_1", "e-1") == 1
    assert [d.id for d in hooks.deliveries_for_endpoint("we_1")] == [delivery.id]


def test_deleting_an_endpoint_removes_its_delivery_history(hooks: WebhookStore) -> None:
    hooks.create_endpoint(_endpoint())
    hooks.add_delivery(
        WebhookDeliveryRow(id="d-1", endpoint_id="we_1", event_id="e-1", event_type="bill.paid")
    )
    hooks.record_attempt(
        WebhookAttemptRow(
            delivery_id="d-1",
            endpoint_id="we_1",
            event_id="e-1",
            attempt=1,
            status_code=200,
            duration_ms=3,
            at=T0,
        )
    )
    assert hooks.delete_endpoint("we_1")
    assert not hooks.delete_endpoint("we_1")
    assert hooks.get_endpoint("we_1") is None
    assert hooks.get_delivery("d-1") is None and hooks.attempts_for("d-1") == []


def test_purge_removes_only_finished_history_past_the_retention(hooks: WebhookStore) -> None:
    hooks.create_endpoint(_endpoint())
    for event_id in ("e-done", "e-busy", "e-new"):
        hooks.add_event(_event(event_id))
    for event_id in ("e-done", "e-busy"):
        hooks.mark_dispatched(event_id)
    for delivery_id, event_id in (("d-done", "e-done"), ("d-busy", "e-busy")):
        hooks.add_delivery(
            WebhookDeliveryRow(
                id=delivery_id, endpoint_id="we_1", event_id=event_id, event_type="bill.paid"
            )
        )
    hooks.record_attempt(
        WebhookAttemptRow(
            delivery_id="d-done",
            endpoint_id="we_1",
            event_id="e-done",
            attempt=1,
            status_code=200,
            duration_ms=3,
            at=T0,
        )
    )
    hooks.finish_delivery("d-done", status="delivered")
    now = datetime.now(UTC)

    assert hooks.purge(older_than=now - timedelta(hours=1)) == 0  # all of it is recent
    assert hooks.purge(older_than=now + timedelta(minutes=1)) == 3  # attempt, delivery, event

    assert hooks.get_delivery("d-done") is None and hooks.attempts_for("d-done") == []
    assert hooks.get_event("e-done") is None
    # A delivery still retrying, its event, and an event not yet dispatched all stay.
    assert hooks.get_delivery("d-busy") is not None
    assert hooks.get_event("e-busy") is not None and hooks.get_event("e-new") is not None


# -- the outbox: claims ----------------------------------------------------------------------

LEASE = timedelta(seconds=60)


def _due(hooks: WebhookStore, delivery_id: str, *, at: datetime | None = T0) -> None:
    hooks.add_delivery(
        WebhookDeliveryRow(
            id=delivery_id,
            endpoint_id="we_1",
            event_id="e-1",
            event_type="bill.paid",
            next_attempt_at=at,
        )
    )


def _log(delivery_id: str, n: int, code: int) -> WebhookAttemptRow:
    return WebhookAttemptRow(
        delivery_id=delivery_id,
        endpoint_id="we_1",
        event_id="e-1",
        attempt=n,
        status_code=code,
        error=None if code < 300 else f"HTTP {code}",
        duration_ms=5,
        at=T0,
    )


def test_a_due_delivery_is_claimed_once_until_its_lease_ends(hooks: WebhookStore) -> None:
    hooks.create_endpoint(_endpoint())
    _due(hooks, "d-due")
    _due(hooks, "d-later", at=T0 + timedelta(minutes=5))
    _due(hooks, "d-own-workflow", at=None)  # from before the outbox: its workflow sends it

    [claimed] = hooks.claim_due(claimant="a", now=T0, lease=LEASE, limit=10)
    assert claimed.id == "d-due" and claimed.claimed_by == "a"
    assert (
        hooks.claim_due(claimant="b", now=T0 + timedelta(seconds=59), lease=LEASE, limit=10) == []
    )
    # "a" died holding it: once the lease is over, "b" takes it, and "a" can no longer settle.
    [taken] = hooks.claim_due(claimant="b", now=T0 + LEASE, lease=LEASE, limit=1)
    assert taken.id == "d-due" and taken.claimed_by == "b"
    assert not hooks.settle_attempt(
        "d-due", claimant="a", attempt=_log("d-due", 1, 200), status="delivered"
    )
    assert hooks.attempts_for("d-due") == []

    retry_at = T0 + timedelta(minutes=2)
    assert hooks.settle_attempt(
        "d-due",
        claimant="b",
        attempt=_log("d-due", 1, 500),
        status="pending",
        next_attempt_at=retry_at,
    )
    row = hooks.get_delivery("d-due")
    assert row is not None
    assert (row.status, row.attempts, row.last_error, row.claimed_by) == (
        "pending",
        1,
        "HTTP 500",
        None,
    )
    assert row.next_attempt_at == retry_at
    later = T0 + timedelta(minutes=5)
    assert [d.id for d in hooks.claim_due(claimant="c", now=later, lease=LEASE, limit=10)] == [
        "d-due",
        "d-later",
    ]
    assert hooks.settle_attempt(
        "d-due", claimant="c", attempt=_log("d-due", 2, 200), status="delivered"
    )
    done = hooks.get_delivery("d-due")
    assert done is not None and (done.status, done.attempts, done.next_attempt_at) == (
        "delivered",
        2,
        None,
    )
    assert [a.attempt for a in hooks.attempts_for("d-due")] == [1, 2]
    hooks.release_claim("d-later", claimant="c")
    assert [d.id for d in hooks.claim_due(claimant="d", now=later, lease=LEASE, limit=10)] == [
        "d-later"
    ]
    with pytest.raises(ValueError, match="next attempt"):
        hooks.settle_attempt("d-later", claimant="d", attempt=None, status="pending")


def test_claims_racing_from_many_threads_never_share_a_delivery(store: Store) -> None:
    hooks = WebhookStore(store)
    hooks.create_endpoint(_endpoint())
    ids = {f"d-{n:02d}" for n in range(40)}
    for delivery_id in ids:
        _due(hooks, delivery_id)
    # Separate engines, as separate worker processes would have.
    others = [WebhookStore(Store(make_engine(store.engine.url))) for _ in range(4)]

    def drain(worker: int) -> list[str]:
        mine: list[str] = []
        while batch := others[worker].claim_due(
            claimant=f"w{worker}", now=T0, lease=LEASE, limit=3
        ):
            assert len(batch) <= 3
            mine += [row.id for row in batch]
        return mine

    with ThreadPoolExecutor(len(others)) as pool:
        claims = list(pool.map(drain, range(len(others))))
    for other in others:
        other.engine.dispose()
    everything = [delivery_id for mine in claims for delivery_id in mine]
    assert sorted(everything) == sorted(ids), "each delivery claimed exactly once"
