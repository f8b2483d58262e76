"""Payee changes as people make them: who may do each step, webhooks, and releasing held bills.

The store enforces the order of steps and separation of duties; this adds who may (the
directory's groups named by the policy), tells receivers (webhooks) and the bills waiting on
the vendor (a `payee_changed` signal: each bill then checks the master for itself).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from temporalio.service import RPCError, RPCStatusCode

from accounting.payees import PayeeDetails
from activities.webhooks import WebhookOutbox
from starter.client import RemitClient
from store import Decision, PayeeChangeRefused, PayeeChangeRow, PayeeStore, Proposal, Store
from workflows.approval import ApprovalPolicy, Directory
from workflows.models import LifecycleStatus, PayeeNotice

log = logging.getLogger("remit.payees")


class NotPermitted(PermissionError):
    """The person is not in a group the policy lets do this step (answered 403)."""


@dataclass
class PayeeService:
    payees: PayeeStore
    store: Store
    policy: ApprovalPolicy
    directory: Directory
    remit: RemitClient | None = None
    webhooks: WebhookOutbox | None = None

    async def propose(
        self,
        *,
        connection_id: str,
        vendor_id: str,
        vendor_name: str,
        details: PayeeDetails,
        by: str,
        reason: str | None,
        source: str = "api",
    ) -> Proposal:
        proposal = await asyncio.to_thread(
            self.payees.propose,
            connection_id=connection_id,
            vendor_id=vendor_id,
            vendor_name=vendor_name,
            details=details,
            source="operator" if source == "operator" else "api",
            proposed_by=by,
            reason=reason,
        )
        if proposal.created:
            await self._announce(proposal.change, "payee.change_proposed")
        return proposal

    async def verify(
        self, change_id: str, *, by: str, method: str, note: str | None = None
    ) -> Decision:
        self._must_be_in(by, self.policy.payee_verifiers, "verify payee changes")
        decision = await asyncio.to_thread(
            self.payees.verify, change_id, by=by, method=method, note=note
        )
        await self._announce(decision.change, "payee.change_verified")
        return decision

    async def approve(self, change_id: str, *, by: str, comment: str | None = None) -> Decision:
        self._must_be_in(by, self.policy.payee_approvers, "approve payee changes")
        change = await asyncio.to_thread(self.payees.get_change, change_id)
        if change is not None and change.verified_by == by:
            raise PayeeChangeRefused(f"{by} verified this change; two other people must approve it")
        decision = await asyncio.to_thread(
            self.payees.approve,
            change_id,
            by=by,
            comment=comment,
            required=self.policy.payee_approvals_required,
        )
        if decision.payee is not None:
            await self._announce(decision.change, "payee.change_approved")
            await self.release(
                decision.change,
                f"payee change {decision.change.id} approved by "
                f"{', '.join(decision.change.approvers)}: {decision.change.masked} is verified",
                actor=by,
            )
        return decision

    async def reject(self, change_id: str, *, by: str, reason: str) -> Decision:
        self._must_be_in(
            by,
            [*self.policy.payee_verifiers, *self.policy.payee_approvers],
            "reject payee changes",
        )
        decision = await asyncio.to_thread(self.payees.reject, change_id, by=by, reason=reason)
        await self._announce(decision.change, "payee.change_rejected")
        await self.release(
            decision.change,
            f"payee change {decision.change.id} rejected by {by}: {reason}",
            actor=by,
        )
        return decision

    async def release(self, change: PayeeChangeRow, summary: str, *, actor: str) -> list[str]:
        """Tell every bill held on the vendor to look at its payee again; their ids."""
        if self.remit is None:
            return []
        held = await asyncio.to_thread(self._held_bills, change)
        told = []
        for workflow_id in held:
            try:
                await self.remit.payee_changed(
                    workflow_id, PayeeNotice(change_id=change.id, actor=actor, summary=summary)
                )
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    # The bill also looks again by itself within hours; never fail the approval.
                    log.warning("could not tell %s about %s: %s", workflow_id, change.id, err)
                continue
            told.append(workflow_id)
        return told

    def _held_bills(self, change: PayeeChangeRow) -> list[str]:
        found: list[str] = []
        cursor: str | None = None
        while True:
            rows, cursor = self.store.list_bills(
                status=LifecycleStatus.needs_review.value,
                connection_id=change.connection_id,
                cursor=cursor,
            )
            found.extend(r.workflow_id for r in rows if r.vendor_id == change.vendor_id)
            if cursor is None:
                break
        if change.bill_workflow_id and change.bill_workflow_id not in found:
            found.append(change.bill_workflow_id)
        return found

    def _must_be_in(self, user_id: str, groups: list[str], what: str) -> None:
        if not self.directory.in_any(user_id, groups):
            raise NotPermitted(
                f"{user_id} may not {what}: that takes a member of {', '.join(groups)}"
            )

    async def _announce(self, change: PayeeChangeRow, event_type: str) -> None:
        if self.webhooks is not None:
            await self.webhooks.payee_change(change, event_type)
