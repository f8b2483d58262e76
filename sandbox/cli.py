"""The stage's commands on the `remit` CLI: `remit up`, `remit demo` and `remit connections`
(linking against the stack's emulators and store).

The product's CLI (starter.cli) names none of this: the `remit.cli` entry point group in
pyproject.toml registers it when the `remit` executable starts, and tests take `app` from here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from accounting import format_money
from accounting.formats import parse_document
from sandbox.cli_connections import connections_app
from starter.cli import app as product_app
from starter.cli.common import DEFAULT_DATA_DIR, DataDir, console, fail
from workflows.models import FINAL_STATUSES, BillState, LifecycleStatus

if TYPE_CHECKING:
    from sandbox.stack import StackInfo
    from starter.client import RemitClient


def register(app: typer.Typer) -> None:
    """Add the stage's commands to `app` (the `remit.cli` entry point); once per app."""
    if getattr(app, "_remit_stage", False):
        return
    app.command()(up)
    app.command()(demo)
    app.add_typer(connections_app, name="connections")
    app._remit_stage = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# remit up
# ---------------------------------------------------------------------------------------------


def _print_endpoints(info: StackInfo) -> None:
    from sandbox.stack import ready_notes, ready_table  # the stage, loaded only by `remit up`

    console.print(ready_table(info))
    for line in ready_notes(info):
        console.print(line, highlight=False, markup=False)


def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    api_port: Annotated[int, typer.Option(help="remit API port (0: any free).")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal gRPC port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal UI port.")] = 8233,
    bank_port: Annotated[int, typer.Option(help="Sandbox bank port.")] = 8300,
    emulator_port: Annotated[
        int, typer.Option(help="First ERP emulator port; the others follow it.")
    ] = 8301,
    temporal_address: Annotated[
        str | None,
        typer.Option(
            envvar=["REMIT_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"],
            help="Use this Temporal instead of starting the dev server.",
        ),
    ] = None,
    demo_login: Annotated[
        bool,
        typer.Option(
            "--demo-login",
            help="List one-time sign-in links for the demo's approvers on the inbox's sign-in "
            "page (never for admins). Anyone who can open that page signs in as them.",
        ),
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            help="Log level of the libraries (WARNING: no line per HTTP request); remit's own "
            "loggers say INFO unless this is ERROR or above."
        ),
    ] = "WARNING",
) -> None:
    """Run the whole product on this machine until Ctrl-C."""
    from sandbox.stack import (  # the stage, loaded only by `remit up`
        StackOptions,
        configure_logging,
        serve,
    )

    try:
        configure_logging(log_level)
    except ValueError as exc:
        raise fail(str(exc), 2) from None

    options = StackOptions(
        data_dir=data_dir,
        api_port=api_port,
        temporal_port=temporal_port,
        temporal_ui_port=ui_port,
        bank_port=bank_port,
        first_emulator_port=emulator_port,
        temporal_address=temporal_address,
        demo_login=demo_login,
    )
    try:
        asyncio.run(serve(options, on_ready=_print_endpoints))
    except (OSError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    console.print("remit stopped.")


# ---------------------------------------------------------------------------------------------
# remit demo
# ---------------------------------------------------------------------------------------------


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "starter" / "examples"
EXAMPLE_FILES = ("bill.json", "invoice-ubl.xml")
# Vendors every emulator's demo company has, each with the account its bills are coded to.
DEMO_VENDORS = (
    ("Northwind Office Supply", "Office Supplies"),
    ("Globex Software", "Software Subscriptions"),
    ("Initech Consulting", "Professional Fees"),
)
# Across the default policy's tiers: under 500 auto-approves, up to 10,000 needs one approver,
# above that an approver and a controller.
DEMO_AMOUNTS = (
    Decimal("240.00"),
    Decimal("3150.00"),
    Decimal("18400.00"),
    Decimal("96.50"),
    Decimal("7425.00"),
    Decimal("12500.00"),
    Decimal("415.20"),
)


def demo_documents(count: int, *, today: date, tag: str) -> list[tuple[str, bytes]]:
    """`count` documents: the two shipped examples first, then varied remit JSON bills."""
    documents = [(name, (EXAMPLES_DIR / name).read_bytes()) for name in EXAMPLE_FILES][:count]
    template = json.loads((EXAMPLES_DIR / "bill.json").read_text())
    for index in range(len(documents), count):
        vendor, account = DEMO_VENDORS[index % len(DEMO_VENDORS)]
        amount = DEMO_AMOUNTS[index % len(DEMO_AMOUNTS)]
        half = (amount / 2).quantize(Decimal("0.01"))
        lines = [(f"{account}, part 1", half), (f"{account}, part 2", amount - half)]
        document = {
            **template,
            "document_number": f"DEMO-{tag}-{index:03d}",
            "issue_date": today.isoformat(),
            "due_date": date.fromordinal(today.toordinal() + 30).isoformat(),
            "vendor": {"name": vendor},
            "memo": f"remit demo bill {index}",
            # Amounts as strings, as the format allows: exact, never through float.
            "line_items": [
                {
                    "description": text,
                    "quantity": "1",
                    "unit_amount": str(value),
                    "total_amount": str(value),
                    "account": account,
                }
                for text, value in lines
            ],
            "tax_amount": "0.00",
            "total_amount": str(amount),
        }
        documents.append((f"demo-{index:03d}.json", json.dumps(document, indent=2).encode()))
    return documents


async def _approve_as_needed(remit: RemitClient, workflow_id: str, state: BillState) -> None:
    """Approve as the first pending approver who has not decided on this bill yet."""
    from temporalio.client import WorkflowUpdateFailedError

    decided = {d.actor for d in state.decisions}
    for approver in state.pending_approvers:
        if approver in decided or approver == state.submitted_by:
            continue
        try:
            await remit.decide(workflow_id, actor=approver, approve=True, comment="demo")
        except WorkflowUpdateFailedError:
            continue  # the validator said no (e.g. the level moved on); next round sees why
        return


async def run_demo(data_dir: Path, count: int, timeout: float, out: Console) -> bool:
    """The demo: a private stack, `count` bills through it, a summary. True if all finished."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from temporalio.service import RPCError

    # The demo runs a stack of its own in this process: the only bills path that talks to
    # Temporal directly, so the rest of the CLI loads none of this.
    from sandbox.stack import Stack, StackOptions
    from store import DocumentStore

    out.print("starting a private remit stack (Temporal dev server, emulators, bank)...")
    async with Stack(StackOptions.on_free_ports(data_dir)) as stack:
        assert stack.info is not None and stack.remit is not None
        info, remit = stack.info, stack.remit
        if info.temporal.ui_url:
            out.print(f"Temporal UI: {info.temporal.ui_url}", highlight=False)
        today = datetime.now(UTC).date()
        documents = DocumentStore(Path(info.documents_dir))
        submitted: list[tuple[str, str]] = []
        tag = datetime.now(UTC).strftime("%H%M%S")
        for index, (name, content) in enumerate(demo_documents(count, today=today, tag=tag)):
            captured = parse_document(content, file_name=name)
            documents.put(content, media_type=captured.source.media_type, file_name=name)
            # The examples go to the first platform; the rest spread over every platform.
            emulator = info.emulators[0 if index < 2 else (index - 1) % len(info.emulators)]
            result = await remit.submit_bill(
                captured.draft,
                connection_id=emulator.connection_id,
                platform=emulator.platform,
                submitted_by="sam",
                pay_on=today,
            )
            submitted.append((result.workflow_id, emulator.platform))
        finished: dict[str, BillState] = {}
        latest: dict[str, BillState] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=out
        ) as progress:
            task = progress.add_task("bills", total=len(submitted))
            while len(finished) < len(submitted) and loop.time() < deadline:
                for workflow_id, _ in submitted:
                    if workflow_id in finished:
                        continue
                    try:
                        state = await remit.state(workflow_id)
                    except RPCError:
                        continue
                    latest[workflow_id] = state
                    if state.status in FINAL_STATUSES:
                        finished[workflow_id] = state
                        progress.advance(task)
                    elif state.status == LifecycleStatus.awaiting_approval:
                        await _approve_as_needed(remit, workflow_id, state)
                counts: dict[str, int] = {}
                for state in latest.values():
                    counts[state.status.value] = counts.get(state.status.value, 0) + 1
                progress.update(
                    task, description=", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                )
                await asyncio.sleep(0.5)
        table = Table(title="demo bills", title_justify="left")
        for column in (
            "platform",
            "vendor",
            "amount",
            "status",
            "ERP bill",
            "ERP payment",
            "bank payment",
        ):
            table.add_column(column)
        for workflow_id, platform_name in submitted:
            last = latest.get(workflow_id)
            if last is None:
                table.add_row(platform_name, "?", "?", "unknown", "", "", "")
                continue
            table.add_row(
                platform_name,
                last.vendor_name,
                format_money(last.total, last.currency),
                last.status.value,
                last.erp_bill_id or "",
                last.erp_payment_id or "",
                last.payment.rail_payment_id or "",
            )
        out.print(table)
        if len(finished) < len(submitted):
            out.print(f"[yellow]{len(submitted) - len(finished)} bills still running[/yellow]")
        return len(finished) == len(submitted)


def demo(
    bill_count: Annotated[int, typer.Option("--bills", min=1, help="How many bills.")] = 8,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the demo's stack here (default: a temp dir).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = 300,
) -> None:
    """Start a private stack, run N varied bills through it to the end, and summarize them."""
    logging.basicConfig(level=logging.WARNING)
    if data_dir is None:
        with tempfile.TemporaryDirectory(prefix="remit-demo-") as tmp:
            ok = asyncio.run(run_demo(Path(tmp), bill_count, timeout, console))
    else:
        ok = asyncio.run(run_demo(data_dir, bill_count, timeout, console))
    if not ok:
        raise typer.Exit(1)


register(product_app)
app = product_app
"""The whole `remit` command, stage included (what the executable runs)."""
