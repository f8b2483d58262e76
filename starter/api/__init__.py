"""remit's HTTP API (FastAPI): bills, decisions, connections, health and the bank's events.

Everything under /v1 authenticates with `Authorization: Bearer <API key>`; errors are typed
(`{"error": {type, message, param, request_id}}`); every POST honours `Idempotency-Key`.
`create_app(settings)` (starter/api/app.py) is the whole product as `remit api` serves it;
`assemble_app(...)` builds a part of it around given objects (tests, a bank-events-only app).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from runtime.secrets import SecretBox
from starter.api.app import ApiParts, base_app, compose, create_app, mount
from starter.api.audit import router as audit_router
from starter.api.auth import Principal, authenticated, require_scope
from starter.api.bank import BANK_EVENTS_PATH, PaymentSignaller, bank_events_router
from starter.api.bills import router as bills_router
from starter.api.connections import router as connections_router
from starter.api.context import CONTEXT_ATTRIBUTE, ApiContext, api_context
from starter.api.credits import router as credits_router
from starter.api.drift import router as drift_router
from starter.api.errors import ApiError
from starter.api.middleware import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    REQUEST_ID_HEADER,
)
from starter.api.payees import router as payees_router
from starter.api.requests import router as requests_router
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
    "ApiParts",
    "ApiError",
    "PaymentSignaller",
    "Principal",
    "api_context",
    "base_app",
    "compose",
    "mount",
    "assemble_app",
    "authenticated",
    "create_app",
    "require_scope",
]


def assemble_app(
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
    """An API app around given objects (`create_app(settings)` composes the whole product).

    `remit` is usually a RemitClient; with only it and the bank's secret the app serves
    /healthz and the bank's events. Give `store` and `documents` (and `remit` a RemitClient)
    for the /v1 resources; `secret_box` encrypts credentials of connections added through the
    API, and `default_connection_id` is where bills go when a submit names no connection.
    """
    app = base_app()
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
        app.include_router(audit_router)  # before bills: `{bill_id:path}` swallows it
        app.include_router(drift_router)  # the same
        app.include_router(requests_router)
        app.include_router(bills_router)
        app.include_router(connections_router)
        app.include_router(payees_router)
        app.include_router(credits_router)
        app.include_router(runs_router)
    for router in extra_routers:
        app.include_router(router)
    return app
