"""Connections: configuration upserts, health marks, and credentials kept out of logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store import ConnectionRow, RecordNotFound, Store

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _connection(**overrides: object) -> ConnectionRow:
    values: dict[str, object] = {
        "id": "conn-1",
        "platform": "quickbooks",
        "company_id": "9130",
        "display_name": "Acme Holdings",
        "base_url": "https://quickbooks.api.intuit.com",
        "credentials_encrypted": b"\x00sealed-token\xff",
        "settings": {"default_rail": "ach"},
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return ConnectionRow(**values)  # type: ignore[arg-type]


def test_upsert_creates_then_updates_configuration_but_not_health(store: Store) -> None:
    created = store.upsert_connection(_connection())
    assert created.status == "active"
    assert created.credentials_encrypted == b"\x00sealed-token\xff"

    store.mark_connection("conn-1", status="needs_relink", error="invalid_grant")
    store.record_connection_success("conn-1", at=T0 + timedelta(hours=1))

    updated = store.upsert_connection(
        _connection(
            display_name="Acme Holdings (US)",
            credentials_encrypted=b"new",
            created_at=T0 + timedelta(days=1),
        )
    )
    assert updated.display_name == "Acme Holdings (US)"
    assert updated.credentials_encrypted == b"new"
    assert updated.status == "active"
    assert updated.created_at == T0
    assert updated.last_error == "invalid_grant"
    assert updated.last_success_at == T0 + timedelta(hours=1)
    assert updated.updated_at > T0


def test_marking_records_status_and_error_time(store: Store) -> None:
    store.upsert_connection(_connection())
    before = datetime.now(UTC)
    marked = store.mark_connection("conn-1", status="needs_relink", error="token revoked")
    assert marked.status == "needs_relink"
    assert marked.last_error == "token revoked"
    assert marked.last_error_at is not None and marked.last_error_at >= before

    disabled = store.mark_connection("conn-1", status="disabled")
    assert disabled.status == "disabled"
    assert disabled.last_error == "token revoked"
    assert store.get_connection("conn-1") == disabled


def test_rate_limit_and_success_are_remembered(store: Store) -> None:
    store.upsert_connection(_connection())
    until = T0 + timedelta(minutes=1)
    assert store.record_rate_limit("conn-1", until=until).rate_limited_until == until
    success = store.record_connection_success("conn-1")
    assert success.last_success_at is not None
    assert success.last_success_at.utcoffset() == timedelta(0)


def test_unknown_status_and_unknown_connection_are_refused(store: Store) -> None:
    store.upsert_connection(_connection())
    with pytest.raises(ValueError, match="needs_relink"):
        store.mark_connection("conn-1", status="broken")
    with pytest.raises(RecordNotFound):
        store.mark_connection("conn-404", status="disabled")
    with pytest.raises(RecordNotFound):
        store.record_connection_success("conn-404")
    assert store.get_connection("conn-404") is None


def test_list_filters_by_platform_and_status(store: Store) -> None:
    store.upsert_connection(_connection(id="conn-b"))
    store.upsert_connection(_connection(id="conn-a", platform="xero"))
    store.upsert_connection(_connection(id="conn-c"))
    store.mark_connection("conn-c", status="disabled")

    assert [row.id for row in store.list_connections()] == ["conn-a", "conn-b", "conn-c"]
    assert [row.id for row in store.list_connections(platform="quickbooks")] == [
        "conn-b",
        "conn-c",
    ]
    assert [row.id for row in store.list_connections(status="active")] == ["conn-a", "conn-b"]


def test_credentials_never_appear_in_repr() -> None:
    connection = _connection(credentials_encrypted=b"sealed-token")
    assert "sealed-token" not in repr(connection)
    assert "sealed-token" not in str(connection)
