"""API keys: a random secret shown once, kept as its sha256, with a user, scopes, connections."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Index,
    String,
    Table,
    false,
    or_,
    select,
    update,
)
from sqlmodel import Field, Session

from store.models import ID_LENGTH, _StoreModel
from store.types import UTCDateTime, utcnow

SCOPES = ("submit", "decide", "admin", "codec")
"""What a key may do; `admin` implies every other scope. `codec` only decodes Temporal payloads
(the codec endpoint, for the Temporal UI or `temporal --codec-auth`): nothing else."""

TOKEN_PREFIX = "rk_"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SECRET_BYTES = 32

ALL_CONNECTIONS: Final = "*"
"""Pass as `connections` for a key that may act on every connection (operators, admins)."""

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is at most this stale: a key in use costs one write per minute, not per call."""

Connections = Iterable[str] | Literal["*"]


class ApiKeyRow(_StoreModel, table=True):
    """One API key: its public id, who it acts as and what it may do; never the secret."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id", "user_id"),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    secret_hash: str = Field(
        repr=False,
        sa_column=Column(String(64), nullable=False),
        description="sha256 (hex) of the whole token",
    )
    user_id: str = Field(sa_column=Column(String(ID_LENGTH), nullable=False))
    scopes: str = Field(
        sa_column=Column(String(200), nullable=False), description="space-separated scopes"
    )
    name: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    all_connections: bool = Field(
        default=False,
        sa_column=Column(Boolean(), nullable=False, server_default=false()),
        description="the key may act on every connection (given explicitly, never by default)",
    )
    connection_ids: list[str] | None = Field(
        default=None,
        sa_column=Column(JSON(), nullable=True),
        description="the connections the key may act on, unless all_connections",
    )
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    @property
    def connection_scope(self) -> frozenset[str] | None:
        """The connections this key may act on; None means every one."""
        if self.all_connections:
            return None
        return frozenset(self.connection_ids or ())


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: `token` is the only time the secret exists outside the caller."""

    row: ApiKeyRow
    token: str

    def __repr__(self) -> str:  # the token must never reach a log line by accident
        return f"IssuedKey(id={self.row.id!r}, user_id={self.row.user_id!r})"


def hash_token(token: str) -> str:
    # The token carries 256 random bits, so a plain (unsalted, fast) hash is safe to store.
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The key id a token names (`rk_<id>.<secret>`), or None when it is not shaped like one."""
    if not token.startswith(TOKEN_PREFIX) or "." not in token:
        return None
    key_id, _, secret = token[len(TOKEN_PREFIX) :].rpartition(".")
    if not _KEY_ID.fullmatch(key_id) or not secret:
        return None
    return key_id


def normalize_connections(connections: Connections) -> list[str] | None:
    """The sorted connection ids a key is limited to, or None for ALL_CONNECTIONS."""
    if connections == ALL_CONNECTIONS:
        return None
    if isinstance(connections, str):
        # A lone id would otherwise be read as its characters.
        raise TypeError("connections is a list of connection ids, or ALL_CONNECTIONS")
    chosen = sorted({connection.strip() for connection in connections})
    if not chosen or "" in chosen:
        raise ValueError(
            "a key acts on named connections (at least one) or on all of them, explicitly"
        )
    return chosen


def normalize_scopes(scopes: Iterable[str]) -> str:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not chosen:
        raise ValueError(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return " ".join(chosen)


class ApiKeys:
    """API keys kept in the store's database (the `Store`'s engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def issue(
        self,
        user_id: str,
        scopes: Iterable[str],
        *,
        connections: Connections,
        name: str | None = None,
        key_id: str | None = None,
    ) -> IssuedKey:
        """Make a key for `user_id` acting on `connections` (ids, or ALL_CONNECTIONS).

        Naming an existing `key_id` rotates it: new secret, scopes and connections.
        """
        key_id = key_id or secrets.token_hex(8)
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError("a key id is 1-64 letters, digits, '-' or '_'")
        if not user_id:
            raise ValueError("a key acts as a user: user_id is required")
        scope_text = normalize_scopes(scopes)
        connection_ids = normalize_connections(connections)
        token = f"{TOKEN_PREFIX}{key_id}.{secrets.token_urlsafe(_SECRET_BYTES)}"
        with self._session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                row = ApiKeyRow(id=key_id, secret_hash="", user_id=user_id, scopes="")
            row.secret_hash = hash_token(token)
            row.user_id = user_id
            row.scopes = scope_text
            row.all_connections = connection_ids is None
            row.connection_ids = connection_ids
            row.name = name
            row.created_at = utcnow()
            row.revoked_at = None
            row.last_used_at = None
            session.add(row)
            session.commit()
            session.refresh(row)
        return IssuedKey(row=row, token=token)

    def authenticate(self, token: str) -> ApiKeyRow | None:
        """The live key this token belongs to, or None (unknown, wrong secret or revoked)."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        with self._session() as session:
            row = session.get(ApiKeyRow, key_id)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_token(token)):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
            self._touch(key_id, now)
            row.last_used_at = now
        return row

    def _touch(self, key_id: str, now: datetime) -> None:
        # Conditional, so API processes racing on one key still write once per minute.
        table = cast(Table, cast(Any, ApiKeyRow).__table__)
        with self._session() as session:
            session.execute(
                update(table)
                .where(
                    table.c.id == key_id,
                    or_(
                        table.c.last_used_at.is_(None),
                        table.c.last_used_at <= now - LAST_USED_RESOLUTION,
                    ),
                )
                .values(last_used_at=now)
            )
            session.commit()

    def revoke(self, key_id: str) -> bool:
        table = cast(Table, cast(Any, ApiKeyRow).__table__)
        with self._session() as session:
            result = session.execute(
                update(table)
                .where(table.c.id == key_id, table.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            session.commit()
            return bool(getattr(result, "rowcount", 0) == 1)

    def get(self, key_id: str) -> ApiKeyRow | None:
        with self._session() as session:
            return session.get(ApiKeyRow, key_id)

    def list_keys(self, *, user_id: str | None = None) -> list[ApiKeyRow]:
        table = cast(Table, cast(Any, ApiKeyRow).__table__)
        statement = select(ApiKeyRow).order_by(table.c.id)
        if user_id is not None:
            statement = statement.where(table.c.user_id == user_id)
        with self._session() as session:
            return list(session.scalars(statement))


__all__ = [
    "ALL_CONNECTIONS",
    "SCOPES",
    "ApiKeyRow",
    "ApiKeys",
    "IssuedKey",
    "hash_token",
    "key_id_of",
    "normalize_connections",
    "normalize_scopes",
]
