"""remit's HTTP API (FastAPI): bills, decisions, connections, health and the bank's events.

Everything under /v1 authenticates with `Authorization: Bearer <API key>`; errors are typed
(`{"error": {type, message, param, request_id}}`); every POST honours `Idempotency-Key`.
Other routers (e.g. webhook endpoints) plug in through `create_app(extra_routers=...)` and
guard their routes with `Depends(require_scope("admin"))` or `Depends(authenticated)`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from runtime.secrets import SecretBox
from starter.api.auth import Principal, authenticated, require_scope
from starter.api.bank import BANK_EVENTS_PATH, PaymentSignaller, bank_events_router
from starter.api.bills import router as bills_router
from starter.api.connections import router as connections_router
from starter.api.context import CONTEXT_ATTRIBUTE, ApiContext, api_context
from starter.api.credits import router as credits_router
from starter.api.errors import ApiError, install_error_handlers
from starter.api.middleware import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    REQUEST_ID_HEADER,
    RemitApiMiddleware,
)
from starter.api.payees import router as payees_router
from starter.api.runs import router as runs_router
from starter.client import RemitClient
from starter.payees import PayeeService
from store import ApiKeys, DocumentStore, Store

__all__ = [
    "BANK_EVENTS_PATH",
    "IDEMPOTENCY_HEADER",
    "REPLAYED_HEADER",
    "REQUEST_ID_HEADER",
    "ApiContext",
    "ApiError",
    "PaymentSignaller",
    "Principal",
    "api_context",
    "authenticated",
    "create_app",
    "require_scope",
]


def create_app(
    remit: PaymentSignaller,
    *,
    bank_webhook_secret: str,
    store: Store | None = None,
    documents: DocumentStore | None = None,
    secret_box: SecretBox | None = None,
    default_connection_id: str | None = None,
    payees: PayeeService | None = None,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API app.

    `remit` is usually a RemitClient; with only it and the bank's secret the app serves
    /healthz and the bank's events. Give `store` and `documents` (and `remit` a RemitClient)
    for the /v1 resources; `secret_box` encrypts credentials of connections added through the
    API, and `default_connection_id` is where bills go when a submit names no connection.
    """
    app = FastAPI(
        title="remit",
        version="0.1.0",
        description=(
            "Accounts payable as durable workflows. Authenticate with "
            "`Authorization: Bearer <API key>`; send `Idempotency-Key` on POSTs to retry "
            "them safely."
        ),
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(RemitApiMiddleware, exempt_paths=frozenset({BANK_EVENTS_PATH}))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(
        bank_events_router(remit, bank_webhook_secret=bank_webhook_secret, store=store)
    )

    if store is not None or documents is not None:
        if store is None or documents is None or not isinstance(remit, RemitClient):
            raise TypeError("the /v1 API needs a RemitClient, a store and a document store")
        setattr(
            app.state,
            CONTEXT_ATTRIBUTE,
            ApiContext(
                remit=remit,
                store=store,
                documents=documents,
                api_keys=ApiKeys(store.engine),
                secret_box=secret_box,
                default_connection_id=default_connection_id,
                payees=payees,
            ),
        )
        app.include_router(bills_router)
        app.include_router(connections_router)
        app.include_router(payees_router)
        app.include_router(credits_router)
        app.include_router(runs_router)
    for router in extra_routers:
        app.include_router(router)
    return app
