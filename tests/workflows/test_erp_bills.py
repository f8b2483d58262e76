"""Bills someone entered in the ERP, paid through remit; and ERP changes reaching open bills.

Each test makes the bill (and the void or deletion) through the platform's own API, syncs it
into the mirror with the sync workflow, and starts the bill from the mirror as the API does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from accounting import Bill, BillLine, BillStatus, Vendor, draft_of_erp_bill
from connectors.mirror import MirrorKind
from connectors.registry import available_platforms
from runtime.settings import Settings
from starter.sync import start_sync
from store.mirror import MirrorStore
from tests.workflows.harness import Harness, running_remit
from workflows.models import LifecycleStatus as S
from workflows.sync_models import SyncOutcome

VENDOR = "Northwind Office Supply"


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


async def sync(h: Harness, *, full: bool = False) -> SyncOutcome:
    job = await start_sync(
        h.env.client,
        Settings(task_queue=h.task_queue),
        h.connection.id,
        trigger="manual",
        full=full,
    )
    handle = h.env.client.get_workflow_handle(job.workflow_id, result_type=SyncOutcome)
    for _ in range(5):
        try:
            outcome = await handle.result()
            break
        except RuntimeError as err:
            # The test server sometimes ends a long-poll early (see Harness.result).
            if "No completion event found" not in str(err):
                raise
    else:
        raise AssertionError(f"{job.workflow_id} did not complete")
    assert outcome.status == "succeeded", outcome.errors
    return outcome


async def enter_in_erp(h: Harness, *, amount: str, number: str) -> Bill:
    """A bill a bookkeeper types into the ERP (no remit reference on it)."""
    [account] = [a for a in await h.erp.list_accounts() if a.name == "Office Supplies"]
    bill = Bill(
        vendor_id=await h.vendor_id(VENDOR),
        document_number=number,
        issue_date=date(2026, 11, 2),
        due_date=date(2026, 12, 2),
        currency="USD",
        lines=[BillLine(description="toner", amount=Decimal(amount), account_id=account.id)],
        total=Decimal(amount),
    )
    created = await h.erp.create_bill(
        bill, reference=f"typed-in/{number}", idempotency_key=str(uuid.uuid4())
    )
    assert created.id is not None
    return created


async def submit_from_mirror(h: Harness, erp_bill_id: str, **kw: Any) -> str:
    """What POST /v1/bills {"erp_bill_id": ...} starts: the draft from the mirror's row."""
    mirror = MirrorStore(h.store)
    row = mirror.get(h.connection.id, MirrorKind.bills, erp_bill_id)
    assert row is not None and row.deleted_at is None, "the sync put the bill in the mirror"
    bill = Bill.model_validate(row.data)
    vendor_row = mirror.get(h.connection.id, MirrorKind.vendors, bill.vendor_id)
    vendor = Vendor.model_validate(vendor_row.data) if vendor_row else None
    due = bill.balance if bill.balance is not None else bill.total
    return await h.submit(
        draft_of_erp_bill(bill, vendor=vendor), erp_bill_id=erp_bill_id, amount_due=due, **kw
    )


async def later(h: Harness) -> date:
    """A pay date well after the test server's today (earlier tests may have skipped time)."""
    return (await h.env.get_current_time()).date() + timedelta(days=20)


async def void_in_erp(h: Harness, bill_id: str) -> None:
    """Void the bill where the platform can (Xero), else delete it (QuickBooks has no void
    for bills; NetSuite's vendor bills are deleted through the record API)."""
    erp: Any = h.erp
    if h.platform == "quickbooks":
        stored = (await erp._get(f"bill/{bill_id}"))["Bill"]
        await erp._write(
            "bill",
            {"Id": bill_id, "SyncToken": stored["SyncToken"]},
            idempotency_key=str(uuid.uuid4()),
            params={"operation": "delete"},
        )
    elif h.platform == "xero":
        await erp._json(
            "POST",
            f"/Invoices/{bill_id}",
            body={"Invoices": [{"InvoiceID": bill_id, "Status": "VOIDED"}]},
        )
    else:
        await erp._send("DELETE", f"{erp._record_url}/vendorBill/{bill_id}", is_write=True)


async def test_a_bill_entered_in_the_erp_is_paid_once_and_reconciled(h: Harness) -> None:
    typed = await enter_in_erp(h, amount="140.00", number="NW-7001")
    assert typed.id is not None
    bills_before = len(await h.erp.find_bill_headers(vendor_id=typed.vendor_id))
    await sync(h)

    workflow_id = await submit_from_mirror(h, typed.id)
    again = await h.remit.submit_bill(
        draft_of_erp_bill(typed),
        connection_id=h.connection.id,
        platform=h.platform,
        submitted_by="sam",
        erp_bill_id=typed.id,
    )
    assert again.workflow_id == workflow_id and not again.created, "one ERP bill, one bill"

    final = await h.result(workflow_id)
    assert final.status == S.reconciled, (final.status, final.last_error)
    assert final.erp_bill_id == typed.id and not final.vendor_created
    assert final.reconciliation is not None and final.reconciliation.ok
    # Nothing was posted: the vendor's bills are the ones it had, and this one is paid once.
    assert len(await h.erp.find_bill_headers(vendor_id=typed.vendor_id)) == bills_before
    [payment] = await h.bill_payments(typed.id)
    assert payment.total == Decimal("140.00")
    assert len(await h.bank_payments()) == 1
    paid = await h.erp.get_bill(typed.id)
    assert paid.status == "paid" and (paid.balance or 0) == 0


async def test_a_bill_voided_in_the_erp_while_it_waits_for_its_pay_date_is_never_paid(
    h: Harness,
) -> None:
    typed = await enter_in_erp(h, amount="95.00", number="NW-7002")
    assert typed.id is not None
    await sync(h)
    workflow_id = await submit_from_mirror(h, typed.id, pay_on=await later(h))
    await h.status(workflow_id, S.scheduled)

    await void_in_erp(h, typed.id)
    # A full pass sees a deletion on every platform (QuickBooks and NetSuite delete bills).
    await sync(h, full=True)

    final = await h.result(workflow_id)
    assert final.status == S.voided_elsewhere, (final.status, final.last_error)
    assert await h.bank_payments() == []
    kinds = [event.kind for event in h.store.audit_for(workflow_id)]
    assert "erp_change" in kinds, "the sync told the bill; it did not wait for its pay date"


async def test_an_erp_bill_the_sync_did_not_change_is_not_signalled(h: Harness) -> None:
    """remit's own writes (posting, paying) come back through the sync as changes; only news
    is worth a signal (each costs an action and a re-read)."""
    typed = await enter_in_erp(h, amount="60.00", number="NW-7003")
    assert typed.id is not None
    await sync(h)
    workflow_id = await submit_from_mirror(h, typed.id, pay_on=await later(h))
    await h.status(workflow_id, S.scheduled)
    await sync(h, full=True)
    history = await h.remit.handle(workflow_id).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert "erp_bill_changed" not in signals


async def test_a_bill_part_paid_in_the_erp_while_scheduled_pays_only_the_rest(h: Harness) -> None:
    from accounting import AccountType, BillPayment, BillPaymentLine

    typed = await enter_in_erp(h, amount="200.00", number="NW-7004")
    assert typed.id is not None
    await sync(h)
    workflow_id = await submit_from_mirror(h, typed.id, pay_on=await later(h))
    await h.status(workflow_id, S.scheduled)

    [bank] = [a for a in await h.erp.list_accounts() if a.account_type == AccountType.bank][:1]
    await h.erp.create_bill_payment(
        BillPayment(
            vendor_id=typed.vendor_id,
            payment_date=date.today(),
            currency="USD",
            source_account_id=bank.id,
            total=Decimal("50.00"),
            lines=[BillPaymentLine(bill_id=typed.id, amount=Decimal("50.00"))],
        ),
        reference="paid-by-cheque/NW-7004",
        idempotency_key=str(uuid.uuid4()),
    )
    await sync(h)
    told = await h.until(workflow_id, lambda s: s.amount_due == Decimal("150.00"))
    assert told.status == S.scheduled, "it still waits for its pay date, for less"

    final = await h.result(workflow_id)
    assert final.status == S.reconciled, (final.status, final.last_error)
    [remit_paid] = await h.bank_payments()
    assert remit_paid.amount == Decimal("150.00")
    assert sorted(p.total for p in await h.bill_payments(typed.id)) == [
        Decimal("50.00"),
        Decimal("150.00"),
    ]


def test_only_news_is_told_to_a_bill() -> None:
    """What the sync signals: a void, a deletion, a balance or total remit did not write."""
    from activities.sync import news_for
    from connectors.mirror import MirrorRecord
    from tests.store.conftest import make_bill

    row = make_bill(total=Decimal("200.00"), amount_due=Decimal("200.00"), erp_bill_id="B1")

    def record(balance: str, status: str = "open", total: str = "200.00") -> MirrorRecord:
        bill = Bill(
            id="B1",
            vendor_id="V1",
            issue_date=date(2026, 11, 2),
            currency="USD",
            lines=[BillLine(amount=Decimal(total))],
            total=Decimal(total),
            balance=Decimal(balance),
            status=BillStatus(status),
        )
        return MirrorRecord(
            kind=MirrorKind.bills, platform_id="B1", data=bill.model_dump(mode="json")
        )

    assert news_for(row, record("200.00")) is None, "as remit posted it"
    voided = news_for(row, record("200.00", "void"))
    assert voided is not None and voided.status == "void"
    part = news_for(row, record("150.00", "partially_paid"))
    assert part is not None and part.balance == Decimal("150.00")
    gone = news_for(row, MirrorRecord(kind=MirrorKind.bills, platform_id="B1", deleted=True))
    assert gone is not None and gone.deleted
    edited = news_for(row, record("180.00", total="180.00"))
    assert edited is not None and edited.total == Decimal("180.00")
    settled = make_bill(total=Decimal("200.00"), amount_due=Decimal("0"), erp_bill_id="B1")
    assert news_for(settled, record("0", "paid")) is None, "remit paid"


async def test_new_open_erp_bills_start_by_themselves_only_when_asked(h: Harness) -> None:
    from runtime.bills import bill_identity
    from tests.workflows.harness import draft
    from workflows.models import bill_workflow_id

    def workflow_of(bill: Bill) -> str:
        assert bill.id is not None
        return bill_workflow_id(
            h.connection.id, *bill_identity(draft_of_erp_bill(bill), None, bill.id)
        )

    backlog = await enter_in_erp(h, amount="70.00", number="NW-7005")
    h.change_settings(start_new_erp_bills="true")
    await sync(h)  # the first sync: the company's backlog waits to be asked for
    typed = await enter_in_erp(h, amount="90.00", number="NW-7007")
    own = await h.result(await h.submit(draft(number="OWN-1", amount="110.00")))
    assert own.status == S.reconciled
    await sync(h)

    started = await h.result(workflow_of(typed))
    assert started.status == S.reconciled and started.submitted_by == "sync"
    assert started.erp_bill_id == typed.id
    [payment] = await h.bill_payments(started.erp_bill_id or "")
    assert payment.total == Decimal("90.00")
    assert h.store.get_bill(workflow_of(backlog)) is None
    # The bill remit posted itself came back through the sync as new: not a second bill.
    assert len(h.store.bills_of_erp_bills(h.connection.id, [own.erp_bill_id or ""])) == 1


def test_whether_new_erp_bills_start_is_the_connections_word_then_the_policys() -> None:
    from activities.sync import starts_new_erp_bills
    from connectors.base import ConnectionConfig
    from workflows.approval import ApprovalPolicy

    def starts(setting: str | None, policy: bool) -> bool:
        base = {"version": "t", "tiers": [{"groups": ["ap"]}], "start_new_erp_bills": policy}
        settings = {} if setting is None else {"start_new_erp_bills": setting}
        connection = ConnectionConfig(
            id="c", platform="xero", base_url="", company_id="t", settings=settings
        )
        return starts_new_erp_bills(connection, ApprovalPolicy.model_validate(base))

    assert not starts(None, False), "off by default"
    assert starts(None, True)
    assert not starts("false", True) and starts("True", False)
    from activities.policy import load_policy

    assert load_policy().start_new_erp_bills is False, "the shipped policy leaves it off"
