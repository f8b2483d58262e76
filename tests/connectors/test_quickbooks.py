"""QuickBooks Online specifics: the emulator's native API and the connector's error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from accounting import (
    Bill,
    BillLine,
    BillPayment,
    BillPaymentLine,
    CreditApplication,
    PaymentTerms,
    TrackingKind,
    TrackingRef,
)
from accounting import Vendor as UnifiedVendor
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
from connectors.quickbooks import wire
from connectors.quickbooks.client import QuickBooksConnector
from sandbox.quickbooks import QuickBooksEmulator
from sandbox.registry import DemoCompany
from tests.connectors.conftest import asgi_transport, unique

BASE = "http://quickbooks.emulator"


class Qbo:
    """Raw access to the emulator's native API, the way any QBO client sees it."""

    def __init__(self, emulator: QuickBooksEmulator, company: DemoCompany) -> None:
        self.emulator = emulator
        self.company = company
        self.http = httpx.AsyncClient(transport=asgi_transport(emulator.app), base_url=BASE)
        self.token = company.credentials["access_token"]

    def path(self, resource: str) -> str:
        return f"/v3/company/{self.company.company_id}/{resource}"

    async def call(
        self,
        method: str,
        resource: str,
        body: Any = None,
        token: str | None = None,
        **params: str,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = wire.dumps(body)
        return await self.http.request(
            method,
            self.path(resource),
            params={"minorversion": "75", **params},
            headers=headers,
            content=content,
        )

    async def query(self, statement: str) -> Any:
        response = await self.call("GET", "query", query=statement)
        assert response.status_code == 200, response.text
        return wire.loads(response.text)["QueryResponse"]

    async def first(self, entity: str, name: str, field: str = "Name") -> dict[str, Any]:
        rows = (await self.query(f"SELECT * FROM {entity} WHERE {field} = '{name}'"))[entity]
        assert len(rows) == 1
        found: dict[str, Any] = rows[0]
        return found

    def connector(self, **settings: str) -> QuickBooksConnector:
        connection = ConnectionConfig(
            id="conn-qbo",
            platform="quickbooks",
            base_url=BASE,
            company_id=self.company.company_id,
            credentials=dict(self.company.credentials),
            settings={**self.company.settings, **settings},
        )
        return QuickBooksConnector(connection, self.http)

    async def bill_body(self, doc_number: str, amount: str = "120.00") -> dict[str, Any]:
        vendor = await self.first("Vendor", "Northwind Office Supply", "DisplayName")
        account = await self.first("Account", "Office Supplies")
        return {
            "VendorRef": {"value": vendor["Id"]},
            "DocNumber": doc_number,
            "Line": [
                {
                    "Amount": Decimal(amount),
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account["Id"]}},
                }
            ],
        }


def fault_code(response: httpx.Response) -> str:
    code: str = wire.loads(response.text)["Fault"]["Error"][0]["code"]
    return code


@pytest.fixture
async def qbo() -> AsyncIterator[Qbo]:
    emulator = QuickBooksEmulator()
    raw = Qbo(emulator, emulator.seed_demo_company())
    yield raw
    await raw.http.aclose()


# ---------------------------------------------------------------------------------------------
# Emulator: native behaviours
# ---------------------------------------------------------------------------------------------


async def test_sync_token_increments_and_stale_update_is_5010(qbo: Qbo) -> None:
    created = await qbo.call("POST", "vendor", {"DisplayName": "Umbrella Corp"})
    vendor = wire.loads(created.text)["Vendor"]
    assert vendor["SyncToken"] == "0"

    update = {"Id": vendor["Id"], "SyncToken": "0", "sparse": True, "CompanyName": "Umbrella"}
    updated = await qbo.call("POST", "vendor", update)
    stale = await qbo.call("POST", "vendor", update)

    assert wire.loads(updated.text)["Vendor"]["SyncToken"] == "1"
    assert wire.loads(updated.text)["Vendor"]["DisplayName"] == "Umbrella Corp"
    assert stale.status_code == 400 and fault_code(stale) == "5010"
    assert "Stale Object Error" in stale.text


async def test_requestid_replays_the_first_response(qbo: Qbo) -> None:
    body = {"DisplayName": "Wayne Enterprises"}
    first = await qbo.call("POST", "vendor", body, requestid="r-1")
    replay = await qbo.call("POST", "vendor", body, requestid="r-1")
    other_id = await qbo.call("POST", "vendor", body, requestid="r-2")

    assert first.status_code == replay.status_code == 200
    assert replay.content == first.content
    assert other_id.status_code == 400 and fault_code(other_id) == "6240"
    rows = await qbo.query("SELECT * FROM Vendor WHERE DisplayName = 'Wayne Enterprises'")
    assert len(rows["Vendor"]) == 1


async def test_requestid_longer_than_50_is_refused(qbo: Qbo) -> None:
    response = await qbo.call("POST", "vendor", {"DisplayName": "Long"}, requestid="x" * 51)
    assert response.status_code == 400 and fault_code(response) == "2050"
    assert len(wire.request_id("k" * 500)) <= 50


async def test_duplicate_doc_number_is_6140_unless_allowed(qbo: Qbo) -> None:
    body = await qbo.bill_body("INV-DUP-1")
    assert (await qbo.call("POST", "bill", body)).status_code == 200

    duplicate = await qbo.call("POST", "bill", body)
    allowed = await qbo.call("POST", "bill", body, include="allowduplicatedocnum")

    assert duplicate.status_code == 400 and fault_code(duplicate) == "6140"
    assert allowed.status_code == 200
    count = await qbo.query("SELECT count(*) FROM Bill WHERE DocNumber = 'INV-DUP-1'")
    assert count["totalCount"] == 2


async def test_connector_maps_duplicates_to_rejected_with_qbo_message(qbo: Qbo) -> None:
    connector = qbo.connector()
    with pytest.raises(Rejected) as raised:
        await connector.create_vendor(
            UnifiedVendor(name="Globex Software"), reference="v", idempotency_key=unique("k")
        )
    assert raised.value.code == "6240"
    assert "Duplicate Name Exists Error" in raised.value.message


async def test_query_grammar(qbo: Qbo) -> None:
    everyone = await qbo.query("SELECT * FROM Vendor")
    assert everyone["totalCount"] == len(everyone["Vendor"]) == 6

    acme = await qbo.query(
        "select * from Vendor where DisplayName LIKE 'acme%' ORDERBY DisplayName DESC"
    )
    assert [v["DisplayName"] for v in acme["Vendor"]] == ["ACME Corporation", "Acme Corp"]

    ids = [v["Id"] for v in everyone["Vendor"]]
    picked = await qbo.query(f"SELECT * FROM Vendor WHERE Id IN ('{ids[0]}', '{ids[2]}')")
    assert [v["Id"] for v in picked["Vendor"]] == [ids[0], ids[2]]

    page = await qbo.query("SELECT * FROM Vendor ORDERBY Id STARTPOSITION 2 MAXRESULTS 2")
    assert [v["Id"] for v in page["Vendor"]] == ids[1:3]
    assert (page["startPosition"], page["maxResults"], page["totalCount"]) == (2, 2, 6)

    past_end = await qbo.query("SELECT * FROM Vendor STARTPOSITION 50")
    assert "Vendor" not in past_end

    banks = await qbo.query("SELECT * FROM Account WHERE AccountType = 'Bank' AND Active = true")
    assert {a["Name"] for a in banks["Account"]} == {"Operating Bank", "Operating Bank EUR"}

    count = await qbo.query("SELECT count(*) FROM Account")
    assert count == {"totalCount": 11}


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Vendor WHERE DisplayName = 'a' OR DisplayName = 'b'",
        "SELECT Name FROM Vendor",
        "SELECT * FROM Vendor WHERE",
        "SELECT * FROM Vendor LIMIT 5",
    ],
)
async def test_query_parser_errors_are_400_code_4000(qbo: Qbo, statement: str) -> None:
    response = await qbo.call("GET", "query", query=statement)
    assert response.status_code == 400 and fault_code(response) == "4000"


async def test_unknown_query_entity_is_4001(qbo: Qbo) -> None:
    response = await qbo.call("GET", "query", query="SELECT * FROM Invoicez")
    assert response.status_code == 400 and fault_code(response) == "4001"


async def test_cdc_reports_changes_and_deletions_after_changed_since(qbo: Qbo) -> None:
    before = wire.loads((await qbo.call("GET", "query", query="SELECT count(*) FROM Bill")).text)
    since = before["time"]
    bill = wire.loads((await qbo.call("POST", "bill", await qbo.bill_body("CDC-1"))).text)["Bill"]
    deleted = await qbo.call(
        "POST", "bill", {"Id": bill["Id"], "SyncToken": bill["SyncToken"]}, operation="delete"
    )
    assert deleted.status_code == 200

    response = await qbo.call("GET", "cdc", entities="Bill,Vendor", changedSince=since)

    blocks = wire.loads(response.text)["CDCResponse"][0]["QueryResponse"]
    bills = blocks[0]["Bill"]
    assert bills == [{"Id": bill["Id"], "status": "Deleted", "MetaData": bills[0]["MetaData"]}]
    assert "Vendor" not in blocks[1]

    too_old = (date.today() - timedelta(days=31)).isoformat()
    old = await qbo.call("GET", "cdc", entities="Bill", changedSince=too_old)
    assert old.status_code == 400


async def test_bill_balance_and_linked_txn_follow_payments_and_credits(qbo: Qbo) -> None:
    body = await qbo.bill_body("BAL-1", "120.00")
    bill = wire.loads((await qbo.call("POST", "bill", body)).text)["Bill"]
    credit_body = {**(await qbo.bill_body("CR-1", "25.00"))}
    credit = wire.loads((await qbo.call("POST", "vendorcredit", credit_body)).text)["VendorCredit"]
    assert (bill["Balance"], credit["Balance"]) == (Decimal("120.00"), Decimal("25.00"))

    payment = {
        "VendorRef": body["VendorRef"],
        "PayType": "Check",
        "CheckPayment": {"BankAccountRef": {"value": qbo.company.settings["bank_account_id"]}},
        "TotalAmt": Decimal("95.00"),
        "Line": [
            {"Amount": Decimal("120.00"), "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]},
            {
                "Amount": Decimal("25.00"),
                "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "VendorCredit"}],
            },
        ],
    }
    paid = await qbo.call("POST", "billpayment", payment)
    assert paid.status_code == 200, paid.text
    payment_id = wire.loads(paid.text)["BillPayment"]["Id"]

    bill_after = wire.loads((await qbo.call("GET", f"bill/{bill['Id']}")).text)["Bill"]
    credit_after = wire.loads((await qbo.call("GET", f"vendorcredit/{credit['Id']}")).text)
    assert bill_after["Balance"] == Decimal("0")
    assert bill_after["LinkedTxn"] == [{"TxnId": payment_id, "TxnType": "BillPaymentCheck"}]
    assert int(bill_after["SyncToken"]) > int(bill["SyncToken"])
    assert credit_after["VendorCredit"]["Balance"] == Decimal("0")
    # The unified view shows the net cash (95) against the bill.
    unified = wire.bill_payment_from_qbo(wire.loads(paid.text)["BillPayment"])
    assert unified is not None and unified.total == Decimal("95.00")
    assert [(line.bill_id, line.amount) for line in unified.lines] == [
        (bill["Id"], Decimal("95.00"))
    ]


async def test_payment_above_the_open_balance_is_a_6000_validation_fault(qbo: Qbo) -> None:
    body = await qbo.bill_body("OVER-1", "50.00")
    bill = wire.loads((await qbo.call("POST", "bill", body)).text)["Bill"]
    over = await qbo.call(
        "POST",
        "billpayment",
        {
            "VendorRef": body["VendorRef"],
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": qbo.company.settings["bank_account_id"]}},
            "TotalAmt": Decimal("60.00"),
            "Line": [
                {
                    "Amount": Decimal("60.00"),
                    "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}],
                }
            ],
        },
    )
    assert over.status_code == 400 and fault_code(over) == "6000"
    assert "open balance" in over.text


async def test_currency_rules_for_foreign_bills(qbo: Qbo) -> None:
    connector = qbo.connector()
    eur_vendor = await connector.create_vendor(
        UnifiedVendor(name="Contoso GmbH", currency="EUR"), reference="v", idempotency_key="v"
    )
    assert eur_vendor.id is not None
    office = await qbo.first("Account", "Office Supplies")
    bill = await connector.create_bill(
        Bill(
            vendor_id=eur_vendor.id,
            issue_date=date.today(),
            currency="EUR",
            lines=[BillLine(amount=Decimal("200.00"), account_id=office["Id"])],
            total=Decimal("200.00"),
        ),
        reference="eur-bill",
        idempotency_key="eur-bill",
    )
    assert bill.id is not None and bill.exchange_rate is not None

    def pay(source: str, currency: str, rate: str | None = None) -> BillPayment:
        assert bill.id is not None
        return BillPayment(
            vendor_id=bill.vendor_id,
            payment_date=date.today(),
            currency=currency,
            exchange_rate=Decimal(rate) if rate else None,
            source_account_id=source,
            total=Decimal("50.00"),
            lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal("50.00"))],
        )

    usd_bank = qbo.company.settings["bank_account_id"]
    eur_bank = qbo.company.settings["bank_account_id:EUR"]
    with pytest.raises(Rejected, match="is in USD but the payment is in EUR"):
        await connector.create_bill_payment(
            pay(usd_bank, "EUR"), reference="a", idempotency_key="a"
        )
    with pytest.raises(Rejected, match="The payment is in USD but Bill"):
        await connector.create_bill_payment(
            pay(usd_bank, "USD"), reference="b", idempotency_key="b"
        )
    from_eur = await connector.create_bill_payment(
        pay(eur_bank, "EUR"), reference="c", idempotency_key="c"
    )
    from_usd_with_rate = await connector.create_bill_payment(
        pay(usd_bank, "EUR", "1.1"), reference="d", idempotency_key="d"
    )
    assert from_eur.currency == from_usd_with_rate.currency == "EUR"
    assert (await connector.get_bill(bill.id)).balance == Decimal("100.00")


async def test_tax_exclusive_eur_bill_totals_lines_plus_tax_and_pays_in_full(qbo: Qbo) -> None:
    connector = qbo.connector()
    vendor = await connector.create_vendor(
        UnifiedVendor(name="Rheinwerk Maschinenbau GmbH", currency="EUR"),
        reference="rheinwerk",
        idempotency_key="rheinwerk",
    )
    assert vendor.id is not None
    office = await qbo.first("Account", "Office Supplies")
    bill = await connector.create_bill(
        Bill(
            vendor_id=vendor.id,
            document_number="RE-88123",
            issue_date=date.today(),
            currency="EUR",
            lines=[
                BillLine(amount=Decimal("600.00"), account_id=office["Id"]),
                BillLine(amount=Decimal("250.00"), account_id=office["Id"]),
            ],
            tax_amount=Decimal("161.50"),
            total=Decimal("1011.50"),
        ),
        reference="eur-taxed",
        idempotency_key="eur-taxed",
    )
    assert bill.id is not None
    native = (await qbo.query(f"SELECT * FROM Bill WHERE Id = '{bill.id}'"))["Bill"][0]
    assert native["GlobalTaxCalculation"] == "TaxExcluded"
    assert native["TxnTaxDetail"]["TotalTax"] == Decimal("161.50")
    assert (native["TotalAmt"], native["Balance"]) == (Decimal("1011.50"), Decimal("1011.50"))

    read = await connector.get_bill(bill.id)
    assert (read.total, read.tax_amount, read.balance) == (
        Decimal("1011.50"),
        Decimal("161.50"),
        Decimal("1011.50"),
    )
    await connector.create_bill_payment(
        BillPayment(
            vendor_id=vendor.id,
            payment_date=date.today(),
            currency="EUR",
            source_account_id=qbo.company.settings["bank_account_id:EUR"],
            total=Decimal("1011.50"),
            lines=[BillPaymentLine(bill_id=bill.id, amount=Decimal("1011.50"))],
        ),
        reference="eur-taxed-pay",
        idempotency_key="eur-taxed-pay",
    )
    paid = await connector.get_bill(bill.id)
    assert (paid.total, paid.tax_amount, paid.balance) == (
        Decimal("1011.50"),
        Decimal("161.50"),
        Decimal("0"),
    )


async def test_emulator_refuses_tax_it_cannot_model(qbo: Qbo) -> None:
    body = await qbo.bill_body(unique("TAX")[:20])
    inclusive = await qbo.call(
        "POST",
        "bill",
        {**body, "GlobalTaxCalculation": "TaxInclusive", "TxnTaxDetail": {"TotalTax": 5}},
    )
    assert inclusive.status_code == 400
    not_applicable = await qbo.call(
        "POST",
        "bill",
        {**body, "GlobalTaxCalculation": "NotApplicable", "TxnTaxDetail": {"TotalTax": 5}},
    )
    assert not_applicable.status_code == 400 and fault_code(not_applicable) == "6000"
    untaxed = await qbo.call("POST", "bill", body)
    assert untaxed.status_code == 200, untaxed.text
    assert wire.loads(untaxed.text)["Bill"]["TotalAmt"] == Decimal("120.00")


async def test_multipart_upload_pairs_metadata_and_content(qbo: Qbo) -> None:
    bill = wire.loads((await qbo.call("POST", "bill", await qbo.bill_body("ATT-1"))).text)["Bill"]
    metadata = {"AttachableRef": [{"EntityRef": {"type": "Bill", "value": bill["Id"]}}]}
    headers = {"Authorization": f"Bearer {qbo.token}"}

    uploaded = await qbo.http.post(
        qbo.path("upload"),
        headers=headers,
        files=[
            ("file_metadata_07", (None, wire.dumps(metadata).encode(), "application/json")),
            ("file_content_07", ("scan.png", b"\x89PNG....", "image/png")),
        ],
    )
    orphan = await qbo.http.post(
        qbo.path("upload"),
        headers=headers,
        files=[("file_metadata_01", (None, wire.dumps(metadata).encode(), "application/json"))],
    )

    attachable = wire.loads(uploaded.text)["AttachableResponse"][0]["Attachable"]
    assert (attachable["FileName"], attachable["ContentType"], attachable["Size"]) == (
        "scan.png",
        "image/png",
        8,
    )
    assert orphan.status_code == 400 and fault_code(orphan) == "2020"


async def test_amounts_travel_as_exact_json_numbers(qbo: Qbo) -> None:
    response = await qbo.call("POST", "bill", await qbo.bill_body("DEC-1", "0.10"))
    assert '"Amount":0.10' in response.text and '"TotalAmt":0.10' in response.text
    assert wire.dumps({"a": Decimal("1E+2")}) == '{"a":100}'
    assert wire.loads('{"a": 0.1}')["a"] == Decimal("0.1")


# ---------------------------------------------------------------------------------------------
# Auth, tokens, control endpoints
# ---------------------------------------------------------------------------------------------


async def test_unknown_and_expired_tokens_get_qbo_401(qbo: Qbo) -> None:
    unknown = await qbo.call("GET", "query", token="nope", query="SELECT * FROM Vendor")
    qbo.emulator.expire_token(qbo.token)
    expired = await qbo.call("GET", "query", query="SELECT * FROM Vendor")

    for response in (unknown, expired):
        assert response.status_code == 401
        error = wire.loads(response.text)["fault"]["error"][0]
        assert "errorCode=003200" in error["message"] and "AuthenticationFailed" in error["message"]
    with pytest.raises(AuthExpired):
        await qbo.connector().list_accounts()


async def test_refresh_then_revoke_gives_invalid_grant(qbo: Qbo) -> None:
    credentials = qbo.company.credentials
    form = {"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]}
    auth = (credentials["client_id"], credentials["client_secret"])
    qbo.emulator.expire_token(qbo.token)

    refreshed = await qbo.http.post("/oauth2/v1/tokens/bearer", data=form, auth=auth)
    new_token = refreshed.json()["access_token"]
    works = await qbo.call("GET", "query", token=new_token, query="SELECT count(*) FROM Bill")
    qbo.emulator.revoke_token(credentials["refresh_token"])
    refused = await qbo.http.post("/oauth2/v1/tokens/bearer", data=form, auth=auth)
    after_revoke = await qbo.call("GET", "query", token=new_token, query="SELECT * FROM Bill")

    assert refreshed.status_code == 200 and works.status_code == 200
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert after_revoke.status_code == 401


async def test_inspector_reads_through_the_api_but_cannot_write(qbo: Qbo) -> None:
    inspector = qbo.company.inspector_token
    read = await qbo.call("GET", "query", token=inspector, query="SELECT * FROM Vendor")
    write = await qbo.call("POST", "vendor", {"DisplayName": "Nope"}, token=inspector)
    assert len(wire.loads(read.text)["QueryResponse"]["Vendor"]) == 6
    assert write.status_code == 403


async def test_fault_control_endpoints_need_the_inspector(qbo: Qbo) -> None:
    inspector = {"Authorization": f"Bearer {qbo.company.inspector_token}"}
    denied = await qbo.http.get(
        "/_emulator/faults", headers={"Authorization": f"Bearer {qbo.token}"}
    )
    put = await qbo.http.put(
        "/_emulator/faults",
        headers=inspector,
        content=wire.dumps({"scripted": [{"kind": "5xx", "match": "query", "times": 1}]}),
    )
    failed = await qbo.call("GET", "query", query="SELECT * FROM Vendor")
    reset = await qbo.http.post("/_emulator/reset", headers=inspector)

    assert denied.status_code == 401
    assert put.json()["scripted"] == [{"kind": "5xx", "match": "query", "times": 1}]
    assert failed.status_code == 500 and fault_code(failed) == "10000"
    assert reset.json()["scripted"] == [] and qbo.emulator.faults.scripted == []


# ---------------------------------------------------------------------------------------------
# Throttling
# ---------------------------------------------------------------------------------------------


async def test_throttle_body_is_qbo_3001(qbo: Qbo) -> None:
    qbo.emulator.faults.script("429")
    response = await qbo.call("GET", "query", query="SELECT * FROM Vendor")
    assert response.status_code == 429
    assert 'code="3001"' in response.text and "ThrottleExceeded" in response.text
    assert "Retry-After" not in response.headers


async def test_more_than_ten_concurrent_requests_are_throttled(qbo: Qbo) -> None:
    gate = asyncio.Event()
    qbo.emulator.gate = gate
    held = [
        asyncio.create_task(qbo.call("GET", "query", query="SELECT count(*) FROM Vendor"))
        for _ in range(10)
    ]
    while qbo.emulator.in_flight(qbo.company.company_id) < 10:
        await asyncio.sleep(0)  # yield so the held requests reach the gate

    with pytest.raises(RateLimited) as raised:
        await qbo.connector().list_accounts()
    gate.set()
    answers = await asyncio.gather(*held)

    assert raised.value.retry_after == timedelta(seconds=60)
    assert [a.status_code for a in answers] == [200] * 10


async def test_requests_per_minute_limit() -> None:
    emulator = QuickBooksEmulator(requests_per_minute=3)
    qbo = Qbo(emulator, emulator.seed_demo_company())
    statuses = [
        (await qbo.call("GET", "query", query="SELECT count(*) FROM Bill")).status_code
        for _ in range(4)
    ]
    await qbo.http.aclose()
    assert statuses == [200, 200, 200, 429]


# ---------------------------------------------------------------------------------------------
# Connector: reference marker, vendor matching, tracking rules
# ---------------------------------------------------------------------------------------------


async def test_reference_lives_in_private_note_next_to_the_memo(qbo: Qbo) -> None:
    connector = qbo.connector()
    vendor = await qbo.first("Vendor", "Initech Consulting", "DisplayName")
    fees = await qbo.first("Account", "Professional Fees")
    bill = Bill(
        vendor_id=vendor["Id"],
        issue_date=date.today(),
        currency="USD",
        lines=[BillLine(amount=Decimal("10.00"), account_id=fees["Id"])],
        total=Decimal("10.00"),
        memo="March retainer",
    )
    created = await connector.create_bill(bill, reference="bill/c1/abc", idempotency_key="k1")
    native = wire.loads((await qbo.call("GET", f"bill/{created.id}")).text)["Bill"]

    assert native["PrivateNote"] == "remit-ref:bill/c1/abc\nMarch retainer"
    assert (created.reference, created.memo) == ("bill/c1/abc", "March retainer")
    # A reference that is a prefix of another must not match it.
    assert await connector.find_bill_by_reference("bill/c1/ab", vendor_id=vendor["Id"]) is None


async def test_find_vendors_by_name_ignores_case_punctuation_and_legal_suffix(qbo: Qbo) -> None:
    connector = qbo.connector()
    acme = await connector.find_vendors(name="acme corp.")
    northwind = await connector.find_vendors(name="NORTHWIND OFFICE SUPPLY, INC.")
    assert sorted(v.name for v in acme) == ["ACME Corporation", "Acme Corp"]
    assert [v.name for v in northwind] == ["Northwind Office Supply"]
    assert await connector.find_vendors(name="Nobody Ltd") == []


async def test_departments_differing_per_line_are_refused_before_sending(qbo: Qbo) -> None:
    connector = qbo.connector()
    departments = [
        c for c in await connector.list_tracking_categories() if c.kind == TrackingKind.department
    ]
    vendor = await qbo.first("Vendor", "Acme Corp", "DisplayName")
    office = await qbo.first("Account", "Office Supplies")
    lines = [
        BillLine(
            amount=Decimal("5.00"),
            account_id=office["Id"],
            tracking=[TrackingRef(kind=TrackingKind.department, id=d.id)],
        )
        for d in departments[:2]
    ]
    bill = Bill(
        vendor_id=vendor["Id"],
        issue_date=date.today(),
        currency="USD",
        lines=lines,
        total=Decimal("10.00"),
    )
    with pytest.raises(Rejected, match="one department"):
        await connector.create_bill(bill, reference="r", idempotency_key="k")
    assert (await qbo.query("SELECT count(*) FROM Bill"))["totalCount"] == 0


async def test_missing_bill_is_not_found(qbo: Qbo) -> None:
    with pytest.raises(NotFound):
        await qbo.connector().get_bill("424242")


async def test_changes_since_old_cursor_falls_back_to_queries(qbo: Qbo) -> None:
    connector = qbo.connector()
    old_cursor = (date.today() - timedelta(days=90)).isoformat() + "T00:00:00-07:00"
    changes = await connector.changes_since(old_cursor)
    assert len(changes.vendors) == 6 and changes.cursor > old_cursor


# ---------------------------------------------------------------------------------------------
# Connector error mapping against canned QBO answers
# ---------------------------------------------------------------------------------------------


def canned(handler: Callable[[httpx.Request], httpx.Response]) -> QuickBooksConnector:
    connection = ConnectionConfig(
        id="c",
        platform="quickbooks",
        base_url=BASE,
        company_id="1",
        credentials={"access_token": "t"},
    )
    return QuickBooksConnector(
        connection, httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )


def fault(status: int, code: str, message: str = "m", detail: str = "d") -> httpx.Response:
    body = {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}]}}
    return httpx.Response(
        status, content=wire.dumps(body), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda: fault(400, "5010"), Conflict),
        (lambda: fault(400, "610"), NotFound),
        (lambda: fault(400, "6140"), Rejected),
        (lambda: fault(400, "2020"), Rejected),
        (lambda: fault(200, "6000"), Rejected),
        (lambda: fault(503, "10000"), Unavailable),
        (lambda: fault(401, "3200"), AuthExpired),
        (lambda: httpx.Response(400, json={"error": "invalid_grant"}), ConnectionRevoked),
        (lambda: httpx.Response(404, text="Not Found"), NotFound),
    ],
)
async def test_fault_mapping(
    answer: Callable[[], httpx.Response], expected: type[Exception]
) -> None:
    connector = canned(lambda request: answer())
    with pytest.raises(expected):
        await connector.get_vendor("1")


async def test_rejected_carries_qbo_message_and_detail() -> None:
    connector = canned(lambda request: fault(400, "6000", "Business rule", "Amount too big"))
    with pytest.raises(Rejected) as raised:
        await connector.get_vendor("1")
    assert raised.value.message == "Business rule: Amount too big" and raised.value.code == "6000"


async def test_retry_after_is_honoured_when_present() -> None:
    connector = canned(lambda request: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as raised:
        await connector.get_vendor("1")
    assert raised.value.retry_after == timedelta(seconds=7)


async def test_transport_failures_split_reads_and_writes() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    vendor = UnifiedVendor(name="X")
    with pytest.raises(Unavailable):
        await canned(timeout).get_vendor("1")
    with pytest.raises(OutcomeUnknown):
        await canned(timeout).create_vendor(vendor, reference="r", idempotency_key="k")
    with pytest.raises(Unavailable):
        await canned(refused).create_vendor(vendor, reference="r", idempotency_key="k")


async def test_every_write_carries_requestid_and_minorversion() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return fault(400, "6000")

    with pytest.raises(Rejected):
        await canned(record).create_vendor(
            UnifiedVendor(name="X"), reference="r", idempotency_key="bill/c/1/" + "k" * 200
        )
    params = seen[0].url.params
    assert params["minorversion"] == "75"
    assert params["requestid"] == wire.request_id("bill/c/1/" + "k" * 200)
    assert len(params["requestid"]) <= 50
    assert seen[0].headers["Authorization"] == "Bearer t"


async def test_unreadable_change_cursor_is_rejected(qbo: Qbo) -> None:
    with pytest.raises(Rejected, match="change cursor"):
        await qbo.connector().changes_since("page-2")


# ---------------------------------------------------------------------------------------------
# Money movement: vendor bank details, voids, discounts, credits, currencies, terms
# ---------------------------------------------------------------------------------------------


async def northwind_bill(qbo: Qbo, amount: str, **fields: Any) -> Bill:
    connector = qbo.connector()
    vendor = await qbo.first("Vendor", "Northwind Office Supply", "DisplayName")
    office = await qbo.first("Account", "Office Supplies")
    bill = Bill(
        vendor_id=vendor["Id"],
        document_number=unique("INV")[:20],
        issue_date=date.today(),
        currency="USD",
        lines=[BillLine(amount=Decimal(amount), account_id=office["Id"])],
        total=Decimal(amount),
        **fields,
    )
    created = await connector.create_bill(bill, reference=unique("r"), idempotency_key=unique("k"))
    assert created.id is not None
    return created


def pay(
    qbo: Qbo,
    bill: Bill,
    amount: str,
    discount: str = "0",
    *,
    source: str | None = None,
    currency: str = "USD",
    rate: str | None = None,
) -> BillPayment:
    assert bill.id is not None
    return BillPayment(
        vendor_id=bill.vendor_id,
        payment_date=date.today(),
        currency=currency,
        exchange_rate=Decimal(rate) if rate else None,
        source_account_id=source or qbo.company.settings["bank_account_id"],
        total=Decimal(amount),
        lines=[
            BillPaymentLine(bill_id=bill.id, amount=Decimal(amount), discount=Decimal(discount))
        ],
    )


async def native(qbo: Qbo, resource: str, entity_id: str) -> dict[str, Any]:
    """One entity as QBO's own read (GET /<resource>/<id>) returns it."""
    response = await qbo.call("GET", f"{resource}/{entity_id}")
    assert response.status_code == 200, response.text
    [found] = [value for key, value in wire.loads(response.text).items() if key != "time"]
    assert isinstance(found, dict)
    return found


async def test_vendor_payment_bank_detail_is_stored_echoed_and_mapped(qbo: Qbo) -> None:
    detail = {
        "BankAccountName": "Koala Supplies Pty Ltd",
        "BankBranchIdentifier": "062-000",
        "BankAccountNumber": "12345678",
        "StatementText": "REMIT AP",
    }
    created = await qbo.call(
        "POST", "vendor", {"DisplayName": "Koala Supplies", "VendorPaymentBankDetail": detail}
    )
    assert created.status_code == 200, created.text
    vendor = wire.loads(created.text)["Vendor"]
    assert vendor["VendorPaymentBankDetail"] == detail
    assert (await native(qbo, "vendor", vendor["Id"]))["VendorPaymentBankDetail"] == detail

    connector = qbo.connector()
    [account] = await connector.get_vendor_bank_accounts(vendor["Id"])
    assert (account.account_name, account.account_number, account.routing_number) == (
        "Koala Supplies Pty Ltd",
        "12345678",
        "062-000",
    )
    assert (account.platform_ref, account.country, account.primary) == (
        "VendorPaymentBankDetail",
        "AU",
        True,
    )
    assert "12345678" not in repr(account) and "062-000" not in repr(account)
    northwind = await qbo.first("Vendor", "Northwind Office Supply", "DisplayName")
    assert await connector.get_vendor_bank_accounts(northwind["Id"]) == []
    with pytest.raises(NotFound):
        await connector.get_vendor_bank_accounts("424242")


async def test_void_is_a_sparse_update_that_zeroes_the_payment_and_keeps_it(qbo: Qbo) -> None:
    connector = qbo.connector()
    bill = await northwind_bill(qbo, "300.00")
    assert bill.id is not None
    reference = unique("pay")
    paid = await connector.create_bill_payment(
        pay(qbo, bill, "300.00"), reference=reference, idempotency_key=unique("k")
    )
    assert paid.id is not None

    voided = await connector.void_bill_payment(paid.id, idempotency_key=unique("void"))

    assert voided.voided and (voided.total, voided.lines) == (paid.total, paid.lines)
    record = await native(qbo, "billpayment", paid.id)
    assert (record["TotalAmt"], record["Line"]) == (Decimal("0"), [])
    assert record["PrivateNote"].startswith(f"Voided - remit-ref:{reference}")
    bill_after = await native(qbo, "bill", bill.id)
    assert bill_after["Balance"] == Decimal("300.00") and bill_after["LinkedTxn"] == []
    # The voided payment is still found by its reference, and says it is voided.
    found = await connector.find_bill_payment_by_reference(reference, vendor_id=bill.vendor_id)
    assert found is not None and found.voided and found.id == paid.id
    assert found.reference == reference and found.memo is None
    assert await connector.list_bill_payments(bill_id=bill.id) == []


async def test_void_takes_the_documented_form_only(qbo: Qbo) -> None:
    bill = await northwind_bill(qbo, "40.00")
    assert bill.id is not None
    paid = await qbo.connector().create_bill_payment(
        pay(qbo, bill, "40.00"), reference=unique("pay"), idempotency_key=unique("k")
    )
    assert paid.id is not None
    current = await native(qbo, "billpayment", paid.id)
    stub = {"Id": current["Id"], "SyncToken": current["SyncToken"]}

    as_operation = await qbo.call("POST", "billpayment", stub, operation="void")
    not_sparse = await qbo.call("POST", "billpayment", stub, operation="update", include="void")
    on_a_bill = await qbo.call(
        "POST",
        "bill",
        {"Id": bill.id, "SyncToken": "0", "sparse": True},
        operation="update",
        include="void",
    )
    voided = await qbo.call(
        "POST", "billpayment", {**stub, "sparse": True}, operation="update", include="void"
    )
    stale = await qbo.call(
        "POST", "billpayment", {**stub, "sparse": True}, operation="update", include="void"
    )

    assert as_operation.status_code == 400 and fault_code(as_operation) == "500"
    assert not_sparse.status_code == 400 and fault_code(not_sparse) == "2020"
    assert on_a_bill.status_code == 400 and fault_code(on_a_bill) == "500"
    assert voided.status_code == 200, voided.text
    assert wire.loads(voided.text)["BillPayment"]["PrivateNote"].startswith("Voided - remit-ref:")
    assert stale.status_code == 400 and fault_code(stale) == "5010"


async def test_a_lost_void_answer_is_retried_safely(qbo: Qbo) -> None:
    connector = qbo.connector()
    bill = await northwind_bill(qbo, "120.00")
    assert bill.id is not None
    paid = await connector.create_bill_payment(
        pay(qbo, bill, "120.00"), reference=unique("pay"), idempotency_key=unique("k")
    )
    assert paid.id is not None
    key = unique("void")
    qbo.emulator.faults.script("drop", "include=void")

    with pytest.raises(OutcomeUnknown):
        await connector.void_bill_payment(paid.id, idempotency_key=key)
    again = await connector.void_bill_payment(paid.id, idempotency_key=key)

    assert again.voided and again.total == Decimal("120.00")
    assert (await connector.get_bill(bill.id)).balance == Decimal("120.00")
    # A payment voided outside remit leaves no record of what it paid: refused, not invented.
    other = await connector.create_bill_payment(
        pay(qbo, bill, "20.00"), reference=unique("pay"), idempotency_key=unique("k")
    )
    assert other.id is not None
    current = await native(qbo, "billpayment", other.id)
    await qbo.call(
        "POST",
        "billpayment",
        {"Id": other.id, "SyncToken": current["SyncToken"], "sparse": True},
        operation="update",
        include="void",
    )
    with pytest.raises(Rejected, match="voided outside remit"):
        await connector.void_bill_payment(other.id, idempotency_key=unique("void"))


async def test_a_discount_is_a_vendor_credit_applied_in_the_payment(qbo: Qbo) -> None:
    connector = qbo.connector()
    bill = await northwind_bill(qbo, "900.00")
    assert bill.id is not None
    reference, key = unique("pay"), unique("k")

    paid = await connector.create_bill_payment(
        pay(qbo, bill, "882.00", "18.00"), reference=reference, idempotency_key=key
    )
    repeated = await connector.create_bill_payment(
        pay(qbo, bill, "882.00", "18.00"), reference=reference, idempotency_key=key
    )

    assert paid.id is not None and repeated.id == paid.id
    record = await native(qbo, "billpayment", paid.id)
    assert record["TotalAmt"] == Decimal("882.00")
    lines = [(ln["LinkedTxn"][0]["TxnType"], ln["Amount"]) for ln in record["Line"]]
    assert lines == [("Bill", Decimal("900.00")), ("VendorCredit", Decimal("18.00"))]
    credit_id = record["Line"][1]["LinkedTxn"][0]["TxnId"]
    credit = await native(qbo, "vendorcredit", credit_id)
    detail = credit["Line"][0]["AccountBasedExpenseLineDetail"]
    assert detail["AccountRef"]["value"] == qbo.company.settings["discount_account_id"]
    assert (await qbo.first("Account", "Purchase Discounts"))["Id"] == detail["AccountRef"]["value"]
    assert (credit["TotalAmt"], credit["Balance"]) == (Decimal("18.00"), Decimal("0"))
    memos = await connector.list_credit_memos(vendor_id=bill.vendor_id)
    assert [m.id for m in memos] == [credit_id]
    # A discount is not a vendor-credit application of the bill: it is the line's discount.
    assert await connector.list_credit_applications(bill_id=bill.id) == []
    [listed] = await connector.list_bill_payments(bill_id=bill.id)
    assert [(ln.amount, ln.discount) for ln in listed.lines] == [
        (Decimal("882.00"), Decimal("18.00"))
    ]

    # Voiding the payment takes the discount out of the books too.
    await connector.void_bill_payment(paid.id, idempotency_key=unique("void"))
    assert await connector.list_credit_memos(vendor_id=bill.vendor_id) == []
    assert (await connector.get_bill(bill.id)).balance == Decimal("900.00")
    voided = await connector.find_bill_payment_by_reference(reference, vendor_id=bill.vendor_id)
    assert voided is not None and voided.voided
    assert [(ln.amount, ln.discount) for ln in voided.lines] == [
        (Decimal("882.00"), Decimal("18.00"))
    ]


async def test_a_discounted_payment_whose_answer_was_lost_is_found_not_repeated(
    qbo: Qbo,
) -> None:
    connector = qbo.connector()
    bill = await northwind_bill(qbo, "500.00")
    assert bill.id is not None
    reference = unique("pay")

    qbo.emulator.faults.script("drop", "/vendorcredit?")
    with pytest.raises(OutcomeUnknown):
        await connector.create_bill_payment(
            pay(qbo, bill, "490.00", "10.00"), reference=reference, idempotency_key=unique("k")
        )
    qbo.emulator.faults.script("drop", "/billpayment?")
    with pytest.raises(OutcomeUnknown):
        await connector.create_bill_payment(
            pay(qbo, bill, "490.00", "10.00"), reference=reference, idempotency_key=unique("k")
        )
    # A third try under yet another key (the requestids long gone) finds what landed.
    done = await connector.create_bill_payment(
        pay(qbo, bill, "490.00", "10.00"), reference=reference, idempotency_key=unique("k")
    )

    assert (done.total, done.lines[0].discount) == (Decimal("490.00"), Decimal("10.00"))
    assert len(await connector.list_credit_memos(vendor_id=bill.vendor_id)) == 1
    assert [p.id for p in await connector.list_bill_payments(bill_id=bill.id)] == [done.id]
    assert (await connector.get_bill(bill.id)).balance == Decimal("0")


async def test_a_refused_discounted_payment_leaves_no_discount_credit(qbo: Qbo) -> None:
    connector = qbo.connector()
    bill = await northwind_bill(qbo, "200.00")
    office = await qbo.first("Account", "Office Supplies")
    key = unique("k")
    # Paid "from" an expense account: QBO refuses the payment after the credit was written.
    with pytest.raises(Rejected, match="must be a Bank account"):
        await connector.create_bill_payment(
            pay(qbo, bill, "196.00", "4.00", source=office["Id"]),
            reference=unique("pay"),
            idempotency_key=key,
        )
    assert await connector.list_credit_memos(vendor_id=bill.vendor_id) == []
    # Fixed and sent again under the same key: the replayed credit is gone, so a new one is made.
    paid = await connector.create_bill_payment(
        pay(qbo, bill, "196.00", "4.00"), reference=unique("pay"), idempotency_key=key
    )
    assert paid.lines[0].discount == Decimal("4.00")
    assert (await connector.get_bill(bill.id or "")).balance == Decimal("0")
    # Without a discount account a discount cannot be written at all.
    other = await northwind_bill(qbo, "100.00")
    bare = qbo.connector(discount_account_id="")
    with pytest.raises(Rejected, match="discount_account_id"):
        await bare.create_bill_payment(
            pay(qbo, other, "98.00", "2.00"), reference=unique("pay"), idempotency_key=unique("k")
        )


async def test_applying_more_than_a_credit_has_is_a_6000_fault(qbo: Qbo) -> None:
    connector = qbo.connector()
    bill = await northwind_bill(qbo, "100.00")
    assert bill.id is not None
    credit_body = await qbo.bill_body(unique("CR")[:20], "30.00")
    credit = wire.loads((await qbo.call("POST", "vendorcredit", credit_body)).text)["VendorCredit"]
    body = wire.credit_application_to_qbo(
        vendor_id=bill.vendor_id,
        bill_id=bill.id,
        credit_memo_id=credit["Id"],
        amount=Decimal("40.00"),
        currency="USD",
        bank_account_id=qbo.company.settings["bank_account_id"],
        applied_on=date.today(),
        reference="too-much",
    )
    refused = await qbo.call("POST", "billpayment", body)
    assert refused.status_code == 400 and fault_code(refused) == "6000"
    assert "open balance (30.00) of vendor credit" in refused.text

    applied = await connector.apply_credit(
        CreditApplication(credit_memo_id=credit["Id"], bill_id=bill.id, amount=Decimal("30.00")),
        idempotency_key=unique("k"),
    )
    [listed] = await connector.list_credit_applications(bill_id=bill.id)
    assert applied.id is not None and listed.id == applied.id
    assert (listed.credit_memo_id, listed.amount) == (credit["Id"], Decimal("30.00"))
    assert (await native(qbo, "billpayment", applied.id))["TotalAmt"] == Decimal("0")


async def test_currency_preferences_and_exchange_rates(qbo: Qbo) -> None:
    preferences = wire.loads((await qbo.call("GET", "preferences")).text)["Preferences"]
    assert preferences["CurrencyPrefs"] == {
        "MultiCurrencyEnabled": True,
        "HomeCurrency": {"value": "USD"},
    }
    today = date.today()
    read = await qbo.call(
        "GET", "exchangerate", sourcecurrencycode="EUR", asofdate=today.isoformat()
    )
    rate = wire.loads(read.text)["ExchangeRate"]
    assert (rate["SourceCurrencyCode"], rate["TargetCurrencyCode"], rate["Rate"]) == (
        "EUR",
        "USD",
        Decimal("1.08"),
    )
    assert rate["AsOfDate"] <= today.isoformat()

    yesterday = today - timedelta(days=1)
    posted = await qbo.call(
        "POST",
        "exchangerate",
        {"SourceCurrencyCode": "EUR", "AsOfDate": yesterday.isoformat(), "Rate": Decimal("1.12")},
    )
    assert posted.status_code == 200, posted.text

    connector = qbo.connector()
    assert await connector.home_currency() == "USD"
    latest = await connector.get_exchange_rate("EUR", today)
    before = await connector.get_exchange_rate("EUR", yesterday - timedelta(days=1))
    assert latest is not None and (latest.rate, latest.as_of) == (Decimal("1.12"), yesterday)
    assert before is not None and before.rate == Decimal("1.08")
    assert (latest.home_currency, latest.source) == ("USD", "quickbooks")
    assert await connector.get_exchange_rate("JPY", today) is None
    home = await connector.get_exchange_rate("USD", today)
    assert home is not None and home.rate == Decimal("1")

    qbo.emulator.realms[qbo.company.company_id].multicurrency = False
    off = await qbo.call("GET", "exchangerate", sourcecurrencycode="EUR")
    assert off.status_code == 400 and fault_code(off) == "6000"
    assert await qbo.connector().get_exchange_rate("EUR", today) is None


async def test_a_payment_at_another_rate_books_the_realized_gain_or_loss(qbo: Qbo) -> None:
    connector = qbo.connector()
    fabrikam = await qbo.first("Vendor", "Fabrikam GmbH", "DisplayName")
    assert fabrikam["CurrencyRef"]["value"] == "EUR"
    office = await qbo.first("Account", "Office Supplies")
    gain_or_loss = await qbo.first("Account", "Exchange Gain or Loss")
    assert gain_or_loss["CurrentBalance"] == Decimal("0")

    async def eur_bill(amount: str) -> Bill:
        bill = await connector.create_bill(
            Bill(
                vendor_id=fabrikam["Id"],
                issue_date=date.today(),
                currency="EUR",
                exchange_rate=Decimal("1.08"),
                lines=[BillLine(amount=Decimal(amount), account_id=office["Id"])],
                total=Decimal(amount),
            ),
            reference=unique("r"),
            idempotency_key=unique("k"),
        )
        assert bill.id is not None
        return bill

    async def balance() -> Decimal:
        found: Decimal = (await native(qbo, "account", gain_or_loss["Id"]))["CurrentBalance"]
        return found

    eur = qbo.company.settings["bank_account_id:EUR"]
    first = await eur_bill("1000.00")
    assert (await native(qbo, "bill", first.id or ""))["HomeTotalAmt"] == Decimal("1080.00")
    loss = await connector.create_bill_payment(
        pay(qbo, first, "1000.00", source=eur, currency="EUR", rate="1.11"),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    assert loss.id is not None
    assert (await native(qbo, "billpayment", loss.id))["HomeTotalAmt"] == Decimal("1110.00")
    # Paying 1000 EUR at 1.11 what was booked at 1.08 costs 30 USD more: a loss.
    assert await balance() == Decimal("30.00")

    second = await eur_bill("500.00")
    await connector.create_bill_payment(
        pay(qbo, second, "500.00", source=eur, currency="EUR", rate="1.05"),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    assert await balance() == Decimal("15.00")  # 30 lost, 15 gained

    await connector.void_bill_payment(loss.id, idempotency_key=unique("void"))
    assert await balance() == Decimal("-15.00")


async def test_terms_are_found_by_value_or_created_once(qbo: Qbo) -> None:
    connector = qbo.connector()
    seeded = (await qbo.query("SELECT * FROM Term"))["Term"]
    assert {t["Name"]: (t["DueDays"], t["DiscountPercent"]) for t in seeded} == {
        "Net 30": (30, Decimal("0")),
        "2% 10 Net 30": (30, Decimal("2")),
    }
    two_ten = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)
    uses_seeded = await northwind_bill(qbo, "100.00", terms=two_ten)
    native_bill = await native(qbo, "bill", uses_seeded.id or "")
    assert native_bill["SalesTermRef"]["name"] == "2% 10 Net 30"
    # Without a due date QBO counts the term's days from the bill date.
    assert native_bill["DueDate"] == (date.today() + timedelta(days=30)).isoformat()
    assert uses_seeded.terms is not None and uses_seeded.terms.name == "2% 10 Net 30"

    new_terms = PaymentTerms(net_days=45, discount_percent=Decimal("1.5"), discount_days=15)
    key = unique("k")
    bill = await northwind_bill(qbo, "100.00", terms=new_terms)
    again = await connector.create_bill(
        bill.model_copy(update={"id": None, "document_number": unique("INV")[:20]}),
        reference=unique("r"),
        idempotency_key=key,
    )
    terms = (await qbo.query("SELECT * FROM Term"))["Term"]
    assert [t["Name"] for t in terms] == ["Net 30", "2% 10 Net 30", "1.5% 15 Net 45"]
    read = await connector.get_bill(again.id or "")
    assert read.terms == PaymentTerms(
        name="1.5% 15 Net 45", net_days=45, discount_percent=Decimal("1.5"), discount_days=15
    )
    listed = await connector.find_bills(vendor_id=bill.vendor_id)
    assert {b.terms.name for b in listed if b.terms} == {"2% 10 Net 30", "1.5% 15 Net 45"}

    duplicate = await qbo.call("POST", "term", {"Name": "Net 30", "DueDays": 30})
    unknown = await qbo.call(
        "POST", "bill", {**(await qbo.bill_body("T-1")), "SalesTermRef": {"value": "999"}}
    )
    assert duplicate.status_code == 400 and fault_code(duplicate) == "6240"
    assert unknown.status_code == 400 and fault_code(unknown) == "2500"


def test_private_note_reading_skips_the_void_prefix_and_remits_own_lines() -> None:
    record = 'remit-paid:{"total":"5","lines":[["1","5","0"]],"discount_credits":[]}'
    note = f"Voided - remit-ref:pay/1\nApril rent\n{record}"
    assert wire.split_private_note(note) == ("remit-ref:pay/1", "pay/1", "April rent")
    assert wire.split_private_note("Voided") == (None, None, None)
    assert wire.split_private_note("Voided items returned") == (
        None,
        None,
        "Voided items returned",
    )
    assert wire.is_voided({"PrivateNote": note, "TotalAmt": 0})
    assert not wire.is_voided({"PrivateNote": "remit-ref:pay/1", "TotalAmt": 0})
    paid = wire.paid_record_of({"PrivateNote": note})
    assert paid is not None and paid.total == Decimal("5")


async def test_one_payment_with_discounts_on_some_of_its_bills(qbo: Qbo) -> None:
    connector = qbo.connector()
    first, second, third = [
        await northwind_bill(qbo, amount) for amount in ("100.00", "200.00", "50.00")
    ]
    assert first.id and second.id and third.id
    lines = [
        BillPaymentLine(bill_id=first.id, amount=Decimal("98.00"), discount=Decimal("2.00")),
        BillPaymentLine(bill_id=second.id, amount=Decimal("196.00"), discount=Decimal("4.00")),
        BillPaymentLine(bill_id=third.id, amount=Decimal("50.00")),
    ]
    payment = BillPayment(
        vendor_id=first.vendor_id,
        payment_date=date.today(),
        currency="USD",
        source_account_id=qbo.company.settings["bank_account_id"],
        total=Decimal("344.00"),
        lines=lines,
        memo="May run",
    )
    reference = unique("run")

    paid = await connector.create_bill_payment(
        payment, reference=reference, idempotency_key=unique("k")
    )

    assert sorted(paid.lines, key=lambda ln: ln.bill_id) == sorted(lines, key=lambda ln: ln.bill_id)
    assert (paid.total, paid.memo) == (Decimal("344.00"), "May run")
    for bill in (first, second, third):
        assert (await connector.get_bill(bill.id or "")).balance == Decimal("0")
    [listed] = await connector.list_bill_payments(bill_id=second.id)
    assert {(ln.bill_id, ln.amount, ln.discount) for ln in listed.lines} == {
        (ln.bill_id, ln.amount, ln.discount) for ln in lines
    }
    credits = await connector.list_credit_memos(vendor_id=first.vendor_id)
    assert sorted(m.total for m in credits) == [Decimal("2.00"), Decimal("4.00")]

    assert paid.id is not None
    voided = await connector.void_bill_payment(paid.id, idempotency_key=unique("void"))
    assert voided.memo == "May run" and voided.total == Decimal("344.00")
    assert await connector.list_credit_memos(vendor_id=first.vendor_id) == []
    assert [(await connector.get_bill(b.id or "")).balance for b in (first, second, third)] == [
        Decimal("100.00"),
        Decimal("200.00"),
        Decimal("50.00"),
    ]
