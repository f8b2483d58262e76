"""The approval inbox: server-rendered pages where approvers sign in, review bills and decide.

Besides bills it covers the other decisions about money: payee changes (verify, approve or
reject new bank details, through `PayeeService`, so every rule and webhook applies) and payment
runs (release, pause, resume, pull a bill out, through the run's workflow updates). Bank
details are shown masked everywhere, free text included.
"""

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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError
from sqlalchemy import Table, select
from sqlmodel import Session
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from accounting import DocumentRef, format_money
from accounting.corrections import DraftCorrections, apply_corrections
from accounting.scan.draft import CaptureRecord
from accounting.scan.ocr import ScanError, image_kind, render_page
from starter.api.auth import bearer_token, lookup_principal
from starter.api.errors import ApiError, error_response
from starter.client import RemitClient
from starter.payees import NotPermitted, PayeeService
from store import (
    ApiKeys,
    BillRow,
    DocumentCorrupted,
    DocumentNotFound,
    DocumentStore,
    InboxSessions,
    PayeeChangeRefused,
    PayeeChangeRow,
    RecordNotFound,
    Store,
)
from workflows.approval import ApprovalPolicy, Directory, User, refusal
from workflows.models import (
    FINAL_STATUSES,
    AppliedCredit,
    BillState,
    LifecycleStatus,
    PayeeStatus,
    PayeeView,
    PaymentState,
)
from workflows.payment_run import RunState, run_refusal

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
MAX_RUNS = 200
MAX_REASON_CHARS = 2000
MAX_METHOD_CHARS = 500
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
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
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


# A link remit issues to one person (by email, or printed for them by an operator), and a
# demo link anyone who opens the sign-in page may take: told apart by the signature's purpose,
# so a demo link stops working when demo sign-in is turned off.
_ISSUED_LINK = "magic-link"
_DEMO_LINK = "demo-link"


def _sign_in_link(
    purpose: str,
    session_secret: str,
    user_id: str,
    *,
    now: datetime | None,
    ttl: timedelta,
    next_path: str | None,
) -> str:
    expires = (now or datetime.now(UTC)) + ttl
    # The nonce is what the store records when the link is used: a link signs in once.
    payload = {"u": user_id, "n": secrets.token_urlsafe(16)}
    token = _Signer(session_secret).dumps(purpose, payload, expires=expires)
    query = {"token": token}
    if next_path and _is_inbox_path(next_path):
        query["next"] = next_path
    return f"{INBOX_PREFIX}/login/magic?{urlencode(query)}"


def magic_link(
    session_secret: str,
    user_id: str,
    *,
    now: datetime | None = None,
    ttl: timedelta = MAGIC_LINK_TTL,
    next_path: str | None = None,
) -> str:
    """The path of a one-time sign-in link for `user_id`, valid for `ttl` (for email or the
    CLI): how anyone signs in when demo sign-in is off, and how an admin always does."""
    return _sign_in_link(
        _ISSUED_LINK, session_secret, user_id, now=now, ttl=ttl, next_path=next_path
    )


@dataclass(frozen=True)
class DemoLink:
    """A demo user's one-time sign-in link, as the sign-in page (or `remit up`) lists it."""

    user_id: str
    user: User
    path: str


def inbox_admins(
    directory: Directory, admin_groups: Collection[str], store: Store | None = None
) -> frozenset[str]:
    """Who is an admin: members of `admin_groups`, and anyone holding a live admin API key."""
    admins = {uid for uid, user in directory.users.items() if set(user.groups) & set(admin_groups)}
    if store is not None:
        admins |= {
            key.user_id
            for key in ApiKeys(store.engine).list_keys()
            if key.revoked_at is None and "admin" in key.scope_set
        }
    return frozenset(admins)


def demo_login_links(
    directory: Directory,
    session_secret: str,
    *,
    enabled: bool,
    admin_groups: Collection[str],
    store: Store | None = None,
    now: datetime | None = None,
    next_path: str | None = None,
) -> list[DemoLink]:
    """One fresh one-time sign-in link per demo user: none unless demo sign-in is `enabled`
    (`Settings.inbox_demo_login`), and never one for an admin (see `inbox_admins`)."""
    if not enabled:
        return []
    admins = inbox_admins(directory, admin_groups, store)
    return [
        DemoLink(
            user_id,
            user,
            _sign_in_link(
                _DEMO_LINK,
                session_secret,
                user_id,
                now=now,
                ttl=MAGIC_LINK_TTL,
                next_path=next_path,
            ),
        )
        for user_id, user in sorted(directory.users.items())
        if user_id not in admins
    ]


def verify_session_cookie(
    token: str,
    *,
    session_secret: str,
    sessions: InboxSessions,
    now: datetime | None = None,
) -> str | None:
    """The user id of a live inbox session named by `token` (the value of the inbox's session
    cookie), or None: forged, expired, or ended on the server (logout). For any surface that
    accepts an inbox sign-in; it reads the store, so call it off the event loop."""
    at = now or datetime.now(UTC)
    data = _Signer(session_secret).loads("session", token, now=at)
    if data is None:
        return None
    user_id, session_id = data.get("u"), data.get("s")
    if not isinstance(user_id, str) or not isinstance(session_id, str):
        return None
    row = sessions.live(session_id, now=at)
    if row is None or not hmac.compare_digest(row.user_id, user_id):
        return None
    return user_id


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
    coding_reason: str | None = None


PreviewKind = Literal["json", "xml", "text"]


@dataclass(frozen=True)
class DocumentView:
    ref: DocumentRef
    available: bool
    preview: str | None
    preview_kind: PreviewKind | None
    note: str | None


@dataclass(frozen=True)
class FieldView:
    """One field capture read, as the inbox shows it (bank details masked)."""

    name: str
    label: str
    value: str
    confidence: int  # percent
    page: int | None
    needs_review: bool


@dataclass(frozen=True)
class MarkView:
    """Where on a page a field was read, in percent of the page (for the highlight)."""

    label: str
    left: float
    top: float
    width: float
    height: float
    needs_review: bool


@dataclass(frozen=True)
class PageView:
    number: int
    url: str
    marks: list[MarkView]


@dataclass(frozen=True)
class CaptureFormLine:
    description: str
    amount: str
    account: str


@dataclass(frozen=True)
class CaptureView:
    """What capture read from the document, how sure it was, and the form to correct it."""

    fields: list[FieldView]
    pages: list[PageView]
    reasons: list[str]
    correctable: bool
    form: dict[str, str]
    lines: list[CaptureFormLine]
    lines_read: int | None


_FIELD_LABELS = {
    "document_number": "Document number",
    "issue_date": "Issue date",
    "due_date": "Due date",
    "vendor_name": "Vendor",
    "tax_id": "Vendor tax id",
    "iban": "IBAN",
    "currency": "Currency",
    "subtotal": "Subtotal",
    "tax": "Tax",
    "total": "Total",
}
MAX_CORRECTED_LINES = 200


def _capture_view(
    record: CaptureRecord, state: BillState, workflow_id: str, may_correct: bool
) -> CaptureView:
    draft = record.draft
    fields: list[FieldView] = []
    pages: list[PageView] = []
    if record.scan is not None:
        marks: dict[int, list[MarkView]] = {}
        sizes = {p.number: (p.width, p.height) for p in record.scan.pages}
        for f in record.scan.fields:
            label = _FIELD_LABELS.get(f.name, f.name)
            value = f.value or "not found"
            if f.name == "iban" and f.value:
                value = mask_text(f.value)
            fields.append(
                FieldView(f.name, label, value, round(f.confidence * 100), f.page, f.needs_review)
            )
            width, height = sizes.get(f.page or 0, (0, 0))
            if f.page and width and height and f.name != "iban":
                for left, top, w, h in f.boxes:
                    marks.setdefault(f.page, []).append(
                        MarkView(
                            label,
                            100 * left / width,
                            100 * top / height,
                            100 * w / width,
                            100 * h / height,
                            f.needs_review,
                        )
                    )
        pages = [
            PageView(
                p.number,
                f"{INBOX_PREFIX}/pages/{p.number}/{quote(workflow_id)}",
                marks.get(p.number, []),
            )
            for p in record.scan.pages
        ]
    open_reasons = set(state.review_reasons) & set(draft.review_reasons)
    form = {
        "document_number": draft.document_number,
        "issue_date": draft.issue_date.isoformat(),
        "due_date": draft.due_date.isoformat() if draft.due_date else "",
        "currency": draft.currency,
        "vendor_name": draft.vendor.name,
        "vendor_tax_id": draft.vendor.tax_id or "",
        "tax_amount": str(draft.tax_amount),
        "total": str(draft.total),
    }
    lines = [
        CaptureFormLine(ln.description or "", str(ln.amount), ln.account or "")
        for ln in draft.lines
    ]
    return CaptureView(
        fields=fields,
        pages=pages,
        reasons=list(draft.review_reasons),
        correctable=may_correct
        and state.status == LifecycleStatus.needs_review
        and bool(open_reasons),
        form=form,
        lines=lines,
        lines_read=record.scan.lines_read if record.scan else None,
    )


def _corrections_from_form(form: dict[str, str]) -> DraftCorrections:
    """The correction form's fields as DraftCorrections (empty fields: no due date, no tax id).

    Raises ValidationError for values that are not what they should be."""
    data: dict[str, Any] = {
        "document_number": form.get("document_number", "").strip() or None,
        "issue_date": form.get("issue_date", "").strip() or None,
        "due_date": form.get("due_date", "").strip() or None,
        "currency": form.get("currency", "").strip() or None,
        "vendor_name": form.get("vendor_name", "").strip() or None,
        "vendor_tax_id": form.get("vendor_tax_id", "").strip() or None,
        "tax_amount": form.get("tax_amount", "").strip() or "0",
        "total": form.get("total", "").strip() or None,
    }
    lines = []
    for n in range(MAX_CORRECTED_LINES):
        amount = form.get(f"line_amount_{n}")
        if amount is None:
            break
        description = form.get(f"line_description_{n}", "").strip()
        if not amount.strip() and not description:
            continue  # a row left empty
        lines.append(
            {
                "description": description or None,
                "amount": amount.strip(),
                "account": form.get(f"line_account_{n}", "").strip() or None,
            }
        )
    data["lines"] = lines or None
    given = {k: v for k, v in data.items() if v is not None or k in ("due_date", "vendor_tax_id")}
    return DraftCorrections.model_validate(given)


def _validation_text(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = " ".join(str(p) for p in first.get("loc", ()) if not isinstance(p, int))
    message = str(first.get("msg", "is not valid")).replace("Value error, ", "")
    return f"{where.replace('_', ' ')}: {message}" if where else message


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


@dataclass(frozen=True)
class SubmittedEntry:
    """A bill the signed-in person submitted, shown read-only with why they cannot decide."""

    entry: InboxEntry
    status: str
    why: str


def _submitted_entry(row: BillRow, today: date, user_id: str) -> SubmittedEntry:
    entry = _entry(row, today)
    if row.status == LifecycleStatus.awaiting_approval.value:
        why = (
            "you submitted this bill; someone else must approve it (separation of duties)"
            if row.submitted_by == user_id
            else "you are not among its pending approvers"
        )
    else:
        why = f"it is not waiting for an approval decision (it is {row.status.replace('_', ' ')})"
    return SubmittedEntry(entry=entry, status=row.status.replace("_", " "), why=why)


# Bills a submitter still follows: every status but the final ones.
_IN_FLIGHT = tuple(sorted(s.value for s in LifecycleStatus if s not in FINAL_STATUSES))


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
                coding_reason=line.coding_reason,
            )
        )
    return views


# Bank details a document may carry, shown masked like every other payee detail (last four).
_BANK_KEYS = re.compile(r"bank_account|account_number|routing|iban", re.IGNORECASE)


def mask_text(value: str) -> str:
    """'021000021/000123456789' → '••••6789': what a screen may show of an account."""
    compact = re.sub(r"[\s/-]", "", value)
    return f"••••{compact[-4:]}" if len(compact) > 4 else "••••"


# Bank details someone typed into free text (a reason, a note, a comment): an IBAN, or a run of
# eight or more digits standing alone (an account or routing number; ids and hashes, where
# digits touch letters, are left alone).
_IBAN_IN_TEXT = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_DIGITS_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])\d{8,}(?![A-Za-z0-9])")


def scrub(value: str | None) -> str:
    """Free text as a page may show it: any IBAN or long account number in it masked."""
    if not value:
        return ""

    def iban(match: re.Match[str]) -> str:
        compact = re.sub(r"\s", "", match.group(0))
        return f"{compact[:2]}••••{compact[-4:]}"

    text = _IBAN_IN_TEXT.sub(iban, value)
    return _DIGITS_IN_TEXT.sub(lambda m: f"••••{m.group(0)[-4:]}", text)


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
# Payments and credits of a bill
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentView:
    attempt: int
    rail: str | None
    rail_payment_id: str | None
    status: str
    amount: str | None
    discount: str | None
    return_code: str | None
    return_reason: str | None
    settled_at: datetime | None
    erp_payment_id: str | None
    erp_voided: bool
    paid_to: str | None
    problem: bool

    @classmethod
    def of(cls, payment: PaymentState, currency: str) -> PaymentView:
        status = payment.status or "not started"
        return cls(
            attempt=payment.attempt,
            rail=payment.rail.value if payment.rail else None,
            rail_payment_id=payment.rail_payment_id,
            status=status,
            amount=format_money(payment.amount, currency) if payment.amount is not None else None,
            discount=format_money(payment.discount, currency) if payment.discount else None,
            return_code=payment.return_code,
            return_reason=scrub(payment.return_reason) or None,
            settled_at=payment.settled_at,
            erp_payment_id=payment.erp_payment_id,
            erp_voided=payment.erp_voided,
            # Always the masked form; a stray full number would be masked again.
            paid_to=scrub(payment.payee_masked) or None,
            problem=status in ("returned", "failed") or payment.erp_voided,
        )


@dataclass(frozen=True)
class CreditView:
    document_number: str
    amount: str
    credit_id: str
    erp_application_id: str | None

    @classmethod
    def of(cls, credit: AppliedCredit, currency: str) -> CreditView:
        return cls(
            document_number=credit.document_number or credit.erp_credit_id,
            amount=format_money(credit.amount, currency),
            credit_id=credit.credit_id,
            erp_application_id=credit.erp_application_id,
        )


def _payments(state: BillState) -> list[PaymentView]:
    payments = list(state.payments)
    listed = {p.rail_payment_id for p in payments}
    if state.payment.rail_payment_id and state.payment.rail_payment_id not in listed:
        payments.append(state.payment)  # a bill from before payments were listed one by one
    return [PaymentView.of(p, state.currency) for p in payments]


# ---------------------------------------------------------------------------------------------
# Payee changes
# ---------------------------------------------------------------------------------------------

PayeeAction = Literal["verify", "approve", "reject"]
_PAYEE_VERBS: dict[str, str] = {"verify": "verified", "approve": "approved", "reject": "rejected"}


@dataclass(frozen=True)
class ApprovalView:
    by: str
    at: str
    comment: str


@dataclass(frozen=True)
class ChangeView:
    """A payee change as a page shows it: masked details and who did what; never the sealed
    details themselves (the row carries them, so the row never reaches a template)."""

    id: str
    connection_id: str
    vendor_id: str
    vendor_name: str
    status: str
    source: str
    details: str
    replaces: str | None
    proposed_by: str
    reason: str
    bill_workflow_id: str | None
    bill_label: str | None
    created_at: datetime
    verified_by: str | None
    verified_at: datetime | None
    verification_method: str
    verification_note: str
    approvals: list[ApprovalView]
    rejected_by: str | None
    rejected_at: datetime | None
    rejection_reason: str
    needs: str | None


def _groups(groups: list[str]) -> str:
    return ", ".join(groups) or "no group"


def _needs(row: PayeeChangeRow, policy: ApprovalPolicy) -> str | None:
    """What the change still waits for, in words (None once it is decided)."""
    if row.status == "proposed":
        return (
            f"verification out of band by a member of {_groups(policy.payee_verifiers)} other "
            f"than {row.proposed_by}, who proposed it"
        )
    if row.status == "verified":
        left = max(policy.payee_approvals_required - len(row.approvals), 0)
        others = [row.proposed_by, *([row.verified_by] if row.verified_by else []), *row.approvers]
        return (
            f"{left} more approval{'s' if left != 1 else ''} by members of "
            f"{_groups(policy.payee_approvers)}, other than {', '.join(dict.fromkeys(others))}"
        )
    return None


def _change_view(
    row: PayeeChangeRow, policy: ApprovalPolicy, bill_label: str | None = None
) -> ChangeView:
    return ChangeView(
        id=row.id,
        connection_id=row.connection_id,
        vendor_id=row.vendor_id,
        vendor_name=row.vendor_name,
        status=row.status,
        source=row.source,
        details=scrub(row.masked),
        replaces=scrub(row.replaces_masked) or None,
        proposed_by=row.proposed_by,
        reason=scrub(row.reason),
        bill_workflow_id=row.bill_workflow_id,
        bill_label=bill_label,
        created_at=row.created_at,
        verified_by=row.verified_by,
        verified_at=row.verified_at,
        verification_method=scrub(row.verification_method),
        verification_note=scrub(row.verification_note),
        approvals=[
            ApprovalView(
                by=str(a.get("by", "")),
                at=str(a.get("at", ""))[:16].replace("T", " "),
                comment=scrub(str(a.get("comment") or "")),
            )
            for a in row.approvals
        ],
        rejected_by=row.rejected_by,
        rejected_at=row.rejected_at,
        rejection_reason=scrub(row.rejection_reason),
        needs=_needs(row, policy),
    )


def payee_refusal(
    action: PayeeAction,
    row: PayeeChangeRow,
    user_id: str,
    policy: ApprovalPolicy,
    directory: Directory,
) -> str | None:
    """Why `user_id` may not take this step now, in the words PayeeService and the store use
    (they decide; this only keeps the page from offering what they would refuse)."""
    if action == "verify":
        if not directory.in_any(user_id, policy.payee_verifiers):
            return (
                f"{user_id} may not verify payee changes: that takes a member of "
                f"{_groups(policy.payee_verifiers)}"
            )
        if row.status != "proposed":
            return f"change {row.id} is {row.status}, not waiting for verification"
        if user_id == row.proposed_by:
            return (
                f"{user_id} proposed this change and cannot also verify it (separation of duties)"
            )
        return None
    if action == "approve":
        if not directory.in_any(user_id, policy.payee_approvers):
            return (
                f"{user_id} may not approve payee changes: that takes a member of "
                f"{_groups(policy.payee_approvers)}"
            )
        if row.status == "proposed":
            return (
                f"change {row.id} is not verified yet: someone must confirm the details out of "
                "band (and record how) before anyone approves"
            )
        if row.status != "verified":
            return f"change {row.id} is {row.status}, not waiting for approval"
        if user_id == row.proposed_by:
            return f"{user_id} proposed this change and cannot approve it (separation of duties)"
        if user_id == row.verified_by:
            return f"{user_id} verified this change; two other people must approve it"
        if user_id in row.approvers:
            return f"{user_id} already approved change {row.id}"
        return None
    if not directory.in_any(user_id, [*policy.payee_verifiers, *policy.payee_approvers]):
        return (
            f"{user_id} may not reject payee changes: that takes a member of "
            f"{_groups([*policy.payee_verifiers, *policy.payee_approvers])}"
        )
    if row.status not in ("proposed", "verified"):
        return f"change {row.id} is already {row.status}"
    return None


# ---------------------------------------------------------------------------------------------
# Payment runs
# ---------------------------------------------------------------------------------------------

RunStep = Literal["release", "pause", "resume", "pull"]
_RUN_REFUSED: dict[str, str] = {
    "release": "Not released",
    "pause": "Not paused",
    "resume": "Not resumed",
    "pull": "Not pulled out",
}
_WAITING_RUN_STATUSES = ("proposed", "paused")


@dataclass(frozen=True)
class RunBillView:
    workflow_id: str
    document_number: str
    due_date: date | None
    amount_due: str
    discount: str | None
    discount_deadline: date | None
    to_pay: str
    excluded: str | None
    submitted_by: str
    payee: str | None


@dataclass(frozen=True)
class RunGroupView:
    vendor_name: str
    vendor_id: str
    currency: str
    payee: str | None
    bills: list[RunBillView]
    cash: str
    pays: bool
    rail_payment_id: str | None
    rail_status: str | None
    erp_payment_id: str | None
    problem: str | None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    connection_id: str
    run_date: date
    status: str
    bills: int
    payments: int
    totals: list[str]
    waiting_for: str

    @classmethod
    def of(cls, state: RunState) -> RunSummary:
        return cls(
            run_id=state.run_id,
            connection_id=state.connection_id,
            run_date=state.run_date,
            status=state.status,
            bills=sum(len(g.payable) for g in state.groups),
            payments=len([g for g in state.groups if g.payable]),
            totals=_run_totals(state),
            waiting_for=scrub(state.waiting_for),
        )


def _run_totals(state: RunState) -> list[str]:
    return [format_money(amount, currency) for currency, amount in state.totals().items()]


def _run_groups(state: RunState) -> list[RunGroupView]:
    views = []
    for group in state.groups:
        bills = [
            RunBillView(
                workflow_id=bill.workflow_id,
                document_number=bill.document_number,
                due_date=bill.due_date,
                amount_due=format_money(bill.amount_due, bill.currency),
                discount=format_money(bill.discount, bill.currency) if bill.discount else None,
                discount_deadline=bill.discount_deadline if bill.discount else None,
                to_pay=format_money(bill.amount_due - bill.discount, bill.currency),
                excluded=scrub(bill.excluded) or None,
                submitted_by=bill.submitted_by,
                payee=scrub(bill.payee_masked) or None,
            )
            for bill in group.bills
        ]
        views.append(
            RunGroupView(
                vendor_name=group.vendor_name,
                vendor_id=group.vendor_id,
                currency=group.currency,
                payee=scrub(group.payee_masked) or None,
                bills=bills,
                cash=format_money(group.cash, group.currency),
                pays=bool(group.payable) and group.cash > 0,
                rail_payment_id=group.rail_payment_id,
                rail_status=group.rail_status,
                erp_payment_id=group.erp_payment_id,
                problem=scrub(group.problem) or None,
            )
        )
    return views


def release_refusal(state: RunState, user_id: str) -> str | None:
    """Why `user_id` may not release the run now, in the run's own words (the workflow
    decides; this keeps the page from offering a button it would refuse)."""
    return run_refusal(state, "release", user_id)


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
        payees: PayeeService | None = None,
        policy: ApprovalPolicy | None = None,
        admin_groups: Collection[str] = (),
        sessions: InboxSessions | None = None,
    ) -> None:
        self.remit = remit
        self.store = store
        self.documents = documents
        self.directory = directory
        self.payees = payees
        self.policy = policy or (payees.policy if payees is not None else None)
        self.session_secret = session_secret
        self.signer = _Signer(session_secret)
        self.demo_users = demo_users
        self.admin_groups = tuple(admin_groups)
        self.sessions = sessions or InboxSessions(store.engine)
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
        self.templates.filters["change_url"] = lambda cid: f"{INBOX_PREFIX}/payees/{quote(cid)}"
        self.templates.filters["change_action_url"] = lambda cid: (
            f"{INBOX_PREFIX}/payee-actions/{quote(cid)}"
        )
        self.templates.filters["run_url"] = lambda rid: f"{INBOX_PREFIX}/runs/{quote(rid)}"
        self.templates.filters["run_action_url"] = lambda rid: (
            f"{INBOX_PREFIX}/run-actions/{quote(rid)}"
        )
        self.templates.filters["scrub"] = scrub
        self.templates.filters["person"] = self.person

    # -- sessions --------------------------------------------------------------------------

    async def session_of(self, request: Request) -> InboxSession | None:
        """The live session the request's cookie names: signed by us, not expired, and not
        ended on the server (a cookie copied before logout is refused)."""
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
        row = await asyncio.to_thread(self.sessions.live, session_id, now=self.clock())
        if row is None or not hmac.compare_digest(row.user_id, user_id):
            return None
        return InboxSession(
            user_id=user_id,
            user=user,
            session_id=session_id,
            csrf_token=self.signer.digest("csrf", session_id),
        )

    async def start_session(self, response: Response, request: Request, user_id: str) -> None:
        now = self.clock()
        # Rows past their expiry are of no use (their cookies and links have expired too):
        # each sign-in sweeps them, which keeps both tables as small as the live sessions.
        await asyncio.to_thread(self.sessions.purge, now=now)
        row = await asyncio.to_thread(self.sessions.start, user_id, now=now, ttl=SESSION_TTL)
        token = self.signer.dumps("session", {"u": user_id, "s": row.id}, expires=row.expires_at)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_TTL.total_seconds()),
            path=INBOX_PREFIX,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def is_admin(self, user_id: str) -> bool:
        return user_id in inbox_admins(self.directory, self.admin_groups, self.store)

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

    def flash_for(self, request: Request, session: InboxSession) -> Flash | None:
        """The flash message meant for this person on this page (`p`, the inbox by default)."""
        flashed = self.flash_of(request)
        if flashed is None or flashed.get("u") != session.user_id:
            return None
        if flashed.get("p", INBOX_PREFIX) != request.url.path:
            return None
        return Flash(
            "error" if flashed.get("k") == "error" else "success", str(flashed.get("m", ""))
        )

    def redirect_with_flash(
        self, request: Request, session: InboxSession, path: str, message: str
    ) -> RedirectResponse:
        """To `path` (as the router sees it, unquoted), with a message shown there once."""
        response = RedirectResponse(quote(path), status_code=303)
        self.set_flash(response, request, {"u": session.user_id, "p": path, "m": message})
        return response

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
            session=session,
            prefix=INBOX_PREFIX,
            payees_enabled=self.payees is not None,
            **context,
        )
        return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)

    def person(self, user_id: str | None) -> str:
        """'Carol Controller (carol)', or the id of someone the directory does not know."""
        if not user_id:
            return ""
        user = self.directory.users.get(user_id)
        return f"{user.name} ({user_id})" if user is not None else user_id

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

    def submitted_by(self, user_id: str) -> list[BillRow]:
        """The bills this person submitted that are still in flight, soonest due first."""
        table = cast(Table, cast(Any, BillRow).__table__)
        statement = (
            select(BillRow)
            .where(table.c.status.in_(_IN_FLIGHT), table.c.submitted_by == user_id)
            .order_by(table.c.created_at, table.c.workflow_id)
            .limit(MAX_INBOX_ROWS)
        )
        with Session(self.store.engine) as session:
            rows = list(session.scalars(statement))
        return sorted(rows, key=_sort_key)

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

    def capture_record(self, state: BillState) -> CaptureRecord | None:
        if state.document is None:
            return None
        raw = self.documents.capture(state.document.sha256)
        if raw is None:
            return None
        try:
            return CaptureRecord.model_validate_json(raw)
        except ValidationError:
            log.exception("capture record of %s does not parse", state.document.sha256)
            return None

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
        record = await asyncio.to_thread(self.capture_record, state)
        capture = (
            _capture_view(record, state, workflow_id, self.is_admin(session.user_id))
            if record is not None
            else None
        )
        return self.render(
            "bill.html",
            capture=capture,
            correction_url=f"{INBOX_PREFIX}/corrections/{quote(workflow_id)}",
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
            payee_change_id=state.payee.change_id if state.payee else None,
            payments=_payments(state),
            credits=[CreditView.of(c, state.currency) for c in state.credits_applied],
            pending=session.user_id in state.pending_approvers,
            why_not=why_not,
            error=error,
            comment=comment,
            request_id=secrets.token_urlsafe(18),
            users=self.directory.users,
        )

    # -- payee changes ---------------------------------------------------------------------

    def changes_waiting_on(self, user_id: str) -> tuple[list[PayeeChangeRow], list[PayeeChangeRow]]:
        """The changes this person may verify, and those they may approve, oldest first."""
        if self.payees is None or self.policy is None:
            return [], []
        to_verify = [
            row
            for row in self.payees.payees.list_changes(status="proposed")
            if payee_refusal("verify", row, user_id, self.policy, self.directory) is None
        ]
        to_approve = [
            row
            for row in self.payees.payees.list_changes(status="verified")
            if payee_refusal("approve", row, user_id, self.policy, self.directory) is None
        ]
        return to_verify[:MAX_INBOX_ROWS], to_approve[:MAX_INBOX_ROWS]

    def change_views(self, rows: list[PayeeChangeRow]) -> list[ChangeView]:
        """Views of the changes, each naming the bill it came from by its document number."""
        assert self.policy is not None
        labels: dict[str, str] = {}
        for row in rows:
            wid = row.bill_workflow_id
            if wid and wid not in labels:
                bill = self.store.get_bill(wid)
                labels[wid] = (
                    f"Bill {bill.document_number or '(no number)'}" if bill is not None else wid
                )
        return [
            _change_view(row, self.policy, labels.get(row.bill_workflow_id or "")) for row in rows
        ]

    async def change_page(
        self,
        session: InboxSession,
        change_id: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        form: dict[str, str] | None = None,
        flash: Flash | None = None,
    ) -> HTMLResponse:
        if self.payees is None or self.policy is None:
            return self.message(
                session, 404, "No payee changes here", "This inbox does not review payee changes."
            )
        row = await asyncio.to_thread(self.payees.payees.get_change, change_id)
        if row is None:
            return self.message(
                session, 404, "No such payee change", f"There is no payee change {change_id!r}."
            )
        policy, user_id = self.policy, session.user_id
        return self.render(
            "payee_change.html",
            section="payees",
            session=session,
            status_code=status_code,
            change=(await asyncio.to_thread(self.change_views, [row]))[0],
            refusals={
                action: payee_refusal(action, row, user_id, policy, self.directory)
                for action in ("verify", "approve", "reject")
            },
            error=error,
            flash=flash,
            form=form or {},
        )

    # -- payment runs ----------------------------------------------------------------------

    def may_steer(self, user_id: str, state: RunState) -> bool:
        """Pause, resume and pull are for the policy's payers (the run's own, without one)."""
        if self.policy is not None:
            return self.directory.in_any(user_id, [self.policy.payers_group])
        return user_id in state.payers

    def _runs_named_by_bills(self) -> set[str]:
        """Runs the store's bills say they are in (a proposed run tells its bills so)."""
        found: set[str] = set()
        cursor: str | None = None
        seen = 0
        while True:
            rows, cursor = self.store.list_bills(
                status=LifecycleStatus.scheduled.value, limit=_PAGE_SIZE, cursor=cursor
            )
            seen += len(rows)
            for row in rows:
                run_id = row.state.get("payment_run_id") if isinstance(row.state, dict) else None
                if isinstance(run_id, str) and run_id:
                    found.add(run_id)
            if cursor is None or seen >= MAX_INBOX_ROWS:
                return found

    async def run_or_none(self, run_id: str) -> RunState | None:
        try:
            return await self.remit.run_state(run_id)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                log.warning("querying payment run %s failed: %s", run_id, exc)
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            log.warning("querying payment run %s failed: %s", run_id, exc)
        return None

    async def runs_waiting(self) -> tuple[list[RunState], str | None]:
        """Runs waiting for release (proposed or paused), oldest run date first.

        Temporal's visibility lists the running runs; the store's bills name the runs that
        took them (the only source where visibility is not available, as on the test server).
        Returns the runs and, when visibility did not answer, a note saying so.
        """
        ids: set[str] = set()
        note: str | None = None
        query = 'WorkflowType = "PaymentRunWorkflow" AND ExecutionStatus = "Running"'
        try:
            async for execution in self.remit.temporal.list_workflows(query, limit=MAX_RUNS):
                ids.add(execution.id)
        except RPCError as exc:
            if exc.status != RPCStatusCode.UNIMPLEMENTED:
                log.warning("listing payment runs failed: %s", exc)
                note = (
                    "The workflow engine's list of runs did not answer; only runs that hold "
                    "bills are shown."
                )
        ids |= await asyncio.to_thread(self._runs_named_by_bills)
        limit = asyncio.Semaphore(8)

        async def one(run_id: str) -> RunState | None:
            async with limit:
                return await self.run_or_none(run_id)

        states = await asyncio.gather(*(one(run_id) for run_id in sorted(ids)[:MAX_RUNS]))
        waiting = [s for s in states if s is not None and s.status in _WAITING_RUN_STATUSES]
        return sorted(waiting, key=lambda s: (s.run_date, s.run_id)), note

    async def run_page(
        self,
        session: InboxSession,
        run_id: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        flash: Flash | None = None,
        form: dict[str, str] | None = None,
    ) -> HTMLResponse:
        try:
            state = await self.remit.run_state(run_id)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return self.message(
                    session, 404, "No such payment run", f"There is no payment run {run_id!r}."
                )
            log.warning("querying payment run %s failed: %s", run_id, exc)
            return self.message(
                session,
                503,
                "Payment run unavailable",
                "The workflow engine did not answer; try again in a moment.",
            )
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
            log.warning("querying payment run %s failed: %s", run_id, exc)
            return self.message(
                session,
                503,
                "Payment run unavailable",
                "The payment run could not be asked for its state; try again in a moment.",
            )
        steerable = state.status in _WAITING_RUN_STATUSES
        return self.render(
            "run.html",
            section="runs",
            session=session,
            status_code=status_code,
            run=state,
            summary=RunSummary.of(state),
            groups=_run_groups(state),
            log_lines=[scrub(line) for line in state.log],
            may_steer=self.may_steer(session.user_id, state),
            steerable=steerable,
            why_not_release=release_refusal(state, session.user_id),
            payers_group=self.policy.payers_group if self.policy else None,
            error=error,
            flash=flash,
            form=form or {},
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
    payees: PayeeService | None = None,
    policy: ApprovalPolicy | None = None,
    admin_groups: Collection[str] = ("operators",),
    sessions: InboxSessions | None = None,
) -> APIRouter:
    """The approval inbox's pages under /inbox; include it in the API app.

    `demo_users` (`Settings.inbox_demo_login`) lists a one-time demo link on the sign-in page
    for everyone in the directory but the admins (`admin_groups`, `inbox_admins`), and accepts
    those links; without it, sign-in links come from `magic_link` (sent by email, or printed by
    the CLI). Every link signs in once; sessions are rows in `sessions` (default: the store's),
    and logout ends them.
    With `payees` (the API's PayeeService), the inbox reviews payee changes too; `policy`
    (default: the service's) names who releases payment runs (`payers_group`).
    """
    inbox = _Inbox(
        remit=remit,
        store=store,
        documents=documents,
        directory=directory,
        session_secret=session_secret,
        demo_users=demo_users,
        clock=clock,
        payees=payees,
        policy=policy,
        admin_groups=admin_groups,
        sessions=sessions,
    )
    router = APIRouter(prefix=INBOX_PREFIX, include_in_schema=False)

    def login_page(
        request: Request, status_code: int, error: str | None, *, retry: bool = False
    ) -> HTMLResponse:
        return inbox.render(
            "login.html",
            session=None,
            status_code=status_code,
            links=[],
            error=error,
            retry=retry,
            base_url=str(request.base_url).rstrip("/"),
        )

    @router.get("/login")
    async def login(request: Request, next: str | None = None) -> Response:
        target = next if next and _is_inbox_path(next) else None
        links = await asyncio.to_thread(
            demo_login_links,
            inbox.directory,
            session_secret,
            enabled=inbox.demo_users,
            admin_groups=inbox.admin_groups,
            store=inbox.store,
            now=inbox.clock(),
            next_path=target,
        )
        return inbox.render(
            "login.html",
            session=await inbox.session_of(request),
            links=links,
            error=None,
            retry=False,
            base_url=str(request.base_url).rstrip("/"),
        )

    @router.get("/login/magic")
    async def magic(request: Request, token: str = "", next: str | None = None) -> Response:
        now = inbox.clock()
        demo = False
        data = inbox.signer.loads(_ISSUED_LINK, token, now=now)
        if data is None:
            data = inbox.signer.loads(_DEMO_LINK, token, now=now)
            demo = data is not None
        user_id = data.get("u") if data else None
        nonce = data.get("n") if data else None
        if (
            data is None
            or not isinstance(user_id, str)
            or not isinstance(nonce, str)
            or user_id not in inbox.directory.users
        ):
            return login_page(
                request, 400, "This sign-in link is not valid or has expired. Ask for a new one."
            )
        if demo and not inbox.demo_users:
            return login_page(
                request,
                403,
                "Demo sign-in is off on this server, so its links no longer work. Sign in with "
                f"the link remit sent you, or get one with your API key: POST {INBOX_PREFIX}"
                "/sign-in-links.",
            )
        if demo and await asyncio.to_thread(inbox.is_admin, user_id):
            return login_page(
                request,
                403,
                f"{user_id} is an admin: admins never sign in with a demo link. Get a link "
                f"of your own with your API key: POST {INBOX_PREFIX}/sign-in-links.",
            )
        expires = datetime.fromtimestamp(data["exp"], UTC)
        first = await asyncio.to_thread(
            inbox.sessions.use_link, nonce, user_id, now=now, expires_at=expires
        )
        if not first:
            how = (
                "Open the sign-in page again for a fresh link."
                if demo
                else "Ask for a new link, or get one with your API key: "
                f"POST {INBOX_PREFIX}/sign-in-links."
            )
            return login_page(
                request,
                410,
                f"This sign-in link was already used; each link signs in once. {how}",
                retry=demo,
            )
        target = next if next and _is_inbox_path(next) else INBOX_PREFIX
        response = RedirectResponse(target, status_code=303)
        await inbox.start_session(response, request, user_id)
        return response

    @router.post("/sign-in-links", status_code=201)
    async def sign_in_link(request: Request, next: str | None = None) -> Response:
        """A one-time sign-in link for the API key's own user: how a person (an admin
        included) signs in when no link is listed on the sign-in page."""
        token = bearer_token(request.headers.get("authorization"))
        principal = (
            await asyncio.to_thread(lookup_principal, ApiKeys(inbox.store.engine), token)
            if token
            else None
        )
        if principal is None:
            return error_response(
                request,
                ApiError(
                    401,
                    "authentication_error",
                    "send your API key (`Authorization: Bearer <key>`) to get a sign-in link",
                    headers={"WWW-Authenticate": "Bearer"},
                    replayable=False,
                ),
            )
        if not principal.allows("decide"):
            return error_response(
                request,
                ApiError(
                    403,
                    "permission_error",
                    f"key {principal.key_id} may not sign in to the inbox: that takes a key "
                    "with the decide (or admin) scope",
                    replayable=False,
                ),
            )
        if principal.user_id not in inbox.directory.users:
            return error_response(
                request,
                ApiError(
                    403,
                    "permission_error",
                    f"{principal.user_id} is not in the inbox's directory; ask an admin to "
                    "add them",
                    replayable=False,
                ),
            )
        if next is not None and not _is_inbox_path(next):
            return error_response(
                request,
                ApiError(
                    422,
                    "invalid_request_error",
                    "next must be a path inside the inbox, e.g. /inbox/bills/<id>",
                    param="next",
                ),
            )
        now = inbox.clock()
        path = magic_link(session_secret, principal.user_id, now=now, next_path=next)
        return JSONResponse(
            {
                "user_id": principal.user_id,
                "path": path,
                "url": str(request.base_url).rstrip("/") + path,
                "expires_at": (now + MAGIC_LINK_TTL).isoformat(),
            },
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=True)
        if not inbox.csrf_ok(session, await _form(request)):
            return inbox.message(
                session, 403, "Not signed out", "The form did not come from this page; try again."
            )
        # Ended on the server: the cookie, or any copy of it, no longer signs anyone in.
        await asyncio.to_thread(inbox.sessions.end, session.session_id, now=inbox.clock())
        response = RedirectResponse(f"{INBOX_PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=INBOX_PREFIX)
        return response

    @router.get("")
    async def waiting(request: Request) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        rows, truncated = await asyncio.to_thread(inbox.waiting_on, session.user_id)
        submitted = await asyncio.to_thread(inbox.submitted_by, session.user_id)
        flash: Flash | None = None
        flashed = inbox.flash_of(request)
        if (
            flashed is not None
            and flashed.get("u") == session.user_id
            and flashed.get("p", INBOX_PREFIX) == INBOX_PREFIX
        ):
            decided_id = str(flashed.get("w", ""))
            # The store's projection may lag the decision by a moment; the user is done with it.
            rows = [row for row in rows if row.workflow_id != decided_id]
            flash = Flash("success", str(flashed.get("m", "")))
        today = inbox.clock().date()
        to_verify, to_approve = await asyncio.to_thread(inbox.changes_waiting_on, session.user_id)
        response = inbox.render(
            "inbox.html",
            session=session,
            entries=[_entry(row, today) for row in rows],
            truncated=truncated,
            submitted=[_submitted_entry(row, today, session.user_id) for row in submitted],
            flash=flash,
            changes_waiting=len(to_verify) + len(to_approve),
        )
        if FLASH_COOKIE in request.cookies:
            response.delete_cookie(FLASH_COOKIE, path=INBOX_PREFIX)
        return response

    @router.get("/bills/{workflow_id:path}")
    async def bill(request: Request, workflow_id: str) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        return await inbox.bill_page(session, workflow_id)

    @router.get("/documents/{workflow_id:path}")
    async def document(request: Request, workflow_id: str) -> Response:
        session = await inbox.session_of(request)
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

    @router.get("/pages/{number}/{workflow_id:path}")
    async def page(request: Request, number: int, workflow_id: str) -> Response:
        """A page of the bill's document as an image, for reading beside what OCR found."""
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        state, _ = await inbox.bill_state(workflow_id)
        ref = state.document if state is not None else None
        if ref is None:
            return inbox.message(session, 404, "No document", "This bill has no document.")
        try:
            content = await asyncio.to_thread(inbox.documents.get, ref.sha256)
            kind = image_kind(content)
            if kind in ("png", "jpg") and number == 1:
                image, media = content, "image/png" if kind == "png" else "image/jpeg"
            elif content.startswith(b"%PDF"):
                image = await asyncio.to_thread(
                    inbox.documents.page_image,
                    ref.sha256,
                    number,
                    lambda pdf: render_page(pdf, number),
                )
                media = "image/png"
            else:
                return inbox.message(
                    session, 404, "No page image", "This document's pages cannot be shown here."
                )
        except (DocumentNotFound, DocumentCorrupted):
            return inbox.message(session, 404, "No document", "The original is not readable.")
        except ScanError as exc:
            return inbox.message(session, 404, "No page image", exc.message)
        return Response(
            image,
            media_type=media,
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
        )

    @router.post("/corrections/{workflow_id:path}")
    async def correct(request: Request, workflow_id: str) -> Response:
        """A person's corrections to what capture read: validated, then the bill goes on."""
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        form = await _form(request)
        if not inbox.csrf_ok(session, form):
            return inbox.message(
                session,
                403,
                "Corrections not recorded",
                "The form did not come from this session. Open the bill again.",
            )
        if not inbox.is_admin(session.user_id):
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=403,
                error="Only an administrator may correct what capture read.",
            )
        state, _ = await inbox.bill_state(workflow_id)
        record = await asyncio.to_thread(inbox.capture_record, state) if state else None
        if state is None or record is None:
            return inbox.message(
                session, 404, "Nothing to correct", "This bill has no capture record."
            )
        if not _capture_view(record, state, workflow_id, True).correctable:
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=409,
                error="This bill is not waiting for a review of what capture read.",
            )
        try:
            corrected = apply_corrections(record.draft, _corrections_from_form(form))
        except ValidationError as exc:
            return await inbox.bill_page(
                session,
                workflow_id,
                status_code=422,
                error=f"Not corrected — {_validation_text(exc)}",
            )
        try:
            await inbox.remit.resolve(
                workflow_id,
                actor=session.user_id,
                reason="reviewed what capture read",
                draft=corrected,
            )
        except RPCError as exc:
            log.warning("correction of %s by %s failed: %s", workflow_id, session.user_id, exc)
            return inbox.message(
                session,
                503,
                "Corrections not confirmed",
                "The workflow engine did not answer. Open the bill again to see whether they "
                "were taken.",
            )
        response = RedirectResponse(f"{INBOX_PREFIX}/bills/{quote(workflow_id)}", status_code=303)
        return response

    @router.post("/decisions/{workflow_id:path}")
    async def decide(request: Request, workflow_id: str) -> Response:
        session = await inbox.session_of(request)
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

    # -- payee changes -------------------------------------------------------------------------

    @router.get("/payees")
    async def payee_changes(request: Request) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        if inbox.payees is None or inbox.policy is None:
            return inbox.message(
                session, 404, "No payee changes here", "This inbox does not review payee changes."
            )
        policy = inbox.policy
        to_verify, to_approve = await asyncio.to_thread(inbox.changes_waiting_on, session.user_id)
        flash = inbox.flash_for(request, session)
        response = inbox.render(
            "payees.html",
            section="payees",
            session=session,
            to_verify=await asyncio.to_thread(inbox.change_views, to_verify),
            to_approve=await asyncio.to_thread(inbox.change_views, to_approve),
            verifier=inbox.directory.in_any(session.user_id, policy.payee_verifiers),
            approver=inbox.directory.in_any(session.user_id, policy.payee_approvers),
            policy=policy,
            flash=flash,
        )
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=INBOX_PREFIX)
        return response

    @router.get("/payees/{change_id}")
    async def payee_change(request: Request, change_id: str) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        flash = inbox.flash_for(request, session)
        response = await inbox.change_page(session, change_id, flash=flash)
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=INBOX_PREFIX)
        return response

    @router.post("/payee-actions/{change_id}")
    async def payee_action(request: Request, change_id: str) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        form = await _form(request)
        if not inbox.csrf_ok(session, form):
            return inbox.message(
                session,
                403,
                "Nothing recorded",
                "The form did not come from this session (or the session changed). "
                "Open the payee change again and act from there.",
            )
        service = inbox.payees
        if service is None:
            return inbox.message(
                session, 404, "No payee changes here", "This inbox does not review payee changes."
            )
        action = form.get("action")
        method = form.get("method", "").strip()
        note = form.get("note", "").strip()
        comment = form.get("comment", "").strip()
        reason = form.get("reason", "").strip()
        kept = {"method": method, "note": note, "comment": comment, "reason": reason}

        async def again(status_code: int, error: str) -> HTMLResponse:
            return await inbox.change_page(
                session, change_id, status_code=status_code, error=error, form=kept
            )

        if action not in ("verify", "approve", "reject"):
            return await again(400, "Choose Verify, Approve or Reject.")
        for name, value, most in (
            ("method", method, MAX_METHOD_CHARS),
            ("note", note, MAX_COMMENT_CHARS),
            ("comment", comment, MAX_COMMENT_CHARS),
            ("reason", reason, MAX_REASON_CHARS),
        ):
            if len(value) > most:
                kept[name] = value[:most]
                return await again(
                    400, f"The {name} is {len(value)} characters; keep it under {most}."
                )
        if action == "verify" and len(method) < 3:
            return await again(
                400,
                "Say how the details were verified, e.g. 'call-back to the number on file'.",
            )
        if action == "reject" and not reason:
            return await again(400, "A rejection needs a reason: say why.")
        verb = _PAYEE_VERBS[action]
        try:
            if action == "verify":
                decision = await service.verify(
                    change_id, by=session.user_id, method=method, note=note or None
                )
            elif action == "approve":
                decision = await service.approve(
                    change_id, by=session.user_id, comment=comment or None
                )
            else:
                decision = await service.reject(change_id, by=session.user_id, reason=reason)
        except NotPermitted as err:
            return await again(403, f"Not {verb}: {err}")
        except RecordNotFound:
            return inbox.message(
                session, 404, "No such payee change", f"There is no payee change {change_id!r}."
            )
        except PayeeChangeRefused as err:
            return await again(409, f"Not {verb}: {err}")
        except RPCError as exc:
            # The step is recorded (the store committed it); telling others is what failed.
            log.warning("after %s of %s by %s: %s", action, change_id, session.user_id, exc)
            row = await asyncio.to_thread(service.payees.get_change, change_id)
            return inbox.redirect_with_flash(
                request,
                session,
                f"{INBOX_PREFIX}/payees",
                f"You {verb} payee change {change_id}"
                + (f" for {row.vendor_name}" if row else "")
                + ". The workflow engine did not answer, so held bills and webhook receivers "
                "may hear of it late.",
            )
        change = decision.change
        what = f"payee change {change.id} for {change.vendor_name} ({scrub(change.masked)})"
        if decision.payee is not None:
            outcome = f"; {scrub(change.masked)} is now {change.vendor_name}'s verified payee"
        elif change.status == "verified" and action == "approve":
            left = max(service.policy.payee_approvals_required - len(change.approvals), 0)
            outcome = f"; it needs {left} more approval{'s' if left != 1 else ''}"
        elif action == "verify":
            outcome = (
                f"; it now needs {service.policy.payee_approvals_required} approvals by "
                f"members of {_groups(service.policy.payee_approvers)}"
            )
        else:
            outcome = ""
        return inbox.redirect_with_flash(
            request, session, f"{INBOX_PREFIX}/payees", f"You {verb} {what}{outcome}."
        )

    # -- payment runs --------------------------------------------------------------------------

    @router.get("/runs")
    async def runs(request: Request) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        waiting, note = await inbox.runs_waiting()
        return inbox.render(
            "runs.html",
            section="runs",
            session=session,
            runs=[RunSummary.of(state) for state in waiting],
            note=note,
            payer=inbox.policy is not None
            and inbox.directory.in_any(session.user_id, [inbox.policy.payers_group]),
            payers_group=inbox.policy.payers_group if inbox.policy else None,
        )

    @router.get("/runs/{run_id:path}")
    async def run(request: Request, run_id: str) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        flash = inbox.flash_for(request, session)
        response = await inbox.run_page(session, run_id, flash=flash)
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=INBOX_PREFIX)
        return response

    @router.post("/run-actions/{run_id:path}")
    async def run_action(request: Request, run_id: str) -> Response:
        session = await inbox.session_of(request)
        if session is None:
            return inbox.to_login(request, forget=SESSION_COOKIE in request.cookies)
        form = await _form(request)
        if not inbox.csrf_ok(session, form):
            return inbox.message(
                session,
                403,
                "Nothing recorded",
                "The form did not come from this session (or the session changed). "
                "Open the payment run again and act from there.",
            )
        action = form.get("action")
        reason = form.get("reason", "").strip()
        bill_id = form.get("bill_id", "").strip()
        kept = {"reason": reason, "bill_id": bill_id}

        async def again(status_code: int, error: str) -> HTMLResponse:
            return await inbox.run_page(
                session, run_id, status_code=status_code, error=error, form=kept
            )

        if action not in ("release", "pause", "resume", "pull"):
            return await again(400, "Choose Release, Pause, Resume or Pull out.")
        step = cast(RunStep, action)
        if len(reason) > MAX_REASON_CHARS:
            kept["reason"] = reason[:MAX_REASON_CHARS]
            return await again(
                400, f"The reason is {len(reason)} characters; keep it under {MAX_REASON_CHARS}."
            )
        if step == "pull" and not bill_id:
            return await again(400, "Choose the bill to pull out of the run.")
        if step == "pull" and not reason:
            return await again(400, "Say why the bill comes out of the run.")
        refused = _RUN_REFUSED[step]
        if step != "release":
            # The run's workflow checks who releases; pausing, resuming and pulling bills out
            # are for payers too, and the inbox checks that.
            current = await inbox.run_or_none(run_id)
            if current is None:
                return inbox.message(
                    session, 404, "No such payment run", f"There is no payment run {run_id!r}."
                )
            if not inbox.may_steer(session.user_id, current):
                group = inbox.policy.payers_group if inbox.policy else "the run's payers"
                return await again(
                    403,
                    f"{refused}: {session.user_id} may not steer payment runs: that takes a "
                    f"member of {group}",
                )
        try:
            state = await inbox.remit.steer_run(
                run_id,
                step,
                actor=session.user_id,
                reason=(reason or None) if step in ("pause", "pull") else None,
                bill_id=bill_id if step == "pull" else None,
            )
        except WorkflowUpdateFailedError as exc:
            return await again(403, f"{refused}: {_failure_reason(exc)}")
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                current = await inbox.run_or_none(run_id)
                if current is None:
                    return inbox.message(
                        session, 404, "No such payment run", f"There is no payment run {run_id!r}."
                    )
                return await again(409, f"{refused}: the run has finished ({current.status}).")
            log.warning("%s of run %s by %s failed: %s", step, run_id, session.user_id, exc)
            return inbox.message(
                session,
                503,
                "Not confirmed",
                "The workflow engine did not answer. Open the payment run again to see whether "
                "it took your action before trying again.",
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return inbox.message(
                session,
                503,
                "Not confirmed",
                "The workflow engine took too long to answer. Open the payment run again to see "
                "whether it took your action.",
            )
        totals = ", ".join(_run_totals(state)) or "nothing to pay"
        if step == "pull":
            numbers = [
                b.document_number for g in state.groups for b in g.bills if b.workflow_id == bill_id
            ]
            message = (
                f"You pulled {numbers[0] if numbers else bill_id} out of payment run {run_id}; "
                f"it now pays {totals}."
            )
        elif step == "release":
            message = f"You released payment run {run_id} ({totals})."
        else:
            message = f"You {'paused' if step == 'pause' else 'resumed'} payment run {run_id}."
        return inbox.redirect_with_flash(request, session, f"{INBOX_PREFIX}/runs/{run_id}", message)

    return router
