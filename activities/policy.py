"""Loads the approval policy and directory files and turns a bill into an approval plan."""

from __future__ import annotations

from pathlib import Path

import yaml

from workflows import contract
from workflows.approval import (
    DEFAULT_DIRECTORY,
    DEFAULT_POLICY,
    ApprovalPolicy,
    Directory,
    plan_for,
)
from workflows.contract import implements
from workflows.models import ApprovalPlan, PlanRequest


def load_policy(path: Path = DEFAULT_POLICY) -> ApprovalPolicy:
    return ApprovalPolicy.model_validate(yaml.safe_load(path.read_text()))


def load_directory(path: Path = DEFAULT_DIRECTORY) -> Directory:
    return Directory.model_validate(yaml.safe_load(path.read_text()))


class PolicyActivities:
    def __init__(self, policy: ApprovalPolicy, directory: Directory) -> None:
        self.policy = policy
        self.directory = directory

    @implements(contract.plan_approval)
    async def plan_approval(self, req: PlanRequest) -> ApprovalPlan:
        return plan_for(
            self.policy,
            self.directory,
            amount=req.amount,
            currency=req.currency,
            vendor_is_new=req.vendor_is_new,
            departments=req.departments,
            connection_id=req.connection_id,
        )
