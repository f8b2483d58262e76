"""The messages between remit's clients, BillWorkflow and its activities (plain pydantic)."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from accounting import (
    Amount,
    Bill,
    BillDraft,
    BillPaymentLine,
    CurrencyCode,
    DocumentRef,
    ExchangeRate,
    NewAccount,
    PaymentTerms,
    PositiveAmount,
    TrackingRef,
    Vendor,
    VendorChanges,
    format_money,
)
from accounting.documents import Quantity
from connectors.base import RailKind, RailPayment
from workflows.webhooks import WebhookEventType

TASK_QUEUE = "remit-bills"


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
    partially_paid = "partially_paid"
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
    payee = "payee"
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


_UNSAFE_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")
DOCUMENT_NUMBER_IN_ID = 40


def bill_workflow_id(connection_id: str, bill_key: str, document_number: str | None = None) -> str:
    """`bill/<connection>/<label>-<hash of the key>`: an id a person recognizes, the same for
    the same inputs (a resubmit maps to the same bill). The label is the document number, or
    the caller's key when it gave one (starter.client.bill_label_for). Without a label it is
    the first form, `bill/<connection>/<key>`, which bills started before keep."""
    if document_number is None:
        return f"bill/{connection_id}/{bill_key}"
    # The number goes into URLs, the Temporal UI and shells: a safe set, a bounded length.
    number = _UNSAFE_IN_ID.sub("-", document_number).strip(".-")[:DOCUMENT_NUMBER_IN_ID]
    digest = hashlib.sha256(bill_key.encode()).hexdigest()[:8]
    return f"bill/{connection_id}/{number.rstrip('.-') or 'bill'}-{digest}"


class Installment(_Model):
    """One payment of a bill: when, and how much (None: whatever is still due then)."""

    pay_on: date | None = None
    amount: PositiveAmount | None = None
    done: bool = False
    instructed_by: str | None = None


class BillInput(_Model):
    """Everything a bill's workflow starts from; the same input always yields the same id."""

    connection_id: str
    platform: str
    bill_key: str = Field(description="caller's idempotency key, or the document's sha256")
    draft: BillDraft | None = Field(
        description="the captured bill; None only for a follow-up run (see `resume`)"
    )
    submitted_by: str
    pay_on: date | None = Field(default=None, description="pay earlier than the due date")
    installments: list[Installment] = Field(
        default_factory=list,
        description="pay in parts (default: one payment of the whole amount on pay_on)",
    )
    terms: PaymentTerms | None = Field(
        default=None, description="payment terms the document states (early-payment discount)"
    )
    rail: RailKind | None = None
    resume: BillState | None = Field(
        default=None,
        description="a follow-up run of a finished bill (e.g. a bank return after it was "
        "reconciled): the state it ended in; the hint that started it arrives as a signal",
    )
    erp_bill_id: str | None = Field(
        default=None, description="set when the bill was found in the ERP (nothing to create)"
    )
    amount_due: Amount | None = Field(
        default=None,
        description="what is still due when the ERP bill is part-paid (default: the total)",
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
    fx_reapprove_above_percent: Amount = Field(
        default=Decimal("2"),
        description="a rate that moves more than this (in %) from the approved one re-approves",
    )
    payment_mode: Literal["on_approval", "run"] = Field(
        default="on_approval",
        description="pay each bill once approved, or in the connection's payment runs",
    )
    payers: list[str] = Field(
        default_factory=list, description="who may instruct or release payments"
    )


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


class PaymentInstructionInput(_Model):
    """Pay (part of) a bill: an amount and a day, from a person allowed to instruct payments."""

    actor: str = Field(min_length=1)
    amount: PositiveAmount | None = Field(default=None, description="None: all that is due")
    pay_on: date | None = Field(default=None, description="None: as soon as possible")
    request_id: str | None = Field(default=None, description="de-duplicates retried calls")


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
    draft: BillDraft | None = Field(
        default=None,
        description="with resolve on a bill held for what capture read (a scan, a header-only "
        "e-invoice): the draft as a person corrected it, validated by the API",
    )


# ---------------------------------------------------------------------------------------------
# Payees (what a bill may see of the payee master: masked details and keyed fingerprints)
# ---------------------------------------------------------------------------------------------


class PayeeStatus(StrEnum):
    verified = "verified"
    """The vendor has verified details; the document names the same ones, or none."""
    new = "new"
    """The vendor has no verified details yet (or no ERP vendor exists yet)."""
    changed = "changed"
    """The document names other details than the verified ones: a change is proposed."""
    unreadable = "unreadable"
    """The document's bank details are not a valid IBAN or routing/account number."""


class PayeeView(_Model):
    """The payee a bill pays, as people and histories may see it: masked, never the details."""

    status: PayeeStatus
    payee_id: str | None = None
    version: int | None = None
    masked: str | None = Field(default=None, description="the verified details, masked")
    verified_by: str | None = None
    verified_on: date | None = None
    recently_changed: bool = Field(
        default=False, description="the verified details changed in the last 30 days"
    )
    document_masked: str | None = Field(default=None, description="what the document names, masked")
    document_fingerprint: str | None = Field(
        default=None, description="keyed hash of the document's details, to compare later"
    )
    change_id: str | None = Field(default=None, description="the change proposed from them")
    change_status: str | None = None
    reason: str | None = Field(default=None, description="why the bill may not pay, in words")

    @property
    def payable(self) -> bool:
        return self.status == PayeeStatus.verified

    def badge(self) -> str:
        """The word a screen shows next to the payee."""
        if self.status == PayeeStatus.verified:
            return "recently changed" if self.recently_changed else "verified"
        return {
            PayeeStatus.new: "new payee",
            PayeeStatus.changed: "changed bank details",
            PayeeStatus.unreadable: "unreadable bank details",
        }[self.status]


class RunNotice(_Model):
    """A payment run tells a bill it took it, let it go, or paid it (the bill checks "paid"
    with the rail and its books before it believes it)."""

    run_id: str
    kind: Literal["joined", "left", "paid"]
    reason: str | None = None
    rail_payment_id: str | None = None
    erp_payment_id: str | None = None
    amount: Amount | None = None
    discount: Amount = Decimal("0")


class PayeeNotice(_Model):
    """The payee master tells a held bill that its vendor's payee changed (or a change it
    proposed was rejected): the bill checks again; the notice itself proves nothing."""

    change_id: str | None = None
    actor: str = "remit"
    summary: str | None = None


class PayeeImportRequest(_Model):
    """Seed the payee master from the ERP's vendor records, attested by a person."""

    connection_id: str
    attested_by: str
    attestation: str = Field(
        min_length=10, description="why the ERP's vendor master can be trusted, in words"
    )
    vendor_id: str | None = Field(default=None, description="one vendor; default: every one")


class PayeeImportResult(_Model):
    imported: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    proposed: list[str] = Field(default_factory=list, description="changes to review")
    without_details: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="details that do not validate")


class CheckPayeeRequest(_Model):
    """Compare the document's bank details with the payee master; propose a change if new."""

    workflow_id: str
    connection_id: str
    vendor_id: str
    vendor_name: str
    submitted_by: str
    document_number: str
    document_bank_account: str | None = Field(default=None, repr=False)
    document_fingerprint: str | None = None
    prefer_verified: bool = Field(
        default=False,
        description="a person chose to pay the verified details over the document's",
    )


# ---------------------------------------------------------------------------------------------
# Activity requests and results
# ---------------------------------------------------------------------------------------------


class CodedLine(_Model):
    description: str | None = None
    amount: Amount
    quantity: Quantity | None = None
    unit_amount: Quantity | None = None
    account_id: str
    account_as_written: str | None = Field(
        default=None, description="the account the document named (account_id is the ERP's)"
    )
    tracking: list[TrackingRef] = Field(default_factory=list)
    coding_reason: str | None = Field(
        default=None,
        description="why the line has this account, for a person (e.g. 'as written on the "
        "document', 'most used on Acme's last 12 bills (9 of 12)')",
    )
    tax_category: str | None = Field(
        default=None, description="the document's VAT category (UNCL 5305), None when it has none"
    )
    tax_rate: Quantity | None = Field(default=None, description="the document's VAT percent")
    tax_code_id: str | None = Field(
        default=None, description="the ERP's tax code for the category and rate"
    )


class MatchRequest(_Model):
    workflow_id: str
    connection_id: str
    draft: BillDraft
    vendor_id: str | None = Field(default=None, description="an operator's choice; skips lookup")
    account: str | None = Field(default=None, description="an operator's account for uncoded lines")
    submitted_by: str | None = Field(
        default=None, description="set by bills that check their payee while matching"
    )
    erp_bill_id: str | None = Field(
        default=None,
        description="a bill already in the ERP: re-read there (its vendor and coded lines are "
        "the ERP's) and not counted as its own duplicate",
    )


class MatchResult(_Model):
    vendor: Vendor | None = Field(default=None, description="None: unknown, create it")
    vendor_candidates: list[Vendor] = Field(default_factory=list)
    lines: list[CodedLine] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="why a person must look")
    duplicates: list[str] = Field(default_factory=list, description="likely duplicates found")
    payee: PayeeView | None = Field(
        default=None, description="the payee master's answer (when submitted_by was given)"
    )
    home_currency: CurrencyCode | None = None
    erp_bill: Bill | None = Field(
        default=None, description="the ERP's bill as re-read (for a bill that was already there)"
    )
    vendor_score: float | None = Field(
        default=None,
        description="how close the document's vendor name is to the vendor's (0-100), when the "
        "vendor was found by name",
    )
    vendor_match: str | None = Field(
        default=None, description="how the vendor was found: 'tax id', 'name' or 'similar name'"
    )


class PlanRequest(_Model):
    amount: Amount
    currency: CurrencyCode
    vendor_is_new: bool
    departments: list[str] = Field(default_factory=list)
    connection_id: str | None = Field(default=None, description="for the payment mode")


class CreateVendorRequest(_Model):
    connection_id: str
    reference: str
    idempotency_key: str
    vendor: Vendor


class CreateAccountRequest(_Model):
    connection_id: str
    account: NewAccount
    idempotency_key: str


class UpdateVendorRequest(_Model):
    connection_id: str
    vendor_id: str
    changes: VendorChanges
    idempotency_key: str


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
    """Pay a vendor. The activity pays the payee master's verified details for the bill's
    vendor, never details given here; `payee_account` (a document's, from bills started before
    the payee master) and `document_fingerprint` are only compared with the master's."""

    idempotency_key: str
    rail: RailKind | None
    amount: Amount
    currency: CurrencyCode
    payee_name: str
    payee_account: str | None = Field(default=None, repr=False)
    execution_date: date
    reference: str
    workflow_id: str
    connection_id: str | None = None
    vendor_id: str | None = None
    document_fingerprint: str | None = None
    prefer_verified: bool = False
    expected_payee_version: int | None = Field(
        default=None, description="the version the bill was shown; a newer one is noted"
    )
    run_bill_ids: list[str] = Field(
        default_factory=list, description="a payment run's payment: the bills it pays"
    )


class PaymentStatusRequest(_Model):
    payment_id: str


class PaymentEvent(_Model):
    """The bank's notification, delivered to the workflow as a signal.

    Only a hint: the bill re-reads the payment from the rail and acts on the rail's answer;
    a claim the rail contradicts changes nothing but a note in the audit trail.
    """

    payment: RailPayment


class PreparePaymentRequest(_Model):
    """Re-read the bill just before paying: still due? credits to use? today's rate?"""

    connection_id: str
    bill_id: str
    vendor_id: str
    currency: CurrencyCode
    workflow_id: str
    home_currency: CurrencyCode | None = None
    on: date | None = Field(default=None, description="the day to take the rate of")


class AvailableCredit(_Model):
    credit_id: str
    erp_credit_id: str
    document_number: str | None = None
    remaining: PositiveAmount


class PaymentPreparation(_Model):
    bill: Bill
    credits: list[AvailableCredit] = Field(default_factory=list)
    rate: ExchangeRate | None = None


class ApplyCreditsRequest(_Model):
    connection_id: str
    workflow_id: str
    bill_id: str
    vendor_id: str
    currency: CurrencyCode
    up_to: PositiveAmount = Field(description="apply no more than this (the amount due)")
    credits: list[AvailableCredit]


class AppliedCredit(_Model):
    credit_id: str
    erp_credit_id: str
    document_number: str | None = None
    amount: PositiveAmount
    erp_application_id: str | None = None


class LockRateRequest(_Model):
    connection_id: str
    currency: CurrencyCode
    home_currency: CurrencyCode
    on: date


class VoidPaymentRequest(_Model):
    connection_id: str
    payment_id: str
    idempotency_key: str


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
    discount: Amount = Decimal("0")
    exchange_rate: Amount | None = None
    lines: list[BillPaymentLine] | None = Field(
        default=None, description="several bills of the vendor in one payment (payment runs)"
    )


class ReconcileRequest(_Model):
    """Prove the books. `payment_id`/`paid`: the one payment of bills started before several
    payments per bill; `payments` (ERP payment id → cash applied, discount included separately)
    for the rest, with `credits` applied and remit's `discount`."""

    connection_id: str
    bill_id: str
    payment_id: str
    bill_total: Amount
    paid: Amount
    payments: dict[str, Amount] | None = None
    discounts: Amount = Decimal("0")
    credits: Amount = Decimal("0")
    voided: list[str] = Field(default_factory=list, description="payments that must be out")


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
        "payment_returned",
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
    discount: Amount = Decimal("0")
    exchange_rate: Amount | None = None
    erp_payment_id: str | None = None
    erp_voided: bool = Field(default=False, description="its ERP payment was voided (a return)")
    payee_masked: str | None = None


class FxLock(_Model):
    """The rate a foreign-currency bill was approved at (the bill is booked at `booked`)."""

    rate: ExchangeRate
    locked_at: datetime
    booked: Amount | None = Field(default=None, description="the rate the ERP bill carries")


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
    earlier_decisions: list[DecisionRecord] = Field(
        default_factory=list, description="decisions of approval rounds a rate move undid"
    )
    erp_bill_id: str | None = None
    attachment_id: str | None = None
    erp_payment_id: str | None = None
    payment: PaymentState = Field(default_factory=PaymentState)
    payments: list[PaymentState] = Field(
        default_factory=list, description="every payment made, returned ones included"
    )
    payee: PayeeView | None = None
    installments: list[Installment] = Field(default_factory=list)
    credits_applied: list[AppliedCredit] = Field(default_factory=list)
    home_currency: CurrencyCode | None = None
    fx: FxLock | None = None
    terms: PaymentTerms | None = None
    awaiting_run: bool = Field(default=False, description="waits for a payment run to pay it")
    payment_run_id: str | None = None
    reconciliation: ReconcileResult | None = None
    last_error: str | None = None
    operator_actions: list[str] = Field(default_factory=list)
    revision: int = 0


class ErpBillChanged(_Model):
    """The sync saw a bill's ERP record change while its workflow is open (`erp_bill_changed`
    signal): the workflow re-reads the bill itself; this says what the mirror saw."""

    erp_bill_id: str
    status: str | None = Field(default=None, description="the platform's status, unified")
    total: Amount | None = None
    balance: Amount | None = None
    deleted: bool = False
    seen_at: datetime


class RecordRequest(_Model):
    """A state snapshot for the store's projection plus audit entries not yet written, and
    notices to send with it (one activity instead of two)."""

    state: BillState
    events: list[AuditEntry] = Field(default_factory=list)
    notices: list[Notice] = Field(default_factory=list)


class SubmitResult(_Model):
    workflow_id: str
    created: bool
    status: LifecycleStatus | None = None


# ---- vendor credits (CreditWorkflow) ----------------------------------------------------


class PostCreditRequest(_Model):
    workflow_id: str
    connection_id: str
    credit_id: str
    reference: str
    idempotency_key: str
    vendor_id: str
    vendor_name: str
    draft: BillDraft
    lines: list[CodedLine]


class PostedCredit(_Model):
    erp_credit_id: str
    remaining: Amount


# ---- payment runs (PaymentRunWorkflow) ---------------------------------------------------

RunStatus = Literal[
    "gathering", "proposed", "paused", "paying", "paid", "needs_attention", "cancelled", "empty"
]


class RunBill(_Model):
    """A bill as the run carries it (what the store's projection knows, re-checked later)."""

    workflow_id: str
    erp_bill_id: str
    vendor_id: str
    vendor_name: str
    currency: CurrencyCode
    amount_due: Amount
    discount: Amount = Decimal("0")
    discount_deadline: date | None = None
    due_date: date | None = None
    document_number: str
    submitted_by: str
    payee_masked: str | None = None
    document_fingerprint: str | None = None
    excluded: str | None = Field(default=None, description="why it was taken out of the run")


class VendorGroup(_Model):
    vendor_id: str
    vendor_name: str
    currency: CurrencyCode
    bills: list[RunBill]
    payee_masked: str | None = None
    rail_payment_id: str | None = None
    rail_status: str | None = None
    erp_payment_id: str | None = None
    attempt: int = 0
    write_rejections: int = Field(
        default=0, description="how often the ERP refused the write (each needs a new key)"
    )
    problem: str | None = None

    @property
    def payable(self) -> list[RunBill]:
        return [b for b in self.bills if b.excluded is None]

    @property
    def cash(self) -> Decimal:
        return sum((b.amount_due - b.discount for b in self.payable), Decimal("0"))


class GatherRequest(_Model):
    run_id: str
    connection_id: str
    up_to: date
    today: date


class Gathered(_Model):
    bills: list[RunBill]
    payers: list[str]


class RecheckRequest(_Model):
    """Check a vendor's bills just before the run pays them."""

    run_id: str
    connection_id: str
    vendor_id: str
    bills: list[RunBill]
    today: date


class RunState(_Model):
    run_id: str
    connection_id: str
    run_date: date
    status: RunStatus = "gathering"
    groups: list[VendorGroup] = Field(default_factory=list)
    payers: list[str] = Field(default_factory=list)
    released_by: str | None = None
    paused_by: str | None = None
    waiting_for: str | None = None
    log: list[str] = Field(default_factory=list)
    revision: int = 0

    def totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for group in self.groups:
            out[group.currency] = out.get(group.currency, Decimal(0)) + group.cash
        return out

    def submitters(self) -> set[str]:
        return {b.submitted_by for g in self.groups for b in g.payable}


class RunRecord(_Model):
    state: RunState
    event: WebhookEventType | None = None


# ---- retention (RetentionWorkflow) --------------------------------------------------------


class RetentionRequest(_Model):
    idempotency_keys_for: timedelta = Field(
        default=timedelta(days=7), ge=timedelta(hours=24), description="at least 24 hours"
    )
    webhook_history_for: timedelta = Field(default=timedelta(days=30), ge=timedelta(days=4))


class RetentionResult(_Model):
    idempotency_keys: int = Field(description="keys forgotten")
    webhook_rows: int = Field(description="events, deliveries and attempts deleted")


def bill_summary(document_number: str, vendor_name: str, currency: str, total: Decimal) -> str:
    """The one-line name of a bill, as the Temporal UI and notices show it."""
    return f"Bill {document_number} · {vendor_name} · {format_money(total, currency)}"


def amount_for_search(amount: Decimal) -> float:
    """Search attributes only know Double; this value is for finding bills, never for money."""
    return float(amount)


BillInput.model_rebuild()
