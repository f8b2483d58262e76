"""Column types that behave the same on SQLite and PostgreSQL: exact decimals, UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_SCALE = 6
MONEY_PRECISION = 18
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
_LIMIT = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _checked_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"float {value!r} given for a decimal column: use Decimal")
    amount = value if isinstance(value, Decimal) else Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{amount!r} is not a finite amount")
    if amount != amount.quantize(_QUANTUM):
        raise ValueError(f"{amount} has more than {MONEY_SCALE} decimal places")
    if abs(amount) >= _LIMIT:
        raise ValueError(f"{amount} does not fit Numeric({MONEY_PRECISION},{MONEY_SCALE})")
    return amount.quantize(_QUANTUM)


class ExactDecimal(TypeDecorator[Decimal]):
    """Numeric(18,6) that never loses a digit.

    PostgreSQL stores NUMERIC natively. SQLite has no decimal type (NUMERIC columns round
    through a C double), so there the value is kept as an integer count of millionths,
    which also keeps ordering and equality right in SQL.
    """

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = _checked_decimal(value)
        if dialect.name == "sqlite":
            return int(amount.scaleb(MONEY_SCALE))
        return amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_SCALE).quantize(_QUANTUM)
        return Decimal(value).quantize(_QUANTUM)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always tz-aware UTC in Python, whatever the backend stores.

    Naive datetimes are refused on the way in: guessing their zone is how audit trails drift.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a tz-aware UTC datetime")
        in_utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite compares timestamps as text; one fixed zone keeps that order right.
            return in_utc.replace(tzinfo=None)
        return in_utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime
