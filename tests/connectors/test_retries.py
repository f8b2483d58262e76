"""Inline retries of reads: which failures get another try, how long it waits, when it gives up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.base import ConnectorError, RateLimited, Rejected, Unavailable
from connectors.retries import MAX_INLINE_WAIT, read_attempts, retrying_read


class Script:
    """A read that fails with the given errors, in order, then answers "ok"."""

    def __init__(self, *failures: ConnectorError) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.slept: list[float] = []

    async def read(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def throttled(seconds: float) -> RateLimited:
    return RateLimited("slow down", retry_after=timedelta(seconds=seconds))


async def test_a_passing_outage_and_a_short_throttle_are_outlasted() -> None:
    script = Script(Unavailable("503"), throttled(1.5))
    assert await retrying_read(script.read, attempts=3, sleep=script.sleep) == "ok"
    assert script.calls == 3
    assert 0 < script.slept[0] < 1 and script.slept[1] == 1.5  # the platform's own wait


async def test_the_last_failure_goes_to_temporal_unchanged() -> None:
    last = Unavailable("still down")
    script = Script(Unavailable("503"), Unavailable("502"), last)
    with pytest.raises(Unavailable) as raised:
        await retrying_read(script.read, attempts=3, sleep=script.sleep)
    assert raised.value is last and script.calls == 3


async def test_a_long_retry_after_is_not_waited_inline() -> None:
    long_wait = throttled(MAX_INLINE_WAIT.total_seconds() + 1)
    script = Script(long_wait)
    with pytest.raises(RateLimited) as raised:
        await retrying_read(script.read, attempts=3, sleep=script.sleep)
    assert raised.value is long_wait and script.calls == 1 and script.slept == []


async def test_a_refusal_is_never_retried() -> None:
    script = Script(Rejected("bad request"))
    with pytest.raises(Rejected):
        await retrying_read(script.read, attempts=3, sleep=script.sleep)
    assert script.calls == 1


def test_the_connection_setting_sets_the_tries_and_one_turns_them_off() -> None:
    assert read_attempts({"read_attempts": "5"}) == 5
    assert read_attempts({"read_attempts": "0"}) == 1
    assert read_attempts({}) == 3
