"""Capture: a submitted document (remit JSON, UBL, CII, Factur-X PDF) into a validated BillDraft."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from accounting.documents import BillDraft, DocumentRef
from accounting.formats import cii, facturx, json_bill, ubl
from accounting.formats.pdf_text import pdf_without_xml
from accounting.formats.problems import ACCEPTED_FORMATS, CaptureError, Problem
from accounting.formats.safexml import parse_xml
from accounting.scan.draft import ScanReport
from accounting.scan.ocr import image_kind

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_DOCUMENT_BYTES",
    "CaptureError",
    "CapturedDocument",
    "DocumentFormat",
    "Problem",
    "document_key",
    "parse_document",
    "pdf_without_xml",
]

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024

# Byte order marks and the encoding each announces; the XML parser reads them itself, these
# only let the sniffer see the first character.
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


class DocumentFormat(StrEnum):
    json_bill = "json_bill"
    ubl_invoice = "ubl_invoice"
    ubl_credit_note = "ubl_credit_note"
    cii = "cii"
    zugferd1 = "zugferd1"
    facturx_pdf = "facturx_pdf"
    pdf = "pdf"
    image = "image"


_XML_FORMATS = {
    ubl.INVOICE_TAG: DocumentFormat.ubl_invoice,
    ubl.CREDIT_NOTE_TAG: DocumentFormat.ubl_credit_note,
    cii.CII_TAG: DocumentFormat.cii,
    cii.ZUGFERD1_TAG: DocumentFormat.zugferd1,
}


@dataclass(frozen=True)
class CapturedDocument:
    """A document that passed capture: its draft (with `source` filled) and its exact bytes."""

    draft: BillDraft
    content: bytes
    format: DocumentFormat
    scan: ScanReport | None = None
    """How an OCR (or text layer) reading went, for PDFs without an e-invoice XML and images;
    None for the structured formats, which are read exactly."""

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


def _head(content: bytes) -> str:
    """The document's first characters, for sniffing only (never for parsing)."""
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) : 4096].decode(encoding, errors="ignore")
    if content[:2] == b"<\x00":  # UTF-16 without a byte order mark
        return content[:4096].decode("utf-16-le", errors="ignore")
    if content[:2] == b"\x00<":
        return content[:4096].decode("utf-16-be", errors="ignore")
    return content[:4096].decode("latin-1")


_Kind = str  # "json", "xml", "pdf" or an image's: "png", "jpg", "tif"


def _sniff(content: bytes) -> _Kind:
    image = image_kind(content)
    if image is not None:
        return image
    head = _head(content).lstrip()
    if head.startswith(("{", "[")):
        return "json"
    if head.startswith("<"):
        return "xml"  # even when "%PDF-" is written in it: a PDF cannot start with "<"
    if b"%PDF-" in content[:1024]:  # PDF readers accept the header anywhere in the first 1 KB
        return "pdf"
    raise CaptureError([Problem("document", f"is neither JSON, XML nor PDF; {ACCEPTED_FORMATS}")])


_MEDIA_TYPES = {
    "json": json_bill.MEDIA_TYPE,
    "xml": ubl.MEDIA_TYPE,
    "pdf": facturx.MEDIA_TYPE,
    "png": "image/png",
    "jpg": "image/jpeg",
    "tif": "image/tiff",
}


def _media_type(given: str | None, kind: _Kind) -> str:
    # The bytes decide the format; the caller's label is kept only when it agrees with them.
    label = (given or "").split(";")[0].strip().lower()
    if kind in ("png", "jpg", "tif"):
        return _MEDIA_TYPES[kind]  # an image's type is its header's, never a label
    return label if label.endswith(kind) else _MEDIA_TYPES[kind]


def _file_name(given: str | None, sha256: str, kind: _Kind) -> str:
    # Browsers and clients send paths such as C:\fakepath\invoice.xml; only the last part is a name.
    name = (given or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    return name or f"{sha256[:16]}.{kind}"


def parse_xml_document(
    content: bytes, *, source: DocumentRef | None
) -> tuple[BillDraft, DocumentFormat]:
    """An XML e-invoice, its syntax read from the root element's namespace (never from BT-24)."""
    root = parse_xml(content)
    document_format = _XML_FORMATS.get(root.tag)
    if document_format in (DocumentFormat.ubl_invoice, DocumentFormat.ubl_credit_note):
        return ubl.read_ubl(root, source=source), document_format
    if document_format in (DocumentFormat.cii, DocumentFormat.zugferd1):
        return cii.read_cii(root, source=source), document_format
    raise CaptureError([Problem("document", ubl.describe_unaccepted_root(root.tag))])


def parse_document(
    content: bytes, *, file_name: str | None = None, media_type: str | None = None
) -> CapturedDocument:
    """Recognise, parse and validate a document; raise CaptureError saying what to fix.

    The format is read from the bytes: a JSON object is a remit JSON bill; XML is read by its
    root element (UBL Invoice or CreditNote, CII, ZUGFeRD 1.0); a PDF by the e-invoice XML it
    embeds, the PDF itself being the document kept.
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
    kind = _sniff(content)
    sha256 = document_key(content)
    source = DocumentRef(
        sha256=sha256,
        media_type=_media_type(media_type, kind),
        file_name=_file_name(file_name, sha256, kind),
        size=size,
    )
    if kind == "json":
        draft = json_bill.parse_json_bill(content, source=source)
        return CapturedDocument(draft=draft, content=content, format=DocumentFormat.json_bill)
    if kind == "xml":
        draft, document_format = parse_xml_document(content, source=source)
        return CapturedDocument(draft=draft, content=content, format=document_format)
    if kind != "pdf":
        draft, report = pdf_without_xml(content, source)
        return CapturedDocument(
            draft=draft, content=content, format=DocumentFormat.image, scan=report
        )
    embedded = facturx.embedded_invoice(content)
    if embedded is None:
        draft, report = pdf_without_xml(content, source)
        return CapturedDocument(
            draft=draft, content=content, format=DocumentFormat.pdf, scan=report
        )
    name, xml = embedded
    if len(xml) > MAX_DOCUMENT_BYTES:
        raise CaptureError(
            [
                Problem(
                    name,
                    f"is {_size_text(len(xml))}, more than the {_size_text(MAX_DOCUMENT_BYTES)} "
                    "an e-invoice XML may have",
                )
            ]
        )
    try:
        draft, _ = parse_xml_document(xml, source=source)
    except CaptureError as refused:
        # The problems are in the embedded XML: say so, or the XPaths would puzzle.
        raise CaptureError(
            [Problem(f"{name}: {p.location}", p.message) for p in refused.problems]
        ) from None
    return CapturedDocument(draft=draft, content=content, format=DocumentFormat.facturx_pdf)
