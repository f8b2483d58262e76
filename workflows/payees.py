"""PayeeImportWorkflow: an attested import of the ERP's vendor bank details into the payee master.

One activity on the ERP queue (it reads every vendor); a workflow so the API and CLI, which hold
no ERP credentials, can run it on a worker and wait for its answer.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import contract
    from workflows.bill import NON_RETRYABLE
    from workflows.models import PayeeImportRequest, PayeeImportResult, erp_task_queue


@workflow.defn
class PayeeImportWorkflow:
    @workflow.run
    async def run(self, req: PayeeImportRequest) -> PayeeImportResult:
        return await workflow.execute_activity(
            contract.import_vendor_payees,
            req,
            task_queue=erp_task_queue(workflow.info().task_queue),
            start_to_close_timeout=timedelta(minutes=10),
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(minutes=1), non_retryable_error_types=NON_RETRYABLE
            ),
            summary=f"import vendor bank details of {req.connection_id}",
        )
