"""Keys scoped to connections, documents only on one's own open bills, and the edge's 4xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from runtime.settings import Settings
from starter.api.auth import Principal, connection_of
from store import ApiKeys, ConnectionRow, RunStore
from store.api_keys import ALL_CONNECTIONS
from tests.starter.api_harness import (
    EXAMPLES,
    ApiHarness,
    fresh_time_skipping_env,
    running_api,
    sample_bill,
)
from tests.store.conftest import make_bill
from workflows.models import LifecycleStatus as S

OTHER = "other-co"
OTHER_BILL = f"bill/{OTHER}/custom-key"


class Scoped:
    """The harness plus a second company and keys limited to one of the two."""

    def __init__(self, api: ApiHarness) -> None:
        self.api = api
        self.here = api.h.connection.id
        keys = ApiKeys(api.h.store.engine)

        def key(user: str, scope: str, connections: Any) -> dict[str, str]:
            token = keys.issue(user, [scope], connections=connections).token
            return {"Authorization": f"Bearer {token}"}

        self.sam = key("sam", "submit", [self.here])
        self.alice = key("alice", "decide", [self.here])
        self.ops = key("olivia", "admin", [self.here])
        self.other_ops = key("olivia", "admin", [OTHER])
        self.everything = key("olivia", "admin", ALL_CONNECTIONS)


@pytest.fixture
async def scoped(tmp_path: Path) -> AsyncIterator[Scoped]:
    async with fresh_time_skipping_env() as env, running_api(env, tmp_path) as api:
        now = datetime.now(UTC)
        api.h.store.upsert_connection(
            ConnectionRow(
                id=OTHER,
                platform="quickbooks",
                company_id="other-company",
                display_name="Another customer",
                base_url="http://127.0.0.1:1",
                created_at=now,
                updated_at=now,
            )
        )
        # Another connection's bill, as the store projected it (a caller-chosen key, no sha).
        api.h.store.upsert_bill(
            make_bill(OTHER_BILL, connection_id=OTHER, bill_key="custom-key", created_at=now)
        )
        yield Scoped(api)


async def test_a_key_sees_and_acts_on_only_its_connections(scoped: Scoped) -> None:
    api, http = scoped.api, scoped.api.http
    submitted = await http.post(
        "/v1/bills", content=json.dumps(sample_bill("INV-SCOPE-1")), headers=scoped.sam
    )
    assert submitted.status_code == 202, submitted.text
    mine = submitted.json()["id"]
    await api.until(mine, lambda s: s["status"] == S.awaiting_approval)

    async def listed(headers: dict[str, str], **params: str) -> list[str]:
        page = await http.get("/v1/bills", params=params, headers=headers)
        assert page.status_code == 200, page.text
        return [bill["id"] for bill in page.json()["data"]]

    assert await listed(scoped.sam) == [mine]
    assert await listed(scoped.sam, connection=OTHER) == []
    assert await listed(scoped.other_ops) == [OTHER_BILL]
    assert sorted(await listed(scoped.everything)) == sorted([mine, OTHER_BILL])

    # Another connection's bill answers exactly as a bill that does not exist.
    hidden = await http.get(f"/v1/bills/{OTHER_BILL}", headers=scoped.sam)
    missing = await http.get(f"/v1/bills/bill/{scoped.here}/no-such-bill", headers=scoped.sam)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == f"no bill {OTHER_BILL!r}"
    for method, path, headers, body in [
        ("GET", f"{OTHER_BILL}/attachments/{'0' * 64}", scoped.sam, None),
        ("POST", f"{OTHER_BILL}/decisions", scoped.alice, {"decision": "approve"}),
        ("POST", f"{OTHER_BILL}/payments", scoped.alice, {"pay_on": "today"}),
        ("POST", f"{OTHER_BILL}/cancel", scoped.ops, {"reason": "not mine"}),
        ("POST", f"{mine}/cancel", scoped.other_ops, {"reason": "not mine"}),
        ("POST", f"{mine}/retry", scoped.other_ops, None),
        ("GET", mine, scoped.other_ops, None),
    ]:
        answer = await http.request(method, f"/v1/bills/{path}", json=body, headers=headers)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["type"] == "not_found"

    # A key for every connection reads the other bill; its custom key names no document.
    seen = await http.get(f"/v1/bills/{OTHER_BILL}", headers=scoped.everything)
    assert seen.status_code == 200, seen.text
    assert seen.json()["source"] == "store" and seen.json()["attachments"] == []

    # Submitting to another connection is refused as if it did not exist.
    refused = await http.post(
        "/v1/bills",
        params={"connection_id": OTHER},
        content=json.dumps(sample_bill("INV-SCOPE-2")),
        headers=scoped.sam,
    )
    unknown = await http.post(
        "/v1/bills",
        params={"connection_id": "nobody-co"},
        content=json.dumps(sample_bill("INV-SCOPE-2")),
        headers=scoped.sam,
    )
    assert refused.status_code == unknown.status_code == 422
    assert refused.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
        "nobody-co", OTHER
    )


async def test_connections_are_scoped_and_share_one_health_model(scoped: Scoped) -> None:
    http = scoped.api.http

    listed = await http.get("/v1/connections", headers=scoped.ops)
    assert [c["id"] for c in listed.json()["data"]] == [scoped.here]
    everything = await http.get("/v1/connections", headers=scoped.everything)
    assert {c["id"] for c in everything.json()["data"]} == {scoped.here, OTHER}
    for path in (f"/v1/connections/{OTHER}", f"/v1/connections/{OTHER}/health"):
        answer = await http.get(path, headers=scoped.ops)
        assert answer.status_code == 404 and "no connection" in answer.json()["error"]["message"]

    health = await http.get(f"/v1/connections/{scoped.here}/health", headers=scoped.ops)
    assert health.status_code == 200, health.text
    body = health.json()
    # The CLI's model: the platform, rate limiting and token renewal, with `healthy`.
    assert body["healthy"] is True and body["rate_limited"] is False
    assert body["platform"] == "quickbooks" and "renewable" in body

    # A key limited to some connections cannot add one (it could never see it).
    added = await http.post(
        "/v1/connections",
        json={"platform": "quickbooks", "company_id": "x", "base_url": "http://127.0.0.1:1"},
        headers=scoped.ops,
    )
    assert added.status_code == 403 and "every connection" in added.json()["error"]["message"]
    zoned = await http.post(
        "/v1/connections",
        json={
            "platform": "quickbooks",
            "company_id": "x",
            "base_url": "http://127.0.0.1:1",
            "settings": {"timezone": "Europe/Berlinn"},
        },
        headers=scoped.everything,
    )
    assert zoned.status_code == 422 and "Europe/Berlinn" in zoned.json()["error"]["message"]

    for path in (
        f"/v1/payment-runs/payment-run/{OTHER}/2026-12-01",
        f"/v1/credits/credit/{OTHER}/c",
    ):
        answer = await http.get(path, headers=scoped.ops)
        assert answer.status_code == 404, answer.text
    store = RunStore(scoped.api.h.store)
    for connection_id, day in [(scoped.here, 1), (OTHER, 2), (scoped.here, 3)]:
        run_id = f"payment-run/{connection_id}/2026-12-0{day}"
        store.record(
            run_id=run_id,
            connection_id=connection_id,
            run_date=date(2026, 12, day),
            status="proposed",
            revision=1,
            state={"run_id": run_id, "connection_id": connection_id, "run_date": f"2026-12-0{day}"},
        )

    async def runs(headers: dict[str, str], **params: str) -> list[str]:
        answer = await http.get("/v1/payment-runs", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return [run["id"] for run in answer.json()["data"]]

    assert await runs(scoped.ops) == [
        f"payment-run/{scoped.here}/2026-12-03",
        f"payment-run/{scoped.here}/2026-12-01",
    ]
    assert await runs(scoped.ops, limit="1") == [f"payment-run/{scoped.here}/2026-12-03"]
    assert await runs(scoped.ops, connection=OTHER) == []
    assert len(await runs(scoped.everything)) == 3


async def test_a_document_joins_only_an_open_bill(scoped: Scoped) -> None:
    api, http = scoped.api, scoped.api.http
    first = sample_bill("INV-ATTACH-1")

    async def submit(bill: dict[str, Any]) -> Any:
        return await http.post(
            "/v1/bills", params={"key": "att-1"}, content=json.dumps(bill), headers=scoped.sam
        )

    created = await submit(first)
    assert created.status_code == 202 and created.json()["created"] is True
    bill_id = created.json()["id"]
    await api.until(bill_id, lambda s: s["status"] == S.awaiting_approval)

    # While it is open, another document under the same key is attached to it.
    amended = await submit({**first, "memo": "amended copy"})
    assert amended.status_code == 202 and amended.json()["id"] == bill_id
    assert amended.json()["created"] is False
    assert len((await api.bill(bill_id))["attachments"]) == 2

    approved = await http.post(
        f"/v1/bills/{bill_id}/decisions", json={"decision": "approve"}, headers=scoped.alice
    )
    assert approved.status_code == 200, approved.text
    final = await api.h.result(bill_id)
    assert final.status == S.reconciled, final.last_error

    late = await submit({**first, "memo": "sneaked in after payment"})
    assert late.status_code == 409, late.text
    assert "reconciled" in late.json()["error"]["message"]
    assert late.json()["error"]["param"] == "key"
    # The very same document again is no change: the answer stays the bill's.
    again = await submit(first)
    assert again.status_code == 202 and again.json()["created"] is False
    assert len((await api.bill(bill_id))["attachments"]) == 2


async def test_any_file_name_downloads_and_bad_ids_are_404(scoped: Scoped) -> None:
    api, http = scoped.api, scoped.api.http
    name = "Rechnung Müller 東京.xml"
    content = (EXAMPLES / "invoice-ubl.xml").read_bytes()
    submitted = await http.post(
        "/v1/bills",
        files={"file": (name, content, "application/xml")},
        headers=scoped.sam,
    )
    assert submitted.status_code == 202, submitted.text
    [attachment] = (await api.bill(submitted.json()["id"]))["attachments"]
    assert attachment["file_name"] == name

    download = await http.get(attachment["url"], headers=scoped.sam)

    assert download.status_code == 200 and download.content == content
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Rechnung M_ller __.xml"')
    assert f"filename*=UTF-8''{quote(name, safe='')}" in disposition
    for bad in ("not-a-sha", "../../../etc/passwd", "A" * 64):
        answer = await http.get(
            f"/v1/bills/{submitted.json()['id']}/attachments/{quote(bad, safe='')}",
            headers=scoped.sam,
        )
        assert answer.status_code == 404, (bad, answer.text)


async def test_line_items_are_capped_with_a_clear_422(scoped: Scoped) -> None:
    http = scoped.api.http
    bill = sample_bill("INV-HUGE", "1001.00")
    bill["line_items"] = [
        {"description": f"item {n}", "total_amount": "1.00", "account": "Office Supplies"}
        for n in range(1001)
    ]
    document = json.dumps(bill).encode()

    as_json = await http.post("/v1/bills", content=document, headers=scoped.sam)
    as_file = await http.post(
        "/v1/bills", files={"file": ("huge.json", document, "application/json")}, headers=scoped.sam
    )

    as_credit = await http.post("/v1/credits", content=document, headers=scoped.sam)

    for answer in (as_json, as_file, as_credit):
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert "1,001 line items" in message and "at most 1,000" in message


async def test_pay_on_today_is_the_connections_today(scoped: Scoped) -> None:
    api, http = scoped.api, scoped.api.http
    row = api.h.store.get_connection(scoped.here)
    assert row is not None
    # A zone whose date is not UTC's right now (UTC+14 or UTC-11), so UTC's today would fail.
    utc_today = datetime.now(UTC).date()
    zone = next(
        z
        for z in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
        if datetime.now(ZoneInfo(z)).date() != utc_today
    )
    row.settings = {**row.settings, "timezone": zone}
    api.h.store.upsert_connection(row)

    submitted = await http.post(
        "/v1/bills",
        params={"pay_on": "Today"},
        content=json.dumps(sample_bill("INV-TODAY")),
        headers=scoped.sam,
    )

    assert submitted.status_code == 202, submitted.text
    state = (await api.bill(submitted.json()["id"]))["state"]
    assert state["pay_on"] == datetime.now(ZoneInfo(zone)).date().isoformat()
    bad = await http.post(
        "/v1/bills",
        params={"pay_on": "tomorrow"},
        content=json.dumps(sample_bill("INV-TODAY-2")),
        headers=scoped.sam,
    )
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "pay_on"


async def test_payees_and_their_changes_are_scoped_too(scoped: Scoped) -> None:
    api, http = scoped.api, scoped.api.http
    [vendor] = await api.h.erp.find_vendors(name="Northwind Office Supply")
    mine = (await http.get("/v1/payees", headers=scoped.sam)).json()["data"]
    assert mine and {p["connection_id"] for p in mine} == {scoped.here}
    assert (await http.get("/v1/payees", headers=scoped.other_ops)).json()["data"] == []
    hidden = await http.get(f"/v1/payees/{mine[0]['id']}", headers=scoped.other_ops)
    assert hidden.status_code == 404

    body = {
        "connection_id": scoped.here,
        "vendor_id": vendor.id,
        "vendor_name": "Northwind Office Supply",
        "details": {"routing_number": "011000015", "account_number": "000987654321"},
        "reason": "letter of 2026-11-30 on the vendor's letterhead",
    }
    elsewhere = await http.post(
        "/v1/payees/changes", json={**body, "connection_id": OTHER}, headers=scoped.sam
    )
    assert elsewhere.status_code == 422 and f"no connection {OTHER!r}" in elsewhere.text
    proposed = await http.post("/v1/payees/changes", json=body, headers=scoped.sam)
    assert proposed.status_code == 201, proposed.text
    change_id = proposed.json()["id"]

    others = await http.get("/v1/payees/changes", headers=scoped.other_ops)
    assert change_id not in {c["id"] for c in others.json()["data"]}
    for method, path, payload in [
        ("GET", f"/v1/payees/changes/{change_id}", None),
        ("POST", f"/v1/payees/changes/{change_id}/verify", {"method": "call-back on file"}),
        ("POST", f"/v1/payees/changes/{change_id}/reject", {"reason": "not ours to judge"}),
    ]:
        answer = await http.request(method, path, json=payload, headers=scoped.other_ops)
        assert answer.status_code == 404, (path, answer.text)
    still = await http.get(f"/v1/payees/changes/{change_id}", headers=scoped.ops)
    assert still.status_code == 200 and still.json()["status"] == "proposed"


async def test_a_raw_body_names_its_file_in_any_script(scoped: Scoped) -> None:
    api, http = scoped.api, scoped.api.http
    content = (EXAMPLES / "invoice-ubl.xml").read_bytes()
    name = "Rechnung 東京.xml"

    async def submit(disposition: bytes, key: str) -> Any:
        return await http.post(
            "/v1/bills",
            params={"key": key},
            content=content,
            headers={
                **{name.encode(): value.encode() for name, value in scoped.sam.items()},
                b"content-type": b"application/xml",
                b"content-disposition": disposition,
            },
        )

    encoded = await submit(f"attachment; filename*=UTF-8''{quote(name)}".encode(), "raw-1")
    raw_utf8 = await submit(f'attachment; filename="{name}"'.encode(), "raw-2")
    broken = await submit(b"attachment; filename*=UTF-8''%FF%FE.xml", "raw-3")

    for answer in (encoded, raw_utf8):
        assert answer.status_code == 202, answer.text
        [attachment] = (await api.bill(answer.json()["id"]))["attachments"]
        assert attachment["file_name"] == name
    assert broken.status_code == 400 and "filename*" in broken.json()["error"]["message"]


def test_what_a_principal_may_see() -> None:
    limited = Principal("k1", "sam", frozenset({"submit"}), connections=frozenset({"qb-1"}))
    everything = Principal("k2", "olivia", frozenset({"admin"}), connections=None)

    assert limited.sees("qb-1") and not limited.sees("qb-2") and not limited.sees(None)
    assert everything.sees("qb-2") and everything.sees(None)  # an id that names no connection
    assert limited.visible() == {"qb-1"} and limited.visible("qb-2") == frozenset()
    assert everything.visible() is None and everything.visible("qb-2") == {"qb-2"}
    assert connection_of("bill/qb-1/INV-1-abc") == "qb-1" and connection_of("nonsense") is None


def test_the_edge_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_LINE_ITEMS", "WEBHOOK_ALLOW_PRIVATE_TARGETS", "DEFAULT_TIMEZONE"):
        monkeypatch.delenv(f"REMIT_{name}", raising=False)
    defaults = Settings()
    assert defaults.max_line_items == 1000 and defaults.webhook_allow_private_targets is False
    monkeypatch.setenv("REMIT_MAX_LINE_ITEMS", "250")
    monkeypatch.setenv("REMIT_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    monkeypatch.setenv("REMIT_DEFAULT_TIMEZONE", "America/Chicago")
    chosen = Settings()
    assert (chosen.max_line_items, chosen.webhook_allow_private_targets) == (250, True)
    assert chosen.default_timezone == "America/Chicago"
    monkeypatch.setenv("REMIT_DEFAULT_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus_Mons'"):
        Settings()
