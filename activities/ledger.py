"""ERP reads and writes: vendors, bills, attachments, bill payments, and the reconcile read-back.

Every write looks itself up by remit's reference first: after a lost response, a worker crash or
an operator's retry, the write that already landed is found and returned, never repeated.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Protocol

from temporalio import activity

from accounting import Attachment, Bill, BillPayment, BillPaymentLine, Vendor
from accounting.normalize import vendor_key
from activities.connections import ConnectorProvider
from activities.errors import classified
from connectors.base import ConnectionConfig, Rejected
from workflows.models import (
    AttachRequest,
    CreateVendorRequest,
    PostBillRequest,
    PostPaymentRequest,
    ReadBillRequest,
    ReconcileRequest,
    ReconcileResult,
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


class LedgerActivities:
    def __init__(self, connectors: ConnectorProvider, documents: DocumentSource) -> None:
        self._connectors = connectors
        self._documents = documents

    @activity.defn(name="create_vendor")
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

    @activity.defn(name="post_bill")
    @classified
    async def post_bill(self, req: PostBillRequest) -> Bill:
        erp = await self._connectors.connector(req.connection_id)
        existing = await erp.find_bill_by_reference(req.reference, vendor_id=req.bill.vendor_id)
        if existing is not None:
            return existing
        return await erp.create_bill(
            req.bill, reference=req.reference, idempotency_key=req.idempotency_key
        )

    @activity.defn(name="attach_document")
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

    @activity.defn(name="read_bill")
    @classified
    async def read_bill(self, req: ReadBillRequest) -> Bill:
        erp = await self._connectors.connector(req.connection_id)
        return await erp.get_bill(req.bill_id)

    @activity.defn(name="post_bill_payment")
    @classified
    async def post_bill_payment(self, req: PostPaymentRequest) -> BillPayment:
        erp = await self._connectors.connector(req.connection_id)
        existing = await erp.find_bill_payment_by_reference(req.reference, vendor_id=req.vendor_id)
        if existing is not None:
            return existing
        payment = BillPayment(
            vendor_id=req.vendor_id,
            payment_date=req.payment_date,
            currency=req.currency,
            source_account_id=source_account(erp.connection, req.currency),
            total=req.amount,
            lines=[BillPaymentLine(bill_id=req.bill_id, amount=req.amount)],
            reference=req.reference,
            memo=req.memo,
        )
        return await erp.create_bill_payment(
            payment, reference=req.reference, idempotency_key=req.idempotency_key
        )

    @activity.defn(name="reconcile_bill")
    @classified
    async def reconcile_bill(self, req: ReconcileRequest) -> ReconcileResult:
        """Prove the books: exactly one payment on the bill, the amount paid, the right balance."""
        erp = await self._connectors.connector(req.connection_id)
        bill = await erp.get_bill(req.bill_id)
        payments = [p for p in await erp.list_bill_payments(bill_id=req.bill_id) if not p.voided]
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
            applied = sum(
                (ln.amount for ln in ours[0].lines if ln.bill_id == req.bill_id), Decimal("0")
            )
            if applied != req.paid:
                differences.append(
                    f"payment {req.payment_id} applies {applied} to the bill; "
                    f"the bank paid {req.paid}"
                )
        expected_balance = req.bill_total - req.paid
        if bill.balance is not None and bill.balance != expected_balance:
            differences.append(f"bill balance is {bill.balance}; expected {expected_balance}")
        if bill.total != req.bill_total:
            differences.append(f"bill total is {bill.total}; remit posted {req.bill_total}")
        return ReconcileResult(
            ok=not differences, differences=differences, balance=bill.balance, payment_ids=ids
        )
