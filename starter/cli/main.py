"""The `remit` command: run the embedded stack, submit and steer bills, and run a demo."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from accounting import format_money
from accounting.formats import CaptureError, parse_document
from starter.cli import common
from starter.cli.common import (
    DEFAULT_DATA_DIR,
    ApiTarget,
    AsJson,
    DataDir,
    api_target,
    bill_path,
    call,
    client_for,
    configured_target,
    console,
    error_message,
    errors,
    fail,
    money,
    print_json,
    print_rows,
    resolve_bill,
    send,
)
from starter.cli.connections import connections_app
from starter.cli.keys import keys_app
from starter.cli.payees import credits_app, payees_app
from starter.cli.runs import runs_app
from starter.cli.serve import api_command, migrate_command, new_secrets_command, worker_command
from starter.cli.webhooks import webhooks_app
from workflows.models import FINAL_STATUSES, BillState, LifecycleStatus, PayeeView

if TYPE_CHECKING:
    from sandbox.stack import StackInfo
    from starter.client import RemitClient

app = typer.Typer(
    help="remit: accounts-payable orchestration on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bills = typer.Typer(help="Submit, inspect and steer bills.", no_args_is_help=True)
app.add_typer(bills, name="bills")
app.add_typer(connections_app, name="connections")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(payees_app, name="payees")
app.add_typer(credits_app, name="credits")
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.command("migrate")(migrate_command)
app.command("api")(api_command)
app.command("worker")(worker_command)
app.command("new-secrets")(new_secrets_command)


@app.callback()
def _choose_api(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Talk to the API of this profile of ~/.config/remit/config.toml (also: "
            "REMIT_PROFILE). Without one: REMIT_API_URL and REMIT_API_KEY, the file's default "
            "profile, else the local stack's stack.json.",
        ),
    ] = None,
) -> None:
    common.chosen_profile = profile


def _is_today(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "today"


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    if value.lower() == "today":
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"--pay-on {value!r} is not a date (YYYY-MM-DD or 'today')", 2) from None


def _parse_amount(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.replace(",", ""))
    except ArithmeticError:
        raise fail(f"{value!r} is not an amount (e.g. 450.00)", 2) from None
    if not amount.is_finite() or amount <= 0:
        raise fail(f"{value!r} must be an amount above zero", 2)
    return amount


# ---------------------------------------------------------------------------------------------
# remit up
# ---------------------------------------------------------------------------------------------


def _print_endpoints(info: StackInfo) -> None:
    from sandbox.stack import ready_notes, ready_table  # the stage, loaded only by `remit up`

    console.print(ready_table(info))
    for line in ready_notes(info):
        console.print(line, highlight=False, markup=False)


@app.command()
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
# remit bills ...  (every command goes through the remit API: any deployment, or the stack)
# ---------------------------------------------------------------------------------------------

Actor = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who acts: picks that user's demo key of a local stack (with an API key from "
        "REMIT_API_KEY or a profile, the key's own user acts).",
    ),
]
BillRef = Annotated[
    str,
    typer.Argument(
        help="The bill: its full id, or a short one (its `<document number>-<hash>` part, the "
        "hash, or a unique prefix)."
    ),
]


def _target(data_dir: Path, actor: str | None, *, default: str | None) -> ApiTarget:
    """The API and key a bills command uses; `default` is who acts on a stack without --as
    (None: the command needs --as there)."""
    if actor is None and default is None:
        configured = configured_target()
        if configured is None:
            raise fail("name who acts with --as USER (a user of the stack's demo directory)", 2)
        return configured
    target = api_target(data_dir, actor or default)
    if actor is not None and not target.demo_keys:
        errors.print(
            f"note: --as {actor} is ignored: the key from {target.via} acts as its own user",
            highlight=False,
        )
    return target


def _refused(response: httpx.Response, bill_id: str) -> typer.Exit:
    return fail(f"{bill_id}: {error_message(response)}")


@bills.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="A remit JSON bill or a UBL 2.1 invoice.")],
    connection: Annotated[
        str | None, typer.Option(help="Connection id (default: the API's default one).")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key (default: file hash).")] = None,
    actor: Actor = None,
    pay_on: Annotated[
        str | None, typer.Option(help="Pay on this date (YYYY-MM-DD or 'today').")
    ] = None,
    pay_amount: Annotated[
        str | None,
        typer.Option(help="Pay only this much now; instruct the rest with `bills pay`."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Capture a document and start its bill."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", 2) from None
    try:
        # Checked here too, so a refused document says all its problems without any API.
        captured = parse_document(content, file_name=file.name)
    except CaptureError as exc:
        errors.print(f"[red]{file} was refused:[/red]", highlight=False)
        for problem in exc.problems:
            errors.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    day = _parse_day(pay_on)
    part = _parse_amount(pay_amount)
    draft = captured.draft
    if part is not None and part > draft.total:
        raise fail(
            f"--pay-amount {format_money(part, draft.currency)} is more than the bill's total "
            f"{format_money(draft.total, draft.currency)}",
            2,
        )
    params = {
        name: value
        for name, value in (
            ("connection_id", connection),
            ("key", key),
            # 'today' goes as the word: the API resolves it in the connection's time zone.
            ("pay_on", "today" if _is_today(pay_on) else day.isoformat() if day else None),
            ("pay_amount", str(part) if part is not None else None),
        )
        if value is not None
    }
    with client_for(_target(data_dir, actor, default="sam")) as client:
        accepted = call(
            client,
            "POST",
            "/v1/bills",
            params=params,
            files={"file": (file.name, content, captured.source.media_type)},
        )
    if as_json:
        print_json({"workflow_id": accepted["id"], **accepted})
        return
    verb = "submitted" if accepted["created"] else "already submitted"
    console.print(f"{verb}: {accepted['id']}", highlight=False)


def _bill(client: httpx.Client, ref: str) -> tuple[str, dict[str, Any]]:
    bill_id = resolve_bill(client, ref)
    return bill_id, call(client, "GET", bill_path(bill_id))


def _audit(client: httpx.Client, bill_id: str) -> list[dict[str, Any]]:
    response = send(client, "GET", bill_path(bill_id, "audit"))
    if response.status_code == 404:
        return []  # not in the store yet: the bill started a moment ago
    if response.status_code >= 400:
        raise _refused(response, bill_id)
    entries: list[dict[str, Any]] = response.json()["data"]
    return entries


@bills.command("show")
def show(
    ref: BillRef,
    as_json: AsJson = False,
    actor: Actor = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """A bill's state and its audit trail."""
    with client_for(_target(data_dir, actor, default="olivia")) as client:
        workflow_id, detail = _bill(client, ref)
        audit = _audit(client, workflow_id)
    state: dict[str, Any] = detail["state"]
    source = detail["source"]
    if as_json:
        print_json({"id": workflow_id, "source": source, "state": state, "audit": audit})
        return
    currency = state.get("currency")
    payment = state.get("payment") or {}
    table = Table(title=workflow_id, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    fields = [
        ("status", state.get("status")),
        ("waiting for", state.get("waiting_for")),
        ("vendor", state.get("vendor_name")),
        ("document", state.get("document_number")),
        ("amount", money(state.get("total"), currency)),
        ("amount due", money(state.get("amount_due"), currency)),
        ("due / pay on", f"{state.get('due_date')} / {state.get('pay_on')}"),
        ("pending approvers", ", ".join(state.get("pending_approvers") or []) or None),
        ("payee", _payee_text(state.get("payee"))),
        ("ERP bill", state.get("erp_bill_id")),
        ("ERP payment", state.get("erp_payment_id")),
        ("bank payment", payment.get("rail_payment_id")),
        *(
            (
                f"payment {n}",
                f"{p.get('rail_payment_id')} {p.get('status')} {money(p.get('amount'), currency)}"
                + (
                    f" (discount {money(p.get('discount'), currency)})"
                    if p.get("discount") is not None and Decimal(str(p.get("discount"))) != 0
                    else ""
                )
                + (f" {p.get('return_code')}" if p.get("return_code") else "")
                + (" · ERP payment voided" if p.get("erp_voided") else ""),
            )
            for n, p in enumerate(state.get("payments") or [], start=1)
        ),
        *(
            (
                f"credit {c.get('document_number') or c.get('erp_credit_id')}",
                money(c.get("amount"), currency),
            )
            for c in state.get("credits_applied") or []
        ),
        ("last error", state.get("last_error")),
        ("read from", source),
    ]
    for name, value in fields:
        if value not in (None, ""):
            table.add_row(name, str(value))
    console.print(table)
    trail = Table(title="audit trail", title_justify="left")
    for column in ("at", "actor", "kind", "summary"):
        trail.add_column(column, overflow="fold")
    for entry in audit:
        trail.add_row(str(entry["at"])[:19], entry["actor"], entry["kind"], entry["summary"])
    console.print(trail)


def _payee_text(view: dict[str, Any] | None) -> str | None:
    """The payee as people may see it, with its badge: never more than the last four digits."""
    if not view:
        return None
    payee = PayeeView.model_validate(view)
    text = f"{payee.masked or payee.document_masked or 'no bank details'} [{payee.badge()}]"
    if payee.document_masked and payee.document_masked != payee.masked:
        text += f"; the document names {payee.document_masked}"
    if payee.change_id:
        text += f"; change {payee.change_id} ({payee.change_status})"
    return text


@bills.command("pay")
def pay(
    ref: BillRef,
    actor: Actor = None,
    amount: Annotated[str | None, typer.Option(help="How much (default: all still due).")] = None,
    on: Annotated[str | None, typer.Option(help="When (YYYY-MM-DD or 'today').")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Instruct a payment of (part of) a bill."""
    part = _parse_amount(amount)
    day = _parse_day(on)
    body = {
        name: value
        for name, value in (
            ("amount", str(part) if part is not None else None),
            ("pay_on", "today" if _is_today(on) else day.isoformat() if day else None),
        )
        if value is not None
    }
    with client_for(_target(data_dir, actor, default=None)) as client:
        workflow_id = resolve_bill(client, ref)
        response = send(client, "POST", bill_path(workflow_id, "payments"), json=body)
        if response.status_code >= 400:
            raise _refused(response, workflow_id)
    state = response.json()["state"]
    paying = part if part is not None else state.get("amount_due")
    console.print(
        f"{workflow_id}: {money(paying, state.get('currency'))} to pay"
        + (f" on {day}" if day else ""),
        highlight=False,
    )


@bills.command("document")
def document(
    ref: BillRef,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it here (default: stdout).")
    ] = None,
    actor: Actor = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The original document a bill was captured from, byte for byte."""
    with client_for(_target(data_dir, actor, default="olivia")) as client:
        workflow_id, detail = _bill(client, ref)
        attachments: list[dict[str, Any]] = detail.get("attachments") or []
        original = (detail["state"].get("document") or {}).get("sha256")
        chosen = next((a for a in attachments if a["id"] == original), None) or next(
            iter(attachments), None
        )
        if chosen is None:
            raise fail(f"bill {workflow_id!r} keeps no original document")
        response = send(client, "GET", chosen["url"])
        if response.status_code >= 400:
            raise fail(f"the original of {workflow_id!r} cannot be read: {error_message(response)}")
    content = response.content
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(content)
        errors.print(f"wrote {len(content)} bytes to {output}")


LIST_COLUMNS = ("workflow id", "platform", "vendor", "amount", "status", "waiting on")


@bills.command("list")
def list_bills(
    status: Annotated[str | None, typer.Option(help="Only bills in this status.")] = None,
    as_json: AsJson = False,
    actor: Actor = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Bills as the store knows them, oldest first (full ids, ready to copy)."""
    rows: list[dict[str, Any]] = []
    with client_for(_target(data_dir, actor, default="olivia")) as client:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if status is not None:
                params["status"] = status
            if cursor is not None:
                params["cursor"] = cursor
            page = call(client, "GET", "/v1/bills", params=params)
            rows.extend(page["data"])
            cursor = page.get("next_cursor")
            if cursor is None:
                break
    if as_json:
        print_json(
            [
                {
                    "workflow_id": r["id"],
                    "platform": r["platform"],
                    "vendor": r["vendor_name"],
                    "currency": r["currency"],
                    "total": r["total"],
                    "status": r["status"],
                    "pending_approvers": r["pending_approvers"],
                    "erp_bill_id": r["erp_bill_id"],
                }
                for r in rows
            ]
        )
        return
    print_bill_list(rows)


def print_bill_list(rows: list[dict[str, Any]]) -> None:
    """A table when it fits with every id whole, else each bill's full id on its own line."""
    cells = [
        (
            r["id"],
            r["platform"],
            r["vendor_name"],
            money(r["total"], r["currency"]),
            r["status"],
            ", ".join(r["pending_approvers"]),
        )
        for r in rows
    ]
    print_rows(LIST_COLUMNS, cells, title=f"{len(rows)} bills")


def _decide(data_dir: Path, ref: str, actor: str | None, approve: bool, text: str | None) -> None:
    with client_for(_target(data_dir, actor, default=None)) as client:
        workflow_id = resolve_bill(client, ref)
        response = send(
            client,
            "POST",
            bill_path(workflow_id, "decisions"),
            json={"decision": "approve" if approve else "reject", "comment": text},
        )
        if response.status_code in (403, 409):
            raise fail(f"refused: {error_message(response)}")
        if response.status_code >= 400:
            raise _refused(response, workflow_id)
    record = response.json()
    done = {"approve": "approved", "reject": "rejected"}.get(record["outcome"], record["outcome"])
    console.print(
        f"{done} by {record['actor']} at level {record['level'] + 1} ({record['group']})",
        highlight=False,
    )


@bills.command("approve")
def approve(
    ref: BillRef,
    actor: Actor = None,
    comment: Annotated[str | None, typer.Option(help="A note for the audit trail.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Approve a bill at its current level."""
    _decide(data_dir, ref, actor, True, comment)


@bills.command("reject")
def reject(
    ref: BillRef,
    reason: Annotated[str, typer.Option(help="Why (required).")],
    actor: Actor = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Reject a bill; the reason goes on the audit trail."""
    _decide(data_dir, ref, actor, False, reason)


def _operator(
    data_dir: Path,
    kind: str,
    ref: str,
    actor: str | None,
    reason: str | None,
    vendor_id: str | None = None,
    account: str | None = None,
) -> None:
    body: dict[str, Any] = {"reason": reason}
    if kind == "resolve":
        body.update(vendor_id=vendor_id, account=account)
    with client_for(_target(data_dir, actor, default=None)) as client:
        workflow_id = resolve_bill(client, ref)
        response = send(client, "POST", bill_path(workflow_id, kind), json=body)
        if response.status_code >= 400:
            raise _refused(response, workflow_id)
    console.print(f"sent {kind} to {workflow_id}", highlight=False)


Reason = Annotated[str | None, typer.Option(help="Why, for the audit trail.")]


@bills.command("cancel")
def cancel(
    ref: BillRef, actor: Actor = None, reason: Reason = None, data_dir: DataDir = DEFAULT_DATA_DIR
) -> None:
    """Cancel a bill that is not being paid yet."""
    _operator(data_dir, "cancel", ref, actor, reason)


@bills.command("retry")
def retry(
    ref: BillRef, actor: Actor = None, reason: Reason = None, data_dir: DataDir = DEFAULT_DATA_DIR
) -> None:
    """Retry the step a bill is held at (needs_attention)."""
    _operator(data_dir, "retry", ref, actor, reason)


@bills.command("resolve")
def resolve(
    ref: BillRef,
    actor: Actor = None,
    reason: Reason = None,
    vendor_id: Annotated[
        str | None, typer.Option(help="For an ambiguous vendor: the ERP vendor id to use.")
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="For uncoded lines: the ERP account (name or id) to use.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Resolve a held bill (pick its vendor or account, accept a duplicate), or close it."""
    _operator(data_dir, "resolve", ref, actor, reason, vendor_id, account)


# ---------------------------------------------------------------------------------------------
# remit demo
# ---------------------------------------------------------------------------------------------


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
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


@app.command()
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


@app.command("secret-key")
def secret_key() -> None:
    """Print a new Fernet key for REMIT_SECRET_KEY."""
    from runtime.secrets import SecretBox

    console.print(SecretBox.generate_key(), highlight=False)
