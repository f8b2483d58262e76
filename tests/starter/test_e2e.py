"""End to end: `remit up` on free ports, both example documents through the CLI to `reconciled`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from sandbox.cli import app  # the whole command, the stage's included
from sandbox.stack import Stack, StackInfo, StackOptions
from store import BillRow, Store
from workflows.models import FINAL_STATUSES, LifecycleStatus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

runner = CliRunner()
BILL_DEADLINE_SECONDS = 180.0


class RunningStack:
    """The real stack on its own event loop in a thread, as `remit up` runs it in a terminal."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stack = Stack(StackOptions.on_free_ports(data_dir, temporal_ui=False))

    def __enter__(self) -> StackInfo:
        self.thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self.stack.start(), self.loop).result(120)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.stack.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with RunningStack(tmp_path_factory.mktemp("stack")) as info:
        yield info


def remit(info: StackInfo, *args: str) -> Any:
    return runner.invoke(app, [*args, "--data-dir", info.data_dir])


def submit(info: StackInfo, document: Path) -> str:
    result = remit(info, "bills", "submit", str(document), "--pay-on", "today")
    assert result.exit_code == 0, result.output
    return str(result.output.strip().rsplit(" ", 1)[-1])


def bill_row(info: StackInfo, workflow_id: str) -> BillRow | None:
    store = Store.open(info.database_url, run_migrations=False)
    try:
        return store.get_bill(workflow_id)
    finally:
        store.close()


def drive_to_the_end(info: StackInfo, workflow_id: str) -> BillRow:
    """Poll the store (bounded) and approve as each pending approver until a final status."""
    deadline = time.monotonic() + BILL_DEADLINE_SECONDS
    approved_by: set[str] = set()
    reviewed: set[str] = set()
    seen: list[str] = []
    # The store's projection trails the workflow: after a decision, the row that still shows
    # the bill waiting (with the next name in the group) is the one from before it. Decide
    # again only on a row written after the last decision.
    decided_at_revision = -1
    while time.monotonic() < deadline:
        row = bill_row(info, workflow_id)
        if row is not None:
            if not seen or seen[-1] != row.status:
                seen.append(row.status)
            if row.status in FINAL_STATUSES:
                return row
            payee = row.state.get("payee") or {}
            if row.status == LifecycleStatus.needs_review and payee.get("change_id"):
                if payee["change_id"] not in reviewed:
                    review_payee_change(info, payee["change_id"])
                    reviewed.add(payee["change_id"])
                time.sleep(0.25)  # the approval told the bill; it moves on once it looks again
                continue
            # A hold for a person: waiting longer cannot help, so say why at once.
            if row.status in (LifecycleStatus.needs_review, LifecycleStatus.needs_attention):
                reasons = row.state.get("review_reasons") or row.last_error
                raise AssertionError(f"{workflow_id} is held in {row.status}: {reasons}")
            pending = [a for a in row.pending_approvers if a not in approved_by]
            fresh = row.revision > decided_at_revision
            if row.status == LifecycleStatus.awaiting_approval and pending and fresh:
                result = remit(info, "bills", "approve", workflow_id, "--as", pending[0])
                assert result.exit_code == 0, result.output
                approved_by.add(pending[0])
                decided_at_revision = row.revision
        time.sleep(0.25)
    raise AssertionError(f"{workflow_id} went {' → '.join(seen)} and did not finish in time")


def review_payee_change(info: StackInfo, change_id: str) -> None:
    """What finance does with bank details nobody verified: a call-back, then two approvals,
    each through the CLI as its own person (the submitter may do none of it)."""
    refused = remit(info, "payees", "approve", change_id, "--as", "carol")
    assert refused.exit_code == 1 and "not verified yet" in refused.output
    steps = [
        ("verify", change_id, "--method", "call-back to the number on file", "--as", "olivia"),
        ("approve", change_id, "--as", "carol"),
        ("approve", change_id, "--as", "dave"),
    ]
    for step in steps:
        result = remit(info, "payees", *step)
        assert result.exit_code == 0, result.output
    changes = json.loads(remit(info, "payees", "changes", "--json").stdout)
    [change] = [c for c in changes if c["id"] == change_id]
    assert change["status"] == "approved" and change["details"].startswith("IBAN DE••••")


def qbo_query(info: StackInfo, statement: str) -> dict[str, Any]:
    emulator = info.emulator_for("demo-quickbooks")
    response = httpx.get(
        f"{emulator.base_url}/v3/company/{emulator.company_id}/query",
        params={"query": statement},
        headers={
            "Authorization": f"Bearer {emulator.inspector_token}",
            "Accept": "application/json",
        },
    )
    response.raise_for_status()
    body: dict[str, Any] = json.loads(response.text, parse_float=Decimal)["QueryResponse"]
    return body


def assert_paid_once_in_quickbooks(info: StackInfo, row: BillRow) -> None:
    assert row.erp_bill_id is not None
    payments = qbo_query(info, "select * from BillPayment").get("BillPayment", [])
    for_this_bill = [
        p
        for p in payments
        for line in p.get("Line", [])
        for linked in line.get("LinkedTxn", [])
        if linked.get("TxnType") == "Bill" and linked.get("TxnId") == row.erp_bill_id
    ]
    assert len(for_this_bill) == 1, payments
    assert for_this_bill[0]["TotalAmt"] == row.total
    bills = qbo_query(info, f"select * from Bill where Id = '{row.erp_bill_id}'")["Bill"]
    assert bills[0]["Balance"] == Decimal("0")


async def workflows_matching(info: StackInfo, query: str) -> list[str]:
    client = await Client.connect(info.temporal.address, namespace=info.temporal.namespace)
    return [execution.id async for execution in client.list_workflows(query)]


def test_a_json_bill_goes_from_the_cli_to_reconciled_in_quickbooks(
    stack: StackInfo, examples: Path
) -> None:
    workflow_id = submit(stack, examples / "bill.json")
    assert workflow_id.startswith("bill/demo-quickbooks/")

    # The clerk who submitted it is not an approver: the validator says no, with a reason.
    deadline = time.monotonic() + BILL_DEADLINE_SECONDS
    while (row := bill_row(stack, workflow_id)) is None or row.status in ("received", "matching"):
        assert time.monotonic() < deadline, "the bill never reached approval"
        time.sleep(0.25)
    assert row.status == LifecycleStatus.awaiting_approval, row.last_error
    refused = remit(stack, "bills", "approve", workflow_id, "--as", "sam")
    assert refused.exit_code == 1
    assert "refused" in refused.output

    final = drive_to_the_end(stack, workflow_id)

    assert final.status == LifecycleStatus.reconciled, final.last_error
    assert_paid_once_in_quickbooks(stack, final)
    shown = remit(stack, "bills", "show", workflow_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["state"]["status"] == "reconciled"
    original = remit(stack, "bills", "document", workflow_id, "-o", str(Path(stack.data_dir) / "o"))
    assert original.exit_code == 0, original.output
    assert (Path(stack.data_dir) / "o").read_bytes() == (examples / "bill.json").read_bytes()
    found: list[str] = []
    while workflow_id not in found and time.monotonic() < deadline:
        found = asyncio.run(workflows_matching(stack, 'VendorName = "Northwind Office Supply"'))
    assert workflow_id in found


def test_webhook_endpoints_through_the_cli_and_the_api(stack: StackInfo) -> None:
    added = remit(
        stack, "webhooks", "add", "http://127.0.0.1:9/hooks", "--event", "bill.paid", "--json"
    )
    assert added.exit_code == 0, added.output
    endpoint = json.loads(added.stdout)
    assert endpoint["secret"].startswith("whsec_") and endpoint["event_types"] == ["bill.paid"]

    listed = remit(stack, "webhooks", "list", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [endpoint["id"]]
    assert "secret" not in listed.stdout  # shown once, at creation

    assert remit(stack, "webhooks", "disable", endpoint["id"]).exit_code == 0
    disabled = json.loads(remit(stack, "webhooks", "list", "--json").stdout)
    assert disabled[0]["status"] == "disabled"
    assert remit(stack, "webhooks", "remove", endpoint["id"]).exit_code == 0
    assert json.loads(remit(stack, "webhooks", "list", "--json").stdout) == []
    # A sam key lacks the admin scope: the API's refusal reaches the user with its reason.
    refused = remit(stack, "webhooks", "list", "--as", "sam")
    assert refused.exit_code == 1 and "admin" in refused.output


def test_the_ubl_invoice_goes_from_the_cli_to_reconciled_in_quickbooks(
    stack: StackInfo, examples: Path
) -> None:
    workflow_id = submit(stack, examples / "invoice-ubl.xml")

    final = drive_to_the_end(stack, workflow_id)

    assert final.status == LifecycleStatus.reconciled, final.last_error or final.state
    assert final.currency == "EUR"
    assert_paid_once_in_quickbooks(stack, final)


def test_the_stack_runs_the_periodic_work_on_schedules(stack: StackInfo) -> None:
    """As `remit worker` does: retention, the drift sweep and each connection's sync."""
    from workflows.drift_models import DRIFT_SCHEDULE_ID
    from workflows.retention import RETENTION_SCHEDULE_ID
    from workflows.sync_models import sync_schedule_id

    wanted = [RETENTION_SCHEDULE_ID, DRIFT_SCHEDULE_ID] + [
        sync_schedule_id(emulator.connection_id) for emulator in stack.emulators
    ]

    async def described() -> list[str]:
        client = await Client.connect(stack.temporal.address, namespace=stack.temporal.namespace)
        # By id, not listed (listing is eventually consistent); a missing one is NOT_FOUND.
        return [(await client.get_schedule_handle(i).describe()).id for i in wanted]

    assert asyncio.run(described()) == wanted
