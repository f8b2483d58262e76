"""The chaos run's audit catches what it claims to: books that do not tie, a returned payment
still in effect, a payment paid twice, credits remit and the ERP disagree on; and its mix is
reproducible and exercises every money feature even in a small run."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from accounting import Bill, BillLine, BillPayment, BillPaymentLine, CreditApplication
from bench._mix import Kind, MixRates, plan_mix
from bench._views import RemitView
from bench.chaos import Audit, BillBooks, ChaosRun, base_key, read_books

BILL_ID = "b1"


def erp_bill(total: str, balance: str) -> Bill:
    return Bill(
        id=BILL_ID,
        vendor_id="v1",
        issue_date=date(2026, 11, 2),
        currency="USD",
        lines=[BillLine(description="x", amount=Decimal(total), account_id="a1")],
        total=Decimal(total),
        balance=Decimal(balance),
    )


def payment(payment_id: str, amount: str, *, voided: bool = False) -> BillPayment:
    return BillPayment(
        id=payment_id,
        vendor_id="v1",
        payment_date=date(2026, 11, 3),
        currency="USD",
        source_account_id="bank",
        total=Decimal(amount),
        lines=[BillPaymentLine(bill_id=BILL_ID, amount=Decimal(amount))],
        voided=voided,
    )


class FakeErp:
    """The two reads the audit makes of a bill's payments and credits."""

    def __init__(self, payments: list[BillPayment], credits: tuple[str, ...] = ()) -> None:
        self.payments = payments
        self.credits = [
            CreditApplication(credit_memo_id=f"cm{n}", bill_id=BILL_ID, amount=Decimal(amount))
            for n, amount in enumerate(credits)
        ]

    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]:
        return self.payments

    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        return self.credits


def remit_view(**state: Any) -> RemitView:
    return RemitView.model_validate(
        {"status": "reconciled", "total": "900.00", "amount_due": "0", "erp_bill_id": BILL_ID}
        | state
    )


def audited(view: RemitView, books: BillBooks) -> Audit:
    audit = Audit()
    ChaosRun.compare_payments(audit, view, books, "bill/x")
    return audit


async def test_two_installments_and_a_credit_tie_and_match_remit() -> None:
    books = await read_books(
        FakeErp([payment("p1", "400.00"), payment("p2", "470.00")], credits=("30.00",)),  # type: ignore[arg-type]
        erp_bill("900.00", "0"),
    )
    assert books.ties and books.in_effect == {"p1", "p2"}
    view = remit_view(
        payments=[
            {"amount": "400.00", "erp_payment_id": "p1", "status": "settled"},
            {"amount": "470.00", "erp_payment_id": "p2", "status": "settled"},
        ],
        credits_applied=[{"credit_id": "c", "erp_credit_id": "cm0", "amount": "30.00"}],
    )
    assert view.expected_erp_balance() == Decimal(0)
    audit = audited(view, books)
    assert not audit.failed, audit


async def test_a_returned_payment_still_in_effect_is_a_book_error() -> None:
    books = await read_books(
        FakeErp([payment("p1", "900.00"), payment("p2", "900.00")]),  # type: ignore[arg-type]
        erp_bill("900.00", "0"),
    )
    # The ERP's balance says paid once, but two payments are in effect: it does not tie.
    assert not books.ties and "1800.00" in books.why_not
    view = remit_view(
        payments=[
            {"amount": "900.00", "erp_payment_id": "p1", "status": "returned", "erp_voided": True},
            {"amount": "900.00", "erp_payment_id": "p2", "status": "settled"},
        ]
    )
    audit = audited(view, books)
    assert "p1 is still in effect" in audit.book_errors["bill/x"]


async def test_a_payment_remit_does_not_know_is_a_duplicate() -> None:
    books = await read_books(
        FakeErp([payment("p1", "450.00"), payment("p9", "450.00")]),  # type: ignore[arg-type]
        erp_bill("900.00", "0"),
    )
    view = remit_view(payments=[{"amount": "450.00", "erp_payment_id": "p1", "status": "settled"}])
    audit = audited(view, books)
    assert audit.duplicate_erp_bill_payments == {"bill/x": 2}
    # remit expects 450 still open; the ERP shows 0: the vendor's balances differ too.
    assert view.expected_erp_balance() == Decimal("450.00")


async def test_a_voided_payment_reopens_the_balance_and_credits_must_agree() -> None:
    books = await read_books(
        FakeErp([payment("p1", "900.00", voided=True)], credits=("25.00",)),  # type: ignore[arg-type]
        erp_bill("900.00", "875.00"),
    )
    assert books.ties and books.voided == {"p1"} and not books.in_effect
    returned = {
        "amount": "875.00",
        "erp_payment_id": "p1",
        "status": "returned",
        "erp_voided": True,
    }
    view = remit_view(status="needs_attention", payments=[returned])
    assert "credits applied" in audited(view, books).book_errors["bill/x"]
    credit = {"credit_id": "c", "erp_credit_id": "cm0", "amount": "25.00"}
    view = remit_view(
        status="needs_attention",
        last_error="payment pay_1 was returned (R01: Insufficient funds); ...",
        payments=[returned],
        credits_applied=[credit],
    )
    assert view.waits_on_a_return  # the finance team pays it again
    assert not audited(view, books).failed
    assert view.expected_erp_balance() == Decimal("875.00")


def test_a_renewed_payment_key_is_the_same_installment() -> None:
    assert base_key("bill/c/k/pay/2/retry-1") == base_key("bill/c/k/pay/2") == "bill/c/k/pay/2"
    assert base_key("bill/c/k/pay/1") != base_key("bill/c/k/pay/2")


def test_the_mix_is_reproducible_and_small_runs_get_every_feature() -> None:
    rates = MixRates()
    first = plan_mix(50, "r", rates, seed=7)
    again = plan_mix(50, "r", rates, seed=7)
    assert [(b.kind, b.draft, b.credit_before) for b in first] == [
        (b.kind, b.draft, b.credit_before) for b in again
    ]
    assert [b.kind for b in plan_mix(50, "r", rates, seed=8)] != [b.kind for b in first]
    kinds = Counter(b.kind for b in plan_mix(12, "r", rates, seed=7))
    assert all(kinds[kind] >= 1 for kind in Kind), kinds
    small = plan_mix(12, "r", rates, seed=7)
    assert any(b.credit_before for b in small)
    returns = [b.returns for b in first if b.returns]
    assert {r.late for r in returns} == {True, False}
    assert all(r.after in (timedelta(seconds=1), rates.late_return_after) for r in returns)
    # Every amount differs, so remit's duplicate detection never fires.
    totals = [(b.vendor_name, b.draft.total) for b in plan_mix(1000, "r", rates, seed=7)]
    assert len(set(totals)) == len(totals)
    eur = [b for b in first if b.kind == Kind.eur]
    assert eur and all(b.currency == "EUR" and b.rail is None for b in eur)
    two_part = [b for b in first if b.kind == Kind.two_part]
    assert two_part and all(b.installments[0].amount == Decimal(400) for b in two_part)
