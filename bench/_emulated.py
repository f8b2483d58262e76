"""Emulators for the benchmarks: bulk-seeded companies, served by uvicorn in a child process.

Bulk seeding creates one vendor and one bill through the platform's connector (so the stored
records are exactly what the emulator makes of a real write) and then copies those records in
the emulator's memory with fresh ids. Writing 100,000 bills through the API would measure the
emulators' duplicate checks (quadratic), not remit, so the copying reaches into each emulator's
storage: the only place in remit outside connectors/ that knows a platform's internals, and it
is a benchmark fixture, not product code.
"""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import multiprocessing.connection
import socket
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

import httpx
import uvicorn

from accounting import Bill, BillLine, Vendor
from connectors.base import ConnectionConfig
from connectors.registry import platform
from sandbox.netsuite import NetSuiteEmulator
from sandbox.quickbooks import QuickBooksEmulator
from sandbox.registry import DemoCompany, Emulator, new_emulator
from sandbox.xero import XeroEmulator

LOCALHOST = "127.0.0.1"

# The emulators model each platform's rate limits; a benchmark of remit's own cost lifts them.
UNTHROTTLED: dict[str, dict[str, Any]] = {
    "quickbooks": {"requests_per_minute": 10**9, "max_concurrent": 10**6},
    "xero": {"minute_limit": 10**9, "day_limit": 10**9, "concurrent_limit": 10**6},
    "netsuite": {"concurrency_limit": 10**6},
}


def lift_rate_limits(name: str, emulator: Emulator) -> None:
    """Lift an already built emulator's platform limits (for a stack that built it)."""
    for attribute, value in UNTHROTTLED[name].items():
        if not hasattr(emulator, attribute):
            raise AttributeError(f"the {name} emulator has no {attribute!r} limit any more")
        setattr(emulator, attribute, value)


@dataclass
class ServedEmulator:
    """What the parent learns about an emulator served by a child process."""

    platform: str
    base_url: str
    company: DemoCompany
    vendors: int
    bills: int

    def connection(self, connection_id: str, **settings: str) -> ConnectionConfig:
        return ConnectionConfig(
            id=connection_id,
            platform=self.platform,
            base_url=self.base_url,
            company_id=self.company.company_id,
            credentials=self.company.credentials,
            settings={**self.company.settings, **settings},
        )


async def _templates(emulator: Emulator, name: str, company: DemoCompany) -> tuple[str, str]:
    """Create one vendor and one bill through the connector; their ids in the emulator."""
    connection = ConnectionConfig(
        id="bench-seed",
        platform=name,
        base_url=f"http://{name}.emulator",
        company_id=company.company_id,
        credentials=company.credentials,
        settings=company.settings,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=cast(Any, emulator.app))
    ) as http:
        connector = platform(name).connector(connection, http)
        accounts = await connector.list_accounts()
        expense = next(a for a in accounts if a.name == "Office Supplies")
        vendor = await connector.create_vendor(
            Vendor(name="Bench Vendor 0", tax_id="00-0000000"),
            reference="bench-vendor-0",
            idempotency_key="bench-vendor-0",
        )
        assert vendor.id is not None
        bill = await connector.create_bill(
            Bill(
                vendor_id=vendor.id,
                issue_date=date(2026, 11, 2),
                due_date=date(2026, 12, 2),
                currency="USD",
                lines=[
                    BillLine(description="bench", amount=Decimal("123.45"), account_id=expense.id)
                ],
                total=Decimal("123.45"),
                document_number="BENCH-0",
            ),
            reference="bench-bill-0",
            idempotency_key="bench-bill-0",
        )
        assert bill.id is not None
        await connector.aclose()
    return vendor.id, bill.id


def seed_bulk(
    emulator: Emulator, name: str, company: DemoCompany, *, vendors: int, bills: int
) -> None:
    """Give the company `vendors` vendors and `bills` open bills (bill i → vendor i % V)."""
    vendor_id, bill_id = asyncio.run(_templates(emulator, name, company))
    if isinstance(emulator, QuickBooksEmulator):
        _seed_quickbooks(emulator, company, vendor_id, bill_id, vendors, bills)
    elif isinstance(emulator, XeroEmulator):
        _seed_xero(emulator, company, vendor_id, bill_id, vendors, bills)
    elif isinstance(emulator, NetSuiteEmulator):
        _seed_netsuite(emulator, company, vendor_id, bill_id, vendors, bills)
    else:  # pragma: no cover - a new platform needs its copier here
        raise NotImplementedError(f"no bulk seeding for {name}")


def _seed_quickbooks(
    emulator: QuickBooksEmulator,
    company: DemoCompany,
    vendor_id: str,
    bill_id: str,
    vendors: int,
    bills: int,
) -> None:
    realm = emulator.realms[company.company_id]
    vendor_template = realm.entities["Vendor"][vendor_id]
    bill_template = realm.entities["Bill"][bill_id]
    refs: list[tuple[str, str]] = [(vendor_id, vendor_template["DisplayName"])]
    for index in range(1, vendors):
        obj = copy.deepcopy(vendor_template)
        name = f"Bench Vendor {index}"
        obj.update(DisplayName=name, PrintOnCheckName=name, Notes=f"remit-ref:bench-vendor-{index}")
        emulator._stamp_new(realm, obj)
        realm.entities["Vendor"][obj["Id"]] = obj
        refs.append((obj["Id"], name))
    for index in range(1, bills):
        obj = copy.deepcopy(bill_template)
        ref_id, ref_name = refs[index % len(refs)]
        obj.update(
            VendorRef={"value": ref_id, "name": ref_name},
            DocNumber=f"BENCH-{index}",
            PrivateNote=f"remit-ref:bench-bill-{index}",
        )
        emulator._stamp_new(realm, obj)
        realm.entities["Bill"][obj["Id"]] = obj


def _seed_xero(
    emulator: XeroEmulator,
    company: DemoCompany,
    vendor_id: str,
    bill_id: str,
    vendors: int,
    bills: int,
) -> None:
    tenant = emulator.tenants[company.company_id]
    contact_template = tenant.contacts[vendor_id]
    invoice_template = tenant.invoices[bill_id]
    contact_ids = [vendor_id]
    for index in range(1, vendors):
        obj = copy.deepcopy(contact_template)
        obj.update(
            ContactID=str(uuid.uuid4()),
            Name=f"Bench Vendor {index}",
            ContactNumber=f"bench-vendor-{index}",
        )
        tenant.contacts[obj["ContactID"]] = obj
        contact_ids.append(obj["ContactID"])
    for index in range(1, bills):
        obj = copy.deepcopy(invoice_template)
        obj.update(
            InvoiceID=str(uuid.uuid4()),
            Contact={"ContactID": contact_ids[index % len(contact_ids)]},
            InvoiceNumber=f"BENCH-{index}",
            Url=f"https://remit.invalid/ref/bench-bill-{index}",
        )
        for line in obj["LineItems"]:
            line["LineItemID"] = str(uuid.uuid4())
        tenant.invoices[obj["InvoiceID"]] = obj


def _seed_netsuite(
    emulator: NetSuiteEmulator,
    company: DemoCompany,
    vendor_id: str,
    bill_id: str,
    vendors: int,
    bills: int,
) -> None:
    books = emulator.companies[company.company_id]
    vendor_template = books.table("vendor")[vendor_id]
    bill_template = books.table("vendorBill")[bill_id]
    vendor_ids = [vendor_id]
    for index in range(1, vendors):
        obj = copy.deepcopy(vendor_template)
        obj.pop("externalId", None)
        name = f"Bench Vendor {index}"
        obj.update(
            id=books.new_id("vendor"),
            companyName=name,
            entityId=name,
            comments=f"[remit-ref:bench-vendor-{index}]",
        )
        books.table("vendor")[obj["id"]] = obj
        vendor_ids.append(obj["id"])
    for index in range(1, bills):
        obj = copy.deepcopy(bill_template)
        obj.pop("externalId", None)
        obj.update(
            id=books.new_id("vendorBill"),
            entity={"id": vendor_ids[index % len(vendor_ids)]},
            tranId=f"BENCH-{index}",
            memo=f"[remit-ref:bench-bill-{index}]",
        )
        books.table("vendorBill")[obj["id"]] = obj


def _serve(
    name: str,
    vendors: int,
    bills: int,
    unthrottled: bool,
    channel: multiprocessing.connection.Connection,
) -> None:
    emulator = new_emulator(name, **(UNTHROTTLED[name] if unthrottled else {}))
    company = emulator.seed_demo_company()
    seed_vendors = seed_bills = 0
    if bills or vendors:
        seed_bulk(emulator, name, company, vendors=max(vendors, 1), bills=max(bills, 1))
        seed_vendors, seed_bills = max(vendors, 1), max(bills, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOCALHOST, 0))
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, which a plain
    # socket.socket() is not; without it every keep-alive response waits ~40 ms for an ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(1024)  # connections queue here until uvicorn accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        cast(Any, emulator.app), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    channel.send(
        ServedEmulator(
            platform=name,
            base_url=f"http://{LOCALHOST}:{port}",
            company=company,
            vendors=seed_vendors,
            bills=seed_bills,
        )
    )
    server.run(sockets=[sock])


class EmulatorProcess:
    """One emulator, seeded and served in its own process (so it has its own core and memory)."""

    def __init__(self, name: str, *, vendors: int = 0, bills: int = 0, unthrottled: bool = True):
        context = multiprocessing.get_context("spawn")
        self._parent, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(name, vendors, bills, unthrottled, child),
            daemon=True,
            name=f"emulator-{name}",
        )
        self.name = name
        self.served: ServedEmulator | None = None

    def start(self, timeout: float = 600) -> ServedEmulator:
        self.process.start()
        if not self._parent.poll(timeout):
            self.stop()
            raise RuntimeError(f"the {self.name} emulator did not start within {timeout:.0f}s")
        self.served = cast(ServedEmulator, self._parent.recv())
        return self.served

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
