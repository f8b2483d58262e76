"""BusinessCentralConnector: the Connector protocol over Business Central API v2.0 (OData)."""

from __future__ import annotations

import mimetypes
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from accounting import (
    Account,
    Attachment,
    Bill,
    BillCreditMemo,
    BillPayment,
    BillPaymentLine,
    BillStatus,
    CreditApplication,
    CurrencyCode,
    ExchangeRate,
    NewAccount,
    Page,
    TaxRate,
    TrackingCategory,
    Vendor,
    VendorBankAccount,
    VendorChanges,
)
from connectors.base import (
    AuthExpired,
    BillHeader,
    Changes,
    Conflict,
    ConnectionConfig,
    ConnectionRevoked,
    ConnectorError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    parse_retry_after,
    pick_tax_code,
    tax_code_overrides,
)
from connectors.business_central import wire
from connectors.business_central.auth import AUTH
from connectors.business_central.mirror import BusinessCentralMirror
from connectors.business_central.wire import JSONObject
from connectors.http import BearerTokens, HttpClient
from connectors.mirror import MirrorKind, SyncPage
from connectors.oauth import Credentials, OnTokens, TokenKeeper, TokenSet
from connectors.retries import read_attempts

PLATFORM = wire.PLATFORM_NAME
DEFAULT_PAGE_SIZE = 100
DEFAULT_ENVIRONMENT = "production"
# BC's operational limits name no wait for a 429; the 5-minute window is sliding.
THROTTLE_WAIT = timedelta(seconds=30)
INVOICE_EXPAND = "purchaseInvoiceLines($expand=dimensionSetLines)"
# How many OR-ed clauses one $filter carries (keeps the URL short).
FILTER_CLAUSES_PER_CALL = 20


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = wire.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return (str(error.get("code")) if error.get("code") else None), str(
            error.get("message") or ""
        )
    return None, response.text.strip()[:500]


def classify(response: httpx.Response) -> ConnectorError:
    """Map a failed Business Central answer into the connector error taxonomy."""
    status = response.status_code
    code, message = _error_body(response)
    common: dict[str, Any] = {"platform": PLATFORM, "status": status, "code": code}
    what = f"{response.request.method} {response.request.url.path}"
    text = message or f"Business Central answered {status} to {what}"
    if status == 429:
        wait = parse_retry_after(response.headers.get("retry-after"), THROTTLE_WAIT)
        return RateLimited(
            f"Business Central throttled the call: {text}", retry_after=wait, **common
        )
    if status == 401:
        return AuthExpired(text, **common)
    if status == 403:
        return ConnectionRevoked(
            f"{text}: the Entra app lacks permission in this company (a person must fix its "
            "permission sets)",
            **common,
        )
    if status == 404:
        return NotFound(text, **common)
    if status in (409, 412) or code == "Request_EntityChanged":
        return Conflict(f"{text} (re-read the record, then write again)", **common)
    if status in (408, 504):
        # The operation may still complete on the server after the gateway gave up.
        if response.request.method in ("GET", "HEAD"):
            return Unavailable(text, **common)
        return OutcomeUnknown(
            f"{what} timed out in Business Central ({status}); look the object up before retrying",
            **common,
        )
    if status >= 500:
        return Unavailable(text, **common)
    return Rejected(text, **common)


class BusinessCentralConnector:
    """One Business Central company reached through one connection."""

    platform = PLATFORM

    def __init__(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> None:
        self.connection = connection
        self._http = http
        # Client credentials: a renewal asks Entra for a new token (nothing rotates). As on
        # every platform, renewals happen when `on_tokens` is given to hear of them.
        self.tokens = TokenKeeper(connection.credentials, self._renew, on_tokens=on_tokens)
        self._client = HttpClient(
            http,
            platform=PLATFORM,
            auth=BearerTokens(self.tokens),
            error_for=classify,
            read_attempts=read_attempts(connection.settings),
        )
        tenant = connection.credentials.get("tenant_id") or connection.settings.get("tenant_id")
        if not tenant:
            raise Rejected(
                f"connection {connection.id}: Business Central needs the tenant id (credential "
                "tenant_id)",
                platform=PLATFORM,
            )
        environment = connection.settings.get("environment", DEFAULT_ENVIRONMENT)
        self._root = f"{connection.base_url.rstrip('/')}/v2.0/{tenant}/{environment}/api/v2.0"
        self._company = f"{self._root}/companies({connection.company_id})"
        self._page_size = int(connection.settings.get("page_size", DEFAULT_PAGE_SIZE))
        self._etags: dict[str, str] = {}
        self._dimension_of: dict[str, str] | None = None
        self._home_currency: str | None = None
        self._mirror = BusinessCentralMirror(self)

    async def aclose(self) -> None:
        # The http client is injected and owned by the caller.
        return None

    async def _renew(self, credentials: Credentials) -> TokenSet:
        return await AUTH.renew(self._http, self.connection.base_url, credentials)

    # --- transport -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self._company}/{path}"

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        etag: str | None = None,
    ) -> JSONObject:
        headers = {"If-Match": etag} if etag else None
        return await self._client.send_json(
            method, self._url(path), params=params, json=body, headers=headers
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> None:
        await self._client.send(method, self._url(path), **kwargs)

    async def _page(
        self, path: str, params: dict[str, str] | None, cursor: str | None
    ) -> tuple[list[JSONObject], str | None]:
        """One server-driven page: its items and the @odata.nextLink to follow, if any."""
        headers = {"Prefer": f"odata.maxpagesize={self._page_size}"}
        if cursor:
            # Follow only links into this company's API: a cursor elsewhere would carry the
            # token to another host.
            if not cursor.startswith(self._company + "/"):
                raise Rejected(f"not a Business Central page cursor: {cursor!r}", platform=PLATFORM)
            payload = await self._client.send_json("GET", cursor, headers=headers)
        else:
            payload = await self._client.send_json(
                "GET", self._url(path), params=params, headers=headers
            )
        items = list(payload.get("value") or [])
        for item in items:
            if item.get("id") and item.get("@odata.etag"):
                self._etags[str(item["id"])] = str(item["@odata.etag"])
        next_link = payload.get("@odata.nextLink")
        return items, str(next_link) if next_link else None

    async def _all(self, path: str, params: dict[str, str] | None = None) -> list[JSONObject]:
        items: list[JSONObject] = []
        cursor: str | None = None
        while True:
            found, cursor = await self._page(path, params, cursor)
            items.extend(found)
            if cursor is None:
                return items

    async def _entity(self, path: str, params: dict[str, str] | None = None) -> JSONObject:
        raw = await self._json("GET", path, params=params)
        if raw.get("id") and raw.get("@odata.etag"):
            self._etags[str(raw["id"])] = str(raw["@odata.etag"])
        return raw

    # --- the books' mirror (connectors.mirror.MirrorSource; see mirror.py) ----------------

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return self._mirror.mirror_kinds()

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        return await self._mirror.read_mirror_page(
            kind, since=since, cursor=cursor, page_size=page_size
        )

    # --- reads -----------------------------------------------------------------------------

    async def list_accounts(self) -> list[Account]:
        return [wire.account_from_bc(raw) for raw in await self._all("accounts")]

    async def list_tracking_categories(self) -> list[TrackingCategory]:
        dimensions = await self._all("dimensions")
        values = await self._all("dimensionValues")
        self._dimension_of = {str(v["id"]): str(v["dimensionId"]) for v in values}
        return wire.tracking_from_bc(dimensions, values)

    async def list_vendors(self, cursor: str | None = None) -> Page[Vendor]:
        items, next_link = await self._page("vendors", None, cursor)
        return Page[Vendor](
            items=[wire.vendor_from_bc(raw) for raw in items], next_cursor=next_link
        )

    async def get_vendor(self, vendor_id: str) -> Vendor:
        return wire.vendor_from_bc(await self._entity(f"vendors({_key(vendor_id)})"))

    async def find_vendors(
        self, *, tax_id: str | None = None, name: str | None = None
    ) -> list[Vendor]:
        clauses = []
        if tax_id:
            clauses.append(f"taxRegistrationNumber eq {wire.odata_string(tax_id)}")
        if name:
            clauses.append(f"displayName eq {wire.odata_string(name.strip())}")
        if not clauses:
            return []
        raws = await self._all("vendors", {"$filter": " and ".join(clauses)})
        return [wire.vendor_from_bc(raw) for raw in raws]

    async def home_currency(self) -> CurrencyCode:
        if self._home_currency is None:
            info = await self._all("companyInformation")
            code = str(info[0].get("currencyCode") or "") if info else ""
            if not code:
                raise Unavailable(
                    "Business Central's companyInformation names no currency", platform=PLATFORM
                )
            self._home_currency = code
        return self._home_currency

    async def _bills(self, raws: list[JSONObject], reference: str | None = None) -> list[Bill]:
        """Purchase invoices as bills, open ones with the payments that settled part of them."""
        home = await self.home_currency()
        paid = await self._paid_amounts(raws)
        return [
            wire.bill_from_bc(
                raw, home_currency=home, reference=reference, paid=paid.get(str(raw.get("number")))
            )
            for raw in raws
        ]

    async def _paid_amounts(self, raws: list[JSONObject]) -> dict[str, Decimal]:
        """What the posted payments settled of each open invoice (by invoice number) that shows
        no remaining amount of its own: one G/L entry query per few invoices."""
        numbers = sorted(
            {
                str(raw.get("number"))
                for raw in raws
                if raw.get("status") == "Open" and "remainingAmount" not in raw
            }
        )
        paid: dict[str, Decimal] = {}
        for start in range(0, len(numbers), FILTER_CLAUSES_PER_CALL):
            chunk = numbers[start : start + FILTER_CLAUSES_PER_CALL]
            where = " or ".join(
                f"description eq {wire.odata_string(wire.payment_description(n))}" for n in chunk
            )
            for entry in await self._payment_entries(f"({where})"):
                number = wire.invoice_number_of_payment(str(entry.get("description") or ""))
                credit = wire.decimal(entry.get("creditAmount"))
                if number and credit > 0:
                    paid[number] = paid.get(number, Decimal("0")) + credit
        return paid

    async def list_bills(self, cursor: str | None = None) -> Page[Bill]:
        items, next_link = await self._page("purchaseInvoices", {"$expand": INVOICE_EXPAND}, cursor)
        return Page[Bill](items=await self._bills(items), next_cursor=next_link)

    async def get_bill(self, bill_id: str) -> Bill:
        home = await self.home_currency()
        raw = await self._entity(f"purchaseInvoices({_key(bill_id)})", {"$expand": INVOICE_EXPAND})
        if raw.get("status") in ("Draft", "In Review"):
            return wire.bill_from_bc(raw, home_currency=home)
        payments = await self._payments_of_invoice(str(raw["number"]))
        paid = sum(
            (
                line.amount
                for payment in payments
                for line in payment.lines
                if line.bill_id.lower() == str(raw["id"]).lower()
            ),
            Decimal("0"),
        )
        bill = wire.bill_from_bc(raw, home_currency=home, paid=paid)
        return bill.model_copy(update={"payment_ids": [p.id for p in payments if p.id]})

    async def _vendor_invoices(self, vendor_id: str, extra: str = "") -> list[JSONObject]:
        where = f"vendorId eq {_guid(vendor_id)}" + (f" and {extra}" if extra else "")
        return await self._all("purchaseInvoices", {"$filter": where, "$expand": INVOICE_EXPAND})

    async def find_bills(self, *, vendor_id: str, document_number: str | None = None) -> list[Bill]:
        extra = (
            f"vendorInvoiceNumber eq {wire.odata_string(document_number)}"
            if document_number
            else ""
        )
        return await self._bills(await self._vendor_invoices(vendor_id, extra))

    async def find_bill_headers(self, *, vendor_id: str) -> list[BillHeader]:
        return [BillHeader.of(bill) for bill in await self.find_bills(vendor_id=vendor_id)]

    async def _invoice_by_reference(self, reference: str, vendor_id: str) -> JSONObject | None:
        for raw in await self._vendor_invoices(vendor_id):
            if wire.carries_reference(list(raw.get("purchaseInvoiceLines") or []), reference):
                return raw
        return None

    async def find_bill_by_reference(self, reference: str, *, vendor_id: str) -> Bill | None:
        raw = await self._invoice_by_reference(reference, vendor_id)
        if raw is None:
            return None
        [bill] = await self._bills([raw], reference=reference)
        return bill

    async def get_vendor_bank_accounts(self, vendor_id: str) -> list[VendorBankAccount]:
        # API v2.0 has no vendor bank account entity; the vendor must exist all the same.
        await self._entity(f"vendors({_key(vendor_id)})")
        return []

    async def get_exchange_rate(self, currency: str, on: date) -> ExchangeRate | None:
        """The company's rate for `currency` on `on` (its latest currencyExchangeRates row
        starting on or before it): home units per unit of `currency`."""
        home = await self.home_currency()
        if currency.upper() == home:
            return None
        rows = await self._all(
            "currencyExchangeRates",
            {
                "$filter": f"currencyCode eq {wire.odata_string(currency.upper())} and "
                f"startingDate le {wire.iso_date(on)}"
            },
        )
        # Rows relative to another currency than the home one are not a home rate.
        rows = [r for r in rows if not r.get("relationalCurrencyCode")]
        if not rows:
            return None
        latest = max(rows, key=lambda r: str(r.get("startingDate")))
        units = wire.decimal(latest.get("exchangeRateAmount"))
        if units <= 0:
            return None
        return ExchangeRate(
            currency=currency.upper(),
            home_currency=home,
            rate=wire.decimal(latest.get("relationalExchangeRateAmount")) / units,
            as_of=date.fromisoformat(str(latest["startingDate"])[:10]),
            source=PLATFORM,
        )

    async def list_tax_rates(self) -> list[TaxRate]:
        # Tax areas and groups are not mapped yet: codes come from the tax_codes setting.
        return []

    async def tax_code_for(self, category: str, rate: Decimal | None) -> TaxRate | None:
        return pick_tax_code(
            await self.list_tax_rates(),
            category,
            rate,
            overrides=tax_code_overrides(self.connection),
        )

    # --- payments: reads -------------------------------------------------------------------

    async def _payment_entries(self, where: str) -> list[JSONObject]:
        return await self._all(
            "generalLedgerEntries", {"$filter": f"documentType eq 'Payment' and {where}"}
        )

    async def _payments_from_entries(
        self, entries: list[JSONObject], *, reference: str | None = None
    ) -> list[BillPayment]:
        """Posted vendor payments from their G/L entries: the balancing (bank) side of each
        line is the credit; its description names the invoice it settled."""
        home = await self.home_currency()
        by_document: dict[str, list[JSONObject]] = {}
        for entry in entries:
            if wire.decimal(entry.get("creditAmount")) > 0:
                by_document.setdefault(str(entry.get("documentNumber")), []).append(entry)
        payments = []
        for document, credits in by_document.items():
            numbers = [
                n
                for n in (
                    wire.invoice_number_of_payment(str(e.get("description") or "")) for e in credits
                )
                if n
            ]
            invoices = await self._invoices_by_number(numbers)
            lines = []
            vendor_id = ""
            for entry in credits:
                number = wire.invoice_number_of_payment(str(entry.get("description") or ""))
                invoice = invoices.get(number or "")
                if invoice is None:
                    continue
                vendor_id = str(invoice.get("vendorId"))
                lines.append(
                    BillPaymentLine(
                        bill_id=str(invoice["id"]), amount=wire.decimal(entry.get("creditAmount"))
                    )
                )
            if not lines:
                continue
            payments.append(
                BillPayment(
                    id=document,
                    vendor_id=vendor_id,
                    payment_date=date.fromisoformat(str(credits[0]["postingDate"])[:10]),
                    currency=home,
                    source_account_id=str(credits[0].get("accountId")),
                    total=sum((line.amount for line in lines), Decimal("0")),
                    lines=lines,
                    reference=reference,
                    updated_at=wire.parse_datetime(credits[0].get("lastModifiedDateTime")),
                )
            )
        return payments

    async def _invoices_by_number(self, numbers: list[str]) -> dict[str, JSONObject]:
        wanted = sorted(set(numbers))
        if not wanted:
            return {}
        where = " or ".join(f"number eq {wire.odata_string(n)}" for n in wanted)
        return {
            str(raw["number"]): raw
            for raw in await self._all("purchaseInvoices", {"$filter": where})
        }

    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]:
        invoice = await self._entity(f"purchaseInvoices({_key(bill_id)})")
        return await self._payments_of_invoice(str(invoice["number"]))

    async def _payments_of_invoice(self, invoice_number: str) -> list[BillPayment]:
        description = wire.payment_description(invoice_number)
        entries = await self._payment_entries(f"description eq {wire.odata_string(description)}")
        documents = sorted({str(e.get("documentNumber")) for e in entries})
        if not documents:
            return []
        # Every line of those payments, so a payment of several bills is listed whole.
        where = " or ".join(f"documentNumber eq {wire.odata_string(d)}" for d in documents)
        return await self._payments_from_entries(await self._payment_entries(f"({where})"))

    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None:
        document = wire.payment_document_number(reference)
        entries = await self._payment_entries(f"documentNumber eq {wire.odata_string(document)}")
        payments = await self._payments_from_entries(entries, reference=reference)
        return payments[0] if payments else None

    async def changes_since(self, cursor: str | None) -> Changes:
        """Vendors, bills and posted payments changed after `cursor` (lastModifiedDateTime,
        BC's own clock). Deletions are invisible to this filter (BC's webhooks tell them)."""
        since = None
        if cursor:
            try:
                since = wire.parse_datetime(cursor)
            except ValueError as exc:
                raise Rejected(
                    f"not a Business Central change cursor: {cursor!r}", platform=PLATFORM
                ) from exc
        where = {"$filter": f"lastModifiedDateTime gt {_odata_datetime(since)}"} if since else None
        vendors = await self._all("vendors", where)
        bills_raw = await self._all(
            "purchaseInvoices", {**(where or {}), "$expand": INVOICE_EXPAND}
        )
        entries = await self._all(
            "generalLedgerEntries",
            {
                "$filter": "documentType eq 'Payment'"
                + (f" and {where['$filter']}" if where else "")
            },
        )
        stamps = [
            stamp
            for stamp in (
                wire.parse_datetime(raw.get("lastModifiedDateTime"))
                for raw in [*vendors, *bills_raw, *entries]
            )
            if stamp is not None
        ]
        latest = max(stamps, default=since)
        return Changes(
            vendors=[wire.vendor_from_bc(raw) for raw in vendors],
            bills=await self._bills(bills_raw),
            bill_payments=await self._payments_from_entries(entries),
            cursor=latest.isoformat() if latest else "",
        )

    # --- credits (not mapped yet) ----------------------------------------------------------
    # purchaseCreditMemos can be created and posted through API v2.0, but a posted credit memo
    # cannot be applied to a posted invoice through it (no apply action, no Applies-to on an
    # open entry), so remit neither writes nor counts vendor credits here yet: the lists are
    # empty and the writes refused, saying where to do it.

    async def list_credit_memos(self, *, vendor_id: str) -> list[BillCreditMemo]:
        return []

    async def find_credit_memo_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillCreditMemo | None:
        return None

    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        return []

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo:
        raise Rejected(
            "vendor credits (purchaseCreditMemos) are not supported by remit's Business Central "
            "connector yet: enter the credit memo in Business Central",
            platform=PLATFORM,
        )

    async def apply_credit(
        self, application: CreditApplication, *, idempotency_key: str
    ) -> CreditApplication:
        raise Rejected(
            "applying vendor credits is not supported by remit's Business Central connector "
            "yet: apply the credit memo in Business Central",
            platform=PLATFORM,
        )

    # --- writes ----------------------------------------------------------------------------

    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor:
        # BC has no idempotency key: a vendor with this name and tax id is the one written.
        for found in await self.find_vendors(name=vendor.name):
            if (found.tax_id or None) == (vendor.tax_id or None):
                return found
        body = wire.vendor_to_bc(vendor)
        if body.get("currencyCode") == await self.home_currency():
            del body["currencyCode"]  # the home currency is blank on a BC vendor
        raw = await self._json("POST", "vendors", body=body)
        self._etags[str(raw["id"])] = str(raw.get("@odata.etag"))
        return wire.vendor_from_bc(raw)

    async def update_vendor(
        self, vendor_id: str, changes: VendorChanges, *, idempotency_key: str
    ) -> Vendor:
        """PATCH with If-Match: the ETag of this connector's last read of the vendor (read now
        when it has none), so a change made by someone since is a Conflict, never overwritten."""
        body = wire.vendor_changes_to_bc(changes)
        etag = self._etags.get(vendor_id.lower()) or self._etags.get(vendor_id)
        if etag is None:
            raw = await self._entity(f"vendors({_key(vendor_id)})")
            etag = str(raw["@odata.etag"])
        if not body:
            return await self.get_vendor(vendor_id)
        raw = await self._json("PATCH", f"vendors({_key(vendor_id)})", body=body, etag=etag)
        self._etags[str(raw["id"])] = str(raw.get("@odata.etag"))
        return wire.vendor_from_bc(raw)

    async def create_account(self, account: NewAccount, *, idempotency_key: str) -> Account:
        raise Rejected(
            "Business Central's API v2.0 reads the chart of accounts but cannot add to it: "
            f"create the account {account.name!r} in Business Central",
            platform=PLATFORM,
        )

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        """A purchase invoice (draft, lines deep-inserted, the reference on a comment line),
        its lines' dimensions, then the post action. BC has no idempotency key, so an invoice
        carrying this reference is looked up first and finished rather than written again."""
        for line in bill.lines:
            if not line.account_id:
                raise Rejected(
                    f"bill line {line.description or ''!r} has no account: Business Central "
                    "needs a G/L account on every line",
                    platform=PLATFORM,
                )
        await self._dimensions_for(bill)  # refuses unknown values before anything is written
        raw = await self._invoice_by_reference(reference, bill.vendor_id)
        if raw is None:
            body = {
                "vendorId": bill.vendor_id,
                "vendorInvoiceNumber": wire.vendor_invoice_number(bill, reference),
                "invoiceDate": wire.iso_date(bill.issue_date),
                "postingDate": wire.iso_date(bill.issue_date),
                "dueDate": wire.iso_date(bill.due_date or bill.issue_date),
                "currencyCode": bill.currency
                if bill.currency != await self.home_currency()
                else "",
                "purchaseInvoiceLines": wire.bill_lines_to_bc(bill, reference),
            }
            raw = await self._json("POST", "purchaseInvoices", body=body)
        invoice_id = str(raw["id"])
        if raw.get("status") == "Draft":
            path = f"purchaseInvoices({_key(invoice_id)})"
            try:
                await self._ensure_dimensions(invoice_id, bill, raw)
                await self._send("POST", f"{path}/Microsoft.NAV.post")
            except Rejected:
                # A draft BC will not post is taken back: the retry after a person's correction
                # then writes the corrected bill, instead of finding (and posting) this one.
                await self._send("DELETE", path, headers={"If-Match": "*"})
                raise
        posted = await self.get_bill(invoice_id)
        return posted.model_copy(update={"reference": reference})

    async def _ensure_dimensions(self, invoice_id: str, bill: Bill, raw: JSONObject) -> None:
        """Each line's dimension values, those not set yet (a retry adds only what is missing)."""
        if not any(line.tracking for line in bill.lines):
            return
        if "purchaseInvoiceLines" not in raw or any(
            "dimensionSetLines" not in line for line in raw.get("purchaseInvoiceLines") or []
        ):
            raw = await self._entity(
                f"purchaseInvoices({_key(invoice_id)})", {"$expand": INVOICE_EXPAND}
            )
        account_lines = [
            line
            for line in raw.get("purchaseInvoiceLines") or []
            if line.get("lineType") != "Comment"
        ]
        wanted = await self._dimensions_for(bill)
        for line, dimensions in zip(account_lines, wanted, strict=False):
            present = {str(d.get("id")) for d in line.get("dimensionSetLines") or []}
            for dimension, value_id in dimensions.items():
                if dimension in present:
                    continue
                await self._json(
                    "POST",
                    f"purchaseInvoices({_key(invoice_id)})/purchaseInvoiceLines"
                    f"({_key(str(line['id']))})/dimensionSetLines",
                    body={"id": dimension, "valueId": value_id},
                )

    async def _dimensions_for(self, bill: Bill) -> list[dict[str, str]]:
        """Each line's dimension id -> value id; Rejected for a value the company does not
        have, or two values of one dimension on a line (BC keeps one per dimension)."""
        if not any(line.tracking for line in bill.lines):
            return [{} for _ in bill.lines]
        if self._dimension_of is None:
            await self.list_tracking_categories()
        assert self._dimension_of is not None
        wanted: list[dict[str, str]] = []
        for line in bill.lines:
            dimensions: dict[str, str] = {}
            for ref in line.tracking:
                dimension = self._dimension_of.get(ref.id.lower()) or self._dimension_of.get(ref.id)
                if dimension is None:
                    raise Rejected(
                        f"{ref.id!r} is not a dimension value of this company", platform=PLATFORM
                    )
                if dimensions.get(dimension, ref.id) != ref.id:
                    raise Rejected(
                        f"bill line {line.description or ''!r} has two values of one dimension: "
                        "Business Central keeps one value per dimension on a line",
                        platform=PLATFORM,
                    )
                dimensions[dimension] = ref.id
            wanted.append(dimensions)
        return wanted

    async def attach_document(
        self,
        bill_id: str,
        *,
        file_name: str,
        content_type: str,
        content: bytes,
        idempotency_key: str,
    ) -> Attachment:
        """The attachments entity: POST its metadata, then PATCH attachmentContent with the
        bytes. A retry finds the attachment by file name and fills it if it is still empty."""
        existing = [
            raw for raw in await self._attachments_of(bill_id) if raw.get("fileName") == file_name
        ]
        raw = next((r for r in existing if int(r.get("byteSize") or 0) == len(content)), None)
        if raw is None or int(raw.get("byteSize") or 0) == 0:
            if raw is None:
                raw = next((r for r in existing if int(r.get("byteSize") or 0) == 0), None)
            if raw is None:
                raw = await self._json(
                    "POST",
                    "attachments",
                    body={
                        "parentId": bill_id,
                        "parentType": "Purchase Invoice",
                        "fileName": file_name,
                    },
                )
            await self._send(
                "PATCH",
                f"attachments({_key(str(raw['id']))})/attachmentContent",
                content=content,
                headers={"Content-Type": "application/octet-stream", "If-Match": "*"},
            )
        return Attachment(
            id=str(raw["id"]),
            bill_id=bill_id,
            file_name=file_name,
            content_type=content_type,
            size=len(content),
        )

    async def _attachments_of(self, bill_id: str) -> list[JSONObject]:
        return await self._all("attachments", {"$filter": f"parentId eq {_guid(bill_id)}"})

    async def list_attachments(self, bill_id: str) -> list[Attachment]:
        return [
            Attachment(
                id=str(raw["id"]),
                bill_id=bill_id,
                file_name=str(raw.get("fileName")),
                # BC keeps no content type: it is read from the file name.
                content_type=mimetypes.guess_type(str(raw.get("fileName")))[0]
                or "application/octet-stream",
                size=int(raw.get("byteSize") or 0),
            )
            for raw in await self._attachments_of(bill_id)
        ]

    async def create_bill_payment(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        """One line per bill in the vendor payment journal whose balancing account is the
        payment's source account, each applied to its posted invoice, then the journal posted.
        The Document No. comes from remit's reference, so a retry finds the posted payment (or
        its unposted lines, which it replaces)."""
        existing = await self.find_bill_payment_by_reference(reference, vendor_id=payment.vendor_id)
        if existing is not None:
            return existing
        if not payment.lines:
            raise Rejected("a bill payment needs at least one bill line", platform=PLATFORM)
        if any(line.discount for line in payment.lines):
            raise Rejected(
                "early-payment discounts are not supported by remit's Business Central "
                "connector yet: pay the full amount or apply the discount in Business Central",
                platform=PLATFORM,
            )
        journal = await self._journal_for(payment.source_account_id)
        document = wire.payment_document_number(reference)
        problems = []
        invoices: dict[str, JSONObject] = {}
        for line in payment.lines:
            raw = await self._entity(f"purchaseInvoices({_key(line.bill_id)})")
            invoices[line.bill_id] = raw
            remaining = (await self.get_bill(line.bill_id)).balance or Decimal("0")
            if str(raw.get("vendorId")).lower() != payment.vendor_id.lower():
                problems.append(f"bill {raw.get('number')} is not from vendor {payment.vendor_id}")
            elif raw.get("status") != "Open":
                problems.append(f"bill {raw.get('number')} is {raw.get('status')}, not Open")
            elif line.amount > remaining:
                problems.append(
                    f"{line.amount} is more than the {remaining} remaining on bill "
                    f"{raw.get('number')}"
                )
        if problems:
            raise Rejected("; ".join(problems), platform=PLATFORM)
        journal_path = f"vendorPaymentJournals({_key(str(journal['id']))})/vendorPayments"
        waiting = await self._all(journal_path)
        strangers = [w for w in waiting if w.get("documentNumber") != document]
        if strangers:
            # Posting a batch posts every line in it: never post lines remit did not write.
            raise Conflict(
                f"the vendor payment journal {journal.get('code')} holds {len(strangers)} lines "
                "remit did not write: post or clear them in Business Central first",
                platform=PLATFORM,
            )
        for stale in waiting:
            # Lines of an earlier attempt whose answer was lost: written again, all of them.
            await self._send(
                "DELETE", f"{journal_path}({_key(str(stale['id']))})", headers={"If-Match": "*"}
            )
        # The lines and the journal's post in one transactional $batch: the payment is posted
        # whole or not at all, so a lost answer leaves either nothing or a findable payment.
        requests: list[JSONObject] = [
            {
                "id": str(n),
                "method": "POST",
                "url": f"{self._company}/{journal_path}",
                "headers": {"Content-Type": "application/json"},
                "body": {
                    "vendorId": payment.vendor_id,
                    "postingDate": wire.iso_date(payment.payment_date),
                    "documentNumber": document,
                    "externalDocumentNumber": (payment.memo or "")[:35],
                    "amount": line.amount,
                    "appliesToInvoiceId": line.bill_id,
                    "description": wire.payment_description(str(invoices[line.bill_id]["number"])),
                },
            }
            for n, line in enumerate(payment.lines, start=1)
        ]
        requests.append(
            {
                "id": str(len(requests) + 1),
                "method": "POST",
                "url": f"{self._company}/journals({_key(str(journal['id']))})/Microsoft.NAV.post",
                "headers": {},
            }
        )
        await self._batch(requests)
        posted = await self.find_bill_payment_by_reference(reference, vendor_id=payment.vendor_id)
        if posted is None:
            raise Unavailable(
                "Business Central posted the payment journal but shows no payment entries yet",
                platform=PLATFORM,
            )
        return posted

    async def _batch(self, requests: list[JSONObject]) -> list[JSONObject]:
        """A transactional $batch (Isolation: snapshot); the first failed request's error."""
        payload = await self._client.send_json(
            "POST",
            f"{self._root}/$batch",
            json={"requests": requests},
            headers={"Isolation": "snapshot"},
        )
        responses = list(payload.get("responses") or [])
        for answer in responses:
            status = int(answer.get("status") or 0)
            if status >= 400:
                sent = next((r for r in requests if r["id"] == str(answer.get("id"))), requests[0])
                failed = httpx.Response(
                    status,
                    content=wire.dumps(answer.get("body") or {}).encode(),
                    headers=answer.get("headers") or {},
                    request=httpx.Request(sent["method"], sent["url"]),
                )
                raise classify(failed)
        if len(responses) != len(requests):
            raise Unavailable(
                f"Business Central answered {len(responses)} of the batch's {len(requests)} "
                "requests",
                platform=PLATFORM,
            )
        return responses

    async def _journal_for(self, account_id: str) -> JSONObject:
        journals = await self._all("vendorPaymentJournals")
        for journal in journals:
            if str(journal.get("balancingAccountId")).lower() == account_id.lower():
                return journal
        raise Rejected(
            f"no vendor payment journal balances against account {account_id}: set up a "
            "payment journal batch with that balancing account in Business Central (found: "
            + ", ".join(str(j.get("code")) for j in journals)
            + ")",
            platform=PLATFORM,
        )

    async def void_bill_payment(self, payment_id: str, *, idempotency_key: str) -> BillPayment:
        entries = await self._payment_entries(f"documentNumber eq {wire.odata_string(payment_id)}")
        if not entries:
            raise NotFound(f"no posted Business Central payment {payment_id}", platform=PLATFORM)
        raise Rejected(
            f"Business Central's API v2.0 cannot reverse posted payment {payment_id}: reverse "
            "the transaction in Business Central (Vendor Ledger Entries, Reverse Transaction)",
            platform=PLATFORM,
        )


def _odata_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _key(value: str) -> str:
    return quote(value, safe="-")


def _guid(value: str) -> str:
    """A GUID for $filter (unquoted, as OData v4 writes Edm.Guid)."""
    cleaned = value.strip().strip("{}")
    if len(cleaned) != 36 or any(c not in "0123456789abcdefABCDEF-" for c in cleaned):
        raise Rejected(f"{value!r} is not a Business Central id (a GUID)", platform=PLATFORM)
    return cleaned


__all__ = ["BillStatus", "BusinessCentralConnector", "classify"]
