"""Capture of UBL 2.1 / Peppol BIS 3.0 invoices: the example parses; bad or hostile XML is not."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from accounting.documents import BillDraft, DocumentType, LineKind
from accounting.formats import CaptureError, DocumentFormat, Problem, parse_document

PAYABLE = '<cbc:PayableAmount currencyID="EUR">1011.50</cbc:PayableAmount>'
LINE_2_AMOUNT = '<cbc:LineExtensionAmount currencyID="EUR">250.00</cbc:LineExtensionAmount>'
LINE_1_PRICE = '<cbc:PriceAmount currencyID="EUR">120.00</cbc:PriceAmount>'
PARTY_NAME = """<cac:PartyName>
        <cbc:Name>Rheinwerk Maschinenbau GmbH</cbc:Name>
      </cac:PartyName>"""


def _edit(text: str, *replacements: tuple[str, str]) -> bytes:
    for old, new in replacements:
        assert old in text, f"the example no longer contains {old!r}"
        text = text.replace(old, new, 1)
    return text.encode()


def _refusal(content: bytes) -> CaptureError:
    with pytest.raises(CaptureError) as error:
        parse_document(content)
    return error.value


def _problem_at(error: CaptureError, location: str) -> Problem:
    found = [problem for problem in error.problems if problem.location == location]
    assert found, f"no problem at {location}: {error.problems}"
    return found[0]


def test_the_example_invoice_parses_to_the_expected_draft(ubl_text: str) -> None:
    captured = parse_document(ubl_text.encode(), file_name="invoice-ubl.xml")
    draft = captured.draft
    assert captured.format is DocumentFormat.ubl_invoice
    assert draft.document_number == "RE-88123"
    assert draft.issue_date == date(2026, 11, 5)
    assert draft.due_date == date(2026, 12, 5)
    assert draft.currency == "EUR"
    assert draft.total == Decimal("1011.50")
    assert draft.tax_amount == Decimal("161.50")
    assert [line.amount for line in draft.lines] == [Decimal("600.00"), Decimal("250.00")]
    assert [line.description for line in draft.lines] == [
        "Wartung Pressenlinie 3",
        "Ersatzteil Hydraulikventil",
    ]
    assert [(line.quantity, line.unit_amount) for line in draft.lines] == [
        (Decimal("5"), Decimal("120.00")),
        (Decimal("1"), Decimal("250.00")),
    ]
    assert draft.vendor.name == "Rheinwerk Maschinenbau GmbH"
    assert draft.vendor.tax_id == "DE811907980"
    assert draft.vendor.bank_account == "DE89370400440532013000"
    assert draft.vendor.country == "DE"
    assert draft.vendor.address == "Hafenstrasse 12, 50667 Koeln"
    assert draft.memo == "Wartungsvertrag Q4"
    assert draft.purchase_order == "PO-7731"


def test_registration_name_stands_in_for_a_missing_party_name(ubl_text: str) -> None:
    draft = parse_document(_edit(ubl_text, (PARTY_NAME, ""))).draft
    assert draft.vendor.name == "Rheinwerk Maschinenbau GmbH"


def test_accounting_cost_and_contact_email_are_read(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        ("<cbc:ID>1</cbc:ID>", "<cbc:ID>1</cbc:ID><cbc:AccountingCost>6300</cbc:AccountingCost>"),
        (
            "<cac:PartyLegalEntity>",
            "<cac:Contact><cbc:ElectronicMail>billing@rheinwerk.example</cbc:ElectronicMail>"
            "</cac:Contact><cac:PartyLegalEntity>",
        ),
    )
    draft = parse_document(content).draft
    assert draft.lines[0].account == "6300"
    assert draft.vendor.email == "billing@rheinwerk.example"


def test_price_per_base_quantity(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        (
            LINE_1_PRICE,
            '<cbc:PriceAmount currencyID="EUR">1200.00</cbc:PriceAmount>'
            '<cbc:BaseQuantity unitCode="HUR">10</cbc:BaseQuantity>',
        ),
    )
    assert parse_document(content).draft.lines[0].unit_amount == Decimal("120")


def test_document_charge_becomes_a_line_and_rounding_is_kept(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        (
            "<cac:TaxTotal>",
            "<cac:AllowanceCharge><cbc:ChargeIndicator>true</cbc:ChargeIndicator>"
            "<cbc:AllowanceChargeReason>Freight</cbc:AllowanceChargeReason>"
            '<cbc:Amount currencyID="EUR">50.00</cbc:Amount>'
            "<cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent></cac:TaxCategory>"
            "</cac:AllowanceCharge><cac:TaxTotal>",
        ),
        ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">171.00'),
        (
            '<cbc:TaxableAmount currencyID="EUR">850.00',
            '<cbc:TaxableAmount currencyID="EUR">900.00',
        ),
        ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">171.00'),
        (
            '<cbc:TaxExclusiveAmount currencyID="EUR">850.00',
            '<cbc:ChargeTotalAmount currencyID="EUR">50.00</cbc:ChargeTotalAmount>'
            '<cbc:TaxExclusiveAmount currencyID="EUR">900.00',
        ),
        (
            '<cbc:TaxInclusiveAmount currencyID="EUR">1011.50',
            '<cbc:TaxInclusiveAmount currencyID="EUR">1071.00',
        ),
        (
            PAYABLE,
            '<cbc:PayableRoundingAmount currencyID="EUR">0.50</cbc:PayableRoundingAmount>'
            '<cbc:PayableAmount currencyID="EUR">1071.50</cbc:PayableAmount>',
        ),
    )
    draft = parse_document(content).draft
    assert [(line.description, line.amount, line.kind) for line in draft.lines][2:] == [
        ("Freight", Decimal("50.00"), LineKind.charge),
        ("Payable rounding", Decimal("0.50"), LineKind.rounding),
    ]
    assert (draft.lines[2].tax_category, draft.lines[2].tax_rate) == ("S", Decimal("19"))
    assert draft.total == Decimal("1071.50")
    assert draft.invoice_total == Decimal("1071.00")
    assert draft.rounding_amount == Decimal("0.50")


def test_tax_in_a_second_currency_is_not_mistaken_for_the_document_tax(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        (
            "<cac:TaxTotal>",
            '<cac:TaxTotal><cbc:TaxAmount currencyID="DKK">1204.79</cbc:TaxAmount></cac:TaxTotal>'
            "<cac:TaxTotal>",
        ),
    )
    assert parse_document(content).draft.tax_amount == Decimal("161.50")


def _adds_up(draft: BillDraft) -> None:
    assert sum((line.amount for line in draft.lines), Decimal(0)) + draft.tax_amount == draft.total


def test_a_document_allowance_is_a_negative_line(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        (
            "<cac:TaxTotal>",
            "<cac:AllowanceCharge><cbc:ChargeIndicator>false</cbc:ChargeIndicator>"
            "<cbc:AllowanceChargeReason>Treuerabatt</cbc:AllowanceChargeReason>"
            '<cbc:Amount currencyID="EUR">10.00</cbc:Amount>'
            "<cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent></cac:TaxCategory>"
            "</cac:AllowanceCharge><cac:TaxTotal>",
        ),
        ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">159.60'),
        (
            '<cbc:TaxableAmount currencyID="EUR">850.00',
            '<cbc:TaxableAmount currencyID="EUR">840.00',
        ),
        ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">159.60'),
        (
            '<cbc:TaxExclusiveAmount currencyID="EUR">850.00',
            '<cbc:AllowanceTotalAmount currencyID="EUR">10.00</cbc:AllowanceTotalAmount>'
            '<cbc:TaxExclusiveAmount currencyID="EUR">840.00',
        ),
        (
            '<cbc:TaxInclusiveAmount currencyID="EUR">1011.50',
            '<cbc:TaxInclusiveAmount currencyID="EUR">999.60',
        ),
        (PAYABLE, PAYABLE.replace("1011.50", "999.60")),
    )
    draft = parse_document(content).draft
    allowance = draft.lines[-1]
    assert (allowance.kind, allowance.description, allowance.amount) == (
        LineKind.allowance,
        "Treuerabatt",
        Decimal("-10.00"),
    )
    assert draft.total == Decimal("999.60")
    _adds_up(draft)


@pytest.mark.parametrize(
    ("prepaid", "payable"), [("11.50", "1000.00"), ("1011.50", "0.00")], ids=["part", "fully"]
)
def test_a_prepaid_amount_is_a_line_deducted_and_zero_may_be_left(
    ubl_text: str, prepaid: str, payable: str
) -> None:
    content = _edit(
        ubl_text,
        (
            PAYABLE,
            f'<cbc:PrepaidAmount currencyID="EUR">{prepaid}</cbc:PrepaidAmount>'
            + PAYABLE.replace("1011.50", payable),
        ),
    )
    draft = parse_document(content).draft
    assert draft.total == Decimal(payable)
    assert draft.prepaid_amount == Decimal(prepaid)
    assert draft.invoice_total == Decimal("1011.50")
    assert (draft.lines[-1].kind, draft.lines[-1].amount) == (LineKind.prepaid, -Decimal(prepaid))
    _adds_up(draft)


def test_negative_and_zero_lines_are_ordinary_lines(ubl_text: str) -> None:
    # Line 2 becomes a return (-1 × 250.00) and a third line costs nothing: 600 - 250 + 0.
    zero_line = (
        '<cac:InvoiceLine><cbc:ID>3</cbc:ID><cbc:InvoicedQuantity unitCode="C62">1'
        '</cbc:InvoicedQuantity><cbc:LineExtensionAmount currencyID="EUR">0.00'
        "</cbc:LineExtensionAmount><cac:Item><cbc:Name>Kulanz</cbc:Name></cac:Item>"
        '<cac:Price><cbc:PriceAmount currencyID="EUR">0</cbc:PriceAmount></cac:Price>'
        "</cac:InvoiceLine></Invoice>"
    )
    content = _edit(
        ubl_text,
        (
            '<cbc:InvoicedQuantity unitCode="C62">1<',
            '<cbc:InvoicedQuantity unitCode="C62">-1<',
        ),
        (LINE_2_AMOUNT, LINE_2_AMOUNT.replace("250.00", "-250.00")),
        ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">66.50'),
        (
            '<cbc:TaxableAmount currencyID="EUR">850.00',
            '<cbc:TaxableAmount currencyID="EUR">350.00',
        ),
        ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">66.50'),
        (
            '<cbc:LineExtensionAmount currencyID="EUR">850.00',
            '<cbc:LineExtensionAmount currencyID="EUR">350.00',
        ),
        (
            '<cbc:TaxExclusiveAmount currencyID="EUR">850.00',
            '<cbc:TaxExclusiveAmount currencyID="EUR">350.00',
        ),
        (
            '<cbc:TaxInclusiveAmount currencyID="EUR">1011.50',
            '<cbc:TaxInclusiveAmount currencyID="EUR">416.50',
        ),
        (PAYABLE, PAYABLE.replace("1011.50", "416.50")),
        ("</Invoice>", zero_line),
    )
    draft = parse_document(content).draft
    assert [(line.quantity, line.amount) for line in draft.lines] == [
        (Decimal("5"), Decimal("600.00")),
        (Decimal("-1"), Decimal("-250.00")),
        (Decimal("1"), Decimal("0.00")),
    ]
    assert draft.total == Decimal("416.50")
    _adds_up(draft)


def test_quantities_and_prices_count_by_value_not_by_written_digits(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        ('unitCode="HUR">5<', 'unitCode="HUR">5.00000000<'),
        (LINE_1_PRICE, '<cbc:PriceAmount currencyID="EUR">120.0000000000</cbc:PriceAmount>'),
    )
    line = parse_document(content).draft.lines[0]
    assert (line.quantity, line.unit_amount, line.unit) == (Decimal(5), Decimal(120), "HUR")
    assert str(line.quantity) == "5"


def test_a_line_within_two_cents_of_quantity_times_price_is_accepted(ubl_text: str) -> None:
    # Peppol R120 allows 0.02: 5 × 120.004 = 600.02 against the 600.00 written.
    content = _edit(ubl_text, (LINE_1_PRICE, LINE_1_PRICE.replace("120.00", "120.004")))
    assert parse_document(content).draft.lines[0].unit_amount == Decimal("120.004")


def test_a_credit_note_code_in_an_invoice_is_a_credit_note(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        ("<cbc:InvoiceTypeCode>380", "<cbc:InvoiceTypeCode>381"),
        (
            "<cac:AccountingSupplierParty>",
            "<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>RE-88001</cbc:ID>"
            "<cbc:IssueDate>2026-10-01</cbc:IssueDate></cac:InvoiceDocumentReference>"
            "</cac:BillingReference><cac:AccountingSupplierParty>",
        ),
    )
    draft = parse_document(content).draft
    assert (draft.document_type, draft.type_code) == (DocumentType.credit_note, "381")
    assert [(ref.number, ref.issue_date) for ref in draft.corrects] == [
        ("RE-88001", date(2026, 10, 1))
    ]
    assert draft.total == Decimal("1011.50")


def test_self_billed_invoices_ask_for_review(ubl_text: str) -> None:
    content = _edit(ubl_text, ("<cbc:InvoiceTypeCode>380", "<cbc:InvoiceTypeCode>389"))
    draft = parse_document(content).draft
    assert draft.document_type is DocumentType.self_billed
    assert any("self-billed (389)" in reason for reason in draft.review_reasons)


def test_a_due_date_before_the_issue_date_is_left_for_a_person(ubl_text: str) -> None:
    content = _edit(ubl_text, ("<cbc:DueDate>2026-12-05", "<cbc:DueDate>2026-10-05"))
    draft = parse_document(content).draft
    assert draft.due_date is None
    assert draft.review_reasons == [
        "the document's due date 2026-10-05 is before its issue date 2026-11-05: set the due "
        "date by hand"
    ]


def test_the_legal_name_is_the_vendor_and_the_trading_name_an_alias(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        (PARTY_NAME, "<cac:PartyName><cbc:Name>Rheinwerk</cbc:Name></cac:PartyName>"),
        (
            "<cbc:ID>VAT</cbc:ID>\n        </cac:TaxScheme>\n      </cac:PartyTaxScheme>",
            "<cbc:ID>VAT</cbc:ID>\n        </cac:TaxScheme>\n      </cac:PartyTaxScheme>"
            "<cac:PartyTaxScheme><cbc:CompanyID>218/5711/1234</cbc:CompanyID>"
            "<cac:TaxScheme><cbc:ID>TAX</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>",
        ),
    )
    vendor = parse_document(content).draft.vendor
    assert (vendor.name, vendor.trading_name, vendor.tax_id) == (
        "Rheinwerk Maschinenbau GmbH",
        "Rheinwerk",
        "DE811907980",
    )


def test_without_a_vat_id_the_tax_registration_is_the_tax_id(ubl_text: str) -> None:
    content = _edit(
        ubl_text,
        ("<cbc:ID>VAT</cbc:ID>\n        </cac:TaxScheme>", "<cbc:ID>TAX</cbc:ID></cac:TaxScheme>"),
    )
    assert parse_document(content).draft.vendor.tax_id == "DE811907980"


def test_payment_terms_buyer_reference_and_tax_breakdown_are_kept(ubl_text: str) -> None:
    draft = parse_document(ubl_text.encode()).draft
    assert (draft.payment_terms, draft.buyer_reference) == ("30 days net", "PO-7731")
    assert [(t.category, t.rate, t.taxable, t.tax) for t in draft.tax_breakdown] == [
        ("S", Decimal(19), Decimal("850.00"), Decimal("161.50"))
    ]
    assert [(line.tax_category, line.tax_rate) for line in draft.lines] == [("S", 19), ("S", 19)]
    assert (draft.document_type, draft.type_code, draft.review_reasons) == (
        DocumentType.invoice,
        "380",
        [],
    )


REFUSALS: list[tuple[str, tuple[tuple[str, str], ...], str, str]] = [
    ("no id", (("<cbc:ID>RE-88123</cbc:ID>", ""),), "cbc:ID", "is required"),
    (
        "no issue date",
        (("<cbc:IssueDate>2026-11-05</cbc:IssueDate>", ""),),
        "cbc:IssueDate",
        "is required",
    ),
    (
        "bad issue date",
        (("<cbc:IssueDate>2026-11-05", "<cbc:IssueDate>05.11.2026"),),
        "cbc:IssueDate",
        "YYYY-MM-DD",
    ),
    (
        "unknown currency",
        (("<cbc:DocumentCurrencyCode>EUR", "<cbc:DocumentCurrencyCode>EURO"),),
        "cbc:DocumentCurrencyCode",
        "unknown currency 'EURO'",
    ),
    (
        "unknown type code",
        (("<cbc:InvoiceTypeCode>380", "<cbc:InvoiceTypeCode>999"),),
        "cbc:InvoiceTypeCode",
        "BR-CL-01: '999' is not a UNTDID 1001 invoice or credit note type code",
    ),
    (
        "no seller name",
        (
            (PARTY_NAME, ""),
            ("<cbc:RegistrationName>Rheinwerk Maschinenbau GmbH</cbc:RegistrationName>", ""),
        ),
        "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName",
        "BR-06: is required: the seller's name (BT-27)",
    ),
    (
        "line quantity times price",
        ((LINE_2_AMOUNT, LINE_2_AMOUNT.replace("250.00", "240.00")),),
        "cac:InvoiceLine[2]/cbc:LineExtensionAmount",
        "PEPPOL-EN16931-R120: is 240.00, but quantity 1 × price 250 = 250.00 (within ±0.02)",
    ),
    (
        "line off by more than 0.02",
        ((LINE_1_PRICE, LINE_1_PRICE.replace("120.00", "120.005")),),
        "cac:InvoiceLine[1]/cbc:LineExtensionAmount",
        "PEPPOL-EN16931-R120: is 600.00, but quantity 5 × price 120.005 = 600.03",
    ),
    (
        "negative price",
        ((LINE_1_PRICE, LINE_1_PRICE.replace("120.00", "-120.00")),),
        "cac:InvoiceLine[1]/cac:Price/cbc:PriceAmount",
        "BR-27: the item net price must not be negative, got -120",
    ),
    (
        "line amount not a number",
        ((LINE_2_AMOUNT, LINE_2_AMOUNT.replace("250.00", "250,00")),),
        "cac:InvoiceLine[2]/cbc:LineExtensionAmount",
        "'250,00' is not a decimal number",
    ),
    (
        "line amount missing",
        ((LINE_2_AMOUNT, ""),),
        "cac:InvoiceLine[2]/cbc:LineExtensionAmount",
        "is required",
    ),
    (
        "line currency differs",
        ((LINE_2_AMOUNT, LINE_2_AMOUNT.replace("EUR", "USD")),),
        "cac:InvoiceLine[2]/cbc:LineExtensionAmount/@currencyID",
        "is 'USD' but the document currency is EUR",
    ),
    (
        "sub-cent amount",
        (('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">161.505'),),
        "cac:TaxTotal[1]/cbc:TaxAmount",
        "BR-DEC-13: 161.505 has more than 2 decimals (BT-110 is an amount)",
    ),
    (
        "tax currency differs",
        (('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="USD">161.50'),),
        "cac:TaxTotal[1]/cbc:TaxAmount/@currencyID",
        "is 'USD' but the document currency is EUR",
    ),
    (
        "payable differs",
        ((PAYABLE, PAYABLE.replace("1011.50", "1000.00")),),
        "cac:LegalMonetaryTotal/cbc:PayableAmount",
        "BR-CO-16: is 1000.00, but TaxInclusiveAmount (BT-112) - PrepaidAmount (BT-113) + "
        "PayableRoundingAmount (BT-114) = 1011.50",
    ),
    (
        "tax inclusive differs",
        (
            (
                '<cbc:TaxInclusiveAmount currencyID="EUR">1011.50',
                '<cbc:TaxInclusiveAmount currencyID="EUR">1010.50',
            ),
            (PAYABLE, PAYABLE.replace("1011.50", "1010.50")),
        ),
        "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount",
        "BR-CO-15: is 1010.50, but TaxExclusiveAmount (BT-109) + TaxAmount (BT-110) = 1011.50",
    ),
    (
        "line total differs",
        (
            (
                '<cbc:LineExtensionAmount currencyID="EUR">850.00',
                '<cbc:LineExtensionAmount currencyID="EUR">800.00',
            ),
        ),
        "cac:LegalMonetaryTotal/cbc:LineExtensionAmount",
        "BR-CO-10: is 800.00, but the sum of the line net amounts (BT-131) = 850.00",
    ),
    (
        "zero payable",
        ((PAYABLE, PAYABLE.replace("1011.50", "0.00")),),
        "cac:LegalMonetaryTotal/cbc:PayableAmount",
        "BR-CO-16: is 0.00, but",
    ),
    (
        "prepaid amount not deducted",
        (
            (
                PAYABLE,
                '<cbc:PrepaidAmount currencyID="EUR">11.50</cbc:PrepaidAmount>' + PAYABLE,
            ),
        ),
        "cac:LegalMonetaryTotal/cbc:PayableAmount",
        "BR-CO-16: is 1011.50, but TaxInclusiveAmount (BT-112) - PrepaidAmount (BT-113)",
    ),
    (
        "document allowance missing from the totals",
        (
            (
                "<cac:TaxTotal>",
                "<cac:AllowanceCharge><cbc:ChargeIndicator>false</cbc:ChargeIndicator>"
                '<cbc:Amount currencyID="EUR">10.00</cbc:Amount></cac:AllowanceCharge>'
                "<cac:TaxTotal>",
            ),
        ),
        "cac:LegalMonetaryTotal/cbc:AllowanceTotalAmount",
        "BR-CO-11: is absent (counts as 0), but the sum of the document-level allowances "
        "(BT-92) = 10.00",
    ),
    (
        "charge indicator not a boolean",
        (
            (
                "<cac:TaxTotal>",
                "<cac:AllowanceCharge><cbc:ChargeIndicator>yes</cbc:ChargeIndicator>"
                '<cbc:Amount currencyID="EUR">10.00</cbc:Amount></cac:AllowanceCharge>'
                "<cac:TaxTotal>",
            ),
        ),
        "cac:AllowanceCharge[1]/cbc:ChargeIndicator",
        "is 'yes': write true (a charge) or false (an allowance)",
    ),
    (
        "vat far from taxable times rate",
        (
            ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">171.50'),
            ('<cbc:TaxAmount currencyID="EUR">161.50', '<cbc:TaxAmount currencyID="EUR">171.50'),
            (
                '<cbc:TaxInclusiveAmount currencyID="EUR">1011.50',
                '<cbc:TaxInclusiveAmount currencyID="EUR">1021.50',
            ),
            (PAYABLE, PAYABLE.replace("1011.50", "1021.50")),
        ),
        "cac:TaxTotal[1]/cac:TaxSubtotal[1]",
        "BR-CO-17: the VAT of category S at 19 % is 171.50, but 850.00 × 19 % = 161.50 "
        "(within ±1.00)",
    ),
]


@pytest.mark.parametrize(
    ("replacements", "location", "fragment"),
    [refusal[1:] for refusal in REFUSALS],
    ids=[refusal[0] for refusal in REFUSALS],
)
def test_each_refusal_names_the_element_and_the_reason(
    ubl_text: str, replacements: tuple[tuple[str, str], ...], location: str, fragment: str
) -> None:
    error = _refusal(_edit(ubl_text, *replacements))
    problem = _problem_at(error, location)
    assert fragment in problem.message
    assert f"{location}: {problem.message}" in str(error)


def test_several_problems_are_reported_together(ubl_text: str) -> None:
    error = _refusal(
        _edit(
            ubl_text,
            ("<cbc:ID>RE-88123</cbc:ID>", ""),
            ("<cbc:DueDate>2026-12-05", "<cbc:DueDate>05.12.2026"),
            (LINE_2_AMOUNT, LINE_2_AMOUNT.replace("EUR", "USD")),
        )
    )
    assert {problem.location for problem in error.problems} == {
        "cbc:ID",
        "cbc:DueDate",
        "cac:InvoiceLine[2]/cbc:LineExtensionAmount/@currencyID",
    }


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol3;</Invoice>"""


def _external_entity(target: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{target}">]>\n'
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">'
        '<Note xmlns="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
        "&xxe;</Note></Invoice>"
    ).encode()


@pytest.mark.parametrize(
    "content",
    [
        BILLION_LAUGHS,
        _external_entity("file:///etc/passwd"),
        _external_entity("http://127.0.0.1:9/steal"),
        b'<?xml version="1.0"?><!DOCTYPE Invoice SYSTEM "http://127.0.0.1:9/x.dtd"><Invoice/>',
        b'<?xml version="1.0"?><!DOCTYPE Invoice [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
        b"<Invoice/>",
    ],
    ids=["billion laughs", "xxe file", "xxe http", "external dtd", "parameter entity"],
)
def test_hostile_xml_is_refused_before_any_entity_is_expanded(content: bytes) -> None:
    error = _refusal(content)
    assert [problem.location for problem in error.problems] == ["document"]
    assert "refused for safety" in error.problems[0].message
    assert "root:" not in str(error)  # nothing of /etc/passwd leaked into the message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"<Invoice/>", "the root element is Invoice but in the namespace '(none)'"),
        (
            b'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-3"/>',
            "not one remit reads",
        ),
        (b"<html><body/></html>", "<html> is not an invoice"),
    ],
    ids=["invoice without namespace", "credit note of another namespace", "html"],
)
def test_other_xml_is_refused_saying_what_is_accepted(content: bytes, fragment: str) -> None:
    problem = _problem_at(_refusal(content), "document")
    assert fragment in problem.message
    assert "UBL 2.1 Invoice" in problem.message


def test_malformed_xml_gives_the_position(ubl_text: str) -> None:
    content = _edit(ubl_text, ("</cbc:IssueDate>", "</cbc:IssueDat>"))
    error = _refusal(content)
    assert error.problems[0].location.startswith("line 8, column ")
    assert "not well-formed XML: mismatched tag" in error.problems[0].message


@pytest.mark.parametrize(
    ("payee_name", "is_payee"),
    [("Rheinwerk Factoring AG", True), ("Rheinwerk Maschinenbau GmbH", False)],
    ids=["a factor", "the seller again"],
)
def test_a_payee_other_than_the_seller_is_who_gets_the_bank_account(
    ubl_text: str, payee_name: str, is_payee: bool
) -> None:
    content = _edit(
        ubl_text,
        (
            "<cac:PaymentMeans>",
            f"<cac:PayeeParty><cac:PartyName><cbc:Name>{payee_name}</cbc:Name></cac:PartyName>"
            "<cac:PartyLegalEntity><cbc:CompanyID>HRB 4711</cbc:CompanyID></cac:PartyLegalEntity>"
            "</cac:PayeeParty><cac:PaymentMeans>",
        ),
    )
    draft = parse_document(content).draft
    if is_payee:
        assert draft.payee is not None
        assert (draft.payee.name, draft.payee.legal_id, draft.payee.bank_account) == (
            payee_name,
            "HRB 4711",
            "DE89370400440532013000",
        )
        assert draft.vendor.bank_account is None
    else:
        assert draft.payee is None
        assert draft.vendor.bank_account == "DE89370400440532013000"
