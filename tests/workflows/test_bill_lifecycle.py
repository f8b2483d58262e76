"""BillWorkflow end to end under time skipping, against the QBO emulator and the sandbox bank."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import draft, running_remit
from workflows.models import LifecycleStatus as S


async def test_auto_approved_bill_is_paid_once_and_reconciled(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path) as h:
        wid = await h.submit(draft(amount="120.00"))
        final = await h.result(wid)
        assert final.status == S.reconciled, final.last_error
        assert final.plan is not None and final.plan.auto_approved
        assert final.erp_bill_id and final.erp_payment_id
        payments = await h.bill_payments(final.erp_bill_id)
        assert [p.total for p in payments] == [Decimal("120.00")]
        bill = await h.erp.get_bill(final.erp_bill_id)
        assert bill.balance == 0
        assert len(await h.bank_payments()) == 1
        row = h.store.get_bill(wid)
        assert row is not None and row.status == "reconciled"
        kinds = [e.kind for e in h.store.audit_for(wid)]
        assert "bank_write" in kinds and kinds.count("erp_write") >= 2
