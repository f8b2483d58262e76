"""Capture through the API: a PDF read by its text layer (or a scan by OCR) waits for a
person when unsure, shows what it read, and goes on as corrected; credit notes become vendor
credits; a corrective invoice is held beside the bill it corrects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from accounting.scan.draft import DIFFERENCE_LINE
from accounting.scan.ocr import tools_missing
from sandbox.pdf_writer import render_png, text_pdf
from tests.starter.api_harness import ApiHarness, fresh_time_skipping_env, running_api

EINVOICES = Path(__file__).resolve().parents[1] / "accounting" / "einvoices"

SCANNED_BILL = [
    "Northwind Office Supply",
    "1 Harbor Way, Oakland, CA 94607",
    "Tax ID: 94-1234567",
    "",
    "INVOICE",
    "Invoice No: NW-PDF-7",
    "Invoice Date: 11/02/2026",
    "Due Date: 12/02/2026",
    "",
    "Bill To:",
    "Acme Corp",
    "",
    "Description                 Qty    Rate      Amount",
    "Printer paper                2    $50.00    $100.00",
    "Subtotal                                    $100.00",
    "Total Due                            USD    $190.00",
]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with fresh_time_skipping_env() as env, running_api(env, tmp_path) as harness:
        yield harness


async def _submit(api: ApiHarness, content: bytes, name: str, media: str) -> dict[str, Any]:
    response = await api.http.post(
        "/v1/bills", files={"file": (name, content, media)}, headers=api.auth("sam")
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_unsure_pdf_waits_shows_its_fields_and_goes_on_as_corrected(
    api: ApiHarness,
) -> None:
    accepted = await _submit(api, text_pdf([SCANNED_BILL]), "nw-pdf-7.pdf", "application/pdf")
    assert accepted["object"] == "bill"
    bill_id = accepted["id"]
    held = await api.until(bill_id, lambda s: s["status"] == "needs_review")
    assert any("do not add up" in r for r in held["state"]["review_reasons"])

    response = await api.http.get(f"/v1/bills/{bill_id}/capture", headers=api.auth("sam"))
    assert response.status_code == 200, response.text
    capture = response.json()
    assert capture["correctable"] is True
    fields = {f["name"]: f for f in capture["scan"]["fields"]}
    assert fields["document_number"]["value"] == "NW-PDF-7"
    assert fields["total"]["value"] == "190.00" and fields["total"]["needs_review"]
    assert fields["tax_id"]["value"] == "94-1234567"
    assert [ln["description"] for ln in capture["draft"]["lines"]] == [
        "Printer paper",
        DIFFERENCE_LINE,
    ]

    # A correction that does not hold together is refused, saying why; nothing changes.
    refused = await api.http.post(
        f"/v1/bills/{bill_id}/resolve",
        json={"corrections": {"total": "100.00"}},
        headers=api.auth("olivia"),
    )
    assert refused.status_code == 422, refused.text
    assert "does not hold together" in refused.json()["error"]["message"]
    assert (await api.bill(bill_id))["state"]["status"] == "needs_review"

    fixed = await api.http.post(
        f"/v1/bills/{bill_id}/resolve",
        json={
            "reason": "the total was misread",
            "corrections": {
                "total": "100.00",
                "lines": [
                    {
                        "description": "Printer paper",
                        "amount": "100.00",
                        "account": "Office Supplies",
                    }
                ],
            },
        },
        headers=api.auth("olivia"),
    )
    assert fixed.status_code == 202, fixed.text
    # Matched anew as corrected, approved automatically (under the limit), paid once.
    going = await api.until(bill_id, lambda s: s["status"] == "reconciled")
    assert going["state"]["total"] == "100.00"
    assert [p["amount"] for p in going["state"]["payments"]] == ["100.00"]
    audit = api.h.store.audit_for(bill_id)
    assert [(e.actor, e.summary) for e in audit if e.kind == "corrected"] == [
        ("olivia", "total 190.00 → 100.00; lines: 2 totalling 190.00 → 1 totalling 100.00")
    ]

    again = await api.http.post(
        f"/v1/bills/{bill_id}/resolve",
        json={"corrections": {"total": "90.00"}},
        headers=api.auth("olivia"),
    )
    assert again.status_code == 409, again.text


async def test_a_bill_capture_is_sure_of_has_no_capture_record(api: ApiHarness) -> None:
    from tests.starter.api_harness import sample_bill

    response = await api.submit_json(sample_bill("INV-CAPTURE-NONE", "120.00"))
    bill_id = response.json()["id"]
    got = await api.http.get(f"/v1/bills/{bill_id}/capture", headers=api.auth("sam"))
    assert got.status_code == 404
    assert "capture kept no record" in got.json()["error"]["message"]


@pytest.mark.skipif(bool(tools_missing()), reason="OCR tools missing")
async def test_a_scanned_image_is_read_by_ocr(api: ApiHarness) -> None:
    lines = [ln.replace("$190.00", "$100.00") for ln in SCANNED_BILL]
    image = render_png(text_pdf([lines]), dpi=300)
    accepted = await _submit(api, image, "scan.png", "image/png")
    bill_id = accepted["id"]
    body = await api.until(bill_id, lambda s: s["status"] not in ("received", "matching"))
    state = body["state"]
    assert state["document_number"] == "NW-PDF-7"
    assert state["total"] == "100.00"
    assert state["document"]["media_type"] == "image/png"
    capture = (await api.http.get(f"/v1/bills/{bill_id}/capture", headers=api.auth("sam"))).json()
    assert capture["scan"]["pages"][0]["from_text_layer"] is False
    assert all(0 < f["confidence"] < 1 for f in capture["scan"]["fields"] if f["value"])


async def test_a_credit_note_sent_as_a_bill_becomes_a_vendor_credit(api: ApiHarness) -> None:
    content = EINVOICES / "ubl-creditnote" / "en16931__CreditNote-Min_content_with_VAT.xml"
    accepted = await _submit(api, content.read_bytes(), "credit.xml", "application/xml")
    assert accepted["object"] == "credit"
    assert accepted["id"].startswith("credit/")
    progress = await api.http.get(f"/v1/credits/{accepted['id']}", headers=api.auth("sam"))
    assert progress.status_code == 200, progress.text
    listed = await api.listed()
    assert all(b["id"] != accepted["id"] for b in listed)


async def test_a_corrective_invoice_waits_beside_the_bill_it_corrects(api: ApiHarness) -> None:
    original = EINVOICES / "ubl-invoice" / "en16931__Invoice-Min_content_with_VAT.xml"
    text = original.read_text(encoding="utf-8")
    first = await _submit(api, text.encode(), "2018-112.xml", "application/xml")
    await api.h.until_recorded(first["id"], lambda row: row.document_number == "2018-112")
    corrective = (
        text.replace("<cbc:ID>2018-112</cbc:ID>", "<cbc:ID>2018-112-C</cbc:ID>", 1)
        .replace(
            "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>",
            "<cbc:InvoiceTypeCode>384</cbc:InvoiceTypeCode>",
        )
        .replace(
            "<cbc:BuyerReference>ACE22</cbc:BuyerReference>",
            "<cbc:BuyerReference>ACE22</cbc:BuyerReference><cac:BillingReference>"
            "<cac:InvoiceDocumentReference><cbc:ID>2018-112</cbc:ID>"
            "</cac:InvoiceDocumentReference></cac:BillingReference>",
        )
    )
    second = await _submit(api, corrective.encode(), "2018-112-C.xml", "application/xml")
    held = await api.until(second["id"], lambda s: s["status"] == "needs_review")
    reasons = " ".join(held["state"]["review_reasons"])
    assert "2018-112-C corrects invoice 2018-112" in reasons
    assert first["id"] in reasons


async def test_the_credits_route_takes_credit_notes_and_refuses_invoices(api: ApiHarness) -> None:
    invoice = EINVOICES / "ubl-invoice" / "en16931__Invoice-Min_content_with_VAT.xml"
    refused = await api.http.post(
        "/v1/credits",
        content=invoice.read_bytes(),
        headers=api.auth("sam", **{"Content-Type": "application/xml"}),
    )
    assert refused.status_code == 422, refused.text
    assert "not a credit note: submit it to POST /v1/bills" in refused.json()["error"]["message"]
    credit = EINVOICES / "ubl-creditnote" / "en16931__CreditNote-Min_content_without_VAT.xml"
    taken = await api.http.post(
        "/v1/credits",
        content=credit.read_bytes(),
        headers=api.auth("sam", **{"Content-Type": "application/xml"}),
    )
    assert taken.status_code == 202, taken.text
    assert taken.json()["id"].startswith("credit/")
