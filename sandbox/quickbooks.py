"""An in-memory QuickBooks Online API (ASGI): QBO envelopes, Fault codes, paging, throttles."""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from itertools import count
from pathlib import Path
from typing import Any, ClassVar, cast

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.quickbooks import wire
from connectors.quickbooks.wire import JSONObject
from sandbox.consent import ConsentError, ConsentServer, IssuedCode
from sandbox.faults import (
    ASGIApp,
    FaultInjector,
    FaultResponse,
    Faults,
    Receive,
    Scope,
    ScriptedFault,
    Send,
)
from sandbox.persist import Persistent
from sandbox.quickbooks_webhooks import PAYLOAD_FORMATS, WebhookSender
from sandbox.registry import DemoCompany

# QBO stamps times in the company's zone; the demo companies live in US Pacific (PDT).
COMPANY_ZONE = timezone(timedelta(hours=-7))
CDC_WINDOW = timedelta(days=30)
DEFAULT_MAX_RESULTS = 100
ACCESS_TOKEN_SECONDS = 3600
# Intuit's authorize endpoint lives on appcenter.intuit.com/connect/oauth2; served here as a path.
AUTHORIZE_PATH = "/connect/oauth2"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
LARGEST_MAX_RESULTS = 1000

RESOURCES = {
    "vendor": "Vendor",
    "account": "Account",
    "class": "Class",
    "department": "Department",
    "bill": "Bill",
    "billpayment": "BillPayment",
    "vendorcredit": "VendorCredit",
    "attachable": "Attachable",
    "term": "Term",
    "customer": "Customer",
    "item": "Item",
    "taxcode": "TaxCode",
    "taxrate": "TaxRate",
    "companycurrency": "CompanyCurrency",
}
QUERYABLE = set(RESOURCES.values())
# Not written through this emulator: tax codes and rates (QBO creates them through its
# TaxService), classes and departments (QBO's API creates them; nothing here needs it yet).
READ_ONLY = frozenset({"Class", "Department", "TaxCode", "TaxRate"})
# AccountType -> (Classification, the AccountSubType QBO gives when none is sent).
ACCOUNT_TYPES = {
    "Bank": ("Asset", "Checking"),
    "Other Current Asset": ("Asset", "OtherCurrentAssets"),
    "Fixed Asset": ("Asset", "OtherFixedAssets"),
    "Other Asset": ("Asset", "OtherLongTermAssets"),
    "Accounts Receivable": ("Asset", "AccountsReceivable"),
    "Equity": ("Equity", "OwnersEquity"),
    "Expense": ("Expense", "OtherMiscellaneousServiceCost"),
    "Other Expense": ("Expense", "OtherMiscellaneousExpense"),
    "Cost of Goods Sold": ("Expense", "SuppliesMaterialsCogs"),
    "Accounts Payable": ("Liability", "AccountsPayable"),
    "Credit Card": ("Liability", "CreditCard"),
    "Long Term Liability": ("Liability", "OtherLongTermLiabilities"),
    "Other Current Liability": ("Liability", "OtherCurrentLiabilities"),
    "Income": ("Revenue", "ServiceFeeIncome"),
    "Other Income": ("Revenue", "OtherMiscellaneousIncome"),
}
# Intuit's CDC page: "You can use the CDC operation for all API entities except" these.
NOT_IN_CDC = frozenset({"TaxCode", "TaxRate", "JournalCode", "TaxAgency", "TimeActivity"})
DEFAULT_EXCHANGE_RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "CAD": Decimal("0.73")}
# The seeded rates hold from this date (or from New Year's Day, if the clock is earlier).
RATES_FROM = date(2026, 1, 1)
CENT = Decimal("0.01")
# The demo company's euro vendor. (DE811907980, the VAT id of the walkthrough's UBL invoice,
# belongs to Rheinwerk Maschinenbau GmbH, a vendor the demo company must not know yet.)
FABRIKAM_TAX_ID = "DE999999999"
# QBO's system account for realized exchange gains and losses (multicurrency companies).
EXCHANGE_GAIN_OR_LOSS = "ExchangeGainOrLoss"


def _seeded_rates() -> dict[str, dict[date, Decimal]]:
    today = datetime.now(COMPANY_ZONE).date()
    start = min(RATES_FROM, today.replace(month=1, day=1))
    return {currency: {start: rate} for currency, rate in DEFAULT_EXCHANGE_RATES.items()}


ApiHandler = Callable[[Request, "Realm"], Awaitable[tuple[int, JSONObject]]]


# ---------------------------------------------------------------------------------------------
# Faults in QBO's own shapes
# ---------------------------------------------------------------------------------------------


class QboFault(Exception):
    """A Fault answer: raised by handlers, rendered as QBO's JSON Fault body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str,
        *,
        fault_type: str = "ValidationFault",
        element: str = "",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.fault_type = fault_type
        self.element = element


def _validation(code: str, message: str, detail: str, element: str = "") -> QboFault:
    return QboFault(400, code, message, detail, element=element)


def _business(detail: str) -> QboFault:
    return _validation(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
    )


def _missing(element: str) -> QboFault:
    return _validation(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def _invalid_reference(kind: str, ref_id: str | None) -> QboFault:
    return _validation(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {kind} element id {ref_id} not found",
    )


def _not_found(entity: str, entity_id: str) -> QboFault:
    return _validation(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. "
        f"({entity} {entity_id})",
    )


def _fault_json(fault: QboFault, now: str) -> JSONObject:
    return {
        "Fault": {
            "Error": [
                {
                    "Message": fault.message,
                    "Detail": fault.detail,
                    "code": fault.code,
                    "element": fault.element,
                }
            ],
            "type": fault.fault_type,
        },
        "time": now,
    }


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        wire.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def server_error_response() -> FaultResponse:
    body = {
        "Fault": {
            "Error": [
                {
                    "Message": "An application error has occurred while processing your request",
                    "Detail": "System Failure Error: An unexpected error occurred while accessing "
                    "or saving your data. Please wait a few minutes and try again. If the "
                    "problem persists, contact customer support.",
                    "code": "10000",
                }
            ],
            "type": "SystemFault",
        },
        "time": datetime.now(COMPANY_ZONE).isoformat(timespec="milliseconds"),
    }
    return 500, [(b"content-type", b"application/json")], wire.dumps(body).encode()


def throttled_response(_retry_after_seconds: float = 0) -> FaultResponse:
    # QBO answers throttles in XML even to JSON clients and sends no Retry-After.
    now = datetime.now(COMPANY_ZONE).isoformat(timespec="milliseconds")
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{now}">'
        '<Fault type="SERVICE"><Error code="3001">'
        "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
        "<Detail>The request limit was reached.  Try again later</Detail>"
        "</Error></Fault></IntuitResponse>"
    )
    return 429, [(b"content-type", b"application/xml")], body.encode()


def _unauthorized(detail: str) -> Response:
    # QBO's 401 uses lower-case keys, unlike its other Faults.
    body = {
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                }
            ],
            "type": "AUTHENTICATION",
        },
        "time": datetime.now(COMPANY_ZONE).isoformat(timespec="milliseconds"),
    }
    return _json_response(401, body, {"WWW-Authenticate": 'Bearer realm="Intuit"'})


def _forbidden(detail: str) -> Response:
    body = {
        "Fault": {
            "Error": [
                {
                    "Message": "message=ApplicationAuthorizationFailed; errorCode=003100; "
                    "statusCode=403",
                    "Detail": detail,
                    "code": "3100",
                }
            ],
            "type": "AuthorizationFault",
        },
        "time": datetime.now(COMPANY_ZONE).isoformat(timespec="milliseconds"),
    }
    return _json_response(403, body)


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


class MonotonicClock:
    """Company-zone timestamps, strictly increasing at millisecond precision.

    Every mutation and every response `time` gets its own instant, so a change cursor taken
    from a response `time` splits "before" from "after" exactly.
    """

    def __init__(self) -> None:
        self._last = datetime.fromtimestamp(0, UTC)

    def now(self) -> datetime:
        current = datetime.now(UTC)
        current = current.replace(microsecond=current.microsecond // 1000 * 1000)
        if current <= self._last:
            current = self._last + timedelta(milliseconds=1)
        self._last = current
        return current.astimezone(COMPANY_ZONE)

    def stamp(self) -> str:
        return self.now().isoformat(timespec="milliseconds")


@dataclass
class Grant:
    """One app's OAuth grant to one company."""

    realm_id: str
    client_id: str
    client_secret: str
    access_token: str
    refresh_token: str
    revoked: bool = False
    access_expired: bool = False
    # Wall-clock expiry of the current access token; None for the seeded never-expiring one.
    access_expires_at: float | None = None

    def access_valid(self) -> bool:
        if self.revoked or self.access_expired:
            return False
        return self.access_expires_at is None or time.time() < self.access_expires_at


@dataclass
class Realm:
    """One QBO company: its entities, deleted stubs, requestid replay cache and throttle state."""

    realm_id: str
    company_name: str
    home_currency: str = "USD"
    multicurrency: bool = True
    warn_duplicate_doc_num: bool = True
    # currency → {as-of date → home units per unit}; the latest on or before a date applies.
    exchange_rates: dict[str, dict[date, Decimal]] = field(default_factory=_seeded_rates)
    entities: dict[str, dict[str, JSONObject]] = field(
        default_factory=lambda: {entity: {} for entity in QUERYABLE}
    )
    deleted: list[tuple[str, str, str]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    replay: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    recent_requests: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    _ids: count[int] = field(default_factory=lambda: count(1))

    def next_id(self) -> str:
        return str(next(self._ids))

    def get(self, entity: str, entity_id: str | None) -> JSONObject | None:
        if entity_id is None:
            return None
        return self.entities[entity].get(str(entity_id))

    def rate_on(self, currency: str, on: date) -> tuple[date, Decimal] | None:
        """The latest rate for `currency` on or before `on`."""
        known = [(when, rate) for when, rate in self.exchange_rates.get(currency, {}).items()]
        earlier = [pair for pair in known if pair[0] <= on]
        return max(earlier) if earlier else None

    def default_rate(self, currency: str, on: date) -> Decimal:
        """The rate QBO fills in when a foreign transaction names none."""
        found = self.rate_on(currency, on)
        if found is not None:
            return found[1]
        later = sorted(self.exchange_rates.get(currency, {}).items())
        return later[0][1] if later else Decimal("1")


# ---------------------------------------------------------------------------------------------
# Query language (the subset QBO documents)
# ---------------------------------------------------------------------------------------------

_SELECT = re.compile(
    r"^\s*select\s+(?P<what>\*|count\(\s*\*\s*\))\s+from\s+(?P<entity>\w+)(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_TOKEN = re.compile(
    r"\s*('(?:\\.|[^'\\])*'|<=|>=|!=|[=<>(),]|[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?)", re.DOTALL
)


@dataclass
class Condition:
    path: str
    operator: str
    values: list[Any]


@dataclass
class Query:
    entity: str
    count_only: bool
    conditions: list[Condition]
    order: list[tuple[str, bool]]
    start_position: int
    max_results: int


def _parser_error(detail: str) -> QboFault:
    return _validation("4000", "Error parsing query", f"QueryParserError: {detail}")


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise _parser_error(
                f"Encountered unexpected text at {text[position : position + 20]!r}"
            )
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.lower() in ("true", "false"):
        return token.lower() == "true"
    if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
        return Decimal(token)
    raise _parser_error(f"Encountered {token!r} where a value was expected")


def parse_query(statement: str) -> Query:
    match = _SELECT.match(statement)
    if not match:
        raise _parser_error(f"Encountered unexpected text in {statement[:80]!r}")
    entity = match.group("entity")
    if entity not in QUERYABLE:
        raise _validation(
            "4001", "Invalid query", f"QueryValidationError: Invalid entity name: {entity}"
        )
    tokens = _tokens(match.group("rest"))
    position = 0

    def peek(offset: int = 0) -> str:
        return tokens[position + offset] if position + offset < len(tokens) else ""

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise _parser_error("Encountered end of statement unexpectedly")
        position += 1
        return tokens[position - 1]

    conditions: list[Condition] = []
    order: list[tuple[str, bool]] = []
    start, max_results = 1, DEFAULT_MAX_RESULTS
    if peek().lower() == "where":
        take()
        while True:
            path = take()
            operator = take().upper()
            if operator not in ("=", "<", ">", "<=", ">=", "LIKE", "IN", "!="):
                raise _parser_error(f"Encountered unknown operator {operator!r}")
            if operator == "IN":
                if take() != "(":
                    raise _parser_error("IN needs a parenthesised list")
                values = [_literal(take())]
                while peek() == ",":
                    take()
                    values.append(_literal(take()))
                if take() != ")":
                    raise _parser_error("unclosed IN list")
            else:
                values = [_literal(take())]
            conditions.append(Condition(path, operator, values))
            if peek().lower() == "and":
                take()
                continue
            if peek().lower() == "or":
                raise _parser_error("OR is not supported; QBO only combines filters with AND")
            break
    if peek().lower() in ("orderby", "order"):
        if take().lower() == "order" and take().lower() != "by":
            raise _parser_error("expected ORDER BY")
        while True:
            field_path = take()
            descending = False
            if peek().lower() in ("asc", "desc"):
                descending = take().lower() == "desc"
            order.append((field_path, descending))
            if peek() != ",":
                break
            take()
    if peek().lower() == "startposition":
        take()
        start = int(_literal(take()))
    if peek().lower() == "maxresults":
        take()
        max_results = int(_literal(take()))
    if position != len(tokens):
        raise _parser_error(f"Encountered {peek()!r} at the end of the statement")
    if start < 1 or max_results < 0:
        raise _parser_error("STARTPOSITION and MAXRESULTS must be positive")
    return Query(
        entity=entity,
        count_only=match.group("what") != "*",
        conditions=conditions,
        order=order,
        start_position=start,
        max_results=min(max_results, LARGEST_MAX_RESULTS),
    )


def _field_values(obj: Any, path: str) -> list[Any]:
    current: list[Any] = [obj]
    for part in path.split("."):
        following: list[Any] = []
        for item in current:
            if isinstance(item, list):
                item_list = item
            else:
                item_list = [item]
            for element in item_list:
                if isinstance(element, dict):
                    key = next((k for k in element if k.lower() == part.lower()), None)
                    if key is not None:
                        value = element[key]
                        following.extend(value if isinstance(value, list) else [value])
        current = following
    return [
        value["value"] if isinstance(value, dict) and "value" in value else value
        for value in current
    ]


def _as_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=COMPANY_ZONE)


def _ordered(actual: Any, expected: Any) -> tuple[Any, Any] | None:
    """Both sides in a comparable form, or None when they cannot be compared."""
    expected_time = _as_time(expected)
    if expected_time is not None:
        actual_time = _as_time(actual)
        return (actual_time, expected_time) if actual_time is not None else None
    if isinstance(expected, Decimal):
        try:
            return wire.decimal(actual), expected
        except ArithmeticError:
            return None
    if isinstance(expected, bool):
        return actual, expected
    return str(actual).lower(), str(expected).lower()


def _condition_holds(obj: JSONObject, condition: Condition) -> bool:
    for actual in _field_values(obj, condition.path):
        for expected in condition.values:
            if condition.operator == "LIKE":
                pattern = ".*".join(re.escape(part) for part in str(expected).split("%"))
                if re.fullmatch(pattern, str(actual), re.IGNORECASE | re.DOTALL):
                    return True
                continue
            pair = _ordered(actual, expected)
            if pair is None:
                continue
            left, right = pair
            if condition.operator in ("=", "IN") and left == right:
                return True
            if condition.operator == "!=" and left != right:
                return True
            if condition.operator == "<" and left < right:
                return True
            if condition.operator == ">" and left > right:
                return True
            if condition.operator == "<=" and left <= right:
                return True
            if condition.operator == ">=" and left >= right:
                return True
    return False


def _sort_key(obj: JSONObject, path: str) -> tuple[int, Any]:
    values = _field_values(obj, path)
    if not values:
        return (0, "")
    value = values[0]
    if isinstance(value, str) and value.isdigit():
        return (1, int(value))
    if isinstance(value, Decimal | int):
        return (1, value)
    return (2, str(value).lower())


def run_query(rows: list[JSONObject], query: Query) -> tuple[list[JSONObject], int]:
    matched = [row for row in rows if all(_condition_holds(row, c) for c in query.conditions)]
    matched.sort(key=lambda row: _sort_key(row, "Id"))
    for path, descending in reversed(query.order):
        matched.sort(key=functools.partial(_sort_key, path=path), reverse=descending)
    begin = query.start_position - 1
    return matched[begin : begin + query.max_results], len(matched)


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------


class _RevokeOnScript:
    """Applies scripted "revoke" faults: revoke the caller's grant, then let QBO answer 401."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], emulator: QuickBooksEmulator
    ) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_emulator"):
            line = f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}"
            fault = self._take_revoke(line)
            if fault is not None:
                for name, value in scope.get("headers", []):
                    if name == b"authorization" and value.lower().startswith(b"bearer "):
                        self.emulator.revoke_token(value[7:].decode().strip())
        await self.app(scope, receive, send)

    def _take_revoke(self, line: str) -> ScriptedFault | None:
        faults = self.emulator.faults
        for fault in faults.scripted:
            if fault.kind == "revoke" and fault.times > 0 and fault.match in line:
                fault.times -= 1
                if fault.times == 0:
                    faults.scripted.remove(fault)
                faults.fired["revoke"] = faults.fired.get("revoke", 0) + 1
                return fault
        return None


class QuickBooksEmulator(Persistent):
    """QBO's Accounting API in memory, for tests and the embedded stack.

    `gate`, when set to an unset asyncio.Event, holds every API request in flight until it is
    set (so tests can exercise the concurrency throttle without timing).
    """

    # Request-line fragments of the unified writes, for scripting faults on exactly one of them.
    write_matches: ClassVar[dict[str, str]] = {
        "vendor": "/vendor?",
        "bill": "/bill?",
        "bill_payment": "/billpayment?",
    }

    platform = "quickbooks"
    persisted = (
        "realms",
        "grants_by_access",
        "grants_by_refresh",
        "inspector_token",
        "_realm_ids",
        "clock._last",
        "consent.apps",
        "consent.codes",
        "demo_company",
        "webhooks.state",
    )

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        requests_per_minute: int = 500,
        max_concurrent: int = 10,
        state_file: Path | None = None,
    ) -> None:
        """`state_file`: keep the companies, grants and apps there (restored when present)."""
        self.faults = faults or Faults()
        self.requests_per_minute = requests_per_minute
        self.max_concurrent = max_concurrent
        self.clock = MonotonicClock()
        self.realms: dict[str, Realm] = {}
        self.grants_by_access: dict[str, Grant] = {}
        self.grants_by_refresh: dict[str, Grant] = {}
        self.inspector_token = "qbo-inspector-" + secrets.token_hex(12)
        self.gate: asyncio.Event | None = None
        self._realm_ids = count(9341452000000001)
        # The app's webhook subscription (configure_webhooks or PUT /_emulator/webhooks).
        self.webhooks = WebhookSender()
        self.consent = ConsentServer(
            product="QuickBooks Online",
            company_label="company",
            companies=lambda: [(r.realm_id, r.company_name) for r in self.realms.values()],
            redirect_extras=lambda realm_id: {"realmId": realm_id},
        )
        base = "/v3/company/{realm_id}"
        routes = [
            Route(AUTHORIZE_PATH, self.consent.authorize, methods=["GET", "POST"]),
            Route(TOKEN_PATH, self._token, methods=["POST"]),
            Route("/_emulator/apps", self._register_app, methods=["POST"]),
            Route("/_emulator/faults", self._get_faults, methods=["GET"]),
            Route("/_emulator/faults", self._put_faults, methods=["PUT"]),
            Route("/_emulator/reset", self._reset, methods=["POST"]),
            Route("/_emulator/companies", self._seed_company, methods=["POST"]),
            Route("/_emulator/webhooks", self._control_webhooks, methods=["GET", "PUT"]),
            Route(f"{base}/query", self._api(self._query), methods=["GET", "POST"]),
            Route(f"{base}/cdc", self._api(self._cdc), methods=["GET"]),
            Route(f"{base}/upload", self._api(self._upload, write=True), methods=["POST"]),
            Route(f"{base}/preferences", self._api(self._preferences), methods=["GET"]),
            Route(f"{base}/exchangerate", self._api(self._read_rate), methods=["GET"]),
            Route(
                f"{base}/exchangerate", self._api(self._write_rate, write=True), methods=["POST"]
            ),
            Route(f"{base}/{{resource}}", self._api(self._write, write=True), methods=["POST"]),
            Route(f"{base}/{{resource}}/{{entity_id}}", self._api(self._read), methods=["GET"]),
        ]
        inner = Starlette(routes=routes)
        injected = FaultInjector(
            cast(ASGIApp, inner),
            self.faults,
            server_error=server_error_response,
            throttled=throttled_response,
            exempt=("/_emulator", AUTHORIZE_PATH),
        )
        self.restored = self.restore_state(state_file)
        self.app: ASGIApp = self.persisting(_RevokeOnScript(injected, self))

    def after_restore(self) -> None:
        for realm in self.realms.values():
            realm.in_flight = 0
            # Snapshots written before Customer, Item, TaxCode, ... existed lack them.
            for entity in QUERYABLE:
                realm.entities.setdefault(entity, {})

    def configure_webhooks(self, url: str | None, key: str | None) -> None:
        """Deliver webhooks to `url`, signed with `key` (the app's verifier token; None: stop),
        as Intuit does for an app's webhook endpoint."""
        self.webhooks.configure(url, key)

    # -----------------------------------------------------------------------------------------
    # Tokens
    # -----------------------------------------------------------------------------------------

    def issue_grant(
        self, realm_id: str, *, client_id: str | None = None, client_secret: str | None = None
    ) -> Grant:
        grant = Grant(
            realm_id=realm_id,
            client_id=client_id or "qbo-client-" + secrets.token_hex(6),
            client_secret=client_secret or secrets.token_hex(16),
            access_token="qbo-at-" + secrets.token_urlsafe(24),
            refresh_token="qbo-rt-" + secrets.token_urlsafe(24),
        )
        self.grants_by_access[grant.access_token] = grant
        self.grants_by_refresh[grant.refresh_token] = grant
        return grant

    def revoke_token(self, token: str) -> None:
        """Revoke the grant behind an access or refresh token (the user disconnected the app)."""
        grant = self.grants_by_access.get(token) or self.grants_by_refresh.get(token)
        if grant is not None:
            grant.revoked = True

    def expire_token(self, token: str) -> None:
        """Expire an access token early; its refresh token still works."""
        grant = self.grants_by_access.get(token)
        if grant is not None:
            grant.access_expired = True

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        client_id, client_secret = (
            str(form.get("client_id", "")),
            str(form.get("client_secret", "")),
        )
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                decoded = ":"
            client_id, _, client_secret = decoded.partition(":")
        if form.get("grant_type") == "authorization_code":
            fields = {k: str(v) for k, v in form.items()}
            return self._exchange_code(fields, client_id, client_secret)
        if form.get("grant_type") != "refresh_token":
            return _json_response(400, {"error": "unsupported_grant_type"})
        grant = self.grants_by_refresh.get(str(form.get("refresh_token", "")))
        if grant is not None and (grant.client_id, grant.client_secret) != (
            client_id,
            client_secret,
        ):
            return _json_response(401, {"error": "invalid_client"})
        if grant is None or grant.revoked:
            return _json_response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Incorrect or invalid refresh token",
                },
            )
        del self.grants_by_access[grant.access_token]
        grant.access_token = "qbo-at-" + secrets.token_urlsafe(24)
        grant.access_expired = False
        grant.access_expires_at = time.time() + ACCESS_TOKEN_SECONDS
        self.grants_by_access[grant.access_token] = grant
        return self._token_answer(grant)

    def _exchange_code(self, form: dict[str, str], client_id: str, client_secret: str) -> Response:
        """authorization_code grant: a new grant to the realm the person chose on the page."""
        try:
            issued = self.consent.redeem(form, client_id, client_secret, self._revoke_code)
        except ConsentError as error:
            return _json_response(
                error.status, {"error": error.error, "error_description": error.description}
            )
        grant = self.issue_grant(
            issued.company_id, client_id=client_id, client_secret=client_secret
        )
        grant.access_expires_at = time.time() + ACCESS_TOKEN_SECONDS
        issued.grant_ref = grant.refresh_token
        return self._token_answer(grant)

    def _revoke_code(self, issued: IssuedCode) -> None:
        # A replayed code revokes what it produced: someone else may hold it.
        if issued.grant_ref is not None:
            self.revoke_token(issued.grant_ref)

    @staticmethod
    def _token_answer(grant: Grant) -> Response:
        return _json_response(
            200,
            {
                "token_type": "bearer",
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "x_refresh_token_expires_in": 8726400,
            },
        )

    async def _register_app(self, request: Request) -> Response:
        if not self._is_inspector(request):
            return _unauthorized("inspector token required")
        return await self.consent.register_app_endpoint(request)

    # -----------------------------------------------------------------------------------------
    # Control endpoints (inspector token only, exempt from faults)
    # -----------------------------------------------------------------------------------------

    def _is_inspector(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.inspector_token}"

    async def _get_faults(self, request: Request) -> Response:
        if not self._is_inspector(request):
            return _unauthorized("inspector token required")
        return _json_response(200, self._faults_json())

    def _faults_json(self) -> JSONObject:
        return self.faults.to_json()

    async def _put_faults(self, request: Request) -> Response:
        if not self._is_inspector(request):
            return _unauthorized("inspector token required")
        self.faults.apply_json(wire.loads(await request.body()))
        return _json_response(200, self._faults_json())

    async def _reset(self, request: Request) -> Response:
        if not self._is_inspector(request):
            return _unauthorized("inspector token required")
        self.faults.clear()
        self.faults.fired.clear()
        return _json_response(200, self._faults_json())

    async def _seed_company(self, request: Request) -> Response:
        if not self._is_inspector(request):
            return _unauthorized("inspector token required")
        company = self.seed_demo_company(request.query_params.get("company_id"))
        return _json_response(200, company.__dict__)

    async def _control_webhooks(self, request: Request) -> Response:
        """PUT {"url": ..., "key": ..., "format": "legacy"|"cloudevents"} subscribes (url null:
        stop); GET tells the state."""
        if not self._is_inspector(request):
            return _unauthorized("inspector token required")
        if request.method == "PUT":
            try:
                body = wire.loads(await request.body() or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict) or (body.get("url") and not body.get("key")):
                return _json_response(400, {"error": "give url and key (or url null)"})
            if body.get("format", "legacy") not in PAYLOAD_FORMATS:
                return _json_response(400, {"error": f"format is one of {PAYLOAD_FORMATS}"})
            self.configure_webhooks(body.get("url") or None, body.get("key") or None)
            self.webhooks.state.payload_format = str(body.get("format", "legacy"))
        state = self.webhooks.state
        return _json_response(
            200,
            {
                "url": state.url,
                "format": state.payload_format,
                "pending": len(state.pending),
                "delivered": state.delivered,
                "last_error": state.last_error,
            },
        )

    # -----------------------------------------------------------------------------------------
    # The API envelope: auth, throttles, requestid replay, Fault rendering
    # -----------------------------------------------------------------------------------------

    def _api(
        self, handler: ApiHandler, *, write: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            realm_id = request.path_params["realm_id"]
            authorization = request.headers.get("authorization", "")
            token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
            inspector = token == self.inspector_token
            grant = self.grants_by_access.get(token)
            if not inspector:
                if grant is None:
                    return _unauthorized("Token invalid")
                if not grant.access_valid():
                    return _unauthorized(f"Token expired: {token[:12]}...")
            realm = self.realms.get(realm_id)
            if realm is None or (grant is not None and grant.realm_id != realm_id):
                return _forbidden(f"The token is not authorized for company {realm_id}")
            if inspector and write:
                return _forbidden("the inspector token is read-only")
            if self._throttled(realm):
                status, headers, body = throttled_response()
                return Response(
                    body, status_code=status, headers={k.decode(): v.decode() for k, v in headers}
                )
            realm.in_flight += 1
            try:
                if self.gate is not None:
                    await self.gate.wait()
                return await self._answer(request, realm, handler, write)
            finally:
                realm.in_flight -= 1

        return endpoint

    def _throttled(self, realm: Realm) -> bool:
        now = time.monotonic()
        while realm.recent_requests and now - realm.recent_requests[0] > 60:
            realm.recent_requests.popleft()
        if realm.in_flight >= self.max_concurrent:
            return True
        if len(realm.recent_requests) >= self.requests_per_minute:
            return True
        realm.recent_requests.append(now)
        return False

    async def _answer(
        self, request: Request, realm: Realm, handler: ApiHandler, write: bool
    ) -> Response:
        request_id = request.query_params.get("requestid") if write else None
        if request_id is not None:
            if len(request_id) > 50:
                return _json_response(
                    400,
                    _fault_json(
                        _validation(
                            "2050",
                            "String length is either shorter or longer than "
                            "supported by specification",
                            f"requestid is {len(request_id)} characters; the maximum is 50",
                        ),
                        self.clock.stamp(),
                    ),
                )
            if request_id in realm.replay:
                status, body = realm.replay[request_id]
                return Response(body, status_code=status, media_type="application/json")
        try:
            status, payload = await handler(request, realm)
        except QboFault as fault:
            return _json_response(fault.status, _fault_json(fault, self.clock.stamp()))
        payload["time"] = self.clock.stamp()
        body = wire.dumps(payload).encode()
        # Only successes are replayed: a refused write may be fixed and resent under the same id.
        if request_id is not None and 200 <= status < 300:
            realm.replay[request_id] = (status, body)
        return Response(body, status_code=status, media_type="application/json")

    # -----------------------------------------------------------------------------------------
    # Reads
    # -----------------------------------------------------------------------------------------

    def _render(self, realm: Realm, entity: str, obj: JSONObject) -> JSONObject:
        rendered = copy.deepcopy(obj)
        if entity == "Vendor":
            rendered["Balance"] = self._vendor_balance(realm, obj["Id"])
        if entity == "Account" and obj.get("AccountSubType") == EXCHANGE_GAIN_OR_LOSS:
            rendered["CurrentBalance"] = sum(
                (self._realized(realm, p) for p in realm.entities["BillPayment"].values()),
                Decimal("0"),
            )
        return rendered

    def _realized(self, realm: Realm, payment: JSONObject) -> Decimal:
        """The realized exchange gain (negative) or loss (positive) a payment books: each bill
        settled at the payment's rate instead of its own costs (or saves) the difference in
        home currency; each vendor credit applied works the other way."""
        if payment["CurrencyRef"]["value"] == realm.home_currency:
            return Decimal("0")
        paid_at = wire.decimal(payment.get("ExchangeRate") or 1)
        loss = Decimal("0")
        for line in payment.get("Line", []):
            for linked in line.get("LinkedTxn", []):
                target = realm.get(linked["TxnType"], linked["TxnId"])
                if target is None:
                    continue
                booked_at = wire.decimal(target.get("ExchangeRate") or 1)
                difference = wire.decimal(line["Amount"]) * (paid_at - booked_at)
                loss += difference if linked["TxnType"] == "Bill" else -difference
        return loss.quantize(CENT)

    def _preferences_json(self, realm: Realm) -> JSONObject:
        return {
            "Id": "1",
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
            "CurrencyPrefs": {
                "MultiCurrencyEnabled": realm.multicurrency,
                "HomeCurrency": {"value": realm.home_currency},
            },
            "VendorAndPurchasesPrefs": {
                "TrackingByCustomer": False,
                "BillableExpenseTracking": False,
            },
            "AccountingInfoPrefs": {
                "TrackDepartments": True,
                "DepartmentTerminology": "Location",
                "ClassTrackingPerTxnLine": True,
                "ClassTrackingPerTxn": False,
            },
            "MetaData": {
                "CreateTime": "2026-01-01T00:00:00-08:00",
                "LastUpdatedTime": "2026-01-01T00:00:00-08:00",
            },
        }

    async def _preferences(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        return 200, {"Preferences": self._preferences_json(realm)}

    def _rate_json(self, realm: Realm, currency: str, as_of: date, rate: Decimal) -> JSONObject:
        return {
            "SourceCurrencyCode": currency,
            "TargetCurrencyCode": realm.home_currency,
            "Rate": rate,
            "AsOfDate": as_of.isoformat(),
            "SyncToken": "0",
            "domain": "QBO",
            "sparse": False,
        }

    def _rate_params(self, currency: Any, as_of: Any) -> tuple[str, date]:
        if not currency:
            raise _missing("sourcecurrencycode")
        code = str(currency).upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise _validation(
                "2170", "Invalid Enumeration", f"Invalid currency code : {currency}", "currency"
            )
        try:
            when = date.fromisoformat(str(as_of)) if as_of else self.clock.now().date()
        except ValueError as exc:
            raise _validation(
                "2010",
                "Request has invalid or unsupported property",
                f"AsOfDate is not a date: {as_of}",
                "AsOfDate",
            ) from exc
        return code, when

    def _multicurrency_only(self, realm: Realm) -> None:
        if not realm.multicurrency:
            raise _business("Multicurrency is not enabled for this company.")

    async def _read_rate(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        """GET /exchangerate?sourcecurrencycode=EUR&asofdate=YYYY-MM-DD: the latest rate on or
        before the date (today without one), into the home currency."""
        self._multicurrency_only(realm)
        params = {key.lower(): value for key, value in request.query_params.items()}
        currency, as_of = self._rate_params(
            params.get("sourcecurrencycode"), params.get("asofdate")
        )
        if currency == realm.home_currency:
            return 200, {"ExchangeRate": self._rate_json(realm, currency, as_of, Decimal("1"))}
        found = realm.rate_on(currency, as_of)
        if found is None:
            raise _not_found("ExchangeRate", f"{currency} on {as_of.isoformat()}")
        return 200, {"ExchangeRate": self._rate_json(realm, currency, *found)}

    async def _write_rate(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        """POST /exchangerate {SourceCurrencyCode, AsOfDate, Rate}: sets that day's rate."""
        self._multicurrency_only(realm)
        body = self._body(await request.body())
        currency, as_of = self._rate_params(body.get("SourceCurrencyCode"), body.get("AsOfDate"))
        if not body.get("AsOfDate"):
            raise _missing("AsOfDate")
        target = body.get("TargetCurrencyCode") or realm.home_currency
        if currency == realm.home_currency or target != realm.home_currency:
            raise _business(
                f"Exchange rates convert a foreign currency into the home currency "
                f"({realm.home_currency})."
            )
        rate = wire.decimal(body.get("Rate"))
        if rate <= 0:
            raise _business("Rate must be greater than 0.")
        realm.exchange_rates.setdefault(currency, {})[as_of] = rate
        return 200, {"ExchangeRate": self._rate_json(realm, currency, as_of, rate)}

    def _vendor_balance(self, realm: Realm, vendor_id: str) -> Decimal:
        owed = sum(
            (
                b["Balance"]
                for b in realm.entities["Bill"].values()
                if b["VendorRef"]["value"] == vendor_id
            ),
            Decimal("0"),
        )
        credit = sum(
            (
                c["Balance"]
                for c in realm.entities["VendorCredit"].values()
                if c["VendorRef"]["value"] == vendor_id
            ),
            Decimal("0"),
        )
        return owed - credit

    async def _read(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        entity = RESOURCES.get(request.path_params["resource"])
        entity_id = request.path_params["entity_id"]
        if entity is None:
            raise QboFault(
                404, "0", "Not Found", f"Unsupported resource {request.path_params['resource']}"
            )
        obj = realm.get(entity, entity_id)
        if obj is None:
            raise _not_found(entity, entity_id)
        return 200, {entity: self._render(realm, entity, obj)}

    async def _query(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        if request.method == "POST":
            statement = (await request.body()).decode()
        else:
            statement = request.query_params.get("query", "")
        query = parse_query(statement)
        rows = list(realm.entities[query.entity].values())
        page, total = run_query(rows, query)
        if query.count_only:
            return 200, {"QueryResponse": {"totalCount": total}}
        response: JSONObject = {}
        if page:
            response[query.entity] = [self._render(realm, query.entity, row) for row in page]
            response["startPosition"] = query.start_position
            response["maxResults"] = len(page)
        response["totalCount"] = total
        return 200, {"QueryResponse": response}

    async def _cdc(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        entities = [
            e.strip() for e in request.query_params.get("entities", "").split(",") if e.strip()
        ]
        changed_since = request.query_params.get("changedSince")
        if not entities:
            raise _missing("entities")
        if not changed_since:
            raise _missing("changedSince")
        since = _as_time(changed_since)
        if since is None:
            raise _validation(
                "2010",
                "Request has invalid or unsupported property",
                f"changedSince is not a date-time: {changed_since}",
            )
        if self.clock.now() - since > CDC_WINDOW:
            raise _validation(
                "2010",
                "Request has invalid or unsupported property",
                "changedSince cannot be more than 30 days in the past",
            )
        responses = []
        for entity in entities:
            if entity not in QUERYABLE or entity in NOT_IN_CDC:
                raise _validation("4001", "Invalid query", f"Invalid entity name: {entity}")
            changed = [
                self._render(realm, entity, row)
                for row in realm.entities[entity].values()
                if (_as_time(row["MetaData"]["LastUpdatedTime"]) or since) > since
            ]
            changed += [
                {"Id": entity_id, "status": "Deleted", "MetaData": {"LastUpdatedTime": when}}
                for deleted_entity, entity_id, when in realm.deleted
                if deleted_entity == entity and (_as_time(when) or since) > since
            ]
            changed = changed[:LARGEST_MAX_RESULTS]
            block: JSONObject = {
                "startPosition": 1,
                "maxResults": len(changed),
                "totalCount": len(changed),
            }
            if changed:
                block[entity] = changed
            responses.append(block)
        return 200, {"CDCResponse": [{"QueryResponse": responses}]}

    # -----------------------------------------------------------------------------------------
    # Writes
    # -----------------------------------------------------------------------------------------

    def _stamp_new(self, realm: Realm, obj: JSONObject) -> JSONObject:
        now = self.clock.stamp()
        obj["Id"] = realm.next_id()
        obj["SyncToken"] = "0"
        obj["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
        obj.setdefault("domain", "QBO")
        obj.setdefault("sparse", False)
        return obj

    def _touch(self, obj: JSONObject) -> None:
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"]["LastUpdatedTime"] = self.clock.stamp()

    @staticmethod
    def _body(raw: bytes) -> JSONObject:
        try:
            body = wire.loads(raw)
        except ValueError as exc:
            raise _validation(
                "2010",
                "Request has invalid or unsupported property",
                f"Unable to parse request body: {exc}",
            ) from exc
        if not isinstance(body, dict):
            raise _validation(
                "2010", "Request has invalid or unsupported property", "body must be an object"
            )
        return body

    async def _write(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        """One create/update/delete/void, then its webhook events (what changed, and the bills
        and vendor credits a payment's write reopened or settled)."""
        entity = RESOURCES.get(request.path_params["resource"])
        targets: list[tuple[str, str]] = []
        body: JSONObject = {}
        if entity is not None and entity not in READ_ONLY:
            body = self._body(await request.body())
            before = realm.get(entity, str(body["Id"])) if "Id" in body else None
            if before is not None:
                targets = [(linked["TxnType"], linked["TxnId"]) for linked in _links(before)]
        status, payload = await self._write_one(request, realm)
        assert entity is not None  # _write_one refused any other
        obj = payload.get(entity) or {}
        includes = request.query_params.get("include", "").split(",")
        if request.query_params.get("operation") == "delete":
            operation = "Delete"
        elif "void" in includes:
            operation = "Void"
        else:
            operation = "Update" if "Id" in body else "Create"
        now = self.clock.stamp()
        updated = (obj.get("MetaData") or {}).get("LastUpdatedTime") or now
        self.webhooks.record(realm.realm_id, entity, str(obj.get("Id")), operation, updated)
        targets += [(linked["TxnType"], linked["TxnId"]) for linked in _links(obj)]
        for txn_type, txn_id in dict.fromkeys(targets):
            target = realm.get(txn_type, txn_id)
            if target is not None:
                stamp = target["MetaData"]["LastUpdatedTime"]
                self.webhooks.record(realm.realm_id, txn_type, txn_id, "Update", stamp)
        return status, payload

    async def _write_one(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        entity = RESOURCES.get(request.path_params["resource"])
        if entity is None or entity in READ_ONLY:
            raise _validation(
                "500",
                "Unsupported Operation",
                f"Operation create/update is not supported for {request.path_params['resource']}",
            )
        body = self._body(await request.body())
        operation = request.query_params.get("operation", "")
        includes = request.query_params.get("include", "").split(",")
        allow_duplicate = "allowduplicatedocnum" in includes
        voiding = "void" in includes
        if operation not in ("", "update", "delete"):
            raise _validation(
                "500",
                "Unsupported Operation",
                f"Operation {operation} is not supported for {request.path_params['resource']}",
            )
        if voiding and (entity != "BillPayment" or operation != "update"):
            # Bills and vendor credits have no void in QBO's API; payments void by sparse update.
            raise _validation(
                "500",
                "Unsupported Operation",
                f"Operation void is not supported for {request.path_params['resource']}; "
                "void a bill payment with operation=update&include=void",
            )
        existing = None
        if "Id" in body:
            existing = realm.get(entity, str(body["Id"]))
            if existing is None:
                raise _not_found(entity, str(body["Id"]))
            if str(body.get("SyncToken")) != existing["SyncToken"]:
                raise _validation(
                    "5010",
                    "Stale Object Error",
                    "Stale Object Error : You and remit were working on this at the same time. "
                    "remit finished before you did, so your work was not saved.",
                )
            if operation == "delete":
                return 200, self._delete(realm, entity, existing)
            if voiding:
                if body.get("sparse") is not True:
                    raise _missing("sparse")
                return 200, {entity: self._render(realm, entity, self._void(realm, existing))}
            if body.get("sparse") is True:
                body = {**copy.deepcopy(existing), **body}
        elif operation in ("delete", "update") or voiding:
            raise _missing("Id")
        if entity == "Vendor":
            obj = self._vendor(realm, body, existing)
        elif entity in ("Bill", "VendorCredit"):
            obj = self._purchase(realm, entity, body, existing, allow_duplicate)
        elif entity == "BillPayment":
            obj = self._bill_payment(realm, body, existing)
        elif entity == "Term":
            obj = self._term(realm, body, existing)
        elif entity == "Customer":
            obj = self._customer(realm, body, existing)
        elif entity == "Item":
            obj = self._item(realm, body, existing)
        elif entity == "CompanyCurrency":
            obj = self._company_currency(realm, body, existing)
        elif entity == "Account":
            obj = self._account(realm, body, existing)
        else:
            obj = self._attachable(realm, body, existing)
        return 200, {entity: self._render(realm, entity, obj)}

    def _void(self, realm: Realm, payment: JSONObject) -> JSONObject:
        """QBO's void of a BillPayment: the record stays, its amounts are zeroed and its lines
        cleared, "Voided" goes in front of PrivateNote, and what it paid is open again."""
        if wire.is_voided(payment):
            return payment
        targets = [(linked["TxnType"], linked["TxnId"]) for linked in _links(payment)]
        payment["TotalAmt"] = Decimal("0")
        payment["Line"] = []
        if "HomeTotalAmt" in payment:
            payment["HomeTotalAmt"] = Decimal("0")
        note = payment.get("PrivateNote")
        payment["PrivateNote"] = f"{wire.VOID_PREFIX} - {note}" if note else wire.VOID_PREFIX
        self._touch(payment)
        self._relink(realm, targets)
        return payment

    def _term(self, realm: Realm, body: JSONObject, existing: JSONObject | None) -> JSONObject:
        name = str(body.get("Name") or "").strip()
        if not name:
            raise _missing("Name")
        if len(name) > 31:
            raise _validation(
                "2050",
                "String length is either shorter or longer than supported by specification",
                f"String length specified does not match the supported length. Min:1 Max:31 "
                f"supplied length:{len(name)}",
                "Name",
            )
        for other in realm.entities["Term"].values():
            if other["Name"].lower() == name.lower() and (
                existing is None or other["Id"] != existing["Id"]
            ):
                raise _validation(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another term is already using this "
                    f"name. Please use a different name. Id={other['Id']}",
                )
        date_driven = any(
            body.get(key) is not None
            for key in ("DayOfMonthDue", "DueNextMonthDays", "DiscountDayOfMonth")
        )

        def whole(key: str, largest: int) -> int | None:
            value = body.get(key)
            if value is None:
                return None
            number = wire.decimal(value)
            if number != number.to_integral_value() or not 0 <= number <= largest:
                raise _business(f"{key} must be a whole number from 0 to {largest}.")
            return int(number)

        obj: JSONObject = {
            "Name": name,
            "Active": body.get("Active", True) is not False,
            "Type": "DATE_DRIVEN" if date_driven else wire.STANDARD_TERM,
        }
        percent = wire.decimal(body.get("DiscountPercent"))
        if not 0 <= percent <= 100:
            raise _business("DiscountPercent must be from 0 to 100.")
        obj["DiscountPercent"] = percent
        if date_driven:
            for key, largest in (
                ("DayOfMonthDue", 31),
                ("DueNextMonthDays", 31),
                ("DiscountDayOfMonth", 31),
            ):
                if (number := whole(key, largest)) is not None:
                    obj[key] = number
        else:
            due_days = whole("DueDays", 999)
            if due_days is None:
                raise _missing("DueDays")
            obj["DueDays"] = due_days
            discount_days = whole("DiscountDays", 999)
            obj["DiscountDays"] = discount_days or 0
            if percent and obj["DiscountDays"] > due_days:
                raise _business("DiscountDays can't be more than DueDays.")
        return self._save(realm, "Term", obj, existing)

    def _save(
        self, realm: Realm, entity: str, obj: JSONObject, existing: JSONObject | None
    ) -> JSONObject:
        if existing is None:
            self._stamp_new(realm, obj)
        else:
            for key in ("Id", "SyncToken", "MetaData", "domain"):
                obj[key] = existing[key]
            obj["sparse"] = False
            self._touch(obj)
        realm.entities[entity][obj["Id"]] = obj
        return obj

    def _delete(self, realm: Realm, entity: str, existing: JSONObject) -> JSONObject:
        if entity in ("Bill", "VendorCredit") and existing.get("LinkedTxn"):
            raise _business("This transaction is linked to a payment; delete the payment first.")
        del realm.entities[entity][existing["Id"]]
        realm.deleted.append((entity, existing["Id"], self.clock.stamp()))
        if entity == "BillPayment":
            self._relink(
                realm, [(line_txn["TxnType"], line_txn["TxnId"]) for line_txn in _links(existing)]
            )
        return {entity: {"Id": existing["Id"], "status": "Deleted", "domain": "QBO"}}

    def _vendor(self, realm: Realm, body: JSONObject, existing: JSONObject | None) -> JSONObject:
        name = (
            body.get("DisplayName")
            or body.get("CompanyName")
            or " ".join(part for part in (body.get("GivenName"), body.get("FamilyName")) if part)
        )
        if not name or not str(name).strip():
            raise _missing("DisplayName")
        name = str(name).strip()
        for other in realm.entities["Vendor"].values():
            if other["DisplayName"].lower() == name.lower() and (
                existing is None or other["Id"] != existing["Id"]
            ):
                raise _validation(
                    "6240",
                    "Duplicate Name Exists Error",
                    "The name supplied already exists. : Another customer, vendor or employee is "
                    f"already using this name. Please use a different name. Id={other['Id']}",
                )
        currency = wire.ref_value(body, "CurrencyRef") or realm.home_currency
        if existing is not None and wire.ref_value(existing, "CurrencyRef") != currency:
            raise _business("You can't change the currency of a vendor.")
        obj = {
            key: value
            for key, value in body.items()
            if key not in ("Id", "SyncToken", "MetaData", "Balance")
        }
        obj["DisplayName"] = name
        obj["PrintOnCheckName"] = body.get("PrintOnCheckName", body.get("CompanyName", name))
        obj["Active"] = body.get("Active", True)
        obj["CurrencyRef"] = {"value": currency}
        # VendorPaymentBankDetail (BankAccountName, BankBranchIdentifier = BSB,
        # BankAccountNumber, StatementText) is documented for AU companies (ABA files); the
        # emulator keeps and echoes it for any company, as it does every other field written.
        detail = body.get("VendorPaymentBankDetail")
        if detail is not None and not isinstance(detail, dict):
            raise _validation(
                "2010",
                "Request has invalid or unsupported property",
                "Property Name:VendorPaymentBankDetail specified is unsupported or invalid",
                "VendorPaymentBankDetail",
            )
        return self._save(realm, "Vendor", obj, existing)

    def _customer(self, realm: Realm, body: JSONObject, existing: JSONObject | None) -> JSONObject:
        name = str(body.get("DisplayName") or body.get("CompanyName") or "").strip()
        if not name:
            raise _missing("DisplayName")
        # DisplayName is unique across customers, vendors and employees.
        for entity in ("Customer", "Vendor"):
            for other in realm.entities[entity].values():
                if other["DisplayName"].lower() == name.lower() and (
                    existing is None or other["Id"] != existing["Id"]
                ):
                    raise _validation(
                        "6240",
                        "Duplicate Name Exists Error",
                        "The name supplied already exists. : Another customer, vendor or "
                        f"employee is already using this name. Please use a different name. "
                        f"Id={other['Id']}",
                    )
        currency = wire.ref_value(body, "CurrencyRef") or realm.home_currency
        obj = {
            key: value
            for key, value in body.items()
            if key not in ("Id", "SyncToken", "MetaData", "Balance")
        }
        obj["DisplayName"] = name
        obj["Active"] = body.get("Active", True)
        obj["CurrencyRef"] = {"value": currency}
        obj.setdefault("Balance", Decimal("0"))
        return self._save(realm, "Customer", obj, existing)

    def _account(self, realm: Realm, body: JSONObject, existing: JSONObject | None) -> JSONObject:
        """Intuit's Account rules: a unique Name without colons or double quotes (at most 100
        characters), an AccountType (or sub-type), a unique AcctNum where one is given."""
        name = str(body.get("Name") or "").strip()
        if not name:
            raise _missing("Name")
        if len(name) > 100:
            raise _validation(
                "2050",
                "String length is either shorter or longer than supported by specification",
                f"String length specified does not match the supported length. Min:1 Max:100 "
                f"supplied length:{len(name)}",
                "Name",
            )
        if any(c in name for c in ':"'):
            raise _validation(
                "2170",
                "Invalid Enumeration",
                "The account name can't contain a colon (:) or double quotes (\").",
                "Name",
            )
        account_type = body.get("AccountType")
        if account_type is None:
            subtype = body.get("AccountSubType")
            account_type = next(
                (kind for kind, (_, sub) in ACCOUNT_TYPES.items() if sub == subtype), None
            )
            if account_type is None:
                raise _missing("AccountType")
        if account_type not in ACCOUNT_TYPES:
            raise _validation(
                "2170",
                "Invalid Enumeration",
                f"Invalid Enumeration : {account_type}",
                "AccountType",
            )
        number = body.get("AcctNum")
        for other in realm.entities["Account"].values():
            if existing is not None and other["Id"] == existing["Id"]:
                continue
            if other["Name"].lower() == name.lower():
                raise _validation(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Another account is already using "
                    f"this name. Please use a different name. Id={other['Id']}",
                )
            if number and other.get("AcctNum") == number:
                raise _validation(
                    "6140",
                    "Duplicate Account Number",
                    f"Another account is already using this number: {number}",
                    "AcctNum",
                )
        classification, default_subtype = ACCOUNT_TYPES[account_type]
        currency = wire.ref_value(body, "CurrencyRef") or realm.home_currency
        obj = {
            key: value
            for key, value in body.items()
            if key not in ("Id", "SyncToken", "MetaData", "CurrentBalance")
        }
        obj.update(
            Name=name,
            FullyQualifiedName=name,
            AccountType=account_type,
            AccountSubType=body.get("AccountSubType") or default_subtype,
            Classification=classification,
            CurrencyRef={"value": currency},
            Active=body.get("Active", True),
            SubAccount=False,
            CurrentBalance=(existing or {}).get("CurrentBalance", Decimal("0")),
        )
        return self._save(realm, "Account", obj, existing)

    def _item(self, realm: Realm, body: JSONObject, existing: JSONObject | None) -> JSONObject:
        name = str(body.get("Name") or "").strip()
        if not name:
            raise _missing("Name")
        item_type = body.get("Type", "NonInventory")
        if item_type not in ("Inventory", "NonInventory", "Service", "Category", "Group"):
            raise _validation(
                "2170", "Invalid Enumeration", f"Invalid Enumeration : {item_type}", "Type"
            )
        for other in realm.entities["Item"].values():
            if other["Name"].lower() == name.lower() and (
                existing is None or other["Id"] != existing["Id"]
            ):
                raise _validation(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Id={other['Id']}",
                )
        for key, kind in (("ExpenseAccountRef", "Account"), ("IncomeAccountRef", "Account")):
            if (ref_id := wire.ref_value(body, key)) is not None:
                self._check_ref(realm, "Account", kind, ref_id)
        if item_type == "Inventory" and not wire.ref_value(body, "AssetAccountRef"):
            raise _missing("AssetAccountRef")
        obj = {key: value for key, value in body.items() if key not in ("Id", "SyncToken")}
        obj.pop("MetaData", None)
        obj["Name"] = name
        obj["FullyQualifiedName"] = name
        obj["Type"] = item_type
        obj["Active"] = body.get("Active", True)
        return self._save(realm, "Item", obj, existing)

    def _company_currency(
        self, realm: Realm, body: JSONObject, existing: JSONObject | None
    ) -> JSONObject:
        """QBO lists the company's foreign currencies here; the home currency is not one."""
        self._multicurrency_only(realm)
        code = str(body.get("Code") or (existing or {}).get("Code") or "").upper()
        if not code:
            raise _missing("Code")
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise _validation("2170", "Invalid Enumeration", f"Invalid currency code : {code}")
        if code == realm.home_currency:
            raise _business(f"{code} is the home currency.")
        if existing is not None and existing["Code"] != code:
            raise _business("You can't change the code of a currency.")
        for other in realm.entities["CompanyCurrency"].values():
            if other["Code"] == code and (existing is None or other["Id"] != existing["Id"]):
                raise _validation(
                    "6240", "Duplicate Name Exists Error", f"{code} is already in the list"
                )
        obj: JSONObject = {
            "Code": code,
            "Name": body.get("Name") or (existing or {}).get("Name") or code,
            "Active": body.get("Active", True),
        }
        return self._save(realm, "CompanyCurrency", obj, existing)

    def _check_ref(self, realm: Realm, entity: str, kind: str, ref_id: str | None) -> JSONObject:
        obj = realm.get(entity, ref_id)
        if obj is None or obj.get("Active") is False:
            raise _invalid_reference(kind, ref_id)
        return obj

    def _purchase(
        self,
        realm: Realm,
        entity: str,
        body: JSONObject,
        existing: JSONObject | None,
        allow_duplicate: bool,
    ) -> JSONObject:
        vendor_id = wire.ref_value(body, "VendorRef")
        if vendor_id is None:
            raise _missing("VendorRef")
        vendor = self._check_ref(realm, "Vendor", "Vendors", vendor_id)
        vendor_currency = wire.ref_value(vendor, "CurrencyRef") or realm.home_currency
        currency = wire.ref_value(body, "CurrencyRef") or vendor_currency
        if currency != vendor_currency:
            raise _business(
                f"The currency of the transaction ({currency}) must match the vendor's currency "
                f"({vendor_currency})."
            )
        lines = body.get("Line")
        if not isinstance(lines, list) or not lines:
            raise _missing("Line")
        total = Decimal("0")
        stored_lines = []
        # (TaxRate, percent, net amount) per line with a TaxCodeRef: what QBO computes tax from.
        tax_lines: list[tuple[JSONObject, Decimal, Decimal]] = []
        for number, line in enumerate(lines, start=1):
            detail_type = line.get("DetailType")
            if detail_type != "AccountBasedExpenseLineDetail":
                raise _validation(
                    "2170",
                    "Invalid Enumeration",
                    f"Invalid Enumeration : {detail_type} (only account-based lines are recorded)",
                    "Line.DetailType",
                )
            if "Amount" not in line:
                raise _missing("Line.Amount")
            # A negative line is a discount or a credit on the bill (QuickBooks takes them as
            # long as the transaction's total is not negative: checked below).
            amount = wire.decimal(line["Amount"])
            detail = line.get(detail_type) or {}
            account_id = wire.ref_value(detail, "AccountRef")
            if account_id is None:
                raise _missing("Line.AccountBasedExpenseLineDetail.AccountRef")
            self._check_ref(realm, "Account", "Accounts", account_id)
            if (class_id := wire.ref_value(detail, "ClassRef")) is not None:
                self._check_ref(realm, "Class", "Class", class_id)
            if (code_id := wire.ref_value(detail, "TaxCodeRef")) is not None:
                for rate, percent in self._purchase_rates(realm, code_id):
                    tax_lines.append((rate, percent, amount))
            total += amount
            stored_lines.append({**line, "Id": str(number), "LineNum": number, "Amount": amount})
        if (department_id := wire.ref_value(body, "DepartmentRef")) is not None:
            self._check_ref(realm, "Department", "Department", department_id)
        term: JSONObject | None = None
        if (term_id := wire.ref_value(body, "SalesTermRef")) is not None:
            term = self._check_ref(realm, "Term", "Term", term_id)
        doc_number = body.get("DocNumber")
        if doc_number is not None:
            doc_number = str(doc_number)
            if len(doc_number) > 21:
                raise _validation(
                    "2050",
                    "String length is either shorter or longer than supported by specification",
                    f"String length specified does not match the supported length. Min:0 Max:21 "
                    f"supplied length:{len(doc_number)}",
                    "DocNumber",
                )
            if entity == "Bill" and realm.warn_duplicate_doc_num and not allow_duplicate:
                for other in realm.entities["Bill"].values():
                    same = (
                        other.get("DocNumber") == doc_number
                        and other["VendorRef"]["value"] == vendor_id
                    )
                    if same and (existing is None or other["Id"] != existing["Id"]):
                        raise _validation(
                            "6140",
                            "Duplicate Document Number Error",
                            "Duplicate Document Number Error : You must specify a different "
                            f"number. This number has already been used. DocNumber={doc_number} is "
                            f"assigned to TxnType=Bill with TxnId={other['Id']}",
                        )
        tax, tax_detail = self._purchase_tax(body, tax_lines)
        total = total + tax
        if total < 0:
            raise _business("The total amount cannot be negative.")
        today = self.clock.now().date().isoformat()
        obj = {
            key: value
            for key, value in body.items()
            if key
            not in (
                "Id",
                "SyncToken",
                "MetaData",
                "Balance",
                "HomeBalance",
                "HomeTotalAmt",
                "LinkedTxn",
                "TotalAmt",
            )
        }
        obj["VendorRef"] = {"value": vendor_id, "name": vendor["DisplayName"]}
        obj["CurrencyRef"] = {"value": currency}
        obj["Line"] = stored_lines
        obj["TxnDate"] = body.get("TxnDate") or today
        if term is not None:
            obj["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
        if entity == "Bill":
            # Without a DueDate QBO counts the term's days from the bill date.
            due = body.get("DueDate")
            if not due and term is not None and term.get("DueDays") is not None:
                due = (
                    date.fromisoformat(str(obj["TxnDate"])[:10])
                    + timedelta(days=int(term["DueDays"]))
                ).isoformat()
            obj["DueDate"] = due or obj["TxnDate"]
            obj.setdefault("APAccountRef", self._ap_account_ref(realm))
        if currency == realm.home_currency:
            obj.pop("ExchangeRate", None)
        else:
            on = date.fromisoformat(str(obj["TxnDate"])[:10])
            obj["ExchangeRate"] = wire.decimal(
                body.get("ExchangeRate") or realm.default_rate(currency, on)
            )
        obj["TxnTaxDetail"] = tax_detail
        obj["TotalAmt"] = total
        obj["LinkedTxn"] = copy.deepcopy(existing.get("LinkedTxn", [])) if existing else []
        applied = (
            self._applied(realm, "Bill" if entity == "Bill" else "VendorCredit", existing["Id"])
            if existing
            else Decimal("0")
        )
        if total < applied:
            raise _business(f"The new total {total} is less than the {applied} already applied.")
        obj["Balance"] = total - applied
        if "ExchangeRate" in obj:
            obj["HomeBalance"] = (obj["Balance"] * obj["ExchangeRate"]).quantize(CENT)
            obj["HomeTotalAmt"] = (total * obj["ExchangeRate"]).quantize(CENT)
        return self._save(realm, entity, obj, existing)

    def _purchase_rates(self, realm: Realm, code_id: str) -> list[tuple[JSONObject, Decimal]]:
        """The purchase TaxRates a line's TaxCodeRef applies, with their percents; QBO refuses a
        code that has none (a sales-only code on a bill)."""
        code = self._check_ref(realm, "TaxCode", "TaxCode", code_id)
        details = (code.get("PurchaseTaxRateList") or {}).get("TaxRateDetail") or []
        if not details:
            raise _business(
                f"The tax code {code.get('Name')} (Id {code_id}) can't be used on purchase "
                "transactions."
            )
        rates = []
        for detail in details:
            rate_id = wire.ref_value(detail, "TaxRateRef")
            rate = self._check_ref(realm, "TaxRate", "TaxRate", rate_id)
            rates.append((rate, wire.decimal(rate.get("RateValue"))))
        return rates

    def _purchase_tax(
        self, body: JSONObject, tax_lines: list[tuple[JSONObject, Decimal, Decimal]]
    ) -> tuple[Decimal, JSONObject]:
        """The bill's tax and its TxnTaxDetail. With TaxCodeRefs on lines, QBO computes a TaxLine
        per rate (net amount times percent) and their sum as TotalTax, unless the request gives
        TotalTax, which overrides the computed amount (the vendor's document is the truth);
        without any, TotalTax as given, added on top of the line amounts for `TaxExcluded`."""
        given = body.get("TxnTaxDetail") or {}
        tax = self._given_tax(body)
        if not tax_lines:
            return tax, {**given, "TotalTax": tax}
        by_rate: dict[str, tuple[JSONObject, Decimal, Decimal]] = {}
        for rate, percent, amount in tax_lines:
            _, _, net = by_rate.get(str(rate["Id"]), (rate, percent, Decimal("0")))
            by_rate[str(rate["Id"])] = (rate, percent, net + amount)
        tax_line_objs: list[JSONObject] = []
        computed = Decimal("0")
        for rate, percent, net in by_rate.values():
            amount = (net * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            computed += amount
            tax_line_objs.append(
                {
                    "Amount": amount,
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate["Id"], "name": rate.get("Name")},
                        "PercentBased": True,
                        "TaxPercent": percent,
                        "NetAmountTaxable": net,
                    },
                }
            )
        total_tax = tax if "TotalTax" in given else computed
        return total_tax, {"TotalTax": total_tax, "TaxLine": tax_line_objs}

    def _given_tax(self, body: JSONObject) -> Decimal:
        """`TxnTaxDetail.TotalTax`, which QBO adds on top of the line amounts for `TaxExcluded`."""
        calculation = body.get("GlobalTaxCalculation", "TaxExcluded")
        if calculation not in ("TaxExcluded", "TaxInclusive", "NotApplicable"):
            raise _validation(
                "2170",
                "Invalid Enumeration",
                f"Invalid Enumeration : {calculation}",
                "GlobalTaxCalculation",
            )
        if calculation == "TaxInclusive":
            # Real QBO then splits each line into net Amount and gross TaxInclusiveAmt per its tax
            # code; the emulator computes tax on net amounts only, so it refuses that split.
            raise _validation(
                "500",
                "Unsupported Operation",
                "the emulator records tax-exclusive bills only (GlobalTaxCalculation=TaxExcluded)",
                "GlobalTaxCalculation",
            )
        tax_detail = body.get("TxnTaxDetail") or {}
        if not isinstance(tax_detail, dict):
            raise _validation(
                "2010",
                "Request has invalid or unsupported property",
                "Property Name:TxnTaxDetail specified is unsupported or invalid",
                "TxnTaxDetail",
            )
        tax = wire.decimal(tax_detail.get("TotalTax"))
        if tax < 0:
            raise _business("TotalTax can't be negative.")
        if tax and calculation == "NotApplicable":
            raise _business("TotalTax must be 0 when GlobalTaxCalculation is NotApplicable.")
        return tax

    def _ap_account_ref(self, realm: Realm) -> JSONObject:
        for account in realm.entities["Account"].values():
            if account["AccountType"] == "Accounts Payable":
                return {"value": account["Id"], "name": account["Name"]}
        return {}

    def _applied(self, realm: Realm, txn_type: str, txn_id: str) -> Decimal:
        applied = Decimal("0")
        for payment in realm.entities["BillPayment"].values():
            for line in payment["Line"]:
                for linked in line.get("LinkedTxn", []):
                    if linked["TxnType"] == txn_type and linked["TxnId"] == txn_id:
                        applied += line["Amount"]
        return applied

    def _relink(self, realm: Realm, targets: list[tuple[str, str]]) -> None:
        """Recompute Balance and LinkedTxn of bills / vendor credits from the payments."""
        for txn_type, txn_id in targets:
            obj = realm.get(txn_type, txn_id)
            if obj is None:
                continue
            links = []
            for payment in realm.entities["BillPayment"].values():
                if any(
                    t == (txn_type, txn_id)
                    for t in ((x["TxnType"], x["TxnId"]) for x in _links(payment))
                ):
                    pay_type = (
                        "BillPaymentCreditCard"
                        if payment["PayType"] == "CreditCard"
                        else "BillPaymentCheck"
                    )
                    links.append({"TxnId": payment["Id"], "TxnType": pay_type})
            obj["LinkedTxn"] = links
            obj["Balance"] = obj["TotalAmt"] - self._applied(realm, txn_type, txn_id)
            if "ExchangeRate" in obj:
                obj["HomeBalance"] = (obj["Balance"] * obj["ExchangeRate"]).quantize(CENT)
            self._touch(obj)

    def _bill_payment(
        self, realm: Realm, body: JSONObject, existing: JSONObject | None
    ) -> JSONObject:
        if existing is not None and wire.is_voided(existing):
            # A voided payment keeps its zeroes; only its note and numbers can still change.
            obj = copy.deepcopy(existing)
            for editable in ("PrivateNote", "DocNumber"):
                if editable in body:
                    obj[editable] = body[editable]
            return self._save(realm, "BillPayment", obj, existing)
        # On an update, what this payment already applied is available to it again.
        own: dict[tuple[str, str], Decimal] = {}
        for line in (existing or {}).get("Line", []):
            for linked in line.get("LinkedTxn", []):
                target_key = (linked["TxnType"], linked["TxnId"])
                own[target_key] = own.get(target_key, Decimal("0")) + line["Amount"]
        vendor_id = wire.ref_value(body, "VendorRef")
        if vendor_id is None:
            raise _missing("VendorRef")
        vendor = self._check_ref(realm, "Vendor", "Vendors", vendor_id)
        currency = (
            wire.ref_value(body, "CurrencyRef")
            or wire.ref_value(vendor, "CurrencyRef")
            or realm.home_currency
        )
        pay_type = body.get("PayType")
        if pay_type == "Check":
            source_id = wire.ref_value(body.get("CheckPayment") or {}, "BankAccountRef")
            wanted_type, element = "Bank", "CheckPayment.BankAccountRef"
        elif pay_type == "CreditCard":
            source_id = wire.ref_value(body.get("CreditCardPayment") or {}, "CCAccountRef")
            wanted_type, element = "Credit Card", "CreditCardPayment.CCAccountRef"
        else:
            raise _validation(
                "2170",
                "Invalid Enumeration",
                f"Invalid Enumeration : PayType {pay_type}",
                "PayType",
            )
        if source_id is None:
            raise _missing(element)
        source = self._check_ref(realm, "Account", "Accounts", source_id)
        if source["AccountType"] != wanted_type:
            raise _business(
                f"{element} must be a {wanted_type} account; "
                f"{source['Name']} is {source['AccountType']}."
            )
        source_currency = wire.ref_value(source, "CurrencyRef") or realm.home_currency
        if source_currency != currency and not (
            source_currency == realm.home_currency and body.get("ExchangeRate")
        ):
            raise _business(
                f"The payment account {source['Name']} is in {source_currency} but the payment "
                f"is in {currency}: pay from a {currency} account, or from a "
                f"{realm.home_currency} account with an ExchangeRate."
            )
        lines = body.get("Line")
        if not isinstance(lines, list) or not lines:
            raise _missing("Line")
        net = Decimal("0")
        stored_lines = []
        seen: dict[tuple[str, str], Decimal] = {}
        for line in lines:
            amount = wire.decimal(line.get("Amount"))
            if amount <= 0:
                raise _business("Each payment line needs a positive Amount.")
            links = line.get("LinkedTxn") or []
            if len(links) != 1:
                raise _missing("Line.LinkedTxn")
            txn_type, txn_id = str(links[0].get("TxnType")), str(links[0].get("TxnId"))
            if txn_type not in ("Bill", "VendorCredit"):
                raise _validation(
                    "2170",
                    "Invalid Enumeration",
                    f"Invalid Enumeration : TxnType {txn_type}",
                    "Line.LinkedTxn.TxnType",
                )
            target = realm.get(txn_type, txn_id)
            if target is None:
                raise _invalid_reference(txn_type, txn_id)
            if target["VendorRef"]["value"] != vendor_id:
                raise _validation(
                    "620",
                    "Transaction ID cannot be linked",
                    f"{txn_type} {txn_id} belongs to another vendor.",
                )
            if target["CurrencyRef"]["value"] != currency:
                raise _business(
                    f"The payment is in {currency} but {txn_type} {txn_id} is in "
                    f"{target['CurrencyRef']['value']}."
                )
            key = (txn_type, txn_id)
            seen[key] = seen.get(key, Decimal("0")) + amount
            available = target["Balance"] + own.get(key, Decimal("0"))
            if seen[key] > available:
                what = "bill" if txn_type == "Bill" else "vendor credit"
                raise _business(
                    f"The amount applied ({seen[key]}) is more than the open balance "
                    f"({available}) of {what} {txn_id}."
                )
            net += amount if txn_type == "Bill" else -amount
            stored_lines.append(
                {"Amount": amount, "LinkedTxn": [{"TxnId": txn_id, "TxnType": txn_type}]}
            )
        total = wire.decimal(body.get("TotalAmt", net))
        if total < 0 or net < 0:
            raise _business("The total amount cannot be negative.")
        if total < net:
            raise _business(
                f"TotalAmt {total} is less than the bills minus credits on the lines ({net})."
            )
        obj = {
            key: value
            for key, value in body.items()
            if key not in ("Id", "SyncToken", "MetaData", "Line", "TotalAmt", "HomeTotalAmt")
        }
        obj["VendorRef"] = {"value": vendor_id, "name": vendor["DisplayName"]}
        obj["CurrencyRef"] = {"value": currency}
        obj["TxnDate"] = body.get("TxnDate") or self.clock.now().date().isoformat()
        obj["TotalAmt"] = total
        obj["Line"] = stored_lines
        if currency == realm.home_currency:
            obj.pop("ExchangeRate", None)
        else:
            on = date.fromisoformat(str(obj["TxnDate"])[:10])
            rate = wire.decimal(body.get("ExchangeRate") or realm.default_rate(currency, on))
            if rate <= 0:
                raise _business("ExchangeRate must be greater than 0.")
            obj["ExchangeRate"] = rate
            obj["HomeTotalAmt"] = (total * rate).quantize(CENT)
        obj.setdefault("APAccountRef", self._ap_account_ref(realm))
        saved = self._save(realm, "BillPayment", obj, existing)
        self._relink(realm, list(dict.fromkeys([*own, *seen])))
        return saved

    def _attachable(
        self, realm: Realm, body: JSONObject, existing: JSONObject | None, size: int | None = None
    ) -> JSONObject:
        for attachable_ref in body.get("AttachableRef") or []:
            entity_ref = attachable_ref.get("EntityRef") or {}
            kind, ref_id = str(entity_ref.get("type", "")), str(entity_ref.get("value", ""))
            if kind not in QUERYABLE or realm.get(kind, ref_id) is None:
                raise _invalid_reference(kind or "EntityRef", ref_id)
        obj = {
            key: value for key, value in body.items() if key not in ("Id", "SyncToken", "MetaData")
        }
        if size is not None:
            obj["Size"] = size
        return self._save(realm, "Attachable", obj, existing)

    async def _upload(self, request: Request, realm: Realm) -> tuple[int, JSONObject]:
        form = await request.form()
        responses = []
        for key in form:
            if not key.startswith("file_metadata_"):
                continue
            suffix = key[len("file_metadata_") :]
            metadata_field, content_field = form.get(key), form.get(f"file_content_{suffix}")
            if not isinstance(content_field, UploadFile):
                raise _missing(f"file_content_{suffix}")
            raw = (
                await metadata_field.read()
                if isinstance(metadata_field, UploadFile)
                else str(metadata_field)
            )
            try:
                metadata = wire.loads(raw)
            except ValueError as exc:
                raise _validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    f"file_metadata_{suffix}: {exc}",
                ) from exc
            content = await content_field.read()
            metadata.setdefault("FileName", content_field.filename or "upload")
            metadata.setdefault(
                "ContentType", content_field.content_type or "application/octet-stream"
            )
            obj = self._attachable(realm, metadata, None, size=len(content))
            realm.uploads[obj["Id"]] = content
            digest = hashlib.sha256(content).hexdigest()[:16]
            obj["FileAccessUri"] = f"/v3/company/{realm.realm_id}/download/{obj['Id']}"
            obj["TempDownloadUri"] = (
                f"https://intuit-qbo-prod-31.s3.amazonaws.com/{realm.realm_id}/attachments/{digest}"
            )
            responses.append({"Attachable": self._render(realm, "Attachable", obj)})
            updated = obj["MetaData"]["LastUpdatedTime"]
            self.webhooks.record(realm.realm_id, "Attachable", obj["Id"], "Create", updated)
        if not responses:
            raise _missing("file_metadata_01")
        return 200, {"AttachableResponse": responses}

    # -----------------------------------------------------------------------------------------
    # Seeding
    # -----------------------------------------------------------------------------------------

    def in_flight(self, realm_id: str) -> int:
        return self.realms[realm_id].in_flight

    @staticmethod
    def _seed_vat_codes(add: Callable[[str, JSONObject], JSONObject]) -> None:
        """VAT_PURCHASE_CODES: one TaxRate each and the TaxCode that applies it."""
        for name, description, percent in VAT_PURCHASE_CODES:
            rate = add(
                "TaxRate",
                {
                    "Name": name,
                    "Description": description,
                    "RateValue": Decimal(percent),
                    "AgencyRef": {"value": "2", "name": "Skatteverket"},
                    "SpecialTaxType": "NONE",
                    "DisplayType": "ReadOnly",
                    "Active": True,
                },
            )
            applied = [
                {
                    "TaxRateRef": {"value": rate["Id"], "name": rate["Name"]},
                    "TaxTypeApplicable": "TaxOnAmount",
                    "TaxOrder": 0,
                }
            ]
            add(
                "TaxCode",
                {
                    "Name": name,
                    "Description": description,
                    "Taxable": True,
                    "TaxGroup": True,
                    "Active": True,
                    "Hidden": False,
                    # Non-US QBO codes apply their rate on both sides (sales and purchases).
                    "SalesTaxRateList": {"TaxRateDetail": applied},
                    "PurchaseTaxRateList": {"TaxRateDetail": applied},
                },
            )

    def seed_demo_company(self, company_id: str | None = None) -> DemoCompany:
        """The shared demo business: USD home, multicurrency on, AP accounts and vendors."""
        realm_id = company_id or str(next(self._realm_ids))
        realm = Realm(realm_id=realm_id, company_name="Remit Demo Company")
        self.realms[realm_id] = realm

        def add(entity: str, obj: JSONObject) -> JSONObject:
            self._stamp_new(realm, obj)
            realm.entities[entity][obj["Id"]] = obj
            return obj

        def account(
            name: str, account_type: str, classification: str, subtype: str, currency: str = "USD"
        ) -> str:
            return add(
                "Account",
                {
                    "Name": name,
                    "FullyQualifiedName": name,
                    "AccountType": account_type,
                    "Classification": classification,
                    "AccountSubType": subtype,
                    "CurrencyRef": {"value": currency},
                    "Active": True,
                    "SubAccount": False,
                    "CurrentBalance": Decimal("0"),
                },
            )["Id"]

        bank = account("Operating Bank", "Bank", "Asset", "Checking")
        bank_eur = account("Operating Bank EUR", "Bank", "Asset", "Checking", "EUR")
        payable = account("Accounts Payable", "Accounts Payable", "Liability", "AccountsPayable")
        card = account("Company Card", "Credit Card", "Liability", "CreditCard")
        account("Office Supplies", "Expense", "Expense", "OfficeGeneralAdministrativeExpenses")
        account("Repairs and Maintenance", "Expense", "Expense", "RepairMaintenance")
        account("Professional Fees", "Expense", "Expense", "LegalProfessionalFees")
        account("Software Subscriptions", "Expense", "Expense", "OtherMiscellaneousServiceCost")
        account("Cost of Goods Sold", "Cost of Goods Sold", "Expense", "SuppliesMaterialsCogs")
        # Where early-payment discounts taken go (the connection's discount_account_id).
        discounts = account(
            "Purchase Discounts", "Other Income", "Revenue", "OtherMiscellaneousIncome"
        )
        # The system account QBO books realized exchange gains and losses to.
        account("Exchange Gain or Loss", "Other Expense", "Expense", EXCHANGE_GAIN_OR_LOSS)
        for name, due_days, percent, discount_days in (
            ("Net 30", 30, Decimal("0"), 0),
            ("2% 10 Net 30", 30, Decimal("2"), 10),
        ):
            add(
                "Term",
                {
                    "Name": name,
                    "Active": True,
                    "Type": wire.STANDARD_TERM,
                    "DueDays": due_days,
                    "DiscountPercent": percent,
                    "DiscountDays": discount_days,
                },
            )
        for name in ("Operations", "Finance", "Sales"):
            add(
                "Department",
                {"Name": name, "FullyQualifiedName": name, "SubDepartment": False, "Active": True},
            )
        for name in ("East", "West"):
            add(
                "Class",
                {"Name": name, "FullyQualifiedName": name, "SubClass": False, "Active": True},
            )

        # QBO's Vendor has no default-expense-account field in the API, so the vendors' usual
        # accounts (Office Supplies, Software Subscriptions, Professional Fees) are not stored.
        currency_names = {"USD": "United States Dollar", "EUR": "Euro"}

        def vendor(name: str, tax_id: str | None, currency: str = "USD") -> None:
            obj: JSONObject = {
                "DisplayName": name,
                "CompanyName": name,
                "PrintOnCheckName": name,
                "Active": True,
                "CurrencyRef": {"value": currency, "name": currency_names[currency]},
                "Vendor1099": False,
            }
            if tax_id:
                obj["TaxIdentifier"] = tax_id
            add("Vendor", obj)

        vendor("Northwind Office Supply", "94-1234567")
        vendor("Globex Software", "12-3456789")
        vendor("Initech Consulting", None)
        vendor("Acme Corp", None)
        vendor("ACME Corporation", None)
        vendor("Fabrikam GmbH", FABRIKAM_TAX_ID, "EUR")

        # Seeded after the accounts and vendors so their Ids stay what they were.
        for name, email in (("Contoso Retail", "ap@contoso.example"), ("Tailspin Toys", None)):
            customer: JSONObject = {
                "DisplayName": name,
                "CompanyName": name,
                "Active": True,
                "CurrencyRef": {"value": "USD", "name": currency_names["USD"]},
                "Balance": Decimal("0"),
            }
            if email:
                customer["PrimaryEmailAddr"] = {"Address": email}
            add("Customer", customer)
        supplies = next(
            a["Id"] for a in realm.entities["Account"].values() if a["Name"] == "Office Supplies"
        )
        add(
            "Item",
            {
                "Name": "Printer Paper",
                "FullyQualifiedName": "Printer Paper",
                "Sku": "PAPER-A4",
                "Type": "NonInventory",
                "PurchaseDesc": "A4 printer paper, box of 5 reams",
                "PurchaseCost": Decimal("24.50"),
                "ExpenseAccountRef": {"value": supplies, "name": "Office Supplies"},
                "Active": True,
            },
        )
        add(
            "Item",
            {
                "Name": "Consulting Hours",
                "FullyQualifiedName": "Consulting Hours",
                "Type": "Service",
                "PurchaseCost": Decimal("150"),
                "Active": True,
            },
        )
        # A US company with sales tax: one agency's rate, the code that applies it, and
        # QBO's Non-taxable code (no rate).
        rate = add(
            "TaxRate",
            {
                "Name": "California",
                "Description": "California state sales tax",
                "RateValue": Decimal("7.25"),
                "AgencyRef": {"value": "1", "name": "California Department of Tax and Fee"},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
                "Active": True,
            },
        )
        for code_name, rates in (("California", [rate]), ("Non", [])):
            add(
                "TaxCode",
                {
                    "Name": code_name,
                    "Description": code_name,
                    "Taxable": bool(rates),
                    "TaxGroup": True,
                    "Active": True,
                    "Hidden": False,
                    "SalesTaxRateList": {
                        "TaxRateDetail": [
                            {
                                "TaxRateRef": {"value": r["Id"], "name": r["Name"]},
                                "TaxTypeApplicable": "TaxOnAmount",
                                "TaxOrder": 0,
                            }
                            for r in rates
                        ]
                    },
                    "PurchaseTaxRateList": {"TaxRateDetail": []},
                },
            )
        for code, name in (("EUR", "Euro"), ("GBP", "British Pound Sterling")):
            add("CompanyCurrency", {"Code": code, "Name": name, "Active": True})
        self._seed_vat_codes(add)

        grant = self.issue_grant(realm_id)
        # The seeded grant's app is registered like any developer app, so the demo connection
        # can be relinked through the consent page (`remit connections relink --auto-consent`).
        self.consent.register_app(client_id=grant.client_id, client_secret=grant.client_secret)
        return DemoCompany(
            company_id=realm_id,
            company_name=realm.company_name,
            credentials={
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "client_id": grant.client_id,
                "client_secret": grant.client_secret,
            },
            settings={
                "bank_account_id": bank,
                "bank_account_id:EUR": bank_eur,
                "card_account_id": card,
                "ap_account_id": payable,
                "discount_account_id": discounts,
                "home_currency": "USD",
            },
            inspector_token=self.inspector_token,
        )


VAT_PURCHASE_CODES: tuple[tuple[str, str, str], ...] = (
    ("19.0% S", "Standard rated purchases (19%)", "19"),
    ("7.0% R", "Reduced rated purchases (7%)", "7"),
    ("25.0% S", "Standard rated purchases (25%)", "25"),
    ("12.0% R", "Reduced rated purchases (12%)", "12"),
    ("6.0% R", "Reduced rated purchases (6%)", "6"),
    ("0.0% Z", "Zero rated purchases", "0"),
    ("Exempt", "Exempt purchases", "0"),
    ("0.0% RC", "Reverse charge purchases: the buyer accounts for the VAT", "0"),
    ("0.0% ECG", "EC acquisitions of goods: the buyer accounts for the VAT", "0"),
    ("No VAT", "Outside the scope of VAT", "0"),
)
"""The purchase side of a European company's VAT codes, as non-US QBO names them (a rate each,
the code applying it on purchases), beside the demo's US sales tax: the e-invoices it
receives from EU vendors (German rates, as in the walkthrough's invoice; Swedish ones, as in
the EN 16931 samples) book with their codes."""


def _links(payment: JSONObject) -> list[JSONObject]:
    return [linked for line in payment.get("Line", []) for linked in line.get("LinkedTxn", [])]
