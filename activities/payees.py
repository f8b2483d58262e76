"""The payee gate: which details a bill may pay, and a proposed change for any the document names.

Every payment passes `PayeeGate.details_for_payment` (in the payment activity, for bills of
every version), so nothing reaches the bank but a vendor's verified details; `check` is what
a bill shows people before anyone decides, and what holds it in review until a reviewed change
makes its payee verified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from accounting.payees import PayeeDetails, UnreadableBankDetails, details_from_document
from activities.connections import ConnectorProvider
from activities.errors import classified
from connectors.base import all_vendors
from store import PayeeChangeRow, PayeeRow, PayeeStore, Store
from store.types import utcnow
from workflows import contract
from workflows.contract import implements
from workflows.models import (
    CheckPayeeRequest,
    PayeeImportRequest,
    PayeeImportResult,
    PayeeStatus,
    PayeeView,
)

log = logging.getLogger("remit.payees")

RECENTLY_CHANGED = timedelta(days=30)
PAYEE_NOT_VERIFIED = "PayeeNotVerified"

# Tells the outside (webhooks) that a document proposed a payee change; see WebhookOutbox.
AnnounceChange = Callable[[PayeeChangeRow, str], Awaitable[object]]


@dataclass(frozen=True)
class Payable:
    """The verified details a payment goes to, with the master row they came from."""

    payee: PayeeRow
    details: PayeeDetails


class PayeeGate:
    def __init__(self, payees: PayeeStore, *, announce: AnnounceChange | None = None) -> None:
        self.payees = payees
        self._announce = announce

    async def announce(self, change: PayeeChangeRow, event_type: str) -> None:
        if self._announce is not None:
            await self._announce(change, event_type)

    async def check(self, req: CheckPayeeRequest) -> PayeeView:
        view, proposed = await asyncio.to_thread(self._check, req)
        if proposed is not None:
            await self.announce(proposed, "payee.change_proposed")
        return view

    def _check(self, req: CheckPayeeRequest) -> tuple[PayeeView, PayeeChangeRow | None]:
        payee = self.payees.get_payee(req.connection_id, req.vendor_id)
        verified = payee if payee is not None and payee.status == "verified" else None
        document: PayeeDetails | None = None
        fingerprint = req.document_fingerprint
        if req.document_bank_account:
            try:
                document = details_from_document(
                    req.document_bank_account, account_name=req.vendor_name
                )
            except UnreadableBankDetails as err:
                return self._unreadable(verified, req, str(err)), None
            fingerprint = self.payees.fingerprint(document)
        base = _view_of(verified)
        if document is not None:
            base.document_masked = document.masked()
        base.document_fingerprint = fingerprint
        if verified is not None and (
            fingerprint is None or fingerprint == verified.fingerprint or req.prefer_verified
        ):
            return base, None
        if document is None:
            # Only a fingerprint from an earlier check (a follow-up run has no document).
            open_change = (
                self.payees.open_change_for(req.connection_id, req.vendor_id, fingerprint)
                if fingerprint
                else None
            )
            if open_change is not None:
                base.change_id, base.change_status = open_change.id, open_change.status
            if verified is not None or fingerprint is not None:
                base.status = PayeeStatus.changed if verified is not None else PayeeStatus.new
                base.reason = (
                    "the document's bank details are not verified"
                    + (f" (the verified ones are {verified.masked})" if verified else "")
                    + (f"; change {open_change.id} is {open_change.status}" if open_change else "")
                    + ": a reviewed change must make them so"
                    + (", or a person may choose to pay the verified details" if verified else "")
                )
                return base, None
            base.reason = (
                f"{req.vendor_name} has no verified payee and {req.document_number} names no "
                "bank details: propose the vendor's details (`remit payees propose`), have them "
                "verified out of band and approved by two people"
            )
            return base, None
        proposal = self.payees.propose(
            connection_id=req.connection_id,
            vendor_id=req.vendor_id,
            vendor_name=req.vendor_name,
            details=document,
            source="document",
            proposed_by=req.submitted_by,
            reason=(
                f"{req.document_number} names {document.masked()}"
                + (f"; the verified details are {verified.masked}" if verified else "")
            ),
            bill_workflow_id=req.workflow_id,
        )
        change = proposal.change
        base.change_id = change.id
        base.change_status = change.status
        if verified is None:
            base.status = PayeeStatus.new
            base.reason = (
                f"new payee: {req.vendor_name} has no verified bank details; "
                f"{document.masked()} from {req.document_number} is proposed as change "
                f"{change.id}, which must be verified out of band and approved by two people "
                f"other than {change.proposed_by}"
            )
        else:
            base.status = PayeeStatus.changed
            base.reason = (
                f"changed bank details: {req.document_number} names {document.masked()} but "
                f"the verified payee is {verified.masked}; change {change.id} must be verified "
                f"out of band and approved by two people other than {change.proposed_by} (or "
                "a person may choose to pay the verified details)"
            )
        return base, change if proposal.created else None

    def _unreadable(self, verified: PayeeRow | None, req: CheckPayeeRequest, why: str) -> PayeeView:
        view = _view_of(verified)
        if verified is not None and req.prefer_verified:
            return view
        view.status = PayeeStatus.unreadable
        view.reason = (
            f"the bank details on {req.document_number} are not valid ({why}); ask the vendor "
            "for correct details"
            + (", or a person may choose to pay the verified ones" if verified else "")
        )
        return view

    def details_for_payment(
        self,
        *,
        connection_id: str,
        vendor_id: str,
        vendor_name: str,
        document_fingerprint: str | None,
        document_bank_account: str | None,
        prefer_verified: bool,
    ) -> Payable:
        """The verified details to pay, or ApplicationError PayeeNotVerified (non-retryable)."""
        payee = self.payees.get_payee(connection_id, vendor_id)
        if payee is None or payee.status != "verified":
            raise _refused(
                f"{vendor_name} (vendor {vendor_id}) has no verified payee: the bank was not "
                "called; a payee change must be verified and approved by two people first"
            )
        if not prefer_verified:
            fingerprint = document_fingerprint
            if document_bank_account:
                try:
                    fingerprint = self.payees.fingerprint(
                        details_from_document(document_bank_account)
                    )
                except UnreadableBankDetails:
                    fingerprint = "unreadable"
            if fingerprint is not None and fingerprint != payee.fingerprint:
                raise _refused(
                    f"the document names other bank details than {vendor_name}'s verified "
                    f"payee ({payee.masked}): the bank was not called; the change must be "
                    "verified and approved by two people, or a person may choose to pay the "
                    "verified details"
                )
        return Payable(payee, self.payees.details_of(payee))


def _refused(message: str) -> ApplicationError:
    return ApplicationError(message, type=PAYEE_NOT_VERIFIED, non_retryable=True)


def _view_of(payee: PayeeRow | None) -> PayeeView:
    if payee is None:
        return PayeeView(status=PayeeStatus.new)
    return PayeeView(
        status=PayeeStatus.verified,
        payee_id=payee.id,
        version=payee.version,
        masked=payee.masked,
        verified_by=payee.verified_by,
        verified_on=payee.verified_at.date(),
        recently_changed=payee.version > 1 and utcnow() - payee.updated_at < RECENTLY_CHANGED,
    )


def bill_vendor(store: Store, workflow_id: str) -> tuple[str, str | None, str]:
    """(connection id, ERP vendor id, vendor name) of a bill, from the store's projection:
    what a payment request of a bill started before the payee master does not carry."""
    row = store.get_bill(workflow_id)
    if row is None:
        raise _refused(f"no bill {workflow_id} in the store: its payee cannot be checked")
    return row.connection_id, row.vendor_id, row.vendor_name


class PayeeActivities:
    def __init__(self, gate: PayeeGate) -> None:
        self._gate = gate

    @implements(contract.check_payee)
    async def check_payee(self, req: CheckPayeeRequest) -> PayeeView:
        return await self._gate.check(req)


class PayeeImportActivities:
    """Seeds the payee master from the ERP's vendor records, as an attested import.

    A vendor without a payee gets the ERP's primary bank details as verified, recorded as
    verified by the person who attests the ERP's vendor master (and how). Details that differ
    from a payee remit already has are never applied: they become a payee change to review.
    """

    def __init__(self, connectors: ConnectorProvider, gate: PayeeGate) -> None:
        self._connectors = connectors
        self._gate = gate

    @implements(contract.import_vendor_payees)
    @classified
    async def import_vendor_payees(self, req: PayeeImportRequest) -> PayeeImportResult:
        erp = await self._connectors.connector(req.connection_id)
        payees = self._gate.payees
        result = PayeeImportResult()
        vendors = (
            [await erp.get_vendor(req.vendor_id)]
            if req.vendor_id
            else await all_vendors(erp, active_only=True)
        )
        for vendor in vendors:
            assert vendor.id is not None
            accounts = await erp.get_vendor_bank_accounts(vendor.id)
            account = next((a for a in accounts if a.primary), accounts[0] if accounts else None)
            if account is None:
                result.without_details.append(vendor.name)
                continue
            try:
                details = PayeeDetails(
                    account_name=account.account_name or vendor.name,
                    account_number=account.account_number,
                    routing_number=account.routing_number if not account.iban else None,
                    iban=account.iban,
                    bic=account.bic,
                    country=account.country,
                )
            except ValueError as err:
                result.skipped.append(f"{vendor.name}: {err}")
                continue
            current = await asyncio.to_thread(payees.get_payee, req.connection_id, vendor.id)
            if current is None:
                await asyncio.to_thread(
                    payees.record_verified,
                    connection_id=req.connection_id,
                    vendor_id=vendor.id,
                    vendor_name=vendor.name,
                    details=details,
                    source=f"import:{erp.platform}",
                    verified_by=req.attested_by,
                    verification_method=(
                        f"imported from the {erp.platform} vendor record "
                        f"({account.platform_ref or 'bank details'}); {req.attestation}"
                    ),
                )
                result.imported.append(f"{vendor.name}: {details.masked()}")
            elif current.fingerprint == payees.fingerprint(details):
                result.unchanged.append(vendor.name)
            else:
                proposal = await asyncio.to_thread(
                    payees.propose,
                    connection_id=req.connection_id,
                    vendor_id=vendor.id,
                    vendor_name=vendor.name,
                    details=details,
                    source="erp",
                    proposed_by=req.attested_by,
                    reason=(
                        f"the {erp.platform} vendor record names {details.masked()}; remit's "
                        f"verified payee is {current.masked}"
                    ),
                )
                result.proposed.append(proposal.change.id)
                if proposal.created:
                    await self._gate.announce(proposal.change, "payee.change_proposed")
        return result
