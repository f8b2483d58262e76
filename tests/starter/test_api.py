"""The API's bank-events endpoint: signature check, and the signal it sends to a bill."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from connectors.bank import SIGNATURE_HEADER, BankEvent, BankPayee, BankPayment, sign_bank_payload
from connectors.bank.client import BankPaymentStatus
from connectors.base import RailKind, RailPaymentStatus
from starter.api import BANK_EVENTS_PATH, assemble_app
from workflows.models import PaymentEvent

SECRET = "whsec_test_secret"


class RecordingSignaller:
    """Stands in for RemitClient: records the signals, or fails like Temporal would."""

    def __init__(self, error: RPCError | None = None) -> None:
        self.sent: list[tuple[str, PaymentEvent]] = []
        self.error = error

    async def payment_update(self, workflow_id: str, event: PaymentEvent) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((workflow_id, event))

    async def payment_notice(
        self, workflow_id: str, event: PaymentEvent, *, last_state: object | None
    ) -> None:
        await self.payment_update(workflow_id, event)


def settled_event(workflow_id: str | None = "bill/demo-quickbooks/abc") -> bytes:
    now = datetime.now(UTC)
    payment = BankPayment(
        id="pay_123",
        rail=RailKind.ach,
        status=BankPaymentStatus.settled,
        amount=Decimal("900.00"),
        currency="USD",
        idempotency_key="bill/demo-quickbooks/abc/pay/1",
        payee=BankPayee(name="Northwind Office Supply"),
        execution_date=date(2026, 11, 21),
        reference="INV-2026-0412",
        metadata={"workflow_id": workflow_id} if workflow_id else {},
        created_at=now,
        expected_settlement_at=now,
        settled_at=now,
    )
    event = BankEvent(id="evt_1", type="payment.settled", created_at=now, payment=payment)
    return event.model_dump_json().encode()


async def post(signaller: RecordingSignaller, body: bytes, signature: str) -> httpx.Response:
    app = assemble_app(signaller, bank_webhook_secret=SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
        return await client.post(
            BANK_EVENTS_PATH,
            content=body,
            headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
        )


async def test_a_signed_event_signals_the_workflow_named_in_the_payment() -> None:
    signaller = RecordingSignaller()
    body = settled_event()

    response = await post(signaller, body, sign_bank_payload(SECRET, body, int(time.time())))

    assert response.status_code == 202
    assert len(signaller.sent) == 1
    workflow_id, event = signaller.sent[0]
    assert workflow_id == "bill/demo-quickbooks/abc"
    assert event.payment.id == "pay_123"
    assert event.payment.status == RailPaymentStatus.settled
    assert event.payment.amount == Decimal("900.00")


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="missing"),
        pytest.param(sign_bank_payload("whsec_other", b"{}", int(time.time())), id="other-body"),
        pytest.param("t=1,v1=deadbeef", id="stale"),
    ],
)
async def test_a_badly_signed_event_is_refused_and_signals_nothing(signature: str) -> None:
    signaller = RecordingSignaller()

    response = await post(signaller, settled_event(), signature)

    assert response.status_code == 400
    assert SIGNATURE_HEADER in response.json()["detail"]
    assert signaller.sent == []


async def test_a_body_changed_after_signing_is_refused() -> None:
    signaller = RecordingSignaller()
    body = settled_event()
    signature = sign_bank_payload(SECRET, body, int(time.time()))
    tampered = json.loads(body)
    tampered["payment"]["amount"] = "9000.00"

    response = await post(signaller, json.dumps(tampered).encode(), signature)

    assert response.status_code == 400
    assert signaller.sent == []


async def test_an_event_for_an_unknown_workflow_is_404() -> None:
    signaller = RecordingSignaller(RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""))
    body = settled_event("bill/demo-quickbooks/missing")

    response = await post(signaller, body, sign_bank_payload(SECRET, body, int(time.time())))

    assert response.status_code == 404
    assert "bill/demo-quickbooks/missing" in response.json()["detail"]


async def test_healthz_answers() -> None:
    app = assemble_app(RecordingSignaller(), bank_webhook_secret=SECRET)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
        response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}
