"""`remit up` encrypts payloads and its UI decodes them through remit's codec endpoint."""

from __future__ import annotations

import asyncio
import base64
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payloads

from runtime.codec import ENCODING
from sandbox.stack import INBOX_SESSION_KEY_FILE, Stack, StackOptions, load_or_create_secret
from starter.api.codec import CODEC_PATH, INBOX_CODEC_PATH
from starter.api.inbox import magic_link
from tests.workflows.test_encrypted_history import (
    IBAN,
    euro_draft,
    is_patch_marker,
    payloads_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_the_embedded_ui_decodes_an_encrypted_bill_through_the_api(tmp_path: Path) -> None:
    async with Stack(StackOptions.on_free_ports(tmp_path)) as stack:
        info = stack.info
        assert info is not None and info.temporal.ui_url and stack.remit is not None
        emulator = info.emulators[0]
        result = await stack.remit.submit_bill(
            euro_draft("UP-1"),
            connection_id=emulator.connection_id,
            platform=emulator.platform,
            submitted_by="sam",
            pay_on=date.today(),
        )
        handle = stack.remit.handle(result.workflow_id)
        deadline = asyncio.get_running_loop().time() + 120
        while (
            state := await stack.remit.state(result.workflow_id)
        ).payment.rail_payment_id is None:
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(0.2)
        history = await handle.fetch_history()
        raw = b"".join(event.SerializeToString() for event in history.events)
        assert IBAN.encode() not in raw
        encrypted = [
            p
            for event in history.events
            if not is_patch_marker(event)
            for where, p in payloads_in(event)
            if "search_attributes" not in where
        ]
        assert encrypted and all(p.metadata["encoding"] == ENCODING for p in encrypted)
        async with httpx.AsyncClient(timeout=10) as http:
            settings = (await http.get(info.temporal.ui_url + "/api/v1/settings")).json()
            endpoint = settings["Codec"]["Endpoint"]
            # Under /inbox, so the operator's inbox session cookie reaches it.
            assert endpoint == info.api_url + INBOX_CODEC_PATH
            # The UI runs under its public path (sandbox/ui_proxy.py); its origin is the root.
            ui_origin = "{0.scheme}://{0.netloc}".format(urlsplit(info.temporal.ui_url))
            preflight = await http.options(
                endpoint + "/decode",
                headers={
                    "Origin": ui_origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace",
                },
            )
            assert preflight.status_code == 204
            body = MessageToDict(Payloads(payloads=encrypted))
            headers = {"Origin": ui_origin, "X-Namespace": info.temporal.namespace}
            # Without credentials the stage's codec decodes nothing, even on loopback.
            refused = await http.post(endpoint + "/decode", json=body, headers=headers)
            assert refused.status_code == 401 and IBAN not in refused.text
            # The CLI's way: the operator's API key, on the plain codec path.
            keyed = await http.post(
                info.api_url + CODEC_PATH + "/decode",
                json=body,
                headers={**headers, "Authorization": f"Bearer {info.api_key_for('olivia')}"},
            )
            assert keyed.status_code == 200, keyed.text
            # The UI's way (codec.includeCredentials): the operator's inbox session cookie.
            secret = load_or_create_secret(stack.data_dir, INBOX_SESSION_KEY_FILE)
            signed_in = await http.get(info.api_url + magic_link(secret, "olivia"))
            assert signed_in.status_code == 303, signed_in.text
            response = await http.post(endpoint + "/decode", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ui_origin
        readable = b"".join(
            base64.b64decode(p.get("data", "")) for p in response.json()["payloads"]
        )
        assert IBAN.encode() in readable
