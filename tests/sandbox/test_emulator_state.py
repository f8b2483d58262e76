"""The emulators and the bank keep their records in a state file across a restart."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from accounting import Bill
from connectors.bank import SandboxBankRail
from connectors.base import (
    ConnectionConfig,
    Connector,
    Payee,
    PaymentInstruction,
    RailKind,
    RailPaymentStatus,
)
from connectors.registry import platform
from sandbox.bank import SandboxBank
from sandbox.persist import StateFile
from sandbox.registry import DemoCompany, Emulator, new_emulator
from tests.connectors.conftest import Harness, platform_names
from tests.connectors.test_conformance import PDF, payment_for

BANK_URL = "http://bank.emulator"


@asynccontextmanager
async def connected(name: str, emulator: Emulator, company: DemoCompany) -> AsyncIterator[Harness]:
    """A connector to the emulator's demo company, as the stack's stored connection has it."""
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, emulator.app)))
    connection = ConnectionConfig(
        id=f"conn-{name}",
        platform=name,
        base_url=f"http://{name}.emulator",
        company_id=company.company_id,
        credentials=dict(company.credentials),
        settings=dict(company.settings),
    )
    connector: Connector = platform(name).connector(connection, http)
    try:
        yield Harness(name, platform(name), emulator, company, connector, http)
    finally:
        await connector.aclose()
        await http.aclose()


def seeded(name: str, state: Path) -> tuple[Emulator, DemoCompany]:
    emulator = new_emulator(name, state_file=state)
    company = emulator.seed_demo_company()
    emulator.demo_company = company
    emulator.save_state()
    return emulator, company


@pytest.mark.parametrize("name", platform_names())
async def test_an_emulator_restarted_on_its_state_file_has_its_records_and_new_ids(
    name: str, tmp_path: Path
) -> None:
    state = tmp_path / "emulators" / f"{name}.state"
    first, company = seeded(name, state)
    async with connected(name, first, company) as h:
        draft = await h.new_bill()
        bill_key = f"bill-{name}-1"
        bill = await h.connector.create_bill(draft, reference=bill_key, idempotency_key=bill_key)
        assert bill.id is not None
        await h.connector.attach_document(
            bill.id,
            file_name="invoice.pdf",
            content_type="application/pdf",
            content=PDF,
            idempotency_key=f"attach-{name}-1",
        )
        paid = await h.connector.create_bill_payment(
            payment_for(h, bill), reference=f"pay-{name}-1", idempotency_key=f"pay-{name}-1"
        )

    again = new_emulator(name, state_file=state)
    assert again.restored
    assert again.demo_company == company
    async with connected(name, again, company) as h:
        # The stored connection's tokens still work: the grants came back too.
        kept = await h.connector.get_bill(bill.id)
        assert kept.document_number == draft.document_number
        assert kept.total == bill.total and kept.balance == Decimal("0")
        assert [p.id for p in await h.connector.list_bill_payments(bill_id=bill.id)] == [paid.id]
        assert [a.file_name for a in await h.connector.list_attachments(bill.id)] == ["invoice.pdf"]
        # A retried write is answered from the restored records, not written twice.
        retried = await h.connector.create_bill(draft, reference=bill_key, idempotency_key=bill_key)
        assert retried.id == bill.id
        second: Bill = await h.connector.create_bill(
            await h.new_bill(), reference=f"bill-{name}-2", idempotency_key=f"bill-{name}-2"
        )
        assert second.id not in (None, bill.id)
        again_paid = await h.connector.create_bill_payment(
            payment_for(h, second), reference=f"pay-{name}-2", idempotency_key=f"pay-{name}-2"
        )
        assert again_paid.id != paid.id

    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("name", platform_names())
async def test_without_a_state_file_an_emulator_writes_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    emulator = new_emulator(name)
    company = emulator.seed_demo_company()
    async with connected(name, emulator, company) as h:
        await h.connector.create_bill(await h.new_bill(), reference="b", idempotency_key="b")
    assert not emulator.restored
    assert list(tmp_path.iterdir()) == []


def ach(amount: str) -> PaymentInstruction:
    return PaymentInstruction(
        rail=RailKind.ach,
        amount=Decimal(amount),
        currency="USD",
        payee=Payee(name="Acme Supplies", account_number="987654321", routing_number="021000021"),
        execution_date=date(2026, 3, 3),
        reference="INV-1001",
        metadata={"workflow_id": "bill/c1/INV-1001"},
    )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_the_bank_restarted_on_its_state_file_keeps_payments_and_settles_them(
    tmp_path: Path,
) -> None:
    state = tmp_path / "bank.state"
    clock = Clock()

    def bank() -> SandboxBank:
        return SandboxBank(clock=clock, api_key="sk", inspector_token="i", state_file=state)

    first = bank()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, first.app))) as http:
        rail = SandboxBankRail(BANK_URL, "sk", http)
        payment = await rail.initiate(ach("1250.50"), idempotency_key="bill/c1/INV-1001/pay/1")

    clock.now += timedelta(days=2)
    second = bank()
    assert second.restored
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, second.app))) as http:
        rail = SandboxBankRail(BANK_URL, "sk", http)
        replayed = await rail.initiate(ach("1250.50"), idempotency_key="bill/c1/INV-1001/pay/1")
        assert replayed.id == payment.id
        await second.settle_due()
        assert (await rail.get_payment(payment.id)).status is RailPaymentStatus.settled

    # The settlement (and its event) was saved by settle_due itself, not by a request.
    third = bank()
    settled = [record.payment for record in third._payments.values()]
    assert [p.status.value for p in settled] == ["settled"]
    assert [event.type for event in third.undelivered_events] == []


def test_an_unreadable_state_file_is_set_aside_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "quickbooks.state"
    path.write_bytes(b"written by something else")
    assert StateFile(path).load() is None
    assert not path.exists()
    assert [p.name.split(".unreadable-")[0] for p in tmp_path.iterdir()] == ["quickbooks.state"]


async def test_a_payment_the_bank_settles_as_it_is_read_stays_settled_after_a_restart(
    tmp_path: Path,
) -> None:
    state = tmp_path / "bank.state"
    clock = Clock()

    def bank() -> SandboxBank:
        return SandboxBank(clock=clock, api_key="sk", inspector_token="i", state_file=state)

    first = bank()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, first.app))) as http:
        rail = SandboxBankRail(BANK_URL, "sk", http)
        payment = await rail.initiate(ach("80.00"), idempotency_key="bill/c1/INV-7/pay/1")
        clock.now += timedelta(days=2)
        assert (await rail.get_payment(payment.id)).status is RailPaymentStatus.settled

    # Settled by that read, its event queued once: neither settles nor announces it again.
    again = bank()
    assert [record.payment.status.value for record in again._payments.values()] == ["settled"]
    assert [delivery.event.type for delivery in again._deliveries] == ["payment.settled"]
