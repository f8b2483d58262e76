"""Payload encryption (AES-GCM, key rotation) and the codec endpoint the Temporal UI calls."""

from __future__ import annotations

import asyncio
import base64
import stat
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Request
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from runtime.codec import (
    ENCODING,
    KEY_ID_METADATA,
    REFUSED_ENCODING,
    EncryptionCodec,
    PayloadDecryptionError,
    format_keys,
    generate_key,
    parse_keys,
    remit_data_converter,
)
from runtime.settings import Settings
from runtime.temporal import payload_codec
from sandbox.stack import (
    PAYLOAD_KEYS_FILE,
    dev_server_command,
    free_port,
    load_or_create_payload_keys,
    stack_payload_codec,
    temporal_executable,
)
from starter.api import assemble_app
from starter.api.codec import CODEC_PATH, codec_authorizer, codec_router, ui_origins
from starter.client import RemitClient
from tests.workflows.harness import draft

ACCOUNT = "000123456789"
IBAN = "DE89370400440532013000"
UI = "http://127.0.0.1:8233"


def codec_with(current: str, **keys: bytes) -> EncryptionCodec:
    return EncryptionCodec(keys, current)


K1 = base64.b64decode(generate_key())
K2 = base64.b64decode(generate_key())


def plain(value: Any) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


# ---------------------------------------------------------------------------------------------
# The codec
# ---------------------------------------------------------------------------------------------


async def test_a_payload_round_trips_and_its_bytes_hide_the_account_number() -> None:
    codec = codec_with("k1", k1=K1)
    original = plain(draft(bank_account=f"021000021/{ACCOUNT}"))
    assert ACCOUNT.encode() in original.data

    [sealed] = await codec.encode([original])

    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"k1"
    assert ACCOUNT.encode() not in sealed.SerializeToString()
    assert [original] == await codec.decode([sealed])


async def test_the_same_payload_twice_never_encrypts_the_same_way() -> None:
    codec = codec_with("k1", k1=K1)
    first, second = await codec.encode([plain(IBAN), plain(IBAN)])
    assert first.data != second.data
    assert first.data[:12] != second.data[:12]  # fresh nonce each time


async def test_rotation_decodes_old_payloads_and_encrypts_new_ones_with_the_new_key() -> None:
    before = codec_with("k1", k1=K1)
    [old] = await before.encode([plain(ACCOUNT)])

    after = codec_with("k2", k1=K1, k2=K2)
    [new] = await after.encode([plain(ACCOUNT)])

    assert new.metadata[KEY_ID_METADATA] == b"k2"
    assert await after.decode([old, new]) == [plain(ACCOUNT), plain(ACCOUNT)]
    # k1 retired too early: the message names the missing key id and the setting to fix.
    retired = codec_with("k2", k2=K2)
    with pytest.raises(PayloadDecryptionError, match="key id 'k1'.*REMIT_ENCRYPTION_KEYS"):
        await retired.decode([old])


async def test_an_altered_payload_or_a_swapped_key_id_is_refused() -> None:
    codec = codec_with("k1", k1=K1, k2=K2)
    [sealed] = await codec.encode([plain(ACCOUNT)])

    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError, match="altered"):
        await codec.decode([tampered])

    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_METADATA] = b"k2"
    with pytest.raises(PayloadDecryptionError):
        await codec.decode([relabelled])


async def test_a_payload_that_is_not_encrypted_is_refused() -> None:
    codec = codec_with("k1", k1=K1)
    forged = plain({"amount": Decimal("12.50")})
    [refused] = await codec.decode([forged])
    assert refused.metadata["encoding"] == REFUSED_ENCODING and refused.data == b""
    with pytest.raises(KeyError, match="Unknown payload encoding"):
        pydantic_data_converter.payload_converter.from_payloads([refused], [dict])


async def test_plaintext_passes_only_while_a_migration_allows_it() -> None:
    codec = EncryptionCodec({"k1": K1}, "k1", accept_plaintext=True)
    original = plain({"amount": Decimal("12.50")})
    assert await codec.decode([original]) == [original]


def test_bad_key_settings_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        parse_keys("k1:not base64!")
    with pytest.raises(ValueError, match="16 bytes; AES-256 needs 32"):
        parse_keys("k1:" + base64.b64encode(b"x" * 16).decode())
    with pytest.raises(ValueError, match="kid:<base64 key>"):
        parse_keys(generate_key())
    with pytest.raises(ValueError, match="given twice"):
        parse_keys(format_keys({"k1": generate_key()}) + "," + format_keys({"k1": generate_key()}))
    with pytest.raises(ValueError, match="'k9' is not among the configured keys"):
        EncryptionCodec.from_text(format_keys({"k1": generate_key()}), "k9")


def test_settings_choose_the_current_key_and_no_keys_mean_no_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REMIT_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("REMIT_ENCRYPTION_KEY_ID", raising=False)
    assert payload_codec(Settings()) is None

    keys = format_keys({"k2": generate_key(), "k1": generate_key()})
    monkeypatch.setenv("REMIT_ENCRYPTION_KEYS", keys)
    settings = Settings()
    assert keys not in repr(settings)  # a secret, never printed
    codec = payload_codec(settings)
    assert codec is not None and codec.current_key_id == "k2" and codec.key_ids == ["k2", "k1"]

    monkeypatch.setenv("REMIT_ENCRYPTION_KEY_ID", "k1")
    codec = payload_codec(Settings())
    assert codec is not None and codec.current_key_id == "k1"


async def test_the_converter_encrypts_values_and_failure_messages() -> None:
    converter = remit_data_converter(codec_with("k1", k1=K1))
    bill = draft(bank_account=IBAN)

    [payload] = await converter.encode([bill])
    assert IBAN.encode() not in payload.SerializeToString()
    assert await converter.decode([payload], [type(bill)]) == [bill]

    # A refusal quoting the account would otherwise sit in the history as plain text.
    failure = Failure()
    error = ApplicationError(f"the bank refused IBAN {IBAN}", type="Rejected")
    await converter.encode_failure(error, failure)
    assert IBAN.encode() not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and IBAN in decoded.message

    assert remit_data_converter(None) is pydantic_data_converter


# ---------------------------------------------------------------------------------------------
# The embedded stack's key and the dev server's UI
# ---------------------------------------------------------------------------------------------


def test_the_stack_keeps_its_payload_key_private_and_stable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REMIT_ENCRYPTION_KEYS", raising=False)
    keys = load_or_create_payload_keys(tmp_path)
    assert stat.S_IMODE((tmp_path / PAYLOAD_KEYS_FILE).stat().st_mode) == 0o600
    assert load_or_create_payload_keys(tmp_path) == keys
    assert len(parse_keys(keys)) == 1
    assert stack_payload_codec(tmp_path).key_ids == list(parse_keys(keys))

    configured = format_keys({"prod-7": generate_key()})
    monkeypatch.setenv("REMIT_ENCRYPTION_KEYS", configured)
    assert stack_payload_codec(tmp_path).current_key_id == "prod-7"


def test_the_dev_server_ui_is_pointed_at_the_codec_endpoint(tmp_path: Path) -> None:
    endpoint = "http://127.0.0.1:8000" + CODEC_PATH
    command = dev_server_command(
        "temporal",
        host="127.0.0.1",
        port=7233,
        ui_port=8233,
        db_file=tmp_path / "t.db",
        namespace="default",
        codec_endpoint=endpoint,
    )
    assert command[command.index("--ui-codec-endpoint") + 1] == endpoint
    headless = dev_server_command(
        "temporal",
        host="127.0.0.1",
        port=7233,
        ui_port=None,
        db_file=tmp_path / "t.db",
        namespace="default",
        codec_endpoint=endpoint,
    )
    assert "--ui-codec-endpoint" not in headless


# ---------------------------------------------------------------------------------------------
# The codec endpoint
# ---------------------------------------------------------------------------------------------


async def let_in(_: Request) -> str | None:
    # The protocol is what these tests are about; who may call it: the authorize tests below
    # and tests/starter/test_edge_api.py.
    return None


def codec_app(codec: EncryptionCodec, **options: Any) -> FastAPI:
    options.setdefault("authorize", let_in)
    app = FastAPI()
    app.include_router(
        codec_router(codec, allowed_origins=ui_origins(UI), namespaces={"default"}, **options)
    )
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = codec_app(codec_with("k1", k1=K1))
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
        yield client


def as_json(*payloads: Payload) -> dict[str, Any]:
    return MessageToDict(Payloads(payloads=payloads))


def from_json(body: dict[str, Any]) -> list[Payload]:
    return list(ParseDict(body, Payloads()).payloads)


async def test_the_ui_decodes_what_the_worker_encrypted(http: httpx.AsyncClient) -> None:
    [sealed] = await codec_with("k1", k1=K1).encode([plain(f"021000021/{ACCOUNT}")])
    response = await http.post(
        CODEC_PATH + "/decode",
        json=as_json(sealed),
        headers={"X-Namespace": "default", "Origin": UI},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI
    assert response.headers["access-control-allow-credentials"] == "true"
    # The wire form is proto JSON: metadata values and data in base64.
    [decoded] = response.json()["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert ACCOUNT.encode() in base64.b64decode(decoded["data"])
    assert from_json(response.json()) == [plain(f"021000021/{ACCOUNT}")]


async def test_encode_then_decode_through_the_cli_namespace_path(http: httpx.AsyncClient) -> None:
    encoded = await http.post(CODEC_PATH + "/default/encode", json=as_json(plain(IBAN)))
    assert encoded.status_code == 200, encoded.text
    [sealed] = from_json(encoded.json())
    assert sealed.metadata["encoding"] == ENCODING and IBAN.encode() not in sealed.data

    decoded = await http.post(CODEC_PATH + "/default/decode", json=encoded.json())
    assert from_json(decoded.json()) == [plain(IBAN)]
    empty = await http.post(CODEC_PATH + "/decode", json={"payloads": []})
    assert empty.json() == {"payloads": []}


async def test_the_browser_preflight_is_answered_for_the_ui_only(http: httpx.AsyncClient) -> None:
    for origin in ui_origins(UI):
        response = await http.options(
            CODEC_PATH + "/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "POST" in response.headers["access-control-allow-methods"]
        allowed = response.headers["access-control-allow-headers"]
        assert {"content-type", "x-namespace", "authorization"} <= set(allowed.split(", "))

    evil = "http://evil.example"
    refused = await http.options(
        CODEC_PATH + "/decode",
        headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    # A page elsewhere cannot have an operator's browser decode for it either.
    [sealed] = await codec_with("k1", k1=K1).encode([plain(ACCOUNT)])
    posted = await http.post(CODEC_PATH + "/decode", json=as_json(sealed), headers={"Origin": evil})
    assert posted.status_code == 403 and ACCOUNT not in posted.text


async def test_bad_requests_get_messages_a_person_can_act_on(http: httpx.AsyncClient) -> None:
    other = await http.post(
        CODEC_PATH + "/decode", json={"payloads": []}, headers={"X-Namespace": "other"}
    )
    assert other.status_code == 404 and "'other' is not served" in other.json()["detail"]

    garbage = await http.post(
        CODEC_PATH + "/decode", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400 and "send JSON" in garbage.json()["detail"]

    wrongs: list[dict[str, Any]] = [{"payloads": [{"data": 5}]}, {"payloads": "x"}, {"payload": []}]
    for wrong in wrongs:
        refused = await http.post(CODEC_PATH + "/decode", json=wrong)
        assert refused.status_code == 400 and "proto JSON" in refused.json()["detail"]
    listed = await http.post(CODEC_PATH + "/decode", json=[])
    assert listed.status_code == 400 and '{"payloads": [...]}' in listed.json()["detail"]

    [foreign] = await codec_with("k9", k9=K2).encode([plain(ACCOUNT)])
    unknown = await http.post(CODEC_PATH + "/decode", json=as_json(foreign), headers={"Origin": UI})
    assert unknown.status_code == 400 and "'k9'" in unknown.json()["detail"]
    assert unknown.headers["access-control-allow-origin"] == UI  # so the UI can show why


async def test_an_authorize_hook_guards_the_endpoint_in_production() -> None:
    async def bearer_only(request: Request) -> str | None:
        if request.headers.get("authorization") == "Bearer operator-token":
            return None
        return "send the Temporal UI's access token (codec.passAccessToken)"

    app = codec_app(codec_with("k1", k1=K1), authorize=bearer_only)
    transport = httpx.ASGITransport(app=cast(Any, app))
    [sealed] = await codec_with("k1", k1=K1).encode([plain(ACCOUNT)])
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
        refused = await client.post(CODEC_PATH + "/decode", json=as_json(sealed))
        assert refused.status_code == 401 and ACCOUNT not in refused.text
        allowed = await client.post(
            CODEC_PATH + "/decode",
            json=as_json(sealed),
            headers={"Authorization": "Bearer operator-token"},
        )
        assert from_json(allowed.json()) == [plain(ACCOUNT)]


async def test_the_api_app_answers_the_ui_preflight_but_decodes_nothing_without_a_key(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """As `remit up` wires it: the UI's browser reaches the codec through remit's API, and
    without credentials it learns nothing (the credentials: tests/starter/test_edge_api.py)."""
    codec = codec_with("k1", k1=K1)
    app = assemble_app(
        RemitClient(time_skipping_env.client),
        bank_webhook_secret="whsec_test",
        extra_routers=[
            codec_router(
                codec,
                allowed_origins=ui_origins(UI),
                namespaces={"default"},
                authorize=codec_authorizer(),
            )
        ],
    )
    [sealed] = await codec.encode([plain(IBAN)])
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
        preflight = await client.options(
            CODEC_PATH + "/decode",
            headers={"Origin": UI, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == UI
        for headers in ({}, {"Authorization": "Bearer rk_not.a-key"}):
            response = await client.post(
                CODEC_PATH + "/decode",
                json=as_json(sealed),
                headers={"Origin": UI, "X-Namespace": "default", **headers},
            )
            assert response.status_code == 401, response.text
            assert IBAN not in response.text and response.headers["www-authenticate"] == "Bearer"


async def test_the_dev_server_ui_reports_remit_as_its_codec_server(tmp_path: Path) -> None:
    """The real `temporal` binary takes the flag and its UI hands the endpoint to browsers."""
    ui_port = free_port()
    endpoint = f"http://127.0.0.1:{free_port()}{CODEC_PATH}"
    command = dev_server_command(
        temporal_executable(),
        host="127.0.0.1",
        port=free_port(),
        ui_port=ui_port,
        db_file=tmp_path / "temporal.db",
        namespace="default",
        codec_endpoint=endpoint,
    )
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        settings = await ui_settings(f"http://127.0.0.1:{ui_port}", within=60.0)
    finally:
        process.terminate()
        await process.wait()
    assert settings["Codec"]["Endpoint"] == endpoint
    # The dev server's UI forwards no credentials: hence no API key on the codec routes.
    assert settings["Codec"]["PassAccessToken"] is False
    assert settings["Codec"]["IncludeCredentials"] is False


async def ui_settings(ui_url: str, *, within: float) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                response = await client.get(ui_url + "/api/v1/settings")
                if response.status_code == 200:
                    return cast(dict[str, Any], response.json())
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the Temporal UI at {ui_url} did not answer")
            await asyncio.sleep(0.2)
