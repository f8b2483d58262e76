"""Settings for every remit process (worker, API, CLI), from REMIT_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from store import StoreSettings
from workflows.approval import DEFAULT_DIRECTORY, DEFAULT_POLICY
from workflows.models import TASK_QUEUE

WORKFLOW_TASK_SLOTS = 8
"""Workflow tasks one worker process runs at once (the SDK's default is 100).

Workflow code runs on threads that share one GIL with the activities' event loop, so more
slots add no throughput; they add latency. After a restart every open bill is replayed from
its history, and with 100 slots each replay waits behind 99 others: at 1,000 open bills the
tasks took longer than their 10 s timeout, were retried by the server and replayed again.
Tasks beyond the slots wait in Temporal's queue, where no timeout runs."""


class Settings(StoreSettings):
    temporal_address: str = Field(
        default="127.0.0.1:7233",
        validation_alias=AliasChoices("REMIT_TEMPORAL_ADDRESS", "TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("REMIT_TEMPORAL_NAMESPACE", "TEMPORAL_NAMESPACE"),
    )
    task_queue: str = TASK_QUEUE
    erp_activities_per_second: float | None = Field(
        default=None,
        description="server-side limit on ERP calls across all workers (the ERP task queue's "
        "max_task_queue_activities_per_second); empty: none",
    )
    erp_concurrent_activities: int = Field(
        default=50, ge=1, description="ERP calls one worker process runs at once"
    )
    workflow_task_slots: int = Field(
        default=WORKFLOW_TASK_SLOTS,
        ge=2,
        description="workflow tasks one worker process runs at once (more add latency, not "
        "throughput: workflow code shares one GIL)",
    )
    idempotency_retention_days: float = Field(
        default=7, ge=1, description="days an Idempotency-Key and its answer are kept (≥ 1)"
    )
    webhook_retention_days: float = Field(
        default=30, ge=4, description="days webhook events and delivery logs are kept for replay"
    )
    policy_file: Path = DEFAULT_POLICY
    directory_file: Path = DEFAULT_DIRECTORY
    bank_url: str = "http://127.0.0.1:8300"
    bank_api_key: SecretStr = SecretStr("")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet key that encrypts connection credentials at rest",
    )
    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "AES-256 keys for Temporal payloads, `kid:<base64>` comma-separated; every id listed "
            "decrypts, so old keys stay until no history needs them. Empty: no encryption"
        ),
    )
    encryption_key_id: str | None = Field(
        default=None, description="The key new payloads are encrypted with; default: the first"
    )
    accept_plaintext_payloads: bool = Field(
        default=False,
        description="with encryption on, still read payloads that are not encrypted (only while "
        "histories recorded before encryption finish: anyone could send those)",
    )
