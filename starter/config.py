"""Settings for every remit process (worker, API, CLI), from REMIT_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from activities.policy import DEFAULT_DIRECTORY, DEFAULT_POLICY
from store import StoreSettings
from workflows.models import TASK_QUEUE


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
    policy_file: Path = DEFAULT_POLICY
    directory_file: Path = DEFAULT_DIRECTORY
    bank_url: str = "http://127.0.0.1:8300"
    bank_api_key: SecretStr = SecretStr("")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Fernet key that encrypts connection credentials at rest",
    )
