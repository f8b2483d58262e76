"""Inbox sign-in: demo links only when asked and never for admins, links used once, logout
ending the session on the server, and the submitter's read-only view of his own bills."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from activities.policy import load_directory
from runtime.settings import Settings
from starter.api.inbox import (
    _DEMO_LINK,
    MAGIC_LINK_TTL,
    SESSION_COOKIE,
    _sign_in_link,
    demo_login_links,
    magic_link,
    verify_session_cookie,
)
from store import ApiKeys, InboxSessions
from store.api_keys import ALL_CONNECTIONS
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

BASE = "http://remit"
ADMINS = ("operators",)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    # A test server of its own: bills left waiting for a decision would stall time skipping.
    async with fresh_time_skipping_env() as env, running_remit(env, tmp_path) as harness:
        yield harness


def client(h: Harness, *, demo_users: bool = True) -> httpx.AsyncClient:
    """A browser of its own on an inbox app of its own (as another API process would be),
    all of them sharing the harness's store."""
    transport = httpx.ASGITransport(app=inbox_app(h, demo_users=demo_users))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


def demo_link(user_id: str) -> str:
    """A demo link as a demo-login page would list it, made for anyone (admins included)."""
    return _sign_in_link(
        _DEMO_LINK, SESSION_SECRET, user_id, now=None, ttl=MAGIC_LINK_TTL, next_path=None
    )


def listed_links(page: httpx.Response) -> dict[str, str]:
    """Name → link of every 'Sign in as …' on a sign-in page."""
    return {
        name: html.unescape(href)
        for href, name in re.findall(r'href="([^"]+)">Sign in as ([^<]+)</a>', page.text)
    }


# ---- demo sign-in: only when asked, never for admins ----------------------------------------


async def test_demo_sign_in_is_off_unless_asked(h: Harness) -> None:
    assert Settings().inbox_demo_login is False
    directory = load_directory()
    assert demo_login_links(directory, SESSION_SECRET, enabled=False, admin_groups=ADMINS) == []

    async with client(h, demo_users=False) as web:
        page = await web.get("/inbox/login")
        assert page.status_code == 200 and "Sign in as" not in page.text
        # A demo link taken while demo sign-in was on no longer signs anyone in.
        (alice,) = [
            link.path
            for link in demo_login_links(
                directory, SESSION_SECRET, enabled=True, admin_groups=ADMINS
            )
            if link.user_id == "alice"
        ]
        refused = await web.get(alice)
        assert refused.status_code == 403
        assert "Demo sign-in is off on this server" in refused.text
        assert SESSION_COOKIE not in web.cookies
        assert (await web.get("/inbox")).status_code == 303
        # The normal way still works: a link remit issued to the person.
        landed = await web.get(magic_link(SESSION_SECRET, "alice"))
        assert landed.status_code == 303
        assert "Alice Approver" in (await web.get("/inbox")).text


async def test_demo_links_are_never_offered_to_or_accepted_for_admins(h: Harness) -> None:
    directory = load_directory()
    offered = {
        link.user_id
        for link in demo_login_links(directory, SESSION_SECRET, enabled=True, admin_groups=ADMINS)
    }
    assert "olivia" not in offered and {"alice", "erin", "sam"} <= offered

    # Holding an admin API key makes carol an admin too.
    await asyncio.to_thread(
        ApiKeys(h.store.engine).issue, "carol", ["admin"], connections=ALL_CONNECTIONS
    )
    async with client(h) as web:
        page = await web.get("/inbox/login")
        names = listed_links(page)
        assert "Alice Approver" in names and "Sam Clerk" in names
        assert "Olivia Operator" not in names and "Carol Controller" not in names
        assert "olivia" not in page.text and "carol" not in page.text
        for admin in ("olivia", "carol"):
            refused = await web.get(demo_link(admin))
            assert refused.status_code == 403, admin
            assert f"{admin} is an admin" in refused.text
            assert SESSION_COOKIE not in web.cookies
        # An admin signs in the normal way: a link issued to them.
        landed = await web.get(magic_link(SESSION_SECRET, "olivia"))
        assert landed.status_code == 303
        assert "Olivia Operator" in (await web.get("/inbox")).text
    assert "carol" not in {
        link.user_id
        for link in demo_login_links(
            directory, SESSION_SECRET, enabled=True, admin_groups=ADMINS, store=h.store
        )
    }


# ---- a link works once ----------------------------------------------------------------------


async def test_a_sign_in_link_works_once_across_api_processes(h: Harness) -> None:
    link = magic_link(SESSION_SECRET, "bob")
    async with client(h) as first, client(h) as second:
        assert (await first.get(link)).status_code == 303
        again = await second.get(link)
        assert again.status_code == 410
        assert "This sign-in link was already used" in again.text
        assert "Ask for a new link" in again.text
        assert SESSION_COOKIE not in second.cookies
        assert (await second.get("/inbox")).status_code == 303

        # A demo link from the sign-in page too; the page says where to get a fresh one.
        alice = listed_links(await first.get("/inbox/login"))["Alice Approver"]
        assert (await first.get(alice)).status_code == 303
        reused = await second.get(alice)
        assert reused.status_code == 410
        assert 'href="/inbox/login">Open the sign-in page for a fresh link' in reused.text

        # Two browsers racing with one link: exactly one of them signs in.
        raced = magic_link(SESSION_SECRET, "dave")
        answers = await asyncio.gather(first.get(raced), second.get(raced))
        assert sorted(a.status_code for a in answers) == [303, 410]


# ---- logout ends the session on the server --------------------------------------------------


async def test_logout_ends_the_session_so_a_copied_cookie_is_refused(h: Harness) -> None:
    sessions = InboxSessions(h.store.engine)
    async with client(h) as web, client(h) as thief, client(h) as other_tab:
        await sign_in(web, "bob", "Bob Approver")
        await sign_in(other_tab, "bob", "Bob Approver")
        cookie = web.cookies[SESSION_COOKIE]
        assert verify_session_cookie(cookie, session_secret=SESSION_SECRET, sessions=sessions) == (
            "bob"
        )
        copied = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
        assert (await thief.get("/inbox", headers=copied)).status_code == 200

        inbox = await web.get("/inbox")
        out = await web.post("/inbox/logout", data={"csrf_token": csrf_of(inbox)})
        assert out.status_code == 303 and out.headers["location"] == "/inbox/login"

        # The copy made before logout no longer signs anyone in, on any process.
        refused = await thief.get("/inbox", headers=copied)
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/inbox/login")
        assert verify_session_cookie(cookie, session_secret=SESSION_SECRET, sessions=sessions) is (
            None
        )
        # Nor can it post a decision with the CSRF token it had.
        posted = await thief.post(
            "/inbox/decisions/bill-x", data={"csrf_token": csrf_of(inbox)}, headers=copied
        )
        assert posted.status_code == 303
        # bob's other browser keeps its own session.
        assert (await other_tab.get("/inbox")).status_code == 200

    session_id = cookie_session_id(cookie)
    row = await asyncio.to_thread(sessions.get, session_id)
    assert row is not None and row.user_id == "bob" and row.ended_at is not None
    assert row.created_at <= row.last_seen_at <= row.ended_at <= datetime.now(UTC)


def cookie_session_id(cookie: str) -> str:
    """The session id a (signed, not secret) session cookie names."""
    body = cookie.partition(".")[0]
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return str(data["s"])


# ---- the submitter's view -------------------------------------------------------------------


async def waiting_bill(h: Harness, number: str, *, amount: str) -> Submitted:
    bill = await submit_document(
        h,
        bill_document(number, amount=amount, due=date(2026, 12, 20)),
        file_name=f"{number}.json",
        submitted_by="sam",
    )
    await awaiting_approval(h, bill.workflow_id)
    return bill


async def level_two(h: Harness, workflow_id: str, *, within: float = 30.0) -> None:
    """Poll the store until the bill waits for its second approval level."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        row = await asyncio.to_thread(h.store.get_bill, workflow_id)
        if row is not None and "level 2 of 2" in str((row.state or {}).get("waiting_for")):
            return
        assert asyncio.get_running_loop().time() < deadline, "never reached level 2"
        await asyncio.sleep(0.05)


async def test_the_submitter_sees_his_bills_read_only_with_why_he_cannot_decide(
    h: Harness,
) -> None:
    small = await waiting_bill(h, "INV-SEP-1", amount="900.00")
    large = await waiting_bill(h, "INV-SEP-2", amount="12500.00")
    await h.remit.decide(large.workflow_id, actor="alice", approve=True, request_id="sep-2-l1")
    await level_two(h, large.workflow_id)

    async with client(h) as web:
        await sign_in(web, "sam", "Sam Clerk")
        page = await web.get("/inbox")
        assert page.status_code == 200
        decide_part, _, mine = page.text.partition("Bills you submitted")
        assert "Nothing is waiting for your decision." in decide_part
        assert small.number not in decide_part and large.number not in decide_part
        assert small.number in mine and large.number in mine
        assert "USD 900.00" in mine and "USD 12,500.00" in mine
        assert (
            mine.count(
                "you submitted this bill; someone else must approve it (separation of duties)"
            )
            == 2
        )
        assert "approval by ap-approvers (level 1 of 1)" in mine
        assert "approval by finance-controllers (level 2 of 2): carol, dave" in mine
        # Read-only: no decision form anywhere on the list, nor on the bill's page.
        assert "<form" not in mine.split("</section>")[0]
        bill = await web.get(small.path)
        assert "You cannot decide on this bill" in bill.text
        assert "separation of duties" in bill.text
        assert 'class="decision"' not in bill.text

    # alice decides the small one: it waits for her, and she submitted nothing.
    async with client(h) as web:
        await sign_in(web, "alice", "Alice Approver")
        page = await web.get("/inbox")
        assert small.number in page.text and "Bills you submitted" not in page.text


async def test_a_person_gets_a_one_time_link_of_their_own_with_their_api_key(
    h: Harness,
) -> None:
    keys = ApiKeys(h.store.engine)

    def key(user_id: str, scope: str) -> dict[str, str]:
        issued = keys.issue(user_id, [scope], connections=ALL_CONNECTIONS)
        return {"Authorization": f"Bearer {issued.token}"}

    olivia, sam, mallory = (
        await asyncio.to_thread(key, "olivia", "admin"),
        await asyncio.to_thread(key, "sam", "submit"),
        await asyncio.to_thread(key, "mallory", "decide"),
    )
    async with client(h, demo_users=False) as web:
        nobody = await web.post("/inbox/sign-in-links")
        assert nobody.status_code == 401
        assert "send your API key" in nobody.json()["error"]["message"]
        wrong = await web.post("/inbox/sign-in-links", headers={"Authorization": "Bearer rk_x.y"})
        assert wrong.status_code == 401
        submit_only = await web.post("/inbox/sign-in-links", headers=sam)
        assert submit_only.status_code == 403
        assert "decide (or admin) scope" in submit_only.json()["error"]["message"]
        stranger = await web.post("/inbox/sign-in-links", headers=mallory)
        assert stranger.status_code == 403
        assert "mallory is not in the inbox's directory" in stranger.json()["error"]["message"]
        away = await web.post(
            "/inbox/sign-in-links", params={"next": "https://evil.example/"}, headers=olivia
        )
        assert away.status_code == 422 and away.json()["error"]["param"] == "next"

        # olivia is an admin: no demo link, but a link of her own, once.
        issued = await web.post(
            "/inbox/sign-in-links", params={"next": "/inbox/payees"}, headers=olivia
        )
        assert issued.status_code == 201, issued.text
        body = issued.json()
        assert body["user_id"] == "olivia" and body["url"] == BASE + body["path"]
        assert issued.headers["cache-control"] == "no-store"
        landed = await web.get(body["path"])
        assert landed.status_code == 303 and landed.headers["location"] == "/inbox/payees"
        assert "Olivia Operator" in (await web.get("/inbox")).text
        assert (await web.get(body["path"])).status_code == 410
