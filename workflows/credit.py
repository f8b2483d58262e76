"""CreditWorkflow: a vendor credit (credit memo) from capture to the ERP, then available to bills.

Matched to the vendor like a bill (ambiguity waits in review), written to the ERP as the
platform's vendor credit with remit's reference (looked up before any retry), and recorded in
the store's credit ledger, from which the vendor's bills take it before paying (the bank pays
the net).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from accounting import Amount, BillDraft, CurrencyCode, format_money
    from workflows import contract
    from workflows.bill import NON_RETRYABLE, describe_failure
    from workflows.models import (
        MatchRequest,
        MatchResult,
        OperatorAction,
        PostCreditRequest,
        PostedCredit,
        erp_task_queue,
    )

CreditStatus = Literal["matching", "needs_review", "posting", "available", "cancelled"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def credit_workflow_id(connection_id: str, credit_key: str) -> str:
    return f"credit/{connection_id}/{credit_key}"


class CreditInput(_Model):
    connection_id: str
    platform: str
    credit_key: str
    draft: BillDraft
    submitted_by: str


class CreditState(_Model):
    workflow_id: str
    connection_id: str
    status: CreditStatus = "matching"
    document_number: str
    vendor_name: str
    vendor_id: str | None = None
    currency: CurrencyCode
    total: Amount
    erp_credit_id: str | None = None
    waiting_for: str | None = None
    problems: list[str] = Field(default_factory=list)
    audit: list[str] = Field(default_factory=list)


ERP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(days=1),
    "retry_policy": RetryPolicy(
        maximum_interval=timedelta(minutes=5), non_retryable_error_types=NON_RETRYABLE
    ),
}


@workflow.defn
class CreditWorkflow:
    @workflow.init
    def __init__(self, input: CreditInput) -> None:
        self.input = input
        self.state = CreditState(
            workflow_id=credit_workflow_id(input.connection_id, input.credit_key),
            connection_id=input.connection_id,
            document_number=input.draft.document_number,
            vendor_name=input.draft.vendor.name,
            currency=input.draft.currency,
            total=input.draft.total,
        )
        self._operator: tuple[str, OperatorAction] | None = None

    @workflow.query
    def state_query(self) -> CreditState:
        return self.state

    @workflow.signal
    def resolve(self, action: OperatorAction) -> None:
        self._operator = ("resolve", action)

    @workflow.signal
    def cancel(self, action: OperatorAction) -> None:
        self._operator = ("cancel", action)

    @workflow.run
    async def run(self, input: CreditInput) -> CreditState:
        queue = erp_task_queue(workflow.info().task_queue)
        vendor_id: str | None = None
        account: str | None = None
        match: MatchResult | None = None
        while True:
            self.state.status = "matching"
            try:
                found: MatchResult = await workflow.execute_activity(
                    contract.match_bill,
                    MatchRequest(
                        workflow_id=self.state.workflow_id,
                        connection_id=input.connection_id,
                        draft=input.draft,
                        vendor_id=vendor_id,
                        account=account,
                    ),
                    task_queue=queue,
                    summary=f"match credit {input.draft.document_number}",
                    **ERP,
                )
                match = found
                problems = list(found.problems)
                if found.vendor is None:
                    problems.append(
                        "no such vendor in the ERP (or it is ambiguous): a credit needs a known "
                        "vendor; resolve with its vendor id"
                    )
            except ActivityError as err:
                match, problems = None, [describe_failure(err)]
            if not problems and match is not None and match.vendor is not None:
                break
            if not await self._review(problems):
                return self.state
            assert self._operator is not None
            _, action = self._operator
            self._operator = None
            vendor_id = action.vendor_id or vendor_id
            account = action.account or account
        assert match is not None and match.vendor is not None and match.vendor.id is not None
        self.state.vendor_id, self.state.vendor_name = match.vendor.id, match.vendor.name
        self.state.status, self.state.problems, self.state.waiting_for = "posting", [], None
        reference = f"{self.state.workflow_id}/credit"
        while True:
            try:
                posted: PostedCredit = await workflow.execute_activity(
                    contract.post_credit_memo,
                    PostCreditRequest(
                        workflow_id=self.state.workflow_id,
                        connection_id=input.connection_id,
                        credit_id=f"cr_{input.connection_id}_{input.credit_key}"[:255],
                        reference=reference,
                        idempotency_key=reference,
                        vendor_id=match.vendor.id,
                        vendor_name=match.vendor.name,
                        draft=input.draft,
                        lines=match.lines,
                    ),
                    task_queue=queue,
                    summary=f"post credit {input.draft.document_number}",
                    **ERP,
                )
                break
            except ActivityError as err:
                if not await self._review([describe_failure(err)]):
                    return self.state
                self._operator = None
        self.state.erp_credit_id = posted.erp_credit_id
        self.state.status = "available"
        self.state.audit.append(
            f"posted as ERP vendor credit {posted.erp_credit_id}: "
            f"{format_money(posted.remaining, self.state.currency)} available to "
            f"{self.state.vendor_name}'s bills"
        )
        return self.state

    async def _review(self, problems: list[str]) -> bool:
        """Wait for a person; False when they cancelled."""
        self.state.status, self.state.problems = "needs_review", problems
        self.state.waiting_for = (
            "an operator to resolve (with the vendor id or account) or cancel: "
            + "; ".join(problems)
        )
        self._operator = None
        await workflow.wait_condition(lambda: self._operator is not None)
        assert self._operator is not None
        kind, action = self._operator
        self.state.audit.append(f"{kind} by {action.actor}")
        if kind == "cancel":
            self.state.status, self.state.waiting_for = "cancelled", None
            return False
        return True
