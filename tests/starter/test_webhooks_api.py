"""The webhook endpoints API over real HTTP (ASGI), and the receivers' signature helper."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException

from activities.webhooks import WebhookDispatcher, WebhookOutbox, WebhookSender
from runtime.secrets import SecretBox
from runtime.webhook_signing import SIGNATURE_HEADER, InvalidSignature, sign, verify
from starter.api.webhooks import WebhookService, webhook_endpoints_router
from store import Store, WebhookStore
from store.types import utcnow
from workflows.webhooks import EVENT_TYPES

ADMIN = {"Authorization": "Bearer admin-key"}
BODY = b'{"id":"evt_1","type":"bill.paid"}'

# -- the signature helper ------------------------------------------------------------------


def test_a_signature_verifies_and_any_tampering_is_refused() -> None:
    now = int(time.time())
    header = sign("whsec_a", now, BODY)
    assert header.startswith(f"t={now},v1=")
    assert verify("whsec_a", header, BODY) == now
    assert verify("whsec_a", header, BODY.decode()) == now  # str or bytes alike

    refusals = {
        "body": lambda: verify("whsec_a", header, BODY.replace(b"paid", b"void")),
        "secret": lambda: verify("whsec_b", header, BODY),
        "timestamp": lambda: verify("whsec_a", header.replace(f"t={now}", f"t={now + 1}"), BODY),
        "too old": lambda: verify("whsec_a", sign("whsec_a", now - 301, BODY), BODY),
        "from the future": lambda: verify("whsec_a", sign("whsec_a", now + 301, BODY), BODY),
        "missing": lambda: verify("whsec_a", None, BODY),
        "no v1": lambda: verify("whsec_a", f"t={now}", BODY),
        "bad t": lambda: verify("whsec_a", "t=soon,v1=00", BODY),
    }
    for what, attempt in refusals.items():
        with pytest.raises(InvalidSignature):
            attempt()
            pytest.fail(f"{what} was accepted")


def test_tolerance_is_the_receivers_choice_and_rotation_is_supported() -> None:
    then = int(time.time()) - 3600
    header = sign("whsec_a", then, BODY)
    with pytest.raises(InvalidSignature, match="away from now"):
        verify("whsec_a", header, BODY)
    assert verify("whsec_a", header, BODY, tolerance=7200) == then
    both = f"{sign('whsec_new', then, BODY)},v1={sign('whsec_old', then, BODY).split('v1=')[1]}"
    assert verify("whsec_old", both, BODY, tolerance=7200) == then


# -- the API ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Api:
    http: httpx.AsyncClient
    outbox: WebhookOutbox
    hooks: WebhookStore
    receiver: Receiver
    dispatcher: WebhookDispatcher

    async def send_due(self) -> int:
        """What a worker's dispatcher does next: send every delivery due; how many it sent."""
        sent = 0
        while claimed := await self.dispatcher.run_once():
            sent += claimed
        return sent


async def public_dns(host: str, port: int) -> list[str]:
    # The receivers' names (*.example) resolve nowhere offline: answer as DNS does for a public
    # receiver (example.com's address), so registration's target check passes.
    return ["93.184.215.14"]


async def require_admin(authorization: str | None = Header(default=None)) -> None:
    if authorization != ADMIN["Authorization"]:
        raise HTTPException(401, "an admin API key is required")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    hooks = WebhookStore(store)
    box = SecretBox(SecretBox.generate_key())
    receiver = Receiver()
    # The API queues deliveries and replays in the store; no Temporal is involved at all.
    outbox = WebhookOutbox(hooks)
    app = FastAPI()
    service = WebhookService(hooks, box, outbox, resolve=public_dns)
    app.include_router(webhook_endpoints_router(service, require_admin))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, receiver))) as sender,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://remit.test"
        ) as http,
    ):
        dispatcher = WebhookDispatcher(WebhookSender(hooks, box, sender))
        yield Api(http, outbox, hooks, receiver, dispatcher)
    store.close()


async def _create(api: Api, **body: Any) -> dict[str, Any]:
    answer = await api.http.post(
        "/v1/webhook-endpoints",
        json={"url": "https://erp-bridge.example/remit", **body},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    return cast(dict[str, Any], answer.json())


async def test_only_an_admin_may_manage_endpoints(api: Api) -> None:
    anonymous = await api.http.get("/v1/webhook-endpoints")
    assert anonymous.status_code == 401
    assert (await api.http.post("/v1/webhook-endpoints", json={})).status_code == 401


async def test_the_secret_is_shown_once_and_never_listed(api: Api) -> None:
    created = await _create(api, event_types=["bill.paid"], description="ERP bridge")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert created["event_types"] == ["bill.paid"] and created["status"] == "enabled"

    listed = await api.http.get("/v1/webhook-endpoints", headers=ADMIN)
    one = await api.http.get(f"/v1/webhook-endpoints/{created['id']}", headers=ADMIN)
    for answer in (listed, one):
        assert answer.status_code == 200
        assert secret not in answer.text and "secret" not in answer.text
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    stored = api.hooks.get_endpoint(created["id"])
    assert stored is not None and secret.encode() not in stored.secret_encrypted

    everything = await _create(api)
    assert everything["event_types"] == list(EVENT_TYPES)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": "ftp://files.example/x"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "https://user:pw@hooks.example/x"}, "url"),
        ({"url": "https://hooks.example", "event_types": ["bill.teleported"]}, "event_types"),
        ({"url": "https://hooks.example", "event_types": []}, "event_types"),
        ({"url": "https://hooks.example", "colour": "blue"}, "colour"),
    ],
)
async def test_bad_endpoints_are_refused_with_the_reason(
    api: Api, body: dict[str, Any], param: str
) -> None:
    answer = await api.http.post("/v1/webhook-endpoints", json=body, headers=ADMIN)
    assert answer.status_code == 422
    assert param in answer.text
    assert api.hooks.list_endpoints() == []


async def test_deliveries_are_listed_and_can_be_replayed_one_or_since_a_time(api: Api) -> None:
    created = await _create(api, event_types=["connection.needs_relink"])
    endpoint_id, secret = created["id"], created["secret"]
    first = await api.outbox.connection_needs_relink(
        "conn-1", platform="quickbooks", reason="revoked", occurrence="1"
    )
    cutoff = utcnow()
    second = await api.outbox.connection_needs_relink(
        "conn-1", platform="quickbooks", reason="revoked", occurrence="2"
    )
    original = f"webhook/{endpoint_id}/{first.id}"
    queued = await api.http.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=ADMIN)
    assert {(d["status"], d["next_attempt_at"] is not None) for d in queued.json()["data"]} == {
        ("pending", True)
    }
    assert await api.send_due() == 2

    listed = await api.http.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=ADMIN)
    assert listed.status_code == 200
    by_id = {d["id"]: d for d in listed.json()["data"]}
    assert by_id[original]["status"] == "delivered"
    assert by_id[original]["next_attempt_at"] is None
    assert [(a["attempt"], a["status_code"]) for a in by_id[original]["attempt_log"]] == [(1, 204)]

    replay = await api.http.post(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries/replay",
        json={"delivery_id": original},
        headers=ADMIN,
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["id"] == f"{original}/replay-1"
    assert await api.send_due() == 1
    replayed = api.hooks.get_delivery(replay.json()["id"])
    assert replayed is not None and replayed.status == "delivered"

    since = await api.http.post(
        f"/v1/webhook-endpoints/{endpoint_id}/replay",
        json={"since": cutoff.isoformat()},
        headers=ADMIN,
    )
    assert since.status_code == 202, since.text
    assert [d["event_id"] for d in since.json()["data"]] == [second.id]
    assert await api.send_due() == 1

    ids = []
    for headers, body in api.receiver.received:
        verify(secret, headers[SIGNATURE_HEADER.lower()], body)  # the secret shown at creation
        ids.append(json.loads(body)["id"])
    assert sorted(ids) == sorted([first.id, second.id, first.id, second.id])


async def test_replay_refusals_say_what_to_do(api: Api) -> None:
    created = await _create(api)
    endpoint_id = created["id"]
    base = f"/v1/webhook-endpoints/{endpoint_id}"

    unknown = await api.http.post(
        f"{base}/deliveries/replay", json={"delivery_id": "webhook/nope"}, headers=ADMIN
    )
    assert unknown.status_code == 404 and "no delivery" in unknown.text
    naive = await api.http.post(
        f"{base}/replay", json={"since": "2026-11-21T09:00:00"}, headers=ADMIN
    )
    assert naive.status_code == 422 and "time zone" in naive.text

    disabled = await api.http.post(f"{base}/disable", headers=ADMIN)
    assert disabled.json()["status"] == "disabled"
    refused = await api.http.post(
        f"{base}/replay", json={"since": "2026-11-21T09:00:00Z"}, headers=ADMIN
    )
    assert refused.status_code == 409 and "enable it first" in refused.text
    enabled = await api.http.post(f"{base}/enable", headers=ADMIN)
    assert enabled.json()["status"] == "enabled" and enabled.json()["disabled_reason"] is None

    assert (await api.http.delete(base, headers=ADMIN)).status_code == 204
    assert (await api.http.get(base, headers=ADMIN)).status_code == 404
    assert (await api.http.get(f"{base}/deliveries", headers=ADMIN)).status_code == 404
    assert (await api.http.delete(base, headers=ADMIN)).status_code == 404
