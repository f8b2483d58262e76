"""Xero's webhooks: WEBHOOKS.verify, and the emulator sending them as Xero does (real HTTP)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from connectors.mirror import MirrorKind, PlatformNotice, WebhookRefused
from connectors.registry import webhooks
from connectors.xero.webhooks import WEBHOOKS, sign
from sandbox.xero import XeroEmulator
from tests.connectors.conftest import serve_asgi

KEY = "xero-webhook-key-" + uuid.uuid4().hex


def event_body(tenant: str, *categories: str) -> bytes:
    events = [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{uuid.uuid4()}",
            "resourceId": str(uuid.uuid4()),
            "eventDateUtc": "2026-07-01T09:00:00.000",
            "eventType": "UPDATE",
            "eventCategory": category,
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }
        for category in categories
    ]
    payload = {"events": events, "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "X"}
    return json.dumps(payload).encode()


def test_the_registry_finds_xeros_webhooks() -> None:
    found = webhooks("xero")
    assert found is WEBHOOKS and found.signature_header == "x-xero-signature"


def test_a_signed_body_names_the_tenant_and_kinds() -> None:
    body = event_body("tenant-1", "INVOICE", "CONTACT")
    notices = WEBHOOKS.verify({"X-Xero-Signature": sign(body, KEY)}, body, KEY)
    assert notices == [
        PlatformNotice(
            "tenant-1",
            frozenset(
                {
                    MirrorKind.bills,
                    MirrorKind.bill_payments,  # Xero sends no payment events
                    MirrorKind.attachments,
                    MirrorKind.vendors,
                    MirrorKind.customers,
                }
            ),
        )
    ]
    credit = event_body("tenant-2", "CREDITNOTE")
    assert WEBHOOKS.verify({"x-xero-signature": sign(credit, KEY)}, credit, KEY) == [
        PlatformNotice("tenant-2", frozenset({MirrorKind.vendor_credits}))
    ]


def test_intent_to_receive_verifies_and_says_nothing_changed() -> None:
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"ABC"}'
    assert WEBHOOKS.verify({"x-xero-signature": sign(body, KEY)}, body, KEY) == []
    with pytest.raises(WebhookRefused):
        WEBHOOKS.verify({"x-xero-signature": sign(body, "another key")}, body, KEY)


def test_tampered_unsigned_or_keyless_bodies_are_refused() -> None:
    body = event_body("tenant-1", "INVOICE")
    signature = sign(body, KEY)
    tampered = body.replace(b"tenant-1", b"tenant-9")
    for headers, content, key in (
        ({"x-xero-signature": signature}, tampered, KEY),
        ({}, body, KEY),
        ({"x-xero-signature": ""}, body, KEY),
        ({"x-xero-signature": signature}, body, ""),
        ({"x-xero-signature": signature[:-4] + "AAA="}, body, KEY),
    ):
        with pytest.raises(WebhookRefused):
            WEBHOOKS.verify(headers, content, key)


class Receiver:
    """A platform-webhook endpoint as a product would serve it: verify, answer 200 or 401."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.got: list[tuple[bytes, int, list[PlatformNotice]]] = []
        self.events: list[dict[str, Any]] = []
        self.event_arrived = asyncio.Event()

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
        self.got.append((body, status, notices))
        if status == 200 and json.loads(body)["events"]:
            self.events.extend(json.loads(body)["events"])
            self.event_arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_the_emulator_checks_intent_to_receive_then_sends_signed_events() -> None:
    emulator = XeroEmulator()
    company = emulator.seed_demo_company()
    receiver = Receiver(KEY)
    async with (
        serve_asgi(receiver) as hooks_url,
        serve_asgi(emulator.app) as base_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        # Subscribed through the emulator's admin endpoint, as the stack does.
        admin = {"Authorization": f"Bearer {emulator.inspector_token}"}
        # Without the inspector token nobody may point the app's webhooks elsewhere.
        refused = await http.put(
            base_url + "/_emulator/webhooks", json={"url": hooks_url, "key": KEY}
        )
        assert refused.status_code == 401
        configured = await http.put(
            base_url + "/_emulator/webhooks", json={"url": hooks_url, "key": KEY}, headers=admin
        )
        assert configured.status_code == 200
        headers = {
            "Authorization": f"Bearer {company.credentials['access_token']}",
            "xero-tenant-id": company.company_id,
        }
        contacts = (await http.get(base_url + "/api.xro/2.0/Contacts", headers=headers)).json()
        vendor = contacts["Contacts"][0]["ContactID"]
        bill = {
            "Type": "ACCPAY",
            "Contact": {"ContactID": vendor},
            "Date": "2026-07-01",
            "DueDate": "2026-07-31",
            "Status": "AUTHORISED",
            "LineItems": [
                {"Description": "x", "Quantity": 1, "UnitAmount": "10", "AccountCode": "453"}
            ],
        }
        created = await http.put(
            base_url + "/api.xro/2.0/Invoices", json={"Invoices": [bill]}, headers=headers
        )
        assert created.status_code == 200
        invoice_id = created.json()["Invoices"][0]["InvoiceID"]
        await asyncio.wait_for(receiver.event_arrived.wait(), timeout=20)
        created_events = list(receiver.events)
        # A payment: Xero sends no payment event, but the invoice it settles changed.
        receiver.event_arrived.clear()
        payment = {
            "Invoice": {"InvoiceID": invoice_id},
            "Account": {"AccountID": company.settings["bank_account_id"]},
            "Date": "2026-07-05",
            "Amount": "10",
        }
        paid = await http.put(
            base_url + "/api.xro/2.0/Payments", json={"Payments": [payment]}, headers=headers
        )
        assert paid.status_code == 200, paid.text
        await asyncio.wait_for(receiver.event_arrived.wait(), timeout=20)
        state = (await http.get(base_url + "/_emulator/webhooks", headers=admin)).json()
        await emulator.webhooks.aclose()

    # First the handshake: the signed empty list (200), the wrongly signed one (401).
    handshake = receiver.got[:2]
    assert [json.loads(body)["events"] for body, _, _ in handshake] == [[], []]
    assert [status for _, status, _ in handshake] == [200, 401]
    assert [notices for _, _, notices in handshake] == [[], []]
    # Then the event, signed and verifiable, naming the tenant and the invoice.
    delivered = [(b, n) for b, s, n in receiver.got[2:] if s == 200]
    assert delivered
    assert [(e["resourceId"], e["eventCategory"], e["eventType"]) for e in created_events] == [
        (invoice_id, "INVOICE", "CREATE")
    ]
    assert [(e["resourceId"], e["eventType"]) for e in receiver.events[1:]] == [
        (invoice_id, "UPDATE")
    ]
    assert {e["tenantId"] for e in receiver.events} == {company.company_id}
    assert delivered[0][1] == [
        PlatformNotice(
            company.company_id,
            frozenset({MirrorKind.bills, MirrorKind.bill_payments, MirrorKind.attachments}),
        )
    ]
    assert state["intent_verified"] is True


async def test_no_event_reaches_a_receiver_that_fails_the_handshake() -> None:
    emulator = XeroEmulator()
    company = emulator.seed_demo_company()
    # A receiver that does not check signatures answers 200 to the wrongly signed body too.
    bodies: list[bytes] = []

    async def careless(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    emulator.webhooks.retry_delay = 30  # one round is what this test looks at
    async with serve_asgi(careless) as hooks_url, serve_asgi(emulator.app) as base_url:
        emulator.configure_webhooks(hooks_url, KEY)
        async with httpx.AsyncClient(timeout=10) as http:
            headers = {
                "Authorization": f"Bearer {company.credentials['access_token']}",
                "xero-tenant-id": company.company_id,
            }
            await http.post(
                base_url + "/api.xro/2.0/Contacts",
                json={"Contacts": [{"Name": "New Supplier " + uuid.uuid4().hex[:6]}]},
                headers=headers,
            )
        await asyncio.wait_for(emulator.webhooks.round_failed.wait(), timeout=20)
        state = emulator.webhooks.state
        await emulator.webhooks.aclose()
    assert all(json.loads(body)["events"] == [] for body in bodies)
    assert state.intent_verified is False
    assert state.pending and state.last_error and "401 expected" in state.last_error
