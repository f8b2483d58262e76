"""The activities workflows call, each declared once: name, task queue, input and output types."""

# The declarations are signatures only: the worker never runs them (it registers what
# `implements` marks in activities/), so their bodies are empty on purpose.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from temporalio import activity

from accounting import Account, Attachment, Bill, BillPayment, ExchangeRate, Vendor
from connectors.base import RailPayment
from workflows.drift_models import DriftConnectionsRequest, DriftPageRequest, DriftPageResult
from workflows.models import (
    AppliedCredit,
    ApplyCreditsRequest,
    ApprovalPlan,
    AttachRequest,
    CheckPayeeRequest,
    CreateAccountRequest,
    CreateVendorRequest,
    Gathered,
    GatherRequest,
    LockRateRequest,
    MatchRequest,
    MatchResult,
    Notice,
    PayeeImportRequest,
    PayeeImportResult,
    PayeeView,
    PaymentPreparation,
    PaymentRequest,
    PaymentStatusRequest,
    PlanRequest,
    PostBillRequest,
    PostCreditRequest,
    PostedCredit,
    PostPaymentRequest,
    PreparePaymentRequest,
    ReadBillRequest,
    RecheckRequest,
    ReconcileRequest,
    ReconcileResult,
    RecordRequest,
    RetentionRequest,
    RetentionResult,
    RunBill,
    RunRecord,
    UpdateVendorRequest,
    VoidPaymentRequest,
)
from workflows.sync_models import (
    BeginSyncRequest,
    BeginSyncResult,
    FinishSyncRequest,
    SyncPageRequest,
    SyncPageResult,
)
from workflows.webhooks import AttemptResult, DeliveryInput, DeliveryOutcome, PublishRequest

Queue = Literal["bills", "erp"]
"""bills: beside the workflows (the bank, the store); erp: every ERP call, on the rate-limited
queue `workflows.models.erp_task_queue` names."""

A = TypeVar("A")
R = TypeVar("R")
S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class Declared:
    name: str
    queue: Queue
    declaration: Callable[..., Awaitable[Any]]


DECLARED: dict[str, Declared] = {}
"""Every activity a workflow may call, by name (its name is in histories: never rename one)."""

IMPLEMENTS = "__remit_implements__"
"""The attribute `implements` sets on an activity's implementation: the name it implements."""


def _declare(queue: Queue) -> Callable[[F], F]:
    def declare(fn: F) -> F:
        name = fn.__name__
        if name in DECLARED:
            raise ValueError(f"activity {name} declared twice")
        DECLARED[name] = Declared(name=name, queue=queue, declaration=fn)
        return activity.defn(name=name)(fn)

    return declare


bills = _declare("bills")
erp = _declare("erp")


def name_of(declaration: Callable[..., Awaitable[Any]]) -> str:
    """The activity's name, as histories record it."""
    return declaration.__name__


def queue_of(declaration: Callable[..., Awaitable[Any]]) -> Queue:
    return DECLARED[name_of(declaration)].queue


def implements(
    declaration: Callable[[A], Awaitable[R]],
) -> Callable[[Callable[[S, A], Awaitable[R]]], Callable[[S, A], Awaitable[R]]]:
    """Mark a method as the implementation of a declared activity (mypy checks the input and
    output types against the declaration; the method must carry the declaration's name)."""
    name = name_of(declaration)
    if name not in DECLARED or DECLARED[name].declaration is not declaration:
        raise ValueError(f"{name} is not a declared activity")

    def mark(method: Callable[[S, A], Awaitable[R]]) -> Callable[[S, A], Awaitable[R]]:
        if method.__name__ != name:
            raise ValueError(f"{method.__qualname__} implements {name}: name it {name}")
        setattr(method, IMPLEMENTS, name)
        return activity.defn(name=name)(method)

    return mark


# ---- bills: matching and approval -----------------------------------------------------------


@erp
async def match_bill(req: MatchRequest) -> MatchResult:
    """Find the vendor, code the lines, look for duplicates (and check the payee)."""


@bills
async def plan_approval(req: PlanRequest) -> ApprovalPlan:
    """Who must approve, by the policy."""


@bills
async def check_payee(req: CheckPayeeRequest) -> PayeeView:
    """The payee master's view of the vendor's bank details."""


# ---- bills: the ERP ---------------------------------------------------------------------------


@erp
async def create_vendor(req: CreateVendorRequest) -> Vendor:
    """The vendor, found by remit's reference or created."""


@erp
async def update_vendor(req: UpdateVendorRequest) -> Vendor:
    """The vendor with the changes written (a write around bills, from the API)."""


@erp
async def create_account(req: CreateAccountRequest) -> Account:
    """The account, found in the chart by number (or name) or created (a write around bills)."""


@erp
async def post_bill(req: PostBillRequest) -> Bill:
    """The bill in the ERP, found by remit's reference or posted."""


@erp
async def attach_document(req: AttachRequest) -> Attachment:
    """The original document attached to the ERP bill."""


@erp
async def read_bill(req: ReadBillRequest) -> Bill:
    """The bill as the ERP has it now."""


@erp
async def prepare_payment(req: PreparePaymentRequest) -> PaymentPreparation:
    """The bill as the ERP has it, the vendor's unapplied credits and today's rate."""


@erp
async def apply_credits(req: ApplyCreditsRequest) -> list[AppliedCredit]:
    """The vendor's credits applied to the bill, oldest first."""


@erp
async def lock_rate(req: LockRateRequest) -> ExchangeRate:
    """Today's exchange rate for a foreign-currency bill."""


@erp
async def post_bill_payment(req: PostPaymentRequest) -> BillPayment:
    """The payment written to the ERP, found by remit's reference or posted."""


@erp
async def void_bill_payment(req: VoidPaymentRequest) -> BillPayment:
    """A returned payment voided in the ERP."""


@erp
async def reconcile_bill(req: ReconcileRequest) -> ReconcileResult:
    """The books proven: remit's payments against the ERP's."""


# ---- the bank ---------------------------------------------------------------------------------


@bills
async def initiate_payment(req: PaymentRequest) -> RailPayment:
    """A payment at the bank, found by its idempotency key or made."""


@bills
async def get_payment_status(req: PaymentStatusRequest) -> RailPayment:
    """A payment as the bank has it now."""


# ---- the store --------------------------------------------------------------------------------


@bills
async def record_bill(req: RecordRequest) -> None:
    """The bill's state, audit entries and notices in the store."""


@bills
async def notify(notice: Notice) -> None:
    """A notice to approvers or operators."""


# ---- vendor credits, payment runs, payees, retention ------------------------------------------


@erp
async def post_credit_memo(req: PostCreditRequest) -> PostedCredit:
    """The vendor credit in the ERP and the store's credit ledger."""


@bills
async def gather_run_bills(req: GatherRequest) -> Gathered:
    """Approved bills of the connection waiting for a run, due in time."""


@erp
async def recheck_run_bills(req: RecheckRequest) -> list[RunBill]:
    """A vendor's bills checked again just before the run pays them."""


@bills
async def record_payment_run(req: RunRecord) -> None:
    """The run in the store's listing (and its webhook)."""


@erp
async def import_vendor_payees(req: PayeeImportRequest) -> PayeeImportResult:
    """The ERP's vendor bank details imported into the payee master."""


@bills
async def purge_expired(req: RetentionRequest) -> RetentionResult:
    """Expired idempotency keys and webhook history deleted."""


# ---- webhooks (the outbox's dispatcher sends new deliveries without Temporal) -------------------


@bills
async def deliver_webhook(req: DeliveryInput) -> AttemptResult:
    """One attempt of a delivery a WebhookDeliveryWorkflow started before the outbox."""


@bills
async def finish_webhook_delivery(outcome: DeliveryOutcome) -> None:
    """Such a delivery's outcome recorded."""


@bills
async def publish_webhook_event(req: PublishRequest) -> None:
    """An event stored and fanned out to the endpoints that subscribe to it."""


# ---- the books' mirror --------------------------------------------------------------------------


@erp
async def begin_sync(req: BeginSyncRequest) -> BeginSyncResult:
    """A sync run recorded; the kinds the platform has and where each kind's pass starts."""


@erp
async def sync_page(req: SyncPageRequest) -> SyncPageResult:
    """One page read from the platform and applied to the mirror (open bills whose ERP bill
    changed are told); at a kind's last page its watermark stored (and, after a full pass,
    what the pass did not see marked deleted)."""


@bills
async def finish_sync(req: FinishSyncRequest) -> None:
    """The sync run's outcome recorded."""


# ---- drift: reconciled bills against the books' mirror ------------------------------------------


@bills
async def drift_connections(req: DriftConnectionsRequest) -> list[str]:
    """The connections a drift sweep compares (every stored one)."""


@bills
async def sweep_drift_page(req: DriftPageRequest) -> DriftPageResult:
    """One page of a connection's reconciled bills compared with the mirror: findings
    recorded once, cleared when gone, the bill flagged, audited and announced."""
