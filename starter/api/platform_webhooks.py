"""The platforms' own webhooks (QuickBooks, Xero): verified over the raw body, then a sync.

`POST /v1/platforms/{platform}/webhooks`. The platform's connector says how it signs
(connectors/<platform>/webhooks.py, `connectors.registry.webhooks`); the key is configuration
(settings.platform_webhook_keys, by platform name). A verified notice starts an incremental sync
of every connection to the company it names; the answer is 200 at once (Xero wants one within
5 s, and a 200 to its intent-to-receive), and 401 for a signature that does not verify.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from temporalio.service import RPCError

from connectors.mirror import PlatformNotice, PlatformWebhooks, WebhookRefused
from connectors.registry import webhooks
from runtime.settings import Settings
from starter.api.context import context_of_app
from starter.api.errors import ErrorType, error_body, request_id_of
from starter.sync import start_sync
from store import Store

log = logging.getLogger("remit.api")

PLATFORM_WEBHOOKS_PATH = "/v1/platforms/{platform}/webhooks"

StartSync = Callable[[str], Awaitable[Any]]
"""Starts an incremental sync of one connection (trigger "webhook"); given by the app."""


def _problem(request: Request, status: int, type: ErrorType, message: str) -> JSONResponse:
    return JSONResponse(
        error_body(type, message, request_id=request_id_of(request)), status_code=status
    )


def connections_for(store: Store, platform: str, notices: list[PlatformNotice]) -> list[str]:
    """The active connections of `platform` to the companies the notices name."""
    companies = {notice.company_id for notice in notices}
    return sorted(
        row.id
        for row in store.list_connections(platform=platform)
        if row.company_id in companies and row.status == "active"
    )


def platform_webhooks_router(
    settings: Settings,
    *,
    keys: Mapping[str, SecretStr] | None = None,
    start_sync: StartSync | None = None,
    signers: Callable[[str], PlatformWebhooks | None] = webhooks,
) -> APIRouter:
    """The endpoint; `keys` by platform name (default: settings.platform_webhook_keys),
    `start_sync(connection_id)` what a verified notice sets going (default: starter.sync's
    start_sync with `settings` on the app's Temporal client), `signers(platform)` how a
    platform signs (default: its connector's, connectors.registry.webhooks)."""
    keys = settings.platform_webhook_keys if keys is None else keys
    router = APIRouter(tags=["platforms"])

    @router.post(PLATFORM_WEBHOOKS_PATH, summary="A platform's signed change notice")
    async def platform_webhook(platform: str, request: Request) -> JSONResponse:
        try:
            signing = signers(platform)
        except KeyError:
            signing = None
        if signing is None:
            return _problem(request, 404, "not_found", f"{platform!r} sends no webhooks here")
        key = keys.get(platform)
        if key is None or not key.get_secret_value():
            log.warning(
                "a %s webhook arrived, but no key is configured for it "
                "(REMIT_PLATFORM_WEBHOOK_KEYS): refused with 404",
                platform,
            )
            return _problem(
                request, 404, "not_found", f"webhooks from {platform} are not configured here"
            )
        # The signature covers the exact bytes (read within the app's body limit).
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            notices = signing.verify(headers, body, key.get_secret_value())
        except WebhookRefused as exc:
            log.warning("%s webhook refused: %s", platform, exc)
            return _problem(request, 401, "authentication_error", f"signature refused: {exc}")
        context = context_of_app(request.app)
        if not notices or context is None:
            return JSONResponse({"accepted": True, "syncs": []})
        connection_ids = await asyncio.to_thread(connections_for, context.store, platform, notices)
        started: list[str] = []
        starter = start_sync or _default_start(request, settings)
        try:
            for connection_id in connection_ids:
                await starter(connection_id)
                started.append(connection_id)
        except RPCError as exc:
            log.warning("%s webhook: could not start a sync: %s", platform, exc.message)
            # The platform sends again on a non-2xx answer: the change is not lost.
            return _problem(
                request,
                503,
                "workflow_unavailable",
                "could not reach the workflow engine; send again later",
            )
        return JSONResponse({"accepted": True, "syncs": started})

    return router


def _default_start(request: Request, settings: Settings) -> StartSync:
    context = context_of_app(request.app)
    assert context is not None

    async def start(connection_id: str) -> Any:
        return await start_sync(context.remit.temporal, settings, connection_id, trigger="webhook")

    return start
