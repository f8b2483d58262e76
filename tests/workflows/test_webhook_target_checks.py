"""Deliveries check the target again: an endpoint that now points inward gets nothing sent."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from activities.webhooks import DeliveryRefused, WebhookSender, seal_secret
from runtime.secrets import SecretBox
from runtime.webhook_targets import guarded_client, system_resolver
from store import Store, WebhookStore
from store.types import utcnow
from store.webhooks import WebhookEndpointRow
from tests.webhook_receiver import SECRET, Receiver, serving


async def _send(sender: WebhookSender, endpoint_id: str) -> object:
    return await sender.send(
        delivery_id="wd_1",
        endpoint_id=endpoint_id,
        event_id="evt_1",
        event_type="bill.paid",
        payload={"id": "evt_1", "type": "bill.paid", "data": {}},
        attempt=1,
    )


async def test_a_delivery_to_a_loopback_target_is_refused_unless_allowed(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    hooks = WebhookStore(store)
    box = SecretBox(SecretBox.generate_key())
    try:
        async with serving(Receiver()) as receiver:
            now = utcnow()
            # As if registered while its name resolved publicly, and pointing inward since.
            hooks.create_endpoint(
                WebhookEndpointRow(
                    id="we_inward",
                    url=receiver.url,
                    event_types=["bill.paid"],
                    secret_encrypted=seal_secret(box, SECRET),
                    created_at=now,
                    updated_at=now,
                )
            )

            with pytest.raises(DeliveryRefused, match="loopback") as refused:
                await _send(WebhookSender(hooks, box), "we_inward")
            assert refused.value.kind == "TargetRefused"
            assert receiver.received == []

            allowed = WebhookSender(hooks, box, allow_private_targets=True)
            sent = await _send(allowed, "we_inward")
            assert getattr(sent, "delivered", False) is True
            assert len(receiver.received) == 1
    finally:
        store.close()


async def test_the_guarded_client_dials_only_what_it_checked() -> None:
    # DNS rebinding: a name that passed the check, answering with loopback when dialled.
    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with serving(Receiver()) as receiver:
        port = httpx.URL(receiver.url).port
        for url, resolve in [
            (receiver.url, system_resolver),
            (f"http://hooks.example:{port}/hook", rebinding),
        ]:
            async with guarded_client(timeout=5, resolve=resolve) as client:
                with pytest.raises(httpx.ConnectError, match="loopback"):
                    await client.post(url, content=b"{}")
        assert receiver.received == []
        async with guarded_client(timeout=5, allow_private=True) as client:
            answer = await client.post(receiver.url, content=b"{}")
        assert answer.status_code == 200 and len(receiver.received) == 1
