"""Inbox sessions kept as rows (a cookie names one; logout ends it) and sign-in links used once."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Column, Engine, Index, String, Table, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session

from store.models import ID_LENGTH, _StoreModel
from store.types import UTCDateTime

SESSION_ID_LENGTH = 64
NONCE_LENGTH = 64

# A session's last_seen_at is written at most this often: one write per page view would make
# every read of the inbox a write to the store.
LAST_SEEN_EVERY = timedelta(minutes=1)

# Expired rows are kept this long: an API process whose clock runs behind another's still
# takes a link as unexpired for a moment, and its nonce must still be there to refuse a reuse.
PURGE_AFTER = timedelta(hours=1)


class InboxSessionRow(_StoreModel, table=True):
    """One signed-in browser: who, since when, until when, and whether it was ended."""

    __tablename__ = "inbox_sessions"
    __table_args__ = (
        Index("ix_inbox_sessions_user_id", "user_id"),
        Index("ix_inbox_sessions_expires_at", "expires_at"),
    )

    id: str = Field(sa_column=Column(String(SESSION_ID_LENGTH), primary_key=True))
    user_id: str = Field(sa_column=Column(String(ID_LENGTH), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class InboxLinkUseRow(_StoreModel, table=True):
    """A sign-in link's nonce, recorded when the link is used, so it signs in only once."""

    __tablename__ = "inbox_link_uses"
    __table_args__ = (Index("ix_inbox_link_uses_expires_at", "expires_at"),)

    nonce: str = Field(sa_column=Column(String(NONCE_LENGTH), primary_key=True))
    user_id: str = Field(sa_column=Column(String(ID_LENGTH), nullable=False))
    used_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(
        sa_column=Column(UTCDateTime(), nullable=False),
        description="when the link expires; the row is needed until then, and only until then",
    )


def _table(model: type[Any]) -> Table:
    return cast(Table, cast(Any, model).__table__)


class InboxSessions:
    """Sessions and used sign-in links in the store's database (the `Store`'s engine), so every
    API process agrees on who is signed in and which links are spent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def start(self, user_id: str, *, now: datetime, ttl: timedelta) -> InboxSessionRow:
        """A new session for `user_id`, live until `now + ttl` unless ended first."""
        row = InboxSessionRow(
            id=secrets.token_urlsafe(32),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ttl,
        )
        with self._session() as session:
            session.add(row)
            session.commit()
        return row

    def live(self, session_id: str, *, now: datetime) -> InboxSessionRow | None:
        """The session if it exists, was not ended and has not expired (None otherwise);
        records that it was seen."""
        if not session_id or len(session_id) > SESSION_ID_LENGTH:
            return None
        with self._session() as session:
            row = session.get(InboxSessionRow, session_id)
            if row is None or row.ended_at is not None or row.expires_at <= now:
                return None
            if now - row.last_seen_at >= LAST_SEEN_EVERY:
                table = _table(InboxSessionRow)
                session.execute(
                    update(table)
                    .where(table.c.id == session_id, table.c.ended_at.is_(None))
                    .values(last_seen_at=now)
                )
                session.commit()
                row.last_seen_at = now
        return row

    def end(self, session_id: str, *, now: datetime) -> bool:
        """End the session (logout); True if this call ended it. Ending it again is harmless."""
        table = _table(InboxSessionRow)
        with self._session() as session:
            result = session.execute(
                update(table)
                .where(table.c.id == session_id, table.c.ended_at.is_(None))
                .values(ended_at=now)
            )
            session.commit()
            return bool(getattr(result, "rowcount", 0) == 1)

    def end_all(self, user_id: str, *, now: datetime) -> int:
        """End every live session of `user_id` (e.g. when the person leaves); how many ended."""
        table = _table(InboxSessionRow)
        with self._session() as session:
            result = session.execute(
                update(table)
                .where(table.c.user_id == user_id, table.c.ended_at.is_(None))
                .values(ended_at=now)
            )
            session.commit()
            return int(getattr(result, "rowcount", 0))

    def get(self, session_id: str) -> InboxSessionRow | None:
        with self._session() as session:
            return session.get(InboxSessionRow, session_id)

    def use_link(self, nonce: str, user_id: str, *, now: datetime, expires_at: datetime) -> bool:
        """Record the link's nonce as used; False if it was used before (by any process: the
        primary key decides, so two concurrent uses cannot both win)."""
        if not nonce or len(nonce) > NONCE_LENGTH:
            return False
        with self._session() as session:
            session.add(
                InboxLinkUseRow(nonce=nonce, user_id=user_id, used_at=now, expires_at=expires_at)
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
        return True

    def purge(self, *, now: datetime) -> int:
        """Forget sessions and link nonces that expired over PURGE_AFTER ago (their cookies
        and links are refused anyway); how many rows went."""
        before = now - PURGE_AFTER
        sessions, uses = _table(InboxSessionRow), _table(InboxLinkUseRow)
        with self._session() as session:
            ended = session.execute(delete(sessions).where(sessions.c.expires_at <= before))
            spent = session.execute(delete(uses).where(uses.c.expires_at <= before))
            session.commit()
            return int(getattr(ended, "rowcount", 0)) + int(getattr(spent, "rowcount", 0))
