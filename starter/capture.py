"""What the API keeps of a captured document: the bytes, and the record of what was read."""

from __future__ import annotations

from accounting.documents import BillDraft
from accounting.formats import CapturedDocument
from accounting.scan.draft import CaptureRecord
from store.documents import DocumentStore


def keep_captured(
    documents: DocumentStore, captured: CapturedDocument, draft: BillDraft | None = None
) -> None:
    """Store the document (the worker attaches it to the ERP bill from here) and, when capture
    was unsure or read it by OCR, its capture record (the inbox shows it; corrections start
    from it). `draft` is the draft as submitted when the API added reasons to capture's."""
    submitted = draft or captured.draft
    documents.put(
        captured.content,
        media_type=captured.source.media_type,
        file_name=captured.source.file_name,
    )
    if captured.scan is not None or submitted.review_reasons:
        record = CaptureRecord(draft=submitted, scan=captured.scan)
        documents.put_capture(captured.source.sha256, record.model_dump_json().encode())
