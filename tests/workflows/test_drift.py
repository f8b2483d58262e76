"""The drift sweep end to end: a bill paid and reconciled through remit, its payment voided in
the ERP through the platform's own API, the mirror updated as sync writes it, then the sweep."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from connectors.mirror import MirrorKind, MirrorRecord
from connectors.registry import available_platforms
from store import DriftStore, MirrorStore, WebhookStore
from tests.workflows.harness import Harness, draft, running_remit
from workflows.drift import DriftSweepWorkflow
from workflows.drift_models import DriftSweepRequest, DriftSweepResult
from workflows.models import LifecycleStatus as S


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


async def mirror_from_erp(h: Harness, *bill_ids: str) -> None:
    """What a sync writes for these bills and their payments (voided ones included)."""
    erp = h.current_erp()
    records: list[MirrorRecord] = []
    for bill_id in bill_ids:
        bill = await erp.get_bill(bill_id)
        records.append(
            MirrorRecord(
                kind=MirrorKind.bills, platform_id=bill_id, data=bill.model_dump(mode="json")
            )
        )
        for payment in await erp.list_bill_payments(bill_id=bill_id):
            assert payment.id is not None
            records.append(
                MirrorRecord(
                    kind=MirrorKind.bill_payments,
                    platform_id=payment.id,
                    data=payment.model_dump(mode="json"),
                )
            )
    mirror = MirrorStore(h.store)
    now = datetime.now(UTC) + timedelta(seconds=1)
    mirror.apply(h.connection.id, records, synced_at=now)
    for kind in (MirrorKind.bills, MirrorKind.bill_payments):
        mirror.set_watermark(h.connection.id, kind, None, synced_at=now)


SWEEPS: list[str] = []


async def sweep(h: Harness) -> DriftSweepResult:
    workflow_id = f"drift-test-{uuid.uuid4()}"
    SWEEPS.append(workflow_id)
    return await h.env.client.execute_workflow(
        DriftSweepWorkflow.run,
        DriftSweepRequest(connection_ids=[h.connection.id]),
        id=workflow_id,
        task_queue=h.task_queue,
    )


async def replay_sweeps(h: Harness) -> None:
    """Each sweep's history replays against today's code (determinism)."""
    replayer = Replayer(workflows=[DriftSweepWorkflow], data_converter=pydantic_data_converter)
    for workflow_id in SWEEPS:
        history = await h.env.client.get_workflow_handle(workflow_id).fetch_history()
        await replayer.replay_workflow(history)
    SWEEPS.clear()


async def test_a_payment_voided_after_reconcile_is_found_once(h: Harness) -> None:
    drifted = await h.submit(draft(amount="120.00"))
    untouched = await h.submit(draft(number="INV-2002", amount="80.00"))
    first = await h.result(drifted)
    second = await h.result(untouched)
    assert first.status == S.reconciled and second.status == S.reconciled
    assert first.erp_bill_id and first.erp_payment_id and second.erp_bill_id

    await mirror_from_erp(h, first.erp_bill_id, second.erp_bill_id)
    clean = await sweep(h)
    assert clean.checked == 2 and clean.new_findings == 0

    voided = await h.current_erp().void_bill_payment(
        first.erp_payment_id, idempotency_key="test/void"
    )
    await mirror_from_erp(h, first.erp_bill_id, second.erp_bill_id)
    # The change feed reports the voided payment itself (listings by bill no longer show it).
    MirrorStore(h.store).apply(
        h.connection.id,
        [
            MirrorRecord(
                kind=MirrorKind.bill_payments,
                platform_id=first.erp_payment_id,
                data=voided.model_dump(mode="json"),
            )
        ],
        synced_at=datetime.now(UTC) + timedelta(seconds=1),
    )
    found = await sweep(h)
    assert found.new_findings >= 1

    drifts = DriftStore(h.store)
    findings, _ = drifts.list(connection_id=h.connection.id)
    assert {f.workflow_id for f in findings} == {drifted}
    kinds = {f.kind for f in findings}
    assert kinds & {"payment_voided", "payment_missing"}, kinds
    payment = next(f for f in findings if f.subject == first.erp_payment_id)
    assert "USD 120.00" in payment.message

    row = h.store.get_bill(drifted)
    assert row is not None and row.status == "needs_attention"
    assert row.last_error and "drift after reconcile" in row.last_error
    assert row.state["status"] == "reconciled" and row.revision == first.revision
    other = h.store.get_bill(untouched)
    assert other is not None and other.status == "reconciled"

    event = WebhookStore(h.store).get_event(f"{drifted}/drift/{payment.id}")
    assert event is not None and event.type == "bill.drift_detected"
    assert event.payload["data"]["expected"]["amount"] == {"amount": "120.00", "currency": "USD"}
    assert [e.kind for e in h.store.audit_for(drifted)].count("drift") == len(findings)

    again = await sweep(h)
    assert again.new_findings == 0
    assert [f.id for f in drifts.list(connection_id=h.connection.id)[0]] == [f.id for f in findings]
    await replay_sweeps(h)
