"""QuickBooks webhooks: WEBHOOKS.verify, and the emulator sending them as Intuit does (HTTP)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.mirror import MirrorKind, PlatformNotice, WebhookRefused
from connectors.quickbooks import wire
from connectors.quickbooks.webhooks import WEBHOOKS, sign
from connectors.registry import webhooks
from sandbox.quickbooks import QuickBooksEmulator
from tests.connectors.conftest import serve_asgi

KEY = "qbo-verifier-token-" + uuid.uuid4().hex


def legacy_body(*notifications: tuple[str, list[str]]) -> bytes:
    payload = {
        "eventNotifications": [
            {
                "realmId": realm,
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": name,
                            "id": str(n),
                            "operation": "Update",
                            "lastUpdated": "2026-07-01T09:00:00.000Z",
                        }
                        for n, name in enumerate(names, start=1)
                    ]
                },
            }
            for realm, names in notifications
        ]
    }
    return json.dumps(payload).encode()


def test_the_registry_finds_quickbooks_webhooks() -> None:
    found = webhooks("quickbooks")
    assert found is WEBHOOKS and found.signature_header == "intuit-signature"


def test_a_signed_body_names_each_realm_and_its_kinds() -> None:
    body = legacy_body(
        ("realm-1", ["Bill", "Vendor", "Timesheet"]), ("realm-2", ["VendorCredit", "Class"])
    )
    notices = WEBHOOKS.verify({"Intuit-Signature": sign(body, KEY)}, body, KEY)
    # An entity the mirror does not keep (Timesheet) names no kind.
    assert sorted(notices, key=lambda n: n.company_id) == [
        PlatformNotice("realm-1", frozenset({MirrorKind.bills, MirrorKind.vendors})),
        PlatformNotice(
            "realm-2",
            frozenset({MirrorKind.vendor_credits, MirrorKind.tracking_categories}),
        ),
    ]
    payment = legacy_body(("realm-1", ["BillPayment"]))
    # A payment changes the bills it pays too.
    assert WEBHOOKS.verify({"intuit-signature": sign(payment, KEY)}, payment, KEY) == [
        PlatformNotice("realm-1", frozenset({MirrorKind.bill_payments, MirrorKind.bills}))
    ]


def test_the_cloudevents_shape_is_read_too() -> None:
    events = [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "intuit.test",
            "type": f"qbo.{entity}.{verb}.v1",
            "datacontenttype": "application/json",
            "time": "2026-07-01T09:00:00.000Z",
            "intuitentityid": "42",
            "intuitaccountid": realm,
            "data": {},
        }
        for entity, verb, realm in (
            ("bill", "created", "realm-1"),
            ("attachable", "created", "realm-1"),
            ("vendor", "updated", "realm-2"),
        )
    ]
    body = json.dumps(events).encode()
    notices = WEBHOOKS.verify({"intuit-signature": sign(body, KEY)}, body, KEY)
    assert sorted(notices, key=lambda n: n.company_id) == [
        PlatformNotice("realm-1", frozenset({MirrorKind.bills, MirrorKind.attachments})),
        PlatformNotice("realm-2", frozenset({MirrorKind.vendors})),
    ]


def test_tampered_unsigned_or_keyless_bodies_are_refused() -> None:
    body = legacy_body(("realm-1", ["Bill"]))
    signature = sign(body, KEY)
    tampered = body.replace(b"realm-1", b"realm-9")
    for headers, content, key in (
        ({"intuit-signature": signature}, tampered, KEY),
        ({}, body, KEY),
        ({"intuit-signature": ""}, body, KEY),
        ({"intuit-signature": signature}, body, ""),
        ({"intuit-signature": sign(body, "another token")}, body, KEY),
        ({"x-xero-signature": signature}, body, KEY),
    ):
        with pytest.raises(WebhookRefused):
            WEBHOOKS.verify(headers, content, key)


class Receiver:
    """A platform-webhook endpoint as a product would serve it: verify, answer 200 or 401."""

    def __init__(self, key: str, *, failures: int = 0) -> None:
        self.key = key
        self.failures = failures
        self.got: list[tuple[bytes, int, list[PlatformNotice]]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: Mapping[str, str] = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            notices = WEBHOOKS.verify(headers, body, self.key)
            status = 200
        except WebhookRefused:
            notices, status = [], 401
        if status == 200 and self.failures > 0:
            self.failures -= 1
            status = 503
        self.got.append((body, status, notices))
        if status == 200:
            self.arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _create_bill(http: httpx.AsyncClient, api: str, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def one(entity: str, where: str) -> dict[str, Any]:
        response = await http.get(
            f"{api}/query",
            params={"query": f"SELECT * FROM {entity} WHERE {where}"},
            headers=headers,
        )
        row: dict[str, Any] = response.json()["QueryResponse"][entity][0]
        return row

    vendor = await one("Vendor", "DisplayName = 'Northwind Office Supply'")
    account = await one("Account", "Name = 'Office Supplies'")
    body = {
        "VendorRef": {"value": vendor["Id"]},
        "TxnDate": "2026-07-01",
        "Line": [
            {
                "Amount": Decimal("42.00"),
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": account["Id"]}},
            }
        ],
    }
    created = await http.post(
        f"{api}/bill",
        content=wire.dumps(body),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert created.status_code == 200, created.text
    bill: dict[str, Any] = wire.loads(created.text)["Bill"]
    return bill


async def test_the_emulator_sends_a_signed_notification_after_a_bill_is_created() -> None:
    emulator = QuickBooksEmulator()
    company = emulator.seed_demo_company()
    receiver = Receiver(KEY)
    async with (
        serve_asgi(receiver) as hooks_url,
        serve_asgi(emulator.app) as base_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        # Subscribed through the emulator's admin endpoint; nobody else may repoint it.
        refused = await http.put(
            base_url + "/_emulator/webhooks", json={"url": hooks_url, "key": KEY}
        )
        assert refused.status_code == 401
        admin = {"Authorization": f"Bearer {emulator.inspector_token}"}
        configured = await http.put(
            base_url + "/_emulator/webhooks", json={"url": hooks_url, "key": KEY}, headers=admin
        )
        assert configured.status_code == 200, configured.text
        api = f"{base_url}/v3/company/{company.company_id}"
        bill = await _create_bill(http, api, company.credentials["access_token"])
        await asyncio.wait_for(receiver.arrived.wait(), timeout=20)
        state = (await http.get(base_url + "/_emulator/webhooks", headers=admin)).json()
        await emulator.webhooks.aclose()

    [(body, status, notices)] = receiver.got
    assert status == 200
    assert notices == [PlatformNotice(company.company_id, frozenset({MirrorKind.bills}))]
    [notification] = json.loads(body)["eventNotifications"]
    assert notification["realmId"] == company.company_id
    assert [
        (e["name"], e["id"], e["operation"], e["lastUpdated"])
        for e in notification["dataChangeEvent"]["entities"]
    ] == [("Bill", bill["Id"], "Create", bill["MetaData"]["LastUpdatedTime"])]
    assert state["delivered"] == 1 and state["pending"] == 0


async def test_a_failed_delivery_is_retried_and_a_payment_names_its_bill() -> None:
    emulator = QuickBooksEmulator()
    company = emulator.seed_demo_company()
    emulator.webhooks.retry_delay = 0.05
    receiver = Receiver(KEY, failures=2)
    async with (
        serve_asgi(receiver) as hooks_url,
        serve_asgi(emulator.app) as base_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        emulator.configure_webhooks(hooks_url, KEY)
        api = f"{base_url}/v3/company/{company.company_id}"
        token = company.credentials["access_token"]
        bill = await _create_bill(http, api, token)
        await asyncio.wait_for(receiver.arrived.wait(), timeout=20)
        receiver.arrived.clear()
        payment = {
            "VendorRef": bill["VendorRef"],
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": company.settings["bank_account_id"]}},
            "TotalAmt": Decimal("42.00"),
            "Line": [
                {
                    "Amount": Decimal("42.00"),
                    "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}],
                }
            ],
        }
        paid = await http.post(
            f"{api}/billpayment",
            content=wire.dumps(payment),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert paid.status_code == 200, paid.text
        payment_id = wire.loads(paid.text)["BillPayment"]["Id"]
        await asyncio.wait_for(receiver.arrived.wait(), timeout=20)
        await emulator.webhooks.aclose()

    statuses = [status for _, status, _ in receiver.got]
    assert statuses == [503, 503, 200, 200]
    # The retried body is the same notification, still signed.
    assert receiver.got[0][0] == receiver.got[2][0]
    last = json.loads(receiver.got[3][0])["eventNotifications"][0]["dataChangeEvent"]
    assert {(e["name"], e["id"], e["operation"]) for e in last["entities"]} == {
        ("BillPayment", payment_id, "Create"),
        ("Bill", bill["Id"], "Update"),  # its Balance and LinkedTxn changed
    }
    assert receiver.got[3][2] == [
        PlatformNotice(company.company_id, frozenset({MirrorKind.bills, MirrorKind.bill_payments}))
    ]


async def test_cloudevents_subscriptions_get_the_cloudevents_shape() -> None:
    emulator = QuickBooksEmulator()
    company = emulator.seed_demo_company()
    receiver = Receiver(KEY)
    async with (
        serve_asgi(receiver) as hooks_url,
        serve_asgi(emulator.app) as base_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        admin = {"Authorization": f"Bearer {emulator.inspector_token}"}
        configured = await http.put(
            base_url + "/_emulator/webhooks",
            json={"url": hooks_url, "key": KEY, "format": "cloudevents"},
            headers=admin,
        )
        assert configured.status_code == 200, configured.text
        api = f"{base_url}/v3/company/{company.company_id}"
        bill = await _create_bill(http, api, company.credentials["access_token"])
        await asyncio.wait_for(receiver.arrived.wait(), timeout=20)
        await emulator.webhooks.aclose()

    [(body, status, notices)] = receiver.got
    [event] = json.loads(body)
    assert (event["type"], event["intuitentityid"], event["intuitaccountid"]) == (
        "qbo.bill.created.v1",
        bill["Id"],
        company.company_id,
    )
    assert status == 200
    assert notices == [PlatformNotice(company.company_id, frozenset({MirrorKind.bills}))]
