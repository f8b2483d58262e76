"""/v1/bills/drift: where the books changed after remit reconciled a bill, and settling it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from starter.api.auth import Principal, authenticated, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError, bad_cursor
from store import InvalidCursor
from store.drift import OPEN, DriftFindingRow, DriftStore, flag_bill
from store.types import utcnow

# Included before the bills router: its `/{bill_id:path}` would swallow these paths.
router = APIRouter(prefix="/v1/bills", tags=["bills"])
MAX_LIMIT = 500


class DriftFinding(BaseModel):
    id: str
    bill_id: str
    connection_id: str
    erp_bill_id: str | None
    kind: str = Field(
        description="bill_deleted, bill_voided, balance_reopened, total_changed, "
        "vendor_changed, payment_missing, payment_voided, payment_changed"
    )
    subject: str = Field(description="'bill' or the ERP payment's id")
    expected: dict[str, Any] = Field(description="what remit reconciled (money as strings)")
    found: dict[str, Any] = Field(description="what the books' mirror holds now")
    message: str
    status: str = Field(description="open, cleared (gone from the ERP) or resolved")
    detected_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = None

    @classmethod
    def of(cls, row: DriftFindingRow) -> DriftFinding:
        return cls(
            id=row.id,
            bill_id=row.workflow_id,
            connection_id=row.connection_id,
            erp_bill_id=row.erp_bill_id,
            kind=row.kind,
            subject=row.subject,
            expected=row.expected,
            found=row.found,
            message=row.message,
            status=row.status,
            detected_at=row.detected_at,
            last_seen_at=row.last_seen_at,
            resolved_at=row.resolved_at,
            resolved_by=row.resolved_by,
            note=row.note,
        )


class DriftPage(BaseModel):
    data: list[DriftFinding]
    has_more: bool
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ResolveDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000, description="what was done about it")


@router.get(
    "/drift",
    response_model=DriftPage,
    summary="Open drift findings: reconciled bills the books no longer agree with",
)
async def list_drift(
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    connection: str | None = Query(default=None, description="connection id"),
    status: str = Query(default=OPEN, pattern="^(open|cleared|resolved)$"),
    limit: int = Query(default=50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, description="`next_cursor` of the previous page"),
) -> DriftPage:
    visible = principal.visible(connection)
    if visible is not None and not visible:
        return DriftPage(data=[], has_more=False, next_cursor=None)
    try:
        rows, next_cursor = await asyncio.to_thread(
            DriftStore(context.store).list,
            status=status,
            connection_id=connection,
            connection_ids=visible,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor:
        raise bad_cursor() from None
    return DriftPage(
        data=[DriftFinding.of(row) for row in rows],
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )


@router.post(
    "/{bill_id:path}/drift/{finding_id}/resolve",
    response_model=DriftFinding,
    summary="Settle an open drift finding (an operator, with a note; audited)",
)
async def resolve_drift(
    bill_id: str,
    finding_id: str,
    body: ResolveDrift,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> DriftFinding:
    drifts = DriftStore(context.store)
    row = await asyncio.to_thread(drifts.get, finding_id)
    if row is None or row.workflow_id != bill_id or not principal.sees(row.connection_id):
        raise ApiError(404, "not_found", f"no drift finding {finding_id!r} of bill {bill_id!r}")
    if row.status != OPEN:
        raise ApiError(
            409, "conflict", f"drift finding {finding_id} is already {row.status}; nothing to do"
        )
    return DriftFinding.of(await asyncio.to_thread(_resolve, context, row, principal, body))


def _resolve(
    context: ApiContext, row: DriftFindingRow, principal: Principal, body: ResolveDrift
) -> DriftFindingRow:
    now = utcnow()
    drifts = DriftStore(context.store)
    try:
        resolved = drifts.resolve(row.id, by=principal.user_id, note=body.note, at=now)
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    context.store.append_audit(
        event_key=f"{row.workflow_id}/drift/{row.id}/resolved",
        workflow_id=row.workflow_id,
        at=now,
        actor=principal.user_id,
        kind="drift",
        summary=f"resolved: {row.message} ({body.note})",
        result="resolved",
        detail={"finding_id": row.id, "kind": row.kind},
    )
    bill = context.store.get_bill(row.workflow_id)
    if bill is not None:
        flag_bill(context.store, bill, drifts.open_for(row.workflow_id))
    return resolved
