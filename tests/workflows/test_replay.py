"""Replays recorded histories: a code change that would break in-flight bills fails here.

The histories without a prefix were recorded before the money patch (`workflows.bill.MONEY`):
they replay on the code paths they started on. The `money_` ones were recorded after it, and
the `layout_` ones after issue 11 (activities called through workflows.contract, the bill's id
read from the workflow's own info, readable `bill/<connection>/<number>-<hash>` ids); the
older ones keep proving that bills in flight before that change replay on it.
Record new histories (after a deliberate, patched change) with
`REMIT_RECORD_HISTORIES=1 python -m pytest tests/workflows/test_replay.py -k record`
(`-k record_money` for the money ones only).
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from accounting import Vendor
from sandbox.bank import ReturnRule
from tests.workflows.harness import draft, running_remit
from workflows.bill import BillWorkflow
from workflows.credit import CreditWorkflow
from workflows.erp_write import ErpWriteInput, ErpWriteWorkflow
from workflows.models import Installment
from workflows.models import LifecycleStatus as S
from workflows.payment_run import PaymentRunWorkflow
from workflows.sync import SyncWorkflow
from workflows.sync_models import SyncInput, SyncOutcome

HISTORIES = Path(__file__).parent / "histories"


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[
            BillWorkflow,
            CreditWorkflow,
            PaymentRunWorkflow,
            SyncWorkflow,
            ErpWriteWorkflow,
        ],
        data_converter=pydantic_data_converter,
    )
    await replayer.replay_workflow(history)


def test_histories_are_recorded() -> None:
    names = {p.stem for p in recorded()}
    assert {
        "auto_approved",
        "two_level_approval",
        "bank_return_retry",
        "duplicate_cancelled",
        "rejected",
        *MONEY_HISTORIES,
        *LAYOUT_HISTORIES,
        *SYNC_HISTORIES,
        *ERP_BILL_HISTORIES,
    } <= names


MONEY_HISTORIES = (
    "money_auto_approved",
    "money_two_level_approval",
    "money_payee_change_reviewed",
    "money_return_after_reconciled",
    "money_return_follow_up",
    "money_two_installments",
    "money_credit_applied",
    "money_credit",
    "money_euro_reapproved",
    "money_paid_in_run",
    "money_payment_run",
)


# workflow.patched records this marker; a history without it ran the code before the patch.
PATCH_MARKER = '"markerName": "core_patch"'


def test_the_histories_cover_both_sides_of_the_money_patch() -> None:
    patched = {p.stem for p in recorded() if PATCH_MARKER in p.read_text()}
    bills = {p.stem for p in recorded() if '"BillWorkflow"' in p.read_text()}
    assert {"auto_approved", "bank_return_retry"} <= bills - patched
    assert {"money_auto_approved", "money_paid_in_run"} <= patched


LAYOUT_HISTORIES = ("layout_auto_approved", "layout_two_level_approval")
SYNC_HISTORIES = ("sync_full", "sync_incremental", "sync_continued_as_new", "sync_told_a_bill")
ERP_BILL_HISTORIES = (
    "erp_bill_paid",
    "erp_bill_voided_while_scheduled",
    "erp_write_vendor",
    "erp_write_account",
)


def test_the_histories_cover_both_sides_of_the_erp_changes_patch() -> None:
    # Only a bill the sync told of an ERP change reaches the patch; every other bill (all
    # those recorded before it included) replays without its marker.
    from workflows.bill import ERP_CHANGES

    path = HISTORIES / "erp_bill_voided_while_scheduled.json"
    assert ERP_CHANGES in payload_texts(path) and '"erp_bill_changed"' in path.read_text()
    for name in ("erp_bill_paid", "money_auto_approved", "auto_approved"):
        assert ERP_CHANGES not in payload_texts(HISTORIES / f"{name}.json"), name


def payload_texts(path: Path) -> str:
    """Every payload of a recorded history, decoded (they are base64 JSON in the file)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                found.append(base64.b64decode(data).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(path.read_text()))
    return "\n".join(found)


def test_the_histories_cover_both_sides_of_the_readable_ids() -> None:
    # Bills started before issue 11 ran under `bill/<connection>/<key>`, the later ones under
    # `bill/<connection>/<number>-<hash>`: the workflow reads its id from its info, so both
    # replay with the same commands.
    before = payload_texts(HISTORIES / "auto_approved.json")
    assert re.search(r"bill/[^/\"]+/[0-9a-f]{64}", before)
    for name in LAYOUT_HISTORIES:
        after = payload_texts(HISTORIES / f"{name}.json")
        assert re.search(r"bill/[^/\"]+/L-[12]-[0-9a-f]{8}", after), name


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:

        async def save(name: str, wid: str) -> None:
            await h.result(wid)
            history = await h.remit.handle(wid).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())

        await save("auto_approved", await h.submit(draft(number="R-1", amount="120.00")))

        wid = await h.submit(draft(number="R-2", amount="25000.00"))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="alice", approve=True)
        await h.until(wid, lambda s: s.level == 1)
        await h.remit.decide(wid, actor="carol", approve=True)
        await save("two_level_approval", wid)

        wid = await h.submit(draft(number="R-3", amount="900.00"))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="bob", approve=False, comment="not ours")
        await save("rejected", wid)

        h.bank.set_return_rules([ReturnRule(code="R01", times=1)])
        wid = await h.submit(draft(number="R-4", amount="130.00"))
        await h.status(wid, S.needs_attention)
        await h.remit.retry(wid, actor="olivia")
        await save("bank_return_retry", wid)

        wid = await h.submit(draft(number="R-1", amount="120.00"), key="again")
        await h.status(wid, S.needs_review)
        await h.remit.cancel(wid, actor="olivia", reason="duplicate")
        await save("duplicate_cancelled", wid)


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record_layout(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:

        async def save(name: str, wid: str) -> None:
            await h.result(wid)
            history = await h.remit.handle(wid).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())

        await save("layout_auto_approved", await h.submit(draft(number="L-1", amount="120.00")))

        wid = await h.submit(draft(number="L-2", amount="25000.00"))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="alice", approve=True)
        await h.until(wid, lambda s: s.level == 1)
        await h.remit.decide(wid, actor="carol", approve=True)
        await save("layout_two_level_approval", wid)


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record_money(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    from datetime import timedelta
    from decimal import Decimal

    from tests.workflows.test_money import NEW_ACH, euro_bill, set_rate
    from workflows.approval import PaymentRunPolicy

    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:

        async def save(name: str, wid: str, *, wait: bool = True) -> None:
            if wait:
                await h.result(wid)
            history = await h.remit.handle(wid).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())

        await save("money_auto_approved", await h.submit(draft(number="M-1", amount="120.00")))

        wid = await h.submit(draft(number="M-2", amount="25000.00"))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="alice", approve=True)
        await h.until(wid, lambda s: s.level == 1)
        await h.remit.decide(wid, actor="carol", approve=True)
        await save("money_two_level_approval", wid)

        wid = await h.submit(
            draft(
                number="M-3",
                vendor="Globex Software",
                tax_id="12-3456789",
                amount="130.00",
                bank_account=NEW_ACH,
            )
        )
        state = await h.until(wid, lambda s: s.status == S.needs_review and s.payee is not None)
        assert state.payee and state.payee.change_id
        await h.review_payee_change(state.payee.change_id)
        await save("money_payee_change_reviewed", wid)

        h.bank.set_return_rules([ReturnRule(code="R03", return_after=timedelta(days=2), times=1)])
        wid = await h.submit(draft(number="M-4", amount="140.00"))
        await h.status(wid, S.reconciled)
        await save("money_return_after_reconciled", wid)
        h.bank_webhooks_to_the_api()
        h.bank_clock.advance(timedelta(days=3))
        await h.bank.settle_due()
        await h.status(wid, S.needs_attention)
        await h.remit.retry(wid, actor="olivia")
        await save("money_return_follow_up", wid)

        wid = await h.submit(
            draft(number="M-5", amount="900.00"), installments=[Installment(amount=Decimal(400))]
        )
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="alice", approve=True)
        await h.status(wid, S.partially_paid)
        await h.remit.schedule_payment(wid, actor="paula")
        await save("money_two_installments", wid)

        credit = await h.remit.submit_credit(
            draft(number="M-CM", amount="50.00", bank_account=None),
            connection_id=h.connection.id,
            platform=h.platform,
            submitted_by="sam",
        )
        async with h.env.time_skipping_unlocked():  # type: ignore[attr-defined]
            await h.remit.temporal.get_workflow_handle(credit.workflow_id).result()
        history = await h.remit.temporal.get_workflow_handle(credit.workflow_id).fetch_history()
        (HISTORIES / "money_credit.json").write_text(history.to_json())
        await save("money_credit_applied", await h.submit(draft(number="M-6", amount="150.00")))

        today = (await h.env.get_current_time()).date()
        wid = await h.submit(
            euro_bill("M-7", amount="1000.00", issue=today, due=today + timedelta(days=5))
        )
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="alice", approve=True)
        state = await h.status(wid, S.scheduled)
        assert state.fx is not None
        await set_rate(h, state.fx.rate.rate * Decimal("1.05"), today)
        await h.env.sleep(timedelta(days=6))
        await h.status(wid, S.awaiting_approval)
        await h.remit.decide(wid, actor="bob", approve=True)
        await save("money_euro_reapproved", wid)

        h.deps.policy.payment_runs[h.connection.id] = PaymentRunPolicy(days=["tuesday"])
        today = (await h.env.get_current_time()).date()
        wid = await h.submit(
            draft(number="M-8", amount="160.00", issue=today, due=today + timedelta(days=3))
        )
        await h.until(wid, lambda s: s.awaiting_run)
        await h.until_recorded(wid, lambda row: bool(row.state.get("awaiting_run")))
        run_id = await h.remit.start_payment_run(h.connection.id, run_date=today)
        await h.until_run(run_id, lambda r: r.status == "proposed")
        await h.remit.steer_run(run_id, "release", actor="paula")
        await h.until_run(run_id, lambda r: r.status == "paid")
        await save("money_paid_in_run", wid)
        history = await h.remit.run_handle(run_id).fetch_history()
        (HISTORIES / "money_payment_run.json").write_text(history.to_json())


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record_sync(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:
        client = h.env.client

        async def run(name: str, inp: SyncInput, workflow_id: str) -> None:
            handle = await client.start_workflow(
                SyncWorkflow.run, inp, id=workflow_id, task_queue=h.task_queue
            )
            outcome: SyncOutcome = await handle.result()
            assert outcome.status == "succeeded", outcome.errors
            first = client.get_workflow_handle(workflow_id, run_id=handle.first_execution_run_id)
            history = await first.fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())

        conn = h.connection.id
        await run("sync_full", SyncInput(connection_id=conn), f"sync/{conn}")
        await run("sync_incremental", SyncInput(connection_id=conn), f"sync/{conn}/2")
        # The first run of a sync that continued as new after each page (the cursor carried).
        await run(
            "sync_continued_as_new",
            SyncInput(connection_id=conn, full=True, pages_per_run=1),
            f"sync/{conn}/3",
        )


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record_erp_write_account(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The write job's create_account operation (added after erp_write_vendor was recorded)."""
    from accounting import NewAccount

    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:
        job = "erp-write/recorded/create_account-1"
        await h.env.client.execute_workflow(
            ErpWriteWorkflow.run,
            ErpWriteInput(
                connection_id=h.connection.id,
                operation="create_account",
                idempotency_key=job,
                requested_by="sam",
                account=NewAccount(name="Cloud Hosting", number="6915", account_type="expense"),
            ),
            id=job,
            task_queue=h.task_queue,
        )
        history = await h.env.client.get_workflow_handle(job).fetch_history()
        (HISTORIES / "erp_write_account.json").write_text(history.to_json())


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record_erp_bills(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """After the ERP-changes patch (`workflows.bill.ERP_CHANGES`): a bill entered in the ERP
    paid through remit, one voided in the ERP while it waited for its pay date (the signal,
    the patch marker), and the sync that told it."""
    from tests.workflows.test_erp_bills import (
        enter_in_erp,
        later,
        submit_from_mirror,
        sync,
        void_in_erp,
    )

    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:

        async def save(name: str, workflow_id: str) -> None:
            history = await h.env.client.get_workflow_handle(workflow_id).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())

        paid = await enter_in_erp(h, amount="140.00", number="NW-7001")
        waiting = await enter_in_erp(h, amount="95.00", number="NW-7002")
        assert paid.id and waiting.id
        await sync(h)
        first = await submit_from_mirror(h, paid.id)
        assert (await h.result(first)).status == S.reconciled
        await save("erp_bill_paid", first)

        second = await submit_from_mirror(h, waiting.id, pay_on=await later(h))
        await h.status(second, S.scheduled)
        await void_in_erp(h, waiting.id)
        told = await sync(h, full=True)
        assert (await h.result(second)).status == S.voided_elsewhere
        await save("erp_bill_voided_while_scheduled", second)
        await save("sync_told_a_bill", f"sync/{h.connection.id}")
        assert told.run_id

        job = "erp-write/recorded/create_vendor-1"
        await h.env.client.execute_workflow(
            ErpWriteWorkflow.run,
            ErpWriteInput(
                connection_id=h.connection.id,
                operation="create_vendor",
                idempotency_key=job,
                requested_by="sam",
                vendor=Vendor(name="Acme Paper Co", tax_id="12-9999999"),
            ),
            id=job,
            task_queue=h.task_queue,
        )
        await save("erp_write_vendor", job)


@pytest.mark.skipif(not os.environ.get("REMIT_RECORD_HISTORIES"), reason="records histories")
async def test_record_capture_review(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """After the capture-review patch (`workflows.bill.CAPTURE_REVIEW`): a bill whose scan was
    unsure waits in needs_review and goes on as a person corrected it."""
    HISTORIES.mkdir(exist_ok=True)
    async with running_remit(time_skipping_env, tmp_path) as h:
        doubtful = draft(number="C-1", amount="9000.00").model_copy(
            update={"review_reasons": ["scan: the total 9000.00 was read with 41% confidence"]}
        )
        wid = await h.submit(doubtful)
        await h.status(wid, S.needs_review)
        await h.remit.resolve(wid, actor="olivia", draft=draft(number="C-1", amount="120.00"))
        assert (await h.result(wid)).status == S.reconciled
        history = await h.remit.handle(wid).fetch_history()
        (HISTORIES / "capture_review_corrected.json").write_text(history.to_json())

        # After the OCR-names patch (`workflows.bill.OCR_NAMES`): the vendor found by its tax
        # id settles the name OCR read; the bill goes on without waiting.
        named = draft(number="C-2", amount="130.00").model_copy(
            update={
                "review_reasons": [
                    "scan: the vendor name Northwind Office Supply was read by OCR (91%): "
                    "confirmed when matching finds the vendor by its tax id, else by a person"
                ]
            }
        )
        wid = await h.submit(named)
        assert (await h.result(wid)).status == S.reconciled
        history = await h.remit.handle(wid).fetch_history()
        (HISTORIES / "capture_vendor_by_tax_id.json").write_text(history.to_json())
