"""remit's own system of record: bill projection, audit log, connections, idempotency, documents."""

from store.db import (
    Claim,
    ClaimOutcome,
    InvalidCursor,
    RecordNotFound,
    Store,
    make_engine,
    migrate,
)
from store.documents import DocumentCorrupted, DocumentNotFound, DocumentStore
from store.models import AuditEventRow, BillRow, ConnectionRow, IdempotencyRow
from store.settings import StoreSettings

__all__ = [
    "AuditEventRow",
    "BillRow",
    "Claim",
    "ClaimOutcome",
    "ConnectionRow",
    "DocumentCorrupted",
    "DocumentNotFound",
    "DocumentStore",
    "IdempotencyRow",
    "InvalidCursor",
    "RecordNotFound",
    "Store",
    "StoreSettings",
    "make_engine",
    "migrate",
]
