"""The sandbox bank's payment-rail client, its wire models and the notification signature check."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from accounting import CurrencyCode, ExchangeRate, PositiveAmount
from connectors import decimal_json, signing
from connectors.base import (
    AuthExpired,
    Conflict,
    ConnectorError,
    NotFound,
    PaymentInstruction,
    RailKind,
    RailPayment,
    RailPaymentStatus,
    RateLimited,
    Rejected,
    Unavailable,
    parse_retry_after,
)
from connectors.http import HttpClient, StaticAuth

PLATFORM_NAME = "bank"
SIGNATURE_HEADER = "X-Bank-Signature"
# The bank refuses longer keys; longer ones are hashed down (deterministically, so a retry and a
# look-up use the same wire key as the first attempt).
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Used when a 429 arrives without Retry-After (the bank documents a one-second back-off).
DEFAULT_RETRY_AFTER = timedelta(seconds=1)
PAGE_LIMIT = 100


class BankPaymentStatus(StrEnum):
    """Statuses as the bank reports them; `canceled` has no RailPaymentStatus of its own."""

    pending = "pending"
    settled = "settled"
    returned = "returned"
    failed = "failed"
    canceled = "canceled"


class BankPayee(BaseModel):
    """The payee as the bank echoes it: account numbers masked to their last four digits."""

    model_config = ConfigDict(extra="ignore")

    name: str
    account_number_last4: str | None = None
    routing_number: str | None = None
    iban_last4: str | None = None


class BankPayment(BaseModel):
    """A payment object as `GET /v1/payments/{id}` returns it (amounts are strings)."""

    # New fields from the bank must not break an older client.
    model_config = ConfigDict(extra="ignore")

    id: str
    object: Literal["payment"] = "payment"
    rail: RailKind
    status: BankPaymentStatus
    amount: PositiveAmount
    currency: CurrencyCode
    idempotency_key: str
    payee: BankPayee
    execution_date: date
    reference: str
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    expected_settlement_at: datetime
    settled_at: datetime | None = None
    returned_at: datetime | None = None
    failed_at: datetime | None = None
    canceled_at: datetime | None = None
    return_code: str | None = None
    return_reason: str | None = None
    failure_reason: str | None = None

    def to_rail_payment(self) -> RailPayment:
        failure_reason = self.failure_reason
        if self.status is BankPaymentStatus.canceled:
            status = RailPaymentStatus.failed
            failure_reason = failure_reason or "canceled"
        else:
            status = RailPaymentStatus(self.status.value)
        return RailPayment(
            id=self.id,
            rail=self.rail,
            status=status,
            amount=self.amount,
            currency=self.currency,
            idempotency_key=self.idempotency_key,
            return_code=self.return_code,
            return_reason=self.return_reason,
            failure_reason=failure_reason,
            created_at=self.created_at,
            settled_at=self.settled_at,
            metadata=dict(self.metadata),
        )


BankEventType = Literal["payment.settled", "payment.returned", "payment.failed", "payment.canceled"]


class BankEvent(BaseModel):
    """A notification the bank POSTs to the webhook URL when a payment reaches an end state."""

    model_config = ConfigDict(extra="ignore")

    id: str
    object: Literal["event"] = "event"
    type: BankEventType
    created_at: datetime
    payment: BankPayment

    @classmethod
    def from_body(cls, body: bytes | str) -> BankEvent:
        """Parse a raw notification body (verify its signature first)."""
        return cls.model_validate(decimal_json.loads(body))


def sign_bank_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Bank-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    return signing.sign(secret, timestamp, body)


def verify_bank_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> None:
    """Raise ValueError unless `header` is a valid, recent signature of `body` under `secret`
    (see connectors.signing)."""
    signing.verify(
        secret,
        header,
        body,
        tolerance_seconds=tolerance.total_seconds(),
        now=(now or datetime.now(UTC)).timestamp(),
    )


def wire_idempotency_key(idempotency_key: str) -> str:
    """The key as sent to the bank: unchanged when it fits, else a stable hash of it."""
    if len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH and idempotency_key.isascii():
        return idempotency_key
    return "sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


class SandboxBankRail:
    """`PaymentRail` over the sandbox bank's HTTP API.

    The injected `http` client belongs to the caller (it is not closed by `aclose`) and must not
    retry on its own: Temporal decides about retries from the errors raised here.
    """

    platform = PLATFORM_NAME

    def __init__(self, base_url: str, api_key: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http
        self._client = HttpClient(
            http,
            platform=PLATFORM_NAME,
            auth=StaticAuth({"Authorization": f"Bearer {api_key}"}),
            error_for=_error_for_response,
        )

    async def initiate(
        self, instruction: PaymentInstruction, *, idempotency_key: str
    ) -> RailPayment:
        data = await self._request(
            "POST",
            "/v1/payments",
            # The bank's wire carries amounts as strings (mode="json").
            json=instruction.model_dump(mode="json"),
            headers={"Idempotency-Key": wire_idempotency_key(idempotency_key)},
        )
        return self._rail_payment(data, idempotency_key)

    async def get_payment(self, payment_id: str) -> RailPayment:
        data = await self._request("GET", f"/v1/payments/{payment_id}")
        return BankPayment.model_validate(data).to_rail_payment()

    async def find_by_idempotency_key(self, idempotency_key: str) -> RailPayment | None:
        data = await self._request(
            "GET",
            "/v1/payments",
            params={"idempotency_key": wire_idempotency_key(idempotency_key)},
        )
        found = data.get("data") or []
        if not found:
            return None
        return self._rail_payment(found[0], idempotency_key)

    async def list_payments(
        self,
        *,
        status: BankPaymentStatus | None = None,
        rail: RailKind | None = None,
        metadata: dict[str, str] | None = None,
    ) -> list[RailPayment]:
        """Every payment matching the filters, oldest first (follows the bank's pages)."""
        params: dict[str, str] = {"limit": str(PAGE_LIMIT)}
        if status is not None:
            params["status"] = status.value
        if rail is not None:
            params["rail"] = rail.value
        for key, value in (metadata or {}).items():
            params[f"metadata[{key}]"] = value
        payments: list[RailPayment] = []
        while True:
            data = await self._request("GET", "/v1/payments", params=params)
            page = [BankPayment.model_validate(item) for item in data.get("data") or []]
            payments.extend(item.to_rail_payment() for item in page)
            if not data.get("has_more") or not page:
                return payments
            params["starting_after"] = page[-1].id

    async def quote_rate(self, currency: str, home_currency: str, on: date) -> ExchangeRate | None:
        """The bank's mid rate: home-currency units per unit of `currency` (None if unquoted)."""
        try:
            data = await self._request(
                "GET", f"/v1/fx/rates/{currency}", params={"quote": home_currency}
            )
        except NotFound:
            return None
        return ExchangeRate(
            currency=currency,
            home_currency=home_currency,
            rate=Decimal(str(data["rate"])),
            as_of=date.fromisoformat(str(data["as_of"])),
            source="bank",
        )

    async def cancel(self, payment_id: str) -> RailPayment:
        """Cancel a payment that is still pending (Rejected once it has left the bank)."""
        data = await self._request("POST", f"/v1/payments/{payment_id}/cancel")
        return BankPayment.model_validate(data).to_rail_payment()

    async def aclose(self) -> None:
        return None

    def _rail_payment(self, data: dict[str, Any], idempotency_key: str) -> RailPayment:
        # Report the caller's own key even when a hashed one went over the wire.
        payment = BankPayment.model_validate(data).to_rail_payment()
        return payment.model_copy(update={"idempotency_key": idempotency_key})

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One call through the shared loop (GETs get its quick tries); the answer's JSON."""
        return await self._client.send_json(
            method, self.base_url + path, params=params, json=json, headers=headers
        )


def _error_for_response(response: httpx.Response) -> ConnectorError:
    try:
        data = decimal_json.loads(response.content) if response.content else {}
    except ValueError:
        data = {}
    request = response.request
    return _error_for(
        response, data if isinstance(data, dict) else {}, f"{request.method} {request.url.path}"
    )


def _error_for(response: httpx.Response, data: dict[str, Any], what: str) -> ConnectorError:
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    assert isinstance(error, dict)
    message = str(error.get("message") or response.reason_phrase or "error")
    error_type = str(error.get("type") or "")
    code = error.get("code") or error_type or None
    status = response.status_code
    common: dict[str, Any] = {
        "platform": PLATFORM_NAME,
        "status": status,
        "code": code,
        "detail": error or response.text[:500],
    }
    text = f"{what}: {message}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), DEFAULT_RETRY_AFTER)
        return RateLimited(text, retry_after=retry_after, **common)
    if status >= 500:
        return Unavailable(text, **common)
    if status == 401:
        return AuthExpired(text, **common)
    if status == 404:
        return NotFound(text, **common)
    if status == 409 and error_type != "idempotency_error":
        return Conflict(text, **common)
    # 400 validation, 403, and 409 idempotency-key reuse with another body: retrying unchanged
    # cannot help.
    return Rejected(text, **common)


__all__ = [
    "BankEvent",
    "BankEventType",
    "BankPayee",
    "BankPayment",
    "BankPaymentStatus",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "SIGNATURE_HEADER",
    "SandboxBankRail",
    "sign_bank_payload",
    "verify_bank_signature",
    "wire_idempotency_key",
]
