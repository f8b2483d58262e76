"""RetentionWorkflow: one purge of expired idempotency keys and webhook history, run on a schedule.

Bills and their audit trail are the customer's books and are never purged; what goes is what
only serves retries (idempotency keys, kept well past the 24 hours clients may retry within)
and the webhook delivery log (kept for replay and support).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import contract
    from workflows.models import RetentionRequest, RetentionResult

RETENTION_SCHEDULE_ID = "remit-retention"
RETENTION_EVERY = timedelta(hours=1)


@workflow.defn(name="Retention")
class RetentionWorkflow:
    @workflow.run
    async def run(self, req: RetentionRequest) -> RetentionResult:
        return await workflow.execute_activity(
            contract.purge_expired,
            req,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5),
            summary="purge expired idempotency keys and webhook history",
        )
