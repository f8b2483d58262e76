"""/v1/bills/{id}/audit (a bill's audit trail) and /v1/bills/resolve (short id to full id)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from starter.api.auth import Principal, authenticated
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError
from store import BillRow

# Included before the bills router: its `/{bill_id:path}` would swallow these paths.
router = APIRouter(prefix="/v1/bills", tags=["bills"])

MAX_CANDIDATES = 5


class AuditEntry(BaseModel):
    at: datetime
    actor: str
    kind: str
    summary: str
    result: str | None = None


class AuditTrail(BaseModel):
    id: str
    data: list[AuditEntry] = Field(description="in the order things happened")


class ResolvedId(BaseModel):
    id: str = Field(description="the bill's full workflow id")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _candidates(context: ApiContext, principal: Principal, ref: str) -> list[str]:
    """The caller's bill ids `ref` names, from the first of these that names any: the id
    itself, its last part (`<document number>-<hash>`), its hash (a suffix), a prefix of its
    last part."""
    table = BillRow.__table__  # type: ignore[attr-defined]
    like = _escape(ref)
    tiers = (
        table.c.workflow_id == ref,
        table.c.workflow_id.like(f"bill/%/{like}", escape="\\"),
        table.c.workflow_id.like(f"%-{like}", escape="\\"),
        table.c.workflow_id.like(f"bill/%/{like}%", escape="\\"),
    )
    with Session(context.store.engine) as session:
        for condition in tiers:
            statement = (
                select(table.c.workflow_id, table.c.connection_id)
                .where(condition)
                .order_by(table.c.workflow_id)
                .limit(MAX_CANDIDATES * 20)
            )
            # Another connection's bills do not exist for this key (not even as a hint).
            found = [wid for wid, conn in session.execute(statement) if principal.sees(conn)]
            if found:
                return found
    return []


@router.get(
    "/resolve",
    response_model=ResolvedId,
    summary="The full id of the bill a short id names (the `<number>-<hash>` part, the hash, "
    "or a prefix)",
)
async def resolve_id(
    ref: str = Query(min_length=1, max_length=255, description="a full or short bill id"),
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> ResolvedId:
    found = await asyncio.to_thread(_candidates, context, principal, ref.strip())
    if not found:
        raise ApiError(404, "not_found", f"no bill {ref!r}", param="ref")
    if len(found) > 1:
        shown = ", ".join(found[:MAX_CANDIDATES])
        more = f" and {len(found) - MAX_CANDIDATES} more" if len(found) > MAX_CANDIDATES else ""
        raise ApiError(
            409,
            "conflict",
            f"{ref!r} names {len(found)} bills ({shown}{more}); give more of the id",
            param="ref",
        )
    return ResolvedId(id=found[0])


@router.get(
    "/{bill_id:path}/audit",
    response_model=AuditTrail,
    summary="A bill's audit trail: who did what, when, and why",
)
async def audit_trail(
    bill_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> AuditTrail:
    row = await asyncio.to_thread(context.store.get_bill, bill_id)
    # A bill only just submitted may not be in the store yet; its id names its connection.
    parts = bill_id.split("/", 2)
    connection = row.connection_id if row is not None else (parts[1] if len(parts) == 3 else "")
    entries = await asyncio.to_thread(context.store.audit_for, bill_id)
    if not principal.sees(connection) or (row is None and not entries):
        raise ApiError(404, "not_found", f"no bill {bill_id!r}", param="id")
    return AuditTrail(
        id=bill_id,
        data=[
            AuditEntry(
                at=entry.at,
                actor=entry.actor,
                kind=entry.kind,
                summary=entry.summary,
                result=entry.result,
            )
            for entry in entries
        ],
    )
