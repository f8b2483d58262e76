"""Payment rails: initiate with the workflow's key (looked up first), and read settlement status."""

from __future__ import annotations

from temporalio import activity

from activities.errors import classified
from connectors.base import Payee, PaymentInstruction, PaymentRail, RailKind, RailPayment
from workflows.models import PaymentRequest, PaymentStatusRequest


def default_rail(currency: str, payee: Payee) -> RailKind:
    """Wire for IBANs and foreign currency, ACH with US bank details, else a mailed check."""
    if payee.iban or currency != "USD":
        return RailKind.wire
    if payee.account_number and payee.routing_number:
        return RailKind.ach
    return RailKind.check


def payee_from(name: str, account: str | None) -> Payee:
    """An IBAN, or US details written as "<routing>/<account>", as the document gave them."""
    if not account:
        return Payee(name=name)
    compact = account.replace(" ", "")
    if compact[:2].isalpha():
        return Payee(name=name, iban=compact)
    routing, _, number = compact.partition("/")
    if number:
        return Payee(name=name, routing_number=routing, account_number=number)
    return Payee(name=name, account_number=compact)


class PaymentActivities:
    def __init__(self, rail: PaymentRail) -> None:
        self._rail = rail

    @activity.defn(name="initiate_payment")
    @classified
    async def initiate_payment(self, req: PaymentRequest) -> RailPayment:
        # The key is the workflow's own (<workflow id>/pay/<n>): a retry, a lost response or a
        # restarted worker finds the payment made before instead of paying twice.
        existing = await self._rail.find_by_idempotency_key(req.idempotency_key)
        if existing is not None:
            return existing
        payee = payee_from(req.payee_name, req.payee_account)
        instruction = PaymentInstruction(
            rail=req.rail or default_rail(req.currency, payee),
            amount=req.amount,
            currency=req.currency,
            payee=payee,
            execution_date=req.execution_date,
            reference=req.reference,
            metadata={"workflow_id": req.workflow_id},
        )
        return await self._rail.initiate(instruction, idempotency_key=req.idempotency_key)

    @activity.defn(name="get_payment_status")
    @classified
    async def get_payment_status(self, req: PaymentStatusRequest) -> RailPayment:
        return await self._rail.get_payment(req.payment_id)
