"""Payment runs on every ERP emulator: a proposal of due bills, a release by a payer only, one
bank payment and one ERP bill payment per vendor, discounts taken, and each bill reconciled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from accounting import BillPayment, BillPaymentLine, PaymentTerms
from connectors.registry import available_platforms
from store import WebhookStore
from tests.workflows.harness import Harness, draft, running_remit
from workflows.approval import PaymentRunPolicy
from workflows.models import LifecycleStatus as S
from workflows.payment_run import PaymentRunWorkflow, RunAction

GLOBEX_ACH = "026009593/004567891234"
TERMS = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        harness.deps.policy.payment_runs[harness.connection.id] = PaymentRunPolicy(
            days=["tuesday", "thursday"]
        )
        yield harness


async def waiting_for_a_run(h: Harness, wid: str) -> None:
    await h.until(wid, lambda s: s.awaiting_run and s.status == S.scheduled)
    await h.until_recorded(wid, lambda row: bool(row.state.get("awaiting_run")))


async def test_a_run_pays_each_vendor_once_after_a_payer_releases_it(h: Harness) -> None:
    today = (await h.env.get_current_time()).date()
    due = today + timedelta(days=5)
    northwind = [
        await h.submit(draft(number=f"RUN-N{n}", amount=amount, issue=today, due=due), terms=terms)
        for n, (amount, terms) in enumerate([("120.00", TERMS), ("180.00", None), ("140.00", None)])
    ]
    globex = await h.submit(
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
    for wid in [*northwind, globex]:
        await waiting_for_a_run(h, wid)
    assert await h.bank_payments() == []

    run_id = await h.remit.start_payment_run(h.connection.id, run_date=today, horizon_days=7)
    state = await h.until_run(run_id, lambda r: r.status == "proposed")
    assert sorted(g.vendor_name for g in state.groups) == [
        "Globex Software",
        "Northwind Office Supply",
    ]
    northwind_group = next(g for g in state.groups if g.vendor_name.startswith("Northwind"))
    assert northwind_group.cash == Decimal("120.00") - Decimal("2.40") + Decimal("320.00")
    for wid in northwind:
        await h.until(wid, lambda s: s.payment_run_id == run_id)

    async def refused(actor: str) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await h.remit.steer_run(run_id, "release", actor=actor)
        return str(info.value.cause)

    assert "not a payer" in await refused("alice")
    with pytest.raises(WorkflowUpdateFailedError) as pausing:
        await h.remit.steer_run(run_id, "pause", actor="olivia")  # an operator, not a payer
    assert "olivia is not a payer" in str(pausing.value.cause)
    assert "separation of duties" in await refused("paula")  # she submitted the Globex bill
    await h.remit.steer_run(run_id, "pull", actor="erin", bill_id=globex, reason="query")
    await h.remit.steer_run(run_id, "pull", actor="erin", bill_id=northwind[2])
    await h.remit.steer_run(run_id, "pause", actor="erin", reason="checking the total")
    assert "only a proposed run" not in await refused("sam")  # sam is no payer either
    await h.remit.steer_run(run_id, "resume", actor="erin")
    await h.remit.steer_run(run_id, "release", actor="paula")
    final = await h.until_run(run_id, lambda r: r.status in ("paid", "needs_attention"))
    assert final.status == "paid", final.log
    assert final.released_by == "paula"

    bank = await h.bank_payments()
    assert [p.amount for p in bank] == [Decimal("297.60")]  # 117.60 (2 % off) + 180.00
    for wid in northwind[:2]:
        done = await h.result(wid)
        assert done.status == S.reconciled, done.last_error
        assert done.payment.rail_payment_id == bank[0].id
    first = await h.state(northwind[0])
    assert first.payments[0].discount == Decimal("2.40")
    assert first.erp_bill_id
    [payment] = await h.bill_payments(first.erp_bill_id)
    assert sorted(ln.amount for ln in payment.lines) == [Decimal("117.60"), Decimal("180.00")]
    announced = [
        e.type
        for e in WebhookStore(h.store).events_since(
            datetime(2000, 1, 1, tzinfo=UTC),
            event_types=["payment_run.proposed", "payment_run.released", "payment_run.paid"],
            limit=10,
        )
        if e.subject == run_id
    ]
    assert announced == ["payment_run.proposed", "payment_run.released", "payment_run.paid"]
    # The pulled bills wait for the next run.
    for wid in (globex, northwind[2]):
        left = await h.state(wid)
        assert left.awaiting_run and left.payment_run_id is None and left.status == S.scheduled


async def test_a_bill_paid_elsewhere_after_the_proposal_is_left_out(h: Harness) -> None:
    today = (await h.env.get_current_time()).date()
    wid = await h.submit(
        draft(number="RUN-X1", amount="120.00", issue=today, due=today + timedelta(days=3))
    )
    other = await h.submit(
        draft(number="RUN-X2", amount="130.00", issue=today, due=today + timedelta(days=3))
    )
    for bill in (wid, other):
        await waiting_for_a_run(h, bill)
    run_id = await h.remit.start_payment_run(h.connection.id, run_date=today)
    await h.until_run(run_id, lambda r: r.status == "proposed")
    state = await h.state(wid)
    assert state.erp_bill_id and state.vendor_id
    await h.erp.create_bill_payment(
        BillPayment(
            vendor_id=state.vendor_id,
            payment_date=today,
            currency="USD",
            source_account_id=h.company.settings["bank_account_id"],
            total=Decimal("120.00"),
            lines=[BillPaymentLine(bill_id=state.erp_bill_id, amount=Decimal("120.00"))],
        ),
        reference="paid-by-hand",
        idempotency_key="paid-by-hand",
    )
    await h.remit.steer_run(run_id, "release", actor="erin")
    final = await h.until_run(run_id, lambda r: r.status in ("paid", "needs_attention"))
    assert any("already paid in the ERP" in line for line in final.log), final.log
    assert [p.amount for p in await h.bank_payments()] == [Decimal("130.00")]
    assert (await h.result(other)).status == S.reconciled


async def test_a_run_whose_erp_write_fails_after_paying_is_retried_without_paying_again(
    h: Harness,
) -> None:
    today = (await h.env.get_current_time()).date()
    wid = await h.submit(
        draft(number="RUN-W1", amount="150.00", issue=today, due=today + timedelta(days=3))
    )
    await waiting_for_a_run(h, wid)
    run_id = await h.remit.start_payment_run(h.connection.id, run_date=today)
    await h.until_run(run_id, lambda r: r.status == "proposed")
    good = h.connection.settings["bank_account_id"]
    h.change_settings(bank_account_id="999999")  # the ERP refuses the bill payment
    await h.remit.steer_run(run_id, "release", actor="erin")
    stuck = await h.until_run(run_id, lambda r: r.status == "needs_attention")
    assert stuck.groups[0].rail_payment_id and stuck.groups[0].erp_payment_id is None
    h.change_settings(bank_account_id=good)
    await h.remit.run_handle(run_id).signal(
        PaymentRunWorkflow.retry, RunAction(actor="olivia", reason="fixed the account")
    )
    await h.until_run(run_id, lambda r: r.status == "paid")
    assert [p.amount for p in await h.bank_payments()] == [Decimal("150.00")]
    assert (await h.result(wid)).status == S.reconciled
