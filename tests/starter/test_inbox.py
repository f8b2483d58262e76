"""The approval inbox over HTTP: sign-in, sessions, CSRF, the list, a bill's page, decisions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from starter.api.inbox import SESSION_COOKIE, _Signer, magic_link
from tests.starter.api_harness import fresh_time_skipping_env
from tests.starter.inbox_support import (
    SESSION_SECRET,
    Submitted,
    awaiting_approval,
    bill_document,
    csrf_of,
    inbox_app,
    sign_in,
    submit_document,
)
from tests.workflows.harness import Harness, running_remit
from workflows.models import LifecycleStatus

BASE = "http://remit"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    # A test server of its own: bills these tests leave waiting for a decision would stall
    # time skipping for later tests on the shared one.
    async with fresh_time_skipping_env() as env, running_remit(env, tmp_path) as harness:
        yield harness


@pytest.fixture
async def web(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=inbox_app(h))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def waiting_bill(
    h: Harness,
    number: str = "INV-7001",
    *,
    amount: str = "900.00",
    due: date = date(2026, 12, 2),
    issue: date = date(2026, 11, 2),
    submitted_by: str = "sam",
) -> Submitted:
    bill = await submit_document(
        h,
        bill_document(number, amount=amount, due=due, issue=issue),
        file_name=f"{number}.json",
        submitted_by=submitted_by,
    )
    await awaiting_approval(h, bill.workflow_id)
    return bill


def request_id_of(page: httpx.Response) -> str:
    match = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert match, "no request id on the page"
    return match.group(1)


# ---- sign-in and sessions -------------------------------------------------------------------


async def test_signed_out_visitors_are_sent_to_the_login_page(web: httpx.AsyncClient) -> None:
    response = await web.get("/inbox")
    assert response.status_code == 303
    assert response.headers["location"] == "/inbox/login?next=%2Finbox"
    login = await web.get("/inbox/login")
    for name in ("Alice Approver", "Bob Approver", "Sam Clerk"):
        assert f"Sign in as {name}" in login.text


async def test_forged_tampered_or_expired_sessions_are_refused(
    h: Harness, web: httpx.AsyncClient
) -> None:
    await sign_in(web, "alice", "Alice Approver")
    genuine = web.cookies[SESSION_COOKIE]
    assert (await web.get("/inbox")).status_code == 200

    now = datetime.now(UTC)
    other_secret = _Signer("not-the-server-secret-at-all").dumps(
        "session", {"u": "alice", "s": "x" * 22}, expires=now + timedelta(hours=1)
    )
    body, _, signature = genuine.partition(".")
    tampered_body = _Signer(SESSION_SECRET).dumps(
        "session", {"u": "dave", "s": "x" * 22}, expires=now + timedelta(hours=1)
    )
    spliced = f"{tampered_body.partition('.')[0]}.{signature}"  # dave's claims, alice's MAC
    expired = _Signer(SESSION_SECRET).dumps(
        "session", {"u": "alice", "s": "x" * 22}, expires=now - timedelta(seconds=1)
    )
    flash_as_session = _Signer(SESSION_SECRET).dumps(
        "flash", {"u": "alice", "s": "x" * 22}, expires=now + timedelta(hours=1)
    )
    for forged in ("alice", body, other_secret, spliced, expired, flash_as_session):
        web.cookies.clear()
        response = await web.get("/inbox", headers={"Cookie": f"{SESSION_COOKIE}={forged}"})
        assert response.status_code == 303, forged
        assert response.headers["location"].startswith("/inbox/login")
        # The bad cookie is dropped so the browser stops sending it.
        assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]


async def test_magic_links_expire_and_cannot_be_forged(h: Harness) -> None:
    issued = datetime.now(UTC)
    transport = httpx.ASGITransport(app=inbox_app(h, clock=lambda: issued + timedelta(hours=1)))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as late:
        stale = await late.get(magic_link(SESSION_SECRET, "alice", now=issued))
        assert stale.status_code == 400
        assert "not valid or has expired" in stale.text
        assert SESSION_COOKIE not in late.cookies

    transport = httpx.ASGITransport(app=inbox_app(h))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as web:
        forged = await web.get(magic_link("some-other-secret-entirely", "alice"))
        assert forged.status_code == 400
        unknown = await web.get(magic_link(SESSION_SECRET, "mallory"))
        assert unknown.status_code == 400
        # A deep link survives sign-in, but only towards the inbox itself.
        deep = await web.get(magic_link(SESSION_SECRET, "bob", next_path="/inbox/bills/x"))
        assert deep.headers["location"] == "/inbox/bills/x"
        escape = await web.get(
            f"/inbox/login/magic?token={quote(magic_link(SESSION_SECRET, 'bob').split('=')[1])}"
            "&next=https://evil.example/inbox"
        )
        assert escape.status_code == 303 and escape.headers["location"] == "/inbox"


async def test_without_demo_users_the_login_page_lists_nobody(h: Harness) -> None:
    transport = httpx.ASGITransport(app=inbox_app(h, demo_users=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as web:
        page = await web.get("/inbox/login")
        assert page.status_code == 200 and "Sign in as" not in page.text
        # A link issued by remit (email, CLI) still signs the person in.
        landed = await web.get(magic_link(SESSION_SECRET, "carol"))
        assert landed.status_code == 303
        assert "Carol Controller" in (await web.get("/inbox")).text


async def test_sign_out_needs_the_session_csrf_token(web: httpx.AsyncClient) -> None:
    await sign_in(web, "bob", "Bob Approver")
    inbox = await web.get("/inbox")
    refused = await web.post("/inbox/logout", data={"csrf_token": "guess"})
    assert refused.status_code == 403
    assert (await web.get("/inbox")).status_code == 200
    out = await web.post("/inbox/logout", data={"csrf_token": csrf_of(inbox)})
    assert out.status_code == 303 and out.headers["location"] == "/inbox/login"
    assert (await web.get("/inbox")).status_code == 303


# ---- the list -------------------------------------------------------------------------------


async def test_inbox_lists_waiting_bills_soonest_due_first(
    h: Harness, web: httpx.AsyncClient
) -> None:
    # Submitted in an order unlike their due dates; amounts and dates differ so none looks
    # like a duplicate of another.
    late = await waiting_bill(h, "INV-LATE", amount="1200.00", due=date(2027, 1, 15))
    soon = await waiting_bill(
        h, "INV-SOON", amount="700.00", due=date(2026, 11, 20), issue=date(2026, 11, 3)
    )
    middle = await waiting_bill(
        h, "INV-MIDDLE", amount="2500.50", due=date(2026, 12, 10), issue=date(2026, 11, 4)
    )
    await sign_in(web, "alice", "Alice Approver")
    page = await web.get("/inbox")
    assert page.status_code == 200
    positions = [page.text.index(b.number) for b in (soon, middle, late)]
    assert positions == sorted(positions), "bills are not sorted by due date"
    assert "USD 2,500.50" in page.text and "Northwind Office Supply" in page.text
    assert "2026-11-20" in page.text
    assert f'href="{soon.path}"' in page.text
    assert page.headers["cache-control"] == "no-store"

    # sam submitted them and approves nothing: none waits for his decision; he sees them
    # only among the bills he submitted, read-only.
    web.cookies.clear()
    await sign_in(web, "sam", "Sam Clerk")
    empty = await web.get("/inbox")
    assert "Nothing is waiting for your decision." in empty.text
    decide_part, _, submitted_part = empty.text.partition("Bills you submitted")
    assert soon.number not in decide_part and soon.number in submitted_part


# ---- a bill's page --------------------------------------------------------------------------


async def test_bill_page_shows_coding_document_and_decisions_by_an_id_with_slashes(
    h: Harness, web: httpx.AsyncClient
) -> None:
    bill = await waiting_bill(h, "INV-SLASH")
    assert bill.workflow_id.count("/") == 2
    await sign_in(web, "alice", "Alice Approver")
    for path in (bill.path, f"/inbox/bills/{bill.workflow_id}"):  # encoded and raw slashes
        page = await web.get(path)
        assert page.status_code == 200, path
        assert "Bill INV-SLASH from Northwind Office Supply" in page.text
    state = await h.state(bill.workflow_id)
    assert "USD 900.00" in page.text and "USD 800.00" in page.text
    assert "Printer paper" in page.text and "Toner cartridges" in page.text
    assert f'Office Supplies <span class="muted">(ERP account {state.lines[0].account_id})' in (
        page.text
    )
    assert "department: Operations" in page.text
    assert "office supplies INV-SLASH" in page.text  # the memo, from the original draft
    # The JSON document is shown pretty-printed (escaped), with a download link.
    assert "&#34;document_number&#34;: &#34;INV-SLASH&#34;" in page.text
    assert f'href="/inbox/documents/{quote(bill.workflow_id)}"' in page.text
    assert "No one has decided on this bill yet." in page.text
    assert 'name="outcome" value="approve"' in page.text

    download = await web.get(f"/inbox/documents/{quote(bill.workflow_id)}")
    assert download.status_code == 200
    assert download.content == bill.captured.content
    assert download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["content-security-policy"] == "sandbox"

    missing = await web.get("/inbox/bills/bill/nowhere/nothing")
    assert missing.status_code == 404 and "There is no bill" in missing.text


async def test_the_payee_is_shown_masked_with_a_badge_before_anyone_decides(
    h: Harness, web: httpx.AsyncClient
) -> None:
    verified = await waiting_bill(h, "INV-PAYEE-1")
    changed = await submit_document(
        h,
        bill_document(
            "INV-PAYEE-2",
            amount="950.00",
            due=date(2026, 12, 3),
            bank_account="011000015/000987654321",
        ),
        file_name="INV-PAYEE-2.json",
    )
    await awaiting_approval(h, changed.workflow_id)
    await sign_in(web, "alice", "Alice Approver")
    inbox = await web.get("/inbox")
    assert 'ACH ••••6789 <span class="badge">verified</span>' in inbox.text
    assert 'ACH ••••4321 <span class="badge warning">changed bank details</span>' in inbox.text
    page = await web.get(changed.path)
    assert 'data-testid="payee-badge">changed bank details</span>' in page.text
    assert "the verified payee is ACH ••••6789" in page.text
    assert "000987654321" not in page.text and "000123456789" not in page.text
    plain = await web.get(verified.path)
    assert 'class="badge" data-testid="payee-badge">verified</span>' in plain.text


async def test_ubl_document_is_shown_as_escaped_xml(
    h: Harness, web: httpx.AsyncClient, examples: Path
) -> None:
    content = (examples / "invoice-ubl.xml").read_bytes()
    bill = await submit_document(h, content, file_name="invoice-ubl.xml")
    # Its lines name no account: an operator codes them first, as in the CLI walkthrough.
    await h.status(bill.workflow_id, LifecycleStatus.needs_review)
    await h.remit.resolve(bill.workflow_id, actor="olivia", account="Office Supplies")
    await awaiting_approval(h, bill.workflow_id)
    await sign_in(web, "alice", "Alice Approver")
    page = await web.get(bill.path)
    assert page.status_code == 200
    assert "&lt;cbc:ID&gt;RE-88123&lt;/cbc:ID&gt;" in page.text
    assert "<cbc:ID>" not in page.text
    # The document's IBAN is masked like every payee detail; the vendor is new, so is its payee.
    assert "DE89370400440532013000" not in page.text
    assert "&lt;cbc:ID&gt;••••3000&lt;/cbc:ID&gt;" in page.text


# ---- deciding -------------------------------------------------------------------------------


async def test_approving_records_the_decision_and_confirms_in_the_inbox(
    h: Harness, web: httpx.AsyncClient
) -> None:
    bill = await waiting_bill(h, "INV-OK")
    await sign_in(web, "alice", "Alice Approver")
    page = await web.get(bill.path)
    form = {
        "csrf_token": csrf_of(page),
        "request_id": request_id_of(page),
        "outcome": "approve",
        "comment": "matches the PO",
    }
    decided = await web.post(f"/inbox/decisions/{quote(bill.workflow_id)}", data=form)
    assert decided.status_code == 303 and decided.headers["location"] == "/inbox"
    state = await h.state(bill.workflow_id)
    [decision] = state.decisions
    assert (decision.actor, decision.outcome, decision.comment) == (
        "alice",
        "approve",
        "matches the PO",
    )
    inbox = await web.get("/inbox")
    assert "You approved bill INV-OK from Northwind Office Supply (USD 900.00)." in inbox.text
    assert bill.path not in inbox.text  # decided: no longer waiting on alice
    # The confirmation shows once.
    assert "You approved" not in (await web.get("/inbox")).text

    # A double submit of the same form is the same decision, not a second one or an error.
    again = await web.post(f"/inbox/decisions/{quote(bill.workflow_id)}", data=form)
    assert again.status_code == 303
    assert len((await h.state(bill.workflow_id)).decisions) == 1

    # Bob sees the decision on the bill, and why he cannot decide any more.
    web.cookies.clear()
    await sign_in(web, "bob", "Bob Approver")
    seen = await web.get(bill.path)
    assert "Alice Approver" in seen.text and "matches the PO" in seen.text
    assert "default-2026-11" in seen.text
    assert "You cannot decide on this bill" in seen.text
    assert 'value="approve"' not in seen.text


async def test_decisions_without_the_session_csrf_token_are_refused(
    h: Harness, web: httpx.AsyncClient
) -> None:
    bill = await waiting_bill(h, "INV-CSRF")
    url = f"/inbox/decisions/{quote(bill.workflow_id)}"
    await sign_in(web, "bob", "Bob Approver")
    bobs_token = csrf_of(await web.get(bill.path))
    web.cookies.clear()
    await sign_in(web, "alice", "Alice Approver")
    for form in (
        {"outcome": "approve"},
        {"outcome": "approve", "csrf_token": ""},
        {"outcome": "approve", "csrf_token": bobs_token},  # another session's token
    ):
        refused = await web.post(url, data=form)
        assert refused.status_code == 403, form
        assert "did not come from this session" in refused.text
    assert (await h.state(bill.workflow_id)).decisions == []

    web.cookies.clear()
    signed_out = await web.post(url, data={"outcome": "approve"})
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/inbox/login"


async def test_the_workflows_refusal_is_shown_not_a_server_error(
    h: Harness, web: httpx.AsyncClient
) -> None:
    # bob is an ap-approver, so he is among the pending approvers of his own bill; the
    # workflow's validator still refuses him (separation of duties).
    bill = await waiting_bill(h, "INV-OWN", submitted_by="bob")
    row = h.store.get_bill(bill.workflow_id)
    assert row is not None and "bob" in row.pending_approvers
    await sign_in(web, "bob", "Bob Approver")
    page = await web.get(bill.path)
    assert "bob submitted this bill and cannot approve it (separation of duties)" in page.text
    assert 'value="approve"' not in page.text
    refused = await web.post(
        f"/inbox/decisions/{quote(bill.workflow_id)}",
        data={"csrf_token": csrf_of(page), "outcome": "approve", "comment": "mine"},
    )
    assert refused.status_code == 403
    assert (
        "Your decision was not recorded: bob submitted this bill and cannot approve it "
        "(separation of duties)" in refused.text
    )
    assert (await h.state(bill.workflow_id)).decisions == []


async def test_rejecting_needs_a_reason_and_ends_the_bill(
    h: Harness, web: httpx.AsyncClient
) -> None:
    bill = await waiting_bill(h, "INV-NO")
    url = f"/inbox/decisions/{quote(bill.workflow_id)}"
    await sign_in(web, "dave", "Dave Controller")
    csrf = csrf_of(await web.get(bill.path))
    bare = await web.post(url, data={"csrf_token": csrf, "outcome": "reject", "comment": "  "})
    assert bare.status_code == 400 and "A rejection needs a reason" in bare.text
    odd = await web.post(url, data={"csrf_token": csrf, "outcome": "maybe"})
    assert odd.status_code == 400 and "Choose Approve or Reject." in odd.text
    too_long = await web.post(
        url, data={"csrf_token": csrf, "outcome": "approve", "comment": "x" * 2001}
    )
    assert too_long.status_code == 400 and "keep it under 2000" in too_long.text
    assert (await h.state(bill.workflow_id)).decisions == []

    rejected = await web.post(
        url, data={"csrf_token": csrf, "outcome": "reject", "comment": "not ours"}
    )
    assert rejected.status_code == 303
    state = await h.status(bill.workflow_id, LifecycleStatus.rejected)
    assert [(d.actor, d.outcome, d.comment) for d in state.decisions] == [
        ("dave", "reject", "not ours")
    ]
    assert "You rejected bill INV-NO" in (await web.get("/inbox")).text


async def test_a_decision_on_an_unknown_bill_is_a_404(web: httpx.AsyncClient) -> None:
    await sign_in(web, "alice", "Alice Approver")
    csrf = csrf_of(await web.get("/inbox"))
    response = await web.post(
        "/inbox/decisions/bill/nowhere/nothing", data={"csrf_token": csrf, "outcome": "approve"}
    )
    assert response.status_code == 404 and "There is no bill" in response.text
