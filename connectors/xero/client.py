"""XeroConnector: the Connector protocol over Xero's Accounting API (httpx, native JSON)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
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
    RateLimited,
    Rejected,
    Unavailable,
    parse_retry_after,
    pick_tax_code,
    tax_code_overrides,
)
from connectors.http import BearerTokens, HttpClient
from connectors.mirror import MirrorKind, SyncPage
from connectors.oauth import Credentials, OnTokens, TokenKeeper
from connectors.oauth import TokenSet as GrantedTokens
from connectors.retries import read_attempts
from connectors.xero import wire
from connectors.xero.auth import AUTH
from connectors.xero.mirror import XeroMirror
from connectors.xero.wire import JSONObject, Lookups

PLATFORM = wire.PLATFORM_NAME
DEFAULT_PAGE_SIZE = 100
# How many OR-ed clauses one `where` filter carries (keeps the query string short).
WHERE_CLAUSES_PER_CALL = 20
# Xero sends Retry-After for the minute and day limits but not for the concurrency limit,
# where a call finishing frees a slot within moments.
CONCURRENCY_WAIT = timedelta(seconds=1)
MINUTE_WAIT = timedelta(seconds=60)


def _error_body(response: httpx.Response) -> Any:
    try:
        return wire.loads(response.content) if response.content else None
    except ValueError:
        return None


def classify(response: httpx.Response) -> ConnectorError:
    """Map a failed Xero answer (API or identity) into the connector error taxonomy."""
    status = response.status_code
    body = _error_body(response)
    detail = ""
    if isinstance(body, dict):
        detail = str(body.get("Detail") or body.get("Message") or body.get("error") or "")
    elif response.text:
        detail = response.text.strip()[:500]
    common: dict[str, Any] = {"platform": PLATFORM, "status": status, "detail": body}
    if status == 429:
        problem = response.headers.get("x-rate-limit-problem", "unknown")
        default = CONCURRENCY_WAIT if problem == "concurrent" else MINUTE_WAIT
        wait = parse_retry_after(response.headers.get("retry-after"), default)
        return RateLimited(
            f"Xero rate limit hit (X-Rate-Limit-Problem: {problem}); retry after {wait}",
            retry_after=wait,
            code=problem,
            **common,
        )
    if isinstance(body, dict) and body.get("error") == "invalid_grant":
        return ConnectionRevoked(
            "Xero refused the refresh token (invalid_grant): the connection must be relinked",
            code="invalid_grant",
            **common,
        )
    if status == 401:
        code = "TokenExpired" if "TokenExpired" in detail else "Unauthorized"
        return AuthExpired(detail or "Xero refused the access token", code=code, **common)
    if status == 403:
        return ConnectionRevoked(
            detail or "Xero refused access to this organisation", code="Forbidden", **common
        )
    if status == 404:
        return NotFound(detail or "not found in Xero", **common)
    if status == 409:
        return Conflict(detail or "Xero reported a conflicting request", **common)
    if status >= 500:
        return Unavailable(detail or f"Xero answered {status}", **common)
    messages = wire.validation_messages(body)
    error_type = body.get("Type") if isinstance(body, dict) else None
    if not messages:
        messages = [detail or f"Xero refused the request ({status})"]
    return Rejected("; ".join(messages), code=str(error_type) if error_type else None, **common)


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int


async def refresh_access_token(
    http: httpx.AsyncClient,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
) -> TokenSet:
    """One refresh_token grant. Xero rotates the refresh token: store the new one at once."""
    try:
        response = await http.post(
            token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client_id, client_secret),
            headers={"Accept": "application/json"},
        )
    except httpx.TransportError as exc:
        # The old refresh token stays usable for Xero's 30-minute grace, so a lost answer
        # is retried with the same token.
        raise Unavailable(f"Xero identity unreachable: {exc!r}", platform=PLATFORM) from exc
    if response.status_code != 200:
        raise classify(response)
    body = wire.loads(response.content)
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
        expires_in=int(body.get("expires_in", 1800)),
    )


class XeroConnector:
    """One Xero organisation (tenant) reached through one connection."""

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
        # Xero rotates the refresh token on every renewal: `on_tokens` must persist each one.
        self.tokens = TokenKeeper(connection.credentials, self._renew, on_tokens=on_tokens)
        self._client = HttpClient(
            http,
            platform=PLATFORM,
            auth=BearerTokens(self.tokens),
            error_for=classify,
            read_attempts=read_attempts(connection.settings),
        )
        self._api = connection.base_url.rstrip("/") + "/api.xro/2.0"
        self._page_size = int(connection.settings.get("page_size", DEFAULT_PAGE_SIZE))
        self._reference_base = connection.settings.get(
            "reference_url_base", wire.DEFAULT_REFERENCE_URL_BASE
        )
        self._lookups: Lookups | None = None
        self._home_currency: str | None = None
        self._mirror = XeroMirror(self)

    async def aclose(self) -> None:
        # The http client is injected and owned by the caller.
        return None

    async def _renew(self, credentials: Credentials) -> GrantedTokens:
        return await AUTH.renew(self._http, self.connection.base_url, credentials)

    # --- transport -------------------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
        modified_since: datetime | None = None,
    ) -> JSONObject:
        """One call through the shared loop (GETs get its quick tries); the answer's JSON."""
        headers = {"xero-tenant-id": self.connection.company_id}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = wire.idempotency_key(idempotency_key)
        if modified_since is not None:
            headers["If-Modified-Since"] = wire.if_modified_since(modified_since)
        if body is None and content_type is not None:
            headers["Content-Type"] = content_type
        return await self._client.send_json(
            method, self._api + path, params=params, headers=headers, json=body, content=content
        )

    async def _page(
        self, path: str, key: str, page: int, params: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[list[JSONObject], int | None, JSONObject]:
        """One page of a paged endpoint: (items, next page number or None, envelope)."""
        query = {**(params or {}), "page": str(page), "pageSize": str(self._page_size)}
        payload = await self._json("GET", path, params=query, **kwargs)
        items = list(payload.get(key) or [])
        pagination = payload.get("pagination") or {}
        page_count = pagination.get("pageCount")
        if page_count is not None:
            has_more = page < int(page_count)
        else:
            has_more = len(items) >= self._page_size
        return items, (page + 1 if has_more else None), payload

    async def _all(
        self, path: str, key: str, params: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[list[JSONObject], JSONObject | None]:
        items: list[JSONObject] = []
        first: JSONObject | None = None
        page: int | None = 1
        while page is not None:
            found, page, envelope = await self._page(path, key, page, params, **kwargs)
            first = first or envelope
            items.extend(found)
        return items, first

    async def lookups(self, *, refresh: bool = False) -> Lookups:
        if self._lookups is None or refresh:
            accounts = (await self._json("GET", "/Accounts")).get("Accounts") or []
            categories = (
                await self._json("GET", "/TrackingCategories", params={"includeArchived": "true"})
            ).get("TrackingCategories") or []
            self._lookups = Lookups.build(accounts, categories)
        return self._lookups

    # --- the books' mirror (connectors.mirror.MirrorSource; see connectors/xero/mirror.py) --

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
        raw = (await self._json("GET", "/Accounts")).get("Accounts") or []
        return [wire.account_from_xero(account) for account in raw]

    async def list_tracking_categories(self) -> list[TrackingCategory]:
        raw = (await self._json("GET", "/TrackingCategories")).get("TrackingCategories") or []
        return wire.tracking_categories_from_xero(raw)

    async def list_vendors(self, cursor: str | None = None) -> Page[Vendor]:
        lookups = await self.lookups()
        items, next_page, _ = await self._page("/Contacts", "Contacts", _page_number(cursor))
        return Page[Vendor](
            items=[wire.vendor_from_xero(raw, lookups) for raw in items],
            next_cursor=str(next_page) if next_page else None,
        )

    async def get_vendor(self, vendor_id: str) -> Vendor:
        lookups = await self.lookups()
        raw = await self._json("GET", f"/Contacts/{quote(vendor_id, safe='')}")
        contacts = raw.get("Contacts") or []
        if not contacts:
            raise NotFound(f"no Xero contact {vendor_id}", platform=PLATFORM)
        return wire.vendor_from_xero(contacts[0], lookups)

    async def find_vendors(
        self, *, tax_id: str | None = None, name: str | None = None
    ) -> list[Vendor]:
        clauses = []
        if tax_id:
            clauses.append(f"TaxNumber=={wire.where_string(tax_id)}")
        if name:
            clauses.append(f"Name.ToLower()=={wire.where_string(name.strip().lower())}")
        if not clauses:
            return []
        lookups = await self.lookups()
        items, _ = await self._all("/Contacts", "Contacts", {"where": " AND ".join(clauses)})
        return [wire.vendor_from_xero(raw, lookups) for raw in items]

    async def list_bills(self, cursor: str | None = None) -> Page[Bill]:
        lookups = await self.lookups()
        items, next_page, _ = await self._page(
            "/Invoices", "Invoices", _page_number(cursor), {"where": 'Type=="ACCPAY"'}
        )
        return Page[Bill](
            items=[self._bill(raw, lookups) for raw in items],
            next_cursor=str(next_page) if next_page else None,
        )

    async def get_bill(self, bill_id: str) -> Bill:
        lookups = await self.lookups()
        raw = await self._json("GET", f"/Invoices/{quote(bill_id, safe='')}")
        invoices = [i for i in raw.get("Invoices") or [] if i.get("Type") == "ACCPAY"]
        if not invoices:
            raise NotFound(f"no Xero bill (ACCPAY invoice) {bill_id}", platform=PLATFORM)
        return self._bill(invoices[0], lookups)

    async def find_bills(self, *, vendor_id: str, document_number: str | None = None) -> list[Bill]:
        lookups = await self.lookups()
        params = {"where": 'Type=="ACCPAY"', "ContactIDs": vendor_id}
        if document_number:
            params["InvoiceNumbers"] = document_number
        items, _ = await self._all("/Invoices", "Invoices", params)
        return [self._bill(raw, lookups) for raw in items]

    async def find_bill_headers(self, *, vendor_id: str) -> list[BillHeader]:
        # Xero pages whole invoices (lines included): nothing to save.
        return [BillHeader.of(bill) for bill in await self.find_bills(vendor_id=vendor_id)]

    async def find_bill_by_reference(self, reference: str, *, vendor_id: str) -> Bill | None:
        lookups = await self.lookups()
        url = self._reference_url(reference)
        params = {
            "where": f'Type=="ACCPAY" AND Url=={wire.where_string(url)}',
            "ContactIDs": vendor_id,
        }
        items, _ = await self._all("/Invoices", "Invoices", params)
        if not items:
            return None
        # A deleted draft is no longer the bill; anything else (even voided) still is.
        items.sort(key=lambda raw: raw.get("Status") == "DELETED")
        return self._bill(items[0], lookups).model_copy(update={"reference": reference})

    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]:
        """Every payment of the bill, voided (deleted) ones included with voided=True; a bill
        paid by a BatchPayment lists the whole batch (id = BatchPaymentID)."""
        params = {"where": f"Invoice.InvoiceID=={wire.where_guid(bill_id)}"}
        items, _ = await self._all("/Payments", "Payments", params)
        return await self._unified_payments(items)

    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None:
        """The payment (single Payment or BatchPayment) remit wrote with this reference.

        Found by Payment.Reference (plain, or with DISCOUNTED_SUFFIX when it took discounts),
        which every member of a batch carries too. One still in effect wins over a deleted one.
        """
        forms = [
            f"Reference=={wire.where_string(f)}" for f in wire.payment_reference_forms(reference)
        ]
        items, _ = await self._all("/Payments", "Payments", {"where": wire.where_any(forms)})
        mine = [raw for raw in items if _payment_contact(raw) == vendor_id.lower()]
        found = await self._unified_payments(mine, reference=reference)
        if not found:
            return None
        found.sort(key=lambda payment: payment.voided)
        return found[0]

    async def changes_since(self, cursor: str | None) -> Changes:
        """Everything changed after `cursor` (the server time when the previous pass began).

        Xero filters by If-Modified-Since to the second; the cursor keeps milliseconds and the
        sub-second remainder is filtered here against UpdatedDateUTC.
        """
        since = datetime.fromisoformat(cursor) if cursor else None
        lookups = await self.lookups()
        contacts, first = await self._all(
            "/Contacts", "Contacts", {"includeArchived": "true"}, modified_since=since
        )
        invoices, _ = await self._all(
            "/Invoices", "Invoices", {"where": 'Type=="ACCPAY"'}, modified_since=since
        )
        payments, _ = await self._all(
            "/Payments", "Payments", {"where": 'PaymentType=="ACCPAYPAYMENT"'}, modified_since=since
        )
        started = wire.parse_datetime((first or {}).get("DateTimeUTC")) or datetime.now(UTC)

        def changed(raw: JSONObject) -> bool:
            updated = wire.parse_datetime(raw.get("UpdatedDateUTC"))
            return since is None or updated is None or updated > since

        return Changes(
            vendors=[wire.vendor_from_xero(raw, lookups) for raw in contacts if changed(raw)],
            bills=[self._bill(raw, lookups) for raw in invoices if changed(raw)],
            bill_payments=await self._unified_payments([raw for raw in payments if changed(raw)]),
            cursor=started.isoformat(timespec="milliseconds"),
        )

    async def get_vendor_bank_accounts(self, vendor_id: str) -> list[VendorBankAccount]:
        """The bank details on the Contact: BatchPayments.BankAccountNumber (primary) and the
        free-text BankAccountDetails, parsed as wire.bank_accounts_from_xero describes."""
        raw = await self._json("GET", f"/Contacts/{quote(vendor_id, safe='')}")
        contacts = raw.get("Contacts") or []
        if not contacts:
            raise NotFound(f"no Xero contact {vendor_id}", platform=PLATFORM)
        return wire.bank_accounts_from_xero(contacts[0])

    async def list_credit_memos(self, *, vendor_id: str) -> list[BillCreditMemo]:
        """The supplier's credit notes in effect (AUTHORISED, or PAID = fully used), without
        the early-payment discount notes remit writes as part of a payment."""
        lookups = await self.lookups()
        where = f'Type=="ACCPAYCREDIT" AND Contact.ContactID=={wire.where_guid(vendor_id)}'
        items, _ = await self._all("/CreditNotes", "CreditNotes", {"where": where})
        return [
            wire.credit_note_from_xero(raw, lookups)
            for raw in items
            if raw.get("Status") in ("AUTHORISED", "PAID") and not wire.is_discount_note(raw)
        ]

    async def find_credit_memo_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillCreditMemo | None:
        """By the "[remit:...]" tag create_credit_memo puts at the end of CreditNoteNumber."""
        lookups = await self.lookups()
        where = (
            f'Type=="ACCPAYCREDIT" AND Contact.ContactID=={wire.where_guid(vendor_id)} AND '
            f"CreditNoteNumber.EndsWith({wire.where_string(wire.credit_tag(reference))})"
        )
        items, _ = await self._all("/CreditNotes", "CreditNotes", {"where": where})
        if not items:
            return None
        items.sort(key=lambda raw: raw.get("Status") in ("VOIDED", "DELETED"))
        return wire.credit_note_from_xero(items[0], lookups, reference=reference)

    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        """The allocations in effect of supplier credit notes to the bill (id = AllocationID).

        The bill lists the credit notes allocated to it; the allocations themselves (with
        their ids) are on the credit notes. Discount notes are reported on their payment's
        line instead (BillPaymentLine.discount), never here.
        """
        raw = await self._json("GET", f"/Invoices/{quote(bill_id, safe='')}")
        invoices = [i for i in raw.get("Invoices") or [] if i.get("Type") == "ACCPAY"]
        if not invoices:
            raise NotFound(f"no Xero bill (ACCPAY invoice) {bill_id}", platform=PLATFORM)
        note_ids: list[str] = []
        for entry in invoices[0].get("CreditNotes") or []:
            note_id = str(entry.get("CreditNoteID") or "")
            if note_id and note_id not in note_ids and not wire.is_discount_note(entry):
                note_ids.append(note_id)
        notes = await self._credit_notes_where(
            [f"CreditNoteID=={wire.where_guid(note_id)}" for note_id in note_ids]
        )
        applications: list[CreditApplication] = []
        for note in notes:
            if wire.is_discount_note(note) or note.get("Type") != "ACCPAYCREDIT":
                continue
            for allocation in note.get("Allocations") or []:
                invoice_id = str((allocation.get("Invoice") or {}).get("InvoiceID", ""))
                if allocation.get("IsDeleted") or invoice_id.lower() != bill_id.lower():
                    continue
                applications.append(
                    wire.allocation_from_xero(allocation, credit_memo_id=str(note["CreditNoteID"]))
                )
        return applications

    async def home_currency(self) -> CurrencyCode:
        if self._home_currency is None:
            payload = await self._json("GET", "/Organisation")
            organisations = payload.get("Organisations") or []
            if not organisations or not organisations[0].get("BaseCurrency"):
                raise Unavailable("Xero answered without the organisation", platform=PLATFORM)
            self._home_currency = str(organisations[0]["BaseCurrency"])
        return self._home_currency

    async def get_exchange_rate(self, currency: str, on: date) -> ExchangeRate | None:
        """None: Xero's Accounting API has no exchange-rate endpoint (a document without a
        CurrencyRate gets the XE.com day rate, which the API does not expose), so remit takes
        rates for Xero from its configured provider."""
        return None

    # --- writes ----------------------------------------------------------------------------

    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor:
        lookups = await self.lookups()
        body = {"Contacts": [wire.vendor_to_xero(vendor, reference, lookups)]}
        payload = await self._json("PUT", "/Contacts", body=body, idempotency_key=idempotency_key)
        return wire.vendor_from_xero(_first(payload, "Contacts"), lookups)

    async def update_vendor(
        self, vendor_id: str, changes: VendorChanges, *, idempotency_key: str
    ) -> Vendor:
        lookups = await self.lookups()
        contact = {"ContactID": vendor_id, **wire.vendor_changes_to_xero(changes)}
        payload = await self._json(
            "POST",
            f"/Contacts/{quote(vendor_id, safe='')}",
            body={"Contacts": [contact]},
            idempotency_key=idempotency_key,
        )
        return wire.vendor_from_xero(_first(payload, "Contacts"), lookups)

    async def create_account(self, account: NewAccount, *, idempotency_key: str) -> Account:
        try:
            body = wire.account_to_xero(account)
        except ValueError as exc:
            raise Rejected(str(exc), platform=PLATFORM) from exc
        payload = await self._json("PUT", "/Accounts", body=body, idempotency_key=idempotency_key)
        return wire.account_from_xero(_first(payload, "Accounts"))

    async def list_tax_rates(self) -> list[TaxRate]:
        """The TaxRates bills may use (CanApplyToExpenses), `id` the TaxType a line takes."""
        raw = (await self._json("GET", "/TaxRates")).get("TaxRates") or []
        return [rate for r in raw if (rate := wire.purchase_tax_rate_from_xero(r)) is not None]

    async def tax_code_for(
        self, category: str, rate: Decimal | None, *, rates: Sequence[TaxRate] | None = None
    ) -> TaxRate | None:
        overrides = tax_code_overrides(self.connection)
        return pick_tax_code(
            await self.list_tax_rates() if rates is None else rates,
            category,
            rate,
            overrides=overrides,
            words=wire.TAX_TYPE_WORDS,
        )

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        lookups = await self.lookups()
        rates: dict[str, Decimal | None] = {}
        if any(line.tax_code_id for line in bill.lines):
            rates = {r.id: r.rate_percent for r in await self.list_tax_rates()}
        invoice = wire.bill_to_xero(
            bill,
            reference=reference,
            lookups=lookups,
            reference_base=self._reference_base,
            tax_rates=rates,
        )
        payload = await self._json(
            "PUT", "/Invoices", body={"Invoices": [invoice]}, idempotency_key=idempotency_key
        )
        created = self._bill(_first(payload, "Invoices"), lookups)
        return created.model_copy(update={"reference": reference})

    async def attach_document(
        self,
        bill_id: str,
        *,
        file_name: str,
        content_type: str,
        content: bytes,
        idempotency_key: str,
    ) -> Attachment:
        path = f"/Invoices/{quote(bill_id, safe='')}/Attachments/{quote(file_name, safe='')}"
        payload = await self._json(
            "PUT",
            path,
            content=content,
            content_type=content_type,
            idempotency_key=idempotency_key,
        )
        return wire.attachment_from_xero(
            _first(payload, "Attachments"),
            bill_id=bill_id,
            sha256=hashlib.sha256(content).hexdigest(),
        )

    async def list_attachments(self, bill_id: str) -> list[Attachment]:
        payload = await self._json("GET", f"/Invoices/{quote(bill_id, safe='')}/Attachments")
        return [
            wire.attachment_from_xero(raw, bill_id=bill_id)
            for raw in payload.get("Attachments") or []
        ]

    async def create_bill_payment(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        """One bill: a Payment (PUT /Payments). Several bills: one BatchPayment (PUT
        /BatchPayments), Xero's one bank line for many bills, created all or nothing; its
        BatchPaymentID is the unified payment's id.

        A line's discount is written first as a supplier credit note to the connection's
        `discount_account_id`, allocated to the bill (Xero payments carry no discount); the
        payment then pays the cash. Those steps are checked against the bills before anything
        is written, and each is looked up before it is made, so a repeat after a partial
        failure finishes the job instead of doing any step twice.
        """
        if any(line.discount > 0 for line in payment.lines):
            return await self._pay_with_discounts(
                payment, reference=reference, idempotency_key=idempotency_key
            )
        return await self._write_payment(
            payment, reference=reference, idempotency_key=idempotency_key, discounts={}
        )

    async def void_bill_payment(self, payment_id: str, *, idempotency_key: str) -> BillPayment:
        """Delete the Payment or BatchPayment (Xero has no void for payments): POST
        /Payments/{id} or /BatchPayments/{id} with Status DELETED, after reading it, so one
        already deleted is left alone. Discounts taken with it are undone too (allocation
        deleted, discount credit note voided), so every bill is owed in full again."""
        path_id = quote(payment_id, safe="")
        raw: JSONObject | None
        try:
            raw = _first(await self._json("GET", f"/Payments/{path_id}"), "Payments")
        except NotFound:
            raw = None
        batch = raw is None
        if raw is not None:
            if raw.get("BatchPaymentID"):
                raise Rejected(
                    f"Xero payment {payment_id} is part of batch payment "
                    f"{raw['BatchPaymentID']}, which Xero deletes only as a whole: void that id",
                    platform=PLATFORM,
                )
            if raw.get("Status") != "DELETED":
                payload = await self._json(
                    "POST",
                    f"/Payments/{path_id}",
                    body={"Payments": [{"Status": "DELETED"}]},
                    idempotency_key=idempotency_key,
                )
                raw = _first(payload, "Payments")
        else:
            raw = _first(await self._json("GET", f"/BatchPayments/{path_id}"), "BatchPayments")
            if raw.get("Status") != "DELETED":
                payload = await self._json(
                    "POST",
                    f"/BatchPayments/{path_id}",
                    body={"Status": "DELETED"},
                    idempotency_key=idempotency_key,
                )
                raw = _first(payload, "BatchPayments")
        stored = raw.get("Reference")
        if wire.took_discounts(stored):
            await self._undo_discounts(str(stored), idempotency_key=idempotency_key)
        voided = wire.batch_payment_from_xero(raw) if batch else wire.payment_from_xero(raw)
        return voided.model_copy(update={"voided": True})

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo:
        # CreditNote.Reference is ACCRECCREDIT-only, so remit's reference rides at the end of
        # CreditNoteNumber ("CM-1042 [remit:...]"), where find_credit_memo_by_reference finds
        # it; the Idempotency-Key makes a repeat safe.
        lookups = await self.lookups()
        body = {"CreditNotes": [wire.credit_note_to_xero(memo, lookups, reference=reference)]}
        payload = await self._json(
            "PUT", "/CreditNotes", body=body, idempotency_key=idempotency_key
        )
        return wire.credit_note_from_xero(
            _first(payload, "CreditNotes"), lookups, reference=reference
        )

    async def apply_credit(
        self, application: CreditApplication, *, idempotency_key: str
    ) -> CreditApplication:
        body = {"Allocations": [wire.allocation_to_xero(application, today=date.today())]}
        path = f"/CreditNotes/{quote(application.credit_memo_id, safe='')}/Allocations"
        payload = await self._json("PUT", path, body=body, idempotency_key=idempotency_key)
        return wire.allocation_from_xero(
            _first(payload, "Allocations"), credit_memo_id=application.credit_memo_id
        )

    # --- payments: batches, discounts ------------------------------------------------------

    async def _write_payment(
        self,
        payment: BillPayment,
        *,
        reference: str,
        idempotency_key: str,
        discounts: dict[str, Decimal],
        stored_reference: str | None = None,
    ) -> BillPayment:
        if len(payment.lines) == 1:
            one = wire.payment_to_xero(
                payment, reference=reference, stored_reference=stored_reference
            )
            body = {"Payments": [one]}
            payload = await self._json(
                "PUT", "/Payments", body=body, idempotency_key=idempotency_key
            )
            return wire.payment_from_xero(
                _first(payload, "Payments"), reference=reference, discounts=discounts
            )
        bill_ids = [line.bill_id.lower() for line in payment.lines]
        if len(set(bill_ids)) != len(bill_ids):
            raise Rejected(
                "a bill appears on more than one line of the payment: give each bill one line",
                platform=PLATFORM,
            )
        batch = wire.batch_payment_to_xero(
            payment, reference=reference, stored_reference=stored_reference
        )
        body = {"BatchPayments": [batch]}
        payload = await self._json(
            "PUT", "/BatchPayments", body=body, idempotency_key=idempotency_key
        )
        return wire.batch_payment_from_xero(
            _first(payload, "BatchPayments"), reference=reference, discounts=discounts
        )

    async def _pay_with_discounts(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        existing = await self.find_bill_payment_by_reference(reference, vendor_id=payment.vendor_id)
        if existing is not None and not existing.voided:
            return existing
        account_id = self.connection.settings.get("discount_account_id")
        if not account_id:
            raise Rejected(
                f"connection {self.connection.id} has no discount_account_id setting: name the "
                "Xero account early-payment discounts are credited to",
                platform=PLATFORM,
            )
        lookups = await self.lookups()
        stored = wire.discounted_payment_reference(reference)
        ids = ",".join(line.bill_id for line in payment.lines)
        bills = {
            str(raw["InvoiceID"]).lower(): raw
            for raw in (await self._json("GET", "/Invoices", params={"IDs": ids})).get("Invoices")
            or []
            if raw.get("Type") == "ACCPAY"
        }
        notes = {
            str(note.get("CreditNoteNumber")): note
            for note in await self._discount_notes([stored])
            if note.get("Status") not in ("VOIDED", "DELETED")
        }
        problems: list[str] = []
        for line in payment.lines:
            bill = bills.get(line.bill_id.lower())
            if bill is None:
                problems.append(f"Bill {line.bill_id} could not be found")
                continue
            note = notes.get(wire.discount_note_number(stored, line.bill_id))
            taken = _allocated_to(note, line.bill_id) if note else Decimal("0")
            due = wire.decimal(bill.get("AmountDue")) + taken
            contact = str((bill.get("Contact") or {}).get("ContactID", "")).lower()
            if contact != payment.vendor_id.lower():
                problems.append(
                    f"Bill {bill.get('InvoiceNumber') or line.bill_id} is not from contact "
                    f"{payment.vendor_id}"
                )
            elif bill.get("Status") != "AUTHORISED" and not taken:
                problems.append("Payments can only be made against Authorised documents")
            elif line.amount + line.discount > due:
                problems.append(
                    "Payment amount exceeds the amount outstanding on this document: "
                    f"{line.amount} paid plus {line.discount} discount is more than the {due} "
                    f"due on bill {bill.get('InvoiceNumber') or line.bill_id}"
                )
        if problems:
            raise Rejected(
                "; ".join(problems),
                platform=PLATFORM,
                status=400,
                code="ValidationException",
                detail=wire.validation_problem({"Reference": stored}, *problems),
            )
        for line in payment.lines:
            if line.discount <= 0:
                continue
            bill = bills[line.bill_id.lower()]
            note = notes.get(wire.discount_note_number(stored, line.bill_id))
            if note is None:
                body = {
                    "CreditNotes": [
                        wire.discount_note_to_xero(
                            vendor_id=payment.vendor_id,
                            bill=bill,
                            discount=line.discount,
                            on=payment.payment_date,
                            stored_reference=stored,
                            account_id=account_id,
                            lookups=lookups,
                        )
                    ]
                }
                note = _first(
                    await self._json(
                        "PUT",
                        "/CreditNotes",
                        body=body,
                        idempotency_key=f"{idempotency_key}:discount:{line.bill_id}",
                    ),
                    "CreditNotes",
                )
            if _allocated_to(note, line.bill_id) == 0:
                allocation = {
                    "Invoice": {"InvoiceID": line.bill_id},
                    "Amount": line.discount,
                    "Date": wire.iso_date(payment.payment_date),
                }
                await self._json(
                    "PUT",
                    f"/CreditNotes/{quote(str(note['CreditNoteID']), safe='')}/Allocations",
                    body={"Allocations": [allocation]},
                    idempotency_key=f"{idempotency_key}:discount-allocation:{line.bill_id}",
                )
        discounts = {line.bill_id.lower(): line.discount for line in payment.lines}
        return await self._write_payment(
            payment,
            reference=reference,
            idempotency_key=idempotency_key,
            discounts=discounts,
            stored_reference=stored,
        )

    async def _undo_discounts(self, stored_reference: str, *, idempotency_key: str) -> None:
        """Take back the discounts of a deleted payment: delete each allocation, void the note."""
        for note in await self._discount_notes([stored_reference]):
            note_id = quote(str(note["CreditNoteID"]), safe="")
            for allocation in note.get("Allocations") or []:
                if allocation.get("IsDeleted") or not allocation.get("AllocationID"):
                    continue
                try:
                    await self._json(
                        "DELETE",
                        f"/CreditNotes/{note_id}/Allocations/"
                        f"{quote(str(allocation['AllocationID']), safe='')}",
                    )
                except NotFound:
                    pass  # already gone: a repeat after a lost answer
            if note.get("Status") not in ("VOIDED", "DELETED"):
                await self._json(
                    "POST",
                    f"/CreditNotes/{note_id}",
                    body={
                        "CreditNotes": [{"CreditNoteID": note["CreditNoteID"], "Status": "VOIDED"}]
                    },
                    idempotency_key=f"{idempotency_key}:void-discount:{note['CreditNoteID']}",
                )

    async def _credit_notes_where(self, clauses: list[str]) -> list[JSONObject]:
        """Credit notes matching any of the clauses (OR-ed, a few per call)."""
        found: list[JSONObject] = []
        seen: set[str] = set()
        for start in range(0, len(clauses), WHERE_CLAUSES_PER_CALL):
            chunk = clauses[start : start + WHERE_CLAUSES_PER_CALL]
            items, _ = await self._all(
                "/CreditNotes", "CreditNotes", {"where": wire.where_any(chunk)}
            )
            for item in items:
                note_id = str(item.get("CreditNoteID"))
                if note_id not in seen:
                    seen.add(note_id)
                    found.append(item)
        return found

    async def _discount_notes(self, stored_references: list[str]) -> list[JSONObject]:
        """The discount credit notes of the payments with these stored References (no call
        when there are none)."""
        wanted = sorted({ref for ref in stored_references if ref})
        clauses = [
            f"CreditNoteNumber.Contains({wire.where_string(wire.discount_prefix(ref))})"
            for ref in wanted
        ]
        return [n for n in await self._credit_notes_where(clauses) if wire.is_discount_note(n)]

    async def _unified_payments(
        self, raws: list[JSONObject], *, reference: str | None = None
    ) -> list[BillPayment]:
        """Xero Payments as unified payments: members of one batch become that batch."""
        singles: list[JSONObject] = []
        batch_ids: list[str] = []
        for raw in raws:
            batch_id = raw.get("BatchPaymentID")
            if not batch_id:
                singles.append(raw)
            elif str(batch_id) not in batch_ids:
                batch_ids.append(str(batch_id))
        batches = [
            _first(
                await self._json("GET", f"/BatchPayments/{quote(batch_id, safe='')}"),
                "BatchPayments",
            )
            for batch_id in batch_ids
        ]
        return [
            *await self._with_discounts(singles, reference=reference, batch=False),
            *await self._with_discounts(batches, reference=reference, batch=True),
        ]

    async def _with_discounts(
        self, raws: list[JSONObject], *, reference: str | None, batch: bool
    ) -> list[BillPayment]:
        if not raws:
            return []
        notes = await self._discount_notes(
            [str(raw.get("Reference")) for raw in raws if wire.took_discounts(raw.get("Reference"))]
        )
        unified: list[BillPayment] = []
        for raw in raws:
            stored = str(raw.get("Reference") or "")
            discounts = wire.discounts_from_notes(notes, stored) if notes else {}
            if batch:
                unified.append(
                    wire.batch_payment_from_xero(raw, reference=reference, discounts=discounts)
                )
            else:
                unified.append(
                    wire.payment_from_xero(raw, reference=reference, discounts=discounts)
                )
        return unified

    # --- helpers ---------------------------------------------------------------------------

    def _reference_url(self, reference: str) -> str:
        return wire.reference_url(reference, self._reference_base)

    def _bill(self, raw: JSONObject, lookups: Lookups) -> Bill:
        return wire.bill_from_xero(raw, lookups, self._reference_base)


def _page_number(cursor: str | None) -> int:
    if not cursor:
        return 1
    try:
        return max(1, int(cursor))
    except ValueError as exc:
        raise Rejected(f"not a Xero page cursor: {cursor!r}", platform=PLATFORM) from exc


def _payment_contact(raw: JSONObject) -> str:
    """The contact (lower case) of a Payment, from its invoice."""
    return str(((raw.get("Invoice") or {}).get("Contact") or {}).get("ContactID", "")).lower()


def _allocated_to(note: JSONObject, bill_id: str) -> Decimal:
    """How much of a credit note is allocated (in effect) to the bill."""
    return sum(
        (
            wire.decimal(allocation.get("Amount"))
            for allocation in note.get("Allocations") or []
            if not allocation.get("IsDeleted")
            and str((allocation.get("Invoice") or {}).get("InvoiceID", "")).lower()
            == bill_id.lower()
        ),
        Decimal("0"),
    )


def _first(payload: JSONObject, key: str) -> JSONObject:
    items = payload.get(key) or []
    if not items:
        raise Unavailable(f"Xero answered without {key}", platform=PLATFORM)
    first: JSONObject = items[0]
    return first
