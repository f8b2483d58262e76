"""The embedded stack's wiring: stack.json, encrypted demo connections, emulators and the bank."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from activities.connections import Connectors
from connectors.registry import available_platforms
from runtime.secrets import SecretBox
from sandbox.stack import (
    SECRET_KEY_FILE,
    Stack,
    StackOptions,
    dev_server_command,
    load_stack_info,
    search_attribute_keys,
    stack_file,
)
from store import Store
from worker import store_lookup


def test_the_dev_server_is_started_with_every_search_attribute(tmp_path: Path) -> None:
    command = dev_server_command(
        "temporal",
        host="127.0.0.1",
        port=7233,
        ui_port=8233,
        db_file=tmp_path / "t.db",
        namespace="default",
    )

    registered = [command[i + 1] for i, arg in enumerate(command) if arg == "--search-attribute"]
    # The dev server's own type names (`temporal server start-dev --help`).
    cli_names = {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.DOUBLE: "Double",
        SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
        SearchAttributeIndexedValueType.DATETIME: "Datetime",
    }
    keys = search_attribute_keys()
    assert sorted(registered) == sorted(
        f"{key.name}={cli_names[key.indexed_value_type]}" for key in keys
    )
    assert {key.name for key in keys} >= {"BillStatus", "VendorName", "AmountDue", "DueDate"}
    assert command[command.index("--db-filename") + 1] == str(tmp_path / "t.db")
    assert command[command.index("--ui-port") + 1] == "8233"


async def test_the_stack_writes_stack_json_and_stores_demo_connections_encrypted(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> None:
    address = time_skipping_env.client.service_client.config.target_host
    options = StackOptions.on_free_ports(tmp_path, temporal_address=address)

    async with Stack(options):
        info = load_stack_info(tmp_path)
        assert stat.S_IMODE(stack_file(tmp_path).stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / SECRET_KEY_FILE).stat().st_mode) == 0o600
        assert info.temporal.address == address and not info.temporal.embedded
        assert [e.platform for e in info.emulators] == available_platforms()
        assert info.bank.webhook_url == info.api_url + "/v1/rails/sandbox-bank/events"

        box = SecretBox((tmp_path / SECRET_KEY_FILE).read_text())
        store = Store.open(info.database_url, run_migrations=False)
        connectors = Connectors(store_lookup(store, box))
        try:
            database = (tmp_path / "remit.db").read_bytes()
            for emulator in info.emulators:
                row = store.get_connection(emulator.connection_id)
                assert row is not None and row.credentials_encrypted is not None
                assert row.platform == emulator.platform
                assert row.base_url == emulator.base_url
                assert row.company_id == emulator.company_id
                credentials = box.open(row.credentials_encrypted)
                assert credentials
                for secret in credentials.values():
                    if len(secret) >= 8:
                        assert secret.encode() not in database, emulator.platform
                # The stored connection really reaches the emulator over HTTP.
                connector = await connectors.connector(emulator.connection_id)
                vendors = await connector.find_vendors(name="Northwind Office Supply")
                assert [v.name for v in vendors] == ["Northwind Office Supply"]

            async with httpx.AsyncClient() as http:
                health = await http.get(info.api_url + "/healthz")
                assert health.json() == {"status": "ok"}
                bank = await http.get(
                    info.bank.url + "/v1/payments",
                    headers={"Authorization": f"Bearer {info.bank.api_key}"},
                )
                assert bank.status_code == 200
                assert bank.json()["data"] == []
        finally:
            await connectors.aclose()
            store.close()

    assert not stack_file(tmp_path).exists()
    async with httpx.AsyncClient() as http:
        try:
            await http.get(info.api_url + "/healthz")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("the API still answers after the stack stopped")
