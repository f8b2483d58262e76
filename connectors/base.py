"""The Connector and PaymentRail protocols, and the error taxonomy every platform maps into."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillPayment,
    BillStatus,
    CreditApplication,
    CurrencyCode,
    ExchangeRate,
    NewAccount,
    Page,
    PositiveAmount,
    TaxRate,
    TrackingCategory,
    Vendor,
    VendorBankAccount,
    VendorChanges,
)

# ---------------------------------------------------------------------------------------------
# Error taxonomy. Connectors raise only these; activities/errors.py maps them to Temporal.
# ---------------------------------------------------------------------------------------------


class ConnectorError(Exception):
    """A failure talking to an outside system, already classified."""

    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        status: int | None = None,
        code: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.status = status
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        where = f"{self.platform}: " if self.platform else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{where}{self.message}{code}"


class RateLimited(ConnectorError):
    """Throttled; retry after `retry_after` (the platform's Retry-After, or its documented wait)."""

    def __init__(self, message: str, *, retry_after: timedelta, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Unavailable(ConnectorError):
    """5xx, timeout before the request was sent, connection refused: retry with backoff."""


class OutcomeUnknown(ConnectorError):
    """The request may have been applied (response lost): look up before retrying."""


class AuthExpired(ConnectorError):
    """The access token was refused; refresh and retry."""


class ConnectionRevoked(ConnectorError):
    """The grant is gone (revoked, invalid_grant): a person must relink the connection."""

    retryable = False


class Rejected(ConnectorError):
    """The platform refused the request as invalid; retrying unchanged cannot help."""

    retryable = False


class Conflict(ConnectorError):
    """Stale object or concurrent change; re-read, then retry."""


class NotFound(ConnectorError):
    retryable = False


class BillHeader(BaseModel):
    """A bill without its lines: what the duplicate check compares, read in as few calls as
    the platform allows (NetSuite lists ids only, so whole bills would cost a GET each)."""

    model_config = ConfigDict(frozen=True)

    id: str
    document_number: str | None = None
    issue_date: date
    currency: CurrencyCode
    total: Decimal
    status: BillStatus
    reference: str | None = None

    @classmethod
    def of(cls, bill: Bill) -> BillHeader:
        return cls(
            id=bill.id or "",
            document_number=bill.document_number,
            issue_date=bill.issue_date,
            currency=bill.currency,
            total=bill.total,
            status=bill.status,
            reference=bill.reference,
        )


def parse_retry_after(value: str | None, default: timedelta) -> timedelta:
    """Retry-After as seconds or as an HTTP date; `default` when absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - datetime.now(UTC))


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------


class ConnectionConfig(BaseModel):
    """How to reach one customer's company on one platform (secrets live in `credentials`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    platform: str
    base_url: str
    company_id: str = Field(description="QBO realmId, Xero tenant id, NetSuite account id")
    credentials: dict[str, str] = Field(default_factory=dict, repr=False)
    settings: dict[str, str] = Field(
        default_factory=dict,
        description="platform settings such as the bank account to pay from",
    )


@dataclass
class Changes:
    """Objects changed since a cursor, and the cursor to use next time."""

    vendors: list[Vendor] = field(default_factory=list)
    bills: list[Bill] = field(default_factory=list)
    bill_payments: list[BillPayment] = field(default_factory=list)
    cursor: str = ""


@runtime_checkable
class Connector(Protocol):
    """One customer's company on one ERP. Every method is async and raises only ConnectorError.

    Writes take `reference` (remit's stable key for that write, stored on the object so
    `find_*_by_reference` can find it again) and `idempotency_key` (sent through the
    platform's own mechanism where it has one).
    """

    platform: str
    connection: ConnectionConfig

    # reads
    async def list_accounts(self) -> list[Account]: ...
    async def list_tracking_categories(self) -> list[TrackingCategory]: ...
    async def list_vendors(self, cursor: str | None = None) -> Page[Vendor]: ...
    async def get_vendor(self, vendor_id: str) -> Vendor: ...
    async def find_vendors(
        self, *, tax_id: str | None = None, name: str | None = None
    ) -> list[Vendor]: ...
    async def list_bills(self, cursor: str | None = None) -> Page[Bill]: ...
    async def get_bill(self, bill_id: str) -> Bill: ...
    async def find_bills(
        self, *, vendor_id: str, document_number: str | None = None
    ) -> list[Bill]: ...
    async def find_bill_headers(self, *, vendor_id: str) -> list[BillHeader]: ...
    async def find_bill_by_reference(self, reference: str, *, vendor_id: str) -> Bill | None: ...
    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]: ...
    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None: ...
    async def changes_since(self, cursor: str | None) -> Changes: ...
    async def get_vendor_bank_accounts(self, vendor_id: str) -> list[VendorBankAccount]:
        """The bank details the platform keeps on the vendor record ([] where it keeps none)."""
        ...

    async def list_credit_memos(self, *, vendor_id: str) -> list[BillCreditMemo]:
        """The vendor's credits, each with `remaining` (what is not applied yet)."""
        ...

    async def find_credit_memo_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillCreditMemo | None: ...
    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        """Every vendor credit applied to the bill and how much of it (in effect only).

        Credits a connector wrote to carry an early-payment discount are not listed here:
        they show as `discount` on the payment's line, so nothing is counted twice.
        """
        ...

    async def home_currency(self) -> CurrencyCode:
        """The company's home (base) currency, as the platform states it."""
        ...

    async def get_exchange_rate(self, currency: str, on: date) -> ExchangeRate | None:
        """The platform's own rate for `currency` into the home currency on `on` (the latest
        on or before it), or None where the platform keeps no rates of its own."""
        ...

    async def list_tax_rates(self) -> list[TaxRate]:
        """The tax codes a bill line may carry (purchase side), `id` as a line takes it."""
        ...

    async def tax_code_for(
        self, category: str, rate: Decimal | None, *, rates: Sequence[TaxRate] | None = None
    ) -> TaxRate | None:
        """The platform's tax code for a line of VAT `category` (UNCL 5305) at `rate` percent,
        or None when the company has none: the connection's `tax_codes` setting first, then
        `pick_tax_code` over `rates` (default: `list_tax_rates()`, read once per bill by a
        caller with several lines) with the platform's own knowledge of its codes.
        """
        ...

    # writes
    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor: ...
    async def update_vendor(
        self, vendor_id: str, changes: VendorChanges, *, idempotency_key: str
    ) -> Vendor:
        """The vendor with `changes` written (a sparse update: other fields stay); safe to
        repeat (it sets values; the platform's key where it has one)."""
        ...

    async def create_account(self, account: NewAccount, *, idempotency_key: str) -> Account:
        """The account added to the chart of accounts (the platform's key where it has one;
        the caller looks the account up by number or name before a retry)."""
        ...

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill: ...
    async def attach_document(
        self,
        bill_id: str,
        *,
        file_name: str,
        content_type: str,
        content: bytes,
        idempotency_key: str,
    ) -> Attachment: ...
    async def list_attachments(self, bill_id: str) -> list[Attachment]: ...
    async def create_bill_payment(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        """One payment to one vendor, settling one or several of its bills (one line each).

        A line's `discount` (an early-payment discount taken) is written the platform's way,
        against the connection's `discount_account_id` setting; `exchange_rate` (home units
        per unit of the payment's currency) is carried for a foreign-currency payment so the
        platform books the realized gain or loss against the bills' own rates.
        """
        ...

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo: ...
    async def apply_credit(
        self, application: CreditApplication, *, idempotency_key: str
    ) -> CreditApplication: ...
    async def void_bill_payment(self, payment_id: str, *, idempotency_key: str) -> BillPayment:
        """Take a bill payment out of effect the platform's own way (void, or delete where the
        platform has no void), so every bill it paid is open again by what it applied.

        Returns the payment with `voided=True`; a payment already voided is returned as it is,
        so a retry after a lost answer is safe.
        """
        ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# VAT categories to tax codes (the default every connector starts from)
# ---------------------------------------------------------------------------------------------

RATED_CATEGORIES = frozenset({"S", "L", "M", "B"})
"""Categories whose tax code is chosen by its rate; the others are chosen by what they mean
(their rate on the document is 0 or absent: zero rated, exempt, reverse charge, ...)."""

CATEGORY_NAMES = {
    "S": "standard rate",
    "Z": "zero rated",
    "E": "exempt",
    "AE": "reverse charge",
    "K": "intra-community acquisition",
    "G": "export outside the EU",
    "O": "outside the scope of VAT",
    "L": "Canary Islands IGIC",
    "M": "Ceuta and Melilla IPSI",
    "B": "Italian split payment",
}

CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "Z": ("zero",),
    "E": ("exempt",),
    "AE": ("reverse",),
    "K": ("acquisition", "intra-community", "intra community", "intra-eu", " ec ", " eu "),
    "G": ("import", "export", "outside eu", "non-eu"),
    "O": ("out of scope", "outside the scope", "outside scope", "no vat", "no tax", " none "),
    "L": ("igic",),
    "M": ("ipsi",),
    "B": ("split",),
}
"""Words a tax code's name or code uses for each category, in the languages of the platforms'
English-language editions (a connector adds its platform's own identifiers)."""

_SPECIAL = ("zero", "exempt", "reverse", "acquisition", "import", "export", "no vat", "scope")
"""Words that mark a code as something other than a plain rate (an S line must not take the
reverse-charge code because both say 25%)."""

TAX_CODES_SETTING = "tax_codes"


def vat_key(category: str, rate: Decimal | None) -> str:
    """How a category and rate are named in the `tax_codes` setting: "S:19", "S:5.5", "AE"."""
    if rate is None or (category not in RATED_CATEGORIES and rate == 0):
        return category
    return f"{category}:{_percent(rate)}"


def describe_vat(category: str, rate: Decimal | None) -> str:
    """ "VAT S 19%", "VAT AE (reverse charge)": for messages a person reads."""
    if category in RATED_CATEGORIES and rate is not None:
        return f"VAT {category} {_percent(rate)}%"
    return f"VAT {category} ({CATEGORY_NAMES.get(category, 'unknown category')})"


def _percent(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def tax_code_overrides(connection: ConnectionConfig) -> dict[str, str]:
    """The connection's `tax_codes` setting: a JSON object of vat_key -> the platform's tax
    code id, e.g. {"S:19": "7", "AE": "12"}. Raises Rejected saying what is wrong with it."""
    raw = connection.settings.get(TAX_CODES_SETTING)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise Rejected(
            f"connection {connection.id}: the {TAX_CODES_SETTING} setting is not JSON ({exc}); "
            'write it as {"S:19": "<tax code id>", "AE": "<tax code id>"}',
            platform=connection.platform,
        ) from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in parsed.items()
    ):
        raise Rejected(
            f"connection {connection.id}: the {TAX_CODES_SETTING} setting must map keys such as "
            '"S:19" or "AE" to tax code ids (strings)',
            platform=connection.platform,
        )
    return {_setting_key(key): value for key, value in parsed.items()}


def _setting_key(key: str) -> str:
    """A key as vat_key spells it, however the person wrote the rate ("s:19.0" is "S:19")."""
    category, _, percent = key.strip().upper().partition(":")
    try:
        return vat_key(category.strip(), Decimal(percent.strip())) if percent else category
    except ArithmeticError:
        return key.strip().upper()  # not a number: kept, and so never matched


def pick_tax_code(
    rates: Sequence[TaxRate],
    category: str,
    rate: Decimal | None,
    *,
    overrides: Mapping[str, str] | None = None,
    words: Mapping[str, tuple[str, ...]] | None = None,
) -> TaxRate | None:
    """The tax code for a line of `category` at `rate` percent among the company's `rates`.

    The connection's override for "S:19" (or for the whole category, "AE") wins, even for a
    code not listed (a person named it). Otherwise: a rated category (S, L, M, B) takes an
    active code of exactly that rate that is not a zero-rated, exempt, reverse-charge,
    acquisition or import code; the other categories take a code whose name or code says
    what they mean (CATEGORY_WORDS, with the platform's own `words` first) and whose rate is
    0 where one is stated, except reverse charge and acquisitions, whose codes may state the
    rate the buyer self-assesses. None: the company has no such code.
    """
    category = category.strip().upper()
    by_id = {r.id: r for r in rates}
    for key in (vat_key(category, rate), category):
        chosen = (overrides or {}).get(key)
        if chosen is not None:
            return by_id.get(chosen) or TaxRate(id=chosen, name=f"{key} (connection setting)")
    active = [r for r in rates if r.active]

    def text(r: TaxRate) -> str:
        return f" {r.name} {r.code or ''} ".casefold()

    if category in RATED_CATEGORIES:
        if rate is None:
            return None
        wanted = CATEGORY_WORDS.get(category, ()) if category != "S" else ()
        special = _SPECIAL + tuple(
            w.casefold()
            for other, listed in (words or {}).items()
            if other not in RATED_CATEGORIES
            for w in listed
        )
        same = [
            r
            for r in active
            if r.rate_percent is not None
            and r.rate_percent == rate
            and not any(w in text(r) for w in special)
        ]
        if wanted:
            # IGIC, IPSI and split payment are separate taxes: only a code that says so.
            same = [r for r in same if any(w in text(r) for w in wanted)]
        return same[0] if same else None
    lists = [tuple((words or {}).get(category, ())), CATEGORY_WORDS.get(category, ())]
    for vocabulary in lists:
        for r in active:
            if not any(w.casefold() in text(r) for w in vocabulary):
                continue
            if category in ("AE", "K") or r.rate_percent in (None, Decimal("0")):
                return r
    return None


async def all_vendors(erp: Connector, *, active_only: bool = False) -> list[Vendor]:
    """Every vendor of the company, following the platform's pages to the end."""
    vendors: list[Vendor] = []
    cursor: str | None = None
    while True:
        page = await erp.list_vendors(cursor)
        vendors.extend(v for v in page.items if v.active or not active_only)
        cursor = page.next_cursor
        if cursor is None:
            return vendors


# ---------------------------------------------------------------------------------------------
# Payment rails
# ---------------------------------------------------------------------------------------------


class RailKind(StrEnum):
    ach = "ach"
    wire = "wire"
    card = "card"
    check = "check"


class RailPaymentStatus(StrEnum):
    pending = "pending"
    settled = "settled"
    returned = "returned"
    failed = "failed"


class Payee(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    account_number: str | None = Field(default=None, repr=False)
    routing_number: str | None = Field(default=None, repr=False)
    iban: str | None = Field(default=None, repr=False)


class PaymentInstruction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rail: RailKind
    amount: PositiveAmount
    currency: CurrencyCode
    payee: Payee
    execution_date: date
    reference: str = Field(description="text the payee sees, e.g. the invoice number")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="echoed back in notifications (workflow id, ...)"
    )


class RailPayment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    rail: RailKind
    status: RailPaymentStatus
    amount: PositiveAmount
    currency: CurrencyCode
    idempotency_key: str
    return_code: str | None = None
    return_reason: str | None = None
    failure_reason: str | None = None
    created_at: datetime
    settled_at: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


@runtime_checkable
class PaymentRail(Protocol):
    """A bank's payment rails. `initiate` with the same idempotency key returns the same payment."""

    async def initiate(
        self, instruction: PaymentInstruction, *, idempotency_key: str
    ) -> RailPayment: ...
    async def get_payment(self, payment_id: str) -> RailPayment: ...
    async def find_by_idempotency_key(self, idempotency_key: str) -> RailPayment | None: ...
    async def aclose(self) -> None: ...
