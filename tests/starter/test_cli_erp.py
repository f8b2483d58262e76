"""`remit erp` and `remit connections show` against the read API served over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sandbox.cli import app  # the whole command, the stage's included
from tests.starter.test_api_erp import (
    CONNECTION,
    SYNCED,
    Books,
    books,
    database_url,
    mirror,
    own_temporal,
    postgres_admin_url,
)
from tests.starter.test_cli_api import serving

__all__ = [
    "books",
    "database_url",
    "own_temporal",
    "postgres_admin_url",
]  # fixtures shared with the API tests

runner = CliRunner()


@dataclass
class Cli:
    url: str
    books: Books
    tmp: Path

    async def run(self, *args: str, who: str = "reader") -> Result:
        env = {
            "REMIT_API_URL": self.url,
            "REMIT_API_KEY": self.books.tokens[who],
            "XDG_CONFIG_HOME": str(self.tmp / "config"),
            "REMIT_PROFILE": "",
            "COLUMNS": "120",
        }
        # The CLI is synchronous; the server answers on this loop meanwhile.
        return await asyncio.to_thread(
            lambda: runner.invoke(app, list(args), env=env, catch_exceptions=False)
        )


@pytest.fixture
async def cli(books: Books, tmp_path: Path) -> AsyncIterator[Cli]:
    async with serving(books.http._transport.app) as url:  # type: ignore[attr-defined]
        yield Cli(url=url, books=books, tmp=tmp_path)


async def test_vendors_one_page_or_all_of_them(cli: Cli) -> None:
    one = await cli.run("erp", "vendors", CONNECTION, "--limit", "3")
    assert one.exit_code == 0, one.output
    assert [v for v in ("V01", "V02", "V03", "V04") if v in one.output] == ["V01", "V02", "V03"]
    assert "--cursor" in one.output and "last synced 2026-12-02 09:30" in one.output
    every = await cli.run("erp", "vendors", CONNECTION, "--limit", "3", "--all")
    assert every.exit_code == 0, every.output
    assert all(f"V{n:02d}" in every.output for n in range(1, 8))
    assert "--cursor" not in every.output


async def test_open_bills_as_json_keep_money_exact(cli: Cli) -> None:
    result = await cli.run("erp", "bills", CONNECTION, "--status", "open", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    totals = {item["id"]: item["data"]["total"] for item in page["data"]}
    assert totals == {"B1": "1250.50", "B4": "99.99"}
    table = await cli.run("erp", "bills", CONNECTION, "--status", "open")
    assert "USD 1,250.50" in table.output and "INV-1" in table.output


async def test_a_filter_the_kind_does_not_take_fails_with_the_apis_words(cli: Cli) -> None:
    result = await cli.run("erp", "vendors", CONNECTION, "--vendor-id", "V01")
    assert result.exit_code == 1
    assert "vendor_id" in result.output and "updated_since" in result.output


async def test_one_bill_with_its_payments(cli: Cli) -> None:
    result = await cli.run("erp", "get", CONNECTION, "bills", "B2")
    assert result.exit_code == 0, result.output
    bill = json.loads(result.output)
    assert [p["id"] for p in bill["payments"]] == ["P1"]


async def test_connections_show_lists_mirror_counts_and_sync_runs(cli: Cli) -> None:
    runs = mirror.MirrorStore(cli.books.store)
    runs.start_run(
        run_id="run-show",
        connection_id=CONNECTION,
        mode="full",
        trigger="connect",
        workflow_id=f"sync/{CONNECTION}",
        started_at=SYNCED,
    )
    runs.finish_run(
        "run-show",
        status="succeeded",
        objects_changed=16,
        counts={"vendors": 7, "accounts": 4, "bills": 5},
        errors=[],
        finished_at=SYNCED,
    )
    result = await cli.run("connections", "show", CONNECTION, who="admin")
    assert result.exit_code == 0, result.output
    out = result.output
    assert CONNECTION in out and "run-show" in out and "succeeded" in out
    assert "full/connect" in out and "vendors 7" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.strip()[:2] == "│ "}
    assert "7" in lines.get("vendors", "") and "4" in lines.get("bills", "")
    runs_only = await cli.run("erp", "runs", CONNECTION, "--json")
    assert json.loads(runs_only.output)["data"][0]["id"] == "run-show"


async def test_erp_sync_starts_a_job(cli: Cli) -> None:
    result = await cli.run("erp", "sync", CONNECTION, "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["connection_id"] == CONNECTION and job["links"]["self"].endswith(job["id"])
    await cli.books.temporal.get_workflow_handle(job["id"]).terminate("test over")


async def test_erp_create_vendor_refuses_a_name_the_books_have_and_starts_a_job(
    cli: Cli,
) -> None:
    taken = await cli.run("erp", "create-vendor", CONNECTION, "VENDOR 1")
    assert taken.exit_code == 1 and "V01" in taken.output, taken.output
    result = await cli.run(
        "erp", "create-vendor", CONNECTION, "Acme Paper Co", "--tax-id", "12-9999999", "--json"
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["operation"] == "create_vendor" and job["status"] == "running"
    await cli.books.temporal.get_workflow_handle(job["id"]).terminate("test over")


async def test_erp_create_account_refuses_a_number_the_chart_has_and_starts_a_job(
    cli: Cli,
) -> None:
    taken = await cli.run("erp", "create-account", CONNECTION, "Postage", "--number", "6100")
    assert taken.exit_code == 1 and "A6100" in taken.output, taken.output
    not_remits = await cli.run("erp", "create-account", CONNECTION, "Vault", "--type", "bank")
    assert not_remits.exit_code == 1 and "bank" in not_remits.output, not_remits.output
    result = await cli.run(
        "erp", "create-account", CONNECTION, "Postage", "--number", "6300", "--json"
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["operation"] == "create_account" and job["status"] == "running"
    await cli.books.temporal.get_workflow_handle(job["id"]).terminate("test over")


async def test_bills_submit_an_erp_bill_by_its_id(cli: Cli) -> None:
    result = await cli.run(
        "bills", "submit", "--erp-bill", "B1", "--connection", CONNECTION, "--json"
    )
    assert result.exit_code == 0, result.output
    accepted = json.loads(result.output)
    assert accepted["created"] is True and "INV-1" in accepted["id"]
    await cli.books.temporal.get_workflow_handle(accepted["id"]).terminate("test over")
    both = await cli.run("bills", "submit", "x.json", "--erp-bill", "B1")
    assert both.exit_code == 2 and "one of them" in both.output
