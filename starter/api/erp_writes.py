"""Writes around bills through the unified layer: vendors, accounts, files attached to ERP bills.

Each write is a job (ErpWriteWorkflow) the caller follows at /v1/erp-jobs/{id}: the same
Idempotency-Key is the same job and one write; without one, every request is a new write.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from accounting import Account, CurrencyCode, NewAccount, Vendor, VendorChanges
from accounting.documents import DocumentRef
from accounting.model import account_in_chart
from accounting.normalize import vendor_key
from connectors.mirror import MirrorKind
from starter.api.auth import Principal, authenticated, require_scope
from starter.api.bills import file_name_of, form_file
from starter.api.context import ApiContext, api_context
from starter.api.erp import visible_connection
from starter.api.errors import ApiError, rpc_error
from starter.api.middleware import IDEMPOTENCY_HEADER
from store.mirror import MirrorRow, MirrorStore
from workflows.erp_write import (
    ErpWriteInput,
    ErpWriteOperation,
    ErpWriteOutcome,
    ErpWriteWorkflow,
    erp_write_job_id,
    job_connection,
)

router = APIRouter(tags=["books"])

# The file is held whole (in memory, then in the document store) before the job starts.
MAX_ATTACHMENT = 25 * 1024 * 1024


class VendorWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    legal_name: str | None = Field(default=None, max_length=200)
    tax_id: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)
    currency: CurrencyCode | None = None


def _job_view(job_id: str, **state: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "object": "erp_write_job",
        "connection_id": job_connection(job_id),
        "operation": job_id.rpartition("/")[2].rpartition("-")[0],
        **state,
        "links": {"self": f"/v1/erp-jobs/{job_id}"},
    }


async def _start(
    context: ApiContext,
    request: Request,
    principal: Principal,
    connection_id: str,
    operation: ErpWriteOperation,
    **what: Any,
) -> dict[str, Any]:
    """Start (or find) the job for this write; `what` is the write's own ErpWriteInput fields."""
    key = request.headers.get(IDEMPOTENCY_HEADER) or f"once-{uuid.uuid4()}"
    # Keys are the caller's: two callers with the same key are two writes.
    job_id = erp_write_job_id(connection_id, operation, f"{principal.user_id}:{key}")
    inp = ErpWriteInput(
        connection_id=connection_id,
        operation=operation,
        idempotency_key=job_id,
        requested_by=principal.user_id,
        **what,
    )
    created = True
    try:
        await context.remit.temporal.start_workflow(
            ErpWriteWorkflow.run,
            inp,
            id=job_id,
            task_queue=context.remit.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"{operation} on {connection_id} for {principal.user_id}"[:200],
        )
    except WorkflowAlreadyStartedError:
        created = False
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None
    return _job_view(job_id, status="running", created=created)


@router.post(
    "/v1/connections/{connection_id}/vendors",
    status_code=202,
    summary="Create a vendor in the ERP (with its tax id); answers the job",
)
async def create_vendor(
    connection_id: str,
    body: VendorWrite,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("submit"))],
    context: Annotated[ApiContext, Depends(api_context)],
) -> dict[str, Any]:
    await visible_connection(context, principal, connection_id)
    mirror = MirrorStore(context.store)
    wanted = vendor_key(body.name)
    same = await asyncio.to_thread(_vendor_named, mirror, connection_id, wanted)
    if same is not None:
        raise ApiError(
            409,
            "conflict",
            f"the ERP already has a vendor {same.data.get('name')!r} (id {same.platform_id}); "
            "use it, or name the new one differently",
            param="name",
        )
    vendor = Vendor(**body.model_dump())
    return await _start(
        context,
        request,
        principal,
        connection_id,
        "create_vendor",
        vendor=vendor,
    )


@router.patch(
    "/v1/connections/{connection_id}/vendors/{vendor_id}",
    status_code=202,
    summary="Change a vendor in the ERP (name, legal name, tax id, e-mail, active); the job",
)
async def update_vendor(
    connection_id: str,
    vendor_id: str,
    body: VendorChanges,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("submit"))],
    context: Annotated[ApiContext, Depends(api_context)],
) -> dict[str, Any]:
    await visible_connection(context, principal, connection_id)
    if not body.given():
        raise ApiError(
            422,
            "invalid_request_error",
            "nothing to change: give name, legal_name, tax_id, email or active",
            param="body",
        )
    mirror = MirrorStore(context.store)
    row = await asyncio.to_thread(mirror.get, connection_id, MirrorKind.vendors, vendor_id)
    if row is None or row.deleted_at is not None:
        raise ApiError(
            404,
            "not_found",
            f"no vendor {vendor_id!r} in {connection_id}'s books as last synced",
            param="vendor_id",
        )
    if body.name is not None:
        same = await asyncio.to_thread(_vendor_named, mirror, connection_id, vendor_key(body.name))
        if same is not None and same.platform_id != vendor_id:
            raise ApiError(
                409,
                "conflict",
                f"another vendor is named {same.data.get('name')!r} (id {same.platform_id})",
                param="name",
            )
    return await _start(
        context,
        request,
        principal,
        connection_id,
        "update_vendor",
        vendor_id=vendor_id,
        changes=body,
    )


def _vendor_named(mirror: MirrorStore, connection_id: str, wanted: str) -> MirrorRow | None:
    cursor: str | None = None
    while True:
        page = mirror.list(connection_id, MirrorKind.vendors, limit=500, cursor=cursor)
        for row in page.items:
            if vendor_key(str(row.data.get("name") or "")) == wanted:
                return row
        cursor = page.next_cursor
        if cursor is None:
            return None


@router.post(
    "/v1/connections/{connection_id}/accounts",
    status_code=202,
    summary="Add an account to the ERP's chart of accounts; answers the job",
)
async def create_account(
    connection_id: str,
    body: NewAccount,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("submit"))],
    context: Annotated[ApiContext, Depends(api_context)],
) -> dict[str, Any]:
    await visible_connection(context, principal, connection_id)
    chart = await asyncio.to_thread(_chart, MirrorStore(context.store), connection_id)
    same, conflict = account_in_chart(chart, body)
    if conflict is not None:
        number = (body.number or "").casefold()
        taken = bool(number) and any((a.number or "").casefold() == number for a in chart)
        raise ApiError(409, "conflict", conflict, param="number" if taken else "name")
    if same is not None:
        raise ApiError(
            409,
            "conflict",
            f"the ERP already has this account: {same.name!r} (id {same.id}); code bills to it",
            param="name",
        )
    return await _start(context, request, principal, connection_id, "create_account", account=body)


def _chart(mirror: MirrorStore, connection_id: str) -> list[Account]:
    """The chart of accounts as last synced (what a 409 can be told from before a job)."""
    found: list[Account] = []
    cursor: str | None = None
    while True:
        page = mirror.list(connection_id, MirrorKind.accounts, limit=500, cursor=cursor)
        found += [Account.model_validate(row.data) for row in page.items if row.data]
        cursor = page.next_cursor
        if cursor is None:
            return found


@router.post(
    "/v1/connections/{connection_id}/bills/{bill_id}/attachments",
    status_code=202,
    summary="Attach a file to a bill in the ERP; answers the job",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "multipart/form-data with the file in `file`, or the raw file as "
            "the body with `Content-Disposition: attachment; filename=...`",
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def attach_to_bill(
    connection_id: str,
    bill_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("submit"))],
    context: Annotated[ApiContext, Depends(api_context)],
) -> dict[str, Any]:
    await visible_connection(context, principal, connection_id)
    mirror = MirrorStore(context.store)
    row = await asyncio.to_thread(mirror.get, connection_id, MirrorKind.bills, bill_id)
    if row is None or row.deleted_at is not None:
        raise ApiError(
            404,
            "not_found",
            f"no bill {bill_id!r} in {connection_id}'s books as last synced; "
            f"POST /v1/connections/{connection_id}/sync first if it is new",
            param="bill_id",
        )
    content, file_name, media_type = await _read_file(request)
    if not content:
        raise ApiError(422, "invalid_request_error", "the file is empty", param="file")
    if len(content) > MAX_ATTACHMENT:
        raise ApiError(
            413,
            "invalid_request_error",
            f"the file is {len(content)} bytes; attachments are at most {MAX_ATTACHMENT}",
            param="file",
        )
    if not file_name:
        raise ApiError(
            422,
            "invalid_request_error",
            "name the file: a multipart file field, or Content-Disposition: attachment; "
            "filename=...",
            param="file",
        )
    ref: DocumentRef = await asyncio.to_thread(
        context.documents.put,
        content,
        media_type=media_type or "application/octet-stream",
        file_name=file_name,
    )
    return await _start(
        context,
        request,
        principal,
        connection_id,
        "attach_document",
        bill_id=bill_id,
        document=ref,
    )


async def _read_file(request: Request) -> tuple[bytes, str | None, str | None]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        _, upload = await form_file(request, "file")
        return await upload.read(), upload.filename, upload.content_type
    disposition = request.headers.get("content-disposition", "")
    return await request.body(), file_name_of(disposition), media or None


@router.get(
    "/v1/erp-jobs/{job_id:path}",
    summary="A write job: running, succeeded (with what the ERP wrote) or failed (and why)",
)
async def get_job(
    job_id: str,
    principal: Annotated[Principal, Depends(authenticated)],
    context: Annotated[ApiContext, Depends(api_context)],
) -> dict[str, Any]:
    connection_id = job_connection(job_id)
    if connection_id is None or not principal.sees(connection_id):
        raise ApiError(404, "not_found", f"no write job {job_id!r}", param="job_id")
    handle = context.remit.temporal.get_workflow_handle_for(ErpWriteWorkflow.run, job_id)
    try:
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.COMPLETED:
            status = "running" if described.status == WorkflowExecutionStatus.RUNNING else "failed"
            return _job_view(job_id, status=status)
        outcome: ErpWriteOutcome = await handle.result()
    except RPCError as exc:
        raise rpc_error(exc, f"write job {job_id!r}") from None
    return _job_view(job_id, **outcome.model_dump(mode="json"))
