"""Sage Intacct: the connector against its emulator over HTTP (not yet in the shared suite)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from defusedxml import ElementTree as SafeET

from accounting import (
    AccountType,
    Bill,
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    CreditApplication,
    NewAccount,
    PaymentTerms,
    TrackingKind,
    TrackingRef,
    Vendor,
    VendorChanges,
)
from connectors.base import (
    AuthExpired,
    ConnectionConfig,
    ConnectionRevoked,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
)
from connectors.intacct import PLATFORM
from connectors.intacct.client import IntacctConnector
from sandbox.intacct import GATEWAY_PATH, IntacctEmulator, parse_query
from sandbox.registry import DemoCompany
from tests.connectors.conftest import serve_asgi

BASE_URL = "http://intacct.emulator"


class FakeClock:
    """A clock tests move by hand, so session timeouts and change cursors need no waiting."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 7, 1, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


def connection(company: DemoCompany, base_url: str = BASE_URL, **settings: str) -> ConnectionConfig:
    return ConnectionConfig(
        id="conn-intacct",
        platform="intacct",
        base_url=base_url,
        company_id=company.company_id,
        credentials=dict(company.credentials),
        settings={**company.settings, **settings},
    )


@dataclass
class Intacct:
    emulator: IntacctEmulator
    clock: FakeClock
    company: DemoCompany
    http: httpx.AsyncClient
    connector: IntacctConnector

    def connect(
        self, *, credentials: dict[str, str] | None = None, **settings: str
    ) -> IntacctConnector:
        config = connection(self.company, **settings)
        if credentials is not None:
            config = config.model_copy(
                update={"credentials": {**config.credentials, **credentials}}
            )
        return IntacctConnector(config, self.http)

    async def vendor_id(self, name: str) -> str:
        found = await self.connector.find_vendors(name=name)
        assert len(found) == 1 and found[0].id is not None
        return found[0].id

    async def bill(
        self, *amounts: str, vendor: str = "Northwind Office Supply", tracking: bool = True
    ) -> Bill:
        refs = []
        if tracking:
            refs = [
                TrackingRef(kind=TrackingKind.department, id="FIN"),
                TrackingRef(kind=TrackingKind.location, id="WEST"),
                TrackingRef(kind=TrackingKind.class_, id="EAST"),
            ]
        return Bill(
            vendor_id=await self.vendor_id(vendor),
            document_number="INV-" + uuid.uuid4().hex[:8],
            issue_date=date(2026, 7, 1),
            due_date=date(2026, 7, 31),
            currency="USD",
            lines=[
                BillLine(
                    description=f"line {n}", amount=Decimal(a), account_id="6100", tracking=refs
                )
                for n, a in enumerate(amounts, start=1)
            ],
            total=sum((Decimal(a) for a in amounts), Decimal("0")),
            memo="remit test bill",
        )

    async def raw(
        self, function: str, *, controlid: str | None = None, unique: bool = False
    ) -> Any:
        """One gateway request with a login, as any Intacct client sends it: the parsed answer."""
        creds = self.company.credentials
        body = f"""<?xml version="1.0" encoding="UTF-8"?><request><control>
<senderid>{creds["sender_id"]}</senderid><password>{creds["sender_password"]}</password>
<controlid>{controlid or uuid.uuid4().hex}</controlid>
<uniqueid>{"true" if unique else "false"}</uniqueid>
<dtdversion>3.0</dtdversion></control><operation><authentication><login>
<userid>{creds["user_id"]}</userid><companyid>{self.company.company_id}</companyid>
<password>{creds["user_password"]}</password></login></authentication>
<content><function controlid="f-1">{function}</function></content></operation></request>"""
        response = await self.http.post(BASE_URL + GATEWAY_PATH, content=body.encode())
        assert response.status_code == 200
        return response.content


def asgi(emulator: IntacctEmulator) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=cast(Any, emulator.app))


@pytest.fixture
async def intacct() -> AsyncIterator[Intacct]:
    clock = FakeClock()
    emulator = IntacctEmulator(clock=clock)
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi(emulator), timeout=10) as http:
        yield Intacct(emulator, clock, company, http, IntacctConnector(connection(company), http))


def payment(bill: Bill, amount: str, *, discount: str = "0") -> BillPayment:
    assert bill.id is not None
    return BillPayment(
        vendor_id=bill.vendor_id,
        payment_date=date(2026, 7, 15),
        currency=bill.currency,
        source_account_id="BOA-CHK",
        total=Decimal(amount),
        lines=[
            BillPaymentLine(bill_id=bill.id, amount=Decimal(amount), discount=Decimal(discount))
        ],
    )


def creates_seen(emulator: IntacctEmulator, obj: str) -> int:
    company = next(iter(emulator.companies.values()))
    return len(company.records[obj])


# --- the demo company -------------------------------------------------------------------------


async def test_demo_company_accounts_dimensions_and_vendors(intacct: Intacct) -> None:
    assert PLATFORM.name == "intacct"
    accounts = {a.name: a for a in await intacct.connector.list_accounts()}
    assert accounts["Office Supplies"].account_type == AccountType.expense
    assert accounts["Office Supplies"].id == accounts["Office Supplies"].number == "6100"
    assert accounts["Accounts Payable"].account_type == AccountType.accounts_payable
    assert accounts["Operating Bank"].account_type == AccountType.bank

    categories = await intacct.connector.list_tracking_categories()
    by_kind = {(c.kind, c.id): c.name for c in categories}
    assert by_kind[(TrackingKind.department, "FIN")] == "Finance"
    assert by_kind[(TrackingKind.location, "HQ")] == "Headquarters"
    assert by_kind[(TrackingKind.class_, "EAST")] == "East"

    by_tax = await intacct.connector.find_vendors(tax_id="94-1234567")
    assert [v.name for v in by_tax] == ["Northwind Office Supply"]
    assert by_tax[0].email == "ar@northwind.example"
    # Intacct's query compares names ignoring case when asked to: both Acmes differ in words.
    assert [v.name for v in await intacct.connector.find_vendors(name="acme corp")] == ["Acme Corp"]
    assert await intacct.connector.home_currency() == "USD"
    banks = await intacct.connector.get_vendor_bank_accounts(by_tax[0].id or "")
    assert banks[0].routing_number == "021000021" and banks[0].account_number == "000123456789"


async def test_vendor_create_update_and_list(intacct: Intacct) -> None:
    vendor = Vendor(name="Contoso Ltd", tax_id="55-5555555", email="ap@contoso.example")
    created = await intacct.connector.create_vendor(vendor, reference="v-1", idempotency_key="v-1")
    assert created.id and created.name == "Contoso Ltd" and created.email == "ap@contoso.example"

    again = await intacct.connector.create_vendor(vendor, reference="v-1", idempotency_key="v-1")
    assert again.id == created.id
    assert len(await intacct.connector.find_vendors(tax_id="55-5555555")) == 1

    updated = await intacct.connector.update_vendor(
        created.id,
        VendorChanges(email="billing@contoso.example", active=False),
        idempotency_key="u-1",
    )
    assert updated.email == "billing@contoso.example" and not updated.active
    assert updated.name == "Contoso Ltd"

    with pytest.raises(NotFound):
        await intacct.connector.get_vendor("NO-SUCH-VENDOR")


async def test_account_create_needs_a_number(intacct: Intacct) -> None:
    account = NewAccount(name="Cloud Hosting", number="6500", account_type=AccountType.expense)
    created = await intacct.connector.create_account(account, idempotency_key="a-1")
    assert (created.id, created.name, created.account_type) == (
        "6500",
        "Cloud Hosting",
        AccountType.expense,
    )

    with pytest.raises(Rejected, match="ACCOUNTNO"):
        await intacct.connector.create_account(
            NewAccount(name="No Number", account_type=AccountType.expense), idempotency_key="a-2"
        )
    # The same account again (another key, after a lost answer) is the one there ...
    again = await intacct.connector.create_account(account, idempotency_key="a-3")
    assert again.id == created.id
    # ... and another account of a name the chart has is refused, naming it.
    twin = NewAccount(name="Cloud Hosting", number="6501", account_type=AccountType.expense)
    with pytest.raises(Rejected, match="already has an account with the name"):
        await intacct.connector.create_account(twin, idempotency_key="a-4")


# --- bills ------------------------------------------------------------------------------------


async def test_bill_with_dimensions_round_trips_and_is_found_by_reference(intacct: Intacct) -> None:
    bill = await intacct.bill("425.00", "475.00")
    created = await intacct.connector.create_bill(bill, reference="bill/r-1", idempotency_key="k-1")

    assert created.id and created.status == BillStatus.open
    assert (created.total, created.balance) == (Decimal("900.00"), Decimal("900.00"))
    assert created.document_number == bill.document_number
    assert [line.amount for line in created.lines] == [Decimal("425.00"), Decimal("475.00")]
    assert {(t.kind, t.id) for t in created.lines[0].tracking} == {
        (TrackingKind.department, "FIN"),
        (TrackingKind.location, "WEST"),
        (TrackingKind.class_, "EAST"),
    }
    assert created.reference == "bill/r-1" and created.updated_at is not None

    fetched = await intacct.connector.get_bill(created.id)
    assert fetched.lines == created.lines and fetched.memo == "remit test bill"

    found = await intacct.connector.find_bill_by_reference("bill/r-1", vendor_id=bill.vendor_id)
    assert found is not None and found.id == created.id
    assert (
        await intacct.connector.find_bill_by_reference("bill/other", vendor_id=bill.vendor_id)
        is None
    )

    by_number = await intacct.connector.find_bills(
        vendor_id=bill.vendor_id, document_number=bill.document_number
    )
    assert [b.id for b in by_number] == [created.id]
    headers = {h.id: h for h in await intacct.connector.find_bill_headers(vendor_id=bill.vendor_id)}
    assert headers[created.id].total == created.total
    assert headers[created.id].document_number == bill.document_number

    with pytest.raises(NotFound):
        await intacct.connector.get_bill("999999")


async def test_the_same_control_id_twice_makes_one_bill(intacct: Intacct) -> None:
    bill = await intacct.bill("120.00", tracking=False)
    before = creates_seen(intacct.emulator, "APBILL")
    first = await intacct.connector.create_bill(
        bill, reference="bill/idem", idempotency_key="idem-1"
    )
    second = await intacct.connector.create_bill(
        bill, reference="bill/idem", idempotency_key="idem-1"
    )

    assert first.id == second.id
    assert creates_seen(intacct.emulator, "APBILL") == before + 1
    assert (
        len(
            await intacct.connector.find_bills(
                vendor_id=bill.vendor_id, document_number=bill.document_number
            )
        )
        == 1
    )

    # Another key is another write: Intacct keeps both (remit looks up by reference first).
    third = await intacct.connector.create_bill(
        bill, reference="bill/idem", idempotency_key="idem-2"
    )
    assert third.id != first.id


async def test_uniqueid_replays_the_first_answer_byte_for_byte(intacct: Intacct) -> None:
    vendor_id = await intacct.vendor_id("Globex Software")
    create = (
        f"<create><APBILL><VENDORID>{vendor_id}</VENDORID><WHENCREATED>07/01/2026</WHENCREATED>"
        "<WHENDUE>07/31/2026</WHENDUE><APBILLITEMS><APBILLITEM><ACCOUNTNO>6400</ACCOUNTNO>"
        "<TRX_AMOUNT>99.00</TRX_AMOUNT></APBILLITEM></APBILLITEMS></APBILL></create>"
    )
    first = await intacct.raw(create, controlid="raw-1", unique=True)
    second = await intacct.raw(create, controlid="raw-1", unique=True)
    third = await intacct.raw(create, controlid="raw-1", unique=False)

    assert first == second
    numbers = [
        SafeET.fromstring(a).findtext("operation/result/data/apbill/RECORDNO")
        for a in (first, third)
    ]
    assert numbers[0] and numbers[1] and numbers[0] != numbers[1]


async def test_a_dropped_answer_is_outcome_unknown_then_found_and_replayed(
    intacct: Intacct,
) -> None:
    bill = await intacct.bill("300.00", tracking=False)
    intacct.emulator.faults.script("drop", IntacctEmulator.write_matches["bill"])
    with pytest.raises(OutcomeUnknown):
        await intacct.connector.create_bill(bill, reference="bill/drop", idempotency_key="drop-1")

    found = await intacct.connector.find_bill_by_reference("bill/drop", vendor_id=bill.vendor_id)
    assert found is not None and found.total == Decimal("300.00")
    retried = await intacct.connector.create_bill(
        bill, reference="bill/drop", idempotency_key="drop-1"
    )
    assert retried.id == found.id


async def test_an_error_envelope_is_rejected_with_intacct_s_words(intacct: Intacct) -> None:
    bill = (await intacct.bill("10.00", tracking=False)).model_copy()
    bill.lines[0].account_id = "9999"
    with pytest.raises(Rejected) as refused:
        await intacct.connector.create_bill(bill, reference="bill/bad", idempotency_key="bad-1")
    assert refused.value.code == "BL01001973"
    assert "Invalid GL Account" in refused.value.message and "9999" in refused.value.message

    answer = SafeET.fromstring(
        await intacct.raw("<read><object>NOSUCH</object><keys>1</keys></read>")
    )
    result = answer.find("operation/result")
    assert result is not None and result.findtext("status") == "failure"
    error = result.find("errormessage/error")
    assert error is not None
    assert [child.tag for child in error] == [
        "errorno",
        "description",
        "description2",
        "correction",
    ]
    assert "[Support ID:" in (error.findtext("description2") or "")


async def test_amounts_intacct_would_round_or_tax_it_cannot_take_are_refused(
    intacct: Intacct,
) -> None:
    bill = await intacct.bill("10.005", tracking=False)
    with pytest.raises(Rejected, match="two decimals"):
        await intacct.connector.create_bill(bill, reference="bill/fine", idempotency_key="fine-1")
    taxed = (await intacct.bill("10.00", tracking=False)).model_copy(
        update={"tax_amount": Decimal("1.00"), "total": Decimal("11.00")}
    )
    with pytest.raises(Rejected, match="tax"):
        await intacct.connector.create_bill(taxed, reference="bill/tax", idempotency_key="tax-1")
    with pytest.raises(Rejected, match="account"):
        await intacct.connector.create_bill_payment(
            payment(
                await intacct.connector.create_bill(
                    await intacct.bill("3.00", tracking=False),
                    reference="bill/acct",
                    idempotency_key="acct-1",
                ),
                "3.00",
            ).model_copy(update={"source_account_id": "6100"}),
            reference="pay/acct",
            idempotency_key="pay-acct",
        )


# --- paging -----------------------------------------------------------------------------------


async def test_listings_page_past_one_page(intacct: Intacct) -> None:
    small = intacct.connect(page_size="2")
    pages = 0
    cursor: str | None = None
    names: list[str] = []
    while True:
        page = await small.list_vendors(cursor)
        pages += 1
        names.extend(v.name for v in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages >= 4 and len(names) == len(set(names)) == 7

    vendor_id = await intacct.vendor_id("Initech Consulting")
    for n in range(5):
        bill = (await intacct.bill("1.00", vendor="Initech Consulting", tracking=False)).model_copy(
            update={"vendor_id": vendor_id}
        )
        await intacct.connector.create_bill(bill, reference=f"bill/p{n}", idempotency_key=f"p{n}")
    # readByQuery pages of 2, followed through readMore with the resultId to the end.
    headers = await small.find_bill_headers(vendor_id=vendor_id)
    assert len(headers) == 5 == len({h.id for h in headers})
    bills: list[Bill] = []
    cursor = None
    while True:
        bill_page = await small.list_bills(cursor)
        bills.extend(bill_page.items)
        cursor = bill_page.next_cursor
        if cursor is None:
            break
    assert len(bills) == len({b.id for b in bills}) == 7  # the two seeded bills and these five


async def test_an_expired_result_id_is_refused(intacct: Intacct) -> None:
    answer = SafeET.fromstring(
        await intacct.raw(
            "<readByQuery><object>VENDOR</object><query></query><pagesize>2</pagesize></readByQuery>"
        )
    )
    data = answer.find("operation/result/data")
    assert data is not None and data.get("numremaining") == "5" and data.get("resultId")
    intacct.clock.advance(minutes=16)
    again = SafeET.fromstring(
        await intacct.raw(f"<readMore><resultId>{data.get('resultId')}</resultId></readMore>")
    )
    assert again.findtext("operation/result/status") == "failure"
    assert "expired" in (again.findtext("operation/result/errormessage/error/description2") or "")


def test_readbyquery_query_language() -> None:
    match = parse_query(
        "NAME = 'Jane\\'s Deli' AND (STATUS = 'active' OR TAXID IS NULL)"
        " AND NOT RECORDID IN ('A', 'B')"
    )
    assert match({"NAME": "Jane's Deli", "STATUS": "inactive", "RECORDID": "C"})
    assert not match({"NAME": "Jane's Deli", "STATUS": "inactive", "TAXID": "1", "RECORDID": "C"})
    assert not match({"NAME": "Jane's Deli", "STATUS": "active", "RECORDID": "A"})
    assert parse_query("NAME LIKE 'Ac%'")({"NAME": "Acme"})
    with pytest.raises(ValueError, match="ends too early"):
        parse_query("NAME =")


# --- payments ---------------------------------------------------------------------------------


async def test_payments_settle_bills_and_a_void_reopens_them(intacct: Intacct) -> None:
    bill = await intacct.connector.create_bill(
        await intacct.bill("500.00", tracking=False),
        reference="bill/pay",
        idempotency_key="pay-bill",
    )
    assert bill.id
    first = await intacct.connector.create_bill_payment(
        payment(bill, "200.00"), reference="pay/1", idempotency_key="pay-1"
    )
    assert first.total == Decimal("200.00") and first.lines[0].bill_id == bill.id
    partly = await intacct.connector.get_bill(bill.id)
    assert (partly.status, partly.balance) == (BillStatus.partially_paid, Decimal("300.00"))

    second = await intacct.connector.create_bill_payment(
        payment(bill, "290.00", discount="10.00"), reference="pay/2", idempotency_key="pay-2"
    )
    assert second.lines[0].discount == Decimal("10.00")
    paid = await intacct.connector.get_bill(bill.id)
    assert (paid.status, paid.balance) == (BillStatus.paid, Decimal("0.00"))

    listed = await intacct.connector.list_bill_payments(bill_id=bill.id)
    assert {p.id for p in listed} == {first.id, second.id}
    found = await intacct.connector.find_bill_payment_by_reference(
        "pay/1", vendor_id=bill.vendor_id
    )
    assert found is not None and found.id == first.id

    with pytest.raises(Rejected, match="exceeds"):
        await intacct.connector.create_bill_payment(
            payment(bill, "1.00"), reference="pay/3", idempotency_key="pay-3"
        )

    assert second.id
    voided = await intacct.connector.void_bill_payment(second.id, idempotency_key="void-2")
    assert voided.voided
    again = await intacct.connector.void_bill_payment(second.id, idempotency_key="void-2b")
    assert again.voided
    reopened = await intacct.connector.get_bill(bill.id)
    assert (reopened.status, reopened.balance) == (BillStatus.partially_paid, Decimal("300.00"))


# --- changes, sessions, faults ----------------------------------------------------------------


async def test_changes_since_returns_what_changed_after_the_cursor(intacct: Intacct) -> None:
    # WHENMODIFIED has whole seconds and the cursor's own second is read again, so the
    # records seeded at the start are apart from the first pass by a few seconds.
    intacct.clock.advance(seconds=5)
    everything = await intacct.connector.changes_since(None)
    assert len(everything.vendors) == 7 and len(everything.bills) == 2
    intacct.clock.advance(seconds=5)
    vendor_id = await intacct.vendor_id("Globex Software")
    await intacct.connector.update_vendor(
        vendor_id, VendorChanges(email="ap@globex.example"), idempotency_key="chg-1"
    )
    bill = await intacct.connector.create_bill(
        await intacct.bill("42.00", tracking=False), reference="bill/chg", idempotency_key="chg-2"
    )
    later = await intacct.connector.changes_since(everything.cursor)
    assert [v.id for v in later.vendors] == [vendor_id]
    assert [b.id for b in later.bills] == [bill.id]
    assert later.bill_payments == []
    intacct.clock.advance(seconds=5)
    # The second `later` began in is read again, less what `later` took in it.
    assert f"APBILL:{bill.id}:" in later.cursor
    quiet = await intacct.connector.changes_since(later.cursor)
    assert (quiet.vendors, quiet.bills, quiet.bill_payments) == ([], [], [])
    # A change in that same second after the pass is still found.
    intacct.clock.moment = datetime.fromisoformat(later.cursor.partition("|")[0])
    payment_made = await intacct.connector.create_bill_payment(
        payment(bill, "42.00"), reference="pay/chg", idempotency_key="chg-3"
    )
    after = await intacct.connector.changes_since(later.cursor)
    assert [p.id for p in after.bill_payments] == [payment_made.id]
    assert [b.status for b in after.bills] == [BillStatus.paid]


async def test_a_timed_out_session_is_opened_again(intacct: Intacct) -> None:
    await intacct.connector.list_accounts()
    first = await intacct.connector.sessions.current()
    intacct.emulator.expire_sessions()
    assert await intacct.connector.list_accounts()
    assert await intacct.connector.sessions.current() != first

    # A write refused for its session is resent under the new one, and runs once.
    intacct.emulator.expire_sessions()
    before = creates_seen(intacct.emulator, "APBILL")
    await intacct.connector.create_bill(
        await intacct.bill("5.00", tracking=False), reference="bill/s", idempotency_key="s-1"
    )
    assert creates_seen(intacct.emulator, "APBILL") == before + 1


async def test_wrong_credentials_revoke_the_connection(intacct: Intacct) -> None:
    with pytest.raises(ConnectionRevoked, match="sign-in"):
        await intacct.connect(credentials={"user_password": "wrong"}).list_accounts()
    # The sender is remit's own Web Services subscription: renewable, not the customer's grant.
    with pytest.raises(AuthExpired, match="sender"):
        await intacct.connect(credentials={"sender_password": "wrong"}).list_accounts()
    with pytest.raises(Rejected, match="user_id"):
        intacct.connect(credentials={"user_id": ""})


async def test_throttling_and_server_errors(intacct: Intacct) -> None:
    intacct.emulator.faults.script("429", "readByQuery", times=5)
    with pytest.raises(RateLimited) as limited:
        await intacct.connect(read_attempts="1").list_accounts()
    assert limited.value.retry_after == timedelta(seconds=1) and limited.value.code == "GW-0010"
    intacct.emulator.faults.clear()

    intacct.emulator.faults.script("5xx", "readByQuery", times=1)
    assert await intacct.connector.list_accounts()  # a read outlasts one 502
    intacct.emulator.faults.script("5xx", "readByQuery", times=10)
    with pytest.raises(Unavailable):
        await intacct.connector.list_accounts()
    intacct.emulator.faults.clear()

    bill = await intacct.bill("7.00", tracking=False)
    before = creates_seen(intacct.emulator, "APBILL")
    intacct.emulator.faults.script("5xx", IntacctEmulator.write_matches["bill"], times=1)
    with pytest.raises(Unavailable):
        await intacct.connector.create_bill(bill, reference="bill/5xx", idempotency_key="5xx-1")
    assert creates_seen(intacct.emulator, "APBILL") == before  # sent once, never resent inline


async def test_attachments_link_to_the_bill_once(intacct: Intacct) -> None:
    bill = await intacct.connector.create_bill(
        await intacct.bill("15.00", tracking=False),
        reference="bill/doc",
        idempotency_key="doc-bill",
    )
    assert bill.id
    content = b"%PDF-1.4 remit test document"
    for _ in range(2):
        attachment = await intacct.connector.attach_document(
            bill.id,
            file_name="invoice.pdf",
            content_type="application/pdf",
            content=content,
            idempotency_key="doc-1",
        )
    listed = await intacct.connector.list_attachments(bill.id)
    assert [(a.id, a.file_name, a.size) for a in listed] == [
        (attachment.id, "invoice.pdf", len(content))
    ]
    assert (await intacct.connector.get_bill(bill.id)).attachment_ids == [attachment.id]
    # Another connector (another activity) finds remit's attachment folder already there.
    other = await intacct.connector.create_bill(
        await intacct.bill("16.00", tracking=False), reference="bill/doc2", idempotency_key="doc-b2"
    )
    assert other.id
    await intacct.connect().attach_document(
        other.id,
        file_name="second.pdf",
        content_type="application/pdf",
        content=content,
        idempotency_key="doc-3",
    )
    assert [a.file_name for a in await intacct.connector.list_attachments(other.id)] == [
        "second.pdf"
    ]
    with pytest.raises(Rejected, match="already has attachment"):
        await intacct.connector.attach_document(
            bill.id,
            file_name="other.pdf",
            content_type="application/pdf",
            content=b"x",
            idempotency_key="doc-2",
        )


async def test_the_inspector_reads_but_cannot_write(intacct: Intacct) -> None:
    inspector = intacct.connect(
        credentials={"user_id": "inspector", "user_password": intacct.company.inspector_token}
    )
    assert await inspector.list_accounts()
    with pytest.raises(Rejected, match="may only read"):
        await inspector.create_vendor(Vendor(name="Nope"), reference="n", idempotency_key="n")


async def test_over_loopback_http_and_kept_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "intacct.state"
    emulator = IntacctEmulator(state_file=state)
    company = emulator.seed_demo_company()
    async with serve_asgi(emulator.app) as url, httpx.AsyncClient(timeout=10) as http:
        connector = IntacctConnector(connection(company, base_url=url), http)
        vendor = (await connector.find_vendors(name="Globex Software"))[0]
        assert vendor.id
        bill = await connector.create_bill(
            Bill(
                vendor_id=vendor.id,
                issue_date=date(2026, 7, 1),
                currency="USD",
                lines=[BillLine(amount=Decimal("64.00"), account_id="6400")],
                total=Decimal("64.00"),
            ),
            reference="bill/kept",
            idempotency_key="kept-1",
        )
    restarted = IntacctEmulator(state_file=state)
    assert restarted.restored
    async with httpx.AsyncClient(transport=asgi(restarted), timeout=10) as http:
        connector = IntacctConnector(connection(company), http)
        assert bill.id and (await connector.get_bill(bill.id)).total == Decimal("64.00")
        again = await connector.create_bill(
            Bill(
                vendor_id=vendor.id,
                issue_date=date(2026, 7, 1),
                currency="USD",
                lines=[BillLine(amount=Decimal("64.00"), account_id="6400")],
                total=Decimal("64.00"),
            ),
            reference="bill/kept",
            idempotency_key="kept-1",
        )
        assert again.id == bill.id  # the control id outlives the restart


async def test_vendor_credits_are_debit_memos_applied_without_cash(intacct: Intacct) -> None:
    bill = await intacct.connector.create_bill(
        await intacct.bill("700.00", tracking=False), reference="bill/cr", idempotency_key="cr-b"
    )
    assert bill.id
    memo = BillCreditMemo(
        vendor_id=bill.vendor_id,
        document_number="CM-1",
        issue_date=date(2026, 7, 2),
        currency="USD",
        lines=[BillLine(amount=Decimal("200.00"), account_id="6100", description="returned")],
        total=Decimal("200.00"),
    )
    credit = await intacct.connector.create_credit_memo(
        memo, reference="cm/1", idempotency_key="cm-1"
    )
    assert credit.id and (credit.total, credit.remaining) == (Decimal("200.00"), Decimal("200.00"))
    found = await intacct.connector.find_credit_memo_by_reference("cm/1", vendor_id=bill.vendor_id)
    assert found is not None and found.id == credit.id
    assert (
        await intacct.connector.find_credit_memo_by_reference("cm/2", vendor_id=bill.vendor_id)
        is None
    )

    with pytest.raises(Rejected, match="left"):
        await intacct.connector.apply_credit(
            CreditApplication(credit_memo_id=credit.id, bill_id=bill.id, amount=Decimal("250.00")),
            idempotency_key="ap-0",
        )
    applied = await intacct.connector.apply_credit(
        CreditApplication(credit_memo_id=credit.id, bill_id=bill.id, amount=Decimal("150.00")),
        idempotency_key="ap-1",
    )
    assert applied.id
    after = await intacct.connector.get_bill(bill.id)
    assert (after.balance, after.status, after.payment_ids) == (
        Decimal("550.00"),
        BillStatus.partially_paid,
        [],
    )
    assert [
        (a.credit_memo_id, a.amount)
        for a in await intacct.connector.list_credit_applications(bill_id=bill.id)
    ] == [(credit.id, Decimal("150.00"))]
    assert await intacct.connector.list_bill_payments(bill_id=bill.id) == []
    (left,) = await intacct.connector.list_credit_memos(vendor_id=bill.vendor_id)
    assert left.remaining == Decimal("50.00")


async def test_cards_euro_banks_terms_and_rates(intacct: Intacct) -> None:
    accounts = {a.name: a for a in await intacct.connector.list_accounts()}
    assert (accounts["Company Card"].account_type, accounts["Company Card"].id) == (
        AccountType.credit_card,
        intacct.company.settings["card_account_id"],
    )
    assert accounts["Operating Bank EUR"].currency == "EUR"

    bill = await intacct.connector.create_bill(
        await intacct.bill("80.00", tracking=False), reference="bill/card", idempotency_key="card-b"
    )
    paid = await intacct.connector.create_bill_payment(
        payment(bill, "80.00").model_copy(update={"source_account_id": "2100"}),
        reference="pay/card",
        idempotency_key="card-p",
    )
    assert paid.source_account_id == "2100" and paid.reference == "pay/card"
    assert bill.id and (await intacct.connector.get_bill(bill.id)).status == BillStatus.paid

    terms = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)
    with_terms = await intacct.connector.create_bill(
        (await intacct.bill("100.00", tracking=False)).model_copy(update={"terms": terms}),
        reference="bill/terms",
        idempotency_key="terms-1",
    )
    assert with_terms.terms is not None
    assert (with_terms.terms.net_days, with_terms.terms.discount_percent) == (30, Decimal("2"))
    again = await intacct.connector.create_bill(
        (await intacct.bill("100.00", tracking=False)).model_copy(update={"terms": terms}),
        reference="bill/terms2",
        idempotency_key="terms-2",
    )
    assert again.terms == with_terms.terms  # the same AP term, not a second one
    assert len([t for t in (await intacct.connector.terms(refresh=True)).values() if t]) == 1

    rate = await intacct.connector.get_exchange_rate("EUR", date(2026, 7, 1))
    assert rate is not None and (rate.rate, rate.home_currency) == (Decimal("1.08"), "USD")
    fabrikam = await intacct.vendor_id("Fabrikam GmbH")
    euro = (await intacct.bill("50.00", tracking=False)).model_copy(
        update={"vendor_id": fabrikam, "currency": "EUR"}
    )
    created = await intacct.connector.create_bill(
        euro, reference="bill/eur", idempotency_key="eur-1"
    )
    assert (created.currency, created.exchange_rate) == ("EUR", Decimal("1.08"))


async def test_the_platform_auth_signs_in_as_client_credentials(intacct: Intacct) -> None:
    from connectors.intacct.auth import AUTH

    credentials = {**intacct.company.credentials, "company_id": intacct.company.company_id}
    tokens = await AUTH.renew(intacct.http, BASE_URL, credentials)
    assert AUTH.flow == "client_credentials" and tokens.access_token.get_secret_value()
    assert tokens.expires_at is not None
    # The session is one Intacct accepts.
    assert tokens.access_token.get_secret_value() in intacct.emulator.sessions
    company = await AUTH.linked_company(
        intacct.http, BASE_URL, tokens, {}, wanted=intacct.company.company_id
    )
    assert company.company_id == intacct.company.company_id
    with pytest.raises(ConnectionRevoked):
        await AUTH.renew(intacct.http, BASE_URL, {**credentials, "user_password": "wrong"})
    with pytest.raises(AuthExpired):
        await AUTH.renew(intacct.http, BASE_URL, {**credentials, "sender_password": "wrong"})
    with pytest.raises(ConnectionRevoked, match="company_id"):
        await AUTH.renew(intacct.http, BASE_URL, dict(intacct.company.credentials))


async def test_vat_lines_carry_tax_entries_of_purchase_details(intacct: Intacct) -> None:
    rates = {r.id: r for r in await intacct.connector.list_tax_rates()}
    assert "US Sales Tax" not in rates  # a sales detail is no code for a bill line
    standard = await intacct.connector.tax_code_for("S", Decimal("19"))
    assert standard is not None and standard.id == "DE Standard Rate Purchase 19%"
    reverse = await intacct.connector.tax_code_for("AE", Decimal("0"))
    assert reverse is not None and reverse.id == "Reverse Charge Purchase"

    bill = await intacct.bill("100.00", "33.33", tracking=False)
    lines = [line.model_copy(update={"tax_code_id": standard.id}) for line in bill.lines]
    # 19 % of 33.33 is 6.3327: the document's 25.33 puts the cent left over on the line
    # taxed most, so the entries add up to what the vendor charged.
    taxed = bill.model_copy(
        update={"lines": lines, "tax_amount": Decimal("25.33"), "total": Decimal("158.66")}
    )
    created = await intacct.connector.create_bill(
        taxed, reference="bill/vat", idempotency_key="vat-1"
    )
    assert (created.tax_amount, created.total, created.balance) == (
        Decimal("25.33"),
        Decimal("158.66"),
        Decimal("158.66"),
    )
    assert [line.tax_code_id for line in created.lines] == [standard.id, standard.id]
    assert [line.amount for line in created.lines] == [Decimal("100.00"), Decimal("33.33")]

    unknown = taxed.model_copy(
        update={
            "lines": [line.model_copy(update={"tax_code_id": "US Sales Tax"}) for line in lines]
        }
    )
    with pytest.raises(Rejected, match="not a purchase tax detail"):
        await intacct.connector.create_bill(unknown, reference="bill/vat2", idempotency_key="vat-2")


async def test_a_revoked_session_user_stops_every_call(intacct: Intacct) -> None:
    await intacct.connector.list_accounts()
    intacct.emulator.revoke_token(await intacct.connector.sessions.current())
    for _ in range(2):
        with pytest.raises(ConnectionRevoked, match="sign-in"):
            await intacct.connector.list_vendors()


async def test_a_stored_session_is_used_and_a_new_one_reported(intacct: Intacct) -> None:
    reported: list[dict[str, str]] = []

    async def on_tokens(credentials: dict[str, str]) -> None:
        reported.append(credentials)

    first = IntacctConnector(connection(intacct.company), intacct.http, on_tokens=on_tokens)
    await first.list_accounts()
    assert len(reported) == 1
    stored = {**intacct.company.credentials, **reported[0]}
    sessions = len(intacct.emulator.sessions)

    second = IntacctConnector(
        connection(intacct.company).model_copy(update={"credentials": stored}),
        intacct.http,
        on_tokens=on_tokens,
    )
    await second.list_accounts()
    assert len(intacct.emulator.sessions) == sessions and len(reported) == 1  # no new sign-in
    intacct.emulator.expire_sessions()
    await second.list_accounts()
    assert len(reported) == 2 and reported[1]["access_token"] != reported[0]["access_token"]
