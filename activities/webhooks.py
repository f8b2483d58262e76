"""Outbound webhooks: the durable outbox (events → delivery workflows) and the delivery activity."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Hashable, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from runtime.secrets import SecretBox
from runtime.webhook_signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign
from store import BillRow, PayeeChangeRow, RecordNotFound
from store.types import utcnow
from store.webhooks import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    WebhookStore,
)
from workflows.models import BillState, LifecycleStatus
from workflows.webhooks import (
    AttemptResult,
    DeliveryInput,
    DeliveryOutcome,
    PublishRequest,
    WebhookDeliveryWorkflow,
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
    """Stores events and starts one delivery workflow per (event, subscribed enabled endpoint).

    Events are stored first and marked dispatched only after every delivery workflow started;
    a delivery workflow's id is derived from the endpoint and event, and Temporal refuses a
    second start of an id, so a retried dispatch delivers nothing twice.
    """

    def __init__(self, store: WebhookStore, client: Client, *, task_queue: str) -> None:
        self._store = store
        self._client = client
        self._task_queue = task_queue

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
        """Start deliveries for every stored event of `subject` not yet dispatched."""
        events = await asyncio.to_thread(self._store.undispatched_events, subject)
        for event in events:
            endpoints = await asyncio.to_thread(self._store.endpoints_for, event.type)
            for endpoint in endpoints:
                await self._start(endpoint.id, event, delivery_id(endpoint.id, event.id))
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
            row, created = await self._start(
                endpoint.id, event, replay_id, replay_of=delivery_id(endpoint.id, event.id)
            )
            if created:
                return row
            replay += 1  # another replay took this number first

    async def _start(
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
            ),
        )
        if not created and replay_of is not None:
            return row, False
        try:
            await self._client.start_workflow(
                WebhookDeliveryWorkflow.run,
                DeliveryInput(
                    delivery_id=new_delivery_id,
                    endpoint_id=endpoint_id,
                    event_id=event.id,
                    event_type=event.type,
                    payload=event.payload,
                    replay_of=replay_of,
                ),
                id=new_delivery_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{event.type} → {endpoint_id}",
            )
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt of this dispatch
        return row, True


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


class WebhookActivities:
    """Delivery of one event to one endpoint per attempt, logged; the secret stays here."""

    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox | None,
        http: httpx.AsyncClient | None = None,
        *,
        outbox: WebhookOutbox | None = None,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
    ) -> None:
        self._store = store
        self._box = box
        self._http = http
        self._outbox = outbox
        self._timeout = timeout

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # One pooled client for the worker's life; redirects are not followed on purpose.
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, req: DeliveryInput) -> AttemptResult:
        attempt = activity.info().attempt
        endpoint = await asyncio.to_thread(self._store.get_endpoint, req.endpoint_id)
        if endpoint is None or endpoint.status != "enabled":
            why = "was deleted" if endpoint is None else "is disabled"
            raise ApplicationError(
                f"webhook endpoint {req.endpoint_id} {why}", type="EndpointDisabled"
            )
        if self._box is None:
            raise ApplicationError(
                "this worker has no secret key to open webhook secrets (REMIT_SECRET_KEY)",
                type="WebhooksNotConfigured",
            )
        body = body_bytes(req.payload)
        timestamp = int(time.time())
        secret = open_secret(self._box, endpoint.secret_encrypted)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: req.event_id,
            EVENT_TYPE_HEADER: req.event_type,
            "Remit-Delivery-Id": req.delivery_id,
        }
        started = time.monotonic()
        response: httpx.Response | None = None
        error: str | None = None
        try:
            response = await self._client().post(
                endpoint.url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            error = f"timed out after {self._timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = int((time.monotonic() - started) * 1000)
        status_code = response.status_code if response is not None else None
        if response is not None and not response.is_success:
            error = f"HTTP {status_code}"
        await asyncio.to_thread(
            self._store.record_attempt,
            WebhookAttemptRow(
                delivery_id=req.delivery_id,
                endpoint_id=req.endpoint_id,
                event_id=req.event_id,
                attempt=attempt,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
                at=utcnow(),
            ),
        )
        if response is not None and response.is_success:
            return AttemptResult(status_code=response.status_code, attempt=attempt)
        if status_code == 410:
            # 410 Gone is the receiver saying "stop": switch the endpoint off rather than
            # retry for three days; a person can enable it again.
            await asyncio.to_thread(
                self._store.set_endpoint_status,
                req.endpoint_id,
                status="disabled",
                reason="the receiver answered 410 Gone",
            )
            raise ApplicationError("the receiver answered 410 Gone", type="EndpointGone")
        raise ApplicationError(
            f"delivery attempt {attempt} failed: {error}",
            type="DeliveryFailed",
            next_retry_delay=_retry_after(response) if response is not None else None,
        )

    @activity.defn(name="finish_webhook_delivery")
    async def finish_webhook_delivery(self, outcome: DeliveryOutcome) -> None:
        await asyncio.to_thread(
            self._store.finish_delivery,
            outcome.delivery_id,
            status=outcome.status,
            error=outcome.error,
        )
        if outcome.status == "failed":
            log.warning("webhook delivery %s failed: %s", outcome.delivery_id, outcome.error)

    @activity.defn(name="publish_webhook_event")
    async def publish_webhook_event(self, req: PublishRequest) -> None:
        """For workflows that have news of their own (e.g. a connection that needs relinking)."""
        if self._outbox is None:
            raise ApplicationError("no webhook outbox configured", type="WebhooksNotConfigured")
        await self._outbox.publish(
            req.type, subject=req.subject, data=req.data, event_id=req.event_id
        )


__all__: Sequence[str] = (
    "EndpointDisabled",
    "WebhookActivities",
    "WebhookOutbox",
    "bill_event_data",
    "bill_events",
    "body_bytes",
    "open_secret",
    "seal_secret",
)
