"""What the API's routes work with (Temporal client, store, documents, keys), per app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from runtime.secrets import SecretBox
from starter.api.errors import ApiError
from starter.client import RemitClient
from starter.payees import PayeeService
from store import ApiKeys, DocumentStore, Store

CONTEXT_ATTRIBUTE = "remit"


@dataclass
class ApiContext:
    remit: RemitClient
    store: Store
    documents: DocumentStore
    api_keys: ApiKeys
    secret_box: SecretBox | None = None
    default_connection_id: str | None = None
    payees: PayeeService | None = None
    max_line_items: int = 1000
    """Line items one bill may have (settings' max_line_items)."""
    default_timezone: str = "UTC"
    """The zone 'today' means when a connection's settings name none."""

    def payee_service(self) -> PayeeService:
        if self.payees is None:
            raise ApiError(503, "api_error", "this remit API runs without a payee master")
        return self.payees


def context_of_app(app: object) -> ApiContext | None:
    state = getattr(app, "state", None)
    return getattr(state, CONTEXT_ATTRIBUTE, None) if state is not None else None


def api_context(request: Request) -> ApiContext:
    """FastAPI dependency: the app's context, or 503 when the app was built without a store."""
    context = context_of_app(request.app)
    if context is None:
        raise ApiError(
            503,
            "api_error",
            "this remit API runs without a store; start it with `remit up` or pass store=",
        )
    return context
