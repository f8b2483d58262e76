"""The chaos run's mix of bills: what each one is, decided up front from the seed.

Every feature gets an exact share of the bills (at least one when its rate is above zero), on
positions a seeded shuffle picks, so the same seed and size give the same mix and a small run
still exercises everything:

- plain: a known vendor (Northwind), below the auto-approval limit, paid in one payment;
- above_limit: Northwind above the limit, waiting for an approver;
- new_vendor: a vendor the ERP does not know: an approver, then a payee change (the document's
  bank details) that the finance team verifies and two controllers approve;
- two_part: Northwind, paid in two installments (the second instructed by a person);
- eur: Fabrikam GmbH in EUR, paid by wire at the rate locked when it was approved;
- returned: Northwind, whose first payment settles and then comes back (an ACH return), early
  (while the bill is still writing back) or late (after it reconciled: a follow-up run);
- credits: a Northwind vendor credit submitted on a bill's connection just before it (in the
  first half of the run), which that connection's next Northwind bills apply before paying.

Amounts differ by a cent per bill index, so remit's duplicate detection never fires.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from accounting import BillDraft
from connectors.base import RailKind
from workflows.models import Installment

NORTHWIND = ("Northwind Office Supply", "94-1234567")
NORTHWIND_ACH = "021000021/000123456789"
FABRIKAM = ("Fabrikam GmbH", "DE999999999")
FABRIKAM_IBAN = "DE02120300000000202051"
RETURN_CODES = ("R01", "R09", "R16")


class Kind(StrEnum):
    plain = "plain"
    above_limit = "above_limit"
    new_vendor = "new_vendor"
    two_part = "two_part"
    eur = "eur"
    returned = "returned"


@dataclass(frozen=True)
class MixRates:
    """The share of bills of each kind (the rest are plain), and of bills a credit precedes."""

    above_limit: float = 0.10
    new_vendor: float = 0.10
    two_part: float = 0.06
    eur: float = 0.08
    returned: float = 0.06
    credits: float = 0.04
    # A late return arrives this long after its payment settled (an early one after 1 s).
    late_return_after: timedelta = timedelta(seconds=60)
    early_return_after: timedelta = timedelta(seconds=1)


@dataclass(frozen=True)
class ReturnPlan:
    code: str
    after: timedelta
    late: bool


@dataclass(frozen=True)
class CreditPlan:
    number: str
    amount: Decimal
    draft: BillDraft


@dataclass
class PlannedBill:
    index: int
    kind: Kind
    draft: BillDraft
    vendor_name: str
    rail: RailKind | None
    installments: list[Installment] = field(default_factory=list)
    returns: ReturnPlan | None = None
    credit_before: CreditPlan | None = None

    @property
    def currency(self) -> str:
        return self.draft.currency


def _draft(
    number: str,
    amount: Decimal,
    *,
    vendor: tuple[str, str | None],
    bank_account: str | None,
    currency: str = "USD",
) -> BillDraft:
    name, tax_id = vendor
    return BillDraft.model_validate(
        {
            "document_number": number,
            "issue_date": date(2026, 11, 2),
            "due_date": date(2026, 12, 2),
            "currency": currency,
            "vendor": {"name": name, "tax_id": tax_id, "bank_account": bank_account},
            "lines": [
                {"description": "chaos", "amount": str(amount), "account": "Office Supplies"}
            ],
            "total": str(amount),
        }
    )


def _count(rate: float, bills: int) -> int:
    if rate <= 0 or bills <= 0:
        return 0
    return max(1, round(rate * bills))


def plan_mix(bills: int, run: str, rates: MixRates, *, seed: int) -> list[PlannedBill]:
    """The bills of a run, in submission order (bill i goes to platform i % 3)."""
    rng = random.Random(f"chaos-mix-{seed}")
    positions = list(range(bills))
    rng.shuffle(positions)
    kinds: dict[int, Kind] = {}
    for kind, rate in (
        (Kind.returned, rates.returned),
        (Kind.two_part, rates.two_part),
        (Kind.eur, rates.eur),
        (Kind.new_vendor, rates.new_vendor),
        (Kind.above_limit, rates.above_limit),
    ):
        for _ in range(_count(rate, bills)):
            if not positions:
                break
            kinds[positions.pop()] = kind
    planned: list[PlannedBill] = []
    returns = 0
    for index in range(bills):
        kind = kinds.get(index, Kind.plain)
        cents = Decimal(index) / 100
        number = f"CH-{run}-{index}"
        rail: RailKind | None = RailKind.ach
        installments: list[Installment] = []
        return_plan: ReturnPlan | None = None
        vendor_name = NORTHWIND[0]
        if kind == Kind.above_limit:
            draft = _draft(number, 1000 + cents, vendor=NORTHWIND, bank_account=NORTHWIND_ACH)
        elif kind == Kind.new_vendor:
            vendor_name = f"Chaos Vendor {run} {index}"
            draft = _draft(
                number, 200 + cents, vendor=(vendor_name, None), bank_account=NORTHWIND_ACH
            )
        elif kind == Kind.two_part:
            draft = _draft(number, 1000 + cents, vendor=NORTHWIND, bank_account=NORTHWIND_ACH)
            installments = [Installment(amount=Decimal("400.00"))]
        elif kind == Kind.eur:
            vendor_name = FABRIKAM[0]
            # EUR 150 is below the auto-approval limit; every third one is above it.
            base = Decimal(1500) if index % 3 == 0 else Decimal(150)
            draft = _draft(
                number, base + cents, vendor=FABRIKAM, bank_account=FABRIKAM_IBAN, currency="EUR"
            )
            rail = None  # the payee's own rail (wire): ACH carries USD only
        elif kind == Kind.returned:
            draft = _draft(number, 100 + cents, vendor=NORTHWIND, bank_account=NORTHWIND_ACH)
            late = returns % 2 == 0
            return_plan = ReturnPlan(
                code=RETURN_CODES[returns % len(RETURN_CODES)],
                after=rates.late_return_after if late else rates.early_return_after,
                late=late,
            )
            returns += 1
        else:
            draft = _draft(number, 100 + cents, vendor=NORTHWIND, bank_account=NORTHWIND_ACH)
        planned.append(
            PlannedBill(
                index=index,
                kind=kind,
                draft=draft,
                vendor_name=vendor_name,
                rail=rail,
                installments=installments,
                returns=return_plan,
            )
        )
    # Credits go before bills of the first half, so later Northwind bills are there to use them.
    first_half = list(range(max(1, bills // 2)))
    rng.shuffle(first_half)
    for n, index in enumerate(sorted(first_half[: min(_count(rates.credits, bills), bills)])):
        amount = Decimal(25) + Decimal(n) + Decimal(index) / 100
        credit_number = f"CR-{run}-{n}"
        planned[index].credit_before = CreditPlan(
            number=credit_number,
            amount=amount,
            draft=_draft(credit_number, amount, vendor=NORTHWIND, bank_account=None),
        )
    return planned
