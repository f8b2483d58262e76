"""The `remit` command: `app`, run by `main` with the commands of the `remit.cli` entry points."""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points

from starter.cli.main import app

__all__ = ["COMMANDS_GROUP", "app", "load_commands", "main"]

COMMANDS_GROUP = "remit.cli"
"""Entry points whose `register(app)` adds commands to `remit` (the stage's `up`, `demo`,
`connections`): the product names no package above it."""


def load_commands() -> None:
    for point in entry_points(group=COMMANDS_GROUP):
        point.load()(app)


def temporal_runtime_started() -> bool:
    """Whether this process started Temporal's native (Rust) runtime: a Temporal client did."""
    runtime = sys.modules.get("temporalio.runtime")
    reference = getattr(runtime, "_runtime_ref", None)
    return getattr(reference, "_default_runtime", None) is not None


def main() -> None:
    """The `remit` executable. A command that talked to Temporal (up, demo, worker, api,
    migrate, connections add/relink) leaves the runtime's threads running, and Python's
    finalization can abort under them (SIGABRT, "no Python frame"): once the command is done
    and its output flushed, such a process ends without finalizing. Bills commands go through
    the HTTP API and never start that runtime, so they exit the ordinary way."""
    code: int = 0
    try:
        load_commands()
        app()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    if temporal_runtime_started():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
