"""/v1/payees: the payee master (masked) and reviewed changes to vendors' bank details."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from accounting.payees import PayeeDetails
from starter.api.auth import Principal, authenticated, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError, rpc_error
from starter.payees import NotPermitted, PayeeService
from store import (
    ConnectionRow,
    Decision,
    PayeeChangeRefused,
    PayeeChangeRow,
    PayeeRow,
    RecordNotFound,
    SameAsVerified,
)
from workflows.models import PayeeImportRequest, PayeeImportResult

router = APIRouter(prefix="/v1/payees", tags=["payees"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Payee(BaseModel):
    """A vendor's verified payee as anyone may see it: masked, never the numbers."""

    id: str
    connection_id: str
    vendor_id: str
    vendor_name: str
    version: int
    status: str
    details: str = Field(description="masked, e.g. 'ACH ••••6789'")
    rail: str | None
    source: str
    verified_by: str
    verification_method: str
    verified_at: datetime
    approved_by: list[str]
    updated_at: datetime

    @classmethod
    def of(cls, row: PayeeRow) -> Payee:
        return cls(
            id=row.id,
            connection_id=row.connection_id,
            vendor_id=row.vendor_id,
            vendor_name=row.vendor_name,
            version=row.version,
            status=row.status,
            details=row.masked,
            rail=row.rail,
            source=row.source,
            verified_by=row.verified_by,
            verification_method=row.verification_method,
            verified_at=row.verified_at,
            approved_by=list(row.approved_by),
            updated_at=row.updated_at,
        )


class PayeeList(BaseModel):
    data: list[Payee]


class PayeeChange(BaseModel):
    id: str
    connection_id: str
    vendor_id: str
    vendor_name: str
    status: Literal["proposed", "verified", "approved", "rejected"]
    source: str
    proposed_by: str
    reason: str | None
    bill_id: str | None
    details: str = Field(description="the proposed details, masked")
    replaces: str | None = Field(description="the verified details it would replace, masked")
    verification_method: str | None
    verification_note: str | None
    verified_by: str | None
    verified_at: datetime | None
    approvals: list[dict[str, Any]]
    rejected_by: str | None
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime
    next_step: str | None = Field(description="what the change waits for, in words")

    @classmethod
    def of(cls, row: PayeeChangeRow, approvals_required: int) -> PayeeChange:
        next_step = {
            "proposed": "verification out of band by someone other than the proposer",
            "verified": (
                f"{approvals_required - len(row.approvals)} more approval(s) by people other "
                "than the proposer and the verifier"
            ),
        }.get(row.status)
        return cls(
            id=row.id,
            connection_id=row.connection_id,
            vendor_id=row.vendor_id,
            vendor_name=row.vendor_name,
            status=row.status,  # type: ignore[arg-type]
            source=row.source,
            proposed_by=row.proposed_by,
            reason=row.reason,
            bill_id=row.bill_workflow_id,
            details=row.masked,
            replaces=row.replaces_masked,
            verification_method=row.verification_method,
            verification_note=row.verification_note,
            verified_by=row.verified_by,
            verified_at=row.verified_at,
            approvals=list(row.approvals),
            rejected_by=row.rejected_by,
            rejection_reason=row.rejection_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            next_step=next_step,
        )


class PayeeChangeList(BaseModel):
    data: list[PayeeChange]


class ProposedChange(_Body):
    connection_id: str = Field(min_length=1, max_length=255)
    vendor_id: str = Field(min_length=1, max_length=255, description="the ERP vendor's id")
    vendor_name: str = Field(min_length=1, max_length=500)
    details: dict[str, Any] = Field(
        description="account_name, account_number + routing_number (US), or iban (+ bic); "
        "rail (ach, wire, check); remittance_email"
    )
    reason: str | None = Field(default=None, max_length=2000)


class Verification(_Body):
    method: str = Field(
        min_length=3,
        max_length=500,
        description="how the details were confirmed, e.g. 'call-back to the number on file'",
    )
    note: str | None = Field(default=None, max_length=2000)


class Approval(_Body):
    comment: str | None = Field(default=None, max_length=2000)


class Rejection(_Body):
    reason: str = Field(min_length=1, max_length=2000)


def _change(context: ApiContext, row: PayeeChangeRow) -> PayeeChange:
    return PayeeChange.of(row, context.payee_service().policy.payee_approvals_required)


async def _step(
    context: ApiContext, do: Callable[[PayeeService], Awaitable[Decision]]
) -> PayeeChange:
    """One step of a change through the service; its refusal answered with the reason."""
    try:
        decision = await do(context.payee_service())
    except (PayeeChangeRefused, NotPermitted, RecordNotFound) as err:
        raise _refused(err) from None
    return _change(context, decision.change)


async def _visible_change(
    context: ApiContext, principal: Principal, change_id: str
) -> PayeeChangeRow:
    """The change, or 404 alike for a missing one and one of a connection the key may not see."""
    row = await asyncio.to_thread(context.payee_service().payees.get_change, change_id)
    if row is None or not principal.sees(row.connection_id):
        raise ApiError(404, "not_found", f"no payee change {change_id!r}", param="id")
    return row


def _unknown_connection(principal: Principal, connection: ConnectionRow | None, named: str) -> None:
    if connection is None or not principal.sees(connection.id):
        raise ApiError(
            422, "invalid_request_error", f"no connection {named!r}", param="connection_id"
        )


def _refused(err: Exception) -> ApiError:
    if isinstance(err, NotPermitted):
        return ApiError(403, "permission_error", str(err), replayable=False)
    if isinstance(err, RecordNotFound):
        return ApiError(404, "not_found", str(err), param="id")
    return ApiError(409, "conflict", str(err))


@router.get("", response_model=PayeeList, summary="Verified payees (masked)")
async def list_payees(
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    connection: str | None = Query(default=None, description="connection id"),
) -> PayeeList:
    rows = await asyncio.to_thread(
        context.payee_service().payees.list_payees, connection_id=connection
    )
    return PayeeList(data=[Payee.of(row) for row in rows if principal.sees(row.connection_id)])


@router.get("/changes", response_model=PayeeChangeList, summary="Payee changes, oldest first")
async def list_changes(
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    status: Literal["proposed", "verified", "approved", "rejected"] | None = Query(default=None),
    connection: str | None = Query(default=None),
    vendor_id: str | None = Query(default=None),
) -> PayeeChangeList:
    rows = await asyncio.to_thread(
        context.payee_service().payees.list_changes,
        status=status,
        connection_id=connection,
        vendor_id=vendor_id,
    )
    return PayeeChangeList(
        data=[_change(context, row) for row in rows if principal.sees(row.connection_id)]
    )


@router.post(
    "/changes",
    status_code=201,
    response_model=PayeeChange,
    summary="Propose new bank details for a vendor (they pay nothing until reviewed)",
)
async def propose_change(
    body: ProposedChange,
    principal: Principal = Depends(require_scope("submit")),
    context: ApiContext = Depends(api_context),
) -> JSONResponse:
    service = context.payee_service()
    try:
        details = PayeeDetails.model_validate(body.details)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "details"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ApiError(422, "invalid_request_error", f"details: {message}", param=where) from None
    connection = await asyncio.to_thread(context.store.get_connection, body.connection_id)
    _unknown_connection(principal, connection, body.connection_id)
    try:
        proposal = await service.propose(
            connection_id=body.connection_id,
            vendor_id=body.vendor_id,
            vendor_name=body.vendor_name,
            details=details,
            by=principal.user_id,
            reason=body.reason,
        )
    except SameAsVerified as err:
        raise ApiError(409, "conflict", str(err)) from None
    return JSONResponse(
        _change(context, proposal.change).model_dump(mode="json"),
        status_code=201 if proposal.created else 200,
    )


@router.get("/changes/{change_id}", response_model=PayeeChange, summary="One payee change")
async def get_change(
    change_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> PayeeChange:
    return _change(context, await _visible_change(context, principal, change_id))


@router.post(
    "/changes/{change_id}/verify",
    response_model=PayeeChange,
    summary="Record how the new details were confirmed out of band",
)
async def verify_change(
    change_id: str,
    body: Verification,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> PayeeChange:
    await _visible_change(context, principal, change_id)
    return await _step(
        context,
        lambda service: service.verify(
            change_id, by=principal.user_id, method=body.method, note=body.note
        ),
    )


@router.post(
    "/changes/{change_id}/approve",
    response_model=PayeeChange,
    summary="Approve a verified change; the last approval makes it the vendor's payee",
)
async def approve_change(
    change_id: str,
    body: Approval | None = None,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> PayeeChange:
    await _visible_change(context, principal, change_id)
    return await _step(
        context,
        lambda service: service.approve(
            change_id, by=principal.user_id, comment=body.comment if body else None
        ),
    )


@router.post(
    "/changes/{change_id}/reject",
    response_model=PayeeChange,
    summary="Reject a change (the bills it held stay held, and say so)",
)
async def reject_change(
    change_id: str,
    body: Rejection,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> PayeeChange:
    await _visible_change(context, principal, change_id)
    return await _step(
        context, lambda service: service.reject(change_id, by=principal.user_id, reason=body.reason)
    )


class ImportRequest(_Body):
    connection_id: str = Field(min_length=1, max_length=255)
    attestation: str = Field(
        min_length=10,
        max_length=2000,
        description="why the ERP's vendor master can be trusted (who maintains it, how its "
        "bank details were checked); recorded as the verification of every payee imported",
    )
    vendor_id: str | None = Field(default=None, description="one vendor; default: every one")


@router.post(
    "/import",
    response_model=PayeeImportResult,
    summary="Seed the payee master from the ERP's vendor records (attested by you)",
)
async def import_payees(
    body: ImportRequest,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> PayeeImportResult:
    connection = await asyncio.to_thread(context.store.get_connection, body.connection_id)
    _unknown_connection(principal, connection, body.connection_id)
    try:
        return await context.remit.import_payees(
            PayeeImportRequest(
                connection_id=body.connection_id,
                attested_by=principal.user_id,
                attestation=body.attestation,
                vendor_id=body.vendor_id,
            )
        )
    except WorkflowFailureError as exc:
        raise ApiError(409, "conflict", f"the import failed: {exc.cause or exc}") from None
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None


@router.get("/{payee_id}", response_model=Payee, summary="One verified payee (masked)")
async def get_payee(
    payee_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> Payee:
    row = await asyncio.to_thread(context.payee_service().payees.get_payee_by_id, payee_id)
    if row is None or not principal.sees(row.connection_id):
        raise ApiError(404, "not_found", f"no payee {payee_id!r}", param="id")
    return Payee.of(row)
