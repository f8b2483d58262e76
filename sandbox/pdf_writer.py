"""PDFs written by hand for demo and test documents: a text layer, or pages that are images.

No PDF library writes here on purpose: the tests must not share code with what they test
(pypdf reads; this writes by the PDF 1.4 specification, §7.5 file structure, §9 text).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

A4 = (595, 842)  # points


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _document(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def _stream(content: bytes, extra: str = "") -> bytes:
    return f"<< /Length {len(content)} {extra}>>\nstream\n".encode() + content + b"\nendstream"


def text_pdf(pages: list[list[str]], *, size: int = 11) -> bytes:
    """A PDF whose pages carry these lines as real text (Helvetica, WinAnsi: Latin-1 text)."""
    count = len(pages)
    # 1 catalog, 2 pages, 3 font, then per page: the page and its content stream.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, lines in enumerate(pages):
        ops = [f"BT /F1 {size} Tf {size + 5} TL 50 790 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        content = "\n".join(ops).encode("latin-1")
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * index} 0 R >>"
            ).encode()
        )
        objects.append(_stream(content))
    return _document(objects)


def _render(pdf: bytes, dpi: int, kind: str) -> bytes:
    """The first page of a PDF as a grayscale image (poppler's pdftoppm), like a scanner's."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.pdf"
        source.write_bytes(pdf)
        subprocess.run(  # noqa: S603 - a fixed program
            [
                "pdftoppm",
                "-r",
                str(dpi),
                "-gray",
                f"-{kind}",
                "-singlefile",
                str(source),
                str(Path(folder) / "out"),
            ],  # fmt: skip
            check=True,
        )
        suffix = "jpg" if kind == "jpeg" else kind
        return (Path(folder) / f"out.{suffix}").read_bytes()


def render_png(pdf: bytes, *, dpi: int = 200) -> bytes:
    return _render(pdf, dpi, "png")


def render_jpeg(pdf: bytes, *, dpi: int = 200) -> bytes:
    return _render(pdf, dpi, "jpeg")


def _jpeg_components(jpeg: bytes) -> int:
    index = 2
    while index + 9 < len(jpeg):
        marker, length = jpeg[index + 1], int.from_bytes(jpeg[index + 2 : index + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[index + 9]
        index += 2 + length
    raise ValueError("no JPEG frame header")


def scanned_pdf(jpeg: bytes, width: int, height: int) -> bytes:
    """A PDF of one page that is only this JPEG (what a scanner's PDF is)."""
    return scanned_pages([(jpeg, width, height)])


def scanned_pages(pages: list[tuple[bytes, int, int]]) -> bytes:
    """A PDF whose every page is one JPEG (width and height in pixels), as a scanner writes."""
    count = len(pages)
    kids = " ".join(f"{3 + 3 * i} 0 R" for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for index, (jpeg, width, height) in enumerate(pages):
        space = "/DeviceGray" if _jpeg_components(jpeg) == 1 else "/DeviceRGB"
        content = f"q {A4[0]} 0 0 {A4[1]} 0 0 cm /Im1 Do Q".encode()
        page, stream, image = 3 + 3 * index, 4 + 3 * index, 5 + 3 * index
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
                f"/Resources << /XObject << /Im1 {image} 0 R >> >> /Contents {stream} 0 R >>"
            ).encode()
        )
        assert len(objects) == page
        objects.append(_stream(content))
        objects.append(
            _stream(
                jpeg,
                f"/Type /XObject /Subtype /Image /Width {width} /Height {height} "
                f"/ColorSpace {space} /BitsPerComponent 8 /Filter /DCTDecode ",
            )
        )
    return _document(objects)


def inflating_pdf(inflated_bytes: int) -> bytes:
    """A one-page PDF whose content stream is small compressed and huge decompressed."""
    import zlib

    content = zlib.compress(b"BT /F1 11 Tf 50 790 Td (x) Tj ET\n" + b" " * inflated_bytes, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
            "/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>"
        ).encode(),
        _stream(content, "/Filter /FlateDecode "),
    ]
    return _document(objects)
