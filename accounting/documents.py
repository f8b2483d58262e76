"""What capture produces from a document: a BillDraft, before it is matched to an ERP."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounting.model import Bill, TrackingKind, Vendor, check_document_totals
from accounting.money import Amount, CurrencyCode, PositiveAmount


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


class DraftLine(_Model):
    description: str | None = None
    quantity: Amount | None = None
    unit_amount: Amount | None = None
    amount: PositiveAmount
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
    total: PositiveAmount
    memo: str | None = None
    purchase_order: str | None = None
    source: DocumentRef | None = None

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
