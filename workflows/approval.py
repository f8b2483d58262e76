"""Approval policy → plan, and who may decide: pure functions, no Temporal, no I/O."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounting import Amount, CurrencyCode, format_money
from workflows.models import ApprovalLevel, ApprovalPlan, DecisionRecord

POLICY_DIR = Path(__file__).resolve().parent / "policy"
DEFAULT_POLICY = POLICY_DIR / "default.yaml"
DEFAULT_DIRECTORY = POLICY_DIR / "directory.yaml"
"""The demo policy and directory shipped with remit (REMIT_POLICY_FILE, REMIT_DIRECTORY_FILE)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tier(_Model):
    """Bills up to `up_to` (inclusive; None = no limit) need these groups, in order."""

    up_to: Amount | None = None
    groups: list[str] = Field(min_length=1)


class ApprovalPolicy(_Model):
    version: str
    currency: CurrencyCode = "USD"
    rates: dict[str, Amount] = Field(
        default_factory=dict,
        description="units of the policy currency per unit of another currency, for tiering",
    )
    auto_approve_below: Amount = Decimal("0")
    tiers: list[Tier] = Field(min_length=1)
    new_vendor_group: str | None = Field(
        default=None, description="a bill for a vendor remit creates is never auto-approved"
    )
    department_groups: dict[str, str] = Field(
        default_factory=dict, description="department name → an extra group that must approve"
    )
    escalation: dict[str, str] = Field(default_factory=dict, description="group → next group")
    reminder_after_hours: int = Field(default=24, gt=0)
    escalate_after_hours: int = Field(default=72, gt=0)
    fx_reapprove_above_percent: Amount = Field(
        default=Decimal("2"),
        description="a foreign bill whose rate moves more than this (%) before paying goes back "
        "for approval",
    )
    payee_verifiers: list[str] = Field(
        default_factory=lambda: ["operators"],
        description="groups whose members may record that new bank details were verified",
    )
    payee_approvers: list[str] = Field(
        default_factory=lambda: ["finance-controllers", "cfo"],
        description="groups whose members may approve a payee change",
    )
    payee_approvals_required: int = Field(
        default=2, ge=2, description="distinct approvers a payee change needs (at least two)"
    )
    payers_group: str = Field(
        default="payers", description="who may release a payment run (never its submitters)"
    )
    start_new_erp_bills: bool = Field(
        default=False,
        description="start a bill for each new open bill the sync finds in an ERP after the "
        "connection's first sync (a connection's `start_new_erp_bills` setting overrides)",
    )
    payment_runs: dict[str, PaymentRunPolicy] = Field(
        default_factory=dict,
        description="connection id → its payment runs; other connections pay on approval",
    )

    @model_validator(mode="after")
    def _tiers_ascend(self) -> ApprovalPolicy:
        limits = [t.up_to for t in self.tiers]
        if any(limit is None for limit in limits[:-1]):
            raise ValueError("only the last tier may have no upper limit")
        bounded = [limit for limit in limits if limit is not None]
        if bounded != sorted(bounded):
            raise ValueError("tiers must be in ascending order of up_to")
        if self.reminder_after_hours >= self.escalate_after_hours:
            raise ValueError("the reminder must come before the escalation")
        return self


class PaymentRunPolicy(_Model):
    """When a connection's payment runs happen and which bills they take."""

    days: list[str] = Field(
        min_length=1, description="weekdays the run is made, e.g. [tuesday, thursday]"
    )
    at: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="UTC")
    horizon_days: int = Field(
        default=7, ge=0, le=90, description="take approved bills due within this many days"
    )

    @model_validator(mode="after")
    def _known_days(self) -> PaymentRunPolicy:
        unknown = [d for d in self.days if d.lower() not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown weekday(s) {', '.join(unknown)}; use {', '.join(WEEKDAYS)}")
        return self


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class User(_Model):
    name: str
    email: str | None = None
    groups: list[str] = Field(default_factory=list)


class Directory(_Model):
    """Who is who: users and the groups they belong to."""

    users: dict[str, User]

    def members(self, group: str) -> list[str]:
        return sorted(uid for uid, user in self.users.items() if group in user.groups)

    def in_any(self, user_id: str, groups: list[str]) -> bool:
        user = self.users.get(user_id)
        return user is not None and any(group in user.groups for group in groups)


def amount_in_policy_currency(
    policy: ApprovalPolicy, amount: Decimal, currency: str
) -> Decimal | None:
    if currency == policy.currency:
        return amount
    rate = policy.rates.get(currency)
    return None if rate is None else amount * rate


def plan_for(
    policy: ApprovalPolicy,
    directory: Directory,
    *,
    amount: Decimal,
    currency: str,
    vendor_is_new: bool,
    departments: list[str] | None = None,
    connection_id: str | None = None,
) -> ApprovalPlan:
    """The ordered approval levels a bill needs under `policy`."""
    converted = amount_in_policy_currency(policy, amount, currency)
    reasons: list[str] = []
    if converted is None:
        # No rate for this currency: never approve with less scrutiny than the top tier.
        tier = policy.tiers[-1]
        reasons.append(f"no {currency}→{policy.currency} rate in the policy: top tier applies")
    else:
        tier = next(t for t in policy.tiers if t.up_to is None or converted <= t.up_to)
    groups: list[str] = []
    if converted is not None and converted < policy.auto_approve_below:
        if vendor_is_new and policy.new_vendor_group:
            groups.append(policy.new_vendor_group)
            reasons.append(f"new vendor: {policy.new_vendor_group} must approve")
        else:
            below = format_money(policy.auto_approve_below, policy.currency)
            reasons.append(f"under {below}: approved automatically")
    else:
        groups.extend(tier.groups)
        reasons.append(f"amount tier up to {tier.up_to or 'any amount'}: " + " then ".join(groups))
    for dept in departments or []:
        extra = policy.department_groups.get(dept)
        if extra and extra not in groups:
            groups.append(extra)
            reasons.append(f"department {dept}: {extra} must approve")
    levels = []
    for group in groups:
        members = directory.members(group)
        if not members:
            raise ValueError(f"approval group {group!r} has no members in the directory")
        escalation_group = policy.escalation.get(group)
        levels.append(
            ApprovalLevel(
                group=group,
                members=members,
                escalation_group=escalation_group,
                escalation_members=directory.members(escalation_group) if escalation_group else [],
            )
        )
    return ApprovalPlan(
        policy_version=policy.version,
        auto_approved=not levels,
        reason="; ".join(reasons),
        levels=levels,
        reminder_after=timedelta(hours=policy.reminder_after_hours),
        escalate_after=timedelta(hours=policy.escalate_after_hours),
        fx_reapprove_above_percent=policy.fx_reapprove_above_percent,
        payment_mode="run" if connection_id in policy.payment_runs else "on_approval",
        payers=directory.members(policy.payers_group),
    )


def eligible_approvers(level: ApprovalLevel, *, escalated: bool) -> list[str]:
    if escalated:
        return sorted(set(level.members) | set(level.escalation_members))
    return list(level.members)


def refusal(
    *,
    plan: ApprovalPlan | None,
    waiting: bool,
    level: int,
    escalated: bool,
    decisions: list[DecisionRecord],
    submitted_by: str,
    actor: str,
) -> str | None:
    """Why `actor` may not decide now (None: they may). The same rule for updates and signals."""
    if not waiting or plan is None or level >= len(plan.levels):
        return "this bill is not waiting for an approval decision"
    decided = next((d for d in decisions if d.level == level), None)
    if decided is not None:
        # The workflow moves on only after recording the decision; until then, one is enough.
        return f"level {level + 1} was already decided by {decided.actor}"
    if actor == submitted_by:
        return f"{actor} submitted this bill and cannot approve it (separation of duties)"
    if any(d.actor == actor for d in decisions):
        return f"{actor} has already decided on this bill; a different person must decide"
    current = plan.levels[level]
    if actor not in eligible_approvers(current, escalated=escalated):
        groups = current.group + (
            f" or {current.escalation_group}" if escalated and current.escalation_group else ""
        )
        return f"{actor} is not in {groups}, which must decide level {level + 1}"
    return None
