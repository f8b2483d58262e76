"""Shared pieces of the approval-inbox tests: documents, submitting them, the inbox app."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import quote

import httpx
from fastapi import FastAPI

from accounting.formats import CapturedDocument, parse_document
from activities.policy import load_directory
from starter.api.inbox import inbox_router, magic_link
from starter.capture import keep_captured
from starter.payees import PayeeService
from store import BillRow
from tests.workflows.harness import Harness

SESSION_SECRET = "inbox-test-secret-0123456789abcdef"


def bill_document(
    number: str,
    *,
    amount: str,
    due: date,
    issue: date = date(2026, 11, 2),
    account: str = "Office Supplies",
    department: str | None = "Operations",
    bank_account: str | None = None,
) -> bytes:
    """A remit JSON bill from Northwind with two lines that add up to `amount`."""
    first = "100.00"
    rest = str(Decimal(amount) - Decimal(first))
    line: dict[str, str] = {
        "description": "Toner cartridges",
        "quantity": "1",
        "unit_amount": rest,
        "total_amount": rest,
        "account": account,
    }
    if department:
        line["department"] = department
    document = {
        "document_number": number,
        "issue_date": issue.isoformat(),
        "due_date": due.isoformat(),
        "currency_code": "USD",
        "vendor": {
            "name": "Northwind Office Supply",
            "tax_id": "94-1234567",
            **({"bank_account": bank_account} if bank_account else {}),
        },
        "memo": f"office supplies {number}",
        "line_items": [
            {
                "description": "Printer paper",
                "quantity": "2",
                "unit_amount": "50.00",
                "total_amount": first,
                "account": account,
            },
            line,
        ],
        "tax_amount": "0.00",
        "total_amount": amount,
    }
    return json.dumps(document, indent=2).encode()


@dataclass
class Submitted:
    workflow_id: str
    captured: CapturedDocument

    @property
    def number(self) -> str:
        return self.captured.draft.document_number

    @property
    def path(self) -> str:
        return f"/inbox/bills/{quote(self.workflow_id)}"


async def submit_document(
    h: Harness, content: bytes, *, file_name: str, submitted_by: str = "sam"
) -> Submitted:
    """Capture and store the document as `remit submit` does, then start its bill."""
    captured = parse_document(content, file_name=file_name)
    keep_captured(h.documents, captured)
    workflow_id = await h.submit(captured.draft, submitted_by=submitted_by)
    return Submitted(workflow_id, captured)


async def awaiting_approval(h: Harness, workflow_id: str, *, within: float = 30.0) -> BillRow:
    """Poll the store until the bill's projection shows it waiting for approvers."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        row = await asyncio.to_thread(h.store.get_bill, workflow_id)
        if row is not None and row.status == "awaiting_approval" and row.pending_approvers:
            return row
        if asyncio.get_running_loop().time() > deadline:
            state = await h.state(workflow_id)
            raise AssertionError(
                f"{workflow_id} never awaited approval in the store: workflow is "
                f"{state.status} ({state.waiting_for}; {state.review_reasons})"
            )
        await asyncio.sleep(0.05)


def inbox_app(
    h: Harness,
    *,
    demo_users: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    payees: PayeeService | None = None,
) -> FastAPI:
    """The inbox as the stack serves it: reviewing payee changes through a PayeeService (the
    harness's, with the worker's policy and directory) and naming payers by that policy."""
    service = payees or h.payee_service()
    app = FastAPI()
    app.include_router(
        inbox_router(
            remit=h.remit,
            store=h.store,
            documents=h.documents,
            directory=load_directory(),
            session_secret=SESSION_SECRET,
            demo_users=demo_users,
            clock=clock,
            payees=service,
            policy=service.policy,
        )
    )
    return app


# Who the demo directory's admins are (inbox_router's default admin groups): never offered a
# demo link, they sign in with a link remit issues to them.
ADMIN_USERS = frozenset({"olivia"})


async def sign_in(client: httpx.AsyncClient, user_id: str, name: str) -> None:
    """Follow the demo user's magic link from the sign-in page, as a person would (an admin
    follows the one-time link remit issued to them)."""
    if user_id in ADMIN_USERS:
        link = magic_link(SESSION_SECRET, user_id)
    else:
        page = await client.get("/inbox/login")
        assert page.status_code == 200
        match = re.search(rf'href="([^"]+)">Sign in as {re.escape(name)}</a>', page.text)
        assert match, f"no sign-in link for {name} on the login page"
        link = html.unescape(match.group(1))
    landed = await client.get(link)
    assert landed.status_code == 303 and landed.headers["location"] == "/inbox"
    cookie = landed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/inbox" in cookie
    inbox = await client.get("/inbox")
    assert f'<strong>{name}</strong> <span class="muted">({user_id})</span>' in inbox.text


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)
