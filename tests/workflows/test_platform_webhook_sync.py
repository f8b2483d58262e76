"""A platform's webhook brings the change into the mirror by itself: the emulator (QuickBooks,
Xero) sends its signed notice to remit's API over real HTTP, the API starts the sync, the sync
reads the change. Nobody asks for a sync."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from accounting import Bill, BillLine
from connectors.mirror import MirrorKind
from runtime.settings import Settings
from starter.api import assemble_app
from starter.api.platform_webhooks import platform_webhooks_router
from store.mirror import MirrorStore
from tests.connectors.conftest import serve_asgi
from tests.workflows.harness import Harness, running_remit
from tests.workflows.test_erp_bills import sync

KEY = "webhook-key-for-tests"


@pytest.fixture(params=["quickbooks", "xero"])
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        harness.store_connection()
        yield harness


async def test_a_bill_made_in_the_erp_reaches_the_mirror_through_the_webhook(h: Harness) -> None:
    app = assemble_app(
        h.remit,
        bank_webhook_secret="whsec_platform",
        store=h.store,
        documents=h.documents,
        extra_routers=[
            platform_webhooks_router(
                Settings(task_queue=h.task_queue), keys={h.platform: SecretStr(KEY)}
            )
        ],
    )
    await sync(h)  # the connection's first sync; from here on, changes are incremental
    emulator: Any = h.emulator
    async with serve_asgi(app) as url:
        emulator.configure_webhooks(f"{url}/v1/platforms/{h.platform}/webhooks", KEY)
        [account] = [a for a in await h.erp.list_accounts() if a.name == "Office Supplies"]
        created = await h.erp.create_bill(
            Bill(
                vendor_id=await h.vendor_id("Northwind Office Supply"),
                document_number="HOOK-1",
                issue_date=date(2026, 11, 20),
                currency="USD",
                lines=[BillLine(amount=Decimal("33.30"), account_id=account.id)],
                total=Decimal("33.30"),
            ),
            reference="typed-in/HOOK-1",
            idempotency_key=str(uuid.uuid4()),
        )
        assert created.id is not None
        mirror = MirrorStore(h.store)
        deadline = asyncio.get_running_loop().time() + 60
        while (row := mirror.get(h.connection.id, MirrorKind.bills, created.id)) is None:
            assert asyncio.get_running_loop().time() < deadline, "the webhook never synced it"
            await asyncio.sleep(0.1)
        emulator.configure_webhooks(None, None)
    assert row.data["document_number"] == "HOOK-1" and row.data["total"] == "33.30"
    triggers = [run.trigger for run in mirror.list_runs(h.connection.id)]
    assert "webhook" in triggers, triggers
