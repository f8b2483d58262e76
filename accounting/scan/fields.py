"""A bill's fields found in the words of its pages, each with the confidence of its reading.

The reading is rule-based and says how sure it is: a value found after its label (\"Invoice
No.\", \"Rechnungsnummer\", \"N° de facture\") and well formed is trusted more than one found
by its shape alone; every confidence is the rule's times the OCR's own for the words it used
(1.0 for a PDF's text layer). Checks that a value can pass raise it (an IBAN or VAT number
whose check digits hold, line amounts that are quantity × price, totals that add up); what
fails lowers it. Nothing here guesses silently: a field that is not found is absent, and the
caller sends the bill to a person.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar

from stdnum import iban as stdnum_iban
from stdnum.eu import vat as stdnum_vat

from accounting.money import minor_units
from accounting.scan.ocr import Page, Word

T = TypeVar("T")

Box = tuple[int, int, int, int]

# How much a rule trusts what it found, before the OCR's own confidence is applied.
LABELLED = 0.95  # the value follows its label on the same line
LABEL_ABOVE = 0.85  # the value is on the line under its label
SHAPE_ONLY = 0.55  # found by its form alone (an IBAN anywhere, a date with no label)
AMBIGUOUS = 0.5  # more than one reading is possible (03/04/2026, "$")
UNDER_LINES = 3  # how far below its label a value may stand
CONVENTION = 0.9  # one reading by the document's evident convention (dd/mm for a EUR bill)


@dataclass(frozen=True)
class Found(Generic[T]):
    """One field's value, how sure the reading is (0..1), and where it was read."""

    value: T
    confidence: float
    page: int
    text: str
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class FoundLine:
    description: str
    amount: Decimal
    confidence: float
    page: int
    quantity: Decimal | None = None
    unit_amount: Decimal | None = None
    boxes: tuple[Box, ...] = ()


@dataclass
class Extraction:
    """What the pages say, field by field; `notes` say why a reading is doubtful."""

    document_number: Found[str] | None = None
    issue_date: Found[date] | None = None
    due_date: Found[date] | None = None
    vendor_name: Found[str] | None = None
    tax_id: Found[str] | None = None
    iban: Found[str] | None = None
    currency: Found[str] | None = None
    subtotal: Found[Decimal] | None = None
    tax: Found[Decimal] | None = None
    total: Found[Decimal] | None = None
    prepaid: Found[Decimal] | None = None
    """Paid already (a deposit, a prepayment): the total before it, less it, is what is due."""
    rounding: Found[Decimal] | None = None
    """The payable amount's rounding (to whole units, to 0.05): added to what is due."""
    lines: list[FoundLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---- labels ---------------------------------------------------------------------------------
# Folded (see _fold): lower case, accents off, punctuation to spaces. Longer labels are tried
# first, so "invoice date" is not read as "invoice" and "subtotal" not as "total".

_NUMBER_LABELS = (
    "invoice number",
    "invoice no",
    "invoice nr",
    "invoice",
    "bill number",
    "bill no",
    "document number",
    "document no",
    "inv no",
    "rechnungsnummer",
    "rechnungs nr",
    "rechnung nr",
    "rechnung",
    "belegnummer",
    "numero de facture",
    "n de facture",
    "no de facture",
    "facture n",
    "facture no",
    "facture",
    "factuurnummer",
    "numero factura",
)
_ISSUE_DATE_LABELS = (
    "invoice date",
    "date of issue",
    "issue date",
    "issued",
    "bill date",
    "rechnungsdatum",
    "belegdatum",
    "datum",
    "date de facture",
    "date d emission",
    "factuurdatum",
    "fecha",
    "date",
)
_DUE_DATE_LABELS = (
    "payment due date",
    "due date",
    "payment due",
    "due by",
    "pay by",
    "due",
    "faellig am",
    "fallig am",
    "faelligkeitsdatum",
    "falligkeitsdatum",
    "zahlbar bis",
    "faellig",
    "fallig",
    "date d echeance",
    "echeance",
    "a payer avant le",
    "vervaldatum",
)
_TOTAL_LABELS = (
    # What is to be paid, then the document's total with tax, then a bare "Total".
    "total amount due",
    "amount due",
    "balance due",
    "total due",
    "amount payable",
    "net a payer",
    "zu zahlen",
    "zahlbetrag",
    "grand total",
    "invoice total",
    "total amount",
    "total incl vat",
    "total including vat",
    "total inc vat",
    "gesamtbetrag",
    "rechnungsbetrag",
    "endbetrag",
    "bruttobetrag",
    "gesamtsumme",
    "summe brutto",
    "total ttc",
    "montant ttc",
    "montant total",
    "totaal",
    "total",
)
_PREPAID_LABELS = (
    "less amount paid",
    "amount paid",
    "already paid",
    "prepaid",
    "prepayment",
    "deposit",
    "bereits bezahlt",
    "anzahlung",
    "vorauszahlung",
    "acompte",
    "deja paye",
)
_ROUNDING_LABELS = (
    "payable rounding",
    "rounding",
    "rundung",
    "arrondi",
    "oresavrundning",
    "afrunding",
)
_SUBTOTAL_LABELS = (
    "subtotal",
    "sub total",
    "total excl vat",
    "total excluding vat",
    "total net",
    "net total",
    "net amount",
    "total before tax",
    "zwischensumme",
    "nettobetrag",
    "summe netto",
    "netto",
    "total ht",
    "montant ht",
    "sous total",
)
_TAX_LABELS = (
    # The document's tax total first; a rate's row or a column heading last.
    "total tax",
    "total vat",
    "total tva",
    "total mwst",
    "summe mwst",
    "tax amount",
    "vat amount",
    "montant tva",
    "sales tax",
    "umsatzsteuer",
    "mehrwertsteuer",
    "mwst",
    "ust",
    "vat",
    "tax",
    "gst",
    "tva",
    "btw",
    "iva",
)
_TAX_ID_LABELS = (
    "n tva intracommunautaire",
    "n tva intra",
    "tva intra",
    "vat registration number",
    "vat reg no",
    "vat number",
    "vat no",
    "vat id",
    "vat",
    "ust idnr",
    "ust id nr",
    "ust id",
    "umsatzsteuer id",
    "steuernummer",
    "st nr",
    "n tva",
    "no tva",
    "tva intracommunautaire",
    "numero de tva",
    "tax id",
    "tax number",
    "ein",
    "tin",
    "abn",
    "gst no",
    "btw nummer",
)
_BUYER_LABELS = (
    "bill to",
    "billed to",
    "invoice to",
    "sold to",
    "ship to",
    "customer",
    "rechnungsempfanger",
    "rechnungsempfaenger",
    "kunde",
    "client",
    "facture a",
    "adresse de facturation",
)
_TABLE_HEADINGS = (
    "description",
    "item",
    "qty",
    "quantity",
    "unit price",
    "price",
    "rate",
    "amount",
    "total",
    "beschreibung",
    "bezeichnung",
    "artikel",
    "menge",
    "einzelpreis",
    "preis",
    "betrag",
    "designation",
    "quantite",
    "prix unitaire",
    "montant",
)
_LEGAL_FORMS = re.compile(
    r"\b(gmbh|ag|kg|ohg|ug|ltd|limited|llc|l\.l\.c|inc|incorporated|corp|corporation|plc|llp|"
    r"co|company|sa|sas|sarl|s\.a|s\.a\.s|bv|b\.v|nv|n\.v|ab|oy|oyj|as|a/s|aps|spa|s\.p\.a|srl|"
    r"s\.r\.l|sl|s\.l|pty)\b\.?",
    re.IGNORECASE,
)
_TITLE_WORDS = {
    "invoice",
    "tax invoice",
    "rechnung",
    "facture",
    "bill",
    "credit note",
    "gutschrift",
    "avoir",
    "page",
    "seite",
}

_MONTHS = {
    **{
        name: n
        for n, names in enumerate(
            [
                ("january", "jan", "januar", "janvier", "janv"),
                ("february", "feb", "februar", "fevrier", "fevr"),
                ("march", "mar", "maerz", "marz", "mars"),
                ("april", "apr", "avril", "avr"),
                ("may", "mai"),
                ("june", "jun", "juni", "juin"),
                ("july", "jul", "juli", "juillet", "juil"),
                ("august", "aug", "aout"),
                ("september", "sep", "sept", "septembre"),
                ("october", "oct", "oktober", "okt", "octobre"),
                ("november", "nov", "novembre"),
                ("december", "dec", "dezember", "dez", "decembre"),
            ],
            start=1,
        )
        for name in names
    }
}

# Where dates are written month first: the US, and its dollar's users (Canada writes both).
_MONTH_FIRST = {"USD", "CAD"}

_CURRENCY_SYMBOLS = {"€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "CHF": "CHF", "Fr.": "CHF"}
_DOLLAR_PREFIXES = {"US$": "USD", "C$": "CAD", "CA$": "CAD", "A$": "AUD", "AU$": "AUD"}

_AMOUNT = re.compile(
    r"(?<![\w.,])[-(]?(?:[$€£¥₹]\s?)?-?\d{1,3}(?:[ ,.'\u00a0\u202f]\d{3})*(?:[.,]\d{1,4})?\)?-?"
    r"(?![\w%])|(?<![\w.,])[-(]?(?:[$€£¥₹]\s?)?-?\d+(?:[.,]\d{1,4})?\)?-?(?![\w%])"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_VAT_ID = re.compile(r"\b(?:[A-Z]{2}[ ]?[0-9A-Z][0-9A-Z .]{6,14}[0-9A-Z]|\d{2}-\d{7})\b")
_CODE_SUFFIX = re.compile(r"(?<=\d)\s?(?:[A-Z]{3}|[€£$])$")
_EIN = re.compile(r"\d{2}-\d{7}")  # a US employer id: no check digit, but a fixed form
_DOC_NUMBER = re.compile(r"^[#:]*\s*([A-Za-z0-9][A-Za-z0-9/_.\-]{0,63})")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("ß", "ss").casefold()
    return re.sub(r"[^a-z0-9%]+", " ", text).strip()


@dataclass(frozen=True)
class _Line:
    page: int
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def folded(self) -> str:
        return _fold(self.text)

    def confidence(self, words: Iterable[Word] | None = None) -> float:
        chosen = list(words if words is not None else self.words)
        return min((w.confidence for w in chosen), default=1.0)

    def boxes(self, words: Iterable[Word] | None = None) -> tuple[Box, ...]:
        chosen = words if words is not None else self.words
        return tuple(w.box for w in chosen if w.box != (0, 0, 0, 0))


def _lines(pages: Sequence[Page]) -> list[_Line]:
    return [_Line(page=page.number, words=tuple(words)) for page in pages for words in page.lines()]


def _label_hit(line: _Line, labels: Sequence[str]) -> tuple[str, list[Word], Word] | None:
    """The label this line starts a field with (longest first), the words after it, and the
    label's last word (where its value stands relative to it: beside or below).

    Compared without spaces, so OCR's "S ubtotal" and "Rechnungs-Nr." still match."""
    folded_words = [_fold(w.text).replace(" ", "") for w in line.words]
    for label in sorted(labels, key=len, reverse=True):
        wanted = label.replace(" ", "")
        for start in range(len(folded_words)):
            joined = ""
            for index in range(start, len(folded_words)):
                joined += folded_words[index]
                if joined == wanted:
                    return label, list(line.words[index + 1 :]), line.words[index]
                if not wanted.startswith(joined):
                    break
    return None


def _label_at(line: _Line, labels: Sequence[str]) -> tuple[str, list[Word]] | None:
    hit = _label_hit(line, labels)
    return (hit[0], hit[1]) if hit is not None else None


# ---- values ---------------------------------------------------------------------------------


def parse_amount(text: str) -> Decimal | None:
    """An amount as written on invoices: 1,234.56 · 1.234,56 · 1 234,56 · 1'234.56 · (12.00)
    · 12.00- · €12 · $1,200; None when the text is not one."""
    raw = text.strip()
    negative = raw.startswith(("-", "(")) or raw.endswith(("-", ")"))
    raw = raw.strip("-()").strip()
    for symbol in ("US$", "CA$", "AU$", "C$", "A$", "$", "€", "£", "¥", "₹"):
        raw = raw.removeprefix(symbol).strip()
    raw = raw.lstrip("-")
    if not raw or not raw[0].isdigit():
        return None
    body = re.sub(r"[ '\u00a0\u202f]", "", raw)
    if not re.fullmatch(r"[\d.,]+", body):
        return None
    last_dot, last_comma = body.rfind("."), body.rfind(",")
    decimal_mark = None
    if last_dot >= 0 and last_comma >= 0:
        decimal_mark = "." if last_dot > last_comma else ","
    elif last_dot >= 0 or last_comma >= 0:
        mark = "." if last_dot >= 0 else ","
        groups = body.split(mark)
        # One mark followed by exactly three digits is a thousands separator (1,234 · 1.234);
        # followed by one, two or four digits it is the decimal mark.
        if len(groups) == 2 and len(groups[1]) != 3:
            decimal_mark = mark
        elif len(groups) > 2 and any(len(g) != 3 for g in groups[1:]):
            return None
    if decimal_mark:
        whole, _, fraction = body.rpartition(decimal_mark)
        other = "," if decimal_mark == "." else "."
        if decimal_mark in whole:
            return None
        whole = whole.replace(other, "")
        body = f"{whole}.{fraction}"
    else:
        body = body.replace(".", "").replace(",", "")
    try:
        value = Decimal(body)
    except InvalidOperation:
        return None
    return -value if negative else value


def _amounts_in(words: Sequence[Word]) -> list[tuple[Decimal, list[Word]]]:
    """The amounts among these words, in order; a word followed by '%' is a rate, not one."""
    found: list[tuple[Decimal, list[Word]]] = []
    index = 0
    while index < len(words):
        word = words[index]
        text = word.text
        used = [word]
        # "1 234,56" is split by OCR into two words; join a group of three digits back on.
        while (
            index + 1 < len(words)
            and words[index + 1].column == words[index].column  # not the next column's figure
            and re.fullmatch(r"[-($€£]?\d{1,3}", text)
            and re.fullmatch(r"\d{3}(?:[.,]\d{1,4})?[)-]?", words[index + 1].text)
        ):
            index += 1
            text = f"{text} {words[index].text}"
            used.append(words[index])
        next_word = words[index + 1].text if index + 1 < len(words) else ""
        index += 1
        if text.endswith("%") or next_word.startswith("%"):
            continue
        value = parse_amount(_CODE_SUFFIX.sub("", text.rstrip(":")))
        if value is not None and re.search(r"\d", text):
            found.append((value, used))
    return found


def parse_date(text: str, *, month_first: bool = False) -> tuple[date, bool] | None:
    """A date as written (ISO, 31.12.2026, 31/12/2026, 12/31/2026, 31 Dec 2026, December 31,
    2026, 31. Dezember 2026) and whether the reading is unambiguous."""
    folded = _fold(text)
    match = re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", text)
    if match:
        return _date(int(match[1]), int(match[2]), int(match[3]), sure=True)
    match = re.search(r"\b(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})\b", text)
    if match:
        first, second, year = int(match[1]), int(match[3]), int(match[4])
        year = year + 2000 if year < 100 else year
        if match[2] == ".":
            return _date(year, second, first, sure=True)  # 31.12.2026 is day first everywhere
        if first > 12:
            return _date(year, second, first, sure=True)
        if second > 12:
            return _date(year, first, second, sure=True)
        if first == second:
            return _date(year, first, second, sure=True)
        if month_first:
            return _date(year, first, second, sure=False)
        return _date(year, second, first, sure=False)
    match = re.search(r"\b(\d{1,2})\s+([a-z]{3,9})\s+(\d{4})\b", folded)
    if match and match[2] in _MONTHS:
        return _date(int(match[3]), _MONTHS[match[2]], int(match[1]), sure=True)
    match = re.search(r"\b([a-z]{3,9})\s+(\d{1,2})\s+(\d{4})\b", folded)
    if match and match[1] in _MONTHS:
        return _date(int(match[3]), _MONTHS[match[1]], int(match[2]), sure=True)
    return None


def _date(year: int, month: int, day: int, *, sure: bool) -> tuple[date, bool] | None:
    try:
        return date(year, month, day), sure
    except ValueError:
        return None


def valid_iban(text: str) -> str | None:
    compact = re.sub(r"\s", "", text).upper()
    try:
        return str(stdnum_iban.validate(compact))
    except Exception:  # noqa: BLE001 - stdnum raises its own ValidationError family
        return None


def valid_vat(text: str) -> str | None:
    compact = re.sub(r"[\s.]", "", text).upper()
    try:
        return str(stdnum_vat.validate(compact))
    except Exception:  # noqa: BLE001 - stdnum raises its own ValidationError family
        return None


# ---- the extraction -------------------------------------------------------------------------


def extract(pages: Sequence[Page]) -> Extraction:
    """Every field this module knows how to find, from the pages' words."""
    lines = _lines(pages)
    result = Extraction()
    result.currency = _currency(lines)
    # 03/04/2026 is March 4th in a US bill and 3 April nearly everywhere else: the currency
    # says which convention the document most likely follows (and how sure that is).
    month_first = result.currency is not None and result.currency.value in _MONTH_FIRST
    convention_known = result.currency is not None and result.currency.confidence >= 0.8
    result.document_number = _document_number(lines)
    result.issue_date = _labelled_date(
        lines, _ISSUE_DATE_LABELS, month_first, exclude=_DUE_DATE_LABELS, known=convention_known
    )
    result.due_date = _labelled_date(
        lines, _DUE_DATE_LABELS, month_first, exclude=(), known=convention_known
    )
    if result.issue_date is None:
        result.issue_date = _any_date(lines, month_first, skip=result.due_date)
    result.vendor_name = _vendor_name(lines)
    result.tax_id = _tax_id(lines)
    result.iban = _iban(lines)
    result.subtotal = _labelled_amount(lines, _SUBTOTAL_LABELS, ())
    result.tax = _labelled_amount(lines, _TAX_LABELS, _TAX_ID_LABELS)
    result.total = _labelled_amount(lines, _TOTAL_LABELS, _SUBTOTAL_LABELS + _TAX_LABELS)
    result.prepaid = _labelled_amount(lines, _PREPAID_LABELS, ())
    result.rounding = _labelled_amount(lines, _ROUNDING_LABELS, ())
    result.lines = _table_lines(lines)
    _cross_check(result)
    return result


def _first_value_words(
    line: _Line, after: list[Word], lines: list[_Line], label: Word | None = None
) -> list[Word]:
    """The words a label's value is in: the rest of the label's own stretch of the line, else
    the next stretch, else what stands under the label on the line below."""
    if after:
        column = label.column if label is not None else after[0].column
        own = [w for w in after if w.column == column]
        if own:
            return own
        first = after[0].column
        return [w for w in after if w.column == first]
    return _under(line, lines, label)


def _under(line: _Line, lines: list[_Line], label: Word | None) -> list[Word]:
    """What stands under `label` within the next few lines: where the boxes overlap (OCR),
    else in the same column (a row of totals under a row of headings, maybe a line of the
    left column's text between them)."""
    index = lines.index(line)
    for below_line in lines[index + 1 : index + 1 + UNDER_LINES]:
        if below_line.page != line.page:
            break
        below = list(below_line.words)
        if label is None:
            return below
        if label.measured and all(w.measured for w in below):
            left, right = label.box[0], label.box[0] + label.box[2]
            under = [w for w in below if w.box[0] < right and w.box[0] + w.box[2] > left]
        else:
            under = [w for w in below if w.column == label.column and w.column > 0]
            if label.column == 0:
                under = [w for w in below if w.column == 0]
        if under:
            return under
    return []


def _document_number(lines: list[_Line]) -> Found[str] | None:
    """The number after the most specific label: "Invoice No. 17" beats a title "INVOICE"
    with a number under it."""
    best: Found[str] | None = None
    for line in lines:
        hit = _label_hit(line, _NUMBER_LABELS)
        if hit is None:
            continue
        label, after, last = hit
        after = [w for w in after if w.text.strip(":#.")]  # a colon standing alone
        words = _first_value_words(line, after, lines, last)
        for index, word in enumerate(words):
            text = word.text.strip(":#.")
            if _fold(text) in ("no", "nr", "number", "n", "nummer", "numero", "date", "datum"):
                continue
            match = _DOC_NUMBER.match(text)
            if not (match and re.search(r"\d", match[1])):
                break
            # A number written in parts ("018304 / 28865"): the parts that follow in its
            # stretch, while they are figures or the separators between them.
            parts = [word]
            for following in words[index + 1 :]:
                if not re.fullmatch(r"[/\-]|[A-Za-z]{0,3}\d[\w/\-]*", following.text):
                    break
                parts.append(following)
            while parts[-1].text in ("/", "-"):
                parts.pop()
            value = " ".join([match[1], *(p.text for p in parts[1:])])
            trust = LABELLED if after else LABEL_ABOVE
            if label in ("invoice", "rechnung", "facture"):
                trust -= 0.15  # a bare title word: "Invoice 2026-001" is likely, not certain
            if len(parts) > 1:
                trust -= 0.1  # where a number in parts ends is a reading, not a certainty
            found = Found(
                value=value[:64],
                confidence=trust * _words_confidence(parts),
                page=line.page,
                text=line.text,
                boxes=line.boxes(parts),
            )
            if best is None or found.confidence > best.confidence:
                best = found
            break
    return best


def _labelled_date(
    lines: list[_Line],
    labels: Sequence[str],
    month_first: bool,
    exclude: Sequence[str],
    *,
    known: bool = False,
) -> Found[date] | None:
    for line in lines:
        if exclude and _label_at(line, exclude) is not None:
            continue
        hit = _label_hit(line, labels)
        if hit is None:
            continue
        _, after, last = hit
        after = [w for w in after if w.text.strip(":")]
        words = _first_value_words(line, after, lines, last)
        text = " ".join(w.text for w in words)
        parsed = parse_date(text, month_first=month_first)
        if parsed is None:
            continue
        value, sure = parsed
        # An ambiguous day and month, read by the convention a sure currency implies, is
        # likely right; with no currency to go by, a guess.
        doubt = 1.0 if sure else (CONVENTION if known else AMBIGUOUS / LABELLED)
        trust = (LABELLED if after else LABEL_ABOVE) * doubt
        return Found(
            value=value,
            confidence=trust * _words_confidence(words),
            page=line.page,
            text=line.text,
            boxes=tuple(w.box for w in words if w.box != (0, 0, 0, 0)),
        )
    return None


def _any_date(
    lines: list[_Line], month_first: bool, skip: Found[date] | None
) -> Found[date] | None:
    for line in lines:
        parsed = parse_date(line.text, month_first=month_first)
        if parsed is None or (skip is not None and parsed[0] == skip.value):
            continue
        value, sure = parsed
        return Found(
            value=value,
            confidence=(SHAPE_ONLY if sure else SHAPE_ONLY * AMBIGUOUS) * line.confidence(),
            page=line.page,
            text=line.text,
            boxes=line.boxes(),
        )
    return None


def _words_confidence(words: Sequence[Word]) -> float:
    return min((w.confidence for w in words), default=0.0)


def _vendor_name(lines: list[_Line]) -> Found[str] | None:
    """The seller is named at the top of the first page, above the buyer's block."""
    first_page = [line for line in lines if line.page == lines[0].page] if lines else []
    top: list[_Line] = []
    for line in first_page[:15]:
        # The left column: the buyer's block often stands beside the seller's, not under it.
        left = _Line(page=line.page, words=tuple(w for w in line.words if w.column == 0))
        if _label_at(left, _BUYER_LABELS) is not None:
            break
        if left.words:
            top.append(left)
    candidates = [
        line
        for line in top
        if line.folded
        and line.folded not in _TITLE_WORDS
        and not re.fullmatch(r"[\d\s%]+", line.folded)
        and _label_at(line, _NUMBER_LABELS + _ISSUE_DATE_LABELS + _TAX_ID_LABELS) is None
        and not _IBAN.search(line.text)
        and "@" not in line.text
    ]
    for line in candidates:
        if _LEGAL_FORMS.search(line.text):
            return Found(
                value=line.text.strip(" ,"),
                confidence=0.9 * line.confidence(),
                page=line.page,
                text=line.text,
                boxes=line.boxes(),
            )
    if candidates:
        line = candidates[0]
        return Found(
            value=line.text.strip(" ,"),
            confidence=SHAPE_ONLY * line.confidence(),
            page=line.page,
            text=line.text,
            boxes=line.boxes(),
        )
    return None


def _in_buyer_block(lines: list[_Line], index: int, column: int) -> bool:
    """Whether line `index` lies in the block a buyer label opens in the same column (up to
    six lines down: OCR gives no blank lines to end a block by)."""
    for back in range(index, max(-1, index - 7), -1):
        if lines[back].page != lines[index].page:
            return False
        hit = _label_hit(lines[back], _BUYER_LABELS)
        if hit is not None and hit[2].column == column:
            return True
    return False


def _tax_id(lines: list[_Line]) -> Found[str] | None:
    found: list[Found[str]] = []
    for index, line in enumerate(lines):
        hit = _label_hit(line, _TAX_ID_LABELS)
        if hit is None or _in_buyer_block(lines, index, hit[2].column):
            continue
        _, after, last = hit
        after = [w for w in after if w.text.strip(":")]
        words = _first_value_words(line, after, lines, last)
        checked = _checked_id(words)
        text = " ".join(w.text for w in words)
        match = _VAT_ID.search(text.upper())
        if checked is None and not match:
            continue
        if checked is not None:
            value = checked
        else:
            assert match is not None
            value = re.sub(r"[\s.]", "", match[0].strip())
        # A VAT number whose check digits hold is read right, and so is an EIN in its fixed
        # form; another form (a national number) may be, but nothing here can tell.
        trust = LABELLED if checked else LABELLED * 0.8
        found.append(
            Found(
                value=value,
                confidence=trust * _words_confidence(words),
                page=line.page,
                text=line.text,
                boxes=tuple(w.box for w in words if w.box != (0, 0, 0, 0)),
            )
        )
    if not found:
        return None
    distinct = {f.value for f in found}
    best = found[0]
    if len(distinct) > 1:
        return Found(best.value, best.confidence * AMBIGUOUS, best.page, best.text, best.boxes)
    return best


def _checked_id(words: Sequence[Word]) -> str | None:
    """A VAT number whose check digits hold, or a US EIN, in these words however they are
    spaced ("FR 11 123 456 782"): the shortest run of words from each start that is one."""
    tokens = [w.text.strip(".,;:()").upper() for w in words]
    for start in range(len(tokens)):
        joined = ""
        for token in tokens[start : start + 6]:
            joined += token
            if _EIN.fullmatch(joined):
                return joined
            checked = valid_vat(joined)
            if checked:
                return checked
    return None


def _iban(lines: list[_Line]) -> Found[str] | None:
    """The IBAN: one whose check digits hold, a labelled one first; one that has an IBAN's
    country and length but fails its check digits is a misread IBAN (kept, doubted); anything
    else of that shape (a contract number "CT2018120802") is no IBAN at all."""
    misread: Found[str] | None = None
    best: Found[str] | None = None
    for line in lines:
        labelled = "iban" in line.folded.split()
        for match in _IBAN.finditer(line.text.upper()):
            compact = re.sub(r"\s", "", match[0])
            if valid_iban(compact):
                found = Found(
                    value=compact,
                    confidence=line.confidence() * (LABELLED if labelled else LABEL_ABOVE),
                    page=line.page,
                    text=line.text,
                    boxes=line.boxes(),
                )
                if best is None or found.confidence > best.confidence:
                    best = found
            elif misread is None and iban_shaped(compact):
                misread = Found(
                    compact, line.confidence() * 0.3, line.page, line.text, line.boxes()
                )
    return best or misread


def iban_shaped(compact: str) -> bool:
    """An IBAN's country, length and form, the check digits aside: with check digits made
    right, would it be an IBAN?"""
    try:
        fixed = compact[:2] + stdnum_iban.calc_check_digits(compact) + compact[4:]
        stdnum_iban.validate(fixed)
    except Exception:  # noqa: BLE001 - stdnum's ValidationError family, or no such country
        return False
    return True


def _currency(lines: list[_Line]) -> Found[str] | None:
    votes: dict[str, list[float]] = {}
    ambiguous: set[str] = set()
    explicit: set[str] = set()  # written as its ISO code or an unambiguous symbol
    codes = _iso_codes()
    for line in lines:
        for word in line.words:
            token = word.text.strip(".,:;()")
            if token.upper() in codes and token.isupper():
                votes.setdefault(token.upper(), []).append(word.confidence)
                explicit.add(token.upper())
                continue
            for prefix, code in _DOLLAR_PREFIXES.items():
                if token.startswith(prefix):
                    votes.setdefault(code, []).append(word.confidence)
                    explicit.add(code)
                    break
            else:
                for symbol, code in _CURRENCY_SYMBOLS.items():
                    if symbol in token:
                        votes.setdefault(code, []).append(word.confidence)
                if "$" in token:
                    votes.setdefault("USD", []).append(word.confidence)
                    ambiguous.add("USD")  # "$" alone: US, Canadian, Australian…
    if not votes:
        return None
    code = max(votes, key=lambda c: (len(votes[c]), max(votes[c])))
    others = sum(len(v) for c, v in votes.items() if c != code)
    unsure = code in ambiguous and code not in explicit  # "$" alone, never "USD" beside it
    confidence = max(votes[code]) * (AMBIGUOUS if unsure else LABELLED)
    if others:
        confidence *= len(votes[code]) / (len(votes[code]) + others)
    return Found(value=code, confidence=confidence, page=1, text=code)


def _iso_codes() -> set[str]:
    from accounting.money import _MINOR_UNITS  # the one list of ISO 4217 codes

    return set(_MINOR_UNITS)


def _labelled_amount(
    lines: list[_Line], labels: Sequence[str], exclude: Sequence[str]
) -> Found[Decimal] | None:
    """The amount of the strongest label found (the labels are listed strongest first), on
    the last line that carries it (totals sit at the bottom; a 'Total' column heading above
    the lines has no amount and is passed over)."""
    best: Found[Decimal] | None = None
    best_rank = len(labels)
    for line in lines:
        excluded = _label_at(line, exclude) if exclude else None
        if excluded is not None:
            wanted = _label_at(line, labels)
            # "Subtotal" holds "total", "VAT No" holds "VAT": the longer, excluded label wins
            # (a tie, "VAT" read both ways, is settled by whether an amount follows).
            if wanted is None or len(excluded[0]) > len(wanted[0]):
                continue
        hit = _label_hit(line, labels)
        if hit is None:
            continue
        _, after, last = hit
        after = [w for w in after if w.text.strip(":")]
        # Its own stretch first ("Total 104.90"); else the next amount on the line ("MwSt 19%
        # | 42,71"), else under the label ("TOTAL TTC" over "104,90").
        amounts = _amounts_in(_first_value_words(line, after, lines, last))
        if not amounts and after:
            amounts = _amounts_in(after)[:1]
        if not amounts:
            amounts = _amounts_in(_under(line, lines, last))[:1]
        if not amounts:
            continue
        value, words = amounts[-1]
        rank = _rank(labels, hit[0])
        if best is not None and rank > best_rank:
            continue  # a weaker label ("Montant TVA" over a breakdown) than one found already
        best_rank = rank
        best = Found(
            value=value,
            confidence=LABELLED * _words_confidence(words),
            page=line.page,
            text=line.text,
            boxes=tuple(w.box for w in words if w.box != (0, 0, 0, 0)),
        )
    return best


def _rank(labels: Sequence[str], label: str) -> int:
    return labels.index(label) if label in labels else len(labels)


def _table_lines(lines: list[_Line]) -> list[FoundLine]:
    """Rows between a table heading (Description … Qty … Amount) and the first totals line."""
    found: list[FoundLine] = []
    in_table = False
    stops = _SUBTOTAL_LABELS + _TOTAL_LABELS + _TAX_LABELS
    for line in lines:
        folded = line.folded
        if not in_table:
            headings = sum(1 for h in _TABLE_HEADINGS if re.search(rf"\b{h}\b", folded))
            in_table = headings >= 2
            continue
        hit = _label_at(line, stops)
        if hit is not None and _amounts_in(hit[1]):
            break
        amounts = _amounts_in(list(line.words))
        if not amounts:
            description = line.text.strip()
            if found and description:  # a description running onto a second line
                last = found[-1]
                found[-1] = FoundLine(
                    description=f"{last.description} {description}",
                    amount=last.amount,
                    confidence=last.confidence,
                    page=last.page,
                    quantity=last.quantity,
                    unit_amount=last.unit_amount,
                    boxes=last.boxes,
                )
            continue
        values = [value for value, _ in amounts]
        quantity = unit = None
        amount = values[-1]
        taken = 1  # how many of the row's last numbers are its figures
        trust = 0.7  # an amount at the end of a row, nothing to check it against
        if len(values) >= 3 and abs(values[-3] * values[-2] - amount) <= Decimal("0.01"):
            quantity, unit, trust, taken = values[-3], values[-2], LABELLED, 3
        elif len(values) >= 2 and values[-2] == amount:
            quantity, unit, trust, taken = Decimal("1"), amount, 0.85, 2
        elif len(values) >= 3:
            trust = 0.5  # three figures that are not quantity × price = amount
        figures = amounts[-taken:]
        used = [w for _, words in figures for w in words]
        description_words = list(line.words[: line.words.index(figures[0][1][0])])
        description = " ".join(w.text for w in description_words).strip()
        if not description:
            continue
        found.append(
            FoundLine(
                description=description[:4000],
                amount=amount,
                confidence=trust * _words_confidence(description_words + used),
                page=line.page,
                quantity=quantity,
                unit_amount=unit,
                boxes=line.boxes(),
            )
        )
    return found


def _cross_check(result: Extraction) -> None:
    """Totals that add up confirm each other; totals that do not are a person's to read."""
    cent = Decimal("0.01")
    if result.currency is not None:
        cent = Decimal(1).scaleb(-minor_units(result.currency.value))
    total, tax, subtotal = result.total, result.tax, result.subtotal
    lines_sum = sum((line.amount for line in result.lines), Decimal("0"))
    # A deposit is printed as "-1,000.00" or as "1,000.00" under "Less amount paid": either
    # way it comes off.
    paid = abs(result.prepaid.value) if result.prepaid is not None else Decimal("0")
    rounded = result.rounding.value if result.rounding is not None else Decimal("0")
    if total is not None and subtotal is not None:
        expected = subtotal.value + (tax.value if tax else Decimal("0")) - paid + rounded
        if abs(expected - total.value) <= cent:
            result.total = _sure(total)
            result.subtotal = _sure(subtotal)
            if tax is not None:
                result.tax = _sure(tax)
            if result.prepaid is not None:
                result.prepaid = _sure(result.prepaid)
            if result.rounding is not None:
                result.rounding = _sure(result.rounding)
        else:
            result.notes.append(
                f"the subtotal {subtotal.value} and tax {tax.value if tax else 0} do not add up "
                f"to the total {total.value}"
            )
            result.total = _doubt(total)
    if tax is not None and tax.value and subtotal is None and not result.lines:
        # Nothing else on the document confirms the tax (no subtotal, no lines): a misread
        # tax would be booked silently as the net amount's complement.
        result.notes.append(f"the tax {tax.value} is not confirmed by a subtotal or lines")
        result.tax = _doubt(tax)
    if result.lines and (subtotal is not None or total is not None):
        target = (
            subtotal.value
            if subtotal is not None
            else (total.value + paid - tax.value if total is not None and tax is not None else None)
        )
        if target is not None and abs(lines_sum - target) > cent:
            result.notes.append(
                f"the lines read add up to {lines_sum}, not {target}: some lines were not read"
            )
            result.lines = []
        elif target is not None:
            # Every row adds up to the document's own subtotal: each row is read right.
            result.lines = [
                dataclasses.replace(line, confidence=max(line.confidence, 0.9))
                for line in result.lines
            ]


def _sure(found: Found[Decimal]) -> Found[Decimal]:
    # Two independent readings agreeing leave little room for a misread digit.
    return Found(found.value, max(found.confidence, 0.97), found.page, found.text, found.boxes)


def _doubt(found: Found[Decimal]) -> Found[Decimal]:
    return Found(found.value, min(found.confidence, 0.4), found.page, found.text, found.boxes)
