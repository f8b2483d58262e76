"""Dynamics 365 Business Central emulator: API v2.0 (OData) and an Entra ID token endpoint.

What it answers, as Business Central does (research: intacct-bc.md §2):

- `POST /{tenant}/oauth2/v2.0/token`: client_credentials with scope
  `https://api.businesscentral.dynamics.com/.default`; Entra's `{"error", "error_description"}`
  on a refusal (`invalid_client`, `invalid_scope`, `unsupported_grant_type`).
- `/v2.0/{tenant}/{environment}/api/v2.0/companies({id})/...`: vendors, accounts, dimensions
  and dimensionValues, purchaseInvoices with purchaseInvoiceLines (deep insert in the POST)
  and their dimensionSetLines, the bound action `Microsoft.NAV.post` (Draft -> Open),
  vendorPaymentJournals with vendorPayments, `journals({id})/Microsoft.NAV.post` posting a
  payment batch (the lines leave the journal as generalLedgerEntries; the invoices they apply
  to are paid down), attachments with `attachmentContent`, companyInformation.
- OData: `$filter` (eq ne gt ge lt le, and/or, parentheses, `tolower()`, `contains()`),
  `$top`/`$skip`, `$expand=purchaseInvoiceLines`, server-driven paging by `@odata.nextLink`
  (`Prefer: odata.maxpagesize=N`, else the emulator's page size), `@odata.etag` on every entity
  and `If-Match` on PATCH (missing: 400; stale: 412 `Request_EntityChanged`).
- Errors as `{"error": {"code", "message"}}` with Business Central's codes; 429 with
  Retry-After from the fault switches (sandbox/faults.py).

Unverified behaviour the emulator settles one way (marked [U] in the research): a stale ETag is
412 (not 409); the posted invoice keeps the draft's id; a payment's `amount` is positive;
the invoice's remaining amount is kept but not shown (API v2.0's purchaseInvoice has no such
field: a client reads it from status and the payments it can see).
"""

from __future__ import annotations

import base64
import copy
import email.utils
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import parse_qs, quote, urlencode

from starlette.applications import Starlette
from starlette.datastructures import URL, Headers, QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.decimal_json import dumps, loads
from sandbox.faults import ASGIApp, FaultInjector, FaultResponse, Faults
from sandbox.persist import Persistent
from sandbox.registry import DemoCompany

JSONObject = dict[str, Any]
SCOPE = "https://api.businesscentral.dynamics.com/.default"
ENVIRONMENT = "production"
DEMO_CLIENT_ID = "remit-demo-bc-app"
TOKEN_LIFETIME = timedelta(hours=1)
DEFAULT_MAX_PAGE_SIZE = 20_000
CENT = Decimal("0.01")
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"


class ODataError(Exception):
    """An error Business Central answers with: `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _correlated(message: str) -> str:
    # Business Central ends its messages with the request's correlation id.
    return f"{message}  CorrelationId:  {uuid.uuid4()}."


def _error_body(code: str, message: str) -> bytes:
    return dumps({"error": {"code": code, "message": _correlated(message)}}).encode()


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        content=dumps(body),
        status_code=status,
        media_type="application/json; odata.metadata=minimal",
        headers=headers,
    )


def _error_response(error: ODataError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm=""'} if error.status == 401 else None
    return Response(
        content=_error_body(error.code, error.message),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


class Call:
    """One API request as the handlers read it: an HTTP request or one request of a $batch."""

    def __init__(
        self,
        method: str,
        url: URL,
        headers: Headers,
        content: bytes,
        *,
        rest: str,
        environment: str,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.content = content
        self.query_params = QueryParams(url.query)
        self.path_params = {"rest": rest, "environment": environment}

    async def body(self) -> bytes:
        return self.content


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------------
# OData $filter: a small parser for the expressions Business Central clients send
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>\(|\)|,)|"
    r"(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)|"
    r"(?P<word>[A-Za-z_][A-Za-z0-9_/]*)|(?P<lit>[0-9][0-9A-Za-z:.+\-]*|-[0-9][0-9.]*))"
)
_COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
Predicate = Callable[[JSONObject], bool]


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    expression = expression.strip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None or match.end() == position:
            raise ODataError(
                400,
                "BadRequest",
                f"The $filter expression could not be read at position {position}: "
                f"{expression[position : position + 20]!r}",
            )
        kind = cast(str, match.lastgroup)
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _literal(kind: str, text: str) -> Any:
    if kind == "guid":
        return text.lower()
    if kind == "str":
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:\d{2})", text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return date.fromisoformat(text)
    if re.fullmatch(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text
    ):
        return text.lower()
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ODataError(400, "BadRequest", f"{text!r} is not a valid literal") from exc


def _comparable(actual: Any, expected: Any) -> tuple[Any, Any]:
    if isinstance(expected, datetime) and isinstance(actual, str):
        return datetime.fromisoformat(actual.replace("Z", "+00:00")), expected
    if isinstance(expected, date) and isinstance(actual, str):
        return date.fromisoformat(actual[:10]), expected
    if isinstance(expected, Decimal) and isinstance(actual, int | Decimal):
        return Decimal(actual), expected
    if isinstance(expected, str) and isinstance(actual, str):
        return actual.lower() if _is_guid(expected) else actual, expected
    return actual, expected


def _is_guid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))


def parse_filter(expression: str) -> Predicate:
    """An OData $filter as a predicate over an entity; ODataError (400) when unreadable."""
    tokens = _tokens(expression)
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise ODataError(400, "BadRequest", "The $filter expression ends too early")
        token = tokens[position]
        position += 1
        return token

    def expect(text: str) -> None:
        kind, value = take()
        if value != text:
            raise ODataError(400, "BadRequest", f"Expected {text!r} in $filter, found {value!r}")

    def operand() -> Callable[[JSONObject], Any]:
        kind, value = take()
        if kind == "word" and value in ("tolower", "toupper") and peek() == ("op", "("):
            expect("(")
            inner = operand()
            expect(")")
            if value == "tolower":
                return lambda record: str(inner(record) or "").lower()
            return lambda record: str(inner(record) or "").upper()
        if kind == "word" and value not in ("true", "false", "null"):
            name = value
            return lambda record: record.get(name)
        constant = _literal(kind, value)
        return lambda record: constant

    def comparison() -> Predicate:
        if peek() == ("op", "("):
            take()
            inner = disjunction()
            expect(")")
            return inner
        if peek() == ("word", "not"):
            take()
            negated = comparison()
            return lambda record: not negated(record)
        if peek() in (("word", "contains"), ("word", "startswith")):
            function = take()[1]
            expect("(")
            left = operand()
            expect(",")
            right = operand()
            expect(")")
            if function == "contains":
                return lambda r: str(right(r)).lower() in str(left(r) or "").lower()
            return lambda r: str(left(r) or "").lower().startswith(str(right(r)).lower())
        left = operand()
        kind, op = take()
        if op not in _COMPARISONS:
            raise ODataError(400, "BadRequest", f"Unknown operator {op!r} in $filter")
        right = operand()

        def compare(record: JSONObject) -> bool:
            actual, expected = _comparable(left(record), right(record))
            if op == "eq":
                return bool(actual == expected)
            if op == "ne":
                return bool(actual != expected)
            if actual is None or expected is None:
                return False
            try:
                if op == "gt":
                    return bool(actual > expected)
                if op == "ge":
                    return bool(actual >= expected)
                if op == "lt":
                    return bool(actual < expected)
                return bool(actual <= expected)
            except TypeError as exc:
                raise ODataError(
                    400, "BadRequest", f"Cannot compare {actual!r} with {expected!r}"
                ) from exc

        return compare

    def conjunction() -> Predicate:
        parts = [comparison()]
        while peek() == ("word", "and"):
            take()
            parts.append(comparison())
        return lambda record: all(p(record) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while peek() == ("word", "or"):
            take()
            parts.append(conjunction())
        return lambda record: any(p(record) for p in parts)

    predicate = disjunction()
    if position != len(tokens):
        raise ODataError(400, "BadRequest", f"Unexpected {tokens[position][1]!r} in $filter")
    return predicate


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass
class Company:
    """One company of the tenant's environment, with its records keyed by id."""

    id: str
    name: str
    currency: str = "USD"
    vendors: dict[str, JSONObject] = field(default_factory=dict)
    accounts: dict[str, JSONObject] = field(default_factory=dict)
    dimensions: dict[str, JSONObject] = field(default_factory=dict)
    dimension_values: dict[str, JSONObject] = field(default_factory=dict)
    invoices: dict[str, JSONObject] = field(default_factory=dict)
    invoice_lines: dict[str, list[JSONObject]] = field(default_factory=dict)
    journals: dict[str, JSONObject] = field(default_factory=dict)
    journal_lines: dict[str, list[JSONObject]] = field(default_factory=dict)
    ledger: list[JSONObject] = field(default_factory=list)
    attachments: dict[str, JSONObject] = field(default_factory=dict)
    exchange_rates: dict[str, JSONObject] = field(default_factory=dict)
    attachment_content: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def next_number(self, series: str, start: int) -> str:
        value = self.counters.get(series, start)
        self.counters[series] = value + 1
        return str(value)


@dataclass
class Client:
    """An Entra app registration with API.ReadWrite.All consented for the tenant."""

    client_id: str
    client_secret: str
    tenant_id: str


@dataclass
class Token:
    client_id: str
    tenant_id: str
    expires_at: datetime


Clock = Callable[[], datetime]

_ENTITY = re.compile(r"^(?P<name>[A-Za-z.]+)(?:\((?P<key>[^)]*)\))?$")


class BusinessCentralEmulator(Persistent):
    """Business Central API v2.0 and Entra ID client credentials, in memory. Serve `.app`."""

    persisted: ClassVar[tuple[str, ...]] = (
        "tenant_id",
        "companies",
        "clients",
        "tokens",
        "inspector_token",
        "demo_company",
        "disabled_clients",
        "_last_now",
    )

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        clock: Clock | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        inspector_token: str | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.max_page_size = max_page_size
        self.inspector_token = inspector_token or "inspect-" + secrets.token_urlsafe(16)
        self.tenant_id = str(uuid.uuid4())
        self.companies: dict[str, Company] = {}
        self.clients: dict[str, Client] = {}
        self.tokens: dict[str, Token] = {}
        self.disabled_clients: set[str] = set()
        self._last_now: datetime | None = None
        self._write_company: str | None = None
        injected = FaultInjector(
            cast(ASGIApp, self._build_app()),
            self.faults,
            server_error=self._fault_server_error,
            throttled=self._fault_throttled,
            exempt=("/_emulator",),
        )
        self.restored = self.restore_state(state_file)
        self.app: ASGIApp = self.persisting(_RevokeOnScript(injected, self))

    @property
    def api_root(self) -> str:
        return f"/v2.0/{self.tenant_id}/{ENVIRONMENT}/api/v2.0"

    @property
    def write_matches(self) -> dict[str, str]:
        """Request-line fragments of the unified writes (of the company seeded last), for
        scripting faults on exactly one of them."""
        company = f"POST {self.api_root}/companies({self._write_company})"
        return {
            "vendor": f"{company}/vendors?",
            "bill": f"{company}/purchaseInvoices?",
            "bill_payment": f"POST {self.api_root}/$batch?",
        }

    def now(self) -> datetime:
        """The clock, strictly increasing by at least a millisecond per read, so that records
        written one after another never share a lastModifiedDateTime."""
        now = self.clock()
        if self._last_now is not None and now <= self._last_now:
            now = self._last_now + timedelta(milliseconds=1)
        self._last_now = now
        return now

    # --- public control surface ------------------------------------------------------------

    def seed_demo_company(self, company_id: str | None = None) -> DemoCompany:
        """The demo company (home currency USD), an app registration and its secret."""
        now = self.now()
        company = Company(id=company_id or str(uuid.uuid4()), name="remit Demo Company (US)")
        self.companies[company.id] = company
        self._write_company = company.id
        accounts: dict[str, str] = {}
        for number, (name, category, sub_category) in _DEMO_ACCOUNTS.items():
            account_id = str(uuid.uuid4())
            accounts[name] = account_id
            self._store(
                company,
                company.accounts,
                {
                    "id": account_id,
                    "number": number,
                    "displayName": name,
                    "category": category,
                    "subCategory": sub_category,
                    "blocked": False,
                    "accountType": "Posting",
                    "directPosting": True,
                    "netChange": Decimal("0"),
                },
                now,
            )
        for code, (name, values) in _DEMO_DIMENSIONS.items():
            dimension_id = str(uuid.uuid4())
            self._store(
                company,
                company.dimensions,
                {"id": dimension_id, "code": code, "displayName": name},
                now,
            )
            for value_code, value_name in values:
                self._store(
                    company,
                    company.dimension_values,
                    {
                        "id": str(uuid.uuid4()),
                        "code": value_code,
                        "dimensionId": dimension_id,
                        "displayName": value_name,
                    },
                    now,
                )
        vendors: dict[str, str] = {}
        for number, (name, extra) in _DEMO_VENDORS.items():
            vendor = self._new_vendor(company, {"displayName": name, **extra}, now, number=number)
            vendors[name] = vendor["id"]
        for journal_code, (name, account) in _DEMO_JOURNALS.items():
            journal_id = str(uuid.uuid4())
            self._store(
                company,
                company.journals,
                {
                    "id": journal_id,
                    "code": journal_code,
                    "displayName": name,
                    "balancingAccountId": accounts[account],
                    "balancingAccountNumber": company.accounts[accounts[account]]["number"],
                },
                now,
            )
            company.journal_lines[journal_id] = []
        # BC's rates: exchangeRateAmount units of the currency are relationalExchangeRateAmount
        # units of the home currency, from startingDate on.
        for currency, days_ago, amount, relational in _DEMO_RATES:
            self._store(
                company,
                company.exchange_rates,
                {
                    "id": str(uuid.uuid4()),
                    "currencyCode": currency,
                    "startingDate": (now.date() - timedelta(days=days_ago)).isoformat(),
                    "exchangeRateAmount": Decimal(amount),
                    "relationalCurrencyCode": "",
                    "relationalExchangeRateAmount": Decimal(relational),
                },
                now,
            )
        # A few bills already in the books: posted and open, as a live company has them.
        for vendor_name, vendor_number, amount, account in _DEMO_BILLS:
            invoice = self._new_invoice(
                company,
                {
                    "vendorId": vendors[vendor_name],
                    "vendorInvoiceNumber": vendor_number,
                    "invoiceDate": (now.date() - timedelta(days=20)).isoformat(),
                    "dueDate": (now.date() + timedelta(days=10)).isoformat(),
                    "purchaseInvoiceLines": [
                        {
                            "lineType": "Account",
                            "lineObjectNumber": company.accounts[accounts[account]]["number"],
                            "description": "opening balance",
                            "quantity": 1,
                            "directUnitCost": Decimal(amount),
                        }
                    ],
                },
                now,
            )
            self._post_invoice(company, invoice["id"], now)
        secret = "bc-secret-" + secrets.token_urlsafe(24)
        client = Client(client_id=DEMO_CLIENT_ID, client_secret=secret, tenant_id=self.tenant_id)
        self.clients[client.client_id] = client
        # A first token, as the stack's link step would have got; renewals mint the next.
        access_token = "bc-at-" + secrets.token_urlsafe(32)
        self.tokens[access_token] = Token(client.client_id, self.tenant_id, now + TOKEN_LIFETIME)
        return DemoCompany(
            company_id=company.id,
            company_name=company.name,
            credentials={
                "tenant_id": self.tenant_id,
                "client_id": client.client_id,
                "client_secret": secret,
                "access_token": access_token,
                "expires_at": (now + TOKEN_LIFETIME).isoformat(),
            },
            settings={
                "environment": ENVIRONMENT,
                "bank_account_id": accounts["Operating Bank"],
                "card_account_id": accounts["Company Card"],
                "ap_account_id": accounts["Accounts Payable"],
                "home_currency": company.currency,
            },
            inspector_token=self.inspector_token,
        )

    def revoke_client(self, client_id: str) -> None:
        """An administrator disables the app in Business Central: its tokens are refused and
        Entra issues it no more for this tenant."""
        self.disabled_clients.add(client_id)

    def revoke_token(self, token: str) -> None:
        issued = self.tokens.get(token)
        if issued is not None:
            self.revoke_client(issued.client_id)

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the next call must renew)."""
        for token in self.tokens.values():
            token.expires_at = self.clock() - timedelta(seconds=1)

    # --- app -----------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
                Route("/_emulator/faults", self._control_faults, methods=["GET", "PUT"]),
                Route("/_emulator/apps", self._register_app, methods=["POST"]),
                Route(
                    "/v2.0/{tenant}/{environment}/api/v2.0/{rest:path}",
                    self._api,
                    methods=["GET", "POST", "PATCH", "DELETE"],
                ),
            ]
        )

    def _fault_server_error(self) -> FaultResponse:
        return (
            503,
            [(b"content-type", b"application/json")],
            _error_body("Unavailable", "The service is temporarily unavailable."),
        )

    def _fault_throttled(self, retry_after: float) -> FaultResponse:
        seconds = max(1, int(-(-retry_after // 1)))
        return (
            429,
            [(b"content-type", b"application/json"), (b"retry-after", str(seconds).encode())],
            _error_body(
                "Application_TooManyRequests",
                "Rate limit exceeded: too many requests in the 5-minute window.",
            ),
        )

    async def _control_faults(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.inspector_token}":
            return _response(401, {"error": "inspector token required"})
        if request.method == "PUT":
            self.faults.apply_json(loads(await request.body() or b"{}"))
        return _response(200, self.faults.to_json())

    async def _register_app(self, request: Request) -> Response:
        """What an administrator does in Entra and Business Central by hand: register an app,
        grant it API.ReadWrite.All, consent, and add it to Business Central's app list."""
        if request.headers.get("authorization") != f"Bearer {self.inspector_token}":
            return _response(401, {"error": "inspector token required"})
        client = Client(
            client_id=str(uuid.uuid4()),
            client_secret="bc-secret-" + secrets.token_urlsafe(24),
            tenant_id=self.tenant_id,
        )
        self.clients[client.client_id] = client
        return _response(
            201,
            {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "tenant_id": client.tenant_id,
            },
        )

    # --- Entra ID ------------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}

        def refuse(status: int, error: str, description: str) -> Response:
            return _response(
                status,
                {
                    "error": error,
                    "error_description": f"{description}\r\nTrace ID: {uuid.uuid4()}",
                    "error_codes": [],
                },
            )

        tenant = request.path_params["tenant"]
        if form.get("grant_type") != "client_credentials":
            return refuse(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            )
        client = self.clients.get(form.get("client_id", ""))
        if (
            client is None
            or client.client_id in self.disabled_clients
            or tenant not in (client.tenant_id, "organizations")
        ):
            return refuse(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                f"found in the directory '{tenant}'.",
            )
        if not secrets.compare_digest(form.get("client_secret", ""), client.client_secret):
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if form.get("scope") != SCOPE:
            return refuse(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {form.get('scope')!r} is not "
                f"valid. Client credential flows must have a scope value with /.default.",
            )
        # Tokens long expired are forgotten, so a long-running stack does not keep them all.
        horizon = self.clock() - timedelta(days=1)
        for stale in [t for t, issued in self.tokens.items() if issued.expires_at < horizon]:
            del self.tokens[stale]
        token = "bc-at-" + secrets.token_urlsafe(32)
        self.tokens[token] = Token(
            client.client_id, client.tenant_id, self.clock() + TOKEN_LIFETIME
        )
        return _response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": int(TOKEN_LIFETIME.total_seconds()),
                "ext_expires_in": int(TOKEN_LIFETIME.total_seconds()),
                "access_token": token,
            },
        )

    # --- API dispatch ----------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        call = Call(
            request.method,
            request.url,
            request.headers,
            await request.body(),
            rest=request.path_params["rest"],
            environment=request.path_params["environment"],
        )
        try:
            header = request.headers.get("authorization", "")
            if header == f"Bearer {self.inspector_token}":
                # The stack's read-only token: anything may be read, nothing written.
                if call.method != "GET":
                    raise ODataError(
                        403,
                        "Authorization_InsufficientPermissions",
                        "The inspector token may read, not write.",
                    )
            else:
                self._authenticate(header, request.path_params)
            if call.path_params["environment"] != ENVIRONMENT:
                raise ODataError(
                    404,
                    "BadRequest_NotFound",
                    f"The environment {call.path_params['environment']!r} does not exist.",
                )
            if call.path_params["rest"] == "$batch" and call.method == "POST":
                answer = await self._batch(call)
            else:
                answer = await self._dispatch(call)
        except ODataError as error:
            answer = _error_response(error)
        # The server's clock, as every HTTP answer carries it (mirror watermarks read it).
        answer.headers["date"] = email.utils.format_datetime(self.clock(), usegmt=True)
        return answer

    async def _batch(self, call: Call) -> Response:
        """OData JSON batch. With `Isolation: snapshot` the batch is one transaction: the first
        failing request rolls every change of the batch back (and the rest is not run)."""
        body = self._object(await self._body(call))
        requests = body.get("requests")
        if not isinstance(requests, list) or not 0 < len(requests) <= 100:
            raise ODataError(400, "BadRequest", "A batch holds 1 to 100 requests.")
        atomic = call.headers.get("isolation", "").lower() == "snapshot"
        saved = copy.deepcopy(self.companies) if atomic else None
        responses: list[JSONObject] = []
        for item in requests:
            item = self._object(item)
            url = str(item.get("url") or "")
            rest = url.split("/api/v2.0/", 1)[-1].lstrip("/")
            path, _, query = rest.partition("?")
            headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            headers.setdefault("authorization", call.headers.get("authorization", ""))
            raw = item.get("body")
            content = b""
            if raw is not None:
                content = dumps(raw).encode()
                headers.setdefault("content-type", "application/json")
            sub = Call(
                str(item.get("method") or "GET").upper(),
                call.url.replace(path=f"{self.api_root}/{path}", query=query),
                Headers(headers=headers),
                content,
                rest=path,
                environment=ENVIRONMENT,
            )
            try:
                answer = await self._dispatch(sub)
                status, payload = answer.status_code, bytes(answer.body)
            except ODataError as error:
                status, payload = error.status, _error_body(error.code, error.message)
            responses.append(
                {
                    "id": str(item.get("id") or len(responses) + 1),
                    "status": status,
                    "headers": {"content-type": "application/json"},
                    **({"body": loads(payload)} if payload else {}),
                }
            )
            if status >= 400 and atomic:
                assert saved is not None
                self.companies = saved
                break
        return _response(200, {"responses": responses})

    def _authenticate(self, header: str, path_params: Any) -> None:
        token = self.tokens.get(header.removeprefix("Bearer ").strip())
        if not header.startswith("Bearer ") or token is None:
            raise ODataError(
                401,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
            )
        if token.expires_at <= self.clock():
            raise ODataError(
                401, "Authentication_InvalidCredentials", "The access token has expired."
            )
        if token.client_id in self.disabled_clients:
            raise ODataError(
                401,
                "Authentication_InvalidCredentials",
                "The Microsoft Entra application is disabled in Business Central.",
            )
        if token.tenant_id != path_params["tenant"]:
            raise ODataError(
                401,
                "Authentication_InvalidCredentials",
                "The credentials provided are incorrect for this tenant.",
            )

    async def _dispatch(self, request: Call) -> Response:
        segments = [s for s in request.path_params["rest"].split("/") if s]
        parsed: list[tuple[str, str | None]] = []
        for segment in segments:
            match = _ENTITY.match(segment)
            if match is None:
                raise ODataError(404, "BadRequest_NotFound", f"No resource {segment!r}.")
            key = match.group("key")
            parsed.append((match.group("name"), key.strip("'").lower() if key else None))
        if not parsed or parsed[0][0] != "companies":
            if parsed == [("companies", None)]:
                pass
            raise ODataError(404, "BadRequest_NotFound", "Start the path with companies({id}).")
        company_key = parsed[0][1]
        if company_key is None:
            if len(parsed) == 1 and request.method == "GET":
                return self._collection(
                    request,
                    [
                        {"id": c.id, "name": c.name, "displayName": c.name}
                        for c in self.companies.values()
                    ],
                )
            raise ODataError(400, "BadRequest", "Name the company: companies({id}).")
        company = self.companies.get(company_key)
        if company is None:
            raise ODataError(
                404, "BadRequest_NotFound", f"The company {company_key!r} does not exist."
            )
        now = self.now()
        route = parsed[1:]
        names = tuple(name for name, _ in route)
        keys = [key for _, key in route]
        method = request.method
        body = await self._body(request) if method in ("POST", "PATCH") else None

        if names == ("companyInformation",) and method == "GET":
            return self._collection(
                request,
                [{"id": company.id, "displayName": company.name, "currencyCode": company.currency}],
            )
        simple = {
            "vendors": company.vendors,
            "accounts": company.accounts,
            "dimensions": company.dimensions,
            "dimensionValues": company.dimension_values,
            "vendorPaymentJournals": company.journals,
            "currencyExchangeRates": company.exchange_rates,
        }
        if len(names) == 1 and names[0] in simple:
            records = simple[names[0]]
            if keys[0] is None:
                if method == "GET":
                    return self._collection(request, list(records.values()))
                if method == "POST" and names[0] == "vendors":
                    vendor = self._new_vendor(company, self._object(body), now)
                    return self._entity(201, company, vendor)
                raise self._not_allowed(method, names[0])
            record = self._find(records, keys[0], names[0])
            if method == "GET":
                return self._entity(200, company, record)
            if method == "PATCH" and names[0] == "vendors":
                self._check_etag(request, company, record)
                self._patch_vendor(company, record, self._object(body), now)
                return self._entity(200, company, record)
            raise self._not_allowed(method, names[0])
        if names == ("dimensions", "dimensionValues") and method == "GET":
            self._find(company.dimensions, keys[0], "dimensions")
            values = [v for v in company.dimension_values.values() if v["dimensionId"] == keys[0]]
            return self._collection(request, values)
        if names == ("generalLedgerEntries",) and method == "GET" and keys[0] is None:
            return self._collection(request, list(company.ledger))
        if names[:1] == ("purchaseInvoices",):
            return await self._invoices(request, company, names, keys, body, now)
        if names == ("vendorPaymentJournals", "vendorPayments"):
            journal = self._find(company.journals, keys[0], "vendorPaymentJournals")
            lines = company.journal_lines.setdefault(journal["id"], [])
            if keys[1] is None and method == "GET":
                return self._collection(request, lines)
            if keys[1] is None and method == "POST":
                line = self._new_payment_line(company, journal, self._object(body), now)
                return self._entity(201, company, line)
            if keys[1] is not None and method in ("GET", "DELETE"):
                target = next((ln for ln in lines if ln["id"] == keys[1]), None)
                if target is None:
                    raise ODataError(
                        404, "BadRequest_NotFound", f"The vendorPayment {keys[1]!r} does not exist."
                    )
                if method == "GET":
                    return self._entity(200, company, target)
                self._check_etag(request, company, target)
                lines.remove(target)
                return _response(204)
            raise self._not_allowed(method, "vendorPayments")
        if names == ("journals", "Microsoft.NAV.post") and method == "POST":
            journal = self._find(company.journals, keys[0], "journals")
            self._post_journal(company, journal, now)
            return _response(204)
        if names[:1] == ("attachments",):
            return await self._attachments(request, company, names, keys, body, now)
        raise ODataError(
            404,
            "BadRequest_NotFound",
            f"The request URL {request.url.path!r} does not match a resource of this API.",
        )

    async def _body(self, request: Call) -> Any:
        raw = await request.body()
        if not raw:
            return None
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                return loads(raw)
            except ValueError as exc:
                raise ODataError(
                    400, "BadRequest", f"The request body is not valid JSON: {exc}"
                ) from exc
        return raw

    @staticmethod
    def _object(body: Any) -> JSONObject:
        if not isinstance(body, dict):
            raise ODataError(400, "BadRequest", "The request body must be a JSON object.")
        return body

    @staticmethod
    def _not_allowed(method: str, name: str) -> ODataError:
        return ODataError(
            405, "BadRequest_MethodNotAllowed", f"'{method}' is not allowed on {name}."
        )

    @staticmethod
    def _find(records: dict[str, JSONObject], key: str | None, name: str) -> JSONObject:
        record = records.get(key or "")
        if record is None:
            raise ODataError(
                404,
                "BadRequest_NotFound",
                f"The {name} with id {key!r} does not exist. Identification fields and values: "
                f"Id='{key}'",
            )
        return record

    # --- representation ------------------------------------------------------------------------

    def _store(
        self, company: Company, records: dict[str, JSONObject], record: JSONObject, now: datetime
    ) -> JSONObject:
        record["lastModifiedDateTime"] = _now_text(now)
        records[record["id"]] = record
        self._touch(company, record, now)
        return record

    @staticmethod
    def _touch(company: Company, record: JSONObject, now: datetime) -> None:
        record["lastModifiedDateTime"] = _now_text(now)
        company.versions[record["id"]] = company.versions.get(record["id"], 0) + 1

    @staticmethod
    def _etag(company: Company, record: JSONObject) -> str:
        # BC's ETags are opaque base64 of the row version; what matters is that they change.
        version = f"44;{record['id']}={company.versions.get(record['id'], 1)};00;"
        return 'W/"' + base64.b64encode(f"'{version}'".encode()).decode() + '"'

    def _view(self, company: Company, record: JSONObject) -> JSONObject:
        shown = {"@odata.etag": self._etag(company, record)}
        shown.update({k: v for k, v in record.items() if not k.startswith("_")})
        return shown

    def _entity(self, status: int, company: Company, record: JSONObject) -> Response:
        return _response(status, self._view(company, record), {"ETag": self._etag(company, record)})

    def _collection(
        self,
        request: Call,
        records: list[JSONObject],
        *,
        expand: Callable[[JSONObject, str], JSONObject] | None = None,
    ) -> Response:
        params = request.query_params
        selected = records
        if params.get("$filter"):
            predicate = parse_filter(params["$filter"])
            selected = [r for r in selected if predicate(r)]
        if params.get("$orderby"):
            field_name, _, direction = params["$orderby"].partition(" ")
            selected = sorted(
                selected, key=lambda r: str(r.get(field_name, "")), reverse=direction == "desc"
            )
        skip = self._int_param(params, "$skip", 0)
        top = self._int_param(params, "$top", None)
        offset = self._int_param(params, "$skiptoken", skip)
        end = len(selected) if top is None else min(len(selected), skip + top)
        page_size = self._page_size(request)
        page = selected[offset : min(end, offset + page_size)]
        company = self._company_of(request)
        items = [self._view(company, r) if company else dict(r) for r in page]
        if expand is not None and params.get("$expand"):
            items = [expand(item, params["$expand"]) for item in items]
        payload: JSONObject = {
            "@odata.context": f"{request.url.path}/$metadata",
            "value": items,
        }
        if offset + page_size < end:
            query = {k: v for k, v in params.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(offset + page_size)
            encoded = urlencode(query, quote_via=quote, safe="$'(),")
            payload["@odata.nextLink"] = str(request.url.replace(query=encoded))
        return _response(200, payload)

    def _company_of(self, request: Call) -> Company | None:
        match = re.match(r"companies\(([^)]*)\)", request.path_params["rest"])
        return self.companies.get(match.group(1).lower()) if match else None

    @staticmethod
    def _int_param(params: Any, name: str, default: int | None) -> Any:
        raw = params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise ODataError(400, "BadRequest", f"{name} must be a whole number.") from exc
        if value < 0:
            raise ODataError(400, "BadRequest", f"{name} must not be negative.")
        return value

    def _page_size(self, request: Call) -> int:
        match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
        wanted = int(match.group(1)) if match else self.max_page_size
        return max(1, min(wanted, self.max_page_size))

    def _check_etag(self, request: Call, company: Company, record: JSONObject) -> None:
        given = request.headers.get("if-match")
        if not given:
            raise ODataError(
                400,
                "BadRequest_InvalidToken",
                "Could not validate the client concurrency token required by the service. "
                "Please provide a valid token in the client request.",
            )
        if given != "*" and given != self._etag(company, record):
            raise ODataError(
                412, "Request_EntityChanged", "Another user has already changed the record."
            )

    # --- vendors -------------------------------------------------------------------------------

    _VENDOR_FIELDS: ClassVar[dict[str, type]] = {
        "displayName": str,
        "email": str,
        "taxRegistrationNumber": str,
        "currencyCode": str,
        "phoneNumber": str,
        "website": str,
        "addressLine1": str,
        "addressLine2": str,
        "city": str,
        "state": str,
        "country": str,
        "postalCode": str,
        "blocked": str,
        "taxLiable": bool,
    }

    def _validated_vendor_fields(self, body: JSONObject) -> JSONObject:
        values: JSONObject = {}
        for name, value in body.items():
            if name.startswith("@odata") or name in ("id", "number"):
                continue
            kind = self._VENDOR_FIELDS.get(name)
            if kind is None:
                raise ODataError(
                    400,
                    "BadRequest_PropertyNotFound",
                    f"The property '{name}' does not exist on type 'Microsoft.NAV.vendor'.",
                )
            if not isinstance(value, kind):
                raise ODataError(
                    400, "BadRequest", f"The value of '{name}' must be a {kind.__name__}."
                )
            values[name] = value
        if "displayName" in values and len(values["displayName"]) > 100:
            raise ODataError(
                400,
                "BadRequest",
                "The length of the string is 101, but it must be less than or equal to 100 "
                "characters. Value: displayName",
            )
        if values.get("blocked", " ") not in (" ", "", "Payment", "All"):
            raise ODataError(400, "BadRequest", "blocked must be ' ', 'Payment' or 'All'.")
        if "currencyCode" in values and values["currencyCode"] not in ("", "USD", *_CURRENCIES):
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                f"The field Currency Code of table Vendor contains a value "
                f"({values['currencyCode']}) that cannot be found in the related table "
                "(Currency).",
            )
        return values

    def _new_vendor(
        self, company: Company, body: JSONObject, now: datetime, *, number: str | None = None
    ) -> JSONObject:
        values = self._validated_vendor_fields(body)
        if not values.get("displayName"):
            raise ODataError(
                400, "BadRequest_RequiredParamNotProvided", "displayName must be given."
            )
        number = number or body.get("number") or company.next_number("vendor", 50000)
        if any(v["number"] == number for v in company.vendors.values()):
            raise ODataError(
                400,
                "Internal_EntityWithSameKeyExists",
                f"The record in table Vendor already exists. Identification fields and values: "
                f"No.='{number}'",
            )
        vendor: JSONObject = {
            "id": str(uuid.uuid4()),
            "number": number,
            "displayName": "",
            "addressLine1": "",
            "city": "",
            "country": "",
            "email": "",
            "taxRegistrationNumber": "",
            "currencyCode": "",
            "blocked": " ",
            "taxLiable": False,
            "balance": Decimal("0"),
        }
        vendor.update(values)
        # Blank is the home currency, which the API shows by its code.
        vendor["currencyCode"] = vendor["currencyCode"] or company.currency
        return self._store(company, company.vendors, vendor, now)

    def _patch_vendor(
        self, company: Company, vendor: JSONObject, body: JSONObject, now: datetime
    ) -> None:
        values = self._validated_vendor_fields(body)
        if "displayName" in values and not values["displayName"]:
            raise ODataError(400, "BadRequest", "displayName must not be empty.")
        vendor.update(values)
        vendor["currencyCode"] = vendor["currencyCode"] or company.currency
        self._touch(company, vendor, now)

    # --- purchase invoices ---------------------------------------------------------------------

    async def _invoices(
        self,
        request: Call,
        company: Company,
        names: tuple[str, ...],
        keys: list[str | None],
        body: Any,
        now: datetime,
    ) -> Response:
        method = request.method
        if names == ("purchaseInvoices",) and keys[0] is None:
            if method == "GET":
                return self._collection(
                    request,
                    list(company.invoices.values()),
                    expand=lambda item, what: self._expand_invoice(company, item, what),
                )
            if method == "POST":
                invoice = self._new_invoice(company, self._object(body), now)
                return _response(
                    201,
                    self._expand_invoice(
                        company, self._view(company, invoice), "purchaseInvoiceLines"
                    ),
                    {"ETag": self._etag(company, invoice)},
                )
            raise self._not_allowed(method, "purchaseInvoices")
        invoice = self._find(company.invoices, keys[0], "purchaseInvoices")
        if names == ("purchaseInvoices",):
            if method == "GET":
                shown = self._view(company, invoice)
                if request.query_params.get("$expand"):
                    shown = self._expand_invoice(company, shown, request.query_params["$expand"])
                return _response(200, shown, {"ETag": self._etag(company, invoice)})
            if method == "PATCH":
                self._check_etag(request, company, invoice)
                self._require_draft(invoice, "changed")
                self._patch_invoice(company, invoice, self._object(body), now)
                return self._entity(200, company, invoice)
            if method == "DELETE":
                self._check_etag(request, company, invoice)
                self._require_draft(invoice, "deleted")
                del company.invoices[invoice["id"]]
                del company.invoice_lines[invoice["id"]]
                return _response(204)
            raise self._not_allowed(method, "purchaseInvoices")
        if names == ("purchaseInvoices", "Microsoft.NAV.post") and method == "POST":
            self._post_invoice(company, invoice["id"], now)
            return _response(204)
        lines = company.invoice_lines[invoice["id"]]
        if names == ("purchaseInvoices", "purchaseInvoiceLines"):
            if keys[1] is None and method == "GET":
                return self._collection(
                    request,
                    lines,
                    expand=lambda item, what: self._expand_line(company, item, what),
                )
            if keys[1] is None and method == "POST":
                self._require_draft(invoice, "changed")
                line = self._new_line(company, invoice, self._object(body), now)
                self._total(company, invoice, now)
                return self._entity(201, company, line)
            raise self._not_allowed(method, "purchaseInvoiceLines")
        if names == ("purchaseInvoices", "purchaseInvoiceLines", "dimensionSetLines"):
            target = next((ln for ln in lines if ln["id"] == keys[1]), None)
            if target is None:
                raise ODataError(404, "BadRequest_NotFound", f"No line {keys[1]!r}.")
            if method == "GET" and keys[2] is None:
                return self._collection(request, target["_dimensions"])
            if method == "POST" and keys[2] is None:
                self._require_draft(invoice, "changed")
                set_line = self._new_dimension_set_line(company, self._object(body))
                if any(d["id"] == set_line["id"] for d in target["_dimensions"]):
                    raise ODataError(
                        400,
                        "Internal_EntityWithSameKeyExists",
                        "The record in table Dimension Set Entry already exists.",
                    )
                target["_dimensions"].append(set_line)
                self._touch(company, invoice, now)
                return _response(201, set_line)
            raise self._not_allowed(method, "dimensionSetLines")
        raise ODataError(404, "BadRequest_NotFound", "No such resource under purchaseInvoices.")

    def _expand_invoice(self, company: Company, shown: JSONObject, what: str) -> JSONObject:
        if "purchaseInvoiceLines" in what:
            nested = "dimensionSetLines" in what
            shown["purchaseInvoiceLines"] = [
                self._expand_line(company, self._view(company, line), "dimensionSetLines")
                if nested
                else self._view(company, line)
                for line in company.invoice_lines.get(shown["id"], [])
            ]
        return shown

    def _expand_line(self, company: Company, shown: JSONObject, what: str) -> JSONObject:
        if "dimensionSetLines" in what:
            line = next(
                ln
                for lines in company.invoice_lines.values()
                for ln in lines
                if ln["id"] == shown["id"]
            )
            shown["dimensionSetLines"] = list(line["_dimensions"])
        return shown

    @staticmethod
    def _require_draft(invoice: JSONObject, what: str) -> None:
        if invoice["status"] != "Draft":
            raise ODataError(
                400,
                "Application_DialogException",
                f"The purchase invoice {invoice['number']} is posted ({invoice['status']}) and "
                f"cannot be {what}. The action can be applied to a draft invoice only.",
            )

    _INVOICE_FIELDS: ClassVar[tuple[str, ...]] = (
        "invoiceDate",
        "postingDate",
        "dueDate",
        "vendorInvoiceNumber",
        "currencyCode",
        "pricesIncludeTax",
    )

    def _new_invoice(self, company: Company, body: JSONObject, now: datetime) -> JSONObject:
        vendor = None
        if body.get("vendorId"):
            vendor = company.vendors.get(str(body["vendorId"]).lower())
        elif body.get("vendorNumber"):
            vendor = next(
                (v for v in company.vendors.values() if v["number"] == body["vendorNumber"]),
                None,
            )
        else:
            raise ODataError(
                400,
                "BadRequest_RequiredParamNotProvided",
                "You must specify a vendor id or a vendor number to create a purchase invoice.",
            )
        if vendor is None:
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                f"The field Buy-from Vendor No. of table Purchase Header contains a value "
                f"({body.get('vendorNumber') or body.get('vendorId')}) that cannot be found in "
                "the related table (Vendor).",
            )
        if vendor["blocked"] == "All":
            raise ODataError(
                400,
                "Application_DialogException",
                f"You cannot create this type of document when Vendor {vendor['number']} is "
                "blocked with type All",
            )
        today = now.date().isoformat()
        invoice: JSONObject = {
            "id": str(uuid.uuid4()),
            "number": company.next_number("purchase-invoice", 108001),
            "invoiceDate": today,
            "postingDate": today,
            "dueDate": today,
            "vendorInvoiceNumber": "",
            "vendorId": vendor["id"],
            "vendorNumber": vendor["number"],
            "vendorName": vendor["displayName"],
            "payToVendorId": vendor["id"],
            "currencyCode": vendor["currencyCode"],
            "pricesIncludeTax": False,
            "discountAmount": Decimal("0"),
            "totalAmountExcludingTax": Decimal("0"),
            "totalTaxAmount": Decimal("0"),
            "totalAmountIncludingTax": Decimal("0"),
            "_remaining": Decimal("0"),
            "status": "Draft",
        }
        for name in self._INVOICE_FIELDS:
            if name in body:
                invoice[name] = self._invoice_value(name, body[name])
        # The home currency is blank in BC (shown as its code); others must be set up.
        if invoice["currencyCode"] in ("", company.currency):
            invoice["currencyCode"] = company.currency
        elif invoice["currencyCode"] not in _CURRENCIES:
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                f"The field Currency Code of table Purchase Header contains a value "
                f"({invoice['currencyCode']}) that cannot be found in the related table "
                "(Currency).",
            )
        if len(str(invoice["vendorInvoiceNumber"])) > 35:
            raise ODataError(
                400,
                "BadRequest",
                "The length of the string is more than 35 characters. Value: vendorInvoiceNumber",
            )
        if "postingDate" not in body:
            invoice["postingDate"] = invoice["invoiceDate"]
        unknown = (
            set(body)
            - {*self._INVOICE_FIELDS, "vendorId", "vendorNumber"}
            - {"purchaseInvoiceLines"}
        )
        if unknown:
            raise ODataError(
                400,
                "BadRequest_PropertyNotFound",
                f"The property '{sorted(unknown)[0]}' does not exist on type "
                "'Microsoft.NAV.purchaseInvoice'.",
            )
        lines = body.get("purchaseInvoiceLines") or []
        if not isinstance(lines, list):
            raise ODataError(400, "BadRequest", "purchaseInvoiceLines must be an array.")
        company.invoice_lines[invoice["id"]] = []
        # Deep insert is one transaction: a bad line leaves no invoice behind.
        built = []
        for raw in lines:
            built.append(self._line_values(company, self._object(raw)))
        self._store(company, company.invoices, invoice, now)
        for values in built:
            self._add_line(company, invoice, values, now)
        self._total(company, invoice, now)
        return invoice

    @staticmethod
    def _invoice_value(name: str, value: Any) -> Any:
        if name in ("invoiceDate", "postingDate", "dueDate"):
            try:
                return date.fromisoformat(str(value)).isoformat()
            except ValueError as exc:
                raise ODataError(
                    400, "BadRequest", f"Cannot convert the literal '{value}' to Edm.Date."
                ) from exc
        if name == "pricesIncludeTax":
            return bool(value)
        return str(value)

    def _patch_invoice(
        self, company: Company, invoice: JSONObject, body: JSONObject, now: datetime
    ) -> None:
        for name, value in body.items():
            if name not in self._INVOICE_FIELDS:
                raise ODataError(
                    400, "BadRequest_PropertyNotFound", f"The property '{name}' cannot be set."
                )
            invoice[name] = self._invoice_value(name, value)
        self._touch(company, invoice, now)

    def _line_values(self, company: Company, raw: JSONObject) -> JSONObject:
        line_type = raw.get("lineType", "Comment")
        if line_type not in ("Comment", "Account"):
            raise ODataError(
                400,
                "BadRequest",
                f"The emulator takes lineType 'Account' or 'Comment', not {line_type!r}.",
            )
        values: JSONObject = {
            "lineType": line_type,
            "description": str(raw.get("description") or ""),
            "accountId": EMPTY_GUID,
            "lineObjectNumber": "",
            "quantity": Decimal("0"),
            "directUnitCost": Decimal("0"),
            "amountExcludingTax": Decimal("0"),
            "totalTaxAmount": Decimal("0"),
            "amountIncludingTax": Decimal("0"),
            "taxCode": "",
        }
        if len(values["description"]) > 100:
            raise ODataError(
                400,
                "BadRequest",
                "The length of the string is more than 100 characters. Value: description",
            )
        if line_type == "Comment":
            return values
        account = None
        if raw.get("accountId"):
            account = company.accounts.get(str(raw["accountId"]).lower())
        elif raw.get("lineObjectNumber"):
            account = next(
                (a for a in company.accounts.values() if a["number"] == raw["lineObjectNumber"]),
                None,
            )
        if account is None:
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                f"The field No. of table Purchase Line contains a value "
                f"({raw.get('accountId') or raw.get('lineObjectNumber') or ''}) that cannot be "
                "found in the related table (G/L Account).",
            )
        if account["blocked"]:
            raise ODataError(
                400,
                "Application_DialogException",
                f"Blocked must be equal to 'No' in G/L Account: No.={account['number']}.",
            )
        try:
            quantity = Decimal(str(raw.get("quantity", 1)))
            cost = Decimal(str(raw.get("directUnitCost", raw.get("unitCost", 0))))
        except InvalidOperation as exc:
            raise ODataError(400, "BadRequest", "quantity and directUnitCost are numbers.") from exc
        amount = _money(quantity * cost)
        values.update(
            accountId=account["id"],
            lineObjectNumber=account["number"],
            quantity=quantity,
            directUnitCost=cost,
            amountExcludingTax=amount,
            amountIncludingTax=amount,
        )
        return values

    def _add_line(
        self, company: Company, invoice: JSONObject, values: JSONObject, now: datetime
    ) -> JSONObject:
        lines = company.invoice_lines[invoice["id"]]
        line: JSONObject = {
            "id": str(uuid.uuid4()),
            "documentId": invoice["id"],
            "sequence": 10000 * (len(lines) + 1),
            **values,
            "_dimensions": [],
        }
        lines.append(line)
        self._touch(company, line, now)
        return line

    def _new_line(
        self, company: Company, invoice: JSONObject, body: JSONObject, now: datetime
    ) -> JSONObject:
        return self._add_line(company, invoice, self._line_values(company, body), now)

    def _new_dimension_set_line(self, company: Company, body: JSONObject) -> JSONObject:
        dimension = company.dimensions.get(str(body.get("id", "")).lower())
        if dimension is None and body.get("code"):
            dimension = next(
                (d for d in company.dimensions.values() if d["code"] == body["code"]), None
            )
        if dimension is None:
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                f"The dimension {body.get('id') or body.get('code')!r} does not exist.",
            )
        value = company.dimension_values.get(str(body.get("valueId", "")).lower())
        if value is None or value["dimensionId"] != dimension["id"]:
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                f"The dimension value {body.get('valueId')!r} is not a value of dimension "
                f"{dimension['code']}.",
            )
        return {
            "id": dimension["id"],
            "code": dimension["code"],
            "displayName": dimension["displayName"],
            "valueId": value["id"],
            "valueCode": value["code"],
            "valueDisplayName": value["displayName"],
            "parentType": "Purchase Invoice Line",
        }

    def _total(self, company: Company, invoice: JSONObject, now: datetime) -> None:
        lines = company.invoice_lines[invoice["id"]]
        total = sum((ln["amountIncludingTax"] for ln in lines), Decimal("0"))
        invoice["totalAmountExcludingTax"] = total
        invoice["totalAmountIncludingTax"] = total
        invoice["totalTaxAmount"] = Decimal("0")
        if invoice["status"] == "Draft":
            invoice["_remaining"] = total
        self._touch(company, invoice, now)

    def _post_invoice(self, company: Company, invoice_id: str, now: datetime) -> None:
        invoice = company.invoices[invoice_id]
        if invoice["status"] != "Draft":
            raise ODataError(
                400,
                "Application_DialogException",
                "The action can be applied to a draft invoice only.",
            )
        lines = [ln for ln in company.invoice_lines[invoice_id] if ln["lineType"] != "Comment"]
        if not lines:
            raise ODataError(400, "Application_DialogException", "There is nothing to post.")
        if not invoice["vendorInvoiceNumber"]:
            raise ODataError(
                400,
                "Application_DialogException",
                "You need to enter the document number of the document from the vendor in the "
                "Vendor Invoice No. field, so that this document stays linked to the original.",
            )
        if invoice["totalAmountIncludingTax"] < 0:
            raise ODataError(
                400, "Application_DialogException", "The total amount must not be negative."
            )
        # BC keeps Vendor Invoice No. unique per vendor among posted invoices.
        for other in company.invoices.values():
            if (
                other is not invoice
                and other["status"] != "Draft"
                and other["vendorId"] == invoice["vendorId"]
                and other["vendorInvoiceNumber"] == invoice["vendorInvoiceNumber"]
            ):
                raise ODataError(
                    400,
                    "Application_DialogException",
                    f"Purchase Invoice {other['number']} already exists for this vendor with "
                    f"Vendor Invoice No. {invoice['vendorInvoiceNumber']}.",
                )
        total = invoice["totalAmountIncludingTax"]
        invoice["_remaining"] = total
        invoice["status"] = "Open" if total > 0 else "Paid"
        vendor = company.vendors[invoice["vendorId"]]
        vendor["balance"] = vendor["balance"] + total
        self._touch(company, invoice, now)

    # --- payments --------------------------------------------------------------------------------

    def _new_payment_line(
        self, company: Company, journal: JSONObject, body: JSONObject, now: datetime
    ) -> JSONObject:
        vendor = company.vendors.get(str(body.get("vendorId", "")).lower())
        if vendor is None and body.get("vendorNumber"):
            vendor = next(
                (v for v in company.vendors.values() if v["number"] == body["vendorNumber"]),
                None,
            )
        if vendor is None:
            raise ODataError(
                400,
                "Internal_InvalidTableRelation",
                "The field Account No. of table Gen. Journal Line contains a value that cannot "
                "be found in the related table (Vendor).",
            )
        try:
            amount = Decimal(str(body.get("amount", 0)))
        except InvalidOperation as exc:
            raise ODataError(400, "BadRequest", "amount must be a number.") from exc
        invoice = None
        if body.get("appliesToInvoiceId"):
            invoice = company.invoices.get(str(body["appliesToInvoiceId"]).lower())
            if invoice is None or invoice["status"] == "Draft":
                raise ODataError(
                    400,
                    "Application_DialogException",
                    f"The posted purchase invoice {body['appliesToInvoiceId']} does not exist.",
                )
            if invoice["vendorId"] != vendor["id"]:
                raise ODataError(
                    400,
                    "Application_DialogException",
                    f"Purchase invoice {invoice['number']} is not from vendor {vendor['number']}.",
                )
        lines = company.journal_lines[journal["id"]]
        line: JSONObject = {
            "id": str(uuid.uuid4()),
            "journalId": journal["id"],
            "journalDisplayName": journal["code"],
            "lineNumber": 10000 * (len(lines) + 1),
            "vendorId": vendor["id"],
            "vendorNumber": vendor["number"],
            "postingDate": str(body.get("postingDate") or now.date().isoformat()),
            "documentNumber": str(body.get("documentNumber") or ""),
            "externalDocumentNumber": str(body.get("externalDocumentNumber") or ""),
            "amount": amount,
            "appliesToInvoiceId": invoice["id"] if invoice else EMPTY_GUID,
            "appliesToInvoiceNumber": invoice["number"] if invoice else "",
            "description": str(body.get("description") or ""),
            "comment": str(body.get("comment") or ""),
        }
        if len(line["documentNumber"]) > 20:
            raise ODataError(
                400,
                "BadRequest",
                "The length of the string is more than 20 characters. Value: documentNumber",
            )
        lines.append(line)
        self._touch(company, line, now)
        return line

    def _post_journal(self, company: Company, journal: JSONObject, now: datetime) -> None:
        lines = company.journal_lines[journal["id"]]
        if not lines:
            raise ODataError(400, "Application_DialogException", "There is nothing to post.")
        # Posting is all or nothing: check every line before any ledger entry is written.
        applied: dict[str, Decimal] = {}
        for line in lines:
            if line["amount"] <= 0:
                raise ODataError(
                    400,
                    "Application_DialogException",
                    f"Amount must be positive in Gen. Journal Line: Line No.={line['lineNumber']}",
                )
            if line["appliesToInvoiceId"] != EMPTY_GUID:
                invoice = company.invoices[line["appliesToInvoiceId"]]
                applied[invoice["id"]] = applied.get(invoice["id"], Decimal("0")) + line["amount"]
                if applied[invoice["id"]] > invoice["_remaining"]:
                    raise ODataError(
                        400,
                        "Application_DialogException",
                        f"The amount {applied[invoice['id']]} is more than the remaining amount "
                        f"{invoice['_remaining']} of purchase invoice {invoice['number']}.",
                    )
        bank = company.accounts[journal["balancingAccountId"]]
        ap = next(a for a in company.accounts.values() if a["subCategory"] == "Accounts Payable")
        for line in lines:
            if line["appliesToInvoiceId"] != EMPTY_GUID:
                invoice = company.invoices[line["appliesToInvoiceId"]]
                invoice["_remaining"] = invoice["_remaining"] - line["amount"]
                if invoice["_remaining"] == 0:
                    invoice["status"] = "Paid"
                self._touch(company, invoice, now)
            # Balance is a FlowField: posting changes it without touching the vendor record.
            vendor = company.vendors[line["vendorId"]]
            vendor["balance"] = vendor["balance"] - line["amount"]
            for account, debit, credit in (
                (ap, line["amount"], Decimal("0")),
                (bank, Decimal("0"), line["amount"]),
            ):
                entry_number = len(company.ledger) + 1
                company.ledger.append(
                    {
                        "id": str(uuid.uuid4()),
                        "entryNumber": entry_number,
                        "postingDate": line["postingDate"],
                        "documentNumber": line["documentNumber"],
                        "documentType": "Payment",
                        "accountId": account["id"],
                        "accountNumber": account["number"],
                        "description": line["description"],
                        "debitAmount": debit,
                        "creditAmount": credit,
                        "lastModifiedDateTime": _now_text(now),
                    }
                )
        lines.clear()

    # --- attachments -----------------------------------------------------------------------------

    async def _attachments(
        self,
        request: Call,
        company: Company,
        names: tuple[str, ...],
        keys: list[str | None],
        body: Any,
        now: datetime,
    ) -> Response:
        method = request.method
        if names == ("attachments",) and keys[0] is None:
            if method == "GET":
                return self._collection(request, list(company.attachments.values()))
            if method == "POST":
                values = self._object(body)
                parent = str(values.get("parentId", "")).lower()
                if values.get("parentType") != "Purchase Invoice" or parent not in company.invoices:
                    raise ODataError(
                        400,
                        "BadRequest",
                        "parentType must be 'Purchase Invoice' and parentId an existing "
                        "purchase invoice.",
                    )
                file_name = str(values.get("fileName") or "")
                if not file_name:
                    raise ODataError(
                        400, "BadRequest_RequiredParamNotProvided", "fileName must be given."
                    )
                attachment = self._store(
                    company,
                    company.attachments,
                    {
                        "id": str(uuid.uuid4()),
                        "parentId": parent,
                        "parentType": "Purchase Invoice",
                        "fileName": file_name,
                        "byteSize": 0,
                    },
                    now,
                )
                return self._entity(201, company, attachment)
            raise self._not_allowed(method, "attachments")
        attachment = self._find(company.attachments, keys[0], "attachments")
        if names == ("attachments",) and method == "GET":
            return self._entity(200, company, attachment)
        if names == ("attachments", "attachmentContent"):
            if method == "PATCH":
                self._check_etag(request, company, attachment)
                content = body if isinstance(body, bytes) else await request.body()
                company.attachment_content[attachment["id"]] = content
                attachment["byteSize"] = len(content)
                self._touch(company, attachment, now)
                return _response(204)
            if method == "GET":
                return Response(
                    content=company.attachment_content.get(attachment["id"], b""),
                    media_type="application/octet-stream",
                )
        raise self._not_allowed(method, "attachments")


class _RevokeOnScript:
    """Applies scripted "revoke" faults (before the fault injector takes them): the caller's
    app is disabled, and Business Central then refuses its tokens with 401."""

    def __init__(self, app: ASGIApp, emulator: BusinessCentralEmulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_emulator"):
            line = f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}"
            faults = self.emulator.faults
            for fault in list(faults.scripted):
                if fault.kind == "revoke" and fault.times > 0 and fault.match in line:
                    fault.times -= 1
                    if fault.times == 0:
                        faults.scripted.remove(fault)
                    faults.fired["revoke"] = faults.fired.get("revoke", 0) + 1
                    for name, value in scope.get("headers", []):
                        if name == b"authorization" and value.lower().startswith(b"bearer "):
                            self.emulator.revoke_token(value[7:].decode().strip())
                    break
        await self.app(scope, receive, send)


_DEMO_ACCOUNTS: dict[str, tuple[str, str, str]] = {
    "10100": ("Operating Bank", "Assets", "Cash"),
    "10300": ("Company Card", "Liabilities", "Credit Card"),
    "20100": ("Accounts Payable", "Liabilities", "Accounts Payable"),
    "11100": ("Accounts Receivable", "Assets", "Accounts Receivable"),
    "30100": ("Owner's Equity", "Equity", "Equity"),
    "40100": ("Sales", "Income", "Income"),
    "50100": ("Cost of Goods Sold", "CostOfGoodsSold", "Cost of Goods Sold"),
    "60100": ("Office Supplies", "Expense", "Office Expense"),
    "60200": ("Repairs and Maintenance", "Expense", "Repairs"),
    "60300": ("Professional Fees", "Expense", "Professional Fees"),
    "60400": ("Software Subscriptions", "Expense", "Software"),
}
_DEMO_DIMENSIONS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "DEPARTMENT": ("Department", [("OPS", "Operations"), ("FIN", "Finance"), ("SALES", "Sales")]),
    "AREA": ("Area", [("EAST", "East"), ("WEST", "West")]),
}
_DEMO_VENDORS: dict[str, tuple[str, JSONObject]] = {
    "10000": (
        "Northwind Office Supply",
        {"taxRegistrationNumber": "94-1234567", "email": "ar@northwind.example"},
    ),
    "20000": (
        "Fabrikam GmbH",
        {
            "taxRegistrationNumber": "DE123456789",
            "email": "buchhaltung@fabrikam.example",
            "currencyCode": "EUR",
        },
    ),
    "30000": ("Globex Software", {"taxRegistrationNumber": "12-3456789"}),
    "40000": ("Initech Consulting", {}),
    "45000": ("Acme Corp", {}),
}
_DEMO_JOURNALS: dict[str, tuple[str, str]] = {
    "PAYMENT": ("Payments from the operating bank", "Operating Bank"),
    "CARD": ("Payments by company card", "Company Card"),
}
# The currencies set up besides the home one (USD).
_CURRENCIES = ("EUR",)
_DEMO_RATES: list[tuple[str, int, str, str]] = [
    ("EUR", 30, "100", "107.50"),
    ("EUR", 2, "100", "108"),
]
_DEMO_BILLS: list[tuple[str, str, str, str]] = [
    ("Globex Software", "GLX-2026-001", "1200.00", "Software Subscriptions"),
    ("Initech Consulting", "INI-0042", "3500.00", "Professional Fees"),
]
