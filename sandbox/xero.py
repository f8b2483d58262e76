"""An in-memory Xero Accounting API (plus identity endpoints) as an ASGI app, faults included.

Behaves like api.xero.com as described in erp-apis.md §3: `/api.xro/2.0/...` with PUT = create
and POST = update-or-create, `{"Invoices":[...]}` envelopes with `pagination`, MS-JSON dates,
`where` filters, `If-Modified-Since`, ApiException / ValidationException bodies, per-tenant rate
limits (60 calls per minute and 5,000 per day in fixed windows, 5 concurrent calls) answered with
429 + `Retry-After` + `X-Rate-Limit-Problem`, the `xero-tenant-id` header, and
`/connect/token` + `/connections` for OAuth.

Idempotency-Key policy (Xero does not document one, so this is the emulator's choice):
- keys are remembered per tenant for 24 hours of emulator clock time;
- a repeat of the same key with the same request (method, path, query and body) replays the
  first answer (status and body) without doing the work again;
- the same key with a different request is refused: 400 ValidationException naming the key;
- a repeat while the first request is still being processed gets 409;
- only answers that decided something are remembered (2xx and 400): a 401/403/429/5xx did
  nothing, so the key stays free for the retry;
- keys longer than 128 characters are refused (400).

Money movement, as the emulator's choices where Xero's documentation is silent:
- CurrencyRate is foreign units per base unit, kept to 6 decimal places; a foreign document or
  payment without one gets the tenant's day rate (`Tenant.day_rates`, standing in for XE.com);
  base-currency documents are always 1. Payment.BankAmount is in the bank account's currency.
- Payments are deleted (POST /Payments/{id} {"Status":"DELETED"}), never edited; deleting one
  already deleted, or one member of a BatchPayment, is a 400 ValidationException.
- BatchPayments (PUT, GET, POST /BatchPayments/{id} {"Status":"DELETED"}) are one bank line for
  several documents: all members valid or none made; deleting the batch deletes every member.
- Credit-note allocations can be deleted (DELETE /CreditNotes/{id}/Allocations/{AllocationID},
  answered with the Allocation); a deleted allocation leaves the credit note's Allocations.
- A general ledger in the base currency is kept and served by GET /Journals (?offset=N, 100 a
  page): bills, credit notes, payments and allocations post balanced journals; the difference
  between a bill's rate and its payment's (or a credit's) goes to REALISEDCURRENCYGAIN.

Tokens: the access token `seed_demo_company` returns never expires (so a long-running embedded
stack keeps working) unless `expire_token` is called; tokens minted by `/connect/token` live
1800 s. Refreshing rotates the refresh token every time; the previous one keeps working for a
30-minute grace period, then answers `invalid_grant`.

Time comes from the injectable `clock`, so tests move the rate-limit windows and token
lifetimes forward without waiting; `hold_requests()` parks admitted API calls so tests can
fill the concurrency limit deterministically.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.xero.wire import dumps, loads, ms_json, parse_date, parse_datetime
from sandbox.consent import ConsentError, ConsentServer, IssuedCode
from sandbox.faults import (
    ASGIApp,
    FaultInjector,
    FaultResponse,
    Faults,
    Receive,
    Scope,
    Send,
)
from sandbox.persist import Persistent
from sandbox.registry import DemoCompany
from sandbox.xero_webhooks import WebhookSender

JSONObject = dict[str, Any]
Clock = Callable[[], datetime]

API = "/api.xro/2.0"
ACCESS_TOKEN_SECONDS = 1800
REFRESH_GRACE = timedelta(minutes=30)
REFRESH_IDLE_EXPIRY = timedelta(days=60)
IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY_LIMIT = 128
MAX_ATTACHMENTS = 10
MAX_TRACKING_PER_LINE = 2
MAX_ACTIVE_TRACKING_CATEGORIES = 2
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
APP_MINUTE_LIMIT = 10_000
CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.000001")  # CurrencyRate is [18].[6]
JOURNALS_PER_PAGE = 100
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
DEMO_CLIENT_ID = "remit-demo-client"
DEMO_CLIENT_SECRET = "remit-demo-secret"
# Xero's authorize endpoint is login.xero.com/identity/connect/authorize; served here as a path.
AUTHORIZE_PATH = "/identity/connect/authorize"


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------------------------------------
# Errors, in Xero's shapes
# ---------------------------------------------------------------------------------------------


class XeroProblem(Exception):
    """An answer other than success: status, JSON (or text) body and extra headers."""

    def __init__(
        self, status: int, body: Any, headers: dict[str, str] | None = None, *, text: bool = False
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.text = text


def _problem_body(status: int, title: str, detail: str) -> JSONObject:
    """The problem+json shape Xero's gateway uses for 401/403/429/500."""
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": _new_id(),
        "Extensions": {},
    }


def _validation(elements: list[JSONObject]) -> XeroProblem:
    return XeroProblem(
        400,
        {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": elements,
        },
    )


def _validation_single(element: JSONObject, *messages: str) -> XeroProblem:
    return _validation([{**element, "ValidationErrors": [{"Message": m} for m in messages]}])


def _api_exception(number: int, kind: str, message: str) -> XeroProblem:
    return XeroProblem(400, {"ErrorNumber": number, "Type": kind, "Message": message})


def _not_found() -> XeroProblem:
    return XeroProblem(404, NOT_FOUND_TEXT, text=True)


def _server_error_body() -> JSONObject:
    return _problem_body(
        500,
        "An error occurred",
        "An error occurred in Xero. Check the API Status page http://status.developer.xero.com "
        "for current service status. Contact the API support team at api@xero.com for more "
        "assistance.",
    )


# ---------------------------------------------------------------------------------------------
# `where` filters: the subset of Xero's .NET-flavoured expressions remit and tests use
# ---------------------------------------------------------------------------------------------

_WHERE_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<guid>[Gg][Uu][Ii][Dd]\(\s*"(?P<guid_value>[^"]*)"\s*\))
      | (?P<op>==|!=|>=|<=|=|>|<)
      | (?P<and>&&|\bAND\b)
      | (?P<or>\|\||\bOR\b)
      | (?P<call>\.(?:Contains|StartsWith|EndsWith)\()
      | (?P<close>\))
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<boolean>\btrue\b|\bfalse\b)
      | (?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:ToLower|ToUpper)\(\)
                |\.(?!(?:Contains|StartsWith|EndsWith)\()[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)

WherePredicate = Callable[[JSONObject], bool]


def _resolve(record: JSONObject, path: str) -> Any:
    transform = None
    for suffix in (".ToLower()", ".ToUpper()"):
        if path.endswith(suffix):
            path, transform = path[: -len(suffix)], suffix
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str) and transform == ".ToLower()":
        return value.lower()
    if isinstance(value, str) and transform == ".ToUpper()":
        return value.upper()
    return value


def _compare(actual: Any, op: str, expected: Any, is_guid: bool) -> bool:
    if is_guid and isinstance(actual, str):
        actual, expected = actual.lower(), str(expected).lower()
    if isinstance(expected, Decimal):
        try:
            actual = Decimal(str(actual))
        except (InvalidOperation, ValueError):
            return False
    if op in ("==", "="):
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    if actual is None:
        return False
    try:
        return {
            ">": actual > expected,
            "<": actual < expected,
            ">=": actual >= expected,
            "<=": actual <= expected,
        }[op]
    except TypeError:
        return False


def parse_where(expression: str) -> WherePredicate:
    """Compile a `where` expression (clauses joined by AND/OR, AND binding tighter)."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _WHERE_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise _api_exception(16, "QueryParseException", f"Unable to parse where: {expression}")
        kind = match.lastgroup or ""
        if kind == "guid_value":
            kind = "guid"
        value = match.group("guid_value") if kind == "guid" else match.group(kind)
        tokens.append((kind, value))
        position = match.end()

    groups: list[list[WherePredicate]] = [[]]
    index = 0

    def literal(kind: str, value: str) -> Any:
        if kind == "string":
            return loads(value)
        if kind == "number":
            return Decimal(value)
        if kind == "boolean":
            return value == "true"
        if kind == "guid":
            return value
        raise _api_exception(16, "QueryParseException", f"Unexpected {value!r} in where")

    while index < len(tokens):
        kind, value = tokens[index]
        if kind == "or":
            groups.append([])
            index += 1
            continue
        if kind == "and":
            index += 1
            continue
        if kind != "path":
            raise _api_exception(16, "QueryParseException", f"Unexpected {value!r} in where")
        path = value
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if following[0] == "call":
            method = following[1][1:-1]
            if index + 3 >= len(tokens) + 1 or tokens[index + 2][0] != "string":
                raise _api_exception(16, "QueryParseException", f"{method} needs a string")
            needle = str(loads(tokens[index + 2][1]))
            if index + 3 >= len(tokens) or tokens[index + 3][0] != "close":
                raise _api_exception(16, "QueryParseException", f"{method}( is not closed")

            def call(
                record: JSONObject, path: str = path, method: str = method, needle: str = needle
            ) -> bool:
                actual = _resolve(record, path)
                if not isinstance(actual, str):
                    return False
                if method == "Contains":
                    return needle in actual
                if method == "StartsWith":
                    return actual.startswith(needle)
                return actual.endswith(needle)

            groups[-1].append(call)
            index += 4
            continue
        if following[0] != "op" or index + 2 >= len(tokens):
            raise _api_exception(16, "QueryParseException", f"Incomplete clause at {path!r}")
        op = following[1]
        value_kind, raw_value = tokens[index + 2]
        expected = literal(value_kind, raw_value)

        def clause(
            record: JSONObject,
            path: str = path,
            op: str = op,
            expected: Any = expected,
            is_guid: bool = value_kind == "guid",
        ) -> bool:
            return _compare(_resolve(record, path), op, expected, is_guid)

        groups[-1].append(clause)
        index += 3

    def predicate(record: JSONObject) -> bool:
        return any(all(test(record) for test in group) for group in groups if group)

    return predicate


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class StoredAnswer:
    fingerprint: str
    status: int
    body: bytes
    content_type: str
    stored_at: datetime


@dataclass
class Tenant:
    """One Xero organisation and everything in it."""

    id: str
    name: str
    base_currency: str = "USD"
    currencies: list[str] = field(default_factory=lambda: ["USD"])
    accounts: dict[str, JSONObject] = field(default_factory=dict)
    contacts: dict[str, JSONObject] = field(default_factory=dict)
    invoices: dict[str, JSONObject] = field(default_factory=dict)
    credit_notes: dict[str, JSONObject] = field(default_factory=dict)
    payments: dict[str, JSONObject] = field(default_factory=dict)
    batch_payments: dict[str, JSONObject] = field(default_factory=dict)
    journals: list[JSONObject] = field(default_factory=list)
    # The "XE.com day rate" a foreign document gets when it names no CurrencyRate: units of
    # the currency per unit of the base currency, as Xero states rates.
    day_rates: dict[str, Decimal] = field(default_factory=dict)
    tracking: dict[str, JSONObject] = field(default_factory=dict)
    attachments: dict[str, list[JSONObject]] = field(default_factory=dict)
    attachment_content: dict[str, bytes] = field(default_factory=dict)
    items: dict[str, JSONObject] = field(default_factory=dict)
    tax_rates: dict[str, JSONObject] = field(default_factory=lambda: _demo_tax_rates())
    answers: dict[str, StoredAnswer] = field(default_factory=dict)
    keys_in_flight: set[str] = field(default_factory=set)
    minute_window_start: datetime | None = None
    minute_calls: int = 0
    day_window_start: datetime | None = None
    day_calls: int = 0
    in_flight: int = 0
    invoice_sequence: int = 0
    credit_note_sequence: int = 0
    journal_sequence: int = 0


@dataclass
class Grant:
    """One user's consent: the tenants it connects and the tokens minted from it."""

    id: str
    client_id: str
    connections: dict[str, str] = field(default_factory=dict)  # connection id -> tenant id
    revoked: bool = False
    created: datetime = field(default_factory=_system_clock)


@dataclass
class AccessToken:
    grant_id: str
    expires_at: datetime | None


@dataclass
class RefreshToken:
    grant_id: str
    issued_at: datetime
    superseded_at: datetime | None = None
    dead: bool = False


@dataclass
class RequestContext:
    request: Request
    tenant: Tenant
    body: bytes
    now: datetime

    def json(self) -> Any:
        if not self.body:
            raise _api_exception(14, "PostDataInvalidException", "The request body is empty")
        try:
            return loads(self.body)
        except ValueError as exc:
            raise _api_exception(
                14, "PostDataInvalidException", f"Invalid Json data: {exc}"
            ) from exc

    def items(self, key: str) -> list[JSONObject]:
        """The array of `key` from the body, accepting a bare object as Xero does."""
        payload = self.json()
        if isinstance(payload, dict) and isinstance(payload.get(key), list):
            return [item for item in payload[key] if isinstance(item, dict)]
        if isinstance(payload, dict):
            return [payload]
        raise _api_exception(14, "PostDataInvalidException", f"Expected an object with {key}")


Handler = Callable[[RequestContext], Awaitable[Response]]


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------


class XeroEmulator(Persistent):
    """Xero's Accounting API and identity endpoints, in memory. Serve `.app`."""

    # Request-line fragments of the unified writes, for scripting faults on exactly one of them.
    write_matches: ClassVar[dict[str, str]] = {
        "vendor": "PUT /api.xro/2.0/Contacts",
        "bill": "PUT /api.xro/2.0/Invoices?",
        "bill_payment": "PUT /api.xro/2.0/Payments",
        "bill_batch_payment": "PUT /api.xro/2.0/BatchPayments",
    }
    persisted = (
        "tenants",
        "grants",
        "access_tokens",
        "refresh_tokens",
        "inspector_token",
        "_last_now",
        "consent.apps",
        "consent.codes",
        "demo_company",
        "webhooks.state",
    )

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        clock: Clock | None = None,
        minute_limit: int = 60,
        day_limit: int = 5000,
        concurrent_limit: int = 5,
        inspector_token: str | None = None,
        state_file: Path | None = None,
    ) -> None:
        """`state_file`: keep the organisations, grants and apps there (restored when present)."""
        self.faults = faults or Faults()
        self.clock: Clock = clock or _system_clock
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.concurrent_limit = concurrent_limit
        self.inspector_token = inspector_token or "inspect-" + secrets.token_urlsafe(16)
        self.tenants: dict[str, Tenant] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self._gate: asyncio.Event | None = None
        self._in_flight_changed: asyncio.Condition | None = None
        self._app_minute_start: datetime | None = None
        self._app_minute_calls = 0
        self._last_now: datetime | None = None
        # The app's webhook subscription (configure_webhooks or PUT /_emulator/webhooks).
        self.webhooks = WebhookSender()
        self.consent = ConsentServer(
            product="Xero",
            company_label="organisation",
            companies=lambda: [(t.id, t.name) for t in self.tenants.values()],
            clock=self.now,
        )
        self.consent.register_app(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
        injected = FaultInjector(
            cast(ASGIApp, self._build_app()),
            self.faults,
            server_error=self._fault_server_error,
            throttled=self._fault_throttled,
            exempt=("/_emulator", AUTHORIZE_PATH),
        )
        self.restored = self.restore_state(state_file)
        self.app: ASGIApp = self.persisting(_RevokeOnScript(injected, self))

    def after_restore(self) -> None:
        for tenant in self.tenants.values():
            tenant.in_flight = 0
            tenant.keys_in_flight.clear()
            # Snapshots written before items and tax rates existed lack them.
            if not hasattr(tenant, "items"):
                tenant.items = {}
            if not hasattr(tenant, "tax_rates"):
                tenant.tax_rates = _demo_tax_rates()

    # --- public control surface ------------------------------------------------------------

    def seed_demo_company(self, company_id: str | None = None) -> DemoCompany:
        """The shared demo business (home currency USD), with a grant and tokens for it."""
        tenant = Tenant(id=company_id or _new_id(), name="remit Demo Company (US)")
        tenant.currencies = ["USD", "EUR"]
        tenant.day_rates = dict(_DEMO_DAY_RATES)
        self.tenants[tenant.id] = tenant
        now = self.now()
        account_ids = {
            name: self._seed_account(tenant, now, name=name, **spec)
            for name, spec in _DEMO_ACCOUNTS.items()
        }
        for category_name, options in _DEMO_TRACKING.items():
            category_id = _new_id()
            tenant.tracking[category_id] = {
                "TrackingCategoryID": category_id,
                "Name": category_name,
                "Status": "ACTIVE",
                "Options": [
                    {"TrackingOptionID": _new_id(), "Name": option, "Status": "ACTIVE"}
                    for option in options
                ],
            }
        for name, extra in _DEMO_CONTACTS.items():
            contact_id = _new_id()
            tenant.contacts[contact_id] = {
                "ContactID": contact_id,
                "ContactStatus": "ACTIVE",
                "Name": name,
                "IsCustomer": False,
                "UpdatedDateUTC": now,
                **extra,
            }
        grant = Grant(id=_new_id(), client_id=DEMO_CLIENT_ID, created=now)
        grant.connections[_new_id()] = tenant.id
        self.grants[grant.id] = grant
        access_token = "xero-at-" + secrets.token_urlsafe(24)
        self.access_tokens[access_token] = AccessToken(grant.id, expires_at=None)
        refresh_token = "xero-rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh_token] = RefreshToken(grant.id, issued_at=now)
        return DemoCompany(
            company_id=tenant.id,
            company_name=tenant.name,
            credentials={
                "access_token": access_token,
                "refresh_token": refresh_token,
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
            },
            settings={
                "bank_account_id": account_ids["Operating Bank"],
                "bank_account_id:EUR": account_ids["Operating Bank EUR"],
                "card_account_id": account_ids["Company Card"],
                "ap_account_id": account_ids["Accounts Payable"],
                "discount_account_id": account_ids["Purchase Discounts"],
                "home_currency": tenant.base_currency,
            },
            inspector_token=self.inspector_token,
        )

    def configure_webhooks(self, url: str | None, key: str | None) -> None:
        """Deliver webhooks to `url`, signed with `key` (None: stop), after the intent-to-receive
        check, as Xero does for an app's subscription."""
        self.webhooks.configure(url, key)

    def _event(self, ctx: RequestContext, category: str, resource_id: str, created: bool) -> None:
        self.webhooks.record(
            ctx.tenant.id, category, resource_id, "CREATE" if created else "UPDATE", ctx.now
        )

    def revoke_token(self, token: str) -> None:
        """The user disconnects the app: the grant behind `token` (access or refresh) is gone."""
        grant_id = self._grant_of(token)
        if grant_id is not None:
            self.grants[grant_id].revoked = True

    def expire_token(self, token: str) -> None:
        """Make an access token (or a refresh token) stop working as if its lifetime had passed."""
        now = self.now()
        if token in self.access_tokens:
            self.access_tokens[token].expires_at = now - timedelta(seconds=1)
        elif token in self.refresh_tokens:
            self.refresh_tokens[token].dead = True

    def hold_requests(self) -> None:
        """Park every admitted API call (counted as in flight) until `release_requests()`."""
        self._gate = asyncio.Event()

    def release_requests(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def wait_in_flight(self, tenant_id: str, count: int) -> None:
        """Return once `count` calls for the tenant are in flight (used with hold_requests)."""
        condition = self._condition()
        async with condition:
            await condition.wait_for(lambda: self.tenants[tenant_id].in_flight >= count)

    def reset(self) -> None:
        self.tenants.clear()
        self.grants.clear()
        self.access_tokens.clear()
        self.refresh_tokens.clear()
        self.consent.codes.clear()
        self.faults.clear()
        self.release_requests()

    # --- helpers -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The clock, made strictly increasing by at least a millisecond per call.

        Every request gets its own UpdatedDateUTC/DateTimeUTC millisecond, so a cursor taken
        from a response's DateTimeUTC splits history exactly into before and after.
        """
        moment = self.clock()
        if self._last_now is not None and moment <= self._last_now:
            moment = self._last_now + timedelta(milliseconds=1)
        self._last_now = moment
        return moment

    def _condition(self) -> asyncio.Condition:
        if self._in_flight_changed is None:
            self._in_flight_changed = asyncio.Condition()
        return self._in_flight_changed

    async def _notify_in_flight(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()

    def _grant_of(self, token: str) -> str | None:
        if token in self.access_tokens:
            return self.access_tokens[token].grant_id
        if token in self.refresh_tokens:
            return self.refresh_tokens[token].grant_id
        return None

    def _seed_account(self, tenant: Tenant, now: datetime, *, name: str, **spec: Any) -> str:
        account_id = _new_id()
        xero_type = spec["Type"]
        record: JSONObject = {
            "AccountID": account_id,
            "Code": spec.get("Code"),
            "Name": name,
            "Type": xero_type,
            "Class": _CLASS_BY_TYPE[xero_type],
            "Status": "ACTIVE",
            "TaxType": "NONE",
            "EnablePaymentsToAccount": False,
            "ShowInExpenseClaims": False,
            "ReportingCode": "",
            "HasAttachments": False,
            "UpdatedDateUTC": now,
            "AddToWatchlist": False,
        }
        if xero_type == "BANK":
            record["BankAccountType"] = spec.get("BankAccountType", "BANK")
            record["BankAccountNumber"] = spec.get("BankAccountNumber", "")
            record["CurrencyCode"] = spec.get("CurrencyCode", tenant.base_currency)
        if spec.get("SystemAccount"):
            record["SystemAccount"] = spec["SystemAccount"]
        tenant.accounts[account_id] = record
        return account_id

    def _fault_server_error(self) -> FaultResponse:
        return (
            500,
            [(b"content-type", b"application/json; charset=utf-8")],
            dumps(_server_error_body()).encode(),
        )

    def _fault_throttled(self, retry_after: float) -> FaultResponse:
        seconds = max(1, int(-(-retry_after // 1)))
        return (
            429,
            [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"retry-after", str(seconds).encode()),
                (b"x-rate-limit-problem", b"minute"),
                (b"x-minlimit-remaining", b"0"),
            ],
            dumps(_problem_body(429, "Too Many Requests", "Rate limit exceeded")).encode(),
        )

    # --- app ---------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        api = self._api
        routes = [
            Route(AUTHORIZE_PATH, self.consent.authorize, methods=["GET", "POST"]),
            Route("/connect/token", self._token, methods=["POST"]),
            Route("/_emulator/apps", self._register_app, methods=["POST"]),
            Route("/connections", self._connections, methods=["GET"]),
            Route("/connections/{connection_id}", self._disconnect, methods=["DELETE"]),
            Route("/_emulator/faults", self._control_faults, methods=["GET", "PUT"]),
            Route("/_emulator/reset", self._control_reset, methods=["POST"]),
            Route("/_emulator/webhooks", self._control_webhooks, methods=["GET", "PUT"]),
            Route(f"{API}/Items", api(self._list_items), methods=["GET"]),
            Route(f"{API}/Items", api(self._put_items), methods=["PUT"]),
            Route(f"{API}/Items", api(self._post_items), methods=["POST"]),
            Route(f"{API}/Items/{{id}}", api(self._get_item), methods=["GET"]),
            Route(f"{API}/Items/{{id}}", api(self._post_items), methods=["POST"]),
            Route(f"{API}/Items/{{id}}", api(self._delete_item), methods=["DELETE"]),
            Route(f"{API}/TaxRates", api(self._list_tax_rates), methods=["GET"]),
            Route(f"{API}/Organisation", api(self._organisation), methods=["GET"]),
            Route(f"{API}/Currencies", api(self._currencies), methods=["GET"]),
            Route(f"{API}/Accounts", api(self._list_accounts), methods=["GET"]),
            Route(f"{API}/Accounts", api(self._put_account), methods=["PUT"]),
            Route(f"{API}/Accounts/{{id}}", api(self._get_account), methods=["GET"]),
            Route(f"{API}/TrackingCategories", api(self._list_tracking), methods=["GET"]),
            Route(f"{API}/TrackingCategories", api(self._create_tracking), methods=["PUT"]),
            Route(
                f"{API}/TrackingCategories/{{id}}/Options",
                api(self._create_tracking_options),
                methods=["PUT"],
            ),
            Route(f"{API}/Contacts", api(self._list_contacts), methods=["GET"]),
            Route(f"{API}/Contacts", api(self._put_contacts), methods=["PUT"]),
            Route(f"{API}/Contacts", api(self._post_contacts), methods=["POST"]),
            Route(f"{API}/Contacts/{{id}}", api(self._get_contact), methods=["GET"]),
            Route(f"{API}/Contacts/{{id}}", api(self._post_contacts), methods=["POST"]),
            Route(f"{API}/Invoices", api(self._list_invoices), methods=["GET"]),
            Route(f"{API}/Invoices", api(self._put_invoices), methods=["PUT"]),
            Route(f"{API}/Invoices", api(self._post_invoices), methods=["POST"]),
            Route(f"{API}/Invoices/{{id}}", api(self._get_invoice), methods=["GET"]),
            Route(f"{API}/Invoices/{{id}}", api(self._post_invoices), methods=["POST"]),
            Route(
                f"{API}/Invoices/{{id}}/Attachments",
                api(self._list_attachments),
                methods=["GET"],
            ),
            Route(
                f"{API}/Invoices/{{id}}/Attachments/{{name:path}}",
                api(self._get_attachment),
                methods=["GET"],
            ),
            Route(
                f"{API}/Invoices/{{id}}/Attachments/{{name:path}}",
                api(self._put_attachment),
                methods=["PUT", "POST"],
            ),
            Route(f"{API}/Payments", api(self._list_payments), methods=["GET"]),
            Route(f"{API}/Payments", api(self._put_payments), methods=["PUT"]),
            Route(f"{API}/Payments/{{id}}", api(self._get_payment), methods=["GET"]),
            Route(f"{API}/Payments/{{id}}", api(self._delete_payment), methods=["POST"]),
            Route(f"{API}/BatchPayments", api(self._list_batch_payments), methods=["GET"]),
            Route(f"{API}/BatchPayments", api(self._put_batch_payments), methods=["PUT"]),
            Route(f"{API}/BatchPayments", api(self._delete_batch_payment), methods=["POST"]),
            Route(f"{API}/BatchPayments/{{id}}", api(self._get_batch_payment), methods=["GET"]),
            Route(f"{API}/BatchPayments/{{id}}", api(self._delete_batch_payment), methods=["POST"]),
            Route(f"{API}/CreditNotes", api(self._list_credit_notes), methods=["GET"]),
            Route(f"{API}/CreditNotes", api(self._put_credit_notes), methods=["PUT"]),
            Route(f"{API}/CreditNotes", api(self._post_credit_notes), methods=["POST"]),
            Route(f"{API}/CreditNotes/{{id}}", api(self._get_credit_note), methods=["GET"]),
            Route(f"{API}/CreditNotes/{{id}}", api(self._post_credit_notes), methods=["POST"]),
            Route(
                f"{API}/CreditNotes/{{id}}/Allocations",
                api(self._put_allocations),
                methods=["PUT"],
            ),
            Route(
                f"{API}/CreditNotes/{{id}}/Allocations/{{allocation_id}}",
                api(self._delete_allocation),
                methods=["DELETE"],
            ),
            Route(f"{API}/Journals", api(self._list_journals), methods=["GET"]),
            Route(f"{API}/Journals/{{id}}", api(self._get_journal), methods=["GET"]),
        ]
        return Starlette(routes=routes)

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await self._serve(request, handler)
            except XeroProblem as problem:
                return _problem_response(problem)

        return endpoint

    async def _serve(self, request: Request, handler: Handler) -> Response:
        now = self.now()
        grant = self._authenticate(request, now)
        tenant_id = request.headers.get("xero-tenant-id", "").strip()
        if not tenant_id:
            raise XeroProblem(
                403,
                _problem_body(
                    403, "Forbidden", "AuthorizationUnsuccessful: missing xero-tenant-id"
                ),
            )
        try:
            uuid.UUID(tenant_id)
        except ValueError as exc:
            raise XeroProblem(
                400, _problem_body(400, "Bad Request", f"Invalid xero-tenant-id {tenant_id!r}")
            ) from exc
        tenant = self.tenants.get(tenant_id)
        if grant.revoked or tenant is None or tenant_id not in grant.connections.values():
            raise XeroProblem(403, _problem_body(403, "Forbidden", "AuthenticationUnsuccessful"))
        limit_headers = self._admit(tenant, now)
        body = await request.body()
        is_write = request.method in ("PUT", "POST", "PATCH", "DELETE")
        key = request.headers.get("idempotency-key") if is_write else None
        fingerprint = ""
        if key is not None:
            if len(key) > IDEMPOTENCY_KEY_LIMIT or not key:
                raise _validation_single(
                    {}, f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LIMIT} characters long"
                )
            fingerprint = hashlib.sha256(
                b"\n".join(
                    [request.method.encode(), request.url.path.encode(), request.url.query.encode()]
                )
                + b"\n"
                + body
            ).hexdigest()
            replay = self._replay(tenant, key, fingerprint, now, limit_headers)
            if replay is not None:
                return replay
            tenant.keys_in_flight.add(key)
        tenant.in_flight += 1
        await self._notify_in_flight()
        try:
            if self._gate is not None:
                await self._gate.wait()
            try:
                response = await handler(RequestContext(request, tenant, body, now))
            except XeroProblem as problem:
                response = _problem_response(problem)
            if key is not None and (
                200 <= response.status_code < 300 or response.status_code == 400
            ):
                tenant.answers[key] = StoredAnswer(
                    fingerprint,
                    response.status_code,
                    bytes(response.body),
                    response.headers.get("content-type", "application/json"),
                    now,
                )
        finally:
            tenant.in_flight -= 1
            if key is not None:
                tenant.keys_in_flight.discard(key)
            await self._notify_in_flight()
        response.headers.update(limit_headers)
        return response

    def _authenticate(self, request: Request, now: datetime) -> Grant:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        access = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if access is None:
            raise XeroProblem(401, _problem_body(401, "Unauthorized", "AuthenticationUnsuccessful"))
        if access.expires_at is not None and now >= access.expires_at:
            stamp = access.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            raise XeroProblem(
                401,
                _problem_body(401, "Unauthorized", f"TokenExpired: token expired at {stamp}"),
                {"www-authenticate": 'Bearer error="invalid_token"'},
            )
        return self.grants[access.grant_id]

    def _admit(self, tenant: Tenant, now: datetime) -> dict[str, str]:
        """Count the call against the tenant's limits, or answer 429 naming the limit hit."""
        if tenant.day_window_start is None or now - tenant.day_window_start >= timedelta(days=1):
            tenant.day_window_start, tenant.day_calls = now, 0
        if tenant.minute_window_start is None or now - tenant.minute_window_start >= timedelta(
            minutes=1
        ):
            tenant.minute_window_start, tenant.minute_calls = now, 0
        if self._app_minute_start is None or now - self._app_minute_start >= timedelta(minutes=1):
            self._app_minute_start, self._app_minute_calls = now, 0

        def headers() -> dict[str, str]:
            return {
                "x-daylimit-remaining": str(max(0, self.day_limit - tenant.day_calls)),
                "x-minlimit-remaining": str(max(0, self.minute_limit - tenant.minute_calls)),
                "x-appminlimit-remaining": str(max(0, APP_MINUTE_LIMIT - self._app_minute_calls)),
            }

        def throttled(problem: str, resets_at: datetime | None) -> XeroProblem:
            extra = {**headers(), "x-rate-limit-problem": problem}
            if resets_at is not None:
                wait = max(1, int(-(-(resets_at - now).total_seconds() // 1)))
                extra["retry-after"] = str(wait)
            return XeroProblem(
                429,
                _problem_body(429, "Too Many Requests", f"Rate limit exceeded: {problem}"),
                extra,
            )

        if tenant.day_calls >= self.day_limit:
            raise throttled("day", tenant.day_window_start + timedelta(days=1))
        if tenant.minute_calls >= self.minute_limit:
            raise throttled("minute", tenant.minute_window_start + timedelta(minutes=1))
        if tenant.in_flight >= self.concurrent_limit:
            raise throttled("concurrent", None)
        tenant.day_calls += 1
        tenant.minute_calls += 1
        self._app_minute_calls += 1
        return headers()

    def _replay(
        self, tenant: Tenant, key: str, fingerprint: str, now: datetime, headers: dict[str, str]
    ) -> Response | None:
        for stale in [
            k for k, a in tenant.answers.items() if now - a.stored_at > IDEMPOTENCY_WINDOW
        ]:
            del tenant.answers[stale]
        if key in tenant.keys_in_flight:
            raise XeroProblem(
                409,
                _problem_body(
                    409, "Conflict", f"A request with Idempotency-Key {key} is already in progress"
                ),
            )
        stored = tenant.answers.get(key)
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise _validation_single(
                {},
                f"The Idempotency-Key {key} has already been used for a different request; "
                "use a new key for a new request",
            )
        return Response(
            stored.body,
            status_code=stored.status,
            headers={**headers, "content-type": stored.content_type},
        )

    # --- identity ----------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        if form.get("grant_type") == "authorization_code":
            return self._exchange_code(form, client_id or "", client_secret or "")
        if self.consent.authenticate(client_id or "", client_secret or "") is None:
            return _json_response(400, {"error": "invalid_client"})
        if form.get("grant_type") != "refresh_token":
            return _json_response(400, {"error": "unsupported_grant_type"})
        now = self.now()
        presented = form.get("refresh_token", "")
        stored = self.refresh_tokens.get(presented)
        if (
            stored is None
            or self.grants[stored.grant_id].client_id != client_id
            or stored.dead
            or self.grants[stored.grant_id].revoked
            or (stored.superseded_at is not None and now - stored.superseded_at > REFRESH_GRACE)
            or now - stored.issued_at > REFRESH_IDLE_EXPIRY
        ):
            return _json_response(400, {"error": "invalid_grant"})
        if stored.superseded_at is None:
            stored.superseded_at = now
        return self._mint_tokens(stored.grant_id, now)

    def _exchange_code(self, form: dict[str, str], client_id: str, client_secret: str) -> Response:
        """authorization_code grant: a new grant connecting the organisation the person chose."""
        try:
            issued = self.consent.redeem(form, client_id, client_secret, self._revoke_code)
        except ConsentError as error:
            return _json_response(
                error.status, {"error": error.error, "error_description": error.description}
            )
        now = self.now()
        grant = Grant(id=_new_id(), client_id=client_id, created=now)
        grant.connections[_new_id()] = issued.company_id
        self.grants[grant.id] = grant
        issued.grant_ref = grant.id
        return self._mint_tokens(grant.id, now)

    def _revoke_code(self, issued: IssuedCode) -> None:
        # A replayed code revokes the grant it produced: someone else may hold the code.
        if issued.grant_ref in self.grants:
            self.grants[issued.grant_ref].revoked = True

    async def _register_app(self, request: Request) -> Response:
        if not self._inspector(request):
            return _json_response(401, {"error": "inspector token required"})
        return await self.consent.register_app_endpoint(request)

    def _mint_tokens(self, grant_id: str, now: datetime) -> Response:
        access_token = "xero-at-" + secrets.token_urlsafe(24)
        self.access_tokens[access_token] = AccessToken(
            grant_id, expires_at=now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        )
        refresh_token = "xero-rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh_token] = RefreshToken(grant_id, issued_at=now)
        return _json_response(
            200,
            {
                "access_token": access_token,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "token_type": "Bearer",
                "refresh_token": refresh_token,
                "scope": "offline_access accounting.transactions accounting.contacts "
                "accounting.settings accounting.attachments",
            },
        )

    def _bearer_grant(self, request: Request) -> Grant:
        return self._authenticate(request, self.now())

    async def _connections(self, request: Request) -> Response:
        try:
            grant = self._bearer_grant(request)
        except XeroProblem as problem:
            return _problem_response(problem)
        if grant.revoked:
            return _json_response(200, [])
        stamp = grant.created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        return _json_response(
            200,
            [
                {
                    "id": connection_id,
                    "authEventId": grant.id,
                    "tenantId": tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": self.tenants[tenant_id].name,
                    "createdDateUtc": stamp,
                    "updatedDateUtc": stamp,
                }
                for connection_id, tenant_id in grant.connections.items()
                if tenant_id in self.tenants
            ],
        )

    async def _disconnect(self, request: Request) -> Response:
        try:
            grant = self._bearer_grant(request)
        except XeroProblem as problem:
            return _problem_response(problem)
        if grant.connections.pop(request.path_params["connection_id"], None) is None:
            return Response(NOT_FOUND_TEXT, status_code=404, media_type="text/plain")
        return Response(status_code=204)

    # --- control -----------------------------------------------------------------------------

    def _inspector(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.inspector_token}"

    async def _control_faults(self, request: Request) -> Response:
        if not self._inspector(request):
            return _json_response(401, {"error": "inspector token required"})
        if request.method == "PUT":
            self.faults.apply_json(loads(await request.body() or b"{}"))
        return _json_response(200, self.faults.to_json())

    async def _control_reset(self, request: Request) -> Response:
        if not self._inspector(request):
            return _json_response(401, {"error": "inspector token required"})
        self.reset()
        return _json_response(200, {"reset": True})

    async def _control_webhooks(self, request: Request) -> Response:
        """PUT {"url": ..., "key": ...} subscribes (url null: stop); GET tells the state."""
        if not self._inspector(request):
            return _json_response(401, {"error": "inspector token required"})
        if request.method == "PUT":
            body = loads(await request.body() or b"{}")
            if not isinstance(body, dict) or (body.get("url") and not body.get("key")):
                return _json_response(400, {"error": "give url and key (or url null)"})
            self.configure_webhooks(body.get("url") or None, body.get("key") or None)
        state = self.webhooks.state
        return _json_response(
            200,
            {
                "url": state.url,
                "intent_verified": state.intent_verified,
                "pending": len(state.pending),
                "delivered": state.delivered,
                "last_error": state.last_error,
            },
        )

    # --- organisation, accounts, tracking -------------------------------------------------

    async def _organisation(self, ctx: RequestContext) -> Response:
        org = {
            "OrganisationID": ctx.tenant.id,
            "Name": ctx.tenant.name,
            "LegalName": ctx.tenant.name,
            "BaseCurrency": ctx.tenant.base_currency,
            "CountryCode": "US",
            "OrganisationType": "COMPANY",
            "IsDemoCompany": True,
        }
        return _envelope(ctx, "Organisations", [org])

    async def _currencies(self, ctx: RequestContext) -> Response:
        return _envelope(
            ctx,
            "Currencies",
            [{"Code": c, "Description": _CURRENCY_NAMES.get(c, c)} for c in ctx.tenant.currencies],
        )

    async def _list_tax_rates(self, ctx: RequestContext) -> Response:
        rendered = [_render(rate) for rate in ctx.tenant.tax_rates.values()]
        return _envelope(ctx, "TaxRates", _filter(ctx, rendered))

    # --- items -----------------------------------------------------------------------------

    async def _list_items(self, ctx: RequestContext) -> Response:
        rendered = [_render(item) for item in ctx.tenant.items.values()]
        return _envelope(ctx, "Items", _filter(ctx, _modified_since(ctx, rendered)))

    def _item(self, tenant: Tenant, reference: str) -> JSONObject:
        item = tenant.items.get(reference) or next(
            (i for i in tenant.items.values() if i.get("Code") == reference), None
        )
        if item is None:
            raise _not_found()
        return item

    async def _get_item(self, ctx: RequestContext) -> Response:
        return _envelope(
            ctx, "Items", [_render(self._item(ctx.tenant, ctx.request.path_params["id"]))]
        )

    async def _put_items(self, ctx: RequestContext) -> Response:
        return await self._save_items(ctx, allow_update=False)

    async def _post_items(self, ctx: RequestContext) -> Response:
        return await self._save_items(ctx, allow_update=True)

    async def _save_items(self, ctx: RequestContext, *, allow_update: bool) -> Response:
        """Items are keyed by Code (unique, at most 30 characters); POST updates by ItemID or
        Code, PUT creates."""
        entries = ctx.items("Items")
        path_id = ctx.request.path_params.get("id")
        if path_id is not None:
            entries = [
                {**e, "ItemID": self._item(ctx.tenant, path_id)["ItemID"]} for e in entries[:1]
            ]
        built: list[JSONObject] = []
        elements: list[JSONObject] = []
        failed = False
        for entry in entries:
            existing = None
            if allow_update:
                reference = entry.get("ItemID") or entry.get("Code")
                if reference:
                    existing = ctx.tenant.items.get(str(reference)) or next(
                        (i for i in ctx.tenant.items.values() if i.get("Code") == reference), None
                    )
            record: JSONObject = copy.deepcopy(existing) if existing else {"ItemID": _new_id()}
            for name in (
                "Code",
                "Name",
                "Description",
                "PurchaseDescription",
                "PurchaseDetails",
                "SalesDetails",
                "IsTrackedAsInventory",
                "InventoryAssetAccountCode",
                "IsSold",
                "IsPurchased",
            ):
                if name in entry:
                    record[name] = copy.deepcopy(entry[name])
            errors: list[str] = []
            code = str(record.get("Code") or "")
            if not code:
                errors.append("Item code must be specified.")
            elif len(code) > 30:
                errors.append("Item code must be 30 characters or fewer.")
            elif any(
                other["ItemID"] != record["ItemID"] and other.get("Code") == code
                for other in [*ctx.tenant.items.values(), *built]
            ):
                errors.append(f"Item code '{code}' already exists.")
            for details in ("PurchaseDetails", "SalesDetails"):
                account_code = (record.get(details) or {}).get("AccountCode")
                if account_code and not any(
                    a.get("Code") == account_code for a in ctx.tenant.accounts.values()
                ):
                    errors.append(f"Account code '{account_code}' is not a valid code.")
            record.setdefault("IsSold", bool(record.get("SalesDetails")))
            record.setdefault("IsPurchased", bool(record.get("PurchaseDetails")))
            record.setdefault("IsTrackedAsInventory", False)
            record["UpdatedDateUTC"] = ctx.now
            elements.append({**entry, "ValidationErrors": [{"Message": m} for m in errors]})
            failed = failed or bool(errors)
            built.append(record)
        if failed:
            raise _validation(elements)
        for record in built:
            ctx.tenant.items[record["ItemID"]] = record
        return _envelope(ctx, "Items", [_render(r) for r in built])

    async def _delete_item(self, ctx: RequestContext) -> Response:
        # Xero deletes items outright (no status is kept): a full pass notices them gone.
        item = self._item(ctx.tenant, ctx.request.path_params["id"])
        del ctx.tenant.items[item["ItemID"]]
        return Response(status_code=204)

    # --- organisation, accounts, tracking -------------------------------------------------

    async def _list_accounts(self, ctx: RequestContext) -> Response:
        rendered = [_render(a) for a in ctx.tenant.accounts.values()]
        return _envelope(ctx, "Accounts", _filter(ctx, rendered))

    async def _put_account(self, ctx: RequestContext) -> Response:
        """createAccount: one Account object in the body (an `Accounts` array is read too).
        Xero's rules: a Code of at most 10 letters and digits and a Name of at most 150, both
        unique in the chart; a known Type; a BANK account needs its BankAccountNumber."""
        items = ctx.items("Accounts")
        if len(items) != 1:
            raise _api_exception(14, "PostDataInvalidException", "One account per request")
        item = items[0]
        errors: list[str] = []
        code = str(item.get("Code") or "").strip()
        name = str(item.get("Name") or "").strip()
        xero_type = str(item.get("Type") or "").upper()
        if not code:
            errors.append("Please enter a Code.")
        elif len(code) > 10 or not code.isalnum():
            errors.append("Code must be no more than 10 letters or numbers.")
        if not name:
            errors.append("Please enter a Name.")
        elif len(name) > 150:
            errors.append("Name must be no more than 150 characters.")
        if xero_type not in _CLASS_BY_TYPE:
            errors.append("Please select a valid Account Type.")
        elif xero_type == "BANK" and not item.get("BankAccountNumber"):
            errors.append("Please enter a Bank Account Number.")
        for other in ctx.tenant.accounts.values():
            if other.get("Status") == "DELETED":
                continue
            if code and str(other.get("Code") or "").lower() == code.lower():
                errors.append("Please enter a unique Code.")
            if name and str(other.get("Name") or "").lower() == name.lower():
                errors.append("Please enter a unique Name.")
        if errors:
            raise _validation_single(
                {"AccountID": "00000000-0000-0000-0000-000000000000", **item}, *errors
            )
        spec = {
            key: item[key]
            for key in ("BankAccountNumber", "BankAccountType", "CurrencyCode")
            if item.get(key)
        }
        account_id = self._seed_account(
            ctx.tenant, ctx.now, name=name, Code=code, Type=xero_type, **spec
        )
        record = ctx.tenant.accounts[account_id]
        record["TaxType"] = item.get("TaxType") or "NONE"
        if item.get("Description"):
            record["Description"] = item["Description"]
        return _envelope(ctx, "Accounts", [_render(record)])

    async def _get_account(self, ctx: RequestContext) -> Response:
        account = ctx.tenant.accounts.get(ctx.request.path_params["id"])
        if account is None:
            raise _not_found()
        return _envelope(ctx, "Accounts", [_render(account)])

    async def _list_tracking(self, ctx: RequestContext) -> Response:
        include_archived = ctx.request.query_params.get("includeArchived", "").lower() == "true"
        rendered = [
            _render(c)
            for c in ctx.tenant.tracking.values()
            if include_archived or c["Status"] == "ACTIVE"
        ]
        return _envelope(ctx, "TrackingCategories", _filter(ctx, rendered))

    async def _create_tracking(self, ctx: RequestContext) -> Response:
        created = []
        for item in ctx.items("TrackingCategories"):
            name = str(item.get("Name") or "").strip()
            active = [c for c in ctx.tenant.tracking.values() if c["Status"] == "ACTIVE"]
            if not name:
                raise _validation_single(item, "Tracking Category Name is required")
            if any(c["Name"].lower() == name.lower() for c in ctx.tenant.tracking.values()):
                raise _validation_single(item, f"The tracking category name {name} already exists")
            if len(active) >= MAX_ACTIVE_TRACKING_CATEGORIES:
                raise _validation_single(
                    item,
                    f"You can only have {MAX_ACTIVE_TRACKING_CATEGORIES} active tracking "
                    "categories",
                )
            category_id = _new_id()
            ctx.tenant.tracking[category_id] = {
                "TrackingCategoryID": category_id,
                "Name": name,
                "Status": "ACTIVE",
                "Options": [],
            }
            created.append(_render(ctx.tenant.tracking[category_id]))
        return _envelope(ctx, "TrackingCategories", created)

    async def _create_tracking_options(self, ctx: RequestContext) -> Response:
        category = ctx.tenant.tracking.get(ctx.request.path_params["id"])
        if category is None:
            raise _not_found()
        created = []
        for item in ctx.items("Options"):
            name = str(item.get("Name") or "").strip()
            if not name:
                raise _validation_single(item, "Tracking Option Name is required")
            if any(o["Name"].lower() == name.lower() for o in category["Options"]):
                raise _validation_single(item, f"The tracking option name {name} already exists")
            option = {"TrackingOptionID": _new_id(), "Name": name, "Status": "ACTIVE"}
            category["Options"].append(option)
            created.append(dict(option))
        return _envelope(ctx, "Options", created)

    # --- contacts ----------------------------------------------------------------------------

    def _render_contact(self, tenant: Tenant, contact: JSONObject) -> JSONObject:
        out = _render(contact)
        out["IsSupplier"] = any(
            inv["Type"] == "ACCPAY" and inv["Contact"]["ContactID"] == contact["ContactID"]
            for inv in tenant.invoices.values()
        )
        # Xero derives IsCustomer as it does IsSupplier: from the contact's sales invoices.
        out["IsCustomer"] = any(
            inv["Type"] == "ACCREC" and inv["Contact"]["ContactID"] == contact["ContactID"]
            for inv in tenant.invoices.values()
        )
        out.setdefault("Addresses", [])
        out.setdefault("Phones", [])
        out["HasAttachments"] = False
        return out

    async def _list_contacts(self, ctx: RequestContext) -> Response:
        include_archived = ctx.request.query_params.get("includeArchived", "").lower() == "true"
        ids = _id_list(ctx, "IDs")
        contacts = [
            self._render_contact(ctx.tenant, c)
            for c in ctx.tenant.contacts.values()
            if (include_archived or c["ContactStatus"] == "ACTIVE")
            and (ids is None or c["ContactID"].lower() in ids)
        ]
        search = ctx.request.query_params.get("searchTerm")
        if search:
            needle = search.lower()
            contacts = [
                c
                for c in contacts
                if any(
                    needle in str(c.get(f) or "").lower()
                    for f in ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress")
                )
            ]
        return _paged(ctx, "Contacts", _filter(ctx, _modified_since(ctx, contacts)))

    async def _get_contact(self, ctx: RequestContext) -> Response:
        contact = ctx.tenant.contacts.get(ctx.request.path_params["id"])
        if contact is None:
            raise _not_found()
        return _envelope(ctx, "Contacts", [self._render_contact(ctx.tenant, contact)])

    async def _put_contacts(self, ctx: RequestContext) -> Response:
        return await self._save_contacts(ctx, allow_update=False)

    async def _post_contacts(self, ctx: RequestContext) -> Response:
        return await self._save_contacts(ctx, allow_update=True)

    async def _save_contacts(self, ctx: RequestContext, *, allow_update: bool) -> Response:
        items = ctx.items("Contacts")
        path_id = ctx.request.path_params.get("id")
        if path_id is not None:
            if path_id not in ctx.tenant.contacts:
                raise _not_found()
            items = [{**item, "ContactID": path_id} for item in items[:1]]
        built: list[JSONObject] = []
        elements: list[JSONObject] = []
        failed = False
        for item in items:
            existing_id = item.get("ContactID") if allow_update else None
            existing = ctx.tenant.contacts.get(str(existing_id)) if existing_id else None
            if existing_id and existing is None:
                raise _not_found()
            record, errors = self._build_contact(ctx, item, existing, built)
            elements.append({**item, "ValidationErrors": [{"Message": m} for m in errors]})
            failed = failed or bool(errors)
            built.append(record)
        if failed:
            raise _validation(elements)
        for record in built:
            created = record["ContactID"] not in ctx.tenant.contacts
            ctx.tenant.contacts[record["ContactID"]] = record
            self._event(ctx, "CONTACT", record["ContactID"], created)
        return _envelope(ctx, "Contacts", [self._render_contact(ctx.tenant, r) for r in built])

    def _build_contact(
        self,
        ctx: RequestContext,
        item: JSONObject,
        existing: JSONObject | None,
        pending: list[JSONObject],
    ) -> tuple[JSONObject, list[str]]:
        record = (
            copy.deepcopy(existing)
            if existing
            else {
                "ContactID": _new_id(),
                "ContactStatus": "ACTIVE",
                "IsCustomer": False,
            }
        )
        errors: list[str] = []
        for name in (
            "Name",
            "ContactNumber",
            "AccountNumber",
            "FirstName",
            "LastName",
            "EmailAddress",
            "TaxNumber",
            "DefaultCurrency",
            "PurchasesDefaultAccountCode",
            "ContactStatus",
            "CompanyNumber",
            "BankAccountDetails",
            "BatchPayments",
        ):
            if name in item:
                record[name] = copy.deepcopy(item[name])
        name = str(record.get("Name") or "").strip()
        if not name:
            errors.append("The contact name must be specified.")
        elif record.get("ContactStatus", "ACTIVE") == "ACTIVE":
            others = [*ctx.tenant.contacts.values(), *pending]
            if any(
                other["ContactID"] != record["ContactID"]
                and other.get("ContactStatus") == "ACTIVE"
                and str(other.get("Name", "")).strip().lower() == name.lower()
                for other in others
            ):
                errors.append(
                    f"The contact name {name} is already assigned to another contact. The "
                    "contact name must be unique across all active contacts."
                )
        if len(str(record.get("ContactNumber") or "")) > 50:
            errors.append("The ContactNumber must be 50 characters or fewer.")
        batch_details = record.get("BatchPayments")
        if batch_details is not None and not isinstance(batch_details, dict):
            errors.append("BatchPayments must be an object.")
        elif batch_details:
            for key, limit in _BATCH_PAYMENT_DETAIL_LIMITS.items():
                if len(str(batch_details.get(key) or "")) > limit:
                    errors.append(f"BatchPayments.{key} must be {limit} characters or fewer.")
        code = record.get("PurchasesDefaultAccountCode")
        if code and not any(a.get("Code") == code for a in ctx.tenant.accounts.values()):
            errors.append(f"Account code '{code}' is not a valid code.")
        currency = record.get("DefaultCurrency")
        if currency and currency not in ctx.tenant.currencies:
            errors.append(f"The currency {currency} is not enabled for this organisation.")
        if record.get("ContactStatus") not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
            errors.append(f"Invalid ContactStatus {record.get('ContactStatus')}")
        record["UpdatedDateUTC"] = ctx.now
        return record, errors

    # --- invoices ----------------------------------------------------------------------------

    def _render_invoice(self, tenant: Tenant, invoice: JSONObject, *, lines: bool) -> JSONObject:
        out = _render({k: v for k, v in invoice.items() if not k.startswith("_")})
        contact = tenant.contacts.get(invoice["Contact"]["ContactID"], {})
        out["Contact"] = {"ContactID": invoice["Contact"]["ContactID"], "Name": contact.get("Name")}
        out["DateString"] = _date_string(invoice["Date"])
        if invoice.get("DueDate"):
            out["DueDateString"] = _date_string(invoice["DueDate"])
        out["Payments"] = [
            {
                "PaymentID": p["PaymentID"],
                **({"BatchPaymentID": p["BatchPaymentID"]} if p.get("BatchPaymentID") else {}),
                "Date": ms_json(p["Date"]),
                "Amount": p["Amount"],
                "Reference": p.get("Reference", ""),
                "CurrencyRate": p["CurrencyRate"],
                "HasAccount": True,
                "HasValidationErrors": False,
            }
            for p in (tenant.payments[pid] for pid in invoice["_payment_ids"])
            if p["Status"] != "DELETED"
        ]
        out["CreditNotes"] = [
            {
                "CreditNoteID": alloc["CreditNoteID"],
                "CreditNoteNumber": tenant.credit_notes[alloc["CreditNoteID"]].get(
                    "CreditNoteNumber", ""
                ),
                "AppliedAmount": alloc["Amount"],
                "Date": ms_json(alloc["Date"]),
            }
            for alloc in invoice["_allocations"]
        ]
        out["HasAttachments"] = bool(tenant.attachments.get(invoice["InvoiceID"]))
        out["HasErrors"] = False
        if not lines:
            out.pop("LineItems", None)
        return out

    async def _list_invoices(self, ctx: RequestContext) -> Response:
        params = ctx.request.query_params
        ids = _id_list(ctx, "IDs")
        contact_ids = _id_list(ctx, "ContactIDs")
        numbers = set(filter(None, params.get("InvoiceNumbers", "").split(","))) or None
        statuses = set(filter(None, params.get("Statuses", "").upper().split(","))) or None
        paged = "page" in params
        rendered = [
            self._render_invoice(ctx.tenant, inv, lines=paged)
            for inv in ctx.tenant.invoices.values()
            if (ids is None or inv["InvoiceID"].lower() in ids)
            and (contact_ids is None or inv["Contact"]["ContactID"].lower() in contact_ids)
            and (numbers is None or inv.get("InvoiceNumber") in numbers)
            and (statuses is None or inv["Status"] in statuses)
        ]
        return _paged(ctx, "Invoices", _filter(ctx, _modified_since(ctx, rendered)))

    async def _get_invoice(self, ctx: RequestContext) -> Response:
        invoice = self._invoice(ctx.tenant, ctx.request.path_params["id"])
        return _envelope(ctx, "Invoices", [self._render_invoice(ctx.tenant, invoice, lines=True)])

    def _invoice(self, tenant: Tenant, reference: str) -> JSONObject:
        invoice = tenant.invoices.get(reference)
        if invoice is None:
            matches = [i for i in tenant.invoices.values() if i.get("InvoiceNumber") == reference]
            if not matches:
                raise _not_found()
            invoice = matches[0]
        return invoice

    async def _put_invoices(self, ctx: RequestContext) -> Response:
        return await self._save_invoices(ctx, allow_update=False)

    async def _post_invoices(self, ctx: RequestContext) -> Response:
        return await self._save_invoices(ctx, allow_update=True)

    async def _save_invoices(self, ctx: RequestContext, *, allow_update: bool) -> Response:
        items = ctx.items("Invoices")
        path_id = ctx.request.path_params.get("id")
        if path_id is not None:
            existing_invoice = self._invoice(ctx.tenant, path_id)
            items = [{**item, "InvoiceID": existing_invoice["InvoiceID"]} for item in items[:1]]
        built: list[JSONObject] = []
        new_contacts: list[JSONObject] = []
        elements: list[JSONObject] = []
        failed = False
        for item in items:
            existing_id = item.get("InvoiceID") if allow_update else None
            existing = ctx.tenant.invoices.get(str(existing_id)) if existing_id else None
            if existing_id and existing is None:
                raise _not_found()
            record, errors = self._build_document(ctx, item, existing, new_contacts, "Invoice")
            elements.append({**item, "ValidationErrors": [{"Message": m} for m in errors]})
            failed = failed or bool(errors)
            built.append(record)
        if failed:
            raise _validation(elements)
        for contact in new_contacts:
            ctx.tenant.contacts[contact["ContactID"]] = contact
            self._event(ctx, "CONTACT", contact["ContactID"], True)
        for record in built:
            before = ctx.tenant.invoices.get(record["InvoiceID"])
            ctx.tenant.invoices[record["InvoiceID"]] = record
            self._book_document(ctx.tenant, before, record, ctx.now)
            self._event(ctx, "INVOICE", record["InvoiceID"], before is None)
        return _envelope(
            ctx, "Invoices", [self._render_invoice(ctx.tenant, r, lines=True) for r in built]
        )

    def _build_document(
        self,
        ctx: RequestContext,
        item: JSONObject,
        existing: JSONObject | None,
        new_contacts: list[JSONObject],
        kind: str,
    ) -> tuple[JSONObject, list[str]]:
        """Validate and compute an invoice or credit note (kind "Invoice" / "CreditNote")."""
        tenant = ctx.tenant
        errors: list[str] = []
        is_invoice = kind == "Invoice"
        id_field = "InvoiceID" if is_invoice else "CreditNoteID"
        number_field = "InvoiceNumber" if is_invoice else "CreditNoteNumber"
        allowed_types = ("ACCPAY", "ACCREC") if is_invoice else ("ACCPAYCREDIT", "ACCRECCREDIT")

        if existing is not None:
            status_only = set(item) <= {id_field, "Status"}
            if status_only:
                return self._transition(ctx, existing, str(item.get("Status")), kind)
            if existing["Status"] == "AUTHORISED" and set(item) <= {
                id_field,
                "DueDate",
                "SentToContact",
            }:
                return self._quiet_edit(existing, item)
            if existing["Status"] not in ("DRAFT", "SUBMITTED", "AUTHORISED") or (
                existing.get("AmountPaid")
                or existing.get("AmountCredited")
                or existing.get("AppliedAmount")
            ):
                return existing, [
                    f"This {'invoice' if is_invoice else 'credit note'} cannot be edited in its "
                    "current state."
                ]
            item = {**_render(existing), **item}

        record: JSONObject = {
            id_field: existing[id_field] if existing else _new_id(),
        }
        xero_type = str(item.get("Type") or "")
        if xero_type not in allowed_types:
            errors.append(f"{kind} Type must be one of {', '.join(allowed_types)}.")
        record["Type"] = xero_type

        contact_ref = item.get("Contact") or {}
        contact = None
        if contact_ref.get("ContactID"):
            contact = tenant.contacts.get(str(contact_ref["ContactID"]))
            if contact is None:
                errors.append(f"Contact with ContactID {contact_ref['ContactID']} not found.")
        elif contact_ref.get("ContactNumber"):
            contact = next(
                (
                    c
                    for c in tenant.contacts.values()
                    if c.get("ContactNumber") == contact_ref["ContactNumber"]
                ),
                None,
            )
            if contact is None:
                errors.append(
                    f"Contact with ContactNumber {contact_ref['ContactNumber']} not found."
                )
        elif contact_ref.get("Name"):
            wanted = str(contact_ref["Name"]).strip().lower()
            contact = next(
                (
                    c
                    for c in [*tenant.contacts.values(), *new_contacts]
                    if c.get("ContactStatus") == "ACTIVE" and c["Name"].strip().lower() == wanted
                ),
                None,
            )
            if contact is None:
                # Xero creates a contact when a document names an unknown one.
                contact = {
                    "ContactID": _new_id(),
                    "ContactStatus": "ACTIVE",
                    "Name": str(contact_ref["Name"]).strip(),
                    "IsCustomer": False,
                    "UpdatedDateUTC": ctx.now,
                }
                new_contacts.append(contact)
        else:
            errors.append(
                "The Contact must contain at least 1 of the following elements to identify the "
                "contact: Name, ContactID, ContactNumber"
            )
        record["Contact"] = {"ContactID": contact["ContactID"] if contact else None}

        try:
            record["Date"] = parse_date(item.get("Date")) or ctx.now.date()
            record["DueDate"] = parse_date(item.get("DueDate"))
        except ValueError:
            errors.append("The date format is invalid; use yyyy-MM-dd.")
            record["Date"], record["DueDate"] = ctx.now.date(), None
        if record["DueDate"] is not None and record["DueDate"] < record["Date"]:
            errors.append("Due Date must be on or after the document Date.")

        status = str(item.get("Status") or "DRAFT")
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append(f"{kind} not of valid status for creation")
        record["Status"] = status

        currency = str(item.get("CurrencyCode") or tenant.base_currency)
        if currency not in tenant.currencies:
            errors.append(f"The currency {currency} is not enabled for this organisation.")
        record["CurrencyCode"] = currency
        rate, rate_error = self._currency_rate(tenant, currency, item.get("CurrencyRate"))
        if rate_error:
            errors.append(rate_error)
        record["CurrencyRate"] = rate

        line_amount_types = str(item.get("LineAmountTypes") or "Exclusive")
        if line_amount_types not in ("Exclusive", "Inclusive", "NoTax"):
            errors.append(f"LineAmountTypes {line_amount_types} is not valid.")
        record["LineAmountTypes"] = line_amount_types

        raw_lines = item.get("LineItems") or []
        if not raw_lines and status == "AUTHORISED":
            errors.append(f"At least one line item is required to approve a {kind.lower()}.")
        lines = []
        for raw in raw_lines:
            line, line_errors = self._build_line(
                tenant,
                raw,
                line_amount_types,
                status,
                expense=xero_type in ("ACCPAY", "ACCPAYCREDIT"),
            )
            errors.extend(line_errors)
            lines.append(line)
        record["LineItems"] = lines
        line_total = sum((line["LineAmount"] for line in lines), Decimal("0"))
        tax = sum((line["TaxAmount"] for line in lines), Decimal("0"))
        subtotal = line_total - tax if line_amount_types == "Inclusive" else line_total
        record["SubTotal"] = _money(subtotal)
        record["TotalTax"] = _money(tax)
        record["Total"] = _money(subtotal + tax)
        if record["Total"] < 0:
            errors.append("The document total must be zero or more.")

        number = item.get(number_field)
        if number:
            record[number_field] = str(number)
        elif xero_type in ("ACCREC", "ACCRECCREDIT"):
            if is_invoice:
                tenant.invoice_sequence += 1
                record[number_field] = f"INV-{tenant.invoice_sequence:04d}"
            else:
                tenant.credit_note_sequence += 1
                record[number_field] = f"CN-{tenant.credit_note_sequence:04d}"
        else:
            record[number_field] = ""
        if xero_type in ("ACCREC", "ACCRECCREDIT") and item.get("Reference"):
            # Reference is ACCREC-only: Xero ignores it on bills and supplier credits.
            record["Reference"] = str(item["Reference"])
        if is_invoice:
            if item.get("Url"):
                record["Url"] = str(item["Url"])
            record["AmountPaid"] = Decimal("0.00")
            record["AmountCredited"] = Decimal("0.00")
            record["AmountDue"] = record["Total"]
            record["_payment_ids"] = existing["_payment_ids"] if existing else []
            record["_allocations"] = existing["_allocations"] if existing else []
        else:
            record["RemainingCredit"] = record["Total"]
            record["AppliedAmount"] = Decimal("0.00")
            record["_allocations"] = existing["_allocations"] if existing else []
            if len(str(record.get(number_field) or "")) > 255:
                errors.append("The CreditNoteNumber must be 255 characters or fewer.")
        record["FullyPaidOnDate"] = None
        record["UpdatedDateUTC"] = ctx.now
        return record, errors

    def _quiet_edit(self, existing: JSONObject, item: JSONObject) -> tuple[JSONObject, list[str]]:
        """DueDate / SentToContact on an approved document, paid in part or not. As in Xero
        (erp-apis.md §3.14) this leaves UpdatedDateUTC alone when the document is partly paid,
        so an If-Modified-Since reader does not see the edit."""
        record = copy.deepcopy(existing)
        errors: list[str] = []
        if "DueDate" in item:
            due = parse_date(item["DueDate"]) if item["DueDate"] else None
            if due is None:
                errors.append("DueDate is not a valid date.")
            else:
                record["DueDate"] = due
        if "SentToContact" in item:
            record["SentToContact"] = bool(item["SentToContact"])
        if not (existing.get("AmountPaid") or existing.get("AmountCredited")):
            record["UpdatedDateUTC"] = self.now()
        return record, errors

    def _currency_rate(
        self, tenant: Tenant, currency: str, given: Any
    ) -> tuple[Decimal, str | None]:
        """A document's or payment's CurrencyRate (foreign units per base unit, 6 places).

        Base-currency documents are always 1; an omitted rate is the day rate ("XE.com").
        """
        if currency == tenant.base_currency:
            return Decimal("1"), None
        if given in (None, ""):
            return tenant.day_rates.get(currency, Decimal("1")), None
        try:
            rate = Decimal(str(given))
        except (InvalidOperation, ValueError):
            return Decimal("1"), "The CurrencyRate must be a number."
        if not rate.is_finite() or rate <= 0:
            return Decimal("1"), "The CurrencyRate must be greater than zero."
        rounded = rate.quantize(RATE_PLACES, rounding=ROUND_HALF_UP)
        if rounded == 0:
            return Decimal("1"), "The CurrencyRate must be greater than zero."
        return rounded, None

    def _build_line(
        self,
        tenant: Tenant,
        raw: JSONObject,
        line_amount_types: str,
        status: str,
        *,
        expense: bool = False,
    ) -> tuple[JSONObject, list[str]]:
        errors: list[str] = []
        try:
            quantity = Decimal(
                str(raw.get("Quantity", "1") if raw.get("Quantity") is not None else "1")
            )
            unit = raw.get("UnitAmount")
            unit_amount = Decimal(str(unit)) if unit is not None else None
            given = raw.get("LineAmount")
            line_amount = Decimal(str(given)) if given is not None else None
            tax_given = raw.get("TaxAmount")
            tax_amount = Decimal(str(tax_given)) if tax_given is not None else None
        except (InvalidOperation, ValueError):
            return {**raw, "LineAmount": Decimal("0"), "TaxAmount": Decimal("0")}, [
                "Line item amounts must be numbers."
            ]
        if line_amount is None:
            line_amount = _money(quantity * (unit_amount or Decimal("0")))
        if unit_amount is None:
            unit_amount = line_amount / quantity if quantity else line_amount
        tax_type = "NONE" if line_amount_types == "NoTax" else str(raw.get("TaxType") or "INPUT")
        rate = tenant.tax_rates.get(tax_type)
        if rate is None or rate.get("Status") != "ACTIVE":
            errors.append(
                f"The TaxType code '{tax_type}' does not exist or cannot be used for this type "
                "of transaction."
            )
        elif expense and not rate.get("CanApplyToExpenses"):
            errors.append(f"The TaxType code '{tax_type}' cannot be used on a bill.")
        if line_amount_types == "NoTax":
            tax_amount = Decimal("0")
        elif tax_amount is None:
            # Xero derives the line's tax from its rate; a TaxAmount given overrides it.
            percent = Decimal(str(rate.get("EffectiveRate") or 0)) if rate else Decimal("0")
            if line_amount_types == "Inclusive":
                tax_amount = _money(line_amount * percent / (100 + percent))
            else:
                tax_amount = _money(line_amount * percent / 100)
        line: JSONObject = {
            "LineItemID": str(raw.get("LineItemID") or _new_id()),
            "Description": str(raw.get("Description") or ""),
            "Quantity": quantity,
            "UnitAmount": unit_amount,
            "LineAmount": _money(line_amount),
            "TaxAmount": _money(tax_amount),
            "TaxType": tax_type,
            "Tracking": [],
        }
        if raw.get("ItemCode"):
            line["ItemCode"] = str(raw["ItemCode"])
        account = None
        if raw.get("AccountID"):
            account = tenant.accounts.get(str(raw["AccountID"]))
            if account is None:
                errors.append(f"Account with AccountID {raw['AccountID']} is not valid.")
        elif raw.get("AccountCode"):
            code = str(raw["AccountCode"])
            account = next((a for a in tenant.accounts.values() if a.get("Code") == code), None)
            if account is None:
                errors.append(f"Account code '{code}' is not a valid code for this document.")
        elif status == "AUTHORISED":
            errors.append("Account code must be specified on every line of an approved document.")
        if account is not None:
            if account["Status"] != "ACTIVE":
                errors.append(f"Account code '{account.get('Code')}' has been archived.")
            line["AccountCode"] = account.get("Code")
            line["AccountID"] = account["AccountID"]
        tracking = raw.get("Tracking") or []
        if len(tracking) > MAX_TRACKING_PER_LINE:
            errors.append(
                f"A line item can have a maximum of {MAX_TRACKING_PER_LINE} tracking categories."
            )
        seen_categories: set[str] = set()
        for entry in tracking[:MAX_TRACKING_PER_LINE]:
            resolved = self._resolve_tracking(tenant, entry)
            if isinstance(resolved, str):
                errors.append(resolved)
                continue
            if resolved["TrackingCategoryID"] in seen_categories:
                errors.append(
                    f"Tracking category {resolved['Name']} is used more than once on a line item."
                )
            seen_categories.add(resolved["TrackingCategoryID"])
            line["Tracking"].append(resolved)
        return line, errors

    def _resolve_tracking(self, tenant: Tenant, entry: JSONObject) -> JSONObject | str:
        category = None
        if entry.get("TrackingCategoryID"):
            category = tenant.tracking.get(str(entry["TrackingCategoryID"]))
        elif entry.get("Name"):
            wanted = str(entry["Name"]).lower()
            category = next(
                (c for c in tenant.tracking.values() if c["Name"].lower() == wanted), None
            )
        option = None
        candidates = [category] if category else list(tenant.tracking.values())
        for candidate in candidates:
            for opt in candidate["Options"]:
                if (
                    entry.get("TrackingOptionID")
                    and opt["TrackingOptionID"] == entry["TrackingOptionID"]
                ) or (
                    not entry.get("TrackingOptionID")
                    and entry.get("Option")
                    and opt["Name"].lower() == str(entry["Option"]).lower()
                ):
                    category, option = candidate, opt
                    break
            if option:
                break
        if category is None or option is None:
            option_name = entry.get("Option") or entry.get("TrackingOptionID")
            category_name = entry.get("Name") or entry.get("TrackingCategoryID")
            return (
                f"The TrackingOption {option_name} is not valid for TrackingCategory "
                f"{category_name}."
            )
        if category["Status"] != "ACTIVE" or option["Status"] != "ACTIVE":
            return f"The TrackingOption {option['Name']} has been archived."
        return {
            "TrackingCategoryID": category["TrackingCategoryID"],
            "TrackingOptionID": option["TrackingOptionID"],
            "Name": category["Name"],
            "Option": option["Name"],
        }

    def _transition(
        self, ctx: RequestContext, existing: JSONObject, status: str, kind: str
    ) -> tuple[JSONObject, list[str]]:
        record = dict(existing)
        current = existing["Status"]
        settled = (
            (existing.get("AmountPaid") or 0)
            + (existing.get("AmountCredited") or 0)
            + (existing.get("AppliedAmount") or 0)
        )
        allowed = {
            "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
            "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
            "AUTHORISED": {"AUTHORISED", "VOIDED"},
        }.get(current, {current})
        if status not in allowed:
            return existing, [f"{kind} with status {current} cannot be changed to {status}."]
        if status == "VOIDED" and settled:
            return existing, [
                "This document cannot be voided as it has payments or credit notes allocated."
            ]
        record["Status"] = status
        if status in ("VOIDED", "DELETED"):
            if "AmountDue" in record:
                record["AmountDue"] = Decimal("0.00")
            if "RemainingCredit" in record:
                record["RemainingCredit"] = Decimal("0.00")
        record["UpdatedDateUTC"] = ctx.now
        return record, []

    # --- attachments -------------------------------------------------------------------------

    def _render_attachment(
        self, ctx: RequestContext, invoice_id: str, att: JSONObject
    ) -> JSONObject:
        base = str(ctx.request.base_url).rstrip("/")
        return {
            "AttachmentID": att["AttachmentID"],
            "FileName": att["FileName"],
            "Url": f"{base}{API}/Invoices/{invoice_id}/Attachments/{quote(att['FileName'])}",
            "MimeType": att["MimeType"],
            "ContentLength": att["ContentLength"],
            "IncludeOnline": att["IncludeOnline"],
        }

    async def _list_attachments(self, ctx: RequestContext) -> Response:
        invoice = self._invoice(ctx.tenant, ctx.request.path_params["id"])
        atts = ctx.tenant.attachments.get(invoice["InvoiceID"], [])
        return _envelope(
            ctx,
            "Attachments",
            [self._render_attachment(ctx, invoice["InvoiceID"], a) for a in atts],
        )

    async def _get_attachment(self, ctx: RequestContext) -> Response:
        invoice = self._invoice(ctx.tenant, ctx.request.path_params["id"])
        wanted = ctx.request.path_params["name"]
        for att in ctx.tenant.attachments.get(invoice["InvoiceID"], []):
            if wanted in (att["AttachmentID"], att["FileName"]):
                return Response(
                    ctx.tenant.attachment_content[att["AttachmentID"]],
                    media_type=att["MimeType"],
                )
        raise _not_found()

    async def _put_attachment(self, ctx: RequestContext) -> Response:
        invoice = self._invoice(ctx.tenant, ctx.request.path_params["id"])
        file_name = ctx.request.path_params["name"]
        if not ctx.body:
            raise _validation_single({"FileName": file_name}, "The attachment content is empty.")
        atts = ctx.tenant.attachments.setdefault(invoice["InvoiceID"], [])
        same_name = next((a for a in atts if a["FileName"] == file_name), None)
        if same_name is None and len(atts) >= MAX_ATTACHMENTS:
            raise _validation_single(
                {"FileName": file_name},
                f"The maximum number of attachments ({MAX_ATTACHMENTS}) has been reached.",
            )
        # Re-uploading a file name replaces that attachment, as Xero does.
        att = same_name or {"AttachmentID": _new_id(), "FileName": file_name}
        att["MimeType"] = ctx.request.headers.get("content-type", "application/octet-stream")
        att["ContentLength"] = len(ctx.body)
        att["IncludeOnline"] = ctx.request.query_params.get("IncludeOnline", "").lower() == "true"
        if same_name is None:
            atts.append(att)
        ctx.tenant.attachment_content[att["AttachmentID"]] = ctx.body
        # HasAttachments changed: the invoice's UpdatedDateUTC moves, so an incremental read
        # of invoices finds the bill whose attachments to list.
        invoice["UpdatedDateUTC"] = ctx.now
        return _envelope(
            ctx, "Attachments", [self._render_attachment(ctx, invoice["InvoiceID"], att)]
        )

    # --- payments ----------------------------------------------------------------------------

    def _render_payment(self, tenant: Tenant, payment: JSONObject) -> JSONObject:
        out = _render({k: v for k, v in payment.items() if not k.startswith("_")})
        invoice = tenant.invoices[payment["_invoice_id"]]
        contact = tenant.contacts.get(invoice["Contact"]["ContactID"], {})
        account = tenant.accounts[payment["_account_id"]]
        out["Account"] = {"AccountID": account["AccountID"], "Code": account.get("Code")}
        out["Invoice"] = {
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice.get("InvoiceNumber", ""),
            "Type": invoice["Type"],
            "CurrencyCode": invoice["CurrencyCode"],
            "Contact": {"ContactID": invoice["Contact"]["ContactID"], "Name": contact.get("Name")},
        }
        batch = tenant.batch_payments.get(payment.get("BatchPaymentID") or "")
        if batch is not None:
            out["BatchPayment"] = {
                "BatchPaymentID": batch["BatchPaymentID"],
                "Account": {"AccountID": batch["_account_id"]},
                "Date": ms_json(batch["Date"]),
                "Type": batch["Type"],
                "Status": batch["Status"],
                "TotalAmount": batch["TotalAmount"],
                "UpdatedDateUTC": ms_json(batch["UpdatedDateUTC"]),
                "IsReconciled": batch["IsReconciled"],
            }
        out["HasAccount"] = True
        out["HasValidationErrors"] = False
        return out

    async def _list_payments(self, ctx: RequestContext) -> Response:
        rendered = [self._render_payment(ctx.tenant, p) for p in ctx.tenant.payments.values()]
        return _paged(ctx, "Payments", _filter(ctx, _modified_since(ctx, rendered)))

    async def _get_payment(self, ctx: RequestContext) -> Response:
        payment = ctx.tenant.payments.get(ctx.request.path_params["id"])
        if payment is None:
            raise _not_found()
        return _envelope(ctx, "Payments", [self._render_payment(ctx.tenant, payment)])

    async def _put_payments(self, ctx: RequestContext) -> Response:
        tenant = ctx.tenant
        items = ctx.items("Payments")
        pending: dict[str, Decimal] = {}
        built: list[JSONObject] = []
        elements: list[JSONObject] = []
        failed = False
        for item in items:
            record, errors = self._build_payment(ctx, item, pending)
            elements.append({**item, "ValidationErrors": [{"Message": m} for m in errors]})
            failed = failed or bool(errors)
            built.append(record)
        if failed:
            raise _validation(elements)
        for record in built:
            self._pay(tenant, record, ctx.now)
        return _envelope(ctx, "Payments", [self._render_payment(tenant, r) for r in built])

    def _pay(self, tenant: Tenant, record: JSONObject, now: datetime) -> None:
        """Commit a validated payment: store it, settle its invoice, post its journal."""
        tenant.payments[record["PaymentID"]] = record
        invoice = tenant.invoices[record["_invoice_id"]]
        invoice["_payment_ids"].append(record["PaymentID"])
        _settle(invoice, paid=record["Amount"], on=record["Date"], now=now)
        self._post_payment(tenant, record, invoice, now)
        # Xero has no payment events; the invoice a payment settles changed (the emulator's
        # reading: an INVOICE UPDATE), which is how a receiver learns to read payments.
        self.webhooks.record(tenant.id, "INVOICE", invoice["InvoiceID"], "UPDATE", now)

    def _unpay(self, tenant: Tenant, payment: JSONObject, now: datetime) -> None:
        """Delete a payment: its invoice is owed again and its journal is reversed."""
        payment["Status"] = "DELETED"
        payment["UpdatedDateUTC"] = now
        invoice = tenant.invoices[payment["_invoice_id"]]
        _settle(invoice, paid=-payment["Amount"], on=None, now=now)
        self.webhooks.record(tenant.id, "INVOICE", invoice["InvoiceID"], "UPDATE", now)
        invoice["_base_settled"] = invoice.get("_base_settled", Decimal("0")) - payment.get(
            "_base_relief", Decimal("0")
        )
        if payment.get("_journal_id"):
            self._reverse_journal(tenant, payment["_journal_id"], now)

    def _build_payment(
        self, ctx: RequestContext, item: JSONObject, pending: dict[str, Decimal]
    ) -> tuple[JSONObject, list[str]]:
        tenant = ctx.tenant
        errors: list[str] = []
        invoice_ref = item.get("Invoice") or {}
        invoice = None
        if invoice_ref.get("InvoiceID"):
            invoice = tenant.invoices.get(str(invoice_ref["InvoiceID"]))
        elif invoice_ref.get("InvoiceNumber"):
            invoice = next(
                (
                    i
                    for i in tenant.invoices.values()
                    if i.get("InvoiceNumber") == invoice_ref["InvoiceNumber"]
                ),
                None,
            )
        if invoice is None:
            errors.append(
                "You must specify either an Invoice, CreditNote, Prepayment or Overpayment"
            )
        account_ref = item.get("Account") or {}
        account = None
        if account_ref.get("AccountID"):
            account = tenant.accounts.get(str(account_ref["AccountID"]))
        elif account_ref.get("Code"):
            account = next(
                (a for a in tenant.accounts.values() if a.get("Code") == account_ref["Code"]), None
            )
        if account is None:
            errors.append("Account could not be found")
        elif account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
            errors.append(
                f"Account {account['Name']} is not a bank account and does not have payments "
                "enabled"
            )
        try:
            amount = Decimal(str(item.get("Amount")))
        except (InvalidOperation, ValueError):
            amount = Decimal("0")
        if amount <= 0:
            errors.append("Payment amount must be greater than zero")
        try:
            paid_on = parse_date(item.get("Date")) or ctx.now.date()
        except ValueError:
            errors.append("The date format is invalid; use yyyy-MM-dd.")
            paid_on = ctx.now.date()
        if invoice is not None:
            if invoice["Status"] != "AUTHORISED":
                errors.append("Payments can only be made against Authorised documents")
            elif amount > invoice["AmountDue"] - pending.get(invoice["InvoiceID"], Decimal("0")):
                errors.append("Payment amount exceeds the amount outstanding on this document")
            if account is not None and account.get("CurrencyCode") not in (
                invoice["CurrencyCode"],
                tenant.base_currency,
            ):
                errors.append(
                    f"The payment account is in {account.get('CurrencyCode')}; pay a "
                    f"{invoice['CurrencyCode']} document from a {invoice['CurrencyCode']} or "
                    f"{tenant.base_currency} account"
                )
        if not errors and invoice is not None:
            pending[invoice["InvoiceID"]] = pending.get(invoice["InvoiceID"], Decimal("0")) + amount
        currency = invoice["CurrencyCode"] if invoice else tenant.base_currency
        rate, rate_error = self._currency_rate(tenant, currency, item.get("CurrencyRate"))
        if rate_error:
            errors.append(rate_error)
        # BankAmount is in the bank account's currency: the document's, or the base currency.
        in_document_currency = account is not None and account.get("CurrencyCode") == currency
        bank_amount = _money(amount) if in_document_currency else _money(amount / rate)
        record: JSONObject = {
            "PaymentID": _new_id(),
            "Date": paid_on,
            "Amount": _money(amount),
            "BankAmount": bank_amount,
            "CurrencyRate": rate,
            "Reference": str(item.get("Reference") or ""),
            "IsReconciled": bool(item.get("IsReconciled", False)),
            "Status": "AUTHORISED",
            "PaymentType": "ACCPAYPAYMENT"
            if invoice is None or invoice["Type"] == "ACCPAY"
            else "ACCRECPAYMENT",
            "UpdatedDateUTC": ctx.now,
            "_invoice_id": invoice["InvoiceID"] if invoice else None,
            "_account_id": account["AccountID"] if account else None,
        }
        return record, errors

    async def _delete_payment(self, ctx: RequestContext) -> Response:
        payment = ctx.tenant.payments.get(ctx.request.path_params["id"])
        if payment is None:
            raise _not_found()
        items = ctx.items("Payments")
        element = {"PaymentID": payment["PaymentID"], **(items[0] if items else {})}
        if (
            not items
            or set(items[0]) - {"PaymentID", "Status"}
            or items[0].get("Status") != ("DELETED")
        ):
            raise _validation_single(element, "Payments can only be updated to a Status of DELETED")
        if payment.get("BatchPaymentID"):
            raise _validation_single(
                element,
                "This payment is part of a batch payment and cannot be deleted on its own; "
                "delete the batch payment instead",
            )
        if payment["Status"] == "DELETED":
            raise _validation_single(element, "This payment has already been deleted")
        self._unpay(ctx.tenant, payment, ctx.now)
        return _envelope(ctx, "Payments", [self._render_payment(ctx.tenant, payment)])

    # --- batch payments ----------------------------------------------------------------------

    def _render_batch(self, tenant: Tenant, batch: JSONObject) -> JSONObject:
        out = _render({k: v for k, v in batch.items() if not k.startswith("_")})
        account = tenant.accounts[batch["_account_id"]]
        out["Account"] = {"AccountID": account["AccountID"], "Code": account.get("Code")}
        out["DateString"] = _date_string(batch["Date"])
        members = []
        for payment_id in batch["_payment_ids"]:
            member = self._render_payment(tenant, tenant.payments[payment_id])
            member.pop("BatchPayment", None)
            members.append(member)
        out["Payments"] = members
        return out

    async def _list_batch_payments(self, ctx: RequestContext) -> Response:
        rendered = [self._render_batch(ctx.tenant, b) for b in ctx.tenant.batch_payments.values()]
        return _envelope(ctx, "BatchPayments", _filter(ctx, _modified_since(ctx, rendered)))

    async def _get_batch_payment(self, ctx: RequestContext) -> Response:
        batch = ctx.tenant.batch_payments.get(ctx.request.path_params["id"])
        if batch is None:
            raise _not_found()
        return _envelope(ctx, "BatchPayments", [self._render_batch(ctx.tenant, batch)])

    async def _put_batch_payments(self, ctx: RequestContext) -> Response:
        """One bank line paying several documents: every member is valid, or none is made."""
        tenant = ctx.tenant
        pending: dict[str, Decimal] = {}
        built: list[tuple[JSONObject, list[JSONObject]]] = []
        elements: list[JSONObject] = []
        failed = False
        for item in ctx.items("BatchPayments"):
            errors: list[str] = []
            raw_members = [m for m in item.get("Payments") or [] if isinstance(m, dict)]
            if not raw_members:
                errors.append("A batch payment must contain at least one payment")
            members: list[JSONObject] = []
            for raw in raw_members:
                merged = {
                    **raw,
                    "Account": item.get("Account"),
                    "Date": item.get("Date"),
                    "Reference": raw.get("Reference") or item.get("Reference"),
                }
                record, member_errors = self._build_payment(ctx, merged, pending)
                errors.extend(e for e in member_errors if e not in errors)
                members.append(record)
            invoices = [tenant.invoices[m["_invoice_id"]] for m in members if m["_invoice_id"]]
            types = {invoice["Type"] for invoice in invoices}
            if len(types) > 1:
                errors.append("A batch payment cannot pay bills and sales invoices together")
            if len({invoice["CurrencyCode"] for invoice in invoices}) > 1:
                errors.append("Every document in a batch payment must be in the same currency")
            if len(str(item.get("Details") or "")) > 18:
                errors.append("Details must be 18 characters or fewer")
            batch_id = _new_id()
            batch: JSONObject = {
                "BatchPaymentID": batch_id,
                "Type": "RECBATCH" if types == {"ACCREC"} else "PAYBATCH",
                "Status": "AUTHORISED",
                "Date": members[0]["Date"] if members else ctx.now.date(),
                "Reference": str(item.get("Reference") or ""),
                "Details": str(item.get("Details") or ""),
                "TotalAmount": _money(sum((m["Amount"] for m in members), Decimal("0"))),
                "IsReconciled": False,
                "UpdatedDateUTC": ctx.now,
                "_account_id": members[0]["_account_id"] if members else None,
                "_payment_ids": [m["PaymentID"] for m in members],
            }
            for member in members:
                member["BatchPaymentID"] = batch_id
            elements.append({**item, "ValidationErrors": [{"Message": m} for m in errors]})
            failed = failed or bool(errors)
            built.append((batch, members))
        if failed:
            raise _validation(elements)
        for batch, members in built:
            tenant.batch_payments[batch["BatchPaymentID"]] = batch
            for member in members:
                self._pay(tenant, member, ctx.now)
        return _envelope(
            ctx, "BatchPayments", [self._render_batch(tenant, batch) for batch, _ in built]
        )

    async def _delete_batch_payment(self, ctx: RequestContext) -> Response:
        """POST /BatchPayments/{id} {"Status":"DELETED"} (or POST /BatchPayments with the id)."""
        items = ctx.items("BatchPayments")
        item = items[0] if items else {}
        batch_id = ctx.request.path_params.get("id") or str(item.get("BatchPaymentID") or "")
        batch = ctx.tenant.batch_payments.get(batch_id)
        if batch is None:
            raise _not_found()
        element = {"BatchPaymentID": batch_id, **item}
        if item.get("Status") != "DELETED" or set(item) - {"BatchPaymentID", "Status"}:
            raise _validation_single(
                element, "Batch payments can only be updated to a Status of DELETED"
            )
        if batch["Status"] == "DELETED":
            raise _validation_single(element, "This batch payment has already been deleted")
        for payment_id in batch["_payment_ids"]:
            self._unpay(ctx.tenant, ctx.tenant.payments[payment_id], ctx.now)
        batch["Status"] = "DELETED"
        batch["UpdatedDateUTC"] = ctx.now
        return _envelope(ctx, "BatchPayments", [self._render_batch(ctx.tenant, batch)])

    # --- credit notes ------------------------------------------------------------------------

    def _render_credit_note(self, tenant: Tenant, note: JSONObject) -> JSONObject:
        out = _render({k: v for k, v in note.items() if not k.startswith("_")})
        contact = tenant.contacts.get(note["Contact"]["ContactID"], {})
        out["Contact"] = {"ContactID": note["Contact"]["ContactID"], "Name": contact.get("Name")}
        out["DateString"] = _date_string(note["Date"])
        # A deleted allocation is gone from the credit note (and from the invoice).
        out["Allocations"] = [
            _render(self._allocation_view(tenant, a))
            for a in note["_allocations"]
            if not a.get("_deleted")
        ]
        return out

    def _allocation_view(self, tenant: Tenant, allocation: JSONObject) -> JSONObject:
        invoice = tenant.invoices[allocation["InvoiceID"]]
        return {
            "AllocationID": allocation["AllocationID"],
            "Amount": allocation["Amount"],
            "Date": allocation["Date"],
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
            },
            "CreditNote": {"CreditNoteID": allocation["CreditNoteID"]},
            "IsDeleted": bool(allocation.get("_deleted")),
        }

    async def _list_credit_notes(self, ctx: RequestContext) -> Response:
        rendered = [
            self._render_credit_note(ctx.tenant, n) for n in ctx.tenant.credit_notes.values()
        ]
        return _paged(ctx, "CreditNotes", _filter(ctx, _modified_since(ctx, rendered)))

    async def _get_credit_note(self, ctx: RequestContext) -> Response:
        note = ctx.tenant.credit_notes.get(ctx.request.path_params["id"])
        if note is None:
            raise _not_found()
        return _envelope(ctx, "CreditNotes", [self._render_credit_note(ctx.tenant, note)])

    async def _put_credit_notes(self, ctx: RequestContext) -> Response:
        return await self._save_credit_notes(ctx, allow_update=False)

    async def _post_credit_notes(self, ctx: RequestContext) -> Response:
        return await self._save_credit_notes(ctx, allow_update=True)

    async def _save_credit_notes(self, ctx: RequestContext, *, allow_update: bool) -> Response:
        items = ctx.items("CreditNotes")
        path_id = ctx.request.path_params.get("id")
        if path_id is not None:
            if path_id not in ctx.tenant.credit_notes:
                raise _not_found()
            items = [{**item, "CreditNoteID": path_id} for item in items[:1]]
        built: list[JSONObject] = []
        new_contacts: list[JSONObject] = []
        elements: list[JSONObject] = []
        failed = False
        for item in items:
            existing_id = item.get("CreditNoteID") if allow_update else None
            existing = ctx.tenant.credit_notes.get(str(existing_id)) if existing_id else None
            if existing_id and existing is None:
                raise _not_found()
            record, errors = self._build_document(ctx, item, existing, new_contacts, "CreditNote")
            elements.append({**item, "ValidationErrors": [{"Message": m} for m in errors]})
            failed = failed or bool(errors)
            built.append(record)
        if failed:
            raise _validation(elements)
        for contact in new_contacts:
            ctx.tenant.contacts[contact["ContactID"]] = contact
            self._event(ctx, "CONTACT", contact["ContactID"], True)
        for record in built:
            before = ctx.tenant.credit_notes.get(record["CreditNoteID"])
            ctx.tenant.credit_notes[record["CreditNoteID"]] = record
            self._book_document(ctx.tenant, before, record, ctx.now)
            self._event(ctx, "CREDITNOTE", record["CreditNoteID"], before is None)
        return _envelope(
            ctx, "CreditNotes", [self._render_credit_note(ctx.tenant, r) for r in built]
        )

    async def _put_allocations(self, ctx: RequestContext) -> Response:
        tenant = ctx.tenant
        note = tenant.credit_notes.get(ctx.request.path_params["id"])
        if note is None:
            raise _not_found()
        made = []
        for item in ctx.items("Allocations"):
            errors: list[str] = []
            invoice = tenant.invoices.get(str((item.get("Invoice") or {}).get("InvoiceID")))
            try:
                amount = Decimal(str(item.get("Amount")))
            except (InvalidOperation, ValueError):
                amount = Decimal("0")
            try:
                allocated_on = parse_date(item.get("Date"))
            except ValueError:
                allocated_on = None
            if allocated_on is None:
                errors.append("Allocation Date is required.")
            if amount <= 0:
                errors.append("Allocation Amount must be greater than zero.")
            if note["Status"] != "AUTHORISED":
                errors.append("Only authorised credit notes can be allocated.")
            if invoice is None:
                errors.append("Allocation Invoice could not be found.")
            else:
                expected = "ACCPAY" if note["Type"] == "ACCPAYCREDIT" else "ACCREC"
                if invoice["Type"] != expected:
                    errors.append(
                        f"A {note['Type']} credit note can only be allocated to {expected}."
                    )
                if invoice["Status"] != "AUTHORISED":
                    errors.append("Credit notes can only be allocated to Authorised documents.")
                if invoice["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
                    errors.append("The credit note and the invoice must be for the same contact.")
                if invoice["CurrencyCode"] != note["CurrencyCode"]:
                    errors.append("The credit note and the invoice must be in the same currency.")
                if amount > invoice["AmountDue"]:
                    errors.append(
                        "The amount being allocated exceeds the amount due on the invoice."
                    )
            if amount > note["RemainingCredit"]:
                errors.append("The amount being allocated exceeds the remaining credit.")
            if errors or invoice is None or allocated_on is None:
                raise _validation_single(item, *errors)
            allocation = {
                "AllocationID": _new_id(),
                "CreditNoteID": note["CreditNoteID"],
                "InvoiceID": invoice["InvoiceID"],
                "Amount": _money(amount),
                "Date": allocated_on,
            }
            note["_allocations"].append(allocation)
            note["RemainingCredit"] = _money(note["RemainingCredit"] - amount)
            note["AppliedAmount"] = _money(note["AppliedAmount"] + amount)
            note["UpdatedDateUTC"] = ctx.now
            if note["RemainingCredit"] == 0:
                note["Status"] = "PAID"
                note["FullyPaidOnDate"] = allocated_on
            invoice["_allocations"].append(allocation)
            _settle(invoice, credited=amount, on=allocated_on, now=ctx.now)
            self._post_allocation(tenant, allocation, note, invoice, ctx.now)
            made.append(_render(self._allocation_view(tenant, allocation)))
        return _envelope(ctx, "Allocations", made)

    async def _delete_allocation(self, ctx: RequestContext) -> Response:
        """DELETE /CreditNotes/{id}/Allocations/{AllocationID}: the credit is free again."""
        tenant = ctx.tenant
        note = tenant.credit_notes.get(ctx.request.path_params["id"])
        if note is None:
            raise _not_found()
        wanted = ctx.request.path_params["allocation_id"].lower()
        allocation = next(
            (
                a
                for a in note["_allocations"]
                if a["AllocationID"].lower() == wanted and not a.get("_deleted")
            ),
            None,
        )
        if allocation is None:
            raise _not_found()
        invoice = tenant.invoices[allocation["InvoiceID"]]
        allocation["_deleted"] = True
        invoice["_allocations"] = [
            a for a in invoice["_allocations"] if a["AllocationID"] != allocation["AllocationID"]
        ]
        amount = allocation["Amount"]
        note["RemainingCredit"] = _money(note["RemainingCredit"] + amount)
        note["AppliedAmount"] = _money(note["AppliedAmount"] - amount)
        if note["Status"] == "PAID":
            note["Status"] = "AUTHORISED"
            note["FullyPaidOnDate"] = None
        note["UpdatedDateUTC"] = ctx.now
        _settle(invoice, credited=-amount, on=None, now=ctx.now)
        invoice_relief, note_relief = allocation.get("_relief", (Decimal("0"), Decimal("0")))
        invoice["_base_settled"] = invoice.get("_base_settled", Decimal("0")) - invoice_relief
        note["_base_settled"] = note.get("_base_settled", Decimal("0")) - note_relief
        if allocation.get("_journal_id"):
            self._reverse_journal(tenant, allocation["_journal_id"], ctx.now)
        # The spec answers with the Allocation itself, not an envelope.
        return _json_response(200, _render(self._allocation_view(tenant, allocation)))

    # --- the general ledger (what GET /Journals reads) ---------------------------------------
    #
    # Every document, payment and allocation posts a balanced journal in the base currency
    # (NetAmount > 0 is a debit): an AUTHORISED bill debits its line accounts and the tax
    # account and credits Accounts Payable at the bill's CurrencyRate; a payment debits AP at
    # the bill's rate and credits the bank at the payment's rate, the difference going to the
    # REALISEDCURRENCYGAIN system account (a debit is a loss); an allocation between a credit
    # note and a bill at different rates posts its difference there too; the settlement that
    # clears a document relieves exactly what is left of it, so rounding never strands cents
    # in AP. Voids and deletions post the reversing journal.

    def _system_account(self, tenant: Tenant, system: str) -> JSONObject:
        for account in tenant.accounts.values():
            if account.get("SystemAccount") == system:
                return account
        raise XeroProblem(500, _server_error_body())

    def _post_journal(
        self,
        tenant: Tenant,
        now: datetime,
        *,
        source_type: str,
        source_id: str,
        on: date,
        reference: str,
        lines: list[tuple[JSONObject, Decimal, Decimal, str]],
    ) -> JSONObject | None:
        """Post (account, net, tax, description) lines; None when nothing moves."""
        kept = [line for line in lines if line[1] or line[2]]
        if not kept:
            return None
        balance = sum((net for _, net, _, _ in kept), Decimal("0"))
        if balance != 0:
            raise AssertionError(f"unbalanced journal for {source_type} {source_id}: {balance}")
        tenant.journal_sequence += 1
        journal: JSONObject = {
            "JournalID": _new_id(),
            "JournalDate": on,
            "JournalNumber": tenant.journal_sequence,
            "CreatedDateUTC": now,
            "Reference": reference,
            "SourceID": source_id,
            "SourceType": source_type,
            "JournalLines": [
                {
                    "JournalLineID": _new_id(),
                    "AccountID": account["AccountID"],
                    "AccountCode": account.get("Code") or "",
                    "AccountType": account["Type"],
                    "AccountName": account["Name"],
                    "Description": description,
                    "NetAmount": net,
                    "GrossAmount": net + tax,
                    "TaxAmount": tax,
                    "TrackingCategories": [],
                }
                for account, net, tax, description in kept
            ],
        }
        tenant.journals.append(journal)
        return journal

    def _reverse_journal(self, tenant: Tenant, journal_id: str, now: datetime) -> None:
        original = next(j for j in tenant.journals if j["JournalID"] == journal_id)
        self._post_journal(
            tenant,
            now,
            source_type=original["SourceType"],
            source_id=original["SourceID"],
            on=now.date(),
            reference=original["Reference"],
            lines=[
                (
                    tenant.accounts[line["AccountID"]],
                    -line["NetAmount"],
                    -line["TaxAmount"],
                    line["Description"],
                )
                for line in original["JournalLines"]
            ],
        )

    def _book_document(
        self, tenant: Tenant, before: JSONObject | None, after: JSONObject, now: datetime
    ) -> None:
        """Post, re-post or reverse a document's journal as its status and content change."""
        old = before.get("_journal_id") if before else None
        current = after.get("_journal_id")
        in_books = after["Status"] in ("AUTHORISED", "PAID")
        if old and (old != current or not in_books):
            self._reverse_journal(tenant, old, now)
            after.pop("_journal_id", None)
            current = None
        if in_books and current is None:
            self._post_document(tenant, after, now)

    def _post_document(self, tenant: Tenant, record: JSONObject, now: datetime) -> None:
        kind = record["Type"]
        sign = Decimal(1) if kind in ("ACCPAY", "ACCRECCREDIT") else Decimal(-1)
        payable = kind in ("ACCPAY", "ACCPAYCREDIT")
        control = self._system_account(tenant, "CREDITORS" if payable else "DEBTORS")
        rate = record["CurrencyRate"]
        lines: list[tuple[JSONObject, Decimal, Decimal, str]] = []
        net_total = tax_total = Decimal("0")
        for line in record["LineItems"]:
            account = tenant.accounts.get(str(line.get("AccountID")))
            if account is None:
                continue
            tax = line["TaxAmount"]
            net = (
                line["LineAmount"] - tax
                if record["LineAmountTypes"] == "Inclusive"
                else (line["LineAmount"])
            )
            net_base, tax_base = _base(net, rate), _base(tax, rate)
            lines.append((account, sign * net_base, sign * tax_base, line["Description"]))
            net_total += net_base
            tax_total += tax_base
        if tax_total:
            lines.append((self._system_account(tenant, "GST"), sign * tax_total, Decimal(0), ""))
        lines.append((control, -sign * (net_total + tax_total), Decimal(0), ""))
        id_field = "InvoiceID" if "InvoiceID" in record else "CreditNoteID"
        number_field = "InvoiceNumber" if "InvoiceID" in record else "CreditNoteNumber"
        journal = self._post_journal(
            tenant,
            now,
            source_type=kind,
            source_id=record[id_field],
            on=record["Date"],
            reference=str(record.get(number_field) or ""),
            lines=lines,
        )
        record["_journal_id"] = journal["JournalID"] if journal else None
        record["_base_total"] = net_total + tax_total
        record["_base_settled"] = Decimal("0")

    def _relieve(self, document: JSONObject, amount: Decimal, *, cleared: bool) -> Decimal:
        """The base amount a settlement takes off a document's AP/AR at the document's rate."""
        if cleared:
            relief = document.get("_base_total", Decimal("0")) - document.get(
                "_base_settled", Decimal("0")
            )
        else:
            relief = _base(amount, document["CurrencyRate"])
        document["_base_settled"] = document.get("_base_settled", Decimal("0")) + relief
        return relief

    def _post_payment(
        self, tenant: Tenant, payment: JSONObject, invoice: JSONObject, now: datetime
    ) -> None:
        payable = invoice["Type"] == "ACCPAY"
        sign = Decimal(1) if payable else Decimal(-1)
        relief = self._relieve(invoice, payment["Amount"], cleared=invoice["AmountDue"] == 0)
        bank_base = _base(payment["Amount"], payment["CurrencyRate"])
        payment["_base_relief"] = relief
        journal = self._post_journal(
            tenant,
            now,
            source_type=payment["PaymentType"],
            source_id=payment["PaymentID"],
            on=payment["Date"],
            reference=payment.get("Reference", ""),
            lines=[
                (
                    self._system_account(tenant, "CREDITORS" if payable else "DEBTORS"),
                    sign * relief,
                    Decimal(0),
                    "",
                ),
                (tenant.accounts[payment["_account_id"]], -sign * bank_base, Decimal(0), ""),
                (
                    self._system_account(tenant, "REALISEDCURRENCYGAIN"),
                    sign * (bank_base - relief),
                    Decimal(0),
                    "Realised currency gain or loss",
                ),
            ],
        )
        payment["_journal_id"] = journal["JournalID"] if journal else None

    def _post_allocation(
        self,
        tenant: Tenant,
        allocation: JSONObject,
        note: JSONObject,
        invoice: JSONObject,
        now: datetime,
    ) -> None:
        amount = allocation["Amount"]
        invoice_relief = self._relieve(invoice, amount, cleared=invoice["AmountDue"] == 0)
        note_relief = self._relieve(note, amount, cleared=note["RemainingCredit"] == 0)
        allocation["_relief"] = (invoice_relief, note_relief)
        payable = note["Type"] == "ACCPAYCREDIT"
        sign = Decimal(1) if payable else Decimal(-1)
        difference = sign * (invoice_relief - note_relief)
        journal = self._post_journal(
            tenant,
            now,
            source_type=note["Type"],
            source_id=note["CreditNoteID"],
            on=allocation["Date"],
            reference=str(note.get("CreditNoteNumber") or ""),
            lines=[
                (
                    self._system_account(tenant, "CREDITORS" if payable else "DEBTORS"),
                    difference,
                    Decimal(0),
                    "",
                ),
                (
                    self._system_account(tenant, "REALISEDCURRENCYGAIN"),
                    -difference,
                    Decimal(0),
                    "Realised currency gain or loss",
                ),
            ],
        )
        allocation["_journal_id"] = journal["JournalID"] if journal else None

    def _render_journal(self, journal: JSONObject) -> JSONObject:
        out: JSONObject = _render(journal)
        return out

    async def _list_journals(self, ctx: RequestContext) -> Response:
        """GET /Journals?offset=N: the next 100 journals after journal number N."""
        params = ctx.request.query_params
        try:
            offset = int(params.get("offset", "0") or 0)
        except ValueError as exc:
            raise _api_exception(17, "ValidationException", "offset must be an integer") from exc
        payments_only = params.get("paymentsOnly", "").lower() == "true"
        since = ctx.request.headers.get("if-modified-since")
        cutoff = _parse_since(since).replace(microsecond=0) if since else None
        chosen = [
            j
            for j in ctx.tenant.journals
            if j["JournalNumber"] > offset
            and (not payments_only or j["SourceType"].endswith("PAYMENT"))
            and (cutoff is None or j["CreatedDateUTC"].replace(microsecond=0) >= cutoff)
        ]
        return _envelope(
            ctx, "Journals", [self._render_journal(j) for j in chosen[:JOURNALS_PER_PAGE]]
        )

    async def _get_journal(self, ctx: RequestContext) -> Response:
        wanted = ctx.request.path_params["id"].lower()
        for journal in ctx.tenant.journals:
            if journal["JournalID"].lower() == wanted or str(journal["JournalNumber"]) == wanted:
                return _envelope(ctx, "Journals", [self._render_journal(journal)])
        raise _not_found()


class _RevokeOnScript:
    """Applies scripted "revoke" faults: the caller's grant is revoked, then Xero answers 403."""

    def __init__(self, app: ASGIApp, emulator: XeroEmulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_emulator"):
            line = f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}"
            if self._take_revoke(line):
                for name, value in scope.get("headers", []):
                    if name == b"authorization" and value.lower().startswith(b"bearer "):
                        self.emulator.revoke_token(value[7:].decode().strip())
        await self.app(scope, receive, send)

    def _take_revoke(self, line: str) -> bool:
        faults = self.emulator.faults
        for fault in faults.scripted:
            if fault.kind == "revoke" and fault.times > 0 and fault.match in line:
                fault.times -= 1
                if fault.times == 0:
                    faults.scripted.remove(fault)
                faults.fired["revoke"] = faults.fired.get("revoke", 0) + 1
                return True
        return False


# ---------------------------------------------------------------------------------------------
# Module helpers
# ---------------------------------------------------------------------------------------------


def _settle(
    invoice: JSONObject,
    *,
    paid: Decimal = Decimal("0"),
    credited: Decimal = Decimal("0"),
    on: date | None,
    now: datetime,
) -> None:
    """Recompute AmountPaid/AmountCredited/AmountDue and the PAID transition."""
    invoice["AmountPaid"] = _money(invoice["AmountPaid"] + paid)
    invoice["AmountCredited"] = _money(invoice["AmountCredited"] + credited)
    invoice["AmountDue"] = _money(
        invoice["Total"] - invoice["AmountPaid"] - invoice["AmountCredited"]
    )
    if invoice["AmountDue"] == 0:
        invoice["Status"] = "PAID"
        invoice["FullyPaidOnDate"] = on
    elif invoice["Status"] == "PAID":
        invoice["Status"] = "AUTHORISED"
        invoice["FullyPaidOnDate"] = None
    invoice["UpdatedDateUTC"] = now


def _base(amount: Decimal, rate: Decimal) -> Decimal:
    """A document-currency amount in the base currency (Xero rates are foreign per base)."""
    return _money(amount / rate)


def _render(value: Any) -> Any:
    """Internal values to Xero JSON values: dates and timestamps become MS-JSON."""
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_render(v) for v in value]
    if isinstance(value, datetime | date):
        return ms_json(value)
    return value


def _date_string(value: date) -> str:
    return f"{value.isoformat()}T00:00:00"


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps(payload),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers=headers,
    )


def _problem_response(problem: XeroProblem) -> Response:
    if problem.text:
        return Response(
            str(problem.body),
            status_code=problem.status,
            media_type="text/plain",
            headers=problem.headers,
        )
    return _json_response(problem.status, problem.body, problem.headers)


def _envelope(
    ctx: RequestContext,
    key: str,
    items: list[JSONObject],
    pagination: JSONObject | None = None,
) -> Response:
    payload: JSONObject = {
        "Id": _new_id(),
        "Status": "OK",
        "ProviderName": "remit Xero emulator",
        "DateTimeUTC": ms_json(ctx.now),
    }
    if pagination is not None:
        payload["pagination"] = pagination
    payload[key] = items
    return _json_response(200, payload)


def _paged(ctx: RequestContext, key: str, items: list[JSONObject]) -> Response:
    params = ctx.request.query_params
    if "page" not in params:
        return _envelope(ctx, key, items)
    try:
        page = max(1, int(params["page"]))
        page_size = min(MAX_PAGE_SIZE, max(1, int(params.get("pageSize", DEFAULT_PAGE_SIZE))))
    except ValueError as exc:
        raise _api_exception(
            17, "ValidationException", "page and pageSize must be integers"
        ) from exc
    start = (page - 1) * page_size
    page_count = -(-len(items) // page_size)
    pagination = {
        "page": page,
        "pageSize": page_size,
        "pageCount": page_count,
        "itemCount": len(items),
    }
    return _envelope(ctx, key, items[start : start + page_size], pagination)


def _filter(ctx: RequestContext, items: list[JSONObject]) -> list[JSONObject]:
    expression = ctx.request.query_params.get("where")
    if not expression:
        return items
    predicate = parse_where(expression)
    return [item for item in items if predicate(_where_view(item))]


def _where_view(item: JSONObject) -> JSONObject:
    """A record with its MS-JSON dates turned back into comparable values for `where`."""
    return {k: (parse_datetime(v) if k.endswith("DateUTC") else v) for k, v in item.items()}


def _modified_since(ctx: RequestContext, items: list[JSONObject]) -> list[JSONObject]:
    header = ctx.request.headers.get("if-modified-since")
    if not header:
        return items
    since = _parse_since(header)
    cutoff = since.replace(microsecond=0)
    kept = []
    for item in items:
        updated = parse_datetime(item.get("UpdatedDateUTC"))
        # Xero compares to the second; keeping the boundary second means no change is missed.
        if updated is not None and updated.replace(microsecond=0) >= cutoff:
            kept.append(item)
    return kept


def _parse_since(header: str) -> datetime:
    try:
        parsed = parse_datetime(header)
        if parsed is not None:
            return parsed
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError) as exc:
        raise _api_exception(
            17, "ValidationException", f"If-Modified-Since {header!r} is not a valid date"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _id_list(ctx: RequestContext, name: str) -> set[str] | None:
    raw = ctx.request.query_params.get(name)
    if not raw:
        return None
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


_CLASS_BY_TYPE = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY",
    "TERMLIAB": "LIABILITY",
    "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
    "REVENUE": "REVENUE",
    "SALES": "REVENUE",
    "OTHERINCOME": "REVENUE",
    "DIRECTCOSTS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "DEPRECIATN": "EXPENSE",
}

# The demo business every platform's emulator seeds (home currency USD).
_DEMO_ACCOUNTS: dict[str, dict[str, Any]] = {
    "Operating Bank": {"Code": "090", "Type": "BANK", "CurrencyCode": "USD"},
    "Operating Bank EUR": {"Code": "091", "Type": "BANK", "CurrencyCode": "EUR"},
    "Company Card": {
        "Code": "092",
        "Type": "BANK",
        "CurrencyCode": "USD",
        "BankAccountType": "CREDITCARD",
    },
    "Accounts Receivable": {"Code": "610", "Type": "CURRENT", "SystemAccount": "DEBTORS"},
    "Accounts Payable": {"Code": "800", "Type": "CURRLIAB", "SystemAccount": "CREDITORS"},
    "Owner's Equity": {"Code": "970", "Type": "EQUITY"},
    "Sales": {"Code": "200", "Type": "REVENUE"},
    "Cost of Goods Sold": {"Code": "310", "Type": "DIRECTCOSTS"},
    "Office Supplies": {"Code": "453", "Type": "EXPENSE"},
    "Purchase Discounts": {"Code": "315", "Type": "DIRECTCOSTS"},
    "Sales Tax": {"Code": "820", "Type": "CURRLIAB", "SystemAccount": "GST"},
    "Realised Currency Gains": {
        "Code": "499",
        "Type": "OVERHEADS",
        "SystemAccount": "REALISEDCURRENCYGAIN",
    },
    "Repairs and Maintenance": {"Code": "473", "Type": "EXPENSE"},
    "Professional Fees": {"Code": "412", "Type": "EXPENSE"},
    "Software Subscriptions": {"Code": "485", "Type": "EXPENSE"},
}
# Contact.BatchPayments field lengths (Details non-NZ, Code and Reference NZ).
_BATCH_PAYMENT_DETAIL_LIMITS = {
    "BankAccountNumber": 50,
    "BankAccountName": 50,
    "Details": 18,
    "Code": 12,
    "Reference": 12,
}
_DEMO_TRACKING: dict[str, list[str]] = {
    "Department": ["Operations", "Finance", "Sales"],
    "Class": ["East", "West"],
}
# 1 USD = 0.925926 EUR, i.e. 1.08 USD per EUR.
_DEMO_DAY_RATES = {"EUR": Decimal("0.925926")}
_CURRENCY_NAMES = {"USD": "United States Dollar", "EUR": "Euro", "GBP": "British Pound"}


def _demo_tax_rates() -> dict[str, JSONObject]:
    """A US organisation's tax rates, keyed by TaxType (Xero's identifier for a rate), and the
    purchase side of a European company's VAT (the e-invoices from EU vendors: Swedish rates as
    in the EN 16931 samples, German ones as in the walkthrough's invoice): Xero's VAT system
    types where its VAT editions have one, custom TAX00n rates for the others. Reverse charge
    and EC acquisitions display the rate the buyer self-assesses, but add nothing to the bill
    (EffectiveRate 0): the VAT return carries both sides."""
    rates = [
        ("NONE", "Tax Exempt", "0.0000", True, True, "OUTPUT"),
        ("INPUT", "Tax on Purchases", "0.0000", False, True, "INPUT"),
        ("OUTPUT", "Tax on Sales", "0.0000", True, False, "OUTPUT"),
        ("TAX001", "State Sales Tax", "8.2500", True, False, "OUTPUT"),
        ("INPUT2", "25% VAT on Expenses", "25.0000", False, True, "INPUT"),
        ("TAX002", "12% VAT on Expenses", "12.0000", False, True, "INPUT"),
        ("TAX003", "6% VAT on Expenses", "6.0000", False, True, "INPUT"),
        ("TAX004", "19% VAT on Expenses", "19.0000", False, True, "INPUT"),
        ("TAX005", "7% VAT on Expenses", "7.0000", False, True, "INPUT"),
        ("ZERORATEDINPUT", "Zero Rated Expenses", "0.0000", False, True, "INPUT"),
        ("EXEMPTEXPENSES", "Exempt Expenses", "0.0000", False, True, "EXEMPTEXPENSES"),
        ("REVERSECHARGES", "Reverse Charge Expenses (25%)", "25.0000", False, True, "INPUT"),
        ("ECACQUISITIONS", "EC Acquisitions (25%)", "25.0000", False, True, "ECINPUT"),
    ]
    self_assessed = {"REVERSECHARGES", "ECACQUISITIONS"}
    return {
        tax_type: {
            "Name": name,
            "TaxType": tax_type,
            "Status": "ACTIVE",
            "ReportTaxType": report,
            "CanApplyToExpenses": purchases,
            "CanApplyToRevenue": sales,
            "DisplayTaxRate": Decimal(rate),
            "EffectiveRate": Decimal("0") if tax_type in self_assessed else Decimal(rate),
            "TaxComponents": [
                {
                    "Name": name,
                    "Rate": Decimal(rate),
                    "IsCompound": False,
                    "IsNonRecoverable": False,
                }
            ],
        }
        for tax_type, name, rate, sales, purchases, report in rates
    }


# Fabrikam's VAT number. Not DE811907980: that is the VAT number of Rheinwerk Maschinenbau
# GmbH in starter/examples/invoice-ubl.xml, whose walkthrough needs a vendor the ERP does not
# know yet (remit matches vendors by tax id first).
FABRIKAM_TAX_NUMBER = "DE999999999"
_DEMO_CONTACTS: dict[str, dict[str, Any]] = {
    "Northwind Office Supply": {
        "TaxNumber": "94-1234567",
        "EmailAddress": "ar@northwind.example",
        "PurchasesDefaultAccountCode": "453",
        # What Xero's batch-payment files pay, and the free-text copy people keep beside it.
        "BatchPayments": {
            "BankAccountNumber": "021000021-000123456789",
            "BankAccountName": "Northwind Office Supply LLC",
            "Details": "NORTHWIND AP",
            "Code": "",
            "Reference": "",
        },
        "BankAccountDetails": "Chase, routing 021000021, account 000123456789",
    },
    "Fabrikam GmbH": {
        "TaxNumber": FABRIKAM_TAX_NUMBER,
        "EmailAddress": "buchhaltung@fabrikam.example",
        "DefaultCurrency": "EUR",
        "PurchasesDefaultAccountCode": "473",
        "BankAccountDetails": "IBAN DE02 1203 0000 0000 2020 51, BIC BYLADEM1001",
    },
    "Globex Software": {"TaxNumber": "12-3456789", "PurchasesDefaultAccountCode": "485"},
    "Initech Consulting": {"PurchasesDefaultAccountCode": "412"},
    "Acme Corp": {},
    "ACME Corporation": {},
}
