"""The request log's collection: each ERP call an activity (or an API caller) makes, buffered
and written once when the activity ends, secrets redacted before anything is kept.

How the pieces meet: `RequestLogInterceptor` opens a buffer around every activity the worker
runs; `Recorded` (which `Connectors` puts around each connector) binds the connection to the
send loop's `exchange_recorder` for the length of one connector call; the send loop reports
each exchange; the buffer is flushed in one transaction at the end. No buffer (a test calling a
connector directly, the CLI): nothing is recorded and nothing is slowed down.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from connectors.http import Exchange, ExchangeRecorder, exchange_recorder
from store import RequestLogRow, RequestLogStore
from store.request_log import redact, redact_path
from store.types import utcnow

log = logging.getLogger("remit.request_log")

PURGE_EVERY = 3600.0
"""Seconds between two purges of old rows by one process (a cheap indexed DELETE)."""


class RequestBuffer:
    """The calls of one activity (or one API request), kept until `flush`."""

    def __init__(self, *, actor: str, workflow_id: str | None) -> None:
        self.actor = actor
        self.workflow_id = workflow_id
        self.rows: list[RequestLogRow] = []

    def add(
        self, connection_id: str, exchange: Exchange, secrets: Iterable[str], keep: Iterable[str]
    ) -> None:
        hidden = list(secrets)
        self.rows.append(
            RequestLogRow(
                connection_id=connection_id,
                at=utcnow(),
                actor=self.actor,
                workflow_id=self.workflow_id,
                method=exchange.method,
                path=redact_path(exchange.path, hidden, keep=keep),
                status=exchange.status,
                outcome=exchange.outcome,
                error_code=redact(exchange.error_code, hidden),
                error_message=redact(exchange.error_message, hidden),
                duration_ms=exchange.duration_ms,
                attempt=exchange.attempt,
            )
        )


_buffer: ContextVar[RequestBuffer | None] = ContextVar("remit_request_buffer", default=None)


class RequestLog:
    """Where buffers are flushed to, and the retention of what is there."""

    def __init__(self, store: RequestLogStore, *, retention: timedelta | None = None) -> None:
        self.store = store
        self._retention = retention
        self._last_purge = 0.0

    def flush(self, buffer: RequestBuffer) -> None:
        """Synchronous (run it in a thread): the buffer's rows in one transaction."""
        try:
            self.store.append(buffer.rows)
            buffer.rows = []
            now = time.monotonic()
            if self._retention is not None and now - self._last_purge > PURGE_EVERY:
                self._last_purge = now
                self.store.purge(older_than=utcnow() - self._retention)
        except Exception:
            # The log serves people looking back; it must never fail the work it describes.
            log.warning("could not write the request log", exc_info=True)


@asynccontextmanager
async def recording(
    request_log: RequestLog, *, actor: str, workflow_id: str | None = None
) -> AsyncIterator[RequestBuffer]:
    """Record the ERP calls made inside (through `Connectors`) and write them at the end."""
    buffer = RequestBuffer(actor=actor, workflow_id=workflow_id)
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)
        if buffer.rows:
            await asyncio.to_thread(request_log.flush, buffer)


def bound_recorder(
    connection_id: str, secrets: Callable[[], Iterable[str]], keep: Iterable[str]
) -> ExchangeRecorder | None:
    """A recorder for the send loop that files exchanges under `connection_id`, or None when
    nothing is being recorded here."""
    buffer = _buffer.get()
    if buffer is None:
        return None
    kept = tuple(keep)

    def record(exchange: Exchange) -> None:
        buffer.add(connection_id, exchange, secrets(), kept)

    return record


class Recorded:
    """A connector whose every call reports its exchanges under its connection."""

    def __init__(
        self,
        inner: Any,
        connection_id: str,
        *,
        secrets: Callable[[], Iterable[str]],
        keep: Iterable[str] = (),
    ) -> None:
        self._inner = inner
        self._connection_id = connection_id
        self._secrets = secrets
        self._keep = tuple(keep)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or name == "aclose" or not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        async def recorded(*args: Any, **kwargs: Any) -> Any:
            recorder = bound_recorder(self._connection_id, self._secrets, self._keep)
            if recorder is None:
                return await value(*args, **kwargs)
            token = exchange_recorder.set(recorder)
            try:
                return await value(*args, **kwargs)
            finally:
                exchange_recorder.reset(token)

        return recorded


def credential_values(credentials: dict[str, Any]) -> list[str]:
    """Every string in a connection's credentials: none of them may reach the log."""
    return [str(v) for v in credentials.values() if isinstance(v, str) and v]


class RequestLogInterceptor(Interceptor):
    """Opens a request buffer around every activity the worker runs (who: the activity type
    and its workflow), written once when the activity ends."""

    def __init__(self, request_log: RequestLog) -> None:
        self._log = request_log

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self._log)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, request_log: RequestLog) -> None:
        super().__init__(next)
        self._log = request_log

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        actor = f"{info.activity_type} (attempt {info.attempt})"
        async with recording(self._log, actor=actor, workflow_id=info.workflow_id):
            return await super().execute_activity(input)
