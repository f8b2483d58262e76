"""The embedded stack's wiring: stack.json, encrypted demo connections, emulators and the bank."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import WorkflowEnvironment

from accounting import Bill, BillLine, BillPayment, BillPaymentLine
from activities.connections import Connectors
from activities.policy import load_directory
from connectors.bank import SandboxBankRail
from connectors.base import Payee, PaymentInstruction, RailKind
from connectors.registry import available_platforms
from runtime.secrets import SecretBox
from sandbox.stack import (
    SECRET_KEY_FILE,
    BankInfo,
    EmulatorInfo,
    Stack,
    StackInfo,
    StackOptions,
    TemporalInfo,
    dev_server_command,
    load_stack_info,
    ready_notes,
    ready_table,
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


# ---------------------------------------------------------------------------------------------
# The stage keeps its state: a restart, a second start, what it prints
# ---------------------------------------------------------------------------------------------


def _bill(vendor_id: str, account_id: str, number: str) -> Bill:
    today = datetime.now(UTC).date()
    return Bill(
        vendor_id=vendor_id,
        document_number=number,
        issue_date=today,
        due_date=today,
        currency="USD",
        lines=[BillLine(description="paper", amount=Decimal("120.00"), account_id=account_id)],
        total=Decimal("120.00"),
    )


async def _post_bill_and_payment(
    connectors: Connectors, store: Store, connection_id: str, number: str
) -> str:
    erp = await connectors.connector(connection_id)
    vendor = (await erp.find_vendors(name="Northwind Office Supply"))[0]
    account = next(a for a in await erp.list_accounts() if a.name == "Office Supplies")
    assert vendor.id is not None
    bill = await erp.create_bill(
        _bill(vendor.id, account.id, number), reference=number, idempotency_key=number
    )
    assert bill.id is not None
    row = store.get_connection(connection_id)
    assert row is not None
    await erp.create_bill_payment(
        BillPayment(
            vendor_id=vendor.id,
            payment_date=bill.issue_date,
            currency="USD",
            source_account_id=row.settings["bank_account_id"],
            total=bill.total,
            lines=[BillPaymentLine(bill_id=bill.id, amount=bill.total)],
        ),
        reference=f"{number}/pay",
        idempotency_key=f"{number}/pay",
    )
    return bill.id


async def test_a_restarted_stack_keeps_the_erps_and_the_banks_records(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> None:
    address = time_skipping_env.client.service_client.config.target_host
    options = StackOptions.on_free_ports(
        tmp_path, temporal_address=address, keep_emulator_state=True
    )
    bills: dict[str, str] = {}

    async with Stack(options) as stack:
        info = stack.info
        assert info is not None and stack.store is not None
        box = SecretBox((tmp_path / SECRET_KEY_FILE).read_text())
        connectors = Connectors(store_lookup(stack.store, box))
        try:
            for emulator in info.emulators:
                bills[emulator.connection_id] = await _post_bill_and_payment(
                    connectors, stack.store, emulator.connection_id, f"R-{emulator.platform[:3]}-1"
                )
        finally:
            await connectors.aclose()
        async with httpx.AsyncClient() as http:
            rail = SandboxBankRail(info.bank.url, info.bank.api_key, http)
            payment = await rail.initiate(
                PaymentInstruction(
                    rail=RailKind.ach,
                    amount=Decimal("120.00"),
                    currency="USD",
                    payee=Payee(
                        name="Northwind", account_number="987654321", routing_number="021000021"
                    ),
                    execution_date=datetime.now(UTC).date(),
                    reference="R-1",
                ),
                idempotency_key="restart-test/pay/1",
            )

    async with Stack(options) as stack:
        info = stack.info
        assert info is not None and stack.store is not None
        box = SecretBox((tmp_path / SECRET_KEY_FILE).read_text())
        connectors = Connectors(store_lookup(stack.store, box))
        try:
            for emulator in info.emulators:
                # The stored connection (its tokens kept) reads what was written before.
                erp = await connectors.connector(emulator.connection_id)
                kept = await erp.get_bill(bills[emulator.connection_id])
                assert kept.document_number == f"R-{emulator.platform[:3]}-1"
                assert kept.balance == Decimal("0"), emulator.platform
                assert len(await erp.list_bill_payments(bill_id=kept.id or "")) == 1
                # Ids are never handed out twice.
                again = await _post_bill_and_payment(
                    connectors, stack.store, emulator.connection_id, f"R-{emulator.platform[:3]}-2"
                )
                assert again != bills[emulator.connection_id], emulator.platform
        finally:
            await connectors.aclose()
        async with httpx.AsyncClient() as http:
            rail = SandboxBankRail(info.bank.url, info.bank.api_key, http)
            assert [p.id for p in await rail.list_payments()] == [payment.id]

        # What the stack writes into its data dir is its owner's only.
        assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
        for name in (
            "stack.json",
            "stack.lock",
            SECRET_KEY_FILE,
            "payload.keys",
            "inbox-session.key",
            "remit.db",
            "emulators/bank.state",
            *(f"emulators/{p}.state" for p in available_platforms()),
        ):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE((tmp_path / "emulators").stat().st_mode) == 0o700


def _up(data_dir: Path, temporal_address: str | None) -> subprocess.Popen[str]:
    remit = Path(sys.executable).with_name("remit")
    command = [str(remit), "up", "--data-dir", str(data_dir)]
    command += ["--api-port", "0", "--bank-port", "0", "--emulator-port", "0"]
    if temporal_address is None:  # the embedded dev server, on free ports
        command += ["--temporal-port", "0", "--ui-port", "0"]
    else:
        command += ["--temporal-address", temporal_address]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )


def _wait_for_stack_json(data_dir: Path, process: subprocess.Popen[str]) -> StackInfo:
    """The stack.json this process wrote (not one a killed stack left behind)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"remit up exited {process.returncode}: {process.stdout.read()}")  # type: ignore[union-attr]
        if stack_file(data_dir).exists():
            info = load_stack_info(data_dir)
            if info.pid == process.pid:
                return info
        time.sleep(0.1)
    raise AssertionError("remit up wrote no stack.json in 120 s")


@pytest.mark.timeout(300)
def test_a_second_remit_up_on_the_same_dir_is_refused_and_leaves_the_first_running(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment
) -> None:
    address = time_skipping_env.client.service_client.config.target_host
    first = _up(tmp_path, address)
    try:
        info = _wait_for_stack_json(tmp_path, first)
        before = stack_file(tmp_path).read_bytes()

        second = _up(tmp_path, address)
        output, _ = second.communicate(timeout=120)

        assert second.returncode != 0
        assert f"a stack is already running on {tmp_path} (pid {first.pid})" in " ".join(
            output.split()
        )
        assert stack_file(tmp_path).read_bytes() == before
        assert httpx.get(info.api_url + "/healthz").json() == {"status": "ok"}
    finally:
        first.send_signal(signal.SIGINT)
        printed, _ = first.communicate(timeout=120)
    assert first.returncode == 0, printed
    assert not stack_file(tmp_path).exists()
    # Quiet by default: no line per HTTP request, no library INFO chatter.
    assert "HTTP Request" not in printed and " INFO httpx " not in printed
    assert "remit.api.access" not in printed  # the GET /healthz above left no line
    assert "remit is up" in printed
    # What the stack itself prints (log lines come with a timestamp) fits 80 columns.
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in printed.splitlines()]
    shown = [line for line in plain if not line[:4].isdigit()]
    assert [line for line in shown if len(line) > 80] == [], printed


def _stack_info(data_dir: Path, *, demo_login: bool = False) -> StackInfo:
    return StackInfo(
        data_dir=str(data_dir),
        pid=4242,
        started_at=datetime.now(UTC),
        temporal=TemporalInfo(
            address="127.0.0.1:47233",
            namespace="default",
            task_queue="remit-bills",
            ui_url="http://127.0.0.1:48233",
        ),
        api_url="http://127.0.0.1:48000",
        database_url=f"sqlite:///{data_dir / 'remit.db'}",
        documents_dir=str(data_dir / "documents"),
        emulators=[
            EmulatorInfo(
                platform="xero",
                base_url="http://127.0.0.1:48302",
                company_id="6f0a8c1e-2b7d-4c55-9a1e-3d2f7b9c8e10",
                company_name="remit Demo Company (US)",
                connection_id="demo-xero",
                inspector_token="t",
            ),
            EmulatorInfo(
                platform="quickbooks",
                base_url="http://127.0.0.1:48301",
                company_id="9341452000000001",
                company_name="Remit Demo Company",
                connection_id="demo-quickbooks",
                inspector_token="t",
            ),
        ],
        bank=BankInfo(
            url="http://127.0.0.1:48300",
            api_key="k",
            inspector_token="t",
            webhook_url="http://127.0.0.1:48000/v1/rails/sandbox-bank/events",
        ),
        demo_login=demo_login,
    )


def test_the_ready_table_reads_at_80_columns_with_every_address_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    info = _stack_info(tmp_path / "stack-data")
    console = Console(width=80, record=True, color_system=None)

    console.print(ready_table(info))
    for line in ready_notes(info):
        console.print(line)
    text = console.export_text()

    assert max(len(line) for line in text.splitlines()) <= 80
    for address in (
        info.temporal.address,
        info.temporal.ui_url or "",
        info.api_url,
        info.api_url + "/inbox/login",
        info.bank.url,
        *(e.base_url for e in info.emulators),
        "6f0a8c1e-2b7d-4c55-9a1e-3d2f7b9c8e10",
        "stack-data/remit.db",
    ):
        assert any(address in line for line in text.splitlines()), address
    assert "--demo-login" in text


def test_the_ready_table_hides_a_database_password(tmp_path: Path) -> None:
    info = _stack_info(tmp_path).model_copy(
        update={"database_url": "postgresql+psycopg://remit:s3cret-pw@db.internal:5432/remit"}
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(ready_table(info))
    text = console.export_text()
    assert "s3cret-pw" not in text
    assert "db.internal:5432/remit" in text


@pytest.mark.parametrize("demo_login", [False, True])
async def test_demo_sign_in_links_only_with_demo_login_and_never_for_an_admin(
    tmp_path: Path, time_skipping_env: WorkflowEnvironment, demo_login: bool
) -> None:
    address = time_skipping_env.client.service_client.config.target_host
    options = StackOptions.on_free_ports(tmp_path, temporal_address=address, demo_login=demo_login)

    async with Stack(options) as stack:
        assert stack.info is not None and stack.info.demo_login is demo_login
        async with httpx.AsyncClient() as http:
            page = (await http.get(stack.info.api_url + "/inbox/login")).text

    links = re.findall(r'href="[^"]*/inbox/login/magic\?[^"]*"', page)
    if not demo_login:
        assert links == []
        return
    directory = load_directory()
    # Olivia operates (an admin, by group and by her demo admin key): she never gets one.
    assert len(links) == len(directory.users) - 1 > 0
    assert directory.users["olivia"].name not in page


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.mark.timeout(300)
def test_a_stack_killed_without_stopping_is_restarted_on_its_dir_without_its_dev_server(
    tmp_path: Path,
) -> None:
    killed = _up(tmp_path, None)
    orphan = 0
    try:
        before = _wait_for_stack_json(tmp_path, killed)
        orphan = int((tmp_path / "temporal.pid").read_text())
        killed.kill()  # SIGKILL: nothing of the stack runs its shutdown
        killed.communicate(timeout=60)
        # Its dev server survives it (its own session, so Ctrl-C reaches only the stack).
        assert _alive(orphan)

        again = _up(tmp_path, None)
        try:
            info = _wait_for_stack_json(tmp_path, again)
            assert not _alive(orphan)
            assert int((tmp_path / "temporal.pid").read_text()) != orphan
            assert httpx.get(info.api_url + "/healthz").json() == {"status": "ok"}
            # The emulators came back with their records: the same demo companies.
            assert [e.company_id for e in info.emulators] == [
                e.company_id for e in before.emulators
            ]
        finally:
            again.send_signal(signal.SIGINT)
            printed, _ = again.communicate(timeout=120)
        assert again.returncode == 0, printed
        assert not (tmp_path / "temporal.pid").exists()
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.communicate(timeout=60)
        if orphan and _alive(orphan):  # what the test started, if the stack did not stop it
            os.kill(orphan, signal.SIGKILL)
