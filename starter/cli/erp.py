"""`remit erp`: the customer's books as remit's mirror holds them (through any remit API), and
on-demand syncs: `remit erp vendors CONN`, `remit erp bills CONN --status open --all`,
`remit erp sync CONN --wait`. `remit connections show CONN` (connection_show) prints a
connection's health, mirror counts, last synced and its last sync runs."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from connectors.mirror import MirrorKind
from starter.cli.common import (
    DEFAULT_DATA_DIR,
    AsJson,
    DataDir,
    api,
    call,
    console,
    error_message,
    errors,
    fail,
    money,
    print_json,
    print_rows,
    send,
)

erp_app = typer.Typer(
    help="The customer's books from remit's mirror: list vendors, accounts, bills...; sync.",
    no_args_is_help=True,
)

Connection = Annotated[str, typer.Argument(help="The connection (e.g. demo-quickbooks).")]
Person = Annotated[
    str | None,
    typer.Option("--as", help="On a local stack: whose demo key to use (default: sam)."),
]


def connection_path(connection_id: str, *rest: str) -> str:
    return "/".join([f"/v1/connections/{quote(connection_id, safe='')}", *rest])


def _when(value: Any) -> str:
    return str(value).replace("T", " ")[:19] if value else "—"


def read_pages(
    client: httpx.Client, path: str, params: dict[str, Any], *, every: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The objects of one page (or, `every`, of all of them, following `next_cursor`) and the
    last page's answer (last_synced_at, sync, next_cursor)."""
    items: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        page: dict[str, Any] = call(client, "GET", path, params=query)
        items.extend(page["data"])
        if not every or not page.get("next_cursor"):
            return items, page
        query["cursor"] = page["next_cursor"]


def _describe(kind: MirrorKind, data: dict[str, Any]) -> list[str]:
    """The columns a person scans for, per kind (after the id)."""
    currency = data.get("currency") or ""
    if kind == MirrorKind.bills:
        return [
            str(data.get("vendor_name") or data.get("vendor_id") or ""),
            str(data.get("document_number") or ""),
            str(data.get("due_date") or ""),
            money(data.get("total"), currency),
            money(data.get("balance"), currency) if data.get("balance") is not None else "",
        ]
    if kind == MirrorKind.bill_payments:
        bills = ", ".join(str(line.get("bill_id")) for line in data.get("lines") or [])
        return [
            str(data.get("vendor_id") or ""),
            str(data.get("payment_date") or ""),
            money(data.get("total"), currency),
            bills,
        ]
    if kind == MirrorKind.vendor_credits:
        return [
            str(data.get("vendor_id") or ""),
            str(data.get("document_number") or ""),
            money(data.get("total"), currency),
            money(data.get("remaining"), currency) if data.get("remaining") is not None else "",
        ]
    if kind == MirrorKind.accounts:
        return [
            str(data.get("number") or ""),
            str(data.get("name") or ""),
            str(data.get("account_type") or ""),
        ]
    if kind == MirrorKind.attachments:
        return [str(data.get("bill_id") or ""), str(data.get("file_name") or "")]
    return [str(data.get("name") or data.get("code") or ""), str(data.get("tax_id") or "")]


_COLUMNS: dict[MirrorKind, tuple[str, ...]] = {
    MirrorKind.bills: ("vendor", "number", "due", "total", "balance"),
    MirrorKind.bill_payments: ("vendor", "date", "total", "bills"),
    MirrorKind.vendor_credits: ("vendor", "number", "total", "remaining"),
    MirrorKind.accounts: ("number", "name", "type"),
    MirrorKind.attachments: ("bill", "file"),
}


def print_listing(kind: MirrorKind, items: list[dict[str, Any]], page: dict[str, Any]) -> None:
    columns = ("id", "status", *_COLUMNS.get(kind, ("name", "tax id")))
    rows = [
        [
            item["id"],
            ("deleted" if item.get("deleted") else str(item.get("status") or "")),
            *_describe(kind, item.get("data") or {}),
        ]
        for item in items
    ]
    if rows:
        print_rows(columns, rows, title=f"{kind.value} of {page.get('connection_id')}")
    else:
        console.print(f"no {kind.value}", highlight=False)
    sync = page.get("sync") or {}
    note = f"last synced {_when(page.get('last_synced_at'))}"
    if sync.get("running"):
        note += " · a sync is running"
    if page.get("next_cursor"):
        note += f" · more: --cursor {page['next_cursor']} (or --all)"
    console.print(note, highlight=False, markup=False)


def _listing_command(kind: MirrorKind) -> Callable[..., None]:
    def listing(
        connection: Connection,
        updated_since: Annotated[
            str | None, typer.Option(help="Changed after this time (ISO 8601).")
        ] = None,
        status: Annotated[
            str | None, typer.Option(help="bills: open, paid, void...; others: active/inactive.")
        ] = None,
        vendor_id: Annotated[
            str | None, typer.Option(help="bills, bill-payments, vendor-credits: one vendor's.")
        ] = None,
        account_type: Annotated[
            str | None, typer.Option(help="accounts: one type (expense, bank...).")
        ] = None,
        include_deleted: Annotated[
            bool, typer.Option("--include-deleted", help="Also what the platform deleted.")
        ] = False,
        platform_data: Annotated[
            bool, typer.Option("--platform-data", help="Add the platform's own fields (JSON).")
        ] = False,
        limit: Annotated[int, typer.Option(min=1, max=500, help="Objects per page.")] = 100,
        cursor: Annotated[str | None, typer.Option(help="Continue from this page.")] = None,
        every: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
        data_dir: DataDir = DEFAULT_DATA_DIR,
        user: Person = None,
        as_json: AsJson = False,
    ) -> None:
        given = {
            "updated_since": updated_since,
            "status": status,
            "vendor_id": vendor_id,
            "account_type": account_type,
            "cursor": cursor,
        }
        # Only what was given: the API names the filters a kind takes when one does not apply.
        params: dict[str, Any] = {name: value for name, value in given.items() if value}
        params["limit"] = limit
        if include_deleted:
            params["include_deleted"] = "true"
        if platform_data:
            params["include"] = "platform_data"
        with api(data_dir, user) as client:
            items, page = read_pages(
                client, connection_path(connection, kind.value), params, every=every
            )
        if as_json or platform_data:
            print_json({**page, "data": items, **({"next_cursor": None} if every else {})})
            return
        print_listing(kind, items, page)

    listing.__doc__ = f"List {kind.value} from the mirror (served by remit, not the platform)."
    listing.__name__ = f"list_{kind.name}"
    return listing


for _kind in MirrorKind:
    erp_app.command(_kind.value)(_listing_command(_kind))


@erp_app.command("get")
def get_object(
    connection: Connection,
    kind: Annotated[MirrorKind, typer.Argument(help="What it is: bills, vendors, ...")],
    object_id: Annotated[str, typer.Argument(help="The platform's id.")],
    platform_data: Annotated[
        bool, typer.Option("--platform-data", help="Add the platform's own fields.")
    ] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
) -> None:
    """One object as JSON (a bill with its payments and attachments)."""
    params = {"include": "platform_data"} if platform_data else {}
    with api(data_dir, user) as client:
        found = call(
            client,
            "GET",
            connection_path(connection, kind.value, quote(object_id, safe="")),
            params=params,
        )
    print_json(found)


def print_runs(runs: list[dict[str, Any]]) -> None:
    if not runs:
        console.print("no sync runs yet", highlight=False)
        return
    rows = []
    for run in runs:
        changed = ", ".join(f"{kind} {n}" for kind, n in sorted(run["counts"].items()) if n)
        errors = "; ".join(run.get("errors") or [])
        rows.append(
            [
                run["id"],
                run["status"],
                f"{run['mode']}/{run['trigger']}",
                _when(run["started_at"]),
                _when(run.get("finished_at")),
                f"{run['objects_changed']}" + (f" ({changed})" if changed else ""),
                errors,
            ]
        )
    print_rows(
        ("run", "status", "mode", "started", "finished", "changed", "errors"),
        rows,
        title="sync runs",
    )


@erp_app.command("runs")
def sync_runs(
    connection: Connection,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many, newest first.")] = 20,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
    as_json: AsJson = False,
) -> None:
    """A connection's sync history: started, finished, objects changed per kind, errors."""
    with api(data_dir, user) as client:
        answer = call(
            client, "GET", connection_path(connection, "sync-runs"), params={"limit": limit}
        )
    if as_json:
        print_json(answer)
        return
    print_runs(answer["data"])


def _until_done(
    client: httpx.Client, job: dict[str, Any], timeout: float, what: str
) -> dict[str, Any]:
    """Follow a job (a sync, a write) until it is no longer running, or fail after `timeout`."""
    status = job
    deadline = time.monotonic() + timeout
    while status.get("status") == "running":
        if time.monotonic() > deadline:
            raise fail(f"{what} {job['id']} still running after {timeout:.0f}s")
        time.sleep(1)  # a person waits at a terminal: once a second is plenty
        status = call(client, "GET", job["links"]["self"])
    return status


@erp_app.command("sync")
def sync(
    connection: Connection,
    full: Annotated[bool, typer.Option("--full", help="A full pass, not only changes.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the sync has finished.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after seconds.")] = 600,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
    as_json: AsJson = False,
) -> None:
    """Sync the connection's books now (what changed since the last sync; --full: all)."""
    with api(data_dir, user) as client:
        job = call(client, "POST", connection_path(connection, "sync"), json={"full": full})
        if not as_json:
            verb = "started" if job.get("started") else "joined the running"
            console.print(f"{verb} sync {job['id']}", highlight=False)
        status = _until_done(client, job, timeout, "sync") if wait else job
    if as_json:
        print_json(status)
    elif wait:
        console.print(f"sync {job['id']}: {status.get('status')}", highlight=False)


def _follow_job(
    client: httpx.Client, job: dict[str, Any], *, wait: bool, timeout: float, as_json: bool
) -> None:
    status = _until_done(client, job, timeout, "job") if wait else job
    if as_json:
        print_json(status)
        return
    if status.get("status") == "failed":
        raise fail(f"job {job['id']} failed: {status.get('error_type')}: {status.get('error')}")
    what = f" → {status['object_id']}" if status.get("object_id") else ""
    console.print(f"job {job['id']}: {status.get('status')}{what}", highlight=False)


Wait = Annotated[bool, typer.Option("--wait", help="Wait until the write has finished.")]
Key = Annotated[
    str | None,
    typer.Option("--key", help="Idempotency-Key: the same key again is the same write."),
]


@erp_app.command("create-vendor")
def create_vendor(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="The vendor's name.")],
    tax_id: Annotated[str | None, typer.Option(help="Its tax id (EIN, VAT number...).")] = None,
    email: Annotated[str | None, typer.Option(help="Its accounts-receivable e-mail.")] = None,
    currency: Annotated[str | None, typer.Option(help="Its currency (ISO 4217).")] = None,
    key: Key = None,
    wait: Wait = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after seconds.")] = 120,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
    as_json: AsJson = False,
) -> None:
    """Create a vendor in the ERP (a job; the mirror has it after the next sync)."""
    body = {
        field: value
        for field, value in (("name", name), ("tax_id", tax_id), ("email", email))
        if value is not None
    }
    if currency is not None:
        body["currency"] = currency.upper()
    headers = {"Idempotency-Key": key} if key else {}
    with api(data_dir, user) as client:
        job = call(
            client, "POST", connection_path(connection, "vendors"), json=body, headers=headers
        )
        _follow_job(client, job, wait=wait, timeout=timeout, as_json=as_json)


@erp_app.command("create-account")
def create_account(
    connection: Connection,
    name: Annotated[str, typer.Argument(help="The account's name.")],
    account_type: Annotated[
        str,
        typer.Option(
            "--type",
            help="expense, other_expense, cost_of_goods_sold, income, fixed_asset, "
            "other_current_asset, other_current_liability, long_term_liability or equity.",
        ),
    ] = "expense",
    number: Annotated[
        str | None, typer.Option(help="Its number or code (Xero requires one).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    key: Key = None,
    wait: Wait = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after seconds.")] = 120,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
    as_json: AsJson = False,
) -> None:
    """Add an account to the ERP's chart of accounts (a job; listed after the next sync)."""
    body = {"name": name, "account_type": account_type}
    body.update({k: v for k, v in (("number", number), ("description", description)) if v})
    headers = {"Idempotency-Key": key} if key else {}
    with api(data_dir, user) as client:
        job = call(
            client, "POST", connection_path(connection, "accounts"), json=body, headers=headers
        )
        _follow_job(client, job, wait=wait, timeout=timeout, as_json=as_json)


@erp_app.command("update-vendor")
def update_vendor(
    connection: Connection,
    vendor_id: Annotated[str, typer.Argument(help="The vendor (the platform's id).")],
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    legal_name: Annotated[str | None, typer.Option(help="Its legal (registration) name.")] = None,
    tax_id: Annotated[str | None, typer.Option(help="Its tax id.")] = None,
    email: Annotated[str | None, typer.Option(help="Its accounts-receivable e-mail.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Make it active or inactive.")
    ] = None,
    key: Key = None,
    wait: Wait = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after seconds.")] = 120,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
    as_json: AsJson = False,
) -> None:
    """Change a vendor in the ERP: only what is given changes (a job)."""
    body = {
        field: value
        for field, value in (
            ("name", name),
            ("legal_name", legal_name),
            ("tax_id", tax_id),
            ("email", email),
            ("active", active),
        )
        if value is not None
    }
    headers = {"Idempotency-Key": key} if key else {}
    with api(data_dir, user) as client:
        job = call(
            client,
            "PATCH",
            connection_path(connection, "vendors", quote(vendor_id, safe="")),
            json=body,
            headers=headers,
        )
        _follow_job(client, job, wait=wait, timeout=timeout, as_json=as_json)


@erp_app.command("attach")
def attach(
    connection: Connection,
    bill_id: Annotated[str, typer.Argument(help="The ERP bill (the platform's id).")],
    file: Annotated[Path, typer.Argument(help="The file to attach.")],
    key: Key = None,
    wait: Wait = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after seconds.")] = 120,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    user: Person = None,
    as_json: AsJson = False,
) -> None:
    """Attach a file to a bill in the ERP (a job)."""
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", 2) from None
    media = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    headers = {"Idempotency-Key": key} if key else {}
    with api(data_dir, user) as client:
        job = call(
            client,
            "POST",
            connection_path(connection, "bills", quote(bill_id, safe=""), "attachments"),
            files={"file": (file.name, content, media)},
            headers=headers,
        )
        _follow_job(client, job, wait=wait, timeout=timeout, as_json=as_json)


def connection_show(
    connection_id: Annotated[str, typer.Argument(help="The connection.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    runs: Annotated[int, typer.Option(min=1, max=200, help="Sync runs to list.")] = 10,
    as_json: AsJson = False,
) -> None:
    """A connection: health, what its mirror holds, when it last synced, its last sync runs."""
    with api(data_dir, "olivia") as client:
        health = call(client, "GET", connection_path(connection_id, "health"))
        answer = send(
            client, "GET", connection_path(connection_id, "sync-runs"), params={"limit": runs}
        )
    # An API without the books' mirror still shows the connection itself.
    history: dict[str, Any] = answer.json() if answer.status_code == 200 else {"data": []}
    if answer.status_code != 200:
        errors.print(f"no sync history: {error_message(answer)}", highlight=False)
    if as_json:
        print_json({"connection": health, "mirror": history})
        return
    console.print(
        f"{health['id']} · {health.get('platform')} · {health.get('display_name')} "
        f"({health.get('company_id')}) · {health.get('status')}",
        highlight=False,
        markup=False,
    )
    console.print(f"last synced {_when(history.get('last_synced_at'))}", highlight=False)
    counts = history.get("counts") or {}
    last = history.get("kinds_last_synced_at") or {}
    rows = [
        [kind.value, str(counts.get(kind.value, 0)), _when(last.get(kind.value))]
        for kind in MirrorKind
        if counts.get(kind.value) or last.get(kind.value)
    ]
    if rows:
        print_rows(("kind", "objects", "last synced"), rows, title="mirror")
    print_runs(history["data"])


def register_show(connections: typer.Typer) -> None:
    """Add `show` to the `remit connections` group (the stage owns the group)."""
    connections.command("show")(connection_show)


__all__ = ["connection_show", "erp_app", "read_pages", "register_show"]
