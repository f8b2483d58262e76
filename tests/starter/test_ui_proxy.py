"""The stage's Temporal UI through the API's origin (sandbox/ui_proxy.py): the real dev server
with --ui-public-path behind the proxy, remit's edge in front, and Debian's chromium showing a
workflow's encrypted input decoded after an operator's inbox sign-in, with no UI toggle."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.async_api import Response, async_playwright, expect
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.policy import load_directory
from runtime.codec import EncryptionCodec, generate_key
from runtime.settings import Settings
from sandbox.stack import dev_server_command, free_port, temporal_executable
from sandbox.ui_proxy import UI_PUBLIC_PATH, ui_proxy_router
from starter.api.app import base_app
from starter.api.codec import INBOX_CODEC_PATH, codec_routers
from starter.api.inbox import inbox_router
from starter.client import RemitClient
from store import DocumentStore, Store
from tests.starter.inbox_support import SESSION_SECRET, magic_link

CHROMIUM = Path("/usr/bin/chromium")
VENDOR = "Fabrikam Lighthouse Supplies"
WORKFLOW_ID = "bill/demo-ui/INV-UI-1"


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl-C to pytest


@dataclass
class Stage:
    api_url: str
    run_id: str


@pytest.fixture
async def stage(tmp_path: Path) -> AsyncIterator[Stage]:
    """The dev server's UI under UI_PUBLIC_PATH, proxied by an API app built as the stack's
    (base_app's edge, the inbox, the codec at /inbox/codec), and one workflow whose input is
    encrypted."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    api_url = f"http://{host}:{port}"
    grpc_port, ui_port = free_port(), free_port()
    command = dev_server_command(
        temporal_executable(),
        host="127.0.0.1",
        port=grpc_port,
        ui_port=ui_port,
        db_file=tmp_path / "temporal.db",
        namespace="default",
        codec_endpoint=api_url + INBOX_CODEC_PATH,
        ui_public_path=UI_PUBLIC_PATH,
    )
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    store = await asyncio.to_thread(Store.open, f"sqlite:///{tmp_path / 'remit.db'}")
    server: _QuietServer | None = None
    task: asyncio.Task[None] | None = None
    try:
        codec = EncryptionCodec({"k1": base64.b64decode(generate_key())}, "k1")
        converter = dataclasses.replace(pydantic_data_converter, payload_codec=codec)
        client = await _connect(f"127.0.0.1:{grpc_port}", converter)
        # No worker: the UI shows the input from the started event, as encrypted in history.
        handle = await client.start_workflow(
            "BillWorkflow", {"vendor_name": VENDOR}, id=WORKFLOW_ID, task_queue="no-worker"
        )
        directory = load_directory()
        app = base_app(Settings())
        app.include_router(
            inbox_router(
                remit=RemitClient(client),
                store=store,
                documents=DocumentStore(tmp_path / "documents"),
                directory=directory,
                session_secret=SESSION_SECRET,
                demo_users=False,
            )
        )
        for router in codec_routers(
            codec,
            store=store,
            directory=directory,
            session_secret=SESSION_SECRET,
            namespaces={"default"},
        ):
            app.include_router(router)
        app.include_router(ui_proxy_router(f"http://127.0.0.1:{ui_port}{UI_PUBLIC_PATH}"))
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await _ui_answers(api_url + UI_PUBLIC_PATH + "/api/v1/settings")
        yield Stage(api_url=api_url, run_id=handle.result_run_id or "")
    finally:
        if server is not None and task is not None:
            server.should_exit = True
            await task
        sock.close()
        store.close()
        process.terminate()
        await process.wait()


async def _connect(address: str, converter: object) -> Client:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            return await Client.connect(address, data_converter=converter)  # type: ignore[arg-type]
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.25)


async def _ui_answers(url: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the proxied Temporal UI at {url} did not answer")
            await asyncio.sleep(0.2)


async def test_the_proxied_ui_names_a_same_origin_codec_and_keeps_the_edge(stage: Stage) -> None:
    async with httpx.AsyncClient(base_url=stage.api_url, timeout=10) as http:
        settings = (await http.get(UI_PUBLIC_PATH + "/api/v1/settings")).json()
        assert settings["Codec"]["Endpoint"] == stage.api_url + INBOX_CODEC_PATH
        assert settings["Codec"]["IncludeCredentials"] is False  # no toggle needed
        page = await http.get(UI_PUBLIC_PATH + "/")
        assert page.status_code == 200 and f'href="{UI_PUBLIC_PATH}/_app/' in page.text
        # The edge stands in front of the proxied UI as of every route.
        rebound = await http.get(UI_PUBLIC_PATH + "/", headers={"Host": "evil.example"})
        assert rebound.status_code == 400
        cross_site = await http.post(
            UI_PUBLIC_PATH + "/api/v1/namespaces/default/workflows/x/signal/y",
            headers={"Origin": "http://evil.example"},
            content=b"{}",
        )
        assert cross_site.status_code == 403


def decode_call(response: Response) -> bool:
    # Same origin: the API's own /inbox/codec, where the inbox session cookie reaches.
    return urlsplit(response.url).path == INBOX_CODEC_PATH + "/decode"


async def test_an_operator_signed_in_to_the_inbox_sees_the_input_decoded(stage: Stage) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("REMIT_REQUIRE_BROWSER"):
            pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}")
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM}")
    history = (
        f"{stage.api_url}{UI_PUBLIC_PATH}/namespaces/default/workflows/"
        f"{WORKFLOW_ID.replace('/', '%2F')}/{stage.run_id}/history"
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        try:
            # Not signed in: the codec refuses, and the vendor stays hidden.
            stranger = await browser.new_context()
            page = await stranger.new_page()
            page.set_default_timeout(30_000)
            async with page.expect_response(decode_call) as refused:
                await page.goto(history)
            assert (await refused.value).status == 401
            await expect(page.get_by_text(WORKFLOW_ID).first).to_be_visible(timeout=30_000)
            assert VENDOR not in await page.content()
            await stranger.close()

            operator = await browser.new_context()
            page = await operator.new_page()
            page.set_default_timeout(30_000)
            await page.goto(stage.api_url + magic_link(SESSION_SECRET, "olivia"))
            async with page.expect_response(decode_call) as answered:
                await page.goto(history)
            assert (await answered.value).status == 200
            await expect(page.get_by_text(VENDOR).first).to_be_visible(timeout=30_000)
        finally:
            await browser.close()
