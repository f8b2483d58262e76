"""PaymentRunWorkflow: one connection's payment run, from proposal to release to paid bills.

On its schedule (the policy's calendar, e.g. Tuesdays and Thursdays) a run gathers the
approved bills waiting for a run whose due date (or discount deadline) falls within the
run's horizon, takes the early-payment discounts their terms allow, and groups each vendor's
bills into one bank payment and one ERP bill payment. Nothing is paid until a person with the
payer role releases the run (never someone who submitted a bill in it); until then the run can
be paused, resumed, and bills pulled out. Just before paying, every bill is checked again
(paid or voided elsewhere, payee, amount still due). Each bill then hears what paid it and
proves its own books (it reads the payment from the rail and reconciles).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from accounting import BillPayment, BillPaymentLine, format_money
    from connectors.base import RailPayment, RailPaymentStatus
    from workflows import contract
    from workflows.bill import NON_RETRYABLE, PAYEE_NOT_VERIFIED, describe_failure, failure_type
    from workflows.models import (
        Gathered,
        GatherRequest,
        PaymentRequest,
        PaymentStatusRequest,
        PostPaymentRequest,
        RecheckRequest,
        RunBill,
        RunNotice,
        RunRecord,
        RunState,
        VendorGroup,
        erp_task_queue,
        fresh_key,
    )
    from workflows.webhooks import WebhookEventType


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def payment_run_id(connection_id: str, run_date: date) -> str:
    return f"payment-run/{connection_id}/{run_date.isoformat()}"


class RunInput(_Model):
    connection_id: str
    run_date: date | None = Field(default=None, description="default: today (workflow clock)")
    horizon_days: int = Field(default=7, ge=0, le=90)
    payers: list[str] = Field(
        default_factory=list, description="who may release; empty: read from the policy"
    )


class RunAction(_Model):
    actor: str = Field(min_length=1)
    reason: str | None = None
    bill_id: str | None = Field(default=None, description="for pull: the bill to take out")


def run_refusal(
    state: RunState, action: Literal["release", "pause", "resume", "pull"], actor: str
) -> str | None:
    """Why `actor` may not do `action` to the run now (None: they may). One rule for the
    workflow's validators and for screens that should not offer what would be refused."""
    if actor not in state.payers:
        return f"{actor} is not a payer (payers: {', '.join(state.payers) or 'none'})"
    if action == "release":
        if state.status == "paused":
            return f"the run is paused by {state.paused_by or 'someone'}: resume it, then release"
        if state.status != "proposed":
            return f"the run is {state.status}; only a proposed run can be released"
        if actor in state.submitters():
            return (
                f"{actor} submitted a bill in this run and cannot release it "
                "(separation of duties); pull that bill out or ask another payer"
            )
    elif action == "pause" and state.status != "proposed":
        return f"the run is {state.status}; only a proposed run can be paused"
    elif action == "resume" and state.status != "paused":
        return f"the run is {state.status}, not paused"
    elif action == "pull" and state.status not in ("proposed", "paused"):
        return f"the run is {state.status}; bills can be pulled out before release only"
    return None


ERP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(days=1),
    "retry_policy": RetryPolicy(
        maximum_interval=timedelta(minutes=5), non_retryable_error_types=NON_RETRYABLE
    ),
}
LOCAL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}
SETTLEMENT_POLL = timedelta(minutes=1)
SETTLEMENT_POLL_MAX = timedelta(hours=1)


@workflow.defn
class PaymentRunWorkflow:
    @workflow.init
    def __init__(self, input: RunInput) -> None:
        run_date = input.run_date or workflow.now().date()
        self.input = input
        self.state = RunState(
            run_id=workflow.info().workflow_id,
            connection_id=input.connection_id,
            run_date=run_date,
        )
        self._released = False
        self._cancelled: RunAction | None = None
        self._retry = False

    @workflow.query
    def state_query(self) -> RunState:
        return self.state

    # -- a person steers the run --------------------------------------------------------------

    @workflow.update
    def release(self, action: RunAction) -> RunState:
        self._released = True
        self.state.released_by = action.actor
        self.state.paused_by = None
        self._log(f"released by {action.actor}")
        return self.state

    @release.validator
    def _may_release(self, action: RunAction) -> None:
        self._refuse_unless("release", action)

    def _refuse_unless(
        self, kind: Literal["release", "pause", "resume", "pull"], action: RunAction
    ) -> None:
        refusal = run_refusal(self.state, kind, action.actor)
        if refusal is not None:
            raise ApplicationError(refusal, type="RunRefused")

    @workflow.update
    def pause(self, action: RunAction) -> RunState:
        self.state.status = "paused"
        self.state.paused_by = action.actor
        self._log(f"paused by {action.actor}" + (f": {action.reason}" if action.reason else ""))
        self._describe()
        return self.state

    @pause.validator
    def _may_pause(self, action: RunAction) -> None:
        self._refuse_unless("pause", action)

    @workflow.update
    def resume(self, action: RunAction) -> RunState:
        self.state.status = "proposed"
        self.state.paused_by = None
        self._log(f"resumed by {action.actor}")
        self._describe()
        return self.state

    @resume.validator
    def _may_resume(self, action: RunAction) -> None:
        self._refuse_unless("resume", action)

    @workflow.update
    def pull(self, action: RunAction) -> RunState:
        for group in self.state.groups:
            for bill in group.bills:
                if bill.workflow_id == action.bill_id:
                    bill.excluded = f"pulled out by {action.actor}" + (
                        f": {action.reason}" if action.reason else ""
                    )
        self._pulled.append(action.bill_id or "")
        self._log(f"{action.bill_id} pulled out by {action.actor}")
        self._describe()
        return self.state

    @pull.validator
    def _may_pull(self, action: RunAction) -> None:
        self._refuse_unless("pull", action)
        listed = {b.workflow_id for g in self.state.groups for b in g.payable}
        if action.bill_id not in listed:
            raise ApplicationError(f"{action.bill_id} is not in this run", type="RunRefused")

    @workflow.signal
    def cancel(self, action: RunAction) -> None:
        if self.state.status in ("gathering", "proposed", "paused"):
            self._cancelled = action

    @workflow.signal
    def retry(self, action: RunAction) -> None:
        if self.state.status == "needs_attention":
            self._retry = True
            self._log(f"retry by {action.actor}")

    # -- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RunInput) -> RunState:
        self._pulled: list[str] = []
        queue = erp_task_queue(workflow.info().task_queue)
        gathered: Gathered = await workflow.execute_activity(
            contract.gather_run_bills,
            GatherRequest(
                run_id=self.state.run_id,
                connection_id=input.connection_id,
                up_to=self.state.run_date + timedelta(days=input.horizon_days),
                today=self.state.run_date,
            ),
            summary="gather bills for the run",
            **LOCAL,
        )
        self.state.payers = input.payers or gathered.payers
        self.state.groups = _grouped(gathered.bills)
        if not self.state.groups:
            self.state.status = "empty"
            self._log("no approved bills are due within the run's horizon")
            await self._record()
            return self.state
        await self._tell_bills("joined")
        self.state.status = "proposed"
        self._describe()
        await self._record(WebhookEventType.payment_run_proposed)
        await workflow.wait_condition(
            lambda: (
                (self._released and self.state.status != "paused") or self._cancelled is not None
            )
        )
        if self._cancelled is not None and not self._released:
            self.state.status = "cancelled"
            self._log(f"cancelled by {self._cancelled.actor}")
            await self._tell_bills("left", reason=f"run cancelled by {self._cancelled.actor}")
            await self._record()
            return self.state
        if self._pulled:
            await self._tell_bills(
                "left", only=set(self._pulled), reason="pulled out of the run before release"
            )
        self.state.status = "paying"
        self.state.waiting_for = "the bank to settle the run's payments"
        await self._record(WebhookEventType.payment_run_released)
        for group in self.state.groups:
            await self._pay_group(group, queue)
        problems = [g for g in self.state.groups if g.problem]
        self.state.status = "needs_attention" if problems else "paid"
        self.state.waiting_for = None
        await self._record(WebhookEventType.payment_run_paid)
        return self.state

    async def _record(self, event: WebhookEventType | None = None) -> None:
        """The run's state for the store's listing, and its webhook when it has news."""
        self.state.revision += 1
        await workflow.execute_activity(
            contract.record_payment_run,
            RunRecord(state=self.state, event=event),
            summary=f"record {self.state.status}" + (f", announce {event.value}" if event else ""),
            **LOCAL,
        )

    async def _pay_group(self, group: VendorGroup, queue: str) -> None:
        """Re-check, pay the net in one bank payment, write one ERP payment, tell the bills."""
        checked: list[RunBill] = await workflow.execute_activity(
            contract.recheck_run_bills,
            RecheckRequest(
                run_id=self.state.run_id,
                connection_id=self.state.connection_id,
                vendor_id=group.vendor_id,
                bills=group.payable,
                today=workflow.now().date(),
            ),
            task_queue=queue,
            summary=f"check {group.vendor_name}'s bills before paying",
            **ERP,
        )
        by_id = {b.workflow_id: b for b in checked}
        dropped = []
        for index, bill in enumerate(group.bills):
            if bill.workflow_id in by_id:
                group.bills[index] = by_id[bill.workflow_id]
                if group.bills[index].excluded:
                    dropped.append(group.bills[index])
        for bill in dropped:
            self._log(f"{bill.workflow_id} left out at payment: {bill.excluded}")
        if dropped:
            await self._tell_bills(
                "left",
                only={b.workflow_id for b in dropped},
                reason="; ".join(b.excluded or "" for b in dropped),
            )
        if not group.payable or group.cash <= 0:
            return
        # One key for the group's payment whatever happens next: a retry after a failed step
        # finds the payment (or the ERP write) made before instead of making another.
        group.attempt = 1
        payment: RailPayment | None = None
        while True:
            try:
                if payment is None:
                    payment = await self._initiate(group)
                if payment.status == RailPaymentStatus.pending:
                    payment = await self._settle(group, payment)
                if payment.status != RailPaymentStatus.settled:
                    raise _GroupFailed(
                        f"bank payment {payment.id} {payment.status.value}: "
                        f"{payment.return_code or payment.failure_reason or ''}"
                    )
                await self._write_back(group, payment, queue)
                break
            except (_GroupFailed, ActivityError) as err:
                if isinstance(err, ActivityError) and failure_type(err) == "Rejected":
                    group.write_rejections += 1  # nothing was written: the next try needs a key
                group.problem = (
                    describe_failure(err) if isinstance(err, ActivityError) else str(err)
                )
                self._log(f"{group.vendor_name}: {group.problem}")
                self.state.status = "needs_attention"
                self.state.waiting_for = (
                    f"an operator to retry {group.vendor_name}'s payment: {group.problem}"
                )
                if isinstance(err, ActivityError) and failure_type(err) == PAYEE_NOT_VERIFIED:
                    await self._tell_bills(
                        "left", only={b.workflow_id for b in group.payable}, reason=group.problem
                    )
                    return
                if isinstance(err, _GroupFailed):
                    # Nothing was written to the ERP; the bills go back to wait for a run.
                    await self._tell_bills(
                        "left", only={b.workflow_id for b in group.payable}, reason=group.problem
                    )
                    return
                self._retry = False
                await workflow.wait_condition(lambda: self._retry)
                group.problem = None
                self.state.status = "paying"
        await self._tell_bills(
            "paid",
            only={b.workflow_id for b in group.payable},
            group=group,
        )

    async def _initiate(self, group: VendorGroup) -> RailPayment:
        numbers = ", ".join(b.document_number for b in group.payable)
        payment: RailPayment = await workflow.execute_activity(
            contract.initiate_payment,
            PaymentRequest(
                idempotency_key=f"{self.state.run_id}/{group.vendor_id}/pay/{group.attempt}",
                rail=None,
                amount=group.cash,
                currency=group.currency,
                payee_name=group.vendor_name,
                execution_date=workflow.now().date(),
                reference=numbers[:140],
                workflow_id=self.state.run_id,
                connection_id=self.state.connection_id,
                vendor_id=group.vendor_id,
                document_fingerprint=None,
                expected_payee_version=None,
                run_bill_ids=[b.workflow_id for b in group.payable],
            ),
            summary=f"pay {group.vendor_name} {format_money(group.cash, group.currency)}",
            **ERP,
        )
        group.rail_payment_id, group.rail_status = payment.id, payment.status.value
        self._log(
            f"paid {group.vendor_name} {format_money(group.cash, group.currency)}: {payment.id}"
        )
        return payment

    async def _settle(self, group: VendorGroup, payment: RailPayment) -> RailPayment:
        delay = SETTLEMENT_POLL
        while payment.status == RailPaymentStatus.pending:
            await workflow.sleep(delay, summary="settlement poll")
            delay = min(delay * 2, SETTLEMENT_POLL_MAX)
            payment = await workflow.execute_activity(
                contract.get_payment_status,
                PaymentStatusRequest(payment_id=payment.id),
                summary=f"read payment {payment.id} from the bank",
                **ERP,
            )
            group.rail_status = payment.status.value
        return payment

    async def _write_back(self, group: VendorGroup, payment: RailPayment, queue: str) -> None:
        reference = f"{self.state.run_id}/{group.vendor_id}/bill-payment/{group.attempt}"
        lines = [
            BillPaymentLine(
                bill_id=b.erp_bill_id, amount=b.amount_due - b.discount, discount=b.discount
            )
            for b in group.payable
        ]
        written: BillPayment = await workflow.execute_activity(
            contract.post_bill_payment,
            PostPaymentRequest(
                connection_id=self.state.connection_id,
                reference=reference,
                idempotency_key=fresh_key(reference, group.write_rejections),
                vendor_id=group.vendor_id,
                bill_id=group.payable[0].erp_bill_id,
                amount=group.cash,
                currency=group.currency,
                payment_date=(payment.settled_at or workflow.now()).date(),
                memo=f"remit payment run {self.state.run_id}, bank payment {payment.id}",
                lines=lines,
            ),
            task_queue=queue,
            summary=f"record {group.vendor_name}'s payment",
            **ERP,
        )
        group.erp_payment_id = written.id

    async def _tell_bills(
        self,
        kind: Literal["joined", "left", "paid"],
        *,
        only: set[str] | None = None,
        reason: str | None = None,
        group: VendorGroup | None = None,
    ) -> None:
        for candidate in self.state.groups:
            if group is not None and candidate is not group:
                continue
            for bill in candidate.bills:
                if only is not None and bill.workflow_id not in only:
                    continue
                if kind == "joined" and bill.excluded:
                    continue
                notice = RunNotice(
                    run_id=self.state.run_id,
                    kind=kind,
                    reason=reason,
                    rail_payment_id=candidate.rail_payment_id if kind == "paid" else None,
                    erp_payment_id=candidate.erp_payment_id if kind == "paid" else None,
                    amount=(bill.amount_due - bill.discount) if kind == "paid" else None,
                    discount=bill.discount if kind == "paid" else Decimal(0),
                )
                handle = workflow.get_external_workflow_handle(bill.workflow_id)
                try:
                    await handle.signal("run_update", notice)
                except Exception as err:  # the bill finished meanwhile (cancelled, say)
                    self._log(f"{bill.workflow_id} could not be told ({kind}): {err}")

    def _describe(self) -> None:
        totals = ", ".join(format_money(a, c) for c, a in self.state.totals().items())
        count = sum(len(g.payable) for g in self.state.groups)
        if self.state.status == "paused":
            self.state.waiting_for = f"paused by {self.state.paused_by}: resume, then release"
        elif self.state.status == "proposed":
            self.state.waiting_for = (
                f"release by a payer ({', '.join(self.state.payers)}): {count} bill(s), "
                f"{len([g for g in self.state.groups if g.payable])} payment(s), {totals}"
            )
        workflow.set_current_details(f"**{self.state.status}**\n\n{self.state.waiting_for or ''}")

    def _log(self, line: str) -> None:
        self.state.log.append(f"{workflow.now():%Y-%m-%d %H:%M} {line}")


class _GroupFailed(Exception):
    pass


def _grouped(bills: list[RunBill]) -> list[VendorGroup]:
    groups: dict[tuple[str, str], VendorGroup] = {}
    for bill in bills:
        key = (bill.vendor_id, bill.currency)
        if key not in groups:
            groups[key] = VendorGroup(
                vendor_id=bill.vendor_id,
                vendor_name=bill.vendor_name,
                currency=bill.currency,
                bills=[],
                payee_masked=bill.payee_masked,
            )
        groups[key].bills.append(bill)
    return sorted(groups.values(), key=lambda g: (g.vendor_name, g.currency))
