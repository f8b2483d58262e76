"""`remit payees` and `remit credits`: the payee master, reviewed payee changes, vendor credits.

Everything goes through the API with the acting person's demo key (`--as`), so the same rules
(who may verify, who may approve, never the proposer) answer here as everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Column, Table

from accounting.formats import CaptureError, parse_document
from starter.cli.common import (
    DEFAULT_DATA_DIR,
    AsJson,
    DataDir,
    api,
    bill_path,
    call,
    console,
    errors,
    fail,
    money,
    print_json,
    print_rows,
    resolve_bill,
)

payees_app = typer.Typer(
    help="The payee master: verified bank details per vendor, and reviewed changes to them.",
    no_args_is_help=True,
)
credits_app = typer.Typer(
    help="Vendor credits: submit them, see what is left.", no_args_is_help=True
)

Person = Annotated[str, typer.Option("--as", help="Who acts (a user of the directory).")]


def _print_changes(rows: list[dict[str, Any]]) -> None:
    print_rows(
        ("id", "vendor", "details", "replaces", "status", "proposed by", "next step"),
        [
            (
                row["id"],
                f"{row['vendor_name']} ({row['vendor_id']})",
                row["details"],
                row.get("replaces") or "",
                row["status"],
                row["proposed_by"],
                row.get("next_step") or "",
            )
            for row in rows
        ],
    )


@payees_app.command("list")
def list_payees(
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """Verified payees (masked: the last four digits only)."""
    with api(data_dir, user) as client:
        rows = call(
            client, "GET", "/v1/payees", params={"connection": connection} if connection else {}
        )["data"]
    if as_json:
        print_json(rows)
        return
    table = Table("connection", "vendor", "details", "version", "verified by", "how", "approved by")
    for row in rows:
        table.add_row(
            row["connection_id"],
            f"{row['vendor_name']} ({row['vendor_id']})",
            row["details"],
            str(row["version"]),
            row["verified_by"],
            row["verification_method"],
            ", ".join(row["approved_by"]),
        )
    console.print(table)


@payees_app.command("changes")
def list_changes(
    status: Annotated[
        str | None, typer.Option(help="proposed, verified, approved or rejected.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """Payee changes, oldest first, with what each waits for."""
    with api(data_dir, user) as client:
        rows = call(
            client, "GET", "/v1/payees/changes", params={"status": status} if status else {}
        )["data"]
    if as_json:
        print_json(rows)
    else:
        _print_changes(rows)


@payees_app.command("propose")
def propose(
    connection: Annotated[str, typer.Option(help="The connection id.")],
    vendor_id: Annotated[str, typer.Option(help="The ERP vendor's id.")],
    vendor_name: Annotated[str, typer.Option(help="The vendor's name.")],
    iban: Annotated[str | None, typer.Option(help="An IBAN.")] = None,
    bic: Annotated[str | None, typer.Option(help="The BIC that goes with the IBAN.")] = None,
    routing: Annotated[str | None, typer.Option(help="A US ABA routing number.")] = None,
    account: Annotated[str | None, typer.Option(help="The account number.")] = None,
    rail: Annotated[str | None, typer.Option(help="ach, wire or check.")] = None,
    remittance_email: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str | None, typer.Option(help="Why (e.g. the vendor's letter).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "sam",
    as_json: AsJson = False,
) -> None:
    """Propose bank details for a vendor: they pay nothing until verified and approved."""
    details = {
        k: v
        for k, v in {
            "iban": iban,
            "bic": bic,
            "routing_number": routing,
            "account_number": account,
            "rail": rail,
            "remittance_email": remittance_email,
            "account_name": vendor_name,
        }.items()
        if v is not None
    }
    body = {
        "connection_id": connection,
        "vendor_id": vendor_id,
        "vendor_name": vendor_name,
        "details": details,
        "reason": reason,
    }
    with api(data_dir, user) as client:
        change = call(client, "POST", "/v1/payees/changes", json=body)
    if as_json:
        print_json(change)
    else:
        _print_changes([change])


@payees_app.command("import")
def import_payees(
    connection: Annotated[str, typer.Argument(help="The connection whose vendors to read.")],
    attest: Annotated[
        str,
        typer.Option(
            help="Why the ERP's vendor master can be trusted (recorded on every payee imported)."
        ),
    ],
    vendor_id: Annotated[str | None, typer.Option(help="Only this ERP vendor.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """Seed the payee master from the ERP's vendor bank details; differences become changes."""
    body = {"connection_id": connection, "attestation": attest, "vendor_id": vendor_id}
    with api(data_dir, user) as client:
        result = call(client, "POST", "/v1/payees/import", json=body)
    if as_json:
        print_json(result)
        return
    for label, key in (
        ("imported", "imported"),
        ("unchanged", "unchanged"),
        ("changes to review", "proposed"),
        ("no bank details in the ERP", "without_details"),
        ("skipped", "skipped"),
    ):
        if result[key]:
            console.print(f"{label}: {', '.join(result[key])}", highlight=False)


ChangeRef = Annotated[
    str,
    typer.Argument(
        help="The change (pc_...), or a bill held on it: its id or short id, e.g. its document "
        "number."
    ),
]


def change_of(client: httpx.Client, ref: str) -> str:
    """A payee change's id: `ref` itself, or the change the bill `ref` names is held on."""
    if ref.startswith("pc_"):
        return ref
    bill_id = resolve_bill(client, ref)
    payee = call(client, "GET", bill_path(bill_id))["state"].get("payee") or {}
    if not payee.get("change_id"):
        raise fail(f"{bill_id} is held on no payee change")
    return str(payee["change_id"])


def _step(ref: str, step: str, body: dict[str, Any], data_dir: Path, user: str) -> Any:
    with api(data_dir, user) as client:
        change_id = change_of(client, ref)
        return call(client, "POST", f"/v1/payees/changes/{change_id}/{step}", json=body)


@payees_app.command("verify")
def verify(
    change_id: ChangeRef,
    method: Annotated[
        str, typer.Option(help="How, e.g. 'call-back to the number on file, spoke to AR'.")
    ],
    note: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """Record that the new details were confirmed out of band, and how."""
    change = _step(change_id, "verify", {"method": method, "note": note}, data_dir, user)
    print_json(change) if as_json else _print_changes([change])


@payees_app.command("approve")
def approve(
    change_id: ChangeRef,
    comment: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "carol",
    as_json: AsJson = False,
) -> None:
    """Approve a verified change; the second approval makes it the vendor's payee."""
    change = _step(change_id, "approve", {"comment": comment}, data_dir, user)
    print_json(change) if as_json else _print_changes([change])


@payees_app.command("reject")
def reject(
    change_id: ChangeRef,
    reason: Annotated[str, typer.Option(help="Why (e.g. 'the vendor never changed banks').")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "carol",
    as_json: AsJson = False,
) -> None:
    """Reject a change; bills it held stay held and say so."""
    change = _step(change_id, "reject", {"reason": reason}, data_dir, user)
    print_json(change) if as_json else _print_changes([change])


@credits_app.command("submit")
def submit_credit(
    file: Annotated[Path, typer.Argument(help="A remit JSON credit memo (a bill's fields).")],
    connection: Annotated[str | None, typer.Option(help="Connection id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key (default: file hash).")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "sam",
    as_json: AsJson = False,
) -> None:
    """Submit a vendor credit; it is written to the ERP and applied to the vendor's bills."""
    try:
        content = file.read_bytes()
        parse_document(content, file_name=file.name)
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", 2) from None
    except CaptureError as exc:
        errors.print(f"[red]{file} was refused:[/red]", highlight=False)
        for problem in exc.problems:
            errors.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    params = {k: v for k, v in {"connection_id": connection, "key": key}.items() if v}
    with api(data_dir, user) as client:
        accepted = call(
            client,
            "POST",
            "/v1/credits",
            params=params,
            content=content,
            headers={"Content-Type": "application/json"},
        )
    if as_json:
        print_json(accepted)
    else:
        verb = "submitted" if accepted["created"] else "already submitted"
        console.print(f"{verb}: {accepted['id']}", highlight=False)


@credits_app.command("list")
def list_credits(
    connection: Annotated[str | None, typer.Option()] = None,
    vendor_id: Annotated[str | None, typer.Option()] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = "olivia",
    as_json: AsJson = False,
) -> None:
    """Vendor credits and what is left of each."""
    params = {k: v for k, v in {"connection": connection, "vendor_id": vendor_id}.items() if v}
    with api(data_dir, user) as client:
        listing = call(client, "GET", "/v1/credits", params=params)
    if as_json:
        print_json(listing)
        return
    table = Table(
        "credit",
        "vendor",
        "document",
        Column("total", no_wrap=True),
        Column("remaining", no_wrap=True),
        "applied to",
    )
    for row in listing["data"]:
        table.add_row(
            row["erp_credit_id"],
            f"{row['vendor_name']} ({row['vendor_id']})",
            row.get("document_number") or "",
            money(row["total"], row["currency"]),
            money(row["remaining"], row["currency"]),
            ", ".join(
                f"{a['bill_id']} ({money(a['amount'], row['currency'])})"
                for a in row["applications"]
            ),
        )
    console.print(table)
