"""A scanned or plain PDF bill as a BillDraft, with the report of how sure each field is.

The draft is what the workflow runs on; the report (each field's value, confidence, page and
place on the page) is what the inbox shows a person next to the page image, and is kept with
the document rather than in the workflow's history. A field below REVIEW_THRESHOLD, a field
that is missing, or totals that do not add up put a reason on the draft: the workflow then
waits in needs_review until a person has looked (and corrected). A field that is missing gets
a placeholder the reason names — never a value that could pass for a reading.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from accounting.documents import BillDraft, DocumentRef, DraftLine, LineKind, VendorDetails
from accounting.money import quantize
from accounting.scan.fields import Extraction, Found, extract
from accounting.scan.ocr import Page, read_document

REVIEW_THRESHOLD = 0.80
"""Below this a field's reading goes to a person. A clean text layer reads at 0.95 and a
clean 300 dpi scan at 0.85–0.92 (tesseract's word confidences); a value that passed a check
(totals that add up, IBAN or VAT check digits) is above it, one that failed is well below."""

PLACEHOLDER_CURRENCY = "EUR"
DIFFERENCE_LINE = "Difference between the total read and its lines and tax (to review)"


class ScannedField(BaseModel):
    """One field as read: its value as text, how sure, where (page; boxes in page pixels)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: str | None = Field(description="None: not found on the document")
    confidence: float = Field(ge=0, le=1)
    page: int | None = None
    boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)
    read_from: str | None = Field(default=None, description="the line the value was read on")
    needs_review: bool


class ScannedPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    width: int
    height: int
    from_text_layer: bool


class ScanReport(BaseModel):
    """How a PDF or image was read: per page, per field, and the notes that put it to review."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = REVIEW_THRESHOLD
    pages: list[ScannedPage]
    fields: list[ScannedField]
    lines_read: int = Field(description="table rows read as lines (0: one line of the subtotal)")
    notes: list[str] = Field(default_factory=list)

    def field(self, name: str) -> ScannedField | None:
        return next((f for f in self.fields if f.name == name), None)


_LABELS = {
    "prepaid": "amount paid already",
    "rounding": "rounding",
    "document_number": "document number",
    "issue_date": "issue date",
    "due_date": "due date",
    "vendor_name": "vendor name",
    "tax_id": "vendor tax id",
    "iban": "IBAN",
    "currency": "currency",
    "subtotal": "subtotal",
    "tax": "tax",
    "total": "total",
}
_REQUIRED = ("document_number", "issue_date", "vendor_name", "currency", "total")


def scan_document(content: bytes, *, source: DocumentRef) -> tuple[BillDraft, ScanReport]:
    """OCR (or the text layer), the fields, and the draft with its review reasons."""
    pages = read_document(content)
    return draft_from_extraction(extract(pages), pages, source=source)


def draft_from_extraction(
    found: Extraction, pages: list[Page], *, source: DocumentRef
) -> tuple[BillDraft, ScanReport]:
    reasons: list[str] = []
    fields: list[ScannedField] = []
    exact = {p.number for p in pages if p.from_text_layer}

    def text_layer(page: int) -> bool:
        return page in exact

    for name, label in _LABELS.items():
        value: Found[object] | None = getattr(found, name)
        low = value is None or value.confidence < REVIEW_THRESHOLD
        if name == "due_date" and value is None:
            low = False  # many bills state terms, not a date; the vendor's terms apply
        if name == "tax" and value is None:
            low = (
                found.subtotal is not None
                and found.total is not None
                and (found.subtotal.value != found.total.value)
            )
        if name in ("subtotal", "iban", "tax_id", "prepaid", "rounding") and value is None:
            low = False
        ocr_name = name == "vendor_name" and value is not None and not text_layer(value.page)
        if (
            name == "vendor_name"
            and not ocr_name
            and found.tax_id is not None
            and (found.tax_id.confidence >= REVIEW_THRESHOLD)
        ):
            low = value is None  # the tax id finds the vendor; the name is for a person
        fields.append(
            ScannedField(
                name=name,
                value=None if value is None else str(value.value),
                confidence=round(value.confidence, 3) if value else 0.0,
                page=value.page if value else None,
                boxes=list(value.boxes) if value else [],
                read_from=value.text[:200] if value else None,
                needs_review=low,
            )
        )
        if ocr_name and value is not None:
            # OCR drops and swaps diacritics ("Elnät" read "Elnat") with high confidence: a
            # name read from an image is confirmed by the vendor master (matching by tax id)
            # or by a person, never taken as read for a new vendor.
            fields[-1] = fields[-1].model_copy(update={"needs_review": True})
            reasons.append(
                f"the vendor name {value.value} was read by OCR ({value.confidence:.0%}): "
                "confirmed when matching finds the vendor by its tax id, else by a person"
            )
            continue
        if value is None and (name in _REQUIRED or low):
            reasons.append(f"the {label} was not found on the document")
        elif low and value is not None:
            reasons.append(
                f"the {label} {value.value} was read with {value.confidence:.0%} confidence "
                f"(below {REVIEW_THRESHOLD:.0%})"
            )
    reasons.extend(found.notes)
    currency = found.currency.value if found.currency else PLACEHOLDER_CURRENCY
    tax = found.tax.value if found.tax else Decimal("0")
    total = found.total.value if found.total else Decimal("0")
    lines = _draft_lines(found, currency, total, tax, reasons)
    if found.prepaid is not None and found.prepaid.value:
        # What was paid already comes off as a line of its own (the draft's lines and tax
        # make what is due), booked like any prepayment (LineKind.prepaid).
        lines.append(
            DraftLine(
                description="Paid already",
                amount=-abs(quantize(found.prepaid.value, currency)),
                kind=LineKind.prepaid,
            )
        )
    if found.rounding is not None and found.rounding.value:
        lines.append(
            DraftLine(
                description="Rounding",
                amount=quantize(found.rounding.value, currency),
                kind=LineKind.rounding,
            )
        )
    line_sum = sum((line.amount for line in lines), Decimal("0"))
    if found.total is not None and quantize(line_sum + tax, currency) != quantize(total, currency):
        # The document asks for its total; what was read of its lines and tax makes another
        # amount. The difference is a line of its own, named for what it is, for a person to
        # resolve (a line OCR missed, a misread figure) — never folded into tax or a line.
        difference = quantize(total - line_sum - tax, currency)
        reasons.append(
            f"the lines ({line_sum}) and tax ({tax}) do not add up to the total ({total})"
        )
        lines.append(DraftLine(description=DIFFERENCE_LINE, amount=difference))
    issue = found.issue_date.value if found.issue_date else None
    due = found.due_date.value if found.due_date else None
    if issue is not None and due is not None and due < issue:
        reasons.append(f"the due date {due} is before the issue date {issue}")
        due = None
    iban = found.iban
    bank_account = iban.value if iban is not None and iban.confidence >= REVIEW_THRESHOLD else None
    report = ScanReport(
        pages=[
            ScannedPage(
                number=p.number, width=p.width, height=p.height, from_text_layer=p.from_text_layer
            )
            for p in pages
        ],
        fields=fields,
        lines_read=len(found.lines),
        notes=list(found.notes),
    )
    draft = BillDraft(
        document_number=(
            found.document_number.value if found.document_number else f"UNREAD-{source.sha256[:8]}"
        ),
        issue_date=issue or _placeholder_date(),
        due_date=due,
        currency=currency,
        vendor=VendorDetails(
            name=(found.vendor_name.value[:200] if found.vendor_name else "unread vendor"),
            tax_id=found.tax_id.value if found.tax_id else None,
            bank_account=bank_account,
        ),
        lines=lines,
        tax_amount=tax,
        total=total,
        source=source,
        review_reasons=[f"scan: {reason}" for reason in dict.fromkeys(reasons)],
    )
    return draft, report


def _placeholder_date() -> date:
    # The draft needs a date; a missing one is named in the review reasons, and this one is
    # far enough from any real date that nobody takes it for a reading.
    return date(2000, 1, 1)


def _draft_lines(
    found: Extraction, currency: str, total: Decimal, tax: Decimal, reasons: list[str]
) -> list[DraftLine]:
    if found.lines:
        low = [
            n for n, line in enumerate(found.lines, start=1) if line.confidence < REVIEW_THRESHOLD
        ]
        if low:
            reasons.append(
                "line(s) "
                + ", ".join(str(n) for n in low)
                + f" read with less than {REVIEW_THRESHOLD:.0%} confidence"
            )
        return [
            DraftLine(
                description=line.description,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                amount=quantize(line.amount, currency),
            )
            for line in found.lines
        ]
    paid = abs(found.prepaid.value) if found.prepaid is not None else Decimal("0")
    rounded = found.rounding.value if found.rounding is not None else Decimal("0")
    net = found.subtotal.value if found.subtotal else total + paid - rounded - tax
    return [_summary_line(quantize(net, currency), "as totalled on the document")]


def _summary_line(amount: Decimal, why: str) -> DraftLine:
    return DraftLine(description=f"Bill total ({why})", amount=amount)


class CaptureRecord(BaseModel):
    """What capture read from one document, kept beside it: the draft as read and, for a PDF
    or an image read by OCR, how sure it was of each field. Corrections start from it."""

    model_config = ConfigDict(extra="forbid")

    draft: BillDraft
    scan: ScanReport | None = None
