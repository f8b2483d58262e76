"""The webhook outbox's dispatcher on SQLite and PostgreSQL, against a real HTTP receiver: signed,
retried on the delivery workflow's backoff, taken over after a lease, never sent twice at once."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.webhooks import (
    DispatchOptions,
    SentAttempt,
    WebhookDispatcher,
    WebhookOutbox,
    WebhookSender,
    seal_secret,
)
from runtime.secrets import SecretBox
from store import Store, WebhookEndpointRow, WebhookEventRow, WebhookStore, make_engine
from store.types import utcnow
from tests.webhook_receiver import SECRET, Answer, Receiver, serving
from workflows.webhooks import EVENT_TYPES

LEASE = timedelta(seconds=60)


@dataclass
class Clock:
    """The dispatcher's clock: real time plus however far a test moved it on."""

    ahead: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.ahead

    def advance(self, by: timedelta) -> None:
        self.ahead += by

    def move_to(self, when: datetime) -> None:
        self.ahead = max(self.ahead, when - utcnow())


@dataclass
class Rig:
    store: Store
    hooks: WebhookStore
    outbox: WebhookOutbox
    receiver: Receiver
    box: SecretBox
    http: httpx.AsyncClient
    clock: Clock

    def endpoint(self, event_types: list[str] | None = None) -> WebhookEndpointRow:
        now = utcnow()
        return self.hooks.create_endpoint(
            WebhookEndpointRow(
                id=f"we_{uuid.uuid4().hex[:12]}",
                url=self.receiver.url,
                event_types=event_types or list(EVENT_TYPES),
                secret_encrypted=seal_secret(self.box, SECRET),
                created_at=now,
                updated_at=now,
            )
        )

    def dispatcher(self, hooks: WebhookStore | None = None, **options: object) -> WebhookDispatcher:
        sender = WebhookSender(hooks or self.hooks, self.box, self.http, allow_private_targets=True)
        chosen = dataclasses.replace(DispatchOptions(lease=LEASE), **options)  # type: ignore[arg-type]
        return WebhookDispatcher(sender, chosen, clock=self.clock)

    async def relink(self, occurrence: str = "1") -> str:
        event = await self.outbox.connection_needs_relink(
            "conn-1", platform="quickbooks", reason="invalid_grant", occurrence=occurrence
        )
        return event.id


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    hooks = WebhookStore(store)
    async with serving(Receiver()) as receiver, httpx.AsyncClient() as http:
        box = SecretBox(SecretBox.generate_key())
        yield Rig(store, hooks, WebhookOutbox(hooks), receiver, box, http, Clock())


async def test_an_event_is_delivered_once_signed_and_logged(rig: Rig) -> None:
    endpoint = rig.endpoint()
    event_id = await rig.relink()
    dispatcher = rig.dispatcher()

    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0

    [body] = rig.receiver.delivered()  # the signature checked against the endpoint's secret
    assert body["id"] == event_id and body["data"]["id"] == "conn-1"
    delivery_id = f"webhook/{endpoint.id}/{event_id}"
    assert rig.receiver.received[0][0]["remit-delivery-id"] == delivery_id
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None
    assert (row.status, row.attempts, row.claimed_by, row.next_attempt_at) == (
        "delivered",
        1,
        None,
        None,
    )
    assert [(a.attempt, a.status_code) for a in rig.hooks.attempts_for(delivery_id)] == [(1, 200)]

    # The same occurrence published again (a retried activity) is no second delivery.
    await rig.relink()
    await rig.outbox.dispatch_pending("conn-1")
    assert await dispatcher.run_once() == 0
    assert len(rig.receiver.received) == 1


async def test_a_failing_receiver_is_retried_on_the_backoff_and_its_retry_after(
    rig: Rig,
) -> None:
    endpoint = rig.endpoint()
    rig.receiver.script = [500, Answer(503, {"Retry-After": "120"})]
    event_id = await rig.relink()
    delivery_id = f"webhook/{endpoint.id}/{event_id}"
    dispatcher = rig.dispatcher()

    def due() -> datetime:
        row = rig.hooks.get_delivery(delivery_id)
        assert row is not None and row.status == "pending" and row.next_attempt_at is not None
        return row.next_attempt_at

    before = rig.clock()
    assert await dispatcher.run_once() == 1
    first_retry = due()
    assert timedelta(seconds=5) <= first_retry - before <= timedelta(seconds=6)
    assert await dispatcher.run_once() == 0  # not due yet
    rig.clock.move_to(first_retry)
    assert await dispatcher.run_once() == 1
    # The receiver asked for two minutes, and gets them rather than the 10 s backoff.
    assert timedelta(seconds=119) <= due() - first_retry <= timedelta(seconds=121)
    rig.clock.advance(timedelta(seconds=60))
    assert await dispatcher.run_once() == 0
    rig.clock.move_to(due())
    assert await dispatcher.run_once() == 1

    assert rig.receiver.statuses() == [500, 503, 200]
    assert len(rig.receiver.delivered()) == 1
    log = rig.hooks.attempts_for(delivery_id)
    assert [(a.attempt, a.status_code, a.error) for a in log] == [
        (1, 500, "HTTP 500"),
        (2, 503, "HTTP 503"),
        (3, 200, None),
    ]
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None and (row.status, row.attempts) == ("delivered", 3)


async def test_a_receiver_that_never_recovers_fails_after_the_delivery_window(rig: Rig) -> None:
    endpoint = rig.endpoint()
    rig.receiver.script = [500] * 200
    delivery_id = f"webhook/{endpoint.id}/{await rig.relink()}"
    dispatcher = rig.dispatcher()
    gaps: list[timedelta] = []
    while True:
        sent_at = rig.clock()
        assert await dispatcher.run_once() == 1
        row = rig.hooks.get_delivery(delivery_id)
        assert row is not None
        if row.status != "pending":
            break
        assert row.next_attempt_at is not None
        gaps.append(row.next_attempt_at - sent_at)
        rig.clock.move_to(row.next_attempt_at)

    assert row.status == "failed" and "3-day delivery window" in (row.last_error or "")
    # 5 s doubling up to the hour, for three days: a few dozen attempts, every one logged.
    seconds = [round(gap.total_seconds()) for gap in gaps]
    assert seconds[:4] == [5, 10, 20, 40] and max(seconds) == 3600
    attempts = rig.hooks.attempts_for(delivery_id)
    assert 60 < len(attempts) < 100 and all(a.status_code == 500 for a in attempts)
    assert len(attempts) == len(gaps) + 1


async def test_a_410_switches_the_endpoint_off_and_fails_the_delivery(rig: Rig) -> None:
    endpoint = rig.endpoint()
    rig.receiver.script = [410]
    delivery_id = f"webhook/{endpoint.id}/{await rig.relink()}"

    assert await rig.dispatcher().run_once() == 1

    stored = rig.hooks.get_endpoint(endpoint.id)
    assert stored is not None and stored.status == "disabled"
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None and row.status == "failed" and "410" in (row.last_error or "")
    assert [a.status_code for a in rig.hooks.attempts_for(delivery_id)] == [410]


async def test_a_dispatcher_that_died_mid_attempt_is_taken_over_after_its_lease(
    rig: Rig,
) -> None:
    endpoint = rig.endpoint()
    delivery_id = f"webhook/{endpoint.id}/{await rig.relink()}"
    # A worker claimed it, then was killed before it could say how the attempt went.
    [held] = rig.hooks.claim_due(claimant="killed", now=rig.clock(), lease=LEASE, limit=10)
    survivor = rig.dispatcher()

    assert await survivor.run_once() == 0
    rig.clock.advance(LEASE - timedelta(seconds=1))
    assert await survivor.run_once() == 0
    assert rig.receiver.received == []
    rig.clock.advance(timedelta(seconds=1))
    assert await survivor.run_once() == 1

    assert len(rig.receiver.delivered()) == 1
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None and row.status == "delivered" and held.id == delivery_id
    assert [a.attempt for a in rig.hooks.attempts_for(delivery_id)] == [1]


async def test_a_worker_stopping_mid_attempt_hands_the_delivery_back_at_once(rig: Rig) -> None:
    endpoint = rig.endpoint()
    delivery_id = f"webhook/{endpoint.id}/{await rig.relink()}"
    rig.receiver.hold = asyncio.Event()
    stopping = rig.dispatcher(poll_interval=timedelta(hours=1))

    stopping.start()
    await asyncio.wait_for(rig.receiver.arrived.wait(), 10)
    await stopping.stop()  # no grace: the attempt under way is cancelled
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None and (row.status, row.claimed_by) == ("pending", None)
    rig.receiver.hold.set()

    # No waiting out the lease: the next dispatcher sends it now.
    assert await rig.dispatcher().run_once() == 1
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None and row.status == "delivered"
    assert [a.attempt for a in rig.hooks.attempts_for(delivery_id)] == [1]


async def test_two_dispatchers_on_one_database_never_send_one_attempt_twice(rig: Rig) -> None:
    endpoint = rig.endpoint(["connection.needs_relink"])
    events = [await rig.relink(occurrence=str(n)) for n in range(30)]
    # Its own engine, as a second worker process would have.
    other = Store(make_engine(rig.store.engine.url))
    first = rig.dispatcher(batch=4)
    second = rig.dispatcher(WebhookStore(other), batch=4)
    # The first four POSTs wait until a fifth arrives: both hold claims at the same moment.
    rig.receiver.hold, rig.receiver.release_at = asyncio.Event(), 5

    async def drain(dispatcher: WebhookDispatcher) -> int:
        total = 0
        while claimed := await dispatcher.run_once():
            total += claimed
        return total

    try:
        counts = await asyncio.gather(drain(first), drain(second))
    finally:
        other.close()

    sent = Counter(headers["remit-delivery-id"] for headers, _, _ in rig.receiver.received)
    expected = {f"webhook/{endpoint.id}/{event_id}" for event_id in events}
    assert set(sent) == expected and set(sent.values()) == {1}
    assert sum(counts) == 30 and min(counts) >= 4, counts
    for delivery_id in expected:
        assert [a.attempt for a in rig.hooks.attempts_for(delivery_id)] == [1]


async def test_replays_go_through_the_outbox_as_new_deliveries(rig: Rig) -> None:
    endpoint = rig.endpoint()
    first = await rig.relink("1")
    cutoff = utcnow()
    second = await rig.relink("2")
    dispatcher = rig.dispatcher()
    assert await dispatcher.run_once() == 2
    original = f"webhook/{endpoint.id}/{first}"

    replayed = await rig.outbox.replay_delivery(original)
    again = await rig.outbox.replay_delivery(original)
    since = await rig.outbox.replay_since(endpoint.id, cutoff)
    assert (replayed.id, replayed.replay_of) == (f"{original}/replay-1", original)
    assert again.id == f"{original}/replay-2"
    assert [d.event_id for d in since] == [second]
    assert await dispatcher.run_once() == 3

    ids = [event["id"] for event in rig.receiver.delivered()]
    assert sorted(ids) == sorted([first, second, first, first, second])
    rows = rig.hooks.deliveries_for_endpoint(endpoint.id)
    assert len(rows) == 5 and {r.status for r in rows} == {"delivered"}


async def test_a_new_delivery_wakes_the_dispatcher_of_its_process(rig: Rig) -> None:
    rig.endpoint()
    # Polling hourly: only the outbox's nudge can explain prompt deliveries.
    dispatcher = rig.dispatcher(poll_interval=timedelta(hours=1))
    outbox = WebhookOutbox(rig.hooks, notify=dispatcher.wake)
    dispatcher.start()
    try:
        for occurrence in ("1", "2"):
            rig.receiver.arrived = asyncio.Event()
            await outbox.connection_needs_relink(
                "conn-7", platform="xero", reason="revoked", occurrence=occurrence
            )
            await asyncio.wait_for(rig.receiver.arrived.wait(), 10)
    finally:
        await dispatcher.stop(timedelta(seconds=10))
    assert [e["id"] for e in rig.receiver.delivered()] == [
        "connection/conn-7/needs_relink/1",
        "connection/conn-7/needs_relink/2",
    ]


async def test_a_hung_receiver_holds_one_slot_not_every_other_endpoint(rig: Rig) -> None:
    async with serving(Receiver(hold=asyncio.Event())) as hung:
        rig.endpoint()  # the prompt receiver
        now = utcnow()
        rig.hooks.create_endpoint(
            WebhookEndpointRow(
                id="we_hung",
                url=hung.url,
                event_types=list(EVENT_TYPES),
                secret_encrypted=seal_secret(rig.box, SECRET),
                created_at=now,
                updated_at=now,
            )
        )
        # Room for every attempt here: only a batch waiting on its slowest would hold them up.
        dispatcher = rig.dispatcher(batch=6, poll_interval=timedelta(hours=1))
        outbox = WebhookOutbox(rig.hooks, notify=dispatcher.wake)
        dispatcher.start()
        try:
            for occurrence in ("1", "2", "3"):
                await outbox.connection_needs_relink(
                    "conn-8", platform="xero", reason="revoked", occurrence=occurrence
                )
                # Each event reaches the prompt receiver while the hung one holds the earlier
                # attempts open.
                await rig.receiver.answered(int(occurrence), timeout=10)
            await asyncio.wait_for(hung.arrived.wait(), 10)
            assert hung.received == []
        finally:
            assert hung.hold is not None
            hung.hold.set()
            await dispatcher.stop(timedelta(seconds=10))
    assert len(rig.receiver.delivered()) == 3


class HangingSender(WebhookSender):
    """A send that never ends (a DNS lookup that hangs, a stuck connection pool)."""

    async def send(self, **attempt: Any) -> SentAttempt:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_an_attempt_that_hangs_is_abandoned_within_its_lease(rig: Rig) -> None:
    endpoint = rig.endpoint()
    delivery_id = f"webhook/{endpoint.id}/{await rig.relink()}"
    sender = HangingSender(rig.hooks, rig.box, rig.http, timeout=0.1)
    lease = timedelta(seconds=0.5)
    dispatcher = WebhookDispatcher(sender, DispatchOptions(lease=lease), clock=rig.clock)

    assert await dispatcher.run_once() == 1

    [attempt] = rig.hooks.attempts_for(delivery_id)
    assert attempt.error == "abandoned after 0.3 s" and attempt.status_code is None
    # Given up before the lease ran out, so no other dispatcher could have been sending it.
    assert attempt.duration_ms < lease.total_seconds() * 1000
    row = rig.hooks.get_delivery(delivery_id)
    assert row is not None and (row.status, row.claimed_by, row.attempts) == ("pending", None, 1)
    assert row.next_attempt_at is not None


async def test_events_whose_process_died_before_queueing_them_are_swept_up(rig: Rig) -> None:
    endpoint = rig.endpoint()
    # As a process leaves it that stored the event and died before fanning it out.
    stored = rig.hooks.add_event(
        WebhookEventRow(
            id="payee_change/pc-1/proposed",
            type="payee.change_proposed",
            subject="payee_change/pc-1",
            payload={"id": "payee_change/pc-1/proposed", "type": "payee.change_proposed"},
            created_at=utcnow(),
        )
    )
    dispatcher = rig.dispatcher()

    # Fresh, it is left to the process that stored it (it may be fanning it out right now).
    assert await dispatcher.sweep() == 0
    rig.clock.advance(timedelta(minutes=1, seconds=1))
    assert await dispatcher.sweep() == 1
    assert await dispatcher.sweep() == 0  # fanned out now, and marked so
    assert await dispatcher.run_once() == 1

    [body] = rig.receiver.delivered()
    assert body["id"] == stored.id
    row = rig.hooks.get_delivery(f"webhook/{endpoint.id}/{stored.id}")
    assert row is not None and row.status == "delivered"
