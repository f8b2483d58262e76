"""The JSON codec of stored columns keeps every Decimal digit and never produces a float."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from store.codec import dumps, loads


def test_decimals_are_json_numbers_that_read_back_identically() -> None:
    value = {
        "total": Decimal("1234567890123.000001"),
        "rate": Decimal("1E-6"),
        "n": [1, True, None],
    }
    text = dumps(value)
    assert '"total":1234567890123.000001' in text
    assert json.loads(text, parse_float=str)["total"] == "1234567890123.000001"
    assert loads(text) == value
    assert isinstance(loads(text)["rate"], Decimal)


def test_strings_keep_unicode_and_escapes() -> None:
    value = {"vendor": 'Müller "GmbH"\n'}
    assert loads(dumps(value)) == value


@pytest.mark.parametrize("bad", [Decimal("NaN"), float("inf"), {1: "x"}, object()])
def test_values_json_cannot_hold_are_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        dumps({"x": bad} if not isinstance(bad, dict) else bad)
