"""The approval inbox in a real browser: Debian's chromium, driven by playwright, against the
inbox served by uvicorn on loopback, with bills run by a real worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from temporalio.testing import WorkflowEnvironment

from accounting.payees import PayeeDetails
from starter.api.inbox import SESSION_COOKIE
from tests.starter.inbox_support import (
    Submitted,
    awaiting_approval,
    bill_document,
    inbox_app,
    submit_document,
)
from tests.starter.test_api_capture import SCANNED_BILL as API_SCANNED_BILL
from tests.workflows.harness import Harness, running_remit
from workflows.models import LifecycleStatus

CHROMIUM = Path("/usr/bin/chromium")

REQUIRE_BROWSER = "REMIT_REQUIRE_BROWSER"


@pytest.fixture(autouse=True)
def chromium_available() -> None:
    """Skip without Debian's chromium, unless CI said the browser tests must run."""
    if CHROMIUM.exists():
        return
    missing = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get(REQUIRE_BROWSER):
        pytest.fail(f"{missing}, and {REQUIRE_BROWSER} is set")
    pytest.skip(missing)


class _QuietServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def h(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path) as harness:
        yield harness


@pytest.fixture
async def base_url(h: Harness) -> AsyncIterator[str]:
    """The inbox app served by uvicorn on a free loopback port, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    config = uvicorn.Config(inbox_app(h), log_level="warning", lifespan="off", access_log=False)
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve([sock]))
    deadline = asyncio.get_running_loop().time() + 10
    while not server.started:
        if task.done():
            raise RuntimeError(f"uvicorn stopped: {task.exception()!r}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("uvicorn did not start within 10 s")
        await asyncio.sleep(0.02)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(accept_downloads=True)
    opened = await context.new_page()
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        await context.close()


async def waiting_bill(h: Harness, number: str) -> Submitted:
    bill = await submit_document(
        h,
        bill_document(number, amount="900.00", due=date(2026, 12, 2)),
        file_name=f"{number}.json",
        submitted_by="sam",
    )
    await awaiting_approval(h, bill.workflow_id)
    return bill


async def sign_in(page: Page, base_url: str, name: str) -> None:
    await page.goto(f"{base_url}/inbox")
    await expect(page).to_have_url(re.compile(r"/inbox/login"))
    await page.get_by_role("link", name=f"Sign in as {name}").click()
    await expect(
        page.get_by_role("heading", name="Bills waiting for your decision")
    ).to_be_visible()
    await expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()


async def test_alice_reviews_and_approves_a_bill_with_a_comment(
    h: Harness, base_url: str, page: Page, tmp_path: Path
) -> None:
    bill = await waiting_bill(h, "INV-BROWSER")
    await sign_in(page, base_url, "Alice Approver")

    row = page.get_by_role("row").filter(has_text="INV-BROWSER")
    await expect(row).to_contain_text("Northwind Office Supply")
    await expect(row).to_contain_text("USD 900.00")
    await expect(row).to_contain_text("2026-12-02")
    await row.get_by_role("link", name="INV-BROWSER").click()

    await expect(
        page.get_by_role("heading", name="Bill INV-BROWSER from Northwind Office Supply")
    ).to_be_visible()
    assert page.url == f"{base_url}{bill.path}"
    lines = page.get_by_role("table", name="Lines and coding")
    await expect(lines.get_by_role("row")).to_have_count(3)  # header + two lines
    toner = lines.get_by_role("row").filter(has_text="Toner cartridges")
    await expect(toner).to_contain_text("USD 800.00")
    await expect(toner).to_contain_text("Office Supplies")
    await expect(toner).to_contain_text("department: Operations")
    await expect(page.get_by_label("Document contents")).to_contain_text('"INV-BROWSER"')
    await expect(page.get_by_text("No one has decided on this bill yet.")).to_be_visible()

    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download INV-BROWSER.json").click()
    download = await downloading.value
    saved = tmp_path / "downloaded.json"
    await download.save_as(saved)
    assert saved.read_bytes() == bill.captured.content

    await page.get_by_label("Comment").fill("Matches PO-7731; ok to pay")
    await page.get_by_role("button", name="Approve").click()

    await expect(page.get_by_role("status")).to_have_text(
        "You approved bill INV-BROWSER from Northwind Office Supply (USD 900.00)."
    )
    await expect(page.get_by_role("link", name="INV-BROWSER")).to_have_count(0)
    state = await h.state(bill.workflow_id)
    assert [(d.actor, d.outcome, d.comment) for d in state.decisions] == [
        ("alice", "approve", "Matches PO-7731; ok to pay")
    ]


async def test_the_submitter_sees_the_bill_read_only_with_the_reason(
    h: Harness, base_url: str, page: Page
) -> None:
    bill = await waiting_bill(h, "INV-SAM")
    await sign_in(page, base_url, "Sam Clerk")
    await expect(page.get_by_text("Nothing is waiting for your decision.")).to_be_visible()

    # Beside the (empty) list of bills he may decide: his own, read-only, with the reason.
    mine = page.get_by_role("region", name="Bills you submitted")
    row = mine.get_by_role("row").filter(has_text="INV-SAM")
    await expect(row).to_contain_text("USD 900.00")
    await expect(row).to_contain_text("awaiting approval")
    await expect(row).to_contain_text("approval by ap-approvers (level 1 of 1): alice, bob")
    await expect(row).to_contain_text(
        "you submitted this bill; someone else must approve it (separation of duties)"
    )
    await expect(mine.get_by_role("button")).to_have_count(0)
    await row.get_by_role("link", name="INV-SAM").click()
    assert page.url == f"{base_url}{bill.path}"
    await expect(page.get_by_role("note")).to_have_text(
        "You cannot decide on this bill: sam submitted this bill and cannot approve it "
        "(separation of duties)."
    )
    await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    assert (await h.state(bill.workflow_id)).decisions == []


async def test_a_decision_the_workflow_refuses_is_shown_on_the_page(
    h: Harness, base_url: str, page: Page
) -> None:
    bill = await waiting_bill(h, "INV-RACE")
    await sign_in(page, base_url, "Alice Approver")
    await page.get_by_role("link", name="INV-RACE").click()
    await expect(page.get_by_role("button", name="Approve")).to_be_visible()

    # Bob decides (from the CLI, say) while alice still has the page open.
    await h.remit.decide(bill.workflow_id, actor="bob", approve=True, comment="done")
    await h.until(bill.workflow_id, lambda s: s.status != LifecycleStatus.awaiting_approval)
    await page.get_by_label("Comment").fill("me too")
    await page.get_by_role("button", name="Approve").click()

    await expect(page.get_by_role("alert")).to_have_text(
        "Your decision was not recorded: this bill is not waiting for an approval decision"
    )
    decisions = page.get_by_role("table", name="Decisions so far")
    await expect(decisions).to_contain_text("Bob Approver")
    await expect(decisions).to_contain_text("done")
    state = await h.state(bill.workflow_id)
    assert [d.actor for d in state.decisions] == ["bob"]


async def test_a_controller_approves_a_payee_change_on_its_page(
    h: Harness, base_url: str, page: Page
) -> None:
    [vendor] = await h.erp.find_vendors(name="Northwind Office Supply")
    assert vendor.id
    service = h.payee_service()
    proposal = await service.propose(
        connection_id=h.connection.id,
        vendor_id=vendor.id,
        vendor_name=vendor.name,
        details=PayeeDetails(routing_number="011000015", account_number="000987654321"),
        by="sam",
        reason="the vendor's letter of 2026-11-30",
    )
    change_id = proposal.change.id
    await service.verify(change_id, by="olivia", method="call-back to the number on file")
    await service.approve(change_id, by="dave", comment="letter checked")

    await sign_in(page, base_url, "Carol Controller")
    await page.get_by_role("link", name="1 payee change waits for you").click()
    await expect(page.get_by_role("heading", name="Payee changes waiting for you")).to_be_visible()
    row = (
        page.get_by_role("table", name="To approve")
        .get_by_role("row")
        .filter(has_text="Northwind Office Supply")
    )
    await expect(row).to_contain_text("ACH ••••4321")  # the new details
    await expect(row).to_contain_text("ACH ••••6789")  # what they replace
    await expect(row).to_contain_text("Sam Clerk (sam)")
    await row.get_by_role(
        "link", name=f"Approve Northwind Office Supply's change {change_id}"
    ).click()

    await expect(
        page.get_by_role("heading", name="New bank details for Northwind Office Supply")
    ).to_be_visible()
    await expect(page.get_by_test_id("still-needs")).to_contain_text("1 more approval")
    await expect(page.get_by_role("table", name="Approvals so far")).to_contain_text(
        "Dave Controller (dave)"
    )
    await page.get_by_label("Comment").fill("Matches the vendor's letter")
    await page.get_by_role("button", name="Approve").click()

    await expect(page.get_by_role("status")).to_have_text(
        f"You approved payee change {change_id} for Northwind Office Supply (ACH ••••4321); "
        "ACH ••••4321 is now Northwind Office Supply's verified payee."
    )
    await expect(page.get_by_text("No payee change is waiting for you.")).to_be_visible()
    assert "000987654321" not in await page.content()
    change = h.payees.get_change(change_id)
    assert change is not None and change.status == "approved"
    assert [(a["by"], a["comment"]) for a in change.approvals] == [
        ("dave", "letter checked"),
        ("carol", "Matches the vendor's letter"),
    ]
    payee = h.payees.get_payee(h.connection.id, vendor.id)
    assert payee is not None and (payee.masked, payee.version) == ("ACH ••••4321", 2)


async def test_a_used_link_and_a_signed_out_session_no_longer_sign_in(
    base_url: str, page: Page
) -> None:
    await page.goto(f"{base_url}/inbox/login")
    link = page.get_by_role("link", name="Sign in as Bob Approver")
    href = await link.get_attribute("href")
    assert href
    await link.click()
    await expect(page.get_by_text("Signed in as Bob Approver")).to_be_visible()
    [cookie] = [c for c in await page.context.cookies() if c["name"] == SESSION_COOKIE]

    # The same link again (the browser's history, a forwarded email): spent.
    await page.goto(f"{base_url}{href}")
    await expect(page.get_by_role("alert")).to_contain_text(
        "This sign-in link was already used; each link signs in once."
    )
    await page.get_by_role("link", name="Open the sign-in page for a fresh link").click()
    await expect(page.get_by_role("link", name="Sign in as Bob Approver")).to_be_visible()

    await page.goto(f"{base_url}/inbox")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/inbox/login$"))
    # A copy of the cookie taken before signing out is refused: the server ended the session.
    await page.context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": cookie["value"],
                "domain": cookie["domain"],
                "path": cookie["path"],
            }
        ]
    )
    await page.goto(f"{base_url}/inbox")
    await expect(page).to_have_url(re.compile(r"/inbox/login\?next="))
    await expect(page.get_by_text("Signed in as Bob Approver")).to_have_count(0)


# The API tests' PDF bill (its total misread: 190.00 where the paper line makes 100.00).
SCANNED_BILL = [line.replace("NW-PDF-7", "NW-SCAN-1") for line in API_SCANNED_BILL]


async def test_an_admin_corrects_a_scanned_bill_beside_its_page(
    h: Harness, base_url: str, page: Page
) -> None:
    """A PDF bill whose total does not add up waits for a person, who sees each field as read
    (marked on the page image) and corrects the total; the bill goes on as corrected."""
    from accounting.scan.ocr import tools_missing
    from sandbox.pdf_writer import text_pdf
    from starter.api.inbox import magic_link
    from tests.starter.inbox_support import SESSION_SECRET

    if tools_missing():
        pytest.skip(f"poppler-utils missing: {tools_missing()}")
    bill = await submit_document(h, text_pdf([SCANNED_BILL]), file_name="nw-scan-1.pdf")
    assert bill.captured.scan is not None
    held = await h.until(bill.workflow_id, lambda s: s.status == LifecycleStatus.needs_review)
    assert any("do not add up" in r for r in held.review_reasons)

    await page.goto(base_url + magic_link(SESSION_SECRET, "olivia"))
    await page.goto(f"{base_url}{bill.path}")
    capture = page.get_by_test_id("capture")
    await expect(capture.get_by_role("heading", name="What capture read")).to_be_visible()
    total = capture.get_by_role("row", name=re.compile(r"^Total "))
    await expect(total).to_contain_text("190.00")
    await expect(total).to_contain_text("check")
    image = capture.get_by_role("img", name="Page 1 of the document")
    await expect(image).to_be_visible()
    assert await image.evaluate("i => i.complete && i.naturalWidth > 0")

    # The page shows the paper line alone makes 100.00: the total was misread. The difference
    # capture set apart as its own line goes, and the total is corrected.
    difference = capture.get_by_label("Line 2 description")
    await expect(difference).to_have_value(re.compile("^Difference between the total read"))
    await difference.fill("")
    await capture.get_by_label("Line 2 amount").fill("")
    await capture.get_by_label("Line 1 account").fill("Office Supplies")
    await capture.get_by_label("Total", exact=True).fill("100.00")
    await capture.get_by_role("button", name="Confirm these values").click()
    await expect(page.get_by_role("heading", name=re.compile("Bill NW-SCAN-1"))).to_be_visible()

    before = (LifecycleStatus.received, LifecycleStatus.matching, LifecycleStatus.needs_review)
    state = await h.until(bill.workflow_id, lambda s: s.status not in before)
    assert state.total == 100
    corrected = [e for e in h.store.audit_for(bill.workflow_id) if e.kind == "corrected"]
    assert [(e.actor, e.summary) for e in corrected] == [
        ("olivia", "total 190.00 → 100.00; lines: 2 totalling 190.00 → 1 totalling 100.00")
    ]
