"""Webhook event types, and the messages of a delivery and of the activities that make one."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import RetryPolicy


class WebhookEventType(StrEnum):
    """What a receiver can subscribe to."""

    bill_created = "bill.created"
    bill_needs_review = "bill.needs_review"
    bill_awaiting_approval = "bill.awaiting_approval"
    bill_approved = "bill.approved"
    bill_rejected = "bill.rejected"
    bill_paid = "bill.paid"
    bill_reconciled = "bill.reconciled"
    bill_needs_attention = "bill.needs_attention"
    bill_payment_returned = "bill.payment_returned"
    bill_drift_detected = "bill.drift_detected"
    connection_needs_relink = "connection.needs_relink"
    payee_change_proposed = "payee.change_proposed"
    payee_change_verified = "payee.change_verified"
    payee_change_approved = "payee.change_approved"
    payee_change_rejected = "payee.change_rejected"
    payment_run_proposed = "payment_run.proposed"
    payment_run_released = "payment_run.released"
    payment_run_paid = "payment_run.paid"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in WebhookEventType)

# Receivers that answer with these are not retried: the endpoint is gone or switched off.
NON_RETRYABLE = ["EndpointGone", "EndpointDisabled", "WebhooksNotConfigured"]

DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    non_retryable_error_types=NON_RETRYABLE,
)
DELIVERY_WINDOW = timedelta(days=3)
ATTEMPT_TIMEOUT = timedelta(seconds=30)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def delivery_id(endpoint_id: str, event_id: str, replay: int = 0) -> str:
    """The delivery workflow's id: starting the same delivery twice is refused by Temporal."""
    base = f"webhook/{endpoint_id}/{event_id}"
    return base if replay == 0 else f"{base}/replay-{replay}"


class DeliveryInput(_Model):
    """Ids and the event body only: the endpoint's URL and secret are read by the activity."""

    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    payload: dict[str, Any] = Field(description="the event body as the receiver gets it")
    replay_of: str | None = None


class AttemptResult(_Model):
    status_code: int
    attempt: int


class DeliveryOutcome(_Model):
    delivery_id: str
    status: Literal["delivered", "failed"]
    attempts: int = 0
    error: str | None = None


class PublishRequest(_Model):
    """An event to store and fan out; `event_id` must be stable across retries."""

    event_id: str
    type: WebhookEventType
    subject: str
    data: dict[str, Any]
