"""/v1/payment-runs: start a connection's payment run, see its proposal, release or steer it."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from starter.api.auth import Principal, authenticated, connection_of, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError, rpc_error
from store import RunStore
from workflows.payment_run import RunState

router = APIRouter(prefix="/v1/payment-runs", tags=["payment runs"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRun(_Body):
    connection_id: str = Field(min_length=1, max_length=255)
    run_date: date | None = Field(default=None, description="default: today")
    horizon_days: int = Field(default=7, ge=0, le=90)


class RunAccepted(BaseModel):
    id: str


class Steer(_Body):
    reason: str | None = Field(default=None, max_length=2000)


class Pull(Steer):
    bill_id: str = Field(min_length=1, max_length=500)


class Run(BaseModel):
    id: str
    state: dict[str, Any]


class RunList(BaseModel):
    data: list[dict[str, Any]]


@router.post("", status_code=202, response_model=RunAccepted, summary="Start a payment run now")
async def start_run(
    body: NewRun,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> JSONResponse:
    if not principal.sees(body.connection_id) or await _no_connection(context, body.connection_id):
        raise ApiError(
            422,
            "invalid_request_error",
            f"no connection {body.connection_id!r}",
            param="connection_id",
        )
    try:
        run_id = await context.remit.start_payment_run(
            body.connection_id, run_date=body.run_date, horizon_days=body.horizon_days
        )
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None
    return JSONResponse({"id": run_id}, status_code=202)


async def _no_connection(context: ApiContext, connection_id: str) -> bool:
    return await asyncio.to_thread(context.store.get_connection, connection_id) is None


@router.get("", response_model=RunList, summary="Payment runs, newest first")
async def list_runs(
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    connection: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=200),
) -> RunList:
    visible = principal.visible(connection)
    runs = RunStore(context.store)
    if visible is None:
        rows = await asyncio.to_thread(runs.list, connection_id=connection, limit=limit)
    else:
        # A key's connections one by one (a handful), merged newest first as the store orders.
        rows = []
        for allowed in sorted(visible):
            rows += await asyncio.to_thread(runs.list, connection_id=allowed, limit=limit)
        rows.sort(key=lambda row: (row.run_date, row.created_at), reverse=True)
        rows = rows[:limit]
    return RunList(
        data=[
            {
                "id": row.run_id,
                "connection_id": row.connection_id,
                "run_date": row.run_date.isoformat(),
                "status": row.status,
                "totals": {
                    currency: f"{amount:f}"
                    for currency, amount in RunState.model_validate(row.state).totals().items()
                },
                "updated_at": row.updated_at.isoformat(),
            }
            for row in rows
        ]
    )


async def _steer(
    context: ApiContext,
    run_id: str,
    action: Literal["release", "pause", "resume", "pull"],
    principal: Principal,
    **kw: Any,
) -> Run:
    actor = principal.user_id
    if not principal.sees(connection_of(run_id)):
        raise ApiError(404, "not_found", f"no running payment run {run_id!r}")
    try:
        state = await context.remit.steer_run(run_id, action, actor=actor, **kw)
    except WorkflowUpdateFailedError as exc:
        reason = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        raise ApiError(409, "conflict", reason) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no running payment run {run_id!r}") from None
        raise rpc_error(exc, f"payment run {run_id!r}") from None
    return Run(id=run_id, state=state.model_dump(mode="json"))


@router.post("/{run_id:path}/release", response_model=Run, summary="Release a run (payers)")
async def release(
    run_id: str,
    body: Steer | None = None,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> Run:
    return await _steer(context, run_id, "release", principal)


@router.post("/{run_id:path}/pause", response_model=Run, summary="Pause a proposed run")
async def pause(
    run_id: str,
    body: Steer | None = None,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> Run:
    return await _steer(context, run_id, "pause", principal, reason=body.reason if body else None)


@router.post("/{run_id:path}/resume", response_model=Run, summary="Resume a paused run")
async def resume(
    run_id: str,
    body: Steer | None = None,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> Run:
    return await _steer(context, run_id, "resume", principal)


@router.post("/{run_id:path}/pull", response_model=Run, summary="Take a bill out of the run")
async def pull(
    run_id: str,
    body: Pull,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> Run:
    return await _steer(
        context, run_id, "pull", principal, reason=body.reason, bill_id=body.bill_id
    )


@router.get("/{run_id:path}", response_model=Run, summary="A run: its proposal and progress")
async def get_run(
    run_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> Run:
    if not principal.sees(connection_of(run_id)):
        raise ApiError(404, "not_found", f"no payment run {run_id!r}", param="id")
    try:
        state = await context.remit.run_state(run_id)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no payment run {run_id!r}", param="id") from None
        raise rpc_error(exc, f"payment run {run_id!r}") from None
    except WorkflowQueryFailedError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return Run(id=run_id, state=state.model_dump(mode="json"))
