"""/v1/connections: an operator lists, adds and checks ERP connections (never their secrets)."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.registry import available_platforms
from starter.api.auth import Principal, every_connection_required, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError
from starter.connections import ConnectionHealth
from store import ConnectionRow
from store.types import utcnow

router = APIRouter(prefix="/v1/connections", tags=["connections"])

_CONNECTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Connection(BaseModel):
    """A connection as the API shows it: configuration and health, no credentials."""

    id: str
    platform: str
    company_id: str
    display_name: str
    base_url: str | None
    status: str
    settings: dict[str, Any]
    has_credentials: bool
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    rate_limited_until: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ConnectionRow) -> Connection:
        return cls(
            id=row.id,
            platform=row.platform,
            company_id=row.company_id,
            display_name=row.display_name,
            base_url=row.base_url,
            status=row.status,
            settings=dict(row.settings),
            has_credentials=row.credentials_encrypted is not None,
            last_success_at=row.last_success_at,
            last_error_at=row.last_error_at,
            last_error=row.last_error,
            rate_limited_until=row.rate_limited_until,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ConnectionList(BaseModel):
    data: list[Connection]


class NewConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="default: generated")
    platform: str
    company_id: str = Field(min_length=1, max_length=255)
    display_name: str | None = Field(default=None, max_length=500)
    base_url: str = Field(min_length=1, max_length=2000)
    credentials: dict[str, str] = Field(
        default_factory=dict, description="stored encrypted; never returned"
    )
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _CONNECTION_ID.fullmatch(value):
            raise ValueError(
                "use 1-100 letters, digits, '.', '_' or '-', starting with one of the first two"
            )
        return value

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str) -> str:
        if value not in available_platforms():
            raise ValueError(f"unknown platform; one of {', '.join(available_platforms())}")
        return value

    @field_validator("settings")
    @classmethod
    def _known_time_zone(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The zone 'today' means for this connection's bills (pay_on=today).
        zone = value.get("timezone")
        if zone is not None:
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"timezone {zone!r} is no IANA time zone (e.g. America/New_York)"
                ) from None
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


async def _row(context: ApiContext, principal: Principal, connection_id: str) -> ConnectionRow:
    row = await asyncio.to_thread(context.store.get_connection, connection_id)
    if row is None or not principal.sees(row.id):  # another key's connection: not revealed
        raise ApiError(404, "not_found", f"no connection {connection_id!r}", param="id")
    return row


@router.get("", response_model=ConnectionList, summary="List connections")
async def list_connections(
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> ConnectionList:
    rows = await asyncio.to_thread(context.store.list_connections)
    return ConnectionList(data=[Connection.of(row) for row in rows if principal.sees(row.id)])


@router.post("", status_code=201, response_model=Connection, summary="Add a connection")
async def create_connection(
    body: NewConnection,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> JSONResponse:
    every_connection_required(principal, "adding a connection")
    if context.secret_box is None:
        raise ApiError(503, "api_error", "no secret key configured to encrypt credentials with")
    connection_id = body.id or f"{body.platform}-{secrets.token_hex(4)}"
    if await asyncio.to_thread(context.store.get_connection, connection_id) is not None:
        raise ApiError(409, "conflict", f"connection {connection_id!r} exists", param="id")
    now = utcnow()
    row = ConnectionRow(
        id=connection_id,
        platform=body.platform,
        company_id=body.company_id,
        display_name=body.display_name or f"{body.company_id} ({body.platform})",
        base_url=body.base_url,
        status="active",
        credentials_encrypted=context.secret_box.seal(body.credentials)
        if body.credentials
        else None,
        settings=body.settings,
        created_at=now,
        updated_at=now,
    )
    stored = await asyncio.to_thread(context.store.upsert_connection, row)
    return JSONResponse(Connection.of(stored).model_dump(mode="json"), status_code=201)


@router.get("/{connection_id}", response_model=Connection, summary="One connection")
async def get_connection(
    connection_id: str,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> Connection:
    return Connection.of(await _row(context, principal, connection_id))


@router.get(
    "/{connection_id}/health", response_model=ConnectionHealth, summary="A connection's health"
)
async def connection_health(
    connection_id: str,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> ConnectionHealth:
    row = await _row(context, principal, connection_id)
    box = context.secret_box
    sealed = row.credentials_encrypted
    return ConnectionHealth.of(row, box.open(sealed) if box is not None and sealed else {})
