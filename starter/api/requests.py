"""/v1/connections/{id}/requests: the ERP calls remit made through a connection, newest first."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from starter.api.auth import Principal, authenticated
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError, bad_cursor
from store import InvalidCursor, RequestLogRow, RequestLogStore

router = APIRouter(prefix="/v1/connections", tags=["connections"])
MAX_LIMIT = 500


class LoggedRequest(BaseModel):
    at: datetime
    actor: str = Field(description="who: the activity (and attempt) or the API caller")
    bill_id: str | None = Field(description="the workflow the call was made for")
    method: str
    path: str = Field(description="the platform's path (no query string; secrets masked)")
    status: int | None = Field(description="the platform's HTTP status (none: no answer)")
    outcome: str = Field(description="ok, or the error it was taken for (Rejected, ...)")
    error_code: str | None
    error_message: str | None
    duration_ms: float
    attempt: int = Field(description="the send loop's try of this request")

    @classmethod
    def of(cls, row: RequestLogRow) -> LoggedRequest:
        return cls(
            at=row.at,
            actor=row.actor,
            bill_id=row.workflow_id,
            method=row.method,
            path=row.path,
            status=row.status,
            outcome=row.outcome,
            error_code=row.error_code,
            error_message=row.error_message,
            duration_ms=row.duration_ms,
            attempt=row.attempt,
        )


class RequestPage(BaseModel):
    data: list[LoggedRequest]
    has_more: bool
    next_cursor: str | None


@router.get(
    "/{connection_id}/requests",
    response_model=RequestPage,
    summary="The connection's request log: each ERP call, who made it, the platform's answer",
)
async def list_requests(
    connection_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    since: datetime | None = Query(default=None, description="calls at or after this time"),
    min_status: int | None = Query(
        default=None, ge=100, le=599, description="only answers at or above it, e.g. 400"
    ),
    failed: bool = Query(default=False, description="only calls that failed (no answer too)"),
    limit: int = Query(default=50, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(default=None, description="`next_cursor` of the previous page"),
) -> RequestPage:
    if since is not None and since.tzinfo is None:
        raise ApiError(
            422, "invalid_request_error", "give `since` with its zone, e.g. Z", param="since"
        )
    row = await asyncio.to_thread(context.store.get_connection, connection_id)
    if row is None or not principal.sees(connection_id):
        raise ApiError(404, "not_found", f"no connection {connection_id!r}", param="id")
    try:
        rows, next_cursor = await asyncio.to_thread(
            RequestLogStore(context.store).list,
            connection_id,
            since=since,
            min_status=min_status,
            failed=failed,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor:
        raise bad_cursor() from None
    return RequestPage(
        data=[LoggedRequest.of(r) for r in rows],
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )
