"""The request log: batches written at once, newest first in pages, filters, redaction, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from connectors.registry import available_platforms
from store import InvalidCursor, RequestLogRow, RequestLogStore, Store
from store.request_log import REDACTED, redact, redact_path
from tests.workflows.harness import Harness, draft, running_remit

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LWFjY2Vzcy10b2tlbg.sig"
CLIENT_SECRET = "cs_live_9f8e7d6c5b4a"


def row(n: int, *, status: int | None = 200, connection: str = "conn-1") -> RequestLogRow:
    return RequestLogRow(
        connection_id=connection,
        at=NOW + timedelta(seconds=n),
        actor="post_bill_payment",
        workflow_id="bill/conn-1/INV-1",
        method="POST" if n % 2 else "GET",
        path=f"/v3/company/123/bill/{n}",
        status=status,
        outcome="ok" if status and status < 400 else "Rejected",
        duration_ms=12.5,
        attempt=1,
    )


def test_pages_newest_first_with_filters(store: Store) -> None:
    log = RequestLogStore(store)
    assert log.append([row(n, status=200 if n < 4 else 400) for n in range(6)]) == 6
    log.append([row(9, status=None), row(10, connection="conn-2")])

    first, cursor = log.list("conn-1", limit=4)
    assert [r.path.rsplit("/", 1)[-1] for r in first] == ["9", "5", "4", "3"]
    assert cursor is not None
    rest, end = log.list("conn-1", limit=4, cursor=cursor)
    assert [r.path.rsplit("/", 1)[-1] for r in rest] == ["2", "1", "0"] and end is None

    failed, _ = log.list("conn-1", min_status=400)
    assert [r.status for r in failed] == [400, 400]
    with_unanswered, _ = log.list("conn-1", min_status=400, failed=True)
    assert [r.status for r in with_unanswered] == [None, 400, 400]
    recent, _ = log.list("conn-1", since=NOW + timedelta(seconds=4))
    assert len(recent) == 3
    with pytest.raises(InvalidCursor):
        log.list("conn-1", cursor="nope")

    assert log.purge(older_than=NOW + timedelta(seconds=3)) == 3
    assert len(log.list("conn-1")[0]) == 4


def test_redaction_masks_tokens_secrets_and_bank_numbers() -> None:
    message = (
        f"invalid_client: client_secret={CLIENT_SECRET} header Authorization: Bearer {TOKEN} "
        "account 000123456789 iban DE89370400440532013000 amount 12.50"
    )
    cleaned = redact(message, [TOKEN])
    assert cleaned is not None
    assert TOKEN not in cleaned and CLIENT_SECRET not in cleaned
    assert "000123456789" not in cleaned and "DE89370400440532013000" not in cleaned
    assert "••••6789" in cleaned and "amount 12.50" in cleaned and REDACTED in cleaned
    realm = "9130355377322596"
    path = f"/v3/company/{realm}/bill/42?minorversion=75&access_token={TOKEN}"
    assert redact_path(path, [TOKEN], keep=[realm]) == f"/v3/company/{realm}/bill/42"
    assert redact(None) is None


def test_no_secret_reaches_a_stored_field(store: Store) -> None:
    log = RequestLogStore(store)
    log.append(
        [
            row(1).model_copy(
                update={
                    "path": redact_path(f"/token/{TOKEN}", [TOKEN, CLIENT_SECRET]),
                    "error_message": redact(f"bad secret {CLIENT_SECRET}", [CLIENT_SECRET]),
                }
            )
        ]
    )
    with store.engine.connect() as connection:
        dumped = repr(connection.execute(text("SELECT * FROM request_log")).fetchall())
    assert TOKEN not in dumped and CLIENT_SECRET not in dumped


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


async def test_a_bills_run_leaves_its_erp_calls_in_the_log_with_no_secret(h: Harness) -> None:
    wid = await h.submit(draft(amount="120.00"))
    final = await h.result(wid)
    assert final.status == "reconciled", final.last_error

    rows, _ = RequestLogStore(h.store).list(h.connection.id, limit=500)
    assert rows, "the bill's ERP calls were not logged"
    assert {r.workflow_id for r in rows} == {wid}
    actors = {r.actor.split(" ")[0] for r in rows}
    assert {"match_bill", "post_bill", "post_bill_payment", "reconcile_bill"} <= actors
    writes = [r for r in rows if r.method != "GET" and r.actor.startswith("post_bill_payment")]
    assert writes and all(r.status is not None and r.status < 300 for r in writes)
    assert all("?" not in r.path and r.duration_ms >= 0 for r in rows)

    secrets = [str(v) for v in h.connection.credentials.values() if isinstance(v, str) and v]
    assert secrets
    with h.store.engine.connect() as connection:
        dumped = repr(connection.execute(text("SELECT * FROM request_log")).fetchall())
    for secret in secrets:
        assert secret not in dumped
