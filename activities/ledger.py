"""ERP reads and writes: vendors, bills, attachments, bill payments, and the reconcile read-back.

Every write looks itself up by remit's reference first: after a lost response, a worker crash or
an operator's retry, the write that already landed is found and returned, never repeated.
"""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Protocol

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    CreditApplication,
    ExchangeRate,
    Vendor,
)
from accounting.model import account_in_chart
from accounting.normalize import vendor_key
from activities.connections import ConnectorProvider
from activities.errors import classified
from connectors.base import ConnectionConfig, Connector, Rejected
from connectors.caching import forget_reference_data
from connectors.fx import RateSource
from store import CreditStore, CreditUnavailable, VendorCreditRow
from store.types import utcnow
from workflows import contract
from workflows.contract import implements
from workflows.models import (
    AppliedCredit,
    ApplyCreditsRequest,
    AttachRequest,
    AvailableCredit,
    CreateAccountRequest,
    CreateVendorRequest,
    LockRateRequest,
    PaymentPreparation,
    PostBillRequest,
    PostCreditRequest,
    PostedCredit,
    PostPaymentRequest,
    PreparePaymentRequest,
    ReadBillRequest,
    ReconcileRequest,
    ReconcileResult,
    UpdateVendorRequest,
    VoidPaymentRequest,
)


class DocumentSource(Protocol):
    def get(self, sha256: str) -> bytes: ...


def source_account(connection: ConnectionConfig, currency: str) -> str:
    """The bank account to pay `currency` from, as the connection's settings name it."""
    settings = connection.settings
    account = settings.get(f"bank_account_id:{currency}")
    if account is None and settings.get("home_currency", currency) == currency:
        account = settings.get("bank_account_id")
    if account is None:
        raise Rejected(
            f"connection {connection.id} has no bank account for {currency}: set "
            f"settings['bank_account_id:{currency}'] to the ERP account payments come from",
            platform=connection.platform,
        )
    return account


async def rate_for(
    erp: Connector, rates: RateSource | None, currency: str, home_currency: str, on: date
) -> ExchangeRate:
    """The ERP's own rate where it keeps rates, else the configured provider's."""
    rate = await erp.get_exchange_rate(currency, on)
    if rate is None and rates is not None:
        rate = await rates.quote_rate(currency, home_currency, on)
    if rate is None:
        raise Rejected(
            f"no exchange rate for {currency} in {home_currency} on {on}: the ERP keeps none "
            "and the configured rate provider quotes none",
            platform=erp.platform,
        )
    return rate


class LedgerActivities:
    def __init__(
        self,
        connectors: ConnectorProvider,
        documents: DocumentSource,
        credits: CreditStore | None = None,
        rates: RateSource | None = None,
    ) -> None:
        self._connectors = connectors
        self._documents = documents
        self._credits = credits
        self._rates = rates

    @implements(contract.create_vendor)
    @classified
    async def create_vendor(self, req: CreateVendorRequest) -> Vendor:
        erp = await self._connectors.connector(req.connection_id)
        wanted = vendor_key(req.vendor.name)
        for vendor in await erp.find_vendors(name=req.vendor.name):
            if vendor_key(vendor.name) == wanted:
                return vendor
        return await erp.create_vendor(
            req.vendor, reference=req.reference, idempotency_key=req.idempotency_key
        )

    @implements(contract.update_vendor)
    @classified
    async def update_vendor(self, req: UpdateVendorRequest) -> Vendor:
        erp = await self._connectors.connector(req.connection_id)
        return await erp.update_vendor(
            req.vendor_id, req.changes, idempotency_key=req.idempotency_key
        )

    @implements(contract.create_account)
    @classified
    async def create_account(self, req: CreateAccountRequest) -> Account:
        erp = await self._connectors.connector(req.connection_id)
        # A retry may follow a write whose answer was lost: look in the chart first, read fresh
        # (a cached chart predates the write).
        forget_reference_data(erp)
        existing, conflict = account_in_chart(await erp.list_accounts(), req.account)
        if conflict is not None:
            raise Rejected(conflict, platform=erp.platform)
        if existing is not None:
            return existing
        created = await erp.create_account(req.account, idempotency_key=req.idempotency_key)
        forget_reference_data(erp)  # the next bill may code to it
        return created

    @implements(contract.post_bill)
    @classified
    async def post_bill(self, req: PostBillRequest) -> Bill:
        erp = await self._connectors.connector(req.connection_id)
        existing = await erp.find_bill_by_reference(req.reference, vendor_id=req.bill.vendor_id)
        if existing is not None:
            return existing
        return await erp.create_bill(
            req.bill, reference=req.reference, idempotency_key=req.idempotency_key
        )

    @implements(contract.attach_document)
    @classified
    async def attach_document(self, req: AttachRequest) -> Attachment:
        erp = await self._connectors.connector(req.connection_id)
        for attachment in await erp.list_attachments(req.bill_id):
            if attachment.file_name == req.document.file_name:
                return attachment
        content = await asyncio.to_thread(self._documents.get, req.document.sha256)
        return await erp.attach_document(
            req.bill_id,
            file_name=req.document.file_name,
            content_type=req.document.media_type,
            content=content,
            idempotency_key=req.idempotency_key,
        )

    @implements(contract.read_bill)
    @classified
    async def read_bill(self, req: ReadBillRequest) -> Bill:
        erp = await self._connectors.connector(req.connection_id)
        return await erp.get_bill(req.bill_id)

    @implements(contract.post_bill_payment)
    @classified
    async def post_bill_payment(self, req: PostPaymentRequest) -> BillPayment:
        erp = await self._connectors.connector(req.connection_id)
        existing = await erp.find_bill_payment_by_reference(req.reference, vendor_id=req.vendor_id)
        if existing is not None:
            if existing.voided:
                # Each payment has its own reference; a voided one here is not ours to reuse.
                raise Rejected(
                    f"bill payment {existing.id} under reference {req.reference} was voided; "
                    "a new payment needs a new reference",
                    platform=erp.platform,
                )
            return existing
        payment = BillPayment(
            vendor_id=req.vendor_id,
            payment_date=req.payment_date,
            currency=req.currency,
            exchange_rate=req.exchange_rate,
            source_account_id=source_account(erp.connection, req.currency),
            total=req.amount,
            lines=req.lines
            or [BillPaymentLine(bill_id=req.bill_id, amount=req.amount, discount=req.discount)],
            reference=req.reference,
            memo=req.memo,
        )
        return await erp.create_bill_payment(
            payment, reference=req.reference, idempotency_key=req.idempotency_key
        )

    @implements(contract.reconcile_bill)
    @classified
    async def reconcile_bill(self, req: ReconcileRequest) -> ReconcileResult:
        """Prove the books: remit's payments in effect with the amounts the bank paid, the ones
        it took back out of effect gone, and total minus balance equal to everything applied
        (every payment in effect, discounts and credits)."""
        erp = await self._connectors.connector(req.connection_id)
        bill = await erp.get_bill(req.bill_id)
        payments = [p for p in await erp.list_bill_payments(bill_id=req.bill_id) if not p.voided]
        if req.payments is None:
            return _reconcile_one(req, bill, payments)
        ids = sorted(p.id for p in payments if p.id)
        by_id = {p.id: p for p in payments}
        differences: list[str] = []
        for payment_id, paid in req.payments.items():
            found = by_id.get(payment_id)
            if found is None:
                differences.append(f"payment {payment_id} is not in effect on bill {req.bill_id}")
                continue
            applied = _applied(found, req.bill_id)
            if applied != paid:
                differences.append(
                    f"payment {payment_id} applies {applied} to the bill; the bank paid {paid}"
                )
        for payment_id in req.voided:
            if payment_id in by_id:
                differences.append(
                    f"payment {payment_id} is still in effect, though its money came back"
                )
        cash = sum((_applied(p, req.bill_id) for p in payments), Decimal("0"))
        discounts = sum(
            (ln.discount for p in payments for ln in p.lines if ln.bill_id == req.bill_id),
            Decimal("0"),
        )
        applications = await erp.list_credit_applications(bill_id=req.bill_id)
        credits = sum((a.amount for a in applications), Decimal("0"))
        if discounts != req.discounts:
            differences.append(
                f"the books show {discounts} of discounts; remit took {req.discounts}"
            )
        if credits < req.credits:
            differences.append(
                f"the books show {credits} of credits applied; remit applied {req.credits}"
            )
        balance = bill.balance if bill.balance is not None else bill.total
        settled = bill.total - balance
        if settled != cash + discounts + credits:
            differences.append(
                f"total {bill.total} minus balance {balance} is {settled}, but payments in "
                f"effect ({cash}), discounts ({discounts}) and credits ({credits}) make "
                f"{cash + discounts + credits}"
            )
        if bill.total != req.bill_total:
            differences.append(f"bill total is {bill.total}; remit posted {req.bill_total}")
        return ReconcileResult(
            ok=not differences, differences=differences, balance=balance, payment_ids=ids
        )

    # -- before paying ---------------------------------------------------------------------

    @implements(contract.prepare_payment)
    @classified
    async def prepare_payment(self, req: PreparePaymentRequest) -> PaymentPreparation:
        """The bill as the ERP has it now, the vendor's unapplied credits, and today's rate."""
        erp = await self._connectors.connector(req.connection_id)
        bill = await erp.get_bill(req.bill_id)
        credits: list[AvailableCredit] = []
        if self._credits is not None:
            rows = await asyncio.to_thread(
                self._credits.find,
                connection_id=req.connection_id,
                vendor_id=req.vendor_id,
                currency=req.currency,
                open_only=True,
            )
            credits = [
                AvailableCredit(
                    credit_id=row.id,
                    erp_credit_id=row.erp_credit_id,
                    document_number=row.document_number,
                    remaining=row.remaining,
                )
                for row in rows
            ]
        rate = None
        if req.home_currency and req.home_currency != req.currency:
            on = req.on or date.today()
            rate = await rate_for(erp, self._rates, req.currency, req.home_currency, on)
        return PaymentPreparation(bill=bill, credits=credits, rate=rate)

    @implements(contract.apply_credits)
    @classified
    async def apply_credits(self, req: ApplyCreditsRequest) -> list[AppliedCredit]:
        """Apply the vendor's credits to the bill, oldest first, up to `up_to`.

        Each (bill, credit) is reserved in the store under one key before the ERP is written,
        and the ERP's applications are read before writing, so a retry applies nothing twice.
        A credit the ERP refuses (spent elsewhere) is released and skipped.
        """
        assert self._credits is not None, "apply_credits needs the credit store"
        erp = await self._connectors.connector(req.connection_id)
        in_erp = {
            a.credit_memo_id: a for a in await erp.list_credit_applications(bill_id=req.bill_id)
        }
        left = req.up_to
        applied: list[AppliedCredit] = []
        for credit in req.credits:
            if left <= 0:
                break
            key = f"{req.workflow_id}/credit/{credit.credit_id}"
            try:
                reservation = await asyncio.to_thread(
                    self._credits.reserve,
                    key=key,
                    credit_id=credit.credit_id,
                    bill_workflow_id=req.workflow_id,
                    erp_bill_id=req.bill_id,
                    amount=min(credit.remaining, left),
                )
            except CreditUnavailable:
                continue
            amount = reservation.application.amount
            existing = in_erp.get(credit.erp_credit_id)
            if existing is None:
                try:
                    existing = await erp.apply_credit(
                        CreditApplication(
                            credit_memo_id=credit.erp_credit_id,
                            bill_id=req.bill_id,
                            amount=amount,
                        ),
                        idempotency_key=key,
                    )
                except Rejected:
                    await asyncio.to_thread(self._credits.release, key)
                    continue
            await asyncio.to_thread(self._credits.mark_applied, key, erp_application_id=existing.id)
            applied.append(
                AppliedCredit(
                    credit_id=credit.credit_id,
                    erp_credit_id=credit.erp_credit_id,
                    document_number=credit.document_number,
                    amount=amount,
                    erp_application_id=existing.id,
                )
            )
            left -= amount
        return applied

    @implements(contract.void_bill_payment)
    @classified
    async def void_bill_payment(self, req: VoidPaymentRequest) -> BillPayment:
        erp = await self._connectors.connector(req.connection_id)
        return await erp.void_bill_payment(req.payment_id, idempotency_key=req.idempotency_key)

    @implements(contract.post_credit_memo)
    @classified
    async def post_credit_memo(self, req: PostCreditRequest) -> PostedCredit:
        """Write the vendor credit (found by reference first), then put it in the ledger."""
        assert self._credits is not None, "post_credit_memo needs the credit store"
        erp = await self._connectors.connector(req.connection_id)
        draft = req.draft
        if draft.tax_amount:
            raise Rejected(
                f"credit {draft.document_number} carries tax; remit posts credits without "
                "tax lines for now: enter it in the ERP",
                platform=erp.platform,
            )
        memo = await erp.find_credit_memo_by_reference(req.reference, vendor_id=req.vendor_id)
        if memo is None:
            memo = await erp.create_credit_memo(
                BillCreditMemo(
                    vendor_id=req.vendor_id,
                    document_number=draft.document_number,
                    issue_date=draft.issue_date,
                    currency=draft.currency,
                    lines=[
                        BillLine(
                            description=line.description,
                            amount=line.amount,
                            account_id=line.account_id,
                            tracking=line.tracking,
                        )
                        for line in req.lines
                    ],
                    total=draft.total,
                    reference=req.reference,
                ),
                reference=req.reference,
                idempotency_key=req.idempotency_key,
            )
        assert memo.id is not None
        now = utcnow()
        row = await asyncio.to_thread(
            self._credits.record,
            VendorCreditRow(
                id=req.credit_id,
                workflow_id=req.workflow_id,
                connection_id=req.connection_id,
                vendor_id=req.vendor_id,
                vendor_name=req.vendor_name,
                erp_credit_id=memo.id,
                document_number=draft.document_number,
                currency=draft.currency,
                total=draft.total,
                remaining=memo.remaining if memo.remaining is not None else draft.total,
                created_at=now,
                updated_at=now,
            ),
        )
        return PostedCredit(erp_credit_id=row.erp_credit_id, remaining=row.remaining)

    @implements(contract.lock_rate)
    @classified
    async def lock_rate(self, req: LockRateRequest) -> ExchangeRate:
        erp = await self._connectors.connector(req.connection_id)
        return await rate_for(erp, self._rates, req.currency, req.home_currency, req.on)


def _applied(payment: BillPayment, bill_id: str) -> Decimal:
    return sum((ln.amount for ln in payment.lines if ln.bill_id == bill_id), Decimal("0"))


def _reconcile_one(
    req: ReconcileRequest, bill: Bill, payments: list[BillPayment]
) -> ReconcileResult:
    """Bills started before several payments per bill: exactly one payment, the right one."""
    ids = sorted(p.id for p in payments if p.id)
    differences: list[str] = []
    if len(payments) != 1:
        differences.append(
            f"{len(payments)} payments are linked to bill {req.bill_id} "
            f"({', '.join(ids) or 'none'}); expected exactly 1"
        )
    ours = [p for p in payments if p.id == req.payment_id]
    if not ours:
        differences.append(f"payment {req.payment_id} is not linked to bill {req.bill_id}")
    else:
        applied = _applied(ours[0], req.bill_id)
        if applied != req.paid:
            differences.append(
                f"payment {req.payment_id} applies {applied} to the bill; the bank paid {req.paid}"
            )
    expected_balance = req.bill_total - req.paid
    if bill.balance is not None and bill.balance != expected_balance:
        differences.append(f"bill balance is {bill.balance}; expected {expected_balance}")
    if bill.total != req.bill_total:
        differences.append(f"bill total is {bill.total}; remit posted {req.bill_total}")
    return ReconcileResult(
        ok=not differences, differences=differences, balance=bill.balance, payment_ids=ids
    )
