"""Capture of printed invoices, measured against the XML they were printed from.

Every valid public e-invoice sample printed in one of three house styles (sandbox.
invoice_documents) as a PDF with a text layer, and a few of them scanned: number, issue
date, total, currency and vendor must be right on at least 90 % of the documents, and no
field may be wrong without being flagged for a person (a flagged bill waits in needs_review,
so none is wrong and approved automatically). bench.capture runs the whole set through OCR.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest

from accounting.documents import BillDraft, DocumentRef
from accounting.formats import parse_document
from accounting.scan.draft import ScanReport, scan_document
from accounting.scan.ocr import tools_missing
from sandbox.invoice_documents import STYLES, printable, scanned_invoice, text_invoice
from tests.accounting.test_einvoice_samples import SAMPLES, VALID

FIELDS = ("document_number", "issue_date", "total", "currency", "vendor_name")


@dataclass
class Tally:
    documents: int = 0
    right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    silent: list[str] = field(default_factory=list)

    def add(self, name: str, truth: BillDraft, draft: BillDraft, report: ScanReport) -> None:
        self.documents += 1
        read = {
            "document_number": (draft.document_number, truth.document_number),
            "issue_date": (draft.issue_date, truth.issue_date),
            "total": (draft.total, truth.total),
            "currency": (draft.currency, truth.currency),
            "vendor_name": (draft.vendor.name, truth.vendor.name[:200]),
        }
        for key, (got, want) in read.items():
            found = report.field(key)
            if got == want:
                self.right[key] += 1
            elif found is None or not found.needs_review:
                self.silent.append(f"{name} {key}: read {got!r}, is {want!r}, not flagged")

    def rates(self) -> dict[str, float]:
        return {key: self.right[key] / self.documents for key in FIELDS}


def _read(document: bytes, media_type: str) -> tuple[BillDraft, ScanReport]:
    source = DocumentRef(
        sha256=hashlib.sha256(document).hexdigest(),
        media_type=media_type,
        file_name="printed",
        size=len(document),
    )
    return scan_document(document, source=source)


def _printed(names: list[str]) -> list[tuple[str, str, BillDraft]]:
    chosen = []
    for index, name in enumerate(names):
        truth = parse_document((SAMPLES / name).read_bytes()).draft
        if printable(truth):
            chosen.append((name, STYLES[index % len(STYLES)], truth))
    return chosen


def test_printed_invoices_read_by_their_text_layer() -> None:
    tally = Tally()
    for name, style, truth in _printed(VALID):
        draft, report = _read(text_invoice(truth, style), "application/pdf")
        tally.add(f"{name} ({style})", truth, draft, report)
    assert tally.documents >= 80
    assert tally.silent == []
    assert all(rate >= 0.9 for rate in tally.rates().values()), tally.rates()


@pytest.mark.skipif(bool(tools_missing()), reason="OCR tools missing")
def test_printed_invoices_scanned_and_read_by_ocr() -> None:
    tally = Tally()
    for name, style, truth in _printed(VALID[::20]):  # one style each, OCR costs seconds a page
        draft, report = _read(scanned_invoice(truth, style), "application/pdf")
        tally.add(f"{name} ({style})", truth, draft, report)
    assert tally.documents >= 4
    assert tally.silent == []
    assert all(rate >= 0.75 for rate in tally.rates().values()), tally.rates()
