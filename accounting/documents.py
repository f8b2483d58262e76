"""What capture produces from a document: a BillDraft, before it is matched to an ERP."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from accounting.model import Bill, TrackingKind, Vendor, check_document_totals
from accounting.money import Amount, CurrencyCode, NonNegativeAmount, Quantity

VENDOR_NAME_DOUBT = "scan: the vendor name "
"""How a review reason about a vendor name OCR read begins: matching that finds the vendor
by its tax id settles it (the ERP's name is used), so the bill does not wait for it."""


class DocumentType(StrEnum):
    """What the document asks of accounts payable (from its UNTDID 1001 type code)."""

    invoice = "invoice"
    credit_note = "credit_note"
    corrective = "corrective"
    self_billed = "self_billed"
    debit_note = "debit_note"
    prepayment = "prepayment"


class LineKind(StrEnum):
    """Where a draft line comes from: an invoice line, or a document-level amount booked as one."""

    line = "line"
    allowance = "allowance"
    charge = "charge"
    prepaid = "prepaid"
    rounding = "rounding"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentRef(_Model):
    """The original document, kept content-addressed in remit's document store."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    media_type: str
    file_name: str
    size: int = Field(ge=0)


class VendorDetails(_Model):
    """The vendor as the document names it."""

    name: str = Field(min_length=1, max_length=200)
    trading_name: str | None = Field(
        default=None,
        max_length=200,
        description="the name the vendor trades under when it differs from its legal name "
        "(EN 16931 BT-28); matched as an alias",
    )
    tax_id: str | None = None
    email: str | None = None
    country: str | None = None
    address: str | None = None
    bank_account: str | None = Field(
        default=None, description="IBAN or account number from the document; sensitive"
    )


class InvoiceReference(_Model):
    """An earlier invoice this document corrects or credits (EN 16931 BG-3: BT-25, BT-26)."""

    number: str = Field(min_length=1, max_length=200)
    issue_date: date | None = None


class PayeeDetails(_Model):
    """Who is to be paid when it is not the seller (EN 16931 BG-10), e.g. a factor."""

    name: str = Field(min_length=1, max_length=200)
    tax_id: str | None = Field(default=None, description="the payee's identifier (BT-60)")
    legal_id: str | None = Field(default=None, description="legal registration id (BT-61)")
    bank_account: str | None = Field(
        default=None, description="IBAN or account number to pay (BT-84); sensitive"
    )


class TaxBreakdown(_Model):
    """One row of the document's VAT breakdown (EN 16931 BG-23)."""

    category: str | None = Field(
        default=None,
        description="UNCL 5305 VAT category (BT-118): S, Z, E, AE, K, G, O, ... "
        "(ZUGFeRD 1.0 BASIC may leave it out)",
    )
    rate: Quantity | None = Field(default=None, description="percent (BT-119)")
    taxable: Amount = Field(description="BT-116")
    tax: Amount = Field(description="BT-117")
    exemption_reason: str | None = Field(default=None, description="BT-120")
    exemption_code: str | None = Field(default=None, description="BT-121 (VATEX)")


class DraftLine(_Model):
    description: str | None = None
    quantity: Quantity | None = None
    unit_amount: Quantity | None = None
    amount: Amount = Field(description="any sign: discounts and returns are negative lines")
    kind: LineKind = LineKind.line
    tax_category: str | None = Field(default=None, description="UNCL 5305 (BT-151, BT-95, ...)")
    tax_rate: Quantity | None = Field(default=None, description="percent (BT-152, BT-96, ...)")
    unit: str | None = Field(default=None, description="UN/ECE Rec 20 unit code (BT-130)")
    account: str | None = Field(default=None, description="account name or number, as written")
    department: str | None = None
    class_: str | None = Field(default=None, alias="class")
    location: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BillDraft(_Model):
    """A captured bill: validated, not yet matched to a vendor or accounts."""

    document_number: str = Field(min_length=1, max_length=64)
    issue_date: date
    due_date: date | None = None
    currency: CurrencyCode
    vendor: VendorDetails
    lines: list[DraftLine] = Field(min_length=1)
    tax_amount: Amount = Decimal("0")
    total: NonNegativeAmount = Field(description="what is payable (EN 16931 BT-115)")
    memo: str | None = None
    purchase_order: str | None = None
    source: DocumentRef | None = None
    document_type: DocumentType = DocumentType.invoice
    type_code: str | None = Field(default=None, description="UNTDID 1001 code as written (BT-3)")
    corrects: list[InvoiceReference] = Field(default_factory=list)
    buyer_reference: str | None = Field(default=None, description="BT-10")
    payment_terms: str | None = Field(default=None, description="BT-20, as written")
    payee: PayeeDetails | None = None
    tax_breakdown: list[TaxBreakdown] = Field(default_factory=list)
    invoice_total: Amount | None = Field(default=None, description="with VAT (BT-112)")
    prepaid_amount: Amount | None = Field(default=None, description="paid already (BT-113)")
    rounding_amount: Amount | None = Field(default=None, description="BT-114")
    review_reasons: list[str] = Field(
        default_factory=list, description="why a person should look at this draft before it goes on"
    )

    @model_validator(mode="after")
    def _totals(self) -> BillDraft:
        if self.tax_amount < 0:
            raise ValueError("tax amount cannot be negative")
        check_document_totals(
            sum((line.amount for line in self.lines), Decimal("0")),
            self.tax_amount,
            self.total,
            self.issue_date,
            self.due_date,
        )
        return self


def draft_of_erp_bill(bill: Bill, *, vendor: Vendor | None = None) -> BillDraft:
    """A bill already in the ERP, described as a draft (for approval and display; its lines
    stay coded as they are in the ERP). Raises ValueError where it cannot be one: no lines,
    a line of zero or less, totals that do not add up."""
    lines = []
    for line in bill.lines:
        names = {ref.kind: ref.name or ref.id for ref in line.tracking}
        lines.append(
            DraftLine(
                description=line.description,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                amount=line.amount,
                account=line.account_id,
                department=names.get(TrackingKind.department),
                class_=names.get(TrackingKind.class_),
                location=names.get(TrackingKind.location),
            )
        )
    name = (vendor.name if vendor else None) or bill.vendor_name or f"vendor {bill.vendor_id}"
    return BillDraft(
        document_number=(bill.document_number or f"ERP bill {bill.id}")[:64],
        issue_date=bill.issue_date,
        due_date=bill.due_date,
        currency=bill.currency,
        vendor=VendorDetails(
            name=name[:200],
            tax_id=vendor.tax_id if vendor else None,
            email=vendor.email if vendor else None,
        ),
        lines=lines,
        tax_amount=bill.tax_amount,
        total=bill.total,
        memo=bill.memo,
    )
