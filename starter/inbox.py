"""The approval inbox: server-rendered pages where approvers sign in, review bills and decide."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from accounting import DocumentRef, minor_units
from starter.client import RemitClient
from store import BillRow, DocumentCorrupted, DocumentNotFound, DocumentStore, Store
from workflows.approval import Directory, User, refusal
from workflows.models import BillState, LifecycleStatus, PayeeStatus, PayeeView

log = logging.getLogger("remit.inbox")

INBOX_PREFIX = "/inbox"
SESSION_COOKIE = "remit_inbox_session"
FLASH_COOKIE = "remit_inbox_flash"
MAGIC_LINK_TTL = timedelta(minutes=15)
SESSION_TTL = timedelta(hours=12)
FLASH_TTL = timedelta(minutes=2)
MAX_COMMENT_CHARS = 2000
MAX_PREVIEW_BYTES = 256 * 1024
MAX_INBOX_ROWS = 2000
_PAGE_SIZE = 500
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "inbox"

# Pages never end up in shared caches, are never framed, and run no script at all.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


# ---------------------------------------------------------------------------------------------
# Signed tokens: magic links, the session cookie, CSRF tokens and flash messages
# ---------------------------------------------------------------------------------------------


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Signer:
    """HMAC-SHA256 over a purpose and a JSON payload; the purpose keeps one kind of token
    (say, a flash message) from ever being accepted as another (a session)."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("session_secret must be at least 16 characters of random text")
        self._key = secret.encode()

    def _mac(self, purpose: str, body: str) -> bytes:
        message = f"remit-inbox/{purpose}\x00{body}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def dumps(self, purpose: str, payload: dict[str, Any], *, expires: datetime) -> str:
        data = {**payload, "exp": int(expires.timestamp())}
        body = _b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64encode(self._mac(purpose, body))}"

    def loads(self, purpose: str, token: str, *, now: datetime) -> dict[str, Any] | None:
        """The payload of a token this signer made for `purpose` that has not expired."""
        body, dot, signature = token.partition(".")
        if not dot or not body or not signature:
            return None
        try:
            given = _b64decode(signature)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(_b64decode(body))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        if data["exp"] <= now.timestamp():
            return None
        return data

    def digest(self, purpose: str, value: str) -> str:
        return _b64encode(self._mac(purpose, value))


def magic_link(
    session_secret: str,
    user_id: str,
    *,
    now: datetime | None = None,
    ttl: timedelta = MAGIC_LINK_TTL,
    next_path: str | None = None,
) -> str:
    """The path of a sign-in link for `user_id`, valid for `ttl` (for email or the CLI)."""
    expires = (now or datetime.now(UTC)) + ttl
    token = _Signer(session_secret).dumps("magic-link", {"u": user_id}, expires=expires)
    query = {"token": token}
    if next_path and _is_inbox_path(next_path):
        query["next"] = next_path
    return f"{INBOX_PREFIX}/login/magic?{urlencode(query)}"


def _is_inbox_path(path: str) -> bool:
    """Only paths inside the inbox are followed after sign-in (no open redirects)."""
    parts = urlsplit(path)
    return (
        not parts.scheme
        and not parts.netloc
        and "\\" not in path
        and (parts.path == INBOX_PREFIX or parts.path.startswith(INBOX_PREFIX + "/"))
    )


@dataclass(frozen=True)
class InboxSession:
    """Who is signed in; the CSRF token is bound to this one session."""

    user_id: str
    user: User
    session_id: str
    csrf_token: str


# ---------------------------------------------------------------------------------------------
# What the pages show
# ---------------------------------------------------------------------------------------------


def format_money(amount: Decimal, currency: str) -> str:
    """`USD 1,234.50`: the currency's own minor units, thousands separated."""
    try:
        places = minor_units(currency)
    except KeyError:
        places = 2
    quantum = Decimal(1).scaleb(-places)
    return f"{currency} {amount.quantize(quantum):,}"


@dataclass(frozen=True)
class InboxEntry:
    workflow_id: str
    vendor_name: str
    document_number: str
    amount: str
    due_date: date | None
    overdue: bool
    waiting_for: str | None
    submitted_by: str | None
    payee: PayeeBadge | None = None


@dataclass(frozen=True)
class PayeeBadge:
    """The payee as an approver sees it before deciding: masked, with a badge that stands out
    when the details are new or changed (or do not match what the document names)."""

    shown: str
    badge: str
    warning: bool
    detail: str | None

    @classmethod
    def of(cls, view: PayeeView | None) -> PayeeBadge | None:
        if view is None:
            return None
        shown = view.masked or view.document_masked or "no bank details"
        detail = None
        if view.status != PayeeStatus.verified:
            shown = view.document_masked or shown
            detail = view.reason
        elif view.recently_changed:
            detail = f"verified by {view.verified_by} on {view.verified_on}"
        return cls(
            shown=shown,
            badge=view.badge(),
            warning=view.status != PayeeStatus.verified or view.recently_changed,
            detail=detail,
        )


@dataclass(frozen=True)
class LineView:
    description: str
    amount: str
    quantity: str | None
    account_id: str
    account_as_written: str | None
    tracking: list[str]


PreviewKind = Literal["json", "xml", "text"]


@dataclass(frozen=True)
class DocumentView:
    ref: DocumentRef
    available: bool
    preview: str | None
    preview_kind: PreviewKind | None
    note: str | None


@dataclass(frozen=True)
class Flash:
    kind: Literal["success", "error"]
    message: str


def _sort_key(row: BillRow) -> tuple[bool, date, datetime, str]:
    # Bills without a due date go last; ties keep the order they arrived in.
    return (row.due_date is None, row.due_date or date.max, row.created_at, row.workflow_id)


def _entry(row: BillRow, today: date) -> InboxEntry:
    state = row.state or {}
    return InboxEntry(
        workflow_id=row.workflow_id,
        vendor_name=row.vendor_name,
        document_number=row.document_number or "(no number)",
        amount=format_money(row.total, row.currency),
        due_date=row.due_date,
        overdue=row.due_date is not None and row.due_date < today,
        waiting_for=state.get("waiting_for") if isinstance(state, dict) else None,
        submitted_by=row.submitted_by,
        payee=PayeeBadge.of(
            PayeeView.model_validate(state["payee"])
            if isinstance(state, dict) and state.get("payee")
            else None
        ),
    )


def _lines(state: BillState) -> list[LineView]:
    views = []
    for index, line in enumerate(state.lines):
        as_written = line.account_as_written
        views.append(
            LineView(
                description=line.description or f"line {index + 1}",
                amount=format_money(line.amount, state.currency),
                quantity=str(line.quantity) if line.quantity is not None else None,
                account_id=line.account_id or "(not coded)",
                account_as_written=as_written,
                tracking=[
                    f"{ref.kind.value}: {ref.name or ref.id}"
                    + (f" ({ref.id})" if ref.name and ref.name != ref.id else "")
                    for ref in line.tracking
                ],
            )
        )
    return views


# Bank details a document may carry, shown masked like every other payee detail (last four).
_BANK_KEYS = re.compile(r"bank_account|account_number|routing|iban", re.IGNORECASE)


def mask_text(value: str) -> str:
    """'021000021/000123456789' → '••••6789': what a screen may show of an account."""
    compact = re.sub(r"[\s/-]", "", value)
    return f"••••{compact[-4:]}" if len(compact) > 4 else "••••"


def _masked_json(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked_json(v, key) for v in value]
    if isinstance(value, str) and _BANK_KEYS.search(key):
        return mask_text(value)
    return value


def _masked_xml(text: str) -> str:
    """UBL's PayeeFinancialAccount/ID and CII's IBANID/ProprietaryID, masked."""

    def payee_account(match: re.Match[str]) -> str:
        return re.sub(
            r"(<cbc:ID[^>]*>)([^<]+)(</cbc:ID>)",
            lambda m: m.group(1) + mask_text(m.group(2)) + m.group(3),
            match.group(0),
            count=1,
        )

    text = re.sub(
        r"<cac:PayeeFinancialAccount>.*?</cac:PayeeFinancialAccount>",
        payee_account,
        text,
        flags=re.DOTALL,
    )
    return re.sub(
        r"(<ram:(?:IBANID|ProprietaryID)>)([^<]+)(</ram:(?:IBANID|ProprietaryID)>)",
        lambda m: m.group(1) + mask_text(m.group(2)) + m.group(3),
        text,
    )


def _preview(content: bytes, ref: DocumentRef) -> tuple[str | None, PreviewKind | None, str | None]:
    if len(content) > MAX_PREVIEW_BYTES:
        return None, None, "too large to show here; download it instead"
    media = ref.media_type.split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            shown = _masked_json(json.loads(content))
            return json.dumps(shown, indent=2, ensure_ascii=False), "json", None
        except ValueError:
            return None, None, "not valid JSON; download it instead"
    if media.endswith(("/xml", "+xml")):
        # Shown as text (escaped by the template), never interpreted as markup.
        return _masked_xml(content.decode("utf-8", errors="replace")), "xml", None
    if media.startswith("text/"):
        return None, None, "shown only as a download (bank details would not be masked here)"
    return None, None, f"a {media} document cannot be shown here; download it instead"


def _why_not(state: BillState, user_id: str) -> str | None:
    """Why this user may not decide now, by the same rule the workflow's validator applies."""
    return refusal(
        plan=state.plan,
        waiting=state.status == LifecycleStatus.awaiting_approval,
        level=state.level,
        escalated=state.escalated,
        decisions=state.decisions,
        submitted_by=state.submitted_by,
        actor=user_id,
    )


def _failure_reason(error: BaseException) -> str:
    """The workflow's own words for a refused update (the ApplicationError's message)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        if isinstance(cause, FailureError) and cause is not error:
            return cause.message
        cause = cause.__cause__
    return "the bill refused the decision"


def _content_disposition(file_name: str) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", file_name) or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name)}"


# ---------------------------------------------------------------------------------------------
# The router
# ---------------------------------------------------------------------------------------------


class _Inbox:
    """The pages' shared machinery: sessions, rendering and reading bills."""

    def __init__(
        self,
        *,
        remit: RemitClient,
        store: Store,
        documents: DocumentStore,
        directory: Directory,
        session_secret: str,
        demo_users: bool,
        clock: Callable[[], datetime],
    ) -> None:
        self.remit = remit
        self.store = store
        self.documents = documents
        self.directory = directory
        self.signer = _Signer(session_secret)
        self.demo_users = demo_users
        self.clock = clock
        self.templates = Environment(
            loader=FileSystemLoader(_TEMPLATES_DIR),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["bill_url"] = lambda wid: f"{INBOX_PREFIX}/bills/{quote(wid)}"
        self.templates.filters["document_url"] = lambda wid: (
            f"{INBOX_PREFIX}/documents/{quote(wid)}"
        )
        self.templates.filters["decision_url"] = lambda wid: (
            f"{INBOX_PREFIX}/decisions/{quote(wid)}"
        )
        self.templates.filters["when"] = lambda at: at.strftime("%Y-%m-%d %H:%M UTC")

    # -- sessions --------------------------------------------------------------------------

    def session_of(self, request: Request) -> InboxSession | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        data = self.signer.loads("session", token, now=self.clock())
        if data is None:
            return None
        user_id, session_id = data.get("u"), data.get("s")
        if not isinstance(user_id, str) or not isinstance(session_id, str):
            return None
        user = self.directory.users.get(user_id)
        if user is None:  # removed from the directory since signing in
            return None
        return InboxSession(
            user_id=user_id,
            user=user,
            session_id=session_id,
            csrf_token=self.signer.digest("csrf", session_id),
        )

    def start_session(self, response: Response, request: Request, user_id: str) -> None:
        expires = self.clock() + SESSION_TTL
        token = self.signer.dumps(
            "session", {"u": user_id, "s": secrets.token_urlsafe(16)}, expires=expires
        )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_TTL.total_seconds()),
            path=INBOX_PREFIX,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def csrf_ok(self, session: InboxSession, form: dict[str, str]) -> bool:
        return hmac.compare_digest(form.get("csrf_token", ""), session.csrf_token)

    def set_flash(self, response: Response, request: Request, payload: dict[str, Any]) -> None:
        token = self.signer.dumps("flash", payload, expires=self.clock() + FLASH_TTL)
        response.set_cookie(
            FLASH_COOKIE,
            token,
            max_age=int(FLASH_TTL.total_seconds()),
            path=INBOX_PREFIX,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def flash_of(self, request: Request) -> dict[str, Any] | None:
        token = request.cookies.get(FLASH_COOKIE)
        if not token:
            return None
        return self.signer.loads("flash", token, now=self.clock())

    # -- rendering -------------------------------------------------------------------------

    def render(
        self,
        template: str,
        *,
        session: InboxSession | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            session=session, prefix=INBOX_PREFIX, **context
        )
        return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)

    def message(
        self, session: InboxSession | None, status_code: int, title: str, text: str
    ) -> HTMLResponse:
        return self.render(
            "message.html", session=session, status_code=status_code, title=title, text=text
        )

    @staticmethod
    def to_login(request: Request, *, forget: bool) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": target}) if request.method == "GET" else ""
        response = RedirectResponse(
            f"{INBOX_PREFIX}/login" + (f"?{query}" if query else ""), status_code=303
        )
        if forget:
            response.delete_cookie(SESSION_COOKIE, path=INBOX_PREFIX)
        return response

    # -- bills -----------------------------------------------------------------------------

    def waiting_on(self, user_id: str) -> tuple[list[BillRow], bool]:
        rows: list[BillRow] = []
        cursor: str | None = None
        while True:
            page, cursor = self.store.list_bills(
                status=LifecycleStatus.awaiting_approval.value,
                pending_approver=user_id,
                limit=_PAGE_SIZE,
                cursor=cursor,
            )
            rows.extend(page)
            if cursor is None or len(rows) >= MAX_INBOX_ROWS:
                break
        return sorted(rows, key=_sort_key)[:MAX_INBOX_ROWS], cursor is not None

    async def bill_state(self, workflow_id: str) -> tuple[BillState | None, str | None]:
        """The live state from the workflow, else the store's last projection.

        Returns the state and, when it came from the store, why the live one was unavailable.
        """
        live_error: str | None = None
        try:
            return await self.remit.state(workflow_id), None
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                log.warning("querying %s failed: %s", workflow_id, exc)
                live_error = "the workflow engine did not answer; showing the last recorded state"
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            log.warning("querying %s failed: %s", workflow_id, exc)
            live_error = "the bill's workflow could not be asked; showing the last recorded state"
        row = await asyncio.to_thread(self.store.get_bill, workflow_id)
        if row is None:
            return None, live_error
        try:
            return BillState.model_validate(row.state), live_error
        except ValidationError:
            log.exception("stored state of %s does not parse", workflow_id)
            return None, live_error

    async def document_view(self, ref: DocumentRef | None) -> DocumentView | None:
        if ref is None:
            return None
        try:
            content = await asyncio.to_thread(self.documents.get, ref.sha256)
        except DocumentNotFound:
            return DocumentView(ref, False, None, None, "the original is not in the document store")
        except DocumentCorrupted:
            log.error("document %s is corrupted", ref.sha256)
            return DocumentView(ref, False, None, None, "the stored original is damaged")
        preview, kind, note = _preview(content, ref)
        return DocumentView(ref, True, preview, kind, note)

    async def bill_page(
        self,
        session: InboxSession,
        workflow_id: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        comment: str = "",
    ) -> HTMLResponse:
        state, stale = await self.bill_state(workflow_id)
        if state is None:
            return self.message(
                session, 404, "No such bill", f"There is no bill {workflow_id!r} in remit."
            )
        document = await self.document_view(state.document)
        why_not = _why_not(state, session.user_id)
        return self.render(
            "bill.html",
            session=session,
            status_code=status_code,
            state=state,
            stale=stale,
            total=format_money(state.total, state.currency),
            amount_due=format_money(state.amount_due, state.currency),
            lines=_lines(state),
            memo=state.memo,
            document=document,
            decisions=state.decisions,
            payee=PayeeBadge.of(state.payee),
            pending=session.user_id in state.pending_approvers,
            why_not=why_not,
            error=error,
            comment=comment,
            request_id=secrets.token_urlsafe(18),
            users=self.directory.users,
        )


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form, first value of each field (the pages send nothing else)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}


def inbox_router(
    *,
    remit: RemitClient,
    store: Store,
    documents: DocumentStore,
    directory: Directory,
    session_secret: str,
    demo_users: bool,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    """The approval inbox's pages under /inbox; include it in the API app.

    `demo_users` lists everyone in the directory on the sign-in page with a magic link each;
    without it, sign-in links come from `magic_link` (sent by email, or printed by the CLI).
    """
    inbox = _Inbox(
        remit=remit,
        store=store,
        documents=documents,
        directory=directory,
        session_secret=session_secret,
        demo_users=demo_users,
        clock=clock,
    )
    router = APIRouter(prefix=INBOX_PREFIX, include_in_schema=False)

    @router.get("/login")
    async def login(request: Request, next: str | None = None) -> Response:
        target = next if next and _is_inbox_path(next) else None
        links = []
        if inbox.demo_users:
            for user_id, user in sorted(inbox.directory.users.items()):
                links.append(
                    (
                        user_id,
                        user,
                        magic_link(session_secret, user_id, now=inbox.clock(), next_path=target),
                    )
                )
        return inbox.render(
            "login.html", session=inbox.session_of(request), links=links, error=None
        )

    @router.get("/login/magic")
    async def magic(request: Request, token: str = "", next: str | None = None) -> Response:
        data = inbox.signer.loads("magic-link", token, now=inbox.clock())
        user_id = data.get("u") if data else None
        if not isinstance(user_id, str) or user_id not in inbox.directory.users:
            return inbox.render(
                "login.html",
                session=None,
                status_code=400,
                links=[],
                error="This sign-in link is not valid or has expired. Ask for a new one.",
            )
        target = next if next and _is_inbox_path(next) else INBOX_PREFIX
        response = RedirectResponse(target, status_code=303)
        inbox.start_session(response, request, user_id)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=True)
        if not inbox.csrf_ok(session, await _form(request)):
            return inbox.message(
                session, 403, "Not signed out", "The form did not come from this page; try again."
            )
        response = RedirectResponse(f"{INBOX_PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=INBOX_PREFIX)
        return response

    @router.get("")
    async def waiting(request: Request) -> Response:
        session = inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        rows, truncated = await asyncio.to_thread(inbox.waiting_on, session.user_id)
        flash: Flash | None = None
        flashed = inbox.flash_of(request)
        if flashed is not None and flashed.get("u") == session.user_id:
            decided_id = str(flashed.get("w", ""))
            # The store's projection may lag the decision by a moment; the user is done with it.
            rows = [row for row in rows if row.workflow_id != decided_id]
            flash = Flash("success", str(flashed.get("m", "")))
        today = inbox.clock().date()
        response = inbox.render(
            "inbox.html",
            session=session,
            entries=[_entry(row, today) for row in rows],
            truncated=truncated,
            flash=flash,
        )
        if FLASH_COOKIE in request.cookies:
            response.delete_cookie(FLASH_COOKIE, path=INBOX_PREFIX)
        return response

    @router.get("/bills/{workflow_id:path}")
    async def bill(request: Request, workflow_id: str) -> Response:
        session = inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        return await inbox.bill_page(session, workflow_id)

    @router.get("/documents/{workflow_id:path}")
    async def document(request: Request, workflow_id: str) -> Response:
        session = inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        state, _ = await inbox.bill_state(workflow_id)
        ref = state.document if state is not None else None
        if ref is None:
            return inbox.message(
                session, 404, "No document", f"Bill {workflow_id!r} has no original document."
            )
        try:
            content = await asyncio.to_thread(inbox.documents.get, ref.sha256)
        except DocumentNotFound:
            return inbox.message(
                session, 404, "No document", "The original is not in the document store."
            )
        except DocumentCorrupted:
            log.error("document %s is corrupted", ref.sha256)
            return inbox.message(
                session, 500, "Document damaged", "The stored original is damaged."
            )
        # A download, sandboxed: an uploaded XML or HTML file never runs in our origin.
        return Response(
            content,
            media_type=ref.media_type,
            headers={
                "Content-Disposition": _content_disposition(ref.file_name),
                "Content-Security-Policy": "sandbox",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, no-store",
            },
        )

    @router.post("/decisions/{workflow_id:path}")
    async def decide(request: Request, workflow_id: str) -> Response:
        session = inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        form = await _form(request)
        if not inbox.csrf_ok(session, form):
            return inbox.message(
                session,
                403,
                "Decision not recorded",
                "The form did not come from this session (or the session changed). "
                "Open the bill again and decide from there.",
            )
        outcome = form.get("outcome")
        comment = form.get("comment", "").strip()
        if outcome not in ("approve", "reject"):
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=400,
                error="Choose Approve or Reject.",
                comment=comment,
            )
        if len(comment) > MAX_COMMENT_CHARS:
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=400,
                error=f"The comment is {len(comment)} characters; keep it under "
                f"{MAX_COMMENT_CHARS}.",
                comment=comment[:MAX_COMMENT_CHARS],
            )
        if outcome == "reject" and not comment:
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=400,
                error="A rejection needs a reason: say why in the comment.",
            )
        # The form's request id makes a double submit one decision (Temporal dedups by id).
        given = form.get("request_id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_urlsafe(18)
        try:
            record = await inbox.remit.decide(
                workflow_id,
                actor=session.user_id,
                approve=outcome == "approve",
                comment=comment or None,
                request_id=f"inbox/{session.user_id}/{request_id}",
            )
        except WorkflowUpdateFailedError as exc:
            reason = _failure_reason(exc)
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=403,
                error=f"Your decision was not recorded: {reason}",
                comment=comment,
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                row = await asyncio.to_thread(inbox.store.get_bill, workflow_id)
                if row is None:
                    return inbox.message(
                        session, 404, "No such bill", f"There is no bill {workflow_id!r}."
                    )
                return await inbox.bill_page(
                    session,
                    workflow_id,
                    status_code=409,
                    error="Your decision was not recorded: this bill's workflow has finished "
                    f"({row.status}).",
                )
            log.warning("decision on %s by %s failed: %s", workflow_id, session.user_id, exc)
            return inbox.message(
                session,
                503,
                "Decision not confirmed",
                "The workflow engine did not answer. Open the bill again to see whether your "
                "decision was recorded before deciding again.",
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return inbox.message(
                session,
                503,
                "Decision not confirmed",
                "The workflow engine took too long to answer. Open the bill again to see "
                "whether your decision was recorded.",
            )
        row = await asyncio.to_thread(inbox.store.get_bill, workflow_id)
        what = (
            f"{row.document_number or workflow_id} from {row.vendor_name} "
            f"({format_money(row.total, row.currency)})"
            if row is not None
            else workflow_id
        )
        verb = "approved" if record.outcome == "approve" else "rejected"
        response = RedirectResponse(INBOX_PREFIX, status_code=303)
        inbox.set_flash(
            response,
            request,
            {"u": session.user_id, "w": workflow_id, "m": f"You {verb} bill {what}."},
        )
        return response

    return router
