"""Fuzzing the capture parsers: any bytes, mutated JSON bills, mutated UBL invoices.

Whatever comes in, capture either yields a BillDraft that adds up or raises CaptureError whose
every problem says where and what; never any other exception (which would crash a workflow or
turn into a 500 at the API).
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from hypothesis import given
from hypothesis import strategies as st

from accounting.formats import CapturedDocument, CaptureError, parse_document
from accounting.formats.ubl import NAMESPACES

EXAMPLES = Path(__file__).resolve().parents[2] / "starter" / "examples"
JSON_EXAMPLE: dict[str, Any] = json.loads((EXAMPLES / "bill.json").read_text())
UBL_EXAMPLE = (EXAMPLES / "invoice-ubl.xml").read_bytes()

for prefix, uri in {
    "": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    **NAMESPACES,
}.items():
    ElementTree.register_namespace(prefix, uri)


def check_outcome(content: bytes) -> CapturedDocument | None:
    """Parse; the only refusal allowed is CaptureError with located, worded problems."""
    try:
        captured = parse_document(content, file_name="fuzz", media_type=None)
    except CaptureError as refused:
        assert refused.problems
        for problem in refused.problems:
            assert problem.location, refused
            assert problem.message.strip(), refused
        assert str(refused)
        return None
    draft = captured.draft
    lines = sum((line.amount for line in draft.lines), Decimal(0))
    assert lines + draft.tax_amount == draft.total
    assert draft.total >= 0  # a fully prepaid invoice leaves nothing to pay
    assert captured.key == captured.source.sha256
    return captured


def test_the_examples_parse() -> None:
    assert check_outcome(json.dumps(JSON_EXAMPLE).encode()) is not None
    assert check_outcome(UBL_EXAMPLE) is not None


@given(content=st.binary(max_size=2048))
def test_arbitrary_bytes_are_refused_cleanly(content: bytes) -> None:
    check_outcome(content)


@given(prefix=st.sampled_from([b"{", b"[", b"<", b"\xef\xbb\xbf{", b" <?xml"]), rest=st.binary())
def test_bytes_that_look_like_json_or_xml_are_refused_cleanly(prefix: bytes, rest: bytes) -> None:
    check_outcome(prefix + rest)


# --- JSON bills -------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e5",
            "1,000.00",
            "$5",
            "2026-02-30",
            "2026-13-01",
            "9" * 40,
            "0.0000001",
            "USD",
            "usd",
            "XXX",
            "{detail}",
            "nan",
            "Infinity",
            "1E+400",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*at, index))
    return found


@st.composite
def mutated_json_bills(draw: st.DrawFn) -> bytes:
    bill = copy.deepcopy(JSON_EXAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(bill) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = bill
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return json.dumps(bill, allow_nan=True).encode()


@given(content=mutated_json_bills())
def test_mutated_json_bills_parse_or_are_refused_with_a_location(content: bytes) -> None:
    check_outcome(content)


@given(
    line_amounts=st.lists(
        st.decimals(min_value=Decimal("-10"), max_value=Decimal("1e14"), places=3),
        min_size=1,
        max_size=5,
    ),
    tax=st.decimals(min_value=Decimal("-5"), max_value=Decimal("1e6"), places=2),
    currency=st.sampled_from(["USD", "JPY", "KWD", "EUR", "usd", "ZZZ"]),
    skew=st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("-0.005")]),
)
def test_json_bill_arithmetic_is_checked_not_crashed(
    line_amounts: list[Decimal], tax: Decimal, currency: str, skew: Decimal
) -> None:
    bill = copy.deepcopy(JSON_EXAMPLE)
    bill["currency_code"] = currency
    bill["line_items"] = [
        {"description": f"line {i}", "total_amount": str(a)} for i, a in enumerate(line_amounts)
    ]
    bill["tax_amount"] = str(tax)
    bill["total_amount"] = str(sum(line_amounts, Decimal(0)) + tax + skew)
    captured = check_outcome(json.dumps(bill).encode())
    if captured is not None:
        assert skew == 0
        assert all(amount > 0 for amount in line_amounts)


# --- UBL invoices -----------------------------------------------------------------------------

xml_texts = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=30),
    st.sampled_from(
        [
            "",
            "0",
            "-1.00",
            "1e3",
            "12,50",
            "2026-02-30",
            "381",
            "XXX",
            "EUR",
            "USD",
            "9" * 30,
            "0.001",
            "true",
            "false",
            "1000000000000000",
            "999999999999999.99",
            "0.000000000000000000000000001",
            "-0",
            "384",
            "389",
            "20261105",
            "S",
            "O",
        ]
    ),
)


@st.composite
def mutated_ubl_invoices(draw: st.DrawFn, example: bytes = UBL_EXAMPLE) -> bytes:
    root = ElementTree.fromstring(example)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        elements = list(root.iter())
        target = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["text", "remove", "duplicate", "currency"]))
        if action == "text":
            target.text = draw(xml_texts)
        elif action == "currency":
            target.set("currencyID", draw(xml_texts))
        elif target is not root:
            parent = next(p for p in root.iter() if target in list(p))
            if action == "remove":
                parent.remove(target)
            else:
                parent.append(copy.deepcopy(target))
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


@given(content=mutated_ubl_invoices())
def test_mutated_ubl_invoices_parse_or_are_refused_with_an_xpath(content: bytes) -> None:
    check_outcome(content)


@given(
    cut=st.integers(min_value=0, max_value=len(UBL_EXAMPLE)),
    length=st.integers(min_value=0, max_value=64),
    insert=st.binary(max_size=16),
)
def test_byte_damaged_ubl_invoices_are_refused_cleanly(
    cut: int, length: int, insert: bytes
) -> None:
    check_outcome(UBL_EXAMPLE[:cut] + insert + UBL_EXAMPLE[cut + length :])


# --- credit notes, CII and ZUGFeRD 1.0 ----------------------------------------------------------

SAMPLES = Path(__file__).resolve().parents[1] / "accounting" / "einvoices"
OTHER_EXAMPLES = [
    (SAMPLES / name).read_bytes()
    for name in (
        "ubl-creditnote/peppol__base-creditnote-correction.xml",
        "cii/en16931__CII_example3.xml",
        "cii/akretion__factur-x-basicwl.xml",
        "cii-zugferd1/akretion__zugferd-comfort.xml",
    )
]


def test_the_other_examples_parse() -> None:
    for example in OTHER_EXAMPLES:
        assert check_outcome(example) is not None


@given(content=st.sampled_from(OTHER_EXAMPLES).flatmap(lambda x: mutated_ubl_invoices(x)))
def test_mutated_credit_notes_and_cii_invoices_parse_or_are_refused_with_an_xpath(
    content: bytes,
) -> None:
    check_outcome(content)
