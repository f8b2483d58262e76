"""The sandbox bank's signed payment notifications, passed to the bill they concern."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.service import RPCError, RPCStatusCode

from connectors.bank import SIGNATURE_HEADER, BankEvent, verify_bank_signature
from starter.api.errors import ErrorType, error_body, request_id_of
from store import Store
from workflows.models import BillState, PaymentEvent

# Notices that matter to a bill that has already finished: the money came back.
_AFTER_THE_END = {"payment.returned", "payment.failed"}

log = logging.getLogger("remit.api")

BANK_EVENTS_PATH = "/v1/rails/sandbox-bank/events"


class PaymentSignaller(Protocol):
    """What the API needs from RemitClient to pass a rail's news to a bill's workflow."""

    async def payment_update(self, workflow_id: str, event: PaymentEvent) -> None: ...

    async def payment_notice(
        self, workflow_id: str, event: PaymentEvent, *, last_state: BillState | None
    ) -> None: ...


def _finished_bill_knows(
    store: Store | None, workflow_id: str, payment_id: str
) -> BillState | None:
    """The last state of a finished bill that paid `payment_id` (to start its follow-up)."""
    if store is None:
        return None
    row = store.get_bill(workflow_id)
    if row is None:
        return None
    state = BillState.model_validate(row.state)
    if any(p.rail_payment_id == payment_id for p in state.payments):
        return state
    return None


def _problem(request: Request, status: int, type: ErrorType, detail: str) -> JSONResponse:
    # `detail` is what the bank (and its tests) read; `error` is the API's typed body.
    body = {"detail": detail, **error_body(type, detail, request_id=request_id_of(request))}
    return JSONResponse(body, status_code=status)


def bank_events_router(
    remit: PaymentSignaller, *, bank_webhook_secret: str, store: Store | None = None
) -> APIRouter:
    router = APIRouter(tags=["rails"])

    @router.post(BANK_EVENTS_PATH, status_code=202, summary="Sandbox bank payment events (signed)")
    async def bank_event(request: Request) -> JSONResponse:
        # The signature covers the exact bytes, so verify before parsing anything.
        body = await request.body()
        try:
            verify_bank_signature(
                bank_webhook_secret, request.headers.get(SIGNATURE_HEADER, ""), body
            )
        except ValueError as exc:
            return _problem(request, 400, "authentication_error", f"bad {SIGNATURE_HEADER}: {exc}")
        try:
            event = BankEvent.from_body(body)
        except (ValueError, ValidationError) as exc:
            return _problem(request, 400, "invalid_request_error", f"not a bank event: {exc}")
        workflow_id = event.payment.metadata.get("workflow_id")
        if not workflow_id:
            return _problem(
                request, 404, "not_found", f"payment {event.payment.id} names no workflow_id"
            )
        notice = PaymentEvent(payment=event.payment.to_rail_payment())
        try:
            try:
                await remit.payment_update(workflow_id, notice)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                last = (
                    await asyncio.to_thread(
                        _finished_bill_knows, store, workflow_id, event.payment.id
                    )
                    if event.type in _AFTER_THE_END
                    else None
                )
                if last is None:
                    return _problem(
                        request, 404, "not_found", f"no running bill workflow {workflow_id!r}"
                    )
                # The bill finished (say, reconciled) before its money came back.
                await remit.payment_notice(workflow_id, notice, last_state=last)
        except RPCError as exc:
            log.warning("signalling %s about %s failed: %s", workflow_id, event.id, exc)
            return _problem(
                request,
                503,
                "workflow_unavailable",
                "could not reach the workflow engine; send again later",
            )
        return JSONResponse(
            {"accepted": event.id, "workflow_id": workflow_id, "type": event.type},
            status_code=202,
        )

    return router
