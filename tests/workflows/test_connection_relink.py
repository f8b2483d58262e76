"""A grant revoked in the middle of a run pauses the bills that hit it; a relink completes them.

On every ERP emulator, with the connection made through the platform's own auth flow and kept
in the store: the revoke puts the bills that next touch the ERP in needs_attention (never
failed), marks the connection needs_relink, and `ConnectionService.relink` resumes exactly the
bills paused for it, which then finish with one ERP bill, one bill payment and one bank payment
each. Bills waiting for anything else ignore the relink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from connectors.base import AuthExpired, ConnectionRevoked
from connectors.registry import ERP_PLATFORMS
from tests.workflows.harness import RELINK_ACTOR, Harness, draft, running_remit
from workflows.models import FINAL_STATUSES, BillState
from workflows.models import LifecycleStatus as S

RELINK_SIGNAL = "connection_relinked"


@pytest.fixture(params=ERP_PLATFORMS)
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param, linked=True) as harness:
        yield harness


async def relink_signals_handled(h: Harness, workflow_id: str, count: int) -> None:
    """Wait (bounded) until the bill has run a workflow task after its `count`th relink signal,
    so a query afterwards shows what the signal did (or that it did nothing)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        events = [e async for e in h.remit.handle(workflow_id).fetch_history_events()]
        signalled = [
            index
            for index, event in enumerate(events)
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == RELINK_SIGNAL
        ]
        if len(signalled) >= count and any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            for e in events[signalled[count - 1] :]
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{workflow_id} never handled relink signal {count}")
        await asyncio.sleep(0.05)


def assert_paused_for_relink(h: Harness, state: BillState, activity: str) -> None:
    assert state.status == S.needs_attention
    assert state.waiting_for is not None
    assert state.waiting_for.startswith(f"connection {h.connection.id} to be relinked")
    assert state.last_error is not None
    assert state.last_error.startswith(
        f"{activity} failed: connection {h.connection.id} needs relink"
    )


async def assert_written_once(h: Harness, final: BillState, number: str, amount: str) -> None:
    """One ERP bill with this number, one bill payment on it, one bank payment for the bill."""
    assert final.status == S.reconciled, final.last_error
    assert final.erp_bill_id and final.erp_payment_id and final.vendor_id
    erp = h.current_erp()
    bills = [b for b in await erp.find_bills(vendor_id=final.vendor_id) if b.status != "void"]
    assert [(b.id, b.reference) for b in bills if b.document_number == number] == [
        (final.erp_bill_id, f"{final.workflow_id}/bill")
    ]
    payments = await h.bill_payments(final.erp_bill_id)
    assert [(p.id, p.total) for p in payments] == [(final.erp_payment_id, Decimal(amount))]
    assert (await erp.get_bill(final.erp_bill_id)).balance == 0
    bank = [p for p in await h.bank_payments() if p.idempotency_key.startswith(final.workflow_id)]
    assert [(p.idempotency_key, p.amount) for p in bank] == [
        (f"{final.workflow_id}/pay/1", Decimal(amount))
    ]


async def test_a_revoked_grant_pauses_bills_until_a_relink_completes_them_once(
    h: Harness,
) -> None:
    today = (await h.env.get_current_time()).date()
    good_bank_account = h.connection.settings["bank_account_id"]

    # C waits for an operator on a problem of its own: a bank account the ERP does not know.
    h.change_settings(bank_account_id="999999")
    c = await h.submit(draft(number="INV-C", amount="130.00", issue=today, due=today), key="c")
    c_held = await h.status(c, S.needs_attention)
    assert c_held.last_error and c_held.last_error.startswith("post_bill_payment failed")
    h.change_settings(bank_account_id=good_bank_account)

    # A waits for alice (then pays at once); B is posted and waits for its pay date.
    a = await h.submit(draft(number="INV-A", amount="900.00"), key="a", pay_on=today)
    await h.status(a, S.awaiting_approval)
    pay_on = today + timedelta(days=3)
    b = await h.submit(
        draft(number="INV-B", amount="120.00", issue=today, due=today + timedelta(days=30)),
        key="b",
        pay_on=pay_on,
    )
    b_scheduled = await h.status(b, S.scheduled)
    assert b_scheduled.erp_bill_id

    # The company disconnects remit in the ERP: the first grant no longer opens anything.
    h.revoke_grant()
    with pytest.raises((ConnectionRevoked, AuthExpired)):
        await h.erp.list_accounts()

    # A's first ERP write after the approval finds out.
    await h.remit.decide(a, actor="alice", approve=True)
    a_paused = await h.status(a, S.needs_attention)
    assert_paused_for_relink(h, a_paused, "post_bill")
    assert a_paused.erp_bill_id is None
    row = h.connection_row()
    assert row.status == "needs_relink" and row.last_error

    # B's re-read on its pay date finds out too.
    await h.env.sleep(timedelta(days=4))
    b_paused = await h.status(b, S.needs_attention)
    assert_paused_for_relink(h, b_paused, "prepare_payment")
    assert b_paused.erp_bill_id == b_scheduled.erp_bill_id

    for wid in (a, b, c):
        description = await h.remit.handle(wid).describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        assert (await h.state(wid)).status not in FINAL_STATUSES
        projected = h.store.get_bill(wid)
        assert projected is not None and projected.status == S.needs_attention.value
    # Only C reached the bank so far.
    assert [p.idempotency_key for p in await h.bank_payments()] == [f"{c}/pay/1"]

    relinked = await h.relink()

    assert relinked.status == "active" and relinked.company_id == h.company.company_id
    assert h.stored_credentials()["access_token"] != h.connection.credentials["access_token"]
    # The hook signalled every bill waiting in needs_attention on this connection ...
    assert [sorted(ids) for ids in h.resumed] == [sorted([a, b, c])]
    for wid in (a, b):
        await relink_signals_handled(h, wid, 1)
    # Waited for without skipping time: with C parked (no timer), the test server would skip
    # straight to C's execution timeout in the gap after A's or B's result came back.
    final_a = await h.status(a, S.reconciled, S.needs_attention)
    final_b = await h.status(b, S.reconciled, S.needs_attention)
    # ... and those paused for the relink went on by themselves, with the same keys.
    for final in (final_a, final_b):
        assert final.operator_actions == [f"retry by {RELINK_ACTOR}: connection relinked"]
    await assert_written_once(h, final_a, "INV-A", "900.00")
    await assert_written_once(h, final_b, "INV-B", "120.00")

    # C kept waiting for its own operator, with its own reason.
    await relink_signals_handled(h, c, 1)
    c_after = await h.state(c)
    assert c_after.status == S.needs_attention
    assert (c_after.last_error, c_after.waiting_for) == (c_held.last_error, c_held.waiting_for)
    assert c_after.operator_actions == []
    await h.remit.retry(c, actor="olivia", reason="fixed the bank account mapping")
    await assert_written_once(h, await h.result(c), "INV-C", "130.00")
    assert h.connection_row().status == "active"


async def test_a_relink_signal_to_a_bill_not_paused_for_one_changes_nothing(h: Harness) -> None:
    today = (await h.env.get_current_time()).date()
    approving = await h.submit(draft(number="INV-1", amount="900.00"), key="approving")
    scheduled = await h.submit(
        draft(number="INV-2", amount="120.00", issue=today, due=today + timedelta(days=30)),
        key="scheduled",
        pay_on=today + timedelta(days=3),
    )
    await h.status(approving, S.awaiting_approval)
    await h.status(scheduled, S.scheduled)
    # The same invoice again: held in needs_review as a likely duplicate.
    duplicate = await h.submit(draft(number="inv 2", amount="120.00"), key="duplicate")
    await h.status(duplicate, S.needs_review)
    before = {wid: await h.state(wid) for wid in (approving, scheduled, duplicate)}

    for wid in before:
        await h.remit.connection_relinked(wid, actor="olivia")
    for wid in before:
        await relink_signals_handled(h, wid, 1)

    for wid, earlier in before.items():
        now = await h.state(wid)
        assert (now.status, now.waiting_for, now.revision) == (
            earlier.status,
            earlier.waiting_for,
            earlier.revision,
        )
        assert now.operator_actions == []
    # Nothing was left pending either: each bill still goes on only the way it was waiting to.
    await h.remit.decide(approving, actor="alice", approve=True)
    await h.remit.cancel(duplicate, actor="olivia", reason="the same invoice")
    assert (await h.result(duplicate)).status == S.cancelled
    assert (await h.result(approving)).status == S.reconciled
    assert (await h.result(scheduled)).status == S.reconciled
    assert len(await h.bank_payments()) == 2
