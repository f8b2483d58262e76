"""ERP-side objects in one shape for every platform: Vendor, Account, Bill, BillPayment, ..."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounting.money import Amount, CurrencyCode, NonNegativeAmount, PositiveAmount, Quantity


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


ACCOUNT_CATEGORY: dict[AccountType, AccountCategory] = {
    AccountType.bank: AccountCategory.asset,
    AccountType.accounts_receivable: AccountCategory.asset,
    AccountType.other_current_asset: AccountCategory.asset,
    AccountType.fixed_asset: AccountCategory.asset,
    AccountType.accounts_payable: AccountCategory.liability,
    AccountType.credit_card: AccountCategory.liability,
    AccountType.other_current_liability: AccountCategory.liability,
    AccountType.long_term_liability: AccountCategory.liability,
    AccountType.equity: AccountCategory.equity,
    AccountType.income: AccountCategory.income,
    AccountType.cost_of_goods_sold: AccountCategory.expense,
    AccountType.expense: AccountCategory.expense,
    AccountType.other_expense: AccountCategory.expense,
}
"""The category each account type belongs to (where a platform does not say it)."""

CREATABLE_ACCOUNT_TYPES = frozenset(
    {
        AccountType.other_current_asset,
        AccountType.fixed_asset,
        AccountType.other_current_liability,
        AccountType.long_term_liability,
        AccountType.equity,
        AccountType.income,
        AccountType.cost_of_goods_sold,
        AccountType.expense,
        AccountType.other_expense,
    }
)
"""Account types remit adds to a chart of accounts. Not bank or card accounts (the platforms
want the bank's details and feeds with them) nor receivable and payable control accounts
(the platforms keep those themselves)."""


class NewAccount(_Model):
    """An account to add to the ERP's chart of accounts (a write around bills, from the API)."""

    name: str = Field(min_length=1, max_length=100)
    number: str | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="the account number or code (Xero requires one: its account code)",
    )
    account_type: AccountType
    description: str | None = Field(default=None, max_length=400)
    currency: CurrencyCode | None = Field(
        default=None, description="where the platform keeps a currency per account"
    )

    @model_validator(mode="after")
    def _creatable(self) -> NewAccount:
        if self.account_type not in CREATABLE_ACCOUNT_TYPES:
            allowed = ", ".join(sorted(t.value for t in CREATABLE_ACCOUNT_TYPES))
            raise ValueError(
                f"remit does not create {self.account_type.value} accounts (create them in the "
                f"ERP, with their bank details or as the platform sets them up); one of: {allowed}"
            )
        if self.name != self.name.strip() or any(c in self.name for c in ':"'):
            # QuickBooks refuses colons (its sub-account separator) and double quotes in names.
            raise ValueError("name must not have colons, double quotes or edge spaces")
        return self


def account_in_chart(
    accounts: Iterable[Account], wanted: NewAccount
) -> tuple[Account | None, str | None]:
    """Where `wanted` stands in a chart of accounts: (the account that is it, None) when one
    has its number (or its name, where it gives no number) and category; (None, why) when an
    account with its number or name is a different one; (None, None) when it is not there."""
    name = wanted.name.casefold()
    number = wanted.number.casefold() if wanted.number else None
    for account in accounts:
        same_number = number is not None and (account.number or "").casefold() == number
        same_name = account.name.casefold() == name
        if not (same_number or same_name):
            continue
        if (
            same_name
            and (number is None or same_number)
            and account.category == ACCOUNT_CATEGORY[wanted.account_type]
        ):
            return account, None
        what = f"number {account.number}" if same_number else f"name {account.name!r}"
        return None, (
            f"the chart of accounts already has an account with the {what}: {account.name!r} "
            f"(id {account.id}, {account.account_type.value}); use it, or choose another "
            f"{'number' if same_number else 'name'}"
        )
    return None, None


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


class VendorChanges(_Model):
    """What to change on a vendor in the ERP (unset fields stay as they are)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    legal_name: str | None = Field(default=None, max_length=200)
    tax_id: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=200)
    active: bool | None = None

    def given(self) -> set[str]:
        return {name for name, value in self.model_dump().items() if value is not None}


class BillStatus(StrEnum):
    """Where a bill stands in the ERP's books."""

    draft = "draft"
    open = "open"
    partially_paid = "partially_paid"
    paid = "paid"
    void = "void"


class BillLine(_Model):
    description: str | None = None
    amount: Amount = Field(description="any sign: a discount or a credit on a bill is negative")
    quantity: Quantity | None = None
    unit_amount: Quantity | None = None
    account_id: str | None = None
    item_id: str | None = None
    customer_id: str | None = None
    tracking: list[TrackingRef] = Field(default_factory=list)
    tax_code_id: str | None = Field(
        default=None, description="the platform's tax code on the line (None: none written)"
    )


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


class PaymentTerms(_Model):
    """When a bill falls due and what paying early earns: "2/10 net 30" is 2 % off if paid
    within 10 days of the bill date, the full amount due in 30."""

    name: str | None = Field(default=None, description="the terms' name in the ERP, if any")
    net_days: int = Field(ge=0, le=999)
    discount_percent: Amount = Decimal("0")
    discount_days: int = Field(default=0, ge=0, le=999)

    @model_validator(mode="after")
    def _sensible(self) -> PaymentTerms:
        if not Decimal("0") <= self.discount_percent < Decimal("100"):
            raise ValueError(f"discount percent {self.discount_percent} must be from 0 to 100")
        if self.discount_percent and self.discount_days > self.net_days:
            raise ValueError(
                f"the discount window ({self.discount_days} days) ends after the bill is due "
                f"({self.net_days} days)"
            )
        return self

    def label(self) -> str:
        if self.discount_percent:
            return f"{self.discount_percent.normalize():f}/{self.discount_days} net {self.net_days}"
        return f"net {self.net_days}"


class Bill(_Model):
    """A vendor bill as the ERP holds it (or as remit will write it)."""

    id: str | None = None
    vendor_id: str
    vendor_name: str | None = None
    document_number: str | None = None
    issue_date: date
    due_date: date | None = None
    currency: CurrencyCode
    exchange_rate: Amount | None = Field(
        default=None, description="home-currency units per unit of `currency` (foreign bills)"
    )
    terms: PaymentTerms | None = Field(
        default=None, description="the bill's payment terms where the platform keeps them"
    )
    lines: list[BillLine] = Field(min_length=1)
    tax_amount: Amount = Decimal("0")
    total: NonNegativeAmount = Field(description="zero for a bill its prepayments settle")
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
    """What one payment settles of one bill: `amount` in cash, plus an early-payment discount.

    The bill's balance falls by `amount + discount`. Each connector writes the discount the way
    its platform records one (a vendor credit to the discount account applied in the payment,
    a supplier credit note allocated to the bill, the apply line's `disc`), and reads it back
    here, so `discount` on a listed payment is what the books show as taken.
    """

    bill_id: str
    amount: PositiveAmount
    discount: Amount = Decimal("0")

    @model_validator(mode="after")
    def _discount_not_negative(self) -> BillPaymentLine:
        if self.discount < 0:
            raise ValueError(f"discount {self.discount} cannot be negative")
        return self


class CreditApplication(_Model):
    """Part (or all) of a vendor credit applied to one bill of the same vendor."""

    id: str | None = Field(
        default=None,
        description="the platform's id of the application where it has one (QBO BillPayment, "
        "Xero Allocation); None where the application is a line of the credit (NetSuite)",
    )
    credit_memo_id: str
    bill_id: str
    amount: PositiveAmount
    applied_on: date | None = None


class BillPayment(_Model):
    """A payment to one vendor, settling one or more of its bills (a line each).

    A voided payment may come back as the platform keeps it: zeroed, with no lines.
    """

    id: str | None = None
    vendor_id: str
    payment_date: date
    currency: CurrencyCode
    exchange_rate: Amount | None = None
    source_account_id: str
    total: Amount
    lines: list[BillPaymentLine] = Field(default_factory=list)
    reference: str | None = None
    memo: str | None = None
    voided: bool = False
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _total_matches_lines(self) -> BillPayment:
        if self.voided and not self.lines:
            if self.total < 0:
                raise ValueError("a voided payment's total cannot be negative")
            return self
        if not self.lines:
            raise ValueError("a payment needs at least one line (the bill it pays)")
        if self.total <= 0:
            raise ValueError("amount must be greater than zero")
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


class VendorBankAccount(_Model):
    """Bank details an ERP keeps on a vendor record: what remit's payee master may import.

    Sensitive: numbers never reach a log line (repr) and are shown masked to people.
    """

    account_name: str | None = None
    account_number: str | None = Field(default=None, repr=False)
    routing_number: str | None = Field(
        default=None, repr=False, description="ABA routing number, BSB, sort code or bank code"
    )
    iban: str | None = Field(default=None, repr=False)
    bic: str | None = None
    bank_name: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2")
    primary: bool = True
    platform_ref: str | None = Field(
        default=None,
        description="where the platform keeps it (a field name or a record id), for the audit",
    )


class ExchangeRate(_Model):
    """A rate as remit uses it everywhere: home-currency units for one unit of `currency`.

    (QuickBooks' and NetSuite's convention; connectors whose platform states it the other way
    round, as Xero does, convert at the edge.)
    """

    currency: CurrencyCode
    home_currency: CurrencyCode
    rate: PositiveAmount
    as_of: date
    source: str = Field(description="who quoted it: the platform's name or the provider's")


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


# ---------------------------------------------------------------------------------------------
# The rest of the books, as the mirror keeps them (read through sync; see connectors.mirror)
# ---------------------------------------------------------------------------------------------


class ItemType(StrEnum):
    inventory = "inventory"
    non_inventory = "non_inventory"
    service = "service"
    other = "other"


class Item(_Model):
    """A product or service the company buys or sells (QBO Item, Xero Item, NetSuite item)."""

    id: str
    name: str
    sku: str | None = None
    description: str | None = None
    type: ItemType = ItemType.other
    expense_account_id: str | None = None
    income_account_id: str | None = None
    purchase_cost: Amount | None = None
    active: bool = True
    updated_at: datetime | None = None


class Customer(_Model):
    id: str
    name: str
    legal_name: str | None = None
    tax_id: str | None = None
    email: str | None = None
    currency: CurrencyCode | None = None
    active: bool = True
    updated_at: datetime | None = None


class TaxRate(_Model):
    """A tax code or rate the platform offers for lines (QBO TaxCode/TaxRate, Xero TaxRate,
    NetSuite salestaxitem / taxgroup)."""

    id: str
    name: str
    code: str | None = None
    rate_percent: Amount | None = Field(
        default=None, description="the effective rate in percent, where the platform states one"
    )
    active: bool = True
    updated_at: datetime | None = None


class Currency(_Model):
    """A currency the company is set up to use; `id` is the platform's (NetSuite's is a number;
    QBO's and Xero's are the code)."""

    id: str
    code: CurrencyCode
    name: str | None = None
    home: bool = False
    active: bool = True
    updated_at: datetime | None = None


class Subsidiary(_Model):
    """A legal entity inside one account (NetSuite OneWorld); other platforms have none."""

    id: str
    name: str
    parent_id: str | None = None
    currency: CurrencyCode | None = None
    country: str | None = None
    active: bool = True
    updated_at: datetime | None = None
