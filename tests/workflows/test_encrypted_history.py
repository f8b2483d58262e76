"""With the encrypting converter no bank detail is readable in a bill's history, yet the UI's
codec endpoint shows it decoded, and histories from before encryption still replay."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
from fastapi import FastAPI, Request
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from accounting import BillDraft
from connectors.base import RailKind
from runtime.codec import ENCODING, EncryptionCodec, format_keys, generate_key, remit_data_converter
from starter.api.codec import CODEC_PATH, codec_router, ui_origins
from tests.workflows.harness import Harness, draft, running_remit
from tests.workflows.test_replay import recorded
from workflows.bill import BillWorkflow
from workflows.credit import CreditWorkflow
from workflows.erp_write import ErpWriteWorkflow
from workflows.models import DecisionInput, OperatorAction
from workflows.models import LifecycleStatus as S
from workflows.payment_run import PaymentRunWorkflow
from workflows.sync import SyncWorkflow

# The verified payees of the demo vendors (starter/sandbox_payees.py), which documents name too.
ROUTING = "021000021"
ACCOUNT = "000123456789"
IBAN = "DE02120300000000202051"
SECRETS = (ACCOUNT, ROUTING, IBAN)
UI = "http://127.0.0.1:8233"


def codec() -> EncryptionCodec:
    return EncryptionCodec.from_text(format_keys({"test-1": generate_key()}))


def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload anywhere in a proto message, with the field path that leads to it."""
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        where = f"{path}.{field.name}" if path else field.name
        kind = field.message_type
        assert kind is not None
        items: list[Any]
        if kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].type != FieldDescriptor.TYPE_MESSAGE:
                continue
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                yield where, item
            else:
                yield from payloads_in(item, where)


def euro_draft(number: str) -> BillDraft:
    """A bill from the demo's euro vendor, naming its verified IBAN."""
    return draft(
        number=number,
        vendor="Fabrikam GmbH",
        tax_id="DE999999999",
        currency="EUR",
        amount="120.00",
        bank_account=IBAN,
    )


def is_patch_marker(event: HistoryEvent) -> bool:
    """workflow.patched's marker: the SDK core writes it (the patch id only), not the codec."""
    return (
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    )


async def run_bills(h: Harness) -> list[tuple[str, tuple[str, ...]]]:
    """An approved ACH bill and an auto-approved wire to an IBAN: (workflow id, its details)."""
    approved = await h.submit(
        draft(number="ENC-1", amount="900.00", bank_account=f"{ROUTING}/{ACCOUNT}")
    )
    await h.status(approved, S.awaiting_approval)
    await h.remit.decide(approved, actor="alice", approve=True, comment="fine")
    wired = await h.submit(euro_draft("ENC-2"))
    for workflow_id in (approved, wired):
        assert (await h.result(workflow_id)).status == S.reconciled
    # The payment activity reads the payee master's details (US account -> ACH, IBAN -> wire):
    # encryption hides the document's copy of them from Temporal's history.
    assert sorted(p.rail for p in await h.bank_payments()) == sorted([RailKind.ach, RailKind.wire])
    return [(approved, (ROUTING, ACCOUNT)), (wired, (IBAN,))]


async def test_no_bank_detail_is_readable_in_history_but_the_codec_endpoint_shows_it(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    encrypting = codec()
    async with running_remit(
        time_skipping_env, tmp_path, data_converter=remit_data_converter(encrypting)
    ) as h:
        histories = [
            (await h.remit.handle(wid).fetch_history(), details)
            for wid, details in await run_bills(h)
        ]

    app = FastAPI()
    app.include_router(
        codec_router(
            encrypting,
            allowed_origins=ui_origins(UI),
            namespaces={"default"},
            authorize=anyone,  # who may call: tests/starter/test_edge_api.py
        )
    )
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as http:
        for history, details in histories:
            await check_history(history, details, http)


async def anyone(_: Request) -> str | None:
    return None


async def check_history(
    history: WorkflowHistory, details: tuple[str, ...], http: httpx.AsyncClient
) -> None:
    raw = b"".join(event.SerializeToString() for event in history.events)
    as_json = history.to_json()
    for secret in SECRETS:
        assert secret.encode() not in raw, f"{secret} in {history.workflow_id}'s history"
        assert secret not in as_json

    found = [
        (where, p)
        for event in history.events
        if not is_patch_marker(event)
        for where, p in payloads_in(event)
    ]
    # Search attributes are indexed by the server, so no codec touches them: they must carry
    # nothing sensitive (bill status, vendor name, amount, ...), which the scan above proves.
    encrypted = [p for where, p in found if "search_attributes" not in where]
    assert len(encrypted) > 20
    assert [
        where for where, p in found if p in encrypted and p.metadata["encoding"] != ENCODING
    ] == []
    summaries = [p for where, p in found if where.endswith(("summary", "details"))]
    assert summaries and all(p.metadata["encoding"] == ENCODING for p in summaries)

    # What the Temporal UI does with each page of history: POST its payloads to /decode.
    response = await http.post(
        CODEC_PATH + "/decode",
        json=MessageToDict(Payloads(payloads=encrypted)),
        headers={"X-Namespace": "default", "Origin": UI, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI
    decoded = response.json()["payloads"]
    assert len(decoded) == len(encrypted)
    assert all(base64.b64decode(p["metadata"]["encoding"]) != ENCODING for p in decoded)
    readable = b"\n".join(base64.b64decode(p.get("data", "")) for p in decoded)
    for detail in details:
        assert detail.encode() in readable, f"{detail} not decoded from {history.workflow_id}"
    # The static summary the UI shows in its header decodes too.
    assert any(b"ENC-" in base64.b64decode(p.get("data", "")) for p in decoded)


async def test_histories_from_before_encryption_replay_while_a_migration_allows_plaintext() -> None:
    migrating = EncryptionCodec.from_text(
        format_keys({"test-1": generate_key()}), accept_plaintext=True
    )
    replayer = Replayer(
        workflows=[
            BillWorkflow,
            CreditWorkflow,
            PaymentRunWorkflow,
            SyncWorkflow,
            ErpWriteWorkflow,
        ],
        data_converter=remit_data_converter(migrating),
    )
    paths = recorded()
    assert paths
    for path in paths:
        await replayer.replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))


async def signals_handled(h: Harness, workflow_id: str, count: int) -> None:
    """Wait (bounded) until the bill ran a workflow task after its first `count` signals."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        events = [e async for e in h.remit.handle(workflow_id).fetch_history_events()]
        signalled = [
            i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        if len(signalled) >= count and any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            for e in events[signalled[count - 1] :]
        ):
            return
        assert asyncio.get_running_loop().time() < deadline, "the signals were never handled"
        await asyncio.sleep(0.05)


async def test_a_signal_sent_without_the_key_never_reaches_the_bill(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Signals sent straight to Temporal in plaintext (an approval in an approver's name, a
    cancel) are refused by the worker's codec: the bill never acts on them."""
    encrypting = codec()
    async with running_remit(
        time_skipping_env, tmp_path, data_converter=remit_data_converter(encrypting)
    ) as h:
        wid = await h.submit(draft(number="ENC-4", amount="900.00"))
        await h.status(wid, S.awaiting_approval)
        plaintext = Client(
            time_skipping_env.client.service_client,
            namespace=time_skipping_env.client.namespace,
            data_converter=pydantic_data_converter,
        ).get_workflow_handle(wid)
        await plaintext.signal("decision", DecisionInput(actor="alice", outcome="approve"))
        await plaintext.signal("cancel", OperatorAction(actor="mallory", reason="forged"))
        await signals_handled(h, wid, 2)  # recorded by Temporal, refused by the worker
        state = await h.state(wid)
        assert state.status == S.awaiting_approval and state.decisions == []
        # The same approval through remit (encrypted) is heard.
        await h.remit.decide(wid, actor="alice", approve=True)
        assert (await h.result(wid)).status == S.reconciled


async def test_an_encrypted_history_replays_only_with_its_key(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    encrypting = codec()
    async with running_remit(
        time_skipping_env, tmp_path, data_converter=remit_data_converter(encrypting)
    ) as h:
        wid = await h.submit(euro_draft("ENC-3"))
        await h.result(wid)
        history = await h.remit.handle(wid).fetch_history()

    same_key = Replayer(workflows=[BillWorkflow], data_converter=remit_data_converter(encrypting))
    await same_key.replay_workflow(history)

    other_key = Replayer(workflows=[BillWorkflow], data_converter=remit_data_converter(codec()))
    result = await other_key.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


async def test_without_a_codec_the_same_scan_finds_the_account_number(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The control: the scan above would see a leak, so its silence means something."""
    async with running_remit(time_skipping_env, tmp_path) as h:
        wid = await h.submit(
            draft(number="PLAIN-1", amount="120.00", bank_account=f"{ROUTING}/{ACCOUNT}")
        )
        await h.result(wid)
        history = await h.remit.handle(wid).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    assert ACCOUNT.encode() in raw and ROUTING.encode() in raw
    found = [(where, p) for event in history.events for where, p in payloads_in(event)]
    assert not any(p.metadata.get("encoding") == ENCODING for _, p in found)
    assert any("search_attributes" in where for where, _ in found)
