"""The finance team around a chaos run: what people do while remit pays the bills.

- alice approves every bill waiting for approval;
- olivia verifies each payee change a new vendor's document proposes (a call-back), and carol
  and dave approve it (`PayeeService`, which also tells the bills held on the vendor);
- a payer (paula, or whoever of the payers group the bill's approval plan names) instructs the
  rest of every part-paid bill (`schedule_payment`);
- olivia retries every bill whose payment came back from the bank, which pays it again with a
  new payment key.

Every step is idempotent (request ids, the payee master's own rules), so a worker SIGKILL or a
Temporal restart mid-step only means doing it again on the next round. The team reads what
waits for it from the store's projection of the bills (what remit's own screens list) and
from the payee master, so it keeps working while Temporal restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from bench._views import RemitView
from starter.client import RemitClient
from starter.payees import PayeeService
from store import BillRow, PayeeChangeRefused, PayeeChangeRow, RecordNotFound, Store
from workflows.models import LifecycleStatus

APPROVER = "alice"
PAYEE_VERIFIER = "olivia"
PAYEE_APPROVERS = ("carol", "dave")
PAYER = "paula"  # of the directory's payers group (erin, paula): who may instruct payments
OPERATOR = "olivia"
# A bill still held this long after its payee change was approved is told again: the approval's
# notice may have failed while Temporal restarted (PayeeService only logs that), or reached the
# bill while it was still checking its payee, before it began to wait (BillWorkflow drops a
# notice that arrives then); the bill itself looks again only every 12 hours.
RELEASE_AGAIN_AFTER = 10.0
# No answer (not a refusal): the worker is down or Temporal restarts; ask again next round.
UNANSWERED = (RPCError, TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError)


@dataclass
class TeamCounters:
    approvals: int = 0
    payee_changes_verified: int = 0
    payee_changes_approved: int = 0
    payee_rereleases: int = 0
    second_parts_instructed: int = 0
    returns_retried: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class FinanceTeam:
    def __init__(
        self,
        *,
        remit: RemitClient,
        client: Client,
        store: Store,
        payees: PayeeService,
        connections: set[str],
        ours: Callable[[str], bool],
    ) -> None:
        self.remit = remit
        self.client = client
        self.store = store
        self.payees = payees
        self.connections = connections
        self.ours = ours
        self.counters = TeamCounters()
        self._decided: set[str] = set()
        self._instructed: set[tuple[str, int]] = set()
        self._retried: set[tuple[str, int]] = set()
        self._approved_at: dict[str, float] = {}
        self._released_at: dict[str, float] = {}

    async def run(self, every: float = 2.0) -> None:
        """Work every queue until cancelled, each on its own (an approval waiting for a dead
        worker holds up no payee review); a step that fails is tried again next round."""
        steps = (
            self.approve_waiting,
            self.review_payee_changes,
            self.release_held_bills,
            self.instruct_second_parts,
            self.retry_returned,
        )
        await asyncio.gather(*(self._keep_doing(step, every) for step in steps))

    async def _keep_doing(self, step: Callable[[], Awaitable[None]], every: float) -> None:
        while True:
            try:
                await step()
            except Exception as exc:  # Temporal restarting, a worker down: next round
                self.counters.errors[f"{step.__name__}: {type(exc).__name__}"] += 1
            await asyncio.sleep(every)

    # -- what waits -------------------------------------------------------------------------

    async def _bills(self, status: LifecycleStatus) -> list[tuple[BillRow, RemitView]]:
        def read() -> list[BillRow]:
            rows: list[BillRow] = []
            cursor: str | None = None
            while True:
                page, cursor = self.store.list_bills(status=status.value, limit=200, cursor=cursor)
                rows.extend(page)
                if cursor is None:
                    return rows

        rows = await asyncio.to_thread(read)
        found = []
        for row in rows:
            if row.connection_id in self.connections and self.ours(row.workflow_id):
                found.append((row, RemitView.model_validate(row.state)))
        return found

    async def _open_changes(self, status: str) -> list[PayeeChangeRow]:
        changes = await asyncio.to_thread(self.payees.payees.list_changes, status=status)
        return [c for c in changes if c.connection_id in self.connections]

    async def outstanding(self) -> dict[str, int]:
        """What the team still has to act on (empty: nothing waits for it)."""
        waiting: dict[str, int] = {}
        for status in ("proposed", "verified"):
            if changes := await self._open_changes(status):
                waiting[f"payee changes {status}"] = len(changes)
        held = [v for _, v in await self._bills(LifecycleStatus.needs_review)]
        if payee_held := [v for v in held if v.waits_on_its_payee]:
            waiting["bills held for their payee"] = len(payee_held)
        if returned := [
            v for _, v in await self._bills(LifecycleStatus.needs_attention) if v.waits_on_a_return
        ]:
            waiting["returned bills to retry"] = len(returned)
        if parts := await self._bills(LifecycleStatus.partially_paid):
            waiting["part-paid bills to instruct"] = len(parts)
        return waiting

    # -- the steps --------------------------------------------------------------------------

    async def approve_waiting(self) -> None:
        """alice decides every bill waiting for approval (idempotent updates, a few at once)."""
        waiting = [
            execution.id
            async for execution in self.client.list_workflows(
                "WorkflowType='BillWorkflow' AND ExecutionStatus='Running' "
                "AND BillStatus='awaiting_approval'"
            )
            if execution.id not in self._decided and self.ours(execution.id)
        ]
        gate = asyncio.Semaphore(10)

        async def decide(workflow_id: str) -> None:
            async with gate:
                try:
                    await asyncio.wait_for(
                        self.remit.decide(
                            workflow_id,
                            actor=APPROVER,
                            approve=True,
                            comment="chaos",
                            request_id=f"{workflow_id}/chaos-approval",
                        ),
                        30,
                    )
                except WorkflowUpdateFailedError as exc:
                    # Refused (e.g. decided already, and that answer was lost): look again.
                    self.counters.refusals[f"decide: {exc.cause}"[:120]] += 1
                    return
                except UNANSWERED:  # worker down or server restarting: next round
                    return
                self._decided.add(workflow_id)
                self.counters.approvals += 1

        await asyncio.gather(*(decide(workflow_id) for workflow_id in waiting))

    async def review_payee_changes(self) -> None:
        """A call-back verifies each proposed change; two controllers approve it."""
        for change in await self._open_changes("proposed"):
            try:
                await self.payees.verify(
                    change.id,
                    by=PAYEE_VERIFIER,
                    method="call-back to the number on the vendor's file (chaos)",
                )
            except (PayeeChangeRefused, RecordNotFound) as exc:
                self.counters.refusals[f"verify: {exc}"[:120]] += 1
                continue
            self.counters.payee_changes_verified += 1
        for change in await self._open_changes("verified"):
            for approver in PAYEE_APPROVERS:
                if approver in change.approvers:
                    continue
                try:
                    decision = await self.payees.approve(
                        change.id, by=approver, comment="matches the vendor's letter (chaos)"
                    )
                except (PayeeChangeRefused, RecordNotFound) as exc:
                    self.counters.refusals[f"approve: {exc}"[:120]] += 1
                    break
                change = decision.change
                if decision.payee is not None:
                    self.counters.payee_changes_approved += 1
                    self._approved_at[change.id] = time.monotonic()

    async def release_held_bills(self) -> None:
        """Tell a bill still held on an approved change again (its first notice may be lost)."""
        now = time.monotonic()
        for row, view in await self._bills(LifecycleStatus.needs_review):
            if not view.waits_on_its_payee or view.payee is None or not view.payee.change_id:
                continue
            change_id = view.payee.change_id
            approved = self._approved_at.get(change_id)
            if approved is None or now - approved < RELEASE_AGAIN_AFTER:
                continue
            if now - self._released_at.get(row.workflow_id, 0.0) < RELEASE_AGAIN_AFTER:
                continue
            change = await asyncio.to_thread(self.payees.payees.get_change, change_id)
            if change is None or change.status != "approved":
                continue
            self._released_at[row.workflow_id] = now
            await self.payees.release(
                change, f"payee change {change.id} is approved (told again)", actor=OPERATOR
            )
            self.counters.payee_rereleases += 1

    async def instruct_second_parts(self) -> None:
        """A payer instructs the payment of what a part-paid bill still owes."""
        for row, view in await self._bills(LifecycleStatus.partially_paid):
            part = sum(1 for i in view.installments if i.done) + 1
            if (row.workflow_id, part) in self._instructed:
                continue
            request_id = f"{row.workflow_id}/chaos-part-{part}"
            payers = [p for p in (view.plan.payers if view.plan else []) if p != view.submitted_by]
            payer = PAYER if PAYER in payers or not payers else payers[0]
            try:
                await asyncio.wait_for(
                    self.remit.schedule_payment(
                        row.workflow_id, actor=payer, request_id=request_id
                    ),
                    30,
                )
            except WorkflowUpdateFailedError as exc:
                self.counters.refusals[f"schedule_payment: {exc.cause}"[:120]] += 1
                continue
            except UNANSWERED:
                continue
            self._instructed.add((row.workflow_id, part))
            self.counters.second_parts_instructed += 1

    async def retry_returned(self) -> None:
        """olivia pays a returned bill again (a new payment key, the verified payee)."""
        for row, view in await self._bills(LifecycleStatus.needs_attention):
            if not view.waits_on_a_return:
                continue
            key = (row.workflow_id, len(view.returned_payments))
            if key in self._retried:
                continue
            try:
                await self.remit.retry(
                    row.workflow_id,
                    actor=OPERATOR,
                    reason="chaos: the vendor's bank confirmed the account; pay again",
                )
            except RPCError:
                continue
            self._retried.add(key)
            self.counters.returns_retried += 1
