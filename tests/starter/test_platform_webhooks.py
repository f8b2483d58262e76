"""Inbound platform webhooks: a signed notice starts a sync of the connections to its company;
a tampered one is refused (401) and starts nothing; an intent-to-receive is answered 200."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from connectors.mirror import MirrorKind, PlatformNotice, PlatformWebhooks, WebhookRefused
from connectors.registry import webhooks
from runtime.secrets import SecretBox
from runtime.settings import Settings
from starter.api import assemble_app
from starter.api.platform_webhooks import platform_webhooks_router
from starter.client import RemitClient
from store import ConnectionRow, DocumentStore, Store

QBO_KEY = "verifier-token-for-tests"
XERO_KEY = "xero-webhook-key-for-tests"


def _mac(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


class _Hmac:
    """A platform's signing as its docs state it (HMAC-SHA256 of the raw body, base64), for a
    platform whose connector's webhooks module has not landed: QBO's `intuit-signature` with
    eventNotifications[].realmId, Xero's `x-xero-signature` with events[].tenantId."""

    def __init__(self, header: str, events: str, company: str) -> None:
        self.signature_header = header
        self._events = events
        self._company = company

    def verify(self, headers: Mapping[str, str], body: bytes, key: str) -> list[PlatformNotice]:
        given = headers.get(self.signature_header, "")
        if not given or not hmac.compare_digest(given, _mac(key, body)):
            raise WebhookRefused(f"{self.signature_header} does not match the body")
        payload = json.loads(body)
        return [
            PlatformNotice(
                company_id=str(event[self._company]), kinds=frozenset({MirrorKind.bills})
            )
            for event in payload.get(self._events) or []
        ]


OWN_SIGNERS: dict[str, PlatformWebhooks] = {
    "quickbooks": _Hmac("intuit-signature", "eventNotifications", "realmId"),
    "xero": _Hmac("x-xero-signature", "events", "tenantId"),
}


def signer(platform: str) -> PlatformWebhooks | None:
    """The connector's own where it has landed, else the documented scheme above."""
    return webhooks(platform) or OWN_SIGNERS.get(platform)


def qbo_body(realm: str) -> bytes:
    return json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Bill",
                                "id": "145",
                                "operation": "Update",
                                "lastUpdated": "2026-12-02T19:00:00.000Z",
                            }
                        ]
                    },
                }
            ]
        }
    ).encode()


def xero_body(tenant: str | None) -> bytes:
    events = (
        [
            {
                "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/1",
                "resourceId": "1",
                "tenantId": tenant,
                "tenantType": "ORGANISATION",
                "eventCategory": "INVOICE",
                "eventType": "UPDATE",
                "eventDateUtc": "2026-12-02T19:00:00.000",
            }
        ]
        if tenant
        else []
    )
    return json.dumps(
        {"events": events, "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "X"}
    ).encode()


@dataclass
class Receiver:
    http: httpx.AsyncClient
    synced: list[str] = field(default_factory=list)
    temporal_down: bool = False

    async def post(self, platform: str, body: bytes, signature: str | None) -> httpx.Response:
        header = {"quickbooks": "intuit-signature", "xero": "x-xero-signature"}.get(platform, "x")
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers[header] = signature
        return await self.http.post(
            f"/v1/platforms/{platform}/webhooks", content=body, headers=headers
        )


@pytest.fixture
async def receiver(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> AsyncIterator[Receiver]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    now = datetime.now(UTC)
    for connection_id, platform, company in (
        ("qbo-a", "quickbooks", "realm-1"),
        ("qbo-b", "quickbooks", "realm-1"),  # two connections to one company: both sync
        ("qbo-c", "quickbooks", "realm-2"),
        ("xero-a", "xero", "tenant-1"),
    ):
        store.upsert_connection(
            ConnectionRow(
                id=connection_id,
                platform=platform,
                company_id=company,
                display_name=connection_id,
                base_url="http://127.0.0.1:9",
                settings={},
                created_at=now,
                updated_at=now,
            )
        )
    state: dict[str, Any] = {}

    async def start_sync(connection_id: str) -> None:
        # Temporal's answer is the sync engine's to test; here: what was asked, and an outage.
        if state["receiver"].temporal_down:
            raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")
        state["receiver"].synced.append(connection_id)

    router = platform_webhooks_router(
        Settings(),
        keys={"quickbooks": SecretStr(QBO_KEY), "xero": SecretStr(XERO_KEY)},
        start_sync=start_sync,
        signers=signer,
    )
    app = assemble_app(
        RemitClient(time_skipping_env.client),
        bank_webhook_secret="whsec_platform_tests",
        store=store,
        documents=DocumentStore(tmp_path / "documents"),
        secret_box=SecretBox(SecretBox.generate_key()),
        extra_routers=[router],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://remit"
    ) as http:
        state["receiver"] = Receiver(http=http)
        yield state["receiver"]
    store.close()


async def test_a_signed_quickbooks_notice_syncs_every_connection_to_that_company(
    receiver: Receiver,
) -> None:
    body = qbo_body("realm-1")
    response = await receiver.post("quickbooks", body, _mac(QBO_KEY, body))
    assert response.status_code == 200, response.text
    assert sorted(receiver.synced) == ["qbo-a", "qbo-b"]
    assert response.json()["syncs"] == ["qbo-a", "qbo-b"]


async def test_a_tampered_or_unsigned_notice_is_refused_and_starts_nothing(
    receiver: Receiver,
) -> None:
    body = qbo_body("realm-1")
    signature = _mac(QBO_KEY, body)
    tampered = body.replace(b"realm-1", b"realm-2")
    refused = await receiver.post("quickbooks", tampered, signature)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert (await receiver.post("quickbooks", body, None)).status_code == 401
    wrong_key = await receiver.post("quickbooks", body, _mac("another key", body))
    assert wrong_key.status_code == 401
    assert receiver.synced == []


async def test_xero_intent_to_receive_is_answered_and_syncs_nothing(receiver: Receiver) -> None:
    handshake = xero_body(None)
    assert (await receiver.post("xero", handshake, _mac(XERO_KEY, handshake))).status_code == 200
    wrong = await receiver.post("xero", handshake, _mac("not the key", handshake))
    assert wrong.status_code == 401  # Xero checks the handshake fails for a bad signature too
    assert receiver.synced == []
    body = xero_body("tenant-1")
    assert (await receiver.post("xero", body, _mac(XERO_KEY, body))).status_code == 200
    assert receiver.synced == ["xero-a"]


async def test_a_company_remit_does_not_know_is_answered_and_ignored(receiver: Receiver) -> None:
    body = qbo_body("realm-unknown")
    response = await receiver.post("quickbooks", body, _mac(QBO_KEY, body))
    assert response.status_code == 200
    assert response.json()["syncs"] == []
    assert receiver.synced == []


async def test_platforms_without_webhooks_or_key_get_404(receiver: Receiver) -> None:
    body = qbo_body("realm-1")
    for platform in ("netsuite", "sage"):  # polled only; not a platform at all
        response = await receiver.post(platform, body, _mac(QBO_KEY, body))
        assert response.status_code == 404, platform
    assert receiver.synced == []


async def test_a_workflow_engine_outage_asks_the_platform_to_send_again(
    receiver: Receiver,
) -> None:
    receiver.temporal_down = True
    body = qbo_body("realm-2")
    response = await receiver.post("quickbooks", body, _mac(QBO_KEY, body))
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "workflow_unavailable"


async def test_no_key_configured_is_404_not_500(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    app = assemble_app(
        RemitClient(time_skipping_env.client),
        bank_webhook_secret="whsec_platform_tests",
        store=store,
        documents=DocumentStore(tmp_path / "documents"),
        extra_routers=[platform_webhooks_router(Settings(), keys={}, signers=signer)],
    )
    body = qbo_body("realm-1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://remit"
    ) as http:
        response = await http.post(
            "/v1/platforms/quickbooks/webhooks",
            content=body,
            headers={"intuit-signature": _mac(QBO_KEY, body)},
        )
    store.close()
    assert response.status_code == 404
    assert "not configured" in response.json()["error"]["message"]


async def test_the_production_app_lets_a_platforms_server_post_through(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> None:
    from tests.starter.test_edge_api import edge_api

    body = xero_body(None)
    async with edge_api(time_skipping_env, tmp_path) as (http, _, _settings):
        # A server-to-server POST: no Origin, no API key, a JSON body; no key is configured.
        response = await http.post(
            "/v1/platforms/xero/webhooks",
            content=body,
            headers={"x-xero-signature": _mac(XERO_KEY, body), "content-type": "application/json"},
        )
        polled = await http.post("/v1/platforms/netsuite/webhooks", content=body)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "not_found"
    assert polled.status_code == 404


async def test_the_stacks_xero_emulator_delivers_to_the_api_and_passes_intent_to_receive(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> None:
    from sandbox.stack import SendsWebhooks, Stack, StackOptions

    address = time_skipping_env.client.service_client.config.target_host
    async with Stack(StackOptions.on_free_ports(tmp_path, temporal_address=address)) as stack:
        senders = {
            name: emulator
            for name, emulator in stack.emulators.items()
            if isinstance(emulator, SendsWebhooks)
        }
        assert "xero" in senders
        info = stack.info
        assert info is not None
        xero: Any = senders["xero"]
        state = xero.webhooks.state
        assert state.url == info.api_url + "/v1/platforms/xero/webhooks"
        deadline = asyncio.get_running_loop().time() + 20
        while not state.intent_verified:  # the emulator's own check: 200 signed, 401 not
            assert asyncio.get_running_loop().time() < deadline, state.last_error
            await asyncio.sleep(0.05)
        company = next(e.company_id for e in info.emulators if e.platform == "xero")
        xero.webhooks.record(company, "INVOICE", "inv-1", "UPDATE", datetime.now(UTC))
        while state.delivered < 1:
            assert asyncio.get_running_loop().time() < deadline, state.last_error
            await asyncio.sleep(0.05)
        assert state.last_error is None
