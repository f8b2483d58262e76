"""What the chaos bench reads of a bill's state (workflows.models.BillState), leniently.

Untyped on purpose: a worker restarted on newer code may hold fields this process does not
know (and the store's projection is whatever the worker wrote); the bench needs only a few.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from workflows.models import LifecycleStatus

RETURNED = "returned"


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PaymentView(_View):
    attempt: int = 0
    idempotency_key: str | None = None
    rail_payment_id: str | None = None
    status: str | None = None
    amount: Decimal | None = None
    discount: Decimal = Decimal("0")
    erp_payment_id: str | None = None
    erp_voided: bool = False

    @property
    def returned(self) -> bool:
        return self.status == RETURNED

    @property
    def in_effect(self) -> bool:
        """Recorded in the ERP and not taken back out of effect."""
        return bool(self.erp_payment_id) and not self.erp_voided


class CreditView(_View):
    credit_id: str
    erp_credit_id: str
    amount: Decimal


class InstallmentView(_View):
    amount: Decimal | None = None
    done: bool = False
    instructed_by: str | None = None


class PayeeView(_View):
    status: str | None = None
    change_id: str | None = None
    change_status: str | None = None

    @property
    def payable(self) -> bool:
        return self.status == "verified"


class PlanView(_View):
    auto_approved: bool = False
    payers: list[str] = []


class RemitView(_View):
    """The part of a bill's state the audit and the finance team look at."""

    workflow_id: str | None = None
    status: LifecycleStatus
    currency: str = "USD"
    total: Decimal
    amount_due: Decimal
    erp_bill_id: str | None = None
    erp_payment_id: str | None = None
    payment: PaymentView = PaymentView()
    payments: list[PaymentView] = []
    credits_applied: list[CreditView] = []
    installments: list[InstallmentView] = []
    payee: PayeeView | None = None
    plan: PlanView | None = None
    submitted_by: str | None = None
    last_error: str | None = None
    review_reasons: list[str] = []
    waiting_for: str | None = None

    @property
    def returned_payments(self) -> list[PaymentView]:
        return [p for p in self.payments if p.returned]

    @property
    def in_effect(self) -> list[PaymentView]:
        return [p for p in self.payments if p.in_effect]

    @property
    def credits_total(self) -> Decimal:
        return sum((c.amount for c in self.credits_applied), Decimal(0))

    def expected_erp_balance(self) -> Decimal:
        """What remit believes the ERP shows as still open: the total, less every payment it
        recorded there and has not voided (cash and discount), less the credits it applied."""
        if not self.payments and self.erp_payment_id and self.payment.amount is not None:
            # A bill from before several payments per bill: one payment, no credits.
            return self.total - self.payment.amount
        applied = sum(((p.amount or Decimal(0)) + p.discount for p in self.in_effect), Decimal(0))
        return self.total - applied - self.credits_total

    @property
    def waits_on_a_return(self) -> bool:
        """Held because a payment came back: a person decides whether to pay again."""
        return (
            self.status == LifecycleStatus.needs_attention
            and bool(self.returned_payments)
            and "returned" in (self.last_error or "")
        )

    @property
    def waits_on_its_payee(self) -> bool:
        return (
            self.status == LifecycleStatus.needs_review
            and self.payee is not None
            and not self.payee.payable
            and self.payee.change_id is not None
        )
