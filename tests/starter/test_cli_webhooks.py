"""`remit webhooks`: the receiver verifies signatures and refuses forgeries; add keeps the secret
in a private file and every endpoint command takes the endpoint's URL."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException
from rich.console import Console
from typer.testing import CliRunner

from activities.webhooks import WebhookOutbox
from runtime.secrets import SecretBox
from runtime.webhook_signing import EVENT_TYPE_HEADER, SIGNATURE_HEADER, signature
from starter.api.webhooks import WebhookService, webhook_endpoints_router
from starter.cli import app
from starter.cli.webhooks import receiver_app
from store import Store, WebhookStore
from tests.starter.test_cli_api import serving

runner = CliRunner()
RECEIVER = "https://erp-bridge.example/remit"

SECRET = "whsec_test_0123456789"


def signed(body: bytes, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    t = int(time.time()) if at is None else at
    return {
        SIGNATURE_HEADER: f"t={t},v1={signature(secret, t, body)}",
        EVENT_TYPE_HEADER: "bill.paid",
        "content-type": "application/json",
    }


async def post(app: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
        return await c.post("/", content=body, headers=headers)


async def test_a_signed_delivery_is_accepted_and_printed() -> None:
    out = io.StringIO()
    app = receiver_app(SECRET, Console(file=out, width=200))
    body = json.dumps({"type": "bill.paid", "data": {"id": "bill/x/1", "status": "paid"}}).encode()

    response = await post(app, body, signed(body))

    assert response.status_code == 204
    assert "verified bill.paid bill/x/1 paid" in out.getvalue()


async def test_forged_tampered_and_stale_deliveries_are_refused() -> None:
    out = io.StringIO()
    app = receiver_app(SECRET, Console(file=out, width=200))
    body = b'{"type": "bill.paid", "data": {}}'

    forged = await post(app, body, signed(body, secret="whsec_someone_else"))
    tampered = await post(app, body + b" ", signed(body))
    stale = await post(app, body, signed(body, at=int(time.time()) - 3600))
    unsigned = await post(app, body, {"content-type": "application/json"})

    assert [r.status_code for r in (forged, tampered, stale, unsigned)] == [400] * 4
    assert out.getvalue().count("refused") == 4
    assert "verified" not in out.getvalue()


# ---------------------------------------------------------------------------------------------
# the walkthrough's commands, complete: the secret kept in a file, an endpoint named by its URL
# ---------------------------------------------------------------------------------------------

ADMIN_TOKEN = "rk_cli_admin.secret"


@pytest.fixture
async def endpoints_api(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The webhook-endpoint routes served over loopback HTTP; the CLI's environment for them."""
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    hooks = WebhookStore(store)

    async def public_dns(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]  # the receiver's name resolves nowhere offline

    async def require_admin(authorization: str | None = Header(default=None)) -> None:
        if authorization != f"Bearer {ADMIN_TOKEN}":
            raise HTTPException(401, "an admin API key is required")

    app = FastAPI()
    service = WebhookService(
        hooks, SecretBox(SecretBox.generate_key()), WebhookOutbox(hooks), resolve=public_dns
    )
    app.include_router(webhook_endpoints_router(service, require_admin))
    try:
        async with serving(app) as url:
            yield {
                "REMIT_API_URL": url,
                "REMIT_API_KEY": ADMIN_TOKEN,
                "XDG_CONFIG_HOME": str(tmp_path / "config"),
            }
    finally:
        store.close()


async def _cli(env: dict[str, str], *args: str) -> Any:
    return await asyncio.to_thread(
        lambda: runner.invoke(app, ["webhooks", *args], env=env, catch_exceptions=False)
    )


async def test_add_keeps_the_secret_in_a_private_file_that_listen_reads(
    endpoints_api: dict[str, str], tmp_path: Path
) -> None:
    secret_file = tmp_path / "webhook.secret"

    added = await _cli(endpoints_api, "add", RECEIVER, "--secret-file", str(secret_file))
    deliveries = await _cli(endpoints_api, "deliveries", RECEIVER)
    unknown = await _cli(endpoints_api, "deliveries", "https://nobody.example/hook")
    no_secret = await _cli(endpoints_api, "listen")

    assert added.exit_code == 0, added.output
    secret = secret_file.read_text().strip()
    assert secret.startswith("whsec_") and secret not in added.output
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert f"written to {secret_file}" in added.output
    # The endpoint named by its URL: its delivery log (empty: nothing happened yet).
    assert deliveries.exit_code == 0, deliveries.output
    assert "delivery" in deliveries.output
    assert unknown.exit_code == 1 and "no endpoints registered at" in unknown.output
    # At 80 columns every id is printed whole, to be copied.
    [endpoint] = json.loads((await _cli(endpoints_api, "list", "--json")).stdout)
    listed = await _cli({**endpoints_api, "COLUMNS": "80"}, "list")
    assert endpoint["id"] in listed.stdout and "…" not in listed.stdout
    assert no_secret.exit_code == 2 and "--secret-file" in no_secret.output
