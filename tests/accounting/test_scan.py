"""Bills from PDFs and scans: the fields read from a text layer and through OCR, their
confidences, and what goes to a person."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from accounting.documents import DocumentRef
from accounting.formats import parse_document
from accounting.scan.draft import DIFFERENCE_LINE, REVIEW_THRESHOLD, scan_document
from accounting.scan.fields import parse_amount, parse_date
from accounting.scan.ocr import (
    MAX_PAGES,
    MAX_STREAM_BYTES,
    ScanError,
    image_size,
    read_document,
    tools_missing,
)
from sandbox.pdf_writer import (
    inflating_pdf,
    render_jpeg,
    render_png,
    scanned_pdf,
    text_pdf,
)

if tools_missing() and os.environ.get("REMIT_REQUIRE_OCR"):
    raise RuntimeError(f"REMIT_REQUIRE_OCR is set and this machine lacks {tools_missing()}")
needs_ocr = pytest.mark.skipif(
    bool(tools_missing()), reason=f"OCR tools missing: {', '.join(tools_missing())}"
)

GERMAN_BILL = [
    "Nordwind Bürobedarf GmbH",
    "Hafenstraße 12, 20457 Hamburg",
    "USt-IdNr.: DE136695976",
    "",
    "RECHNUNG",
    "Rechnungsnummer: RE-2026-0417",
    "Rechnungsdatum: 14.03.2026",
    "Fällig am: 13.04.2026",
    "",
    "Rechnungsempfänger:",
    "Acme Corp",
    "1 Main Street",
    "",
    "Beschreibung              Menge   Einzelpreis   Betrag",
    "Kopierpapier A4 500 Blatt   10       4,50        45,00",
    "Toner schwarz               2       89,90       179,80",
    "Zwischensumme                                  224,80 EUR",
    "MwSt 19%                                        42,71 EUR",
    "Gesamtbetrag                                   267,51 EUR",
    "",
    "Bankverbindung: IBAN DE89 3704 0044 0532 0130 00",
]

US_BILL = [
    "Bluebird Office Supply Inc.",
    "500 Market Street, San Francisco, CA 94105",
    "",
    "INVOICE",
    "Invoice No: 88812",
    "Invoice Date: 03/04/2026",
    "Due Date: 04/03/2026",
    "",
    "Bill To:",
    "Acme Corp",
    "",
    "Description                 Qty    Rate      Amount",
    "Ergonomic chair              2    $310.00   $620.00",
    "Desk lamp                    4     $24.50    $98.00",
    "Subtotal                                    $718.00",
    "Sales Tax 8.625%                             $61.93",
    "Total Due                            USD    $779.93",
]


def _source(content: bytes, media_type: str = "application/pdf") -> DocumentRef:
    digest = hashlib.sha256(content).hexdigest()
    return DocumentRef(sha256=digest, media_type=media_type, file_name="bill", size=len(content))


def _scan(content: bytes):
    return scan_document(content, source=_source(content))


def _check_german(draft) -> None:
    assert draft.document_number == "RE-2026-0417"
    assert draft.issue_date == date(2026, 3, 14)
    assert draft.due_date == date(2026, 4, 13)
    assert draft.currency == "EUR"
    assert draft.vendor.name == "Nordwind Bürobedarf GmbH"
    assert draft.vendor.tax_id == "DE136695976"
    assert draft.total == Decimal("267.51")
    assert draft.tax_amount == Decimal("42.71")
    assert [(ln.description, ln.quantity, ln.unit_amount, ln.amount) for ln in draft.lines] == [
        ("Kopierpapier A4 500 Blatt", Decimal("10"), Decimal("4.50"), Decimal("45.00")),
        ("Toner schwarz", Decimal("2"), Decimal("89.90"), Decimal("179.80")),
    ]


def test_a_pdf_text_layer_is_read_exactly_and_needs_no_review() -> None:
    draft, report = _scan(text_pdf([GERMAN_BILL]))
    _check_german(draft)
    assert draft.vendor.bank_account == "DE89370400440532013000"
    assert draft.review_reasons == []
    assert report.pages[0].from_text_layer
    assert all(f.confidence >= REVIEW_THRESHOLD for f in report.fields if f.value is not None)
    assert report.lines_read == 2


@needs_ocr
def test_a_scanned_pdf_reads_the_same_bill_with_boxes_and_confidences() -> None:
    jpeg = render_jpeg(text_pdf([GERMAN_BILL]), dpi=300)
    width, height = image_size(jpeg, "jpg")
    draft, report = _scan(scanned_pdf(jpeg, width, height))
    _check_german(draft)
    assert not report.pages[0].from_text_layer
    # A name read from an image waits to be confirmed (by the tax id in the ERP, or a person).
    name = report.field("vendor_name")
    assert name is not None and name.needs_review
    total = report.field("total")
    assert total is not None and total.boxes and total.page == 1
    # OCR is never certain: every confidence is below a text layer's, and each low one is named.
    assert all(f.confidence < 1 for f in report.fields if f.value is not None)
    for f in report.fields:
        if f.needs_review:
            assert any(f.name.replace("_", " ") in r or "IBAN" in r for r in draft.review_reasons)


@needs_ocr
def test_an_image_of_a_us_bill_reads_dollars_and_month_first_dates() -> None:
    draft, report = _scan(render_png(text_pdf([US_BILL]), dpi=300))
    assert draft.document_number == "88812"
    assert draft.currency == "USD"
    assert draft.issue_date == date(2026, 3, 4)  # 03/04 in a US bill: March 4th
    assert draft.due_date == date(2026, 4, 3)
    assert draft.total == Decimal("779.93")
    assert draft.tax_amount == Decimal("61.93")
    assert [ln.amount for ln in draft.lines] == [Decimal("620.00"), Decimal("98.00")]
    # 03/04/2026 is read by the convention its currency (USD, written out) implies: likely,
    # never as sure as an unambiguous date.
    issue = report.field("issue_date")
    assert issue is not None and 0.5 < issue.confidence < 0.9


def test_an_ambiguous_date_with_nothing_to_read_it_by_is_flagged() -> None:
    # "$" alone could be US, Canadian or Australian dollars: the day and month stay a guess.
    lines = [ln.replace("USD", "").replace("Total Due", "Total") for ln in US_BILL]
    draft, report = _scan(text_pdf([lines]))
    issue = report.field("issue_date")
    assert issue is not None and issue.needs_review
    assert any("issue date" in r for r in draft.review_reasons)
    currency = report.field("currency")
    assert currency is not None and currency.needs_review


def test_totals_that_do_not_add_up_go_to_review() -> None:
    lines = [line.replace("267,51", "276,51") for line in GERMAN_BILL]
    draft, report = _scan(text_pdf([lines]))
    assert draft.total == Decimal("276.51")  # the total as the document states it
    assert sum(ln.amount for ln in draft.lines) + draft.tax_amount == draft.total
    # The lines and tax as read, and the difference as a line of its own, named.
    assert draft.tax_amount == Decimal("42.71")
    assert [(ln.description, ln.amount) for ln in draft.lines][-1] == (
        DIFFERENCE_LINE,
        Decimal("9.00"),
    )
    assert any("do not add up" in r for r in draft.review_reasons)
    total = report.field("total")
    assert total is not None and total.needs_review


def test_a_missing_number_and_date_are_named_not_guessed() -> None:
    lines = [ln for ln in GERMAN_BILL if not ln.startswith(("Rechnungsnummer", "Rechnungsdatum"))]
    draft, _ = _scan(text_pdf([lines]))
    assert draft.document_number.startswith("UNREAD-")
    assert "the document number was not found on the document" in " ".join(draft.review_reasons)
    # The due date is the only date left: it is not taken for the issue date silently.
    assert any("issue date" in r for r in draft.review_reasons)


def test_an_iban_with_wrong_check_digits_is_not_taken_for_the_vendors() -> None:
    lines = [ln.replace("DE89 3704", "DE88 3704") for ln in GERMAN_BILL]
    draft, report = _scan(text_pdf([lines]))
    assert draft.vendor.bank_account is None
    iban = report.field("iban")
    assert iban is not None and iban.needs_review
    assert any("IBAN" in r for r in draft.review_reasons)


def test_a_pdf_with_more_pages_than_allowed_is_refused() -> None:
    with pytest.raises(ScanError, match=f"at most {MAX_PAGES}"):
        read_document(text_pdf([["page"]] * (MAX_PAGES + 1)))


def test_an_image_claiming_a_huge_size_is_refused_before_it_is_decoded() -> None:
    png = bytearray(render_png(text_pdf([["x"]]), dpi=20)) if not tools_missing() else None
    header = bytearray(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 8 + b"\x08\x00\x00\x00\x00"
    )
    header[16:20] = (100_000).to_bytes(4, "big")
    header[20:24] = (100_000).to_bytes(4, "big")
    with pytest.raises(ScanError, match="pixels"):
        read_document(bytes(header))
    del png


def test_a_pdf_stream_that_inflates_past_the_bound_is_refused() -> None:
    bomb = inflating_pdf(MAX_STREAM_BYTES + 1024)
    assert len(bomb) < MAX_STREAM_BYTES // 100  # small as sent
    with pytest.raises(ScanError, match="decompresses to more than"):
        read_document(bomb)


def test_what_is_not_a_document_is_refused_clearly() -> None:
    with pytest.raises(ScanError, match="not a PDF, PNG, JPEG or TIFF"):
        read_document(b"GIF89a....")
    with pytest.raises(ScanError, match="not a readable PDF"):
        read_document(b"%PDF-1.4\nthis is not a pdf")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1'234.56", "1234.56"),
        ("$1,200", "1200"),
        ("€12,5", "12.5"),
        ("(12.00)", "-12.00"),
        ("12.00-", "-12.00"),
        ("1,234", "1234"),
        ("0,5", "0.5"),
    ],
)
def test_amounts_are_read_as_written_in_each_convention(text: str, value: str) -> None:
    assert parse_amount(text) == Decimal(value)


@pytest.mark.parametrize("text", ["abc", "1.2.3", "12,34,5", ""])
def test_what_is_not_an_amount_is_none(text: str) -> None:
    assert parse_amount(text) is None


@pytest.mark.parametrize(
    ("text", "month_first", "expected", "sure"),
    [
        ("2026-03-14", False, date(2026, 3, 14), True),
        ("14.03.2026", True, date(2026, 3, 14), True),
        ("14/03/2026", True, date(2026, 3, 14), True),
        ("03/14/2026", False, date(2026, 3, 14), True),
        ("03/04/2026", True, date(2026, 3, 4), False),
        ("03/04/2026", False, date(2026, 4, 3), False),
        ("14 March 2026", False, date(2026, 3, 14), True),
        ("March 14, 2026", False, date(2026, 3, 14), True),
        ("14. März 2026", False, date(2026, 3, 14), True),
        ("14 mars 2026", False, date(2026, 3, 14), True),
    ],
)
def test_dates_are_read_and_ambiguity_is_said(
    text: str, month_first: bool, expected: date, sure: bool
) -> None:
    assert parse_date(text, month_first=month_first) == (expected, sure)


FACTURX = Path(__file__).parent / "einvoices" / "pdf-facturx" / "akretion__invoice_EN16931.pdf"


def _read_against_its_xml(document: bytes) -> None:
    """A public Factur-X invoice's own page, read as if it had no XML: every field either
    equals what its embedded XML says or is flagged for a person; none is wrong silently."""
    truth = parse_document(FACTURX.read_bytes()).draft
    draft, report = scan_document(document, source=_source(document))
    expected = {
        "document_number": truth.document_number,
        "issue_date": truth.issue_date,
        "due_date": truth.due_date,
        "currency": truth.currency,
        "total": truth.total,
        "tax": truth.tax_amount,
        "tax_id": truth.vendor.tax_id,
        "vendor_name": truth.vendor.name,
    }
    read = {
        "document_number": draft.document_number,
        "issue_date": draft.issue_date,
        "due_date": draft.due_date,
        "currency": draft.currency,
        "total": draft.total,
        "tax": draft.tax_amount,
        "tax_id": draft.vendor.tax_id,
        "vendor_name": draft.vendor.name,
    }
    for name, value in expected.items():
        field = report.field(name)
        assert field is not None, name
        assert read[name] == value or field.needs_review, (name, read[name], value)
    # The figures that decide what is paid are read, not merely flagged.
    assert (draft.document_number, draft.total, draft.tax_amount, draft.currency) == (
        truth.document_number,
        truth.total,
        truth.tax_amount,
        truth.currency,
    )
    assert sum(ln.amount for ln in draft.lines) + draft.tax_amount == draft.total


def test_a_public_invoice_read_by_its_text_layer_matches_its_xml_or_says_so() -> None:
    _read_against_its_xml(FACTURX.read_bytes())


@needs_ocr
def test_a_public_invoice_read_by_ocr_matches_its_xml_or_says_so() -> None:
    _read_against_its_xml(render_png(FACTURX.read_bytes(), dpi=300))
