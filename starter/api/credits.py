"""/v1/credits: vendor credits into the ERP, and what is left of each for the vendor's bills."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from accounting import quantize
from accounting.documents import DocumentType
from accounting.formats import DocumentFormat, parse_document
from starter.api.auth import Principal, authenticated, connection_of, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError, rpc_error
from store import CreditStore, VendorCreditRow

router = APIRouter(prefix="/v1/credits", tags=["credits"])


class CreditApplied(BaseModel):
    bill_id: str
    erp_bill_id: str
    amount: Decimal
    status: str
    erp_application_id: str | None


class Credit(BaseModel):
    id: str
    workflow_id: str
    connection_id: str
    vendor_id: str
    vendor_name: str
    erp_credit_id: str
    document_number: str | None
    currency: str
    total: Decimal
    remaining: Decimal = Field(description="not applied to any bill yet")
    applications: list[CreditApplied]
    created_at: datetime

    @classmethod
    def of(cls, row: VendorCreditRow, store: CreditStore) -> Credit:
        return cls(
            id=row.id,
            workflow_id=row.workflow_id,
            connection_id=row.connection_id,
            vendor_id=row.vendor_id,
            vendor_name=row.vendor_name,
            erp_credit_id=row.erp_credit_id,
            document_number=row.document_number,
            currency=row.currency,
            total=quantize(row.total, row.currency),
            remaining=quantize(row.remaining, row.currency),
            applications=[
                CreditApplied(
                    bill_id=a.bill_workflow_id,
                    erp_bill_id=a.erp_bill_id,
                    amount=quantize(a.amount, row.currency),
                    status=a.status,
                    erp_application_id=a.erp_application_id,
                )
                for a in store.applications_of(credit_id=row.id)
            ],
            created_at=row.created_at,
        )


class CreditList(BaseModel):
    data: list[Credit]
    unapplied: dict[str, Decimal] = Field(description="per vendor id and currency: what is left")


class CreditAccepted(BaseModel):
    id: str = Field(description="the credit's workflow id")
    created: bool


class CreditProgress(BaseModel):
    id: str
    state: dict[str, object]


@router.get("", response_model=CreditList, summary="Vendor credits and what remains of them")
async def list_credits(
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    connection: str | None = Query(default=None),
    vendor_id: str | None = Query(default=None),
    open_only: bool = Query(default=False, alias="open", description="only unapplied credit"),
) -> CreditList:
    store = CreditStore(context.store)

    def read() -> CreditList:
        found = store.find(connection_id=connection, vendor_id=vendor_id, open_only=open_only)
        rows = [row for row in found if principal.sees(row.connection_id)]
        unapplied: dict[str, Decimal] = {}
        for row in rows:
            key = f"{row.vendor_id} {row.currency}"
            unapplied[key] = quantize(unapplied.get(key, Decimal(0)) + row.remaining, row.currency)
        return CreditList(data=[Credit.of(row, store) for row in rows], unapplied=unapplied)

    return await asyncio.to_thread(read)


@router.post(
    "",
    status_code=202,
    response_model=CreditAccepted,
    summary="Submit a vendor credit (remit JSON, like a bill); it is matched and posted",
)
async def submit_credit(
    request: Request,
    principal: Principal = Depends(require_scope("submit")),
    context: ApiContext = Depends(api_context),
    connection_id: str | None = Query(default=None),
    key: str | None = Query(default=None, max_length=200),
) -> JSONResponse:
    body = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip() or None
    captured = await asyncio.to_thread(
        parse_document, body, file_name="credit" + _extension(media), media_type=media
    )
    kind = captured.draft.document_type
    if captured.format is not DocumentFormat.json_bill and kind is not DocumentType.credit_note:
        # An e-invoice says what it is; a remit JSON document is a credit because it came here.
        raise ApiError(
            422,
            "invalid_request_error",
            f"the document is {kind.value.replace('_', ' ')} {captured.draft.document_number} "
            f"(type code {captured.draft.type_code or 'none'}), not a credit note: submit it "
            "to POST /v1/bills",
            param="document",
        )
    if len(captured.draft.lines) > context.max_line_items:
        raise ApiError(
            422,
            "invalid_request_error",
            f"the document has {len(captured.draft.lines):,} line items; a credit may have at "
            f"most {context.max_line_items:,} (raise REMIT_MAX_LINE_ITEMS to allow more)",
            param="lines",
        )
    chosen = connection_id or context.default_connection_id
    connection = await asyncio.to_thread(context.store.get_connection, chosen) if chosen else None
    if connection is None or not principal.sees(connection.id):
        raise ApiError(
            422, "invalid_request_error", f"no connection {chosen!r}", param="connection_id"
        )
    try:
        result = await context.remit.submit_credit(
            captured.draft,
            connection_id=connection.id,
            platform=connection.platform,
            submitted_by=principal.user_id,
            key=key,
        )
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None
    accepted = CreditAccepted(id=result.workflow_id, created=result.created)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


@router.get("/{workflow_id:path}", response_model=CreditProgress, summary="A credit's progress")
async def get_credit(
    workflow_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> CreditProgress:
    if not principal.sees(connection_of(workflow_id)):
        raise ApiError(404, "not_found", f"no credit {workflow_id!r}", param="id")
    try:
        state = await context.remit.credit_state(workflow_id)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no credit {workflow_id!r}", param="id") from None
        raise rpc_error(exc, f"credit {workflow_id!r}") from None
    except WorkflowQueryFailedError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return CreditProgress(id=workflow_id, state=state.model_dump(mode="json"))


def _extension(media: str | None) -> str:
    """A file name's extension for the document kept (the bytes decide the format anyway)."""
    label = (media or "").lower()
    if label.endswith("xml"):
        return ".xml"
    if label.endswith("pdf"):
        return ".pdf"
    return ".json"
