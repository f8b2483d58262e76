"""A person's corrections to what capture read, applied to the draft and validated again."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from accounting.documents import BillDraft
from accounting.money import Amount, CurrencyCode


class LineCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=4000)
    amount: Amount
    account: str | None = Field(default=None, description="account name or number, as written")


class DraftCorrections(BaseModel):
    """The fields a person corrects; the ones left out stay as capture read them. `lines`,
    when given, replace the draft's lines whole (a scan's lines are often one summary line)."""

    model_config = ConfigDict(extra="forbid")

    document_number: str | None = Field(default=None, min_length=1, max_length=64)
    issue_date: date | None = None
    due_date: date | None = None
    currency: CurrencyCode | None = None
    vendor_name: str | None = Field(default=None, min_length=1, max_length=200)
    vendor_tax_id: str | None = Field(default=None, max_length=64)
    tax_amount: Amount | None = None
    total: Amount | None = None
    lines: list[LineCorrection] | None = Field(default=None, min_length=1)

    def given(self) -> set[str]:
        return set(self.model_fields_set)


def apply_corrections(draft: BillDraft, corrections: DraftCorrections) -> BillDraft:
    """The draft with the corrections in; pydantic's ValidationError when the result does not
    hold together (lines and tax that do not make the total, a due date before the issue)."""
    data = draft.model_dump(mode="json", by_alias=True)
    given = corrections.given()
    for name in ("document_number", "issue_date", "due_date", "currency", "tax_amount", "total"):
        if name in given:
            data[name] = getattr(corrections, name)
    if "vendor_name" in given and corrections.vendor_name:
        data["vendor"]["name"] = corrections.vendor_name
    if "vendor_tax_id" in given:
        data["vendor"]["tax_id"] = corrections.vendor_tax_id or None
    if corrections.lines is not None:
        data["lines"] = [
            {
                "description": line.description,
                "amount": line.amount,
                "account": line.account or None,
            }
            for line in corrections.lines
        ]
    data["review_reasons"] = []
    return BillDraft.model_validate(data)
