"""The Business Central connector against its emulator over real HTTP (httpx ASGI, uvicorn)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from accounting import (
    AccountType,
    Bill,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    NewAccount,
    TrackingKind,
    TrackingRef,
    Vendor,
    VendorChanges,
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
from connectors.business_central import PLATFORM
from connectors.business_central.client import BusinessCentralConnector, classify
from connectors.oauth import Credentials, OnTokens
from sandbox.business_central import BusinessCentralEmulator
from sandbox.registry import DemoCompany
from tests.connectors.conftest import all_pages, asgi_transport, serve_asgi, unique

BASE_URL = "http://business-central.emulator"


@dataclass
class BC:
    emulator: BusinessCentralEmulator
    company: DemoCompany
    http: httpx.AsyncClient
    connector: BusinessCentralConnector

    def connect(
        self,
        *,
        settings: dict[str, str] | None = None,
        credentials: dict[str, str] | None = None,
        base_url: str = BASE_URL,
        http: httpx.AsyncClient | None = None,
        on_tokens: OnTokens | None = None,
    ) -> BusinessCentralConnector:
        connection = ConnectionConfig(
            id="conn-bc",
            platform="business_central",
            base_url=base_url,
            company_id=self.company.company_id,
            credentials=dict(self.company.credentials if credentials is None else credentials),
            settings={**self.company.settings, **(settings or {})},
        )
        connector = PLATFORM.connector(connection, http or self.http, on_tokens=on_tokens)
        assert isinstance(connector, BusinessCentralConnector)
        return connector

    async def account_id(self, name: str) -> str:
        for account in await self.connector.list_accounts():
            if account.name == name:
                return account.id
        raise AssertionError(f"no account {name!r}")

    async def vendor(self, name: str) -> Vendor:
        for vendor in await all_pages(self.connector.list_vendors):
            if vendor.name == name:
                return vendor
        raise AssertionError(f"no vendor {name!r}")

    async def new_bill(
        self, *, amounts: tuple[str, ...] = ("425.00", "475.00"), tracking: bool = True
    ) -> Bill:
        vendor = await self.vendor("Northwind Office Supply")
        assert vendor.id is not None
        account = await self.account_id("Office Supplies")
        refs: list[TrackingRef] = []
        if tracking:
            picked: dict[TrackingKind, TrackingRef] = {}
            for category in await self.connector.list_tracking_categories():
                picked.setdefault(category.kind, TrackingRef(kind=category.kind, id=category.id))
            refs = list(picked.values())
        today = date.today()
        return Bill(
            vendor_id=vendor.id,
            document_number=unique("INV")[:20],
            issue_date=today,
            due_date=today + timedelta(days=30),
            currency="USD",
            lines=[
                BillLine(
                    description=f"line {n}", amount=Decimal(a), account_id=account, tracking=refs
                )
                for n, a in enumerate(amounts, start=1)
            ],
            total=sum((Decimal(a) for a in amounts), Decimal("0")),
        )

    def payment(self, bill: Bill, amount: str, *, account: str = "bank_account_id") -> BillPayment:
        assert bill.id is not None
        return BillPayment(
            vendor_id=bill.vendor_id,
            payment_date=date.today(),
            currency="USD",
            source_account_id=self.company.settings[account],
            total=Decimal(amount),
            lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal(amount))],
        )


@pytest.fixture
async def bc() -> AsyncIterator[BC]:
    emulator = BusinessCentralEmulator()
    company = emulator.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi_transport(emulator.app), timeout=10) as http:
        harness = BC(emulator, company, http, None)  # type: ignore[arg-type]
        harness.connector = harness.connect()
        yield harness


# --- the token flow ------------------------------------------------------------------------------


class Saved:
    """An on_tokens callback that keeps every credentials set it is handed."""

    def __init__(self) -> None:
        self.sets: list[Credentials] = []

    async def __call__(self, credentials: Credentials) -> None:
        self.sets.append(credentials)


def app_only(bc: BC, **overrides: str) -> dict[str, str]:
    """The app registration's credentials without any access token yet."""
    keys = ("tenant_id", "client_id", "client_secret")
    return {**{k: bc.company.credentials[k] for k in keys}, **overrides}


async def test_the_first_call_gets_a_token_by_client_credentials(bc: BC) -> None:
    saved = Saved()
    connector = bc.connect(credentials=app_only(bc), on_tokens=saved)
    assert await connector.list_accounts()
    assert connector.tokens.renewals == 1
    assert [s["access_token"][:6] for s in saved.sets] == ["bc-at-"]
    assert saved.sets[0]["client_secret"] == bc.company.credentials["client_secret"]
    assert "expires_at" in saved.sets[0]
    # The token is kept: further calls reuse it.
    await connector.list_accounts()
    assert connector.tokens.renewals == 1


async def test_an_expired_token_is_renewed_once_and_the_call_goes_through(bc: BC) -> None:
    saved = Saved()
    connector = bc.connect(on_tokens=saved)
    await connector.list_accounts()
    assert connector.tokens.renewals == 0  # the linked token was still good
    bc.emulator.expire_tokens()
    await connector.list_accounts()
    assert connector.tokens.renewals == 1
    assert saved.sets[-1]["access_token"] != bc.company.credentials["access_token"]


async def test_without_a_listener_a_refused_token_is_auth_expired(bc: BC) -> None:
    bc.emulator.expire_tokens()
    with pytest.raises(AuthExpired) as caught:
        await bc.connector.list_accounts()
    assert caught.value.code == "Authentication_InvalidCredentials"


async def test_a_wrong_secret_is_a_revoked_connection(bc: BC) -> None:
    connector = bc.connect(credentials=app_only(bc, client_secret="nope"), on_tokens=Saved())
    with pytest.raises(ConnectionRevoked) as caught:
        await connector.list_accounts()
    assert caught.value.code == "invalid_client"


async def test_a_token_for_another_tenant_is_refused(bc: BC) -> None:
    connector = bc.connect(credentials=app_only(bc, tenant_id=unique("t")), on_tokens=Saved())
    with pytest.raises(ConnectionRevoked) as caught:
        await connector.list_accounts()
    assert caught.value.code == "unauthorized_client"


async def test_missing_credentials_say_what_is_needed(bc: BC) -> None:
    connector = bc.connect(
        credentials={"tenant_id": bc.company.credentials["tenant_id"]}, on_tokens=Saved()
    )
    with pytest.raises(ConnectionRevoked, match="client_id and client_secret"):
        await connector.list_accounts()


async def test_a_connection_without_a_tenant_is_refused_naming_it(bc: BC) -> None:
    with pytest.raises(Rejected, match="tenant id"):
        bc.connect(credentials={"client_id": "x", "client_secret": "y"})


async def test_an_app_disabled_in_business_central_stops_every_call(bc: BC) -> None:
    connector = bc.connect(on_tokens=Saved())
    bc.emulator.faults.script("revoke")
    with pytest.raises(ConnectionRevoked):
        await connector.list_accounts()
    with pytest.raises(ConnectionRevoked):
        await connector.list_vendors()


async def test_a_registered_app_gets_its_own_tokens(bc: BC) -> None:
    inspector = {"Authorization": f"Bearer {bc.company.inspector_token}"}
    answer = await bc.http.post(f"{BASE_URL}/_emulator/apps", headers=inspector)
    assert answer.status_code == 201
    app = answer.json()
    assert app["tenant_id"] == bc.company.credentials["tenant_id"]
    connector = bc.connect(credentials=app, on_tokens=Saved())
    assert await connector.home_currency() == "USD"
    refused = await bc.http.post(f"{BASE_URL}/_emulator/apps")
    assert refused.status_code == 401


async def test_the_inspector_token_reads_and_never_writes(bc: BC) -> None:
    inspector = {"Authorization": f"Bearer {bc.company.inspector_token}"}
    vendors = await bc.http.get(f"{bc.connector._company}/vendors", headers=inspector)
    assert vendors.status_code == 200 and vendors.json()["value"]
    write = await bc.http.post(
        f"{bc.connector._company}/vendors", headers=inspector, json={"displayName": "Nope"}
    )
    assert write.status_code == 403
    assert write.json()["error"]["code"] == "Authorization_InsufficientPermissions"


async def test_the_token_endpoint_checks_the_scope(bc: BC) -> None:
    tenant = bc.company.credentials["tenant_id"]
    answer = await bc.http.post(
        f"{BASE_URL}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": bc.company.credentials["client_id"],
            "client_secret": bc.company.credentials["client_secret"],
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"


# --- reads ---------------------------------------------------------------------------------------


async def test_accounts_and_dimensions_of_the_demo_company(bc: BC) -> None:
    accounts = {a.name: a for a in await bc.connector.list_accounts()}
    assert accounts["Operating Bank"].account_type == AccountType.bank
    assert accounts["Operating Bank"].id == bc.company.settings["bank_account_id"]
    assert accounts["Company Card"].account_type == AccountType.credit_card
    assert accounts["Accounts Payable"].account_type == AccountType.accounts_payable
    assert accounts["Office Supplies"].account_type == AccountType.expense
    categories = {c.name: c for c in await bc.connector.list_tracking_categories()}
    for department in ("Operations", "Finance", "Sales"):
        assert categories[department].kind == TrackingKind.department
    assert categories["East"].kind == TrackingKind.location
    assert await bc.connector.home_currency() == "USD"


async def test_exchange_rates_are_the_companys_latest_on_the_day(bc: BC) -> None:
    today = await bc.connector.get_exchange_rate("EUR", date.today())
    assert today is not None
    assert (today.currency, today.home_currency, today.rate) == ("EUR", "USD", Decimal("1.08"))
    assert today.as_of == date.today() - timedelta(days=2)
    earlier = await bc.connector.get_exchange_rate("EUR", date.today() - timedelta(days=10))
    assert earlier is not None and earlier.rate == Decimal("1.075")
    assert await bc.connector.get_exchange_rate("EUR", date.today() - timedelta(days=60)) is None
    assert await bc.connector.get_exchange_rate("GBP", date.today()) is None


async def test_vendors_are_found_by_tax_id_and_name(bc: BC) -> None:
    found = await bc.connector.find_vendors(tax_id="94-1234567")
    assert [v.name for v in found] == ["Northwind Office Supply"]
    assert await bc.connector.find_vendors(tax_id="00-0000000") == []
    named = await bc.connector.find_vendors(name="Fabrikam GmbH")
    assert [v.currency for v in named] == ["EUR"]


async def test_vendor_pages_follow_the_next_link(bc: BC) -> None:
    for n in range(4):
        await bc.connector.create_vendor(
            Vendor(name=unique(f"Pager {n}")), reference=unique("ref"), idempotency_key=unique("k")
        )
    small = bc.connect(settings={"page_size": "2"})
    first = await small.list_vendors()
    assert len(first.items) == 2
    assert first.next_cursor is not None and "$skiptoken=" in first.next_cursor
    every = await all_pages(small.list_vendors)
    everyone = await all_pages(bc.connector.list_vendors)
    assert [v.id for v in every] == [v.id for v in everyone]
    assert len({v.id for v in every}) == len(every) == 9


async def test_a_cursor_to_another_host_is_refused(bc: BC) -> None:
    with pytest.raises(Rejected, match="page cursor"):
        await bc.connector.list_vendors("http://elsewhere.example/vendors?$skiptoken=2")


async def test_the_seeded_bills_are_posted_and_open(bc: BC) -> None:
    bills = await all_pages(bc.connector.list_bills)
    assert {b.document_number for b in bills} >= {"GLX-2026-001", "INI-0042"}
    globex = next(b for b in bills if b.document_number == "GLX-2026-001")
    assert globex.status == BillStatus.open
    assert globex.total == globex.balance == Decimal("1200.00")


# --- vendors -------------------------------------------------------------------------------------


async def test_vendor_create_read_and_safe_repeat(bc: BC) -> None:
    vendor = Vendor(name=unique("Contoso"), tax_id="55-5555555", email="ap@contoso.example")
    created = await bc.connector.create_vendor(vendor, reference="r1", idempotency_key="k1")
    again = await bc.connector.create_vendor(vendor, reference="r1", idempotency_key="k1")
    assert created.id == again.id
    read = await bc.connector.get_vendor(created.id or "")
    assert (read.name, read.tax_id, read.email) == (vendor.name, "55-5555555", vendor.email)


async def test_vendor_update_is_sparse(bc: BC) -> None:
    vendor = await bc.vendor("Globex Software")
    updated = await bc.connector.update_vendor(
        vendor.id or "", VendorChanges(email="billing@globex.example"), idempotency_key="u1"
    )
    assert updated.email == "billing@globex.example"
    assert updated.tax_id == vendor.tax_id and updated.name == vendor.name


async def test_a_stale_etag_is_a_conflict_and_a_reread_then_succeeds(bc: BC) -> None:
    vendor = await bc.vendor("Initech Consulting")
    assert vendor.id is not None
    ours = bc.connect()
    theirs = bc.connect()
    await ours.get_vendor(vendor.id)  # our ETag
    await theirs.update_vendor(
        vendor.id, VendorChanges(email="x@initech.example"), idempotency_key="t"
    )
    with pytest.raises(Conflict) as caught:
        await ours.update_vendor(vendor.id, VendorChanges(name="Initech LLC"), idempotency_key="o")
    assert caught.value.status == 412
    assert caught.value.code == "Request_EntityChanged"
    # Conflict means re-read, then write again: the other change survives.
    await ours.get_vendor(vendor.id)
    updated = await ours.update_vendor(
        vendor.id, VendorChanges(name="Initech LLC"), idempotency_key="o"
    )
    assert (updated.name, updated.email) == ("Initech LLC", "x@initech.example")


async def test_a_patch_without_if_match_is_refused_by_the_emulator(bc: BC) -> None:
    vendor = await bc.vendor("Acme Corp")
    token = await bc.connector.tokens.current()
    answer = await bc.http.patch(
        f"{bc.connector._company}/vendors({vendor.id})",
        json={"email": "a@acme.example"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest_InvalidToken"


async def test_a_bad_vendor_is_rejected_with_the_platform_message(bc: BC) -> None:
    with pytest.raises(Rejected) as caught:
        await bc.connector.create_vendor(
            Vendor(name="Zloty Ltd", currency="PLN"), reference="r", idempotency_key="k"
        )
    assert caught.value.code == "Internal_InvalidTableRelation"
    assert "Currency" in caught.value.message


async def test_accounts_cannot_be_created_through_the_api(bc: BC) -> None:
    with pytest.raises(Rejected, match="create the account"):
        await bc.connector.create_account(
            NewAccount(name="Travel", account_type=AccountType.expense), idempotency_key="k"
        )


# --- bills ---------------------------------------------------------------------------------------


async def test_a_bill_is_created_posted_and_read_back_with_its_dimensions(bc: BC) -> None:
    bill = await bc.new_bill()
    created = await bc.connector.create_bill(bill, reference="ref-1", idempotency_key="k-1")
    assert created.status == BillStatus.open
    assert created.total == created.balance == Decimal("900.00")
    assert created.document_number == bill.document_number
    assert created.reference == "ref-1"
    read = await bc.connector.get_bill(created.id or "")
    assert [line.amount for line in read.lines] == [Decimal("425.00"), Decimal("475.00")]
    assert {t.id for t in read.lines[0].tracking} == {t.id for t in bill.lines[0].tracking}
    assert len(read.lines[0].tracking) == 2
    assert read.reference == "ref-1"
    found = await bc.connector.find_bill_by_reference("ref-1", vendor_id=bill.vendor_id)
    assert found is not None and found.id == created.id
    assert await bc.connector.find_bill_by_reference("ref-2", vendor_id=bill.vendor_id) is None
    by_number = await bc.connector.find_bills(
        vendor_id=bill.vendor_id, document_number=bill.document_number
    )
    assert [b.id for b in by_number] == [created.id]


async def test_a_retried_create_finds_the_first_invoice(bc: BC) -> None:
    bill = await bc.new_bill()
    first = await bc.connector.create_bill(bill, reference="same", idempotency_key="k")
    again = await bc.connector.create_bill(bill, reference="same", idempotency_key="k")
    assert again.id == first.id
    listed = await bc.connector.find_bills(
        vendor_id=bill.vendor_id, document_number=bill.document_number
    )
    assert len(listed) == 1


async def test_a_dropped_create_is_outcome_unknown_and_the_retry_finishes_it(bc: BC) -> None:
    bill = await bc.new_bill()
    bc.emulator.faults.script("drop", bc.emulator.write_matches["bill"])
    with pytest.raises(OutcomeUnknown):
        await bc.connector.create_bill(bill, reference="dropped", idempotency_key="k")
    # The draft was committed; the look-up finds it, and the retry posts it (once).
    draft = await bc.connector.find_bill_by_reference("dropped", vendor_id=bill.vendor_id)
    assert draft is not None and draft.status == BillStatus.draft
    posted = await bc.connector.create_bill(bill, reference="dropped", idempotency_key="k")
    assert posted.id == draft.id and posted.status == BillStatus.open
    assert len(posted.lines[0].tracking) == 2


async def test_a_dropped_post_action_is_finished_by_the_retry(bc: BC) -> None:
    bill = await bc.new_bill(tracking=False)
    bc.emulator.faults.script("drop", "Microsoft.NAV.post")
    with pytest.raises(OutcomeUnknown):
        await bc.connector.create_bill(bill, reference="post-lost", idempotency_key="k")
    again = await bc.connector.create_bill(bill, reference="post-lost", idempotency_key="k")
    assert again.status == BillStatus.open
    assert (
        len(
            await bc.connector.find_bills(
                vendor_id=bill.vendor_id, document_number=bill.document_number
            )
        )
        == 1
    )


async def test_a_bill_in_a_currency_the_company_has_not_set_up_is_rejected(bc: BC) -> None:
    bill = (await bc.new_bill(tracking=False)).model_copy(update={"currency": "JPY"})
    with pytest.raises(Rejected) as caught:
        await bc.connector.create_bill(bill, reference="yen", idempotency_key="k")
    assert caught.value.code == "Internal_InvalidTableRelation"
    assert "Currency" in caught.value.message
    euro = (await bc.new_bill(tracking=False)).model_copy(update={"currency": "EUR"})
    created = await bc.connector.create_bill(euro, reference="euro", idempotency_key="k")
    assert created.currency == "EUR"


async def test_tracking_the_company_does_not_have_is_rejected_before_any_write(bc: BC) -> None:
    bill = await bc.new_bill()
    unknown = TrackingRef(kind=TrackingKind.department, id="11111111-2222-3333-4444-555555555555")
    line = bill.lines[0].model_copy(update={"tracking": [unknown]})
    with pytest.raises(Rejected, match="not a dimension value"):
        await bc.connector.create_bill(
            bill.model_copy(update={"lines": [line]}), reference="dims", idempotency_key="k"
        )
    departments = [
        c for c in await bc.connector.list_tracking_categories() if c.name in ("Finance", "Sales")
    ]
    two = [TrackingRef(kind=c.kind, id=c.id) for c in departments]
    line = bill.lines[0].model_copy(update={"tracking": two})
    with pytest.raises(Rejected, match="one value per dimension"):
        await bc.connector.create_bill(
            bill.model_copy(update={"lines": [line]}), reference="dims", idempotency_key="k"
        )
    assert await bc.connector.find_bill_by_reference("dims", vendor_id=bill.vendor_id) is None


async def test_a_bill_line_without_an_account_is_rejected_before_any_write(bc: BC) -> None:
    bill = await bc.new_bill(tracking=False)
    bill = bill.model_copy(
        update={"lines": [bill.lines[0].model_copy(update={"account_id": None}), bill.lines[1]]}
    )
    with pytest.raises(Rejected, match="G/L account"):
        await bc.connector.create_bill(bill, reference="r", idempotency_key="k")


async def test_an_unknown_account_is_rejected_with_the_platform_message(bc: BC) -> None:
    bill = await bc.new_bill(tracking=False)
    line = bill.lines[0].model_copy(update={"account_id": "11111111-2222-3333-4444-555555555555"})
    bill = bill.model_copy(update={"lines": [line, bill.lines[1]]})
    with pytest.raises(Rejected) as caught:
        await bc.connector.create_bill(bill, reference="r", idempotency_key="k")
    assert caught.value.code == "Internal_InvalidTableRelation"
    assert "G/L Account" in caught.value.message


async def test_the_same_vendor_invoice_number_is_refused_at_posting(bc: BC) -> None:
    bill = await bc.new_bill(tracking=False)
    await bc.connector.create_bill(bill, reference="one", idempotency_key="k1")
    with pytest.raises(Rejected) as caught:
        await bc.connector.create_bill(bill, reference="two", idempotency_key="k2")
    assert caught.value.code == "Application_DialogException"
    assert "already exists" in caught.value.message
    # The refused draft is gone: a corrected retry under the same reference writes anew.
    assert await bc.connector.find_bill_by_reference("two", vendor_id=bill.vendor_id) is None
    corrected = bill.model_copy(update={"document_number": unique("INV")[:20]})
    fixed = await bc.connector.create_bill(corrected, reference="two", idempotency_key="k2")
    assert (fixed.status, fixed.document_number) == (BillStatus.open, corrected.document_number)


async def test_an_unknown_bill_is_not_found(bc: BC) -> None:
    with pytest.raises(NotFound):
        await bc.connector.get_bill("11111111-2222-3333-4444-555555555555")


async def test_changes_since_returns_only_later_changes(bc: BC) -> None:
    start = await bc.connector.changes_since(None)
    assert start.cursor
    assert {b.document_number for b in start.bills} >= {"GLX-2026-001"}
    # The emulator's clock moves on between the two reads, as a real one does.
    later = bc.emulator.clock() + timedelta(seconds=1)
    bc.emulator.clock = lambda: later
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="delta", idempotency_key="k"
    )
    changes = await bc.connector.changes_since(start.cursor)
    assert [b.id for b in changes.bills] == [bill.id]
    assert changes.vendors == []
    assert changes.cursor > start.cursor
    assert (await bc.connector.changes_since(changes.cursor)).bills == []


# --- attachments ---------------------------------------------------------------------------------


async def test_attachment_upload_list_and_safe_repeat(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="att", idempotency_key="k"
    )
    content = b"%PDF-1.4 remit test document"
    attached = await bc.connector.attach_document(
        bill.id or "",
        file_name="invoice.pdf",
        content_type="application/pdf",
        content=content,
        idempotency_key="a1",
    )
    again = await bc.connector.attach_document(
        bill.id or "",
        file_name="invoice.pdf",
        content_type="application/pdf",
        content=content,
        idempotency_key="a1",
    )
    assert again.id == attached.id
    listed = await bc.connector.list_attachments(bill.id or "")
    assert [(a.file_name, a.size, a.content_type) for a in listed] == [
        ("invoice.pdf", len(content), "application/pdf")
    ]
    token = await bc.connector.tokens.current()
    stored = await bc.http.get(
        f"{bc.connector._company}/attachments({attached.id})/attachmentContent",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert stored.content == content


# --- payments ------------------------------------------------------------------------------------


async def test_paying_a_bill_through_the_payment_journal(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="pay-me", idempotency_key="k"
    )
    partial = await bc.connector.create_bill_payment(
        bc.payment(bill, "400.00"), reference="pay-1", idempotency_key="p1"
    )
    assert partial.total == Decimal("400.00")
    assert partial.source_account_id == bc.company.settings["bank_account_id"]
    assert (await bc.connector.get_bill(bill.id or "")).status == BillStatus.partially_paid
    rest = await bc.connector.create_bill_payment(
        bc.payment(bill, "500.00", account="card_account_id"),
        reference="pay-2",
        idempotency_key="p2",
    )
    assert rest.source_account_id == bc.company.settings["card_account_id"]
    paid = await bc.connector.get_bill(bill.id or "")
    assert (paid.status, paid.balance) == (BillStatus.paid, Decimal("0"))
    payments = await bc.connector.list_bill_payments(bill_id=bill.id or "")
    assert sorted(p.total for p in payments) == [Decimal("400.00"), Decimal("500.00")]
    found = await bc.connector.find_bill_payment_by_reference("pay-1", vendor_id=bill.vendor_id)
    assert found is not None and found.id == partial.id


async def test_a_retried_payment_is_written_once(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="once", idempotency_key="k"
    )
    first = await bc.connector.create_bill_payment(
        bc.payment(bill, "100.00"), reference="pay", idempotency_key="p"
    )
    again = await bc.connector.create_bill_payment(
        bc.payment(bill, "100.00"), reference="pay", idempotency_key="p"
    )
    assert again.id == first.id
    assert len(await bc.connector.list_bill_payments(bill_id=bill.id or "")) == 1
    assert (await bc.connector.get_bill(bill.id or "")).balance == Decimal("800.00")


async def test_a_dropped_batch_is_outcome_unknown_and_the_payment_is_whole(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="batch-drop", idempotency_key="k"
    )
    bc.emulator.faults.script("drop", bc.emulator.write_matches["bill_payment"])
    with pytest.raises(OutcomeUnknown):
        await bc.connector.create_bill_payment(
            bc.payment(bill, "300.00"), reference="half", idempotency_key="p"
        )
    found = await bc.connector.find_bill_payment_by_reference("half", vendor_id=bill.vendor_id)
    assert found is not None and found.total == Decimal("300.00")
    again = await bc.connector.create_bill_payment(
        bc.payment(bill, "300.00"), reference="half", idempotency_key="p"
    )
    assert again.id == found.id
    assert (await bc.connector.get_bill(bill.id or "")).balance == Decimal("600.00")


async def test_a_payment_of_several_bills_is_one_document(bc: BC) -> None:
    one = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="multi-1", idempotency_key="k1"
    )
    two = await bc.connector.create_bill(
        await bc.new_bill(amounts=("50.00",), tracking=False),
        reference="multi-2",
        idempotency_key="k2",
    )
    payment = BillPayment(
        vendor_id=one.vendor_id,
        payment_date=date.today(),
        currency="USD",
        source_account_id=bc.company.settings["bank_account_id"],
        total=Decimal("950.00"),
        lines=[
            BillPaymentLine(bill_id=one.id or "", amount=Decimal("900.00")),
            BillPaymentLine(bill_id=two.id or "", amount=Decimal("50.00")),
        ],
    )
    paid = await bc.connector.create_bill_payment(payment, reference="both", idempotency_key="p")
    assert paid.total == Decimal("950.00")
    assert {(line.bill_id, line.amount) for line in paid.lines} == {
        (one.id, Decimal("900.00")),
        (two.id, Decimal("50.00")),
    }
    for bill in (one, two):
        read = await bc.connector.get_bill(bill.id or "")
        assert read.status == BillStatus.paid and read.payment_ids == [paid.id]
    listed = await bc.connector.list_bill_payments(bill_id=two.id or "")
    assert [p.total for p in listed] == [Decimal("950.00")]


async def test_a_failing_line_rolls_the_whole_batch_back(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="rollback", idempotency_key="k"
    )
    # Someone pays part of the bill in Business Central after remit read it.
    other = bc.connect()
    await other.create_bill_payment(bc.payment(bill, "800.00"), reference="x", idempotency_key="x")
    read_before = bill.model_copy(update={"balance": Decimal("900.00")})
    connector = bc.connector
    stale = bc.payment(read_before, "500.00")
    # Our pre-check sees the 100 left and refuses, naming the amounts.
    with pytest.raises(Rejected, match="remaining"):
        await connector.create_bill_payment(stale, reference="late", idempotency_key="l")
    token = await connector.tokens.current()
    journal = next(
        j
        for j in (
            await bc.http.get(
                f"{connector._company}/vendorPaymentJournals",
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()["value"]
        if j["code"] == "PAYMENT"
    )
    # Sent as a batch anyway, the post fails and takes the written line back with it.
    answer = await bc.http.post(
        f"{connector._root}/$batch",
        headers={"Authorization": f"Bearer {token}", "Isolation": "snapshot"},
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "POST",
                    "url": f"companies({bc.company.company_id})/vendorPaymentJournals"
                    f"({journal['id']})/vendorPayments",
                    "body": {
                        "vendorId": bill.vendor_id,
                        "amount": 500,
                        "appliesToInvoiceId": bill.id,
                    },
                },
                {
                    "id": "2",
                    "method": "POST",
                    "url": f"companies({bc.company.company_id})/journals({journal['id']})"
                    "/Microsoft.NAV.post",
                },
            ]
        },
    )
    statuses = [r["status"] for r in answer.json()["responses"]]
    assert statuses == [201, 400]
    lines = await bc.http.get(
        f"{connector._company}/vendorPaymentJournals({journal['id']})/vendorPayments",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert lines.json()["value"] == []
    assert (await connector.get_bill(bill.id or "")).balance == Decimal("100.00")


async def test_overpaying_a_bill_is_rejected_and_leaves_no_journal_line(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="over", idempotency_key="k"
    )
    with pytest.raises(Rejected, match="remaining"):
        await bc.connector.create_bill_payment(
            bc.payment(bill, "900.01"), reference="too-much", idempotency_key="p"
        )
    ok = await bc.connector.create_bill_payment(
        bc.payment(bill, "900.00"), reference="right", idempotency_key="p2"
    )
    assert ok.total == Decimal("900.00")


async def test_a_payment_from_an_account_without_a_journal_is_rejected_naming_it(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="nojournal", idempotency_key="k"
    )
    payment = bc.payment(bill, "10.00").model_copy(
        update={"source_account_id": bc.company.settings["ap_account_id"]}
    )
    with pytest.raises(Rejected, match="no vendor payment journal"):
        await bc.connector.create_bill_payment(payment, reference="r", idempotency_key="p")


async def test_voiding_is_refused_saying_where_to_reverse(bc: BC) -> None:
    bill = await bc.connector.create_bill(
        await bc.new_bill(tracking=False), reference="void", idempotency_key="k"
    )
    paid = await bc.connector.create_bill_payment(
        bc.payment(bill, "900.00"), reference="v", idempotency_key="p"
    )
    with pytest.raises(Rejected, match="Reverse Transaction"):
        await bc.connector.void_bill_payment(paid.id or "", idempotency_key="v")
    with pytest.raises(NotFound):
        await bc.connector.void_bill_payment("RMTNOSUCHPAYMENT", idempotency_key="v")


def test_answers_the_emulator_cannot_give_map_to_their_errors() -> None:
    """Statuses Business Central sends that no emulator fault produces (gateway timeouts,
    permission refusals), read through the same classify as every answer."""

    def answer(status: int, method: str, code: str) -> httpx.Response:
        return httpx.Response(
            status,
            json={"error": {"code": code, "message": f"{code} happened"}},
            request=httpx.Request(method, f"{BASE_URL}/v2.0/t/production/api/v2.0/x"),
        )

    assert isinstance(classify(answer(504, "POST", "GatewayTimeout")), OutcomeUnknown)
    assert isinstance(classify(answer(408, "PATCH", "RequestTimeout")), OutcomeUnknown)
    assert isinstance(classify(answer(504, "GET", "GatewayTimeout")), Unavailable)
    assert isinstance(classify(answer(403, "GET", "Authorization_Forbidden")), ConnectionRevoked)
    conflict = classify(answer(409, "PATCH", "Request_EntityChanged"))
    assert isinstance(conflict, Conflict) and conflict.code == "Request_EntityChanged"
    refused = classify(answer(400, "POST", "Application_DialogException"))
    assert isinstance(refused, Rejected) and "happened" in refused.message


# --- faults --------------------------------------------------------------------------------------


async def test_a_throttle_is_rate_limited_with_the_retry_after(bc: BC) -> None:
    bc.emulator.faults.retry_after_seconds = 7
    bc.emulator.faults.script("429", "/vendors", times=5)
    with pytest.raises(RateLimited) as caught:
        await bc.connector.list_vendors()
    assert caught.value.retry_after == timedelta(seconds=7)
    assert caught.value.code == "Application_TooManyRequests"


async def test_a_read_outlasts_a_passing_server_error(bc: BC) -> None:
    bc.emulator.faults.script("5xx", "/accounts", times=1)
    assert await bc.connector.list_accounts()


async def test_a_server_error_that_persists_is_unavailable(bc: BC) -> None:
    bc.emulator.faults.script("5xx", "/accounts", times=10)
    with pytest.raises(Unavailable):
        await bc.connector.list_accounts()


async def test_a_write_is_never_resent_inline(bc: BC) -> None:
    bc.emulator.faults.script("5xx", "POST /v2.0/", times=1)
    vendor = Vendor(name=unique("Once"))
    with pytest.raises(Unavailable):
        await bc.connector.create_vendor(vendor, reference="r", idempotency_key="k")
    assert await bc.connector.find_vendors(name=vendor.name) == []


async def test_over_a_real_socket(bc: BC) -> None:
    async with serve_asgi(bc.emulator.app) as url, httpx.AsyncClient(timeout=10) as http:
        connector = bc.connect(base_url=url, http=http)
        bill = await connector.create_bill(
            await bc.new_bill(), reference="socket", idempotency_key="k"
        )
        assert bill.status == BillStatus.open
        assert [
            b.id
            for b in await all_pages(
                bc.connect(base_url=url, http=http, settings={"page_size": "1"}).list_bills
            )
        ][-1] == bill.id


async def test_the_emulator_keeps_its_records_across_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "business_central.state"
    first = BusinessCentralEmulator(state_file=state)
    company = first.seed_demo_company()
    async with httpx.AsyncClient(transport=asgi_transport(first.app), timeout=10) as http:
        harness = BC(first, company, http, None)  # type: ignore[arg-type]
        harness.connector = harness.connect()
        bill = await harness.connector.create_bill(
            await harness.new_bill(tracking=False), reference="kept", idempotency_key="k"
        )
    second = BusinessCentralEmulator(state_file=state)
    assert second.restored
    async with httpx.AsyncClient(transport=asgi_transport(second.app), timeout=10) as http:
        harness = BC(second, company, http, None)  # type: ignore[arg-type]
        harness.connector = harness.connect()
        found = await harness.connector.find_bill_by_reference("kept", vendor_id=bill.vendor_id)
        assert found is not None and found.id == bill.id and found.status == BillStatus.open
