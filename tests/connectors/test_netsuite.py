"""NetSuite specifics: the emulator's native REST behaviour, OAuth 2.0 M2M, and error mapping."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from accounting import (
    Bill,
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    CreditApplication,
    PaymentTerms,
    Vendor,
)
from connectors.base import (
    AuthExpired,
    Conflict,
    ConnectionConfig,
    ConnectionRevoked,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)
from connectors.netsuite import wire
from connectors.netsuite.client import NetSuiteConnector, client_assertion, fetch_access_token
from connectors.retries import READ_ATTEMPTS
from sandbox.netsuite import NetSuiteEmulator
from sandbox.registry import DemoCompany
from tests.connectors.conftest import asgi_transport, unique

BASE = "http://netsuite.emulator"
RECORD = "/services/rest/record/v1"
TOKEN_URL = f"{BASE}/services/rest/auth/oauth2/v1/token"


@dataclass
class NetSuite:
    emulator: NetSuiteEmulator
    company: DemoCompany
    http: httpx.AsyncClient

    @property
    def token(self) -> str:
        return self.company.credentials["access_token"]

    def connection(self, **overrides: Any) -> ConnectionConfig:
        fields: dict[str, Any] = {
            "id": "conn-ns",
            "platform": "netsuite",
            "base_url": BASE,
            "company_id": self.company.company_id,
            "credentials": dict(self.company.credentials),
            "settings": dict(self.company.settings),
            **overrides,
        }
        return ConnectionConfig(**fields)

    def connector(self, **overrides: Any) -> NetSuiteConnector:
        return NetSuiteConnector(self.connection(**overrides), self.http)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        **params: str,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        content = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            content = wire.dumps(body)
        return await self.http.request(
            method, path, params=params or None, headers=all_headers, content=content
        )


@pytest.fixture
async def ns() -> AsyncIterator[NetSuite]:
    emulator = NetSuiteEmulator()
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi_transport(emulator.app), base_url=BASE) as http:
        yield NetSuite(emulator, company, http)


def error_code(response: httpx.Response) -> str:
    details = wire.loads(response.text)["o:errorDetails"]
    return str(details[0]["o:errorCode"])


def error_detail(response: httpx.Response) -> str:
    return str(wire.loads(response.text)["o:errorDetails"][0]["detail"])


async def vendor_id(ns: NetSuite, name: str) -> str:
    q = f"companyName IS {wire.q_string(name)}"
    found = wire.loads((await ns.call("GET", f"{RECORD}/vendor", q=q)).text)["items"]
    assert len(found) == 1
    return str(found[0]["id"])


async def account_id(ns: NetSuite, name: str) -> str:
    q = f"acctName IS {wire.q_string(name)}"
    found = wire.loads((await ns.call("GET", f"{RECORD}/account", q=q)).text)["items"]
    return str(found[0]["id"])


async def bill_body(ns: NetSuite, amount: str = "120.00", **extra: Any) -> dict[str, Any]:
    return {
        "entity": {"id": await vendor_id(ns, "Northwind Office Supply")},
        "subsidiary": {"id": ns.company.settings["subsidiary_id"]},
        "tranId": unique("INV")[:20],
        "tranDate": "2026-07-01",
        "currency": {"id": "1"},
        "expense": {
            "items": [
                {
                    "account": {"id": await account_id(ns, "Office Supplies")},
                    "amount": Decimal(amount),
                    "memo": "Paper",
                }
            ]  # fmt: skip
        },
        **extra,
    }


# ---------------------------------------------------------------------------------------------
# Record service
# ---------------------------------------------------------------------------------------------


async def test_create_answers_204_with_the_new_records_location(ns: NetSuite) -> None:
    created = await ns.call("POST", f"{RECORD}/vendorBill", await bill_body(ns, "120.10"))
    assert created.status_code == 204
    assert created.content == b""
    location = created.headers["Location"]
    assert location.startswith(f"{BASE}{RECORD}/vendorBill/")
    record = wire.loads((await ns.call("GET", location, expandSubResources="true")).text)
    assert record["id"] == wire.id_from_location(location)
    assert record["total"] == Decimal("120.10")
    assert record["status"] == {"id": "A", "refName": "Open"}
    assert record["expense"]["items"][0]["amount"] == Decimal("120.10")
    collapsed = wire.loads((await ns.call("GET", location)).text)
    assert "items" not in collapsed["expense"]  # sublists only inline with expandSubResources


async def test_eid_upsert_repeated_updates_the_same_record(ns: NetSuite) -> None:
    body = await bill_body(ns)
    path = f"{RECORD}/vendorBill/eid:{wire.external_id_for('key-1')}"
    first = await ns.call("PUT", path, body, replace="expense")
    second = await ns.call("PUT", path, body, replace="expense")
    assert first.status_code == second.status_code == 204
    assert first.headers["Location"] == second.headers["Location"]
    q = f"externalId IS {wire.q_string(wire.external_id_for('key-1'))}"
    listed = wire.loads((await ns.call("GET", f"{RECORD}/vendorBill", q=q)).text)
    assert listed["totalResults"] == 1
    record = wire.loads((await ns.call("GET", path, expandSubResources="true")).text)
    assert len(record["expense"]["items"]) == 1  # replace=expense: lines not added twice


async def test_connector_create_with_the_same_key_makes_one_bill(ns: NetSuite) -> None:
    connector = ns.connector()
    vendor = await vendor_id(ns, "Globex Software")
    bill = Bill(
        vendor_id=vendor,
        document_number="GLX-1",
        issue_date=date(2026, 7, 1),
        due_date=date(2026, 7, 31),
        currency="USD",
        lines=[
            BillLine(
                amount=Decimal("99.99"), account_id=await account_id(ns, "Software Subscriptions")
            )
        ],
        total=Decimal("99.99"),
    )
    first = await connector.create_bill(bill, reference="ref-glx-1", idempotency_key="k-glx-1")
    again = await connector.create_bill(bill, reference="ref-glx-1", idempotency_key="k-glx-1")
    assert first.id == again.id
    assert await connector.find_bills(vendor_id=vendor, document_number="GLX-1") == [again]
    found = await connector.find_bill_by_reference("ref-glx-1", vendor_id=vendor)
    assert found is not None and found.id == first.id and found.reference == "ref-glx-1"
    assert found.memo is None  # the reference tag is not shown as the person's memo


async def test_collections_list_ids_only_across_pages(ns: NetSuite) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        page = wire.loads(
            (await ns.call("GET", f"{RECORD}/vendor", limit="2", offset=str(offset))).text
        )
        assert page["offset"] == offset and page["count"] == len(page["items"]) <= 2
        assert all(set(item) == {"links", "id"} for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        rels = {link["rel"] for link in page["links"]}
        if not page["hasMore"]:
            assert "next" not in rels
            break
        assert "next" in rels
        offset += page["count"]
    assert page["totalResults"] == len(seen) == len(set(seen)) == 6


async def test_connector_pages_with_offset_cursors(ns: NetSuite) -> None:
    connector = NetSuiteConnector(ns.connection(), ns.http, page_size=2)
    first = await connector.list_vendors()
    assert [len(first.items), first.next_cursor] == [2, "2"]
    second = await connector.list_vendors(first.next_cursor)
    third = await connector.list_vendors(second.next_cursor)
    assert third.next_cursor is None
    names = [v.name for page in (first, second, third) for v in page.items]
    assert sorted(names) == sorted(
        ["Northwind Office Supply", "Globex Software", "Initech Consulting", "Acme Corp",
         "ACME Corporation", "Fabrikam GmbH"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('companyName START_WITH "acme"', {"Acme Corp", "ACME Corporation"}),
        ('companyName IS "acme corp"', {"Acme Corp"}),
        ('taxIdNum EMPTY_NOT AND companyName CONTAIN "soft"', {"Globex Software"}),
        (
            'companyName IS "Initech Consulting" OR taxIdNum IS "94-1234567"',
            {"Initech Consulting", "Northwind Office Supply"},
        ),  # fmt: skip
        ('lastModifiedDate ON_OR_AFTER "2999-01-01"', set()),
    ],
)
async def test_q_filter(ns: NetSuite, q: str, expected: set[str]) -> None:
    listed = wire.loads((await ns.call("GET", f"{RECORD}/vendor", q=q)).text)
    names = set()
    for item in listed["items"]:
        names.add(wire.loads((await ns.call("GET", item["links"][0]["href"])).text)["companyName"])
    assert names == expected


async def test_q_filter_by_id_list_and_bad_query(ns: NetSuite) -> None:
    ids = [await vendor_id(ns, "Acme Corp"), await vendor_id(ns, "Globex Software")]
    listed = wire.loads(
        (await ns.call("GET", f"{RECORD}/vendor", q=f"id ANY_OF [{', '.join(ids)}]")).text
    )
    assert sorted(item["id"] for item in listed["items"]) == sorted(ids)
    bad = await ns.call("GET", f"{RECORD}/vendor", q="companyName SOUNDS_LIKE x")
    assert bad.status_code == 400 and error_code(bad) == "INVALID_PARAMETER"


async def test_suiteql_requires_prefer_transient(ns: NetSuite) -> None:
    path = "/services/rest/query/v1/suiteql"
    statement = {"q": "SELECT id, companyname FROM vendor WHERE taxidnum = '12-3456789'"}
    refused = await ns.call("POST", path, statement)
    assert refused.status_code == 400 and error_code(refused) == "INVALID_HEADER"
    answered = await ns.call("POST", path, statement, headers={"Prefer": "transient"})
    assert answered.status_code == 200
    rows = wire.loads(answered.text)["items"]
    assert [row["companyname"] for row in rows] == ["Globex Software"]


async def test_async_idempotency_key_refuses_a_repeat(ns: NetSuite) -> None:
    headers = {"Prefer": "respond-async", "X-NetSuite-idempotency-key": "9f1c0c7e-0000-4000-8000-1"}
    body = {"companyName": "Async Vendor", "subsidiary": {"id": "1"}}
    accepted = await ns.call("POST", f"{RECORD}/vendor", body, headers=headers)
    assert accepted.status_code == 202
    assert accepted.headers["Preference-Applied"] == "respond-async"
    job_url = accepted.headers["Location"]
    repeat = await ns.call("POST", f"{RECORD}/vendor", body, headers=headers)
    assert repeat.status_code == 400 and error_code(repeat) == "IDEMPOTENCY_ERROR"
    assert repeat.headers["Location"] == job_url
    job = wire.loads((await ns.call("GET", job_url)).text)
    assert job["completed"] is True and job["progress"] == "succeeded"
    result = await ns.call("GET", f"{job_url}/task/{job['id']}/result")
    assert result.status_code == 204 and "/vendor/" in result.headers["Location"]
    q = 'companyName IS "Async Vendor"'
    assert wire.loads((await ns.call("GET", f"{RECORD}/vendor", q=q)).text)["totalResults"] == 1


async def test_subsidiary_is_required_on_transactions(ns: NetSuite) -> None:
    body = await bill_body(ns)
    del body["subsidiary"]
    refused = await ns.call("POST", f"{RECORD}/vendorBill", body)
    assert refused.status_code == 400 and error_code(refused) == "USER_ERROR"
    assert "Please enter value(s) for: Subsidiary" in error_detail(refused)
    # A connection without the setting is refused before anything is sent.
    settings = {k: v for k, v in ns.company.settings.items() if k != "subsidiary_id"}
    connector = ns.connector(settings=settings)
    bill = Bill(
        vendor_id=body["entity"]["id"],
        issue_date=date(2026, 7, 1),
        currency="USD",
        lines=[
            BillLine(amount=Decimal("5"), account_id=body["expense"]["items"][0]["account"]["id"])
        ],
        total=Decimal("5"),
    )
    with pytest.raises(Rejected, match="subsidiary"):
        await connector.create_bill(bill, reference="r", idempotency_key="k")


async def test_overpayment_is_refused_and_full_payment_marks_the_bill_paid(ns: NetSuite) -> None:
    location = (
        await ns.call("POST", f"{RECORD}/vendorBill", await bill_body(ns, "50.00"))
    ).headers["Location"]
    bill_id = wire.id_from_location(location)
    payment: dict[str, Any] = {
        "entity": {"id": await vendor_id(ns, "Northwind Office Supply")},
        "subsidiary": {"id": "1"},
        "account": {"id": ns.company.settings["bank_account_id"]},
        "apply": {"items": [{"doc": {"id": bill_id}, "apply": True, "amount": Decimal("50.01")}]},
    }
    refused = await ns.call("POST", f"{RECORD}/vendorPayment", payment)
    assert refused.status_code == 400 and "exceeds the amount remaining" in error_detail(refused)
    payment["apply"]["items"][0]["amount"] = Decimal("50.00")
    assert (await ns.call("POST", f"{RECORD}/vendorPayment", payment)).status_code == 204
    bill = wire.loads((await ns.call("GET", location)).text)
    assert bill["status"]["refName"] == "Paid In Full"
    assert bill["amountRemaining"] == 0


async def test_tax_exclusive_eur_bill_round_trips_and_pays_in_full(ns: NetSuite) -> None:
    connector = ns.connector()
    vendor = await connector.create_vendor(
        Vendor(name="Rheinwerk Maschinenbau GmbH", currency="EUR"),
        reference="rheinwerk",
        idempotency_key="rheinwerk",
    )
    assert vendor.id is not None
    office = await account_id(ns, "Office Supplies")
    bill = await connector.create_bill(
        Bill(
            vendor_id=vendor.id,
            document_number="RE-88123",
            issue_date=date(2026, 11, 5),
            due_date=date(2026, 12, 5),
            currency="EUR",
            lines=[
                BillLine(amount=Decimal("600.00"), account_id=office),
                BillLine(amount=Decimal("250.00"), account_id=office),
            ],
            tax_amount=Decimal("161.50"),
            total=Decimal("1011.50"),
        ),
        reference="eur-taxed",
        idempotency_key="eur-taxed",
    )
    assert bill.id is not None
    read = await connector.get_bill(bill.id)
    assert (read.currency, read.total, read.tax_amount, read.balance) == (
        "EUR",
        Decimal("1011.50"),
        Decimal("161.50"),
        Decimal("1011.50"),
    )
    await connector.create_bill_payment(
        BillPayment(
            vendor_id=vendor.id,
            payment_date=date(2026, 12, 1),
            currency="EUR",
            source_account_id=ns.company.settings["bank_account_id:EUR"],
            total=Decimal("1011.50"),
            lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal("1011.50"))],
        ),
        reference="eur-taxed-pay",
        idempotency_key="eur-taxed-pay",
    )
    paid = await connector.get_bill(bill.id)
    assert (paid.status, paid.total, paid.tax_amount, paid.balance) == (
        BillStatus.paid,
        Decimal("1011.50"),
        Decimal("161.50"),
        Decimal("0"),
    )


# ---------------------------------------------------------------------------------------------
# Concurrency governance
# ---------------------------------------------------------------------------------------------


async def test_concurrency_limit_is_rate_limited(ns: NetSuite) -> None:
    ns.emulator.gate = asyncio.Event()
    held = [
        asyncio.create_task(ns.call("GET", f"{RECORD}/currency"))
        for _ in range(ns.emulator.concurrency_limit)
    ]
    while ns.emulator.in_flight < ns.emulator.concurrency_limit:
        await asyncio.sleep(0)
    with pytest.raises(RateLimited) as raised:
        await ns.connector().get_vendor("1")
    assert raised.value.code == "CONCURRENCY_LIMIT_EXCEEDED"
    assert raised.value.retry_after == timedelta(seconds=5)  # no Retry-After: documented default
    ns.emulator.gate.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200] * len(held)
    ns.emulator.gate = None
    assert (await ns.connector().get_vendor(await vendor_id(ns, "Acme Corp"))).name == "Acme Corp"


# ---------------------------------------------------------------------------------------------
# OAuth 2.0
# ---------------------------------------------------------------------------------------------


def _jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2lnbmF0dXJl"


async def request_token(ns: NetSuite, assertion: str) -> httpx.Response:
    return await ns.http.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


async def test_m2m_assertion_from_the_seeded_certificate_mints_a_working_token(
    ns: NetSuite,
) -> None:
    token = await fetch_access_token(ns.http, ns.connection(credentials={
        k: v for k, v in ns.company.credentials.items() if k != "refresh_token"
    }))  # fmt: skip
    assert token["token_type"] == "bearer" and token["expires_in"] == "3600"
    fresh = ns.connector(credentials={"access_token": token["access_token"]})
    assert "Operating Bank" in {a.name for a in await fresh.list_accounts()}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


async def test_m2m_ps256_assertion_is_accepted(ns: NetSuite, rsa_key: rsa.RSAPrivateKey) -> None:
    private, public = pem(rsa_key)
    mapping = ns.emulator.register_certificate(ns.company.company_id, public)
    assertion = client_assertion(
        client_id=mapping.client_id,
        certificate_id=mapping.certificate_id,
        private_key_pem=private,
        audience=TOKEN_URL,
        scope="rest_webservices,restlets",
    )
    assert json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))["alg"] == "PS256"
    answer = await request_token(ns, assertion)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert (await ns.call("GET", f"{RECORD}/currency", token=token)).status_code == 200


def _assertion(ns: NetSuite, **changes: Any) -> str:
    credentials = ns.company.credentials
    return client_assertion(
        client_id=changes.get("client_id", credentials["client_id"]),
        certificate_id=changes.get("kid", credentials["certificate_id"]),
        private_key_pem=changes.get("key", credentials["private_key"]),
        audience=changes.get("aud", TOKEN_URL),
        scope=changes.get("scope", "rest_webservices"),
        lifetime=changes.get("lifetime", timedelta(minutes=30)),
        issued_at=changes.get("iat"),
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("kid", "invalid_client"),
        ("foreign_key", "invalid_client"),
        ("aud", "invalid_request"),
        ("scope", "invalid_scope"),
        ("lifetime", "invalid_request"),
        ("stale", "invalid_grant"),
        ("rs256", "invalid_request"),
    ],
)
async def test_m2m_assertion_is_refused(ns: NetSuite, change: str, error: str) -> None:
    credentials = ns.company.credentials
    if change == "kid":
        assertion = _assertion(ns, kid="not-a-certificate")
    elif change == "foreign_key":
        other, _ = pem(ec.generate_private_key(ec.SECP256R1()))
        assertion = _assertion(ns, key=other)
    elif change == "aud":
        assertion = _assertion(ns, aud="https://example.invalid/token")
    elif change == "scope":
        assertion = _assertion(ns, scope="full_access")
    elif change == "lifetime":
        assertion = _assertion(ns, lifetime=timedelta(minutes=60))
    elif change == "stale":
        assertion = _assertion(ns, iat=int(time.time()) - 7200)
    else:
        now = int(time.time())
        assertion = _jwt(
            {"alg": "RS256", "typ": "JWT", "kid": credentials["certificate_id"]},
            {"iss": credentials["client_id"], "scope": "rest_webservices", "aud": TOKEN_URL,
             "iat": now, "exp": now + 600},
        )  # fmt: skip
    answer = await request_token(ns, assertion)
    assert answer.status_code in (400, 401)
    assert answer.json()["error"] == error


async def test_refresh_then_revoke(ns: NetSuite) -> None:
    credentials = {
        k: v
        for k, v in ns.company.credentials.items()
        if k not in ("private_key", "certificate_id")
    }
    token = await fetch_access_token(ns.http, ns.connection(credentials=credentials))
    refreshed = ns.connector(credentials={"access_token": token["access_token"]})
    assert await refreshed.get_vendor(await vendor_id(ns, "Acme Corp"))
    ns.emulator.revoke_token(credentials["refresh_token"])
    with pytest.raises(ConnectionRevoked):
        await refreshed.list_accounts()
    with pytest.raises(ConnectionRevoked):
        await fetch_access_token(ns.http, ns.connection(credentials=credentials))


async def test_expired_token_is_auth_expired(ns: NetSuite) -> None:
    ns.emulator.expire_token(ns.token)
    with pytest.raises(AuthExpired):
        await ns.connector().list_accounts()


# ---------------------------------------------------------------------------------------------
# Error mapping (NetSuite bodies the emulator does not produce on its own)
# ---------------------------------------------------------------------------------------------


def _problem(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": "x", "status": status,
            "o:errorDetails": [{"detail": detail, "o:errorCode": code}]}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (400, _problem(400, "RCRD_LOCKED_BY_WF", "Record is locked by a workflow"), {}, Conflict),
        (400, _problem(400, "USER_ERROR", "Record has been changed"), {}, Conflict),
        (400, _problem(400, "INVALID_CONTENT", "Invalid content"), {}, Rejected),
        (404, _problem(404, "NONEXISTENT_ID", "The record instance does not exist."), {}, NotFound),
        (400, {"error": "invalid_grant"}, {}, ConnectionRevoked),
        (401, _problem(401, "INVALID_LOGIN", "Invalid login attempt."), {}, AuthExpired),
        (429, _problem(429, "CONCURRENCY_LIMIT_EXCEEDED", "busy"), {"Retry-After": "7"},
         RateLimited),
        (400, _problem(400, "SSS_REQUEST_LIMIT_EXCEEDED", "limit"), {}, RateLimited),
        (503, _problem(503, "UNEXPECTED_ERROR", "down"), {}, Unavailable),
        # RESTlets answer an uncaught SuiteScript error as {"error": {"code", "message"}}.
        (400, {"error": {"code": "RCRD_DSNT_EXIST", "message": "That record does not exist."}},
         {}, NotFound),
        (400, {"error": {"code": "SSS_REQUEST_LIMIT_EXCEEDED", "message": "limit"}}, {},
         RateLimited),
        (400, {"error": {"code": "INVALID_RCRD_TYPE", "message": "Invalid content"}}, {},
         Rejected),
    ],
)  # fmt: skip
async def test_error_mapping(
    status: int, body: dict[str, Any], headers: dict[str, str], expected: type[Exception]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=wire.dumps(body).encode(), headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        connection = ConnectionConfig(
            id="c", platform="netsuite", base_url=BASE, company_id="1",
            credentials={"access_token": "t"}, settings={"subsidiary_id": "1"},
        )  # fmt: skip
        with pytest.raises(expected) as raised:
            await NetSuiteConnector(connection, http).get_vendor("1")
    if isinstance(raised.value, RateLimited):
        wait = 7 if "Retry-After" in headers else 5
        assert raised.value.retry_after == timedelta(seconds=wait)
    if expected is Rejected:
        assert "Invalid content" in str(raised.value)


def test_wire_reference_and_json_helpers() -> None:
    stored = wire.memo_with_reference("Paper for Q3", 'bill/c-1/"x"]')
    assert wire.split_memo(stored) == ("Paper for Q3", 'bill/c-1/"x"]')
    assert wire.split_memo("no tag here") == ("no tag here", None)
    assert len(wire.external_id_for("k" * 500)) <= 64
    assert wire.external_id_for("a") == wire.external_id_for("a") != wire.external_id_for("b")
    assert wire.dumps({"amount": Decimal("0.10")}) == '{"amount":0.10}'
    assert wire.loads('{"amount": 0.1}')["amount"] == Decimal("0.1")
    with pytest.raises(TypeError):
        wire.dumps({"amount": 0.1})
    # SuiteQL dates: ISO when asked with TO_CHAR, else NetSuite's default M/D/YYYY.
    assert wire.parse_suiteql_date("2026-07-01") == date(2026, 7, 1)
    assert wire.parse_suiteql_date("7/1/2026") == date(2026, 7, 1)


async def test_fault_controls_need_the_inspector_token(ns: NetSuite) -> None:
    assert (await ns.http.get("/_emulator/faults")).status_code == 401
    inspector = {"Authorization": f"Bearer {ns.company.inspector_token}"}
    put = await ns.http.put(
        "/_emulator/faults",
        headers=inspector,
        content=json.dumps(
            {"scripted": [{"kind": "5xx", "match": "/vendor/", "times": READ_ATTEMPTS}]}
        ),
    )
    assert put.status_code == 200 and put.json()["scripted"][0]["kind"] == "5xx"
    with pytest.raises(Unavailable) as raised:
        await ns.connector().get_vendor(await vendor_id(ns, "Acme Corp"))
    assert raised.value.code == "UNEXPECTED_ERROR"
    reset = await ns.http.post("/_emulator/reset", headers=inspector)
    assert reset.json()["fired"] == {} and reset.json()["scripted"] == []


# ---------------------------------------------------------------------------------------------
# Money movement: voids, discounts, exchange rates, terms, bank details
# ---------------------------------------------------------------------------------------------

SUITEQL = "/services/rest/query/v1/suiteql"


async def suiteql(ns: NetSuite, statement: str) -> list[dict[str, Any]]:
    answered = await ns.call("POST", SUITEQL, {"q": statement}, headers={"Prefer": "transient"})
    assert answered.status_code == 200, answered.text
    rows: list[dict[str, Any]] = wire.loads(answered.text)["items"]
    return rows


async def record(ns: NetSuite, record_type: str, record_id: str) -> dict[str, Any]:
    answered = await ns.call(
        "GET", f"{RECORD}/{record_type}/{record_id}", expandSubResources="true"
    )
    assert answered.status_code == 200, answered.text
    found: dict[str, Any] = wire.loads(answered.text)
    return found


async def new_bill(
    ns: NetSuite,
    connector: NetSuiteConnector,
    amount: str = "500.00",
    *,
    vendor: str = "Northwind Office Supply",
    currency: str = "USD",
    exchange_rate: Decimal | None = None,
    terms: PaymentTerms | None = None,
    issued: date | None = None,
    due: date | None = None,
) -> Bill:
    bill = await connector.create_bill(
        Bill(
            vendor_id=await vendor_id(ns, vendor),
            document_number=unique("INV")[:20],
            issue_date=issued or date.today(),
            due_date=due,
            currency=currency,
            exchange_rate=exchange_rate,
            terms=terms,
            lines=[
                BillLine(amount=Decimal(amount), account_id=await account_id(ns, "Office Supplies"))
            ],
            total=Decimal(amount),
        ),
        reference=unique("r"),
        idempotency_key=unique("k"),
    )
    assert bill.id is not None
    return bill


async def pay(
    ns: NetSuite,
    connector: NetSuiteConnector,
    bill: Bill,
    amount: str,
    *,
    discount: str = "0",
    currency: str = "USD",
    exchange_rate: Decimal | None = None,
    account: str = "bank_account_id",
    key: str | None = None,
) -> BillPayment:
    assert bill.id is not None
    return await connector.create_bill_payment(
        BillPayment(
            vendor_id=bill.vendor_id,
            payment_date=date.today(),
            currency=currency,
            exchange_rate=exchange_rate,
            source_account_id=ns.company.settings[account],
            total=Decimal(amount),
            lines=[
                BillPaymentLine(bill_id=bill.id, amount=Decimal(amount), discount=Decimal(discount))
            ],
        ),
        reference=unique("pay"),
        idempotency_key=key or unique("k"),
    )


async def postings(ns: NetSuite, transaction_id: str) -> dict[str, tuple[Decimal, Decimal]]:
    """A transaction's GL impact by account name: (debit, credit)."""
    rows = await suiteql(
        ns,
        "SELECT account, debit, credit FROM transactionaccountingline "
        f"WHERE transaction = {transaction_id} AND posting = 'T' ORDER BY transactionline",
    )
    names = {
        str(row["id"]): row["acctName"]
        for row in [
            wire.loads((await ns.call("GET", f"{RECORD}/account/{account}")).text)
            for account in {str(r["account"]) for r in rows}
        ]
    }
    impact: dict[str, tuple[Decimal, Decimal]] = {}
    for row in rows:
        debit, credit = impact.get(names[str(row["account"])], (Decimal(0), Decimal(0)))
        impact[names[str(row["account"])]] = (
            debit + Decimal(str(row.get("debit") or 0)),
            credit + Decimal(str(row.get("credit") or 0)),
        )
    return impact


async def test_void_runs_the_restlet_and_posts_a_reversing_journal(ns: NetSuite) -> None:
    connector = ns.connector()
    bill = await new_bill(ns, connector, "500.00")
    paid = await pay(ns, connector, bill, "500.00")
    assert paid.id is not None

    voided = await connector.void_bill_payment(paid.id, idempotency_key="v-1")

    assert voided.voided and voided.total == Decimal("500.00")  # the lines are kept
    payment = await record(ns, "vendorPayment", paid.id)
    assert payment["status"] == {"id": "V", "refName": "Voided"}
    journal_id = payment["voidJournal"]["id"]
    journal = await record(ns, "journalEntry", journal_id)
    assert journal["voidOf"] == {"id": paid.id}
    # The journal posts exactly the opposite of the payment's GL impact.
    assert await postings(ns, paid.id) == {
        "Accounts Payable": (Decimal("500.00"), Decimal(0)),
        "Operating Bank": (Decimal(0), Decimal("500.00")),
    }
    assert await postings(ns, journal_id) == {
        "Accounts Payable": (Decimal(0), Decimal("500.00")),
        "Operating Bank": (Decimal("500.00"), Decimal(0)),
    }
    assert bill.id is not None
    reopened = await connector.get_bill(bill.id)
    assert (reopened.status, reopened.balance, reopened.payment_ids) == (
        BillStatus.open, Decimal("500.00"), []
    )  # fmt: skip
    # Still found by its reference, as voided; and a voided payment can no longer change.
    assert paid.reference is not None
    found = await connector.find_bill_payment_by_reference(paid.reference, vendor_id=bill.vendor_id)
    assert found is not None and found.voided
    refused = await ns.call("PATCH", f"{RECORD}/vendorPayment/{paid.id}", {"memo": "changed"})
    assert refused.status_code == 400 and "voided" in error_detail(refused)


async def test_a_void_whose_answer_is_lost_is_finished_by_calling_again(ns: NetSuite) -> None:
    connector = ns.connector()
    bill = await new_bill(ns, connector, "120.00")
    paid = await pay(ns, connector, bill, "120.00")
    assert paid.id is not None and bill.id is not None
    ns.emulator.faults.script("drop", ns.emulator.write_matches["void_bill_payment"])
    with pytest.raises(OutcomeUnknown):
        await connector.void_bill_payment(paid.id, idempotency_key="v-lost")
    journals_before = await suiteql(ns, "SELECT id FROM transaction WHERE type = 'Journal'")

    again = await connector.void_bill_payment(paid.id, idempotency_key="v-lost")

    assert again.voided and again.id == paid.id
    journals = await suiteql(ns, "SELECT id FROM transaction WHERE type = 'Journal'")
    assert journals == journals_before  # voided once: one voiding journal
    assert (await connector.get_bill(bill.id)).balance == Decimal("120.00")


async def test_a_direct_void_zeroes_the_payment_and_cannot_be_read_back_whole() -> None:
    emulator = NetSuiteEmulator(reversal_voiding=False)
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi_transport(emulator.app), base_url=BASE) as http:
        ns = NetSuite(emulator, company, http)
        connector = ns.connector()
        bill = await new_bill(ns, connector, "300.00")
        paid = await pay(ns, connector, bill, "300.00")
        assert paid.id is not None and bill.id is not None

        voided = await connector.void_bill_payment(paid.id, idempotency_key="v")

        # The answer is the payment as it was, now voided; NetSuite zeroed the record.
        assert voided.voided and voided.total == Decimal("300.00")
        payment = await record(ns, "vendorPayment", paid.id)
        assert payment["total"] == 0 and "voidJournal" not in payment
        assert await postings(ns, paid.id) == {}  # a direct void takes the GL impact away
        assert (await connector.get_bill(bill.id)).balance == Decimal("300.00")
        with pytest.raises(Rejected) as raised:
            await connector.void_bill_payment(paid.id, idempotency_key="v")
        assert raised.value.code == "VOIDED_DIRECTLY"


async def test_void_needs_the_restlet_deployed_and_the_restlets_scope(ns: NetSuite) -> None:
    connector = ns.connector()
    bill = await new_bill(ns, connector, "80.00")
    paid = await pay(ns, connector, bill, "80.00")
    assert paid.id is not None
    undeployed = ns.connector(settings={**ns.company.settings, "void_restlet_deploy": "nope"})
    with pytest.raises(Rejected, match="not deployed"):
        await undeployed.void_bill_payment(paid.id, idempotency_key="v")
    # An M2M token minted for REST web services only may not run RESTlets.
    token = ns.emulator.issue_token(ns.company.company_id, scopes=["rest_webservices"])
    narrow = ns.connector(credentials={"access_token": token})
    with pytest.raises(Rejected, match="restlets"):
        await narrow.void_bill_payment(paid.id, idempotency_key="v")
    restlet = await ns.call(
        "POST", "/app/site/hosting/restlet.nl", {"type": "vendorpayment", "id": "999999"},
        script="customscript_remit_void", deploy="customdeploy_remit_void",
    )  # fmt: skip
    assert restlet.status_code == 400
    assert wire.loads(restlet.text)["error"]["code"] == "RCRD_DSNT_EXIST"


async def test_a_discount_is_the_apply_lines_disc_and_posts_to_purchase_discounts(
    ns: NetSuite,
) -> None:
    connector = ns.connector()
    terms = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)
    bill = await new_bill(ns, connector, "900.00", terms=terms)
    assert bill.id is not None

    paid = await pay(ns, connector, bill, "882.00", discount="18.00")

    assert paid.id is not None
    [line] = (await record(ns, "vendorPayment", paid.id))["apply"]["items"]
    assert (line["amount"], line["disc"]) == (Decimal("882.00"), Decimal("18.00"))
    # What the bill's terms offer, as NetSuite fills it in.
    assert line["discAmt"] == Decimal("18.00")
    assert line["discDate"] == (date.today() + timedelta(days=10)).isoformat()
    assert await postings(ns, paid.id) == {
        "Accounts Payable": (Decimal("900.00"), Decimal(0)),
        "Operating Bank": (Decimal(0), Decimal("882.00")),
        "Purchase Discounts": (Decimal(0), Decimal("18.00")),
    }
    assert ns.company.settings["discount_account_id"] == await account_id(ns, "Purchase Discounts")


async def test_a_discount_beyond_the_amount_due_names_the_line(ns: NetSuite) -> None:
    connector = ns.connector()
    first = await new_bill(ns, connector, "100.00")
    second = await new_bill(ns, connector, "200.00")
    assert first.id and second.id
    body = {
        "entity": {"id": first.vendor_id},
        "subsidiary": {"id": ns.company.settings["subsidiary_id"]},
        "account": {"id": ns.company.settings["bank_account_id"]},
        "apply": {
            "items": [
                {"doc": {"id": first.id}, "apply": True, "amount": Decimal("100.00")},
                {
                    "doc": {"id": second.id},
                    "apply": True,
                    "amount": Decimal("195.00"),
                    "disc": Decimal("6.00"),
                },
            ]  # fmt: skip
        },
    }
    refused = await ns.call("POST", f"{RECORD}/vendorPayment", body)
    assert refused.status_code == 400 and error_code(refused) == "USER_ERROR"
    [detail] = wire.loads(refused.text)["o:errorDetails"]
    assert detail["o:errorPath"] == "apply.items[1].disc"
    assert "plus the discount taken (6.00) exceeds the amount remaining" in detail["detail"]


async def test_one_payment_for_several_bills_is_one_vendor_payment(ns: NetSuite) -> None:
    connector = ns.connector()
    first = await new_bill(ns, connector, "100.00")
    second = await new_bill(ns, connector, "250.00")
    assert first.id and second.id
    paid = await connector.create_bill_payment(
        BillPayment(
            vendor_id=first.vendor_id,
            payment_date=date.today(),
            currency="USD",
            source_account_id=ns.company.settings["bank_account_id"],
            total=Decimal("340.00"),
            lines=[
                BillPaymentLine(bill_id=first.id, amount=Decimal("100.00")),
                BillPaymentLine(bill_id=second.id, amount=Decimal("240.00"), discount=Decimal(10)),
            ],
        ),
        reference="run-1",
        idempotency_key="run-1",
    )
    assert paid.id is not None
    items = (await record(ns, "vendorPayment", paid.id))["apply"]["items"]
    assert [(i["doc"]["id"], i["amount"], i.get("disc")) for i in items] == [
        (first.id, Decimal("100.00"), None),
        (second.id, Decimal("240.00"), Decimal(10)),
    ]
    # A repeat of the write (same key) sets the same lines again, never adds them.
    again = await connector.create_bill_payment(
        paid.model_copy(update={"id": None}), reference="run-1", idempotency_key="run-1"
    )
    assert again.id == paid.id and len(again.lines) == 2
    assert (await connector.get_bill(second.id)).status == BillStatus.paid


async def test_a_foreign_payment_at_another_rate_books_the_realized_loss(ns: NetSuite) -> None:
    connector = ns.connector()
    bill = await new_bill(
        ns, connector, "1000.00", vendor="Fabrikam GmbH", currency="EUR",
        exchange_rate=Decimal("1.08"),
    )  # fmt: skip
    paid = await pay(
        ns, connector, bill, "1000.00", currency="EUR", exchange_rate=Decimal("1.11"),
        account="bank_account_id:EUR",
    )  # fmt: skip
    assert paid.id is not None
    # A/P is relieved at the bill's 1.08, the bank pays at 1.11: 30.00 USD realized loss.
    assert await postings(ns, paid.id) == {
        "Accounts Payable": (Decimal("1080.00"), Decimal(0)),
        "Operating Bank EUR": (Decimal(0), Decimal("1110.00")),
        "Realized Gain/Loss": (Decimal("30.00"), Decimal(0)),
    }
    # Paid at a better rate, the difference is a gain (a credit).
    cheaper = await new_bill(
        ns, connector, "200.00", vendor="Fabrikam GmbH", currency="EUR",
        exchange_rate=Decimal("1.08"),
    )  # fmt: skip
    gained = await pay(
        ns, connector, cheaper, "200.00", currency="EUR", exchange_rate=Decimal("1.05"),
        account="bank_account_id:EUR",
    )  # fmt: skip
    assert gained.id is not None
    assert (await postings(ns, gained.id))["Realized Gain/Loss"] == (Decimal(0), Decimal("6.00"))


async def test_exchange_rates_are_the_latest_on_or_before_the_day(ns: NetSuite) -> None:
    connector = ns.connector()
    assert await connector.home_currency() == "USD"
    rate = await connector.get_exchange_rate("eur", date(2026, 3, 1))
    assert rate is not None
    assert (rate.currency, rate.home_currency, rate.rate, rate.as_of, rate.source) == (
        "EUR", "USD", Decimal("1.08"), date(2026, 1, 1), "netsuite"
    )  # fmt: skip
    earlier = await connector.get_exchange_rate("EUR", date(2025, 12, 31))
    assert earlier is not None and earlier.rate == Decimal("1.04")
    assert await connector.get_exchange_rate("EUR", date(2024, 6, 1)) is None
    assert await connector.get_exchange_rate("JPY", date(2026, 3, 1)) is None  # not enabled
    home = await connector.get_exchange_rate("USD", date(2026, 3, 1))
    assert home is not None and home.rate == 1
    # A foreign bill written without a rate gets the table's rate for its date.
    bill = await new_bill(
        ns, connector, "50.00", vendor="Fabrikam GmbH", currency="EUR",
        issued=date(2025, 6, 1),
    )  # fmt: skip
    assert bill.exchange_rate == Decimal("1.04")


async def test_home_currency_without_a_subsidiary_is_the_base_currency(ns: NetSuite) -> None:
    settings = {k: v for k, v in ns.company.settings.items() if k != "subsidiary_id"}
    assert await ns.connector(settings=settings).home_currency() == "USD"


async def test_suiteql_dates_with_to_date_and_to_char(ns: NetSuite) -> None:
    rows = await suiteql(
        ns,
        "SELECT transactioncurrency, TO_CHAR(effectivedate, 'MM/DD/YYYY') AS day "
        "FROM currencyrate WHERE effectivedate >= TO_DATE('2026-01-01', 'YYYY-MM-DD') "
        "ORDER BY transactioncurrency",
    )
    assert [row["day"] for row in rows] == ["01/01/2026"] * 3
    bad = await ns.call(
        "POST", SUITEQL,
        {"q": "SELECT id FROM currencyrate WHERE effectivedate > TO_DATE('2026', 'YYYY-MM-DD')"},
        headers={"Prefer": "transient"},
    )  # fmt: skip
    assert bad.status_code == 400 and error_code(bad) == "INVALID_PARAMETER"


async def test_terms_use_a_matching_term_or_create_one_once(ns: NetSuite) -> None:
    connector = ns.connector()
    seeded = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)
    bill = await new_bill(ns, connector, "100.00", terms=seeded, issued=date(2026, 7, 1))
    assert bill.terms is not None and bill.terms.name == "2% 10 Net 30"
    assert bill.due_date == date(2026, 7, 31)  # NetSuite derives it from the terms
    assert bill.id is not None
    stored = await record(ns, "vendorBill", bill.id)
    assert stored["discountAmount"] == Decimal("2.00")
    assert stored["discountDate"] == "2026-07-11"
    count = len(await suiteql(ns, "SELECT id FROM term"))

    new_terms = PaymentTerms(net_days=45, discount_percent=Decimal("1.5"), discount_days=15)
    first = await new_bill(ns, connector, "100.00", terms=new_terms)
    # Another connector (another worker) finds or upserts the same term record.
    second = await new_bill(ns, ns.connector(), "100.00", terms=new_terms)
    assert first.terms == second.terms
    assert first.terms is not None and first.terms.name == "1.5% 15 Net 45"
    assert len(await suiteql(ns, "SELECT id FROM term")) == count + 1
    read = await ns.connector().list_bills()
    assert {b.id: b.terms for b in read.items}[first.id] == first.terms


async def test_vendor_bank_details_come_from_the_bank_payments_record(ns: NetSuite) -> None:
    connector = ns.connector()
    northwind = await connector.get_vendor_bank_accounts(
        await vendor_id(ns, "Northwind Office Supply")
    )
    # The inactive (closed) account is left out.
    assert [a.account_number for a in northwind] == ["000123456789"]
    assert (northwind[0].platform_ref or "").startswith("customrecord_2663_entity_bank_details:")
    [fabrikam] = await connector.get_vendor_bank_accounts(await vendor_id(ns, "Fabrikam GmbH"))
    assert (fabrikam.iban, fabrikam.bic, fabrikam.country, fabrikam.primary) == (
        "DE02120300000000202051", "BYLADEM1001", "DE", True
    )  # fmt: skip
    assert "DE02120300000000202051" not in repr(fabrikam)
    assert await connector.get_vendor_bank_accounts(await vendor_id(ns, "Acme Corp")) == []
    # The REST record path reads the same custom record.
    listed = await ns.call("GET", f"{RECORD}/customrecord_2663_entity_bank_details")
    assert wire.loads(listed.text)["totalResults"] == 3


async def test_without_the_bank_payments_suiteapp_vendors_have_no_bank_details() -> None:
    emulator = NetSuiteEmulator(bank_payments_suiteapp=False)
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi_transport(emulator.app), base_url=BASE) as http:
        ns = NetSuite(emulator, company, http)
        vendor = await vendor_id(ns, "Northwind Office Supply")
        assert await ns.connector().get_vendor_bank_accounts(vendor) == []
        with pytest.raises(NotFound):
            await ns.connector().get_vendor_bank_accounts("999999")


async def test_credits_are_read_from_their_apply_lines(ns: NetSuite) -> None:
    connector = ns.connector()
    bill = await new_bill(ns, connector, "400.00")
    other = await new_bill(ns, connector, "100.00")
    assert bill.id and other.id
    memo = await connector.create_credit_memo(
        BillCreditMemo(
            vendor_id=bill.vendor_id,
            document_number="CM-1",
            issue_date=date.today(),
            currency="USD",
            lines=[BillLine(amount=Decimal("150.00"),
                            account_id=await account_id(ns, "Office Supplies"))],
            total=Decimal("150.00"),
        ),
        reference="cm-1",
        idempotency_key="cm-1",
    )  # fmt: skip
    assert memo.id is not None
    for target, amount in ((bill.id, "100.00"), (other.id, "50.00")):
        await connector.apply_credit(
            CreditApplication(credit_memo_id=memo.id, bill_id=target, amount=Decimal(amount)),
            idempotency_key=unique("k"),
        )
    [listed] = await connector.list_credit_memos(vendor_id=bill.vendor_id)
    assert (listed.id, listed.remaining) == (memo.id, Decimal("0"))
    assert [(a.credit_memo_id, a.amount) for a in await connector.list_credit_applications(
        bill_id=other.id)] == [(memo.id, Decimal("50.00"))]  # fmt: skip
    # Nothing is left to apply: NetSuite refuses more than the credit's total.
    with pytest.raises(Rejected, match="exceeds the credit total"):
        await connector.apply_credit(
            CreditApplication(credit_memo_id=memo.id, bill_id=bill.id, amount=Decimal("101")),
            idempotency_key=unique("k"),
        )
    found = await connector.find_credit_memo_by_reference("cm-1", vendor_id=bill.vendor_id)
    assert found is not None and found.id == memo.id
    assert await connector.list_credit_memos(vendor_id="not-an-id") == []


async def test_void_calls_the_restlet_on_the_accounts_restlets_host() -> None:
    """Against real NetSuite the RESTlet is on {account}.restlets.api.netsuite.com."""
    seen: list[httpx.Request] = []
    payment = {
        "id": "77",
        "entity": {"id": "5"},
        "tranDate": "2026-07-01",
        "currency": {"id": "1"},
        "account": {"id": "1"},
        "total": 10,
        "apply": {"items": [{"doc": {"id": "70"}, "apply": True, "amount": 10}]},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/record/v1/currency"):
            return httpx.Response(200, json={"items": [{"id": "1"}], "hasMore": False})
        if path.endswith("/record/v1/currency/1"):
            return httpx.Response(200, json={"id": "1", "symbol": "USD"})
        if path.endswith("/restlet.nl"):
            payment["status"] = {"id": "V", "refName": "Voided"}
            return httpx.Response(200, json={"id": "78", "voided": True, "voidingJournal": "78"})
        return httpx.Response(200, json=payment)

    base = "https://1234567-sb1.suitetalk.api.netsuite.com"
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        connection = ConnectionConfig(
            id="c", platform="netsuite", base_url=base, company_id="1234567_SB1",
            credentials={"access_token": "t"}, settings={"subsidiary_id": "1"},
        )  # fmt: skip
        voided = await NetSuiteConnector(connection, http).void_bill_payment(
            "77", idempotency_key="v"
        )
    assert voided.voided and voided.total == 10
    [restlet] = [r for r in seen if r.url.path.endswith("/restlet.nl")]
    assert restlet.method == "POST"
    assert restlet.url.host == "1234567-sb1.restlets.api.netsuite.com"
    assert dict(restlet.url.params) == {
        "script": "customscript_remit_void",
        "deploy": "customdeploy_remit_void",
    }
    assert json.loads(restlet.content) == {"type": "vendorpayment", "id": "77"}
