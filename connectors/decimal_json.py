"""JSON for platform wires: Decimal in, Decimal out, never through float.

The one reader and writer of every wire in connectors/ (the ERP clients, the bank rail, the
send loop in connectors.http); each platform's wire module re-exports `loads` and `dumps` for
the emulators and tests that speak its JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every fractional number as Decimal."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any, *, floats: bool = True) -> str:
    """Serialise JSON compactly, writing Decimal as a plain number so amounts never pass
    through float; dates as ISO strings. `floats=False` refuses floats (TypeError), for a wire
    where every number may be money (NetSuite's)."""
    if isinstance(value, Mapping):
        items = (
            f"{json.dumps(str(key))}:{dumps(item, floats=floats)}" for key, item in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(item, floats=floats) for item in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as a JSON number")
        return format(value, "f")
    if isinstance(value, float) and not floats:
        raise TypeError("floats never carry money here: use Decimal")
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    return json.dumps(value)
