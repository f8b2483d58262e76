"""Capture: a submitted document (remit JSON bill or UBL 2.1 invoice) into a validated BillDraft."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from accounting.documents import BillDraft, DocumentRef
from accounting.formats import json_bill, ubl
from accounting.formats.problems import ACCEPTED_FORMATS, CaptureError, Problem

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_DOCUMENT_BYTES",
    "CaptureError",
    "CapturedDocument",
    "DocumentFormat",
    "Problem",
    "document_key",
    "parse_document",
]

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024

_UTF8_BOM = b"\xef\xbb\xbf"


class DocumentFormat(StrEnum):
    json_bill = "json_bill"
    ubl_invoice = "ubl_invoice"


@dataclass(frozen=True)
class CapturedDocument:
    """A document that passed capture: its draft (with `source` filled) and its exact bytes."""

    draft: BillDraft
    content: bytes
    format: DocumentFormat

    @property
    def source(self) -> DocumentRef:
        assert self.draft.source is not None  # parse_document always fills it
        return self.draft.source

    @property
    def key(self) -> str:
        """The sha256 of the bytes: the bill key when the caller gives no idempotency key."""
        return self.source.sha256


def document_key(content: bytes) -> str:
    """The sha256 (hex) of the document's exact bytes."""
    return hashlib.sha256(content).hexdigest()


def _size_text(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size} bytes"


def _sniff(content: bytes) -> DocumentFormat:
    head = content[:4096].removeprefix(_UTF8_BOM).lstrip()
    if head.startswith((b"{", b"[")):
        return DocumentFormat.json_bill
    if head.startswith(b"<"):
        return DocumentFormat.ubl_invoice
    if head.startswith(b"%PDF"):
        message = (
            "PDF documents (Factur-X and ZUGFeRD included) are not accepted yet; "
            + ACCEPTED_FORMATS
        )
    else:
        message = f"is neither JSON nor XML; {ACCEPTED_FORMATS}"
    raise CaptureError([Problem("document", message)])


def _media_type(given: str | None, document_format: DocumentFormat) -> str:
    # The bytes decide the format; the caller's label is kept only when it agrees with them.
    label = (given or "").split(";")[0].strip().lower()
    if document_format is DocumentFormat.json_bill:
        return label if label.endswith("json") else json_bill.MEDIA_TYPE
    return label if label.endswith("xml") else ubl.MEDIA_TYPE


def _file_name(given: str | None, sha256: str, document_format: DocumentFormat) -> str:
    # Browsers and clients send paths such as C:\fakepath\invoice.xml; only the last part is a name.
    name = (given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    if name:
        return name
    extension = "json" if document_format is DocumentFormat.json_bill else "xml"
    return f"{sha256[:16]}.{extension}"


def parse_document(
    content: bytes, *, file_name: str | None = None, media_type: str | None = None
) -> CapturedDocument:
    """Recognise, parse and validate a document; raise CaptureError saying what to fix.

    The format is read from the bytes: a JSON object is a remit JSON bill, XML whose root is a
    UBL 2.1 Invoice is a UBL invoice; anything else is refused.
    """
    content = bytes(content)
    size = len(content)
    if size == 0:
        raise CaptureError([Problem("document", f"is empty; {ACCEPTED_FORMATS}")])
    if size > MAX_DOCUMENT_BYTES:
        raise CaptureError(
            [
                Problem(
                    "document",
                    f"is {_size_text(size)}, more than the {_size_text(MAX_DOCUMENT_BYTES)} "
                    "a document may have",
                )
            ]
        )
    document_format = _sniff(content)
    sha256 = document_key(content)
    source = DocumentRef(
        sha256=sha256,
        media_type=_media_type(media_type, document_format),
        file_name=_file_name(file_name, sha256, document_format),
        size=size,
    )
    if document_format is DocumentFormat.json_bill:
        draft = json_bill.parse_json_bill(content, source=source)
    else:
        draft = ubl.parse_ubl_invoice(content, source=source)
    return CapturedDocument(draft=draft, content=content, format=document_format)
