"""BillWorkflow: one bill's whole life, capture → match → approve → pay → write back → reconcile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from accounting import (
        Bill,
        BillDraft,
        BillLine,
        BillPayment,
        ExchangeRate,
        PaymentTerms,
        Vendor,
        format_money,
        quantize,
    )
    from accounting.documents import VENDOR_NAME_DOUBT
    from connectors.base import RailPayment, RailPaymentStatus
    from workflows import contract, search
    from workflows.approval import eligible_approvers, refusal
    from workflows.models import (
        FINAL_STATUSES,
        AppliedCredit,
        ApplyCreditsRequest,
        ApprovalPlan,
        AttachRequest,
        AuditEntry,
        BillInput,
        BillState,
        CheckPayeeRequest,
        CreateVendorRequest,
        DecisionInput,
        DecisionRecord,
        ErpBillChanged,
        FxLock,
        Installment,
        LifecycleStatus,
        LockRateRequest,
        MatchRequest,
        MatchResult,
        Notice,
        OperatorAction,
        PayeeNotice,
        PayeeView,
        PaymentEvent,
        PaymentInstructionInput,
        PaymentPreparation,
        PaymentRequest,
        PaymentState,
        PaymentStatusRequest,
        PlanRequest,
        PostBillRequest,
        PostPaymentRequest,
        PreparePaymentRequest,
        ReadBillRequest,
        ReconcileRequest,
        ReconcileResult,
        RecordRequest,
        RunNotice,
        Step,
        VoidPaymentRequest,
        amount_for_search,
        bill_summary,
        erp_task_queue,
        fresh_key,
    )

A = TypeVar("A")
R = TypeVar("R")
OperatorKind = Literal["retry", "resolve", "cancel"]

MONEY = "money-2026-12"
"""The patch that brought the payee master, verified settlement, returns after settlement,
several payments per bill, credits, locked exchange rates and payment runs. Bills started
before it replay and finish on the code paths they started on (`_life_before_money`)."""

CAPTURE_REVIEW = "capture-review-2026-12"
"""The patch that holds a bill whose draft carries capture's review reasons (fields OCR read
with low confidence, a header-only e-invoice, a self-billed invoice) in needs_review before
anything is posted, and takes a person's corrected draft with `resolve`. Only drafts with
reasons ask for it, and no draft had reasons before it, so older histories are unchanged."""

OCR_NAMES = "ocr-names-2026-12"
"""The patch that lets a vendor found by its tax id settle capture's doubt about the name OCR
read (asked only by drafts with such a doubt, which no bill had before it)."""

ERP_CHANGES = "erp-changes-2026-12"
"""The patch that makes a bill act on `erp_bill_changed` (the sync saw its ERP bill change):
it re-reads the bill and stops, adjusts or holds. Bills that never get the signal never reach
the patch (it is asked where the first change is handled), so their histories are unchanged."""

PAYEE_NOT_VERIFIED = "PayeeNotVerified"
# How often a bill held for its payee looks again by itself, in case a release notice was lost.
PAYEE_RECHECK = timedelta(hours=12)

# Errors a retry cannot fix: the bill waits for a person instead of hammering the ERP.
NON_RETRYABLE = ["Rejected", "NotFound", "ConnectionRevoked", "InvalidRequest"]

ERP_OPTIONS: dict[str, Any] = {
    # start_to_close_timeout comes from BillInput.attempt_timeout (see `_erp_options`).
    # After a day of transient failures a person should look; the bill waits, it does not fail.
    "schedule_to_close_timeout": timedelta(days=1),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=5),
        non_retryable_error_types=NON_RETRYABLE,
    ),
}
LOCAL_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}


class _Stop(Exception):
    """Ends the bill's run with a final status."""

    def __init__(self, status: LifecycleStatus, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


def describe_failure(err: BaseException) -> str:
    """The most specific message in an activity failure chain, in words."""
    cause: BaseException | None = err
    message = str(err)
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        if isinstance(cause, ActivityTimeoutError):
            kind = cause.type.name.lower() if cause.type else "activity"
            return f"gave up after retrying for too long ({kind} timeout)"
        message = str(cause) or message
        cause = cause.__cause__
    return message


def _draft_changes(before: BillDraft, after: BillDraft) -> list[str]:
    """What a person changed, field by field, as text for the audit trail (no bank numbers)."""
    changes: list[str] = []
    for name in ("document_number", "issue_date", "due_date", "currency", "tax_amount", "total"):
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.append(f"{name.replace('_', ' ')} {old} → {new}")
    for name in ("name", "tax_id"):
        old, new = getattr(before.vendor, name), getattr(after.vendor, name)
        if old != new:
            changes.append(f"vendor {name.replace('_', ' ')} {old} → {new}")
    if before.vendor.bank_account != after.vendor.bank_account:
        changes.append("vendor bank details changed (checked against the payee master)")
    old_lines = [(ln.description, ln.amount, ln.account) for ln in before.lines]
    new_lines = [(ln.description, ln.amount, ln.account) for ln in after.lines]
    if old_lines != new_lines:
        changes.append(
            f"lines: {len(old_lines)} totalling {sum(a for _, a, _ in old_lines)} → "
            f"{len(new_lines)} totalling {sum(a for _, a, _ in new_lines)}"
        )
    return changes


def _discount_date(issued: date, terms: PaymentTerms | None, today: date) -> date | None:
    """The last day the terms' early-payment discount can be taken, if it is still ahead."""
    if terms is None or not terms.discount_percent:
        return None
    deadline = issued + timedelta(days=terms.discount_days)
    return deadline if deadline >= today else None


def failure_type(err: BaseException) -> str | None:
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type
        cause = cause.__cause__
    return None


@workflow.defn
class BillWorkflow:
    @workflow.init
    def __init__(self, input: BillInput) -> None:
        self.input = input
        if input.resume is not None:
            # A follow-up run of a finished bill: it carries on from the state it ended in.
            self.state = input.resume.model_copy(deep=True)
        else:
            draft = input.draft
            assert draft is not None, "a bill starts from a draft (or resumes from a state)"
            terms = input.terms
            self.state = BillState(
                # The id it runs under: new bills name their document (bill_workflow_id),
                # older ones keep `bill/<connection>/<key>`; commands are the same for both.
                workflow_id=workflow.info().workflow_id,
                connection_id=input.connection_id,
                platform=input.platform,
                bill_key=input.bill_key,
                submitted_by=input.submitted_by,
                document_number=draft.document_number,
                vendor_name=draft.vendor.name,
                currency=draft.currency,
                total=draft.total,
                amount_due=input.amount_due if input.amount_due is not None else draft.total,
                issue_date=draft.issue_date,
                due_date=draft.due_date,
                pay_on=input.pay_on
                or _discount_date(draft.issue_date, terms, workflow.now().date())
                or draft.due_date,
                memo=draft.memo,
                document=draft.source,
                erp_bill_id=input.erp_bill_id,
                installments=list(input.installments),
                terms=terms,
            )
        self._events: list[AuditEntry] = []
        self._seq = 0
        self._operator: tuple[OperatorKind, OperatorAction] | None = None
        self._holding = False
        # Set while the bill waits for its connection to be relinked (ConnectionRevoked).
        self._paused_for_relink = False
        self._cancel: OperatorAction | None = None
        self._awaiting_decision = False
        self._seen_requests: set[str] = set()
        self._rail_updates: dict[str, RailPayment] = {}
        self._search: dict[str, Any] = {}
        self._v2 = False
        self._payee_notices: list[PayeeNotice] = []
        self._erp_changes: list[ErpBillChanged] = []
        self._run_notices: list[RunNotice] = []
        self._pending_notices: list[Notice] = []
        # A person chose to pay the vendor's verified details over the document's.
        self._prefer_verified = False

    # ------------------------------------------------------------------------------------------
    # Messages
    # ------------------------------------------------------------------------------------------

    @workflow.query
    def state_query(self) -> BillState:
        return self.state

    @workflow.update
    async def decide(self, decision: DecisionInput) -> DecisionRecord:
        record = self._apply_decision(decision, via="update")
        if isinstance(record, str):
            # The state moved between validation and execution (e.g. a concurrent decision).
            raise ApplicationError(record, type="DecisionRefused")
        return record

    @decide.validator
    def _validate_decision(self, decision: DecisionInput) -> None:
        reason = self._refusal(decision.actor)
        if reason:
            raise ApplicationError(reason, type="DecisionRefused")

    @workflow.signal(name="decision")
    def decision_signal(self, decision: DecisionInput) -> None:
        """The same decision as the update, for operators sending it from the Temporal UI."""
        if decision.request_id:
            if decision.request_id in self._seen_requests:
                return
            self._seen_requests.add(decision.request_id)
        outcome = self._apply_decision(decision, via="signal")
        if isinstance(outcome, str):
            self._audit(
                "decision_refused",
                f"signal from {decision.actor} refused: {outcome}",
                actor=decision.actor,
            )

    @workflow.signal
    def retry(self, action: OperatorAction) -> None:
        self._operator_signal("retry", action)

    @workflow.signal
    def resolve(self, action: OperatorAction) -> None:
        self._operator_signal("resolve", action)

    @workflow.signal
    def cancel(self, action: OperatorAction) -> None:
        if self.state.status in (
            LifecycleStatus.paying,
            LifecycleStatus.paid,
            LifecycleStatus.writing_back,
            LifecycleStatus.reconciling,
        ):
            self._audit(
                "operator_refused",
                f"cancel from {action.actor} refused: the payment is already under way",
                actor=action.actor,
            )
            return
        self._cancel = action
        self._operator_signal("cancel", action)

    @workflow.signal
    def connection_relinked(self, action: OperatorAction) -> None:
        """A relinked connection resumes bills paused on it, as a retry would."""
        if self._holding and self._paused_for_relink:
            self._operator = ("retry", action)

    @workflow.signal
    def payment_update(self, event: PaymentEvent) -> None:
        """The bank's notification (webhook → API → signal); polling covers a lost one.

        Bills started on the money patch take it as a hint only: they re-read the payment from
        the rail and act on the rail's answer (see `_verified`).
        """
        self._rail_updates[event.payment.id] = event.payment

    @workflow.signal
    def run_update(self, notice: RunNotice) -> None:
        """A payment run took this bill, let it go, or paid it (checked before believed)."""
        self._run_notices.append(notice)

    @workflow.signal
    def payee_changed(self, notice: PayeeNotice) -> None:
        """The payee master changed for this bill's vendor: a bill held for its payee looks
        again (the notice is only a nudge; the check reads the master itself)."""
        self._payee_notices.append(notice)

    @workflow.signal
    def erp_bill_changed(self, notice: ErpBillChanged) -> None:
        """The sync saw this bill change in the ERP (voided, deleted, paid or edited there):
        the bill re-reads it at its next step, or at once where it waits (approval, pay date,
        an instruction). The notice only says that; the re-read decides."""
        self._erp_changes.append(notice)
        self._audit(
            "erp_change",
            f"the ERP's bill {notice.erp_bill_id} changed"
            + (" (deleted)" if notice.deleted else f" (status {notice.status or 'unknown'})"),
            actor="sync",
        )

    @workflow.update
    async def schedule_payment(self, instruction: PaymentInstructionInput) -> BillState:
        """Pay (part of) the bill: an installment of `amount` (default: all still due)."""
        if instruction.request_id and instruction.request_id in self._seen_requests:
            return self.state
        if instruction.request_id:
            self._seen_requests.add(instruction.request_id)
        self.state.installments.append(
            Installment(
                pay_on=instruction.pay_on,
                amount=instruction.amount,
                instructed_by=instruction.actor,
            )
        )
        amount = self._money(instruction.amount) if instruction.amount else "all still due"
        self._audit(
            "payment_instruction",
            f"{instruction.actor} instructed a payment of {amount}"
            + (f" on {instruction.pay_on}" if instruction.pay_on else ""),
            actor=instruction.actor,
        )
        return self.state

    @schedule_payment.validator
    def _validate_schedule(self, instruction: PaymentInstructionInput) -> None:
        if not self._v2:
            raise ApplicationError(
                "this bill was started before payments in parts; it pays in one payment",
                type="InstructionRefused",
            )
        if self.state.status in FINAL_STATUSES:
            raise ApplicationError(
                f"the bill is {self.state.status.value}: it takes no more payments",
                type="InstructionRefused",
            )
        if instruction.request_id and instruction.request_id in self._seen_requests:
            return
        if instruction.actor == self.state.submitted_by:
            raise ApplicationError(
                f"{instruction.actor} submitted this bill and cannot instruct its payment "
                "(separation of duties)",
                type="InstructionRefused",
            )
        payers = self.state.plan.payers if self.state.plan else []
        if instruction.actor not in payers:
            raise ApplicationError(
                f"{instruction.actor} is not a payer: payments are instructed by "
                f"{', '.join(payers) or 'the payers group, once the bill has an approval plan'}",
                type="InstructionRefused",
            )
        planned = sum(
            (i.amount or Decimal(0) for i in self.state.installments if not i.done), Decimal(0)
        )
        open_ended = any(i.amount is None and not i.done for i in self.state.installments)
        if open_ended:
            raise ApplicationError(
                "a payment of everything still due is already scheduled", type="InstructionRefused"
            )
        left = self.state.amount_due - planned
        if instruction.amount is not None and instruction.amount > left:
            raise ApplicationError(
                f"{self._money(instruction.amount)} is more than the "
                f"{self._money(left)} not yet scheduled",
                type="InstructionRefused",
            )

    # ------------------------------------------------------------------------------------------
    # The run
    # ------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: BillInput) -> BillState:
        self._v2 = workflow.patched(MONEY)
        if not self._v2:
            await self._live(self._life_before_money)
            return self.state
        await self._live(self._follow_up if input.resume is not None else self._life)
        # A bank notice that raced the end: handle it here rather than lose it.
        while self._returns_to_handle():
            await self._live(self._paid_again)
        return self.state

    async def _live(self, life: Callable[[], Awaitable[None]]) -> None:
        """Run (part of) the bill's life to a final status, then record it."""
        try:
            await life()
        except _Stop as stop:
            self.state.status = stop.status
            self.state.waiting_for = None
            self._audit("status", f"{stop.status.value}: {stop.why}")
        self.state.step = Step.done
        self.state.pending_approvers = []
        await self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _life(self) -> None:
        await self._publish()
        await self._match()
        await self._approve()
        await self._post_bill()
        await self._pay_in_full()

    async def _life_before_money(self) -> None:
        """The life of a bill started before the money patch, exactly as it was."""
        await self._publish()
        await self._match()
        await self._approve()
        await self._post_bill()
        await self._pay()
        await self._write_back()
        await self._reconcile()

    async def _paid_again(self) -> None:
        await self._handle_returns()
        await self._pay_in_full()

    # ---- match -------------------------------------------------------------------------------

    async def _match(self) -> None:
        assert self.input.draft is not None
        chosen_vendor: str | None = None
        chosen_account: str | None = None
        duplicates_accepted = False
        capture_doubts = bool(self.input.draft.review_reasons) and workflow.patched(CAPTURE_REVIEW)
        while True:
            self._set(LifecycleStatus.matching, Step.match, "matching vendor and coding lines")
            await self._publish()
            result: MatchResult = await self._call(
                contract.match_bill,
                MatchRequest(
                    workflow_id=self.state.workflow_id,
                    connection_id=self.input.connection_id,
                    draft=self.input.draft,
                    vendor_id=chosen_vendor,
                    account=chosen_account,
                    submitted_by=self.state.submitted_by if self._v2 else None,
                    erp_bill_id=self.input.erp_bill_id,
                ),
                summary=f"match {self.state.document_number}",
            )
            if result.erp_bill is not None:
                self._take_erp_bill(result.erp_bill)
            reasons = list(result.problems)
            if capture_doubts:
                doubts = list(self.input.draft.review_reasons)
                named = [d for d in doubts if d.startswith(VENDOR_NAME_DOUBT)]
                if named and result.vendor_match == "tax id" and workflow.patched(OCR_NAMES):
                    # The vendor master knows the vendor by its tax id: its name stands.
                    doubts = [d for d in doubts if d not in named]
                reasons[:0] = doubts
            # Matching may already list the candidates (scored, by name): say it once.
            listed = all(
                any(f"(id {v.id}" in p for p in result.problems) for v in result.vendor_candidates
            )
            if len(result.vendor_candidates) > 1 and not listed:
                names = ", ".join(f"{v.name} (id {v.id})" for v in result.vendor_candidates)
                reasons.insert(0, f"vendor is ambiguous: {names}; resolve with the vendor id")
            if not duplicates_accepted:
                reasons.extend(f"likely duplicate: {d}" for d in result.duplicates)
            if not reasons:
                break
            self.state.review_reasons = reasons
            kind, action = await self._hold(LifecycleStatus.needs_review, "; ".join(reasons))
            if kind == "resolve":
                if action.vendor_id:
                    chosen_vendor = action.vendor_id
                if action.account:
                    chosen_account = action.account
                duplicates_accepted = True
                if capture_doubts:
                    # A person looked at what capture read: as read, or as they corrected it.
                    if action.draft is not None:
                        self._correct_draft(action.draft, action.actor)
                    else:
                        self._audit(
                            "corrected", "confirmed as read, nothing changed", actor=action.actor
                        )
                    capture_doubts = False
        self.state.review_reasons = []
        if result.erp_bill is not None:
            self._audit(
                "erp_bill",
                f"entered in the ERP as bill {result.erp_bill.id}: remit pays it, nothing to post",
            )
        if result.vendor is not None:
            self.state.vendor_id = result.vendor.id
            self.state.vendor_name = result.vendor.name
        self.state.lines = result.lines
        if self._v2:
            self.state.home_currency = result.home_currency
            if result.payee is not None:
                self._show_payee(result.payee)
        self._audit("match", self._match_summary(result))

    def _correct_draft(self, corrected: BillDraft, actor: str) -> None:
        """Take a person's corrections to what capture read, each one in the audit trail."""
        before = self.input.draft
        assert before is not None
        changes = _draft_changes(before, corrected)
        corrected = corrected.model_copy(update={"source": before.source, "review_reasons": []})
        self.input.draft = corrected
        self.state.document_number = corrected.document_number
        self.state.vendor_name = corrected.vendor.name
        self.state.currency = corrected.currency
        self.state.total = corrected.total
        self.state.amount_due = corrected.total
        self.state.issue_date = corrected.issue_date
        self.state.due_date = corrected.due_date
        self.state.memo = corrected.memo
        if self.input.pay_on is None:
            self.state.pay_on = (
                _discount_date(corrected.issue_date, self.input.terms, workflow.now().date())
                or corrected.due_date
            )
        self._audit(
            "corrected",
            "; ".join(changes) if changes else "confirmed as read, nothing changed",
            actor=actor,
        )

    def _take_erp_bill(self, bill: Bill) -> None:
        """A bill that was already in the ERP, as re-read there: stop if it is void or paid,
        else pay what the ERP says is due."""
        if bill.status == "void":
            raise _Stop(LifecycleStatus.voided_elsewhere, "the bill is void in the ERP")
        due = bill.balance if bill.balance is not None else bill.total
        if bill.status == "paid" or due <= 0:
            self.state.amount_due = Decimal("0")
            raise _Stop(LifecycleStatus.paid_elsewhere, "the bill is already paid in the ERP")
        if due != self.state.amount_due:
            self._audit(
                "balance",
                f"the ERP shows {self._money(due)} due of {self._money(bill.total)}",
            )
        self.state.amount_due = due
        self.state.total = bill.total

    @staticmethod
    def _match_summary(result: MatchResult) -> str:
        vendor = (
            f"vendor {result.vendor.name} ({result.vendor.id})"
            if result.vendor
            else "new vendor (created when the bill is posted)"
        )
        return f"{vendor}; {len(result.lines)} line(s) coded"

    # ---- approve -----------------------------------------------------------------------------

    async def _approve(self) -> None:
        draft = self.input.draft
        departments = sorted(
            {ln.department for ln in draft.lines if ln.department} if draft else ()
        )
        plan: ApprovalPlan = await self._call(
            contract.plan_approval,
            PlanRequest(
                amount=self.state.total,
                currency=self.state.currency,
                vendor_is_new=self.state.vendor_id is None,
                departments=departments,
                connection_id=self.state.connection_id if self._v2 else None,
            ),
            summary="approval plan",
            options=LOCAL_OPTIONS,
        )
        self.state.plan = plan
        self._audit("approval_plan", plan.reason, policy_version=plan.policy_version)
        if plan.auto_approved:
            self._audit(
                "decision",
                f"approved automatically: {plan.reason}",
                actor="policy",
                result="approve",
                policy_version=plan.policy_version,
            )
            self._set(LifecycleStatus.approved, Step.approve, None)
            await self._lock_rate()
            return
        for index in range(len(plan.levels)):
            await self._await_level(plan, index)
            decision = next(d for d in self.state.decisions if d.level == index)
            if decision.outcome == "reject":
                await self._notify(
                    "rejected",
                    [self.state.submitted_by],
                    f"rejected by {decision.actor}: {decision.comment or ''}",
                )
                raise _Stop(LifecycleStatus.rejected, f"rejected by {decision.actor}")
        self.state.pending_approvers = []
        self._set(LifecycleStatus.approved, Step.approve, None)
        await self._lock_rate()

    async def _await_level(self, plan: ApprovalPlan, index: int) -> None:
        level = plan.levels[index]
        self.state.level = index
        self.state.escalated = False
        self.state.pending_approvers = eligible_approvers(level, escalated=False)
        started = workflow.now()
        reminded = False
        self._awaiting_decision = True
        self._describe_approval(plan, started)
        await self._publish()
        await self._notify(
            "approval_requested",
            self.state.pending_approvers,
            f"please approve or reject (level {index + 1} of {len(plan.levels)})",
        )

        def done() -> bool:
            return any(d.level == index for d in self.state.decisions)

        while not done():
            if not reminded:
                deadline: datetime | None = started + plan.reminder_after
            elif not self.state.escalated:
                deadline = started + plan.escalate_after
            else:
                deadline = None
            try:
                await workflow.wait_condition(
                    lambda: done() or self._cancel is not None or bool(self._events),
                    timeout=(deadline - workflow.now()) if deadline else None,
                    timeout_summary="approval reminder" if not reminded else "approval escalation",
                )
            except TimeoutError:
                if not reminded:
                    reminded = True
                    self._audit("reminder", f"reminded {', '.join(self.state.pending_approvers)}")
                    await self._notify(
                        "approval_reminder",
                        self.state.pending_approvers,
                        "a bill has waited a day for your decision",
                    )
                else:
                    self.state.escalated = True
                    self.state.pending_approvers = eligible_approvers(level, escalated=True)
                    self._audit("escalation", f"escalated to {level.escalation_group}")
                    self._describe_approval(plan, started)
                    await self._notify(
                        "approval_escalated",
                        level.escalation_members,
                        f"escalated after {plan.escalate_after}: decision overdue",
                    )
                    await self._publish()
                continue
            if self._cancel is not None and not done():
                self._awaiting_decision = False
                raise _Stop(LifecycleStatus.cancelled, f"cancelled by {self._cancel.actor}")
            if self._erp_changes and not done():
                try:
                    await self._follow_erp_changes()
                except _Stop:
                    self._awaiting_decision = False
                    raise
            await self._publish()  # flush audit entries from handlers (e.g. refused signals)
        self._awaiting_decision = False

    def _describe_approval(self, plan: ApprovalPlan, started: datetime) -> None:
        level = plan.levels[self.state.level]
        who = ", ".join(self.state.pending_approvers)
        group = level.group + (f" or {level.escalation_group}" if self.state.escalated else "")
        when = (
            "escalated"
            if self.state.escalated
            else f"escalates to {level.escalation_group or 'nobody'} at "
            f"{(started + plan.escalate_after):%Y-%m-%d %H:%M} UTC"
        )
        self._set(
            LifecycleStatus.awaiting_approval,
            Step.approve,
            f"approval by {group} (level {self.state.level + 1} of {len(plan.levels)}): "
            f"{who}; {when}",
        )

    def _refusal(self, actor: str) -> str | None:
        return refusal(
            plan=self.state.plan,
            waiting=self._awaiting_decision,
            level=self.state.level,
            escalated=self.state.escalated,
            decisions=self.state.decisions,
            submitted_by=self.state.submitted_by,
            actor=actor,
        )

    def _apply_decision(
        self, decision: DecisionInput, *, via: Literal["update", "signal"]
    ) -> DecisionRecord | str:
        reason = self._refusal(decision.actor)
        if reason:
            return reason
        if decision.outcome == "reject" and not (decision.comment or "").strip():
            return "a rejection needs a reason in the comment"
        assert self.state.plan is not None
        record = DecisionRecord(
            actor=decision.actor,
            outcome=decision.outcome,
            comment=decision.comment,
            level=self.state.level,
            group=self.state.plan.levels[self.state.level].group,
            at=workflow.now(),
            policy_version=self.state.plan.policy_version,
            via=via,
        )
        self.state.decisions.append(record)
        self._audit(
            "decision",
            f"{decision.outcome} by {decision.actor} at level "
            f"{record.level + 1} ({record.group})"
            + (f": {decision.comment}" if decision.comment else ""),
            actor=decision.actor,
            result=decision.outcome,
            policy_version=record.policy_version,
        )
        return record

    # ---- post the bill -----------------------------------------------------------------------

    async def _post_bill(self) -> None:
        wid = self.state.workflow_id
        draft = self.input.draft
        assert draft is not None
        self._set(LifecycleStatus.posting, Step.post_bill, "writing the bill to the ERP")
        await self._publish()
        if self.state.vendor_id is None:
            vendor: Vendor = await self._call(
                contract.create_vendor,
                lambda rejections: CreateVendorRequest(
                    connection_id=self.input.connection_id,
                    reference=f"{wid}/vendor",
                    idempotency_key=fresh_key(f"{wid}/vendor", rejections),
                    vendor=Vendor(
                        name=draft.vendor.name,
                        tax_id=draft.vendor.tax_id,
                        email=draft.vendor.email,
                        currency=draft.currency,
                    ),
                ),
                summary=f"create vendor {draft.vendor.name}",
            )
            self.state.vendor_id = vendor.id
            self.state.vendor_created = True
            self._audit(
                "erp_write", f"created vendor {vendor.name}", key=f"{wid}/vendor", result=vendor.id
            )
        assert self.state.vendor_id is not None
        if self.state.erp_bill_id is None:
            bill_to_post = Bill(
                vendor_id=self.state.vendor_id,
                vendor_name=self.state.vendor_name,
                document_number=draft.document_number,
                issue_date=draft.issue_date,
                due_date=draft.due_date,
                currency=draft.currency,
                lines=[
                    BillLine(
                        description=line.description,
                        amount=line.amount,
                        quantity=line.quantity,
                        unit_amount=line.unit_amount,
                        account_id=line.account_id,
                        tracking=line.tracking,
                        # The code matching found for the line's VAT category and rate (None
                        # for bills without a breakdown; an activity input, not a command).
                        tax_code_id=line.tax_code_id,
                    )
                    for line in self.state.lines
                ],
                tax_amount=draft.tax_amount,
                total=draft.total,
                memo=draft.memo,
                exchange_rate=self.state.fx.rate.rate if self.state.fx else None,
                terms=self.state.terms,
            )
            if self.state.fx is not None:
                self.state.fx.booked = self.state.fx.rate.rate
            bill: Bill = await self._call(
                contract.post_bill,
                lambda rejections: PostBillRequest(
                    connection_id=self.input.connection_id,
                    reference=f"{wid}/bill",
                    idempotency_key=fresh_key(f"{wid}/bill", rejections),
                    bill=bill_to_post,
                ),
                summary=f"post bill {draft.document_number}",
            )
            self.state.erp_bill_id = bill.id
            self._audit(
                "erp_write",
                f"posted bill {draft.document_number}",
                key=f"{wid}/bill",
                result=bill.id,
            )
            if draft.source is not None:
                attachment = await self._call(
                    contract.attach_document,
                    lambda rejections: AttachRequest(
                        connection_id=self.input.connection_id,
                        bill_id=bill.id or "",
                        document=draft.source,
                        idempotency_key=fresh_key(f"{wid}/attachment", rejections),
                    ),
                    summary=f"attach {draft.source.file_name}",
                    resolvable=True,
                )
                if attachment is not None:
                    self.state.attachment_id = attachment.id
                    self._audit(
                        "erp_write",
                        f"attached {draft.source.file_name}",
                        key=f"{wid}/attachment",
                        result=self.state.attachment_id,
                    )

    # ---- pay ---------------------------------------------------------------------------------

    async def _pay(self) -> None:
        today = workflow.now().date()
        pay_on = self.state.pay_on or today
        if pay_on > today:
            wake = datetime.combine(pay_on, time(0), tzinfo=UTC)
            self._set(LifecycleStatus.scheduled, Step.schedule, f"the pay date {pay_on:%Y-%m-%d}")
            await self._publish()
            try:
                await workflow.wait_condition(
                    lambda: self._cancel is not None,
                    timeout=wake - workflow.now(),
                    timeout_summary=f"pay date {pay_on:%Y-%m-%d}",
                )
            except TimeoutError:
                pass
            if self._cancel is not None:
                raise _Stop(LifecycleStatus.cancelled, f"cancelled by {self._cancel.actor}")
        while True:
            self._set(LifecycleStatus.paying, Step.pay, "re-reading the bill before paying")
            await self._publish()
            amount = await self._amount_still_due()
            payment = await self._initiate(amount)
            final = await self._await_settlement(payment)
            if final.status == RailPaymentStatus.settled:
                self._set(LifecycleStatus.paid, Step.pay, None)
                self.state.amount_due = self.state.amount_due - final.amount
                self._audit(
                    "payment",
                    f"settled {format_money(final.amount, final.currency)}",
                    result=final.id,
                )
                return
            reason = (
                f"payment {final.id} {final.status.value}: "
                f"{final.return_code or ''} {final.return_reason or final.failure_reason or ''}"
            ).strip()
            kind, action = await self._hold(LifecycleStatus.needs_attention, reason)
            if kind == "resolve":
                raise _Stop(
                    LifecycleStatus.resolved,
                    f"{action.actor} took over after the payment was returned",
                )

    async def _follow_erp_changes(self) -> None:
        """Act on what the sync saw change in the ERP. Before remit paid anything: stop when
        the bill is void, deleted or paid there, pay less when its balance fell, ask a person
        when it rose (the approval was for less). After: prove the books again, which holds
        the bill in needs_attention with the difference when they disagree."""
        notices, self._erp_changes = self._erp_changes, []
        if self.state.erp_bill_id is None or not workflow.patched(ERP_CHANGES):
            return  # not in the ERP yet: posting writes what remit holds
        paid = any(p.erp_payment_id and not p.erp_voided for p in self.state.payments)
        if paid or self.state.credits_applied:
            await self._reconcile_payments()
            return
        if notices[-1].deleted:
            raise _Stop(LifecycleStatus.voided_elsewhere, "the bill was deleted in the ERP")
        approved = self.state.amount_due
        due = await self._amount_still_due(edited=True)  # stops when void or paid there
        if due == approved:
            return
        self._audit(
            "balance", f"the ERP now shows {self._money(due)} due (was {self._money(approved)})"
        )
        if due > approved:
            # Approval (and its policy's levels) was for the smaller amount: a person decides.
            _, action = await self._hold(
                LifecycleStatus.needs_review,
                f"the bill was raised in the ERP: {self._money(due)} due instead of the "
                f"{self._money(approved)} it was submitted for; resolve to pay "
                f"{self._money(due)} or cancel",
            )
            self._audit("balance", f"{self._money(due)} accepted", actor=action.actor)

    async def _amount_still_due(self, *, edited: bool = False) -> Decimal:
        """What the ERP says is due now (stops when the bill is void or paid there); `edited`:
        the bill may have been edited in the ERP, so its total is taken too."""
        assert self.state.erp_bill_id is not None
        bill: Bill = await self._call(
            contract.read_bill,
            ReadBillRequest(connection_id=self.input.connection_id, bill_id=self.state.erp_bill_id),
            summary=f"re-read bill {self.state.erp_bill_id}",
        )
        if bill.status == "void":
            raise _Stop(LifecycleStatus.voided_elsewhere, "the bill was voided in the ERP")
        due = bill.balance if bill.balance is not None else bill.total
        if bill.status == "paid" or due <= 0:
            self.state.amount_due = Decimal("0")
            raise _Stop(LifecycleStatus.paid_elsewhere, "the bill was already paid in the ERP")
        self.state.amount_due = due
        if edited and bill.total != self.state.total:
            self._audit(
                "balance",
                f"the bill's total in the ERP is now {self._money(bill.total)} "
                f"(was {self._money(self.state.total)})",
            )
            self.state.total = bill.total
        return due

    async def _initiate(self, amount: Decimal) -> RailPayment:
        self.state.payment.attempt += 1
        base = f"{self.state.workflow_id}/pay/{self.state.payment.attempt}"
        draft = self.input.draft
        assert draft is not None

        def request(rejections: int) -> PaymentRequest:
            self.state.payment.idempotency_key = fresh_key(base, rejections)
            return PaymentRequest(
                idempotency_key=self.state.payment.idempotency_key,
                rail=self.input.rail,
                amount=amount,
                currency=self.state.currency,
                payee_name=self.state.vendor_name,
                payee_account=draft.vendor.bank_account,
                execution_date=workflow.now().date(),
                reference=draft.document_number,
                workflow_id=self.state.workflow_id,
            )

        payment: RailPayment = await self._call(
            contract.initiate_payment,
            request,
            summary=f"pay {self._money(amount)} (attempt {self.state.payment.attempt})",
        )
        self._audit(
            "bank_write",
            f"initiated {payment.rail.value} payment of "
            f"{format_money(payment.amount, payment.currency)}",
            key=self.state.payment.idempotency_key,
            result=payment.id,
        )
        self._track_payment(payment)
        self._set(LifecycleStatus.paying, Step.pay, f"settlement of payment {payment.id}")
        await self._publish()
        return payment

    def _track_payment(self, payment: RailPayment) -> None:
        p = self.state.payment
        p.rail_payment_id = payment.id
        p.rail = payment.rail
        p.status = payment.status.value
        p.amount = payment.amount
        p.return_code = payment.return_code
        p.return_reason = payment.return_reason
        p.settled_at = payment.settled_at

    async def _await_settlement(self, payment: RailPayment) -> RailPayment:
        current = payment
        delay = self.input.settlement_poll
        while current.status == RailPaymentStatus.pending:
            payment_id = current.id
            try:
                await workflow.wait_condition(
                    lambda pid=payment_id: pid in self._rail_updates,  # type: ignore[misc]
                    timeout=delay,
                    timeout_summary="settlement poll",
                )
                current = self._rail_updates.pop(payment_id)
            except TimeoutError:
                current = await self._call(
                    contract.get_payment_status,
                    PaymentStatusRequest(payment_id=current.id),
                    summary=f"poll payment {current.id}",
                )
                delay = min(delay * 2, self.input.settlement_poll_max)
            self._track_payment(current)
        return current

    # ---- write back and reconcile ------------------------------------------------------------

    async def _write_back(self) -> None:
        assert self.state.erp_bill_id and self.state.vendor_id
        p = self.state.payment
        assert p.amount is not None
        self._set(LifecycleStatus.writing_back, Step.write_back, "recording the payment in the ERP")
        await self._publish()
        reference = f"{self.state.workflow_id}/bill-payment/{p.attempt}"
        result = await self._call(
            contract.post_bill_payment,
            lambda rejections: PostPaymentRequest(
                connection_id=self.input.connection_id,
                reference=reference,
                idempotency_key=fresh_key(reference, rejections),
                vendor_id=self.state.vendor_id,
                bill_id=self.state.erp_bill_id,
                amount=p.amount,
                currency=self.state.currency,
                payment_date=(p.settled_at or workflow.now()).date(),
                memo=f"remit payment {p.rail_payment_id}",
            ),
            summary=f"record payment of {self._money(p.amount)}",
        )
        self.state.erp_payment_id = result.id
        self._audit(
            "erp_write",
            "recorded the bill payment",
            key=reference,
            result=self.state.erp_payment_id,
        )

    async def _reconcile(self) -> None:
        assert self.state.erp_bill_id and self.state.erp_payment_id
        p = self.state.payment
        assert p.amount is not None
        while True:
            self._set(LifecycleStatus.reconciling, Step.reconcile, "reading the books back")
            await self._publish()
            result: ReconcileResult = await self._call(
                contract.reconcile_bill,
                ReconcileRequest(
                    connection_id=self.input.connection_id,
                    bill_id=self.state.erp_bill_id,
                    payment_id=self.state.erp_payment_id,
                    bill_total=self.state.total,
                    paid=p.amount,
                ),
                summary="reconcile",
            )
            self.state.reconciliation = result
            if result.ok:
                self._audit("reconcile", "books agree: one payment, balance as expected")
                break
            kind, action = await self._hold(
                LifecycleStatus.needs_attention,
                "the books do not match: " + "; ".join(result.differences),
            )
            if kind == "resolve":
                self._audit(
                    "reconcile",
                    f"accepted by {action.actor} despite: " + "; ".join(result.differences),
                    actor=action.actor,
                )
                break
        self._set(LifecycleStatus.reconciled, Step.done, None)
        await self._notify("reconciled", [self.state.submitted_by], "paid and reconciled")

    # ==========================================================================================
    # The money patch (bills started on it): a verified payee, settlement read from the rail,
    # several payments, credits, locked rates, returns after settlement.
    # ==========================================================================================

    # ---- the payee ---------------------------------------------------------------------------

    def _show_payee(self, view: PayeeView) -> None:
        before = self.state.payee
        self.state.payee = view
        if before is None or (before.status, before.version, before.change_id) != (
            view.status,
            view.version,
            view.change_id,
        ):
            shown = view.masked or view.document_masked or "no bank details"
            self._audit(
                "payee",
                f"payee {view.badge()}: {shown}" + (f"; {view.reason}" if view.reason else ""),
            )

    async def _ensure_payee(self, *, check: bool = False) -> None:
        """Wait in review until the vendor's payee is verified; the bank is never called first.

        The view from matching answers for a known vendor; a vendor remit created when posting
        the bill, or a payee that stopped being payable, is checked again (which proposes the
        document's details as a change where they are new).
        """
        assert self.state.vendor_id is not None
        prefer_verified = False
        while True:
            view = self.state.payee
            if check or view is None or not view.payable:
                # The check reads the master itself: notices until now are answered by it, and
                # one arriving while it runs is kept, to look again.
                self._payee_notices.clear()
                view = await self._call(
                    contract.check_payee,
                    CheckPayeeRequest(
                        workflow_id=self.state.workflow_id,
                        connection_id=self.state.connection_id,
                        vendor_id=self.state.vendor_id,
                        vendor_name=self.state.vendor_name,
                        submitted_by=self.state.submitted_by,
                        document_number=self.state.document_number,
                        document_bank_account=(
                            self.input.draft.vendor.bank_account if self.input.draft else None
                        ),
                        document_fingerprint=view.document_fingerprint if view else None,
                        prefer_verified=prefer_verified,
                    ),
                    summary="check the payee",
                )
                self._show_payee(view)
            if view.payable:
                if prefer_verified:
                    self._prefer_verified = True
                return
            check = True
            kind = await self._payee_hold(view.reason or "the payee is not verified")
            prefer_verified = prefer_verified or kind == "resolve"

    async def _payee_hold(self, reason: str) -> str:
        """needs_review until a payee notice, an operator, or the periodic look again."""
        if self._payee_notices:
            # The master changed while it was being checked: look again before holding.
            self._note_payee_notices()
            return "notice"
        previous = (self.state.status, self.state.step, self.state.waiting_for)
        self._operator = None
        self._holding = True
        self.state.status = LifecycleStatus.needs_review
        self.state.step = Step.payee
        self.state.last_error = reason
        self.state.waiting_for = (
            "the payee change to be verified out of band and approved by two people "
            "(remit payees changes); an operator may retry (check again), resolve (pay the "
            "verified details rather than the document's) or cancel"
        )
        self._audit("needs_review", reason)
        await self._publish()
        await self._notify("needs_review", [], reason)
        try:
            await workflow.wait_condition(
                lambda: self._operator is not None or bool(self._payee_notices),
                timeout=PAYEE_RECHECK,
                timeout_summary="look at the payee again",
            )
        except TimeoutError:
            pass
        self._holding = False
        self.state.last_error = None
        self.state.status, self.state.step, self.state.waiting_for = previous
        if self._operator is None:
            self._note_payee_notices()
            return "notice"
        kind, action = self._operator
        self._operator = None
        self.state.operator_actions.append(
            f"{kind} by {action.actor}" + (f": {action.reason}" if action.reason else "")
        )
        self._audit(
            "operator",
            f"{kind}" + (f": {action.reason}" if action.reason else ""),
            actor=action.actor,
        )
        if kind == "cancel":
            raise _Stop(LifecycleStatus.cancelled, f"cancelled by {action.actor}")
        return kind

    def _note_payee_notices(self) -> None:
        for notice in self._payee_notices:
            self._audit(
                "payee_notice",
                notice.summary or f"payee change {notice.change_id} moved on",
                actor=notice.actor,
            )
        self._payee_notices.clear()

    # ---- paying, in one payment or several ---------------------------------------------------

    def _next_installment(self) -> Installment | None:
        if not self.state.installments and not self.state.payments:
            self.state.installments.append(Installment(pay_on=self.state.pay_on))
        return next((i for i in self.state.installments if not i.done), None)

    async def _pay_in_full(self) -> None:
        """Pay until nothing is due: each installment, then wait for instructions for the rest."""
        while True:
            if self._return_hints():
                await self._handle_returns()
                continue
            if self._erp_changes:
                await self._follow_erp_changes()
                if self.state.status is LifecycleStatus.reconciled:
                    return
                continue
            installment = self._next_installment()
            if installment is None:
                if self.state.amount_due <= 0:
                    return
                await self._await_instruction()
                continue
            await self._ensure_payee()
            if self.state.plan is not None and self.state.plan.payment_mode == "run":
                if not await self._paid_by_run():
                    continue
                installment.done = True
                await self._reconcile_payments()
                if self.state.amount_due <= 0:
                    return
                continue
            if await self._until_pay_date(installment.pay_on):
                continue
            preparation = await self._prepare()
            if await self._rate_moved(preparation):
                continue
            due = self.state.amount_due
            due -= await self._apply_credits(preparation, due)
            amount = min(installment.amount, due) if installment.amount else due
            discount = self._discount(preparation.bill, amount, due)
            if amount - discount > 0:
                payment = await self._pay_once(amount - discount, discount, preparation)
                await self._write_back_payment(payment)
            installment.done = True
            await self._reconcile_payments()
            if self.state.amount_due <= 0:
                return

    async def _until_pay_date(self, pay_on: date | None) -> bool:
        """Sleep until the pay date; True when a return notice woke the bill before it."""
        today = workflow.now().date()
        pay_on = pay_on or today
        if pay_on <= today:
            return False
        wake = datetime.combine(pay_on, time(0), tzinfo=UTC)
        self._set(LifecycleStatus.scheduled, Step.schedule, f"the pay date {pay_on:%Y-%m-%d}")
        await self._publish()
        try:
            await workflow.wait_condition(
                lambda: (
                    self._cancel is not None
                    or bool(self._return_hints())
                    or bool(self._erp_changes)
                ),
                timeout=wake - workflow.now(),
                timeout_summary=f"pay date {pay_on:%Y-%m-%d}",
            )
        except TimeoutError:
            return False
        if self._cancel is not None:
            raise _Stop(LifecycleStatus.cancelled, f"cancelled by {self._cancel.actor}")
        return True

    async def _prepare(self) -> PaymentPreparation:
        """Re-read the bill just before paying: paid or voided elsewhere stops it."""
        assert self.state.erp_bill_id and self.state.vendor_id
        self._set(LifecycleStatus.paying, Step.pay, "re-reading the bill before paying")
        await self._publish()
        preparation: PaymentPreparation = await self._call(
            contract.prepare_payment,
            PreparePaymentRequest(
                connection_id=self.state.connection_id,
                bill_id=self.state.erp_bill_id,
                vendor_id=self.state.vendor_id,
                currency=self.state.currency,
                workflow_id=self.state.workflow_id,
                home_currency=self.state.home_currency,
                on=workflow.now().date(),
            ),
            summary=f"re-read bill {self.state.erp_bill_id} before paying",
        )
        bill = preparation.bill
        if bill.status == "void":
            raise _Stop(LifecycleStatus.voided_elsewhere, "the bill was voided in the ERP")
        due = bill.balance if bill.balance is not None else bill.total
        if due <= 0 or bill.status == "paid":
            self.state.amount_due = Decimal("0")
            if self.state.payments or self.state.credits_applied:
                # Paid in full by what remit paid and applied before: prove it, then stop.
                return preparation
            raise _Stop(LifecycleStatus.paid_elsewhere, "the bill was already paid in the ERP")
        if due != self.state.amount_due:
            self._audit(
                "balance",
                f"the ERP shows {self._money(due)} due (remit had "
                f"{self._money(self.state.amount_due)}): paying what the ERP shows",
            )
        self.state.amount_due = due
        return preparation

    async def _apply_credits(self, preparation: PaymentPreparation, due: Decimal) -> Decimal:
        """The vendor's credits, applied before paying so the bank pays the net."""
        if not preparation.credits or due <= 0:
            return Decimal("0")
        assert self.state.erp_bill_id and self.state.vendor_id
        applied: list[AppliedCredit] = await self._call(
            contract.apply_credits,
            ApplyCreditsRequest(
                connection_id=self.state.connection_id,
                workflow_id=self.state.workflow_id,
                bill_id=self.state.erp_bill_id,
                vendor_id=self.state.vendor_id,
                currency=self.state.currency,
                up_to=due,
                credits=preparation.credits,
            ),
            summary=f"apply {len(preparation.credits)} vendor credit(s)",
        )
        total = Decimal("0")
        for credit in applied:
            self.state.credits_applied.append(credit)
            total += credit.amount
            self._audit(
                "erp_write",
                f"applied {self._money(credit.amount)} of credit "
                f"{credit.document_number or credit.erp_credit_id}",
                key=f"{self.state.workflow_id}/credit/{credit.credit_id}",
                result=credit.erp_application_id,
            )
        self.state.amount_due -= total
        return total

    def _discount(self, bill: Bill, amount: Decimal, due: Decimal) -> Decimal:
        """The early-payment discount the terms allow for paying `due` in full today."""
        terms = self.state.terms or bill.terms
        if terms is None or not terms.discount_percent or amount != due:
            return Decimal("0")
        deadline = self.state.issue_date + timedelta(days=terms.discount_days)
        if workflow.now().date() > deadline:
            return Decimal("0")
        discount = quantize(due * terms.discount_percent / 100, self.state.currency)
        self._audit(
            "discount",
            f"paying by {deadline} under terms {terms.label()}: {self._money(discount)} off",
        )
        return discount

    async def _pay_once(
        self, cash: Decimal, discount: Decimal, preparation: PaymentPreparation
    ) -> PaymentState:
        """One payment that settles at the bank; a failed or returned one waits for a person."""
        while True:
            payment = await self._initiate_v2(cash, discount, preparation)
            final = await self._settle(payment)
            record = self.state.payments[-1]
            if final.status == RailPaymentStatus.settled:
                self._set(LifecycleStatus.paid, Step.pay, None)
                self._audit("payment", f"settled {self._money(final.amount)}", result=final.id)
                return record
            reason = (
                f"payment {final.id} {final.status.value}: "
                f"{final.return_code or ''} {final.return_reason or final.failure_reason or ''}"
            ).strip()
            kind, action = await self._hold(LifecycleStatus.needs_attention, reason)
            if kind == "resolve":
                raise _Stop(
                    LifecycleStatus.resolved,
                    f"{action.actor} took over after the payment was returned",
                )

    async def _initiate_v2(
        self, amount: Decimal, discount: Decimal, preparation: PaymentPreparation
    ) -> RailPayment:
        attempt = self.state.payment.attempt + 1
        base = f"{self.state.workflow_id}/pay/{attempt}"
        assert self.state.vendor_id is not None
        payee = self.state.payee

        def request(rejections: int) -> PaymentRequest:
            return PaymentRequest(
                idempotency_key=fresh_key(base, rejections),
                rail=self.input.rail,
                amount=amount,
                currency=self.state.currency,
                payee_name=self.state.vendor_name,
                execution_date=workflow.now().date(),
                reference=self.state.document_number,
                workflow_id=self.state.workflow_id,
                connection_id=self.state.connection_id,
                vendor_id=self.state.vendor_id,
                document_fingerprint=payee.document_fingerprint if payee else None,
                prefer_verified=self._prefer_verified,
                expected_payee_version=payee.version if payee else None,
            )

        async def payee_refused(err: ActivityError) -> bool:
            if failure_type(err) != PAYEE_NOT_VERIFIED:
                return False
            self._audit("payee", f"the bank was not called: {describe_failure(err)}")
            await self._ensure_payee(check=True)
            return True

        payment: RailPayment = await self._call(
            contract.initiate_payment,
            request,
            summary=f"pay {self._money(amount)} (attempt {attempt})",
            on_error=payee_refused,
        )
        self.state.payment = PaymentState(
            attempt=attempt,
            idempotency_key=payment.idempotency_key,
            discount=discount,
            exchange_rate=preparation.rate.rate if preparation.rate else None,
            payee_masked=payee.masked if payee else None,
        )
        self.state.payments.append(self.state.payment)
        self._audit(
            "bank_write",
            f"initiated {payment.rail.value} payment of {self._money(payment.amount)}"
            + (f" to {payee.masked}" if payee and payee.masked else ""),
            key=payment.idempotency_key,
            result=payment.id,
        )
        self._track_payment(payment)
        self._set(LifecycleStatus.paying, Step.pay, f"settlement of payment {payment.id}")
        await self._publish()
        return payment

    async def _settle(self, payment: RailPayment) -> RailPayment:
        """Until the rail says settled, failed or returned: notices wake the bill early, but
        only the rail's own answer counts."""
        current = payment
        delay = self.input.settlement_poll
        while current.status == RailPaymentStatus.pending:
            payment_id = current.id
            claim: RailPayment | None = None
            try:
                await workflow.wait_condition(
                    lambda pid=payment_id: pid in self._rail_updates,  # type: ignore[misc]
                    timeout=delay,
                    timeout_summary="settlement poll",
                )
                claim = self._rail_updates.pop(payment_id)
            except TimeoutError:
                delay = min(delay * 2, self.input.settlement_poll_max)
            current = await self._verified(payment_id, claim)
            self._track_payment(current)
        return current

    async def _verified(self, payment_id: str, claim: RailPayment | None) -> RailPayment:
        truth: RailPayment = await self._call(
            contract.get_payment_status,
            PaymentStatusRequest(payment_id=payment_id),
            summary=f"read payment {payment_id} from the bank",
        )
        if claim is not None and claim.status != truth.status:
            self._audit(
                "notice_contradicted",
                f"a notice said payment {payment_id} was {claim.status.value}; the bank says "
                f"{truth.status.value}: the notice changed nothing",
            )
            await self._publish()  # a forged or garbled notice is news for the audit trail
        return truth

    async def _write_back_payment(self, payment: PaymentState) -> None:
        assert self.state.erp_bill_id and self.state.vendor_id and payment.amount is not None
        self._set(LifecycleStatus.writing_back, Step.write_back, "recording the payment in the ERP")
        await self._publish()
        reference = f"{self.state.workflow_id}/bill-payment/{payment.attempt}"
        result: BillPayment = await self._call(
            contract.post_bill_payment,
            lambda rejections: PostPaymentRequest(
                connection_id=self.state.connection_id,
                reference=reference,
                idempotency_key=fresh_key(reference, rejections),
                vendor_id=self.state.vendor_id or "",
                bill_id=self.state.erp_bill_id or "",
                amount=payment.amount or Decimal(0),
                currency=self.state.currency,
                payment_date=(payment.settled_at or workflow.now()).date(),
                memo=f"remit payment {payment.rail_payment_id}",
                discount=payment.discount,
                exchange_rate=payment.exchange_rate,
            ),
            summary=f"record payment of {self._money(payment.amount)}",
        )
        payment.erp_payment_id = result.id
        self.state.erp_payment_id = result.id
        self.state.amount_due -= payment.amount + payment.discount
        self._audit("erp_write", "recorded the bill payment", key=reference, result=result.id)

    async def _reconcile_payments(self) -> None:
        """Prove the books: every payment remit made in effect (or voided, if its money came
        back), and total minus balance equal to payments, discounts and credits."""
        assert self.state.erp_bill_id
        in_effect = [p for p in self.state.payments if p.erp_payment_id and not p.erp_voided]
        request = ReconcileRequest(
            connection_id=self.state.connection_id,
            bill_id=self.state.erp_bill_id,
            payment_id=self.state.erp_payment_id or "",
            bill_total=self.state.total,
            paid=sum((p.amount or Decimal(0) for p in in_effect), Decimal(0)),
            payments={p.erp_payment_id: p.amount or Decimal(0) for p in in_effect},  # type: ignore[misc]
            discounts=sum((p.discount for p in in_effect), Decimal(0)),
            credits=sum((c.amount for c in self.state.credits_applied), Decimal(0)),
            voided=[
                p.erp_payment_id for p in self.state.payments if p.erp_voided and p.erp_payment_id
            ],
        )
        while True:
            result: ReconcileResult = await self._call(
                contract.reconcile_bill, request, summary="reconcile"
            )
            self.state.reconciliation = result
            if result.ok:
                break
            kind, action = await self._hold(
                LifecycleStatus.needs_attention,
                "the books do not match: " + "; ".join(result.differences),
            )
            if kind == "resolve":
                self._audit(
                    "reconcile",
                    f"accepted by {action.actor} despite: " + "; ".join(result.differences),
                    actor=action.actor,
                )
                break
        if result.balance is not None:
            self.state.amount_due = result.balance
        if self.state.amount_due > 0:
            self._audit(
                "reconcile",
                f"books agree: {self._money(self.state.total - self.state.amount_due)} settled, "
                f"{self._money(self.state.amount_due)} still due",
            )
            return
        self._audit("reconcile", "books agree: paid in full, balance zero")
        self._set(LifecycleStatus.reconciled, Step.done, None)
        self._pending_notices.append(
            self._notice("reconciled", [self.state.submitted_by], "paid and reconciled")
        )

    async def _await_instruction(self) -> None:
        """Part-paid: wait for the next instruction, a return notice, or an operator."""
        due = self._money(self.state.amount_due)
        self._set(
            LifecycleStatus.partially_paid,
            Step.pay,
            f"an instruction to pay the {due} still due (remit bills pay); an operator may "
            "resolve (the rest is settled elsewhere) or cancel",
        )
        self._operator = None
        self._holding = True
        await self._publish()
        await workflow.wait_condition(
            lambda: (
                self._next_installment() is not None
                or self._operator is not None
                or bool(self._return_hints())
                or bool(self._erp_changes)
            )
        )
        self._holding = False
        if self._operator is not None:
            kind, action = self._operator
            self._operator = None
            self._audit(
                "operator",
                kind + (f": {action.reason}" if action.reason else ""),
                actor=action.actor,
            )
            if kind == "cancel":
                raise _Stop(
                    LifecycleStatus.cancelled,
                    f"cancelled by {action.actor} with {due} unpaid",
                )
            if kind == "resolve":
                raise _Stop(
                    LifecycleStatus.resolved,
                    f"{action.actor} closed the bill with {due} unpaid in remit",
                )

    # ---- payment runs ------------------------------------------------------------------------

    async def _paid_by_run(self) -> bool:
        """Wait for the connection's payment run to pay the bill; True once a run paid it
        (False: a return notice came first, to be handled before anything else)."""
        self.state.awaiting_run = True
        while True:
            run = self.state.payment_run_id
            self._set(
                LifecycleStatus.scheduled,
                Step.schedule,
                f"payment run {run} to be released by a payer"
                if run
                else f"the next payment run of {self.state.connection_id}",
            )
            await self._publish()
            await workflow.wait_condition(
                lambda: (
                    bool(self._run_notices)
                    or self._cancel is not None
                    or bool(self._return_hints())
                )
            )
            if self._cancel is not None:
                raise _Stop(LifecycleStatus.cancelled, f"cancelled by {self._cancel.actor}")
            if not self._run_notices:
                return False
            notice = self._run_notices.pop(0)
            if notice.kind == "joined":
                self.state.payment_run_id = notice.run_id
                self._audit("payment_run", f"taken into payment run {notice.run_id}")
                continue
            if notice.run_id != self.state.payment_run_id:
                self._audit(
                    "notice_ignored",
                    f"a {notice.kind} notice from payment run {notice.run_id}, which does not "
                    "hold this bill, was ignored",
                )
                continue
            if notice.kind == "left":
                self.state.payment_run_id = None
                self._audit(
                    "payment_run",
                    f"left payment run {notice.run_id}: {notice.reason or 'no reason given'}",
                )
                continue
            if await self._take_run_payment(notice):
                self.state.awaiting_run = False
                return True

    async def _take_run_payment(self, notice: RunNotice) -> bool:
        """A run says it paid this bill: believe the rail, and let reconcile prove the ERP."""
        if not notice.rail_payment_id or notice.amount is None:
            self._audit("notice_ignored", f"payment run {notice.run_id} named no payment")
            return False
        truth = await self._verified(notice.rail_payment_id, None)
        if (
            truth.status != RailPaymentStatus.settled
            or truth.metadata.get("workflow_id") != notice.run_id
        ):
            self._audit(
                "notice_contradicted",
                f"payment run {notice.run_id} said payment {truth.id} paid this bill; the bank "
                f"says it is {truth.status.value} for {truth.metadata.get('workflow_id')}",
            )
            await self._publish()
            return False
        record = PaymentState(
            attempt=self.state.payment.attempt,
            idempotency_key=truth.idempotency_key,
            rail_payment_id=truth.id,
            rail=truth.rail,
            status=truth.status.value,
            amount=notice.amount,
            discount=notice.discount,
            settled_at=truth.settled_at,
            erp_payment_id=notice.erp_payment_id,
            payee_masked=self.state.payee.masked if self.state.payee else None,
        )
        self.state.payments.append(record)
        self.state.payment = record
        self.state.erp_payment_id = notice.erp_payment_id
        self.state.amount_due -= notice.amount + notice.discount
        self._set(LifecycleStatus.paid, Step.pay, None)
        self._audit(
            "payment",
            f"paid {self._money(notice.amount)}"
            + (f" (discount {self._money(notice.discount)})" if notice.discount else "")
            + f" in payment run {notice.run_id}: bank payment {truth.id}, ERP payment "
            f"{notice.erp_payment_id}",
            result=truth.id,
        )
        return True

    # ---- exchange rates ----------------------------------------------------------------------

    async def _lock_rate(self) -> None:
        """Lock the rate of a foreign-currency bill at its final approval."""
        home = self.state.home_currency
        if not self._v2 or home is None or home == self.state.currency:
            return
        rate: ExchangeRate = await self._call(
            contract.lock_rate,
            LockRateRequest(
                connection_id=self.state.connection_id,
                currency=self.state.currency,
                home_currency=home,
                on=workflow.now().date(),
            ),
            summary=f"lock the {self.state.currency}/{home} rate",
        )
        booked = self.state.fx.booked if self.state.fx else None
        self.state.fx = FxLock(rate=rate, locked_at=workflow.now(), booked=booked)
        self._audit(
            "fx",
            f"locked {self.state.currency}→{home} at {rate.rate} ({rate.source}, {rate.as_of}) "
            "at approval",
        )

    async def _rate_moved(self, preparation: PaymentPreparation) -> bool:
        """A rate that moved beyond the policy's threshold since approval re-approves the bill."""
        fx, now, plan = self.state.fx, preparation.rate, self.state.plan
        if fx is None or now is None or plan is None:
            return False
        locked = fx.rate.rate
        moved = abs(now.rate - locked) / locked * 100
        if moved <= plan.fx_reapprove_above_percent:
            return False
        self._audit(
            "fx",
            f"the {self.state.currency}→{now.home_currency} rate moved from {locked} to "
            f"{now.rate} ({moved:.2f} %), more than the policy's "
            f"{plan.fx_reapprove_above_percent} %: back for approval",
        )
        self.state.earlier_decisions.extend(self.state.decisions)
        self.state.decisions = []
        await self._approve()
        return True

    # ---- returns after settlement ------------------------------------------------------------

    def _return_hints(self) -> list[str]:
        """Payments of this bill that a notice says changed since remit saw them settle.

        A notice about a payment remit does not know, or repeating what remit knows, is noted or
        dropped here, without a call to the bank.
        """
        ours = {p.rail_payment_id: p for p in self.state.payments if p.rail_payment_id}
        changed = []
        for payment_id, claim in list(self._rail_updates.items()):
            known = ours.get(payment_id)
            if known is None:
                del self._rail_updates[payment_id]
                self._audit(
                    "notice_ignored",
                    f"a notice about payment {payment_id}, which is not this bill's, was ignored",
                )
            elif known.status == RailPaymentStatus.settled.value and claim.status in (
                RailPaymentStatus.returned,
                RailPaymentStatus.failed,
            ):
                changed.append(payment_id)
            elif known.status != RailPaymentStatus.pending.value:
                del self._rail_updates[payment_id]  # nothing new (e.g. the settled notice)
        return changed

    def _returns_to_handle(self) -> bool:
        return bool(self._v2 and self._return_hints())

    async def _handle_returns(self) -> None:
        for payment_id in self._return_hints():
            claim = self._rail_updates.pop(payment_id)
            truth = await self._verified(payment_id, claim)
            record = next(p for p in self.state.payments if p.rail_payment_id == payment_id)
            if truth.status != RailPaymentStatus.returned:
                continue
            await self._take_back(record, truth)

    async def _take_back(self, record: PaymentState, truth: RailPayment) -> None:
        """The money came back: void its ERP payment, prove the balance is open again, and
        wait for a person; paying again uses a new key and the payee master's details."""
        record.status = truth.status.value
        record.return_code = truth.return_code
        record.return_reason = truth.return_reason
        if record is self.state.payment:
            self._track_payment(truth)
        self._audit(
            "payment_returned",
            f"payment {truth.id} of {self._money(truth.amount)} was returned after it settled: "
            f"{truth.return_code or ''} {truth.return_reason or ''}".strip(),
            result=truth.id,
        )
        if record.erp_payment_id and not record.erp_voided:
            voided: BillPayment = await self._call(
                contract.void_bill_payment,
                VoidPaymentRequest(
                    connection_id=self.state.connection_id,
                    payment_id=record.erp_payment_id,
                    idempotency_key=f"{self.state.workflow_id}/void/{record.attempt}",
                ),
                summary=f"void bill payment {record.erp_payment_id}",
            )
            record.erp_voided = True
            self._audit(
                "erp_write",
                f"voided bill payment {voided.id}: the bill's balance is open again",
                key=f"{self.state.workflow_id}/void/{record.attempt}",
                result=voided.id,
            )
            await self._reconcile_payments()
        reason = (
            f"payment {truth.id} was returned ({truth.return_code or 'no code'}: "
            f"{truth.return_reason or 'no reason given'}); "
            + (f"bill payment {record.erp_payment_id} is voided and " if record.erp_voided else "")
            + f"{self._money(self.state.amount_due)} is due again. Retry pays again (a new "
            "payment key, the verified payee); resolve closes the bill as it is; cancel ends it"
        )
        await self._notify("payment_returned", [self.state.submitted_by], reason)
        kind, action = await self._hold(LifecycleStatus.needs_attention, reason)
        if kind == "resolve":
            raise _Stop(LifecycleStatus.resolved, f"{action.actor} took over after the return")
        if not any(not i.done for i in self.state.installments):
            self.state.installments.append(Installment(instructed_by=action.actor))

    async def _follow_up(self) -> None:
        """A run started by a bank notice after the bill had finished (see RemitClient)."""
        await workflow.wait_condition(lambda: bool(self._rail_updates))
        self._audit("resumed", "a bank notice arrived after the bill had finished")
        if not self._return_hints():
            return
        await self._handle_returns()
        await self._pay_in_full()

    # ---- small things ------------------------------------------------------------------------

    def _money(self, amount: Decimal | None) -> str:
        return format_money(amount, self.state.currency)

    def _notice(self, kind: Any, recipients: list[str], message: str) -> Notice:
        return Notice(
            workflow_id=self.state.workflow_id,
            kind=kind,
            recipients=recipients,
            message=f"{self._summary()}: {message}",
        )

    # ------------------------------------------------------------------------------------------
    # Plumbing
    # ------------------------------------------------------------------------------------------

    async def _call(
        self,
        activity: Callable[[A], Awaitable[R]],
        arg: A | Callable[[int], A],
        *,
        summary: str,
        options: dict[str, Any] | None = None,
        resolvable: bool = False,
        on_error: Callable[[ActivityError], Awaitable[bool]] | None = None,
    ) -> R:
        """Run an activity; on a failure retries cannot fix, wait for a person.

        `retry` runs it again (with the same keys, so a write that did land is found, not
        repeated); `resolve` skips a step that can be skipped; `cancel` ends the bill. `arg`
        may be a function of how often the platform rejected the call, to renew write keys.
        `on_error` may take a failure over (True: handled, run the activity again).
        """
        rejections = 0
        while True:
            request: A = arg(rejections) if callable(arg) else arg
            try:
                return await workflow.execute_activity(
                    activity,
                    request,
                    summary=summary[:200],
                    **(options or self._erp_options(activity)),
                )
            except ActivityError as err:
                if on_error is not None and await on_error(err):
                    continue
                reason = describe_failure(err)
                if failure_type(err) == "Rejected":
                    rejections += 1
                waiting_for = None
                if failure_type(err) == "ConnectionRevoked":
                    reason = f"connection {self.input.connection_id} needs relink: {reason}"
                    waiting_for = (
                        f"connection {self.input.connection_id} to be relinked; the bill "
                        "resumes by itself when it is (or an operator may retry or cancel)"
                    )
                self._paused_for_relink = waiting_for is not None
                try:
                    kind, _ = await self._hold(
                        LifecycleStatus.needs_attention,
                        f"{contract.name_of(activity)} failed: {reason}",
                        waiting_for=waiting_for,
                    )
                finally:
                    self._paused_for_relink = False
                if kind == "resolve" and resolvable:
                    return None  # type: ignore[return-value]

    def _erp_options(self, activity: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
        options = {**ERP_OPTIONS, "start_to_close_timeout": self.input.attempt_timeout}
        if contract.queue_of(activity) == "erp":
            # ERP calls share a queue whose server-side rate limit keeps every worker together
            # inside the platforms' quotas; the fairness key stops one busy connection from
            # starving the others where the server has fairness enabled.
            options["task_queue"] = erp_task_queue(workflow.info().task_queue)
            options["priority"] = Priority(fairness_key=self.input.connection_id)
        return options

    async def _hold(
        self, status: LifecycleStatus, reason: str, *, waiting_for: str | None = None
    ) -> tuple[Literal["retry", "resolve"], OperatorAction]:
        """Wait in needs_review / needs_attention, with the reason, until a person acts."""
        previous = (self.state.status, self.state.waiting_for)
        self._operator = None
        self._holding = True
        self.state.status = status
        self.state.last_error = reason
        self.state.waiting_for = waiting_for or f"an operator to retry, resolve or cancel: {reason}"
        self._audit(status.value, reason)
        await self._publish()
        await self._notify(
            "needs_review" if status == LifecycleStatus.needs_review else "needs_attention",
            [],
            reason,
        )
        await workflow.wait_condition(lambda: self._operator is not None)
        assert self._operator is not None
        kind, action = self._operator
        self._operator = None
        self._holding = False
        self.state.operator_actions.append(
            f"{kind} by {action.actor}" + (f": {action.reason}" if action.reason else "")
        )
        self._audit(
            "operator",
            f"{kind}" + (f": {action.reason}" if action.reason else ""),
            actor=action.actor,
        )
        if kind == "cancel":
            raise _Stop(LifecycleStatus.cancelled, f"cancelled by {action.actor}")
        self.state.last_error = None
        self.state.status, self.state.waiting_for = previous
        return kind, action

    def _operator_signal(self, kind: OperatorKind, action: OperatorAction) -> None:
        if self._holding:
            self._operator = (kind, action)
        elif kind != "cancel":
            self._audit(
                "operator_ignored",
                f"{kind} from {action.actor} ignored: the bill is not waiting for one",
                actor=action.actor,
            )

    def _set(self, status: LifecycleStatus, step: Step, waiting_for: str | None) -> None:
        self.state.status = status
        self.state.step = step
        self.state.waiting_for = waiting_for

    def _audit(
        self,
        kind: str,
        summary: str,
        *,
        actor: str = "remit",
        key: str | None = None,
        result: str | None = None,
        policy_version: str | None = None,
    ) -> None:
        self._seq += 1
        self._events.append(
            AuditEntry(
                seq=self._seq,
                at=workflow.now(),
                actor=actor,
                kind=kind,
                summary=summary,
                idempotency_key=key,
                result=result,
                policy_version=policy_version,
            )
        )

    async def _notify(self, kind: Any, recipients: list[str], message: str) -> None:
        await workflow.execute_activity(
            contract.notify,
            Notice(
                workflow_id=self.state.workflow_id,
                kind=kind,
                recipients=recipients,
                message=f"{self._summary()}: {message}",
            ),
            summary=f"notify {kind}",
            **LOCAL_OPTIONS,
        )

    def _summary(self) -> str:
        s = self.state
        return bill_summary(s.document_number, s.vendor_name, s.currency, s.total)

    async def _publish(self) -> None:
        """Make the state visible: search attributes, UI details, the store's projection."""
        self.state.revision += 1
        self._upsert_search_attributes()
        workflow.set_current_details(self._details())
        events, self._events = self._events, []
        notices, self._pending_notices = self._pending_notices, []
        await workflow.execute_activity(
            contract.record_bill,
            RecordRequest(state=self.state, events=events, notices=notices),
            summary=f"record {self.state.status.value}",
            **LOCAL_OPTIONS,
        )

    def _upsert_search_attributes(self) -> None:
        s = self.state
        wanted: dict[str, tuple[Any, Callable[[], Any]]] = {
            "status": (s.status.value, lambda: search.BILL_STATUS.value_set(s.status.value)),
            "vendor": (s.vendor_name, lambda: search.VENDOR_NAME.value_set(s.vendor_name)),
            "due": (
                s.amount_due,
                lambda: search.AMOUNT_DUE.value_set(amount_for_search(s.amount_due)),
            ),
            "approvers": (
                tuple(s.pending_approvers),
                lambda: search.PENDING_APPROVERS.value_set(list(s.pending_approvers)),
            ),
        }
        updates = []
        for name, (value, update) in wanted.items():
            if self._search.get(name) != value:
                self._search[name] = value
                updates.append(update())
        if updates:
            workflow.upsert_search_attributes(updates)

    def _details(self) -> str:
        s = self.state
        lines = [f"**{s.status.value.replace('_', ' ')}**"]
        if s.waiting_for:
            lines.append(f"Waiting for {s.waiting_for}.")
        if s.decisions:
            lines.append(
                "Decisions: "
                + "; ".join(f"{d.outcome} by {d.actor} (level {d.level + 1})" for d in s.decisions)
            )
        if s.erp_bill_id:
            lines.append(
                f"ERP bill {s.erp_bill_id}"
                + (f", payment {s.erp_payment_id}" if s.erp_payment_id else "")
            )
        if s.payment.rail_payment_id:
            lines.append(f"Bank payment {s.payment.rail_payment_id}: {s.payment.status}")
        return "\n\n".join(lines)
