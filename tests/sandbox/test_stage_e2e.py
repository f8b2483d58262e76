"""`remit up` as a person uses it: a revoked demo grant relinked as the README says, and a
restart that keeps the ERP's records consistent with remit's store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from runtime.secrets import SecretBox
from sandbox.stack import SECRET_KEY_FILE, Stack, StackInfo, StackOptions
from store import BillRow, Store
from tests.starter.test_e2e import (
    BILL_DEADLINE_SECONDS,
    RunningStack,
    assert_paid_once_in_quickbooks,
    bill_row,
    drive_to_the_end,
    qbo_query,
    remit,
    submit,
)
from workflows.models import LifecycleStatus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def revoke_demo_quickbooks_grant(running: RunningStack, info: StackInfo) -> None:
    """The company's admin disconnects the app in QuickBooks."""
    store = Store.open(info.database_url, run_migrations=False)
    try:
        row = store.get_connection("demo-quickbooks")
    finally:
        store.close()
    assert row is not None and row.credentials_encrypted is not None
    box = SecretBox((Path(info.data_dir) / SECRET_KEY_FILE).read_text())
    access_token = box.open(row.credentials_encrypted)["access_token"]

    async def revoke() -> None:
        running.stack.emulators["quickbooks"].revoke_token(access_token)  # type: ignore[attr-defined]

    asyncio.run_coroutine_threadsafe(revoke(), running.loop).result(10)


def kept_running(data_dir: Path) -> RunningStack:
    """The e2e stack, its emulators keeping their records as `remit up`'s do."""
    running = RunningStack(data_dir)
    running.stack = Stack(
        StackOptions.on_free_ports(data_dir, temporal_ui=False, keep_emulator_state=True)
    )
    return running


def finish(info: StackInfo, workflow_id: str) -> BillRow:
    """drive_to_the_end, again when an approval raced the bill's next step (the store's row
    lagging the workflow: "not waiting for an approval decision" is then the bill's answer)."""
    for _ in range(5):
        try:
            return drive_to_the_end(info, workflow_id)
        except AssertionError as exc:
            if "not waiting for an approval decision" not in str(exc):
                raise
    return drive_to_the_end(info, workflow_id)


def wait_for(info: StackInfo, workflow_id: str, status: str) -> BillRow:
    deadline = time.monotonic() + BILL_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        row = bill_row(info, workflow_id)
        if row is not None and row.status == status:
            return row
        time.sleep(0.25)
    raise AssertionError(f"{workflow_id} never reached {status}: {bill_row(info, workflow_id)}")


def wait_while(info: StackInfo, workflow_id: str, status: str) -> None:
    deadline = time.monotonic() + BILL_DEADLINE_SECONDS
    while (row := bill_row(info, workflow_id)) is not None and row.status == status:
        assert time.monotonic() < deadline, f"{workflow_id} stayed {status}: {row.last_error}"
        time.sleep(0.25)


def test_a_revoked_demo_grant_is_relinked_and_the_records_survive_a_restart(
    tmp_path: Path, examples: Path
) -> None:
    data_dir = tmp_path / "stack-data"
    running = kept_running(data_dir)
    with running as info:
        revoke_demo_quickbooks_grant(running, info)
        workflow_id = submit(info, examples / "bill.json")
        paused = wait_for(info, workflow_id, LifecycleStatus.needs_attention)
        health = remit(info, "connections", "health", "demo-quickbooks", "--json")
        assert json.loads(health.stdout)[0]["status"] == "needs_relink", paused.last_error

        relinked = remit(info, "connections", "relink", "demo-quickbooks", "--auto-consent")
        assert relinked.exit_code == 0, relinked.output
        wait_while(info, workflow_id, LifecycleStatus.needs_attention)
        final = finish(info, workflow_id)
        assert final.status == LifecycleStatus.reconciled, final.last_error
        assert_paid_once_in_quickbooks(info, final)
        bills_before = qbo_query(info, "select * from Bill")["Bill"]

    # `make run` again on the same data dir: QuickBooks still has what remit's store says.
    with kept_running(data_dir) as info:
        kept = bill_row(info, workflow_id)
        assert kept is not None and kept.status == LifecycleStatus.reconciled
        assert_paid_once_in_quickbooks(info, kept)
        assert qbo_query(info, "select * from Bill")["Bill"] == bills_before
        # The relinked grant came back with the store's credentials: the next bill goes through.
        next_id = submit(info, examples / "invoice-ubl.xml")
        row = finish(info, next_id)
        assert row.status == LifecycleStatus.reconciled, row.last_error
        assert row.erp_bill_id not in (None, kept.erp_bill_id)
        assert_paid_once_in_quickbooks(info, row)
