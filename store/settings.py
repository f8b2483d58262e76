"""Where the store lives: REMIT_DATABASE_URL (or plain DATABASE_URL) and REMIT_DATA_DIR."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    """SQLite under the data directory by default; PostgreSQL when a URL says so."""

    model_config = SettingsConfigDict(env_prefix="REMIT_", extra="ignore", populate_by_name=True)

    data_dir: Path = Path("./.remit")
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("REMIT_DATABASE_URL", "DATABASE_URL", "database_url"),
    )

    @model_validator(mode="after")
    def _default_database_url(self) -> StoreSettings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'remit.db'}"
        return self

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"
