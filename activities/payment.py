"""Payment rails: pay only the payee master's verified details, with the workflow's key (looked
up first), and read a payment's status from the rail (the only settlement remit believes)."""

from __future__ import annotations

import asyncio

from accounting.payees import PayeeDetails, PayeeRail
from activities.errors import classified
from activities.payees import PayeeGate, bill_vendor
from connectors.base import Payee, PaymentInstruction, PaymentRail, RailKind, RailPayment
from store import Store
from workflows import contract
from workflows.contract import implements
from workflows.models import PaymentRequest, PaymentStatusRequest


def default_rail(currency: str, payee: Payee, preferred: PayeeRail | None = None) -> RailKind:
    """The vendor's preferred rail, else wire for IBANs and foreign currency, ACH with US bank
    details, else a mailed check."""
    if preferred is not None:
        return RailKind(preferred.value)
    if payee.iban or currency != "USD":
        return RailKind.wire
    if payee.account_number and payee.routing_number:
        return RailKind.ach
    return RailKind.check


def payee_for_rail(name: str, details: PayeeDetails) -> Payee:
    return Payee(
        name=details.account_name or name,
        account_number=details.account_number,
        routing_number=details.routing_number,
        iban=details.iban,
    )


class PaymentActivities:
    def __init__(self, rail: PaymentRail, gate: PayeeGate, store: Store) -> None:
        self._rail = rail
        self._gate = gate
        self._store = store

    @implements(contract.initiate_payment)
    @classified
    async def initiate_payment(self, req: PaymentRequest) -> RailPayment:
        # The key is the workflow's own (<workflow id>/pay/<n>): a retry, a lost response or a
        # restarted worker finds the payment made before instead of paying twice.
        existing = await self._rail.find_by_idempotency_key(req.idempotency_key)
        if existing is not None:
            return existing
        connection_id, vendor_id = req.connection_id, req.vendor_id
        vendor_name = req.payee_name
        if connection_id is None or vendor_id is None:
            # A bill started before the payee master names neither: its projection does.
            connection_id, vendor_id, vendor_name = await asyncio.to_thread(
                bill_vendor, self._store, req.workflow_id
            )
        assert connection_id is not None
        payable = await asyncio.to_thread(
            self._gate.details_for_payment,
            connection_id=connection_id,
            vendor_id=vendor_id or "",
            vendor_name=vendor_name,
            document_fingerprint=req.document_fingerprint,
            document_bank_account=req.payee_account,
            prefer_verified=req.prefer_verified,
        )
        payee = payee_for_rail(req.payee_name, payable.details)
        instruction = PaymentInstruction(
            rail=req.rail or default_rail(req.currency, payee, payable.details.rail),
            amount=req.amount,
            currency=req.currency,
            payee=payee,
            execution_date=req.execution_date,
            reference=req.reference,
            metadata={
                "workflow_id": req.workflow_id,
                "payee_id": payable.payee.id,
                "payee_version": str(payable.payee.version),
                **({"bills": str(len(req.run_bill_ids))} if req.run_bill_ids else {}),
            },
        )
        return await self._rail.initiate(instruction, idempotency_key=req.idempotency_key)

    @implements(contract.get_payment_status)
    @classified
    async def get_payment_status(self, req: PaymentStatusRequest) -> RailPayment:
        return await self._rail.get_payment(req.payment_id)
