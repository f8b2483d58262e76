"""`remit connections` and the link service against the emulators served over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from connectors.oauth import LinkRefused
from connectors.registry import ERP_PLATFORMS
from runtime.secrets import SecretBox
from sandbox.cli import app  # the whole command, the stage's included
from sandbox.consent import drive_consent
from sandbox.registry import DemoCompany, new_emulator, provision_with
from sandbox.stack import (
    BankInfo,
    EmulatorInfo,
    StackInfo,
    TemporalInfo,
    load_or_create_secret_key,
    stack_file,
)
from starter.connections import ConnectionService, LinkStart
from store import ConnectionRow, Store

runner = CliRunner()
REDIRECT_URI = "https://remit.example/connections/callback"


class _Servers:
    """Emulators on loopback ports, served by uvicorn on one background event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[uvicorn.Server] = []
        self._tasks: list[Any] = []
        self._thread.start()

    def serve(self, asgi: Any) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off"))
        self._servers.append(server)
        future = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), self._loop)
        self._tasks.append(future)
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        deadline = datetime.now(UTC).timestamp() + 10
        while not server.started:
            if datetime.now(UTC).timestamp() > deadline:
                raise TimeoutError(f"uvicorn did not start on {url}")
            threading.Event().wait(0.01)
        return url

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        for future in self._tasks:
            future.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@dataclass
class Stack:
    data_dir: Path
    info: StackInfo
    emulators: dict[str, Any]
    companies: dict[str, list[DemoCompany]]
    box: SecretBox

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        store = Store.open(self.info.database_url, run_migrations=False)
        try:
            yield store
        finally:
            store.close()

    def cli(self, *args: str, input: str | None = None) -> Any:
        return runner.invoke(
            app, ["connections", *args, "--data-dir", str(self.data_dir)], input=input
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """What `remit up` leaves behind for the CLI: stack.json, secret.key, a migrated store with
    one seeded demo connection per platform, and the emulators listening on loopback."""
    servers = _Servers()
    database_url = f"sqlite:///{tmp_path / 'remit.db'}"
    Store.open(database_url).close()
    box = SecretBox(load_or_create_secret_key(tmp_path))
    emulators: dict[str, Any] = {}
    companies: dict[str, list[DemoCompany]] = {}
    infos = []
    store = Store.open(database_url, run_migrations=False)
    try:
        for name in ERP_PLATFORMS:
            emulator = new_emulator(name)
            seeded = [emulator.seed_demo_company(), emulator.seed_demo_company()]
            url = servers.serve(emulator.app)
            emulators[name], companies[name] = emulator, seeded
            demo = seeded[0]
            now = datetime.now(UTC)
            store.upsert_connection(
                ConnectionRow(
                    id=f"demo-{name}",
                    platform=name,
                    company_id=demo.company_id,
                    display_name=f"{demo.company_name} ({name}, emulated)",
                    base_url=url,
                    status="active",
                    credentials_encrypted=box.seal(demo.credentials),
                    settings=demo.settings,
                    created_at=now,
                    updated_at=now,
                )
            )
            infos.append(
                EmulatorInfo(
                    platform=name,
                    base_url=url,
                    company_id=demo.company_id,
                    company_name=demo.company_name,
                    connection_id=f"demo-{name}",
                    inspector_token=demo.inspector_token,
                )
            )
        info = StackInfo(
            data_dir=str(tmp_path),
            pid=0,
            started_at=datetime.now(UTC),
            temporal=TemporalInfo(address="127.0.0.1:1", namespace="default", task_queue="q"),
            api_url="http://127.0.0.1:9",
            database_url=database_url,
            documents_dir=str(tmp_path / "documents"),
            emulators=infos,
            bank=BankInfo(url="http://127.0.0.1:9", api_key="", inspector_token="", webhook_url=""),
        )
        stack_file(tmp_path).write_text(info.model_dump_json())
        yield Stack(tmp_path, info, emulators, companies, box)
    finally:
        store.close()
        servers.stop()


def _listed(stack: Stack) -> dict[str, Any]:
    result = stack.cli("list", "--json")
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in json.loads(result.stdout)}


# ---------------------------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ERP_PLATFORMS)
def test_add_links_the_chosen_company_through_the_platforms_own_flow(
    stack: Stack, name: str
) -> None:
    second = stack.companies[name][1]

    added = stack.cli(
        "add", name, "--auto-consent", "--company", second.company_id, "--setting", "x=1"
    )

    assert added.exit_code == 0, added.output
    connection_id = f"{name}-{second.company_id}".lower()
    assert f"linked {connection_id}" in added.output
    listed = _listed(stack)
    assert listed[connection_id]["company_id"] == second.company_id
    assert listed[connection_id]["status"] == "active"
    assert listed[connection_id]["renewable"] is True
    with stack.store() as store:
        row = store.get_connection(connection_id)
    assert row is not None and row.credentials_encrypted is not None
    credentials = stack.box.open(row.credentials_encrypted)
    assert row.settings == {"x": "1"}
    # Secrets are sealed in the store and never printed.
    assert credentials["access_token"] not in added.output
    assert credentials["access_token"].encode() not in row.credentials_encrypted

    probed = stack.cli("health", connection_id, "--probe", "--json")
    assert probed.exit_code == 0, probed.output
    assert json.loads(probed.stdout)[0]["last_success_at"] is not None


def test_a_revoked_connection_shows_needs_relink_until_relinked(stack: Stack) -> None:
    with stack.store() as store:
        row = store.get_connection("demo-quickbooks")
        assert row is not None and row.credentials_encrypted is not None
        old = stack.box.open(row.credentials_encrypted)
    stack.emulators["quickbooks"].revoke_token(old["access_token"])
    # The demo credentials carry no expiry, so only a call finds out; relinking needs an app.
    stack.emulators["quickbooks"].consent.register_app(
        client_id=old["client_id"], client_secret=old["client_secret"]
    )

    broken = stack.cli("health", "demo-quickbooks", "--probe", "--json")
    relinked = stack.cli("relink", "demo-quickbooks", "--auto-consent")
    healthy = stack.cli("health", "demo-quickbooks", "--probe", "--json")

    assert broken.exit_code == 1
    assert json.loads(broken.stdout)[0]["status"] == "needs_relink"
    assert json.loads(broken.stdout)[0]["last_error"]
    assert relinked.exit_code == 0, relinked.output
    assert healthy.exit_code == 0, healthy.output
    state = json.loads(healthy.stdout)[0]
    assert state["status"] == "active" and state["last_success_at"] is not None
    assert state["company_id"] == stack.companies["quickbooks"][0].company_id


def test_netsuite_relink_mints_again_without_a_browser(stack: Stack) -> None:
    relinked = stack.cli("relink", "demo-netsuite", "--json")

    assert relinked.exit_code == 0, relinked.output
    assert json.loads(relinked.stdout)[0]["status"] == "active"
    assert json.loads(relinked.stdout)[0]["token_expires_at"] is not None


def test_add_without_app_credentials_or_auto_consent_says_what_to_give(stack: Stack) -> None:
    result = stack.cli("add", "xero")

    assert result.exit_code == 1
    assert "--client-id" in result.output


def test_unknown_platform_and_connection_are_refused_plainly(stack: Stack) -> None:
    unknown_platform = stack.cli("add", "sage")
    unknown_connection = stack.cli("health", "nope")

    assert unknown_platform.exit_code == 2 and "unknown platform" in unknown_platform.output
    assert unknown_connection.exit_code == 1 and "no connection 'nope'" in unknown_connection.output


def test_list_shows_every_connection_as_a_table(stack: Stack) -> None:
    result = stack.cli("list")

    assert result.exit_code == 0, result.output
    for name in ERP_PLATFORMS:
        assert f"demo-{name}" in result.output


# ---------------------------------------------------------------------------------------------
# the service (in process, over ASGITransport)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def service_parts(tmp_path: Path) -> Iterator[tuple[Store, SecretBox, Any, DemoCompany]]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    emulator = new_emulator("xero")
    company = emulator.seed_demo_company()
    try:
        yield store, SecretBox(SecretBox.generate_key()), emulator, company
    finally:
        store.close()


async def test_relinking_runs_the_hook_and_a_first_link_does_not(
    service_parts: tuple[Store, SecretBox, Any, DemoCompany],
) -> None:
    store, box, emulator, company = service_parts
    relinked: list[str] = []

    async def on_relinked(connection_id: str) -> None:
        relinked.append(connection_id)

    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    service = ConnectionService(
        store, box, transport_for=lambda _url: transport, on_relinked=on_relinked
    )
    base_url = "http://xero.emulator"
    app_credentials = await provision_with(
        service, "xero", base_url=base_url, inspector_token=company.inspector_token
    )

    async def consent(start: LinkStart) -> str:
        async with service.http(base_url) as http:
            return await drive_consent(http, start.authorize_url, company_id=company.company_id)

    start = await service.begin_link(
        "xero",
        base_url=base_url,
        redirect_uri=REDIRECT_URI,
        client_id=app_credentials["client_id"],
        client_secret=app_credentials["client_secret"],
    )
    first = await service.complete_link(await consent(start))
    store.mark_connection(first.id, status="needs_relink", error="revoked in a test")
    again = await service.relink(first.id, redirect_uri=REDIRECT_URI)
    assert isinstance(again, LinkStart)
    callback = await consent(again)
    second = await service.complete_link(callback)

    assert first.company_id == company.company_id
    assert second.id == first.id and second.status == "active"
    assert relinked == [first.id]
    # The callback was spent: replaying it matches no link in progress.
    with pytest.raises(LinkRefused, match="no link in progress"):
        await service.complete_link(callback)


async def test_a_relink_must_reconnect_the_same_company(
    service_parts: tuple[Store, SecretBox, Any, DemoCompany],
) -> None:
    store, box, emulator, company = service_parts
    other = emulator.seed_demo_company()
    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    service = ConnectionService(store, box, transport_for=lambda _url: transport)
    base_url = "http://xero.emulator"
    app_credentials = await provision_with(
        service, "xero", base_url=base_url, inspector_token=company.inspector_token
    )
    start = await service.begin_link(
        "xero",
        base_url=base_url,
        redirect_uri=REDIRECT_URI,
        client_id=app_credentials["client_id"],
        client_secret=app_credentials["client_secret"],
    )
    async with service.http(base_url) as http:
        linked = await service.complete_link(
            await drive_consent(http, start.authorize_url, company_id=company.company_id)
        )
        again = await service.relink(linked.id, redirect_uri=REDIRECT_URI)
        assert isinstance(again, LinkStart)
        wrong = await drive_consent(http, again.authorize_url, company_id=other.company_id)

    with pytest.raises(LinkRefused, match=company.company_id):
        await service.complete_link(wrong)
    row = store.get_connection(linked.id)
    assert row is not None and row.company_id == company.company_id
