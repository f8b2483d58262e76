"""A bill with a discount line (an e-invoice's document allowance, a prepaid amount) is posted
to the ERP line for line, negative lines included, and paid once for its total."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from accounting.documents import LineKind
from connectors.registry import available_platforms
from tests.workflows.harness import Harness, draft, running_remit
from workflows.models import LifecycleStatus as S


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


async def test_an_allowance_line_is_posted_negative_and_the_total_paid_once(h: Harness) -> None:
    base = draft(number="ALLOW-1", amount="150.00")
    allowance = base.lines[0].model_copy(
        update={
            "description": "Volume discount",
            "amount": Decimal("-30.00"),
            "kind": LineKind.allowance,
        }
    )
    bill = base.model_copy(update={"lines": [base.lines[0], allowance], "total": Decimal("120.00")})
    final = await h.result(await h.submit(bill))
    assert final.status == S.reconciled, final.last_error
    assert final.erp_bill_id
    posted = await h.erp.get_bill(final.erp_bill_id)
    assert sorted(line.amount for line in posted.lines) == [Decimal("-30.00"), Decimal("150.00")]
    assert posted.total == Decimal("120.00") and posted.balance == 0
    assert [p.amount for p in await h.bank_payments()] == [Decimal("120.00")]
