"""QuickBooks Online's webhooks: intuit-signature verified over the raw body, entities as notices.

Intuit signs each notification with base64(HMAC-SHA256(raw body, the app's verifier token)) in
the intuit-signature header. Two body shapes are read: the long-standing
`{"eventNotifications": [{"realmId": ..., "dataChangeEvent": {"entities": [{"name": "Bill",
"id": ..., "operation": "Create|Update|Delete|Void|Merge|Emailed", "lastUpdated": ...}]}}]}`
and the CloudEvents array Intuit is moving apps to (`[{"specversion": "1.0", "type":
"qbo.bill.created.v1", "intuitaccountid": <realm>, "intuitentityid": <id>, ...}]`, one POST may
mix companies). Either way the result is one notice per company with the mirror kinds of the
entities named; entities the mirror does not keep are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from connectors.mirror import MirrorKind, PlatformNotice, WebhookRefused

SIGNATURE_HEADER = "intuit-signature"

KINDS_BY_ENTITY: dict[str, frozenset[MirrorKind]] = {
    # A payment's write changes the bills it pays (Balance, LinkedTxn) as well.
    "bill": frozenset({MirrorKind.bills}),
    "billpayment": frozenset({MirrorKind.bill_payments, MirrorKind.bills}),
    "vendorcredit": frozenset({MirrorKind.vendor_credits}),
    "vendor": frozenset({MirrorKind.vendors}),
    "customer": frozenset({MirrorKind.customers}),
    "account": frozenset({MirrorKind.accounts}),
    "class": frozenset({MirrorKind.tracking_categories}),
    "department": frozenset({MirrorKind.tracking_categories}),
    "item": frozenset({MirrorKind.items}),
    "taxcode": frozenset({MirrorKind.tax_rates}),
    "taxrate": frozenset({MirrorKind.tax_rates}),
    "currency": frozenset({MirrorKind.currencies}),
    "companycurrency": frozenset({MirrorKind.currencies}),
    "attachable": frozenset({MirrorKind.attachments}),
}


def sign(body: bytes, key: str) -> str:
    """The intuit-signature value Intuit sends for `body` under the app's verifier token."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _legacy(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(realm, entity name) of each entity in an eventNotifications body."""
    found: list[tuple[str, str]] = []
    for notification in payload.get("eventNotifications") or []:
        if not isinstance(notification, dict) or not notification.get("realmId"):
            continue
        event = notification.get("dataChangeEvent")
        entities = event.get("entities") if isinstance(event, dict) else None
        for entity in entities or []:
            if isinstance(entity, dict) and entity.get("name"):
                found.append((str(notification["realmId"]), str(entity["name"])))
    return found


def _cloud_events(events: list[Any]) -> list[tuple[str, str]]:
    """(realm, entity name) of each event in a CloudEvents array (type qbo.<entity>.<verb>.v1)."""
    found: list[tuple[str, str]] = []
    for event in events:
        if not isinstance(event, dict) or not event.get("intuitaccountid"):
            continue
        parts = str(event.get("type") or "").split(".")
        if len(parts) >= 3 and parts[0] == "qbo":
            found.append((str(event["intuitaccountid"]), parts[1]))
    return found


class QuickBooksWebhooks:
    """connectors.mirror.PlatformWebhooks for QuickBooks Online."""

    signature_header = SIGNATURE_HEADER

    def verify(self, headers: Mapping[str, str], body: bytes, key: str) -> list[PlatformNotice]:
        given = _header(headers, SIGNATURE_HEADER)
        if not given or not key:
            raise WebhookRefused("no intuit-signature (or no verifier token configured)")
        if not hmac.compare_digest(given.strip().encode(), sign(body, key).encode()):
            raise WebhookRefused("intuit-signature does not match the body")
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            # Signed with the verifier token yet not JSON cannot be Intuit's.
            raise WebhookRefused("a signed QuickBooks webhook body that is not JSON") from exc
        if isinstance(payload, list):
            named = _cloud_events(payload)
        elif isinstance(payload, dict):
            named = _legacy(payload)
        else:
            named = []
        kinds_by_realm: dict[str, set[MirrorKind]] = {}
        for realm, name in named:
            kinds = KINDS_BY_ENTITY.get(name.lower())
            if kinds is not None:
                kinds_by_realm.setdefault(realm, set()).update(kinds)
        return [
            PlatformNotice(company_id=realm, kinds=frozenset(kinds))
            for realm, kinds in kinds_by_realm.items()
        ]


WEBHOOKS = QuickBooksWebhooks()
