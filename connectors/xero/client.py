"""XeroConnector: the Connector protocol over Xero's Accounting API (httpx, native JSON)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
    Page,
    TrackingCategory,
    Vendor,
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
)
from connectors.oauth import Credentials, OnTokens, TokenKeeper
from connectors.oauth import TokenSet as GrantedTokens
from connectors.retries import read_attempts, retrying_read
from connectors.xero import wire
from connectors.xero.auth import AUTH
from connectors.xero.wire import JSONObject, Lookups

PLATFORM = wire.PLATFORM_NAME
DEFAULT_PAGE_SIZE = 100
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
        self._api = connection.base_url.rstrip("/") + "/api.xro/2.0"
        self._page_size = int(connection.settings.get("page_size", DEFAULT_PAGE_SIZE))
        self._reference_base = connection.settings.get(
            "reference_url_base", wire.DEFAULT_REFERENCE_URL_BASE
        )
        self._lookups: Lookups | None = None

    async def aclose(self) -> None:
        # The http client is injected and owned by the caller.
        return None

    async def _renew(self, credentials: Credentials) -> GrantedTokens:
        return await AUTH.renew(self._http, self.connection.base_url, credentials)

    # --- transport -------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; GETs get a few quick tries (connectors.retries)."""
        if method != "GET":
            return await self._request_once(method, path, **kwargs)
        return await retrying_read(
            lambda: self._request_once(method, path, **kwargs),
            attempts=read_attempts(self.connection.settings),
        )

    async def _request_once(
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
    ) -> httpx.Response:
        headers = {
            "xero-tenant-id": self.connection.company_id,
            "Accept": "application/json",
        }
        if idempotency_key is not None:
            headers["Idempotency-Key"] = wire.idempotency_key(idempotency_key)
        if modified_since is not None:
            headers["If-Modified-Since"] = wire.if_modified_since(modified_since)
        payload: bytes | None = content
        if body is not None:
            payload = wire.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif content_type is not None:
            headers["Content-Type"] = content_type
        is_write = method in ("PUT", "POST", "PATCH", "DELETE")
        what = f"{method} {path}"
        try:
            token = await self.tokens.current()
            response = await self._http.request(
                method,
                self._api + path,
                params=params,
                content=payload,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
            # A 401 was not processed, so sending again after one renewal is safe.
            if response.status_code == 401 and await self.tokens.after_refusal(token):
                response = await self._http.request(
                    method,
                    self._api + path,
                    params=params,
                    content=payload,
                    headers={**headers, "Authorization": f"Bearer {self.tokens.access_token}"},
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Unavailable(f"{what}: Xero unreachable ({exc!r})", platform=PLATFORM) from exc
        except httpx.TransportError as exc:
            if is_write:
                raise OutcomeUnknown(
                    f"{what}: the request was sent but no answer arrived ({exc!r}); "
                    "look it up before retrying",
                    platform=PLATFORM,
                ) from exc
            raise Unavailable(f"{what}: {exc!r}", platform=PLATFORM) from exc
        if response.status_code >= 400:
            raise classify(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> JSONObject:
        response = await self._request(method, path, **kwargs)
        try:
            payload = wire.loads(response.content)
        except ValueError as exc:
            raise Unavailable(
                f"{method} {path}: Xero answered with unreadable JSON", platform=PLATFORM
            ) from exc
        if not isinstance(payload, dict):
            raise Unavailable(f"{method} {path}: unexpected answer shape", platform=PLATFORM)
        return payload

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
        params = {"where": f"Invoice.InvoiceID=={wire.where_guid(bill_id)}"}
        items, _ = await self._all("/Payments", "Payments", params)
        return [wire.payment_from_xero(raw) for raw in items]

    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None:
        stored = wire.payment_reference(reference)
        params = {"where": f"Reference=={wire.where_string(stored)}"}
        items, _ = await self._all("/Payments", "Payments", params)
        mine = [
            raw
            for raw in items
            if str(((raw.get("Invoice") or {}).get("Contact") or {}).get("ContactID", "")).lower()
            == vendor_id.lower()
        ]
        if not mine:
            return None
        mine.sort(key=lambda raw: raw.get("Status") == "DELETED")
        return wire.payment_from_xero(mine[0], reference=reference)

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
            bill_payments=[wire.payment_from_xero(raw) for raw in payments if changed(raw)],
            cursor=started.isoformat(timespec="milliseconds"),
        )

    # --- writes ----------------------------------------------------------------------------

    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor:
        lookups = await self.lookups()
        body = {"Contacts": [wire.vendor_to_xero(vendor, reference, lookups)]}
        payload = await self._json("PUT", "/Contacts", body=body, idempotency_key=idempotency_key)
        return wire.vendor_from_xero(_first(payload, "Contacts"), lookups)

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        lookups = await self.lookups()
        invoice = wire.bill_to_xero(
            bill, reference=reference, lookups=lookups, reference_base=self._reference_base
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
        body = {"Payments": [wire.payment_to_xero(payment, reference=reference)]}
        payload = await self._json("PUT", "/Payments", body=body, idempotency_key=idempotency_key)
        return wire.payment_from_xero(_first(payload, "Payments"), reference=reference)

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo:
        # CreditNote.Reference is ACCRECCREDIT-only, so a supplier credit carries no reference
        # in Xero; the Idempotency-Key is what makes a repeat safe.
        lookups = await self.lookups()
        body = {"CreditNotes": [wire.credit_note_to_xero(memo, lookups)]}
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


def _first(payload: JSONObject, key: str) -> JSONObject:
    items = payload.get(key) or []
    if not items:
        raise Unavailable(f"Xero answered without {key}", platform=PLATFORM)
    first: JSONObject = items[0]
    return first
