"""Shared fixtures for the accounting model and capture tests: the example documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).parent / "examples"


@pytest.fixture
def bill_json_bytes() -> bytes:
    return (EXAMPLES / "bill.json").read_bytes()


@pytest.fixture
def bill_json(bill_json_bytes: bytes) -> dict[str, Any]:
    """The example JSON bill as a fresh dict each test may change."""
    return json.loads(bill_json_bytes)  # type: ignore[no-any-return]


@pytest.fixture
def ubl_text() -> str:
    return (EXAMPLES / "invoice-ubl.xml").read_text(encoding="utf-8")
