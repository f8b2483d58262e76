"""Migrations: they build the schema from nothing, match the models, and run from any directory."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import URL, inspect

from store import make_engine, migrate
from store.db import alembic_config
from store.models import metadata, schema_filter

STORE_TABLES = {"bills", "audit_events", "connections", "idempotency_keys"}


def _differences(url: URL) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": schema_filter(connection.dialect.name),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_build_the_models_schema_on_an_empty_database(empty_database_url: URL) -> None:
    assert _differences(empty_database_url) != [], "an empty database must differ from the models"

    migrate(empty_database_url)

    engine = make_engine(empty_database_url)
    try:
        assert STORE_TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    assert set(current) == set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert _differences(empty_database_url) == []


def test_migrate_twice_is_harmless_and_downgrade_removes_everything(
    empty_database_url: URL,
) -> None:
    migrate(empty_database_url)
    migrate(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert STORE_TABLES.isdisjoint(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    migrate(empty_database_url)
    assert _differences(empty_database_url) == []


def test_migrate_finds_its_scripts_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "nested" / "remit.db"
    migrate(f"sqlite:///{database}")
    engine = make_engine(f"sqlite:///{database}")
    try:
        assert STORE_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_workers_starting_together_migrate_once(empty_database_url: URL) -> None:
    racers = 3
    start = threading.Barrier(racers)

    def start_worker(_: int) -> None:
        start.wait()
        migrate(empty_database_url)

    with ThreadPoolExecutor(racers) as pool:
        list(pool.map(start_worker, range(racers)))

    assert _differences(empty_database_url) == []


def test_a_failed_migration_leaves_no_half_built_schema(
    empty_database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create_table = Operations.create_table
    created: list[str] = []

    def create_table_then_fail_on_the_third(
        self: Operations, name: str, *args: object, **kw: object
    ) -> object:
        if len(created) == 2:
            raise RuntimeError("disk full")
        created.append(name)
        return real_create_table(self, name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Operations, "create_table", create_table_then_fail_on_the_third)
    with pytest.raises(RuntimeError, match="disk full"):
        migrate(empty_database_url)
    assert len(created) == 2

    engine = make_engine(empty_database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
