"""The words on each page of a PDF or an image, with where they stand and how sure the reading is.

A PDF page with a text layer is read from it (pypdf: exact, confidence 1.0); a page without one
(a scan) is rendered by poppler's `pdftoppm` and read by tesseract; an image (PNG, JPEG, TIFF)
goes to tesseract as it is. Both tools run as bounded subprocesses (Debian's poppler-utils and
tesseract-ocr): hostile images are decoded in a process of their own with a time limit, never
in remit's, which is also why tesseract is called directly (its TSV output has every word's
box and confidence) rather than through pytesseract and an in-process Pillow decode.

Bounds: MAX_PAGES pages, MAX_PIXELS per page image, SECONDS_PER_PAGE and MAX_TOOL_MEMORY per
tool run, MAX_STREAM_BYTES per decompressed PDF stream and TEXT_LAYER_SECONDS to read the text
layers.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from accounting.bounded import TookTooLong, within

MAX_PAGES = 20
MAX_PIXELS = 60_000_000  # about an A3 page at 600 dpi
RENDER_DPI = 300
SECONDS_PER_PAGE = 60
TEXT_LAYER_SECONDS = 30
MAX_TOOL_MEMORY = 2 * 1024**3  # bytes of address space for one tesseract or pdftoppm run
MAX_STREAM_BYTES = 25 * 1024 * 1024  # decompressed, per stream: a page's text is far smaller
COLUMN_GAP = 2.5
MIN_TEXT_LAYER_CHARS = 40
"""A page whose text layer has fewer characters is taken for a scan (a stamp or a page number
in an otherwise scanned page)."""


class ScanError(Exception):
    """The document cannot be read: say what, for a person (`field` names the part)."""

    def __init__(self, message: str, field: str = "document") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float  # 0..1
    box: tuple[int, int, int, int]  # left, top, width, height in page pixels (0s: no box)
    line: int  # the line's number on the page (words of one line share it)
    column: int = 0  # which stretch of its line, counted from the left across wide gaps
    measured: bool = True  # the box is where the word was seen (OCR), not estimated


@dataclass
class Page:
    number: int  # 1-based
    words: list[Word] = field(default_factory=list)
    from_text_layer: bool = False
    width: int = 0
    height: int = 0

    def lines(self) -> list[list[Word]]:
        grouped: dict[int, list[Word]] = {}
        for word in self.words:
            grouped.setdefault(word.line, []).append(word)
        return [grouped[key] for key in sorted(grouped)]

    @property
    def text(self) -> str:
        return "\n".join(" ".join(w.text for w in line) for line in self.lines())


def tools_missing() -> list[str]:
    """The programs OCR needs that this machine lacks (empty when it can read scans)."""
    return [tool for tool in ("tesseract", "pdftoppm") if shutil.which(tool) is None]


DEFAULT_LANGUAGES = "eng+deu+fra"

# Words that mark a bill's language. Tesseract reads best with the document's language first
# ("Bürobedarf" comes out "Burobedarf" with English first), so a scan whose first reading is
# mostly German or French is read again with that language leading.
_MARKERS = {
    "deu": {"rechnung", "rechnungsnummer", "datum", "betrag", "mwst", "summe", "menge", "und"},
    "fra": {"facture", "montant", "tva", "quantité", "prix", "échéance", "désignation", "et"},
}


def read_document(content: bytes, *, languages: str = DEFAULT_LANGUAGES) -> list[Page]:
    """The pages of a PDF or an image, read. ScanError for what cannot be read."""
    pages = _read(content, languages)
    scanned = [page for page in pages if not page.from_text_layer]
    if not scanned:
        return pages
    leading = languages.split("+")[0]
    words = [w.text.casefold().strip(".:,") for page in scanned for w in page.words]
    counts = {lang: sum(1 for w in words if w in marks) for lang, marks in _MARKERS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    if best != leading and best in languages.split("+") and counts[best] >= 3:
        reordered = "+".join([best, *(code for code in languages.split("+") if code != best)])
        return _read(content, reordered)
    return pages


def _read(content: bytes, languages: str) -> list[Page]:
    if content.startswith(b"%PDF"):
        return _read_pdf(content, languages)
    kind = image_kind(content)
    if kind is None:
        raise ScanError("is not a PDF, PNG, JPEG or TIFF document")
    width, height = image_size(content, kind)
    _check_pixels(width, height, 1)
    with tempfile.TemporaryDirectory(prefix="remit-ocr-") as folder:
        path = Path(folder) / f"page.{kind}"
        path.write_bytes(content)
        page = _tesseract(path, 1, languages)
    page.width, page.height = width, height
    return [page]


@dataclass(frozen=True)
class _Layer:
    """One PDF page's text layer as pypdf read it, and its size in points."""

    text: str
    runs: list[_Run]
    width: float
    height: float


def _text_layers(content: bytes) -> list[_Layer]:
    """Each page's text layer, pypdf's decompression capped at MAX_STREAM_BYTES a stream."""
    import pypdf
    from pypdf.errors import LimitReachedError, PdfReadError, PyPdfError

    with pypdf.apply_configuration(
        zlib_maximum_output_length=MAX_STREAM_BYTES,
        lzw_maximum_output_length=MAX_STREAM_BYTES,
        run_length_maximum_output_length=MAX_STREAM_BYTES,
        array_based_stream_maximum_output_length=MAX_STREAM_BYTES,
        maximum_declared_stream_length=MAX_STREAM_BYTES,
    ):
        try:
            reader = pypdf.PdfReader(io.BytesIO(content))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ScanError("is an encrypted PDF; send it without a password")
            count = len(reader.pages)
        except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError) as exc:
            raise ScanError(f"is not a readable PDF ({str(exc)[:120]})") from exc
        if count == 0:
            raise ScanError("is a PDF without pages")
        if count > MAX_PAGES:
            raise ScanError(f"has {count} pages; a bill may have at most {MAX_PAGES}")
        layers = []
        for pdf_page in reader.pages:
            runs: list[_Run] = []
            try:
                # The layout mode keeps what stands on one line of the page on one line of
                # text ("FACTURE N° : F20260023", two columns apart); the plain pass, run for
                # its visitor, says where each piece is drawn.
                text = pdf_page.extract_text(extraction_mode="layout") or ""
                pdf_page.extract_text(visitor_text=_collect(runs))
            except LimitReachedError as exc:
                raise ScanError(
                    "is a PDF with a stream that decompresses to more than "
                    f"{MAX_STREAM_BYTES // (1024 * 1024)} MB; a bill's page is far smaller"
                ) from exc
            except Exception:  # noqa: BLE001 - a broken text layer: read the page as a scan
                text, runs = "", []
            box = pdf_page.mediabox
            layers.append(_Layer(text, runs, float(box.width), float(box.height)))
        return layers


def _read_pdf(content: bytes, languages: str) -> list[Page]:
    try:
        layers = within(TEXT_LAYER_SECONDS, lambda: _text_layers(content), name="scan-text-layer")
    except TookTooLong:
        raise ScanError(
            f"is a PDF whose text could not be read within {TEXT_LAYER_SECONDS} seconds"
        ) from None
    pages: list[Page] = []
    with tempfile.TemporaryDirectory(prefix="remit-ocr-") as folder:
        source = Path(folder) / "document.pdf"
        source.write_bytes(content)
        for index, layer in enumerate(layers):
            number = index + 1
            if len(layer.text.strip()) >= MIN_TEXT_LAYER_CHARS:
                pages.append(
                    _text_layer_page(number, layer.text, layer.width, layer.height, layer.runs)
                )
                continue
            scale = RENDER_DPI / 72
            _check_pixels(int(layer.width * scale), int(layer.height * scale), number)
            image = _render(source, number, Path(folder))
            page = _tesseract(image, number, languages)
            page.width, page.height = int(layer.width * scale), int(layer.height * scale)
            pages.append(page)
    return pages


@dataclass(frozen=True)
class _Run:
    """A piece of a text layer as drawn: its text, where it starts (points, from the top
    left) and its font size."""

    text: str
    x: float
    top: float
    size: float


def _collect(runs: list[_Run]) -> Callable[..., None]:
    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        if not text.strip():
            return
        # Text space to user space: the text matrix, then the current transformation matrix.
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = (tm[0] ** 2 + tm[1] ** 2) ** 0.5 * (cm[0] ** 2 + cm[1] ** 2) ** 0.5
        runs.append(_Run(text=text, x=x, top=y, size=float(size) * (scale or 1.0)))

    return visit


_GAP = re.compile(r"\s{3,}")


def _width(text: str, size: float) -> float:
    """About how wide text is drawn in a Helvetica-like font (em fractions of its metrics):
    enough to mark a word on the page, not to measure it."""
    em = sum(0.278 if c == " " else 0.556 if c.isdigit() else 0.5 for c in text)
    return em * size


def _text_layer_page(number: int, text: str, width: float, height: float, runs: list[_Run]) -> Page:
    """The page's words from its text layer (confidence 1.0), each placed where it is drawn
    when the layer says so (Helvetica-ish widths: a highlight, not a measurement)."""
    words: list[Word] = []
    used: dict[tuple[int, int], int] = {}  # (run, offset) taken by an earlier word
    for line_number, line in enumerate(text.splitlines()):
        # The layout text spaces columns apart (three spaces or more): each stretch is one.
        stretches = [
            (c, t) for c, part in enumerate(_GAP.split(line.strip())) for t in part.split()
        ]
        for column, token in stretches:
            box = (0, 0, 0, 0)
            for index, run in enumerate(runs):
                at = run.text.find(token)
                while at >= 0 and (index, at) in used:
                    at = run.text.find(token, at + 1)
                if at < 0:
                    continue
                used[(index, at)] = 1
                box = (
                    int(run.x + _width(run.text[:at], run.size)),
                    int(height - run.top - run.size),
                    max(1, int(_width(token, run.size))),
                    max(1, int(run.size * 1.2)),
                )
                break
            words.append(
                Word(
                    text=token,
                    confidence=1.0,
                    box=box,
                    line=line_number,
                    column=column,
                    measured=False,
                )
            )
    return Page(
        number=number, words=words, from_text_layer=True, width=int(width), height=int(height)
    )


def _check_pixels(width: int, height: int, number: int) -> None:
    if width <= 0 or height <= 0:
        raise ScanError(f"page {number} has no size")
    if width * height > MAX_PIXELS:
        raise ScanError(
            f"page {number} is {width}x{height} pixels; at most {MAX_PIXELS:,} are read"
        )


def _run(command: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    missing = tools_missing()
    if missing:
        raise ScanError(
            f"cannot be read here: this server lacks {', '.join(missing)} (Debian packages "
            "tesseract-ocr and poppler-utils)"
        )
    # The tools decode what a stranger sent: their memory is capped too, where prlimit exists.
    limited = (
        ["prlimit", f"--as={MAX_TOOL_MEMORY}", "--", *command]
        if shutil.which("prlimit")
        else command
    )
    try:
        done = subprocess.run(  # noqa: S603 - fixed programs, arguments are ours
            limited, capture_output=True, timeout=SECONDS_PER_PAGE, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ScanError(f"{what} took longer than {SECONDS_PER_PAGE} s") from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise ScanError(f"{what} failed: {detail[0][:200]}")
    return done


def _render(pdf: Path, number: int, folder: Path) -> Path:
    stem = folder / f"page-{number}"
    _run(
        [
            "pdftoppm",
            "-r",
            str(RENDER_DPI),
            "-f",
            str(number),
            "-l",
            str(number),
            "-singlefile",
            "-gray",
            "-png",
            str(pdf),
            str(stem),
        ],
        f"rendering page {number}",
    )
    return stem.with_suffix(".png")


def _tesseract(image: Path, number: int, languages: str) -> Page:
    # --psm 4: a single column of text of variable sizes (what an invoice mostly is); TSV
    # gives each word with its box, confidence and block/paragraph/line numbers.
    available = _languages()
    wanted = "+".join(code for code in languages.split("+") if code in available) or "eng"
    done = _run(
        ["tesseract", str(image), "stdout", "-l", wanted, "--psm", "4", "tsv"],
        f"reading page {number}",
    )
    words: list[Word] = []
    lines: dict[tuple[str, str, str], int] = {}
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue
        key = (cells[2], cells[3], cells[4])  # block, paragraph, line
        line = lines.setdefault(key, len(lines))
        confidence = max(0.0, min(100.0, float(cells[10]))) / 100
        box = (int(cells[6]), int(cells[7]), int(cells[8]), int(cells[9]))
        words.append(Word(text=cells[11].strip(), confidence=confidence, box=box, line=line))
    return Page(number=number, words=_columns(words))


def _columns(words: list[Word]) -> list[Word]:
    """Each OCR'd word's column within its line: a gap wider than COLUMN_GAP times the line's
    text height starts the next one (an invoice's header is two or three columns abreast)."""
    out: list[Word] = []
    by_line: dict[int, list[Word]] = {}
    for word in words:
        by_line.setdefault(word.line, []).append(word)
    for line_words in by_line.values():
        line_words.sort(key=lambda w: w.box[0])
        heights = sorted(w.box[3] for w in line_words)
        height = heights[len(heights) // 2] or 1
        column, right = 0, None
        for word in line_words:
            if right is not None and word.box[0] - right > COLUMN_GAP * height:
                column += 1
            right = word.box[0] + word.box[2]
            out.append(dataclasses.replace(word, column=column))
    return out


_LANGUAGES: set[str] | None = None


def _languages() -> set[str]:
    global _LANGUAGES
    if _LANGUAGES is None:
        done = _run(["tesseract", "--list-langs"], "listing OCR languages")
        _LANGUAGES = {
            line.strip() for line in done.stdout.decode().splitlines()[1:] if line.strip()
        }
    return _LANGUAGES


def image_kind(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if content.startswith((b"II*\x00", b"MM\x00*")):
        return "tif"
    return None


def image_size(content: bytes, kind: str) -> tuple[int, int]:
    """Width and height from the image's header, without decoding it (PNG: IHDR; JPEG: the
    frame marker; TIFF: the first directory's ImageWidth and ImageLength)."""
    if kind == "png":
        if len(content) < 24:
            raise ScanError("is a truncated PNG")
        return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    if kind == "jpg":
        index = 2
        while index + 9 < len(content):
            if content[index] != 0xFF:
                index += 1
                continue
            marker = content[index + 1]
            length = int.from_bytes(content[index + 2 : index + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD):
                height = int.from_bytes(content[index + 5 : index + 7], "big")
                width = int.from_bytes(content[index + 7 : index + 9], "big")
                return width, height
            index += 2 + length
        raise ScanError("is a JPEG without a frame header")
    order: Literal["little", "big"] = "little" if content.startswith(b"II") else "big"
    offset = int.from_bytes(content[4:8], order)
    count = int.from_bytes(content[offset : offset + 2], order) if offset + 2 <= len(content) else 0
    found: dict[int, int] = {}
    for entry in range(count):
        at = offset + 2 + 12 * entry
        if at + 12 > len(content):
            break
        tag = int.from_bytes(content[at : at + 2], order)
        kind_code = int.from_bytes(content[at + 2 : at + 4], order)
        if tag in (256, 257):
            size = 2 if kind_code == 3 else 4
            found[tag] = int.from_bytes(content[at + 8 : at + 8 + size], order)
    if 256 not in found or 257 not in found:
        raise ScanError("is a TIFF without its image size")
    return found[256], found[257]


PREVIEW_DPI = 110


def render_page(content: bytes, number: int, *, dpi: int = PREVIEW_DPI) -> bytes:
    """Page `number` (1-based) of a PDF as a PNG, for a person to read beside the fields."""
    if not content.startswith(b"%PDF"):
        raise ScanError("only a PDF's pages are rendered; an image is shown as it is")
    if number < 1 or number > MAX_PAGES:
        raise ScanError(f"there is no page {number}", field="page")
    with tempfile.TemporaryDirectory(prefix="remit-page-") as folder:
        source = Path(folder) / "document.pdf"
        source.write_bytes(content)
        stem = Path(folder) / "page"
        _run(
            [
                "pdftoppm",
                "-r",
                str(dpi),
                "-f",
                str(number),
                "-l",
                str(number),
                "-singlefile",
                "-png",
                str(source),
                str(stem),
            ],
            f"rendering page {number}",
        )
        image = stem.with_suffix(".png")
        if not image.exists():
            raise ScanError(f"there is no page {number}", field="page")
        return image.read_bytes()
