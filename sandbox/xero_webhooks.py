"""The Xero emulator's outbound webhooks: intent to receive first, then signed event batches.

As Xero does for an app's webhook URL: before any event is delivered the receiver must pass the
intent-to-receive check (a correctly signed empty event list answered 200 and a wrongly signed
one answered 401). Events are then batched over a short window and POSTed with
x-xero-signature = base64(HMAC-SHA256(raw body, webhook key)); a failed delivery is retried in
the background with a growing delay (Xero retries too, then gives up and later disables the
subscription; here after `max_attempts`). What is configured and what waits to be sent is a
picklable `WebhookState`, kept with the emulator's records.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

RESOURCE_PATH = {"INVOICE": "Invoices", "CONTACT": "Contacts", "CREDITNOTE": "CreditNotes"}


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class WebhookState:
    """The app's webhook subscription as the emulator keeps it (picklable)."""

    url: str | None = None
    key: str | None = None
    intent_verified: bool = False
    sequence: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0
    last_error: str | None = None


class WebhookSender:
    """Queues events and delivers them over real HTTP from a background task."""

    def __init__(
        self,
        *,
        batch_window: float = 0.2,
        retry_delay: float = 0.5,
        max_attempts: int = 8,
        api_base: str = "https://api.xero.com/api.xro/2.0",
    ) -> None:
        self.state = WebhookState()
        self.batch_window = batch_window
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.api_base = api_base
        self._task: asyncio.Task[None] | None = None
        # Set when a round of delivery failed (tests wait on it instead of sleeping).
        self.round_failed = asyncio.Event()

    def configure(self, url: str | None, key: str | None) -> None:
        """Subscribe (or with url None unsubscribe); a new URL or key must pass the check again."""
        self.state.url = url
        self.state.key = key
        self.state.intent_verified = False
        self.state.last_error = None
        if url is None:
            self.state.pending.clear()
        else:
            self._wake()

    def record(
        self, tenant_id: str, category: str, resource_id: str, event_type: str, at: datetime
    ) -> None:
        """One change, to be delivered with the next batch (nothing when nobody subscribed)."""
        if self.state.url is None:
            return
        self.state.sequence += 1
        self.state.pending.append(
            {
                "resourceUrl": f"{self.api_base}/{RESOURCE_PATH[category]}/{resource_id}",
                "resourceId": resource_id,
                "eventDateUtc": at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6],
                "eventType": event_type,
                "eventCategory": category,
                "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
                "_sequence": self.state.sequence,
            }
        )
        self._wake()

    async def drained(self) -> None:
        """Wait for the background sender to finish what it has (for an orderly close)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    # --- the background task -------------------------------------------------------------

    def _wake(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next request in a loop sends it
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        attempts = 0
        async with httpx.AsyncClient(timeout=10.0) as http:
            while self.state.url is not None and attempts < self.max_attempts:
                try:
                    if not self.state.intent_verified:
                        await self._intent_to_receive(http)
                    if not self.state.pending:
                        return
                    # Xero batches what happens within a short window into one delivery.
                    await asyncio.sleep(self.batch_window)
                    await self._deliver(http)
                    attempts = 0
                except (httpx.HTTPError, DeliveryFailed) as exc:
                    attempts += 1
                    self.state.last_error = str(exc)
                    log.warning("Xero emulator webhook to %s failed: %s", self.state.url, exc)
                    self.round_failed.set()
                    await asyncio.sleep(self.retry_delay * attempts)

    async def _post(self, http: httpx.AsyncClient, body: bytes, signature: str) -> int:
        assert self.state.url is not None
        response = await http.post(
            self.state.url,
            content=body,
            headers={"content-type": "application/json", "x-xero-signature": signature},
        )
        return response.status_code

    async def _intent_to_receive(self, http: httpx.AsyncClient) -> None:
        key = self.state.key or ""
        body = _body([], 0, 0)
        good = await self._post(http, body, sign(body, key))
        bad = await self._post(http, body, sign(body, key + "-not-the-key"))
        if good != 200 or bad != 401:
            raise DeliveryFailed(
                f"intent to receive not passed: {good} for the signed body (200 expected), "
                f"{bad} for the wrongly signed one (401 expected)"
            )
        self.state.intent_verified = True

    async def _deliver(self, http: httpx.AsyncClient) -> None:
        batch = list(self.state.pending)
        if not batch:
            return
        events = [{k: v for k, v in event.items() if k != "_sequence"} for event in batch]
        body = _body(events, batch[0]["_sequence"], batch[-1]["_sequence"])
        status = await self._post(http, body, sign(body, self.state.key or ""))
        if status != 200:
            raise DeliveryFailed(f"the receiver answered {status}")
        del self.state.pending[: len(batch)]
        self.state.delivered += len(batch)


class DeliveryFailed(Exception):
    """The receiver did not answer as Xero requires."""


def _body(events: list[dict[str, Any]], first: int, last: int) -> bytes:
    payload = {
        "events": events,
        "firstEventSequence": first,
        "lastEventSequence": last,
        "entropy": secrets.token_hex(10).upper(),
    }
    return json.dumps(payload, separators=(",", ":")).encode()
