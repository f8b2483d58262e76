"""Typed helpers to submit bills and steer them: submit, decide, cancel, retry, resolve, state."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from accounting import BillDraft
from connectors.base import RailKind
from workflows import search
from workflows.bill import BillWorkflow
from workflows.models import (
    TASK_QUEUE,
    BillInput,
    BillState,
    DecisionInput,
    DecisionRecord,
    LifecycleStatus,
    OperatorAction,
    PaymentEvent,
    SubmitResult,
    amount_for_search,
    bill_summary,
    bill_workflow_id,
)


def bill_key_for(draft: BillDraft, key: str | None) -> str:
    """The caller's key, else the document's hash: the same bill twice is one workflow."""
    if key:
        return key
    if draft.source is not None:
        return draft.source.sha256
    return hashlib.sha256(draft.model_dump_json().encode()).hexdigest()


def summary_of(draft: BillDraft) -> str:
    return bill_summary(draft.document_number, draft.vendor.name, draft.currency, draft.total)


def details_of(draft: BillDraft, submitted_by: str) -> str:
    lines = "\n".join(
        f"- {ln.description or 'line'}: {draft.currency} {ln.amount}"
        + (f" ({ln.account})" if ln.account else "")
        for ln in draft.lines
    )
    due = f"due {draft.due_date}" if draft.due_date else "no due date"
    return (
        f"**{summary_of(draft)}**\n\nIssued {draft.issue_date}, {due}; submitted by "
        f"{submitted_by}.\n\n{lines}"
    )


class RemitClient:
    """What a backend, the API and the CLI use to run bills; wraps one Temporal client."""

    def __init__(self, client: Client, *, task_queue: str = TASK_QUEUE) -> None:
        self.temporal = client
        self.task_queue = task_queue

    async def submit_bill(
        self,
        draft: BillDraft,
        *,
        connection_id: str,
        platform: str,
        submitted_by: str,
        key: str | None = None,
        pay_on: date | None = None,
        rail: RailKind | None = None,
        erp_bill_id: str | None = None,
        attempt_timeout: timedelta | None = None,
        settlement_poll: timedelta | None = None,
    ) -> SubmitResult:
        bill_key = bill_key_for(draft, key)
        workflow_id = bill_workflow_id(connection_id, bill_key)
        due = draft.due_date or draft.issue_date
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(search.BILL_STATUS, "received"),
                SearchAttributePair(search.VENDOR_NAME, draft.vendor.name),
                SearchAttributePair(search.AMOUNT_DUE, amount_for_search(draft.total)),
                SearchAttributePair(search.CURRENCY, draft.currency),
                SearchAttributePair(search.CONNECTION_ID, connection_id),
                SearchAttributePair(search.PLATFORM, platform),
                SearchAttributePair(search.DUE_DATE, datetime.combine(due, time(0), tzinfo=UTC)),
            ]
        )
        try:
            await self.temporal.start_workflow(
                BillWorkflow.run,
                BillInput(
                    connection_id=connection_id,
                    platform=platform,
                    bill_key=bill_key,
                    draft=draft,
                    submitted_by=submitted_by,
                    pay_on=pay_on,
                    rail=rail,
                    erp_bill_id=erp_bill_id,
                    # Unset timings keep the workflow's defaults.
                    **{
                        name: value
                        for name, value in (
                            ("attempt_timeout", attempt_timeout),
                            ("settlement_poll", settlement_poll),
                        )
                        if value is not None
                    },
                ),
                id=workflow_id,
                task_queue=self.task_queue,
                # A finished bill's id is never reused: the same document twice is one bill.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attributes,
                static_summary=summary_of(draft)[:200],
                static_details=details_of(draft, submitted_by),
            )
        except WorkflowAlreadyStartedError:
            return SubmitResult(workflow_id=workflow_id, created=False)
        return SubmitResult(workflow_id=workflow_id, created=True)

    def handle(self, workflow_id: str) -> WorkflowHandle[BillWorkflow, BillState]:
        return self.temporal.get_workflow_handle_for(BillWorkflow.run, workflow_id)

    async def state(self, workflow_id: str) -> BillState:
        return await self.handle(workflow_id).query(BillWorkflow.state_query)

    async def decide(
        self,
        workflow_id: str,
        *,
        actor: str,
        approve: bool,
        comment: str | None = None,
        request_id: str | None = None,
    ) -> DecisionRecord:
        """Approve or reject. Raises WorkflowUpdateFailedError with the validator's reason."""
        return await self.handle(workflow_id).execute_update(
            BillWorkflow.decide,
            DecisionInput(
                actor=actor,
                outcome="approve" if approve else "reject",
                comment=comment,
                request_id=request_id,
            ),
            id=request_id,
        )

    async def cancel(self, workflow_id: str, *, actor: str, reason: str | None = None) -> None:
        await self.handle(workflow_id).signal(
            BillWorkflow.cancel, OperatorAction(actor=actor, reason=reason)
        )

    async def retry(self, workflow_id: str, *, actor: str, reason: str | None = None) -> None:
        await self.handle(workflow_id).signal(
            BillWorkflow.retry, OperatorAction(actor=actor, reason=reason)
        )

    async def resolve(
        self,
        workflow_id: str,
        *,
        actor: str,
        reason: str | None = None,
        vendor_id: str | None = None,
        account: str | None = None,
    ) -> None:
        await self.handle(workflow_id).signal(
            BillWorkflow.resolve,
            OperatorAction(actor=actor, reason=reason, vendor_id=vendor_id, account=account),
        )

    async def payment_update(self, workflow_id: str, event: PaymentEvent) -> None:
        await self.handle(workflow_id).signal(BillWorkflow.payment_update, event)

    async def connection_relinked(self, workflow_id: str, *, actor: str) -> None:
        """Tell a bill its connection works again; a bill not paused on it ignores this."""
        await self.handle(workflow_id).signal(
            BillWorkflow.connection_relinked,
            OperatorAction(actor=actor, reason="connection relinked"),
        )


class PausedBills(Protocol):
    """The part of the store that knows which bills wait on a connection."""

    def list_bills(
        self, *, status: str | None = ..., connection_id: str | None = ..., cursor: str | None = ...
    ) -> tuple[list[Any], str | None]: ...


async def resume_bills_after_relink(
    remit: RemitClient, bills: PausedBills, connection_id: str, *, actor: str = "remit"
) -> list[str]:
    """Signal every bill of a connection that waits in needs_attention; returns their ids.

    Each bill decides for itself whether it was paused for the relink, so a bill waiting for
    an operator on some other problem keeps waiting.
    """
    signalled: list[str] = []
    cursor: str | None = None
    while True:
        rows, cursor = bills.list_bills(
            status=LifecycleStatus.needs_attention.value,
            connection_id=connection_id,
            cursor=cursor,
        )
        for row in rows:
            try:
                await remit.connection_relinked(row.workflow_id, actor=actor)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # finished since the projection was written
            signalled.append(row.workflow_id)
        if cursor is None:
            return signalled
