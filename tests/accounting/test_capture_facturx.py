"""PDFs: the e-invoice XML a Factur-X / ZUGFeRD PDF embeds is the bill, the PDF its document."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pypdf
import pytest

from accounting.formats import CaptureError, DocumentFormat, facturx, parse_document

SAMPLES = Path(__file__).parent / "einvoices"
CII = (SAMPLES / "cii/en16931__CII_example3.xml").read_bytes()
UBL = (SAMPLES / "ubl-invoice/peppol__base-example.xml").read_bytes()


def _pdf(*attachments: tuple[str, bytes], pages: int = 1, password: str | None = None) -> bytes:
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    for name, data in attachments:
        writer.add_attachment(name, data)
    if password is not None:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _refusal(content: bytes) -> list[str]:
    with pytest.raises(CaptureError) as error:
        parse_document(content, file_name="invoice.pdf")
    return [str(problem) for problem in error.value.problems]


def test_a_pdf_with_factur_x_xml_is_read_from_the_xml_and_kept_as_the_pdf() -> None:
    content = _pdf(("factur-x.xml", CII))
    captured = parse_document(content, file_name="invoice.pdf", media_type="application/pdf")
    assert captured.format is DocumentFormat.facturx_pdf
    assert captured.content == content
    assert (captured.source.media_type, captured.source.size) == ("application/pdf", len(content))
    assert (captured.draft.vendor.name, captured.draft.total) == (
        "SubscriptionSeller",
        Decimal(1125),
    )


def test_the_standard_name_wins_over_other_embedded_xml() -> None:
    content = _pdf(("a-notes.xml", UBL), ("zugferd-invoice.xml", CII))
    assert parse_document(content).draft.vendor.name == "SubscriptionSeller"


def test_an_embedded_invoice_under_another_name_is_found_by_its_root() -> None:
    content = _pdf(("delivery.xml", b"<delivery/>"), ("rechnung.xml", UBL))
    draft = parse_document(content).draft
    assert (draft.vendor.name, draft.total) == ("SupplierOfficialName Ltd", Decimal("1656.25"))


@pytest.mark.parametrize(
    "attachments",
    [(), (("notes.xml", b"<notes>not an invoice</notes>"),), (("photo.jpg", b"\xff\xd8"),)],
    ids=["none", "other xml", "not xml"],
)
def test_a_pdf_without_e_invoice_xml_goes_to_the_pdf_hook(
    attachments: tuple[tuple[str, bytes], ...],
) -> None:
    # formats.pdf_without_xml reads such PDFs (OCR, accounting.scan) and says how it went.
    captured = parse_document(_pdf(*attachments), file_name="scan.pdf")
    assert captured.format is DocumentFormat.pdf
    assert captured.scan is not None
    assert captured.draft.review_reasons  # nothing on a blank page can be read for sure


def test_problems_of_the_embedded_xml_name_the_file() -> None:
    broken = CII.replace(b"<ram:DuePayableAmount>1125<", b"<ram:DuePayableAmount>1120<")
    [problem] = _refusal(_pdf(("factur-x.xml", broken)))
    assert problem.startswith(
        "factur-x.xml: rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/"
        "ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:DuePayableAmount: BR-CO-16: "
    )


def test_hostile_embedded_xml_is_refused_for_safety() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'
        b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
        b'CrossIndustryInvoice:100">&a;</rsm:CrossIndustryInvoice>'
    )
    [problem] = _refusal(_pdf(("factur-x.xml", bomb)))
    assert problem.startswith("factur-x.xml: document: XML with a DTD")
    assert "refused for safety" in problem


def test_a_pdf_of_too_many_pages_is_refused() -> None:
    content = _pdf(("factur-x.xml", CII), pages=facturx.MAX_PAGES + 1)
    assert _refusal(content) == [
        f"document: is a PDF of {facturx.MAX_PAGES + 1} pages, more than the "
        f"{facturx.MAX_PAGES} an invoice may have"
    ]


def test_embedded_xml_over_the_size_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bound (20 MB) scaled down to the test's attachments: a larger file is refused before
    # any XML parser sees it.
    monkeypatch.setattr(facturx, "MAX_EMBEDDED_BYTES", len(CII) - 1)
    [problem] = _refusal(_pdf(("factur-x.xml", CII)))
    assert problem.startswith("document: embeds more than")


def test_an_encrypted_pdf_is_refused_saying_why() -> None:
    assert _refusal(_pdf(("factur-x.xml", CII), password="secret")) == [
        "document: is an encrypted PDF: send it without a password"
    ]


def test_a_pdf_that_cannot_be_parsed_is_refused_cleanly() -> None:
    content = _pdf(("factur-x.xml", CII))
    damaged = content[: len(content) // 2]
    [problem] = _refusal(damaged)
    assert problem.startswith("document: ")
