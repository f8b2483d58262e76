"""Every HTTP surface of remit in one app: `create_app(settings)` for `remit api` (production),
`compose(parts)` for whoever already holds the parts (`remit up` composes exactly these)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import swagger_ui_bundle
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from accounting.payees import fingerprint_key
from activities.policy import load_directory, load_policy
from activities.webhooks import WebhookOutbox
from runtime.codec import EncryptionCodec
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.temporal import connect, payload_codec
from starter.api.audit import router as audit_router
from starter.api.auth import require_scope
from starter.api.bank import BANK_EVENTS_PATH, bank_events_router
from starter.api.bills import router as bills_router
from starter.api.codec import Authorize, codec_routers, ui_origins
from starter.api.codec_oidc import OidcVerifier
from starter.api.connections import router as connections_router
from starter.api.context import CONTEXT_ATTRIBUTE, ApiContext
from starter.api.credits import router as credits_router
from starter.api.drift import router as drift_router
from starter.api.erp import erp_router
from starter.api.erp_writes import router as erp_writes_router
from starter.api.errors import install_error_handlers
from starter.api.inbox import inbox_router
from starter.api.middleware import RemitApiMiddleware
from starter.api.payees import router as payees_router
from starter.api.platform_webhooks import platform_webhooks_router
from starter.api.ratelimit import RateLimits
from starter.api.requests import router as requests_router
from starter.api.runs import router as runs_router
from starter.api.security import Edge, refuse_unknown_query
from starter.api.webhooks import WebhookService, webhook_endpoints_router
from starter.client import RemitClient
from starter.payees import PayeeService
from store import ApiKeys, DocumentStore, PayeeStore, Store, WebhookStore
from workflows.approval import ApprovalPolicy, Directory

log = logging.getLogger("remit.api")


@dataclass
class ApiParts:
    """What the API works with; `parts_from` builds them from settings."""

    remit: RemitClient
    store: Store
    documents: DocumentStore
    box: SecretBox
    payees: PayeeService
    webhooks: WebhookService
    policy: ApprovalPolicy
    directory: Directory
    bank_webhook_secret: str
    inbox_session_secret: str
    namespace: str
    codec: EncryptionCodec | None = None
    codec_authorize: Authorize | None = None
    temporal_ui_url: str | None = None
    default_connection_id: str | None = None
    demo_users: bool = False
    inbox_admin_groups: tuple[str, ...] = ("operators",)
    max_line_items: int = 1000
    default_timezone: str = "UTC"
    codec_groups: tuple[str, ...] = ("operators",)
    codec_oidc: OidcVerifier | None = None
    settings: Settings | None = None
    """What the sync routes and platform webhooks start syncs with (default: the environment)."""


DOCS_ASSETS_PATH = "/docs/assets"
"""Swagger UI's files, from the swagger-ui-bundle package: the docs work offline."""


def base_app(settings: Settings | None = None) -> FastAPI:
    """The app with its error handling, middleware and docs, and nothing to serve yet.

    `settings` (default: from the environment) give the edge's allowed hosts, body limits and
    rate limits.
    """
    settings = settings or Settings()
    app = FastAPI(
        title="remit",
        version="0.1.0",
        description=(
            "Accounts payable as durable workflows. Authenticate with "
            "`Authorization: Bearer <API key>`; send `Idempotency-Key` on POSTs to retry "
            "them safely."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(refuse_unknown_query)],
    )
    install_error_handlers(app)
    app.add_middleware(
        RemitApiMiddleware,
        exempt_paths=frozenset({BANK_EVENTS_PATH}),
        edge=Edge.from_settings(settings),
        rate_limits=RateLimits.from_settings(settings),
    )
    app.mount(
        DOCS_ASSETS_PATH,
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="remit API",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
            # Swagger UI would otherwise fetch a validity badge from validator.swagger.io.
            swagger_ui_parameters={**swagger_ui_default_parameters, "validatorUrl": None},
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def mount(app: FastAPI, parts: ApiParts) -> FastAPI:
    """Every surface: /v1 (bills, connections, payees, credits, payment runs, webhook
    endpoints), the bank's signed events, the approval inbox, the codec endpoint."""
    setattr(
        app.state,
        CONTEXT_ATTRIBUTE,
        ApiContext(
            remit=parts.remit,
            store=parts.store,
            documents=parts.documents,
            api_keys=ApiKeys(parts.store.engine),
            secret_box=parts.box,
            default_connection_id=parts.default_connection_id,
            payees=parts.payees,
            max_line_items=parts.max_line_items,
            default_timezone=parts.default_timezone,
        ),
    )
    app.include_router(
        bank_events_router(
            parts.remit, bank_webhook_secret=parts.bank_webhook_secret, store=parts.store
        )
    )
    app.include_router(audit_router)  # before bills: its `{bill_id:path}` swallows the rest
    app.include_router(drift_router)  # the same
    app.include_router(requests_router)
    for router in (bills_router, connections_router, payees_router, credits_router, runs_router):
        app.include_router(router)
    sync_settings = parts.settings or Settings()
    app.include_router(erp_router(sync_settings))
    app.include_router(erp_writes_router)
    app.include_router(platform_webhooks_router(sync_settings))
    app.include_router(webhook_endpoints_router(parts.webhooks, require_scope("admin")))
    if parts.codec is not None:
        for router in codec_routers(
            parts.codec,
            store=parts.store,
            directory=parts.directory,
            session_secret=parts.inbox_session_secret,
            allowed_origins=ui_origins(parts.temporal_ui_url) if parts.temporal_ui_url else (),
            namespaces={parts.namespace},
            groups=parts.codec_groups,
            authorize=parts.codec_authorize,
            oidc=parts.codec_oidc,
        ):
            app.include_router(router)
    app.include_router(
        inbox_router(
            remit=parts.remit,
            store=parts.store,
            documents=parts.documents,
            directory=parts.directory,
            session_secret=parts.inbox_session_secret,
            demo_users=parts.demo_users,
            admin_groups=parts.inbox_admin_groups,
            payees=parts.payees,
            policy=parts.policy,
        )
    )
    return app


def compose(parts: ApiParts, settings: Settings | None = None) -> FastAPI:
    return mount(base_app(settings), parts)


def check_settings(settings: Settings) -> None:
    """Refuse (RuntimeError, naming what is missing) settings the API cannot serve with."""
    missing = [
        name
        for name, value in (
            ("REMIT_SECRET_KEY", settings.secret_key),
            ("REMIT_BANK_WEBHOOK_SECRET", settings.bank_webhook_secret),
            ("REMIT_INBOX_SESSION_SECRET", settings.inbox_session_secret),
        )
        if not value.get_secret_value()
    ]
    if missing:
        raise RuntimeError(f"remit api needs {', '.join(missing)} (see the README's Deploying)")
    for path in (settings.policy_file, settings.directory_file):
        if not path.is_file():
            raise RuntimeError(f"{path} does not exist (REMIT_POLICY_FILE, REMIT_DIRECTORY_FILE)")


def parts_from(settings: Settings, store: Store, remit: RemitClient) -> ApiParts:
    """The API's parts as the settings configure them (nothing from the sandbox)."""
    check_settings(settings)
    secret = settings.secret_key.get_secret_value()
    bank_secret = settings.bank_webhook_secret.get_secret_value()
    session_secret = settings.inbox_session_secret.get_secret_value()
    box = SecretBox(secret)
    policy = load_policy(settings.policy_file)
    directory = load_directory(settings.directory_file)
    hooks = WebhookStore(store)
    outbox = WebhookOutbox(hooks)
    payees = PayeeService(
        PayeeStore(store, box, fingerprint_key=fingerprint_key(secret)),
        store,
        policy,
        directory,
        remit=remit,
        webhooks=outbox,
    )
    return ApiParts(
        remit=remit,
        store=store,
        documents=DocumentStore(settings.documents_dir),
        box=box,
        payees=payees,
        webhooks=WebhookService(
            hooks, box, outbox, allow_private_targets=settings.webhook_allow_private_targets
        ),
        policy=policy,
        directory=directory,
        bank_webhook_secret=bank_secret,
        inbox_session_secret=session_secret,
        namespace=settings.temporal_namespace,
        codec=payload_codec(settings),
        temporal_ui_url=settings.temporal_ui_url,
        default_connection_id=settings.default_connection_id,
        demo_users=settings.inbox_demo_login,
        inbox_admin_groups=tuple(settings.inbox_admin_groups),
        max_line_items=settings.max_line_items,
        default_timezone=settings.default_timezone,
        codec_groups=tuple(g.strip() for g in settings.codec_groups.split(",") if g.strip()),
        codec_oidc=codec_oidc_verifier(settings),
        settings=settings,
    )


def codec_oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """The codec's OIDC verifier when REMIT_CODEC_OIDC_ISSUER is set (its audience required)."""
    if not settings.codec_oidc_issuer:
        return None
    if not settings.codec_oidc_audience:
        raise RuntimeError(
            "REMIT_CODEC_OIDC_ISSUER is set without REMIT_CODEC_OIDC_AUDIENCE: name the "
            "audience the Temporal UI's access tokens carry"
        )
    return OidcVerifier(
        issuer=settings.codec_oidc_issuer,
        audience=settings.codec_oidc_audience,
        jwks_url=settings.codec_oidc_jwks_url,
        user_claim=settings.codec_oidc_user_claim,
        groups_claim=settings.codec_oidc_groups_claim,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The production app: the store and Temporal are opened when the server starts (and the
    schema is expected migrated: `remit migrate`), and closed when it stops."""
    settings = settings or Settings()
    app = base_app(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store = await asyncio.to_thread(Store.open, settings.database_url, run_migrations=False)
        try:
            client = await connect(settings)
            mount(
                app,
                parts_from(settings, store, RemitClient(client, task_queue=settings.task_queue)),
            )
            log.info("API serving %s on %s", settings.temporal_namespace, settings.temporal_address)
            yield
        finally:
            store.close()

    app.router.lifespan_context = lifespan
    return app


def app_from_environment() -> FastAPI:
    """What `remit api` hands uvicorn (a factory, so each of its workers builds its own)."""
    logging.basicConfig(level=os.environ.get("REMIT_LOG_LEVEL", "WARNING").upper())
    return create_app(Settings())
