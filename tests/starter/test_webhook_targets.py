"""Webhook targets: private, loopback, link-local, CGNAT, multicast and metadata refused (422)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from runtime.secrets import SecretBox
from runtime.webhook_targets import TargetRefused, check_target
from starter.api.auth import Principal
from starter.api.errors import install_error_handlers
from starter.api.webhooks import WebhookService, webhook_endpoints_router
from store import Store, WebhookStore

REFUSED = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://[fd12:3456::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/", "metadata"),
    ("http://169.254.10.20/hook", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://100.64.1.1/hook", "carrier-grade NAT"),
    ("http://224.0.0.251/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[::ffff:169.254.169.254]/hook", "metadata"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://[64:ff9b::a00:1]/hook", "private"),
    ("http://localhost:9000/hook", "loopback"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_internal_targets_are_refused_naming_why(url: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        await check_target(url)
    await check_target(url, allow_private=True)  # what the sandbox sets


async def test_every_address_a_name_resolves_to_is_checked() -> None:
    # DNS can answer with a public address first and an internal one after (or change later).
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]

    with pytest.raises(TargetRefused, match=r"hooks\.example resolves to 10\.0\.0\.7"):
        await check_target("https://hooks.example/x", resolve=mixed)
    await check_target("https://hooks.example/x", resolve=public)
    await check_target("https://93.184.215.14/x")


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(TargetRefused, match="does not resolve"):
        await check_target("https://no-such-host.invalid/x")


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[Any]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    hooks = WebhookStore(store)
    app = FastAPI()

    async def anyone() -> None:
        return None

    # Registering sends nothing: no outbox is needed.
    service = WebhookService(hooks, SecretBox(SecretBox.generate_key()), cast(Any, None))
    app.include_router(webhook_endpoints_router(service, anyone))
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://remit.test") as client:
        yield client, hooks
    store.close()


async def test_registration_refuses_an_internal_target_with_422(http: Any) -> None:
    client, hooks = http
    for url, why in [
        ("http://169.254.169.254/latest/meta-data/iam/", "metadata"),
        ("http://[::ffff:127.0.0.1]:8200/v1/secret", "loopback"),
        ("http://localhost:5432/", "loopback"),
    ]:
        answer = await client.post("/v1/webhook-endpoints", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert why in answer.text and "public addresses" in answer.text
    assert hooks.list_endpoints() == []

    public = await client.post("/v1/webhook-endpoints", json={"url": "https://93.184.215.14/h"})
    assert public.status_code == 201, public.text


async def test_only_a_key_for_every_connection_manages_endpoints(tmp_path: Path) -> None:
    # An endpoint receives the events of every connection: a key limited to some may not add one.
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    hooks = WebhookStore(store)
    limited = Principal(
        key_id="k", user_id="olivia", scopes=frozenset({"admin"}), connections=frozenset({"qb-1"})
    )
    app = FastAPI()
    install_error_handlers(app)

    async def admin_of_one() -> Principal:
        return limited

    service = WebhookService(hooks, SecretBox(SecretBox.generate_key()), cast(Any, None))
    app.include_router(webhook_endpoints_router(service, admin_of_one))
    transport = httpx.ASGITransport(app=cast(Any, app))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://remit.test") as client:
            added = await client.post(
                "/v1/webhook-endpoints", json={"url": "https://93.184.215.14/h"}
            )
            listed = await client.get("/v1/webhook-endpoints")
        assert added.status_code == listed.status_code == 403
        assert "every connection" in added.json()["error"]["message"]
        assert hooks.list_endpoints() == []
    finally:
        store.close()
