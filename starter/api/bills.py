"""/v1/bills: submit documents, read and list bills, decide, steer, download attachments."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.datastructures import FormData, UploadFile
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from accounting import Bill, BillStatus, PositiveAmount, Vendor, draft_of_erp_bill
from accounting.corrections import DraftCorrections, apply_corrections
from accounting.documents import BillDraft, DocumentRef, DocumentType
from accounting.formats import CapturedDocument, parse_document
from accounting.money import as_written
from accounting.scan.draft import CaptureRecord
from connectors.base import RailKind
from connectors.mirror import MirrorKind
from runtime.bills import bill_identity
from starter.api.auth import Principal, authenticated, connection_of, require_scope
from starter.api.context import ApiContext, api_context
from starter.api.corrective import with_link_reasons
from starter.api.errors import ApiError, bad_cursor, rpc_error
from starter.capture import keep_captured
from store import BillRow, ConnectionRow, DocumentNotFound, InvalidCursor
from store.db import MAX_PAGE_SIZE
from store.drift import DriftStore
from store.mirror import MirrorStore
from workflows.bill import BillWorkflow
from workflows.models import (
    FINAL_STATUSES,
    DecisionRecord,
    Installment,
    LifecycleStatus,
    PayeeStatus,
    PayeeView,
    bill_workflow_id,
)

router = APIRouter(prefix="/v1/bills", tags=["bills"])
log = logging.getLogger("remit.api")

TEMPORAL_TIMEOUT = timedelta(seconds=10)
_FILE_NAME = re.compile(r'filename="?([^";]+)"?')
_FILE_NAME_STAR = re.compile(r"filename\*\s*=\s*([^;]+)", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
TODAY = "today"
_SUBMIT_OPTIONS = ("connection_id", "key", "pay_on", "rail", "pay_amount")

_SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The document itself: a remit JSON bill (application/json, like "
            "shared/examples/bill.json) or UBL 2.1 invoice XML (application/xml) as the body "
            "(`Content-Disposition: attachment; filename=...` names it), "
            "or multipart/form-data with the document in `file` (options may then also be "
            "form fields). PDFs are refused. Or a bill already in the ERP: "
            '`{"erp_bill_id": "<the platform\'s id>"}` (options may be fields beside it); '
            "remit reads it from the connection's mirror, re-reads it in the ERP and pays it "
            "without posting it again."
        ),
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "connection_id": {"type": "string"},
                        "key": {"type": "string"},
                        "pay_on": {"type": "string", "description": "YYYY-MM-DD or 'today'"},
                        "pay_amount": {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
                        "rail": {"type": "string", "enum": [kind.value for kind in RailKind]},
                    },
                }
            },
        },
    }
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _today_word(value: Any) -> Any:
    # 'Today' or 'TODAY' as the CLI takes them.
    return TODAY if isinstance(value, str) and value.strip().lower() == TODAY else value


class BillAccepted(BaseModel):
    id: str = Field(description="the bill's workflow id, e.g. bill/demo-quickbooks/<key>")
    status: str
    created: bool = Field(description="false when this document (or key) was submitted before")
    object: Literal["bill", "credit"] = Field(
        default="bill",
        description="credit: the document was a credit note, taken as a vendor credit "
        "(follow it at /v1/credits/{id})",
    )


class BillSummary(BaseModel):
    id: str
    connection_id: str
    platform: str
    status: str
    step: str
    vendor_name: str
    document_number: str | None
    currency: str
    total: Decimal
    amount_due: Decimal
    issue_date: date
    due_date: date | None
    pay_on: date | None
    submitted_by: str | None
    pending_approvers: list[str]
    erp_bill_id: str | None
    last_error: str | None
    payee: str | None = Field(
        default=None, description="the payee as people see it, e.g. 'ACH ••••6789 (verified)'"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: BillRow) -> BillSummary:
        return cls(
            id=row.workflow_id,
            connection_id=row.connection_id,
            platform=row.platform,
            status=row.status,
            step=row.step,
            vendor_name=row.vendor_name,
            document_number=row.document_number,
            currency=row.currency,
            # The store keeps six places for every currency; answer the currency's own.
            total=as_written(row.total, row.currency),
            amount_due=as_written(row.amount_due, row.currency),
            issue_date=row.issue_date,
            due_date=row.due_date,
            pay_on=row.pay_on,
            submitted_by=row.submitted_by,
            pending_approvers=list(row.pending_approvers),
            erp_bill_id=row.erp_bill_id,
            last_error=row.last_error,
            payee=payee_line(row.state.get("payee")),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def payee_line(view: dict[str, Any] | None) -> str | None:
    """'ACH ••••6789 (verified)', 'ACH ••••9999 (changed bank details; pc_…)' for a summary."""
    if not view:
        return None
    parsed = PayeeView.model_validate(view)
    shown = parsed.masked or parsed.document_masked or "no bank details"
    if parsed.status != PayeeStatus.verified and parsed.document_masked:
        shown = parsed.document_masked
    extra = f"; change {parsed.change_id}" if parsed.change_id else ""
    return f"{shown} ({parsed.badge()}{extra})"


class BillPage(BaseModel):
    data: list[BillSummary]
    has_more: bool
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class Attachment(BaseModel):
    id: str = Field(description="the document's sha256")
    file_name: str
    media_type: str
    size: int
    url: str


class BillDetail(BaseModel):
    id: str
    status: str
    source: Literal["workflow", "store"] = Field(
        description="workflow: live state; store: the last projection (closed or unreachable)"
    )
    state: dict[str, Any]
    attachments: list[Attachment]
    drift: list[dict[str, Any]] = Field(
        default_factory=list,
        description="open drift findings: where the ERP changed the bill after remit reconciled "
        "it (GET /v1/bills/drift; the store's status shows needs_attention meanwhile)",
    )


class DecisionRequest(_Body):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=2000)


class PaymentInstruction(_Body):
    # The model's own amount type, so an amount the workflow would refuse (more than 6
    # decimal places, say) is a 422 here and not a failed update behind a 500.
    amount: PositiveAmount | None = Field(
        default=None, description="default: everything still due (in the bill's currency)"
    )
    pay_on: date | Literal["today"] | None = Field(
        default=None,
        description="default: as soon as possible; 'today' is the connection's today",
    )

    _today_any_case = field_validator("pay_on", mode="before")(lambda v: _today_word(v))


class OperatorRequest(_Body):
    reason: str | None = Field(default=None, max_length=2000)


class ResolveRequest(OperatorRequest):
    vendor_id: str | None = Field(default=None, description="the ERP vendor to use")
    account: str | None = Field(default=None, description="account for uncoded lines")
    corrections: DraftCorrections | None = Field(
        default=None,
        description="for a bill held for what capture read (GET .../capture shows it): the "
        "fields as they should read; the others stay as read",
    )


class CaptureView(BaseModel):
    """What capture read from the bill's document, and how sure it was of each field."""

    id: str
    document: DocumentRef
    draft: dict[str, Any] = Field(description="the draft as read (bank details masked)")
    scan: dict[str, Any] | None = Field(
        default=None, description="for a PDF or image read by OCR: pages, fields, confidences"
    )
    needs_review: list[str] = Field(description="capture's reasons for a person to look")
    correctable: bool = Field(description="whether the bill waits for these corrections now")


class OperatorAccepted(BaseModel):
    id: str
    action: Literal["cancel", "retry", "resolve"]
    accepted: bool = True


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


class _SubmitOptions(_Body):
    connection_id: str | None = Field(default=None, max_length=255)
    key: str | None = Field(default=None, min_length=1, max_length=200)
    pay_on: date | Literal["today"] | None = None

    _today_any_case = field_validator("pay_on", mode="before")(lambda v: _today_word(v))
    rail: RailKind | None = None
    pay_amount: PositiveAmount | None = Field(
        default=None, description="pay only this much now (the rest on instruction)"
    )


def file_name_of(disposition: str) -> str | None:
    """The file name a Content-Disposition gives: RFC 5987's `filename*` (any script) first,
    else `filename` (whose raw UTF-8 bytes arrive here read as Latin-1)."""
    star = _FILE_NAME_STAR.search(disposition)
    if star is not None:
        charset, _, rest = star.group(1).strip().partition("'")
        encoded = rest.partition("'")[2]
        try:
            return unquote(encoded, encoding=charset or "utf-8", errors="strict") or None
        except (LookupError, UnicodeDecodeError):
            raise ApiError(
                400,
                "invalid_request_error",
                "Content-Disposition's filename* is not percent-encoded text in its charset, "
                "e.g. filename*=UTF-8''Rechnung%20M%C3%BCller.xml",
                param="content-disposition",
            ) from None
    named = _FILE_NAME.search(disposition)
    if named is None:
        return None
    name = named.group(1)
    try:
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


async def _read_document(
    request: Request, query: dict[str, Any]
) -> tuple[bytes, str | None, str | None, _SubmitOptions]:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    options = dict(query)
    if media == "multipart/form-data":
        form, upload = await form_file(request, "document")
        content = await upload.read()
        for name in _SUBMIT_OPTIONS:
            value = form.get(name)
            if isinstance(value, str) and value != "":
                if options.get(name) not in (None, value):
                    raise ApiError(
                        400,
                        "invalid_request_error",
                        f"{name} is given both in the query and the form, differently",
                        param=name,
                    )
                options[name] = value
        file_name, media_type = upload.filename, upload.content_type
    else:
        content = await request.body()
        # A raw body may name its file the way a download does.
        file_name = file_name_of(request.headers.get("content-disposition", ""))
        media_type = media or None
    try:
        parsed = _SubmitOptions.model_validate(options)
    except ValidationError as exc:
        raise _invalid(exc) from None
    return content, file_name, media_type, parsed


async def form_file(request: Request, what: str) -> tuple[FormData, UploadFile]:
    """A multipart body and its file field `file` (`what` names it in the refusal)."""
    try:
        form = await request.form()
    except Exception as exc:  # python-multipart's errors share no base class worth naming
        raise ApiError(
            400, "invalid_request_error", f"the multipart body cannot be read: {exc}"
        ) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(
            422,
            "invalid_request_error",
            f"attach the {what} as a multipart file field named 'file'",
            param="file",
        )
    return form, upload


def _invalid(exc: ValidationError) -> ApiError:
    """The first problem of a refused body or query, named by its field."""
    first = exc.errors(include_url=False)[0]
    param = str(first["loc"][0]) if first["loc"] else "body"
    return ApiError(422, "invalid_request_error", f"{param}: {first['msg']}", param=param)


def _today(connection: ConnectionRow | None, default_timezone: str) -> date:
    """What 'today' means for this connection: the date in its time zone (its settings'
    `timezone`, else the API's default), resolved here at the edge, never in a workflow."""
    name = str((connection.settings.get("timezone") if connection else None) or default_timezone)
    zone: tzinfo
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("time zone %r is unknown; 'today' is UTC's", name)
        zone = UTC
    return datetime.now(zone).date()


def _day(
    value: date | Literal["today"] | None, connection: ConnectionRow | None, context: ApiContext
) -> date | None:
    if value == TODAY:
        return _today(connection, context.default_timezone)
    return value if isinstance(value, date) else None


def _check_line_items(context: ApiContext, lines: int) -> None:
    if lines > context.max_line_items:
        raise ApiError(
            422,
            "invalid_request_error",
            f"the document has {lines:,} line items; a bill may have at most "
            f"{context.max_line_items:,} (split it into several bills, or raise "
            "REMIT_MAX_LINE_ITEMS)",
            param="lines",
        )


async def _visible_bill(context: ApiContext, principal: Principal, bill_id: str) -> BillRow | None:
    """The bill's projection (None if not projected yet), or 404 when the key may not see its
    connection: the same answer as for a bill that does not exist, so none is revealed."""
    row = await asyncio.to_thread(context.store.get_bill, bill_id)
    connection = row.connection_id if row is not None else connection_of(bill_id)
    if not principal.sees(connection):
        raise ApiError(404, "not_found", f"no bill {bill_id!r}", param="id")
    return row


def content_disposition(file_name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact name per RFC 6266 / 5987."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in file_name)
    header = f'attachment; filename="{fallback or "document"}"'
    if fallback != file_name:
        header += f"; filename*=UTF-8''{quote(file_name, safe='')}"
    return header


DOCUMENT_AUDIT_KIND = "document"


def _record_document(context: ApiContext, workflow_id: str, actor: str, ref: DocumentRef) -> None:
    """Note on the bill's audit trail which document it came from (what attachments serve)."""
    context.store.append_audit(
        event_key=f"{workflow_id}/document/{ref.sha256}",
        workflow_id=workflow_id,
        actor=actor,
        kind=DOCUMENT_AUDIT_KIND,
        summary=f"submitted {ref.file_name} ({ref.media_type}, {ref.size} bytes) via the API",
        detail={"document": ref.model_dump(mode="json")},
    )


def _documents_of(context: ApiContext, workflow_id: str, bill_key: str | None) -> list[DocumentRef]:
    """The documents a bill was captured from: those the API recorded on its audit trail, else
    the one its key names (a bill's key is its document's sha256 unless the caller chose one).
    """
    found: dict[str, DocumentRef] = {}
    for entry in context.store.audit_for(workflow_id):
        if entry.kind == DOCUMENT_AUDIT_KIND and "document" in entry.detail:
            ref = DocumentRef.model_validate(entry.detail["document"])
            found.setdefault(ref.sha256, ref)
    # A caller-chosen key is no sha256 and names no stored document.
    sha_key = bill_key if bill_key and _SHA256.fullmatch(bill_key) else None
    if not found and sha_key is not None and context.documents.exists(sha_key):
        found[sha_key] = context.documents.meta(sha_key)
    return list(found.values())


def _attachments(bill_id: str, documents: list[DocumentRef]) -> list[Attachment]:
    return [
        Attachment(
            id=document.sha256,
            file_name=document.file_name,
            media_type=document.media_type,
            size=document.size,
            url=f"/v1/bills/{bill_id}/attachments/{document.sha256}",
        )
        for document in documents
    ]


def _key_of(bill_id: str) -> str:
    # bill/<connection_id>/<bill_key>: connection ids have no slash, a caller's key might.
    parts = bill_id.split("/", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "bill" else ""


async def _closed_or_missing(context: ApiContext, bill_id: str, action: str) -> ApiError:
    row = await asyncio.to_thread(context.store.get_bill, bill_id)
    if row is None:
        return ApiError(404, "not_found", f"no bill {bill_id!r}", param="id")
    return ApiError(
        409,
        "conflict",
        f"bill {bill_id!r} is closed ({row.status}); it can no longer {action}",
        param="id",
    )


# ---------------------------------------------------------------------------------------------
# routes (order matters: `{bill_id:path}` would swallow the sub-resources below it)
# ---------------------------------------------------------------------------------------------


@router.get("", response_model=BillPage, summary="List bills (oldest first), a page at a time")
async def list_bills(
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
    status: LifecycleStatus | None = Query(default=None),
    vendor: str | None = Query(default=None, description="case-insensitive part of the name"),
    connection: str | None = Query(default=None, description="connection id"),
    due_before: date | None = Query(default=None, description="due strictly before this day"),
    pending_approver: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = Query(default=None, description="`next_cursor` of the previous page"),
) -> BillPage:
    visible = principal.visible(connection)
    if visible is not None and not visible:
        return BillPage(data=[], has_more=False, next_cursor=None)
    try:
        rows, next_cursor = await asyncio.to_thread(
            context.store.list_bills,
            status=status.value if status else None,
            vendor=vendor,
            connection_id=connection,
            connection_ids=visible,
            due_before=due_before,
            pending_approver=pending_approver,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor:
        raise bad_cursor() from None
    return BillPage(
        data=[BillSummary.of(row) for row in rows],
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )


@router.post(
    "",
    status_code=202,
    response_model=BillAccepted,
    summary="Submit a bill document; its workflow starts at once",
    openapi_extra=_SUBMIT_BODY,
)
async def submit_bill(
    request: Request,
    principal: Principal = Depends(require_scope("submit")),
    context: ApiContext = Depends(api_context),
    connection_id: str | None = Query(default=None, description="default: the API's default"),
    key: str | None = Query(default=None, description="bill key (default: document sha256)"),
    pay_on: str | None = Query(default=None, description="YYYY-MM-DD; default: due date"),
    rail: str | None = Query(default=None, description="ach, wire, card or check"),
    pay_amount: str | None = Query(
        default=None, description="pay only this much now; instruct the rest later"
    ),
) -> JSONResponse:
    query = {
        name: value
        for name, value in {
            "connection_id": connection_id,
            "key": key,
            "pay_on": pay_on,
            "rail": rail,
            "pay_amount": pay_amount,
        }.items()
        if value is not None
    }
    erp_bill = await _erp_bill_body(request)
    if erp_bill is not None:
        return await _submit_erp_bill(context, principal, query, erp_bill)
    content, file_name, media_type, options = await _read_document(request, query)
    # In a thread: a scan's OCR takes seconds a page, and the event loop serves everyone else.
    captured = await asyncio.to_thread(
        parse_document, content, file_name=file_name, media_type=media_type
    )
    _check_line_items(context, len(captured.draft.lines))
    if options.pay_amount is not None and options.pay_amount > captured.draft.total:
        raise ApiError(
            422,
            "invalid_request_error",
            f"pay_amount {options.pay_amount} is more than the bill's total {captured.draft.total}",
            param="pay_amount",
        )
    connection = await _submit_connection(context, principal, options.connection_id)
    chosen = connection.id
    if captured.draft.document_type is DocumentType.credit_note:
        return await _submit_credit_note(context, principal, connection, captured, options.key)
    day = _day(options.pay_on, connection, context)
    draft = await asyncio.to_thread(with_link_reasons, context.store, chosen, captured.draft)
    # The worker attaches the original document to the ERP bill; it reads it from here.
    await asyncio.to_thread(keep_captured, context.documents, captured, draft)
    try:
        result = await context.remit.submit_bill(
            draft,
            connection_id=chosen,
            platform=connection.platform,
            submitted_by=principal.user_id,
            key=options.key,
            pay_on=day,
            rail=options.rail,
            installments=(
                [Installment(pay_on=day, amount=options.pay_amount)]
                if options.pay_amount is not None
                else None
            ),
        )
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None
    status = LifecycleStatus.received.value
    if not result.created:
        row = await asyncio.to_thread(context.store.get_bill, result.workflow_id)
        status = row.status if row is not None else status
        known = await asyncio.to_thread(
            _documents_of, context, result.workflow_id, row.bill_key if row else None
        )
        new_document = all(ref.sha256 != captured.source.sha256 for ref in known)
        if new_document and row is not None and row.status in FINAL_STATUSES:
            # The key names a bill that is done: a document added now would rewrite its record.
            raise ApiError(
                409,
                "conflict",
                f"bill {result.workflow_id!r} is {row.status}: it takes no more documents; "
                "submit this one under another key",
                param="key",
            )
    await asyncio.to_thread(
        _record_document, context, result.workflow_id, principal.user_id, captured.source
    )
    accepted = BillAccepted(id=result.workflow_id, status=status, created=result.created)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


async def _submit_credit_note(
    context: ApiContext,
    principal: Principal,
    connection: ConnectionRow,
    captured: CapturedDocument,
    key: str | None,
) -> JSONResponse:
    """A credit note sent where bills go: it becomes the vendor credit it is (matched, posted
    to the ERP as a vendor credit, then taken by the vendor's next bills), never a bill."""
    await asyncio.to_thread(keep_captured, context.documents, captured)
    try:
        result = await context.remit.submit_credit(
            captured.draft,
            connection_id=connection.id,
            platform=connection.platform,
            submitted_by=principal.user_id,
            key=key,
        )
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None
    accepted = BillAccepted(
        id=result.workflow_id, status="matching", created=result.created, object="credit"
    )
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/credits/{quote(result.workflow_id, safe='/')}"},
    )


async def _submit_connection(
    context: ApiContext, principal: Principal, connection_id: str | None
) -> ConnectionRow:
    chosen = connection_id or context.default_connection_id
    if chosen is None:
        raise ApiError(
            422,
            "invalid_request_error",
            "name the connection_id to submit to",
            param="connection_id",
        )
    connection = await asyncio.to_thread(context.store.get_connection, chosen)
    if connection is None or not principal.sees(connection.id):
        raise ApiError(
            422,
            "invalid_request_error",
            f"no connection {chosen!r}; GET /v1/connections lists them",
            param="connection_id",
        )
    return connection


class _ErpBillSubmit(_SubmitOptions):
    erp_bill_id: str = Field(min_length=1, max_length=255)


async def _erp_bill_body(request: Request) -> dict[str, Any] | None:
    """The body when it names a bill already in the ERP (a JSON object with erp_bill_id)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return None
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None  # parse_document says what is wrong with it
    return body if isinstance(body, dict) and "erp_bill_id" in body else None


async def _submit_erp_bill(
    context: ApiContext, principal: Principal, query: dict[str, Any], body: dict[str, Any]
) -> JSONResponse:
    """Pay a bill someone entered in the ERP: described from the mirror, started with its
    ERP id (the workflow re-reads it there, skips posting and pays what is due)."""
    clash = sorted(name for name in query if name in body and query[name] != body[name])
    if clash:
        raise ApiError(
            400,
            "invalid_request_error",
            f"{clash[0]} is given both in the query and the body, differently",
            param=clash[0],
        )
    try:
        options = _ErpBillSubmit.model_validate({**body, **query})
    except ValidationError as exc:
        raise _invalid(exc) from None
    connection = await _submit_connection(context, principal, options.connection_id)
    mirror = MirrorStore(context.store)
    row = await asyncio.to_thread(mirror.get, connection.id, MirrorKind.bills, options.erp_bill_id)
    synced = await asyncio.to_thread(mirror.last_synced_at, connection.id)
    if row is None or row.deleted_at is not None:
        when = f"last synced {synced:%Y-%m-%d %H:%M} UTC" if synced else "never synced"
        raise ApiError(
            404,
            "not_found",
            f"no bill {options.erp_bill_id!r} in {connection.id}'s books ({when}"
            + ("; it was deleted in the ERP" if row is not None else "")
            + f"): POST /v1/connections/{connection.id}/sync, then submit again",
            param="erp_bill_id",
        )
    try:
        bill = Bill.model_validate(row.data)
        vendor_row = await asyncio.to_thread(
            mirror.get, connection.id, MirrorKind.vendors, bill.vendor_id
        )
        vendor = Vendor.model_validate(vendor_row.data) if vendor_row is not None else None
        draft = draft_of_erp_bill(bill, vendor=vendor)
    except (ValidationError, ValueError) as exc:
        raise ApiError(
            422,
            "invalid_request_error",
            f"ERP bill {options.erp_bill_id} cannot be paid through remit: {exc}",
            param="erp_bill_id",
        ) from None
    if bill.status in (BillStatus.void, BillStatus.paid) or (
        bill.balance is not None and bill.balance <= 0
    ):
        raise ApiError(
            409,
            "conflict",
            f"ERP bill {options.erp_bill_id} is {bill.status.value}: nothing to pay",
            param="erp_bill_id",
        )
    due = bill.balance if bill.balance is not None else bill.total
    if options.pay_amount is not None and options.pay_amount > due:
        raise ApiError(
            422,
            "invalid_request_error",
            f"pay_amount {options.pay_amount} is more than the {due} due on the bill",
            param="pay_amount",
        )
    _check_line_items(context, len(draft.lines))
    # One ERP bill is one remit bill: one remit posted, or one already submitted by its id.
    workflow_id = bill_workflow_id(
        connection.id, *bill_identity(draft, options.key, options.erp_bill_id)
    )
    known = await asyncio.to_thread(
        context.store.bills_of_erp_bills, connection.id, [options.erp_bill_id]
    )
    other = next(
        (
            b
            for b in known
            if b.workflow_id != workflow_id and b.status != LifecycleStatus.cancelled.value
        ),
        None,
    )
    if other is not None:
        raise ApiError(
            409,
            "conflict",
            f"ERP bill {options.erp_bill_id} is already remit's bill {other.workflow_id} "
            f"({other.status})",
            param="erp_bill_id",
        )
    day = _day(options.pay_on, connection, context)
    try:
        result = await context.remit.submit_bill(
            draft,
            connection_id=connection.id,
            platform=connection.platform,
            submitted_by=principal.user_id,
            key=options.key,
            pay_on=day,
            rail=options.rail,
            erp_bill_id=options.erp_bill_id,
            amount_due=due,
            installments=(
                [Installment(pay_on=day, amount=options.pay_amount)]
                if options.pay_amount is not None
                else None
            ),
        )
    except RPCError as exc:
        raise rpc_error(exc, "workflow engine") from None
    status = LifecycleStatus.received.value
    if not result.created:
        existing = await asyncio.to_thread(context.store.get_bill, result.workflow_id)
        status = existing.status if existing is not None else status
    accepted = BillAccepted(id=result.workflow_id, status=status, created=result.created)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


@router.get(
    "/{bill_id:path}/attachments/{attachment_id}",
    response_class=Response,
    summary="Download the original document a bill was captured from",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_attachment(
    bill_id: str,
    attachment_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> Response:
    row = await _visible_bill(context, principal, bill_id)
    bill_key = row.bill_key if row is not None else _key_of(bill_id)
    documents = await asyncio.to_thread(_documents_of, context, bill_id, bill_key)
    document = next((d for d in documents if d.sha256 == attachment_id), None)
    if document is None:
        raise ApiError(
            404, "not_found", f"bill {bill_id!r} has no attachment {attachment_id!r}", param="id"
        )
    try:
        content = await asyncio.to_thread(context.documents.get, document.sha256)
    except DocumentNotFound:
        raise ApiError(
            404,
            "not_found",
            f"the document {attachment_id} is no longer in the document store",
            param="attachment_id",
        ) from None
    return Response(
        content,
        media_type=document.media_type,
        headers={"Content-Disposition": content_disposition(document.file_name)},
    )


@router.post(
    "/{bill_id:path}/decisions",
    response_model=DecisionRecord,
    summary="Approve or reject as the API key's user",
)
async def decide(
    bill_id: str,
    body: DecisionRequest,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> DecisionRecord:
    if body.decision == "reject" and not (body.comment or "").strip():
        raise ApiError(
            422, "invalid_request_error", "a rejection needs a reason in `comment`", param="comment"
        )
    await _visible_bill(context, principal, bill_id)
    try:
        # The actor is always the key's user: an approver can act only as themselves.
        return await context.remit.decide(
            bill_id,
            actor=principal.user_id,
            approve=body.decision == "approve",
            comment=body.comment,
        )
    except WorkflowUpdateFailedError as exc:
        reason = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        raise ApiError(403, "permission_error", reason, param="decision") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise await _closed_or_missing(context, bill_id, "take decisions") from None
        raise rpc_error(exc, f"bill {bill_id!r}") from None


@router.post(
    "/{bill_id:path}/payments",
    response_model=BillDetail,
    summary="Instruct a payment of (part of) the bill, as the API key's user",
)
async def instruct_payment(
    bill_id: str,
    body: PaymentInstruction,
    request: Request,
    principal: Principal = Depends(require_scope("decide")),
    context: ApiContext = Depends(api_context),
) -> BillDetail:
    row = await _visible_bill(context, principal, bill_id)
    pay_on = body.pay_on
    if pay_on == TODAY:
        connection_id = row.connection_id if row is not None else connection_of(bill_id)
        connection = (
            await asyncio.to_thread(context.store.get_connection, connection_id)
            if connection_id
            else None
        )
        pay_on = _day(pay_on, connection, context)
    try:
        state = await context.remit.schedule_payment(
            bill_id,
            actor=principal.user_id,
            amount=body.amount,
            pay_on=pay_on if isinstance(pay_on, date) else None,
            request_id=request.headers.get("idempotency-key"),
        )
    except WorkflowUpdateFailedError as exc:
        reason = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        raise ApiError(409, "conflict", reason, param="amount") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise await _closed_or_missing(context, bill_id, "take payments") from None
        raise rpc_error(exc, f"bill {bill_id!r}") from None
    documents = await asyncio.to_thread(_documents_of, context, bill_id, state.bill_key)
    return BillDetail(
        id=bill_id,
        status=state.status.value,
        source="workflow",
        state=state.model_dump(mode="json"),
        attachments=_attachments(bill_id, documents),
    )


async def _operator(
    context: ApiContext,
    principal: Principal,
    bill_id: str,
    action: Literal["cancel", "retry", "resolve"],
    **kw: Any,
) -> JSONResponse:
    await _visible_bill(context, principal, bill_id)
    try:
        await getattr(context.remit, action)(bill_id, **kw)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise await _closed_or_missing(context, bill_id, action) from None
        raise rpc_error(exc, f"bill {bill_id!r}") from None
    accepted = OperatorAccepted(id=bill_id, action=action)
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)


@router.post(
    "/{bill_id:path}/cancel",
    status_code=202,
    response_model=OperatorAccepted,
    summary="Cancel a bill (refused by the bill once its payment is under way)",
)
async def cancel(
    bill_id: str,
    body: OperatorRequest | None = None,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> JSONResponse:
    reason = body.reason if body else None
    return await _operator(
        context, principal, bill_id, "cancel", actor=principal.user_id, reason=reason
    )


@router.post(
    "/{bill_id:path}/retry",
    status_code=202,
    response_model=OperatorAccepted,
    summary="Retry the step a bill in needs_attention stopped at",
)
async def retry(
    bill_id: str,
    body: OperatorRequest | None = None,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> JSONResponse:
    reason = body.reason if body else None
    return await _operator(
        context, principal, bill_id, "retry", actor=principal.user_id, reason=reason
    )


@router.post(
    "/{bill_id:path}/resolve",
    status_code=202,
    response_model=OperatorAccepted,
    summary="Resolve a bill in review or needs_attention (choose its vendor or account)",
)
async def resolve(
    bill_id: str,
    body: ResolveRequest | None = None,
    principal: Principal = Depends(require_scope("admin")),
    context: ApiContext = Depends(api_context),
) -> JSONResponse:
    given = body or ResolveRequest()
    corrected: BillDraft | None = None
    if given.corrections is not None:
        corrected = await _corrected_draft(context, principal, bill_id, given.corrections)
    return await _operator(
        context,
        principal,
        bill_id,
        "resolve",
        actor=principal.user_id,
        reason=given.reason,
        vendor_id=given.vendor_id,
        account=given.account,
        draft=corrected,
    )


def capture_of(context: ApiContext, state: dict[str, Any]) -> tuple[DocumentRef, CaptureRecord]:
    """The capture record of a bill's document, or 404 when capture kept none (a remit JSON
    bill, a bill from the ERP, one submitted before capture records were kept)."""
    document = state.get("document")
    record = None
    if document:
        ref = DocumentRef.model_validate(document)
        raw = context.documents.capture(ref.sha256)
        record = CaptureRecord.model_validate_json(raw) if raw else None
    if not document or record is None:
        raise ApiError(
            404,
            "not_found",
            "capture kept no record for this bill's document (only e-invoices that need a "
            "look and PDFs or images read by OCR have one)",
        )
    return ref, record


def _capture_reasons_open(state: dict[str, Any], record: CaptureRecord) -> bool:
    reasons = set(state.get("review_reasons") or [])
    return state.get("status") == LifecycleStatus.needs_review.value and bool(
        reasons & set(record.draft.review_reasons)
    )


async def _corrected_draft(
    context: ApiContext, principal: Principal, bill_id: str, corrections: DraftCorrections
) -> BillDraft:
    state = await _bill_state(context, principal, bill_id)
    ref, record = await asyncio.to_thread(capture_of, context, state)
    if not _capture_reasons_open(state, record):
        raise ApiError(
            409,
            "conflict",
            f"bill {bill_id!r} is {state.get('status')}, not waiting for a review of what "
            "capture read: corrections apply only then (resolve without them)",
            param="corrections",
        )
    try:
        return apply_corrections(record.draft, corrections)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "corrections"
        raise ApiError(
            422,
            "invalid_request_error",
            f"the corrected bill does not hold together: {first.get('msg', 'invalid')}".replace(
                "Value error, ", ""
            ),
            param=f"corrections.{where}" if where != "corrections" else where,
        ) from None


async def _bill_state(context: ApiContext, principal: Principal, bill_id: str) -> dict[str, Any]:
    """The bill's state: the workflow's own answer, else the store's projection; 404 if none."""
    row = await _visible_bill(context, principal, bill_id)
    try:
        live = await context.remit.handle(bill_id).query(
            BillWorkflow.state_query, rpc_timeout=TEMPORAL_TIMEOUT
        )
        return dict(live.model_dump(mode="json"))
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
        pass
    if row is None:
        raise ApiError(404, "not_found", f"no bill {bill_id!r}", param="id")
    return dict(row.state)


@router.get(
    "/{bill_id:path}/capture",
    response_model=CaptureView,
    summary="What capture read from the bill's document (OCR fields with their confidence)",
)
async def get_capture(
    bill_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> CaptureView:
    state = await _bill_state(context, principal, bill_id)
    ref, record = await asyncio.to_thread(capture_of, context, state)
    draft = record.draft.model_dump(mode="json", by_alias=True)
    for party in (draft.get("vendor"), draft.get("payee")):
        if party and party.get("bank_account"):
            party["bank_account"] = _masked(party["bank_account"])
    scan = record.scan.model_dump(mode="json") if record.scan else None
    if scan is not None:
        for field in scan["fields"]:
            if field["name"] == "iban" and field["value"]:
                field["value"] = _masked(field["value"])
                field["read_from"] = None
    return CaptureView(
        id=bill_id,
        document=ref,
        draft=draft,
        scan=scan,
        needs_review=list(record.draft.review_reasons),
        correctable=_capture_reasons_open(state, record),
    )


def _masked(account: str) -> str:
    compact = re.sub(r"[\s/-]", "", account)
    return f"{compact[:2]}••••{compact[-4:]}" if len(compact) > 6 else "••••"


@router.get("/{bill_id:path}", response_model=BillDetail, summary="A bill's full state")
async def get_bill(
    bill_id: str,
    principal: Principal = Depends(authenticated),
    context: ApiContext = Depends(api_context),
) -> BillDetail:
    await _visible_bill(context, principal, bill_id)
    state: dict[str, Any] | None = None
    source: Literal["workflow", "store"] = "workflow"
    unreachable = False
    try:
        live = await context.remit.handle(bill_id).query(
            BillWorkflow.state_query, rpc_timeout=TEMPORAL_TIMEOUT
        )
        state = live.model_dump(mode="json")
    except RPCError as exc:
        unreachable = exc.status != RPCStatusCode.NOT_FOUND
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError):
        pass  # closed and not queryable: the store's projection answers
    if state is None:
        row = await asyncio.to_thread(context.store.get_bill, bill_id)
        if row is None:
            if unreachable:
                raise ApiError(
                    503,
                    "workflow_unavailable",
                    "the workflow engine did not answer and the store has no such bill",
                    headers={"Retry-After": "5"},
                )
            raise ApiError(404, "not_found", f"no bill {bill_id!r}", param="id")
        state, source = dict(row.state), "store"
    documents = await asyncio.to_thread(
        _documents_of, context, bill_id, str(state.get("bill_key") or "")
    )
    drift = await asyncio.to_thread(DriftStore(context.store).open_for, bill_id)
    return BillDetail(
        id=bill_id,
        status=str(state.get("status", "")),
        source=source,
        state=state,
        attachments=_attachments(bill_id, documents),
        drift=[
            {
                "id": f.id,
                "kind": f.kind,
                "subject": f.subject,
                "expected": f.expected,
                "found": f.found,
                "message": f.message,
                "detected_at": f.detected_at.isoformat(),
            }
            for f in drift
        ],
    )
