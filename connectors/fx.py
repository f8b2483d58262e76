"""Where exchange rates come from when the ERP keeps none: one small interface, two sources."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Protocol

from accounting import ExchangeRate


class RateSource(Protocol):
    """A rate provider: home-currency units per unit of `currency` on `on`, or None."""

    async def quote_rate(
        self, currency: str, home_currency: str, on: date
    ) -> ExchangeRate | None: ...


class FixedRates:
    """Rates from configuration (e.g. a treasury's monthly rates), each in one home currency."""

    def __init__(self, rates: dict[str, Decimal], *, home_currency: str, as_of: date) -> None:
        self._rates = dict(rates)
        self._home = home_currency
        self._as_of = as_of

    async def quote_rate(self, currency: str, home_currency: str, on: date) -> ExchangeRate | None:
        if home_currency != self._home or currency not in self._rates:
            return None
        return ExchangeRate(
            currency=currency,
            home_currency=home_currency,
            rate=self._rates[currency],
            as_of=min(self._as_of, on),
            source="configured rates",
        )
