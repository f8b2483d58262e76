"""Turns the connectors' error taxonomy into Temporal retry behaviour."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from connectors.base import ConnectorError, RateLimited

P = ParamSpec("P")
R = TypeVar("R")


def to_application_error(err: ConnectorError) -> ApplicationError:
    """Rejected/NotFound/ConnectionRevoked stop retrying; RateLimited waits the platform's delay."""
    return ApplicationError(
        str(err),
        {"platform": err.platform, "status": err.status, "code": err.code},
        type=type(err).__name__,
        non_retryable=not err.retryable,
        next_retry_delay=err.retry_after if isinstance(err, RateLimited) else None,
    )


def classified(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap an activity so connector errors reach Temporal with the right retry semantics."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ConnectorError as err:
            raise to_application_error(err) from err

    return wrapper
