"""The QuickBooks emulator's outbound webhooks: batched, intuit-signature signed, retried.

As Intuit does for an app's webhook endpoint: changes to the company's entities are gathered
over a short window (Intuit's production window is 1 to 5 minutes, its sandbox near real time)
and POSTed as one notification per company, with intuit-signature = base64(HMAC-SHA256(raw
body, verifier token)). The body is the long-standing `eventNotifications` shape, or, when the
subscription asks for it, the CloudEvents array Intuit is moving apps to. Intuit has no
handshake like Xero's intent to receive. A failed delivery is retried in the background with a
growing delay, up to `max_attempts` rounds. What is configured and what waits to be sent is a
picklable `WebhookState`, kept with the emulator's records.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.xero_webhooks import DeliveryFailed, sign

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "intuit-signature"
PAYLOAD_FORMATS = ("legacy", "cloudevents")
# The webhook entity name where it differs from the API entity's.
EVENT_NAME = {"CompanyCurrency": "Currency"}
# Operation → the verb in a CloudEvents type (qbo.bill.created.v1).
CLOUD_VERB = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}

__all__ = ["PAYLOAD_FORMATS", "SIGNATURE_HEADER", "DeliveryFailed", "WebhookSender", "sign"]


@dataclass
class WebhookState:
    """The app's webhook subscription as the emulator keeps it (picklable)."""

    url: str | None = None
    key: str | None = None
    payload_format: str = "legacy"
    # Changes not delivered yet: {"realmId", "name", "id", "operation", "lastUpdated"}.
    pending: list[dict[str, str]] = field(default_factory=list)
    delivered: int = 0
    last_error: str | None = None


class WebhookSender:
    """Queues entity changes and delivers them over real HTTP from a background task."""

    def __init__(
        self,
        *,
        batch_window: float = 0.2,
        retry_delay: float = 0.5,
        max_attempts: int = 8,
    ) -> None:
        self.state = WebhookState()
        self.batch_window = batch_window
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self._task: asyncio.Task[None] | None = None
        # Set when a round of delivery failed (tests wait on it instead of sleeping).
        self.round_failed = asyncio.Event()

    def configure(self, url: str | None, key: str | None) -> None:
        """Subscribe (or with url None unsubscribe)."""
        self.state.url = url
        self.state.key = key
        self.state.last_error = None
        if url is None:
            self.state.pending.clear()
        else:
            self._wake()

    def record(
        self, realm_id: str, entity: str, entity_id: str, operation: str, last_updated: str
    ) -> None:
        """One change, to be delivered with the next batch (nothing when nobody subscribed)."""
        if self.state.url is None:
            return
        change = {
            "realmId": realm_id,
            "name": EVENT_NAME.get(entity, entity),
            "id": entity_id,
            "operation": operation,
            "lastUpdated": last_updated,
        }
        # Within one batch a repeated change says nothing new.
        if change not in self.state.pending:
            self.state.pending.append(change)
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
            return  # no loop (a synchronous caller): the next change in a loop sends it
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        attempts = 0
        async with httpx.AsyncClient(timeout=10.0) as http:
            while self.state.url is not None and self.state.pending:
                if attempts >= self.max_attempts:
                    return  # Intuit gives up too; what is pending waits for the next change
                try:
                    # Intuit gathers what happens within a window into one notification.
                    await asyncio.sleep(self.batch_window)
                    await self._deliver(http)
                    attempts = 0
                except (httpx.HTTPError, DeliveryFailed) as exc:
                    attempts += 1
                    self.state.last_error = str(exc)
                    log.warning("QuickBooks emulator webhook to %s failed: %s", self.state.url, exc)
                    self.round_failed.set()
                    await asyncio.sleep(self.retry_delay * attempts)

    async def _deliver(self, http: httpx.AsyncClient) -> None:
        batch = list(self.state.pending)
        if not batch or self.state.url is None:
            return
        body = self._body(batch)
        response = await http.post(
            self.state.url,
            content=body,
            headers={
                "content-type": "application/json",
                SIGNATURE_HEADER: sign(body, self.state.key or ""),
            },
        )
        if response.status_code != 200:
            raise DeliveryFailed(f"the receiver answered {response.status_code}")
        del self.state.pending[: len(batch)]
        self.state.delivered += len(batch)

    def _body(self, batch: list[dict[str, str]]) -> bytes:
        payload: Any
        if self.state.payload_format == "cloudevents":
            payload = [
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "intuit.emulator",
                    "type": f"qbo.{change['name'].lower()}."
                    f"{CLOUD_VERB.get(change['operation'], 'updated')}.v1",
                    "datacontenttype": "application/json",
                    "time": change["lastUpdated"],
                    "intuitentityid": change["id"],
                    "intuitaccountid": change["realmId"],
                    "data": {},
                }
                for change in batch
            ]
        else:
            realms: dict[str, list[dict[str, str]]] = {}
            for change in batch:
                entity = {k: v for k, v in change.items() if k != "realmId"}
                realms.setdefault(change["realmId"], []).append(entity)
            payload = {
                "eventNotifications": [
                    {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
                    for realm_id, entities in realms.items()
                ]
            }
        return json.dumps(payload, separators=(",", ":")).encode()
