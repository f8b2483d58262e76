"""`remit bills` against a remit API served over real HTTP: URL and key from the environment, a
profile or stack.json; ids a person can read and shorten; money printed one way."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from sandbox.cli import app  # the whole command, the stage's included
from tests.starter.api_harness import (
    ApiHarness,
    fresh_time_skipping_env,
    running_api,
    sample_bill,
)
from workflows.models import LifecycleStatus as S

runner = CliRunner()
REMIT = Path(sys.executable).with_name("remit")


@dataclass
class Live:
    """The API served on a loopback port, and a CLI pointed at it."""

    api: ApiHarness
    url: str
    tmp: Path

    def env(self, user: str = "sam", **extra: str) -> dict[str, str]:
        return {
            "REMIT_API_URL": self.url,
            "REMIT_API_KEY": self.api.tokens[user],
            "XDG_CONFIG_HOME": str(self.tmp / "config"),
            "REMIT_PROFILE": "",
            "COLUMNS": "80",
            **extra,
        }

    async def cli(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        # The CLI is synchronous; the server answers on this loop meanwhile.
        given = dict(env or self.env())
        return await asyncio.to_thread(
            lambda: runner.invoke(app, list(args), env=given, catch_exceptions=False)
        )

    async def until(
        self, bill_id: str, check: Any, within: float = 60.0, user: str = "olivia"
    ) -> dict[str, Any]:
        """Poll the bill (bounded, gently: the API limits requests per key) until `check`."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            body = await self.api.bill(bill_id, user=user)
            if check(body["state"]):
                return body
            state = body["state"]
            assert asyncio.get_running_loop().time() < deadline, (
                state["status"],
                state.get("waiting_for"),
                state.get("last_error"),
                state.get("payee"),
            )
            await asyncio.sleep(0.25)

    async def stored(self, ids: list[str], within: float = 30.0) -> None:
        """Until the store lists these bills (what `bills list` reads), bounded."""
        deadline = asyncio.get_running_loop().time() + within
        while not set(ids) <= {bill["id"] for bill in await self.api.listed()}:
            assert asyncio.get_running_loop().time() < deadline, f"{ids} never listed"
            await asyncio.sleep(0.05)

    def write_bill(self, number: str, amount: str = "1234.50") -> Path:
        path = self.tmp / f"{re.sub(r'[^A-Za-z0-9-]', '_', number)}.json"
        path.write_text(json.dumps(sample_bill(number, amount)))
        return path


@asynccontextmanager
async def serving(asgi: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + 15
        while not server.started:  # uvicorn offers no event for it; bounded
            assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    async with fresh_time_skipping_env() as env, running_api(env, tmp_path) as api:
        async with serving(api.http._transport.app) as url:  # type: ignore[attr-defined]
            yield Live(api=api, url=url, tmp=tmp_path)


def _config(tmp: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp / "config" / "remit" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def _submitted_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    found = re.search(r"submitted: (\S+)", result.stdout)
    assert found, result.stdout
    return found.group(1)


# ---------------------------------------------------------------------------------------------
# through the API: environment, profiles, stack.json
# ---------------------------------------------------------------------------------------------


async def test_bills_go_through_the_api_named_by_the_environment(live: Live) -> None:
    bill = live.write_bill("INV 2026/0042")

    submitted = await live.cli("bills", "submit", str(bill))
    again = await live.cli("bills", "submit", str(bill))

    bill_id = _submitted_id(submitted)
    connection = live.api.h.connection.id
    # The document number, made safe for URLs and shells, and a hash of the key.
    assert re.fullmatch(rf"bill/{connection}/INV-2026-0042-[0-9a-f]{{8}}", bill_id), bill_id
    assert again.exit_code == 0 and f"already submitted: {bill_id}" in again.stdout
    state = (await live.api.until(bill_id, lambda s: s["status"] == S.awaiting_approval))["state"]
    assert state["submitted_by"] == "sam"  # the key's user: the API decided who acts
    shown = await live.cli("bills", "show", bill_id)
    assert shown.exit_code == 0, shown.output
    assert "USD 1,234.50" in shown.stdout and "awaiting_approval" in shown.stdout
    assert "audit trail" in shown.stdout and "INV_2026_0042.json" in shown.stdout


async def test_a_profile_of_the_config_file_chooses_the_api_and_key(live: Live) -> None:
    bill_id = _submitted_id(await live.cli("bills", "submit", str(live.write_bill("INV-PROF-1"))))
    await live.api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)
    _config(
        live.tmp,
        f'[default]\napi_url = "http://127.0.0.1:9"\napi_key = "rk_nowhere"\n\n'
        f'[alice]\napi_url = "{live.url}"\napi_key = "{live.api.tokens["alice"]}"\n',
    )
    no_environment = {**live.env(), "REMIT_API_URL": None, "REMIT_API_KEY": None}

    approved = await live.cli("--profile", "alice", "bills", "approve", bill_id, env=no_environment)
    by_env = await live.cli(
        "bills", "show", bill_id, "--json", env={**no_environment, "REMIT_PROFILE": "alice"}
    )
    default = await live.cli("bills", "list", env=no_environment)
    unknown = await live.cli("--profile", "bob", "bills", "list", env=no_environment)

    assert approved.exit_code == 0, approved.output
    assert "approved by alice at level 1" in approved.stdout
    assert by_env.exit_code == 0, by_env.output
    trail = json.loads(by_env.stdout)["audit"]
    assert any(e["actor"] == "alice" and e["kind"] == "decision" for e in trail), trail
    # [default] names an API that is not there: the CLI says which one it could not reach.
    assert default.exit_code == 1 and "http://127.0.0.1:9" in default.output
    assert unknown.exit_code == 1 and "no profile 'bob'" in unknown.output
    assert "default, alice" in unknown.output


async def test_a_config_file_others_can_read_is_refused(live: Live) -> None:
    path = _config(live.tmp, f'[default]\napi_url = "{live.url}"\napi_key = "rk_x"\n', 0o644)

    result = await live.cli("bills", "list", env={**live.env(), "REMIT_API_URL": None})

    assert result.exit_code == 1
    assert "readable by others" in result.output and f"chmod 600 {path}" in result.output


async def test_without_environment_or_config_the_stack_json_gives_the_api_and_demo_keys(
    live: Live,
) -> None:
    data_dir = live.tmp / "stack-data"
    data_dir.mkdir()
    (data_dir / "stack.json").write_text(
        json.dumps(
            {
                "api_url": live.url,
                "api_keys": [
                    {"user_id": user, "token": token} for user, token in live.api.tokens.items()
                ],
            }
        )
    )
    bare = {"XDG_CONFIG_HOME": str(live.tmp / "none"), "REMIT_API_URL": None, "COLUMNS": "80"}
    bill = str(live.write_bill("INV-STACK-1"))

    bill_id = _submitted_id(
        await live.cli("bills", "submit", bill, "--data-dir", str(data_dir), env=bare)
    )
    await live.api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)
    unnamed = await live.cli("bills", "approve", bill_id, "--data-dir", str(data_dir), env=bare)
    as_bob = await live.cli(
        "bills", "approve", bill_id, "--as", "bob", "--data-dir", str(data_dir), env=bare
    )

    assert unnamed.exit_code == 2 and "--as" in unnamed.output
    assert as_bob.exit_code == 0, as_bob.output
    assert "approved by bob" in as_bob.stdout


# ---------------------------------------------------------------------------------------------
# ids: full ones listed whole at 80 columns, short ones accepted everywhere
# ---------------------------------------------------------------------------------------------


async def test_list_prints_every_full_id_whole_at_80_columns(live: Live) -> None:
    ids = [
        _submitted_id(await live.cli("bills", "submit", str(live.write_bill(number, amount))))
        for number, amount in (("INV-LONG-NUMBER-0000000001", "98765.40"), ("INV-2", "5.00"))
    ]
    await live.stored(ids)

    listed = await live.cli("bills", "list")

    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listed.stdout
    for bill_id in ids:
        assert any(bill_id in line for line in lines), (bill_id, listed.stdout)
    assert "…" not in listed.stdout
    assert "USD 98,765.40" in listed.stdout and "USD 5.00" in listed.stdout


async def test_every_command_takes_a_short_id_and_says_when_it_is_ambiguous_or_unknown(
    live: Live,
) -> None:
    first = _submitted_id(
        await live.cli("bills", "submit", str(live.write_bill("INV-77", "770.00")))
    )
    second = _submitted_id(
        await live.cli("bills", "submit", str(live.write_bill("INV-777", "777.00")))
    )
    for bill_id in (first, second):
        await live.api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)
    last_part = first.rsplit("/", 1)[1]
    digest = first.rsplit("-", 1)[1]

    by_part = await live.cli("bills", "show", last_part, "--json")
    by_hash = await live.cli("bills", "approve", digest, env=live.env("alice"))
    ambiguous = await live.cli("bills", "show", "INV-77")
    unknown = await live.cli("bills", "cancel", "INV-404", env=live.env("olivia"))
    by_prefix = await live.cli(
        "bills", "reject", "INV-777", "--reason", "not ours", env=live.env("bob")
    )

    assert by_part.exit_code == 0, by_part.output
    assert json.loads(by_part.stdout)["id"] == first
    assert by_hash.exit_code == 0 and "approved by alice" in by_hash.stdout, by_hash.output
    assert ambiguous.exit_code == 1
    assert "names 2 bills" in ambiguous.output
    assert first in ambiguous.output and second in ambiguous.output
    assert unknown.exit_code == 1 and "no bill 'INV-404'" in unknown.output
    assert by_prefix.exit_code == 0 and "rejected by bob" in by_prefix.stdout, by_prefix.output


async def test_pay_prints_money_the_one_way(live: Live) -> None:
    bill = live.write_bill("INV-PAY-1", "240.00")  # under the auto-approval limit
    bill_id = _submitted_id(await live.cli("bills", "submit", str(bill), "--pay-amount", "100"))
    await live.api.until(bill_id, lambda s: s["status"] == S.partially_paid, within=60)

    paid = await live.cli("bills", "pay", bill_id.rsplit("/", 1)[1], env=live.env("paula"))
    too_much = await live.cli("bills", "submit", str(bill), "--pay-amount", "1000")

    assert paid.exit_code == 0, paid.output
    assert f"{bill_id}: USD 140.00 to pay" in paid.stdout
    assert too_much.exit_code == 2
    assert "USD 1,000.00 is more than the bill's total USD 240.00" in too_much.output


# ---------------------------------------------------------------------------------------------
# the CLI never dies natively
# ---------------------------------------------------------------------------------------------


async def test_the_cli_as_a_process_under_load_exits_0_every_time(live: Live) -> None:
    """30 `remit bills submit --json` processes, 10 at a time, while the API serves them: each
    exits 0 with its JSON (once one aborted, -6, with Temporal's runtime alive at exit)."""
    files = [live.write_bill(f"INV-LOAD-{n:02d}", "42.00") for n in range(30)]
    environment = {**os.environ, **live.env()}
    gate = asyncio.Semaphore(10)

    async def run(path: Path) -> tuple[int, bytes, bytes]:
        async with gate:
            process = await asyncio.create_subprocess_exec(
                str(REMIT),
                "bills",
                "submit",
                str(path),
                "--json",
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            assert process.returncode is not None
            return process.returncode, out, err

    results = await asyncio.gather(*(run(path) for path in files))

    assert [code for code, _, _ in results] == [0] * 30, [
        (code, err.decode()[-500:]) for code, _, err in results if code != 0
    ]
    ids = {json.loads(out)["workflow_id"] for _, out, _ in results}
    assert len(ids) == 30


def test_a_bills_command_leaves_no_native_thread_behind(tmp_path: Path) -> None:
    """What aborted at exit was native: the CLI's bills commands start no Temporal runtime
    (its threads outlive Python's finalization) and load nothing of the stage."""
    code = (
        "import os, sys\n"
        "from starter.cli import app\n"
        "try:\n"
        "    app(['bills', 'list', '--data-dir', sys.argv[1]], standalone_mode=False)\n"
        "except BaseException:\n"
        "    pass\n"
        "print(len(os.listdir('/proc/self/task')))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sandbox'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "REMIT_API_URL": "http://127.0.0.1:9", "REMIT_API_KEY": "rk_x"},
    )
    threads, stage = done.stdout.split("\n")[:2]
    assert threads == "1", done.stdout
    assert stage == "[]"


async def test_a_payee_change_is_named_by_the_bill_held_on_it(live: Live) -> None:
    changed = sample_bill("INV-NEW-BANK", "300.00")
    changed["vendor"]["bank_account"] = "021000021/000999999999"  # not the verified account
    path = live.tmp / "INV-NEW-BANK.json"
    path.write_text(json.dumps(changed))
    bill_id = _submitted_id(await live.cli("bills", "submit", str(path)))
    held = await live.until(bill_id, lambda s: bool((s.get("payee") or {}).get("change_id")))
    change_id = held["state"]["payee"]["change_id"]

    # Its document number is enough: the bill, then the change it waits on.
    verified = await live.cli(
        "payees",
        "verify",
        "INV-NEW-BANK",
        "--method",
        "call-back",
        "--json",
        env=live.env("olivia"),
    )
    not_held = await live.cli(
        "payees",
        "approve",
        _submitted_id(
            await live.cli("bills", "submit", str(live.write_bill("INV-PAYEE-OK", "80.00")))
        ),
        env=live.env("carol"),
    )

    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["id"] == change_id
    assert json.loads(verified.stdout)["status"] == "verified"
    assert not_held.exit_code == 1 and "held on no payee change" in not_held.output


async def test_connections_are_listed_and_checked_through_the_api(live: Live) -> None:
    connection = live.api.h.connection.id

    listed = await live.cli("connections", "list", "--json", env=live.env("olivia"))
    one = await live.cli("connections", "health", connection, env=live.env("olivia"))
    probe = await live.cli("connections", "health", "--probe", env=live.env("olivia"))
    not_admin = await live.cli("connections", "list", env=live.env("sam"))

    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["id"] == connection and row["status"] == "active" and "healthy" in row
    assert one.exit_code == 0 and connection in one.stdout, one.output
    assert probe.exit_code == 2 and "the stack only" in probe.output
    assert not_admin.exit_code == 1 and "admin" in not_admin.output


@pytest.mark.parametrize("with_runtime", [True, False])
def test_the_executable_keeps_exit_codes_and_output_when_it_skips_finalization(
    tmp_path: Path, with_runtime: bool
) -> None:
    """After a command that started Temporal's runtime, `remit` ends without finalizing (where
    the runtime's threads can abort it): its output and exit code are still what they were."""
    code = (
        "import sys\n"
        "import temporalio.runtime\n"
        f"if {with_runtime}: temporalio.runtime.Runtime.default()\n"
        "from starter.cli import main, temporal_runtime_started\n"
        f"assert temporal_runtime_started() is {with_runtime}\n"
        "sys.argv = ['remit', *sys.argv[1:]]\n"
        "main()\n"
    )
    environment = {
        **os.environ,
        "REMIT_API_URL": "http://127.0.0.1:9",
        "REMIT_API_KEY": "rk_x",
        "XDG_CONFIG_HOME": str(tmp_path),
    }

    key = subprocess.run(
        [sys.executable, "-c", code, "secret-key"], capture_output=True, text=True, env=environment
    )
    refused = subprocess.run(
        [sys.executable, "-c", code, "bills", "list"],
        capture_output=True,
        text=True,
        env=environment,
    )

    assert key.returncode == 0, key.stderr
    assert len(key.stdout.strip()) == 44  # a Fernet key, printed whole before the exit
    assert refused.returncode == 1
    assert "cannot reach the API at http://127.0.0.1:9" in refused.stderr
