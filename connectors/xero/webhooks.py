"""Xero's webhooks: x-xero-signature verified over the raw body, events as mirror notices.

Xero signs each delivery with base64(HMAC-SHA256(raw body, webhook key)) in x-xero-signature.
Before it sends events to a new URL it proves the receiver checks signatures (intent to
receive): one correctly signed and one wrongly signed delivery with no events, expecting 200 for
the first and 401 for the second. Events name a tenant and a category; Xero sends no payment
events, so an INVOICE event also makes the sync read bill payments (and attachments).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from connectors.mirror import MirrorKind, PlatformNotice, WebhookRefused

SIGNATURE_HEADER = "x-xero-signature"

KINDS_BY_CATEGORY: dict[str, frozenset[MirrorKind]] = {
    "INVOICE": frozenset({MirrorKind.bills, MirrorKind.bill_payments, MirrorKind.attachments}),
    "CONTACT": frozenset({MirrorKind.vendors, MirrorKind.customers}),
    "CREDITNOTE": frozenset({MirrorKind.vendor_credits}),
}


def sign(body: bytes, key: str) -> str:
    """The x-xero-signature value Xero sends for `body` under the app's webhook key."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


class XeroWebhooks:
    """connectors.mirror.PlatformWebhooks for Xero."""

    signature_header = SIGNATURE_HEADER

    def verify(self, headers: Mapping[str, str], body: bytes, key: str) -> list[PlatformNotice]:
        given = _header(headers, SIGNATURE_HEADER)
        if not given or not key:
            raise WebhookRefused("no x-xero-signature (or no webhook key configured)")
        if not hmac.compare_digest(given.strip().encode(), sign(body, key).encode()):
            raise WebhookRefused("x-xero-signature does not match the body")
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            # Signed by Xero yet not JSON cannot happen; treat it as not Xero's.
            raise WebhookRefused("a signed Xero webhook body that is not JSON") from exc
        events = payload.get("events") if isinstance(payload, dict) else None
        kinds_by_tenant: dict[str, set[MirrorKind]] = {}
        for event in events or []:
            if not isinstance(event, dict):
                continue
            tenant = event.get("tenantId")
            kinds = KINDS_BY_CATEGORY.get(str(event.get("eventCategory") or "").upper())
            if not tenant or kinds is None:
                continue
            kinds_by_tenant.setdefault(str(tenant), set()).update(kinds)
        return [
            PlatformNotice(company_id=tenant, kinds=frozenset(kinds))
            for tenant, kinds in kinds_by_tenant.items()
        ]


WEBHOOKS = XeroWebhooks()
