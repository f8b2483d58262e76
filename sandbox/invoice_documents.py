"""Invoice pages as a vendor's software prints them, from an e-invoice's own data.

A structured invoice (its draft, read from the XML) printed in one of three house styles — an
English one (ISO dates), a German one (dd.mm.yyyy, Rechnungsnummer, MwSt) and a French one
(dd/mm/yyyy, Facture N°, TVA, Net à payer) — as a PDF with a text layer or as a scanned page.
The XML stays the ground truth: what capture reads from the page is measured against it
(bench.capture, tests/accounting/test_scan_rendered.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from accounting.documents import BillDraft, LineKind
from accounting.scan.ocr import image_size
from sandbox.pdf_writer import render_jpeg, scanned_pages, text_pdf

STYLES = ("english", "german", "french")
MAX_PRINTED_LINES = 30  # what fits a page beside the header and totals


@dataclass(frozen=True)
class _Style:
    title: str
    number: str
    issued: str
    due: str
    vat_id: str
    buyer: str
    heading: str
    subtotal: str
    tax: str
    total: str
    day: str  # strftime format
    gross: str
    prepaid: str
    rounding: str

    def money(self, amount: Decimal) -> str:
        text = f"{amount:,.2f}"
        if self.day == "%Y-%m-%d":
            return text
        # 1,234.56 → 1.234,56 (German) / 1 234,56 (French)
        separator = "." if self.title == "RECHNUNG" else " "
        return text.replace(",", "\x00").replace(".", ",").replace("\x00", separator)


_STYLES = {
    "english": _Style(
        "INVOICE",
        "Invoice No:",
        "Invoice Date:",
        "Due Date:",
        "VAT No:",
        "Bill To:",
        "Description                          Qty        Amount",
        "Subtotal",
        "VAT",
        "Total Due",
        "%Y-%m-%d",
        "Invoice total",
        "Prepaid",
        "Rounding",
    ),
    "german": _Style(
        "RECHNUNG",
        "Rechnungsnummer:",
        "Rechnungsdatum:",
        "Fällig am:",
        "USt-IdNr.:",
        "Rechnungsempfänger:",
        "Beschreibung                         Menge      Betrag",
        "Zwischensumme",
        "MwSt",
        "Zahlbetrag",
        "%d.%m.%Y",
        "Gesamtbetrag",
        "Anzahlung",
        "Rundung",
    ),
    "french": _Style(
        "FACTURE",
        "Facture N° :",
        "Date de facture :",
        "Date d'échéance :",
        "N° TVA intra :",
        "Facturé à :",
        "Désignation                          Quantité   Montant",
        "Total HT",
        "TVA",
        "Net à payer",
        "%d/%m/%Y",
        "Total TTC",
        "Acompte",
        "Arrondi",
    ),
}


def _latin1(text: str) -> str:
    # Helvetica with WinAnsiEncoding prints Latin-1; other letters as '?' (a printer would).
    return text.encode("latin-1", "replace").decode("latin-1")


def invoice_lines(draft: BillDraft, style: str) -> list[str]:
    """The printed page's lines, top to bottom."""
    s = _STYLES[style]

    def day(value: date | None) -> str:
        return value.strftime(s.day) if value else ""

    booked = [ln for ln in draft.lines if ln.kind not in (LineKind.prepaid, LineKind.rounding)]
    after = [ln for ln in draft.lines if ln.kind in (LineKind.prepaid, LineKind.rounding)]
    subtotal = sum((ln.amount for ln in booked), Decimal("0"))  # BT-109
    printed = [
        _latin1(draft.vendor.name),
        "Harbour Road 1",
        f"{s.vat_id} {draft.vendor.tax_id}" if draft.vendor.tax_id else "",
        "",
        s.title,
        f"{s.number} {draft.document_number}",
        f"{s.issued} {day(draft.issue_date)}",
        f"{s.due} {day(draft.due_date)}" if draft.due_date else "",
        "",
        s.buyer,
        "Buyer Company",
        "",
        s.heading,
    ]
    for line in booked[:MAX_PRINTED_LINES]:
        description = _latin1((line.description or "Item").replace("\n", " "))[:34]
        quantity = "1" if line.quantity is None else f"{line.quantity.normalize():f}"
        printed.append(f"{description:<36} {quantity:>8}   {s.money(line.amount):>12}")
    printed += [
        f"{s.subtotal:<50}{s.money(subtotal):>12} {draft.currency}",
        f"{s.tax:<50}{s.money(draft.tax_amount):>12} {draft.currency}",
    ]
    if after:  # BT-112, then what was prepaid or rounded, then what is due (BT-115)
        printed.append(f"{s.gross:<50}{s.money(subtotal + draft.tax_amount):>12} {draft.currency}")
        for line in after:
            label = s.prepaid if line.kind is LineKind.prepaid else s.rounding
            printed.append(f"{label:<50}{s.money(line.amount):>12} {draft.currency}")
    printed.append(f"{s.total:<50}{s.money(draft.total):>12} {draft.currency}")
    return printed


def printable(draft: BillDraft) -> bool:
    """Whether the page can show the whole invoice (its lines fit; a prepayment's one line)."""
    return len(draft.lines) <= MAX_PRINTED_LINES


def text_invoice(draft: BillDraft, style: str) -> bytes:
    """The invoice as a PDF with a text layer (what accounting software exports)."""
    return text_pdf([invoice_lines(draft, style)], size=9)


def scanned_invoice(draft: BillDraft, style: str, *, dpi: int = 300, pages: int = 1) -> bytes:
    """The invoice printed and scanned: each page a JPEG, no text layer (`pages` copies)."""
    jpeg = render_jpeg(text_invoice(draft, style), dpi=dpi)
    width, height = image_size(jpeg, "jpg")
    return scanned_pages([(jpeg, width, height)] * pages)
