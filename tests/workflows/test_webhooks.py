"""Outbound webhooks with a bill: each lifecycle event sent once, in order, by the worker's
dispatcher and no Temporal workflow; delivery workflows from before the outbox still finish."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer

from activities.record import RecordActivities
from activities.webhooks import (
    WebhookDispatcher,
    WebhookOutbox,
    WebhookSender,
    event_payload,
    seal_secret,
)
from runtime.secrets import SecretBox
from store import Store, WebhookDeliveryRow, WebhookEndpointRow, WebhookEventRow, WebhookStore
from store.types import utcnow
from tests.webhook_receiver import SECRET, Receiver, serving
from tests.workflows.harness import draft, running_remit
from worker import build_worker
from workflows.bill import BillWorkflow
from workflows.models import BillState, LifecycleStatus, RecordRequest
from workflows.webhook_delivery import WebhookDeliveryWorkflow
from workflows.webhooks import (
    EVENT_TYPES,
    DeliveryInput,
    WebhookEventType,
    delivery_id,
)

HISTORIES = Path(__file__).parent / "histories" / "webhooks"
LEGACY_HISTORY = HISTORIES / "webhook_delivery_retried.json"


def _endpoint(
    hooks: WebhookStore, box: SecretBox, url: str, event_types: list[str] | None = None
) -> WebhookEndpointRow:
    now = utcnow()
    return hooks.create_endpoint(
        WebhookEndpointRow(
            id=f"we_{uuid.uuid4().hex[:12]}",
            url=url,
            event_types=event_types or list(EVENT_TYPES),
            secret_encrypted=seal_secret(box, SECRET),
            created_at=now,
            updated_at=now,
        )
    )


async def listed_once_closed(client: Client, task_queue: str, wid: str) -> list[tuple[str, str]]:
    """Every workflow of `task_queue` in the visibility list, once it shows `wid` closed."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        found = [
            (wf.workflow_type, wf.id, wf.close_time is not None)
            async for wf in client.list_workflows(f"TaskQueue = '{task_queue}'")
        ]
        if (BillWorkflow.__name__, wid, True) in found:
            return sorted((kind, workflow_id) for kind, workflow_id, _ in found)
        assert asyncio.get_running_loop().time() < deadline, f"{wid} never listed closed"
        await asyncio.sleep(0.1)  # the visibility store is eventually consistent; poll it


@dataclass
class Rig:
    store: Store
    hooks: WebhookStore
    box: SecretBox
    receiver: Receiver
    sender: WebhookSender


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    hooks = WebhookStore(store)
    box = SecretBox(SecretBox.generate_key())
    async with serving(Receiver()) as receiver, httpx.AsyncClient() as http:
        sender = WebhookSender(hooks, box, http, allow_private_targets=True)  # a loopback receiver
        yield Rig(store, hooks, box, receiver, sender)
    store.close()


async def test_record_bill_retried_emits_each_transition_once(rig: Rig) -> None:
    endpoint = _endpoint(
        rig.hooks, rig.box, rig.receiver.url, ["bill.created", "bill.awaiting_approval"]
    )
    dispatcher = WebhookDispatcher(rig.sender)
    record = RecordActivities(rig.store, webhooks=WebhookOutbox(rig.hooks))
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
    assert await dispatcher.run_once() == 1
    waiting = state.model_copy(update={"status": LifecycleStatus.awaiting_approval, "revision": 3})
    # An attempt that stored the event and the bill, then died before queueing its delivery.
    record._record(RecordRequest(state=waiting), "run-1")
    assert rig.hooks.undispatched_events(state.workflow_id) != []
    assert await dispatcher.run_once() == 0
    await env.run(record.record_bill, RecordRequest(state=waiting))
    assert await dispatcher.run_once() == 1

    delivered = rig.receiver.delivered()
    assert [(e["type"], e["data"]["revision"]) for e in delivered] == [
        ("bill.created", 1),
        ("bill.awaiting_approval", 3),
    ]
    assert delivered[0]["data"]["amount"] == {"value": "900.00", "currency": "USD"}
    assert len(rig.hooks.deliveries_for_endpoint(endpoint.id)) == 2


async def test_a_bill_through_its_lifecycle_sends_each_event_once_and_starts_no_workflow(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    box = SecretBox(SecretBox.generate_key())
    async with (
        serving(Receiver()) as receiver,
        running_remit(dev_server_env, tmp_path, start_worker=False) as h,
    ):
        hooks = WebhookStore(h.store)
        endpoint = _endpoint(hooks, box, receiver.url)
        # No injected HTTP client: the worker POSTs over the network, as in production.
        deps = dataclasses.replace(
            h.deps, webhook_box=box, webhook_http=None, webhook_allow_private_targets=True
        )
        async with build_worker(dev_server_env.client, deps, task_queue=h.task_queue):
            today = (await dev_server_env.get_current_time()).date()
            wid = await h.submit(draft(amount="120.00"), pay_on=today)
            final = await h.result(wid)
            assert final.status == LifecycleStatus.reconciled, final.last_error
            # created, approved (automatically), paid, reconciled
            await receiver.answered(4)
            deliveries = hooks.deliveries_for_endpoint(endpoint.id)
            assert {d.status for d in deliveries} == {"delivered"}
        # The list is what the Temporal UI shows: once it has caught up with the bill's end,
        # it holds every workflow started for the bill's events (they started before it ended).
        listed = await listed_once_closed(dev_server_env.client, h.task_queue, wid)

    assert listed == [("BillWorkflow", wid)], "deliveries start no workflow of their own"
    events = receiver.delivered()
    lifecycle = [
        WebhookEventType.bill_created,
        WebhookEventType.bill_approved,
        WebhookEventType.bill_paid,
        WebhookEventType.bill_reconciled,
    ]
    in_order = sorted(events, key=lambda e: (e["data"]["revision"], EVENT_TYPES.index(e["type"])))
    assert [e["type"] for e in in_order] == lifecycle
    assert len({e["id"] for e in events}) == len(events) == len(deliveries)
    reconciled = in_order[-1]["data"]
    assert reconciled["id"] == wid and reconciled["status"] == "reconciled"
    assert reconciled["amount"] == {"value": "120.00", "currency": "USD"}
    assert reconciled["erp_bill_id"] == final.erp_bill_id
    raw = b"".join(body for _, body, _ in receiver.received)
    assert b"000123456789" not in raw  # the vendor's bank account never leaves remit
    assert all(
        datetime.fromisoformat(e["created_at"]) <= datetime.now(UTC) + timedelta(seconds=1)
        for e in events
    )


async def test_a_worker_shut_down_mid_delivery_leaves_it_to_the_next_worker(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    box = SecretBox(SecretBox.generate_key())
    async with (
        serving(Receiver(hold=asyncio.Event())) as receiver,
        running_remit(time_skipping_env, tmp_path, start_worker=False) as h,
    ):
        hooks = WebhookStore(h.store)
        endpoint = _endpoint(hooks, box, receiver.url)
        deps = dataclasses.replace(
            h.deps, webhook_box=box, webhook_http=None, webhook_allow_private_targets=True
        )
        client = time_skipping_env.client
        first = build_worker(client, deps, task_queue=h.task_queue)
        running = asyncio.create_task(first.run())
        # Queued by another process (the API, say): the worker finds it when it polls.
        event = await WebhookOutbox(hooks).connection_needs_relink(
            "conn-2", platform="xero", reason="revoked", occurrence="x"
        )
        await asyncio.wait_for(receiver.arrived.wait(), 30)
        await first.shutdown()  # SIGTERM, with the POST still waiting on the receiver
        await running
        delivery = delivery_id(endpoint.id, event.id)
        handed_back = hooks.get_delivery(delivery)
        assert receiver.hold is not None
        receiver.hold.set()

        second = build_worker(client, deps, task_queue=h.task_queue)
        assert second.dispatcher is not None
        assert await second.dispatcher.run_once() == 1  # at once: no lease to wait out
        row = hooks.get_delivery(delivery)
        attempts = hooks.attempts_for(delivery)

    assert handed_back is not None and (handed_back.status, handed_back.claimed_by) == (
        "pending",
        None,
    )
    assert row is not None and row.status == "delivered"
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 200)]


async def test_a_delivery_workflow_from_before_the_outbox_still_finishes(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """As an upgrade finds it: a pending delivery row with no due time, its workflow running.
    The upgraded worker runs the workflow; its dispatcher leaves the row alone."""
    box = SecretBox(SecretBox.generate_key())
    async with (
        serving(Receiver(script=[500])) as receiver,
        running_remit(dev_server_env, tmp_path, start_worker=False) as h,
    ):
        hooks = WebhookStore(h.store)
        endpoint = _endpoint(hooks, box, receiver.url)
        now = utcnow()
        event = hooks.add_event(
            WebhookEventRow(
                id="connection/conn-1/needs_relink/legacy",
                type="connection.needs_relink",
                subject="conn-1",
                payload=event_payload(
                    "connection/conn-1/needs_relink/legacy",
                    "connection.needs_relink",
                    now,
                    {"object": "connection", "id": "conn-1", "status": "needs_relink"},
                ),
                created_at=now,
            )
        )
        hooks.mark_dispatched(event.id)
        legacy_id = delivery_id(endpoint.id, event.id)
        hooks.add_delivery(
            WebhookDeliveryRow(
                id=legacy_id, endpoint_id=endpoint.id, event_id=event.id, event_type=event.type
            )
        )
        client = dev_server_env.client
        deps = dataclasses.replace(
            h.deps, webhook_box=box, webhook_http=None, webhook_allow_private_targets=True
        )
        async with build_worker(client, deps, task_queue=h.task_queue):
            handle = await client.start_workflow(
                WebhookDeliveryWorkflow.run,
                DeliveryInput(
                    delivery_id=legacy_id,
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type=event.type,
                    payload=event.payload,
                ),
                id=f"{legacy_id}/{uuid.uuid4().hex[:6]}",
                task_queue=h.task_queue,
            )
            # A real clock: the retry after the 500 comes 5 s later, on the workflow's policy.
            outcome = await handle.result()
            history = await handle.fetch_history()
        row = hooks.get_delivery(legacy_id)
        attempts = hooks.attempts_for(legacy_id)

    assert (outcome.status, outcome.attempts) == ("delivered", 2)
    assert receiver.statuses() == [500, 200], "sent by the workflow alone, not the dispatcher"
    assert [e["id"] for e in receiver.delivered()] == [event.id]
    assert row is not None and (row.status, row.attempts) == ("delivered", 2)
    assert [a.status_code for a in attempts] == [500, 200]
    if os.environ.get("REMIT_RECORD_HISTORIES"):
        HISTORIES.mkdir(parents=True, exist_ok=True)
        LEGACY_HISTORY.write_text(history.to_json())


async def test_the_recorded_delivery_workflow_history_replays() -> None:
    """WebhookDelivery stays registered for workflows started before the outbox; its code must
    still replay what they recorded (REMIT_RECORD_HISTORIES=1 with the test above re-records)."""
    history = WorkflowHistory.from_json("webhook-delivery", LEGACY_HISTORY.read_text())
    replayer = Replayer(workflows=[WebhookDeliveryWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
