"""JSON for platform wires: Decimal in, Decimal out, never through float."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Serialise JSON, writing Decimal as a plain number so amounts never pass through float."""
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key))}:{dumps(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(item) for item in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as a JSON number")
        return format(value, "f")
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    return json.dumps(value)
