"""Conformance for money movement beyond one payment per bill: voids, several bills and
discounts in one payment, credits and their applications, exchange rates, vendor bank details.

Every connector passes these against its own emulator over real HTTP, reading back through
its own reads (never emulator internals).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from accounting import (
    Bill,
    BillCreditMemo,
    BillLine,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    CreditApplication,
    PaymentTerms,
)
from connectors.base import NotFound, Rejected
from tests.connectors.conftest import Harness, unique

# Xero's Accounting API has no exchange-rate endpoint (a bill without CurrencyRate gets the
# XE.com day rate), so remit takes rates for Xero from a configured provider instead.
PLATFORMS_WITHOUT_RATES = {"xero"}
# QuickBooks keeps vendor bank details only as VendorPaymentBankDetail, for Australian
# companies (ABA files); the demo company is American, so its vendors carry none.
PLATFORMS_WITHOUT_US_BANK_DETAILS = {"quickbooks"}

NORTHWIND_ROUTING = "021000021"
NORTHWIND_ACCOUNT = "000123456789"
EUR_VENDOR = "Fabrikam GmbH"


def home(h: Harness) -> str:
    return h.company.settings.get("home_currency", "USD")


async def bill_of(h: Harness, *amounts: str, vendor_name: str = "Northwind Office Supply") -> Bill:
    bill = await h.connector.create_bill(
        await h.new_bill(amounts=amounts, vendor_name=vendor_name, with_tracking=False),
        reference=unique("r"),
        idempotency_key=unique("k"),
    )
    assert bill.id is not None
    return bill


def payment(
    h: Harness,
    vendor_id: str,
    lines: list[BillPaymentLine],
    *,
    currency: str | None = None,
    exchange_rate: Decimal | None = None,
    account_setting: str = "bank_account_id",
) -> BillPayment:
    return BillPayment(
        vendor_id=vendor_id,
        payment_date=date.today(),
        currency=currency or home(h),
        exchange_rate=exchange_rate,
        source_account_id=h.company.settings[account_setting],
        total=sum((line.amount for line in lines), Decimal("0")),
        lines=lines,
    )


async def in_effect(h: Harness, bill_id: str) -> list[BillPayment]:
    return [p for p in await h.connector.list_bill_payments(bill_id=bill_id) if not p.voided]


# ---------------------------------------------------------------------------------------------
# Voiding a payment (a bank return after the payment was written back)
# ---------------------------------------------------------------------------------------------


async def test_voiding_a_payment_reopens_the_bill(harness: Harness) -> None:
    connector = harness.connector
    bill = await bill_of(harness, "900.00")
    assert bill.id is not None
    paid = await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [BillPaymentLine(bill_id=bill.id, amount=bill.total)]),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    assert paid.id is not None
    assert (await connector.get_bill(bill.id)).status == BillStatus.paid

    voided = await connector.void_bill_payment(paid.id, idempotency_key=unique("void"))

    assert voided.id == paid.id and voided.voided
    reopened = await connector.get_bill(bill.id)
    assert reopened.balance == Decimal("900.00")
    assert reopened.status == BillStatus.open
    assert await in_effect(harness, bill.id) == []
    # A retry after a lost answer finds it voided and changes nothing.
    again = await connector.void_bill_payment(paid.id, idempotency_key=unique("void"))
    assert again.voided
    assert (await connector.get_bill(bill.id)).balance == Decimal("900.00")
    # And the bill can be paid again.
    await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [BillPaymentLine(bill_id=bill.id, amount=bill.total)]),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    assert (await connector.get_bill(bill.id)).status == BillStatus.paid


async def test_voiding_one_of_two_partial_payments_reopens_only_its_part(
    harness: Harness,
) -> None:
    connector = harness.connector
    bill = await bill_of(harness, "600.00", "400.00")
    assert bill.id is not None
    first = await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [BillPaymentLine(bill_id=bill.id, amount=Decimal(300))]),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    second = await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [BillPaymentLine(bill_id=bill.id, amount=Decimal(200))]),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    assert first.id and second.id
    await connector.void_bill_payment(first.id, idempotency_key=unique("void"))
    after = await connector.get_bill(bill.id)
    assert after.balance == Decimal("800.00")
    assert after.status == BillStatus.partially_paid
    assert [p.id for p in await in_effect(harness, bill.id)] == [second.id]


async def test_voiding_an_unknown_payment_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        await harness.connector.void_bill_payment("999999", idempotency_key=unique("void"))


# ---------------------------------------------------------------------------------------------
# One payment for several bills, and early-payment discounts
# ---------------------------------------------------------------------------------------------


async def test_one_payment_settles_several_bills_of_one_vendor(harness: Harness) -> None:
    connector = harness.connector
    first = await bill_of(harness, "100.00")
    second = await bill_of(harness, "250.00")
    assert first.id and second.id
    reference = unique("run")
    paid = await connector.create_bill_payment(
        payment(
            harness,
            first.vendor_id,
            [
                BillPaymentLine(bill_id=first.id, amount=Decimal("100.00")),
                BillPaymentLine(bill_id=second.id, amount=Decimal("250.00")),
            ],
        ),
        reference=reference,
        idempotency_key=unique("k"),
    )
    assert paid.total == Decimal("350.00")
    assert sorted((ln.bill_id, ln.amount) for ln in paid.lines) == sorted(
        [(first.id, Decimal("100.00")), (second.id, Decimal("250.00"))]
    )
    for bill in (first, second):
        assert bill.id is not None
        assert (await connector.get_bill(bill.id)).status == BillStatus.paid
        listed = await in_effect(harness, bill.id)
        assert [p.id for p in listed] == [paid.id]
    found = await connector.find_bill_payment_by_reference(reference, vendor_id=first.vendor_id)
    assert found is not None and found.id == paid.id and found.total == Decimal("350.00")


async def test_a_discount_taken_closes_the_bill_for_less_cash(harness: Harness) -> None:
    connector = harness.connector
    bill = await bill_of(harness, "900.00")
    assert bill.id is not None
    line = BillPaymentLine(bill_id=bill.id, amount=Decimal("882.00"), discount=Decimal("18.00"))
    reference = unique("pay")

    paid = await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [line]), reference=reference, idempotency_key=unique("k")
    )

    assert paid.total == Decimal("882.00")
    after = await connector.get_bill(bill.id)
    assert after.balance == Decimal("0") and after.status == BillStatus.paid
    [listed] = await in_effect(harness, bill.id)
    [listed_line] = [ln for ln in listed.lines if ln.bill_id == bill.id]
    assert (listed_line.amount, listed_line.discount) == (Decimal("882.00"), Decimal("18.00"))
    found = await connector.find_bill_payment_by_reference(reference, vendor_id=bill.vendor_id)
    assert found is not None and found.id == paid.id


async def test_a_discount_that_overpays_is_rejected(harness: Harness) -> None:
    bill = await bill_of(harness, "900.00")
    assert bill.id is not None
    line = BillPaymentLine(bill_id=bill.id, amount=Decimal("890.00"), discount=Decimal("18.00"))
    with pytest.raises(Rejected):
        await harness.connector.create_bill_payment(
            payment(harness, bill.vendor_id, [line]),
            reference=unique("pay"),
            idempotency_key=unique("k"),
        )
    assert (await harness.connector.get_bill(bill.id)).balance == Decimal("900.00")


async def test_voiding_a_discounted_payment_reopens_the_whole_bill(harness: Harness) -> None:
    connector = harness.connector
    bill = await bill_of(harness, "500.00")
    assert bill.id is not None
    line = BillPaymentLine(bill_id=bill.id, amount=Decimal("490.00"), discount=Decimal("10.00"))
    paid = await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [line]),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    assert paid.id is not None
    await connector.void_bill_payment(paid.id, idempotency_key=unique("void"))
    after = await connector.get_bill(bill.id)
    assert after.balance == Decimal("500.00") and after.status == BillStatus.open


# ---------------------------------------------------------------------------------------------
# Vendor credits
# ---------------------------------------------------------------------------------------------


async def credit(h: Harness, vendor_id: str, amount: str, reference: str) -> BillCreditMemo:
    memo = BillCreditMemo(
        vendor_id=vendor_id,
        document_number=unique("CM")[:20],
        issue_date=date.today(),
        currency=home(h),
        lines=[
            BillLine(
                description="returned goods",
                amount=Decimal(amount),
                account_id=await h.account_id("Office Supplies"),
            )
        ],
        total=Decimal(amount),
    )
    return await h.connector.create_credit_memo(
        memo, reference=reference, idempotency_key=unique("k")
    )


async def test_credits_are_listed_with_what_remains_and_found_by_reference(
    harness: Harness,
) -> None:
    connector = harness.connector
    bill = await bill_of(harness, "400.00")
    assert bill.id is not None
    reference = unique("cm")
    memo = await credit(harness, bill.vendor_id, "150.00", reference)
    assert memo.id is not None

    found = await connector.find_credit_memo_by_reference(reference, vendor_id=bill.vendor_id)
    assert found is not None and found.id == memo.id
    assert await connector.find_credit_memo_by_reference("nope", vendor_id=bill.vendor_id) is None

    await connector.apply_credit(
        CreditApplication(credit_memo_id=memo.id, bill_id=bill.id, amount=Decimal("100.00")),
        idempotency_key=unique("k"),
    )

    listed = {m.id: m for m in await connector.list_credit_memos(vendor_id=bill.vendor_id)}
    assert listed[memo.id].remaining == Decimal("50.00")
    applications = await connector.list_credit_applications(bill_id=bill.id)
    assert [(a.credit_memo_id, a.amount) for a in applications] == [(memo.id, Decimal("100.00"))]
    assert (await connector.get_bill(bill.id)).balance == Decimal("300.00")


async def test_applying_more_than_a_credit_has_left_is_rejected(harness: Harness) -> None:
    connector = harness.connector
    bill = await bill_of(harness, "400.00")
    assert bill.id is not None
    memo = await credit(harness, bill.vendor_id, "50.00", unique("cm"))
    assert memo.id is not None
    with pytest.raises(Rejected):
        await connector.apply_credit(
            CreditApplication(credit_memo_id=memo.id, bill_id=bill.id, amount=Decimal("80.00")),
            idempotency_key=unique("k"),
        )
    assert (await connector.get_bill(bill.id)).balance == Decimal("400.00")
    assert await connector.list_credit_applications(bill_id=bill.id) == []


async def test_a_credit_applied_then_the_rest_paid_reconciles(harness: Harness) -> None:
    """What a bill paid net of a credit leaves in the books: one credit, one payment, zero."""
    connector = harness.connector
    bill = await bill_of(harness, "700.00")
    assert bill.id is not None
    memo = await credit(harness, bill.vendor_id, "200.00", unique("cm"))
    assert memo.id is not None
    await connector.apply_credit(
        CreditApplication(credit_memo_id=memo.id, bill_id=bill.id, amount=Decimal("200.00")),
        idempotency_key=unique("k"),
    )
    await connector.create_bill_payment(
        payment(harness, bill.vendor_id, [BillPaymentLine(bill_id=bill.id, amount=Decimal(500))]),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )
    after = await connector.get_bill(bill.id)
    assert after.balance == Decimal("0") and after.status == BillStatus.paid
    cash = sum(
        (
            ln.amount
            for p in await in_effect(harness, bill.id)
            for ln in p.lines
            if ln.bill_id == bill.id
        ),
        Decimal("0"),
    )
    credits = sum(
        (a.amount for a in await connector.list_credit_applications(bill_id=bill.id)), Decimal(0)
    )
    assert (cash, credits) == (Decimal("500.00"), Decimal("200.00"))


# ---------------------------------------------------------------------------------------------
# Currencies
# ---------------------------------------------------------------------------------------------


async def test_home_currency_is_the_companys(harness: Harness) -> None:
    assert await harness.connector.home_currency() == home(harness)


async def test_exchange_rates_come_from_the_platform_where_it_keeps_them(
    harness: Harness,
) -> None:
    rate = await harness.connector.get_exchange_rate("EUR", date.today())
    if harness.name in PLATFORMS_WITHOUT_RATES:
        assert rate is None
        return
    assert rate is not None
    assert (rate.currency, rate.home_currency) == ("EUR", home(harness))
    assert Decimal("0.5") < rate.rate < Decimal("2")
    assert rate.as_of <= date.today()


async def test_a_foreign_bill_and_its_payment_carry_their_own_rates(harness: Harness) -> None:
    """A EUR bill at 1.08 paid at 1.11: both rates are kept, so the platform books the gain or
    loss between them and the home amounts tie."""
    connector = harness.connector
    vendor = await harness.vendor(EUR_VENDOR)
    assert vendor.id is not None and vendor.currency == "EUR"
    draft = await harness.new_bill(
        vendor_name=EUR_VENDOR, amounts=("1000.00",), with_tracking=False
    )
    draft = draft.model_copy(update={"currency": "EUR", "exchange_rate": Decimal("1.08")})
    bill = await connector.create_bill(draft, reference=unique("r"), idempotency_key=unique("k"))
    assert bill.id is not None
    assert (await connector.get_bill(bill.id)).exchange_rate == Decimal("1.08")

    paid = await connector.create_bill_payment(
        payment(
            harness,
            vendor.id,
            [BillPaymentLine(bill_id=bill.id, amount=Decimal("1000.00"))],
            currency="EUR",
            exchange_rate=Decimal("1.11"),
            account_setting="bank_account_id:EUR",
        ),
        reference=unique("pay"),
        idempotency_key=unique("k"),
    )

    assert paid.exchange_rate == Decimal("1.11")
    [listed] = await in_effect(harness, bill.id)
    assert listed.exchange_rate == Decimal("1.11") and listed.currency == "EUR"
    after = await connector.get_bill(bill.id)
    assert after.balance == Decimal("0") and after.exchange_rate == Decimal("1.08")


# ---------------------------------------------------------------------------------------------
# Vendor bank details (what the payee master may import)
# ---------------------------------------------------------------------------------------------


async def test_vendor_bank_details_as_the_platform_keeps_them(harness: Harness) -> None:
    vendor = await harness.vendor("Northwind Office Supply")
    assert vendor.id is not None
    accounts = await harness.connector.get_vendor_bank_accounts(vendor.id)
    if harness.name in PLATFORMS_WITHOUT_US_BANK_DETAILS:
        assert accounts == []
        return
    [account] = accounts
    assert account.account_number == NORTHWIND_ACCOUNT
    assert account.routing_number == NORTHWIND_ROUTING
    assert account.primary
    assert NORTHWIND_ACCOUNT not in repr(account)


async def test_bank_details_of_an_unknown_vendor_are_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        await harness.connector.get_vendor_bank_accounts("999999")


# ---------------------------------------------------------------------------------------------
# Payment terms (what early-payment discounts are taken from)
# ---------------------------------------------------------------------------------------------

# Xero's bills carry a due date but no terms with a discount (PaymentTerms are a contact's
# default due-date rule only), so a discount for Xero comes from the document's terms.
PLATFORMS_WITHOUT_DISCOUNT_TERMS = {"xero"}


async def test_a_bills_discount_terms_round_trip(harness: Harness) -> None:
    terms = PaymentTerms(net_days=30, discount_percent=Decimal("2"), discount_days=10)
    draft = await harness.new_bill(amounts=("1000.00",), with_tracking=False)
    draft = draft.model_copy(update={"terms": terms})
    bill = await harness.connector.create_bill(
        draft, reference=unique("r"), idempotency_key=unique("k")
    )
    assert bill.id is not None
    read = await harness.connector.get_bill(bill.id)
    if harness.name in PLATFORMS_WITHOUT_DISCOUNT_TERMS:
        assert read.terms is None
        return
    assert read.terms is not None
    assert (read.terms.net_days, read.terms.discount_percent, read.terms.discount_days) == (
        30,
        Decimal("2"),
        10,
    )
