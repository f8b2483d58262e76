"""Why a document was refused: Problem, CaptureError, and the shared checks of every format."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from accounting.money import minor_units

ACCEPTED_FORMATS = (
    "accepted are the remit JSON bill (a JSON object), EN 16931 e-invoices as UBL 2.1 Invoice "
    "or CreditNote XML (Peppol BIS Billing 3.0) or UN/CEFACT CII XML (Factur-X, ZUGFeRD 1.0 "
    "and 2.x, XRechnung), PDFs with such an XML embedded (Factur-X, ZUGFeRD), and other PDFs "
    "and scans (PNG, JPEG, TIFF), read by their text layer or by OCR"
)

# Larger than any real invoice amount; keeps Decimal arithmetic (28 digits) exact.
MAX_AMOUNT = Decimal(10) ** 15


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where (a JSON path or an XPath) and what to do."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


class CaptureError(ValueError):
    """The document was refused; `problems` lists every reason found, each with its location."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("a CaptureError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        super().__init__(self._describe())

    def _describe(self) -> str:
        if len(self.problems) == 1:
            return f"the document was refused: {self.problems[0]}"
        listed = "\n".join(f"- {problem}" for problem in self.problems)
        return f"the document was refused ({len(self.problems)} problems):\n{listed}"

    def __str__(self) -> str:
        return self._describe()


def show(value: Decimal) -> str:
    """A Decimal as people write it: 425.00, never 4.25E+2."""
    return format(value, "f")


def decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def check_fits_currency(value: Decimal, currency: str) -> str | None:
    """Why `value` cannot be an amount in `currency` (too many decimals), or None if it can."""
    places = minor_units(currency)
    if decimal_places(value.normalize()) > places:
        unit = "no decimals" if places == 0 else f"{places} decimal places"
        return f"{show(value)} has more decimals than {currency} allows ({unit})"
    return None


def within_rounding(expected: Decimal, stated: Decimal, currency: str) -> bool:
    """True when `stated` is `expected` rounded to the currency's minor unit, either way."""
    half_unit = Decimal(1).scaleb(-minor_units(currency)) / 2
    return abs(expected - stated) <= half_unit


def format_location(loc: Iterable[int | str]) -> str:
    """pydantic's ('line_items', 1, 'total_amount') as line_items[1].total_amount."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "document"


_FRIENDLY: dict[str, str] = {
    "missing": "this field is required",
    "string_type": "must be text (a JSON string)",
    "string_too_short": "must not be empty",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON list",
    "bool_type": "must be true or false",
}


def problems_from_validation_error(
    error: ValidationError,
    *,
    rename: dict[str, str] | None = None,
    accepted_fields: Any = None,
) -> list[Problem]:
    """Turn pydantic's errors into Problems a person can act on.

    `rename` maps model field names to the document's own names; `accepted_fields(loc)` names
    the fields allowed beside an unknown one, so the message can say what was meant.
    """
    rename = rename or {}
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        loc = tuple(rename.get(p, p) if isinstance(p, str) else p for p in detail["loc"])
        kind = detail["type"]
        ctx = detail.get("ctx") or {}
        if isinstance(ctx.get("field"), str):
            # A check across fields names the one to correct.
            loc = (*loc, ctx["field"])
        if kind == "extra_forbidden":
            name = loc[-1] if loc else "?"
            message = f"unknown field {name!r}"
            if accepted_fields is not None:
                allowed = accepted_fields(loc[:-1])
                if allowed:
                    message += f": the fields accepted here are {', '.join(sorted(allowed))}"
        elif kind == "string_too_long":
            message = f"is too long: at most {ctx.get('max_length')} characters"
        elif kind == "too_short" and ctx.get("min_length") == 1:
            message = "must have at least one entry"
        elif kind in _FRIENDLY:
            message = _FRIENDLY[kind]
        else:
            message = str(detail["msg"]).removeprefix("Value error, ")
        problems.append(Problem(format_location(loc), message))
    return problems
