"""Ids a person can use: bills as `bill/<connection>/<document number>-<hash>` (safe, bounded),
payment runs named by their connection."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starter.cli.runs import run_id_of
from workflows.models import DOCUMENT_NUMBER_IN_ID, bill_workflow_id


def test_a_bill_id_names_its_document_and_the_same_inputs_give_the_same_id() -> None:
    first = bill_workflow_id("demo-quickbooks", "k" * 64, "INV-1001")
    again = bill_workflow_id("demo-quickbooks", "k" * 64, "INV-1001")
    other_key = bill_workflow_id("demo-quickbooks", "another key", "INV-1001")

    assert re.fullmatch(r"bill/demo-quickbooks/INV-1001-[0-9a-f]{8}", first), first
    assert again == first  # an idempotent resubmit maps to the same workflow
    assert other_key != first and other_key.startswith("bill/demo-quickbooks/INV-1001-")


def test_the_document_number_is_made_safe_and_short() -> None:
    odd = bill_workflow_id("c1", "key", "  Rechnung Nr. 2026/0042 (Kopie) ÄÖ?&#%  ")
    long = bill_workflow_id("c1", "key", "A" * 500)
    empty = bill_workflow_id("c1", "key", "///")

    number = odd.split("/", 2)[2].rsplit("-", 1)[0]
    assert number == "Rechnung-Nr.-2026-0042-Kopie"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", odd.split("/", 2)[2])
    assert long == f"bill/c1/{'A' * DOCUMENT_NUMBER_IN_ID}-" + long.rsplit("-", 1)[1]
    assert re.fullmatch(r"bill/c1/bill-[0-9a-f]{8}", empty), empty


def test_bills_started_before_keep_the_first_form_of_id() -> None:
    # Without a document number: `bill/<connection>/<key>`, as every bill started before has.
    assert bill_workflow_id("demo-xero", "f" * 64) == f"bill/demo-xero/{'f' * 64}"


def test_a_connection_names_its_payment_run_of_today() -> None:
    today = datetime.now(UTC).date()

    # As `runs start` dates a run it starts (RemitClient.start_payment_run: today in UTC).
    assert run_id_of("demo-netsuite") == f"payment-run/demo-netsuite/{today.isoformat()}"
    assert run_id_of("payment-run/demo-xero/2026-11-20") == "payment-run/demo-xero/2026-11-20"
