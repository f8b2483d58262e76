"""CII D16B and ZUGFeRD 1.0 capture: refusals name the rule and the element by its CII XPath."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from accounting.documents import DocumentType
from accounting.formats import CaptureError, DocumentFormat, parse_document

SAMPLES = Path(__file__).parent / "einvoices"
CII = (SAMPLES / "cii/en16931__CII_example3.xml").read_text(encoding="utf-8")
ZF1 = (SAMPLES / "cii-zugferd1/akretion__zugferd-comfort.xml").read_text(encoding="utf-8")

HS = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"
HM = f"{HS}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
ZF1_HM = (
    "rsm:SpecifiedSupplyChainTradeTransaction/ram:ApplicableSupplyChainTradeSettlement"
    "/ram:SpecifiedTradeSettlementMonetarySummation"
)


def _edit(text: str, *replacements: tuple[str, str]) -> bytes:
    for old, new in replacements:
        assert old in text, f"the sample no longer contains {old!r}"
        text = text.replace(old, new, 1)
    return text.encode()


def _problems(content: bytes) -> dict[str, str]:
    with pytest.raises(CaptureError) as error:
        parse_document(content)
    return {problem.location: problem.message for problem in error.value.problems}


def test_the_cii_example_is_read() -> None:
    captured = parse_document(CII.encode())
    draft = captured.draft
    assert captured.format is DocumentFormat.cii
    assert (draft.vendor.name, draft.vendor.tax_id) == ("SubscriptionSeller", "DK16356706")
    assert (draft.issue_date, draft.due_date) == (date(2013, 4, 10), date(2013, 5, 10))
    assert (draft.currency, draft.tax_amount, draft.total) == ("DKK", Decimal(225), Decimal(1125))
    assert [line.description for line in draft.lines][-1] == "Freight charge"


def test_a_cii_amount_due_that_does_not_follow_is_refused_by_br_co_16() -> None:
    problems = _problems(_edit(CII, ("<ram:DuePayableAmount>1125<", "<ram:DuePayableAmount>1120<")))
    assert problems == {
        f"{HM}/ram:DuePayableAmount": "BR-CO-16: is 1120.00, but GrandTotalAmount (BT-112) - "
        "TotalPrepaidAmount (BT-113) + RoundingAmount (BT-114) = 1125.00"
    }


def test_a_cii_tax_total_that_is_not_the_sum_of_its_breakdown_is_refused_by_br_co_14() -> None:
    content = _edit(
        CII,
        ('<ram:TaxTotalAmount currencyID="DKK">225<', '<ram:TaxTotalAmount currencyID="DKK">226<'),
        ("<ram:GrandTotalAmount>1125<", "<ram:GrandTotalAmount>1126<"),
        ("<ram:DuePayableAmount>1125<", "<ram:DuePayableAmount>1126<"),
    )
    message = _problems(content)[f"{HM}/ram:TaxTotalAmount"]
    assert message.startswith("BR-CO-14: is 226.00, but the sum of the VAT breakdown's")


def test_the_tax_total_in_the_vat_accounting_currency_is_not_bt_110() -> None:
    content = _edit(
        CII,
        (
            '<ram:TaxTotalAmount currencyID="DKK">225</ram:TaxTotalAmount>',
            '<ram:TaxTotalAmount currencyID="EUR">30.17</ram:TaxTotalAmount>'
            '<ram:TaxTotalAmount currencyID="DKK">225</ram:TaxTotalAmount>',
        ),
    )
    assert parse_document(content).draft.tax_amount == Decimal(225)


def test_a_cii_date_not_in_format_102_says_how_to_write_it() -> None:
    problems = _problems(
        _edit(
            CII,
            (
                '<udt:DateTimeString format="102">20130410',
                '<udt:DateTimeString format="102">2013-04-10',
            ),
        )
    )
    assert problems == {
        "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString": "'2013-04-10' is not a "
        "date: CII writes dates as YYYYMMDD (format 102)"
    }


def test_a_cii_invoice_without_lines_outside_minimum_and_basic_wl_is_refused_by_br_16() -> None:
    start = CII.index("<ram:IncludedSupplyChainTradeLineItem>")
    end = CII.rindex("</ram:IncludedSupplyChainTradeLineItem>") + len(
        "</ram:IncludedSupplyChainTradeLineItem>"
    )
    problems = _problems((CII[:start] + CII[end:]).encode())
    assert problems == {
        "rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem": "BR-16: is "
        "required: the invoice has no lines"
    }


def test_a_cii_381_is_a_credit_note() -> None:
    content = _edit(CII, ("<ram:TypeCode>380<", "<ram:TypeCode>381<"))
    draft = parse_document(content).draft
    assert (draft.document_type, draft.type_code, draft.total) == (
        DocumentType.credit_note,
        "381",
        Decimal(1125),
    )


def test_an_unknown_cii_type_code_is_refused_naming_it() -> None:
    problems = _problems(_edit(CII, ("<ram:TypeCode>380<", "<ram:TypeCode>123<")))
    assert problems["rsm:ExchangedDocument/ram:TypeCode"].startswith(
        "BR-CL-01: '123' is not a UNTDID 1001 invoice or credit note type code"
    )


def test_an_amount_with_three_decimals_is_refused_by_its_br_dec_rule() -> None:
    problems = _problems(
        _edit(
            CII,
            (
                "<ram:LineTotalAmount>800</ram:LineTotalAmount>\n                <ram:Charge",
                "<ram:LineTotalAmount>800.001</ram:LineTotalAmount><ram:Charge",
            ),
        )
    )
    assert problems == {
        f"{HM}/ram:LineTotalAmount": "BR-DEC-09: 800.001 has more than 2 decimals (BT-106 is an "
        "amount)"
    }


def test_zugferd_1_refusals_use_its_own_element_names() -> None:
    content = _edit(
        ZF1,
        (
            '<ram:DuePayableAmount currencyID="EUR">529.87',
            '<ram:DuePayableAmount currencyID="EUR">530.00',
        ),
    )
    assert _problems(content) == {
        f"{ZF1_HM}/ram:DuePayableAmount": "BR-CO-16: is 530.00, but GrandTotalAmount (BT-112) - "
        "TotalPrepaidAmount (BT-113) + RoundingAmount (BT-114) = 529.87"
    }


def test_zugferd_1_rates_are_read_from_applicable_percent() -> None:
    draft = parse_document(ZF1.encode()).draft
    assert [(row.category, row.rate) for row in draft.tax_breakdown] == [
        ("S", Decimal(7)),
        ("S", Decimal(19)),
    ]
