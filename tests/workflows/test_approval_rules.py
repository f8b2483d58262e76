"""The decision rule shared by the `decide` update's validator and the `decision` signal."""

from __future__ import annotations

from datetime import UTC, datetime

from workflows.approval import refusal
from workflows.models import ApprovalLevel, ApprovalPlan, DecisionRecord

PLAN = ApprovalPlan(
    policy_version="test",
    auto_approved=False,
    reason="above 10,000",
    levels=[
        ApprovalLevel(group="ap-approvers", members=["alice", "bob"]),
        ApprovalLevel(group="finance-controllers", members=["carol", "dave"]),
    ],
)


def decision(actor: str, level: int) -> DecisionRecord:
    return DecisionRecord(
        actor=actor,
        outcome="approve",
        level=level,
        group=PLAN.levels[level].group,
        at=datetime(2026, 11, 21, tzinfo=UTC),
        policy_version="test",
        via="update",
    )


def refused(actor: str, *, level: int, decisions: list[DecisionRecord]) -> str | None:
    return refusal(
        plan=PLAN,
        waiting=True,
        level=level,
        escalated=False,
        decisions=decisions,
        submitted_by="sam",
        actor=actor,
    )


def test_a_level_already_decided_takes_no_second_decision() -> None:
    # bob's approval is recorded but the workflow has not yet moved to level 2.
    why = refused("alice", level=0, decisions=[decision("bob", 0)])
    assert why == "level 1 was already decided by bob"


def test_the_next_level_is_open_once_the_workflow_moves_on() -> None:
    assert refused("carol", level=1, decisions=[decision("bob", 0)]) is None
    assert "already decided on this bill" in str(
        refused("bob", level=1, decisions=[decision("bob", 0)])
    )
