"""Our own store: the bill projection the API and CLI list, and the append-only audit log."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from temporalio import activity

from accounting import format_money
from accounting.normalize import document_number_key, vendor_key
from store import BillRow, Store
from workflows import contract
from workflows.contract import implements
from workflows.models import LifecycleStatus, MatchRequest, Notice, RecordRequest

if TYPE_CHECKING:
    from activities.webhooks import WebhookOutbox

log = logging.getLogger("remit.notices")

_CLOSED = {LifecycleStatus.cancelled.value, LifecycleStatus.rejected.value}


class RecordActivities:
    def __init__(self, store: Store, webhooks: WebhookOutbox | None = None) -> None:
        self._store = store
        self._webhooks = webhooks

    @implements(contract.record_bill)
    async def record_bill(self, req: RecordRequest) -> None:
        run_id = activity.info().workflow_run_id or ""
        await asyncio.to_thread(self._record, req, run_id)
        if self._webhooks is not None:
            # Also picks up events an earlier attempt stored but did not get to dispatch.
            await self._webhooks.dispatch_pending(req.state.workflow_id)

    def _record(self, req: RecordRequest, run_id: str) -> None:
        s = req.state
        for n, notice in enumerate(req.notices):
            record_notice(
                self._store, notice, event_key=f"{s.workflow_id}/{run_id}/notice/r{s.revision}/{n}"
            )
        for event in req.events:
            # The key makes a retried activity append nothing twice.
            self._store.append_audit(
                event_key=f"{s.workflow_id}/{run_id}/{event.seq}",
                workflow_id=s.workflow_id,
                at=event.at,
                actor=event.actor,
                kind=event.kind,
                summary=event.summary,
                idempotency_key=event.idempotency_key,
                result=event.result,
                policy_version=event.policy_version,
            )
        if self._webhooks is not None:
            # Before the upsert: a retry after it would no longer see the status change.
            self._webhooks.note_bill_state(self._store.get_bill(s.workflow_id), s)
        now = datetime.now(UTC)
        self._store.upsert_bill(
            BillRow(
                workflow_id=s.workflow_id,
                connection_id=s.connection_id,
                platform=s.platform,
                bill_key=s.bill_key,
                status=s.status.value,
                step=s.step.value,
                vendor_name=s.vendor_name,
                vendor_id=s.vendor_id,
                vendor_key=vendor_key(s.vendor_name),
                document_number=s.document_number,
                document_number_key=document_number_key(s.document_number),
                currency=s.currency,
                total=s.total,
                amount_due=s.amount_due,
                issue_date=s.issue_date,
                due_date=s.due_date,
                pay_on=s.pay_on,
                submitted_by=s.submitted_by,
                pending_approvers=list(s.pending_approvers),
                erp_bill_id=s.erp_bill_id,
                erp_payment_id=s.erp_payment_id,
                rail_payment_id=s.payment.rail_payment_id,
                last_error=s.last_error,
                state=s.model_dump(mode="json"),
                revision=s.revision,
                created_at=now,
                updated_at=now,
            )
        )

    async def similar_bills(self, req: MatchRequest) -> list[tuple[str, str | None]]:
        """Bills remit already holds that may be this one again (for match's duplicate check)."""
        draft = req.draft
        rows = await asyncio.to_thread(
            self._store.find_similar_bills,
            connection_id=req.connection_id,
            vendor_key=vendor_key(draft.vendor.name),
            document_number_key=document_number_key(draft.document_number),
            total=draft.total,
            issue_date=draft.issue_date,
            exclude_workflow_id=req.workflow_id,
        )
        found = []
        for row in rows:
            if row.status in _CLOSED:
                continue
            same_number = row.document_number_key == document_number_key(draft.document_number)
            why = "same document number" if same_number else "same amount and date"
            found.append(
                (
                    f"remit bill {row.workflow_id} ({row.document_number}, "
                    f"{format_money(row.total, row.currency)}, {row.status}) has the {why}",
                    row.erp_bill_id,
                )
            )
        return found


class NotifyActivities:
    """Approver notices. Recorded in the audit log and the worker log; delivery channels
    (email, chat, webhooks) plug in here."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @implements(contract.notify)
    async def notify(self, notice: Notice) -> None:
        info = activity.info()
        await asyncio.to_thread(
            record_notice,
            self._store,
            notice,
            event_key=f"{notice.workflow_id}/{info.workflow_run_id}/notice/{info.activity_id}",
        )


def record_notice(store: Store, notice: Notice, *, event_key: str) -> None:
    """A notice in the worker log and the bill's audit trail (once per key)."""
    log.info("notice %s to %s: %s", notice.kind, notice.recipients, notice.message)
    store.append_audit(
        event_key=event_key,
        workflow_id=notice.workflow_id,
        actor="remit",
        kind=f"notice.{notice.kind}",
        summary=notice.message,
        detail={"recipients": notice.recipients},
    )
