"""ErpWriteWorkflow: one write around bills (a vendor, an account, an attachment) as a job.

The API starts one per write under an id made from the caller's Idempotency-Key, so the same
request twice is one job and one write. The write itself is the activity the bills use, on the
ERP queue (the connection's rate governance), with the platform's idempotency key and a look-up
before it writes; a failure retries cannot fix ends the job `failed` with the platform's reason.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from accounting import Account, Attachment, NewAccount, Vendor, VendorChanges
    from accounting.documents import DocumentRef
    from workflows import contract
    from workflows.bill import ERP_OPTIONS, describe_failure, failure_type
    from workflows.models import (
        AttachRequest,
        CreateAccountRequest,
        CreateVendorRequest,
        UpdateVendorRequest,
        erp_task_queue,
    )

ErpWriteOperation = Literal["create_vendor", "update_vendor", "create_account", "attach_document"]
JOB_PREFIX = "erp-write"


def erp_write_job_id(connection_id: str, operation: str, idempotency_key: str) -> str:
    """`erp-write/<connection>/<operation>-<hash of the key>`: one job per key and write."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return f"{JOB_PREFIX}/{connection_id}/{operation}-{digest}"


def job_connection(job_id: str) -> str | None:
    prefix, _, rest = job_id.partition("/")
    connection_id, _, operation = rest.rpartition("/")
    return connection_id if prefix == JOB_PREFIX and connection_id and operation else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErpWriteInput(_Model):
    connection_id: str
    operation: ErpWriteOperation
    idempotency_key: str = Field(description="the platform's idempotency key for the write")
    requested_by: str
    vendor: Vendor | None = None
    vendor_id: str | None = Field(default=None, description="the vendor an update changes")
    changes: VendorChanges | None = None
    account: NewAccount | None = None
    bill_id: str | None = Field(default=None, description="the ERP bill an attachment goes to")
    document: DocumentRef | None = Field(
        default=None, description="the file, kept in the document store (never in history)"
    )


class ErpWriteOutcome(_Model):
    status: Literal["succeeded", "failed"]
    object_id: str | None = Field(default=None, description="the platform's id of what it wrote")
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    error_type: str | None = Field(
        default=None, description="Rejected, NotFound, ConnectionRevoked, ... (connectors.base)"
    )


@workflow.defn(name="ErpWrite")
class ErpWriteWorkflow:
    @workflow.run
    async def run(self, inp: ErpWriteInput) -> ErpWriteOutcome:
        options: dict[str, Any] = {
            **ERP_OPTIONS,
            # A caller follows the job: a day of retries is the bills' patience, not theirs.
            "schedule_to_close_timeout": timedelta(hours=1),
            "start_to_close_timeout": timedelta(seconds=60),
            "task_queue": erp_task_queue(workflow.info().task_queue),
            "priority": Priority(fairness_key=inp.connection_id),
        }
        reference = workflow.info().workflow_id
        try:
            if inp.operation == "create_vendor":
                assert inp.vendor is not None
                vendor: Vendor = await workflow.execute_activity(
                    contract.create_vendor,
                    CreateVendorRequest(
                        connection_id=inp.connection_id,
                        reference=reference,
                        idempotency_key=inp.idempotency_key,
                        vendor=inp.vendor,
                    ),
                    summary=f"create vendor {inp.vendor.name}"[:200],
                    **options,
                )
                return ErpWriteOutcome(
                    status="succeeded", object_id=vendor.id, result=vendor.model_dump(mode="json")
                )
            if inp.operation == "update_vendor":
                assert inp.vendor_id is not None and inp.changes is not None
                updated: Vendor = await workflow.execute_activity(
                    contract.update_vendor,
                    UpdateVendorRequest(
                        connection_id=inp.connection_id,
                        vendor_id=inp.vendor_id,
                        changes=inp.changes,
                        idempotency_key=inp.idempotency_key,
                    ),
                    summary=f"update vendor {inp.vendor_id}"[:200],
                    **options,
                )
                return ErpWriteOutcome(
                    status="succeeded", object_id=updated.id, result=updated.model_dump(mode="json")
                )
            if inp.operation == "create_account":
                assert inp.account is not None
                account: Account = await workflow.execute_activity(
                    contract.create_account,
                    CreateAccountRequest(
                        connection_id=inp.connection_id,
                        account=inp.account,
                        idempotency_key=inp.idempotency_key,
                    ),
                    summary=f"create account {inp.account.name}"[:200],
                    **options,
                )
                return ErpWriteOutcome(
                    status="succeeded", object_id=account.id, result=account.model_dump(mode="json")
                )
            assert inp.bill_id is not None and inp.document is not None
            attachment: Attachment = await workflow.execute_activity(
                contract.attach_document,
                AttachRequest(
                    connection_id=inp.connection_id,
                    bill_id=inp.bill_id,
                    document=inp.document,
                    idempotency_key=inp.idempotency_key,
                ),
                summary=f"attach {inp.document.file_name} to bill {inp.bill_id}"[:200],
                **options,
            )
            return ErpWriteOutcome(
                status="succeeded",
                object_id=attachment.id,
                result=attachment.model_dump(mode="json"),
            )
        except ActivityError as err:
            return ErpWriteOutcome(
                status="failed", error=describe_failure(err), error_type=failure_type(err)
            )
