"""VAT categories to the ERP's tax codes: matched per line, posted per line, totals kept, on
every platform against its emulator over real HTTP."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest

from accounting import Bill, BillDraft, BillLine, DraftLine
from accounting.formats import parse_document
from activities.match import MatchActivities
from connectors.base import Connector, Rejected, pick_tax_code
from connectors.mirror import MirrorKind, MirrorSource
from tests.connectors.conftest import Harness, unique
from workflows.models import CodedLine, MatchRequest, MatchResult

SAMPLES = Path(__file__).parents[1] / "accounting" / "einvoices" / "ubl-invoice"

# The demo companies' purchase VAT codes, by the name each platform shows a person.
EXPECTED_CODES: dict[str, dict[str, str]] = {
    "quickbooks": {
        "S:25": "25.0% S",
        "S:12": "12.0% R",
        "Z": "0.0% Z",
        "E": "Exempt",
        "AE": "0.0% RC",
        "K": "0.0% ECG",
        "O": "No VAT",
    },
    "xero": {
        "S:25": "INPUT2",
        "S:12": "TAX002",
        "Z": "ZERORATEDINPUT",
        "E": "EXEMPTEXPENSES",
        "AE": "REVERSECHARGES",
        "K": "ECACQUISITIONS",
        "O": "NONE",
    },
    "netsuite": {
        "S:25": "SE-S-25",
        "S:12": "SE-R-12",
        "Z": "SE-Z",
        "E": "SE-E",
        "AE": "SE-RC",
        "K": "SE-EC",
        "O": "SE-O",
    },
}


class _One:
    """A ConnectorProvider with the harness's connector for every connection."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector

    async def connector(self, connection_id: str) -> Connector:
        return self._connector

    async def aclose(self) -> None:
        return None


def _sample(name: str, *, currency: str = "EUR") -> BillDraft:
    """An EN 16931 sample as capture reads it, in a currency the demo vendor bills in and dated
    today, when the emulators have exchange rates (the samples are Swedish and Danish, some
    years old; the VAT on them is what matters here)."""
    draft = parse_document((SAMPLES / name).read_bytes()).draft
    return draft.model_copy(
        update={
            "currency": currency,
            "document_number": unique("VAT")[:20],
            "issue_date": date.today(),
            "due_date": None,
        }
    )


async def _match(h: Harness, draft: BillDraft, connector: Connector | None = None) -> MatchResult:
    vendor = await h.vendor("Fabrikam GmbH")
    return await MatchActivities(_One(connector or h.connector)).match_bill(
        MatchRequest(
            workflow_id=f"bill/{h.name}/{unique('tax')}",
            connection_id="conn",
            draft=draft,
            vendor_id=vendor.id,
            account="Office Supplies",
        )
    )


def _bill(h: Harness, draft: BillDraft, vendor_id: str, lines: list[CodedLine]) -> Bill:
    """The bill as BillWorkflow posts it: the draft's header, the coded lines."""
    return Bill(
        vendor_id=vendor_id,
        document_number=draft.document_number,
        issue_date=draft.issue_date,
        due_date=draft.due_date,
        currency=draft.currency,
        lines=[
            BillLine(
                description=line.description,
                amount=line.amount,
                account_id=line.account_id,
                tracking=line.tracking,
                tax_code_id=line.tax_code_id,
            )
            for line in lines
        ],
        tax_amount=draft.tax_amount,
        total=draft.total,
    )


async def _code_named(h: Harness, key: str) -> str:
    name = EXPECTED_CODES[h.name][key]
    for rate in await h.connector.list_tax_rates():
        if rate.name == name or rate.code == name:
            return rate.id
    raise AssertionError(f"the demo company has no tax code named {name!r}")


# NetSuite's demo subsidiary keeps German VAT (19 %, 7 %) and US sales tax only: the Swedish
# codes are set up here through NetSuite's own record service, as an administrator would.
NETSUITE_SWEDISH_VAT = (
    ("SE-S-25", "VAT 25 % (standard)", "25"),
    ("SE-R-12", "VAT 12 % (reduced)", "12"),
    ("SE-Z", "Zero rated purchases", "0"),
    ("SE-E", "Exempt purchases", "0"),
    ("SE-RC", "Reverse charge purchases (buyer accounts for VAT)", "0"),
    ("SE-EC", "EC acquisitions (buyer accounts for VAT)", "0"),
    ("SE-O", "Outside the scope of VAT", "0"),
)


async def _netsuite_post(h: Harness, record_type: str, body: dict[str, object]) -> str:
    response = await h.http.post(
        f"{h.connection().base_url}/services/rest/record/v1/{record_type}",
        headers={
            "Authorization": f"Bearer {h.company.credentials['access_token']}",
            "Content-Type": "application/json",
        },
        content=json.dumps(body),
    )
    assert response.status_code == 204, response.text
    return response.headers["Location"].rsplit("/", 1)[-1]


@pytest.fixture
async def vat_harness(harness: Harness) -> Harness:
    if harness.name not in EXPECTED_CODES:
        pytest.skip(f"{harness.name}: no VAT codes in its demo company")
    if harness.name == "netsuite":
        vat = await _netsuite_post(harness, "taxType", {"name": "Mervärdesskatt", "country": "SE"})
        for name, description, rate in NETSUITE_SWEDISH_VAT:
            await _netsuite_post(
                harness,
                "salesTaxItem",
                {"name": name, "description": description, "rate": rate, "taxType": {"id": vat}},
            )
    return harness


async def _post_and_read(h: Harness, draft: BillDraft) -> tuple[MatchResult, Bill]:
    result = await _match(h, draft)
    assert result.problems == []
    assert result.vendor is not None and result.vendor.id is not None
    key = unique("tax-bill")
    created = await h.connector.create_bill(
        _bill(h, draft, result.vendor.id, result.lines), reference=key, idempotency_key=key
    )
    assert created.id is not None
    return result, await h.connector.get_bill(created.id)


async def test_standard_rated_lines_book_with_the_code_of_their_rate(vat_harness: Harness) -> None:
    h = vat_harness
    draft = _sample("en16931__ubl-tc434-example4.xml")  # S 25%, S 25%, S 12%
    result, read = await _post_and_read(h, draft)

    s25, s12 = await _code_named(h, "S:25"), await _code_named(h, "S:12")
    assert [(line.tax_category, line.tax_rate) for line in result.lines] == [
        ("S", Decimal("25")),
        ("S", Decimal("25")),
        ("S", Decimal("12")),
    ]
    assert [line.tax_code_id for line in result.lines] == [s25, s25, s12]
    assert [line.tax_code_id for line in read.lines] == [s25, s25, s12]
    # 375.00 at 25% and 300.00 at 12%: the ERP's tax and total are the document's, to the cent.
    assert (read.tax_amount, read.total) == (draft.tax_amount, draft.total)
    assert read.total == Decimal("4675.00")


async def test_the_minimal_vat_invoice_books_at_25_percent(vat_harness: Harness) -> None:
    h = vat_harness
    draft = _sample("en16931__Invoice-Min_content_with_VAT.xml")
    _, read = await _post_and_read(h, draft)
    assert [line.tax_code_id for line in read.lines] == [await _code_named(h, "S:25")]
    assert (read.tax_amount, read.total) == (Decimal("100.00"), Decimal("500.00"))


async def test_a_reverse_charge_invoice_books_with_the_reverse_charge_code(
    vat_harness: Harness,
) -> None:
    h = vat_harness
    draft = _sample("en16931__BIS_Billing_30-OmvandSkattskyldighet.xml")  # AE, 0 tax
    result, read = await _post_and_read(h, draft)
    reverse = await _code_named(h, "AE")
    assert [line.tax_category for line in result.lines] == ["AE", "AE"]
    assert [line.tax_code_id for line in read.lines] == [reverse, reverse]
    # The buyer self-assesses: nothing is added to what the vendor is owed.
    assert (read.tax_amount, read.total) == (Decimal("0"), Decimal("140000.00"))


@pytest.mark.parametrize("category", ["Z", "E", "K", "O"])
async def test_each_category_finds_the_code_that_means_it(
    vat_harness: Harness, category: str
) -> None:
    h = vat_harness
    rate = None if category == "O" else Decimal("0")
    found = await h.connector.tax_code_for(category, rate)
    assert found is not None and found.id == await _code_named(h, category)


async def test_a_category_without_a_code_holds_the_bill_for_review(vat_harness: Harness) -> None:
    h = vat_harness
    draft = _sample("en16931__Invoice-Min_content_with_VAT.xml")
    [line] = draft.lines
    draft = draft.model_copy(
        update={
            "lines": [line.model_copy(update={"tax_rate": Decimal("21")})],
            "tax_amount": Decimal("84.00"),
            "total": Decimal("484.00"),
        }
    )
    result = await _match(h, draft)
    assert [line.tax_code_id for line in result.lines] == [None]
    [problem] = result.problems
    assert problem.startswith("line 1: no tax code in the ERP for VAT S 21% — ")
    assert '"S:21"' in problem


async def test_the_connection_setting_names_the_code_first(vat_harness: Harness) -> None:
    h = vat_harness
    s12 = await _code_named(h, "S:12")
    connector = h.connect(settings={"tax_codes": json.dumps({"s:19.0": s12, "AE": s12})})
    assert (await connector.tax_code_for("S", Decimal("19.00"))).id == s12  # type: ignore[union-attr]
    assert (await connector.tax_code_for("AE", Decimal("0"))).id == s12  # type: ignore[union-attr]
    # Everything the setting leaves out is still chosen by rate and meaning.
    s25 = await connector.tax_code_for("S", Decimal("25"))
    assert s25 is not None and s25.id == await _code_named(h, "S:25")


async def test_a_malformed_setting_is_refused_saying_how_to_write_it(
    vat_harness: Harness,
) -> None:
    connector = vat_harness.connect(settings={"tax_codes": "S:19=7"})
    with pytest.raises(Rejected, match='"S:19": "<tax code id>"'):
        await connector.tax_code_for("S", Decimal("19"))


async def test_lines_without_a_category_keep_todays_coding(harness: Harness) -> None:
    draft = BillDraft(
        document_number=unique("JSON")[:20],
        issue_date=date.today(),
        currency="EUR",
        vendor={"name": "Fabrikam GmbH"},  # type: ignore[arg-type]
        lines=[DraftLine(description="no VAT said", amount=Decimal("80.00"))],
        tax_amount=Decimal("20.00"),
        total=Decimal("100.00"),
    )
    result = await _match(harness, draft)
    assert result.problems == []
    [line] = result.lines
    assert (line.tax_category, line.tax_rate, line.tax_code_id) == (None, None, None)


def test_a_plain_rate_is_never_the_reverse_charge_code_of_the_same_percent() -> None:
    from accounting import TaxRate

    rates = [
        TaxRate(id="rc", name="Reverse charge 25%", rate_percent=Decimal("25")),
        TaxRate(id="ec", name="25% EC acquisitions", rate_percent=Decimal("25")),
        TaxRate(id="s", name="Standard 25%", rate_percent=Decimal("25")),
    ]
    assert pick_tax_code(rates, "S", Decimal("25.00")).id == "s"  # type: ignore[union-attr]
    assert pick_tax_code(rates, "AE", Decimal("0")).id == "rc"  # type: ignore[union-attr]
    assert pick_tax_code(rates, "K", Decimal("0")).id == "ec"  # type: ignore[union-attr]
    assert pick_tax_code(rates, "S", Decimal("19")) is None
    assert pick_tax_code(rates, "Z", Decimal("0")) is None


async def _platform_post(h: Harness, path: str, body: dict[str, object]) -> dict[str, object]:
    """A write through the platform's own API, as another application would make it."""
    response = await h.http.post(
        f"{h.connection().base_url}{path}",
        headers={
            "Authorization": f"Bearer {h.company.credentials['access_token']}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **({"Xero-tenant-id": h.company.company_id} if h.name == "xero" else {}),
        },
        content=json.dumps(body),
    )
    assert response.is_success, response.text
    return json.loads(response.text) if response.content else {}


async def test_the_platform_computes_the_tax_from_the_codes_when_no_total_is_given(
    vat_harness: Harness,
) -> None:
    h = vat_harness
    vendor = await h.vendor("Fabrikam GmbH")
    assert vendor.id is not None
    account = await h.account_id("Office Supplies")
    s25, s12 = await _code_named(h, "S:25"), await _code_named(h, "S:12")
    lines = [("100.05", s25), ("33.33", s12), ("10.00", s25)]
    # QBO and NetSuite: 25 % of 110.05 is 27.5125, 12 % of 33.33 is 3.9996, so 27.51 + 4.00;
    # Xero rounds each line: 25.01 + 4.00 + 2.50. 31.51 either way.
    if h.name == "quickbooks":
        body: dict[str, object] = {
            "VendorRef": {"value": vendor.id},
            "CurrencyRef": {"value": "EUR"},
            "GlobalTaxCalculation": "TaxExcluded",
            "Line": [
                {
                    "Amount": amount,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {
                        "AccountRef": {"value": account},
                        "TaxCodeRef": {"value": code},
                    },
                }
                for amount, code in lines
            ],
        }
        path = f"/v3/company/{h.company.company_id}/bill"
        created = await _platform_post(h, path, body)
        bill_id = str(created["Bill"]["Id"])  # type: ignore[index]
    elif h.name == "xero":
        invoice = {
            "Type": "ACCPAY",
            "Contact": {"ContactID": vendor.id},
            "CurrencyCode": "EUR",
            "LineAmountTypes": "Exclusive",
            "Status": "AUTHORISED",
            "LineItems": [
                {"LineAmount": amount, "Quantity": 1, "UnitAmount": amount, "AccountID": account,
                 "TaxType": code}
                for amount, code in lines
            ],
        }  # fmt: skip
        created = await _platform_post(h, "/api.xro/2.0/Invoices", {"Invoices": [invoice]})
        bill_id = str(created["Invoices"][0]["InvoiceID"])  # type: ignore[index]
    else:
        number = unique("NS")[:20]
        body = {
            "entity": {"id": vendor.id},
            "subsidiary": {"id": h.company.settings["subsidiary_id"]},
            "tranId": number,
            "expense": {
                "items": [
                    {"account": {"id": account}, "amount": amount, "taxCode": {"id": code}}
                    for amount, code in lines
                ]
            },
        }
        await _platform_post(h, "/services/rest/record/v1/vendorBill", body)
        [found] = await h.connector.find_bills(vendor_id=vendor.id, document_number=number)
        assert found.id is not None
        bill_id = found.id
    read = await h.connector.get_bill(bill_id)
    assert [line.tax_code_id for line in read.lines] == [s25, s12, s25]
    assert (read.tax_amount, read.total) == (Decimal("31.51"), Decimal("174.89"))


def test_xero_line_taxes_carry_the_documents_rounding_on_the_line_taxed_most() -> None:
    from connectors.xero.wire import line_taxes

    lines = [
        BillLine(description=str(n), amount=Decimal("0.33"), account_id="a", tax_code_id="S25")
        for n in range(3)
    ] + [BillLine(description="prepaid", amount=Decimal("1.00"), account_id="a")]
    # 25 % of 0.33 is 0.0825: 0.08 a line, 0.24 in all; the document says 0.25 (of 0.99).
    taxes = line_taxes(lines, Decimal("0.25"), {"S25": Decimal("25")})
    assert taxes == [Decimal("0.08"), Decimal("0.08"), Decimal("0.09"), Decimal("0")]
    assert sum(taxes) == Decimal("0.25")


async def test_the_books_mirror_keeps_each_lines_tax_code(vat_harness: Harness) -> None:
    h = vat_harness
    draft = _sample("en16931__ubl-tc434-example4.xml")
    _, read = await _post_and_read(h, draft)
    source = cast(MirrorSource, h.connector)
    mirrored: dict[str, object] | None = None
    cursor: str | None = None
    while mirrored is None:
        page = await source.read_mirror_page(
            MirrorKind.bills, since=None, cursor=cursor, page_size=50
        )
        mirrored = next((r.data for r in page.records if r.platform_id == read.id), None)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert mirrored is not None, f"bill {read.id} is not in the mirror's pass"
    lines = cast(list[dict[str, object]], mirrored["lines"])
    assert [line["tax_code_id"] for line in lines] == [line.tax_code_id for line in read.lines]


async def _sales_only_code(h: Harness) -> str:
    """A code the platform keeps for sales only (US sales tax), by its own listing."""
    source = cast(MirrorSource, h.connector)
    page = await source.read_mirror_page(
        MirrorKind.tax_rates, since=None, cursor=None, page_size=100
    )
    names = {"quickbooks": "California", "xero": "Tax on Sales"}
    [record] = [r for r in page.records if r.data.get("name") == names[h.name]]
    return record.platform_id.removeprefix("TaxCode:")


@pytest.mark.parametrize("which", ["unknown", "sales only"])
async def test_a_code_bills_cannot_carry_is_refused_by_the_platform(
    vat_harness: Harness, which: str
) -> None:
    h = vat_harness
    if which == "sales only" and h.name == "netsuite":
        pytest.skip("NetSuite's SuiteTax codes are not split into sales and purchase codes")
    code = "999999" if which == "unknown" else await _sales_only_code(h)
    vendor = await h.vendor("Fabrikam GmbH")
    assert vendor.id is not None
    bill = Bill(
        vendor_id=vendor.id,
        document_number=unique("BAD")[:20],
        issue_date=date.today(),
        currency="EUR",
        lines=[
            BillLine(
                description="taxed",
                amount=Decimal("100.00"),
                account_id=await h.account_id("Office Supplies"),
                tax_code_id=code,
            )
        ],
        tax_amount=Decimal("25.00"),
        total=Decimal("125.00"),
    )
    key = unique("bad-code")
    with pytest.raises(Rejected):
        await h.connector.create_bill(bill, reference=key, idempotency_key=key)
