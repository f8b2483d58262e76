"""The `/v1/webhook-endpoints` API: register receivers, read their delivery log, replay events."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.webhooks import EndpointDisabled, WebhookOutbox, seal_secret
from runtime.secrets import SecretBox
from runtime.webhook_targets import Resolver, TargetRefused, check_target, system_resolver
from starter.api.auth import Principal, every_connection_required
from store import RecordNotFound
from store.types import utcnow
from store.webhooks import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebhookStore,
)
from workflows.webhooks import EVENT_TYPES, WebhookEventType

SECRET_PREFIX = "whsec_"
ENDPOINT_ID_PREFIX = "we_"
MAX_DELIVERIES_PAGE = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookEndpointCreate(_Body):
    url: str = Field(max_length=2000, description="where remit POSTs events (http or https)")
    event_types: list[WebhookEventType] = Field(
        default_factory=lambda: [WebhookEventType(t) for t in EVENT_TYPES],
        min_length=1,
        description="the events to send; all of them when left out",
    )
    description: str | None = Field(default=None, max_length=500)

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        if url.userinfo:
            # It would be stored and listed in clear; receivers authenticate by the signature.
            raise ValueError("must not carry a user name or password; verify the signature")
        return value

    @field_validator("event_types")
    @classmethod
    def _no_repeats(cls, value: list[WebhookEventType]) -> list[WebhookEventType]:
        return list(dict.fromkeys(value))


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    status: str
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpointRow) -> WebhookEndpointOut:
        return cls(
            id=row.id,
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            status=row.status,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="the signing secret; shown this once, store it now")


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointOut]


class AttemptOut(BaseModel):
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime

    @classmethod
    def of(cls, row: WebhookAttemptRow) -> AttemptOut:
        return cls(
            attempt=row.attempt,
            status_code=row.status_code,
            error=row.error,
            duration_ms=row.duration_ms,
            at=row.at,
        )


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    replay_of: str | None
    created_at: datetime
    completed_at: datetime | None
    next_attempt_at: datetime | None = Field(
        default=None, description="when a pending delivery's next attempt goes"
    )
    attempt_log: list[AttemptOut] = Field(default_factory=list)

    @classmethod
    def of(
        cls, row: WebhookDeliveryRow, attempts: list[WebhookAttemptRow] | None = None
    ) -> DeliveryOut:
        return cls(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            event_type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            replay_of=row.replay_of,
            created_at=row.created_at,
            completed_at=row.completed_at,
            next_attempt_at=row.next_attempt_at,
            attempt_log=[AttemptOut.of(a) for a in attempts or []],
        )


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


class ReplayDelivery(_Body):
    delivery_id: str = Field(min_length=1, description="a delivery of this endpoint")


class ReplaySince(_Body):
    since: datetime = Field(description="replay events created at or after this time (with zone)")

    @field_validator("since")
    @classmethod
    def _with_zone(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("needs a time zone, e.g. 2026-11-21T09:00:00Z")
        return value


class WebhookService:
    """Endpoint management over the store; secrets are sealed before they are stored."""

    def __init__(
        self,
        store: WebhookStore,
        box: SecretBox,
        outbox: WebhookOutbox,
        *,
        allow_private_targets: bool = False,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.store = store
        self._box = box
        self.outbox = outbox
        self.allow_private_targets = allow_private_targets
        self._resolve = resolve

    async def check_url(self, url: str) -> None:
        """422 unless `url` may receive webhooks (public addresses, unless allowed otherwise)."""
        try:
            await check_target(url, allow_private=self.allow_private_targets, resolve=self._resolve)
        except TargetRefused as refused:
            raise HTTPException(422, f"url: {refused}") from None

    def create(self, spec: WebhookEndpointCreate) -> tuple[WebhookEndpointRow, str]:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        row = self.store.create_endpoint(
            WebhookEndpointRow(
                id=ENDPOINT_ID_PREFIX + secrets.token_hex(12),
                url=spec.url,
                description=spec.description,
                event_types=[t.value for t in spec.event_types],
                secret_encrypted=seal_secret(self._box, secret),
                created_at=now,
                updated_at=now,
            )
        )
        return row, secret

    def endpoint(self, endpoint_id: str) -> WebhookEndpointRow:
        row = self.store.get_endpoint(endpoint_id)
        if row is None:
            raise HTTPException(404, f"no webhook endpoint {endpoint_id!r}")
        return row


def webhook_endpoints_router(
    service: WebhookService, require_admin: Callable[..., Any]
) -> APIRouter:
    """The routes, every one behind `require_admin` (the API's own auth dependency) with a key
    for every connection: an endpoint receives the events of all of them."""

    async def every_connection(principal: Any = Depends(require_admin)) -> None:
        if isinstance(principal, Principal):
            every_connection_required(principal, "managing webhook endpoints")

    router = APIRouter(
        prefix="/v1/webhook-endpoints",
        tags=["webhooks"],
        dependencies=[Depends(every_connection)],
    )

    async def endpoint_or_404(endpoint_id: str) -> WebhookEndpointRow:
        return await asyncio.to_thread(service.endpoint, endpoint_id)

    @router.post("", status_code=201, response_model=WebhookEndpointCreated)
    async def create_endpoint(spec: WebhookEndpointCreate) -> WebhookEndpointCreated:
        await service.check_url(spec.url)
        row, secret = await asyncio.to_thread(service.create, spec)
        return WebhookEndpointCreated(**WebhookEndpointOut.of(row).model_dump(), secret=secret)

    @router.get("", response_model=WebhookEndpointList)
    async def list_endpoints() -> WebhookEndpointList:
        rows = await asyncio.to_thread(service.store.list_endpoints)
        return WebhookEndpointList(data=[WebhookEndpointOut.of(row) for row in rows])

    @router.get("/{endpoint_id}", response_model=WebhookEndpointOut)
    async def get_endpoint(endpoint_id: str) -> WebhookEndpointOut:
        return WebhookEndpointOut.of(await endpoint_or_404(endpoint_id))

    @router.delete("/{endpoint_id}", status_code=204)
    async def delete_endpoint(endpoint_id: str) -> Response:
        if not await asyncio.to_thread(service.store.delete_endpoint, endpoint_id):
            raise HTTPException(404, f"no webhook endpoint {endpoint_id!r}")
        return Response(status_code=204)

    async def set_status(endpoint_id: str, status: str, reason: str | None) -> WebhookEndpointOut:
        try:
            row = await asyncio.to_thread(
                service.store.set_endpoint_status, endpoint_id, status=status, reason=reason
            )
        except RecordNotFound as exc:
            raise HTTPException(404, f"no webhook endpoint {endpoint_id!r}") from exc
        return WebhookEndpointOut.of(row)

    @router.post("/{endpoint_id}/disable", response_model=WebhookEndpointOut)
    async def disable_endpoint(endpoint_id: str) -> WebhookEndpointOut:
        return await set_status(endpoint_id, "disabled", "disabled through the API")

    @router.post("/{endpoint_id}/enable", response_model=WebhookEndpointOut)
    async def enable_endpoint(endpoint_id: str) -> WebhookEndpointOut:
        return await set_status(endpoint_id, "enabled", None)

    @router.get("/{endpoint_id}/deliveries", response_model=DeliveryList)
    async def list_deliveries(
        endpoint_id: str, limit: int = Query(50, ge=1, le=MAX_DELIVERIES_PAGE)
    ) -> DeliveryList:
        await endpoint_or_404(endpoint_id)

        def load() -> list[DeliveryOut]:
            rows = service.store.deliveries_for_endpoint(endpoint_id, limit=limit)
            return [DeliveryOut.of(row, service.store.attempts_for(row.id)) for row in rows]

        return DeliveryList(data=await asyncio.to_thread(load))

    @router.post("/{endpoint_id}/deliveries/replay", status_code=202, response_model=DeliveryOut)
    async def replay_delivery(endpoint_id: str, body: ReplayDelivery) -> DeliveryOut:
        await endpoint_or_404(endpoint_id)
        original = await asyncio.to_thread(service.store.get_delivery, body.delivery_id)
        if original is None or original.endpoint_id != endpoint_id:
            raise HTTPException(404, f"endpoint {endpoint_id} has no delivery {body.delivery_id!r}")
        try:
            row = await service.outbox.replay_delivery(original.id)
        except EndpointDisabled as exc:
            raise HTTPException(409, str(exc)) from exc
        except RecordNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return DeliveryOut.of(row)

    @router.post("/{endpoint_id}/replay", status_code=202, response_model=DeliveryList)
    async def replay_since(endpoint_id: str, body: ReplaySince) -> DeliveryList:
        await endpoint_or_404(endpoint_id)
        try:
            rows = await service.outbox.replay_since(endpoint_id, body.since)
        except EndpointDisabled as exc:
            raise HTTPException(409, str(exc)) from exc
        return DeliveryList(data=[DeliveryOut.of(row) for row in rows])

    return router
