"""Sage Intacct emulator: XML Web Services (POST /ia/xml/xmlgw.phtml) over a seeded company.

What it keeps of Intacct (research/intacct-bc.md §1; developer.intacct.com/api/...):
- The request envelope: `control` (senderid, password, controlid, uniqueid, dtdversion), one
  `operation` with `authentication` (`login` or `sessionid`) and `content` of `function`s.
- Sessions: `getAPISession` after a login returns a sessionid and the endpoint to use; each
  answer's authentication block shows the session's projected timeout, which every call
  pushes forward (`session_timeout`).
- Control ids: with `uniqueid=true` a request whose senderid and controlid were seen before
  gets the first answer again, byte for byte (the idempotency remit relies on; how long real
  Intacct remembers a control id is unverified, here for the emulator's life).
- readByQuery (SQL-like query, pagesize 1-1000, a `resultId` to `readMore` until
  numremaining is 0), query (filter elements, orderby, offset, pagesize 1-2000), read (keys),
  create / update / delete, get_financial_setup, create_supdoc / get (supdoc).
- Objects VENDOR, GLACCOUNT, DEPARTMENT, LOCATION, CLASS, PROJECT, CHECKINGACCOUNT and
  CREDITCARD (what a payment's FINANCIALENTITY names), APTERM, APBILL (with APBILLITEMS and
  the line dimensions DEPARTMENTID, LOCATIONID, CLASSID, PROJECTID), APBILLITEM, APPYMT
  (APPYMTDETAILS applied to bills by RECORDKEY; debit memos by ADJUSTMENTKEY and
  TRX_ADJUSTMENTAMOUNT, a credit-only payment without a financial entity), APPYMTDETAIL
  (STATE C or V), APADJUSTMENT (legacy create_apadjustment; negative amounts make a debit
  memo), EXCHANGERATE with its entries; legacy create_apterm; WHENMODIFIED on every record.
  A foreign bill without EXCHANGE_RATE takes the company's daily rate (hidden from the API,
  as Intacct's "Intacct Daily Rate" is).
- Failures answer HTTP 200 with `status` failure and an `errormessage` of `error`s (errorno,
  description, description2, correction) at the control, authentication or function level;
  throttling is HTTP 429 with GW-0010; a crash is a bare 5xx without XML.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, cast
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.faults import ASGIApp, FaultInjector, FaultResponse, Faults, Receive, Scope, Send
from sandbox.persist import Persistent

GATEWAY_PATH = "/ia/xml/xmlgw.phtml"
DEMO_SENDER_ID = "remit-demo-sender"
DEMO_SENDER_PASSWORD = "remit-demo-sender-password"
DEMO_USER_ID = "remit-api"
DEMO_USER_PASSWORD = "remit-demo-user-password"
INSPECTOR_USER_ID = "inspector"
DEMO_RATE_TYPE = "remit demo rates"
SEEDED_BILLS_VENDOR = "Contoso Facilities"
DATE_FORMAT = "%m/%d/%Y"
TIMESTAMP_FORMAT = "%m/%d/%Y %H:%M:%S"
READ_PAGE_MAX = 1000
QUERY_PAGE_MAX = 2000
DEFAULT_PAGE = 100
CENT = Decimal("0.01")
# Functions the inspector (a read-only Web Services user) may call.
READ_FUNCTIONS = frozenset(
    {
        "readByQuery",
        "readMore",
        "query",
        "read",
        "get_financial_setup",
        "get",
        "getAPISession",
    }
)
Clock = Callable[[], datetime]
Record = dict[str, Any]

# Each object: its key field (what `read` keys and `update` name), and the fields a
# readByQuery/query lists besides the key (child collections only come with `read`).
OBJECTS: dict[str, str] = {
    "VENDOR": "VENDORID",
    "GLACCOUNT": "ACCOUNTNO",
    "DEPARTMENT": "DEPARTMENTID",
    "LOCATION": "LOCATIONID",
    "CLASS": "CLASSID",
    "PROJECT": "PROJECTID",
    "CHECKINGACCOUNT": "BANKACCOUNTID",
    "CREDITCARD": "CARDID",
    "APTERM": "NAME",
    "APBILL": "RECORDNO",
    "APBILLITEM": "RECORDNO",
    "APPYMT": "RECORDNO",
    "APPYMTDETAIL": "RECORDNO",
    "APADJUSTMENT": "RECORDNO",
    "APADJUSTMENTITEM": "RECORDNO",
    "EXCHANGERATE": "RECORDNO",
    "TAXDETAIL": "DETAILID",
}
CHILDREN = {
    "APBILL": ("APBILLITEMS", "APBILLITEM"),
    "APPYMT": ("APPYMTDETAILS", "APPYMTDETAIL"),
    "APADJUSTMENT": ("APADJUSTMENTITEMS", "APADJUSTMENTITEM"),
    "EXCHANGERATE": ("EXCHANGERATEENTRIES", "EXCHANGERATEENTRY"),
}
CHILD_OF = {child: parent for parent, (_, child) in CHILDREN.items()}
DIMENSIONS = {
    "DEPARTMENTID": "DEPARTMENT",
    "LOCATIONID": "LOCATION",
    "CLASSID": "CLASS",
    "PROJECTID": "PROJECT",
}
DATE_FIELDS = frozenset(
    {"WHENCREATED", "WHENDUE", "WHENPOSTED", "PAYMENTDATE", "WHENPAID", "EFFECTIVE_START_DATE"}
)
TIMESTAMP_FIELDS = frozenset({"WHENMODIFIED"})
MONEY_FIELDS = frozenset(
    {
        "TRX_AMOUNT",
        "TOTALENTERED",
        "TOTALPAID",
        "TOTALDUE",
        "TRX_TOTALENTERED",
        "TRX_TOTALPAID",
        "TRX_TOTALDUE",
        "TRX_PAYMENTAMOUNT",
        "DISCOUNTTOAPPLY",
        "TRX_ADJUSTMENTAMOUNT",
        "AMOUNT",
        "TRX_TAX",
        "VALUE",
        "TOTALTRXAMOUNT",
        "AMOUNTTOPAY",
        "EXCHANGE_RATE",
    }
)


def _system_clock() -> datetime:
    return datetime.now(UTC)


class IntacctError(Exception):
    """One Intacct `error` (errorno, description, description2, correction)."""

    def __init__(
        self, errorno: str, description: str, description2: str = "", correction: str = ""
    ) -> None:
        super().__init__(f"{errorno}: {description} {description2}".strip())
        self.errorno = errorno
        self.description = description
        self.description2 = description2
        self.correction = correction


@dataclass
class Session:
    company_id: str
    user_id: str
    expires_at: datetime


@dataclass
class ResultSet:
    """What a readByQuery left for readMore (keyed by its resultId)."""

    company_id: str
    object: str
    fields: list[str] | None
    remaining: list[Record]
    page_size: int
    expires_at: datetime


@dataclass
class Company:
    """One Intacct company: its records by object, then by key."""

    id: str
    name: str
    base_currency: str = "USD"
    users: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, Record]] = field(
        default_factory=lambda: {name: {} for name in OBJECTS}
    )
    supdocs: dict[str, Record] = field(default_factory=dict)
    # Users whose Web Services access an administrator removed (the "revoke" fault).
    revoked_users: set[str] = field(default_factory=set)
    # The company's daily rates: home-currency units per unit of each foreign currency.
    rates: dict[str, Decimal] = field(default_factory=dict)
    # Attachment folders (a supdoc lives in one).
    supdoc_folders: set[str] = field(default_factory=set)
    next_recordno: int = 1
    next_vendor: int = 1

    def recordno(self) -> str:
        value = self.next_recordno
        self.next_recordno += 1
        return str(value)


class IntacctEmulator(Persistent):
    """Sage Intacct's XML gateway, in memory. Serve `.app`."""

    # The fault injector reads the body, so faults can be scripted on one function and object.
    write_matches: ClassVar[dict[str, str]] = {
        "vendor": "create VENDOR",
        "bill": "create APBILL",
        "bill_payment": "create APPYMT",
    }
    persisted = (
        "companies",
        "senders",
        "sessions",
        "control_answers",
        "inspector_token",
        "demo_company",
    )

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        clock: Clock | None = None,
        session_timeout: timedelta = timedelta(minutes=30),
        result_lifetime: timedelta = timedelta(minutes=15),
        inspector_token: str | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.clock: Clock = clock or _system_clock
        self.session_timeout = session_timeout
        self.result_lifetime = result_lifetime
        self.inspector_token = inspector_token or "inspect-" + secrets.token_urlsafe(16)
        self.companies: dict[str, Company] = {}
        self.senders: dict[str, str] = {DEMO_SENDER_ID: DEMO_SENDER_PASSWORD}
        self.sessions: dict[str, Session] = {}
        self.results: dict[str, ResultSet] = {}
        # (senderid, controlid) -> the first answer of a uniqueid=true request.
        self.control_answers: dict[tuple[str, str], bytes] = {}
        self.requests_seen = 0
        injected = _BodyFaultInjector(
            cast(ASGIApp, self._build_app()),
            self.faults,
            server_error=self._fault_server_error,
            throttled=self._fault_throttled,
        )
        injected.on_revoke = self._revoke_from
        self.restored = self.restore_state(state_file)
        self.app: ASGIApp = self.persisting(injected)

    # --- public control surface ------------------------------------------------------------

    def seed_demo_company(self, company_id: str | None = None) -> Any:
        """The shared demo business (home currency USD) and a Web Services user for it."""
        from sandbox.registry import DemoCompany

        company = Company(id=company_id or f"remit-demo-{uuid.uuid4().hex[:8]}", name="")
        company.name = "remit Demo Company (US)"
        company.users[DEMO_USER_ID] = DEMO_USER_PASSWORD
        company.users[INSPECTOR_USER_ID] = self.inspector_token
        self.companies[company.id] = company
        now = self.now()
        for number, (title, category, kind, normal) in _DEMO_ACCOUNTS.items():
            self._put(
                company,
                "GLACCOUNT",
                {
                    "ACCOUNTNO": number,
                    "TITLE": title,
                    "ACCOUNTTYPE": kind,
                    "NORMALBALANCE": normal,
                    "CATEGORY": category,
                    "STATUS": "active",
                },
                now,
            )
        for bank_id, (gl, currency, name) in _DEMO_BANKS.items():
            obj, key = (
                ("CREDITCARD", "CARDID")
                if bank_id == "AMEX"
                else (
                    "CHECKINGACCOUNT",
                    "BANKACCOUNTID",
                )
            )
            self._put(
                company,
                obj,
                {
                    key: bank_id,
                    "GLACCOUNTNO": gl,
                    "CURRENCY": currency,
                    "DESCRIPTION": name,
                    "STATUS": "active",
                },
                now,
            )
        for rate_currency, rate in _DEMO_RATES.items():
            company.rates[rate_currency] = rate
            # The company's own rate type too (the daily rate is hidden from the API).
            recordno = company.recordno()
            company.records["EXCHANGERATE"][recordno] = {
                "RECORDNO": recordno,
                "TYPENAME": DEMO_RATE_TYPE,
                "FROM_CURRENCY": rate_currency,
                "TO_CURRENCY": company.base_currency,
                "EXCHANGERATEENTRIES": [
                    {
                        "RECORDNO": company.recordno(),
                        "EFFECTIVE_START_DATE": date(2020, 1, 1),
                        "EXCHANGE_RATE": rate,
                    }
                ],
                "WHENMODIFIED": now,
            }
        for detail_id, (description, rate, kind) in _DEMO_TAX_DETAILS.items():
            self._put(
                company,
                "TAXDETAIL",
                {
                    "DETAILID": detail_id,
                    "DESCRIPTION": description,
                    "VALUE": rate,
                    "TAXTYPE": kind,
                    "STATUS": "active",
                },
                now,
            )
        for obj, key, name_field, values in _DEMO_DIMENSIONS:
            for value_id, name in values:
                self._put(company, obj, {key: value_id, name_field: name, "STATUS": "active"}, now)
        for name, extra in _DEMO_VENDORS.items():
            self._put(company, "VENDOR", self._new_vendor(company, {"NAME": name, **extra}), now)
        # A few bills entered by people, of a vendor of their own: remit's flows learn from a
        # vendor's history, and the shared vendors start without any.
        facilities = next(
            v for v in company.records["VENDOR"].values() if v["NAME"] == SEEDED_BILLS_VENDOR
        )
        for number, amount in (("CF-1001", "1250.00"), ("CF-1002", "310.40")):
            self._create_bill(
                company,
                {
                    "VENDORID": facilities["VENDORID"],
                    "RECORDID": number,
                    "WHENCREATED": now.date(),
                    "WHENDUE": now.date() + timedelta(days=30),
                    "CURRENCY": "USD",
                    "BASECURR": "USD",
                    "DESCRIPTION": "seeded bill",
                    "APBILLITEMS": [
                        {
                            "ACCOUNTNO": "6100",
                            "TRX_AMOUNT": Decimal(amount),
                            "DEPARTMENTID": "OPS",
                        }
                    ],
                },
                now,
            )
        return DemoCompany(
            company_id=company.id,
            company_name=company.name,
            credentials={
                "sender_id": DEMO_SENDER_ID,
                "sender_password": DEMO_SENDER_PASSWORD,
                "user_id": DEMO_USER_ID,
                "user_password": DEMO_USER_PASSWORD,
            },
            settings={
                "bank_account_id": "1000",
                "bank_account_id:EUR": "1010",
                "card_account_id": "2100",
                "ap_account_id": "2000",
                "discount_account_id": "5900",
                "exchange_rate_type": DEMO_RATE_TYPE,
                "home_currency": company.base_currency,
            },
            inspector_token=self.inspector_token,
        )

    def expire_sessions(self) -> None:
        """Every session times out now (as if the user idled past the timeout)."""
        moment = self.now() - timedelta(seconds=1)
        for session in self.sessions.values():
            session.expires_at = moment

    def revoke_user(self, company_id: str, user_id: str = DEMO_USER_ID) -> None:
        """An administrator removes the Web Services user: its sessions and sign-ins fail."""
        self.companies[company_id].revoked_users.add(user_id)

    def revoke_token(self, token: str) -> None:
        """The company disconnects remit (what a revoked grant is on the OAuth platforms): the
        Web Services user behind the API session `token` loses its access."""
        session = self.sessions.get(token)
        if session is not None:
            self.revoke_user(session.company_id, session.user_id)

    def reset(self) -> None:
        self.companies.clear()
        self.sessions.clear()
        self.results.clear()
        self.control_answers.clear()
        self.faults.clear()

    def _revoke_from(self, body: bytes) -> None:
        try:
            root = SafeET.fromstring(body)
        except Exception:  # noqa: BLE001 - an unreadable request names no company
            return
        session = self.sessions.get(root.findtext("operation/authentication/sessionid") or "")
        if session is not None:
            self.revoke_user(session.company_id, session.user_id)
            return
        login = root.find("operation/authentication/login")
        company_id = login.findtext("companyid") if login is not None else None
        if company_id in self.companies and login is not None:
            self.revoke_user(str(company_id), login.findtext("userid") or DEMO_USER_ID)

    def after_restore(self) -> None:
        self.results = {}
        for company in self.companies.values():
            # Snapshots written before these existed lack them.
            for name, default in (
                ("revoked_users", set),
                ("rates", dict),
                ("supdoc_folders", set),
            ):
                if not hasattr(company, name):
                    setattr(company, name, default())
            for obj in OBJECTS:
                company.records.setdefault(obj, {})

    def now(self) -> datetime:
        return self.clock()

    # --- app -------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(GATEWAY_PATH, self._gateway, methods=["POST"]),
                Route("/_emulator/faults", self._control_faults, methods=["GET", "PUT"]),
                Route("/_emulator/reset", self._control_reset, methods=["POST"]),
            ]
        )

    def _inspector(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return secrets.compare_digest(header, f"Bearer {self.inspector_token}")

    async def _control_faults(self, request: Request) -> Response:
        if not self._inspector(request):
            return JSONResponse({"error": "inspector token required"}, status_code=401)
        if request.method == "PUT":
            import json

            try:
                self.faults.apply_json(json.loads(await request.body() or b"{}"))
            except (TypeError, ValueError, KeyError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.faults.to_json())

    async def _control_reset(self, request: Request) -> Response:
        if not self._inspector(request):
            return JSONResponse({"error": "inspector token required"}, status_code=401)
        self.reset()
        return JSONResponse({"reset": True})

    def _fault_server_error(self) -> FaultResponse:
        # Intacct's crashes come back without XML (research §1.5).
        return 502, [(b"content-type", b"text/html")], b"<html><body>502 Bad Gateway</body></html>"

    def _fault_throttled(self, retry_after: float) -> FaultResponse:
        seconds = max(1, int(-(-retry_after // 1)))
        response = Element("response")
        SubElement(response, "errormessage").append(
            _error_element(
                IntacctError(
                    "GW-0010",
                    "Too many requests",
                    "The company has more concurrent requests than its performance tier allows.",
                    "Wait, then send the request again.",
                )
            )
        )
        return (
            429,
            [(b"content-type", b"application/xml"), (b"retry-after", str(seconds).encode())],
            _xml(response),
        )

    async def _gateway(self, request: Request) -> Response:
        self.requests_seen += 1
        body = await request.body()
        try:
            root = SafeET.fromstring(body)
        except Exception as exc:  # noqa: BLE001 - any unreadable XML is the same refusal
            return _answer(
                _control_failure(
                    {},
                    IntacctError(
                        "XL03000003",
                        "XML Parse schema error: Error in line 1",
                        f"the request is not well-formed XML ({exc})",
                        "Send a well-formed <request> document.",
                    ),
                )
            )
        control = _children(root.find("control"))
        if root.tag != "request" or root.find("control") is None:
            return _answer(
                _control_failure(
                    control,
                    IntacctError(
                        "XL03000003",
                        "XML Parse schema error",
                        "the document must be a <request> with a <control> block",
                        "Send <request><control>...</control><operation>...</operation></request>.",
                    ),
                )
            )
        sender = control.get("senderid", "")
        if not secrets.compare_digest(self.senders.get(sender, "\0"), control.get("password", "")):
            return _answer(
                _control_failure(
                    control,
                    IntacctError(
                        "XL03000006",
                        "Incorrect Intacct XML Partner ID or password.",
                        "",
                        "Check the sender ID and password of the Web Services subscription.",
                    ),
                )
            )
        controlid = control.get("controlid", "")
        if not 1 <= len(controlid) <= 256:
            return _answer(
                _control_failure(
                    control,
                    IntacctError(
                        "XL03000003",
                        "XML Parse schema error",
                        "controlid must be 1 to 256 characters",
                        "Send a control id of 1 to 256 characters.",
                    ),
                )
            )
        unique = control.get("uniqueid", "false").strip().lower() == "true"
        if unique and (sender, controlid) in self.control_answers:
            return Response(self.control_answers[(sender, controlid)], media_type="text/xml")
        operation = root.find("operation")
        if operation is None:
            return _answer(
                _control_failure(
                    control,
                    IntacctError(
                        "XL03000003",
                        "XML Parse schema error",
                        "the request has no <operation>",
                        "Add an <operation> with <authentication> and <content>.",
                    ),
                )
            )
        response = Element("response")
        response.append(_control_element(control, "success"))
        out_operation = SubElement(response, "operation")
        try:
            company, session_id, user_id = self._authenticate(operation.find("authentication"))
        except IntacctError as error:
            auth = SubElement(out_operation, "authentication")
            SubElement(auth, "status").text = "failure"
            SubElement(out_operation, "errormessage").append(_error_element(error))
            # Nothing ran: a resend with the same control id (after a new session) must run.
            return _answer(response)
        out_operation.append(self._auth_element(company, user_id, session_id))
        content = operation.find("content")
        functions = list(content) if content is not None else []
        transactional = operation.get("transaction", "false").lower() == "true"
        snapshot = _snapshot(company) if transactional else None
        results = []
        failed = False
        for function in functions:
            result = self._run_function(company, user_id, session_id, function)
            failed = failed or result.findtext("status") == "failure"
            results.append(result)
        if transactional and failed and snapshot is not None:
            _restore(company, snapshot)
            for result in results:
                if result.findtext("status") == "success":
                    status = result.find("status")
                    assert status is not None
                    status.text = "aborted"
                    data = result.find("data")
                    if data is not None:
                        result.remove(data)
        for result in results:
            out_operation.append(result)
        answer = _xml(response)
        if unique:
            self.control_answers[(sender, controlid)] = answer
        return Response(answer, media_type="text/xml")

    def _authenticate(self, auth: Element | None) -> tuple[Company, str | None, str]:
        now = self.now()
        if auth is None:
            raise IntacctError(
                "XL03000003", "XML Parse schema error", "the operation has no <authentication>"
            )
        session_id = (auth.findtext("sessionid") or "").strip()
        if session_id:
            session = self.sessions.get(session_id)
            if session is None or session.expires_at <= now:
                self.sessions.pop(session_id, None)
                raise IntacctError(
                    "XL03000006",
                    "Invalid session",
                    "the session has expired or does not exist",
                    "Sign in again (login, then getAPISession) and use the new session id.",
                )
            owner = self.companies[session.company_id]
            if session.user_id in owner.revoked_users:
                self.sessions.pop(session_id, None)
                raise IntacctError(
                    "XL03000006",
                    "Invalid session",
                    "the user's Web Services access was removed",
                    "Ask the company's administrator to restore the Web Services user.",
                )
            session.expires_at = now + self.session_timeout
            return owner, session_id, session.user_id
        login = auth.find("login")
        if login is None:
            raise IntacctError(
                "XL03000003",
                "XML Parse schema error",
                "authentication needs <login> or <sessionid>",
                "Send <login><userid/><companyid/><password/></login> or <sessionid/>.",
            )
        fields = _children(login)
        company = self.companies.get(fields.get("companyid", ""))
        password = company.users.get(fields.get("userid", "")) if company else None
        if (
            company is None
            or password is None
            or fields.get("userid", "") in company.revoked_users
            or not secrets.compare_digest(password, fields.get("password", ""))
        ):
            raise IntacctError(
                "XL03000006",
                "Sign-in information is incorrect",
                "the user ID, company ID or password is wrong",
                "Check the Web Services user's credentials and the company ID.",
            )
        return company, None, fields["userid"]

    def _auth_element(self, company: Company, user_id: str, session_id: str | None) -> Element:
        now = self.now()
        auth = Element("authentication")
        SubElement(auth, "status").text = "success"
        SubElement(auth, "userid").text = user_id
        SubElement(auth, "companyid").text = company.id
        SubElement(auth, "locationid")
        SubElement(auth, "sessiontimestamp").text = now.isoformat(timespec="seconds")
        timeout = self.sessions[session_id].expires_at if session_id else now
        SubElement(auth, "sessiontimeout").text = timeout.isoformat(timespec="seconds")
        return auth

    def _run_function(
        self, company: Company, user_id: str, session_id: str | None, function: Element
    ) -> Element:
        result = Element("result")
        status = SubElement(result, "status")
        verb = function[0] if len(function) else None
        SubElement(result, "function").text = verb.tag if verb is not None else ""
        SubElement(result, "controlid").text = function.get("controlid", "")
        try:
            if function.tag != "function" or verb is None:
                raise IntacctError(
                    "XL03000003",
                    "XML Parse schema error",
                    "each element of <content> must be a <function> holding one call",
                )
            if user_id == INSPECTOR_USER_ID and verb.tag not in READ_FUNCTIONS:
                raise IntacctError(
                    "BL01001973",
                    "Permission denied",
                    f"the inspector user may only read; {verb.tag} is a write",
                    "Use the connection's own user for writes.",
                )
            handler = getattr(self, f"_fn_{verb.tag}", None)
            if handler is None:
                raise IntacctError(
                    "XL03000003",
                    "XML Parse schema error",
                    f"unknown function {verb.tag!r}",
                    "Use a function of the 3.0 DTD (readByQuery, query, read, create, ...).",
                )
            data = handler(company, verb, user_id=user_id, session_id=session_id)
        except IntacctError as error:
            status.text = "failure"
            SubElement(result, "errormessage").append(_error_element(error))
            return result
        status.text = "success"
        if data is not None:
            result.append(data)
        return result

    # --- functions -------------------------------------------------------------------------

    def _fn_getAPISession(  # noqa: N802 - Intacct's function name
        self, company: Company, verb: Element, *, user_id: str, session_id: str | None
    ) -> Element:
        new_id = session_id or f"{secrets.token_urlsafe(24)}.."
        if session_id is None:
            self.sessions[new_id] = Session(
                company_id=company.id, user_id=user_id, expires_at=self.now() + self.session_timeout
            )
        data = Element("data")
        api = SubElement(data, "api")
        SubElement(api, "sessionid").text = new_id
        SubElement(api, "endpoint").text = GATEWAY_PATH
        SubElement(api, "locationid").text = verb.findtext("locationid") or ""
        return data

    def _fn_get_financial_setup(self, company: Company, verb: Element, **_: Any) -> Element:
        data = Element("data")
        setup = SubElement(data, "financialsetup")
        SubElement(setup, "basecurrency").text = company.base_currency
        SubElement(setup, "companyname").text = company.name
        return data

    def _fn_readByQuery(  # noqa: N802
        self, company: Company, verb: Element, **_: Any
    ) -> Element:
        obj = self._object(verb.findtext("object"))
        fields = _field_list(verb.findtext("fields"))
        page_size = _page_size(verb.findtext("pagesize"), READ_PAGE_MAX)
        text = (verb.findtext("query") or "").strip()
        try:
            predicate = parse_query(text) if text else (lambda record: True)
        except ValueError as exc:
            raise IntacctError(
                "DL02000001",
                "There was an error processing the request.",
                f"query {text!r}: {exc}",
                "Write the query as FIELD = 'value' joined by AND / OR.",
            ) from exc
        matches = [r for r in self._rows(company, obj) if predicate(r)]
        return self._page(company, obj, fields, matches, page_size)

    def _fn_readMore(  # noqa: N802
        self, company: Company, verb: Element, **_: Any
    ) -> Element:
        result_id = (verb.findtext("resultId") or "").strip()
        stored = self.results.get(result_id)
        if stored is None or stored.company_id != company.id or stored.expires_at <= self.now():
            self.results.pop(result_id, None)
            raise IntacctError(
                "DL02000001",
                "There was an error processing the request.",
                f"resultId {result_id!r} is unknown or has expired",
                "Run the readByQuery again.",
            )
        del self.results[result_id]
        return self._page(company, stored.object, stored.fields, stored.remaining, stored.page_size)

    def _page(
        self,
        company: Company,
        obj: str,
        fields: list[str] | None,
        matches: list[Record],
        page_size: int,
    ) -> Element:
        page, rest = matches[:page_size], matches[page_size:]
        data = Element("data", listtype=obj.lower(), count=str(len(page)))
        data.set("totalcount", str(len(matches)))
        data.set("numremaining", str(len(rest)))
        if rest:
            result_id = uuid.uuid4().hex
            self.results[result_id] = ResultSet(
                company.id, obj, fields, rest, page_size, self.now() + self.result_lifetime
            )
            data.set("resultId", result_id)
        else:
            data.set("resultId", "")
        for record in page:
            data.append(_record_element(obj, record, fields, with_children=False))
        return data

    def _fn_query(self, company: Company, verb: Element, **_: Any) -> Element:
        obj = self._object(verb.findtext("object"))
        select = verb.find("select")
        fields = (
            [f.text.strip().upper() for f in select.findall("field") if f.text]
            if select is not None
            else []
        )
        if not fields:
            raise IntacctError(
                "DL02000001",
                "There was an error processing the request.",
                "query needs <select> with at least one <field> (all fields is not supported)",
                "List the fields you want in <select><field>...</field></select>.",
            )
        options = verb.find("options")
        insensitive = (
            options is not None
            and (options.findtext("caseinsensitive") or "").strip().lower() == "true"
        )
        filter_element = verb.find("filter")
        predicate: Callable[[Record], bool] = lambda record: True  # noqa: E731
        if filter_element is not None and len(filter_element):
            predicate = _filter_predicate(filter_element[0], insensitive)
        rows = [r for r in self._rows(company, obj) if predicate(r)]
        orderby = verb.find("orderby")
        if orderby is not None:
            for order in reversed(orderby.findall("order")):
                name = (order.findtext("field") or "").strip().upper()
                descending = order.find("descending") is not None
                rows.sort(key=_sorter(name), reverse=descending)
        page_size = _page_size(verb.findtext("pagesize"), QUERY_PAGE_MAX)
        offset = int(verb.findtext("offset") or 0)
        page = rows[offset : offset + page_size]
        remaining = max(0, len(rows) - offset - len(page))
        data = Element("data", listtype=obj, count=str(len(page)))
        data.set("totalcount", str(len(rows)))
        data.set("offset", str(offset))
        data.set("numremaining", str(remaining))
        for record in page:
            data.append(_record_element(obj, record, fields, with_children=False))
        return data

    def _fn_read(self, company: Company, verb: Element, **_: Any) -> Element:
        obj = self._object(verb.findtext("object"))
        keys = [k.strip() for k in (verb.findtext("keys") or "").split(",") if k.strip()]
        fields = _field_list(verb.findtext("fields"))
        data = Element("data", listtype=obj.lower())
        found = 0
        for key in keys:
            record = self._find(company, obj, key)
            if record is not None:
                data.append(_record_element(obj, record, fields, with_children=True))
                found += 1
        data.set("count", str(found))
        return data

    def _fn_create(self, company: Company, verb: Element, **_: Any) -> Element:
        if len(verb) != 1:
            raise IntacctError(
                "BL34000061",
                "create takes one object",
                f"found {len(verb)} elements in <create>",
                "Send one object per create function (or several functions).",
            )
        element = verb[0]
        obj = element.tag.upper()
        fields = _read_record(element)
        now = self.now()
        if obj == "VENDOR":
            record = self._new_vendor(company, fields)
            self._put(company, obj, record, now)
        elif obj == "GLACCOUNT":
            record = self._new_account(company, fields)
            self._put(company, obj, record, now)
        elif obj == "APBILL":
            record = self._create_bill(company, fields, now)
        elif obj == "APPYMT":
            record = self._create_payment(company, fields, now)
        elif obj in ("DEPARTMENT", "LOCATION", "CLASS", "PROJECT"):
            key = OBJECTS[obj]
            if not fields.get(key):
                raise _required(obj, key)
            if fields[key] in company.records[obj]:
                raise _duplicate(obj, key, fields[key])
            record = {"STATUS": "active", **fields}
            self._put(company, obj, record, now)
        else:
            raise IntacctError(
                "BL34000061",
                f"Cannot create {obj}",
                f"the emulator does not create {obj} records",
                "Create VENDOR, GLACCOUNT, APBILL, APPYMT or a dimension.",
            )
        data = Element("data", listtype=obj.lower(), count="1")
        out = SubElement(data, obj.lower())
        SubElement(out, "RECORDNO").text = str(record["RECORDNO"])
        key = OBJECTS[obj]
        if key != "RECORDNO":
            SubElement(out, key).text = str(record[key])
        return data

    def _fn_update(self, company: Company, verb: Element, **_: Any) -> Element:
        if len(verb) != 1:
            raise IntacctError("BL34000061", "update takes one object", "", "")
        element = verb[0]
        obj = element.tag.upper()
        fields = _read_record(element)
        key_field = OBJECTS.get(obj)
        if key_field is None:
            raise IntacctError("BL34000061", f"Cannot update {obj}", "", "")
        key = str(fields.get(key_field) or fields.get("RECORDNO") or "")
        record = self._find(company, obj, key)
        if record is None:
            raise IntacctError(
                "BL01001973",
                f"{obj} {key or '(no key)'} does not exist",
                f"update needs the {key_field} of an existing {obj}",
                f"Read the {obj} first and send its {key_field}.",
            )
        now = self.now()
        if obj == "APBILL":
            allowed = {"SUPDOCID", "DESCRIPTION", "WHENDUE", "ONHOLD", "RECORDNO", "DOCNUMBER"}
            extra = set(fields) - allowed
            if extra:
                raise IntacctError(
                    "BL01001973",
                    "Cannot update these bill fields",
                    f"{', '.join(sorted(extra))}: the emulator updates only "
                    + ", ".join(sorted(allowed)),
                    "Reverse the bill and enter it again to change its lines or amounts.",
                )
            if (
                "SUPDOCID" in fields
                and fields["SUPDOCID"]
                and fields["SUPDOCID"] not in company.supdocs
            ):
                raise IntacctError(
                    "BL01001973", "Invalid attachment", f"no supdoc {fields['SUPDOCID']!r}", ""
                )
        elif obj == "VENDOR":
            if "STATUS" in fields and fields["STATUS"] not in ("active", "inactive"):
                raise _invalid("VENDOR", "STATUS", fields["STATUS"], "active or inactive")
            contact = fields.pop("DISPLAYCONTACT", None)
            if isinstance(contact, dict):
                record.setdefault("DISPLAYCONTACT", {}).update(contact)
        elif obj not in ("GLACCOUNT", "DEPARTMENT", "LOCATION", "CLASS", "PROJECT"):
            raise IntacctError("BL34000061", f"Cannot update {obj}", "", "")
        for name, value in fields.items():
            if name not in (key_field, "RECORDNO"):
                record[name] = value
        record["WHENMODIFIED"] = now
        data = Element("data", listtype=obj.lower(), count="1")
        out = SubElement(data, obj.lower())
        SubElement(out, "RECORDNO").text = str(record["RECORDNO"])
        if key_field != "RECORDNO":
            SubElement(out, key_field).text = str(record[key_field])
        return data

    def _fn_delete(self, company: Company, verb: Element, **_: Any) -> Element:
        obj = self._object(verb.findtext("object"))
        keys = [k.strip() for k in (verb.findtext("keys") or "").split(",") if k.strip()]
        if obj != "APPYMT":
            raise IntacctError(
                "BL34000061",
                f"Cannot delete {obj}",
                "the emulator deletes (voids) only AP payments",
                "Delete APPYMT records by RECORDNO.",
            )
        now = self.now()
        for key in keys:
            payment = company.records["APPYMT"].get(key)
            if payment is None:
                raise IntacctError("BL01001973", f"APPYMT {key} does not exist", "", "")
            if payment["STATE"] == "V":
                continue
            # Intacct keeps a deleted payment's history; the emulator marks it voided (the
            # real record's state after a void is unverified) and reopens what it paid.
            payment["STATE"] = "V"
            payment["WHENMODIFIED"] = now
            for detail in payment["APPYMTDETAILS"]:
                _apply(company, detail, -1, now)
                detail["STATE"] = "V"
                detail["WHENMODIFIED"] = now
        return Element("data", listtype=obj.lower(), count=str(len(keys)))

    def _fn_create_apadjustment(self, company: Company, verb: Element, **_: Any) -> Element:
        """The legacy create: a debit memo (negative amounts: a vendor credit) or a credit
        memo (positive), lines in apadjustmentitems/lineitem."""
        fields = {child.tag: (child.text or "").strip() for child in verb if len(child) == 0}
        vendor = company.records["VENDOR"].get(fields.get("vendorid", ""))
        if vendor is None:
            raise IntacctError(
                "BL01001973", "Invalid Vendor", f"Vendor ID {fields.get('vendorid')!r}", ""
            )
        created = _legacy_date(verb.find("datecreated"), "datecreated")
        items = verb.findall("apadjustmentitems/lineitem")
        if not items:
            raise _required("create_apadjustment", "apadjustmentitems/lineitem")
        currency = fields.get("currency") or company.base_currency
        recordno = company.recordno()
        now = self.now()
        lines: list[Record] = []
        for n, item in enumerate(items, start=1):
            values = _children(item)
            account = values.get("glaccountno", "")
            if account not in company.records["GLACCOUNT"]:
                raise IntacctError(
                    "BL01001973",
                    "Invalid GL Account",
                    f"line {n}: account {account!r} does not exist",
                    "Use the glaccountno of an existing GL account.",
                )
            try:
                amount = Decimal(values.get("amount", "")).quantize(CENT, ROUND_HALF_UP)
            except InvalidOperation as exc:
                raise _invalid("lineitem", "amount", values.get("amount"), "an amount") from exc
            lines.append(
                {
                    "RECORDNO": company.recordno(),
                    "RECORDKEY": recordno,
                    "ACCOUNTNO": account,
                    "TRX_AMOUNT": amount,
                    "ENTRYDESCRIPTION": values.get("memo") or None,
                    "DEPARTMENTID": values.get("departmentid") or None,
                    "LOCATIONID": values.get("locationid") or None,
                    "CLASSID": values.get("classid") or None,
                    "WHENMODIFIED": now,
                }
            )
        signs = {line["TRX_AMOUNT"] > 0 for line in lines}
        if len(signs) > 1 or any(line["TRX_AMOUNT"] == 0 for line in lines):
            raise IntacctError(
                "BL01001973",
                "Adjustment amounts must be all positive or all negative",
                "the lines mix signs or have a zero amount",
                "Send a debit memo with negative amounts or a credit memo with positive ones.",
            )
        total = sum((line["TRX_AMOUNT"] for line in lines), Decimal(0))
        record: Record = {
            "RECORDNO": recordno,
            "VENDORID": vendor["VENDORID"],
            "VENDORNAME": vendor["NAME"],
            "RECORDID": fields.get("adjustmentno") or None,
            "DOCNUMBER": fields.get("billno") or None,
            "DESCRIPTION": fields.get("description") or None,
            "WHENCREATED": created,
            "CURRENCY": currency,
            "BASECURR": company.base_currency,
            "STATE": "Posted",
            "ADJUSTMENTTYPE": "debit memo" if total < 0 else "credit memo",
            "TOTALENTERED": total,
            "TOTALPAID": Decimal(0),
            "TOTALDUE": total,
            "TRX_TOTALENTERED": total,
            "TRX_TOTALPAID": Decimal(0),
            "TRX_TOTALDUE": total,
            "APADJUSTMENTITEMS": lines,
            "WHENMODIFIED": now,
        }
        company.records["APADJUSTMENT"][recordno] = record
        data = Element("data", listtype="apadjustment", count="1")
        SubElement(SubElement(data, "apadjustment"), "RECORDNO").text = recordno
        return data

    def _fn_create_apterm(self, company: Company, verb: Element, **_: Any) -> Element:
        name = (verb.findtext("name") or "").strip()
        if not name:
            raise _required("create_apterm", "name")
        if name in company.records["APTERM"]:
            raise _duplicate("APTERM", "NAME", name)
        try:
            due = int(verb.findtext("due/dueday") or 0)
            discount_days = int(verb.findtext("discount/discday") or 0)
            discount = Decimal(verb.findtext("discount/discamount") or 0)
        except (ValueError, InvalidOperation) as exc:
            raise _invalid(
                "create_apterm", "due/discount", "?", "whole days and an amount"
            ) from exc
        self._put(
            company,
            "APTERM",
            {
                "NAME": name,
                "DESCRIPTION": verb.findtext("description") or "",
                "STATUS": verb.findtext("status") or "active",
                "DUEDATE": str(due),
                "DUEFROM": verb.findtext("due/duefrom") or "from invoice/bill date",
                "DISCDATE": str(discount_days),
                "DISCFROM": verb.findtext("discount/discfrom") or "from invoice/bill date",
                "DISCAMOUNT": format(discount, "f"),
                "DISCPERCAMN": verb.findtext("discount/discpercamn") or "$",
            },
            self.now(),
        )
        data = Element("data", listtype="apterm", count="1")
        SubElement(SubElement(data, "apterm"), "NAME").text = name
        return data

    def _fn_create_supdoc(self, company: Company, verb: Element, **_: Any) -> Element:
        supdoc_id = (verb.findtext("supdocid") or "").strip()
        if not supdoc_id or len(supdoc_id) > 20:
            raise IntacctError(
                "BL01001973",
                "Invalid attachment ID",
                "supdocid is required, at most 20 characters",
                "Send a supdocid of 1 to 20 characters.",
            )
        if supdoc_id in company.supdocs:
            raise _duplicate("supdoc", "supdocid", supdoc_id)
        folder = (verb.findtext("supdocfoldername") or "").strip()
        if folder not in company.supdoc_folders:
            raise IntacctError(
                "BL01001973",
                "Invalid attachment folder",
                f"there is no attachment folder {folder!r}",
                "Create the folder first (create_supdocfolder) and name it in supdocfoldername.",
            )
        attachments = []
        for item in verb.iter("attachment"):
            try:
                content = base64.b64decode(item.findtext("attachmentdata") or "", validate=True)
            except ValueError as exc:
                raise IntacctError(
                    "BL01001973", "Invalid attachment data", "attachmentdata must be base64", ""
                ) from exc
            attachments.append(
                {
                    "attachmentname": item.findtext("attachmentname") or "",
                    "attachmenttype": item.findtext("attachmenttype") or "",
                    "attachmentdata": content,
                }
            )
        company.supdocs[supdoc_id] = {
            "supdocid": supdoc_id,
            "supdocname": verb.findtext("supdocname") or supdoc_id,
            "folder": verb.findtext("supdocfoldername") or "",
            "attachments": attachments,
        }
        data = Element("data", listtype="supdoc", count="1")
        SubElement(SubElement(data, "supdoc"), "key").text = supdoc_id
        return data

    def _fn_create_supdocfolder(self, company: Company, verb: Element, **_: Any) -> Element:
        name = (verb.findtext("supdocfoldername") or "").strip()
        if not name:
            raise _required("create_supdocfolder", "supdocfoldername")
        if name in company.supdoc_folders:
            raise _duplicate("supdocfolder", "supdocfoldername", name)
        company.supdoc_folders.add(name)
        data = Element("data", listtype="supdocfolder", count="1")
        SubElement(SubElement(data, "supdocfolder"), "key").text = name
        return data

    def _fn_get(self, company: Company, verb: Element, **_: Any) -> Element:
        if verb.get("object") != "supdoc":
            raise IntacctError("BL34000061", "get supports object supdoc only", "", "")
        supdoc = company.supdocs.get(verb.get("key", ""))
        data = Element("data", listtype="supdoc", count="1" if supdoc else "0")
        if supdoc is not None:
            out = SubElement(data, "supdoc")
            SubElement(out, "supdocid").text = supdoc["supdocid"]
            SubElement(out, "supdocname").text = supdoc["supdocname"]
            attachments = SubElement(out, "attachments")
            for item in supdoc["attachments"]:
                one = SubElement(attachments, "attachment")
                SubElement(one, "attachmentname").text = item["attachmentname"]
                SubElement(one, "attachmenttype").text = item["attachmenttype"]
                SubElement(one, "attachmentdata").text = base64.b64encode(
                    item["attachmentdata"]
                ).decode()
        return data

    # --- records ---------------------------------------------------------------------------

    def _object(self, name: str | None) -> str:
        obj = (name or "").strip().upper()
        if obj not in OBJECTS:
            raise IntacctError(
                "DL02000001",
                "There was an error processing the request.",
                f"unknown object {name!r}",
                f"Use one of {', '.join(OBJECTS)}.",
            )
        return obj

    def _rows(self, company: Company, obj: str) -> list[Record]:
        if obj in CHILD_OF:
            parent = CHILD_OF[obj]
            collection = CHILDREN[parent][0]
            return [
                child for record in company.records[parent].values() for child in record[collection]
            ]
        return list(company.records[obj].values())

    def _find(self, company: Company, obj: str, key: str) -> Record | None:
        if obj in CHILD_OF:
            return next((r for r in self._rows(company, obj) if r["RECORDNO"] == key), None)
        return company.records[obj].get(key)

    def _put(self, company: Company, obj: str, record: Record, now: datetime) -> Record:
        record.setdefault("RECORDNO", company.recordno())
        record["WHENMODIFIED"] = now
        company.records[obj][str(record[OBJECTS[obj]])] = record
        return record

    def _new_vendor(self, company: Company, fields: Record) -> Record:
        name = str(fields.get("NAME") or "").strip()
        if not name:
            raise _required("VENDOR", "NAME")
        vendor_id = str(fields.get("VENDORID") or "").strip()
        if not vendor_id:
            # The demo company numbers vendors itself (a company setting in Intacct).
            while f"V{company.next_vendor:04d}" in company.records["VENDOR"]:
                company.next_vendor += 1
            vendor_id = f"V{company.next_vendor:04d}"
        if vendor_id in company.records["VENDOR"]:
            raise _duplicate("VENDOR", "VENDORID", vendor_id)
        status = fields.get("STATUS", "active")
        if status not in ("active", "inactive"):
            raise _invalid("VENDOR", "STATUS", status, "active or inactive")
        currency = fields.get("CURRENCY")
        if currency is not None and not re.fullmatch(r"[A-Z]{3}", str(currency)):
            raise _invalid("VENDOR", "CURRENCY", currency, "an ISO 4217 code")
        account = fields.get("APACCOUNT") or fields.get("DEFAULTEXPENSEACCOUNT")
        if account and account not in company.records["GLACCOUNT"]:
            raise _invalid("VENDOR", "DEFAULTEXPENSEACCOUNT", account, "an existing ACCOUNTNO")
        return {**fields, "VENDORID": vendor_id, "NAME": name, "STATUS": status}

    def _new_account(self, company: Company, fields: Record) -> Record:
        number = str(fields.get("ACCOUNTNO") or "").strip()
        if not number:
            raise _required("GLACCOUNT", "ACCOUNTNO")
        if not fields.get("TITLE"):
            raise _required("GLACCOUNT", "TITLE")
        if number in company.records["GLACCOUNT"]:
            raise _duplicate("GLACCOUNT", "ACCOUNTNO", number)
        kind = fields.get("ACCOUNTTYPE", "incomestatement")
        if kind not in ("balancesheet", "incomestatement"):
            raise _invalid("GLACCOUNT", "ACCOUNTTYPE", kind, "balancesheet or incomestatement")
        normal = fields.get("NORMALBALANCE", "debit")
        if normal not in ("debit", "credit"):
            raise _invalid("GLACCOUNT", "NORMALBALANCE", normal, "debit or credit")
        return {"STATUS": "active", **fields, "ACCOUNTNO": number}

    def _create_bill(self, company: Company, fields: Record, now: datetime) -> Record:
        vendor = company.records["VENDOR"].get(str(fields.get("VENDORID") or ""))
        if vendor is None:
            raise IntacctError(
                "BL01001973",
                "Invalid Vendor",
                f"Vendor ID {fields.get('VENDORID')!r} does not exist",
                "Use the VENDORID of an existing vendor.",
            )
        if vendor.get("STATUS") != "active":
            raise IntacctError(
                "BL01001973", "Invalid Vendor", f"vendor {vendor['VENDORID']} is inactive", ""
            )
        for name in ("WHENCREATED", "WHENDUE"):
            if not isinstance(fields.get(name), date):
                raise _required("APBILL", f"{name} (mm/dd/yyyy)")
        if fields["WHENDUE"] < fields["WHENCREATED"]:
            raise IntacctError(
                "BL01001973",
                "Due date is before the bill date",
                f"WHENDUE {fields['WHENDUE']:%m/%d/%Y} is before WHENCREATED",
                "Send a due date on or after the bill date.",
            )
        currency = str(fields.get("CURRENCY") or company.base_currency)
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise _invalid("APBILL", "CURRENCY", currency, "an ISO 4217 code")
        if fields.get("TERMNAME") and fields["TERMNAME"] not in company.records["APTERM"]:
            raise _invalid("APBILL", "TERMNAME", fields["TERMNAME"], "the NAME of an AP term")
        if currency != company.base_currency and "EXCHANGE_RATE" not in fields:
            rate = company.rates.get(currency)
            if rate is None:
                raise IntacctError(
                    "BL01001973",
                    "No exchange rate",
                    f"the company has no daily rate for {currency}",
                    "Send EXCHANGE_RATE, or add the rate to Intacct Daily Rate.",
                )
            fields = {**fields, "EXCHANGE_RATE": rate}
        items = fields.get("APBILLITEMS") or []
        if not isinstance(items, list) or not items:
            raise IntacctError(
                "BL01001973",
                "A bill needs at least one line",
                "APBILLITEMS has no APBILLITEM",
                "Add APBILLITEMS/APBILLITEM elements.",
            )
        recordno = company.recordno()
        lines = []
        total = Decimal(0)
        for n, item in enumerate(items, start=1):
            account = str(item.get("ACCOUNTNO") or "")
            if account not in company.records["GLACCOUNT"]:
                raise IntacctError(
                    "BL01001973",
                    "Invalid GL Account",
                    f"line {n}: account {account!r} does not exist",
                    "Use the ACCOUNTNO of an existing GL account.",
                )
            amount = item.get("TRX_AMOUNT")
            if not isinstance(amount, Decimal):
                raise _required("APBILLITEM", f"TRX_AMOUNT (line {n})")
            for dimension, obj in DIMENSIONS.items():
                value = item.get(dimension)
                if value and value not in company.records[obj]:
                    raise IntacctError(
                        "BL01001973",
                        f"Invalid {obj.title()}",
                        f"line {n}: {dimension} {value!r} does not exist",
                        f"Use the {dimension} of an existing {obj.lower()}.",
                    )
            amount = amount.quantize(CENT, ROUND_HALF_UP)
            entries = []
            for entry in item.get("TAXENTRIES") or []:
                detail = company.records["TAXDETAIL"].get(str(entry.get("DETAILID") or ""))
                if detail is None or detail.get("TAXTYPE") != "Purchase":
                    raise IntacctError(
                        "BL01001973",
                        "Invalid tax detail",
                        f"line {n}: {entry.get('DETAILID')!r} is not a purchase tax detail",
                        "Use the DETAILID of a purchase tax detail.",
                    )
                tax = entry.get("TRX_TAX")
                if not isinstance(tax, Decimal):
                    # Without TRX_TAX Intacct computes the tax from the detail's rate.
                    tax = amount * detail["VALUE"] / 100
                entries.append(
                    {"DETAILID": detail["DETAILID"], "TRX_TAX": tax.quantize(CENT, ROUND_HALF_UP)}
                )
            total += amount + sum((e["TRX_TAX"] for e in entries), Decimal(0))
            lines.append(
                {
                    **item,
                    "RECORDNO": company.recordno(),
                    "RECORDKEY": recordno,
                    "LINE_NO": str(n),
                    "TRX_AMOUNT": amount,
                    "TAXENTRIES": entries,
                    "WHENMODIFIED": now,
                }
            )
        if total < 0:
            raise IntacctError(
                "BL01001973",
                "The bill total cannot be negative",
                f"its lines add up to {total}",
                "Enter a negative total as an AP adjustment instead.",
            )
        bill: Record = {
            **{k: v for k, v in fields.items() if k != "APBILLITEMS"},
            "RECORDNO": recordno,
            "VENDORNAME": vendor["NAME"],
            "CURRENCY": currency,
            "BASECURR": company.base_currency,
            "STATE": "Draft" if str(fields.get("ACTION", "")).lower() == "draft" else "Posted",
            "TOTALENTERED": total,
            "TOTALPAID": Decimal(0),
            "APBILLITEMS": lines,
        }
        _bill_totals(bill, now)
        company.records["APBILL"][recordno] = bill
        return bill

    def _create_payment(self, company: Company, fields: Record, now: datetime) -> Record:
        vendor = company.records["VENDOR"].get(str(fields.get("VENDORID") or ""))
        if vendor is None:
            raise IntacctError(
                "BL01001973", "Invalid Vendor", f"Vendor ID {fields.get('VENDORID')!r}", ""
            )
        details_in = fields.get("APPYMTDETAILS") or []
        credit_only = bool(details_in) and all(
            not d.get("TRX_PAYMENTAMOUNT") and d.get("ADJUSTMENTKEY") for d in details_in
        )
        entity = fields.get("FINANCIALENTITY")
        method = fields.get("PAYMENTMETHOD")
        if not credit_only:
            # FINANCIALENTITY and PAYMENTMETHOD may be omitted only by a credit-only payment.
            if not entity:
                raise _required("APPYMT", "FINANCIALENTITY (the account to pay from)")
            card = company.records["CREDITCARD"].get(entity)
            bank = company.records["CHECKINGACCOUNT"].get(entity)
            if card is None and bank is None:
                raise _invalid(
                    "APPYMT", "FINANCIALENTITY", entity, "a checking account ID or a charge card ID"
                )
            if not method:
                raise _required("APPYMT", "PAYMENTMETHOD")
            if (card is not None) != (method == "Credit Card"):
                raise _invalid(
                    "APPYMT",
                    "PAYMENTMETHOD",
                    method,
                    "Credit Card for a charge card, a bank method for a checking account",
                )
        if not isinstance(fields.get("PAYMENTDATE"), date):
            raise _required("APPYMT", "PAYMENTDATE (mm/dd/yyyy)")
        details = fields.get("APPYMTDETAILS") or []
        if not details:
            raise IntacctError(
                "BL01001973",
                "A payment must be applied to at least one bill",
                "APPYMTDETAILS has no APPYMTDETAIL",
                "Add APPYMTDETAILS/APPYMTDETAIL with the bill's RECORDKEY.",
            )
        currency = str(fields.get("CURRENCY") or company.base_currency)
        recordno = company.recordno()
        applied: list[Record] = []
        total = Decimal(0)
        for n, detail in enumerate(details, start=1):
            bill = company.records["APBILL"].get(str(detail.get("RECORDKEY") or ""))
            if bill is None or bill["VENDORID"] != vendor["VENDORID"]:
                raise IntacctError(
                    "BL01001973",
                    "Invalid bill",
                    f"line {n}: bill {detail.get('RECORDKEY')!r} is not a bill of vendor "
                    f"{vendor['VENDORID']}",
                    "Apply the payment to the vendor's own posted bills.",
                )
            if bill["CURRENCY"] != currency:
                raise IntacctError(
                    "BL01001973",
                    "Currency mismatch",
                    f"bill {bill['RECORDNO']} is in {bill['CURRENCY']}, the payment in {currency}",
                    "Pay a bill in its own currency.",
                )
            amount = detail.get("TRX_PAYMENTAMOUNT") or Decimal(0)
            discount = detail.get("DISCOUNTTOAPPLY") or Decimal(0)
            credit = detail.get("TRX_ADJUSTMENTAMOUNT") or Decimal(0)
            adjustment = None
            if detail.get("ADJUSTMENTKEY"):
                adjustment = company.records["APADJUSTMENT"].get(str(detail["ADJUSTMENTKEY"]))
                if adjustment is None or adjustment["VENDORID"] != vendor["VENDORID"]:
                    raise IntacctError(
                        "BL01001973",
                        "Invalid adjustment",
                        f"line {n}: {detail['ADJUSTMENTKEY']!r} is not a debit memo of vendor "
                        f"{vendor['VENDORID']}",
                        "Apply the vendor's own posted debit memos.",
                    )
                if credit <= 0 or credit > -adjustment["TOTALDUE"]:
                    raise IntacctError(
                        "BL01001973",
                        "Adjustment amount exceeds what the debit memo has left",
                        f"debit memo {adjustment['RECORDNO']} has {-adjustment['TOTALDUE']} left; "
                        f"the payment applies {credit}",
                        "Apply at most what the debit memo has left.",
                    )
            elif credit:
                raise _required("APPYMTDETAIL", "ADJUSTMENTKEY (with TRX_ADJUSTMENTAMOUNT)")
            if amount < 0 or discount < 0 or (amount == 0 and credit == 0):
                raise _invalid("APPYMTDETAIL", "TRX_PAYMENTAMOUNT", amount, "a positive amount")
            if amount + discount + credit > bill["TOTALDUE"]:
                raise IntacctError(
                    "BL01001973",
                    "Payment exceeds the amount due",
                    f"bill {bill['RECORDNO']} has {bill['TOTALDUE']} due; the payment applies "
                    f"{amount + discount + credit}",
                    "Pay at most what the bill has due.",
                )
            total += amount
            line: Record = {
                "RECORDNO": company.recordno(),
                "PAYMENTKEY": recordno,
                "RECORDKEY": bill["RECORDNO"],
                "STATE": "C",
                "TRX_PAYMENTAMOUNT": amount.quantize(CENT, ROUND_HALF_UP),
                "DISCOUNTTOAPPLY": discount.quantize(CENT, ROUND_HALF_UP),
                "WHENMODIFIED": now,
            }
            if adjustment is not None:
                line["ADJUSTMENTKEY"] = adjustment["RECORDNO"]
                line["TRX_ADJUSTMENTAMOUNT"] = credit.quantize(CENT, ROUND_HALF_UP)
            applied.append(line)
        for detail in applied:
            _apply(company, detail, 1, now)
        payment: Record = {
            **{k: v for k, v in fields.items() if k != "APPYMTDETAILS"},
            "RECORDNO": recordno,
            "VENDORNAME": vendor["NAME"],
            "CURRENCY": currency,
            "BASECURR": company.base_currency,
            "STATE": "C",
            "AMOUNTTOPAY": total,
            "TOTALENTERED": total,
            "APPYMTDETAILS": applied,
            "WHENMODIFIED": now,
        }
        company.records["APPYMT"][recordno] = payment
        return payment


def _apply(company: Company, detail: Record, sign: int, now: datetime) -> None:
    """A payment detail's effect on its bill and debit memo (sign -1 takes it back)."""
    bill = company.records["APBILL"][detail["RECORDKEY"]]
    credit = detail.get("TRX_ADJUSTMENTAMOUNT") or Decimal(0)
    paid = detail["TRX_PAYMENTAMOUNT"] + detail.get("DISCOUNTTOAPPLY", Decimal(0)) + credit
    bill["TOTALPAID"] += sign * paid
    _bill_totals(bill, now)
    if detail.get("ADJUSTMENTKEY"):
        adjustment = company.records["APADJUSTMENT"][detail["ADJUSTMENTKEY"]]
        adjustment["TOTALPAID"] += sign * credit
        adjustment["TOTALDUE"] = adjustment["TOTALENTERED"] + adjustment["TOTALPAID"]
        adjustment["TRX_TOTALDUE"] = adjustment["TOTALDUE"]
        adjustment["TRX_TOTALPAID"] = adjustment["TOTALPAID"]
        adjustment["WHENMODIFIED"] = now


def _legacy_date(element: Element | None, name: str) -> date:
    """A legacy <year/><month/><day/> date."""
    try:
        assert element is not None
        return date(
            int(element.findtext("year") or ""),
            int(element.findtext("month") or ""),
            int(element.findtext("day") or ""),
        )
    except (AssertionError, ValueError) as exc:
        raise _required("create_apadjustment", f"{name} (year, month, day)") from exc


def _bill_totals(bill: Record, now: datetime) -> None:
    bill["TOTALDUE"] = bill["TOTALENTERED"] - bill["TOTALPAID"]
    for name in ("TOTALENTERED", "TOTALPAID", "TOTALDUE"):
        bill[f"TRX_{name}"] = bill[name]
    if bill["STATE"] != "Draft":
        if bill["TOTALDUE"] <= 0 and bill["TOTALENTERED"] > 0:
            bill["STATE"] = "Paid"
        elif bill["TOTALPAID"] > 0:
            bill["STATE"] = "Partially Paid"
        else:
            bill["STATE"] = "Posted"
    bill["WHENMODIFIED"] = now


def _snapshot(company: Company) -> Any:
    import copy

    return copy.deepcopy((company.records, company.supdocs, company.next_recordno))


def _restore(company: Company, snapshot: Any) -> None:
    company.records, company.supdocs, company.next_recordno = snapshot


def _required(obj: str, name: str) -> IntacctError:
    return IntacctError(
        "BL01001973",
        f"Required field missing: {name}",
        f"{obj} needs {name}",
        f"Send {name} on the {obj}.",
    )


def _duplicate(obj: str, key: str, value: Any) -> IntacctError:
    return IntacctError(
        "BL01001973",
        f"Another {obj} with the given value(s) already exists",
        f"{key} {value!r} is taken",
        f"Use another {key}, or read the existing {obj}.",
    )


def _invalid(obj: str, name: str, value: Any, wanted: str) -> IntacctError:
    return IntacctError(
        "BL01001973",
        f"Invalid {name}",
        f"{obj}.{name} {value!r} is not {wanted}",
        f"Send {name} as {wanted}.",
    )


# --- XML in and out ---------------------------------------------------------------------------


def _children(element: Element | None) -> dict[str, str]:
    if element is None:
        return {}
    return {child.tag: (child.text or "").strip() for child in element if len(child) == 0}


def _parse_value(name: str, text: str) -> Any:
    text = text.strip()
    if name in MONEY_FIELDS:
        try:
            return Decimal(text) if text else None
        except InvalidOperation as exc:
            raise _invalid("record", name, text, "a decimal amount") from exc
    if name in DATE_FIELDS:
        if not text:
            return None
        try:
            return datetime.strptime(text, DATE_FORMAT).date()
        except ValueError as exc:
            raise _invalid("record", name, text, "a date as mm/dd/yyyy") from exc
    return text


def _read_record(element: Element) -> Record:
    """An object's fields as the emulator keeps them (amounts Decimal, dates date)."""
    record: Record = {}
    for child in element:
        name = child.tag.upper()
        if name in ("APBILLITEMS", "APPYMTDETAILS", "TAXENTRIES"):
            record[name] = [_read_record(item) for item in child]
        elif len(child):
            record[name] = {sub.tag.upper(): (sub.text or "").strip() for sub in child}
        else:
            value = _parse_value(name, child.text or "")
            if value is not None and value != "":
                record[name] = value
    return record


def _format(name: str, value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    if isinstance(value, date):
        return value.strftime(DATE_FORMAT)
    if isinstance(value, Decimal):
        return format(
            value.quantize(CENT) if name in MONEY_FIELDS and name != "EXCHANGE_RATE" else value, "f"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _record_element(
    obj: str, record: Record, fields: Iterable[str] | None, *, with_children: bool
) -> Element:
    out = Element(obj)
    wanted = None if fields is None else [f.upper() for f in fields]
    names = wanted if wanted is not None else list(record)
    for name in names:
        # A related field asked by its dotted name comes back flat under that name.
        value = _value(record, name)
        if name in ("APBILLITEMS", "APPYMTDETAILS", "APADJUSTMENTITEMS", "EXCHANGERATEENTRIES"):
            if with_children and isinstance(value, list):
                collection = SubElement(out, name)
                child_obj = CHILDREN[obj][1]
                for child in value:
                    collection.append(_record_element(child_obj, child, None, with_children=False))
            continue
        element = SubElement(out, name)
        if isinstance(value, list):
            # A line's own collection (TAXENTRIES of TAXENTRY) comes with the line.
            for item in value:
                one = SubElement(element, name[:-3] + "Y" if name.endswith("IES") else name[:-1])
                for sub, text in item.items():
                    SubElement(one, sub).text = _format(sub, text)
        elif isinstance(value, dict):
            for sub, text in value.items():
                SubElement(element, sub).text = _format(sub, text)
        elif value is not None:
            element.text = _format(name, value)
    return out


def _error_element(error: IntacctError) -> Element:
    out = Element("error")
    SubElement(out, "errorno").text = error.errorno
    SubElement(out, "description").text = error.description
    support = f"[Support ID: {secrets.token_hex(4)}]"
    SubElement(out, "description2").text = f"{error.description2} {support}".strip()
    SubElement(out, "correction").text = error.correction
    return out


def _control_element(control: dict[str, str], status: str) -> Element:
    out = Element("control")
    SubElement(out, "status").text = status
    for name in ("senderid", "controlid", "uniqueid", "dtdversion"):
        SubElement(out, name).text = control.get(name, "")
    return out


def _control_failure(control: dict[str, str], error: IntacctError) -> Element:
    response = Element("response")
    response.append(_control_element(control, "failure"))
    SubElement(response, "errormessage").append(_error_element(error))
    return response


def _xml(element: Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(element, encoding="utf-8")


def _answer(element: Element) -> Response:
    return Response(_xml(element), media_type="text/xml")


def _field_list(text: str | None) -> list[str] | None:
    names = [f.strip().upper() for f in (text or "").split(",") if f.strip()]
    return None if not names or names == ["*"] else names


def _page_size(text: str | None, maximum: int) -> int:
    if not text:
        return DEFAULT_PAGE
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= maximum:
        raise IntacctError(
            "DL02000001",
            "There was an error processing the request.",
            f"pagesize {text!r} must be 1 to {maximum}",
            f"Send a pagesize from 1 to {maximum}.",
        )
    return size


def _comparable(name: str, raw: Any, literal: str) -> tuple[Any, Any]:
    """A record's value and a query literal made comparable (dates, timestamps, amounts)."""
    if raw is None:
        return None, literal
    if isinstance(raw, datetime):
        for form in (TIMESTAMP_FORMAT, DATE_FORMAT):
            try:
                return raw.replace(microsecond=0), datetime.strptime(literal, form).replace(
                    tzinfo=UTC
                )
            except ValueError:
                continue
        raise ValueError(f"{name} takes mm/dd/yyyy hh:mm:ss, not {literal!r}")
    if isinstance(raw, date):
        try:
            return raw, datetime.strptime(literal, DATE_FORMAT).date()
        except ValueError as exc:
            raise ValueError(f"{name} takes mm/dd/yyyy, not {literal!r}") from exc
    if isinstance(raw, Decimal):
        try:
            return raw, Decimal(literal)
        except InvalidOperation as exc:
            raise ValueError(f"{name} takes a number, not {literal!r}") from exc
    return str(raw), literal


def _value(record: Record, name: str) -> Any:
    """A field, or a related one named with a dot (DISPLAYCONTACT.EMAIL1), as Intacct's
    queries and field lists name them."""
    if name in record or "." not in name:
        return record.get(name)
    head, _, rest = name.partition(".")
    nested = record.get(head)
    return nested.get(rest) if isinstance(nested, dict) else None


def _compare(record: Record, name: str, op: str, literal: str, insensitive: bool = False) -> bool:
    value, wanted = _comparable(name, _value(record, name), literal)
    if value is None:
        return op in ("!=", "<>")
    if insensitive and isinstance(value, str):
        value, wanted = value.casefold(), wanted.casefold()
    if op == "=":
        return bool(value == wanted)
    if op in ("!=", "<>"):
        return bool(value != wanted)
    if op == "<":
        return bool(value < wanted)
    if op == ">":
        return bool(value > wanted)
    if op == "<=":
        return bool(value <= wanted)
    if op == ">=":
        return bool(value >= wanted)
    raise ValueError(f"unknown operator {op}")


def _like(value: Any, pattern: str, insensitive: bool = False) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE | re.DOTALL if insensitive else re.DOTALL
    return value is not None and re.fullmatch(regex, str(value), flags) is not None


def _sorter(name: str) -> Callable[[Record], tuple[int, Any]]:
    return lambda record: _sort_key(_value(record, name))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, Decimal | int):
        return (1, value)
    if isinstance(value, datetime | date):
        return (2, value.isoformat())
    text = str(value)
    return (3, int(text)) if text.isdigit() else (4, text)


# --- readByQuery's SQL-like query -------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op><=|>=|<>|!=|=|<|>)|(?P<paren>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)|(?P<num>-?\d+(?:\.\d+)?))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read the query at {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
    return out


def parse_query(text: str) -> Callable[[Record], bool]:
    """A readByQuery `query` as a predicate over records; ValueError says what is wrong."""
    tokens = _tokens(text)
    position = 0

    def peek() -> tuple[str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise ValueError("the query ends too early")
        token = tokens[position]
        position += 1
        return token

    def keyword(word: str) -> bool:
        token = peek()
        return token is not None and token[0] == "word" and token[1].upper() == word

    def literal() -> str:
        kind, value = take()
        if kind not in ("str", "num"):
            raise ValueError(f"expected a value, found {value!r}")
        return value

    def expression() -> Callable[[Record], bool]:
        left = term()
        while keyword("OR"):
            take()
            right = term()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def term() -> Callable[[Record], bool]:
        left = factor()
        while keyword("AND"):
            take()
            right = factor()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def factor() -> Callable[[Record], bool]:
        if keyword("NOT"):
            take()
            inner = factor()
            return lambda r: not inner(r)
        token = take()
        if token == ("paren", "("):
            inner = expression()
            if take() != ("paren", ")"):
                raise ValueError("a parenthesis is not closed")
            return inner
        if token[0] != "word":
            raise ValueError(f"expected a field name, found {token[1]!r}")
        name = token[1].upper()
        negate = False
        if keyword("IS"):
            take()
            if keyword("NOT"):
                take()
                negate = True
            if not keyword("NULL"):
                raise ValueError("IS must be followed by NULL or NOT NULL")
            take()
            return lambda r: (_value(r, name) in (None, "")) != negate
        if keyword("NOT"):
            take()
            negate = True
        if keyword("LIKE"):
            take()
            pattern = literal()
            return lambda r: _like(_value(r, name), pattern) != negate
        if keyword("IN"):
            take()
            if take() != ("paren", "("):
                raise ValueError("IN needs a list in parentheses")
            values = [literal()]
            while peek() == ("paren", ","):
                take()
                values.append(literal())
            if take() != ("paren", ")"):
                raise ValueError("the IN list is not closed")
            return lambda r: any(_compare(r, name, "=", v) for v in values) != negate
        if negate:
            raise ValueError("NOT must be followed by LIKE or IN here")
        kind, op = take()
        if kind != "op":
            raise ValueError(f"expected an operator after {name}, found {op!r}")
        value = literal()
        return lambda r: _compare(r, name, op, value)

    predicate = expression()
    if position != len(tokens):
        raise ValueError(f"unexpected {tokens[position][1]!r}")
    return predicate


# --- query's filter elements ------------------------------------------------------------------

_FILTER_OPS = {
    "equalto": "=",
    "notequalto": "!=",
    "lessthan": "<",
    "lessthanorequalto": "<=",
    "greaterthan": ">",
    "greaterthanorequalto": ">=",
}


def _filter_predicate(element: Element, insensitive: bool) -> Callable[[Record], bool]:
    tag = element.tag.lower()
    if tag in ("and", "or"):
        parts = [_filter_predicate(child, insensitive) for child in element]
        if tag == "and":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    name = (element.findtext("field") or "").strip().upper()
    values = [(v.text or "").strip() for v in element.findall("value")]
    if not name:
        raise IntacctError(
            "DL02000001",
            "There was an error processing the request.",
            f"<{tag}> needs a <field>",
            "",
        )
    if tag in _FILTER_OPS:
        op = _FILTER_OPS[tag]
        value = values[0] if values else ""
        return lambda r: _compare(r, name, op, value, insensitive)
    if tag in ("like", "notlike"):
        pattern = values[0] if values else ""
        return lambda r: _like(_value(r, name), pattern, insensitive) != (tag == "notlike")
    if tag in ("in", "notin"):
        return lambda r: (
            any(_compare(r, name, "=", v, insensitive) for v in values) != (tag == "notin")
        )
    if tag in ("isnull", "isnotnull"):
        return lambda r: (_value(r, name) in (None, "")) == (tag == "isnull")
    raise IntacctError(
        "DL02000001",
        "There was an error processing the request.",
        f"unknown filter <{tag}>",
        "Use equalto, lessthan, greaterthan, like, in, isnull, and, or (and their variants).",
    )


class _BodyFaultInjector(FaultInjector):
    """Every Intacct call is POST to one path, so faults match on "POST <path> <function>
    <OBJECT>" read from the body (e.g. "create APBILL"), then the body is passed on.
    A "revoke" fault removes the Web Services user of the request's company first."""

    on_revoke: Callable[[bytes], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        summary = _summarize(body)
        line = f"{scope['method']} {scope['path']} {summary}"
        is_write = any(summary.startswith(w) for w in ("create", "update", "delete"))
        import asyncio

        if self.faults.latency_seconds:
            await asyncio.sleep(self.faults.latency_seconds)
        kind = self.faults.pick(line, is_write=is_write)
        if kind == "revoke" and self.on_revoke is not None:
            self.on_revoke(body)
            kind = None
        if kind == "5xx":
            from sandbox.faults import _respond

            await _respond(send, *self.server_error())
        elif kind == "429":
            from sandbox.faults import _respond

            await _respond(send, *self.throttled(self.faults.retry_after_seconds))
        elif kind == "drop":
            await self._commit_then_drop(scope, replay, send)
        else:
            await self.app(scope, replay, send)


def _summarize(body: bytes) -> str:
    """ "create APBILL", "readByQuery VENDOR": the first function of a request, for faults."""
    try:
        root = SafeET.fromstring(body)
    except Exception:  # noqa: BLE001 - faults still apply to unreadable bodies
        return ""
    function = root.find("operation/content/function")
    if function is None or not len(function):
        return ""
    verb = function[0]
    obj = verb.findtext("object") or (
        verb[0].tag if len(verb) and verb.tag in ("create", "update") else ""
    )
    return f"{verb.tag} {obj.upper()}".strip()


def supdoc_id_for(key: str) -> str:
    """A supdoc id (at most 20 characters) derived from an idempotency key."""
    return "R" + hashlib.sha256(key.encode()).hexdigest()[:19].upper()


_DEMO_ACCOUNTS: dict[str, tuple[str, str, str, str]] = {
    # number: (title, category, ACCOUNTTYPE, NORMALBALANCE); categories are the emulator's
    # names for Intacct's account categories (their real list is unverified).
    "1000": ("Operating Bank", "Cash and Cash Equivalents", "balancesheet", "debit"),
    "1010": ("Operating Bank EUR", "Cash and Cash Equivalents", "balancesheet", "debit"),
    "1200": ("Accounts Receivable", "Accounts Receivable", "balancesheet", "debit"),
    "2000": ("Accounts Payable", "Accounts Payable", "balancesheet", "credit"),
    "2100": ("Company Card", "Credit Card", "balancesheet", "credit"),
    "2200": ("Sales Tax Payable", "Other Current Liabilities", "balancesheet", "credit"),
    "3000": ("Owner's Equity", "Equity", "balancesheet", "credit"),
    "4000": ("Sales", "Revenue", "incomestatement", "credit"),
    "5000": ("Cost of Goods Sold", "Cost of Sales", "incomestatement", "debit"),
    "5900": ("Purchase Discounts", "Cost of Sales", "incomestatement", "credit"),
    "6100": ("Office Supplies", "Expenses", "incomestatement", "debit"),
    "6200": ("Repairs and Maintenance", "Expenses", "incomestatement", "debit"),
    "6300": ("Professional Fees", "Expenses", "incomestatement", "debit"),
    "6400": ("Software Subscriptions", "Expenses", "incomestatement", "debit"),
}
_DEMO_BANKS: dict[str, tuple[str, str, str]] = {
    # financial entity id: (its GL account, currency, description)
    "BOA-CHK": ("1000", "USD", "Operating account"),
    "BOA-EUR": ("1010", "EUR", "Euro operating account"),
    "AMEX": ("2100", "USD", "Company charge card"),
}
_DEMO_RATES = {"EUR": Decimal("1.08")}
_DEMO_TAX_DETAILS: dict[str, tuple[str, Decimal, str]] = {
    # DETAILID: (description, rate percent, TAXTYPE); a VAT company's purchase details and
    # one sales detail (not for bills).
    "DE Standard Rate Purchase 19%": ("Germany standard rate 19%", Decimal("19"), "Purchase"),
    "SE Standard Rate Purchase 25%": ("Sweden standard rate 25%", Decimal("25"), "Purchase"),
    "SE Reduced Rate Purchase 12%": ("Sweden reduced rate 12%", Decimal("12"), "Purchase"),
    "Zero Rated Purchase": ("Zero rated purchases", Decimal("0"), "Purchase"),
    "Exempt Purchase": ("Exempt purchases", Decimal("0"), "Purchase"),
    "Reverse Charge Purchase": ("Reverse charge services", Decimal("0"), "Purchase"),
    "EC Acquisition Purchase": ("Intra-community acquisition of goods", Decimal("0"), "Purchase"),
    "No VAT Purchase": ("No VAT (outside the scope)", Decimal("0"), "Purchase"),
    "US Sales Tax": ("US sales tax", Decimal("8.25"), "Sale"),
}
_DEMO_DIMENSIONS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "DEPARTMENT",
        "DEPARTMENTID",
        "TITLE",
        [("OPS", "Operations"), ("FIN", "Finance"), ("SALES", "Sales")],
    ),
    ("LOCATION", "LOCATIONID", "NAME", [("HQ", "Headquarters"), ("WEST", "West Office")]),
    ("CLASS", "CLASSID", "NAME", [("EAST", "East"), ("WESTC", "West")]),
    ("PROJECT", "PROJECTID", "NAME", [("P100", "Office move")]),
]
_DEMO_VENDORS: dict[str, Record] = {
    "Northwind Office Supply": {
        "TAXID": "94-1234567",
        "DISPLAYCONTACT": {
            "EMAIL1": "ar@northwind.example",
            "COMPANYNAME": "Northwind Office Supply LLC",
        },
        "DEFAULTEXPENSEACCOUNT": "6100",
        "ACHBANKROUTINGNUMBER": "021000021",
        "ACHACCOUNTNUMBER": "000123456789",
        "ACHACCOUNTTYPE": "Checking Account",
    },
    "Fabrikam GmbH": {
        "TAXID": "DE123456789",
        "CURRENCY": "EUR",
        "DISPLAYCONTACT": {"EMAIL1": "buchhaltung@fabrikam.example"},
        "DEFAULTEXPENSEACCOUNT": "6200",
    },
    "Globex Software": {"TAXID": "12-3456789", "DEFAULTEXPENSEACCOUNT": "6400"},
    "Initech Consulting": {"DEFAULTEXPENSEACCOUNT": "6300"},
    "Acme Corp": {},
    "ACME Corporation": {},
    SEEDED_BILLS_VENDOR: {"TAXID": "77-7654321", "DEFAULTEXPENSEACCOUNT": "6200"},
}
