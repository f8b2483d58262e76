"""Property tests of Money and the unified accounting model: totals, rounding, JSON round trips."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from accounting import Amount, Bill, BillPayment, Money, minor_units, quantize
from accounting.money import _MINOR_UNITS

CURRENCIES = sorted(_MINOR_UNITS)

currencies = st.sampled_from(CURRENCIES)
# Amounts as ledgers hold them: up to 6 decimal places, well inside Decimal's 28 digits.
amounts = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6, allow_nan=False
)
positive_cents = st.integers(min_value=1, max_value=10**11).map(lambda n: Decimal(n).scaleb(-2))
issue_dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))

AMOUNT = TypeAdapter(Amount)


@given(amount=amounts, currency=currencies)
def test_quantize_rounds_to_the_minor_unit_and_stays_within_half_a_unit(
    amount: Decimal, currency: str
) -> None:
    rounded = quantize(amount, currency)
    unit = Decimal(1).scaleb(-minor_units(currency))
    assert rounded.as_tuple().exponent == -minor_units(currency)
    assert abs(rounded - amount) <= unit / 2
    assert quantize(rounded, currency) == rounded  # idempotent


@given(amount=amounts, currency=currencies)
def test_money_survives_a_json_round_trip_exactly(amount: Decimal, currency: str) -> None:
    money = Money(amount=amount, currency=currency.lower())
    assert money.currency == currency
    text = money.model_dump_json()
    assert '"amount":"' in text  # a string in JSON, never a float
    again = Money.model_validate_json(text)
    assert again == money
    assert again.amount == amount


@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_a_float_becomes_its_shortest_decimal_spelling(value: float) -> None:
    try:
        parsed = AMOUNT.validate_python(value)
    except ValidationError:
        # Only because the float's shortest spelling has more than 6 decimal places.
        assert Decimal(repr(value)).as_tuple().exponent < -6  # type: ignore[operator]
        return
    assert parsed == Decimal(repr(value))


@given(text=st.text(max_size=30))
def test_amount_parsing_refuses_with_a_validation_error_or_gives_a_finite_decimal(
    text: str,
) -> None:
    try:
        parsed = AMOUNT.validate_python(text)
    except ValidationError as exc:
        assert exc.errors()[0]["msg"]
        return
    assert parsed.is_finite()


@given(code=st.text(min_size=1, max_size=5))
def test_unknown_currency_codes_are_refused(code: str) -> None:
    assume(code.strip().upper() not in _MINOR_UNITS)
    with pytest.raises(ValidationError, match="ISO 4217"):
        Money(amount=Decimal(1), currency=code)


@st.composite
def bills(draw: st.DrawFn) -> tuple[list[Decimal], Decimal, Decimal]:
    lines = draw(st.lists(positive_cents, min_size=1, max_size=8))
    tax = draw(st.integers(min_value=0, max_value=10**9).map(lambda n: Decimal(n).scaleb(-2)))
    return lines, tax, sum(lines, Decimal(0)) + tax


def _bill(lines: list[Decimal], tax: Decimal, total: Decimal, issue: date, due: date) -> Bill:
    return Bill.model_validate(
        {
            "vendor_id": "V1",
            "issue_date": issue,
            "due_date": due,
            "currency": "USD",
            "lines": [{"amount": str(a), "account_id": "A1"} for a in lines],
            "tax_amount": str(tax),
            "total": str(total),
        }
    )


@given(bill=bills(), issue=issue_dates, days=st.integers(min_value=0, max_value=365))
def test_a_bill_whose_lines_and_tax_add_up_is_accepted_and_round_trips(
    bill: tuple[list[Decimal], Decimal, Decimal], issue: date, days: int
) -> None:
    lines, tax, total = bill
    parsed = _bill(lines, tax, total, issue, issue + timedelta(days=days))
    assert parsed.total == total
    assert Bill.model_validate_json(parsed.model_dump_json()) == parsed


@given(
    bill=bills(),
    issue=issue_dates,
    off_by=st.integers(min_value=1, max_value=10**6).map(lambda n: Decimal(n).scaleb(-2)),
    sign=st.sampled_from([1, -1]),
)
def test_a_bill_whose_total_is_off_is_refused_with_both_sums(
    bill: tuple[list[Decimal], Decimal, Decimal], issue: date, off_by: Decimal, sign: int
) -> None:
    lines, tax, total = bill
    wrong = total + sign * off_by
    assume(wrong > 0)
    with pytest.raises(ValidationError) as refused:
        _bill(lines, tax, wrong, issue, issue)
    message = str(refused.value)
    assert str(wrong) in message and "correct the lines or the total" in message


@given(bill=bills(), issue=issue_dates, days=st.integers(min_value=1, max_value=365))
def test_a_due_date_before_the_issue_date_is_refused(
    bill: tuple[list[Decimal], Decimal, Decimal], issue: date, days: int
) -> None:
    lines, tax, total = bill
    assume(issue - timedelta(days=days) >= date.min)
    with pytest.raises(ValidationError, match="before the issue date"):
        _bill(lines, tax, total, issue, issue - timedelta(days=days))


@given(lines=st.lists(positive_cents, min_size=1, max_size=6), extra=positive_cents)
def test_a_payment_total_must_equal_its_lines(lines: list[Decimal], extra: Decimal) -> None:
    payload = {
        "vendor_id": "V1",
        "payment_date": date(2026, 11, 2),
        "currency": "USD",
        "source_account_id": "B1",
        "lines": [{"bill_id": f"B{i}", "amount": str(a)} for i, a in enumerate(lines)],
    }
    paid = sum(lines, Decimal(0))
    assert BillPayment.model_validate({**payload, "total": str(paid)}).total == paid
    with pytest.raises(ValidationError, match="payment lines sum to"):
        BillPayment.model_validate({**payload, "total": str(paid + extra)})
