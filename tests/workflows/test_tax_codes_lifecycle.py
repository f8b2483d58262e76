"""A bill whose lines carry VAT categories, end to end: matched to the ERP's tax codes, paid
once for the document's total, and (once BillWorkflow copies the code) booked with them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from accounting import BillDraft
from connectors.registry import available_platforms
from tests.workflows.harness import Harness, draft, running_remit
from workflows.models import LifecycleStatus as S


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


def vat_draft(number: str) -> BillDraft:
    """100.00 at German standard VAT (19 %), a code every demo company has."""
    base = draft(number=number, amount="100.00")
    line = base.lines[0].model_copy(update={"tax_category": "S", "tax_rate": Decimal("19")})
    return base.model_copy(
        update={"lines": [line], "tax_amount": Decimal("19.00"), "total": Decimal("119.00")}
    )


async def _standard_19(h: Harness) -> str:
    found = await h.erp.tax_code_for("S", Decimal("19"))
    assert found is not None, f"{h.platform}: the demo company has no 19 % purchase code"
    return found.id


async def test_a_vat_line_is_matched_to_its_code_and_the_document_total_paid(h: Harness) -> None:
    wid = await h.submit(vat_draft("VAT-19-1"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert [(ln.tax_category, ln.tax_rate) for ln in final.lines] == [("S", Decimal("19"))]
    assert [ln.tax_code_id for ln in final.lines] == [await _standard_19(h)]
    assert final.erp_bill_id
    bill = await h.erp.get_bill(final.erp_bill_id)
    assert (bill.tax_amount, bill.total) == (Decimal("19.00"), Decimal("119.00"))
    assert [p.total for p in await h.bill_payments(final.erp_bill_id)] == [Decimal("119.00")]


async def test_the_erp_bill_carries_the_code_on_its_line(h: Harness) -> None:
    wid = await h.submit(vat_draft("VAT-19-2"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.erp_bill_id
    bill = await h.erp.get_bill(final.erp_bill_id)
    assert [line.tax_code_id for line in bill.lines] == [await _standard_19(h)]
