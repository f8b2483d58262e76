"""Tests for the sandbox bank: its emulator over real HTTP and the SandboxBankRail client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from connectors.bank import SIGNATURE_HEADER, BankEvent, SandboxBankRail, verify_bank_signature
from connectors.base import (
    AuthExpired,
    NotFound,
    OutcomeUnknown,
    Payee,
    PaymentInstruction,
    PaymentRail,
    RailKind,
    RailPayment,
    RailPaymentStatus,
    RateLimited,
    Rejected,
    Unavailable,
)
from sandbox.bank import SandboxBank

BASE_URL = "http://bank.test"
API_KEY = "sk_test_unit"
INSPECTOR = "inspector-unit"
WEBHOOK_URL = "http://receiver.test/hooks/bank"
WEBHOOK_SECRET = "whsec_unit"
START = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Receiver:
    """A webhook endpoint that records what it got and answers with scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        self.received.append((dict(request.headers), await request.body()))
        status = self.statuses.pop(0) if self.statuses else 200
        await Response(status_code=status)(scope, receive, send)


@dataclass
class Harness:
    bank: SandboxBank
    rail: SandboxBankRail
    http: httpx.AsyncClient
    clock: FakeClock
    notified: list[RailPayment]
    receiver: Receiver

    async def control(self, method: str, path: str, body: Any) -> httpx.Response:
        return await self.http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {INSPECTOR}"}
        )


def bank_transport(bank: SandboxBank) -> httpx.ASGITransport:
    # sandbox.faults types ASGI scopes as dict; httpx wants MutableMapping (same protocol).
    return httpx.ASGITransport(app=cast(Any, bank.app))


def make_harness(**bank_options: Any) -> tuple[SandboxBank, FakeClock, Receiver, list[RailPayment]]:
    clock = FakeClock(START)
    receiver = Receiver()
    notified: list[RailPayment] = []

    async def notify(payment: RailPayment) -> None:
        notified.append(payment)

    options: dict[str, Any] = {"notify": notify, **bank_options}
    bank = SandboxBank(
        clock=clock,
        api_key=API_KEY,
        inspector_token=INSPECTOR,
        webhook_http=httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver)),
        **options,
    )
    return bank, clock, receiver, notified


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    bank, clock, receiver, notified = make_harness()
    async with httpx.AsyncClient(transport=bank_transport(bank), base_url=BASE_URL) as http:
        yield Harness(
            bank, SandboxBankRail(BASE_URL, API_KEY, http), http, clock, notified, receiver
        )
    await bank.aclose()


def ach(amount: str = "1250.50", account: str = "987654321", **extra: Any) -> PaymentInstruction:
    fields: dict[str, Any] = {
        "rail": RailKind.ach,
        "amount": Decimal(amount),
        "currency": "USD",
        "payee": Payee(name="Acme Supplies", account_number=account, routing_number="021000021"),
        "execution_date": date(2025, 3, 3),
        "reference": "INV-1001",
        "metadata": {"workflow_id": "bill/c1/INV-1001"},
    }
    fields.update(extra)
    return PaymentInstruction(**fields)


# -- idempotency -----------------------------------------------------------------------------


async def test_rail_satisfies_the_payment_rail_protocol(h: Harness) -> None:
    assert isinstance(h.rail, PaymentRail)


async def test_same_key_same_body_returns_the_same_payment(h: Harness) -> None:
    first = await h.rail.initiate(ach(), idempotency_key="bill/c1/INV-1001/pay/1")
    again = await h.rail.initiate(ach(), idempotency_key="bill/c1/INV-1001/pay/1")
    assert again.id == first.id
    assert again.status is RailPaymentStatus.pending
    assert again.amount == Decimal("1250.50")
    assert len(await h.rail.list_payments()) == 1

    raw = await h.http.post(
        "/v1/payments",
        content=json.dumps(ach().model_dump(mode="json")),
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "bill/c1/INV-1001/pay/1"},
    )
    assert raw.status_code == 200
    assert raw.headers["Idempotent-Replayed"] == "true"
    assert raw.json()["id"] == first.id


async def test_same_key_with_another_body_is_rejected_with_409(h: Harness) -> None:
    await h.rail.initiate(ach(), idempotency_key="k-1")
    with pytest.raises(Rejected) as caught:
        await h.rail.initiate(ach(amount="99.00"), idempotency_key="k-1")
    assert caught.value.status == 409
    assert "different request body" in caught.value.message
    assert len(await h.rail.list_payments()) == 1


async def test_initiate_without_idempotency_key_is_refused(h: Harness) -> None:
    raw = await h.http.post(
        "/v1/payments",
        content=json.dumps(ach().model_dump(mode="json")),
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert raw.status_code == 400
    assert "Idempotency-Key" in raw.json()["error"]["message"]


async def test_an_overlong_key_is_hashed_consistently(h: Harness) -> None:
    long_key = "bill/" + "x" * 400 + "/pay/1"
    first = await h.rail.initiate(ach(), idempotency_key=long_key)
    assert first.idempotency_key == long_key
    found = await h.rail.find_by_idempotency_key(long_key)
    assert found is not None and found.id == first.id
    again = await h.rail.initiate(ach(), idempotency_key=long_key)
    assert again.id == first.id


async def test_amounts_travel_as_strings(h: Harness) -> None:
    payment = await h.rail.initiate(ach(amount="1250.50"), idempotency_key="k-str")
    raw = await h.http.get(
        f"/v1/payments/{payment.id}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert raw.json()["amount"] == "1250.50"


# -- settlement ------------------------------------------------------------------------------


async def test_ach_settles_once_the_clock_passes_the_delay(h: Harness) -> None:
    payment = await h.rail.initiate(ach(), idempotency_key="k-settle")
    h.clock.advance(timedelta(days=1) - timedelta(seconds=1))
    assert (await h.rail.get_payment(payment.id)).status is RailPaymentStatus.pending

    h.clock.advance(timedelta(seconds=1))
    settled = await h.rail.get_payment(payment.id)
    assert settled.status is RailPaymentStatus.settled
    assert settled.settled_at == START + timedelta(days=1)


async def test_zero_delay_rail_is_instant() -> None:
    bank, _clock, _receiver, _notified = make_harness(
        settlement_delay={RailKind.wire: timedelta(0)}
    )
    async with httpx.AsyncClient(transport=bank_transport(bank)) as http:
        rail = SandboxBankRail(BASE_URL, API_KEY, http)
        wire = ach(rail=RailKind.wire, currency="EUR", amount="500.00")
        payment = await rail.initiate(wire, idempotency_key="k-wire")
    assert payment.status is RailPaymentStatus.settled
    assert payment.currency == "EUR"
    assert payment.settled_at == START


# -- notifications ---------------------------------------------------------------------------


async def test_settlement_notifies_exactly_once(h: Harness) -> None:
    payment = await h.rail.initiate(ach(), idempotency_key="k-notify")
    assert await h.bank.settle_due() == 0
    assert h.notified == []

    h.clock.advance(timedelta(days=1))
    assert await h.bank.settle_due() == 1
    assert await h.bank.settle_due() == 0
    await h.rail.get_payment(payment.id)
    assert await h.bank.settle_due() == 0

    assert [(p.id, p.status) for p in h.notified] == [(payment.id, RailPaymentStatus.settled)]
    assert h.notified[0].metadata == {"workflow_id": "bill/c1/INV-1001"}


async def test_webhook_is_signed_and_verifiable(h: Harness) -> None:
    put = await h.control(
        "PUT", "/_emulator/webhook", {"url": WEBHOOK_URL, "secret": WEBHOOK_SECRET}
    )
    assert put.status_code == 200
    payment = await h.rail.initiate(ach(), idempotency_key="k-hook")
    h.clock.advance(timedelta(days=1))
    await h.bank.settle_due()

    assert len(h.receiver.received) == 1
    headers, body = h.receiver.received[0]
    header = headers[SIGNATURE_HEADER.lower()]
    # Signed at the wall clock (the settlement clock may be anywhere): freshness is real time.
    wall = datetime.now(UTC)
    verify_bank_signature(WEBHOOK_SECRET, header, body, now=wall)
    event = BankEvent.from_body(body)
    assert event.type == "payment.settled"
    assert event.payment.id == payment.id
    assert event.payment.amount == Decimal("1250.50")
    assert json.loads(body)["payment"]["amount"] == "1250.50"

    tampered = body.replace(b"1250.50", b"9250.50")
    with pytest.raises(ValueError, match="does not match"):
        verify_bank_signature(WEBHOOK_SECRET, header, tampered, now=wall)
    with pytest.raises(ValueError, match="does not match"):
        verify_bank_signature("whsec_other", header, body, now=wall)
    with pytest.raises(ValueError, match="tolerance"):
        verify_bank_signature(WEBHOOK_SECRET, header, body, now=wall + timedelta(hours=1))
    with pytest.raises(ValueError):
        verify_bank_signature(WEBHOOK_SECRET, "v1=abc", body, now=wall)


async def test_failed_webhook_delivery_is_retried_until_acknowledged(h: Harness) -> None:
    h.bank.set_webhook(WEBHOOK_URL, WEBHOOK_SECRET)
    h.receiver.statuses = [500, 503]
    await h.rail.initiate(ach(), idempotency_key="k-retry")
    h.clock.advance(timedelta(days=1))

    assert await h.bank.settle_due() == 0
    assert len(h.bank.undelivered_events) == 1
    # Backing off: nothing is resent before the retry time.
    assert await h.bank.settle_due() == 0
    assert len(h.receiver.received) == 1

    h.clock.advance(timedelta(seconds=1))
    assert await h.bank.settle_due() == 0
    h.clock.advance(timedelta(seconds=2))
    assert await h.bank.settle_due() == 1
    assert h.bank.undelivered_events == []

    event_ids = {BankEvent.from_body(body).id for _headers, body in h.receiver.received}
    assert len(h.receiver.received) == 3 and len(event_ids) == 1
    # The notify hook succeeded on the first attempt and is not called again on retries.
    assert len(h.notified) == 1


async def test_failing_notify_hook_is_retried() -> None:
    calls: list[str] = []

    async def flaky(payment: RailPayment) -> None:
        calls.append(payment.id)
        if len(calls) == 1:
            raise RuntimeError("receiver down")

    bank, clock, _receiver, _notified = make_harness(notify=flaky)
    async with httpx.AsyncClient(transport=bank_transport(bank)) as http:
        payment = await SandboxBankRail(BASE_URL, API_KEY, http).initiate(
            ach(), idempotency_key="k"
        )
    clock.advance(timedelta(days=1))
    assert await bank.settle_due() == 0
    clock.advance(timedelta(seconds=1))
    assert await bank.settle_due() == 1
    assert calls == [payment.id, payment.id]


# -- returns ---------------------------------------------------------------------------------


async def test_injected_r01_return_for_a_payee_account(h: Harness) -> None:
    rules = {"match_payee_account": "000123", "code": "R01"}
    put = await h.control("PUT", "/_emulator/returns", rules)
    assert put.status_code == 200
    doomed = await h.rail.initiate(ach(account="000123"), idempotency_key="k-r01")
    fine = await h.rail.initiate(ach(account="555555"), idempotency_key="k-ok")
    h.clock.advance(timedelta(days=1))
    await h.bank.settle_due()

    returned = await h.rail.get_payment(doomed.id)
    assert returned.status is RailPaymentStatus.returned
    assert returned.return_code == "R01"
    assert returned.return_reason == "Insufficient funds"
    assert (await h.rail.get_payment(fine.id)).status is RailPaymentStatus.settled
    assert {(p.id, p.status) for p in h.notified} == {
        (doomed.id, RailPaymentStatus.returned),
        (fine.id, RailPaymentStatus.settled),
    }


async def test_next_n_payments_return_then_rule_is_spent(h: Harness) -> None:
    await h.control("PUT", "/_emulator/returns", {"rules": [{"code": "R02", "times": 1}]})
    first = await h.rail.initiate(ach(), idempotency_key="k-a")
    second = await h.rail.initiate(ach(), idempotency_key="k-b")
    h.clock.advance(timedelta(days=1))
    assert (await h.rail.get_payment(first.id)).return_code == "R02"
    assert (await h.rail.get_payment(second.id)).status is RailPaymentStatus.settled
    assert (await h.control("GET", "/_emulator/returns", None)).json() == {"rules": []}


async def test_late_return_settles_first_then_returns(h: Harness) -> None:
    rule = {"code": "R01", "return_after": 172800}
    await h.control("PUT", "/_emulator/returns", rule)
    payment = await h.rail.initiate(ach(), idempotency_key="k-late")
    h.clock.advance(timedelta(days=1))
    await h.bank.settle_due()
    assert (await h.rail.get_payment(payment.id)).status is RailPaymentStatus.settled
    h.clock.advance(timedelta(days=2))
    await h.bank.settle_due()
    assert (await h.rail.get_payment(payment.id)).status is RailPaymentStatus.returned
    assert [p.status for p in h.notified] == [RailPaymentStatus.settled, RailPaymentStatus.returned]


# -- commit-then-drop and error mapping ------------------------------------------------------


async def test_dropped_initiate_is_unknown_then_found_exactly_once(h: Harness) -> None:
    h.bank.faults.script("drop", match="POST /v1/payments")
    with pytest.raises(OutcomeUnknown):
        await h.rail.initiate(ach(), idempotency_key="k-drop")

    found = await h.rail.find_by_idempotency_key("k-drop")
    assert found is not None
    assert found.idempotency_key == "k-drop"
    retried = await h.rail.initiate(ach(), idempotency_key="k-drop")
    assert retried.id == found.id
    assert [p.id for p in await h.rail.list_payments()] == [found.id]
    assert await h.rail.find_by_idempotency_key("k-never-used") is None


async def test_server_error_maps_to_unavailable(h: Harness) -> None:
    h.bank.faults.script("5xx", match="POST /v1/payments")
    with pytest.raises(Unavailable) as caught:
        await h.rail.initiate(ach(), idempotency_key="k-5xx")
    assert caught.value.status == 500
    assert await h.rail.find_by_idempotency_key("k-5xx") is None


async def test_throttle_maps_to_rate_limited_with_retry_after(h: Harness) -> None:
    h.bank.faults.retry_after_seconds = 3
    h.bank.faults.script("429", match="GET /v1/payments")
    with pytest.raises(RateLimited) as caught:
        await h.rail.get_payment("pay_x")
    assert caught.value.retry_after == timedelta(seconds=3)


async def test_validation_errors_are_rejected_with_the_banks_message(h: Harness) -> None:
    with pytest.raises(Rejected, match="card payments can only be made in USD"):
        await h.rail.initiate(ach(rail=RailKind.card, currency="EUR"), idempotency_key="k-c")
    with pytest.raises(Rejected, match="more decimal places"):
        await h.rail.initiate(ach(amount="10.005"), idempotency_key="k-p")
    raw = await h.http.post(
        "/v1/payments",
        content=b'{"rail":"ach","amount":-5,"currency":"USD"}',
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k-neg"},
    )
    assert raw.status_code == 400
    assert "greater than zero" in raw.json()["error"]["message"]
    assert await h.rail.list_payments() == []


async def test_auth_and_not_found_mapping(h: Harness) -> None:
    with pytest.raises(NotFound):
        await h.rail.get_payment("pay_missing")
    wrong = SandboxBankRail(BASE_URL, "sk_wrong", h.http)
    with pytest.raises(AuthExpired):
        await wrong.get_payment("pay_missing")
    refused = await h.http.get("/_emulator/faults", headers={"Authorization": f"Bearer {API_KEY}"})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("error", "method", "expected"),
    [
        (httpx.ConnectError("refused"), "initiate", Unavailable),
        (httpx.ReadTimeout("slow"), "initiate", OutcomeUnknown),
        (httpx.ReadTimeout("slow"), "get", Unavailable),
    ],
)
async def test_transport_errors(error: Exception, method: str, expected: type[Exception]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as http:
        rail = SandboxBankRail(BASE_URL, API_KEY, http)
        with pytest.raises(expected):
            if method == "initiate":
                await rail.initiate(ach(), idempotency_key="k")
            else:
                await rail.get_payment("pay_1")


# -- cancel and audit listing ----------------------------------------------------------------


async def test_cancel_only_while_pending(h: Harness) -> None:
    pending = await h.rail.initiate(ach(), idempotency_key="k-cancel")
    canceled = await h.rail.cancel(pending.id)
    assert canceled.status is RailPaymentStatus.failed
    assert canceled.failure_reason and "canceled" in canceled.failure_reason
    h.clock.advance(timedelta(days=1))
    assert (await h.rail.get_payment(pending.id)).status is RailPaymentStatus.failed

    settled = await h.rail.initiate(ach(), idempotency_key="k-late-cancel")
    h.clock.advance(timedelta(days=1))
    with pytest.raises(Rejected, match="can no longer be canceled"):
        await h.rail.cancel(settled.id)


async def test_list_filters_by_metadata_and_pages(h: Harness) -> None:
    for n in range(3):
        await h.rail.initiate(
            ach(metadata={"workflow_id": f"wf-{n % 2}"}), idempotency_key=f"k-list-{n}"
        )
    ids = [p.id for p in await h.rail.list_payments(metadata={"workflow_id": "wf-0"})]
    assert len(ids) == 2
    raw = await h.http.get(
        "/v1/payments", params={"limit": "2"}, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    page = raw.json()
    assert page["has_more"] is True and len(page["data"]) == 2
