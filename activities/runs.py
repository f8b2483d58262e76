"""Payment runs' side effects: which bills a run takes (the store), and a last look at each bill
in the ERP and the payee master just before the run pays it."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

from temporalio.exceptions import ApplicationError

from accounting import PaymentTerms, quantize
from activities.connections import ConnectorProvider
from activities.errors import classified
from activities.payees import PayeeGate
from activities.webhooks import WebhookOutbox
from store import BillRow, RunStore, Store
from workflows import contract
from workflows.approval import ApprovalPolicy, Directory
from workflows.contract import implements
from workflows.models import (
    BillState,
    Gathered,
    GatherRequest,
    LifecycleStatus,
    RecheckRequest,
    RunBill,
    RunRecord,
    RunState,
)


def discount_for(state: BillState, amount_due: Decimal, on: date) -> tuple[Decimal, date | None]:
    """The early-payment discount the bill's terms allow if paid on `on` (and its deadline)."""
    terms: PaymentTerms | None = state.terms
    if terms is None or not terms.discount_percent:
        return Decimal("0"), None
    deadline = state.issue_date + timedelta(days=terms.discount_days)
    if on > deadline:
        return Decimal("0"), deadline
    return quantize(amount_due * terms.discount_percent / 100, state.currency), deadline


def run_event_data(state: RunState) -> dict[str, object]:
    """What receivers learn of a run: totals, vendors and payees masked, bills by id."""
    return {
        "object": "payment_run",
        "id": state.run_id,
        "connection_id": state.connection_id,
        "run_date": state.run_date.isoformat(),
        "status": state.status,
        "released_by": state.released_by,
        "totals": {currency: f"{amount:f}" for currency, amount in state.totals().items()},
        "payments": [
            {
                "vendor": {"id": g.vendor_id, "name": g.vendor_name},
                "payee": g.payee_masked,
                "currency": g.currency,
                "amount": f"{g.cash:f}",
                "bills": [b.workflow_id for b in g.payable],
                "bank_payment_id": g.rail_payment_id,
                "erp_payment_id": g.erp_payment_id,
                "problem": g.problem,
            }
            for g in state.groups
        ],
    }


def run_bill_of(row: BillRow, today: date) -> RunBill | None:
    state = BillState.model_validate(row.state)
    if not state.awaiting_run or not state.erp_bill_id or not state.vendor_id:
        return None
    if state.payee is None or not state.payee.payable:
        return None
    discount, deadline = discount_for(state, state.amount_due, today)
    return RunBill(
        workflow_id=state.workflow_id,
        erp_bill_id=state.erp_bill_id,
        vendor_id=state.vendor_id,
        vendor_name=state.vendor_name,
        currency=state.currency,
        amount_due=state.amount_due,
        discount=discount,
        discount_deadline=deadline,
        due_date=state.due_date,
        document_number=state.document_number,
        submitted_by=state.submitted_by,
        payee_masked=state.payee.masked,
        document_fingerprint=state.payee.document_fingerprint,
    )


class RunActivities:
    def __init__(
        self,
        store: Store,
        connectors: ConnectorProvider,
        gate: PayeeGate,
        policy: ApprovalPolicy,
        directory: Directory,
        webhooks: WebhookOutbox | None = None,
    ) -> None:
        self._store = store
        self._runs = RunStore(store)
        self._connectors = connectors
        self._gate = gate
        self._policy = policy
        self._directory = directory
        self._webhooks = webhooks

    @implements(contract.record_payment_run)
    async def record_payment_run(self, req: RunRecord) -> None:
        """The run in the store's listing, and (once per event) its webhook, totals masked."""
        state = req.state
        await asyncio.to_thread(
            self._runs.record,
            run_id=state.run_id,
            connection_id=state.connection_id,
            run_date=state.run_date,
            status=state.status,
            revision=state.revision,
            state=state.model_dump(mode="json"),
        )
        if req.event is not None and self._webhooks is not None:
            await self._webhooks.publish(
                req.event,
                subject=state.run_id,
                event_id=f"{state.run_id}/{req.event.value.removeprefix('payment_run.')}",
                data=run_event_data(state),
            )

    @implements(contract.gather_run_bills)
    async def gather_run_bills(self, req: GatherRequest) -> Gathered:
        """Approved bills of the connection waiting for a run, due (or discounted) in time."""

        def read() -> list[RunBill]:
            found: list[RunBill] = []
            cursor: str | None = None
            while True:
                rows, cursor = self._store.list_bills(
                    status=LifecycleStatus.scheduled.value,
                    connection_id=req.connection_id,
                    cursor=cursor,
                )
                for row in rows:
                    bill = run_bill_of(row, req.today)
                    if bill is None:
                        continue
                    due = bill.due_date or req.today
                    takes_discount = bill.discount > 0 and bill.discount_deadline is not None
                    if due <= req.up_to or takes_discount:
                        found.append(bill)
                if cursor is None:
                    return found

        bills = await asyncio.to_thread(read)
        return Gathered(bills=bills, payers=self._directory.members(self._policy.payers_group))

    @implements(contract.recheck_run_bills)
    @classified
    async def recheck_run_bills(self, req: RecheckRequest) -> list[RunBill]:
        """Each bill again, just before paying: still waiting in remit, still due in the ERP
        (paying what the ERP shows), its payee still the verified one."""
        erp = await self._connectors.connector(req.connection_id)
        checked: list[RunBill] = []
        for bill in req.bills:
            row = await asyncio.to_thread(self._store.get_bill, bill.workflow_id)
            state = BillState.model_validate(row.state) if row is not None else None
            if state is None or not state.awaiting_run or state.payment_run_id != req.run_id:
                checked.append(
                    bill.model_copy(update={"excluded": "no longer waiting in this run"})
                )
                continue
            current = await erp.get_bill(bill.erp_bill_id)
            due = current.balance if current.balance is not None else current.total
            if current.status == "void":
                checked.append(bill.model_copy(update={"excluded": "voided in the ERP"}))
                continue
            if due <= 0 or current.status == "paid":
                checked.append(bill.model_copy(update={"excluded": "already paid in the ERP"}))
                continue
            try:
                await asyncio.to_thread(
                    self._gate.details_for_payment,
                    connection_id=req.connection_id,
                    vendor_id=req.vendor_id,
                    vendor_name=bill.vendor_name,
                    document_fingerprint=bill.document_fingerprint,
                    document_bank_account=None,
                    prefer_verified=False,
                )
            except ApplicationError as err:
                checked.append(bill.model_copy(update={"excluded": err.message}))
                continue
            discount, _ = discount_for(state, due, req.today)
            checked.append(bill.model_copy(update={"amount_due": due, "discount": discount}))
        return checked
