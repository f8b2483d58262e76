"""ERP-side objects in one shape for every platform: Vendor, Account, Bill, BillPayment, ..."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounting.money import Amount, CurrencyCode, PositiveAmount


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AccountCategory(StrEnum):
    asset = "asset"
    liability = "liability"
    equity = "equity"
    income = "income"
    expense = "expense"


class AccountType(StrEnum):
    bank = "bank"
    accounts_receivable = "accounts_receivable"
    other_current_asset = "other_current_asset"
    fixed_asset = "fixed_asset"
    accounts_payable = "accounts_payable"
    credit_card = "credit_card"
    other_current_liability = "other_current_liability"
    long_term_liability = "long_term_liability"
    equity = "equity"
    income = "income"
    cost_of_goods_sold = "cost_of_goods_sold"
    expense = "expense"
    other_expense = "other_expense"


class Account(_Model):
    id: str
    name: str
    number: str | None = None
    category: AccountCategory
    account_type: AccountType
    currency: CurrencyCode | None = None
    active: bool = True


class TrackingKind(StrEnum):
    class_ = "class"
    department = "department"
    location = "location"


class TrackingCategory(_Model):
    """One value of a tracking dimension (QBO Class/Department, Xero option, NetSuite record)."""

    id: str
    kind: TrackingKind
    name: str
    parent_id: str | None = None
    active: bool = True


class TrackingRef(_Model):
    kind: TrackingKind
    id: str
    name: str | None = None


class Vendor(_Model):
    id: str | None = None
    name: str
    legal_name: str | None = None
    tax_id: str | None = None
    email: str | None = None
    currency: CurrencyCode | None = None
    default_expense_account_id: str | None = None
    active: bool = True
    updated_at: datetime | None = None


class BillStatus(StrEnum):
    """Where a bill stands in the ERP's books."""

    draft = "draft"
    open = "open"
    partially_paid = "partially_paid"
    paid = "paid"
    void = "void"


class BillLine(_Model):
    description: str | None = None
    amount: PositiveAmount
    quantity: Amount | None = None
    unit_amount: Amount | None = None
    account_id: str | None = None
    item_id: str | None = None
    customer_id: str | None = None
    tracking: list[TrackingRef] = Field(default_factory=list)


def check_document_totals(
    lines_total: Decimal, tax: Decimal, total: Decimal, issue: date | None, due: date | None
) -> None:
    """The checks every bill-like document must pass, with messages a person can act on."""
    if lines_total + tax != total:
        raise ValueError(
            f"line items sum to {lines_total} and tax is {tax}, which makes {lines_total + tax}, "
            f"but the total is {total}: correct the lines or the total"
        )
    if issue is not None and due is not None and due < issue:
        raise ValueError(f"due date {due} is before the issue date {issue}")


class Bill(_Model):
    """A vendor bill as the ERP holds it (or as remit will write it)."""

    id: str | None = None
    vendor_id: str
    vendor_name: str | None = None
    document_number: str | None = None
    issue_date: date
    due_date: date | None = None
    currency: CurrencyCode
    exchange_rate: Amount | None = None
    lines: list[BillLine] = Field(min_length=1)
    tax_amount: Amount = Decimal("0")
    total: PositiveAmount
    balance: Amount | None = None
    status: BillStatus = BillStatus.open
    memo: str | None = None
    reference: str | None = Field(
        default=None, description="remit's own stable key, used to find the bill again"
    )
    payment_ids: list[str] = Field(default_factory=list)
    attachment_ids: list[str] = Field(default_factory=list)
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _totals(self) -> Bill:
        check_document_totals(
            sum((line.amount for line in self.lines), Decimal("0")),
            self.tax_amount,
            self.total,
            self.issue_date,
            self.due_date,
        )
        return self


class BillPaymentLine(_Model):
    bill_id: str
    amount: PositiveAmount


class CreditApplication(_Model):
    credit_memo_id: str
    bill_id: str
    amount: PositiveAmount
    applied_on: date | None = None


class BillPayment(_Model):
    id: str | None = None
    vendor_id: str
    payment_date: date
    currency: CurrencyCode
    exchange_rate: Amount | None = None
    source_account_id: str
    total: PositiveAmount
    lines: list[BillPaymentLine] = Field(min_length=1)
    reference: str | None = None
    memo: str | None = None
    voided: bool = False
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _total_matches_lines(self) -> BillPayment:
        paid = sum((line.amount for line in self.lines), Decimal("0"))
        if paid != self.total:
            raise ValueError(f"payment lines sum to {paid} but the payment total is {self.total}")
        return self


class BillCreditMemo(_Model):
    id: str | None = None
    vendor_id: str
    document_number: str | None = None
    issue_date: date
    currency: CurrencyCode
    lines: list[BillLine] = Field(min_length=1)
    total: PositiveAmount
    remaining: Amount | None = None
    reference: str | None = None

    @model_validator(mode="after")
    def _totals(self) -> BillCreditMemo:
        check_document_totals(
            sum((line.amount for line in self.lines), Decimal("0")),
            Decimal("0"),
            self.total,
            None,
            None,
        )
        return self


class Attachment(_Model):
    id: str | None = None
    bill_id: str
    file_name: str
    content_type: str
    size: int
    sha256: str | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass next_cursor back to get the next, None means done."""

    items: list[T]
    next_cursor: str | None = None
