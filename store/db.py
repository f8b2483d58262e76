"""The store's engine, migrations and typed access to bills, audit, connections, idempotency."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    create_engine,
    event,
    exists,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from store import codec
from store.models import (
    CONNECTION_STATUSES,
    AuditEventRow,
    BillRow,
    ConnectionRow,
    IdempotencyRow,
)
from store.types import utcnow

logger = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_PAGE_SIZE = 500
_MIGRATION_LOCK_ID = 0x72656D6974  # "remit": one advisory lock for schema changes


class RecordNotFound(LookupError):
    """The row a write refers to does not exist."""


class SchemaNotCurrent(RuntimeError):
    """The database is not at the schema this code expects (run `remit migrate`)."""


class InvalidCursor(ValueError):
    """A pagination cursor that this store did not hand out (or that was altered)."""


def normalize_database_url(url: str | URL) -> URL:
    """Pick the installed PostgreSQL driver for plain `postgres://` / `postgresql://` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    """An engine tuned for the backend: SQLite with WAL and foreign keys; PostgreSQL pre-ping."""
    parsed = normalize_database_url(url)
    json_options: dict[str, Any] = {
        "json_serializer": codec.dumps,
        "json_deserializer": codec.loads,
    }
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **json_options)

    in_memory = parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed)
    if not in_memory and parsed.database:
        _create_private(Path(parsed.database).expanduser())
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # One shared connection is the only way an in-memory database is seen by every thread.
        **({"poolclass": StaticPool} if in_memory else {}),
        **json_options,
    )

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                _enable_wal(cursor)
                # WAL keeps committed data safe with NORMAL; FULL only adds fsyncs.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    return engine


def _create_private(database: Path) -> None:
    """Create the database file readable by its owner only (it holds bank details, sealed, and
    everything about a company's bills); SQLite gives its -wal and -shm files the same mode."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def _enable_wal(cursor: Any) -> None:
    """Switch a file database to WAL, waiting out a racing connection that holds the lock.

    WAL is a property of the file, so only the first connection ever switches it; SQLite
    answers that switch with SQLITE_BUSY at once (no busy handler) while another connection
    is mid-transaction, which happens when several workers open a fresh database together.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def alembic_config() -> Config:
    """The store's Alembic configuration, located from the package rather than the CWD."""
    config = Config(str(_PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(_PACKAGE_DIR / "migrations").replace("%", "%%"))
    return config


def migrate(engine_or_url: Engine | str | URL, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (Alembic upgrade, programmatically)."""
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        config = alembic_config()
        with engine.connect() as connection:
            # Several workers may start at once: the first migrates, the others wait and
            # then find nothing to do.
            if connection.dialect.name == "sqlite":
                # pysqlite runs DDL outside any transaction unless one is opened by hand;
                # IMMEDIATE also takes the write lock up front.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            elif connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_ID)))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's schema revision, or None when never migrated; the code's head)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships its migrations"
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head


def require_current_schema(engine: Engine) -> None:
    """Refuse to serve from a database that `remit migrate` has not brought up to date."""
    current, head = schema_revisions(engine)
    if current != head:
        where = f"at revision {current}" if current else "not migrated"
        raise SchemaNotCurrent(
            f"the database is {where}; this remit expects {head}: run `remit migrate` first"
        )


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _values(row: Any, table: Table) -> dict[str, Any]:
    return {column.name: getattr(row, column.name) for column in table.columns}


def _encode_cursor(created_at: datetime, workflow_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), workflow_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at_text, workflow_id = json.loads(raw)
        created_at = datetime.fromisoformat(created_at_text)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("invalid pagination cursor") from exc
    if created_at.tzinfo is None or not isinstance(workflow_id, str):
        raise InvalidCursor("invalid pagination cursor")
    return created_at, workflow_id


def encode_cursor(tag: str, *parts: str | int) -> str:
    """An opaque pagination cursor: `tag` names the listing it continues."""
    raw = json.dumps([tag, *parts], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str, *types: type) -> list[Any]:
    """The parts of a cursor `encode_cursor(tag, ...)` gave, each of the type given;
    InvalidCursor for anything else (altered, or from another listing)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found, *parts = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("invalid pagination cursor") from exc
    if found != tag or len(parts) != len(types):
        raise InvalidCursor("invalid pagination cursor")
    if not all(type(part) is kind for part, kind in zip(parts, types, strict=True)):
        raise InvalidCursor("invalid pagination cursor")
    return parts


def cursor_time(text: str) -> datetime:
    """A cursor's timestamp (tz-aware), or InvalidCursor."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidCursor("invalid pagination cursor") from exc
    if at.tzinfo is None:
        raise InvalidCursor("invalid pagination cursor")
    return at


ClaimOutcome = Literal["claimed", "in_progress", "completed", "mismatch"]


@dataclass(frozen=True)
class Claim:
    """What `Store.claim` found: whether this caller now owns the key, and the stored record.

    claimed: go ahead and run the request, then `complete` it.
    completed: replay `record.status_code` / `record.response_body`.
    in_progress: another request holds the key (HTTP 409).
    mismatch: the key was used for a different request (HTTP 422).
    """

    outcome: ClaimOutcome
    record: IdempotencyRow

    @property
    def won(self) -> bool:
        return self.outcome == "claimed"


class Store:
    """remit's own system of record. Synchronous: async callers run these methods in threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database backend {self._dialect!r}")

    @classmethod
    def open(cls, url: str | URL, *, run_migrations: bool = True) -> Store:
        """Connect to `url` and migrate it to the latest schema; with `run_migrations=False`,
        refuse (SchemaNotCurrent) a database that is not already there."""
        engine = make_engine(url)
        try:
            if run_migrations:
                migrate(engine)
            else:
                require_current_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _insert(self, model: type[Any]) -> Any:
        table = _table(model)
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- bills projection ----------------------------------------------------------------

    def upsert_bill(self, row: BillRow) -> bool:
        """Record a bill's state unless a newer revision is already stored.

        Returns True when this write is now the stored state, False when it was stale or a
        repeat of the stored revision (activities may be retried, and out of order).
        """
        table = _table(BillRow)
        values = _values(row, table)
        insert = self._insert(BillRow).values(**values)
        keep_first = {"workflow_id", "created_at"}
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.workflow_id],
            set_={name: insert.excluded[name] for name in values if name not in keep_first},
            where=table.c.revision < insert.excluded.revision,
        ).returning(table.c.revision)
        with self._session() as session:
            # RETURNING, not rowcount: drivers need not report rowcount for INSERT.
            applied = session.execute(statement).first() is not None
            session.commit()
            return applied

    def get_bill(self, workflow_id: str) -> BillRow | None:
        with self._session() as session:
            return session.get(BillRow, workflow_id)

    def list_bills(
        self,
        *,
        status: str | None = None,
        connection_id: str | None = None,
        connection_ids: Collection[str] | None = None,
        vendor: str | None = None,
        due_before: date | None = None,
        pending_approver: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[BillRow], str | None]:
        """Bills oldest first (created_at, then workflow_id), one page at a time.

        `vendor` matches a case-insensitive substring of the vendor name; `due_before` keeps
        bills due strictly before that date. Pass the returned cursor to get the next page;
        it is None on the last page.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        table = _table(BillRow)
        conditions: list[ColumnElement[bool]] = []
        if status is not None:
            conditions.append(table.c.status == status)
        if connection_id is not None:
            conditions.append(table.c.connection_id == connection_id)
        if connection_ids is not None:  # an API key's connections (empty: none)
            conditions.append(table.c.connection_id.in_(sorted(connection_ids)))
        if vendor:
            conditions.append(
                func.lower(table.c.vendor_name).contains(vendor.lower(), autoescape=True)
            )
        if due_before is not None:
            conditions.append(table.c.due_date < due_before)
        if pending_approver is not None:
            conditions.append(self._has_pending_approver(pending_approver))
        if cursor is not None:
            after_created_at, after_workflow_id = _decode_cursor(cursor)
            conditions.append(
                or_(
                    table.c.created_at > after_created_at,
                    and_(
                        table.c.created_at == after_created_at,
                        table.c.workflow_id > after_workflow_id,
                    ),
                )
            )
        statement = (
            select(BillRow)
            .where(*conditions)
            .order_by(table.c.created_at, table.c.workflow_id)
            .limit(limit + 1)
        )
        with self._session() as session:
            rows = list(session.scalars(statement))
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        return page, _encode_cursor(page[-1].created_at, page[-1].workflow_id)

    def _has_pending_approver(self, user_id: str) -> ColumnElement[bool]:
        column = _table(BillRow).c.pending_approvers
        if self._dialect == "postgresql":
            return type_coerce(column, postgresql.JSONB).contains([user_id])
        approvers = func.json_each(column).table_valued("value")
        return exists(select(1).select_from(approvers).where(approvers.c.value == user_id))

    def bills_of_erp_bills(self, connection_id: str, erp_bill_ids: Sequence[str]) -> list[BillRow]:
        """remit's bills (any status) whose ERP bill is one of `erp_bill_ids`."""
        if not erp_bill_ids:
            return []
        table = _table(BillRow)
        found: list[BillRow] = []
        with self._session() as session:
            for start in range(0, len(erp_bill_ids), 500):
                statement = select(BillRow).where(
                    table.c.connection_id == connection_id,
                    table.c.erp_bill_id.in_(list(erp_bill_ids[start : start + 500])),
                )
                found.extend(session.scalars(statement))
        return found

    def find_similar_bills(
        self,
        *,
        connection_id: str,
        vendor_key: str,
        document_number_key: str | None,
        total: Decimal,
        issue_date: date,
        exclude_workflow_id: str | None,
        issue_date_window: timedelta = timedelta(0),
    ) -> list[BillRow]:
        """Bills of the same vendor on the same connection that may be this bill again.

        A bill is similar when its normalized document number matches, or when its total is
        equal and its issue date lies within `issue_date_window` of `issue_date`. Keys are
        compared as given: the caller normalizes them the same way it did when storing.
        """
        table = _table(BillRow)
        same_amount = and_(
            table.c.total == total,
            table.c.issue_date.between(
                issue_date - issue_date_window, issue_date + issue_date_window
            ),
        )
        matches: list[ColumnElement[bool]] = [same_amount]
        if document_number_key:
            matches.append(table.c.document_number_key == document_number_key)
        conditions: list[ColumnElement[bool]] = [
            table.c.connection_id == connection_id,
            table.c.vendor_key == vendor_key,
            or_(*matches),
        ]
        if exclude_workflow_id is not None:
            conditions.append(table.c.workflow_id != exclude_workflow_id)
        statement = (
            select(BillRow).where(*conditions).order_by(table.c.created_at, table.c.workflow_id)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    def bills_numbered(self, *, connection_id: str, document_number_key: str) -> list[BillRow]:
        """The connection's bills whose normalized document number is this one, oldest first
        (what a corrective invoice's reference to an earlier invoice finds)."""
        table = _table(BillRow)
        statement = (
            select(BillRow)
            .where(
                table.c.connection_id == connection_id,
                table.c.document_number_key == document_number_key,
            )
            .order_by(table.c.created_at, table.c.workflow_id)
            .limit(20)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    # -- audit log -------------------------------------------------------------------------

    def append_audit(
        self,
        *,
        event_key: str,
        workflow_id: str,
        actor: str,
        kind: str,
        summary: str,
        at: datetime | None = None,
        idempotency_key: str | None = None,
        result: str | None = None,
        policy_version: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEventRow:
        """Append one audit event; a repeat with the same event_key returns the first one."""
        table = _table(AuditEventRow)
        values = {
            "event_key": event_key,
            "workflow_id": workflow_id,
            "at": at or utcnow(),
            "actor": actor,
            "kind": kind,
            "summary": summary,
            "idempotency_key": idempotency_key,
            "result": result,
            "policy_version": policy_version,
            "detail": detail or {},
        }
        statement = (
            self._insert(AuditEventRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[table.c.event_key])
        )
        with self._session() as session:
            session.execute(statement)
            stored = session.scalars(
                select(AuditEventRow).where(table.c.event_key == event_key)
            ).one()
            session.commit()
            return stored

    def audit_for(self, workflow_id: str) -> list[AuditEventRow]:
        """A bill's audit trail, in the order things happened (then in append order)."""
        table = _table(AuditEventRow)
        statement = (
            select(AuditEventRow)
            .where(table.c.workflow_id == workflow_id)
            .order_by(table.c.at, table.c.id)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    # -- connections -----------------------------------------------------------------------

    def upsert_connection(self, row: ConnectionRow) -> ConnectionRow:
        """Create a connection, or update its configuration and credentials.

        Health fields (last success/error, rate limit) are only taken on creation; after that
        they change through `mark_connection` and `record_connection_success`.
        """
        table = _table(ConnectionRow)
        values = _values(row, table)
        insert = self._insert(ConnectionRow).values(**values)
        configuration = (
            "platform",
            "company_id",
            "display_name",
            "base_url",
            "status",
            "credentials_encrypted",
            "settings",
        )
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={
                **{name: insert.excluded[name] for name in configuration},
                "updated_at": utcnow(),
            },
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()
            stored = session.get(ConnectionRow, row.id, populate_existing=True)
            assert stored is not None
            return stored

    def get_connection(self, connection_id: str) -> ConnectionRow | None:
        with self._session() as session:
            return session.get(ConnectionRow, connection_id)

    def list_connections(
        self, *, platform: str | None = None, status: str | None = None
    ) -> list[ConnectionRow]:
        table = _table(ConnectionRow)
        conditions: list[ColumnElement[bool]] = []
        if platform is not None:
            conditions.append(table.c.platform == platform)
        if status is not None:
            conditions.append(table.c.status == status)
        statement = select(ConnectionRow).where(*conditions).order_by(table.c.id)
        with self._session() as session:
            return list(session.scalars(statement))

    def mark_connection(
        self, connection_id: str, *, status: str, error: str | None = None
    ) -> ConnectionRow:
        """Set a connection's status; an error message is recorded with the time it happened."""
        if status not in CONNECTION_STATUSES:
            raise ValueError(f"connection status must be one of {', '.join(CONNECTION_STATUSES)}")
        now = utcnow()
        changes: dict[str, Any] = {"status": status, "updated_at": now}
        if error is not None:
            changes.update(last_error=error, last_error_at=now)
        return self._update_connection(connection_id, changes)

    def record_connection_success(
        self, connection_id: str, *, at: datetime | None = None
    ) -> ConnectionRow:
        """Note that a call through the connection just worked."""
        return self._update_connection(connection_id, {"last_success_at": at or utcnow()})

    def record_rate_limit(self, connection_id: str, *, until: datetime) -> ConnectionRow:
        """Remember how long the platform asked us to wait, so others can hold back too."""
        return self._update_connection(connection_id, {"rate_limited_until": until})

    def save_connection_credentials(
        self, connection_id: str, credentials_encrypted: bytes
    ) -> ConnectionRow:
        """Replace a connection's (already encrypted) credentials, e.g. after a token refresh."""
        return self._update_connection(
            connection_id,
            {"credentials_encrypted": credentials_encrypted, "updated_at": utcnow()},
        )

    def record_connection_error(
        self, connection_id: str, error: str, *, at: datetime | None = None
    ) -> ConnectionRow:
        """Note a failed call through the connection without changing its status."""
        return self._update_connection(
            connection_id, {"last_error": error, "last_error_at": at or utcnow()}
        )

    def _update_connection(self, connection_id: str, changes: dict[str, Any]) -> ConnectionRow:
        table = _table(ConnectionRow)
        statement = update(table).where(table.c.id == connection_id).values(**changes)
        with self._session() as session:
            result = cast(CursorResult[Any], session.execute(statement))
            if result.rowcount != 1:
                raise RecordNotFound(f"no connection {connection_id!r}")
            session.commit()
            stored = session.get(ConnectionRow, connection_id, populate_existing=True)
            assert stored is not None
            return stored

    # -- idempotency records -----------------------------------------------------------------

    def claim(
        self,
        scope: str,
        key: str,
        request_hash: str,
        *,
        lock_for: timedelta = timedelta(minutes=1),
    ) -> Claim:
        """Try to become the one request that runs under (scope, key).

        The primary key decides between concurrent callers. An unfinished claim whose lock
        has run out (its holder died) can be taken over by a request with the same hash.
        """
        table = _table(IdempotencyRow)
        now = utcnow()
        insert = (
            self._insert(IdempotencyRow)
            .values(
                scope=scope,
                key=key,
                request_hash=request_hash,
                status_code=None,
                response_body=None,
                created_at=now,
                locked_until=now + lock_for,
            )
            .on_conflict_do_nothing(index_elements=[table.c.scope, table.c.key])
            .returning(table.c.key)
        )
        with self._session() as session:
            inserted = session.execute(insert).first() is not None
            session.commit()
            if inserted:
                record = session.get(IdempotencyRow, (scope, key), populate_existing=True)
                assert record is not None
                return Claim("claimed", record)

            record = session.get(IdempotencyRow, (scope, key), populate_existing=True)
            if record is None:
                # Released between our insert and read: the caller may simply try again.
                raise RecordNotFound(f"idempotency key {scope}/{key} vanished while claiming")
            if record.request_hash != request_hash:
                return Claim("mismatch", record)
            if record.status_code is not None:
                return Claim("completed", record)
            if record.locked_until is not None and record.locked_until > now:
                return Claim("in_progress", record)

            takeover = (
                update(table)
                .where(
                    table.c.scope == scope,
                    table.c.key == key,
                    table.c.status_code.is_(None),
                    or_(table.c.locked_until.is_(None), table.c.locked_until <= now),
                )
                .values(locked_until=now + lock_for)
            )
            taken = cast(CursorResult[Any], session.execute(takeover)).rowcount == 1
            session.commit()
            record = session.get(IdempotencyRow, (scope, key), populate_existing=True)
            assert record is not None
            if taken:
                return Claim("claimed", record)
            return Claim("completed" if record.status_code is not None else "in_progress", record)

    def complete(
        self, scope: str, key: str, *, status_code: int, response_body: Any
    ) -> IdempotencyRow:
        """Store the response for a claimed key. The first completion wins."""
        table = _table(IdempotencyRow)
        statement = (
            update(table)
            .where(table.c.scope == scope, table.c.key == key, table.c.status_code.is_(None))
            .values(status_code=status_code, response_body=response_body, locked_until=None)
        )
        with self._session() as session:
            session.execute(statement)
            session.commit()
            record = session.get(IdempotencyRow, (scope, key), populate_existing=True)
            if record is None:
                raise RecordNotFound(f"idempotency key {scope}/{key} was never claimed")
            return record

    def release(self, scope: str, key: str) -> bool:
        """Give up an unfinished claim (the request failed before doing anything lasting)."""
        table = _table(IdempotencyRow)
        statement = sql_delete(table).where(
            table.c.scope == scope, table.c.key == key, table.c.status_code.is_(None)
        )
        with self._session() as session:
            released = cast(CursorResult[Any], session.execute(statement)).rowcount == 1
            session.commit()
            return released

    def get(self, scope: str, key: str) -> IdempotencyRow | None:
        with self._session() as session:
            return session.get(IdempotencyRow, (scope, key))

    def purge_idempotency_keys(self, *, older_than: datetime) -> int:
        """Forget keys first used before `older_than`; how many went.

        A claim still held (its request is running) stays whatever its age; one whose holder
        died goes, as its lock ran out long ago.
        """
        table = _table(IdempotencyRow)
        statement = sql_delete(table).where(
            table.c.created_at < older_than,
            or_(
                table.c.status_code.is_not(None),
                table.c.locked_until.is_(None),
                table.c.locked_until < utcnow(),
            ),
        )
        with self._session() as session:
            purged = cast(CursorResult[Any], session.execute(statement)).rowcount
            session.commit()
            return purged


__all__: Sequence[str] = (
    "Claim",
    "ClaimOutcome",
    "InvalidCursor",
    "RecordNotFound",
    "Store",
    "alembic_config",
    "make_engine",
    "migrate",
    "normalize_database_url",
)
