"""Outbound webhooks under time skipping: signed deliveries, retries with backoff, the bill
lifecycle's events exactly once, and replays."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.record import RecordActivities
from activities.webhooks import WebhookActivities, WebhookOutbox, seal_secret
from runtime.secrets import SecretBox
from runtime.webhook_signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    verify,
)
from store import Store, WebhookEndpointRow, WebhookStore
from store.types import utcnow
from tests.workflows.harness import draft, running_remit
from worker import build_worker
from workflows.models import BillState, LifecycleStatus, RecordRequest
from workflows.webhooks import (
    EVENT_TYPES,
    DeliveryOutcome,
    WebhookDeliveryWorkflow,
    WebhookEventType,
)

SECRET = "whsec_test-secret"
RECEIVER_URL = "http://receiver.test/hooks"


@dataclass
class Receiver:
    """An ASGI receiver that answers from a script (then 200) and keeps what it was sent."""

    script: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.script.pop(0) if self.script else 200
        self.received.append((headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies the receiver accepted, each checked against the signing secret."""
        bodies = []
        for headers, body, status in self.received:
            verify(SECRET, headers[SIGNATURE_HEADER.lower()], body)
            event = json.loads(body)
            assert headers[EVENT_ID_HEADER.lower()] == event["id"]
            assert headers[EVENT_TYPE_HEADER.lower()] == event["type"]
            if 200 <= status < 300:
                bodies.append(event)
        return bodies


@dataclass
class Rig:
    env: WorkflowEnvironment
    store: Store
    hooks: WebhookStore
    outbox: WebhookOutbox
    receiver: Receiver
    box: SecretBox
    http: httpx.AsyncClient
    task_queue: str

    def endpoint(self, event_types: list[str] | None = None) -> WebhookEndpointRow:
        now = utcnow()
        return self.hooks.create_endpoint(
            WebhookEndpointRow(
                id=f"we_{uuid.uuid4().hex[:12]}",
                url=RECEIVER_URL,
                event_types=event_types or list(EVENT_TYPES),
                secret_encrypted=seal_secret(self.box, SECRET),
                created_at=now,
                updated_at=now,
            )
        )

    async def finished(self, delivery_id: str) -> DeliveryOutcome:
        return await finished(self.env, delivery_id)


async def finished(env: WorkflowEnvironment, delivery_id: str) -> DeliveryOutcome:
    """Wait for a delivery workflow's end, letting the test server skip its backoff."""
    handle = env.client.get_workflow_handle(delivery_id, result_type=DeliveryOutcome)
    for _ in range(5):
        try:
            async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
                return await handle.result()
        except RuntimeError as err:
            # The Java test server sometimes ends a history long-poll early; ask again.
            if "No completion event found" not in str(err):
                raise
    raise AssertionError(f"{delivery_id} did not complete")


def _rig_parts(tmp_path: Path) -> tuple[Store, WebhookStore, SecretBox, Receiver]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    return store, WebhookStore(store), SecretBox(SecretBox.generate_key()), Receiver()


@pytest.fixture
async def rig(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Rig]:
    store, hooks, box, receiver = _rig_parts(tmp_path)
    task_queue = f"webhooks-{uuid.uuid4()}"
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, receiver)))
    outbox = WebhookOutbox(hooks, time_skipping_env.client, task_queue=task_queue)
    activities = WebhookActivities(hooks, box, http, outbox=outbox)
    worker = Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[WebhookDeliveryWorkflow],
        activities=[
            activities.deliver_webhook,
            activities.finish_webhook_delivery,
            activities.publish_webhook_event,
        ],
    )
    async with worker:
        yield Rig(time_skipping_env, store, hooks, outbox, receiver, box, http, task_queue)
    await http.aclose()
    store.close()


async def test_a_failing_receiver_gets_the_event_on_the_attempt_after_its_failures(
    rig: Rig,
) -> None:
    endpoint = rig.endpoint()
    rig.receiver.script = [500, 503]
    event = await rig.outbox.connection_needs_relink(
        "conn-1", platform="quickbooks", reason="invalid_grant", occurrence="2026-11-21T09:00Z"
    )
    delivery = f"webhook/{endpoint.id}/{event.id}"

    outcome = await rig.finished(delivery)

    assert outcome.status == "delivered" and outcome.attempts == 3
    assert [status for _, _, status in rig.receiver.received] == [500, 503, 200]
    [body] = rig.receiver.delivered()
    assert body["type"] == "connection.needs_relink" and body["data"]["id"] == "conn-1"
    log = rig.hooks.attempts_for(delivery)
    assert [(a.attempt, a.status_code, a.error) for a in log] == [
        (1, 500, "HTTP 500"),
        (2, 503, "HTTP 503"),
        (3, 200, None),
    ]
    row = rig.hooks.get_delivery(delivery)
    assert row is not None and (row.status, row.attempts) == ("delivered", 3)


async def test_publishing_the_same_occurrence_again_delivers_nothing_twice(rig: Rig) -> None:
    endpoint = rig.endpoint()
    for _ in range(2):
        event = await rig.outbox.connection_needs_relink(
            "conn-2", platform="xero", reason="revoked", occurrence="once"
        )
    await rig.finished(f"webhook/{endpoint.id}/{event.id}")
    # A second start of the same delivery id is refused by Temporal even after it finished.
    await rig.outbox.dispatch_pending("conn-2")
    rig.hooks.mark_dispatched(event.id)
    assert len(rig.receiver.delivered()) == 1
    assert rig.hooks.count_deliveries(endpoint.id, event.id) == 1


async def test_an_endpoint_answering_410_is_disabled_and_the_delivery_fails(rig: Rig) -> None:
    endpoint = rig.endpoint()
    rig.receiver.script = [410]
    event = await rig.outbox.connection_needs_relink(
        "conn-3", platform="netsuite", reason="revoked", occurrence="x"
    )
    outcome = await rig.finished(f"webhook/{endpoint.id}/{event.id}")
    assert outcome.status == "failed" and "410" in (outcome.error or "")
    stored = rig.hooks.get_endpoint(endpoint.id)
    assert stored is not None and stored.status == "disabled"
    assert [a.status_code for a in rig.hooks.attempts_for(outcome.delivery_id)] == [410]
    delivery = rig.hooks.get_delivery(outcome.delivery_id)
    assert delivery is not None and delivery.status == "failed"


async def test_a_receiver_that_never_recovers_fails_after_the_delivery_window(rig: Rig) -> None:
    endpoint = rig.endpoint(["connection.needs_relink"])
    rig.receiver.script = [500] * 200
    event = await rig.outbox.connection_needs_relink(
        "conn-4", platform="quickbooks", reason="revoked", occurrence="x"
    )
    outcome = await rig.finished(f"webhook/{endpoint.id}/{event.id}")
    attempts = rig.hooks.attempts_for(outcome.delivery_id)
    assert outcome.status == "failed"
    # 5 s doubling up to 1 h, for three days: a few dozen attempts, every one logged.
    assert 60 < len(attempts) < 100 and all(a.status_code == 500 for a in attempts)
    delivery = rig.hooks.get_delivery(outcome.delivery_id)
    assert delivery is not None and delivery.status == "failed"


async def test_replaying_one_delivery_and_everything_since_a_time(rig: Rig) -> None:
    endpoint = rig.endpoint()
    first = await rig.outbox.connection_needs_relink(
        "conn-5", platform="xero", reason="revoked", occurrence="1"
    )
    cutoff = utcnow()
    second = await rig.outbox.connection_needs_relink(
        "conn-5", platform="xero", reason="revoked again", occurrence="2"
    )
    original = f"webhook/{endpoint.id}/{first.id}"
    await rig.finished(original)
    await rig.finished(f"webhook/{endpoint.id}/{second.id}")

    replayed = await rig.outbox.replay_delivery(original)
    assert replayed.id == f"{original}/replay-1" and replayed.replay_of == original
    await rig.finished(replayed.id)
    again = await rig.outbox.replay_delivery(original)
    assert again.id == f"{original}/replay-2"
    await rig.finished(again.id)

    since = await rig.outbox.replay_since(endpoint.id, cutoff)
    assert [d.event_id for d in since] == [second.id]
    await rig.finished(since[0].id)

    ids = [event["id"] for event in rig.receiver.delivered()]
    assert sorted(ids) == sorted([first.id, second.id, first.id, first.id, second.id])
    assert len(rig.hooks.deliveries_for_endpoint(endpoint.id)) == 5


async def test_record_bill_retried_emits_each_transition_once(rig: Rig) -> None:
    endpoint = rig.endpoint(["bill.created", "bill.awaiting_approval"])
    record = RecordActivities(rig.store, webhooks=rig.outbox)
    state = BillState.model_validate(
        {
            "workflow_id": "bill/conn-9/INV-9",
            "connection_id": "conn-9",
            "platform": "quickbooks",
            "bill_key": "INV-9",
            "submitted_by": "sam",
            "document_number": "INV-9",
            "vendor_name": "Northwind",
            "currency": "USD",
            "total": "900.00",
            "amount_due": "900.00",
            "issue_date": "2026-11-02",
            "revision": 1,
        }
    )
    env = ActivityEnvironment()
    for _ in range(2):  # the activity retried after it had done everything
        await env.run(record.record_bill, RecordRequest(state=state))
    # The same status again at a newer revision is no news.
    await env.run(record.record_bill, RecordRequest(state=state.model_copy(update={"revision": 2})))
    waiting = state.model_copy(update={"status": LifecycleStatus.awaiting_approval, "revision": 3})
    # An attempt that stored the event and the bill, then died before dispatching it.
    record._record(RecordRequest(state=waiting), "run-1")
    assert rig.hooks.undispatched_events(state.workflow_id) != []
    await env.run(record.record_bill, RecordRequest(state=waiting))

    for event_id in ("bill/conn-9/INV-9/created", "bill/conn-9/INV-9/awaiting_approval/3"):
        await rig.finished(f"webhook/{endpoint.id}/{event_id}")
    delivered = rig.receiver.delivered()
    assert [(e["type"], e["data"]["revision"]) for e in delivered] == [
        ("bill.created", 1),
        ("bill.awaiting_approval", 3),
    ]
    amount = delivered[0]["data"]["amount"]
    assert amount == {"value": "900.00", "currency": "USD"}


async def test_a_bill_through_its_lifecycle_sends_each_event_once_in_order(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    receiver = Receiver()
    box = SecretBox(SecretBox.generate_key())
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, receiver))) as http,
        running_remit(time_skipping_env, tmp_path, start_worker=False) as h,
    ):
        hooks = WebhookStore(h.store)
        now = utcnow()
        endpoint = hooks.create_endpoint(
            WebhookEndpointRow(
                id="we_lifecycle",
                url=RECEIVER_URL,
                event_types=list(EVENT_TYPES),
                secret_encrypted=seal_secret(box, SECRET),
                created_at=now,
                updated_at=now,
            )
        )
        deps = dataclasses.replace(h.deps, webhook_box=box, webhook_http=http)
        async with build_worker(time_skipping_env.client, deps, task_queue=h.task_queue):
            wid = await h.submit(draft(amount="900.00"))
            waiting = await h.status(wid, LifecycleStatus.awaiting_approval)
            await h.remit.decide(wid, actor=waiting.pending_approvers[0], approve=True)
            final = await h.result(wid)
            assert final.status == LifecycleStatus.reconciled, final.last_error
            deliveries = hooks.deliveries_for_endpoint(endpoint.id)
            for delivery in deliveries:
                assert (await finished(time_skipping_env, delivery.id)).status == "delivered"

    events = receiver.delivered()
    # Deliveries run side by side, so arrival order is not promised; the revision orders them.
    lifecycle = [
        WebhookEventType.bill_created,
        WebhookEventType.bill_awaiting_approval,
        WebhookEventType.bill_approved,
        WebhookEventType.bill_paid,
        WebhookEventType.bill_reconciled,
    ]
    in_order = sorted(events, key=lambda e: (e["data"]["revision"], EVENT_TYPES.index(e["type"])))
    assert [e["type"] for e in in_order] == lifecycle
    revisions = [e["data"]["revision"] for e in in_order]
    assert revisions == sorted(set(revisions)), "each event comes from its own recorded state"
    assert len({e["id"] for e in events}) == len(events) == len(deliveries)
    reconciled = in_order[-1]["data"]
    assert reconciled["id"] == wid and reconciled["status"] == "reconciled"
    assert reconciled["amount"] == {"value": "900.00", "currency": "USD"}
    assert reconciled["erp_bill_id"] == final.erp_bill_id
    raw = b"".join(body for _, body, _ in receiver.received)
    assert b"000123456789" not in raw  # the vendor's bank account never leaves remit
    assert all(
        datetime.fromisoformat(e["created_at"]) <= datetime.now(UTC) + timedelta(seconds=1)
        for e in events
    )
