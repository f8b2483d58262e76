"""The request log: every ERP call made per connection (who, what, when, the platform's answer).

Rows hold no secret: the path without its query string, the platform's error code and message
passed through `redact` (bearer tokens, token/secret/password fields, the connection's own
credential values, bank-account-like digit runs and IBANs masked), never a header or a body.
Rows are written in batches (one transaction per activity), not one round trip per call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.engine import CursorResult
from sqlmodel import Field, Session

from store.db import Store, cursor_time, decode_cursor, encode_cursor
from store.models import _id, _StoreModel, _timestamp

MAX_PAGE_SIZE = 500
REDACTED = "[redacted]"

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_FIELD = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|client_secret|token|secret|password|api_key|"
    r"authorization)(\"?\s*[:=]\s*\"?)([^\s\"&,;}]+)"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b")
_LONG_DIGITS = re.compile(r"\d{9,}")


def redact(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """`text` with secrets and bank numbers masked (None stays None)."""
    if text is None:
        return None
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _IBAN.sub(REDACTED, text)
    return _LONG_DIGITS.sub(lambda m: "•" * 4 + m.group(0)[-4:], text)


def redact_path(path: str, secrets: Iterable[str] = (), *, keep: Iterable[str] = ()) -> str:
    """A URL path for the log: no query string, secrets masked; ids in `keep` (the company's
    own id, say a QBO realm) are not taken for bank numbers."""
    bare = path.split("?", 1)[0]
    kept = [k for k in keep if k]
    for n, value in enumerate(kept):
        bare = bare.replace(value, f"\x00{n}\x00")
    masked = redact(bare, secrets) or ""
    for n, value in enumerate(kept):
        masked = masked.replace(f"\x00{n}\x00", value)
    return masked


class RequestLogRow(_StoreModel, table=True):
    """One request remit sent to a connection's ERP, and what came back."""

    __tablename__ = "request_log"
    __table_args__ = (
        Index("ix_request_log_connection_id_at", "connection_id", "at", "id"),
        Index("ix_request_log_at", "at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    connection_id: str = _id()
    at: datetime = _timestamp(nullable=False)
    actor: str = Field(
        sa_column=Column(String(255), nullable=False),
        description="who made the call: the activity (and its workflow), or the API caller",
    )
    workflow_id: str | None = _id(nullable=True)
    method: str = Field(sa_column=Column(String(16), nullable=False))
    path: str = Field(sa_column=Column(String(2000), nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer(), nullable=True))
    outcome: str = Field(
        sa_column=Column(String(64), nullable=False),
        description="ok, or the error type (Rejected, RateLimited, Unavailable, ...)",
    )
    error_code: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    error_message: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    duration_ms: float = Field(default=0.0, sa_column=Column(Float(), nullable=False))
    attempt: int = Field(default=1, sa_column=Column(Integer(), nullable=False))


def _table() -> Table:
    return cast(Table, RequestLogRow.__table__)  # type: ignore[attr-defined]


class RequestLogStore:
    """The request log. Synchronous, like Store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def append(self, rows: Sequence[RequestLogRow]) -> int:
        """Write a batch in one transaction; how many."""
        if not rows:
            return 0
        table = _table()
        values: list[dict[str, Any]] = [
            {c.name: getattr(row, c.name) for c in table.columns if c.name != "id"} for row in rows
        ]
        with self._session() as session:
            session.execute(table.insert(), values)
            session.commit()
        return len(values)

    def list(
        self,
        connection_id: str,
        *,
        since: datetime | None = None,
        min_status: int | None = None,
        failed: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RequestLogRow], str | None]:
        """Newest first, a page at a time. `min_status` keeps answers at or above it;
        `failed` also keeps calls that got no answer at all. Raises InvalidCursor."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        table = _table()
        clauses: list[Any] = [table.c.connection_id == connection_id]
        if since is not None:
            clauses.append(table.c.at >= since)
        if min_status is not None:
            at_least = table.c.status >= min_status
            clauses.append(or_(at_least, table.c.status.is_(None)) if failed else at_least)
        elif failed:
            clauses.append(table.c.outcome != "ok")
        if cursor:
            at_text, before_id = decode_cursor(cursor, "requests", str, int)
            before_at = cursor_time(at_text)
            clauses.append(
                or_(table.c.at < before_at, and_(table.c.at == before_at, table.c.id < before_id))
            )
        statement = (
            select(RequestLogRow)
            .where(*clauses)
            .order_by(table.c.at.desc(), table.c.id.desc())
            .limit(limit + 1)
        )
        with self._session() as session:
            rows = list(session.scalars(statement))
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        last = page[-1]
        assert last.id is not None
        return page, encode_cursor("requests", last.at.isoformat(), last.id)

    def purge(self, *, older_than: datetime) -> int:
        """Forget calls made before `older_than`; how many went."""
        table = _table()
        with self._session() as session:
            result = cast(
                CursorResult[Any], session.execute(sql_delete(table).where(table.c.at < older_than))
            )
            session.commit()
            return result.rowcount
