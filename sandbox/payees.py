"""The demo companies' vendors' bank details, seeded verified into the sandbox's payee master.

Stage data only: a real connection's payees come from an attested import of the ERP's vendor
master (`remit payees import`) or from reviewed changes. "Acme Corp" has none on purpose, so
the demo shows a new payee waiting for verification and two approvals.
"""

from __future__ import annotations

from accounting import Vendor
from accounting.payees import PayeeDetails, PayeeRail
from store import PayeeRow, PayeeStore

DEMO_PAYEES: dict[str, PayeeDetails] = {
    "Northwind Office Supply": PayeeDetails(
        account_name="Northwind Office Supply",
        routing_number="021000021",
        account_number="000123456789",
        rail=PayeeRail.ach,
        remittance_email="ar@northwind.example",
    ),
    "Globex Software": PayeeDetails(
        account_name="Globex Software",
        routing_number="026009593",
        account_number="004567891234",
        rail=PayeeRail.ach,
    ),
    "Initech Consulting": PayeeDetails(account_name="Initech Consulting", rail=PayeeRail.check),
    "Fabrikam GmbH": PayeeDetails(
        account_name="Fabrikam GmbH",
        iban="DE02120300000000202051",
        bic="BYLADEM1001",
        rail=PayeeRail.wire,
    ),
}
SANDBOX = "sandbox"


def seed_demo_payees(
    payees: PayeeStore, connection_id: str, vendors: list[Vendor]
) -> list[PayeeRow]:
    """Record the demo vendors' details as verified (once; a re-seed changes nothing)."""
    seeded = []
    for vendor in vendors:
        details = DEMO_PAYEES.get(vendor.name)
        if details is None or vendor.id is None:
            continue
        seeded.append(
            payees.record_verified(
                connection_id=connection_id,
                vendor_id=vendor.id,
                vendor_name=vendor.name,
                details=details,
                source=SANDBOX,
                verified_by=SANDBOX,
                verification_method="the sandbox's demo vendor data",
            )
        )
    return seeded
