"""The Temporal worker: registers BillWorkflow and every activity, with their clients injected."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.connections import ConnectionLookup, ConnectorProvider, Connectors
from activities.ledger import DocumentSource, LedgerActivities
from activities.match import MatchActivities
from activities.payment import PaymentActivities
from activities.policy import PolicyActivities, load_directory, load_policy
from activities.record import NotifyActivities, RecordActivities
from connectors.bank import SandboxBankRail
from connectors.base import ConnectionConfig, NotFound, PaymentRail
from starter.config import Settings
from starter.secrets import SecretBox
from starter.temporal import connect
from store import DocumentStore, Store
from workflows.approval import ApprovalPolicy, Directory
from workflows.bill import BillWorkflow

log = logging.getLogger("remit.worker")


@dataclass
class Dependencies:
    """What the activities talk to; tests build these around emulators."""

    connectors: ConnectorProvider
    rail: PaymentRail
    store: Store
    documents: DocumentSource
    policy: ApprovalPolicy
    directory: Directory


def build_worker(
    client: Client, deps: Dependencies, *, task_queue: str, **options: object
) -> Worker:
    record = RecordActivities(deps.store)
    match = MatchActivities(deps.connectors, similar_bills=record.similar_bills)
    ledger = LedgerActivities(deps.connectors, deps.documents)
    payment = PaymentActivities(deps.rail)
    policy = PolicyActivities(deps.policy, deps.directory)
    notify = NotifyActivities(deps.store)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BillWorkflow],
        activities=[
            match.match_bill,
            ledger.create_vendor,
            ledger.post_bill,
            ledger.attach_document,
            ledger.read_bill,
            ledger.post_bill_payment,
            ledger.reconcile_bill,
            payment.initiate_payment,
            payment.get_payment_status,
            policy.plan_approval,
            record.record_bill,
            notify.notify,
        ],
        **options,  # type: ignore[arg-type]
    )


def store_lookup(store: Store, box: SecretBox) -> ConnectionLookup:
    """Connections as the store holds them, credentials decrypted only in this process."""

    def lookup(connection_id: str) -> ConnectionConfig:
        row = store.get_connection(connection_id)
        if row is None:
            raise NotFound(f"unknown connection {connection_id!r}")
        return ConnectionConfig(
            id=row.id,
            platform=row.platform,
            base_url=row.base_url or "",
            company_id=row.company_id,
            credentials=box.open(row.credentials_encrypted) if row.credentials_encrypted else {},
            settings={k: str(v) for k, v in row.settings.items()},
        )

    return lookup


async def run(settings: Settings) -> None:
    store = Store.open(settings.database_url)
    box = SecretBox(settings.secret_key.get_secret_value())
    connectors = Connectors(store_lookup(store, box))
    async with httpx.AsyncClient(timeout=30) as bank_http:
        deps = Dependencies(
            connectors=connectors,
            rail=SandboxBankRail(
                settings.bank_url, settings.bank_api_key.get_secret_value(), bank_http
            ),
            store=store,
            documents=DocumentStore(settings.documents_dir),
            policy=load_policy(settings.policy_file),
            directory=load_directory(settings.directory_file),
        )
        client = await connect(settings)
        worker = build_worker(client, deps, task_queue=settings.task_queue)
        log.info("worker polling %s on %s", settings.task_queue, settings.temporal_address)
        try:
            await worker.run()
        finally:
            await connectors.aclose()
            store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(Settings()))


if __name__ == "__main__":
    main()
