"""A bill whose capture was unsure (a scan read with low confidence, a header-only e-invoice)
waits in needs_review before anything reaches the ERP, and goes on as a person corrected it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from accounting.documents import VENDOR_NAME_DOUBT
from tests.workflows.harness import Harness, draft, running_remit
from workflows.models import LifecycleStatus as S

DOUBT = "scan: the total 9,000.00 was read with 41% confidence (below 80%)"


@pytest.fixture
async def h(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, "quickbooks") as harness:
        yield harness


def _doubtful(amount: str = "9000.00"):
    return draft(number="SCAN-1", amount=amount).model_copy(update={"review_reasons": [DOUBT]})


async def test_a_doubtful_capture_waits_and_goes_on_as_corrected(h: Harness) -> None:
    wid = await h.submit(_doubtful())
    held = await h.status(wid, S.needs_review)
    assert held.review_reasons[0] == DOUBT
    assert held.erp_bill_id is None
    corrected = draft(number="SCAN-1", amount="120.00")
    await h.remit.resolve(wid, actor="olivia", draft=corrected)
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.total == Decimal("120.00")
    assert final.erp_bill_id is not None
    bill = await h.erp.get_bill(final.erp_bill_id)
    assert bill.total == Decimal("120.00")
    assert [p.amount for p in await h.bank_payments()] == [Decimal("120.00")]
    corrections = [e for e in h.store.audit_for(wid) if e.kind == "corrected"]
    assert len(corrections) == 1
    assert corrections[0].actor == "olivia"
    assert "total 9000.00 → 120.00" in corrections[0].summary


async def test_a_doubtful_capture_confirmed_as_read_goes_on_unchanged(h: Harness) -> None:
    wid = await h.submit(_doubtful("120.00"))
    await h.status(wid, S.needs_review)
    await h.remit.resolve(wid, actor="olivia", reason="read it myself: right")
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.total == Decimal("120.00")
    corrections = [e for e in h.store.audit_for(wid) if e.kind == "corrected"]
    assert [e.summary for e in corrections] == ["confirmed as read, nothing changed"]


async def test_a_draft_capture_was_sure_of_does_not_wait(h: Harness) -> None:
    final = await h.result(await h.submit(draft(number="SCAN-3", amount="120.00")))
    assert final.status == S.reconciled
    assert not [e for e in h.store.audit_for(final.workflow_id) if e.kind == "corrected"]


NAME_DOUBT = (
    "scan: the vendor name Northwind Office Supply was read by OCR (91%): confirmed when "
    "matching finds the vendor by its tax id, else by a person"
)


async def test_a_vendor_found_by_its_tax_id_settles_the_name_ocr_read(h: Harness) -> None:
    assert NAME_DOUBT.startswith(VENDOR_NAME_DOUBT)
    scanned = draft(number="SCAN-4", amount="120.00").model_copy(
        update={"review_reasons": [NAME_DOUBT]}
    )
    final = await h.result(await h.submit(scanned))
    assert final.status == S.reconciled, final.last_error
    assert final.vendor_name == "Northwind Office Supply"  # the ERP's vendor, by tax id


async def test_a_name_ocr_read_without_a_tax_id_waits_for_a_person(h: Harness) -> None:
    scanned = draft(number="SCAN-5", amount="120.00", tax_id=None).model_copy(
        update={"review_reasons": [NAME_DOUBT]}
    )
    wid = await h.submit(scanned)
    held = await h.status(wid, S.needs_review)
    assert held.review_reasons[0] == NAME_DOUBT
    # Ended here, not left waiting: a bill cut off with an activity scheduled would hold the
    # shared test server's clock still for every test after this one.
    await h.remit.cancel(wid, actor="olivia", reason="the test is done")
    assert (await h.result(wid)).status == S.cancelled
