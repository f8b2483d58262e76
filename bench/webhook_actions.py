"""Webhook cost benchmark: workflows and billable actions per happy bill, an endpoint subscribed.

    python -m bench.webhook_actions [--bills 20] [--concurrency 10]

One embedded stack; a real HTTP receiver (uvicorn on a free port) subscribed to every event
checks each signature (the stack is told to allow loopback webhook targets for it). After every
delivery has finished, every workflow on the server is
listed and its history counted by Temporal Cloud's rules, so whatever deliveries cost in
Temporal (their own workflows, activities and retries) shows up next to the bills' own actions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import uvicorn
from temporalio.client import Client

from activities.webhooks import seal_secret
from bench._common import machine_line, print_json, print_table
from bench._emulated import lift_rate_limits
from bench._history import billable_actions
from bench.throughput import bounded, run_bills
from runtime.secrets import SecretBox
from runtime.settings import Settings
from runtime.webhook_signing import SIGNATURE_HEADER, verify
from sandbox.stack import Stack, StackOptions, load_or_create_secret_key
from store import WebhookEndpointRow, WebhookStore
from store.types import utcnow
from workflows.webhooks import EVENT_TYPES

SECRET = "whsec_bench-webhook-actions"
DELIVERY_DEADLINE_SECONDS = 300.0


class Receiver:
    """Answers 204 to every correctly signed POST and counts them."""

    def __init__(self) -> None:
        self.verified = 0
        self.refused = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            verify(SECRET, headers.get(SIGNATURE_HEADER.lower()), body)
            self.verified += 1
            status = 204
        except Exception:
            self.refused += 1
            status = 400
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def all_deliveries_finished(hooks: WebhookStore, endpoint_id: str, expected: int) -> int:
    """Wait until the endpoint has `expected` or more deliveries and none is pending."""
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        rows = await asyncio.to_thread(hooks.deliveries_for_endpoint, endpoint_id, limit=100_000)
        if len(rows) >= expected and all(r.status != "pending" for r in rows):
            failed = [r for r in rows if r.status != "delivered"]
            if failed:
                raise RuntimeError(f"{len(failed)} deliveries failed: {failed[0].last_error}")
            return len(rows)
        await asyncio.sleep(0.2)  # polling a store for a benchmark's end, not synchronizing
    raise RuntimeError(f"deliveries to {endpoint_id} not finished after the deadline")


async def workflow_costs(client: Client) -> dict[str, dict[str, float]]:
    """Per workflow type: how many ran and their billable actions, over every workflow."""
    ids: list[tuple[str, str]] = []
    async for wf in client.list_workflows():
        ids.append((wf.id, wf.workflow_type))
    histories = await bounded(20, (client.get_workflow_handle(wid).fetch_history for wid, _ in ids))
    count: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    for (_, kind), history in zip(ids, histories, strict=True):
        count[kind] += 1
        actions[kind] += billable_actions(list(history.events)).total
    return {kind: {"workflows": count[kind], "actions": actions[kind]} for kind in count}


async def bench(bills: int, concurrency: int, data_dir: Path) -> dict[str, Any]:
    from datetime import timedelta

    from connectors.base import RailKind

    instant = {kind: timedelta(0) for kind in RailKind}
    options = StackOptions.on_free_ports(
        data_dir, temporal_ui=False, settlement_delay=instant, settlement_interval_seconds=0.05
    )
    receiver = Receiver()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(receiver, log_level="warning", lifespan="off", access_log=False)
        )
        serving = asyncio.create_task(server.serve([sock]))
        try:
            async with Stack(options) as stack:
                assert stack.remit is not None and stack.temporal_client is not None
                assert stack.store is not None
                for name, emulator in stack.emulators.items():
                    lift_rate_limits(name, emulator)
                key = Settings(data_dir=data_dir).secret_key.get_secret_value()
                box = SecretBox(key or load_or_create_secret_key(data_dir))
                hooks = WebhookStore(stack.store)
                now = utcnow()
                endpoint = hooks.create_endpoint(
                    WebhookEndpointRow(
                        id="we_bench",
                        url=f"http://127.0.0.1:{port}/hooks",
                        event_types=list(EVENT_TYPES),
                        secret_encrypted=seal_secret(box, SECRET),
                        created_at=now,
                        updated_at=now,
                    )
                )
                run = uuid.uuid4().hex[:6]
                seconds, ids = await run_bills(stack.remit, bills, concurrency, run)
                # A happy bill announces created, approved, paid and reconciled (at least).
                deliveries = await all_deliveries_finished(hooks, endpoint.id, 4 * bills)
                costs = await workflow_costs(stack.temporal_client)
        finally:
            server.should_exit = True
            await serving
    total = sum(c["actions"] for c in costs.values())
    return {
        "bills": len(ids),
        "bill_seconds": seconds,
        "deliveries": deliveries,
        "verified": receiver.verified,
        "refused": receiver.refused,
        "costs": costs,
        "actions_per_bill_all_workflows": total / bills,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_actions", description=__doc__)
    parser.add_argument("--bills", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)
    # The receiver listens on loopback, where a deployment's webhooks may not go by default.
    os.environ["REMIT_WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"
    with tempfile.TemporaryDirectory(prefix="remit-bench-") as tmp:
        figures = asyncio.run(bench(args.bills, args.concurrency, Path(tmp)))
    bills = figures["bills"]
    print_table(
        f"webhooks: {bills} happy-path bills, one endpoint subscribed to every event "
        f"({figures['deliveries']} deliveries, {figures['verified']} verified by the receiver)\n"
        f"machine: {machine_line()}",
        ["workflow type", "workflows", "billable actions", "actions per bill"],
        [
            [kind, c["workflows"], c["actions"], c["actions"] / bills]
            for kind, c in sorted(figures["costs"].items())
        ],
    )
    print_json(
        "webhook_actions",
        bills=bills,
        deliveries=figures["deliveries"],
        deliveries_verified=figures["verified"],
        deliveries_refused=figures["refused"],
        workflows_by_type={k: c["workflows"] for k, c in figures["costs"].items()},
        actions_by_type={k: c["actions"] for k, c in figures["costs"].items()},
        billable_actions_per_bill=round(figures["actions_per_bill_all_workflows"], 2),
    )


if __name__ == "__main__":
    main()
