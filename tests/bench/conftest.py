"""The `chaos` marker: slow end-to-end runs that still belong to the default test run."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: a small chaos run (worker SIGKILL, Temporal restart, faulty ERPs)"
    )
