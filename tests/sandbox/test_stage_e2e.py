"""`remit up` as a person uses it: a revoked demo grant relinked as the README says, and a
restart that keeps the ERP's records consistent with remit's store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.stack import Stack, StackInfo, StackOptions
from store import BillRow
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


def revoke_at_the_bill_payment(info: StackInfo) -> None:
    """The company's admin disconnects the app in QuickBooks just as remit records the payment
    there (the bank has paid by then): the grant behind that request is revoked."""
    emulator = info.emulator_for("demo-quickbooks")
    response = httpx.put(
        f"{emulator.base_url}/_emulator/faults",
        json={"scripted": [{"kind": "revoke", "match": "/billpayment?", "times": 1}]},
        headers={"Authorization": f"Bearer {emulator.inspector_token}"},
    )
    response.raise_for_status()


def bank_payments_of(info: StackInfo, workflow_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{info.bank.url}/v1/payments",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {info.bank.api_key}"},
    )
    response.raise_for_status()
    payments: list[dict[str, Any]] = response.json()["data"]
    return [p for p in payments if (p.get("metadata") or {}).get("workflow_id") == workflow_id]


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
    with kept_running(data_dir) as info:
        revoke_at_the_bill_payment(info)
        workflow_id = submit(info, examples / "bill.json")
        with pytest.raises(AssertionError, match="is held in needs_attention"):
            finish(info, workflow_id)  # approved, paid at the bank, then paused
        paused = bill_row(info, workflow_id)
        assert paused is not None and paused.status == LifecycleStatus.needs_attention
        assert [p["status"] for p in bank_payments_of(info, workflow_id)] == ["settled"]
        health = remit(info, "connections", "health", "demo-quickbooks", "--json")
        assert json.loads(health.stdout)[0]["status"] == "needs_relink", paused.last_error

        relinked = remit(info, "connections", "relink", "demo-quickbooks", "--auto-consent")
        assert relinked.exit_code == 0, relinked.output
        wait_while(info, workflow_id, LifecycleStatus.needs_attention)
        final = finish(info, workflow_id)
        assert final.status == LifecycleStatus.reconciled, final.last_error
        assert_paid_once_in_quickbooks(info, final)
        assert len(bank_payments_of(info, workflow_id)) == 1  # resumed, not paid again
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
