"""Factur-X / ZUGFeRD / XRechnung PDFs: the e-invoice XML they embed, found within bounds."""

from __future__ import annotations

import io
from xml.etree.ElementTree import ParseError

import pypdf
from defusedxml import DefusedXmlException
from pypdf.errors import PyPdfError

from accounting.bounded import TookTooLong, within
from accounting.formats.problems import CaptureError, Problem

MEDIA_TYPE = "application/pdf"

# An invoice is a few pages; a PDF of thousands is not one, and pages cost time to count.
MAX_PAGES = 500
# All embedded XML decompressed together: XML invoices are kilobytes, 3.3 MB with attachments.
MAX_EMBEDDED_BYTES = 20 * 1024 * 1024
# Each stream's decompression is capped by pypdf at this (a zip bomb stops here, not in RAM).
MAX_STREAM_BYTES = 25 * 1024 * 1024
MAX_SECONDS = 15.0

# The names the standards give the XML, in the order remit prefers them (research §5).
KNOWN_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "ZUGFeRD-invoice.xml")
_E_INVOICE_ROOTS = (
    b"CrossIndustryInvoice",
    b"CrossIndustryDocument",
    b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    b"urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
)


def _refuse(message: str) -> CaptureError:
    return CaptureError([Problem("document", message)])


def _looks_like_e_invoice(content: bytes) -> bool:
    from accounting.formats.safexml import parse_xml  # noqa: PLC0415 - avoids an import cycle

    try:
        root = parse_xml(content)
    except (CaptureError, ParseError, DefusedXmlException):
        return False
    return any(marker.decode() in root.tag for marker in _E_INVOICE_ROOTS)


def _extract(content: bytes) -> tuple[str, bytes] | None:
    with pypdf.apply_configuration(
        zlib_maximum_output_length=MAX_STREAM_BYTES,
        lzw_maximum_output_length=MAX_STREAM_BYTES,
        run_length_maximum_output_length=MAX_STREAM_BYTES,
        array_based_stream_maximum_output_length=MAX_STREAM_BYTES,
        maximum_declared_stream_length=MAX_STREAM_BYTES,
    ):
        reader = pypdf.PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _refuse("is an encrypted PDF: send it without a password")
        pages = len(reader.pages)
        if pages > MAX_PAGES:
            raise _refuse(
                f"is a PDF of {pages} pages, more than the {MAX_PAGES} an invoice may have"
            )
        files = [f for f in reader.attachment_list if f.name.lower().endswith(".xml")]
        rank = {name.lower(): index for index, name in enumerate(KNOWN_NAMES)}
        files.sort(key=lambda f: rank.get(f.name.lower(), len(KNOWN_NAMES)))
        total = 0
        for embedded in files:
            data = embedded.content
            total += len(data)
            if total > MAX_EMBEDDED_BYTES:
                raise _refuse(
                    f"embeds more than {MAX_EMBEDDED_BYTES // (1024 * 1024)} MB of XML files; "
                    "an invoice's XML is far smaller"
                )
            if f"{embedded.name}".lower() in rank or _looks_like_e_invoice(data):
                return embedded.name, data
        return None


def embedded_invoice(content: bytes) -> tuple[str, bytes] | None:
    """The (file name, bytes) of the e-invoice XML a PDF embeds (Factur-X `factur-x.xml`,
    ZUGFeRD `zugferd-invoice.xml` / `ZUGFeRD-invoice.xml`, `xrechnung.xml`, else any embedded
    XML whose root is an invoice), or None when it embeds none. CaptureError for a PDF that
    cannot be read or is over the bounds (pages, decompressed size, time)."""
    try:
        return within(MAX_SECONDS, lambda: _extract(content), name="facturx-extract")
    except TookTooLong:
        raise _refuse(f"is a PDF that could not be read within {MAX_SECONDS:.0f} seconds") from None
    except BaseException as exc:  # noqa: BLE001 - sorted below: the PDF's fault, or ours
        if isinstance(exc, CaptureError):
            raise exc
        if isinstance(
            exc,
            PyPdfError
            | ValueError
            | KeyError
            | TypeError
            | AttributeError
            | IndexError
            | RecursionError
            | OSError
            | MemoryError
            | ArithmeticError,
        ):
            raise _refuse(f"is not a readable PDF ({type(exc).__name__})") from None
        raise
