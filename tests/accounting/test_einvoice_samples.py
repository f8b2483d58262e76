"""Every public e-invoice sample (tests/accounting/einvoices/MANIFEST.md) against capture.

The amount due is read here with a plain XPath of its own, never by remit's readers, so a
reader that misplaces BT-115 cannot agree with itself.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from facturx import get_xml_from_pdf
from lxml import etree

from accounting.documents import BillDraft, DocumentType, LineKind
from accounting.formats import CapturedDocument, DocumentFormat, parse_document

SAMPLES = Path(__file__).parent / "einvoices"
_ROW = re.compile(
    r"^\| (?P<file>[^|]+?) \| [^|]+ \| [^|]+ \| [^|]+ \| \d+ \| (?P<label>[^|]+?) \|$"
)


def _manifest() -> list[tuple[str, str]]:
    rows = []
    for line in (SAMPLES / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            rows.append((match["file"], match["label"]))
    return rows


MANIFEST = _manifest()
VALID = [name for name, label in MANIFEST if label == "valid"]
LABELLED_INVALID = [name for name, label in MANIFEST if label != "valid"]


def test_the_manifest_lists_every_sample_file() -> None:
    on_disk = {
        str(path.relative_to(SAMPLES))
        for path in SAMPLES.rglob("*")
        if path.is_file() and path.name != "MANIFEST.md"
    }
    assert on_disk == {name for name, _ in MANIFEST}
    assert len(VALID) == 86 and len(LABELLED_INVALID) == 1


def _xml_of(path: Path) -> bytes:
    content = path.read_bytes()
    if path.suffix.lower() == ".pdf":
        # The factur-x library finds the embedded XML, independently of remit's reader.
        _, xml = get_xml_from_pdf(content, check_xsd=False)
        assert xml, f"{path.name} embeds no XML"
        return bytes(xml)
    return content


def _amount_due(xml: bytes) -> Decimal:
    """BT-115, as written, by a plain XPath on the local names of either syntax."""
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    for path in (
        "/*/*[local-name()='LegalMonetaryTotal']/*[local-name()='PayableAmount']",
        "//*[local-name()='ApplicableHeaderTradeSettlement' or "
        "local-name()='ApplicableSupplyChainTradeSettlement']/*[contains(local-name(), "
        "'MonetarySummation')]/*[local-name()='DuePayableAmount']",
    ):
        found = root.xpath(path)
        if found:
            return Decimal(found[0].text.strip())
    # ZUGFeRD 1.0 BASIC may leave the amount due out: the grand total less what was paid.
    summation = (
        "//*[local-name()='ApplicableSupplyChainTradeSettlement']"
        "/*[local-name()='SpecifiedTradeSettlementMonetarySummation']"
    )
    grand = root.xpath(f"{summation}/*[local-name()='GrandTotalAmount']")
    paid = root.xpath(f"{summation}/*[local-name()='TotalPrepaidAmount']")
    assert grand, "no amount due and no grand total"
    return Decimal(grand[0].text.strip()) - (Decimal(paid[0].text.strip()) if paid else 0)


def _capture(name: str) -> CapturedDocument:
    path = SAMPLES / name
    return parse_document(path.read_bytes(), file_name=path.name)


def _adds_up(draft: BillDraft) -> None:
    lines = sum((line.amount for line in draft.lines), Decimal(0))
    assert lines + draft.tax_amount == draft.total


@pytest.mark.parametrize("name", VALID)
def test_every_valid_sample_is_captured_and_adds_up_to_its_amount_due(name: str) -> None:
    captured = _capture(name)
    draft = captured.draft
    _adds_up(draft)
    assert draft.total == abs(_amount_due(_xml_of(SAMPLES / name)))
    assert draft.source is not None and draft.source.size == (SAMPLES / name).stat().st_size


@pytest.mark.parametrize("name", LABELLED_INVALID)
def test_the_labelled_invalid_sample_is_a_negative_invoice_the_current_rules_accept(
    name: str,
) -> None:
    """BIS3_Invoice_negativ.XML is filed beside BIS3_Invoice_positive.XML as the negative
    twin of one invoice (CEN issue #94): its only difference is the sign. The old BR-CO-17
    (exact, XPath round() towards +∞) refused its −625743.54 × 25 % = −156435.89; CEN 1.3.16
    checks |BT-117| within ±1.00 of round(|BT-116| × rate) and accepts it, as remit does. A
    negative invoice is a credit: read as a credit note of the positive amounts."""
    draft = _capture(name).draft
    assert (draft.document_type, draft.type_code) == (DocumentType.credit_note, "380")
    assert (draft.total, draft.tax_amount) == (Decimal("782179.43"), Decimal("156435.89"))
    assert [line.amount for line in draft.lines] == [Decimal("625743.54")]
    _adds_up(draft)


# --- key fields, read from the files by hand -----------------------------------------------


def test_peppol_base_example() -> None:
    captured = _capture("ubl-invoice/peppol__base-example.xml")
    draft = captured.draft
    assert captured.format is DocumentFormat.ubl_invoice
    assert (draft.vendor.name, draft.vendor.trading_name, draft.vendor.tax_id) == (
        "SupplierOfficialName Ltd",
        "SupplierTradingName Ltd.",
        "GB1232434",
    )
    assert (draft.document_type, draft.currency, draft.total) == (
        DocumentType.invoice,
        "EUR",
        Decimal("1656.25"),
    )
    assert [(line.kind, line.amount) for line in draft.lines] == [
        (LineKind.line, Decimal("2800.00")),
        (LineKind.line, Decimal("-1500.00")),  # 3 days credited on an invoice: a negative line
        (LineKind.charge, Decimal("25.00")),
    ]
    assert draft.due_date == date(2017, 12, 1)
    assert draft.vendor.bank_account == "IBAN32423940"


def test_an_allowance_a_charge_and_a_prepaid_amount() -> None:
    draft = _capture("ubl-invoice/peppol__Allowance-example.xml").draft
    kinds = [(line.kind, line.description, line.amount) for line in draft.lines]
    assert kinds[3:] == [
        (LineKind.charge, "Cleaning", Decimal("200.00")),
        (LineKind.allowance, "Discount", Decimal("-200.00")),
        (LineKind.prepaid, "Paid already", Decimal("-1000.00")),
    ]
    assert (draft.invoice_total, draft.prepaid_amount, draft.total) == (
        Decimal("7125.00"),
        Decimal("1000.00"),
        Decimal("6125.00"),
    )
    assert [(t.category, t.exemption_reason) for t in draft.tax_breakdown] == [
        ("S", None),
        ("E", "Reason for tax exempt"),
    ]


def test_a_final_invoice_deducts_the_prepayment() -> None:
    draft = _capture("ubl-invoice/en16931__BIS_Billing_30-Forskott_slutreglering.xml").draft
    assert (draft.vendor.name, draft.vendor.tax_id, draft.currency) == (
        "AB Intelligent Tooling",
        "SE123456789001",
        "SEK",
    )
    assert (draft.lines[-1].kind, draft.lines[-1].amount) == (
        LineKind.prepaid,
        Decimal("-400000.00"),
    )
    assert (draft.invoice_total, draft.total) == (Decimal("475000.00"), Decimal("75000.00"))


def test_a_ubl_credit_note_names_the_invoice_it_credits() -> None:
    captured = _capture("ubl-creditnote/peppol__base-creditnote-correction.xml")
    draft = captured.draft
    assert captured.format is DocumentFormat.ubl_credit_note
    assert (draft.document_type, draft.type_code, draft.total) == (
        DocumentType.credit_note,
        "381",
        Decimal("1656.25"),
    )
    assert [ref.number for ref in draft.corrects] == ["Snippet1"]
    assert len([line for line in draft.lines if line.kind is LineKind.line]) == 2


def test_a_negative_invoice_is_a_credit_note_of_the_negated_amounts() -> None:
    draft = _capture("ubl-invoice/peppol__base-negative-inv-correction.xml").draft
    assert (draft.document_type, draft.type_code) == (DocumentType.credit_note, "380")
    assert draft.total == Decimal("1656.25")  # BT-115 is -1656.25
    assert [(line.quantity, line.amount) for line in draft.lines][:2] == [
        (Decimal(7), Decimal("2800.00")),  # written -7 × 400 = -2800.00
        (Decimal(-3), Decimal("-1500.00")),
    ]
    assert [ref.number for ref in draft.corrects] == ["Snippet1"]


def test_a_factur_x_en16931_cii_invoice() -> None:
    captured = _capture("cii/akretion__factur-x-en16931.xml")
    draft = captured.draft
    assert captured.format is DocumentFormat.cii
    assert (draft.vendor.name, draft.vendor.trading_name, draft.vendor.tax_id) == (
        "LE FOURNISSEUR",
        "SELLER TRADE NAME",
        "FR11123456782",
    )
    assert (draft.document_number, draft.issue_date, draft.due_date) == (
        "F20260023",
        date(2026, 1, 31),
        date(2026, 3, 2),
    )
    assert (draft.currency, draft.tax_amount, draft.total) == (
        "EUR",
        Decimal("4.90"),
        Decimal("104.90"),
    )
    assert len([line for line in draft.lines if line.kind is LineKind.line]) == 3
    assert draft.payee is not None
    assert (draft.payee.name, draft.payee.bank_account) == (
        "PAYEE NAME",
        "FR20 1254 2547 2569 8542 5874 698",
    )
    assert [(ref.number, ref.issue_date) for ref in draft.corrects] == [
        ("F20260003", date(2026, 1, 1))
    ]


def test_a_zugferd_1_comfort_invoice() -> None:
    captured = _capture("cii-zugferd1/akretion__zugferd-comfort.xml")
    draft = captured.draft
    assert captured.format is DocumentFormat.zugferd1
    assert (draft.vendor.name, draft.vendor.tax_id, draft.vendor.bank_account) == (
        "Lieferant GmbH",
        "DE123456789",  # the VA registration, not the FC tax number 201/113/40209
        "DE08700901001234567890",
    )
    assert (draft.currency, draft.tax_amount, draft.total) == (
        "EUR",
        Decimal("56.87"),
        Decimal("529.87"),
    )
    assert [
        (line.description, line.quantity, line.unit_amount, line.amount) for line in draft.lines
    ] == [
        ("Trennblätter A4", Decimal(20), Decimal("9.9"), Decimal("198.00")),
        ("Joghurt Banane", Decimal(50), Decimal("5.5"), Decimal("275.00")),
    ]


def test_a_zugferd_1_extended_invoice_with_a_signed_allowance_and_freight() -> None:
    draft = _capture("cii-zugferd1/akretion__zugferd-extended.xml").draft
    extra = [(line.kind, line.amount) for line in draft.lines if line.kind is not LineKind.line]
    assert extra == [(LineKind.allowance, Decimal("-21.55")), (LineKind.charge, Decimal("15.00"))]
    assert draft.total == Decimal("1256.70")


def test_the_factur_x_pdf_is_the_document_its_xml_the_bill() -> None:
    path = SAMPLES / "pdf-facturx/akretion__invoice_EN16931.pdf"
    captured = parse_document(path.read_bytes(), file_name=path.name)
    assert captured.format is DocumentFormat.facturx_pdf
    assert captured.content == path.read_bytes()
    assert (captured.source.media_type, captured.source.file_name) == (
        "application/pdf",
        "akretion__invoice_EN16931.pdf",
    )
    draft = captured.draft
    assert (draft.document_number, draft.vendor.name, draft.total) == (
        "F20260023",
        "LE FOURNISSEUR",
        Decimal("104.90"),
    )


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        ("cii/akretion__factur-x-minimum.xml", [("Invoice total without VAT", Decimal("100.00"))]),
        (
            "cii/akretion__factur-x-basicwl.xml",
            [
                ("VAT category S 20 %", Decimal("11.00")),
                ("VAT category E 0 %", Decimal("60.00")),
                ("VAT category S 10 %", Decimal("27.00")),
                ("VAT category K 0 %", Decimal("2.00")),
            ],
        ),
    ],
    ids=["minimum", "basic wl"],
)
def test_header_only_profiles_are_drafts_for_a_person(
    name: str, lines: list[tuple[str, Decimal]]
) -> None:
    draft = _capture(name).draft
    assert [(line.description, line.amount) for line in draft.lines] == lines
    assert draft.total == Decimal("104.90")
    assert len(draft.review_reasons) == 1
    assert "has no invoice lines, only totals" in draft.review_reasons[0]


def test_cen_examples_whose_lines_do_not_multiply_out_are_accepted_for_review() -> None:
    # CII_example9 writes BasisQuantity 49 for a price of 49: EN 16931 has no rule against it
    # (Peppol's R120 has), so the bill is read and the line put to a person.
    draft = _capture("cii/en16931__CII_example9.xml").draft
    assert draft.total == Decimal("177.87")
    assert any("check the line" in reason for reason in draft.review_reasons)


def _negated(xml: bytes) -> bytes:
    """The same UBL document with every amount and quantity negated, prices kept (BR-27)."""
    root = etree.fromstring(xml)
    for element in root.iter(etree.Element):  # elements only, not comments
        local = etree.QName(element).localname
        in_price = any(etree.QName(a).localname == "Price" for a in element.iterancestors())
        if (element.get("currencyID") is not None and not in_price) or local in (
            "InvoicedQuantity",
            "CreditedQuantity",
        ):
            element.text = str(-Decimal(element.text.strip()))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@pytest.mark.parametrize(
    ("name", "negated_type"),
    [
        ("ubl-invoice/peppol__base-example.xml", DocumentType.credit_note),
        ("ubl-invoice/peppol__Allowance-example.xml", DocumentType.credit_note),
        ("ubl-creditnote/peppol__Snippet-cn.xml", DocumentType.invoice),
    ],
)
def test_a_document_with_every_amount_negated_is_its_opposite_for_the_same_amounts(
    name: str, negated_type: DocumentType
) -> None:
    original = _capture(name).draft
    negated = parse_document(_negated((SAMPLES / name).read_bytes())).draft
    assert negated.document_type is negated_type
    assert negated.type_code == original.type_code
    assert (negated.total, negated.tax_amount) == (original.total, original.tax_amount)
    assert [(line.kind, line.amount) for line in negated.lines] == [
        (line.kind, line.amount) for line in original.lines
    ]
    _adds_up(negated)
    if negated_type is DocumentType.invoice:
        assert any("with a negative amount due" in reason for reason in negated.review_reasons)
