"""Work on a stranger's document in a thread of its own, for at most so many seconds of ours."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TookTooLong(Exception):
    """The work did not finish in time (it may still be running, bounded by its own limits)."""


def within(seconds: float, work: Callable[[], T], *, name: str) -> T:
    """`work()`'s result, or its exception, raised here; TookTooLong after `seconds`.

    A daemon thread: a pathological input costs the caller at most `seconds`, and the size
    bounds the work applies itself (decompression caps, page counts) end it soon after.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - carried to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TookTooLong(f"{name} took longer than {seconds:.0f} seconds")
    if failure:
        raise failure[0]
    return outcome[0]
