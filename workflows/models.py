"""The messages between remit's clients, BillWorkflow and its activities (plain pydantic)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from accounting import (
    Amount,
    Bill,
    BillDraft,
    CurrencyCode,
    DocumentRef,
    TrackingRef,
    Vendor,
)
from connectors.base import RailKind, RailPayment

TASK_QUEUE = "remit-bills"

ERP_ACTIVITIES = frozenset(
    {
        "match_bill",
        "create_vendor",
        "post_bill",
        "attach_document",
        "read_bill",
        "post_bill_payment",
        "reconcile_bill",
    }
)
"""Activities that call an ERP; they run on the ERP task queue (see `erp_task_queue`)."""


def erp_task_queue(bills_task_queue: str) -> str:
    """The queue ERP activities run on, beside the bills queue their workflows run on.

    Its own queue gets a server-side rate limit shared by every worker
    (`max_task_queue_activities_per_second`), so an ERP outage or quota cannot starve capture,
    approvals or the bank, and adding workers does not multiply the load on an ERP.
    """
    return f"{bills_task_queue}-erp"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------------


class LifecycleStatus(StrEnum):
    """Where a bill stands in remit (the `BillStatus` search attribute)."""

    received = "received"
    matching = "matching"
    needs_review = "needs_review"
    awaiting_approval = "awaiting_approval"
    approved = "approved"
    rejected = "rejected"
    posting = "posting"
    scheduled = "scheduled"
    paying = "paying"
    paid = "paid"
    writing_back = "writing_back"
    reconciling = "reconciling"
    reconciled = "reconciled"
    needs_attention = "needs_attention"
    paid_elsewhere = "paid_elsewhere"
    voided_elsewhere = "voided_elsewhere"
    cancelled = "cancelled"
    resolved = "resolved"


FINAL_STATUSES = frozenset(
    {
        LifecycleStatus.rejected,
        LifecycleStatus.reconciled,
        LifecycleStatus.paid_elsewhere,
        LifecycleStatus.voided_elsewhere,
        LifecycleStatus.cancelled,
        LifecycleStatus.resolved,
    }
)


class Step(StrEnum):
    match = "match"
    approve = "approve"
    post_bill = "post_bill"
    schedule = "schedule"
    pay = "pay"
    write_back = "write_back"
    reconcile = "reconcile"
    done = "done"


def fresh_key(key: str, rejections: int) -> str:
    """The idempotency key for a write, renewed only after the platform rejected it.

    A rejected write changed nothing, and platforms replay (or refuse) a used key, so a retry
    after a person fixed the cause needs a new key. Every other failure keeps the key: the
    write may have landed, and only the same key (plus a look-up) makes the retry safe.
    """
    return key if rejections == 0 else f"{key}/retry-{rejections}"


def bill_workflow_id(connection_id: str, bill_key: str) -> str:
    return f"bill/{connection_id}/{bill_key}"


class BillInput(_Model):
    """Everything a bill's workflow starts from; the same input always yields the same id."""

    connection_id: str
    platform: str
    bill_key: str = Field(description="caller's idempotency key, or the document's sha256")
    draft: BillDraft
    submitted_by: str
    pay_on: date | None = Field(default=None, description="pay earlier than the due date")
    rail: RailKind | None = None
    erp_bill_id: str | None = Field(
        default=None, description="set when the bill was found in the ERP (nothing to create)"
    )
    settlement_poll: timedelta = timedelta(minutes=1)
    attempt_timeout: timedelta = Field(
        default=timedelta(seconds=60),
        description="how long one ERP or bank call may run before Temporal gives up on that "
        "attempt (e.g. its worker died) and retries it with the same keys",
    )
    settlement_poll_max: timedelta = timedelta(hours=1)


# ---------------------------------------------------------------------------------------------
# Approval
# ---------------------------------------------------------------------------------------------


class ApprovalLevel(_Model):
    group: str
    members: list[str]
    escalation_group: str | None = None
    escalation_members: list[str] = Field(default_factory=list)


class ApprovalPlan(_Model):
    policy_version: str
    auto_approved: bool
    reason: str
    levels: list[ApprovalLevel] = Field(default_factory=list)
    reminder_after: timedelta = timedelta(hours=24)
    escalate_after: timedelta = timedelta(hours=72)


class DecisionInput(_Model):
    """An approver's answer; a rejection must say why."""

    actor: str = Field(min_length=1)
    outcome: Literal["approve", "reject"]
    comment: str | None = None
    request_id: str | None = Field(default=None, description="de-duplicates retried signals")


class DecisionRecord(_Model):
    actor: str
    outcome: Literal["approve", "reject"]
    comment: str | None = None
    level: int
    group: str
    at: datetime
    policy_version: str
    via: Literal["update", "signal"]


class OperatorAction(_Model):
    """retry / resolve / cancel from an operator (CLI, API, or a signal from the Temporal UI)."""

    actor: str = "operator"
    reason: str | None = None
    vendor_id: str | None = Field(
        default=None, description="with resolve on an ambiguous vendor: the vendor to use"
    )
    account: str | None = Field(
        default=None, description="with resolve: the account (name or id) for uncoded lines"
    )


# ---------------------------------------------------------------------------------------------
# Activity requests and results
# ---------------------------------------------------------------------------------------------


class CodedLine(_Model):
    description: str | None = None
    amount: Amount
    quantity: Amount | None = None
    unit_amount: Amount | None = None
    account_id: str
    account_as_written: str | None = Field(
        default=None, description="the account the document named (account_id is the ERP's)"
    )
    tracking: list[TrackingRef] = Field(default_factory=list)


class MatchRequest(_Model):
    workflow_id: str
    connection_id: str
    draft: BillDraft
    vendor_id: str | None = Field(default=None, description="an operator's choice; skips lookup")
    account: str | None = Field(default=None, description="an operator's account for uncoded lines")


class MatchResult(_Model):
    vendor: Vendor | None = Field(default=None, description="None: unknown, create it")
    vendor_candidates: list[Vendor] = Field(default_factory=list)
    lines: list[CodedLine] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="why a person must look")
    duplicates: list[str] = Field(default_factory=list, description="likely duplicates found")


class PlanRequest(_Model):
    amount: Amount
    currency: CurrencyCode
    vendor_is_new: bool
    departments: list[str] = Field(default_factory=list)


class CreateVendorRequest(_Model):
    connection_id: str
    reference: str
    idempotency_key: str
    vendor: Vendor


class PostBillRequest(_Model):
    connection_id: str
    reference: str
    idempotency_key: str
    bill: Bill


class AttachRequest(_Model):
    connection_id: str
    bill_id: str
    document: DocumentRef
    idempotency_key: str


class ReadBillRequest(_Model):
    connection_id: str
    bill_id: str


class PaymentRequest(_Model):
    idempotency_key: str
    rail: RailKind | None
    amount: Amount
    currency: CurrencyCode
    payee_name: str
    payee_account: str | None = Field(default=None, repr=False)
    execution_date: date
    reference: str
    workflow_id: str


class PaymentStatusRequest(_Model):
    payment_id: str


class PaymentEvent(_Model):
    """The bank's notification, delivered to the workflow as a signal."""

    payment: RailPayment


class PostPaymentRequest(_Model):
    connection_id: str
    reference: str
    idempotency_key: str
    vendor_id: str
    bill_id: str
    amount: Amount
    currency: CurrencyCode
    payment_date: date
    memo: str | None = None


class ReconcileRequest(_Model):
    connection_id: str
    bill_id: str
    payment_id: str
    bill_total: Amount
    paid: Amount


class ReconcileResult(_Model):
    ok: bool
    differences: list[str] = Field(default_factory=list)
    balance: Amount | None = None
    payment_ids: list[str] = Field(default_factory=list)


class Notice(_Model):
    """Something a person should hear about (approval requests, reminders, escalations)."""

    workflow_id: str
    kind: Literal[
        "approval_requested",
        "approval_reminder",
        "approval_escalated",
        "needs_review",
        "needs_attention",
        "rejected",
        "paid",
        "reconciled",
    ]
    recipients: list[str] = Field(default_factory=list)
    message: str


class AuditEntry(_Model):
    seq: int
    at: datetime
    actor: str
    kind: str
    summary: str
    idempotency_key: str | None = None
    result: str | None = None
    policy_version: str | None = None


# ---------------------------------------------------------------------------------------------
# State (the `state` query and the store's projection)
# ---------------------------------------------------------------------------------------------


class PaymentState(_Model):
    attempt: int = 0
    idempotency_key: str | None = None
    rail_payment_id: str | None = None
    rail: RailKind | None = None
    status: str | None = None
    amount: Amount | None = None
    return_code: str | None = None
    return_reason: str | None = None
    settled_at: datetime | None = None


class BillState(_Model):
    workflow_id: str
    connection_id: str
    platform: str
    bill_key: str
    submitted_by: str
    status: LifecycleStatus = LifecycleStatus.received
    step: Step = Step.match
    waiting_for: str | None = Field(default=None, description="in words: what the bill waits for")
    document_number: str
    vendor_name: str
    vendor_id: str | None = None
    vendor_created: bool = False
    currency: CurrencyCode
    total: Amount
    amount_due: Amount
    issue_date: date
    due_date: date | None = None
    pay_on: date | None = None
    memo: str | None = None
    document: DocumentRef | None = Field(
        default=None, description="the original document, kept in the document store"
    )
    lines: list[CodedLine] = Field(default_factory=list)
    review_reasons: list[str] = Field(default_factory=list)
    plan: ApprovalPlan | None = None
    level: int = 0
    escalated: bool = False
    pending_approvers: list[str] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    erp_bill_id: str | None = None
    attachment_id: str | None = None
    erp_payment_id: str | None = None
    payment: PaymentState = Field(default_factory=PaymentState)
    reconciliation: ReconcileResult | None = None
    last_error: str | None = None
    operator_actions: list[str] = Field(default_factory=list)
    revision: int = 0


class RecordRequest(_Model):
    """A state snapshot for the store's projection plus audit entries not yet written."""

    state: BillState
    events: list[AuditEntry] = Field(default_factory=list)


class SubmitResult(_Model):
    workflow_id: str
    created: bool
    status: LifecycleStatus | None = None


def bill_summary(document_number: str, vendor_name: str, currency: str, total: Decimal) -> str:
    """The one-line name of a bill, as the Temporal UI and notices show it."""
    return f"Bill {document_number} · {vendor_name} · {currency} {total:,.2f}"


def amount_for_search(amount: Decimal) -> float:
    """Search attributes only know Double; this value is for finding bills, never for money."""
    return float(amount)
