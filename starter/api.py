"""remit's HTTP API: health checks and the sandbox bank's payment notifications."""

from __future__ import annotations

import logging
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from temporalio.service import RPCError, RPCStatusCode

from connectors.bank import SIGNATURE_HEADER, BankEvent, verify_bank_signature
from workflows.models import PaymentEvent

log = logging.getLogger("remit.api")

BANK_EVENTS_PATH = "/v1/rails/sandbox-bank/events"


class PaymentSignaller(Protocol):
    """What the API needs from RemitClient to pass a rail's news to a bill's workflow."""

    async def payment_update(self, workflow_id: str, event: PaymentEvent) -> None: ...


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(remit: PaymentSignaller, *, bank_webhook_secret: str) -> FastAPI:
    """The API app; `remit` is usually a RemitClient, `bank_webhook_secret` the bank's secret."""
    app = FastAPI(title="remit", version="0.1.0")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(BANK_EVENTS_PATH, status_code=202)
    async def bank_event(request: Request) -> JSONResponse:
        # The signature covers the exact bytes, so verify before parsing anything.
        body = await request.body()
        try:
            verify_bank_signature(
                bank_webhook_secret, request.headers.get(SIGNATURE_HEADER, ""), body
            )
        except ValueError as exc:
            return _problem(400, f"bad {SIGNATURE_HEADER}: {exc}")
        try:
            event = BankEvent.from_body(body)
        except (ValueError, ValidationError) as exc:
            return _problem(400, f"not a bank event: {exc}")
        workflow_id = event.payment.metadata.get("workflow_id")
        if not workflow_id:
            return _problem(404, f"payment {event.payment.id} names no workflow_id")
        try:
            await remit.payment_update(
                workflow_id, PaymentEvent(payment=event.payment.to_rail_payment())
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return _problem(404, f"no running bill workflow {workflow_id!r}")
            log.warning("signalling %s about %s failed: %s", workflow_id, event.id, exc)
            return _problem(503, "could not reach the workflow engine; send again later")
        return JSONResponse(
            {"accepted": event.id, "workflow_id": workflow_id, "type": event.type},
            status_code=202,
        )

    return app
