"""Money in what workflows print (audit trail, notices, refusals): one way, the currency's own
minor units (`accounting.format_money`): JPY 150,000, KWD 1,234.500, USD 1,234.50."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.policy import load_directory, load_policy
from tests.workflows.harness import draft, running_remit
from workflows.approval import plan_for
from workflows.models import LifecycleStatus as S
from workflows.models import bill_summary


def test_a_bill_is_named_with_its_currency_s_minor_units() -> None:
    assert bill_summary("A-1", "Acme", "JPY", Decimal("150000")) == "Bill A-1 · Acme · JPY 150,000"
    assert (
        bill_summary("A-2", "Acme", "KWD", Decimal("1234.5")) == "Bill A-2 · Acme · KWD 1,234.500"
    )
    assert bill_summary("A-3", "Acme", "USD", Decimal("1234.5")) == "Bill A-3 · Acme · USD 1,234.50"


def test_an_automatic_approval_says_the_threshold_as_money() -> None:
    policy = load_policy().model_copy(update={"auto_approve_below": Decimal("2500")})
    plan = plan_for(
        policy,
        load_directory(),
        amount=Decimal("1200.00"),
        currency="USD",
        vendor_is_new=False,
        departments=[],
    )
    assert plan.auto_approved
    assert "under USD 2,500.00: approved automatically" in plan.reason, plan.reason


async def test_a_likely_duplicate_names_the_held_bill_s_amount_as_money(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path) as h:
        first = await h.submit(draft(number="INV-88", amount="1234.50"), key="a")
        await h.status(first, S.awaiting_approval)
        dup = await h.submit(draft(number="inv 88", amount="1234.50"), key="b")
        state = await h.status(dup, S.needs_review)
    [reason] = [r for r in state.review_reasons if f"remit bill {first}" in r]
    assert "(INV-88, USD 1,234.50, awaiting_approval) has the same document number" in reason


async def test_a_yen_bill_s_trail_prints_whole_yen(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path, "xero") as h:
        # Xero books JPY once the organisation enables it (its rates come from the bank).
        h.emulator.tenants[h.company.company_id].currencies.append("JPY")  # type: ignore[attr-defined]
        wid = await h.submit(
            draft(
                number="JPY-1",
                vendor="Fabrikam GmbH",
                tax_id="DE999999999",
                currency="JPY",
                amount="150000",
                bank_account="DE02120300000000202051",
            )
        )
        await h.status(wid, S.awaiting_approval)
        # No JPY rate in the policy: the top tier's two levels approve.
        await h.remit.decide(wid, actor="alice", approve=True)
        await h.until(wid, lambda s: s.level == 1)
        await h.remit.decide(wid, actor="carol", approve=True)
        # Paid at the bank; writing the payment back needs a JPY bank account in the ERP,
        # which this organisation lacks, so the bill then waits for a person: far enough.
        await h.until(wid, lambda s: s.status == S.needs_attention)
        trail = [e.summary for e in h.store.audit_for(wid)]
    said = "\n".join(trail)
    assert "Bill JPY-1 · Fabrikam GmbH · JPY 150,000: " in said  # every notice names the bill
    assert "payment of JPY 150,000" in said and "settled JPY 150,000" in said
    assert "150,000.00" not in said and "150000" not in said
