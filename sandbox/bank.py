"""An in-memory sandbox bank (ACH, wire, card, check): settlement delays, returns, webhooks."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from accounting import Amount, quantize
from connectors.bank.client import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    SIGNATURE_HEADER,
    BankEvent,
    BankEventType,
    BankPayee,
    BankPayment,
    BankPaymentStatus,
    sign_bank_payload,
)
from connectors.base import PaymentInstruction, RailKind, RailPayment
from sandbox.faults import ASGIApp, FaultInjector, FaultResponse, Faults
from sandbox.persist import Persistent

# Typical sandbox timings: ACH next day, wires within the hour (Fedwire), card two days to fund,
# checks about a week in the mail and at the payee's bank.
DEFAULT_SETTLEMENT_DELAY: dict[RailKind, timedelta] = {
    RailKind.ach: timedelta(days=1),
    RailKind.wire: timedelta(minutes=30),
    RailKind.card: timedelta(days=2),
    RailKind.check: timedelta(days=5),
}

# Currencies each rail can carry; None means any ISO 4217 currency (SWIFT wires).
RAIL_CURRENCIES: dict[RailKind, frozenset[str] | None] = {
    RailKind.ach: frozenset({"USD"}),
    RailKind.wire: None,
    RailKind.card: frozenset({"USD"}),
    RailKind.check: frozenset({"USD"}),
}

# NACHA return reason codes (the common ones); a rule may give its own reason for any other code.
ACH_RETURN_REASONS: dict[str, str] = {
    "R01": "Insufficient funds",
    "R02": "Account closed",
    "R03": "No account/unable to locate account",
    "R04": "Invalid account number structure",
    "R05": "Unauthorized debit to consumer account using corporate SEC code",
    "R06": "Returned per ODFI's request",
    "R07": "Authorization revoked by customer",
    "R08": "Payment stopped",
    "R09": "Uncollected funds",
    "R10": "Customer advises not authorized",
    "R16": "Account frozen",
    "R20": "Non-transaction account",
    "R29": "Corporate customer advises not authorized",
}

# The sandbox's foreign-exchange desk: mid rates in USD per unit of each currency, as a bank
# quotes them to its business customers (tests and the stack may set others).
DEFAULT_FX_RATES: dict[str, Decimal] = {
    "EUR": Decimal("1.0850"),
    "GBP": Decimal("1.2700"),
    "CAD": Decimal("0.7300"),
    "AUD": Decimal("0.6600"),
    "JPY": Decimal("0.006700"),
}

DEFAULT_API_KEY = "sk_test_sandbox_bank"
DEFAULT_INSPECTOR_TOKEN = "bank-inspector"
# Webhook redelivery backs off 1 s, 2 s, 4 s ... capped here, measured on the injected clock.
MAX_REDELIVERY_BACKOFF = timedelta(seconds=60)
MAX_PAGE_LIMIT = 100
DEFAULT_PAGE_LIMIT = 25

Notify = Callable[[RailPayment], Awaitable[None]]


class ReturnRule(BaseModel):
    """Make matching payments end returned (or failed) instead of settled.

    All given `match_*` fields must match; with none, every payment matches. `times` limits the
    rule to the next N matching payments (None: every one). With `return_after` > 0 the payment
    first settles and is returned that long afterwards, as ACH returns arrive in real life.
    """

    model_config = ConfigDict(extra="forbid")

    match_payee_account: str | None = None
    match_rail: RailKind | None = None
    match_metadata: dict[str, str] = Field(default_factory=dict)
    match_amount: Amount | None = None
    code: str = Field(min_length=1)
    reason: str | None = None
    outcome: Literal["returned", "failed"] = "returned"
    times: int | None = Field(default=None, ge=1)
    return_after: timedelta = timedelta(0)

    def matches(self, instruction: PaymentInstruction) -> bool:
        if self.match_rail is not None and instruction.rail != self.match_rail:
            return False
        if self.match_payee_account is not None and self.match_payee_account not in (
            instruction.payee.account_number,
            instruction.payee.iban,
        ):
            return False
        if self.match_amount is not None and instruction.amount != self.match_amount:
            return False
        return all(instruction.metadata.get(k) == v for k, v in self.match_metadata.items())

    def resolved_reason(self) -> str:
        return self.reason or ACH_RETURN_REASONS.get(self.code) or self.code


@dataclass
class _PlannedEnd:
    """How a payment will end, fixed when it is created (a return rule is consumed then)."""

    outcome: Literal["returned", "failed"]
    code: str
    reason: str
    return_after: timedelta


@dataclass
class _Record:
    payment: BankPayment
    instruction: PaymentInstruction
    settles_at: datetime
    planned_end: _PlannedEnd | None = None
    returns_at: datetime | None = None


@dataclass
class _Delivery:
    """One event and the targets that have not acknowledged it yet."""

    event: BankEvent
    pending_targets: set[str]
    next_attempt_at: datetime
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    sent_to: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event.model_dump(mode="json"),
            "pending_targets": sorted(self.pending_targets),
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": error_type, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _server_error() -> FaultResponse:
    body = {"error": {"type": "api_error", "message": "An internal error occurred at the bank."}}
    return 500, [(b"content-type", b"application/json")], json.dumps(body).encode()


def _throttled(retry_after: float) -> FaultResponse:
    body = {
        "error": {
            "type": "rate_limit_error",
            "message": "Too many requests hit the API too quickly. Retry after the given delay.",
        }
    }
    headers = [
        (b"content-type", b"application/json"),
        (b"retry-after", str(max(1, round(retry_after))).encode()),
    ]
    return 429, headers, json.dumps(body).encode()


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    problems = []
    first_param: str | None = None
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        first_param = first_param or loc or None
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(problems), first_param


def _last4(value: str | None) -> str | None:
    return value[-4:] if value else None


class SandboxBank(Persistent):
    """The sandbox bank. `.app` is the ASGI app (faults applied); state lives in memory, and in
    `state_file` too when one is given.

    Settlement follows the injected clock: a payment settles once `clock() >= created_at + delay`
    for its rail. That is evaluated on every API read and in `settle_due()`, which also delivers
    notifications (and retries failed deliveries): the stack calls it periodically, tests directly.
    """

    persisted = ("_payments", "_by_key", "_deliveries", "_return_rules", "fx_rates")
    # A read settles what is due (and queues its event): that must not be lost to a restart.
    reads_change_records = True

    def __init__(
        self,
        *,
        settlement_delay: dict[RailKind, timedelta] | None = None,
        clock: Callable[[], datetime] | None = None,
        faults: Faults | None = None,
        notify: Notify | None = None,
        api_key: str = DEFAULT_API_KEY,
        inspector_token: str = DEFAULT_INSPECTOR_TOKEN,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_http: httpx.AsyncClient | None = None,
        state_file: Path | None = None,
    ) -> None:
        """`state_file`: keep payments and their undelivered events there (restored if present);
        the keys and the webhook target are the caller's, given again at every start."""
        self.settlement_delay = {**DEFAULT_SETTLEMENT_DELAY, **(settlement_delay or {})}
        self.clock = clock or _system_clock
        self.faults = faults or Faults()
        self.notify = notify
        self.api_key = api_key
        self.inspector_token = inspector_token
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(16)
        self._webhook_http = webhook_http
        self._owns_webhook_http = False
        self._payments: dict[str, _Record] = {}
        self._by_key: dict[str, str] = {}
        self._return_rules: list[ReturnRule] = []
        self._deliveries: list[_Delivery] = []
        self._delivery_lock = asyncio.Lock()
        self.fx_rates: dict[str, Decimal] = dict(DEFAULT_FX_RATES)
        self.api = self._build_api()
        # FastAPI types its ASGI signature with MutableMapping; it is the same protocol.
        self.restored = self.restore_state(state_file)
        self.app = self.persisting(
            FaultInjector(
                cast(ASGIApp, self.api),
                self.faults,
                server_error=_server_error,
                throttled=_throttled,
            )
        )

    # -- driving time ---------------------------------------------------------------------------

    async def settle_due(self) -> int:
        """Move every payment whose time has come, then deliver due notifications.

        Returns how many notifications were fully delivered by this call.
        """
        now = self.clock()
        # Every settlement or return emits an event, so a new event means something changed.
        events_before = len(self._deliveries)
        self._evaluate(now)
        delivered = 0
        attempted = False
        async with self._delivery_lock:
            for delivery in self._deliveries:
                if delivery.pending_targets and delivery.next_attempt_at <= now:
                    attempted = True
                    if await self._attempt(delivery, now):
                        delivered += 1
        if attempted or len(self._deliveries) != events_before:
            self.save_state()
        return delivered

    advance = settle_due

    async def run_settlement_loop(self, interval_seconds: float = 1.0) -> None:
        """Call `settle_due` forever (for the embedded stack); cancel the task to stop it."""
        while True:
            await self.settle_due()
            await asyncio.sleep(interval_seconds)

    def set_return_rules(self, rules: list[ReturnRule]) -> None:
        self._return_rules = list(rules)

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        self.webhook_url = url
        if secret:
            self.webhook_secret = secret

    def reset(self) -> None:
        self._payments.clear()
        self._by_key.clear()
        self._return_rules.clear()
        self._deliveries.clear()
        self.faults.clear()

    @property
    def undelivered_events(self) -> list[BankEvent]:
        return [d.event for d in self._deliveries if d.pending_targets]

    async def aclose(self) -> None:
        if self._owns_webhook_http and self._webhook_http is not None:
            await self._webhook_http.aclose()
            self._webhook_http = None

    # -- state machine --------------------------------------------------------------------------

    def _evaluate(self, now: datetime) -> None:
        for record in self._payments.values():
            payment = record.payment
            if payment.status is BankPaymentStatus.pending and now >= record.settles_at:
                self._finish(record, record.settles_at)
            elif (
                payment.status is BankPaymentStatus.settled
                and record.returns_at is not None
                and now >= record.returns_at
            ):
                self._return(record, record.returns_at)

    def _finish(self, record: _Record, at: datetime) -> None:
        plan = record.planned_end
        if plan is None:
            self._update(record, status=BankPaymentStatus.settled, settled_at=at)
            self._emit("payment.settled", record, at)
        elif plan.outcome == "failed":
            self._update(
                record,
                status=BankPaymentStatus.failed,
                failed_at=at,
                failure_reason=f"{plan.code}: {plan.reason}",
            )
            self._emit("payment.failed", record, at)
        elif plan.return_after > timedelta(0):
            self._update(record, status=BankPaymentStatus.settled, settled_at=at)
            record.returns_at = at + plan.return_after
            self._emit("payment.settled", record, at)
        else:
            self._return(record, at)

    def _return(self, record: _Record, at: datetime) -> None:
        plan = record.planned_end
        assert plan is not None
        record.returns_at = None
        self._update(
            record,
            status=BankPaymentStatus.returned,
            returned_at=at,
            return_code=plan.code,
            return_reason=plan.reason,
        )
        self._emit("payment.returned", record, at)

    def _update(self, record: _Record, **changes: Any) -> None:
        record.payment = record.payment.model_copy(update=changes)

    def _emit(self, event_type: BankEventType, record: _Record, at: datetime) -> None:
        targets = set()
        if self.notify is not None:
            targets.add("notify")
        if self.webhook_url:
            targets.add("webhook")
        event = BankEvent(
            id="evt_" + secrets.token_hex(12),
            type=event_type,
            created_at=at,
            payment=record.payment,
        )
        self._deliveries.append(_Delivery(event, targets, next_attempt_at=at))

    async def _attempt(self, delivery: _Delivery, now: datetime) -> bool:
        delivery.attempts += 1
        errors = []
        for target in sorted(delivery.pending_targets):
            try:
                if target == "notify":
                    assert self.notify is not None
                    await self.notify(delivery.event.payment.to_rail_payment())
                else:
                    await self._post_webhook(delivery.event, now)
            except Exception as exc:  # any failure of the receiver means "try again later"
                errors.append(f"{target}: {exc!r}")
                continue
            delivery.pending_targets.discard(target)
            delivery.sent_to.append(target)
        if not delivery.pending_targets:
            delivery.delivered_at = now
            delivery.last_error = None
            return True
        delivery.last_error = "; ".join(errors)
        backoff = min(timedelta(seconds=2 ** (delivery.attempts - 1)), MAX_REDELIVERY_BACKOFF)
        delivery.next_attempt_at = now + backoff
        return False

    async def _post_webhook(self, event: BankEvent, now: datetime) -> None:
        if not self.webhook_url:
            raise RuntimeError("no webhook URL is configured")
        if self._webhook_http is None:
            self._webhook_http = httpx.AsyncClient(timeout=10)
            self._owns_webhook_http = True
        body = json.dumps(event.model_dump(mode="json"), separators=(",", ":")).encode()
        # Signed at the wall clock: the signature's timestamp proves the delivery is fresh,
        # whatever time the sandbox's settlement clock has been moved to.
        signature = sign_bank_payload(self.webhook_secret, body, int(time.time()))
        response = await self._webhook_http.post(
            self.webhook_url,
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )
        if not response.is_success:
            raise RuntimeError(f"webhook answered {response.status_code}")

    # -- creating payments ----------------------------------------------------------------------

    def _validate_for_rail(self, instruction: PaymentInstruction) -> JSONResponse | None:
        rail = instruction.rail
        allowed = RAIL_CURRENCIES[rail]
        if allowed is not None and instruction.currency not in allowed:
            return _error(
                400,
                f"{rail.value} payments can only be made in {', '.join(sorted(allowed))}, "
                f"not {instruction.currency}",
                code="currency_not_supported",
                param="currency",
            )
        if instruction.amount != quantize(instruction.amount, instruction.currency):
            return _error(
                400,
                f"amount {instruction.amount} has more decimal places than "
                f"{instruction.currency} allows",
                code="amount_invalid_precision",
                param="amount",
            )
        payee = instruction.payee
        if rail is RailKind.ach:
            if not payee.account_number or not payee.routing_number:
                return _error(
                    400,
                    "ach payments need payee.account_number and payee.routing_number",
                    code="payee_incomplete",
                    param="payee",
                )
        if rail is RailKind.wire and not (
            payee.iban or (payee.account_number and payee.routing_number)
        ):
            return _error(
                400,
                "wire payments need payee.iban, or payee.account_number and payee.routing_number",
                code="payee_incomplete",
                param="payee",
            )
        if payee.routing_number is not None and not re.fullmatch(r"\d{9}", payee.routing_number):
            return _error(
                400,
                f"payee.routing_number {payee.routing_number!r} must be 9 digits (ABA)",
                code="routing_number_invalid",
                param="payee.routing_number",
            )
        return None

    def _plan_end(self, instruction: PaymentInstruction) -> _PlannedEnd | None:
        for rule in self._return_rules:
            if rule.matches(instruction):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._return_rules.remove(rule)
                return _PlannedEnd(
                    rule.outcome, rule.code, rule.resolved_reason(), rule.return_after
                )
        return None

    def _create(self, instruction: PaymentInstruction, idempotency_key: str) -> _Record:
        now = self.clock()
        payment_id = "pay_" + secrets.token_hex(12)
        settles_at = now + self.settlement_delay[instruction.rail]
        payee = instruction.payee
        payment = BankPayment(
            id=payment_id,
            rail=instruction.rail,
            status=BankPaymentStatus.pending,
            amount=instruction.amount,
            currency=instruction.currency,
            idempotency_key=idempotency_key,
            payee=BankPayee(
                name=payee.name,
                account_number_last4=_last4(payee.account_number),
                routing_number=payee.routing_number,
                iban_last4=_last4(payee.iban),
            ),
            execution_date=instruction.execution_date,
            reference=instruction.reference,
            metadata=dict(instruction.metadata),
            created_at=now,
            expected_settlement_at=settles_at,
        )
        record = _Record(payment, instruction, settles_at, self._plan_end(instruction))
        self._payments[payment_id] = record
        self._by_key[idempotency_key] = payment_id
        return record

    # -- HTTP -----------------------------------------------------------------------------------

    def _authorized(self, request: Request, token: str) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(given.strip(), token)

    def _build_api(self) -> FastAPI:
        api = FastAPI(title="Sandbox Bank", docs_url=None, redoc_url=None, openapi_url=None)
        bank = self

        @api.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
            return _error(exc.status_code, str(exc.detail))

        @api.middleware("http")
        async def authenticate(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.url.path.startswith("/_emulator"):
                if not bank._authorized(request, bank.inspector_token):
                    return _error(
                        401, "inspector token required", error_type="authentication_error"
                    )
            elif not bank._authorized(request, bank.api_key):
                return _error(
                    401,
                    "Invalid API key provided. Send it as 'Authorization: Bearer <api key>'.",
                    error_type="authentication_error",
                )
            return await call_next(request)

        @api.post("/v1/payments")
        async def create_payment(request: Request) -> Response:
            key = request.headers.get("idempotency-key", "").strip()
            if not key:
                return _error(
                    400,
                    "An Idempotency-Key header is required to create a payment.",
                    code="idempotency_key_missing",
                )
            if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
                return _error(
                    400,
                    f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
                    code="idempotency_key_too_long",
                )
            try:
                raw = json.loads(await request.body(), parse_float=Decimal)
            except ValueError:
                return _error(400, "The request body is not valid JSON.", code="body_invalid")
            try:
                instruction = PaymentInstruction.model_validate(raw)
            except ValidationError as exc:
                message, param = _validation_message(exc)
                return _error(400, message, code="parameter_invalid", param=param)
            bank._evaluate(bank.clock())
            existing_id = bank._by_key.get(key)
            if existing_id is not None:
                existing = bank._payments[existing_id]
                if existing.instruction != instruction:
                    return _error(
                        409,
                        f"Idempotency-Key {key!r} was already used for payment {existing_id} "
                        "with a different request body. Use a new key for a new payment.",
                        error_type="idempotency_error",
                        code="idempotency_key_reused",
                    )
                return JSONResponse(
                    existing.payment.model_dump(mode="json"),
                    headers={"Idempotent-Replayed": "true"},
                )
            problem = bank._validate_for_rail(instruction)
            if problem is not None:
                return problem
            record = bank._create(instruction, key)
            # A zero delay settles at once, so the creating response already says so.
            bank._evaluate(bank.clock())
            return JSONResponse(record.payment.model_dump(mode="json"), status_code=201)

        @api.get("/v1/payments")
        async def list_payments(request: Request) -> Response:
            bank._evaluate(bank.clock())
            query = request.query_params
            try:
                limit = int(query.get("limit", DEFAULT_PAGE_LIMIT))
            except ValueError:
                return _error(400, "limit must be an integer", param="limit")
            if not 1 <= limit <= MAX_PAGE_LIMIT:
                return _error(400, f"limit must be between 1 and {MAX_PAGE_LIMIT}", param="limit")
            status = query.get("status")
            if status is not None and status not in BankPaymentStatus.__members__:
                return _error(400, f"unknown status {status!r}", param="status")
            rail = query.get("rail")
            if rail is not None and rail not in RailKind.__members__:
                return _error(400, f"unknown rail {rail!r}", param="rail")
            metadata = {
                name[len("metadata[") : -1]: value
                for name, value in query.multi_items()
                if name.startswith("metadata[") and name.endswith("]")
            }
            key = query.get("idempotency_key")
            records = list(bank._payments.values())
            if key is not None:
                found = bank._by_key.get(key)
                records = [bank._payments[found]] if found else []
            matching = [
                r.payment
                for r in records
                if (status is None or r.payment.status == status)
                and (rail is None or r.payment.rail == rail)
                and all(r.payment.metadata.get(k) == v for k, v in metadata.items())
            ]
            after = query.get("starting_after")
            if after is not None:
                ids = [p.id for p in matching]
                if after not in ids:
                    return _error(
                        400, f"starting_after {after!r} is not in this list", param="starting_after"
                    )
                matching = matching[ids.index(after) + 1 :]
            page = matching[:limit]
            return JSONResponse(
                {
                    "object": "list",
                    "url": "/v1/payments",
                    "has_more": len(matching) > limit,
                    "data": [p.model_dump(mode="json") for p in page],
                }
            )

        @api.get("/v1/fx/rates/{currency}")
        async def fx_rate(currency: str, request: Request) -> Response:
            quote = request.query_params.get("quote", "USD").upper()
            code = currency.upper()
            usd = {**bank.fx_rates, "USD": Decimal(1)}
            if code not in usd or quote not in usd:
                return _error(
                    404,
                    f"no rate for {code} in {quote}; quoted: {', '.join(sorted(usd))}",
                    code="rate_unavailable",
                )
            rate = (usd[code] / usd[quote]).quantize(Decimal("0.000001"))
            return JSONResponse(
                {
                    "object": "fx_rate",
                    "currency": code,
                    "quote": quote,
                    "rate": str(rate),
                    "as_of": bank.clock().date().isoformat(),
                }
            )

        @api.get("/v1/payments/{payment_id}")
        async def get_payment(payment_id: str) -> Response:
            bank._evaluate(bank.clock())
            record = bank._payments.get(payment_id)
            if record is None:
                return _not_found(payment_id)
            return JSONResponse(record.payment.model_dump(mode="json"))

        @api.post("/v1/payments/{payment_id}/cancel")
        async def cancel_payment(payment_id: str) -> Response:
            now = bank.clock()
            bank._evaluate(now)
            record = bank._payments.get(payment_id)
            if record is None:
                return _not_found(payment_id)
            if record.payment.status is not BankPaymentStatus.pending:
                return _error(
                    400,
                    f"Payment {payment_id} is {record.payment.status.value} and can no longer "
                    "be canceled; only pending payments can.",
                    code="payment_unexpected_state",
                )
            bank._update(
                record,
                status=BankPaymentStatus.canceled,
                canceled_at=now,
                failure_reason="canceled at the originator's request",
            )
            bank._emit("payment.canceled", record, now)
            return JSONResponse(record.payment.model_dump(mode="json"))

        # -- inspector / control endpoints (no faults, inspector token) --

        @api.get("/_emulator/faults")
        async def get_faults() -> Response:
            return JSONResponse(_faults_json(bank.faults))

        @api.put("/_emulator/faults")
        async def put_faults(request: Request) -> Response:
            try:
                _apply_faults(bank.faults, await request.json())
            except (ValueError, TypeError, KeyError) as exc:
                return _error(400, f"invalid faults: {exc}")
            return JSONResponse(_faults_json(bank.faults))

        @api.post("/_emulator/reset")
        async def reset() -> Response:
            bank.reset()
            return JSONResponse({"reset": True})

        @api.get("/_emulator/webhook")
        async def get_webhook() -> Response:
            return JSONResponse({"url": bank.webhook_url, "secret": bank.webhook_secret})

        @api.put("/_emulator/webhook")
        async def put_webhook(request: Request) -> Response:
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("url"), str | None):
                return _error(400, "body must be {'url': str | null, 'secret': str}")
            secret = body.get("secret")
            if secret is not None and (not isinstance(secret, str) or not secret):
                return _error(400, "secret must be a non-empty string")
            bank.set_webhook(body.get("url"), secret)
            return JSONResponse({"url": bank.webhook_url, "secret": bank.webhook_secret})

        @api.get("/_emulator/returns")
        async def get_returns() -> Response:
            return JSONResponse({"rules": [r.model_dump(mode="json") for r in bank._return_rules]})

        @api.put("/_emulator/returns")
        async def put_returns(request: Request) -> Response:
            body = await request.json()
            if isinstance(body, dict) and "rules" in body:
                body = body["rules"]
            items = body if isinstance(body, list) else [body]
            try:
                rules = [ReturnRule.model_validate(item) for item in items]
            except ValidationError as exc:
                return _error(400, _validation_message(exc)[0])
            bank.set_return_rules(rules)
            return JSONResponse({"rules": [r.model_dump(mode="json") for r in rules]})

        @api.put("/_emulator/fx")
        async def put_fx(request: Request) -> Response:
            body = await request.json()
            try:
                rates = {str(k).upper(): Decimal(str(v)) for k, v in dict(body).items()}
            except (TypeError, ValueError, ArithmeticError) as exc:
                return _error(400, f"body must be {{currency: rate in USD}}: {exc}")
            bank.fx_rates.update(rates)
            return JSONResponse({k: str(v) for k, v in bank.fx_rates.items()})

        @api.get("/_emulator/events")
        async def get_events() -> Response:
            return JSONResponse({"events": [d.as_json() for d in bank._deliveries]})

        @api.post("/_emulator/settle")
        async def settle() -> Response:
            delivered = await bank.settle_due()
            return JSONResponse(
                {"delivered": delivered, "undelivered": len(bank.undelivered_events)}
            )

        return api


def _not_found(payment_id: str) -> JSONResponse:
    return _error(404, f"No such payment: {payment_id!r}", code="resource_missing", param="id")


def _faults_json(faults: Faults) -> dict[str, Any]:
    return faults.to_json()


def _apply_faults(faults: Faults, body: Any) -> None:
    faults.apply_json(body, kinds=("5xx", "429", "drop"))
