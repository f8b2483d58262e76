"""`remit runs`: payment runs through the API: start one, see its proposal, release or steer it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from starter.cli.common import (
    DEFAULT_DATA_DIR,
    AsJson,
    DataDir,
    api,
    call,
    console,
    money,
    print_json,
    print_rows,
    resolve_bill,
)

runs_app = typer.Typer(
    help="Payment runs: a proposal of due bills per vendor, released by a payer.",
    no_args_is_help=True,
)
Person = Annotated[str, typer.Option("--as", help="Who acts (a user of the directory).")]


def _show(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(run)
        return
    state = run["state"]
    console.print(
        f"{run['id']}: {state['status']}"
        + (f" · waiting for {state['waiting_for']}" if state.get("waiting_for") else ""),
        highlight=False,
    )
    # An amount is never split over two lines.
    table = Table(
        "vendor",
        "payee",
        "bill",
        "due",
        Column("discount", no_wrap=True),
        Column("to pay", no_wrap=True),
        "left out",
    )
    for group in state["groups"]:
        for bill in group["bills"]:
            cash = money(bill["amount_due"], group["currency"])
            table.add_row(
                group["vendor_name"],
                group.get("payee_masked") or "",
                bill["document_number"],
                str(bill.get("due_date") or ""),
                money(bill["discount"], group["currency"]) if Decimal(bill["discount"]) else "",
                cash,
                bill.get("excluded") or "",
            )
    console.print(table)
    for line in state["log"]:
        console.print(f"  {line}", highlight=False)


@runs_app.command("start")
def start(
    connection: Annotated[str, typer.Argument(help="The connection whose bills to pay.")],
    horizon_days: Annotated[int, typer.Option(help="Take bills due within this many days.")] = 7,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
) -> None:
    """Start a payment run now (the policy's schedule starts them on its calendar)."""
    body = {"connection_id": connection, "horizon_days": horizon_days}
    with api(data_dir, user) as client:
        accepted = call(client, "POST", "/v1/payment-runs", json=body)
    console.print(f"started: {accepted['id']}", highlight=False)


@runs_app.command("list")
def list_runs(
    connection: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """Payment runs, newest first."""
    params = {"connection": connection} if connection else {}
    with api(data_dir, user) as client:
        runs = call(client, "GET", "/v1/payment-runs", params=params)["data"]
    if as_json:
        print_json(runs)
        return
    print_rows(
        ("run", "date", "status", "totals"),
        [
            (
                run["id"],
                run["run_date"],
                run["status"],
                ", ".join(money(a, c) for c, a in run["totals"].items()),
            )
            for run in runs
        ],
    )


RunRef = Annotated[
    str,
    typer.Argument(
        help="The run's id (payment-run/<connection>/<date>), or a connection: its run of today "
        "(UTC, as `runs start` dates it)."
    ),
]


def run_id_of(ref: str) -> str:
    """A run's id: `ref` itself, or the id of today's run of the connection `ref` names."""
    if "/" in ref:
        return ref
    return f"payment-run/{ref}/{datetime.now(UTC).date().isoformat()}"


@runs_app.command("show")
def show(
    run_id: RunRef,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """A run's proposal: each vendor's bills, discounts, what is left out and why."""
    with api(data_dir, user) as client:
        _show(call(client, "GET", f"/v1/payment-runs/{run_id_of(run_id)}"), as_json)


def _steer(run_id: str, action: str, body: dict[str, Any], data_dir: Path, user: str) -> Any:
    with api(data_dir, user) as client:
        if "bill_id" in body:
            body = {**body, "bill_id": resolve_bill(client, body["bill_id"])}
        return call(client, "POST", f"/v1/payment-runs/{run_id_of(run_id)}/{action}", json=body)


@runs_app.command("release")
def release(
    run_id: RunRef, user: Person, data_dir: DataDir = DEFAULT_DATA_DIR, as_json: AsJson = False
) -> None:
    """Release the run: a payer who submitted none of its bills."""
    _show(_steer(run_id, "release", {}, data_dir, user), as_json)


@runs_app.command("pause")
def pause(
    run_id: RunRef,
    user: Person,
    reason: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Pause a proposed run (nothing can release it until it is resumed)."""
    _show(_steer(run_id, "pause", {"reason": reason}, data_dir, user), as_json)


@runs_app.command("resume")
def resume(
    run_id: RunRef, user: Person, data_dir: DataDir = DEFAULT_DATA_DIR, as_json: AsJson = False
) -> None:
    """Resume a paused run."""
    _show(_steer(run_id, "resume", {}, data_dir, user), as_json)


@runs_app.command("pull")
def pull(
    run_id: RunRef,
    bill: Annotated[str, typer.Option(help="The bill: its id or a short one.")],
    user: Person,
    reason: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Take a bill out of the run; it waits for the next one."""
    _show(_steer(run_id, "pull", {"bill_id": bill, "reason": reason}, data_dir, user), as_json)
