"""The `remit` command of the product: bills, payees, credits, runs, webhooks, keys and the
production processes (the stage adds `up`, `demo` and `connections`: sandbox/cli.py)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
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
from starter.cli.drift import register as register_drift
from starter.cli.erp import erp_app
from starter.cli.keys import keys_app
from starter.cli.payees import credits_app, payees_app
from starter.cli.runs import runs_app
from starter.cli.serve import api_command, migrate_command, new_secrets_command, worker_command
from starter.cli.webhooks import webhooks_app
from workflows.models import PayeeView

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="remit: accounts-payable orchestration on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bills = typer.Typer(help="Submit, inspect and steer bills.", no_args_is_help=True)
app.add_typer(bills, name="bills")
register_drift(bills)  # remit bills drift
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(payees_app, name="payees")
app.add_typer(credits_app, name="credits")
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.add_typer(erp_app, name="erp")
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
    file: Annotated[
        Path | None, typer.Argument(help="A remit JSON bill or a UBL 2.1 invoice.")
    ] = None,
    erp_bill: Annotated[
        str | None,
        typer.Option(
            "--erp-bill",
            help="Instead of a file: pay this bill already in the ERP (the platform's id).",
        ),
    ] = None,
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
    """Capture a document and start its bill, or start one for a bill already in the ERP."""
    if (file is None) == (erp_bill is None):
        raise fail("give a document file or --erp-bill ID (one of them)", 2)
    if erp_bill is not None:
        _submit_erp_bill(erp_bill, connection, key, actor, pay_on, pay_amount, data_dir, as_json)
        return
    assert file is not None
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
    params = _submit_options(connection, key, pay_on, day, part)
    with client_for(_target(data_dir, actor, default="sam")) as client:
        accepted = call(
            client,
            "POST",
            "/v1/bills",
            params=params,
            files={"file": (file.name, content, captured.source.media_type)},
        )
    _print_accepted(accepted, as_json)


def _submit_erp_bill(
    erp_bill: str,
    connection: str | None,
    key: str | None,
    actor: str | None,
    pay_on: str | None,
    pay_amount: str | None,
    data_dir: Path,
    as_json: bool,
) -> None:
    day = _parse_day(pay_on)
    part = _parse_amount(pay_amount)
    body = {"erp_bill_id": erp_bill, **_submit_options(connection, key, pay_on, day, part)}
    with client_for(_target(data_dir, actor, default="sam")) as client:
        accepted = call(client, "POST", "/v1/bills", json=body)
    _print_accepted(accepted, as_json, f" (ERP bill {erp_bill})")


def _submit_options(
    connection: str | None, key: str | None, pay_on: str | None, day: date | None, part: Any
) -> dict[str, str]:
    return {
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


def _print_accepted(accepted: dict[str, Any], as_json: bool, note: str = "") -> None:
    if as_json:
        print_json({"workflow_id": accepted["id"], **accepted})
        return
    verb = "submitted" if accepted["created"] else "already submitted"
    console.print(f"{verb}: {accepted['id']}{note}", highlight=False)


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
    corrections: dict[str, Any] | None = None,
) -> None:
    body: dict[str, Any] = {"reason": reason}
    if kind == "resolve":
        body.update(vendor_id=vendor_id, account=account)
        if corrections:
            body["corrections"] = corrections
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
    correct: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="For a bill held for what capture read: FIELD=VALUE, e.g. --set total=100.00 "
            "(document_number, issue_date, due_date, currency, vendor_name, vendor_tax_id, "
            "tax_amount, total); repeat for more.",
        ),
    ] = None,
    line: Annotated[
        list[str] | None,
        typer.Option(
            "--line",
            help="With --set: the bill's lines, replacing capture's: 'DESCRIPTION=AMOUNT' or "
            "'DESCRIPTION=AMOUNT@ACCOUNT'; repeat per line.",
        ),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Resolve a held bill (pick its vendor or account, accept a duplicate, correct what
    capture read), or close it."""
    corrections = _corrections(correct or [], line or [])
    _operator(data_dir, "resolve", ref, actor, reason, vendor_id, account, corrections)


_CORRECTABLE = (
    "document_number",
    "issue_date",
    "due_date",
    "currency",
    "vendor_name",
    "vendor_tax_id",
    "tax_amount",
    "total",
)


def _corrections(settings: list[str], lines: list[str]) -> dict[str, Any] | None:
    """--set and --line as the API's corrections (the API validates the values)."""
    if not settings and not lines:
        return None
    found: dict[str, Any] = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in _CORRECTABLE:
            raise fail(
                f"--set {setting!r}: use FIELD=VALUE with FIELD one of {', '.join(_CORRECTABLE)}",
                2,
            )
        found[name] = value.strip() or None
    parsed = []
    for given in lines:
        description, sep, rest = given.rpartition("=")
        amount, _, account = rest.partition("@")
        if not sep or not amount.strip():
            raise fail(
                f"--line {given!r}: use 'DESCRIPTION=AMOUNT' or 'DESCRIPTION=AMOUNT@ACCOUNT'", 2
            )
        parsed.append(
            {
                "description": description.strip() or None,
                "amount": amount.strip(),
                "account": account.strip() or None,
            }
        )
    if parsed:
        found["lines"] = parsed
    return found


@bills.command("capture")
def capture(
    ref: BillRef,
    as_json: AsJson = False,
    actor: Actor = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """What capture read from a bill's document: each field, how sure, and what to check."""
    with client_for(_target(data_dir, actor, default="olivia")) as client:
        workflow_id = resolve_bill(client, ref)
        response = send(client, "GET", bill_path(workflow_id, "capture"))
        if response.status_code >= 400:
            raise _refused(response, workflow_id)
    body: dict[str, Any] = response.json()
    if as_json:
        print_json(body)
        return
    scan = body.get("scan") or {}
    table = Table(title=f"{workflow_id}: what capture read", title_justify="left")
    for column in ("field", "read as", "confidence", "page", ""):
        table.add_column(column)
    for field in scan.get("fields") or []:
        table.add_row(
            field["name"],
            field["value"] or "(not found)",
            f"{round(field['confidence'] * 100)}%",
            str(field["page"] or "—"),
            "[red]check[/red]" if field["needs_review"] else "",
        )
    if scan:
        console.print(table)
    draft = body["draft"]
    console.print(
        f"draft: {draft['document_number']} · {draft['vendor']['name']} · {draft['currency']} "
        f"{draft['total']} ({len(draft['lines'])} line(s), tax {draft['tax_amount']})",
        highlight=False,
        markup=False,
    )
    for reason in body.get("needs_review") or []:
        console.print(f"  - {reason}", highlight=False, markup=False)
    if body.get("correctable"):
        console.print(
            f"correct with: remit bills resolve {workflow_id} --set total=… --line 'text=amount'",
            highlight=False,
            markup=False,
        )


@app.command("secret-key")
def secret_key() -> None:
    """Print a new Fernet key for REMIT_SECRET_KEY."""
    from runtime.secrets import SecretBox

    console.print(SecretBox.generate_key(), highlight=False)
