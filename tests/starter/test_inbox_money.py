"""The inbox over the money surface, over HTTP on a real worker: payee changes verified and
approved by the right people (and refused, in words, to the wrong ones), payment runs released
by a payer only, a bill's payments and credits; bank details masked on every page."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from accounting import PaymentTerms
from accounting.payees import PayeeDetails
from activities.policy import load_directory
from sandbox.bank import ReturnRule
from starter.api.inbox import inbox_router, scrub
from tests.starter.api_harness import fresh_time_skipping_env
from tests.starter.inbox_support import (
    SESSION_SECRET,
    Submitted,
    bill_document,
    csrf_of,
    inbox_app,
    sign_in,
    submit_document,
)
from tests.workflows.harness import Harness, draft, running_remit
from workflows.approval import PaymentRunPolicy
from workflows.models import BillState
from workflows.models import LifecycleStatus as S

BASE = "http://remit"
NEW_ACH = "011000015/000987654321"  # the document's; Northwind's verified ACH is ••••6789
GLOBEX_ACH = "026009593/004567891234"
TERMS = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)
# Every full bank detail these tests use: none may appear in any page.
FULL_DETAILS = ("000987654321", "011000015", "000123456789", "021000021", "004567891234")

NAMES = {
    "sam": "Sam Clerk",
    "alice": "Alice Approver",
    "carol": "Carol Controller",
    "dave": "Dave Controller",
    "erin": "Erin CFO",
    "paula": "Paula Payer",
    "olivia": "Olivia Operator",
}


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    # A test server of its own (see test_inbox.py): held bills and proposed runs left behind
    # would stall time skipping for later tests on a shared one.
    async with fresh_time_skipping_env() as env, running_remit(env, tmp_path) as harness:
        yield harness


@pytest.fixture
async def web(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=inbox_app(h))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def as_user(web: httpx.AsyncClient, user_id: str) -> None:
    web.cookies.clear()
    await sign_in(web, user_id, NAMES[user_id])


def masked_only(*pages: httpx.Response) -> None:
    for page in pages:
        for full in FULL_DETAILS:
            assert full not in page.text, f"{full} shown on {page.request.url}"


def text_of(page: httpx.Response) -> str:
    """The page's words (header and main, no styles), without tags, whitespace folded."""
    body = page.text.partition("<body>")[2] or page.text
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


async def held_bill(h: Harness, number: str, *, amount: str = "120.00") -> Submitted:
    """A bill (auto-approved: under the policy's 500) whose document names new bank details:
    held in review on its payee, with a payee change proposed from it (by its submitter)."""
    bill = await submit_document(
        h,
        bill_document(number, amount=amount, due=date(2026, 12, 2), bank_account=NEW_ACH),
        file_name=f"{number}.json",
    )
    await h.until(
        bill.workflow_id,
        lambda s: s.status == S.needs_review and s.payee is not None and not s.payee.payable,
    )
    return bill


async def change_of(h: Harness, workflow_id: str) -> str:
    state = await h.state(workflow_id)
    assert state.payee is not None and state.payee.change_id
    return state.payee.change_id


async def act_on_change(
    web: httpx.AsyncClient, change_id: str, action: str, **fields: str
) -> httpx.Response:
    page = await web.get(f"/inbox/payees/{change_id}")
    assert page.status_code == 200, page.text
    return await web.post(
        f"/inbox/payee-actions/{change_id}",
        data={"csrf_token": csrf_of(page), "action": action, **fields},
    )


def flashed(response: httpx.Response, location: str) -> None:
    assert response.status_code == 303, text_of(response)
    assert response.headers["location"] == location


# ---- payee changes --------------------------------------------------------------------------


async def test_each_person_sees_the_payee_changes_waiting_for_them_masked(
    h: Harness, web: httpx.AsyncClient
) -> None:
    bill = await held_bill(h, "INV-PC-LIST")
    change_id = await change_of(h, bill.workflow_id)

    # olivia verifies payee changes (operators): it waits for her, linked from her inbox.
    await as_user(web, "olivia")
    inbox = await web.get("/inbox")
    assert '<a href="/inbox/payees">1 payee change waits for you</a>' in inbox.text
    assert '<a href="/inbox/payees">Payee changes</a>' in inbox.text  # the header's link
    listed = await web.get("/inbox/payees")
    assert listed.status_code == 200
    words = text_of(listed)
    assert "To verify" in words and "To approve" not in words
    assert "Northwind Office Supply ACH ••••4321 ACH ••••6789 Sam Clerk (sam)" in words
    assert f'href="/inbox/payees/{change_id}"' in listed.text
    assert f'href="{bill.path}">Bill INV-PC-LIST</a>' in listed.text

    page = await web.get(f"/inbox/payees/{change_id}")
    assert page.status_code == 200
    words = text_of(page)
    assert "New bank details for Northwind Office Supply" in words
    assert "New details ACH ••••4321 Replaces ACH ••••6789" in words
    assert "Proposed by Sam Clerk (sam) (document," in words
    assert "INV-PC-LIST names ACH ••••4321; the verified details are ACH ••••6789" in words
    assert f'href="{bill.path}">Bill INV-PC-LIST</a>' in page.text
    assert "Verified not yet" in words
    assert "No one has approved this change yet." in words
    assert "Still needs verification out of band by a member of operators other than sam" in words
    assert 'name="action" value="verify"' in page.text
    assert 'name="action" value="approve"' not in page.text
    assert 'name="action" value="reject"' in page.text  # verifiers may reject, too
    masked_only(inbox, listed, page)

    # Nothing waits for carol yet: she approves, and the change is not verified.
    await as_user(web, "carol")
    assert "payee change" not in (await web.get("/inbox")).text.replace("Payee changes", "")
    empty = await web.get("/inbox/payees")
    assert "To approve" in empty.text and "No payee change is waiting for you." in empty.text
    seen = await web.get(f"/inbox/payees/{change_id}")
    assert "You cannot verify this change: carol may not verify payee changes" in text_of(seen)
    # sam reviews no payee changes at all, and the page says who does.
    await as_user(web, "sam")
    not_his = await web.get("/inbox/payees")
    assert "You do not review payee changes: that is for members of operators, " in (
        text_of(not_his)
    )
    masked_only(empty, seen, not_his, await web.get(bill.path))


async def test_a_change_verified_and_approved_in_the_inbox_pays_the_held_bill(
    h: Harness, web: httpx.AsyncClient
) -> None:
    bill = await held_bill(h, "INV-PC-OK")
    change_id = await change_of(h, bill.workflow_id)
    url = f"/inbox/payee-actions/{change_id}"

    await as_user(web, "olivia")
    page = await web.get(f"/inbox/payees/{change_id}")
    refused = await web.post(url, data={"action": "verify", "method": "call-back"})
    assert refused.status_code == 403 and "did not come from this session" in refused.text
    bare = await web.post(url, data={"csrf_token": csrf_of(page), "action": "verify"})
    assert bare.status_code == 400 and "Say how the details were verified" in bare.text
    odd = await web.post(url, data={"csrf_token": csrf_of(page), "action": "maybe"})
    assert odd.status_code == 400 and "Choose Verify, Approve or Reject." in odd.text
    assert (h.payees.get_change(change_id) or pytest.fail()).status == "proposed"

    verified = await act_on_change(
        web,
        change_id,
        "verify",
        method="call-back to the number on file",
        # Whatever a person types, a page never shows a full account number.
        note=f"AR confirmed {NEW_ACH} and DE89 3704 0044 0532 0130 00 is not theirs",
    )
    flashed(verified, "/inbox/payees")
    after = await web.get("/inbox/payees")
    assert (
        f"You verified payee change {change_id} for Northwind Office Supply (ACH ••••4321); "
        "it now needs 2 approvals by members of finance-controllers, cfo." in text_of(after)
    )
    assert f'href="/inbox/payees/{change_id}"' not in after.text  # no longer waiting on her
    shown = await web.get(f"/inbox/payees/{change_id}")
    words = text_of(shown)
    assert "by Olivia Operator (olivia) on" in words and "call-back to the number on file" in words
    assert "AR confirmed ••••0015/••••4321 and DE••••3000 is not theirs" in words
    assert "DE89 3704" not in shown.text
    masked_only(shown)

    # carol approves; one approval is not enough, and the bill stays held.
    await as_user(web, "carol")
    waiting = await web.get("/inbox/payees")
    assert f'href="/inbox/payees/{change_id}"' in waiting.text and "To approve" in waiting.text
    approved = await act_on_change(web, change_id, "approve", comment="matches the letter")
    flashed(approved, "/inbox/payees")
    assert (
        f"You approved payee change {change_id} for Northwind Office Supply (ACH ••••4321); "
        "it needs 1 more approval." in text_of(await web.get("/inbox/payees"))
    )
    assert (await h.state(bill.workflow_id)).status == S.needs_review
    assert await h.bank_payments() == []
    # The same approver twice is refused, in words, and changes nothing.
    twice = await act_on_change(web, change_id, "approve", comment="again")
    assert twice.status_code == 409
    assert f"Not approved: carol already approved change {change_id}" in text_of(twice)
    change = h.payees.get_change(change_id)
    assert change is not None and change.approvers == ["carol"]
    page = await web.get(f"/inbox/payees/{change_id}")
    assert "Carol Controller (carol) matches the letter" in text_of(page)
    assert f"carol already approved change {change_id}" in text_of(page)  # and no form
    assert 'name="action" value="approve"' not in page.text

    # dave's approval is the second: the details are verified, the bill moves on and pays.
    await as_user(web, "dave")
    last = await act_on_change(web, change_id, "approve")
    flashed(last, "/inbox/payees")
    assert "ACH ••••4321 is now Northwind Office Supply's verified payee." in text_of(
        await web.get("/inbox/payees")
    )
    final = await h.result(bill.workflow_id)
    assert final.status == S.reconciled, final.last_error
    assert await h.bank_payees() == ["4321"]
    done = await web.get(f"/inbox/payees/{change_id}")
    assert "Still needs nothing: it is the vendor's verified payee" in text_of(done)
    bill_page = await web.get(bill.path)
    words = text_of(bill_page)
    assert "settled" in words and "USD 120.00" in words and "ACH ••••4321" in words
    masked_only(done, bill_page)


async def test_refusals_of_payee_steps_are_shown_in_words_never_a_server_error(
    h: Harness, web: httpx.AsyncClient
) -> None:
    [vendor] = await h.erp.find_vendors(name="Northwind Office Supply")
    assert vendor.id
    service = h.payee_service()
    # olivia proposes a change herself: she may verify others' changes, never her own.
    own = await service.propose(
        connection_id=h.connection.id,
        vendor_id=vendor.id,
        vendor_name=vendor.name,
        details=PayeeDetails(routing_number="011000015", account_number="000555555555"),
        by="olivia",
        reason="the vendor's letter of 2026-11-30",
    )
    await as_user(web, "olivia")
    page = await web.get(f"/inbox/payees/{own.change.id}")
    assert (
        "You cannot verify this change: olivia proposed this change and cannot also verify "
        "it (separation of duties)." in text_of(page)
    )
    assert f'href="/inbox/payees/{own.change.id}"' not in (await web.get("/inbox/payees")).text
    refused = await act_on_change(web, own.change.id, "verify", method="I called them")
    assert refused.status_code == 409
    assert (
        "Not verified: olivia proposed this change and cannot also verify it (separation of "
        "duties)" in text_of(refused)
    )
    # sam is no verifier: refused by PayeeService's groups.
    await as_user(web, "sam")
    not_verifier = await act_on_change(web, own.change.id, "verify", method="trust me")
    assert not_verifier.status_code == 403
    assert (
        "Not verified: sam may not verify payee changes: that takes a member of operators"
        in text_of(not_verifier)
    )
    assert (h.payees.get_change(own.change.id) or pytest.fail()).status == "proposed"

    # A verifier never approves what they verified. Only a policy that lets controllers
    # verify too can even try (the demo directory has no one in both groups).
    h.deps.policy.payee_verifiers = ["operators", "finance-controllers"]
    await as_user(web, "carol")
    flashed(
        await act_on_change(web, own.change.id, "verify", method="call-back to the number on file"),
        "/inbox/payees",
    )
    page = await web.get(f"/inbox/payees/{own.change.id}")
    assert (
        "You cannot approve this change: carol verified this change; two other people must "
        "approve it." in text_of(page)
    )
    self_approved = await act_on_change(web, own.change.id, "approve")
    assert self_approved.status_code == 409
    assert "Not approved: carol verified this change; two other people must approve it" in (
        text_of(self_approved)
    )
    # The proposer is no approver of her own change either (and no approver at all).
    await as_user(web, "olivia")
    proposer = await act_on_change(web, own.change.id, "approve")
    assert proposer.status_code == 403
    assert "Not approved: olivia may not approve payee changes" in text_of(proposer)
    assert (h.payees.get_change(own.change.id) or pytest.fail()).approvals == []

    # A rejection needs a reason and someone who reviews payee changes.
    await as_user(web, "sam")
    not_reviewer = await act_on_change(web, own.change.id, "reject", reason="looks odd")
    assert not_reviewer.status_code == 403 and "sam may not reject payee changes" in (
        text_of(not_reviewer)
    )
    await as_user(web, "erin")
    bare = await act_on_change(web, own.change.id, "reject", reason="  ")
    assert bare.status_code == 400 and "A rejection needs a reason" in bare.text
    rejected = await act_on_change(
        web, own.change.id, "reject", reason="the vendor's AR says their bank is unchanged"
    )
    flashed(rejected, "/inbox/payees")
    assert f"You rejected payee change {own.change.id}" in text_of(await web.get("/inbox/payees"))
    page = await web.get(f"/inbox/payees/{own.change.id}")
    words = text_of(page)
    assert "Rejected by Erin CFO (erin) on" in words
    assert "the vendor's AR says their bank is unchanged" in words
    assert 'name="action"' not in page.text
    again = await act_on_change(web, own.change.id, "reject", reason="twice")
    assert again.status_code == 409
    assert f"Not rejected: change {own.change.id} is already rejected" in text_of(again)
    assert "000555555555" not in page.text and "000555555555" not in again.text

    missing = await web.get("/inbox/payees/pc_nowhere")
    assert missing.status_code == 404 and "There is no payee change" in missing.text
    gone = await web.post(
        "/inbox/payee-actions/pc_nowhere",
        data={"csrf_token": csrf_of(page), "action": "approve"},
    )
    assert gone.status_code == 404 and "There is no payee change" in gone.text


async def test_an_inbox_without_a_payee_service_still_serves_bills_and_runs(h: Harness) -> None:
    # The router's earlier callers pass neither payees nor a policy.
    app = FastAPI()
    app.include_router(
        inbox_router(
            remit=h.remit,
            store=h.store,
            documents=h.documents,
            directory=load_directory(),
            session_secret=SESSION_SECRET,
            demo_users=True,
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as web:
        await sign_in(web, "carol", "Carol Controller")
        inbox = await web.get("/inbox")
        assert 'href="/inbox/payees"' not in inbox.text
        assert (await web.get("/inbox/payees")).status_code == 404
        runs = await web.get("/inbox/runs")
        assert runs.status_code == 200 and "No payment run is waiting for release." in runs.text


def test_free_text_is_masked_but_ids_and_dates_are_not() -> None:
    assert scrub("paid 021000021/000123456789 ok") == "paid ••••0021/••••6789 ok"
    assert scrub("IBAN DE89370400440532013000.") == "IBAN DE••••3000."
    assert scrub("GB29 NWBK 6016 1331 9268 19 is theirs") == "GB••••6819 is theirs"
    kept = "bill/test-x/ab12345678901cd on 2026-11-30, call 555-0100, USD 1,234,567.00"
    assert scrub(kept) == kept
    assert scrub(None) == ""


# ---- payment runs ---------------------------------------------------------------------------


async def waiting_for_a_run(h: Harness, wid: str) -> None:
    await h.until(wid, lambda s: s.awaiting_run and s.status == S.scheduled)
    await h.until_recorded(wid, lambda row: bool(row.state.get("awaiting_run")))


async def in_the_run(h: Harness, run_id: str, wids: Iterable[str]) -> None:
    """The bills' projections name the run (what the inbox's list of runs reads)."""
    for wid in wids:
        await h.until_recorded(wid, lambda row: row.state.get("payment_run_id") == run_id)


async def steer(web: httpx.AsyncClient, run_id: str, action: str, **fields: str) -> httpx.Response:
    page = await web.get(f"/inbox/runs/{quote(run_id)}")
    assert page.status_code == 200, page.text
    return await web.post(
        f"/inbox/run-actions/{quote(run_id)}",
        data={"csrf_token": csrf_of(page), "action": action, **fields},
    )


async def test_a_payment_run_is_reviewed_steered_and_released_by_a_payer(
    h: Harness, web: httpx.AsyncClient
) -> None:
    h.deps.policy.payment_runs[h.connection.id] = PaymentRunPolicy(days=["tuesday"])
    today = (await h.env.get_current_time()).date()
    due = today + timedelta(days=5)
    n1 = await h.submit(draft(number="RUN-N1", amount="120.00", issue=today, due=due), terms=TERMS)
    n2 = await h.submit(draft(number="RUN-N2", amount="180.00", issue=today, due=due))
    g1 = await h.submit(
        draft(
            number="RUN-G1",
            vendor="Globex Software",
            tax_id="12-3456789",
            amount="300.00",
            issue=today,
            due=due,
            bank_account=GLOBEX_ACH,
        ),
        submitted_by="paula",
    )
    for wid in (n1, n2, g1):
        await waiting_for_a_run(h, wid)
    run_id = await h.remit.start_payment_run(h.connection.id, run_date=today, horizon_days=7)
    await h.until_run(run_id, lambda r: r.status == "proposed")
    await in_the_run(h, run_id, (n1, n2, g1))
    run_path = f"/inbox/runs/{quote(run_id)}"

    # Anyone signed in sees the run waiting; alice is no payer, so she cannot steer it.
    await as_user(web, "alice")
    listed = await web.get("/inbox/runs")
    assert listed.status_code == 200
    assert f'<a href="{run_path}">{run_id}</a>' in listed.text
    assert "proposed 3 2 USD 597.60" in text_of(listed)
    assert "You are not a payer" in listed.text
    page = await web.get(run_path)
    assert page.status_code == 200
    words = text_of(page)
    assert "Total to pay USD 597.60" in words
    assert "Globex Software · USD · pays USD 300.00 to ACH ••••1234" in words
    assert "Northwind Office Supply · USD · pays USD 297.60 to ACH ••••6789" in words
    assert f"RUN-N1 {due.isoformat()} USD 120.00 USD 2.40 if paid by" in words
    assert "USD 117.60 Sam Clerk (sam)" in words
    assert f'href="/inbox/bills/{quote(n1)}"' in page.text
    assert "You cannot steer this run: that takes a member of payers." in words
    assert 'name="action"' not in page.text
    assert "release by a payer (erin, paula)" in words  # the run's own words
    assert "The run's log" in words
    masked_only(listed, page)
    not_payer = await steer(web, run_id, "release")
    assert not_payer.status_code == 403
    assert "Not released: alice is not a payer (payers: erin, paula)" in text_of(not_payer)
    no_pause = await steer(web, run_id, "pause", reason="curious")
    assert no_pause.status_code == 403
    assert "alice may not steer payment runs: that takes a member of payers" in text_of(no_pause)
    assert (await h.remit.run_state(run_id)).status == "proposed"

    # paula submitted a bill in the run: the page says why she may not release it, and the
    # run refuses her in its own words when she tries.
    await as_user(web, "paula")
    page = await web.get(run_path)
    assert (
        "You cannot release this run: paula submitted a bill in this run and cannot release "
        "it (separation of duties)" in text_of(page)
    )
    own = await steer(web, run_id, "release")
    assert own.status_code == 403
    assert (
        "Not released: paula submitted a bill in this run and cannot release it (separation "
        "of duties); pull that bill out or ask another payer" in text_of(own)
    )
    forged = await web.post(f"/inbox/run-actions/{quote(run_id)}", data={"action": "release"})
    assert forged.status_code == 403 and "did not come from this session" in forged.text

    # erin pulls paula's bill out (with a reason), pauses the run and resumes it.
    await as_user(web, "erin")
    why_not = await steer(web, run_id, "pull", bill_id=g1, reason=" ")
    assert why_not.status_code == 400 and "Say why the bill comes out of the run." in why_not.text
    stranger = await steer(web, run_id, "pull", bill_id="bill/elsewhere/x", reason="why not")
    assert stranger.status_code == 403
    assert "Not pulled out: bill/elsewhere/x is not in this run" in text_of(stranger)
    pulled = await steer(web, run_id, "pull", bill_id=g1, reason="query on the licence count")
    flashed(pulled, run_path)
    page = await web.get(run_path)
    words = text_of(page)
    assert f"You pulled RUN-G1 out of payment run {run_id}; it now pays USD 297.60." in words
    assert "pulled out by erin: query on the licence count" in words
    assert "Total to pay USD 297.60" in words
    assert "Globex Software · USD · pays nothing: every bill is left out" in words
    paused = await steer(web, run_id, "pause", reason="checking the total")
    flashed(paused, run_path)
    page = await web.get(run_path)
    assert f"You paused payment run {run_id}." in text_of(page)
    assert 'data-testid="run-status">paused</span>' in page.text
    assert "paused by erin: checking the total" in text_of(page)
    assert "paused 2 1 USD 297.60" in text_of(await web.get("/inbox/runs"))
    twice = await steer(web, run_id, "pause")
    assert twice.status_code == 403 and "Not paused: the run is paused" in text_of(twice)
    flashed(await steer(web, run_id, "resume"), run_path)
    assert f"You resumed payment run {run_id}." in text_of(await web.get(run_path))
    assert (await h.remit.run_state(run_id)).status == "proposed"

    # With her bill out, paula may release; the run pays Northwind once, discount taken.
    await as_user(web, "paula")
    released = await steer(web, run_id, "release")
    flashed(released, run_path)
    assert f"You released payment run {run_id} (USD 297.60)." in text_of(await web.get(run_path))
    final = await h.until_run(run_id, lambda r: r.status in ("paid", "needs_attention"))
    assert final.status == "paid", final.log
    assert [p.amount for p in await h.bank_payments()] == [Decimal("297.60")]
    done = await h.result(n1)
    assert done.status == S.reconciled, done.last_error
    paid_run = await web.get(run_path)
    assert 'data-testid="run-status">paid</span>' in paid_run.text
    assert "released by paula" in text_of(paid_run)
    assert 'name="action"' not in paid_run.text
    assert "No payment run is waiting for release." in (await web.get("/inbox/runs")).text
    late = await web.post(
        f"/inbox/run-actions/{quote(run_id)}",
        data={"csrf_token": csrf_of(paid_run), "action": "release"},
    )
    assert late.status_code in (403, 409) and "Not released: " in text_of(late)
    # The bill shows the run that paid it, and the payment with its discount.
    bill_page = await web.get(f"/inbox/bills/{quote(n1)}")
    words = text_of(bill_page)
    assert f'href="{run_path}"' in bill_page.text
    assert "settled" in words and "USD 117.60 USD 2.40 ACH ••••6789" in words
    masked_only(paid_run, bill_page)

    missing = await web.get("/inbox/runs/payment-run/nowhere/2026-01-01")
    assert missing.status_code == 404 and "There is no payment run" in missing.text


# ---- a bill's payments and credits ----------------------------------------------------------


async def test_a_bill_page_shows_credits_applied_and_a_returned_payment_voided(
    h: Harness, web: httpx.AsyncClient
) -> None:
    credit = await h.remit.submit_credit(
        draft(number="CM-INBOX", amount="100.00", bank_account=None),
        connection_id=h.connection.id,
        platform=h.platform,
        submitted_by="sam",
    )
    async with h.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        await h.remit.temporal.get_workflow_handle(credit.workflow_id).result()
    h.bank.set_return_rules([ReturnRule(code="R03", return_after=timedelta(days=2), times=1)])
    wid = await h.submit(draft(number="INV-RETURNED", amount="300.00"))
    done = await h.result(wid)
    assert done.status == S.reconciled, done.last_error
    assert [c.amount for c in done.credits_applied] == [Decimal("100.00")]

    # The return reaches the API days later; the bill voids its ERP payment and waits.
    h.bank_webhooks_to_the_api()
    h.bank_clock.advance(timedelta(days=3))
    assert await h.bank.settle_due() >= 1

    def returned(s: BillState) -> bool:
        return s.status == S.needs_attention and bool(s.payments) and s.payments[0].erp_voided

    state = await h.until(wid, returned)
    await h.until_recorded(wid, lambda row: row.status == S.needs_attention.value)

    await as_user(web, "alice")
    page = await web.get(f"/inbox/bills/{quote(wid)}")
    assert page.status_code == 200
    words = text_of(page)
    payment = state.payments[0]
    assert f"{payment.rail_payment_id} (ach, attempt 1) returned" in words
    assert "USD 200.00 — ACH ••••6789 R03" in words
    assert f"{payment.erp_payment_id} voided in the ERP" in words
    assert '<span class="badge warning">returned</span>' in page.text
    assert "Credits applied" in words and "CM-INBOX USD 100.00" in words
    masked_only(page)
