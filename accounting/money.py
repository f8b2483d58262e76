"""Money: Decimal amounts with an ISO 4217 currency code; never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

# ISO 4217 active codes with their minor units. Codes absent here are refused, so a typo
# such as "USDD" or "EURO" never reaches an ERP.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN "
        "BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
        "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR "
        "LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD "
        "PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN "
        "SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW "
        "ZWL".split(),
        2,
    ),
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


def minor_units(currency: str) -> int:
    """How many decimal places the currency uses (2 for USD, 0 for JPY, 3 for KWD)."""
    return _MINOR_UNITS[currency]


def _check_currency(value: Any) -> Any:
    if isinstance(value, str):
        code = value.strip().upper()
        if code not in _MINOR_UNITS:
            raise ValueError(
                f"unknown currency {value!r}: use an ISO 4217 code such as USD, EUR or GBP"
            )
        return code
    return value


def _to_decimal(value: Any) -> Any:
    if isinstance(value, float):
        # Floats carry binary rounding error; take their shortest decimal spelling instead.
        value = repr(value)
    if isinstance(value, int | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a number") from exc
    return value


def _check_finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("amount must be a finite number")
    if value.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValueError("amount has more than 6 decimal places")
    return value


def _check_positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("amount must be greater than zero")
    return value


CurrencyCode = Annotated[str, BeforeValidator(_check_currency)]
"""An ISO 4217 code, upper-cased; unknown codes are refused."""

Amount = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    AfterValidator(_check_finite),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
]
"""A Decimal amount; serialised as a string in JSON so no float ever carries money."""

PositiveAmount = Annotated[Amount, AfterValidator(_check_positive)]


def _finite_number(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("amount must not be negative")
    return value


NonNegativeAmount = Annotated[Amount, AfterValidator(_not_negative)]
"""An amount of zero or more: a fully prepaid invoice has nothing left to pay."""

Quantity = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    AfterValidator(_finite_number),
    PlainSerializer(lambda d: str(d), return_type=str, when_used="json"),
]
"""A quantity, unit price or percentage: any number of decimals (EN 16931 caps none of them)."""


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit (banker's rounding, as ledgers do)."""
    exp = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exp, rounding=ROUND_HALF_EVEN)


def as_written(amount: Decimal, currency: str) -> Decimal:
    """The amount at the currency's minor units when that loses nothing (`900.000000` read
    back from a NUMERIC column → `900.00`), else exactly as it is: never rounded."""
    try:
        exact = quantize(amount, currency)
    except KeyError:
        return amount
    return exact if exact == amount else amount


def format_money(amount: Decimal | None, currency: str) -> str:
    """`USD 1,234.50`, `JPY 1,235`: how remit prints money everywhere (pages, CLI, messages):
    the currency's own minor units, thousands grouped, the code first. None prints as zero."""
    value = amount if amount is not None else Decimal(0)
    try:
        places = minor_units(currency)
    except KeyError:
        places = 2
    quantum = Decimal(1).scaleb(-places)
    return f"{currency} {value.quantize(quantum, rounding=ROUND_HALF_EVEN):,}"


class Money(BaseModel):
    """An amount in one currency."""

    model_config = ConfigDict(frozen=True)

    amount: Amount
    currency: CurrencyCode

    def __str__(self) -> str:
        return f"{self.currency} {quantize(self.amount, self.currency):,}"
