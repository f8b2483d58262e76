"""Property tests of the approval policy: tiers never loosen as amounts grow, and who may decide."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import assume, given
from hypothesis import strategies as st

from activities.policy import load_directory, load_policy
from workflows.approval import eligible_approvers, plan_for, refusal
from workflows.models import ApprovalPlan, DecisionRecord

POLICY = load_policy()
DIRECTORY = load_directory()
USERS = sorted(DIRECTORY.users)

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e9"), places=2)
currencies = st.sampled_from(["USD", "EUR", "GBP", "CAD", "JPY", "CHF"])
departments = st.lists(st.sampled_from(["Operations", "Finance", "Sales", "Legal"]), max_size=3)


def _plan(amount: Decimal, currency: str, new: bool, depts: list[str]) -> ApprovalPlan:
    return plan_for(
        POLICY,
        DIRECTORY,
        amount=amount,
        currency=currency,
        vendor_is_new=new,
        departments=depts,
    )


def _groups(plan: ApprovalPlan) -> list[str]:
    return [level.group for level in plan.levels]


@given(low=amounts, high=amounts, currency=currencies, new=st.booleans(), depts=departments)
def test_a_larger_amount_never_needs_fewer_approval_levels(
    low: Decimal, high: Decimal, currency: str, new: bool, depts: list[str]
) -> None:
    low, high = sorted((low, high))
    smaller, larger = _plan(low, currency, new, depts), _plan(high, currency, new, depts)
    assert set(_groups(smaller)) <= set(_groups(larger))
    assert len(smaller.levels) <= len(larger.levels)


@given(amount=amounts, currency=currencies, new=st.booleans(), depts=departments)
def test_auto_approval_only_below_the_limit_and_never_for_a_new_vendor(
    amount: Decimal, currency: str, new: bool, depts: list[str]
) -> None:
    plan = _plan(amount, currency, new, depts)
    assert plan.auto_approved == (not plan.levels)
    assert plan.policy_version == POLICY.version
    assert plan.reason
    if plan.auto_approved:
        assert not new
        rate = Decimal(1) if currency == POLICY.currency else POLICY.rates[currency]
        assert amount * rate < POLICY.auto_approve_below
    for level in plan.levels:
        assert level.members, "every level has someone who can decide"
        assert level.members == DIRECTORY.members(level.group)


@given(amount=amounts, new=st.booleans())
def test_a_currency_without_a_rate_gets_the_top_tier(amount: Decimal, new: bool) -> None:
    plan = _plan(amount, "JPY", new, [])
    assert _groups(plan)[: len(POLICY.tiers[-1].groups)] == POLICY.tiers[-1].groups
    assert "no JPY→USD rate" in plan.reason


@st.composite
def decision_situations(
    draw: st.DrawFn,
) -> tuple[ApprovalPlan, int, bool, list[DecisionRecord], str, str]:
    plan = _plan(
        draw(amounts.filter(lambda a: a >= POLICY.auto_approve_below)),
        "USD",
        draw(st.booleans()),
        draw(departments),
    )
    level = draw(st.integers(min_value=0, max_value=len(plan.levels) - 1))
    escalated = draw(st.booleans())
    deciders = draw(st.lists(st.sampled_from(USERS), unique=True, max_size=level))
    decisions = [
        DecisionRecord(
            actor=actor,
            outcome="approve",
            level=index,
            group=plan.levels[index].group,
            at=datetime(2026, 11, 2, tzinfo=UTC),
            policy_version=plan.policy_version,
            via="update",
        )
        for index, actor in enumerate(deciders)
    ]
    return (
        plan,
        level,
        escalated,
        decisions,
        draw(st.sampled_from(USERS)),
        draw(st.sampled_from(USERS)),
    )


@given(situation=decision_situations())
def test_refusal_enforces_separation_of_duties_and_membership(
    situation: tuple[ApprovalPlan, int, bool, list[DecisionRecord], str, str],
) -> None:
    plan, level, escalated, decisions, submitted_by, actor = situation
    why = refusal(
        plan=plan,
        waiting=True,
        level=level,
        escalated=escalated,
        decisions=decisions,
        submitted_by=submitted_by,
        actor=actor,
    )
    allowed = (
        actor != submitted_by
        and all(d.actor != actor for d in decisions)
        and actor in eligible_approvers(plan.levels[level], escalated=escalated)
    )
    assert (why is None) == allowed
    if actor == submitted_by:
        assert why is not None and "separation of duties" in why


@given(situation=decision_situations(), waiting=st.booleans())
def test_nobody_may_decide_a_bill_that_is_not_waiting_or_past_its_last_level(
    situation: tuple[ApprovalPlan, int, bool, list[DecisionRecord], str, str], waiting: bool
) -> None:
    plan, level, escalated, decisions, submitted_by, actor = situation
    assume(not waiting or True)
    for current, is_waiting in ((level, waiting), (len(plan.levels), True)):
        if is_waiting and current < len(plan.levels):
            continue
        why = refusal(
            plan=plan,
            waiting=is_waiting,
            level=current,
            escalated=escalated,
            decisions=decisions,
            submitted_by=submitted_by,
            actor=actor,
        )
        assert why == "this bill is not waiting for an approval decision"
