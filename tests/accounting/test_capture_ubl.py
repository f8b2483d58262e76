"""Capture of UBL 2.1 / Peppol BIS 3.0 invoices: the example parses; bad or hostile XML is not."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

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
            '<cbc:Amount currencyID="EUR">50.00</cbc:Amount></cac:AllowanceCharge><cac:TaxTotal>',
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
    assert [(line.description, line.amount) for line in draft.lines][2:] == [
        ("Freight", Decimal("50.00")),
        ("Payable rounding", Decimal("0.50")),
    ]
    assert draft.total == Decimal("1071.50")


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
        "due before issue",
        (("<cbc:DueDate>2026-12-05", "<cbc:DueDate>2026-10-05"),),
        "cbc:DueDate",
        "due date 2026-10-05 is before the issue date 2026-11-05",
    ),
    (
        "unknown currency",
        (("<cbc:DocumentCurrencyCode>EUR", "<cbc:DocumentCurrencyCode>EURO"),),
        "cbc:DocumentCurrencyCode",
        "unknown currency 'EURO'",
    ),
    (
        "credit note type code",
        (("<cbc:InvoiceTypeCode>380", "<cbc:InvoiceTypeCode>381"),),
        "cbc:InvoiceTypeCode",
        "credit note",
    ),
    (
        "no seller name",
        (
            (PARTY_NAME, ""),
            ("<cbc:RegistrationName>Rheinwerk Maschinenbau GmbH</cbc:RegistrationName>", ""),
        ),
        "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName",
        "neither a PartyName nor a RegistrationName",
    ),
    (
        "line quantity times price",
        ((LINE_2_AMOUNT, LINE_2_AMOUNT.replace("250.00", "240.00")),),
        "cac:InvoiceLine[2]/cbc:LineExtensionAmount",
        "is 240.00, but InvoicedQuantity 1 × PriceAmount 250.00 = 250.00",
    ),
    (
        "negative line",
        (
            (
                '<cbc:LineExtensionAmount currencyID="EUR">600.00',
                '<cbc:LineExtensionAmount currencyID="EUR">-600.00',
            ),
        ),
        "cac:InvoiceLine[1]/cbc:LineExtensionAmount",
        "must be greater than zero, got -600.00",
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
        "more decimals than EUR allows",
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
        "is 1000.00, but TaxInclusiveAmount - PrepaidAmount + PayableRoundingAmount = 1011.50",
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
        "TaxExclusiveAmount + TaxTotal/TaxAmount = 1011.50",
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
        "the sum of the InvoiceLine amounts = 850.00",
    ),
    (
        "zero payable",
        ((PAYABLE, PAYABLE.replace("1011.50", "0.00")),),
        "cac:LegalMonetaryTotal/cbc:PayableAmount",
        "greater than zero",
    ),
    (
        "prepaid",
        (
            (
                PAYABLE,
                '<cbc:PrepaidAmount currencyID="EUR">11.50</cbc:PrepaidAmount>'
                + PAYABLE.replace("1011.50", "1000.00"),
            ),
        ),
        "cac:LegalMonetaryTotal/cbc:PrepaidAmount",
        "prepaid amount are not accepted",
    ),
    (
        "document allowance",
        (
            (
                "<cac:TaxTotal>",
                "<cac:AllowanceCharge><cbc:ChargeIndicator>false</cbc:ChargeIndicator>"
                '<cbc:Amount currencyID="EUR">10.00</cbc:Amount></cac:AllowanceCharge>'
                "<cac:TaxTotal>",
            ),
        ),
        "cac:AllowanceCharge[1]/cbc:ChargeIndicator",
        "allowances (discounts) are not accepted",
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
            ("<cbc:DueDate>2026-12-05", "<cbc:DueDate>2026-10-05"),
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
        (
            b'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"/>',
            "UBL credit notes are not accepted",
        ),
        (
            b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
            b'CrossIndustryInvoice:100"/>',
            "CII invoices (Factur-X, ZUGFeRD) are not accepted yet",
        ),
        (b"<Invoice/>", "not UBL 2.1's"),
        (b"<html><body/></html>", "<html> is not an invoice"),
    ],
    ids=["credit note", "cii", "invoice without namespace", "html"],
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
