"""remit's own system of record: bill projection, audit log, connections, idempotency, documents."""

from store.api_keys import SCOPES, ApiKeyRow, ApiKeys, IssuedKey
from store.credits import (
    CreditApplicationRow,
    CreditStore,
    CreditUnavailable,
    Reservation,
    VendorCreditRow,
)
from store.db import (
    Claim,
    ClaimOutcome,
    InvalidCursor,
    RecordNotFound,
    SchemaNotCurrent,
    Store,
    make_engine,
    migrate,
    require_current_schema,
    schema_revisions,
)
from store.documents import DocumentCorrupted, DocumentNotFound, DocumentStore
from store.drift import DriftFindingRow, DriftStore
from store.inbox_sessions import InboxLinkUseRow, InboxSessionRow, InboxSessions
from store.mirror import (
    ApplyResult,
    MirrorKindRow,
    MirrorListing,
    MirrorRow,
    MirrorStore,
    SyncRunRow,
)
from store.models import AuditEventRow, BillRow, ConnectionRow, IdempotencyRow
from store.payees import (
    Decision,
    PayeeChangeRefused,
    PayeeChangeRow,
    PayeeRow,
    PayeeStore,
    Proposal,
    SameAsVerified,
)
from store.request_log import RequestLogRow, RequestLogStore
from store.runs import PaymentRunRow, RunStore
from store.settings import StoreSettings
from store.webhooks import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookEventRow,
    WebhookStore,
)

__all__ = [
    "DriftFindingRow",
    "DriftStore",
    "RequestLogRow",
    "RequestLogStore",
    "ApplyResult",
    "MirrorKindRow",
    "MirrorListing",
    "MirrorRow",
    "MirrorStore",
    "SyncRunRow",
    "SCOPES",
    "ApiKeyRow",
    "ApiKeys",
    "AuditEventRow",
    "BillRow",
    "Claim",
    "ClaimOutcome",
    "ConnectionRow",
    "CreditApplicationRow",
    "CreditStore",
    "CreditUnavailable",
    "Reservation",
    "VendorCreditRow",
    "DocumentCorrupted",
    "DocumentNotFound",
    "DocumentStore",
    "IdempotencyRow",
    "InboxLinkUseRow",
    "InboxSessionRow",
    "InboxSessions",
    "InvalidCursor",
    "SchemaNotCurrent",
    "require_current_schema",
    "schema_revisions",
    "Decision",
    "PayeeChangeRefused",
    "PayeeChangeRow",
    "PayeeRow",
    "PayeeStore",
    "Proposal",
    "SameAsVerified",
    "IssuedKey",
    "PaymentRunRow",
    "RecordNotFound",
    "RunStore",
    "Store",
    "StoreSettings",
    "WebhookAttemptRow",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
    "WebhookEventRow",
    "WebhookStore",
    "make_engine",
    "migrate",
]
