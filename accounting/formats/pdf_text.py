"""PDFs without an embedded e-invoice, and images (PNG, JPEG, TIFF): read by their text layer
or by OCR (accounting.scan), each field with its confidence."""

from __future__ import annotations

from accounting.documents import BillDraft, DocumentRef
from accounting.formats.problems import CaptureError, Problem
from accounting.scan.draft import ScanReport, scan_document
from accounting.scan.ocr import ScanError


def pdf_without_xml(content: bytes, source: DocumentRef) -> tuple[BillDraft, ScanReport]:
    """A BillDraft read from a PDF's text or its page images, or from an image, with the
    report of how sure each field is; CaptureError for a document that cannot be read."""
    try:
        return scan_document(content, source=source)
    except ScanError as refused:
        raise CaptureError([Problem(refused.field, refused.message)]) from None
