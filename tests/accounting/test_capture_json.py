"""Capture of the remit JSON bill: the example parses, and every refusal names its field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from accounting.formats import CaptureError, Problem, parse_document
from accounting.formats.json_bill import parse_json_bill

Bill = dict[str, Any]


def _encode(bill: Bill) -> bytes:
    return json.dumps(bill).encode()


def _refusal(content: bytes) -> CaptureError:
    with pytest.raises(CaptureError) as error:
        parse_document(content)
    return error.value


def _problem_at(error: CaptureError, location: str) -> Problem:
    found = [problem for problem in error.problems if problem.location == location]
    assert found, f"no problem at {location}: {error.problems}"
    return found[0]


def test_the_example_bill_parses_to_the_expected_draft(bill_json_bytes: bytes) -> None:
    draft = parse_document(bill_json_bytes, file_name="bill.json").draft
    assert draft.document_number == "INV-2026-0412"
    assert draft.issue_date == date(2026, 11, 2)
    assert draft.due_date == date(2026, 12, 2)
    assert draft.currency == "USD"
    assert draft.vendor.name == "Northwind Office Supply"
    assert draft.vendor.tax_id == "94-1234567"
    assert draft.vendor.email == "ar@northwind.example"
    assert draft.memo == "November office supplies"
    assert [line.amount for line in draft.lines] == [Decimal("425.00"), Decimal("475.00")]
    assert [line.quantity for line in draft.lines] == [Decimal("10"), Decimal("4")]
    assert [line.unit_amount for line in draft.lines] == [Decimal("42.50"), Decimal("118.75")]
    assert [line.account for line in draft.lines] == ["Office Supplies", "Office Supplies"]
    assert draft.lines[1].department == "Operations"
    assert draft.tax_amount == Decimal("0.00")
    assert draft.total == Decimal("900.00")
    assert draft.purchase_order is None


def test_tracking_fields_and_optional_details_are_carried(bill_json: Bill) -> None:
    bill_json["line_items"][0].update({"class": "Retail", "location": "Boston"})
    bill_json["purchase_order"] = "PO-1"
    bill_json["vendor"]["country"] = "us"
    bill_json["payment"] = {"bank_account": "021000021-123456789"}
    draft = parse_json_bill(_encode(bill_json))
    assert draft.lines[0].class_ == "Retail"
    assert draft.lines[0].location == "Boston"
    assert draft.purchase_order == "PO-1"
    assert draft.vendor.country == "US"
    assert draft.vendor.bank_account == "021000021-123456789"


def test_json_numbers_are_read_as_exact_decimals(bill_json: Bill) -> None:
    # A float-y document: 0.1 + 0.2 is 0.30000000000000004 in binary floating point.
    bill_json["line_items"] = [
        {"description": "a", "total_amount": 0.1},
        {"description": "b", "total_amount": 0.2},
    ]
    bill_json["total_amount"] = 0.3
    text = json.dumps(bill_json)
    assert '"total_amount": 0.3' in text  # really JSON numbers, not strings
    draft = parse_document(text.encode()).draft
    assert [line.amount for line in draft.lines] == [Decimal("0.10"), Decimal("0.20")]
    assert draft.total == Decimal("0.30")


def test_string_amounts_sum_exactly(bill_json: Bill) -> None:
    bill_json["line_items"] = [{"total_amount": "0.1"}, {"total_amount": "0.2"}]
    bill_json["total_amount"] = "0.3"
    assert parse_document(_encode(bill_json)).draft.total == Decimal("0.30")


def test_exponent_numbers_become_plain_amounts(bill_json: Bill) -> None:
    content = _encode(bill_json).replace(b'"425.00"', b"4.25e2")
    draft = parse_document(content).draft
    assert draft.lines[0].amount == Decimal("425.00")
    assert "E" not in str(draft.lines[0].amount)


def test_line_arithmetic_allows_the_currencys_rounding(bill_json: Bill) -> None:
    bill_json["line_items"] = [{"quantity": "3", "unit_amount": "0.333333", "total_amount": "1.00"}]
    bill_json["total_amount"] = "1.00"
    assert parse_document(_encode(bill_json)).draft.total == Decimal("1.00")
    bill_json["line_items"][0]["total_amount"] = "1.01"
    bill_json["total_amount"] = "1.01"
    problem = _problem_at(_refusal(_encode(bill_json)), "line_items[0].total_amount")
    assert "quantity 3 × unit_amount 0.333333 = 0.999999" in problem.message


def test_blank_optional_text_is_absent(bill_json: Bill) -> None:
    bill_json["memo"] = "   "
    bill_json["vendor"]["tax_id"] = ""
    draft = parse_document(_encode(bill_json)).draft
    assert draft.memo is None
    assert draft.vendor.tax_id is None


def _set(path: str, value: Any) -> Callable[[Bill], None]:
    def change(bill: Bill) -> None:
        *parents, last = path.split(".")
        target: Any = bill
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return change


def _drop(field: str) -> Callable[[Bill], None]:
    return lambda bill: bill.pop(field)


REFUSALS: list[tuple[str, Callable[[Bill], None], str, str]] = [
    ("missing number", _drop("document_number"), "document_number", "required"),
    ("missing vendor", _drop("vendor"), "vendor", "required"),
    ("missing total", _drop("total_amount"), "total_amount", "required"),
    ("empty number", _set("document_number", "  "), "document_number", "must not be empty"),
    ("long number", _set("document_number", "X" * 65), "document_number", "at most 64"),
    ("number not text", _set("document_number", 412), "document_number", "must be text"),
    ("vendor not object", _set("vendor", "Northwind"), "vendor", "must be a JSON object"),
    ("no vendor name", _set("vendor.name", ""), "vendor.name", "must not be empty"),
    ("bad email", _set("vendor.email", "ar-at-northwind"), "vendor.email", "not an email"),
    ("bad country", _set("vendor.country", "USA"), "vendor.country", "two-letter"),
    ("unknown currency", _set("currency_code", "USDD"), "currency_code", "unknown currency"),
    ("bad date", _set("issue_date", "02/11/2026"), "issue_date", "YYYY-MM-DD"),
    ("unreal date", _set("due_date", "2026-02-30"), "due_date", "not a real calendar date"),
    (
        "due before issue",
        _set("due_date", "2026-10-01"),
        "due_date",
        "due date 2026-10-01 is before the issue date 2026-11-02",
    ),
    ("no lines", _set("line_items", []), "line_items", "at least one"),
    ("lines not a list", _set("line_items", {}), "line_items", "must be a JSON list"),
    (
        "zero line",
        _set("line_items.0.total_amount", "0"),
        "line_items[0].total_amount",
        "greater than zero",
    ),
    (
        "negative line",
        _set("line_items.1.total_amount", "-475.00"),
        "line_items[1].total_amount",
        "greater than zero, got -475.00",
    ),
    (
        "zero quantity",
        _set("line_items.0.quantity", "0"),
        "line_items[0].quantity",
        "greater than zero",
    ),
    (
        "quantity times unit",
        _set("line_items.1.unit_amount", "118.70"),
        "line_items[1].total_amount",
        "quantity 4 × unit_amount 118.70 = 474.80, but total_amount is 475.00",
    ),
    (
        "amount with separators",
        _set("line_items.0.unit_amount", "1,042.50"),
        "line_items[0].unit_amount",
        "without thousands separators",
    ),
    (
        "amount not a number",
        _set("total_amount", True),
        "total_amount",
        "must be a number or a numeric string",
    ),
    ("amount with symbol", _set("total_amount", "$900"), "total_amount", "is not a number"),
    ("negative total", _set("total_amount", "-900.00"), "total_amount", "greater than zero"),
    ("negative tax", _set("tax_amount", "-1.00"), "tax_amount", "must not be negative"),
    (
        "sub-cent total",
        _set("total_amount", "900.001"),
        "total_amount",
        "more decimals than USD allows",
    ),
    (
        "sub-cent line",
        _set("line_items.0.total_amount", "425.001"),
        "line_items[0].total_amount",
        "more decimals than USD allows",
    ),
    (
        "too precise",
        _set("line_items.0.unit_amount", "1.0000001"),
        "line_items[0].unit_amount",
        "6",
    ),
    ("huge", _set("total_amount", "1" + "0" * 20), "total_amount", "too large"),
    (
        "lines plus tax differ from total",
        _set("total_amount", "905.00"),
        "total_amount",
        "add up to 900.00 and tax_amount is 0.00, which makes 900.00, but total_amount is 905.00",
    ),
    (
        "tax left out of total",
        _set("tax_amount", "72.00"),
        "total_amount",
        "which makes 972.00, but total_amount is 900.00",
    ),
    ("unknown top field", _set("colour", "red"), "colour", "unknown field 'colour'"),
    ("unknown vendor field", _set("vendor.vat", "x"), "vendor.vat", "unknown field 'vat'"),
    (
        "unknown line field",
        _set("line_items.1.sku", "T-1"),
        "line_items[1].sku",
        "the fields accepted here are account, class,",
    ),
    (
        "unknown payment field",
        _set("payment", {"iban": "DE89"}),
        "payment.iban",
        "accepted here are bank_account",
    ),
    (
        "two bank accounts",
        lambda bill: bill.update(
            vendor={**bill["vendor"], "bank_account": "A"}, payment={"bank_account": "B"}
        ),
        "payment.bank_account",
        "give one account",
    ),
]


@pytest.mark.parametrize(
    ("change", "location", "fragment"),
    [refusal[1:] for refusal in REFUSALS],
    ids=[refusal[0] for refusal in REFUSALS],
)
def test_each_refusal_names_the_field_and_the_reason(
    bill_json: Bill, change: Callable[[Bill], None], location: str, fragment: str
) -> None:
    change(bill_json)
    error = _refusal(_encode(bill_json))
    problem = _problem_at(error, location)
    assert fragment in problem.message
    assert f"{location}: {problem.message}" in str(error)


def test_unknown_fields_list_what_is_accepted(bill_json: Bill) -> None:
    bill_json["currency"] = "USD"
    problem = _problem_at(_refusal(_encode(bill_json)), "currency")
    assert "currency_code" in problem.message  # points at the field that was meant


def test_all_field_problems_are_reported_at_once(bill_json: Bill) -> None:
    bill_json["issue_date"] = "yesterday"
    bill_json["vendor"]["email"] = "nope"
    bill_json["line_items"][0]["total_amount"] = "-1"
    error = _refusal(_encode(bill_json))
    assert {problem.location for problem in error.problems} == {
        "issue_date",
        "vendor.email",
        "line_items[0].total_amount",
    }
    assert str(error).startswith("the document was refused (3 problems):\n- ")


def test_an_unknown_currency_does_not_hide_other_problems(bill_json: Bill) -> None:
    bill_json["currency_code"] = "XXX"
    bill_json["line_items"][0]["quantity"] = "-1"
    locations = {problem.location for problem in _refusal(_encode(bill_json)).problems}
    assert locations == {"currency_code", "line_items[0].quantity"}


def test_zero_decimal_currency_refuses_cents(bill_json: Bill) -> None:
    bill_json.update(currency_code="JPY", tax_amount="0", total_amount="900.50")
    bill_json["line_items"] = [{"total_amount": "900.50"}]
    error = _refusal(_encode(bill_json))
    assert "JPY allows (no decimals)" in _problem_at(error, "total_amount").message


@pytest.mark.parametrize(
    ("content", "location", "fragment"),
    [
        (b'{"document_number": "1",\n "issue_date": }', "line 2, column 16", "not valid JSON"),
        (b"[1, 2]", "document", "one object"),
        (b'{"a": 1, "a": 2}', "document", "'a' appears twice"),
        (b'{"total_amount": NaN}', "document", "NaN is not a number"),
        (b'{"memo": "caf\xe9"}', "document", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "document", "nested too deeply"),
    ],
    ids=["syntax", "array", "duplicate key", "nan", "latin-1", "deep nesting"],
)
def test_unreadable_json_is_refused_with_a_location(
    content: bytes, location: str, fragment: str
) -> None:
    problem = _problem_at(_refusal(content), location)
    assert fragment in problem.message


def test_a_byte_order_mark_is_tolerated(bill_json_bytes: bytes) -> None:
    assert parse_document(b"\xef\xbb\xbf" + bill_json_bytes).draft.total == Decimal("900.00")
