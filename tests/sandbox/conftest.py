"""Fixtures for the stage's tests: the e2e marker and the example documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.starter.conftest import EXAMPLES


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts the real embedded stack (`remit up`)")


@pytest.fixture
def examples() -> Path:
    return EXAMPLES
