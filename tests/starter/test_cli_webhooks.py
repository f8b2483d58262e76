"""`remit webhooks listen`'s receiver: verifies signatures, prints events, refuses forgeries."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx
from rich.console import Console

from runtime.webhook_signing import EVENT_TYPE_HEADER, SIGNATURE_HEADER, signature
from starter.cli.webhooks import receiver_app

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
