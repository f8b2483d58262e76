"""The hook for PDFs that embed no e-invoice XML (to be read by OCR): today it refuses them."""

from __future__ import annotations

from accounting.documents import BillDraft, DocumentRef
from accounting.formats.problems import CaptureError, Problem


def pdf_without_xml(content: bytes, source: DocumentRef) -> BillDraft:
    """A BillDraft read from a PDF's text or images. Not yet: every such PDF is refused."""
    raise CaptureError(
        [
            Problem(
                "document",
                "PDFs without embedded e-invoice XML are not accepted yet: send the invoice as "
                "UBL or CII XML, or as a Factur-X / ZUGFeRD PDF",
            )
        ]
    )
