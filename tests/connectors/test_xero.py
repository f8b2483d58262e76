"""Xero-specific behaviour of the connector and its emulator (the shared suite covers the rest)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest

from accounting import (
    Bill,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    TrackingKind,
    TrackingRef,
    Vendor,
)
from connectors.base import (
    AuthExpired,
    ConnectionConfig,
    ConnectionRevoked,
    RateLimited,
    Rejected,
)
from connectors.registry import DemoCompany, platform
from connectors.xero import wire
from connectors.xero.client import XeroConnector, refresh_access_token
from connectors.xero.emulator import XeroEmulator

BASE_URL = "http://xero.emulator"
API = f"{BASE_URL}/api.xro/2.0"


class FakeClock:
    """A clock tests move by hand, so rate-limit windows and token lifetimes need no waiting."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 7, 1, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@dataclass
class Xero:
    emulator: XeroEmulator
    clock: FakeClock
    company: DemoCompany
    http: httpx.AsyncClient
    connector: XeroConnector

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.company.credentials['access_token']}",
            "xero-tenant-id": self.company.company_id,
            "Accept": "application/json",
            **extra,
        }

    def connect(self, **credentials: str) -> XeroConnector:
        return XeroConnector(connection(self.company, **credentials), self.http)

    async def vendor_id(self, name: str) -> str:
        found = await self.connector.find_vendors(name=name)
        assert len(found) == 1 and found[0].id is not None
        return found[0].id

    async def account_id(self, name: str) -> str:
        return next(a.id for a in await self.connector.list_accounts() if a.name == name)

    async def bill(self, *amounts: str, tracking: list[TrackingRef] | None = None) -> Bill:
        account_id = await self.account_id("Office Supplies")
        lines = [
            BillLine(
                description="paper",
                amount=Decimal(a),
                account_id=account_id,
                tracking=tracking or [],
            )
            for a in amounts
        ]
        return Bill(
            vendor_id=await self.vendor_id("Northwind Office Supply"),
            document_number="INV-" + uuid.uuid4().hex[:8],
            issue_date=date(2026, 7, 1),
            due_date=date(2026, 7, 31),
            currency="USD",
            lines=lines,
            total=sum((Decimal(a) for a in amounts), Decimal("0")),
        )


def asgi(emulator: XeroEmulator) -> httpx.ASGITransport:
    # connectors.emulation types ASGI scopes as dict; httpx types them as MutableMapping.
    return httpx.ASGITransport(app=cast(Any, emulator.app))


def connection(company: DemoCompany, **credentials: str) -> ConnectionConfig:
    return ConnectionConfig(
        id="conn-xero",
        platform="xero",
        base_url=BASE_URL,
        company_id=company.company_id,
        credentials={**company.credentials, **credentials},
        settings=dict(company.settings),
    )


@pytest.fixture
async def xero() -> AsyncIterator[Xero]:
    clock = FakeClock()
    emulator = XeroEmulator(clock=clock)
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi(emulator)) as http:
        yield Xero(emulator, clock, company, http, XeroConnector(connection(company), http))


def payment(bill: Bill, amount: str, account_id: str) -> BillPayment:
    assert bill.id is not None
    return BillPayment(
        vendor_id=bill.vendor_id,
        payment_date=date(2026, 7, 15),
        currency=bill.currency,
        source_account_id=account_id,
        total=Decimal(amount),
        lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal(amount))],
    )


# ---------------------------------------------------------------------------------------------
# Registry and JSON
# ---------------------------------------------------------------------------------------------


def test_platform_is_registered() -> None:
    xero_platform = platform("xero")
    emulator = xero_platform.emulator()
    company = emulator.seed_demo_company()
    assert xero_platform.name == "xero"
    assert company.settings["home_currency"] == "USD"
    assert {"bank_account_id", "bank_account_id:EUR", "card_account_id", "ap_account_id"} <= set(
        company.settings
    )


def test_ms_json_dates_parse_and_format() -> None:
    assert wire.parse_date("/Date(1539129600000+0000)/") == date(2018, 10, 10)
    assert wire.parse_datetime("/Date(1552326816230)/") == datetime(
        2019, 3, 11, 17, 53, 36, 230000, tzinfo=UTC
    )
    assert wire.parse_date("2026-07-01T00:00:00") == date(2026, 7, 1)
    moment = datetime(2026, 7, 1, 12, 30, 5, 123000, tzinfo=UTC)
    assert wire.parse_datetime(wire.ms_json(moment)) == moment
    assert wire.ms_json(date(2026, 7, 1)) == "/Date(1782864000000+0000)/"


def test_decimal_amounts_are_written_as_exact_json_numbers() -> None:
    text = wire.dumps({"Amount": Decimal("1234567890.12"), "Rate": Decimal("0.000001")})
    assert text == '{"Amount":1234567890.12,"Rate":0.000001}'
    assert wire.loads(text)["Amount"] == Decimal("1234567890.12")


async def test_bill_dates_travel_as_iso_and_come_back_as_ms_json(xero: Xero) -> None:
    created = await xero.connector.create_bill(
        await xero.bill("10.00"), reference="dates", idempotency_key="dates"
    )
    raw = (await xero.http.get(f"{API}/Invoices/{created.id}", headers=xero.headers())).json()
    invoice = raw["Invoices"][0]

    assert invoice["Date"] == "/Date(1782864000000+0000)/"
    assert invoice["DateString"] == "2026-07-01T00:00:00"
    assert invoice["DueDate"] == wire.ms_json(date(2026, 7, 31))
    assert raw["DateTimeUTC"].startswith("/Date(")
    assert (created.issue_date, created.due_date) == (date(2026, 7, 1), date(2026, 7, 31))
    assert created.updated_at is not None and created.updated_at.tzinfo is not None


# ---------------------------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_first_answer(xero: Xero) -> None:
    vendor_id = await xero.vendor_id("Globex Software")
    body = {
        "Invoices": [
            {
                "Type": "ACCPAY",
                "Contact": {"ContactID": vendor_id},
                "InvoiceNumber": "GX-1",
                "Date": "2026-07-01",
                "Status": "AUTHORISED",
                "LineAmountTypes": "NoTax",
                "LineItems": [{"Description": "seats", "UnitAmount": 99.5, "AccountCode": "485"}],
            }
        ]
    }
    headers = xero.headers(**{"Idempotency-Key": "replay-me"})

    first = await xero.http.put(f"{API}/Invoices", content=wire.dumps(body), headers=headers)
    second = await xero.http.put(f"{API}/Invoices", content=wire.dumps(body), headers=headers)
    body["Invoices"][0]["InvoiceNumber"] = "GX-2"
    reused = await xero.http.put(f"{API}/Invoices", content=wire.dumps(body), headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.json()["Invoices"][0]["InvoiceID"] == second.json()["Invoices"][0]["InvoiceID"]
    assert len(await xero.connector.find_bills(vendor_id=vendor_id, document_number="GX-1")) == 1
    assert reused.status_code == 400
    assert "already been used" in str(reused.json()["Elements"][0]["ValidationErrors"])
    assert await xero.connector.find_bills(vendor_id=vendor_id, document_number="GX-2") == []


async def test_keys_longer_than_128_characters_are_hashed(xero: Xero) -> None:
    long_key = "bill/conn-xero/" + "k" * 200 + "/writeback"
    bill = await xero.bill("12.00")

    once = await xero.connector.create_bill(bill, reference="r", idempotency_key=long_key)
    twice = await xero.connector.create_bill(bill, reference="r", idempotency_key=long_key)

    assert once.id == twice.id
    raw = await xero.http.put(
        f"{API}/Contacts",
        content=wire.dumps({"Contacts": [{"Name": "Too Long Key"}]}),
        headers=xero.headers(**{"Idempotency-Key": long_key}),
    )
    assert raw.status_code == 400  # the emulator, like Xero, refuses keys over 128 characters


# ---------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------


async def test_sixty_calls_a_minute_then_429_with_retry_after(xero: Xero) -> None:
    response = await xero.http.get(f"{API}/Accounts", headers=xero.headers())
    assert response.headers["x-minlimit-remaining"] == "59"
    assert response.headers["x-daylimit-remaining"] == "4999"
    for _ in range(59):
        await xero.connector.list_accounts()
    xero.clock.advance(seconds=20)

    with pytest.raises(RateLimited) as raised:
        await xero.connector.list_accounts()

    # 40 s of the window remain; Retry-After rounds the sub-second remainder up.
    assert timedelta(seconds=40) <= raised.value.retry_after <= timedelta(seconds=41)
    assert "minute" in str(raised.value)
    assert raised.value.code == "minute"
    xero.clock.advance(seconds=raised.value.retry_after.total_seconds())
    assert await xero.connector.list_accounts()  # a new window


async def test_day_limit_names_the_day_problem(xero: Xero) -> None:
    emulator = XeroEmulator(clock=xero.clock, day_limit=2)
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi(emulator)) as http:
        connector = XeroConnector(connection(company), http)
        await connector.list_accounts()
        await connector.list_accounts()
        with pytest.raises(RateLimited) as raised:
            await connector.list_accounts()
    assert raised.value.code == "day"
    assert timedelta(hours=23, minutes=59) < raised.value.retry_after <= timedelta(days=1)


async def test_five_concurrent_calls_then_429(xero: Xero) -> None:
    xero.emulator.hold_requests()
    held = [asyncio.create_task(xero.connector.list_accounts()) for _ in range(5)]
    await xero.emulator.wait_in_flight(xero.company.company_id, 5)

    with pytest.raises(RateLimited) as raised:
        await xero.connector.list_accounts()

    xero.emulator.release_requests()
    results = await asyncio.gather(*held)
    assert raised.value.code == "concurrent"
    assert raised.value.retry_after == timedelta(seconds=1)  # no Retry-After for this limit
    assert all(len(accounts) == len(results[0]) > 0 for accounts in results)
    assert await xero.connector.list_accounts()


async def test_throttle_fault_carries_the_rate_limit_problem(xero: Xero) -> None:
    xero.emulator.faults.retry_after_seconds = 7
    xero.emulator.faults.script("429")
    with pytest.raises(RateLimited) as raised:
        await xero.connector.list_tracking_categories()
    assert raised.value.retry_after == timedelta(seconds=7)
    assert "X-Rate-Limit-Problem: minute" in str(raised.value)


# ---------------------------------------------------------------------------------------------
# Identity: tokens and connections
# ---------------------------------------------------------------------------------------------


async def test_refresh_rotates_the_token_with_a_grace_period(xero: Xero) -> None:
    credentials = xero.company.credentials
    token_url = f"{BASE_URL}/connect/token"
    client = {"client_id": credentials["client_id"], "client_secret": credentials["client_secret"]}
    original = credentials["refresh_token"]

    first = await refresh_access_token(xero.http, token_url, refresh_token=original, **client)
    assert first.refresh_token != original and first.expires_in == 1800
    refreshed = xero.connect(access_token=first.access_token)
    assert await refreshed.list_accounts()

    xero.clock.advance(minutes=29)
    within_grace = await refresh_access_token(
        xero.http, token_url, refresh_token=original, **client
    )
    assert within_grace.refresh_token not in (original, first.refresh_token)

    xero.clock.advance(minutes=2)
    with pytest.raises(ConnectionRevoked) as raised:
        await refresh_access_token(xero.http, token_url, refresh_token=original, **client)
    assert raised.value.code == "invalid_grant"
    latest = await refresh_access_token(
        xero.http, token_url, refresh_token=within_grace.refresh_token, **client
    )
    assert latest.access_token

    with pytest.raises(AuthExpired) as expired:
        await refreshed.list_accounts()  # 31 minutes > the 30-minute access token
    assert expired.value.code == "TokenExpired"


async def test_expired_and_revoked_tokens(xero: Xero) -> None:
    xero.emulator.expire_token(xero.company.credentials["access_token"])
    with pytest.raises(AuthExpired) as expired:
        await xero.connector.list_accounts()
    assert "TokenExpired" in expired.value.message

    xero.emulator.revoke_token(xero.company.credentials["refresh_token"])
    with pytest.raises(ConnectionRevoked):
        await refresh_access_token(
            xero.http,
            f"{BASE_URL}/connect/token",
            client_id=xero.company.credentials["client_id"],
            client_secret=xero.company.credentials["client_secret"],
            refresh_token=xero.company.credentials["refresh_token"],
        )


async def test_tenant_header_and_connections(xero: Xero) -> None:
    listed = (await xero.http.get(f"{BASE_URL}/connections", headers=xero.headers())).json()
    assert [(c["tenantId"], c["tenantType"]) for c in listed] == [
        (xero.company.company_id, "ORGANISATION")
    ]

    no_tenant = {k: v for k, v in xero.headers().items() if k != "xero-tenant-id"}
    missing = await xero.http.get(f"{API}/Accounts", headers=no_tenant)
    assert missing.status_code == 403

    other = xero.emulator.seed_demo_company()
    stranger = XeroConnector(
        connection(other).model_copy(update={"credentials": xero.company.credentials}), xero.http
    )
    with pytest.raises(ConnectionRevoked):
        await stranger.list_accounts()  # a tenant this grant is not connected to

    deleted = await xero.http.delete(
        f"{BASE_URL}/connections/{listed[0]['id']}", headers=xero.headers()
    )
    assert deleted.status_code == 204
    with pytest.raises(ConnectionRevoked):
        await xero.connector.list_accounts()


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


async def test_validation_body_and_rejected_message(xero: Xero) -> None:
    vendor_id = await xero.vendor_id("Northwind Office Supply")
    body = {
        "Invoices": [
            {
                "Type": "ACCPAY",
                "Contact": {"ContactID": vendor_id},
                "Date": "2026-07-01",
                "Status": "AUTHORISED",
                "LineItems": [{"Description": "x", "UnitAmount": 5, "AccountCode": "999"}],
            }
        ]
    }
    raw = await xero.http.put(f"{API}/Invoices", content=wire.dumps(body), headers=xero.headers())
    problem = raw.json()
    assert raw.status_code == 400
    assert (problem["ErrorNumber"], problem["Type"]) == (10, "ValidationException")
    message = "Account code '999' is not a valid code for this document."
    assert problem["Elements"][0]["ValidationErrors"] == [{"Message": message}]

    bill = await xero.bill("5.00")
    broken = bill.model_copy(
        update={"lines": [bill.lines[0].model_copy(update={"account_id": str(uuid.uuid4())})]}
    )
    with pytest.raises(Rejected) as raised:
        await xero.connector.create_bill(broken, reference="bad", idempotency_key="bad")
    assert "is not valid" in raised.value.message
    assert raised.value.code == "ValidationException" and raised.value.status == 400


async def test_at_most_two_tracking_categories_per_line(xero: Xero) -> None:
    refs = {c.kind: c for c in await xero.connector.list_tracking_categories()}
    three = [
        TrackingRef(kind=TrackingKind.department, id=refs[TrackingKind.department].id),
        TrackingRef(kind=TrackingKind.class_, id=refs[TrackingKind.class_].id),
        TrackingRef(kind=TrackingKind.location, id=str(uuid.uuid4())),
    ]
    bill = await xero.bill("20.00", tracking=three)
    with pytest.raises(Rejected) as refused:
        await xero.connector.create_bill(bill, reference="t3", idempotency_key="t3")
    assert "at most 2 tracking categories" in refused.value.message
    assert await xero.connector.find_bills(vendor_id=bill.vendor_id) == []

    raw_line: dict[str, Any] = {
        "Description": "x",
        "UnitAmount": 5,
        "AccountCode": "453",
        "Tracking": [
            {"Name": "Department", "Option": "Finance"},
            {"Name": "Class", "Option": "East"},
            {"Name": "Department", "Option": "Sales"},
        ],
    }
    body = {
        "Invoices": [
            {
                "Type": "ACCPAY",
                "Contact": {"ContactID": bill.vendor_id},
                "Date": "2026-07-01",
                "LineItems": [raw_line],
            }
        ]
    }
    raw = await xero.http.put(f"{API}/Invoices", content=wire.dumps(body), headers=xero.headers())
    assert raw.status_code == 400
    assert "maximum of 2 tracking categories" in str(raw.json()["Elements"][0]["ValidationErrors"])

    two = await xero.connector.create_bill(
        await xero.bill("20.00", tracking=three[:2]), reference="t2", idempotency_key="t2"
    )
    assert {ref.kind for ref in two.lines[0].tracking} == {
        TrackingKind.department,
        TrackingKind.class_,
    }


async def test_payment_rules(xero: Xero) -> None:
    bank = xero.company.settings["bank_account_id"]
    bill = await xero.connector.create_bill(
        await xero.bill("100.00"), reference="p", idempotency_key="p"
    )

    with pytest.raises(Rejected) as over:
        await xero.connector.create_bill_payment(
            payment(bill, "100.01", bank), reference="over", idempotency_key="over"
        )
    assert over.value.message == "Payment amount exceeds the amount outstanding on this document"

    draft = await xero.connector.create_bill(
        (await xero.bill("10.00")).model_copy(update={"status": BillStatus.draft}),
        reference="d",
        idempotency_key="d",
    )
    assert draft.status == BillStatus.draft
    with pytest.raises(Rejected) as not_authorised:
        await xero.connector.create_bill_payment(
            payment(draft, "10.00", bank), reference="draft", idempotency_key="draft"
        )
    assert not_authorised.value.message == "Payments can only be made against Authorised documents"

    euro_bank = xero.company.settings["bank_account_id:EUR"]
    with pytest.raises(Rejected):
        await xero.connector.create_bill_payment(
            payment(bill, "10.00", euro_bank), reference="eur", idempotency_key="eur"
        )

    paid = await xero.connector.create_bill_payment(
        payment(bill, "100.00", bank), reference="full", idempotency_key="full"
    )
    after = await xero.connector.get_bill(paid.lines[0].bill_id)
    assert (after.status, after.balance) == (BillStatus.paid, Decimal("0.00"))


async def test_tax_exclusive_eur_bill_round_trips_and_pays_in_full(xero: Xero) -> None:
    vendor = await xero.connector.create_vendor(
        Vendor(name="Rheinwerk Maschinenbau GmbH", currency="EUR"),
        reference="rheinwerk",
        idempotency_key="rheinwerk",
    )
    assert vendor.id is not None
    taxed = (await xero.bill("600.00", "250.00")).model_copy(
        update={
            "vendor_id": vendor.id,
            "currency": "EUR",
            "tax_amount": Decimal("161.50"),
            "total": Decimal("1011.50"),
        }
    )
    bill = await xero.connector.create_bill(taxed, reference="eur-taxed", idempotency_key="t")
    assert bill.id is not None
    read = await xero.connector.get_bill(bill.id)
    assert (read.currency, read.total, read.tax_amount, read.balance) == (
        "EUR",
        Decimal("1011.50"),
        Decimal("161.50"),
        Decimal("1011.50"),
    )
    await xero.connector.create_bill_payment(
        payment(read, "1011.50", xero.company.settings["bank_account_id:EUR"]),
        reference="eur-taxed-pay",
        idempotency_key="eur-taxed-pay",
    )
    paid = await xero.connector.get_bill(bill.id)
    assert (paid.status, paid.total, paid.tax_amount, paid.balance) == (
        BillStatus.paid,
        Decimal("1011.50"),
        Decimal("161.50"),
        Decimal("0"),
    )


async def test_bill_reference_lives_in_the_invoice_url(xero: Xero) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("30.00"), reference="bill/conn-xero/42/writeback", idempotency_key="u"
    )
    raw = (await xero.http.get(f"{API}/Invoices/{bill.id}", headers=xero.headers())).json()
    invoice = raw["Invoices"][0]
    assert invoice["Url"] == wire.reference_url("bill/conn-xero/42/writeback")
    assert "Reference" not in invoice  # ACCREC-only in Xero
    found = await xero.connector.find_bill_by_reference(
        "bill/conn-xero/42/writeback", vendor_id=bill.vendor_id
    )
    assert found is not None and found.id == bill.id


async def test_where_filter_syntax_errors_are_rejected(xero: Xero) -> None:
    response = await xero.http.get(
        f"{API}/Contacts", params={"where": 'Name=="unterminated'}, headers=xero.headers()
    )
    assert response.status_code == 400
    assert response.json()["Type"] == "QueryParseException"


async def test_control_endpoints_need_the_inspector_token(xero: Xero) -> None:
    refused = await xero.http.put(f"{BASE_URL}/_emulator/faults", json={"error_rate": 1})
    assert refused.status_code == 401
    inspector = {"Authorization": f"Bearer {xero.company.inspector_token}"}
    changed = await xero.http.put(
        f"{BASE_URL}/_emulator/faults",
        json={"scripted": [{"kind": "5xx", "match": "/Accounts", "times": 1}]},
        headers=inspector,
    )
    assert changed.json()["scripted"] == [{"kind": "5xx", "match": "/Accounts", "times": 1}]
    response = await xero.http.get(f"{API}/Accounts", headers=xero.headers())
    assert response.status_code == 500
    assert response.json()["Title"] == "An error occurred"
