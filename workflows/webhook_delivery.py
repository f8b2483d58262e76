"""WebhookDeliveryWorkflow: one event to one endpoint, retried with backoff for up to three days.

No longer started (deliveries go through the store's outbox and the worker's dispatcher); kept
registered so deliveries started before that finish.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import contract
    from workflows.webhooks import (
        ATTEMPT_TIMEOUT,
        DELIVERY_RETRY,
        DELIVERY_WINDOW,
        DeliveryInput,
        DeliveryOutcome,
    )


def _why(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause) if cause is not None else str(err)


@workflow.defn(name="WebhookDelivery")
class WebhookDeliveryWorkflow:
    """Delivers one event to one endpoint; ends `delivered` or `failed`, recorded either way."""

    @workflow.run
    async def run(self, req: DeliveryInput) -> DeliveryOutcome:
        try:
            result = await workflow.execute_activity(
                contract.deliver_webhook,
                req,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=DELIVERY_WINDOW,
                retry_policy=DELIVERY_RETRY,
                summary=f"deliver {req.event_type}",
            )
            outcome = DeliveryOutcome(
                delivery_id=req.delivery_id, status="delivered", attempts=result.attempt
            )
        except ActivityError as err:
            outcome = DeliveryOutcome(
                delivery_id=req.delivery_id, status="failed", error=_why(err)[:2000]
            )
        await workflow.execute_activity(
            contract.finish_webhook_delivery,
            outcome,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"record {outcome.status}",
        )
        return outcome
