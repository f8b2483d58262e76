"""`remit up` serves the /v1 API with a key per demo user, listed in stack.json."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sandbox.stack import DEMO_API_SCOPES, Stack, StackOptions, load_stack_info

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_demo_users_drive_a_bill_through_the_stacks_api(
    tmp_path: Path, examples: Path
) -> None:
    async with Stack(StackOptions.on_free_ports(tmp_path, temporal_ui=False)) as stack:
        info = load_stack_info(tmp_path)
        assert stack.info is not None and info.api_keys == stack.info.api_keys
        assert {k.user_id: tuple(k.scopes) for k in info.api_keys} == DEMO_API_SCOPES

        def auth(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {info.api_key_for(user)}"}

        async with httpx.AsyncClient(base_url=info.api_url, timeout=30) as http:
            for user in DEMO_API_SCOPES:
                assert (await http.get("/v1/bills", headers=auth(user))).status_code == 200

            submitted = await http.post(
                "/v1/bills",
                content=(examples / "bill.json").read_bytes(),
                headers={
                    **auth("sam"),
                    "Content-Type": "application/json",
                    "Content-Disposition": 'attachment; filename="bill.json"',
                },
            )
            assert submitted.status_code == 202, submitted.text
            bill_id = submitted.json()["id"]
            assert bill_id.startswith(f"bill/{info.emulators[0].connection_id}/")

            deadline = asyncio.get_running_loop().time() + 60
            while True:
                body = (await http.get(f"/v1/bills/{bill_id}", headers=auth("sam"))).json()
                if body["state"]["status"] == "awaiting_approval":
                    break
                assert asyncio.get_running_loop().time() < deadline, body
                await asyncio.sleep(0.2)
            assert body["state"]["submitted_by"] == "sam"
            assert body["attachments"][0]["file_name"] == "bill.json"

            approved = await http.post(
                f"/v1/bills/{bill_id}/decisions",
                json={"decision": "approve", "comment": "ordered"},
                headers=auth("alice"),
            )
            assert approved.status_code == 200, approved.text
            assert approved.json()["actor"] == "alice"

            connections = await http.get("/v1/connections", headers=auth("olivia"))
            assert connections.status_code == 200
            assert {c["id"] for c in connections.json()["data"]} == {
                e.connection_id for e in info.emulators
            }
            assert all("credentials" not in c for c in connections.json()["data"])
            assert all(c["has_credentials"] for c in connections.json()["data"])
            clerk = await http.get("/v1/connections", headers=auth("sam"))
            assert clerk.status_code == 403
