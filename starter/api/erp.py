"""/v1/connections/{id}/<kind>: the customer's books from the mirror, its sync and sync history.

Listings (vendors, accounts, tracking-categories, items, customers, subsidiaries, tax-rates,
currencies, bills, bill-payments, vendor-credits, attachments) are served from the store, never
the platform, each answer saying when that kind was last synced. `POST .../sync` starts an
on-demand sync (a Temporal workflow) and answers with the job to follow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError

from accounting.model import AccountType, BillStatus
from connectors import decimal_json
from connectors.mirror import MirrorKind
from runtime.settings import Settings
from starter.api.auth import Principal, authenticated, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.errors import ApiError, bad_cursor, rpc_error
from starter.erp_client import HAS_ACTIVE, BooksReader, ListFilters, filters_for
from starter.sync import start_sync, sync_status
from store import ConnectionRow, InvalidCursor
from store.db import MAX_PAGE_SIZE
from workflows.sync_models import sync_workflow_id

PREFIX = "/v1/connections"
ACTIVE_STATUSES = ("active", "inactive")


class ExactJSONResponse(Response):
    """JSON with Decimal written digit for digit (FastAPI's encoder would make it a float)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return decimal_json.dumps(content).encode()


# ---------------------------------------------------------------------------------------------
# query models: one per shape of listing, so an unknown or inapplicable filter is a 422 that
# names what the listing takes (starter/api/security.py reads a query model's field names)
# ---------------------------------------------------------------------------------------------


class _Listing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page")
    updated_since: datetime | None = Field(
        default=None, description="changed in the platform after this time (ISO 8601)"
    )
    include_deleted: bool = Field(default=False, description="also objects the platform deleted")
    include: Literal["platform_data"] | None = Field(
        default=None, description="`platform_data`: add the platform's own fields"
    )

    def filters(self) -> ListFilters:
        def text(name: str) -> str | None:
            value = getattr(self, name, None)  # enums (BillStatus, AccountType) as their value
            return str(value) if value is not None else None

        return ListFilters(
            updated_since=self.updated_since,
            include_deleted=self.include_deleted,
            status=text("status"),
            vendor_id=text("vendor_id"),
            account_type=text("account_type"),
            bill_id=text("bill_id"),
        )


class _ActiveListing(_Listing):
    status: Literal["active", "inactive"] | None = None


class _AccountListing(_ActiveListing):
    account_type: AccountType | None = None


class _BillListing(_Listing):
    status: BillStatus | None = None
    vendor_id: str | None = Field(default=None, max_length=255)


class _VendorLinkedListing(_Listing):
    vendor_id: str | None = Field(default=None, max_length=255)


class _AttachmentListing(_Listing):
    bill_id: str | None = Field(default=None, max_length=255)


def _query_model(kind: MirrorKind) -> type[_Listing]:
    if kind == MirrorKind.accounts:
        return _AccountListing
    if kind == MirrorKind.bills:
        return _BillListing
    if kind in (MirrorKind.bill_payments, MirrorKind.vendor_credits):
        return _VendorLinkedListing
    if kind == MirrorKind.attachments:
        return _AttachmentListing
    if kind in HAS_ACTIVE:
        return _ActiveListing
    return _Listing


class _One(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: Literal["platform_data"] | None = None


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full: bool = Field(
        default=False,
        description="a full pass (every object; deletions inferred) instead of "
        "the changes since the last sync",
    )


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


async def visible_connection(
    context: ApiContext, principal: Principal, connection_id: str
) -> ConnectionRow:
    """The connection, or 404 alike for one that does not exist and one the key may not see."""
    row = await asyncio.to_thread(context.store.get_connection, connection_id)
    if row is None or not principal.sees(row.id):
        raise ApiError(404, "not_found", f"no connection {connection_id!r}", param="connection_id")
    return row


def job_connection(job_id: str) -> str | None:
    """The connection a sync job's id names (`sync/<connection>`), None for any other id."""
    connection_id = job_id.partition("/")[2]
    return connection_id if connection_id and sync_workflow_id(connection_id) == job_id else None


def _reader(context: ApiContext) -> BooksReader:
    return BooksReader.of(context.store)


def _job(connection_id: str, workflow_id: str, run_id: str | None, started: bool) -> dict[str, Any]:
    base = f"{PREFIX}/{connection_id}"
    return {
        "id": workflow_id,
        "object": "sync_job",
        "connection_id": connection_id,
        "run_id": run_id,
        "started": started,
        "status": "running",
        "links": {
            "self": f"/v1/sync-jobs/{workflow_id}",
            "runs": f"{base}/sync-runs",
        },
    }


def _listing_endpoint(
    kind: MirrorKind,
) -> Callable[..., Awaitable[ExactJSONResponse]]:
    model = _query_model(kind)

    async def list_kind(
        connection_id: str,
        query: Annotated[_Listing, Query()],
        principal: Annotated[Principal, Depends(authenticated)],
        context: Annotated[ApiContext, Depends(api_context)],
    ) -> ExactJSONResponse:
        await visible_connection(context, principal, connection_id)
        try:
            page = await asyncio.to_thread(
                _reader(context).page,
                connection_id,
                kind,
                query.filters(),
                limit=query.limit,
                cursor=query.cursor,
                platform_data=query.include == "platform_data",
            )
        except InvalidCursor:
            raise bad_cursor(kind.value) from None
        return ExactJSONResponse(page)

    list_kind.__name__ = f"list_{kind.name}"
    # The kind's own query model (FastAPI reads the annotation; the shared one is its base).
    list_kind.__annotations__["query"] = Annotated[model, Query()]
    return list_kind


def _one_endpoint(kind: MirrorKind) -> Callable[..., Awaitable[ExactJSONResponse]]:
    async def get_one(
        connection_id: str,
        platform_id: str,
        query: Annotated[_One, Query()],
        principal: Annotated[Principal, Depends(authenticated)],
        context: Annotated[ApiContext, Depends(api_context)],
    ) -> ExactJSONResponse:
        await visible_connection(context, principal, connection_id)
        found = await asyncio.to_thread(
            _reader(context).one,
            connection_id,
            kind,
            platform_id,
            platform_data=query.include == "platform_data",
        )
        if found is None:
            raise ApiError(
                404,
                "not_found",
                f"no {kind.value} {platform_id!r} in {connection_id}'s mirror (synced: see "
                f"{PREFIX}/{connection_id}/sync-runs)",
                param="platform_id",
            )
        return ExactJSONResponse(found)

    get_one.__name__ = f"get_{kind.name}"
    return get_one


def erp_router(settings: Settings | None = None) -> APIRouter:
    """The read routes, the sync routes and the sync history; `settings` are what
    starter.sync starts sync workflows with (default: from the environment)."""
    router = APIRouter(tags=["books"])
    chosen = settings

    def settings_of() -> Settings:
        nonlocal chosen
        if chosen is None:
            chosen = Settings()
        return chosen

    @router.get(
        f"{PREFIX}/{{connection_id}}/sync-runs",
        summary="A connection's sync history, newest first",
        response_class=ExactJSONResponse,
    )
    async def list_sync_runs(
        connection_id: str,
        principal: Annotated[Principal, Depends(authenticated)],
        context: Annotated[ApiContext, Depends(api_context)],
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> ExactJSONResponse:
        await visible_connection(context, principal, connection_id)
        reader = _reader(context)
        runs = await asyncio.to_thread(reader.runs, connection_id, limit=limit)
        summary = await asyncio.to_thread(reader.summary, connection_id, runs=0)
        return ExactJSONResponse(
            {
                "object": "list",
                "data": runs,
                "counts": summary["counts"],
                "last_synced_at": summary["last_synced_at"],
                "kinds_last_synced_at": summary["kinds_last_synced_at"],
            }
        )

    @router.get(
        f"{PREFIX}/{{connection_id}}/sync-runs/{{run_id}}",
        summary="One sync run: when, what changed per kind, errors",
        response_class=ExactJSONResponse,
    )
    async def get_sync_run(
        connection_id: str,
        run_id: str,
        principal: Annotated[Principal, Depends(authenticated)],
        context: Annotated[ApiContext, Depends(api_context)],
    ) -> ExactJSONResponse:
        await visible_connection(context, principal, connection_id)
        run = await asyncio.to_thread(_reader(context).run, run_id)
        if run is None or run["connection_id"] != connection_id:
            raise ApiError(404, "not_found", f"no sync run {run_id!r}", param="run_id")
        return ExactJSONResponse(run)

    @router.post(
        f"{PREFIX}/{{connection_id}}/sync",
        status_code=202,
        summary="Start a sync now (incremental; `full` for a full pass); answers the job",
        response_class=ExactJSONResponse,
    )
    async def start_sync_now(
        connection_id: str,
        principal: Annotated[Principal, Depends(require_scope("submit"))],
        context: Annotated[ApiContext, Depends(api_context)],
        body: SyncRequest | None = None,
    ) -> ExactJSONResponse:
        await visible_connection(context, principal, connection_id)
        try:
            job = await start_sync(
                context.remit.temporal,
                settings_of(),
                connection_id,
                trigger="manual",
                full=body.full if body is not None else False,
            )
        except RPCError as exc:
            raise rpc_error(exc, "workflow engine") from None
        return ExactJSONResponse(
            _job(connection_id, job.workflow_id, job.run_id, job.started), status_code=202
        )

    @router.get(
        "/v1/sync-jobs/{job_id:path}",
        summary="A sync job: running or done, what changed so far",
        response_class=ExactJSONResponse,
    )
    async def get_sync_job(
        job_id: str,
        principal: Annotated[Principal, Depends(authenticated)],
        context: Annotated[ApiContext, Depends(api_context)],
    ) -> ExactJSONResponse:
        connection_id = job_connection(job_id)
        if connection_id is None or not principal.sees(connection_id):
            raise ApiError(404, "not_found", f"no sync job {job_id!r}", param="job_id")
        try:
            status = await sync_status(context.remit.temporal, settings_of(), job_id)
        except RPCError as exc:
            raise rpc_error(exc, f"sync job {job_id!r}") from None
        return ExactJSONResponse(
            {"id": job_id, "object": "sync_job", "connection_id": connection_id, **status}
        )

    for kind in MirrorKind:
        takes = ", ".join(filters_for(kind))
        router.add_api_route(
            f"{PREFIX}/{{connection_id}}/{kind.value}",
            _listing_endpoint(kind),
            methods=["GET"],
            summary=f"List {kind.value} from the mirror (filters: {takes}), a page at a time",
            response_class=ExactJSONResponse,
        )
        router.add_api_route(
            f"{PREFIX}/{{connection_id}}/{kind.value}/{{platform_id}}",
            _one_endpoint(kind),
            methods=["GET"],
            summary=f"One of {kind.value} from the mirror"
            + (" with its payments and attachments" if kind == MirrorKind.bills else ""),
            response_class=ExactJSONResponse,
        )
    return router


__all__ = ["ACTIVE_STATUSES", "ExactJSONResponse", "SyncRequest", "erp_router"]
