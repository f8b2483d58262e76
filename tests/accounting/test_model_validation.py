"""The accounting model refuses inconsistent bills with messages a person can act on."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from accounting import Bill, BillDraft, BillPayment, DraftLine, Money, quantize


def _draft(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "document_number": "INV-1",
        "issue_date": "2026-11-02",
        "due_date": "2026-12-02",
        "currency": "USD",
        "vendor": {"name": "Northwind"},
        "lines": [{"amount": "425.00"}, {"amount": "475.00"}],
        "tax_amount": "0.00",
        "total": "900.00",
    }
    fields.update(changes)
    return fields


def _message(error: pytest.ExceptionInfo[ValidationError]) -> str:
    return " | ".join(str(detail["msg"]) for detail in error.value.errors())


def test_a_consistent_draft_is_accepted() -> None:
    draft = BillDraft.model_validate(_draft())
    assert draft.total == Decimal("900.00")
    assert sum(line.amount for line in draft.lines) + draft.tax_amount == draft.total


def test_lines_not_summing_to_the_total_say_both_numbers() -> None:
    with pytest.raises(ValidationError) as error:
        BillDraft.model_validate(_draft(total="905.00"))
    message = _message(error)
    assert "line items sum to 900.00" in message
    assert "the total is 905.00" in message
    assert "correct the lines or the total" in message


def test_tax_counts_towards_the_total() -> None:
    assert BillDraft.model_validate(_draft(tax_amount="10.00", total="910.00")).total == Decimal(
        "910.00"
    )
    with pytest.raises(ValidationError) as error:
        BillDraft.model_validate(_draft(tax_amount="10.00"))
    assert "tax is 10.00, which makes 910.00" in _message(error)


@pytest.mark.parametrize("amount", ["0.00", "-1.00", "12.50"])
def test_line_amounts_of_any_sign_are_lines(amount: str) -> None:
    # Discounts and returns are negative lines, a free item a zero one (EN 16931 allows both).
    assert DraftLine.model_validate({"amount": amount}).amount == Decimal(amount)


def test_negative_total_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        BillDraft.model_validate(_draft(total="-900.00"))
    assert "amount must not be negative" in _message(error)


def test_a_fully_prepaid_draft_has_nothing_to_pay() -> None:
    draft = BillDraft.model_validate(
        _draft(lines=[{"amount": "900.00"}, {"amount": "-900.00", "kind": "prepaid"}], total="0")
    )
    assert draft.total == 0
    assert draft.document_type == "invoice"
    assert draft.review_reasons == []


def test_negative_tax_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        BillDraft.model_validate(_draft(tax_amount="-1.00", total="899.00"))
    assert "tax amount cannot be negative" in _message(error)


@pytest.mark.parametrize("code", ["USDD", "EURO", "XYZ", ""])
def test_unknown_currency_names_the_code_and_the_fix(code: str) -> None:
    with pytest.raises(ValidationError) as error:
        BillDraft.model_validate(_draft(currency=code))
    message = _message(error)
    assert f"unknown currency {code!r}" in message
    assert "ISO 4217" in message


def test_currency_codes_are_normalised() -> None:
    assert BillDraft.model_validate(_draft(currency=" eur ")).currency == "EUR"


def test_due_before_issue_names_both_dates() -> None:
    with pytest.raises(ValidationError) as error:
        BillDraft.model_validate(_draft(due_date="2026-10-01"))
    assert "due date 2026-10-01 is before the issue date 2026-11-02" in _message(error)


def test_bill_applies_the_same_checks() -> None:
    bill = {
        "vendor_id": "56",
        "issue_date": date(2026, 11, 2),
        "currency": "USD",
        "lines": [{"amount": "100.00"}],
        "total": "100.00",
    }
    assert Bill.model_validate(bill).total == Decimal("100.00")
    with pytest.raises(ValidationError) as error:
        Bill.model_validate({**bill, "total": "99.99"})
    assert "line items sum to 100.00" in _message(error)


def test_payment_lines_must_add_up_to_the_payment() -> None:
    with pytest.raises(ValidationError) as error:
        BillPayment.model_validate(
            {
                "vendor_id": "56",
                "payment_date": "2026-11-10",
                "currency": "USD",
                "source_account_id": "35",
                "total": "100.00",
                "lines": [{"bill_id": "1", "amount": "60.00"}, {"bill_id": "2", "amount": "30.00"}],
            }
        )
    assert "payment lines sum to 90.00 but the payment total is 100.00" in _message(error)


def test_decimal_sums_are_exact_where_floats_are_not() -> None:
    assert 0.1 + 0.2 != 0.3  # the trap the model must not fall into
    draft = BillDraft.model_validate(
        _draft(lines=[{"amount": "0.1"}, {"amount": "0.2"}], total="0.3")
    )
    assert sum(line.amount for line in draft.lines) == Decimal("0.3") == draft.total


def test_float_input_takes_its_shortest_decimal_spelling() -> None:
    line = DraftLine.model_validate({"amount": 0.1})
    assert line.amount == Decimal("0.1")


def test_amounts_serialise_as_strings_not_floats() -> None:
    dumped = BillDraft.model_validate(_draft()).model_dump(mode="json")
    assert dumped["total"] == "900.00"
    assert dumped["lines"][0]["amount"] == "425.00"


def test_money_rounds_half_even_to_the_currency() -> None:
    assert quantize(Decimal("0.125"), "USD") == Decimal("0.12")
    assert quantize(Decimal("0.135"), "USD") == Decimal("0.14")
    assert quantize(Decimal("1234.5"), "JPY") == Decimal("1234")
    assert str(Money(amount=Decimal("1234.5"), currency="usd")) == "USD 1,234.50"
