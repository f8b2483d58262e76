"""Money you can trust, on every ERP emulator: only verified payees are paid, only the rail's own
word settles a payment, returns after settlement undo the books, and bills pay in parts, net of
credits, at locked rates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from accounting import BillDraft, BillPayment, BillPaymentLine
from connectors.base import RailPaymentStatus
from connectors.registry import available_platforms
from sandbox.bank import ReturnRule
from store import CreditStore, WebhookStore
from tests.workflows.harness import Harness, draft, running_remit
from workflows.credit import CreditWorkflow
from workflows.models import (
    BillState,
    Installment,
    PayeeImportRequest,
    PayeeStatus,
    PaymentEvent,
)
from workflows.models import LifecycleStatus as S

NEW_ACH = "011000015/000987654321"  # not Northwind's verified ACH ••••6789


@pytest.fixture(params=available_platforms())
async def h(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(time_skipping_env, tmp_path, request.param) as harness:
        yield harness


async def held_for_payee(h: Harness, wid: str) -> BillState:
    state = await h.until(
        wid,
        lambda s: s.status == S.needs_review and s.payee is not None and not s.payee.payable,
    )
    assert state.payee is not None
    assert await h.bank_payments() == [], "the bank was called for an unverified payee"
    return state


async def in_effect(h: Harness, bill_id: str) -> list[BillPayment]:
    return await h.bill_payments(bill_id)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (bounded) for something an activity records after the state already says so."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "it never happened"
        await asyncio.sleep(0.05)


def audit_kinds(h: Harness, wid: str) -> list[str]:
    return [e.kind for e in h.store.audit_for(wid)]


# ---------------------------------------------------------------------------------------------
# Never pay an account nobody verified
# ---------------------------------------------------------------------------------------------


async def test_changed_details_on_an_auto_approvable_bill_wait_for_two_approvals(
    h: Harness,
) -> None:
    wid = await h.submit(draft(amount="120.00", bank_account=NEW_ACH))
    state = await held_for_payee(h, wid)
    payee = state.payee
    assert payee is not None
    assert payee.status == PayeeStatus.changed and payee.badge() == "changed bank details"
    assert (payee.masked, payee.document_masked) == ("ACH ••••6789", "ACH ••••4321")
    assert state.plan is not None and state.plan.auto_approved
    assert payee.change_id and "000987654321" not in (state.last_error or "")

    service = h.payee_service()
    await service.verify(payee.change_id, by="olivia", method="call-back to the number on file")
    await service.approve(payee.change_id, by="carol")
    # One approval is not enough: still held, still not paid.
    change = h.payees.get_change(payee.change_id)
    assert change is not None and change.status == "verified"
    assert (await h.state(wid)).status == S.needs_review
    assert await h.bank_payments() == []
    await service.approve(payee.change_id, by="dave")

    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert await h.bank_payees() == ["4321"]
    assert final.payee is not None and final.payee.version == 2
    assert "payee" in audit_kinds(h, wid)


async def test_a_two_level_bill_with_changed_details_is_approved_but_not_paid(
    h: Harness,
) -> None:
    wid = await h.submit(draft(amount="25000.00", bank_account=NEW_ACH))
    state = await h.status(wid, S.awaiting_approval)
    # Approvers see the masked payee and its badge before they decide.
    assert state.payee is not None and state.payee.status == PayeeStatus.changed
    await h.remit.decide(wid, actor="alice", approve=True)
    await h.until(wid, lambda s: s.level == 1)
    await h.remit.decide(wid, actor="carol", approve=True)
    state = await held_for_payee(h, wid)
    assert state.payee is not None and state.payee.change_id
    # The change is rejected (the vendor never changed banks): the bill stays held.
    await h.payee_service().reject(
        state.payee.change_id, by="erin", reason="the vendor's AR says their bank is unchanged"
    )
    await h.until(
        wid, lambda s: "payee_notice" in audit_kinds(h, wid) or s.revision > state.revision
    )
    assert (await h.state(wid)).status == S.needs_review
    assert await h.bank_payments() == []
    # A person chooses to pay the verified details instead of the document's.
    await h.remit.resolve(wid, actor="olivia", reason="pay the account on file")
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert await h.bank_payees() == ["6789"]


async def test_a_look_alike_vendor_name_never_matches_silently(h: Harness) -> None:
    cyrillic = "N\u043erthwind Office Supply"  # a Cyrillic "о"
    wid = await h.submit(draft(vendor=cyrillic, tax_id=None, amount="120.00", bank_account=NEW_ACH))
    state = await h.status(wid, S.needs_review)
    assert any("imitates" in r and "U+043E" in r for r in state.review_reasons), state
    assert state.vendor_id is None and await h.bank_payments() == []
    # Told it is Northwind, remit still refuses the document's bank details.
    northwind = [v for v in await h.erp.find_vendors(name="Northwind Office Supply")]
    await h.remit.resolve(wid, actor="olivia", vendor_id=northwind[0].id)
    state = await held_for_payee(h, wid)
    assert state.payee is not None and state.payee.status == PayeeStatus.changed
    await h.remit.cancel(wid, actor="olivia", reason="invoice fraud attempt")
    assert (await h.result(wid)).status == S.cancelled
    assert await h.bank_payments() == []


async def test_a_verified_vendor_pays_without_friction(h: Harness) -> None:
    wid = await h.submit(draft(amount="120.00"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.payee is not None and final.payee.status == PayeeStatus.verified
    assert "needs_review" not in audit_kinds(h, wid)
    assert await h.bank_payees() == ["6789"]


async def test_a_payee_that_changes_after_approval_is_checked_again_before_paying(
    h: Harness,
) -> None:
    today = (await h.env.get_current_time()).date()
    wid = await h.submit(draft(amount="120.00", issue=today, due=today + timedelta(days=10)))
    state = await h.status(wid, S.scheduled)
    assert state.payee is not None and state.payee.payable
    # Before the pay date, the vendor's verified details are replaced by a reviewed change.
    vendor_id = state.vendor_id
    assert vendor_id is not None
    from accounting.payees import PayeeDetails

    proposal = await h.payee_service().propose(
        connection_id=h.connection.id,
        vendor_id=vendor_id,
        vendor_name=state.vendor_name,
        details=PayeeDetails(routing_number="011000015", account_number="000555555555"),
        by="alice",
        reason="the vendor's letter of 2026-11-30",
    )
    await h.review_payee_change(proposal.change.id)
    # On the pay date: the document still names the old account, the master the new one;
    # remit pays neither without a person.
    await h.env.sleep(timedelta(days=11))
    state = await h.status(wid, S.needs_review)
    assert await h.bank_payments() == []
    assert state.payee is not None and state.payee.masked == "ACH ••••5555"
    await h.remit.resolve(wid, actor="olivia", reason="the letter supersedes the invoice")
    final = await h.result(wid)
    assert final.status == S.reconciled and await h.bank_payees() == ["5555"]


# ---------------------------------------------------------------------------------------------
# Never believe a settlement the rail didn't confirm
# ---------------------------------------------------------------------------------------------


async def test_a_forged_settlement_signal_changes_nothing(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with running_remit(time_skipping_env, tmp_path, bank_delay=timedelta(days=1)) as h:
        h.bank.set_return_rules([ReturnRule(code="R03", outcome="failed")])
        wid = await h.submit(draft(amount="120.00"))
        state = await h.until(wid, lambda s: s.payment.rail_payment_id is not None)
        payment_id = state.payment.rail_payment_id
        assert payment_id is not None
        real = await h.rail.get_payment(payment_id)
        assert real.status == RailPaymentStatus.pending
        forged = real.model_copy(update={"status": RailPaymentStatus.settled})
        await h.remit.payment_update(wid, PaymentEvent(payment=forged))
        await h.until(wid, lambda s: "notice_contradicted" in audit_kinds(h, wid))
        state = await h.state(wid)
        assert state.status == S.paying and state.erp_payment_id is None
        # The day passes; the bank fails the payment; the bill waits for a person.
        h.bank_clock.advance(timedelta(days=2))
        await h.env.sleep(timedelta(hours=3))
        state = await h.status(wid, S.needs_attention)
        assert "R03" in (state.last_error or "") and state.erp_payment_id is None
        assert state.erp_bill_id and await in_effect(h, state.erp_bill_id) == []


# ---------------------------------------------------------------------------------------------
# A return after the bill was reconciled
# ---------------------------------------------------------------------------------------------


async def test_a_return_after_reconciliation_voids_the_payment_and_reopens_the_bill(
    h: Harness,
) -> None:
    h.bank.set_return_rules([ReturnRule(code="R03", return_after=timedelta(days=2), times=1)])
    wid = await h.submit(draft(amount="120.00"))
    done = await h.result(wid)
    assert done.status == S.reconciled and done.erp_bill_id and done.erp_payment_id
    assert len(await in_effect(h, done.erp_bill_id)) == 1

    # Two days later the bank's return notice reaches remit's API (signed), for a bill whose
    # workflow has finished: a follow-up run takes it, after checking with the bank.
    h.bank_webhooks_to_the_api()
    h.bank_clock.advance(timedelta(days=3))
    delivered = await h.bank.settle_due()
    assert delivered >= 1, [
        (d.as_json()["event"]["type"], d.last_error, d.event.payment.status)
        for d in h.bank._deliveries
    ]
    state = await h.status(wid, S.needs_attention)
    assert "R03" in (state.last_error or "")
    returned = state.payments[0]
    assert returned.status == "returned" and returned.erp_voided
    assert await in_effect(h, done.erp_bill_id) == []
    bill = await h.current_erp().get_bill(done.erp_bill_id)
    assert bill.balance == Decimal("120.00") and bill.status == "open"
    await eventually(
        lambda: (
            [
                e.subject
                for e in WebhookStore(h.store).events_since(
                    datetime(2000, 1, 1, tzinfo=UTC),
                    event_types=["bill.payment_returned"],
                    limit=10,
                )
            ]
            == [wid]
        )
    )

    await h.remit.retry(wid, actor="olivia", reason="vendor sent corrected details by letter")
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    keys = sorted(p.idempotency_key for p in await h.bank_payments())
    assert keys == [f"{wid}/pay/1", f"{wid}/pay/2"]
    payments = await in_effect(h, done.erp_bill_id)
    assert [p.total for p in payments] == [Decimal("120.00")]
    assert payments[0].id != done.erp_payment_id


async def test_a_notice_about_a_finished_bill_that_the_bank_denies_changes_nothing(
    h: Harness,
) -> None:
    wid = await h.submit(draft(amount="120.00"))
    done = await h.result(wid)
    payment_id = done.payment.rail_payment_id
    assert payment_id
    real = await h.rail.get_payment(payment_id)
    forged = real.model_copy(update={"status": RailPaymentStatus.returned, "return_code": "R01"})
    row = h.store.get_bill(wid)
    assert row is not None
    await h.remit.payment_notice(
        wid, PaymentEvent(payment=forged), last_state=BillState.model_validate(row.state)
    )
    final = await h.result(wid)
    assert final.status == S.reconciled
    assert "notice_contradicted" in audit_kinds(h, wid)
    assert done.erp_bill_id and len(await in_effect(h, done.erp_bill_id)) == 1


# ---------------------------------------------------------------------------------------------
# Payments in parts
# ---------------------------------------------------------------------------------------------


async def test_a_bill_paid_in_two_parts_reconciles_to_the_cent(h: Harness) -> None:
    wid = await h.submit(draft(amount="900.00"), installments=[Installment(amount=Decimal("400"))])
    await h.status(wid, S.awaiting_approval)
    await h.remit.decide(wid, actor="alice", approve=True)
    state = await h.status(wid, S.partially_paid)
    assert state.amount_due == Decimal("500.00") and state.erp_bill_id
    assert [p.total for p in await in_effect(h, state.erp_bill_id)] == [Decimal("400.00")]
    for actor, amount, why in (
        ("sam", "500.00", "separation of duties"),
        ("carol", "500.00", "carol is not a payer"),
        ("paula", "600.00", "more than the USD 500.00 not yet scheduled"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await h.remit.schedule_payment(wid, actor=actor, amount=Decimal(amount))
        assert why in str(refused.value.cause)
    await h.remit.schedule_payment(wid, actor="paula", amount=Decimal("500.00"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert sorted(p.total for p in await in_effect(h, state.erp_bill_id)) == [
        Decimal("400.00"),
        Decimal("500.00"),
    ]
    assert sorted(p.amount for p in await h.bank_payments()) == [Decimal(400), Decimal(500)]
    assert (await h.erp.get_bill(state.erp_bill_id)).balance == 0


async def test_a_bill_part_paid_in_the_erp_pays_only_the_remainder(h: Harness) -> None:
    today = (await h.env.get_current_time()).date()
    wid = await h.submit(draft(amount="900.00", issue=today, due=today + timedelta(days=20)))
    await h.status(wid, S.awaiting_approval)
    await h.remit.decide(wid, actor="alice", approve=True)
    state = await h.status(wid, S.scheduled)
    assert state.erp_bill_id and state.vendor_id
    await h.erp.create_bill_payment(
        BillPayment(
            vendor_id=state.vendor_id,
            payment_date=today,
            currency="USD",
            source_account_id=h.company.settings["bank_account_id"],
            total=Decimal("300.00"),
            lines=[BillPaymentLine(bill_id=state.erp_bill_id, amount=Decimal("300.00"))],
        ),
        reference="by-hand",
        idempotency_key="by-hand",
    )
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert [p.amount for p in await h.bank_payments()] == [Decimal("600.00")]
    assert final.reconciliation and final.reconciliation.ok


# ---------------------------------------------------------------------------------------------
# Credits
# ---------------------------------------------------------------------------------------------


def credit_draft(number: str, amount: str) -> BillDraft:
    return draft(number=number, amount=amount, bank_account=None)


async def test_a_vendor_credit_is_applied_before_paying_so_the_bank_pays_the_net(
    h: Harness,
) -> None:
    submitted = await h.remit.submit_credit(
        credit_draft("CM-77", "150.00"),
        connection_id=h.connection.id,
        platform=h.platform,
        submitted_by="sam",
    )
    handle = h.remit.temporal.get_workflow_handle_for(CreditWorkflow.run, submitted.workflow_id)
    async with h.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        credit = await handle.result()
    assert credit.status == "available" and credit.erp_credit_id
    credits = CreditStore(h.store)
    [row] = credits.find(connection_id=h.connection.id)
    assert row.remaining == Decimal("150.00")

    wid = await h.submit(draft(number="INV-CR-1", amount="900.00"))
    await h.status(wid, S.awaiting_approval)
    await h.remit.decide(wid, actor="alice", approve=True)
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert [p.amount for p in await h.bank_payments()] == [Decimal("750.00")]
    assert [c.amount for c in final.credits_applied] == [Decimal("150.00")]
    assert credits.get(row.id).remaining == Decimal("0")  # type: ignore[union-attr]
    assert final.erp_bill_id
    applied = await h.current_erp().list_credit_applications(bill_id=final.erp_bill_id)
    assert [a.amount for a in applied] == [Decimal("150.00")]


# ---------------------------------------------------------------------------------------------
# Foreign currency: a rate locked at approval
# ---------------------------------------------------------------------------------------------


def euro_bill(number: str, amount: str = "120.00", **kw: Any) -> BillDraft:
    return draft(
        number=number,
        vendor="Fabrikam GmbH",
        tax_id="DE999999999",
        currency="EUR",
        amount=amount,
        bank_account="DE02120300000000202051",
        **kw,
    )


async def test_a_euro_bill_is_booked_and_paid_at_rates_that_tie(h: Harness) -> None:
    wid = await h.submit(euro_bill("EUR-1"))
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.fx is not None and final.home_currency == "USD"
    assert final.erp_bill_id
    bill = await h.erp.get_bill(final.erp_bill_id)
    assert bill.exchange_rate == final.fx.rate.rate
    [payment] = await in_effect(h, final.erp_bill_id)
    assert payment.currency == "EUR" and payment.exchange_rate == final.payments[0].exchange_rate


async def set_rate(h: Harness, rate: Decimal, on: date) -> None:
    """Move the EUR rate where this platform's bills take it from."""
    if h.platform == "quickbooks":
        base = f"{h.connection.base_url}/v3/company/{h.company.company_id}"
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=h.emulator.app),  # type: ignore[arg-type]
            headers={"Authorization": f"Bearer {h.connection.credentials['access_token']}"},
        ) as http:
            response = await http.post(
                f"{base}/exchangerate",
                json={"SourceCurrencyCode": "EUR", "AsOfDate": on.isoformat(), "Rate": str(rate)},
            )
            assert response.status_code == 200, response.text
    elif h.platform == "netsuite":
        company = h.emulator.companies[h.company.company_id]  # type: ignore[attr-defined]
        table = company.table("currencyrate")
        template = next(r for r in table.values())
        rate_id = company.new_id("currencyrate")
        table[rate_id] = {
            **template,
            "id": rate_id,
            "exchangerate": rate,
            "effectivedate": on.isoformat(),
        }
    else:  # Xero keeps no rates: remit takes the bank's
        h.bank.fx_rates["EUR"] = rate


async def test_a_rate_that_moves_beyond_the_threshold_sends_the_bill_back_for_approval(
    h: Harness,
) -> None:
    today = (await h.env.get_current_time()).date()
    wid = await h.submit(
        euro_bill("EUR-2", amount="1000.00", issue=today, due=today + timedelta(days=10))
    )
    await h.status(wid, S.awaiting_approval)
    await h.remit.decide(wid, actor="alice", approve=True)
    state = await h.status(wid, S.scheduled)
    assert state.fx is not None
    locked = state.fx.rate.rate
    await set_rate(h, locked * Decimal("1.05"), today)
    await h.env.sleep(timedelta(days=11))
    state = await h.status(wid, S.awaiting_approval)
    assert [d.actor for d in state.earlier_decisions] == ["alice"] and state.decisions == []
    await h.remit.decide(wid, actor="bob", approve=True)
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert final.fx is not None and final.fx.rate.rate != locked
    assert final.fx.booked == locked  # the ERP bill keeps the rate it was booked at


# ---------------------------------------------------------------------------------------------
# Seeding the payee master from the ERP's vendor records
# ---------------------------------------------------------------------------------------------

ATTESTATION = "AP keeps the vendor master; bank details changes are call-back verified"


@pytest.fixture(params=available_platforms())
async def bare(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Harness]:
    async with running_remit(
        time_skipping_env, tmp_path, request.param, seed_payees=False
    ) as harness:
        yield harness


async def test_an_attested_import_seeds_payees_from_the_erps_vendor_records(bare: Harness) -> None:
    h = bare
    result = await h.remit.import_payees(
        PayeeImportRequest(
            connection_id=h.connection.id, attested_by="olivia", attestation=ATTESTATION
        )
    )
    northwind = await h.vendor_id("Northwind Office Supply")
    payee = h.payees.get_payee(h.connection.id, northwind)
    if h.platform == "quickbooks":  # US companies keep no vendor bank details in QuickBooks
        assert result.imported == [] and "Northwind Office Supply" in result.without_details
        assert payee is None
        return
    assert "Northwind Office Supply: ACH ••••6789" in result.imported
    assert any(line.startswith("Fabrikam GmbH: IBAN DE••••2051") for line in result.imported)
    assert payee is not None and payee.verified_by == "olivia"
    assert ATTESTATION in payee.verification_method and payee.source == f"import:{h.platform}"
    final = await h.result(await h.submit(draft(amount="120.00")))
    assert final.status == S.reconciled and await h.bank_payees() == ["6789"]

    again = await h.remit.import_payees(
        PayeeImportRequest(
            connection_id=h.connection.id, attested_by="olivia", attestation=ATTESTATION
        )
    )
    assert "Northwind Office Supply" in again.unchanged and again.imported == []


async def test_an_import_never_overwrites_a_payee_it_disagrees_with(bare: Harness) -> None:
    h = bare
    if h.platform == "quickbooks":
        pytest.skip("QuickBooks keeps no bank details for US vendors: nothing to disagree with")
    from accounting.payees import PayeeDetails

    northwind = await h.vendor_id("Northwind Office Supply")
    h.payees.record_verified(
        connection_id=h.connection.id,
        vendor_id=northwind,
        vendor_name="Northwind Office Supply",
        details=PayeeDetails(routing_number="011000015", account_number="000987654321"),
        source="test",
        verified_by="olivia",
        verification_method="entered before the import",
    )
    result = await h.remit.import_payees(
        PayeeImportRequest(
            connection_id=h.connection.id,
            attested_by="olivia",
            attestation=ATTESTATION,
            vendor_id=northwind,
        )
    )
    [change_id] = result.proposed
    change = h.payees.get_change(change_id)
    assert change is not None and change.source == "erp" and change.status == "proposed"
    assert h.payees.get_payee(h.connection.id, northwind).masked == "ACH ••••4321"  # type: ignore[union-attr]


async def test_a_ubl_invoice_naming_a_new_iban_is_never_paid_before_review(h: Harness) -> None:
    from accounting.formats import parse_document

    content = (Path(__file__).parents[2] / "starter" / "examples" / "invoice-ubl.xml").read_bytes()
    captured = parse_document(content, file_name="invoice-ubl.xml")
    h.documents.put(content, media_type="application/xml", file_name="invoice-ubl.xml")
    h.change_settings(default_expense_account="Office Supplies")  # its lines name no account
    wid = await h.submit(captured.draft)
    await h.status(wid, S.awaiting_approval)  # a new vendor is never auto-approved
    await h.remit.decide(wid, actor="alice", approve=True)
    state = await held_for_payee(h, wid)
    assert state.payee is not None and state.payee.status == PayeeStatus.new
    assert state.payee.document_masked == "IBAN DE••••3000" and state.payee.change_id
    await h.review_payee_change(state.payee.change_id)
    final = await h.result(wid)
    assert final.status == S.reconciled, final.last_error
    assert await h.bank_payees() == ["3000"]
