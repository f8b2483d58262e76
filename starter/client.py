"""Typed helpers to submit bills and steer them: submit, decide, cancel, retry, resolve, state."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from accounting import BillDraft, PaymentTerms, format_money
from connectors.base import RailKind
from runtime.bills import (
    bill_key_for,
    start_bill,
)
from workflows import search
from workflows.bill import BillWorkflow
from workflows.credit import CreditInput, CreditState, CreditWorkflow, credit_workflow_id
from workflows.models import (
    TASK_QUEUE,
    BillInput,
    BillState,
    DecisionInput,
    DecisionRecord,
    Installment,
    LifecycleStatus,
    OperatorAction,
    PayeeImportRequest,
    PayeeImportResult,
    PayeeNotice,
    PaymentEvent,
    PaymentInstructionInput,
    SubmitResult,
    amount_for_search,
    bill_summary,
)
from workflows.payees import PayeeImportWorkflow
from workflows.payment_run import (
    PaymentRunWorkflow,
    RunAction,
    RunInput,
    RunState,
    payment_run_id,
)


def _attributes_of(state: BillState) -> TypedSearchAttributes:
    due = state.due_date or state.issue_date
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.BILL_STATUS, state.status.value),
            SearchAttributePair(search.VENDOR_NAME, state.vendor_name),
            SearchAttributePair(search.AMOUNT_DUE, amount_for_search(state.amount_due)),
            SearchAttributePair(search.CURRENCY, state.currency),
            SearchAttributePair(search.CONNECTION_ID, state.connection_id),
            SearchAttributePair(search.PLATFORM, state.platform),
            SearchAttributePair(search.DUE_DATE, datetime.combine(due, time(0), tzinfo=UTC)),
        ]
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
        amount_due: Decimal | None = None,
        attempt_timeout: timedelta | None = None,
        settlement_poll: timedelta | None = None,
        installments: list[Installment] | None = None,
        terms: PaymentTerms | None = None,
    ) -> SubmitResult:
        """Start a bill's workflow (or find the one already started for it).

        `erp_bill_id`: the bill is already in the ERP (`draft` describes it, e.g. from the
        mirror): the workflow re-reads it there and pays it without posting. Without a key,
        one ERP bill is one remit bill whatever its draft says."""
        return await start_bill(
            self.temporal,
            draft,
            task_queue=self.task_queue,
            connection_id=connection_id,
            platform=platform,
            submitted_by=submitted_by,
            key=key,
            pay_on=pay_on,
            rail=rail,
            erp_bill_id=erp_bill_id,
            amount_due=amount_due,
            attempt_timeout=attempt_timeout,
            settlement_poll=settlement_poll,
            installments=installments,
            terms=terms,
        )

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
        draft: BillDraft | None = None,
    ) -> None:
        """Resolve a bill held in review; `draft` is the corrected draft for a bill held for
        what capture read (validated by the caller: the workflow takes it as it is)."""
        await self.handle(workflow_id).signal(
            BillWorkflow.resolve,
            OperatorAction(
                actor=actor, reason=reason, vendor_id=vendor_id, account=account, draft=draft
            ),
        )

    async def payment_update(self, workflow_id: str, event: PaymentEvent) -> None:
        await self.handle(workflow_id).signal(BillWorkflow.payment_update, event)

    async def payment_notice(
        self, workflow_id: str, event: PaymentEvent, *, last_state: BillState | None
    ) -> None:
        """Pass a rail's notice to its bill.

        A running bill gets it as a signal. A finished one (a return days after the bill was
        reconciled) gets a follow-up run of the same workflow id, started from `last_state`
        (the store's projection) with the notice as its first signal; the run checks the
        notice with the rail before doing anything (signal-with-start, so the notice is never
        lost between "finished" and "started again").
        """
        if last_state is None:
            await self.payment_update(workflow_id, event)
            return
        await self.temporal.start_workflow(
            BillWorkflow.run,
            BillInput(
                connection_id=last_state.connection_id,
                platform=last_state.platform,
                bill_key=last_state.bill_key,
                draft=None,
                submitted_by=last_state.submitted_by,
                resume=last_state,
            ),
            id=workflow_id,
            task_queue=self.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal="payment_update",
            start_signal_args=[event],
            search_attributes=_attributes_of(last_state),
            static_summary=bill_summary(
                last_state.document_number,
                last_state.vendor_name,
                last_state.currency,
                last_state.total,
            )[:200],
            static_details=(
                f"Follow-up of a finished bill: a notice about payment {event.payment.id}"
            ),
        )

    async def schedule_payment(
        self,
        workflow_id: str,
        *,
        actor: str,
        amount: Decimal | None = None,
        pay_on: date | None = None,
        request_id: str | None = None,
    ) -> BillState:
        """Pay (part of) a bill. Raises WorkflowUpdateFailedError with the refusal's reason."""
        return await self.handle(workflow_id).execute_update(
            BillWorkflow.schedule_payment,
            PaymentInstructionInput(
                actor=actor, amount=amount, pay_on=pay_on, request_id=request_id
            ),
            id=request_id,
        )

    async def submit_credit(
        self,
        draft: BillDraft,
        *,
        connection_id: str,
        platform: str,
        submitted_by: str,
        key: str | None = None,
    ) -> SubmitResult:
        """Start a vendor credit's workflow; the same document (or key) twice is one credit."""
        credit_key = bill_key_for(draft, key)
        workflow_id = credit_workflow_id(connection_id, credit_key)
        try:
            await self.temporal.start_workflow(
                CreditWorkflow.run,
                CreditInput(
                    connection_id=connection_id,
                    platform=platform,
                    credit_key=credit_key,
                    draft=draft,
                    submitted_by=submitted_by,
                ),
                id=workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=(
                    f"Credit {draft.document_number} · {draft.vendor.name} · "
                    f"{format_money(draft.total, draft.currency)}"
                )[:200],
            )
        except WorkflowAlreadyStartedError:
            return SubmitResult(workflow_id=workflow_id, created=False)
        return SubmitResult(workflow_id=workflow_id, created=True)

    async def credit_state(self, workflow_id: str) -> CreditState:
        handle = self.temporal.get_workflow_handle_for(CreditWorkflow.run, workflow_id)
        return await handle.query(CreditWorkflow.state_query)

    # -- payment runs ----------------------------------------------------------------------

    async def start_payment_run(
        self,
        connection_id: str,
        *,
        run_date: date | None = None,
        horizon_days: int = 7,
        payers: list[str] | None = None,
    ) -> str:
        """Start a connection's payment run now (the schedule starts them on its calendar);
        the same day twice is one run."""
        day = run_date or datetime.now(UTC).date()
        run_id = payment_run_id(connection_id, day)
        try:
            await self.temporal.start_workflow(
                PaymentRunWorkflow.run,
                RunInput(
                    connection_id=connection_id,
                    run_date=day,
                    horizon_days=horizon_days,
                    payers=list(payers or []),
                ),
                id=run_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"Payment run · {connection_id} · {day.isoformat()}",
            )
        except WorkflowAlreadyStartedError:
            pass
        return run_id

    def run_handle(self, run_id: str) -> WorkflowHandle[PaymentRunWorkflow, RunState]:
        return self.temporal.get_workflow_handle_for(PaymentRunWorkflow.run, run_id)

    async def run_state(self, run_id: str) -> RunState:
        return await self.run_handle(run_id).query(PaymentRunWorkflow.state_query)

    async def steer_run(
        self,
        run_id: str,
        action: Literal["release", "pause", "resume", "pull"],
        *,
        actor: str,
        reason: str | None = None,
        bill_id: str | None = None,
    ) -> RunState:
        """Release, pause, resume a run or pull a bill out (WorkflowUpdateFailedError says why
        it was refused)."""
        update = {
            "release": PaymentRunWorkflow.release,
            "pause": PaymentRunWorkflow.pause,
            "resume": PaymentRunWorkflow.resume,
            "pull": PaymentRunWorkflow.pull,
        }[action]
        return await self.run_handle(run_id).execute_update(
            update, RunAction(actor=actor, reason=reason, bill_id=bill_id)
        )

    async def import_payees(self, request: PayeeImportRequest) -> PayeeImportResult:
        """Seed the payee master from the ERP's vendor records (runs on a worker)."""
        return await self.temporal.execute_workflow(
            PayeeImportWorkflow.run,
            request,
            id=f"payee-import/{request.connection_id}/{uuid.uuid4().hex[:12]}",
            task_queue=self.task_queue,
            execution_timeout=timedelta(hours=1),
        )

    async def payee_changed(self, workflow_id: str, notice: PayeeNotice) -> None:
        await self.handle(workflow_id).signal(BillWorkflow.payee_changed, notice)

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
