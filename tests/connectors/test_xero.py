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
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    CreditApplication,
    PaymentTerms,
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
    Unavailable,
)
from connectors.registry import platform
from connectors.xero import wire
from connectors.xero.client import XeroConnector, refresh_access_token
from sandbox.registry import DemoCompany, new_emulator
from sandbox.xero import XeroEmulator

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
    # sandbox.faults types ASGI scopes as dict; httpx types them as MutableMapping.
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
    emulator = new_emulator("xero")
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


# ---------------------------------------------------------------------------------------------
# Money movement: rates, batches, discounts, credits, voids, bank details
# ---------------------------------------------------------------------------------------------


async def raw_get(xero: Xero, path: str, **params: str) -> dict[str, Any]:
    response = await xero.http.get(f"{API}{path}", params=params, headers=xero.headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = wire.loads(response.content)
    return body


async def eur_bill(xero: Xero, amount: str, rate: str | None) -> Bill:
    vendor = next(v for v in await xero.connector.find_vendors(name="Fabrikam GmbH"))
    assert vendor.id is not None and vendor.currency == "EUR"
    draft = (await xero.bill(amount)).model_copy(
        update={
            "vendor_id": vendor.id,
            "currency": "EUR",
            "exchange_rate": Decimal(rate) if rate else None,
        }
    )
    return await xero.connector.create_bill(
        draft, reference="eur-" + uuid.uuid4().hex[:8], idempotency_key=uuid.uuid4().hex
    )


async def fx_lines(xero: Xero) -> list[Decimal]:
    """NetAmount of every journal line on the REALISEDCURRENCYGAIN system account."""
    accounts = (await raw_get(xero, "/Accounts"))["Accounts"]
    gain = next(a for a in accounts if a.get("SystemAccount") == "REALISEDCURRENCYGAIN")
    journals = (await raw_get(xero, "/Journals"))["Journals"]
    for journal in journals:  # every journal balances
        assert sum((line["NetAmount"] for line in journal["JournalLines"]), Decimal(0)) == 0
    return [
        line["NetAmount"]
        for journal in journals
        for line in journal["JournalLines"]
        if line["AccountID"] == gain["AccountID"]
    ]


def test_rates_convert_between_xeros_direction_and_remits() -> None:
    # Xero: foreign units per base unit, 6 places; remit: home units per foreign unit.
    assert wire.rate_to_xero(Decimal("1.08")) == Decimal("0.925926")
    assert wire.rate_to_xero(Decimal("1")) == Decimal("1")
    assert wire.rate_from_xero(Decimal("0.925926")) == Decimal("1.08")
    assert str(wire.rate_from_xero(Decimal("0.925926"))) == "1.08"
    assert wire.rate_from_xero(1) == Decimal("1")
    assert wire.rate_from_xero(None) is None and wire.rate_from_xero(0) is None
    for quoted in ("1.08", "1.11", "1.0834", "0.6523", "1.5", "0.0067", "1.23456", "12.5"):
        rate = Decimal(quoted)
        assert wire.rate_from_xero(wire.rate_to_xero(rate)) == rate, quoted
    # Six decimal places of foreign-per-base hold only a few digits when the foreign unit is
    # worth much more than the home unit (a JPY company's USD bill): 149.25 -> 0.006700.
    assert wire.rate_to_xero(Decimal("149.25")) == Decimal("0.0067")
    assert wire.rate_from_xero(Decimal("0.0067")) == Decimal("149.254")
    with pytest.raises(Rejected):
        wire.rate_to_xero(Decimal("0"))
    with pytest.raises(Rejected):
        wire.rate_to_xero(Decimal("5000000"))  # 1/5,000,000 is 0 at six places


async def test_a_foreign_bill_carries_xeros_rate_on_the_wire(xero: Xero) -> None:
    bill = await eur_bill(xero, "1000.00", "1.08")
    raw = (await raw_get(xero, f"/Invoices/{bill.id}"))["Invoices"][0]
    assert raw["CurrencyRate"] == Decimal("0.925926")
    assert bill.exchange_rate == Decimal("1.08")
    # No rate given: the day rate (the emulator's "XE.com" rate, 1.08 USD per EUR).
    defaulted = await eur_bill(xero, "10.00", None)
    assert defaulted.exchange_rate == Decimal("1.08")
    # A home-currency bill is at 1 whatever is sent.
    home = await xero.connector.create_bill(
        (await xero.bill("5.00")).model_copy(update={"exchange_rate": Decimal("1.2")}),
        reference="home",
        idempotency_key="home",
    )
    assert home.exchange_rate == Decimal("1")


@pytest.mark.parametrize(("paid_at", "booked"), [("1.11", "30.00"), ("1.05", "-30.00")])
async def test_realized_gain_or_loss_is_booked_and_reversed_with_the_payment(
    xero: Xero, paid_at: str, booked: str
) -> None:
    """EUR 1,000 billed at 1.08 (USD 1,080) and paid at 1.11 costs USD 1,110: a USD 30 loss
    (a debit) on REALISEDCURRENCYGAIN, read back through GET /Journals; at 1.05 a gain."""
    bill = await eur_bill(xero, "1000.00", "1.08")
    assert bill.id is not None
    paid = await xero.connector.create_bill_payment(
        BillPayment(
            vendor_id=bill.vendor_id,
            payment_date=date(2026, 7, 15),
            currency="EUR",
            exchange_rate=Decimal(paid_at),
            source_account_id=xero.company.settings["bank_account_id:EUR"],
            total=Decimal("1000.00"),
            lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal("1000.00"))],
        ),
        reference="fx-pay",
        idempotency_key="fx-pay",
    )
    assert paid.exchange_rate == Decimal(paid_at)
    assert await fx_lines(xero) == [Decimal(booked)]

    assert paid.id is not None
    await xero.connector.void_bill_payment(paid.id, idempotency_key="fx-void")
    assert sum(await fx_lines(xero), Decimal(0)) == 0
    assert (await xero.connector.get_bill(bill.id)).balance == Decimal("1000.00")


async def test_a_foreign_bill_paid_from_the_home_bank_account(xero: Xero) -> None:
    bill = await eur_bill(xero, "1000.00", "1.08")
    assert bill.id is not None
    paid = await xero.connector.create_bill_payment(
        BillPayment(
            vendor_id=bill.vendor_id,
            payment_date=date(2026, 7, 15),
            currency="EUR",
            exchange_rate=Decimal("1.11"),
            source_account_id=xero.company.settings["bank_account_id"],
            total=Decimal("1000.00"),
            lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal("1000.00"))],
        ),
        reference="fx-usd",
        idempotency_key="fx-usd",
    )
    raw = (await raw_get(xero, f"/Payments/{paid.id}"))["Payments"][0]
    assert (raw["Amount"], raw["BankAmount"]) == (Decimal("1000.00"), Decimal("1110.00"))
    assert await fx_lines(xero) == [Decimal("30.00")]


async def test_home_currency_is_the_organisations_and_xero_quotes_no_rates(xero: Xero) -> None:
    assert await xero.connector.home_currency() == "USD"
    assert await xero.connector.get_exchange_rate("EUR", date(2026, 7, 1)) is None


async def test_several_bills_are_one_batch_payment(xero: Xero) -> None:
    bank = xero.company.settings["bank_account_id"]
    first = await xero.connector.create_bill(
        await xero.bill("100.00"), reference="b1", idempotency_key="b1"
    )
    second = await xero.connector.create_bill(
        await xero.bill("250.00"), reference="b2", idempotency_key="b2"
    )
    assert first.id and second.id
    run = BillPayment(
        vendor_id=first.vendor_id,
        payment_date=date(2026, 7, 15),
        currency="USD",
        source_account_id=bank,
        total=Decimal("350.00"),
        lines=[
            BillPaymentLine(bill_id=first.id, amount=Decimal("100.00")),
            BillPaymentLine(bill_id=second.id, amount=Decimal("250.00")),
        ],
    )
    paid = await xero.connector.create_bill_payment(run, reference="run-7", idempotency_key="r7")
    again = await xero.connector.create_bill_payment(run, reference="run-7", idempotency_key="r7")
    assert again.id == paid.id

    batch = (await raw_get(xero, f"/BatchPayments/{paid.id}"))["BatchPayments"][0]
    assert (batch["Type"], batch["TotalAmount"], batch["Reference"]) == (
        "PAYBATCH",
        Decimal("350.00"),
        "run-7",
    )
    members = (await raw_get(xero, "/Payments", where='Reference=="run-7"'))["Payments"]
    assert sorted(m["Amount"] for m in members) == [Decimal("100.00"), Decimal("250.00")]
    assert {m["BatchPaymentID"] for m in members} == {paid.id}
    for bill in (first, second):
        assert bill.id is not None
        assert (await xero.connector.get_bill(bill.id)).payment_ids == [paid.id]

    # A member cannot go on its own (Xero deletes batches whole) ...
    with pytest.raises(Rejected) as member:
        await xero.connector.void_bill_payment(members[0]["PaymentID"], idempotency_key="m")
    assert "batch payment" in member.value.message
    # ... the batch can, once; a repeat reads it and changes nothing.
    voided = await xero.connector.void_bill_payment(paid.id or "", idempotency_key="v1")
    repeat = await xero.connector.void_bill_payment(paid.id or "", idempotency_key="v2")
    assert voided.voided and repeat.voided and voided.total == Decimal("350.00")
    for bill in (first, second):
        assert bill.id is not None
        after = await xero.connector.get_bill(bill.id)
        assert (after.status, after.balance) == (BillStatus.open, bill.total)
        [listed] = await xero.connector.list_bill_payments(bill_id=bill.id)
        assert listed.id == paid.id and listed.voided


async def test_a_batch_is_all_or_nothing(xero: Xero) -> None:
    good = await xero.connector.create_bill(
        await xero.bill("100.00"), reference="g", idempotency_key="g"
    )
    small = await xero.connector.create_bill(
        await xero.bill("50.00"), reference="s", idempotency_key="s"
    )
    assert good.id and small.id
    with pytest.raises(Rejected) as refused:
        await xero.connector.create_bill_payment(
            BillPayment(
                vendor_id=good.vendor_id,
                payment_date=date(2026, 7, 15),
                currency="USD",
                source_account_id=xero.company.settings["bank_account_id"],
                total=Decimal("160.00"),
                lines=[
                    BillPaymentLine(bill_id=good.id, amount=Decimal("100.00")),
                    BillPaymentLine(bill_id=small.id, amount=Decimal("60.00")),
                ],
            ),
            reference="too-much",
            idempotency_key="too-much",
        )
    assert "exceeds the amount outstanding" in refused.value.message
    assert (await xero.connector.get_bill(good.id)).balance == Decimal("100.00")
    assert (await raw_get(xero, "/BatchPayments"))["BatchPayments"] == []


async def test_deleting_a_payment_twice_is_refused_so_the_client_reads_first(xero: Xero) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("40.00"), reference="d", idempotency_key="d"
    )
    paid = await xero.connector.create_bill_payment(
        payment(bill, "40.00", xero.company.settings["bank_account_id"]),
        reference="d-pay",
        idempotency_key="d-pay",
    )
    body = wire.dumps({"Payments": [{"Status": "DELETED"}]})
    first = await xero.http.post(f"{API}/Payments/{paid.id}", content=body, headers=xero.headers())
    second = await xero.http.post(f"{API}/Payments/{paid.id}", content=body, headers=xero.headers())
    edit = await xero.http.post(
        f"{API}/Payments/{paid.id}",
        content=wire.dumps({"Payments": [{"Amount": 1}]}),
        headers=xero.headers(),
    )
    assert first.status_code == 200 and first.json()["Payments"][0]["Status"] == "DELETED"
    assert second.status_code == 400 and "already been deleted" in second.text
    assert edit.status_code == 400 and "Status of DELETED" in edit.text
    assert paid.id is not None
    assert (await xero.connector.void_bill_payment(paid.id, idempotency_key="again")).voided


async def discounted(xero: Xero, bill: Bill, cash: str, discount: str) -> BillPayment:
    assert bill.id is not None
    return BillPayment(
        vendor_id=bill.vendor_id,
        payment_date=date(2026, 7, 8),
        currency="USD",
        source_account_id=xero.company.settings["bank_account_id"],
        total=Decimal(cash),
        lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal(cash), discount=Decimal(discount))],
    )


async def test_a_discount_is_a_credit_note_to_purchase_discounts_allocated_to_the_bill(
    xero: Xero,
) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("900.00"), reference="n", idempotency_key="n"
    )
    assert bill.id is not None
    run = await discounted(xero, bill, "882.00", "18.00")
    paid = await xero.connector.create_bill_payment(run, reference="disc-1", idempotency_key="dk")
    assert [(ln.amount, ln.discount) for ln in paid.lines] == [
        (Decimal("882.00"), Decimal("18.00"))
    ]

    raw_payment = (await raw_get(xero, f"/Payments/{paid.id}"))["Payments"][0]
    assert raw_payment["Reference"] == "disc-1" + wire.DISCOUNTED_SUFFIX
    notes = (await raw_get(xero, "/CreditNotes"))["CreditNotes"]
    [note] = [n for n in notes if wire.is_discount_note(n)]
    assert note["CreditNoteNumber"] == wire.discount_note_number(raw_payment["Reference"], bill.id)
    assert note["LineItems"][0]["AccountID"] == xero.company.settings["discount_account_id"]
    assert (note["Total"], note["RemainingCredit"], note["Status"]) == (
        Decimal("18.00"),
        Decimal("0.00"),
        "PAID",
    )
    assert [a["Invoice"]["InvoiceID"] for a in note["Allocations"]] == [bill.id]

    # The discount is the payment's, not a vendor credit.
    assert await xero.connector.list_credit_memos(vendor_id=bill.vendor_id) == []
    assert await xero.connector.list_credit_applications(bill_id=bill.id) == []
    found = await xero.connector.find_bill_payment_by_reference("disc-1", vendor_id=bill.vendor_id)
    assert found is not None and found.id == paid.id and found.lines[0].discount == Decimal("18")
    # A repeat finds the payment: no second note, no second payment.
    again = await xero.connector.create_bill_payment(run, reference="disc-1", idempotency_key="x")
    assert again.id == paid.id
    assert len([n for n in (await raw_get(xero, "/CreditNotes"))["CreditNotes"]]) == 1

    # Voiding takes the discount back too: the note is voided, its allocation gone.
    assert paid.id is not None
    await xero.connector.void_bill_payment(paid.id, idempotency_key="dv")
    note = (await raw_get(xero, f"/CreditNotes/{note['CreditNoteID']}"))["CreditNotes"][0]
    assert (note["Status"], note["Allocations"]) == ("VOIDED", [])
    after = await xero.connector.get_bill(bill.id)
    assert (after.status, after.balance) == (BillStatus.open, Decimal("900.00"))
    [listed] = await xero.connector.list_bill_payments(bill_id=bill.id)
    assert listed.voided and listed.lines[0].discount == 0


async def test_a_discounted_payment_that_failed_half_way_is_finished_by_the_retry(
    xero: Xero,
) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("500.00"), reference="h", idempotency_key="h"
    )
    assert bill.id is not None
    run = await discounted(xero, bill, "490.00", "10.00")
    xero.emulator.faults.script("5xx", xero.emulator.write_matches["bill_payment"])
    with pytest.raises(Unavailable):
        await xero.connector.create_bill_payment(run, reference="half", idempotency_key="hk")
    # The discount landed, the payment did not.
    assert (await xero.connector.get_bill(bill.id)).balance == Decimal("490.00")

    paid = await xero.connector.create_bill_payment(run, reference="half", idempotency_key="hk")

    assert [(ln.amount, ln.discount) for ln in paid.lines] == [
        (Decimal("490.00"), Decimal("10.00"))
    ]
    after = await xero.connector.get_bill(bill.id)
    assert (after.status, after.balance) == (BillStatus.paid, Decimal("0"))
    notes = [n for n in (await raw_get(xero, "/CreditNotes"))["CreditNotes"]]
    assert len(notes) == 1 and len(notes[0]["Allocations"]) == 1


async def test_an_overpaying_discount_is_refused_in_xeros_shape_before_any_write(
    xero: Xero,
) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("900.00"), reference="o", idempotency_key="o"
    )
    with pytest.raises(Rejected) as refused:
        await xero.connector.create_bill_payment(
            await discounted(xero, bill, "890.00", "18.00"), reference="o-pay", idempotency_key="o"
        )
    assert refused.value.code == "ValidationException" and refused.value.status == 400
    assert refused.value.message.startswith(
        "Payment amount exceeds the amount outstanding on this document"
    )
    assert wire.validation_messages(refused.value.detail) == [refused.value.message]
    assert (await raw_get(xero, "/CreditNotes"))["CreditNotes"] == []

    no_account = xero.connect()
    no_account.connection.settings.pop("discount_account_id")
    with pytest.raises(Rejected) as unset:
        await no_account.create_bill_payment(
            await discounted(xero, bill, "882.00", "18.00"), reference="o2", idempotency_key="o2"
        )
    assert "discount_account_id" in unset.value.message


async def test_a_supplier_credits_reference_rides_on_its_credit_note_number(xero: Xero) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("400.00"), reference="c", idempotency_key="c"
    )
    assert bill.id is not None
    account_id = await xero.account_id("Office Supplies")
    memo = BillCreditMemo(
        vendor_id=bill.vendor_id,
        document_number="CM-1042",
        issue_date=date(2026, 7, 2),
        currency="USD",
        lines=[BillLine(description="returned", amount=Decimal("150.00"), account_id=account_id)],
        total=Decimal("150.00"),
    )
    created = await xero.connector.create_credit_memo(memo, reference="cm-77", idempotency_key="c1")
    long_ref = "credit/" + "x" * 100
    hashed = await xero.connector.create_credit_memo(
        memo.model_copy(update={"document_number": "CM-1043"}),
        reference=long_ref,
        idempotency_key="c2",
    )
    raw = (await raw_get(xero, f"/CreditNotes/{created.id}"))["CreditNotes"][0]
    assert raw["CreditNoteNumber"] == "CM-1042 [remit:cm-77]"
    assert (created.document_number, created.reference) == ("CM-1042", "cm-77")

    found = await xero.connector.find_credit_memo_by_reference("cm-77", vendor_id=bill.vendor_id)
    assert found is not None and (found.id, found.document_number) == (created.id, "CM-1042")
    found_long = await xero.connector.find_credit_memo_by_reference(
        long_ref, vendor_id=bill.vendor_id
    )
    assert found_long is not None and found_long.id == hashed.id
    assert (
        await xero.connector.find_credit_memo_by_reference("cm-7", vendor_id=bill.vendor_id) is None
    )
    listed = {m.id: m for m in await xero.connector.list_credit_memos(vendor_id=bill.vendor_id)}
    assert listed[created.id].reference == "cm-77" and listed[hashed.id].reference is None

    assert created.id is not None
    applied = await xero.connector.apply_credit(
        CreditApplication(credit_memo_id=created.id, bill_id=bill.id, amount=Decimal("100.00")),
        idempotency_key="a1",
    )
    allocation_ids = [
        a["AllocationID"]
        for a in (await raw_get(xero, f"/CreditNotes/{created.id}"))["CreditNotes"][0][
            "Allocations"
        ]
    ]
    assert applied.id is not None and allocation_ids == [applied.id]
    [application] = await xero.connector.list_credit_applications(bill_id=bill.id)
    assert (application.id, application.credit_memo_id, application.amount) == (
        applied.id,
        created.id,
        Decimal("100.00"),
    )
    with pytest.raises(Rejected) as over:
        await xero.connector.apply_credit(
            CreditApplication(credit_memo_id=created.id, bill_id=bill.id, amount=Decimal("60")),
            idempotency_key="a2",
        )
    assert "exceeds the remaining credit" in over.value.message


async def test_an_allocation_can_be_deleted_and_the_credit_is_free_again(xero: Xero) -> None:
    bill = await xero.connector.create_bill(
        await xero.bill("80.00"), reference="z", idempotency_key="z"
    )
    assert bill.id is not None
    memo = await xero.connector.create_credit_memo(
        BillCreditMemo(
            vendor_id=bill.vendor_id,
            issue_date=date(2026, 7, 2),
            currency="USD",
            lines=[
                BillLine(
                    amount=Decimal("30.00"), account_id=await xero.account_id("Office Supplies")
                )
            ],
            total=Decimal("30.00"),
        ),
        reference="free",
        idempotency_key="free",
    )
    assert memo.id is not None and memo.document_number is None
    applied = await xero.connector.apply_credit(
        CreditApplication(credit_memo_id=memo.id, bill_id=bill.id, amount=Decimal("30.00")),
        idempotency_key="f1",
    )
    deleted = await xero.http.delete(
        f"{API}/CreditNotes/{memo.id}/Allocations/{applied.id}", headers=xero.headers()
    )
    assert deleted.status_code == 200 and deleted.json()["IsDeleted"] is True
    assert await xero.connector.list_credit_applications(bill_id=bill.id) == []
    assert (await xero.connector.get_bill(bill.id)).balance == Decimal("80.00")
    [listed] = await xero.connector.list_credit_memos(vendor_id=bill.vendor_id)
    assert listed.remaining == Decimal("30.00")


def test_bank_details_are_parsed_from_xeros_free_fields() -> None:
    def one(text: str, *, structured: bool = True) -> tuple[Any, ...] | None:
        account = wire.parse_bank_text(text, structured=structured)
        if account is None:
            return None
        return (account.routing_number, account.account_number, account.iban, account.country)

    assert one("021000021-000123456789") == ("021000021", "000123456789", None, "US")
    assert one("021000021 000123456789") == ("021000021", "000123456789", None, "US")
    assert one("Routing 021000021, account 000123456789", structured=False) == (
        "021000021",
        "000123456789",
        None,
        "US",
    )
    assert one("ABA #: 021000021 Acct No. 1234-5678", structured=False) == (
        "021000021",
        "12345678",
        None,
        "US",
    )
    # 021000022 fails the ABA checksum: not a routing number, so the whole is one number.
    assert one("021000022-000123456789") == (None, "021000022000123456789", None, None)
    assert one("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", structured=False) == (
        None,
        None,
        "DE89370400440532013000",
        "DE",
    )
    assert one("GB29NWBK60161331926819") == (None, None, "GB29NWBK60161331926819", "GB")
    assert one("DE89 3704 0044 0532 0130 01") is None  # a mistyped IBAN is not guessed at
    assert one("062-000 12345678") == ("062000", "12345678", None, "AU")
    assert one("12-34-56 12345678") == ("123456", "12345678", None, "GB")
    assert one("12-3456-7890123-00") == (None, "123456789012300", None, None)  # NZ
    assert one("pay by cheque please", structured=False) is None
    assert one("12-3456-7890123-00", structured=False) is None  # free text is never guessed at

    merged = wire.bank_accounts_from_xero(
        {
            "BatchPayments": {
                "BankAccountNumber": "021000021-000123456789",
                "BankAccountName": "N",
            },
            "BankAccountDetails": "routing 021000021 account 000123456789 SWIFT CHASUS33",
        }
    )
    assert [(a.account_name, a.bic, a.primary, a.platform_ref) for a in merged] == [
        ("N", "CHASUS33", True, "Contact.BatchPayments.BankAccountNumber")
    ]
    two = wire.bank_accounts_from_xero(
        {
            "BatchPayments": {"BankAccountNumber": "021000021-000123456789"},
            "BankAccountDetails": "IBAN GB29 NWBK 6016 1331 9268 19",
        }
    )
    assert [(a.primary, a.platform_ref) for a in two] == [
        (True, "Contact.BatchPayments.BankAccountNumber"),
        (False, "Contact.BankAccountDetails"),
    ]
    assert wire.bank_accounts_from_xero({}) == []


async def test_the_demo_vendors_bank_details(xero: Xero) -> None:
    northwind = await xero.connector.get_vendor_bank_accounts(
        await xero.vendor_id("Northwind Office Supply")
    )
    assert [(a.routing_number, a.account_number, a.account_name) for a in northwind] == [
        ("021000021", "000123456789", "Northwind Office Supply LLC")
    ]
    [fabrikam] = await xero.connector.get_vendor_bank_accounts(
        await xero.vendor_id("Fabrikam GmbH")
    )
    assert (fabrikam.iban, fabrikam.bic, fabrikam.country, fabrikam.primary) == (
        "DE02120300000000202051",
        "BYLADEM1001",
        "DE",
        True,
    )
    assert "DE02120300000000202051" not in repr(fabrikam)
    assert await xero.connector.get_vendor_bank_accounts(await xero.vendor_id("Acme Corp")) == []

    # Contacts take them through the API as Xero documents (PUT/POST /Contacts).
    body = {
        "Contacts": [
            {
                "Name": "Bank Detail Co",
                "BatchPayments": {"BankAccountNumber": "062-000 12345678", "Details": "INV"},
            }
        ]
    }
    made = await xero.http.put(f"{API}/Contacts", content=wire.dumps(body), headers=xero.headers())
    contact_id = made.json()["Contacts"][0]["ContactID"]
    [au] = await xero.connector.get_vendor_bank_accounts(contact_id)
    assert (au.routing_number, au.account_number, au.country) == ("062000", "12345678", "AU")
    too_long = {"Contacts": [{"Name": "Long Co", "BatchPayments": {"Details": "x" * 19}}]}
    refused = await xero.http.put(
        f"{API}/Contacts", content=wire.dumps(too_long), headers=xero.headers()
    )
    assert refused.status_code == 400


async def test_terms_only_set_the_due_date_xero_keeps(xero: Xero) -> None:
    undated = (await xero.bill("100.00")).model_copy(
        update={
            "due_date": None,
            "terms": PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10),
        }
    )
    bill = await xero.connector.create_bill(undated, reference="t", idempotency_key="t")
    assert (bill.due_date, bill.terms) == (date(2026, 7, 31), None)
    dated = (await xero.bill("100.00")).model_copy(update={"terms": PaymentTerms(net_days=60)})
    kept = await xero.connector.create_bill(dated, reference="t2", idempotency_key="t2")
    assert kept.due_date == date(2026, 7, 31)  # a due date given wins over the terms


async def test_where_filters_take_string_methods(xero: Xero) -> None:
    found = await raw_get(
        xero, "/Contacts", where='Name.StartsWith("North") OR Name.EndsWith("GmbH")'
    )
    assert sorted(c["Name"] for c in found["Contacts"]) == [
        "Fabrikam GmbH",
        "Northwind Office Supply",
    ]
    contains = await raw_get(xero, "/Contacts", where='Name.Contains("lobex")')
    assert [c["Name"] for c in contains["Contacts"]] == ["Globex Software"]


async def test_the_ledger_clears_accounts_payable_to_the_cent(xero: Xero) -> None:
    """A taxed EUR bill at a rate that rounds, paid in two parts at other rates: every journal
    balances, AP for the bill ends at exactly zero, tax went to the tax account, and a voided
    bill's journal is reversed."""
    accounts = {a["Name"]: a for a in (await raw_get(xero, "/Accounts"))["Accounts"]}
    vendor = await xero.vendor_id("Fabrikam GmbH")
    taxed = (await xero.bill("333.33", "333.34")).model_copy(
        update={
            "vendor_id": vendor,
            "currency": "EUR",
            "exchange_rate": Decimal("1.0834"),
            "tax_amount": Decimal("126.67"),
            "total": Decimal("793.34"),
        }
    )
    bill = await xero.connector.create_bill(taxed, reference="led", idempotency_key="led")
    assert bill.id is not None
    for part, rate in (("400.00", "1.10"), ("393.34", "1.07")):
        await xero.connector.create_bill_payment(
            BillPayment(
                vendor_id=vendor,
                payment_date=date(2026, 7, 15),
                currency="EUR",
                exchange_rate=Decimal(rate),
                source_account_id=xero.company.settings["bank_account_id:EUR"],
                total=Decimal(part),
                lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal(part))],
            ),
            reference=f"led-{rate}",
            idempotency_key=f"led-{rate}",
        )
    voided_bill = await xero.connector.create_bill(
        await xero.bill("50.00"), reference="led-v", idempotency_key="led-v"
    )
    body = wire.dumps({"Invoices": [{"Status": "VOIDED"}]})
    voiding = await xero.http.post(
        f"{API}/Invoices/{voided_bill.id}", content=body, headers=xero.headers()
    )
    assert voiding.status_code == 200

    journals = (await raw_get(xero, "/Journals"))["Journals"]
    assert [j["JournalNumber"] for j in journals] == list(range(1, len(journals) + 1))

    def total(account: str, source_ids: set[str]) -> Decimal:
        return sum(
            (
                line["NetAmount"]
                for journal in journals
                if journal["SourceID"] in source_ids
                for line in journal["JournalLines"]
                if line["AccountID"] == accounts[account]["AccountID"]
            ),
            Decimal(0),
        )

    for journal in journals:
        assert sum((line["NetAmount"] for line in journal["JournalLines"]), Decimal(0)) == 0
    payments = {p.id for p in await xero.connector.list_bill_payments(bill_id=bill.id) if p.id}
    assert total("Accounts Payable", {bill.id} | payments) == 0
    assert total("Sales Tax", {bill.id}) == Decimal("137.23")  # EUR 126.67 at 1.0834
    assert total("Office Supplies", {voided_bill.id or ""}) == 0  # posted, then reversed
    assert (await raw_get(xero, "/Journals", offset=str(len(journals))))["Journals"] == []
