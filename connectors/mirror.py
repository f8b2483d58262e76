"""What a connector gives the books' mirror: pages of records per kind, change feeds, webhooks."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Rejected


class MirrorKind(StrEnum):
    """The kinds of object the mirror keeps, one listing each (the API's path segments)."""

    vendors = "vendors"
    accounts = "accounts"
    tracking_categories = "tracking-categories"
    items = "items"
    customers = "customers"
    subsidiaries = "subsidiaries"
    tax_rates = "tax-rates"
    currencies = "currencies"
    bills = "bills"
    bill_payments = "bill-payments"
    vendor_credits = "vendor-credits"
    attachments = "attachments"


UNIFIED_MODEL: dict[MirrorKind, str] = {
    MirrorKind.vendors: "Vendor",
    MirrorKind.accounts: "Account",
    MirrorKind.tracking_categories: "TrackingCategory",
    MirrorKind.items: "Item",
    MirrorKind.customers: "Customer",
    MirrorKind.subsidiaries: "Subsidiary",
    MirrorKind.tax_rates: "TaxRate",
    MirrorKind.currencies: "Currency",
    MirrorKind.bills: "Bill",
    MirrorKind.bill_payments: "BillPayment",
    MirrorKind.vendor_credits: "BillCreditMemo",
    MirrorKind.attachments: "Attachment",
}
"""The accounting model (by name in `accounting`) whose JSON a record's `data` holds."""


class MirrorRecord(BaseModel):
    """One object as the platform holds it now, or the news that it is gone.

    `data` is the unified model's JSON (`model.model_dump(mode="json")`, the model named by
    UNIFIED_MODEL; for a deleted object it may be `{}`); `platform_data` is the platform's own
    object as it answered (for passthrough), secrets and bank numbers left out.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MirrorKind
    platform_id: str
    data: dict[str, Any] = Field(default_factory=dict)
    platform_data: dict[str, Any] = Field(default_factory=dict)
    platform_updated_at: datetime | None = None
    deleted: bool = Field(
        default=False, description="deleted in the platform (a void stays a record: status void)"
    )


class SyncPage(BaseModel):
    """One page of a kind's listing (full) or of its changes since a watermark (incremental).

    `next_cursor` continues this pass (None: the pass is done). `watermark` is where the next
    incremental pass starts: a connector sets it on the first page of a pass from the
    platform's own clock taken before reading (so nothing committed during the pass is lost;
    seeing an object twice is harmless) and repeats it on later pages; the sync keeps the one
    from the first page and stores it only when the pass is done.
    """

    model_config = ConfigDict(extra="forbid")

    kind: MirrorKind
    records: list[MirrorRecord]
    next_cursor: str | None = None
    watermark: str | None = None


@runtime_checkable
class MirrorSource(Protocol):
    """A connector that can fill the mirror (every ERP connector)."""

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        """The kinds this platform has (NetSuite has subsidiaries; the others do not)."""
        ...

    async def read_mirror_page(
        self,
        kind: MirrorKind,
        *,
        since: str | None,
        cursor: str | None,
        page_size: int,
    ) -> SyncPage:
        """One page. `since` None: every live object of the kind (a full pass; deletions are
        inferred by the sync from what a full pass did not see). `since` a watermark: what
        changed after it, deletions included (QBO CDC, Xero If-Modified-Since, NetSuite
        lastModifiedDate plus its deleted-record list). `cursor` None starts the pass.

        Raises only connectors.base errors; Rejected for a watermark or cursor it did not give.
        """
        ...


# ---------------------------------------------------------------------------------------------
# Inbound platform webhooks (QuickBooks, Xero; NetSuite has none and is polled)
# ---------------------------------------------------------------------------------------------


class WebhookRefused(Exception):
    """A platform webhook whose signature does not verify (answer 401, act on nothing)."""


@dataclass(frozen=True)
class PlatformNotice:
    """What a verified platform webhook says changed: which company, which kinds."""

    company_id: str
    kinds: frozenset[MirrorKind]


class PlatformWebhooks(Protocol):
    """`WEBHOOKS` in connectors/<platform>/webhooks.py, for platforms that send them."""

    signature_header: str

    def verify(self, headers: Mapping[str, str], body: bytes, key: str) -> list[PlatformNotice]:
        """Check the signature over the raw body with the app's webhook key (QBO's verifier
        token, Xero's webhook key) and list what changed. Raises WebhookRefused when the
        signature is missing or wrong. A verified body with no events (Xero's intent to
        receive) returns []: answer 200 and do nothing."""
        ...


# ---------------------------------------------------------------------------------------------
# What every platform's mirror source shares: its cursor's wire form, passthrough without secrets
# ---------------------------------------------------------------------------------------------


def scrub(value: Any, secret_keys: frozenset[str]) -> Any:
    """The platform's object without the fields named in `secret_keys` (bank numbers, signed
    links), at any depth: platform_data is stored and served."""
    if isinstance(value, dict):
        return {k: scrub(v, secret_keys) for k, v in value.items() if k not in secret_keys}
    if isinstance(value, list):
        return [scrub(v, secret_keys) for v in value]
    return value


def encode_page_cursor(prefix: str, state: dict[str, Any]) -> str:
    """`prefix` + base64url JSON of a pass's state: nothing secret in it, and it survives
    storage and URLs."""
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_cursor(prefix: str, cursor: str, *, platform: str, label: str) -> Any:
    """The JSON a cursor of `encode_page_cursor(prefix, ...)` holds (the caller checks its
    shape); Rejected, naming `label` ("a Xero mirror cursor"), for any other string."""
    if not cursor.startswith(prefix):
        raise Rejected(f"not {label}: {cursor[:40]!r}", platform=platform)
    body = cursor[len(prefix) :]
    try:
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise Rejected(f"{label} that does not decode", platform=platform) from exc
