"""Outbound webhooks: the durable outbox in the store, the dispatcher that sends it, the sender."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runtime.secrets import SecretBox
from runtime.webhook_signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign
from runtime.webhook_targets import (
    TargetRefused,
    TargetUnresolvable,
    check_target,
    guarded_client,
)
from store import BillRow, PayeeChangeRow, RecordNotFound
from store.types import utcnow
from store.webhooks import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    WebhookStore,
)
from workflows import contract
from workflows.contract import implements
from workflows.models import BillState, LifecycleStatus
from workflows.webhooks import (
    DELIVERY_RETRY,
    DELIVERY_WINDOW,
    AttemptResult,
    DeliveryInput,
    DeliveryOutcome,
    PublishRequest,
    WebhookEventType,
    delivery_id,
)

log = logging.getLogger("remit.webhooks")

SECRET_FIELD = "signing_secret"
DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_RETRY_AFTER = timedelta(hours=1)
MAX_REPLAY_EVENTS = 1000
USER_AGENT = "remit-webhooks/1"


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for an event: compact JSON, keys sorted."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal_secret(box: SecretBox, secret: str) -> bytes:
    return box.seal({SECRET_FIELD: secret})


def open_secret(box: SecretBox, sealed: bytes) -> str:
    return box.open(sealed)[SECRET_FIELD]


def _money(value: Any, currency: str) -> dict[str, str] | None:
    # A string keeps every digit: JSON numbers become floats in most receivers.
    return None if value is None else {"value": f"{value:f}", "currency": currency}


def bill_event_data(state: BillState) -> dict[str, Any]:
    """What receivers learn about a bill: a summary, never bank account numbers or secrets."""
    payment = state.payment
    return {
        "object": "bill",
        "id": state.workflow_id,
        "status": state.status.value,
        "revision": state.revision,
        "connection_id": state.connection_id,
        "bill_key": state.bill_key,
        "document_number": state.document_number,
        "vendor": {"id": state.vendor_id, "name": state.vendor_name},
        "amount": _money(state.total, state.currency),
        "amount_due": _money(state.amount_due, state.currency),
        "issue_date": state.issue_date.isoformat(),
        "due_date": state.due_date.isoformat() if state.due_date else None,
        "pay_on": state.pay_on.isoformat() if state.pay_on else None,
        "waiting_for": state.waiting_for,
        "pending_approvers": list(state.pending_approvers),
        "reason": state.last_error,
        "erp_bill_id": state.erp_bill_id,
        "erp_payment_id": state.erp_payment_id,
        "payment": {
            "id": payment.rail_payment_id,
            "rail": payment.rail.value if payment.rail else None,
            "status": payment.status,
            "amount": _money(payment.amount, state.currency),
            "settled_at": payment.settled_at.isoformat() if payment.settled_at else None,
        },
        "payments": [
            {
                "id": p.rail_payment_id,
                "status": p.status,
                "amount": _money(p.amount, state.currency),
                "discount": _money(p.discount, state.currency) if p.discount else None,
                "return_code": p.return_code,
                "return_reason": p.return_reason,
                "erp_payment_id": p.erp_payment_id,
                "erp_voided": p.erp_voided,
                "payee": p.payee_masked,
            }
            for p in state.payments
        ],
        "payee": (
            {
                "status": state.payee.status.value,
                "badge": state.payee.badge(),
                "details": state.payee.masked,
                "document_details": state.payee.document_masked,
                "change_id": state.payee.change_id,
            }
            if state.payee
            else None
        ),
    }


def payee_change_event_data(change: PayeeChangeRow) -> dict[str, Any]:
    """What receivers learn of a payee change: masked details only, never the numbers."""
    return {
        "object": "payee_change",
        "id": change.id,
        "status": change.status,
        "connection_id": change.connection_id,
        "vendor": {"id": change.vendor_id, "name": change.vendor_name},
        "source": change.source,
        "proposed_by": change.proposed_by,
        "reason": change.reason,
        "bill_id": change.bill_workflow_id,
        "details": change.masked,
        "replaces": change.replaces_masked,
        "verified_by": change.verified_by,
        "verification_method": change.verification_method,
        "approved_by": change.approvers,
        "rejected_by": change.rejected_by,
        "rejection_reason": change.rejection_reason,
    }


def _approved(state: dict[str, Any]) -> bool:
    plan = state.get("plan")
    if not plan:
        return False
    if plan.get("auto_approved"):
        return True
    levels = len(plan.get("levels") or [])
    approved_levels = {
        d.get("level") for d in state.get("decisions") or [] if d.get("outcome") == "approve"
    }
    return levels > 0 and set(range(levels)) <= approved_levels


def bill_milestones(state: dict[str, Any]) -> dict[WebhookEventType, Hashable | None]:
    """What a bill has reached, read from its recorded state (the JSON form of BillState).

    None: not reached. Any other value: reached, and a *different* value is a new occurrence
    (a second approval level, another hold after an operator's retry, a new payment). Facts,
    not the bare status, because the workflow does not record every status it passes: it sets
    `approved` or `paid` and moves on to posting or writing back before it records anything.
    """
    status = state.get("status")
    payment = state.get("payment") or {}
    # Each hold ends with an operator action, so their count tells one hold from the next.
    holds = len(state.get("operator_actions") or [])
    t = WebhookEventType
    return {
        t.bill_created: True,
        t.bill_needs_review: holds if status == LifecycleStatus.needs_review else None,
        t.bill_awaiting_approval: (
            (state.get("level"), state.get("escalated"))
            if status == LifecycleStatus.awaiting_approval
            else None
        ),
        t.bill_approved: True if _approved(state) else None,
        t.bill_rejected: True if status == LifecycleStatus.rejected else None,
        t.bill_paid: (
            payment.get("rail_payment_id") if payment.get("status") == "settled" else None
        ),
        t.bill_needs_attention: holds if status == LifecycleStatus.needs_attention else None,
        t.bill_reconciled: True if status == LifecycleStatus.reconciled else None,
        # Each returned payment is news once (a bill may see several, paid again in between).
        t.bill_payment_returned: (
            len(returned) if (returned := _returned_payments(state)) else None
        ),
    }


def _returned_payments(state: dict[str, Any]) -> list[str]:
    return [
        str(p.get("rail_payment_id"))
        for p in state.get("payments") or []
        if p.get("status") == "returned" and p.get("erp_voided")
    ]


def bill_events(previous: BillRow | None, state: BillState) -> list[tuple[str, WebhookEventType]]:
    """The events a recorded state makes news of, as (event id, type), in lifecycle order.

    Only a newer revision counts. The id names the workflow, the event and the revision that
    made it happen, so recording the same state again (a retried activity) yields the same ids
    and the store keeps the first.
    """
    if previous is not None and previous.revision >= state.revision:
        return []
    before = bill_milestones(previous.state) if previous is not None else {}
    now = bill_milestones(state.model_dump(mode="json"))
    found: list[tuple[str, WebhookEventType]] = []
    for event_type, reached in now.items():
        if reached is None or before.get(event_type) == reached:
            continue
        if event_type == WebhookEventType.bill_created:
            found.append((f"{state.workflow_id}/created", event_type))
        else:
            name = event_type.value.removeprefix("bill.")
            found.append((f"{state.workflow_id}/{name}/{state.revision}", event_type))
    return found


def event_payload(
    event_id: str, event_type: str, created_at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": event_type,
        "created_at": created_at.isoformat(),
        "data": data,
    }


class WebhookOutbox:
    """Stores events and, per (event, subscribed enabled endpoint), a delivery due now, which a
    worker's WebhookDispatcher then sends: no Temporal workflow or activity per delivery.

    Events are stored first and marked dispatched only after every delivery row is stored; a
    delivery's id is derived from the endpoint and event and the store keeps the first row of
    an id, so a retried dispatch delivers nothing twice.
    """

    def __init__(self, store: WebhookStore, *, notify: Callable[[], None] | None = None) -> None:
        self._store = store
        # Wakes a dispatcher in this process at once (others find the rows when they poll).
        self._notify = notify

    @property
    def store(self) -> WebhookStore:
        return self._store

    def note_bill_state(self, previous: BillRow | None, state: BillState) -> None:
        """Store the events of a bill's new state (synchronous: call it before the upsert)."""
        new = bill_events(previous, state)
        if not new:
            return
        data = bill_event_data(state)
        for event_id, event_type in new:
            now = utcnow()
            self._store.add_event(
                WebhookEventRow(
                    id=event_id,
                    type=event_type.value,
                    subject=state.workflow_id,
                    payload=event_payload(event_id, event_type.value, now, data),
                    created_at=now,
                )
            )

    async def publish(
        self, event_type: WebhookEventType, *, subject: str, data: dict[str, Any], event_id: str
    ) -> WebhookEventRow:
        """Store an arbitrary event and deliver it. Pass a stable `event_id` (a retry of the
        same occurrence must not become a second event)."""
        now = utcnow()
        stored = await asyncio.to_thread(
            self._store.add_event,
            WebhookEventRow(
                id=event_id,
                type=event_type.value,
                subject=subject,
                payload=event_payload(event_id, event_type.value, now, data),
                created_at=now,
            ),
        )
        await self.dispatch_pending(subject)
        return stored

    async def connection_needs_relink(
        self, connection_id: str, *, platform: str, reason: str, occurrence: str
    ) -> WebhookEventRow:
        """Announce a revoked connection; `occurrence` tells separate revocations apart
        (e.g. the time the revocation was noticed, as stored on the connection)."""
        return await self.publish(
            WebhookEventType.connection_needs_relink,
            subject=connection_id,
            event_id=f"connection/{connection_id}/needs_relink/{occurrence}",
            data={
                "object": "connection",
                "id": connection_id,
                "platform": platform,
                "status": "needs_relink",
                "reason": reason,
            },
        )

    async def payee_change(self, change: PayeeChangeRow, event_type: str) -> WebhookEventRow:
        """Announce a step of a payee change (proposed, verified, approved, rejected)."""
        kind = WebhookEventType(event_type)
        return await self.publish(
            kind,
            subject=f"payee_change/{change.id}",
            event_id=f"payee_change/{change.id}/{kind.value.removeprefix('payee.change_')}",
            data=payee_change_event_data(change),
        )

    async def dispatch_pending(self, subject: str) -> None:
        """Queue deliveries for every stored event of `subject` not yet dispatched."""
        events = await asyncio.to_thread(self._store.undispatched_events, subject)
        for event in events:
            endpoints = await asyncio.to_thread(self._store.endpoints_for, event.type)
            for endpoint in endpoints:
                await self._enqueue(endpoint.id, event, delivery_id(endpoint.id, event.id))
            await asyncio.to_thread(self._store.mark_dispatched, event.id)

    async def replay_delivery(self, original_id: str) -> WebhookDeliveryRow:
        """Send a delivery's event again to its endpoint, as a new delivery."""
        original = await asyncio.to_thread(self._store.get_delivery, original_id)
        if original is None:
            raise RecordNotFound(f"unknown webhook delivery {original_id!r}")
        endpoint = await self._enabled_endpoint(original.endpoint_id)
        event = await asyncio.to_thread(self._store.get_event, original.event_id)
        if event is None:
            raise RecordNotFound(f"event {original.event_id!r} is no longer stored")
        return await self._replay(endpoint, event)

    async def replay_since(
        self, endpoint_id: str, since: datetime, *, limit: int = MAX_REPLAY_EVENTS
    ) -> list[WebhookDeliveryRow]:
        """Send every stored event the endpoint subscribes to, created at or after `since`."""
        endpoint = await self._enabled_endpoint(endpoint_id)
        events = await asyncio.to_thread(
            self._store.events_since, since, event_types=endpoint.event_types, limit=limit
        )
        return [await self._replay(endpoint, event) for event in events]

    async def _enabled_endpoint(self, endpoint_id: str) -> WebhookEndpointRow:
        endpoint = await asyncio.to_thread(self._store.get_endpoint, endpoint_id)
        if endpoint is None:
            raise RecordNotFound(f"unknown webhook endpoint {endpoint_id!r}")
        if endpoint.status != "enabled":
            raise EndpointDisabled(f"webhook endpoint {endpoint_id} is disabled; enable it first")
        return endpoint

    async def _replay(
        self, endpoint: WebhookEndpointRow, event: WebhookEventRow
    ) -> WebhookDeliveryRow:
        # A person asked for this, so it is a new delivery with an id of its own.
        replay = await asyncio.to_thread(self._store.count_deliveries, endpoint.id, event.id)
        while True:
            replay_id = delivery_id(endpoint.id, event.id, max(replay, 1))
            row, created = await self._enqueue(
                endpoint.id, event, replay_id, replay_of=delivery_id(endpoint.id, event.id)
            )
            if created:
                return row
            replay += 1  # another replay took this number first

    async def _enqueue(
        self,
        endpoint_id: str,
        event: WebhookEventRow,
        new_delivery_id: str,
        *,
        replay_of: str | None = None,
    ) -> tuple[WebhookDeliveryRow, bool]:
        row, created = await asyncio.to_thread(
            self._store.add_delivery,
            WebhookDeliveryRow(
                id=new_delivery_id,
                endpoint_id=endpoint_id,
                event_id=event.id,
                event_type=event.type,
                replay_of=replay_of,
                next_attempt_at=utcnow(),
            ),
        )
        if created and self._notify is not None:
            self._notify()
        return row, created


class EndpointDisabled(Exception):
    """A replay was asked of an endpoint that is switched off."""


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        delay = timedelta(seconds=max(0, int(value)))
    except ValueError:
        try:
            delay = parsedate_to_datetime(value) - utcnow()
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


def retry_delay(attempt: int, retry_after: timedelta | None = None) -> timedelta:
    """How long after failed attempt number `attempt` (from 1) the next one goes.

    The receiver's Retry-After when it sent one (already capped at an hour), else
    DELIVERY_RETRY's backoff: the schedule Temporal kept for the delivery workflow's activity.
    """
    if retry_after:
        return retry_after
    policy = DELIVERY_RETRY
    assert policy.maximum_interval is not None
    ceiling = policy.maximum_interval.total_seconds()
    # Capped before exponentiating: a delivery may run to ~80 attempts.
    exponent = min(attempt - 1, 64)
    seconds = policy.initial_interval.total_seconds() * policy.backoff_coefficient**exponent
    return timedelta(seconds=min(seconds, ceiling))


class DeliveryRefused(Exception):
    """A delivery that cannot be attempted: its endpoint is deleted or disabled, or this
    process holds no key to open signing secrets. `kind` names which, as the workflow did."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SentAttempt:
    """What one POST of a delivery came to, as logged."""

    row: WebhookAttemptRow
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        code = self.row.status_code
        return code is not None and 200 <= code < 300

    @property
    def gone(self) -> bool:
        return self.row.status_code == 410


class WebhookSender:
    """The one place a webhook is POSTed: signed, timed, redirects never followed; the
    endpoint's secret is opened here and nowhere else."""

    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox | None,
        http: httpx.AsyncClient | None = None,
        *,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
        allow_private_targets: bool = False,
    ) -> None:
        self.store = store
        self._box = box
        self._http = http
        self.timeout = timeout
        self.allow_private_targets = allow_private_targets

    @property
    def configured(self) -> bool:
        """Whether this process can open signing secrets (REMIT_SECRET_KEY)."""
        return self._box is not None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # One pooled client for the worker's life; redirects are not followed on purpose,
            # and it dials only the public addresses it checked (DNS rebinding).
            self._http = guarded_client(
                timeout=self.timeout, allow_private=self.allow_private_targets
            )
        return self._http

    async def send(
        self,
        *,
        delivery_id: str,
        endpoint_id: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        attempt: int,
    ) -> SentAttempt:
        """POST attempt number `attempt` of a delivery; a 410 switches the endpoint off."""
        endpoint = await asyncio.to_thread(self.store.get_endpoint, endpoint_id)
        if endpoint is None or endpoint.status != "enabled":
            why = "was deleted" if endpoint is None else "is disabled"
            raise DeliveryRefused(f"webhook endpoint {endpoint_id} {why}", "EndpointDisabled")
        if self._box is None:
            raise DeliveryRefused(
                "this worker has no secret key to open webhook secrets (REMIT_SECRET_KEY)",
                "WebhooksNotConfigured",
            )
        try:
            # Again at each delivery (it was checked at registration): DNS may have changed.
            await check_target(endpoint.url, allow_private=self.allow_private_targets)
        except TargetUnresolvable:
            pass  # the POST fails as any network error does, and is retried like one
        except TargetRefused as refused:
            raise DeliveryRefused(
                f"webhook endpoint {endpoint_id}: {refused}", "TargetRefused"
            ) from None
        body = body_bytes(payload)
        timestamp = int(time.time())
        secret = open_secret(self._box, endpoint.secret_encrypted)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type,
            "Remit-Delivery-Id": delivery_id,
        }
        started = time.monotonic()
        response: httpx.Response | None = None
        error: str | None = None
        try:
            response = await self._client().post(
                endpoint.url, content=body, headers=headers, timeout=self.timeout
            )
        except httpx.TimeoutException:
            error = f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = int((time.monotonic() - started) * 1000)
        status_code = response.status_code if response is not None else None
        if response is not None and not response.is_success:
            error = f"HTTP {status_code}"
        sent = SentAttempt(
            WebhookAttemptRow(
                delivery_id=delivery_id,
                endpoint_id=endpoint_id,
                event_id=event_id,
                attempt=attempt,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                at=utcnow(),
            ),
            retry_after=_retry_after(response) if response is not None else None,
        )
        if sent.gone:
            # 410 Gone is the receiver saying "stop": switch the endpoint off rather than
            # retry for three days; a person can enable it again.
            await asyncio.to_thread(
                self.store.set_endpoint_status,
                endpoint_id,
                status="disabled",
                reason="the receiver answered 410 Gone",
            )
        return sent


@dataclass(frozen=True)
class DispatchOptions:
    """How a worker's dispatcher works the outbox."""

    poll_interval: timedelta = timedelta(seconds=1)
    """How often it looks for due deliveries queued by other processes (the API's replays,
    other workers' events); its own process's new deliveries wake it at once."""
    lease: timedelta = timedelta(seconds=60)
    """How long a claim holds: longer than an attempt can take, so no second dispatcher sends
    the same attempt while the first still may; a dead dispatcher's claims return after it."""
    batch: int = 20
    """Deliveries claimed (and sent side by side) at a time."""
    stranded_after: timedelta = timedelta(minutes=1)
    """Events this old that were never fanned out to their endpoints (the process that stored
    them died first) are fanned out by the dispatcher's sweep, run this often."""


class WebhookDispatcher:
    """Sends the outbox's due deliveries from the worker process, beside the Temporal worker.

    It claims due deliveries under a lease (as many as it has free slots), POSTs each through
    the sender, and settles each attempt with its log entry: delivered, failed (410, a disabled
    endpoint, or the delivery window over), or due again after the backoff the delivery
    workflow's retry policy had. Any number of dispatchers may share a store; the claim keeps
    each attempt to one of them. Once a minute it also queues events left without deliveries.
    """

    def __init__(
        self,
        sender: WebhookSender,
        options: DispatchOptions = DispatchOptions(),
        *,
        clock: Callable[[], datetime] = utcnow,
        claimant: str | None = None,
    ) -> None:
        if options.lease.total_seconds() <= sender.timeout:
            raise ValueError("the dispatch lease must outlast a delivery attempt's timeout")
        self._sender = sender
        # An attempt abandoned past this (a DNS lookup that hangs, say) ends inside its lease,
        # before another dispatcher could take the delivery over and send it too.
        self._attempt_limit = (sender.timeout + options.lease.total_seconds()) / 2
        self._store = sender.store
        self._options = options
        self._clock = clock
        host = socket.gethostname()[:32]
        self.claimant = claimant or f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Fans out stranded events; no wake needed, the deliveries are for this dispatcher.
        self._outbox = WebhookOutbox(self._store)
        self._next_sweep: datetime | None = None

    def wake(self) -> None:
        """New deliveries are due: look now rather than at the next poll."""
        self._wake.set()

    async def sweep(self) -> int:
        """Queue the deliveries of events whose process died before it could; how many
        subjects (bills, connections, payee changes) had such events."""
        subjects = await asyncio.to_thread(
            self._store.stranded_subjects,
            created_before=self._clock() - self._options.stranded_after,
        )
        for subject in subjects:
            await self._outbox.dispatch_pending(subject)
        if subjects:
            log.info("webhooks: queued stranded events of %d subjects", len(subjects))
        return len(subjects)

    async def _claim(self, limit: int) -> list[WebhookDeliveryRow]:
        return await asyncio.to_thread(
            self._store.claim_due,
            claimant=self.claimant,
            now=self._clock(),
            lease=self._options.lease,
            limit=limit,
        )

    async def run_once(self) -> int:
        """Claim one batch of what is due and send it; how many deliveries were claimed."""
        claimed = await self._claim(self._options.batch)
        if claimed:
            await asyncio.gather(*(self._attempt(row) for row in claimed))
        return len(claimed)

    async def _attempt(self, row: WebhookDeliveryRow) -> None:
        number = row.attempts + 1
        try:
            event = await asyncio.to_thread(self._store.get_event, row.event_id)
            if event is None:
                await self._settle(row, None, "failed", error="its event is no longer stored")
                return
            started = time.monotonic()
            try:
                sent = await asyncio.wait_for(
                    self._sender.send(
                        delivery_id=row.id,
                        endpoint_id=row.endpoint_id,
                        event_id=row.event_id,
                        event_type=row.event_type,
                        payload=event.payload,
                        attempt=number,
                    ),
                    self._attempt_limit,
                )
            except DeliveryRefused as refused:
                await self._settle(row, None, "failed", error=f"{refused.kind}: {refused}")
                return
            except TimeoutError:
                sent = SentAttempt(
                    WebhookAttemptRow(
                        delivery_id=row.id,
                        endpoint_id=row.endpoint_id,
                        event_id=row.event_id,
                        attempt=number,
                        error=f"abandoned after {self._attempt_limit:g} s",
                        duration_ms=int((time.monotonic() - started) * 1000),
                        at=utcnow(),
                    )
                )
            if sent.delivered:
                await self._settle(row, sent.row, "delivered")
            elif sent.gone:
                await self._settle(
                    row, sent.row, "failed", error="EndpointGone: the receiver answered 410 Gone"
                )
            else:
                now = self._clock()
                due = now + retry_delay(number, sent.retry_after)
                if due > row.created_at + DELIVERY_WINDOW:
                    window = DELIVERY_WINDOW.days
                    error = (
                        f"DeliveryFailed: delivery attempt {number} failed: {sent.row.error}; "
                        f"gave up, the {window}-day delivery window is over"
                    )
                    await self._settle(row, sent.row, "failed", error=error)
                else:
                    await self._settle(row, sent.row, "pending", next_attempt_at=due)
        except asyncio.CancelledError:
            # Stopping mid-attempt: hand it back now rather than after the lease (a receiver
            # may see this attempt twice, as with a cancelled activity; never two at once).
            self._store.release_claim(row.id, claimant=self.claimant)
            raise
        except Exception:
            # The store or something unforeseen: the claim lapses and another attempt follows.
            log.exception("webhook delivery %s: attempt %d broke off", row.id, number)

    async def _settle(
        self,
        row: WebhookDeliveryRow,
        attempt: WebhookAttemptRow | None,
        status: str,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        held = await asyncio.to_thread(
            self._store.settle_attempt,
            row.id,
            claimant=self.claimant,
            attempt=attempt,
            status=status,
            next_attempt_at=next_attempt_at,
            error=error,
        )
        if not held:
            log.warning("webhook delivery %s: the claim lapsed before the attempt ended", row.id)
        elif status == "failed":
            log.warning("webhook delivery %s failed: %s", row.id, error)

    async def run(self) -> None:
        """Send due deliveries until `stop`, up to `batch` at once.

        A slot is refilled as soon as its attempt ends, so a receiver that takes its full
        timeout holds up one slot, not the deliveries to every other endpoint.
        """
        running: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                # Cleared before looking, so a wake while claiming is not lost.
                self._wake.clear()
                now = self._clock()
                if self._next_sweep is None or now >= self._next_sweep:
                    self._next_sweep = now + self._options.stranded_after
                    try:
                        await self.sweep()
                    except Exception:
                        log.exception("webhook sweep failed; trying again later")
                free = self._options.batch - len(running)
                claimed: list[WebhookDeliveryRow] = []
                if free > 0:
                    try:
                        claimed = await self._claim(free)
                    except Exception:
                        log.exception("webhook dispatch failed; trying again at the next poll")
                    for row in claimed:
                        task = asyncio.create_task(self._attempt(row), name=f"webhook {row.id}")
                        running.add(task)
                        task.add_done_callback(running.discard)
                if self._stopping:
                    break
                woken = asyncio.create_task(self._wake.wait())
                try:
                    if len(running) >= self._options.batch:
                        # Every slot busy (more may be due): go on when one frees up.
                        await asyncio.wait({woken, *running}, return_when=asyncio.FIRST_COMPLETED)
                    else:
                        # Nothing more due now: until a wake (new deliveries here) or the poll.
                        poll = self._options.poll_interval.total_seconds()
                        await asyncio.wait({woken}, timeout=poll)
                finally:
                    woken.cancel()
            # Stopping: what is under way finishes (`stop` cancels it past its grace).
            await asyncio.gather(*running, return_exceptions=True)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="webhook-dispatcher")

    async def stop(self, grace: timedelta = timedelta(0)) -> None:
        """Stop claiming; attempts under way get `grace` to finish, then are handed back."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            _, pending = await asyncio.wait([task], timeout=grace.total_seconds())
            if pending:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class WebhookActivities:
    """What WebhookDelivery workflows started before the outbox still call; new deliveries go
    through the WebhookDispatcher. Also the activity workflows publish events of their own by."""

    def __init__(self, sender: WebhookSender, *, outbox: WebhookOutbox | None = None) -> None:
        self._sender = sender
        self._store = sender.store
        self._outbox = outbox

    @implements(contract.deliver_webhook)
    async def deliver_webhook(self, req: DeliveryInput) -> AttemptResult:
        attempt = activity.info().attempt
        try:
            sent = await self._sender.send(
                delivery_id=req.delivery_id,
                endpoint_id=req.endpoint_id,
                event_id=req.event_id,
                event_type=req.event_type,
                payload=req.payload,
                attempt=attempt,
            )
        except DeliveryRefused as refused:
            raise ApplicationError(str(refused), type=refused.kind) from None
        await asyncio.to_thread(self._store.record_attempt, sent.row)
        if sent.delivered:
            assert sent.row.status_code is not None
            return AttemptResult(status_code=sent.row.status_code, attempt=attempt)
        if sent.gone:
            raise ApplicationError("the receiver answered 410 Gone", type="EndpointGone")
        raise ApplicationError(
            f"delivery attempt {attempt} failed: {sent.row.error}",
            type="DeliveryFailed",
            next_retry_delay=sent.retry_after,
        )

    @implements(contract.finish_webhook_delivery)
    async def finish_webhook_delivery(self, outcome: DeliveryOutcome) -> None:
        await asyncio.to_thread(
            self._store.finish_delivery,
            outcome.delivery_id,
            status=outcome.status,
            error=outcome.error,
        )
        if outcome.status == "failed":
            log.warning("webhook delivery %s failed: %s", outcome.delivery_id, outcome.error)

    @implements(contract.publish_webhook_event)
    async def publish_webhook_event(self, req: PublishRequest) -> None:
        """For workflows that have news of their own (e.g. a connection that needs relinking)."""
        if self._outbox is None:
            raise ApplicationError("no webhook outbox configured", type="WebhooksNotConfigured")
        await self._outbox.publish(
            req.type, subject=req.subject, data=req.data, event_id=req.event_id
        )


__all__: Sequence[str] = (
    "DeliveryRefused",
    "DispatchOptions",
    "EndpointDisabled",
    "SentAttempt",
    "WebhookActivities",
    "WebhookDispatcher",
    "WebhookOutbox",
    "WebhookSender",
    "bill_event_data",
    "bill_events",
    "body_bytes",
    "open_secret",
    "retry_delay",
    "seal_secret",
)
