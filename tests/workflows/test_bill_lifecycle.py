"""BillWorkflow end to end under time skipping, on every ERP emulator and the sandbox bank."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from connectors.registry import available_platforms
from sandbox.bank import ReturnRule
from tests.workflows.harness import Harness, draft, running_remit
from workflows.models import LifecycleStatus as S


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


async def assert_paid_once(h: Harness, bill_id: str, amount: str) -> None:
    payments = await h.bill_payments(bill_id)
    assert [p.total for p in payments] == [Decimal(amount)]
    bill = await h.erp.get_bill(bill_id)
    assert bill.balance == 0
    assert [p.amount for p in await h.bank_payments()] == [Decimal(amount)]


async def test_auto_approved_bill_is_paid_once_and_reconciled(h: Harness) -> None:
    wid = await h.submit(draft(amount="120.00"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.plan is not None and final.plan.auto_approved
    assert final.erp_bill_id and final.erp_payment_id
    await assert_paid_once(h, final.erp_bill_id, "120.00")
    row = h.store.get_bill(wid)
    assert row is not None and row.status == "reconciled" and row.revision == final.revision
    kinds = [e.kind for e in h.store.audit_for(wid)]
    assert "bank_write" in kinds and kinds.count("erp_write") >= 2


async def test_second_submit_of_the_same_bill_returns_the_first_workflow(h: Harness) -> None:
    bill = draft(amount="120.00")
    first = await h.remit.submit_bill(
        bill, connection_id=h.connection.id, platform=h.platform, submitted_by="sam"
    )
    again = await h.remit.submit_bill(
        bill, connection_id=h.connection.id, platform=h.platform, submitted_by="sam"
    )
    assert first.created and not again.created
    assert again.workflow_id == first.workflow_id
    await h.result(first.workflow_id)
    after = await h.remit.submit_bill(
        bill, connection_id=h.connection.id, platform=h.platform, submitted_by="sam"
    )
    assert not after.created and after.workflow_id == first.workflow_id
    assert len(await h.bank_payments()) == 1


async def test_two_level_approval_records_each_decision_with_the_policy_version(
    h: Harness,
) -> None:
    wid = await h.submit(draft(amount="25000.00"))
    state = await h.status(wid, S.awaiting_approval)
    assert state.pending_approvers == ["alice", "bob", "dave"]
    first = await h.remit.decide(wid, actor="alice", approve=True, comment="ok")
    assert first.level == 0 and first.policy_version == "default-2026-11"
    state = await h.until(wid, lambda s: s.level == 1)
    assert state.pending_approvers == ["carol", "dave"]
    await h.remit.decide(wid, actor="carol", approve=True)
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert [(d.actor, d.group) for d in final.decisions] == [
        ("alice", "ap-approvers"),
        ("carol", "finance-controllers"),
    ]
    decisions = [e for e in h.store.audit_for(wid) if e.kind == "decision"]
    assert [(e.actor, e.policy_version) for e in decisions] == [
        ("alice", "default-2026-11"),
        ("carol", "default-2026-11"),
    ]


async def test_validator_refuses_with_a_reason(h: Harness) -> None:
    wid = await h.submit(draft(amount="25000.00"))
    await h.status(wid, S.awaiting_approval)

    async def refused(actor: str) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await h.remit.decide(wid, actor=actor, approve=True)
        return str(info.value.cause)

    assert "not in ap-approvers" in await refused("carol")
    assert "separation of duties" in await refused("sam")
    await h.remit.decide(wid, actor="dave", approve=True)
    await h.until(wid, lambda s: s.level == 1)
    assert "already decided" in await refused("dave")
    await h.remit.decide(wid, actor="carol", approve=True)
    await h.until(wid, lambda s: s.status not in (S.awaiting_approval,))
    assert "not waiting for an approval" in await refused("bob")
    final = await h.result(wid)
    assert [d.actor for d in final.decisions] == ["dave", "carol"]


async def test_reminder_after_a_day_and_escalation_after_three(h: Harness) -> None:
    wid = await h.submit(draft(amount="900.00"))
    await h.status(wid, S.awaiting_approval)
    await h.env.sleep(timedelta(hours=25))
    notices = await h.until(wid, lambda s: True)
    kinds = [e.kind for e in h.store.audit_for(wid)]
    assert "reminder" in kinds and "escalation" not in kinds, notices
    await h.env.sleep(timedelta(hours=48))
    state = await h.until(wid, lambda s: s.escalated)
    assert state.pending_approvers == ["alice", "bob", "carol", "dave"]
    assert "escalated" in (state.waiting_for or "")
    await h.remit.decide(wid, actor="carol", approve=True)  # the escalation group may decide now
    final = await h.result(wid)
    assert final.status == S.reconciled
    kinds = [e.kind for e in h.store.audit_for(wid)]
    assert kinds.count("notice.approval_reminder") == 1
    assert kinds.count("notice.approval_escalated") == 1


async def test_rejection_ends_the_bill_without_paying(h: Harness) -> None:
    wid = await h.submit(draft(amount="900.00"))
    await h.status(wid, S.awaiting_approval)
    with pytest.raises(WorkflowUpdateFailedError):
        await h.remit.decide(wid, actor="alice", approve=False)  # a rejection needs a reason
    await h.remit.decide(wid, actor="alice", approve=False, comment="not ordered")
    final = await h.result(wid)
    assert final.status == S.rejected
    assert final.erp_bill_id is None
    assert await h.bank_payments() == []


async def test_likely_duplicate_waits_in_needs_review_until_resolved(h: Harness) -> None:
    first = await h.submit(draft(number="INV-77", amount="120.00"), key="a")
    await h.result(first)
    dup = await h.submit(draft(number="inv 77", amount="120.00"), key="b")
    state = await h.status(dup, S.needs_review)
    assert any("same document number" in r for r in state.review_reasons)
    await h.remit.cancel(dup, actor="olivia", reason="it is the same invoice")
    final = await h.result(dup)
    assert final.status == S.cancelled
    assert len(await h.bank_payments()) == 1


async def test_new_vendor_is_created_once_and_needs_approval(h: Harness) -> None:
    wid = await h.submit(
        draft(vendor="Brand New Widgets LLC", tax_id="77-7777777", amount="120.00")
    )
    state = await h.status(wid, S.awaiting_approval)
    assert state.vendor_id is None and state.plan and "new vendor" in state.plan.reason
    await h.remit.decide(wid, actor="bob", approve=True)
    # A vendor remit creates has no verified payee: the document's details wait for review.
    held = await h.status(wid, S.needs_review)
    assert held.payee is not None and held.payee.status == "new" and held.payee.change_id
    await h.review_payee_change(held.payee.change_id)
    final = await h.result(wid)
    assert final.status == S.reconciled and final.vendor_created
    vendors = await h.erp.find_vendors(name="Brand New Widgets LLC")
    assert [v.id for v in vendors] == [final.vendor_id]


async def test_bill_paid_elsewhere_is_not_paid_again(h: Harness) -> None:
    # The test server's clock is shared by the session: pick a pay date ahead of it.
    today = (await h.env.get_current_time()).date()
    wid = await h.submit(draft(amount="120.00", issue=today, due=today + timedelta(days=30)))
    state = await h.status(wid, S.scheduled)
    assert state.erp_bill_id
    # Someone pays the bill in the ERP while it waits for its pay date.
    from accounting import BillPayment, BillPaymentLine

    await h.erp.create_bill_payment(
        BillPayment(
            vendor_id=state.vendor_id or "",
            payment_date=date(2026, 11, 20),
            currency="USD",
            source_account_id=h.company.settings["bank_account_id"],
            total=Decimal("120.00"),
            lines=[BillPaymentLine(bill_id=state.erp_bill_id, amount=Decimal("120.00"))],
        ),
        reference="paid-by-hand",
        idempotency_key="paid-by-hand",
    )
    final = await h.result(wid)
    assert final.status == S.paid_elsewhere
    assert await h.bank_payments() == []


async def test_bank_return_needs_attention_and_retry_pays_again_with_a_new_key(
    h: Harness,
) -> None:
    h.bank.set_return_rules([ReturnRule(code="R01", times=1)])
    wid = await h.submit(draft(amount="120.00"))
    state = await h.status(wid, S.needs_attention)
    assert "R01" in (state.last_error or "")
    await h.remit.retry(wid, actor="olivia", reason="vendor confirmed funds")
    final = await h.result(wid)
    assert final.status == S.reconciled
    keys = sorted(p.idempotency_key for p in await h.bank_payments())
    assert keys == [f"{wid}/pay/1", f"{wid}/pay/2"]
    assert final.erp_bill_id
    assert len(await h.bill_payments(final.erp_bill_id)) == 1


async def test_erp_validation_error_waits_for_an_operator_then_retry_reconciles(
    h: Harness,
) -> None:
    # A misconfigured connection: the bank account to pay from does not exist in the ERP.
    good = dict(h.connection.settings)
    h.connection.settings["bank_account_id"] = "999999"
    wid = await h.submit(draft(amount="120.00"))
    state = await h.status(wid, S.needs_attention)
    assert state.last_error and "post_bill_payment failed" in state.last_error
    h.connection.settings.update(good)
    await h.remit.retry(wid, actor="olivia", reason="fixed the bank account mapping")
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.erp_bill_id
    await assert_paid_once(h, final.erp_bill_id, "120.00")


@pytest.mark.parametrize("fault", ["5xx", "429", "drop"])
async def test_faults_on_the_payment_write_leave_exactly_one_payment(
    h: Harness, fault: str
) -> None:
    h.emulator.faults.retry_after_seconds = 2
    h.emulator.faults.script(fault, h.emulator.write_matches["bill_payment"], times=2)
    wid = await h.submit(draft(amount="120.00"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    # A dropped response hid a write that landed: the retry's look-up finds it, no second write.
    assert h.emulator.faults.fired.get(fault) == (1 if fault == "drop" else 2)
    assert final.erp_bill_id
    await assert_paid_once(h, final.erp_bill_id, "120.00")


async def test_uncoded_line_waits_in_review_until_an_operator_names_the_account(
    h: Harness,
) -> None:
    h.connection.settings.pop("default_expense_account", None)
    wid = await h.submit(
        draft(vendor="Uncoded Parts GmbH", tax_id=None, account=None, amount="120.00")
    )
    state = await h.status(wid, S.needs_review)
    assert any("no account given" in r for r in state.review_reasons)
    await h.remit.resolve(wid, actor="olivia", account="Office Supplies")
    state = await h.status(wid, S.awaiting_approval)  # a new vendor always needs a person
    accounts = {a.name: a.id for a in await h.erp.list_accounts()}
    assert [ln.account_id for ln in state.lines] == [accounts["Office Supplies"]]
    await h.remit.decide(wid, actor="alice", approve=True)
    held = await h.status(wid, S.needs_review)
    assert held.payee is not None and held.payee.change_id
    await h.review_payee_change(held.payee.change_id)
    assert (await h.result(wid)).status == S.reconciled
