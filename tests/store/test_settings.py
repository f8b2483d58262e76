"""Store settings: SQLite under the data directory unless a database URL is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import StoreSettings
from store.db import normalize_database_url


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REMIT_DATABASE_URL", "DATABASE_URL", "REMIT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_default_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    settings = StoreSettings()
    assert settings.data_dir == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'remit.db'}"


def test_plain_database_url_is_read_and_remit_prefix_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/remit")
    assert StoreSettings().database_url == "postgresql://app@db/remit"
    monkeypatch.setenv("REMIT_DATABASE_URL", "sqlite:///elsewhere.db")
    assert StoreSettings().database_url == "sqlite:///elsewhere.db"


def test_plain_postgres_urls_use_psycopg_3() -> None:
    for given in ("postgres://app@db/remit", "postgresql://app@db/remit"):
        assert normalize_database_url(given).drivername == "postgresql+psycopg"
    assert normalize_database_url("sqlite:///x.db").drivername == "sqlite"
