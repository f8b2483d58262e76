"""The drift sweep's activities: reconciled bills compared with the mirror, findings recorded.

Store reads and writes only (the mirror is what sync last read of the books). A finding is
new once: it gets an audit entry and a `bill.drift_detected` webhook with the difference; a
finding the ERP no longer shows is cleared (audited too); the bill's projection shows its open
findings (store.drift.flag_bill says how).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select
from sqlmodel import Session

from connectors.mirror import MirrorKind
from store import BillRow, MirrorStore, Store
from store.drift import DriftFindingRow, DriftStore, compare_bill, flag_bill, remit_payments
from store.mirror import MirrorRow
from store.types import utcnow
from workflows import contract
from workflows.contract import implements
from workflows.drift_models import DriftConnectionsRequest, DriftPageRequest, DriftPageResult
from workflows.webhooks import WebhookEventType

if TYPE_CHECKING:
    from activities.webhooks import WebhookOutbox

SWEEP_ACTOR = "remit drift sweep"
_SWEPT = ("reconciled", "needs_attention")
"""Projection statuses a reconciled bill can show: its own, or the one drift gave it."""


def _cursor(workflow_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(["drift-page", workflow_id]).encode()).decode()


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        tag, workflow_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, TypeError):
        return None
    return str(workflow_id) if tag == "drift-page" else None


def finding_data(bill: BillRow, finding: DriftFindingRow) -> dict[str, Any]:
    """What a `bill.drift_detected` receiver learns: the bill, the drift, the difference."""
    return {
        "object": "bill_drift",
        "id": finding.id,
        "kind": finding.kind,
        "subject": finding.subject,
        "expected": finding.expected,
        "found": finding.found,
        "message": finding.message,
        "detected_at": finding.detected_at.isoformat(),
        "bill": {
            "id": bill.workflow_id,
            "connection_id": bill.connection_id,
            "erp_bill_id": bill.erp_bill_id,
            "document_number": bill.document_number,
            "vendor": {"id": bill.vendor_id, "name": bill.vendor_name},
            "currency": bill.currency,
        },
    }


class DriftActivities:
    def __init__(self, store: Store, webhooks: WebhookOutbox | None = None) -> None:
        self._store = store
        self._mirror = MirrorStore(store)
        self._drifts = DriftStore(store)
        self._webhooks = webhooks

    @implements(contract.drift_connections)
    async def drift_connections(self, req: DriftConnectionsRequest) -> list[str]:
        rows = await asyncio.to_thread(self._store.list_connections)
        return [row.id for row in rows]

    @implements(contract.sweep_drift_page)
    async def sweep_drift_page(self, req: DriftPageRequest) -> DriftPageResult:
        result, announce = await asyncio.to_thread(self._sweep, req)
        if self._webhooks is not None:
            for bill, finding in announce:
                await self._webhooks.publish(
                    WebhookEventType.bill_drift_detected,
                    subject=bill.workflow_id,
                    event_id=f"{bill.workflow_id}/drift/{finding.id}",
                    data=finding_data(bill, finding),
                )
        return result

    def _bills(self, req: DriftPageRequest) -> list[BillRow]:
        table = cast(Table, BillRow.__table__)  # type: ignore[attr-defined]
        since = utcnow() - timedelta(days=req.window_days)
        clauses: list[Any] = [
            table.c.connection_id == req.connection_id,
            table.c.status.in_(_SWEPT),
            table.c.erp_bill_id.is_not(None),
            table.c.updated_at >= since,
        ]
        after = _after(req.cursor)
        if after is not None:
            clauses.append(table.c.workflow_id > after)
        statement = (
            select(BillRow).where(*clauses).order_by(table.c.workflow_id).limit(req.page_size)
        )
        with Session(self._store.engine) as session:
            return list(session.scalars(statement))

    def _sweep(
        self, req: DriftPageRequest
    ) -> tuple[DriftPageResult, list[tuple[BillRow, DriftFindingRow]]]:
        bills = self._bills(req)
        next_cursor = _cursor(bills[-1].workflow_id) if len(bills) == req.page_size else None
        bills_synced = self._mirror.last_synced_at(req.connection_id, MirrorKind.bills)
        payments_synced = self._mirror.last_synced_at(req.connection_id, MirrorKind.bill_payments)
        checked = skipped = new = cleared = 0
        announce: list[tuple[BillRow, DriftFindingRow]] = []
        for bill in bills:
            if bill.state.get("status") != "reconciled" or bill.erp_bill_id is None:
                continue  # the workflow itself needs attention: not drift
            erp_bill = self._mirror.get(req.connection_id, MirrorKind.bills, bill.erp_bill_id)
            payments: dict[str, MirrorRow | None] = {
                pid: self._mirror.get(req.connection_id, MirrorKind.bill_payments, pid)
                for pid, _ in remit_payments(bill)
            }
            # An object the mirror has not seen says nothing until a sync ran after reconcile.
            if erp_bill is None and (bills_synced is None or bills_synced < bill.updated_at):
                skipped += 1
                continue
            if any(row is None for row in payments.values()) and (
                payments_synced is None or payments_synced < bill.updated_at
            ):
                skipped += 1
                continue
            checked += 1
            now = utcnow()
            observed = self._drifts.observe(
                workflow_id=bill.workflow_id,
                connection_id=bill.connection_id,
                erp_bill_id=bill.erp_bill_id,
                drifts=compare_bill(bill, erp_bill, payments),
                at=now,
            )
            for finding in observed.new:
                self._store.append_audit(
                    event_key=f"{bill.workflow_id}/drift/{finding.id}/detected",
                    workflow_id=bill.workflow_id,
                    at=now,
                    actor=SWEEP_ACTOR,
                    kind="drift",
                    summary=finding.message,
                    result="needs_attention",
                    detail={"finding_id": finding.id, "kind": finding.kind},
                )
                announce.append((bill, finding))
            for finding in observed.cleared:
                self._store.append_audit(
                    event_key=f"{bill.workflow_id}/drift/{finding.id}/cleared",
                    workflow_id=bill.workflow_id,
                    at=now,
                    actor=SWEEP_ACTOR,
                    kind="drift",
                    summary=f"cleared: {finding.message} (no longer seen in the ERP)",
                    result="cleared",
                    detail={"finding_id": finding.id, "kind": finding.kind},
                )
            new += len(observed.new)
            cleared += len(observed.cleared)
            flag_bill(self._store, bill, self._drifts.open_for(bill.workflow_id))
        return (
            DriftPageResult(
                checked=checked,
                skipped=skipped,
                new_findings=new,
                cleared=cleared,
                next_cursor=next_cursor,
            ),
            announce,
        )
