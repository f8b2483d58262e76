"""RetentionWorkflow: one purge of expired idempotency keys and webhook history, run on a schedule.

Bills and their audit trail are the customer's books and are never purged; what goes is what
only serves retries (idempotency keys, kept well past the 24 hours clients may retry within)
and the webhook delivery log (kept for replay and support).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

RETENTION_SCHEDULE_ID = "remit-retention"
RETENTION_EVERY = timedelta(hours=1)


class RetentionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_keys_for: timedelta = Field(
        default=timedelta(days=7), ge=timedelta(hours=24), description="at least 24 hours"
    )
    webhook_history_for: timedelta = Field(default=timedelta(days=30), ge=timedelta(days=4))


class RetentionResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_keys: int = Field(description="keys forgotten")
    webhook_rows: int = Field(description="events, deliveries and attempts deleted")


@workflow.defn(name="Retention")
class RetentionWorkflow:
    @workflow.run
    async def run(self, req: RetentionRequest) -> RetentionResult:
        return await workflow.execute_activity(
            "purge_expired",
            req,
            result_type=RetentionResult,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5),
            summary="purge expired idempotency keys and webhook history",
        )
