"""QuickBooks Online connector: the Connector protocol over QBO's v3 REST API with httpx."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

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
    PaymentTerms,
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
from connectors.http import BearerTokens, Files, HttpClient
from connectors.mirror import MirrorKind, SyncPage
from connectors.oauth import Credentials, OnTokens, TokenKeeper, TokenSet
from connectors.quickbooks import wire
from connectors.quickbooks.auth import AUTH
from connectors.quickbooks.mirror import QuickBooksMirror
from connectors.quickbooks.wire import JSONObject
from connectors.retries import read_attempts

PLATFORM_NAME = "quickbooks"
# Intuit documents "wait 60 seconds" after a throttle and sends no Retry-After.
THROTTLE_WAIT = timedelta(seconds=60)
DEFAULT_PAGE_SIZE = 100
LARGEST_PAGE = 1000
# CDC looks back at most 30 days and returns at most 1000 objects per entity.
CDC_LOOKBACK = timedelta(days=29)
CDC_CEILING = 1000

_XML_CODE = re.compile(r'code="(\d+)"')
_XML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)
_XML_DETAIL = re.compile(r"<Detail>(.*?)</Detail>", re.S)


def _normalized_name(name: str) -> str:
    words = re.sub(r"[^a-z0-9 ]+", " ", name.lower()).split()
    suffixes = {"inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "gmbh"}
    while len(words) > 1 and words[-1] in suffixes:
        words.pop()
    return " ".join(words)


def _digits(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


class QuickBooksConnector:
    """One QBO company (realm). Raises only connectors.base errors."""

    platform = PLATFORM_NAME

    def __init__(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> None:
        self.connection = connection
        self._http = http
        self.tokens = TokenKeeper(connection.credentials, self._renew, on_tokens=on_tokens)
        self._client = HttpClient(
            http,
            platform=self.platform,
            auth=BearerTokens(self.tokens),
            error_for=self._error_for,
            read_attempts=read_attempts(connection.settings),
        )
        self._base = f"{connection.base_url.rstrip('/')}/v3/company/{connection.company_id}"
        self._page_size = min(int(connection.settings.get("page_size", DEFAULT_PAGE_SIZE)), 1000)
        self._account_types: dict[str, str] = {}
        # Term objects by Id (reloaded when a bill names one not seen yet).
        self._terms: dict[str, JSONObject] | None = None
        # vendor credit Id → the bill it is remit's early-payment discount for (None: not one).
        self._discount_bills: dict[str, str | None] = {}
        # (home currency, multicurrency enabled), from Preferences.
        self._currency_prefs: tuple[str, bool] | None = None
        self._mirror = QuickBooksMirror(self)

    # -----------------------------------------------------------------------------------------
    # HTTP
    # -----------------------------------------------------------------------------------------

    async def _renew(self, credentials: Credentials) -> TokenSet:
        return await AUTH.renew(self._http, self.connection.base_url, credentials)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: JSONObject | None = None,
        files: Files | None = None,
        is_write: bool = False,
    ) -> JSONObject:
        """One call through the shared loop; QBO's `read` also catches a Fault in a 200."""
        return await self._client.send(
            method,
            f"{self._base}/{path}",
            params={"minorversion": wire.MINOR_VERSION, **(params or {})},
            json=body,
            files=files,
            repeatable=not is_write,
            read=self._parse,
        )

    def _parse(self, response: httpx.Response) -> JSONObject:
        text = response.text
        payload: Any = None
        if "json" in response.headers.get("content-type", ""):
            try:
                payload = wire.loads(text)
            except ValueError:
                payload = None
        faulted = isinstance(payload, dict) and ("Fault" in payload or "fault" in payload)
        if response.is_success and isinstance(payload, dict) and not faulted:
            return payload
        if response.is_success and not faulted:
            # A proxy's page or a cut body, not a refusal: worth another try.
            raise Unavailable(
                f"QuickBooks answered {response.status_code} with unreadable JSON",
                platform=self.platform,
                status=response.status_code,
            )
        self._raise_for(response, payload, text)

    def _error_for(self, response: httpx.Response) -> ConnectorError:
        try:
            self._parse(response)
        except ConnectorError as err:
            return err
        return Unavailable(f"QuickBooks answered {response.status_code}", platform=self.platform)

    def _raise_for(self, response: httpx.Response, payload: Any, text: str) -> NoReturn:
        status = response.status_code
        code, message, detail = _fault_fields(payload, text)
        full = f"{message}: {detail}" if message and detail else (message or detail or text[:500])
        common: dict[str, Any] = {
            "platform": self.platform,
            "status": status,
            "code": code,
            "detail": payload if payload is not None else text[:2000],
        }
        if status == 429 or code == "3001":
            retry_after = parse_retry_after(response.headers.get("Retry-After"), THROTTLE_WAIT)
            raise RateLimited(full or "throttled", retry_after=retry_after, **common)
        if "invalid_grant" in text:
            raise ConnectionRevoked(
                "the QuickBooks grant was revoked or expired (invalid_grant): relink the company",
                **common,
            )
        if status == 401:
            raise AuthExpired(full or "access token refused", **common)
        if code == "5010":
            raise Conflict(full, **common)
        if status == 404 or code == "610":
            raise NotFound(full, **common)
        if status >= 500:
            raise Unavailable(full or f"QuickBooks answered {status}", **common)
        raise Rejected(full or f"QuickBooks refused the request ({status})", **common)

    async def _get(self, path: str, params: dict[str, str] | None = None) -> JSONObject:
        return await self._send("GET", path, params=params)

    async def _write(
        self,
        resource: str,
        body: JSONObject,
        *,
        idempotency_key: str,
        params: dict[str, str] | None = None,
    ) -> JSONObject:
        query = {"requestid": wire.request_id(idempotency_key), **(params or {})}
        return await self._send("POST", resource, params=query, body=body, is_write=True)

    async def _query_page(self, statement: str) -> JSONObject:
        payload = await self._get("query", {"query": statement})
        response: JSONObject = payload.get("QueryResponse") or {}
        return response

    async def _query_all(self, entity: str, where: str = "") -> list[JSONObject]:
        found: list[JSONObject] = []
        start = 1
        while True:
            page = await self._query_page(
                f"SELECT * FROM {entity}{where} ORDERBY Id "
                f"STARTPOSITION {start} MAXRESULTS {LARGEST_PAGE}"
            )
            rows = page.get(entity) or []
            found.extend(rows)
            if len(rows) < LARGEST_PAGE:
                return found
            start += len(rows)

    async def _page(self, entity: str, cursor: str | None) -> tuple[list[JSONObject], str | None]:
        start = self._start_position(cursor)
        page = await self._query_page(
            f"SELECT * FROM {entity} ORDERBY Id STARTPOSITION {start} MAXRESULTS {self._page_size}"
        )
        rows = page.get(entity) or []
        next_cursor = str(start + len(rows)) if len(rows) == self._page_size else None
        return rows, next_cursor

    def _start_position(self, cursor: str | None) -> int:
        if cursor is None:
            return 1
        if not cursor.isdigit() or int(cursor) < 1:
            raise Rejected(f"not a QuickBooks page cursor: {cursor!r}", platform=self.platform)
        return int(cursor)

    def _unsupported(self, exc: wire.UnsupportedByQuickBooks) -> Rejected:
        return Rejected(str(exc), platform=self.platform)

    # -----------------------------------------------------------------------------------------
    # The books' mirror (connectors.mirror.MirrorSource; see connectors/quickbooks/mirror.py)
    # -----------------------------------------------------------------------------------------

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return self._mirror.mirror_kinds()

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        return await self._mirror.read_mirror_page(
            kind, since=since, cursor=cursor, page_size=page_size
        )

    # -----------------------------------------------------------------------------------------
    # Reads
    # -----------------------------------------------------------------------------------------

    async def list_accounts(self) -> list[Account]:
        accounts = [wire.account_from_qbo(row) for row in await self._query_all("Account")]
        return [account for account in accounts if account is not None]

    async def list_tracking_categories(self) -> list[TrackingCategory]:
        categories = []
        for entity in ("Class", "Department"):
            for row in await self._query_all(entity):
                categories.append(wire.tracking_from_qbo(entity, row))
        return categories

    async def list_vendors(self, cursor: str | None = None) -> Page[Vendor]:
        rows, next_cursor = await self._page("Vendor", cursor)
        return Page[Vendor](
            items=[wire.vendor_from_qbo(row) for row in rows], next_cursor=next_cursor
        )

    async def get_vendor(self, vendor_id: str) -> Vendor:
        payload = await self._get(f"vendor/{vendor_id}")
        return wire.vendor_from_qbo(payload["Vendor"])

    async def find_vendors(
        self, *, tax_id: str | None = None, name: str | None = None
    ) -> list[Vendor]:
        """Vendors whose tax id matches, or whose name matches once case, punctuation and
        legal suffixes (Inc, Corp, LLC, ...) are ignored; several results mean ambiguity."""
        if tax_id is None and name is None:
            return []
        where = ""
        if name and tax_id is None:
            # QBO LIKE only knows '%': narrow by the first word, compare the rest here.
            first_word = re.split(r"[^A-Za-z0-9]+", name.strip())[0] if name.strip() else ""
            if first_word:
                where = f" WHERE DisplayName LIKE {wire.quote(first_word + '%')}"
        rows = await self._query_all("Vendor", where)
        wanted_name = _normalized_name(name) if name else None
        wanted_tax = _digits(tax_id) if tax_id else None
        matches = []
        for row in rows:
            vendor = wire.vendor_from_qbo(row)
            if wanted_tax is not None:
                if vendor.tax_id and _digits(vendor.tax_id) == wanted_tax:
                    matches.append(vendor)
                continue
            names = {vendor.name, vendor.legal_name or vendor.name}
            if wanted_name and any(_normalized_name(n) == wanted_name for n in names):
                matches.append(vendor)
        return matches

    async def list_bills(self, cursor: str | None = None) -> Page[Bill]:
        rows, next_cursor = await self._page("Bill", cursor)
        return Page[Bill](items=await self._bills_from(rows), next_cursor=next_cursor)

    async def get_bill(self, bill_id: str) -> Bill:
        payload = await self._get(f"bill/{bill_id}")
        [bill] = await self._bills_from([payload["Bill"]])
        return bill

    async def find_bills(self, *, vendor_id: str, document_number: str | None = None) -> list[Bill]:
        where = f" WHERE VendorRef = {wire.quote(vendor_id)}"
        if document_number is not None:
            where += f" AND DocNumber = {wire.quote(document_number)}"
        return await self._bills_from(await self._query_all("Bill", where))

    async def _bills_from(self, rows: list[JSONObject]) -> list[Bill]:
        """Bills with their SalesTermRef read as PaymentTerms (Terms fetched once, cached)."""
        wanted = {term_id for row in rows if (term_id := wire.ref_value(row, "SalesTermRef"))}
        terms = await self._terms_by_id(wanted) if wanted else {}
        return [wire.bill_from_qbo(row, terms) for row in rows]

    async def _terms_by_id(self, wanted: set[str] | None = None) -> dict[str, JSONObject]:
        if self._terms is None or (wanted is not None and not wanted <= self._terms.keys()):
            self._terms = {str(row["Id"]): row for row in await self._query_all("Term")}
        return self._terms

    async def find_bill_headers(self, *, vendor_id: str) -> list[BillHeader]:
        # A QBO query returns whole bills a page (up to 1000) at a time: nothing to save.
        return [BillHeader.of(bill) for bill in await self.find_bills(vendor_id=vendor_id)]

    async def find_bill_by_reference(self, reference: str, *, vendor_id: str) -> Bill | None:
        rows = await self._query_all("Bill", f" WHERE VendorRef = {wire.quote(vendor_id)}")
        for row in rows:
            if wire.has_reference(row, reference):
                [bill] = await self._bills_from([row])
                return bill
        return None

    async def _bill_payment_rows(self, bill_id: str) -> list[JSONObject]:
        """The BillPayments linked to a bill (Bill.LinkedTxn; a voided one is no longer)."""
        bill = (await self._get(f"bill/{bill_id}"))["Bill"]
        payment_ids = [
            str(linked["TxnId"])
            for linked in bill.get("LinkedTxn") or []
            if linked.get("TxnType") in wire.PAYMENT_TXN_TYPES
        ]
        if not payment_ids:
            return []
        return await self._query_all("BillPayment", f" WHERE Id IN ({self._id_list(payment_ids)})")

    @staticmethod
    def _id_list(ids: Iterable[str]) -> str:
        return ", ".join(wire.quote(entity_id) for entity_id in ids)

    async def _discounts_for(self, payments: list[JSONObject]) -> dict[str, str]:
        """Which vendor credits applied in these payments are remit's early-payment discounts,
        and for which bill (vendor credit Id → bill Id). Credits are read once and cached."""
        unknown = {
            credit_id
            for row in payments
            for credit_id in wire.credit_ids_of(row)
            if credit_id not in self._discount_bills
        }
        if unknown:
            found = await self._query_all(
                "VendorCredit", f" WHERE Id IN ({self._id_list(sorted(unknown))})"
            )
            for credit in found:
                self._discount_bills[str(credit["Id"])] = wire.discount_bill_of(credit)
        return {
            credit_id: bill_id
            for row in payments
            for credit_id in wire.credit_ids_of(row)
            if (bill_id := self._discount_bills.get(credit_id)) is not None
        }

    async def _payments_from(self, rows: list[JSONObject]) -> list[BillPayment]:
        discounts = await self._discounts_for(rows)
        payments = [wire.bill_payment_from_qbo(row, discounts) for row in rows]
        return [payment for payment in payments if payment is not None]

    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]:
        payments = await self._payments_from(await self._bill_payment_rows(bill_id))
        return [p for p in payments if any(line.bill_id == bill_id for line in p.lines)]

    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None:
        """The payment remit wrote under `reference`, voided or not (a voided one says so)."""
        rows = await self._query_all("BillPayment", f" WHERE VendorRef = {wire.quote(vendor_id)}")
        for row in rows:
            if wire.has_reference(row, reference):
                found = await self._payments_from([row])
                if found:
                    return found[0]
        return None

    async def get_vendor_bank_accounts(self, vendor_id: str) -> list[VendorBankAccount]:
        """QBO keeps bank details on a vendor only as VendorPaymentBankDetail (AU companies)."""
        vendor = (await self._get(f"vendor/{vendor_id}"))["Vendor"]
        return wire.vendor_bank_accounts_from_qbo(vendor)

    async def list_credit_memos(self, *, vendor_id: str) -> list[BillCreditMemo]:
        rows = await self._query_all("VendorCredit", f" WHERE VendorRef = {wire.quote(vendor_id)}")
        return [wire.credit_memo_from_qbo(row) for row in rows]

    async def find_credit_memo_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillCreditMemo | None:
        rows = await self._query_all("VendorCredit", f" WHERE VendorRef = {wire.quote(vendor_id)}")
        for row in rows:
            if wire.has_reference(row, reference):
                return wire.credit_memo_from_qbo(row)
        return None

    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        """The vendor credits applied to the bill, read from the BillPayments that link them
        (each application's id is its BillPayment's); early-payment discounts are not
        credits here but `discount` on the payment's line."""
        rows = await self._bill_payment_rows(bill_id)
        discounts = await self._discounts_for(rows)
        return [
            application
            for row in rows
            for application in wire.credit_applications_from_qbo(row, discounts)
            if application.bill_id == bill_id
        ]

    async def _preferences(self) -> tuple[str, bool]:
        if self._currency_prefs is None:
            payload = await self._get("preferences")
            home, multicurrency = wire.currency_prefs(payload.get("Preferences") or {})
            fallback = self.connection.settings.get("home_currency", "USD")
            self._currency_prefs = (home or fallback, multicurrency)
        return self._currency_prefs

    async def home_currency(self) -> CurrencyCode:
        """Preferences.CurrencyPrefs.HomeCurrency (read once per connector)."""
        home, _ = await self._preferences()
        return home

    async def list_tax_rates(self) -> list[TaxRate]:
        """The purchase TaxCodes (a TaxCodeRef's ids), each with its purchase rates' sum."""
        codes = await self._query_all("TaxCode")
        rates = await self._query_all("TaxRate")
        return wire.purchase_tax_codes(codes, rates)

    async def tax_code_for(
        self, category: str, rate: Decimal | None, *, rates: Sequence[TaxRate] | None = None
    ) -> TaxRate | None:
        overrides = tax_code_overrides(self.connection)
        return pick_tax_code(
            await self.list_tax_rates() if rates is None else rates,
            category,
            rate,
            overrides=overrides,
            words=wire.TAX_CODE_WORDS,
        )

    async def get_exchange_rate(self, currency: str, on: date) -> ExchangeRate | None:
        """QBO's own rate (GET /exchangerate): home units per unit of `currency`, the latest
        on or before `on`; None without multicurrency or where QBO has no rate for it."""
        home, multicurrency = await self._preferences()
        code = currency.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise Rejected(f"not a currency code: {currency!r}", platform=self.platform)
        if code == home:
            return ExchangeRate(
                currency=home, home_currency=home, rate=Decimal("1"), as_of=on, source="quickbooks"
            )
        if not multicurrency:
            return None
        try:
            payload = await self._get(
                "exchangerate", {"sourcecurrencycode": code, "asofdate": on.isoformat()}
            )
        except NotFound:
            return None
        try:
            return wire.exchange_rate_from_qbo(payload["ExchangeRate"])
        except (KeyError, ValueError) as exc:
            raise Rejected(
                f"QuickBooks answered an unreadable exchange rate: {exc}", platform=self.platform
            ) from exc

    async def changes_since(self, cursor: str | None) -> Changes:
        """Vendors, bills and payments changed after `cursor` (a QBO server timestamp).

        Uses /cdc inside its 30-day window; otherwise (first sync, old cursor, or a CDC answer
        at its 1000-object ceiling) falls back to paged LastUpdatedTime queries. The next
        cursor is the server time of the first answer, so nothing committed meanwhile is lost
        (at worst an object is delivered twice).
        """
        try:
            since = wire.parse_time(cursor) if cursor else None
        except ValueError as exc:
            raise Rejected(
                f"not a QuickBooks change cursor: {cursor!r}", platform=self.platform
            ) from exc
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        if cursor and since and datetime.now(UTC) - since < CDC_LOOKBACK:
            changes = await self._changes_by_cdc(cursor)
            if changes is not None:
                return changes
        return await self._changes_by_query(cursor)

    async def _changes_by_cdc(self, cursor: str) -> Changes | None:
        payload = await self._get(
            "cdc", {"entities": "Vendor,Bill,BillPayment", "changedSince": cursor}
        )
        rows: dict[str, list[JSONObject]] = {"Vendor": [], "Bill": [], "BillPayment": []}
        for cdc in payload.get("CDCResponse") or []:
            for response in cdc.get("QueryResponse") or []:
                for entity, found in rows.items():
                    found.extend(response.get(entity) or [])
        if any(len(found) >= CDC_CEILING for found in rows.values()):
            return None
        return await self._changes(rows, str(payload.get("time") or cursor))

    async def _changes_by_query(self, cursor: str | None) -> Changes:
        where = f" WHERE MetaData.LastUpdatedTime > {wire.quote(cursor)}" if cursor else ""
        server_time: str | None = None
        rows: dict[str, list[JSONObject]] = {}
        for entity in ("Vendor", "Bill", "BillPayment"):
            found: list[JSONObject] = []
            start = 1
            while True:
                payload = await self._get(
                    "query",
                    {
                        "query": f"SELECT * FROM {entity}{where} ORDERBY Id "
                        f"STARTPOSITION {start} MAXRESULTS {LARGEST_PAGE}"
                    },
                )
                server_time = server_time or payload.get("time")
                page = (payload.get("QueryResponse") or {}).get(entity) or []
                found.extend(page)
                if len(page) < LARGEST_PAGE:
                    break
                start += len(page)
            rows[entity] = found
        return await self._changes(rows, str(server_time or cursor or ""))

    async def _changes(self, rows: dict[str, list[JSONObject]], cursor: str) -> Changes:
        def live(entity: str) -> list[JSONObject]:
            # Deleted objects come back as stubs with status "Deleted"; Changes has no slot.
            return [row for row in rows.get(entity, []) if row.get("status") != "Deleted"]

        return Changes(
            vendors=[wire.vendor_from_qbo(row) for row in live("Vendor")],
            bills=await self._bills_from(live("Bill")),
            bill_payments=await self._payments_from(live("BillPayment")),
            cursor=cursor,
        )

    # -----------------------------------------------------------------------------------------
    # Writes
    # -----------------------------------------------------------------------------------------

    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor:
        body = wire.vendor_to_qbo(vendor, reference=reference)
        payload = await self._write("vendor", body, idempotency_key=idempotency_key)
        return wire.vendor_from_qbo(payload["Vendor"])

    async def update_vendor(
        self, vendor_id: str, changes: VendorChanges, *, idempotency_key: str
    ) -> Vendor:
        current = (await self._get(f"vendor/{vendor_id}"))["Vendor"]
        body: JSONObject = {"Id": vendor_id, "SyncToken": current["SyncToken"], "sparse": True}
        body.update(wire.vendor_changes_to_qbo(changes))
        payload = await self._write("vendor", body, idempotency_key=idempotency_key)
        return wire.vendor_from_qbo(payload["Vendor"])

    async def create_account(self, account: NewAccount, *, idempotency_key: str) -> Account:
        payload = await self._write(
            "account", wire.account_to_qbo(account), idempotency_key=idempotency_key
        )
        created = wire.account_from_qbo(payload["Account"])
        assert created is not None  # remit creates only account types it maps
        return created

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        try:
            body = wire.bill_to_qbo(bill, reference=reference)
        except wire.UnsupportedByQuickBooks as exc:
            raise self._unsupported(exc) from exc
        if bill.terms is not None:
            body["SalesTermRef"] = wire.ref(await self._term_for(bill.terms, idempotency_key))
        payload = await self._write("bill", body, idempotency_key=idempotency_key)
        [created] = await self._bills_from([payload["Bill"]])
        return created

    async def _term_for(self, terms: PaymentTerms, idempotency_key: str) -> str:
        """The Id of a Term with these values: an existing one, else one created (a retry finds
        the one an earlier attempt created by its values, or replays it by requestid)."""
        self._terms = known = {str(row["Id"]): row for row in await self._query_all("Term")}
        for term_id, row in known.items():
            if wire.term_matches(row, terms):
                return term_id
        taken = {str(row.get("Name", "")).lower() for row in known.values()}
        name = terms.name or wire.term_name(terms)
        if name.lower() in taken:
            name = wire.term_name(terms)
        if name.lower() in taken:
            name = f"{name} (remit)"
        payload = await self._write(
            "term",
            wire.term_to_qbo(terms, name=name),
            idempotency_key=f"{idempotency_key}:term",
        )
        created = payload["Term"]
        known[str(created["Id"])] = created
        return str(created["Id"])

    async def attach_document(
        self,
        bill_id: str,
        *,
        file_name: str,
        content_type: str,
        content: bytes,
        idempotency_key: str,
    ) -> Attachment:
        metadata = wire.attachable_metadata(
            bill_id=bill_id,
            file_name=file_name,
            content_type=content_type,
            sha256=hashlib.sha256(content).hexdigest(),
        )
        files: Files = [
            ("file_metadata_01", (None, wire.dumps(metadata).encode(), "application/json")),
            ("file_content_01", (file_name, content, content_type)),
        ]
        payload = await self._send(
            "POST",
            "upload",
            params={"requestid": wire.request_id(idempotency_key)},
            files=files,
            is_write=True,
        )
        for item in payload.get("AttachableResponse") or []:
            if "Fault" in item:
                self._raise_item_fault(item["Fault"])
            if "Attachable" in item:
                return wire.attachment_from_qbo(item["Attachable"], bill_id)
        raise Rejected(
            "QuickBooks accepted the upload but returned no Attachable", platform=self.platform
        )

    def _raise_item_fault(self, fault: JSONObject) -> NoReturn:
        code, message, detail = _fault_fields({"Fault": fault}, "")
        raise Rejected(f"{message}: {detail}", platform=self.platform, code=code, detail=fault)

    async def list_attachments(self, bill_id: str) -> list[Attachment]:
        rows = await self._query_all(
            "Attachable",
            " WHERE AttachableRef.EntityRef.Type = 'Bill' "
            f"AND AttachableRef.EntityRef.value = {wire.quote(bill_id)}",
        )
        return [wire.attachment_from_qbo(row, bill_id) for row in rows]

    async def create_bill_payment(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        """One BillPayment, a line per bill. A discount on a line is QBO's practice: a vendor
        credit to the `discount_account_id` account for it, applied in the same payment (a
        line of its own), so the bill closes for amount + discount and TotalAmt is the cash.

        Safe to repeat: the payment and each discount credit carry requestids derived from
        `idempotency_key`, and each discount credit is looked up by its reference (derived
        from `reference`) before it is created.
        """
        account_type = await self._account_type(payment.source_account_id)
        credits: dict[str, JSONObject] = {}  # bill Id → its discount's vendor credit
        if any(line.discount > 0 for line in payment.lines):
            prepared = await self._discount_credits(payment, reference, idempotency_key)
            if isinstance(prepared, BillPayment):
                return prepared
            credits = prepared
        try:
            body = wire.bill_payment_to_qbo(
                payment,
                reference=reference,
                pay_by_credit_card=account_type == "Credit Card",
                discount_credits={bill: str(credit["Id"]) for bill, credit in credits.items()},
            )
        except wire.UnsupportedByQuickBooks as exc:
            raise self._unsupported(exc) from exc
        try:
            payload = await self._write("billpayment", body, idempotency_key=idempotency_key)
        except Rejected:
            # Nothing applies the discount credits now: take them out of the books again.
            await self._discard_discount_credits(
                [str(credit["Id"]) for credit in credits.values()], idempotency_key, quiet=True
            )
            raise
        discounts = {str(credit["Id"]): bill for bill, credit in credits.items()}
        self._discount_bills.update(discounts)
        created = wire.bill_payment_from_qbo(payload["BillPayment"], discounts)
        if created is None:
            raise Rejected("QuickBooks recorded the payment with no amount", platform=self.platform)
        return created

    async def _discount_credits(
        self, payment: BillPayment, reference: str, idempotency_key: str
    ) -> dict[str, JSONObject] | BillPayment:
        """The vendor credit for each discounted line (found by reference or created), after
        checking that no bill would be overpaid; or the payment itself, when an earlier attempt
        already made it (its discount credits are already applied)."""
        account_id = self.connection.settings.get("discount_account_id")
        if not account_id:
            raise Rejected(
                "taking an early-payment discount in QuickBooks needs the account discounts go "
                "to: set discount_account_id in the connection settings",
                platform=self.platform,
            )
        vendor = wire.quote(payment.vendor_id)
        existing = await self._query_all("VendorCredit", f" WHERE VendorRef = {vendor}")
        found: dict[str, JSONObject] = {}
        for line in payment.lines:
            if line.discount <= 0:
                continue
            wanted = wire.discount_reference(reference, line.bill_id)
            credit = next((row for row in existing if wire.has_reference(row, wanted)), None)
            if credit is None:
                continue
            if wire.decimal(credit.get("TotalAmt")) != line.discount:
                raise Rejected(
                    f"the discount on bill {line.bill_id} is {line.discount}, but the vendor "
                    f"credit already written for it under this reference is "
                    f"{credit.get('TotalAmt')}: use a new reference for a different payment",
                    platform=self.platform,
                )
            if wire.decimal(credit.get("Balance")) < line.discount:
                done = await self.find_bill_payment_by_reference(
                    reference, vendor_id=payment.vendor_id
                )
                if done is not None and not done.voided:
                    return done
                raise Rejected(
                    f"the discount credit {credit['Id']} for bill {line.bill_id} is already "
                    "applied, but not by a payment with this reference: someone applied it "
                    "in QuickBooks; use a new reference",
                    platform=self.platform,
                )
            found[line.bill_id] = credit
        bills = await self._check_not_overpaid(payment)
        credits: dict[str, JSONObject] = {}
        for line in payment.lines:
            if line.discount <= 0:
                continue
            credit = found.get(line.bill_id)
            if credit is None:
                bill = bills[line.bill_id]
                body = wire.discount_credit_to_qbo(
                    vendor_id=payment.vendor_id,
                    bill_id=line.bill_id,
                    bill_label=str(bill.get("DocNumber") or line.bill_id),
                    amount=line.discount,
                    currency=payment.currency,
                    exchange_rate=payment.exchange_rate,
                    account_id=account_id,
                    issue_date=payment.payment_date,
                    reference=wire.discount_reference(reference, line.bill_id),
                )
                credit = await self._create_once(
                    "vendorcredit",
                    "VendorCredit",
                    body,
                    f"{idempotency_key}:discount:{line.bill_id}",
                )
            credits[line.bill_id] = credit
        return credits

    async def _create_once(
        self, resource: str, entity: str, body: JSONObject, idempotency_key: str
    ) -> JSONObject:
        """Create an object that must exist afterwards. QBO replays a requestid's first answer
        even when that object was deleted since (remit deletes an unused discount credit), so
        the object is read back, and re-created under a requestid derived from the gone one."""
        key = idempotency_key
        for _ in range(5):
            created: JSONObject = (await self._write(resource, body, idempotency_key=key))[entity]
            try:
                await self._get(f"{resource}/{created['Id']}")
            except NotFound:
                key = f"{idempotency_key}:after:{created['Id']}"
                continue
            return created
        raise Conflict(
            f"QuickBooks keeps answering with a deleted {entity}; retry with a new key",
            platform=self.platform,
        )

    async def _rows_by_id(self, entity: str, ids: list[str]) -> dict[str, JSONObject]:
        wanted = sorted(set(ids))
        rows = await self._query_all(entity, f" WHERE Id IN ({self._id_list(wanted)})")
        return {str(row["Id"]): row for row in rows}

    async def _check_not_overpaid(self, payment: BillPayment) -> dict[str, JSONObject]:
        """QBO refuses a payment line above the bill's balance; a discount counts with the cash,
        so check before writing the discount credits rather than leave them behind."""
        bills = await self._rows_by_id("Bill", [line.bill_id for line in payment.lines])
        settled: dict[str, Decimal] = {}
        for line in payment.lines:
            settled[line.bill_id] = settled.get(line.bill_id, Decimal("0")) + line.amount
            settled[line.bill_id] += line.discount
        for bill_id, amount in settled.items():
            bill = bills.get(bill_id)
            if bill is None:
                raise NotFound(f"QuickBooks has no bill {bill_id}", platform=self.platform)
            if wire.ref_value(bill, "VendorRef") != payment.vendor_id:
                raise Rejected(
                    f"bill {bill_id} belongs to another vendor than the payment's",
                    platform=self.platform,
                    code="620",
                )
            balance = wire.decimal(bill.get("Balance"))
            if amount > balance:
                raise Rejected(
                    f"paying {amount} (cash and discount) on bill {bill_id} is more than its "
                    f"open balance ({balance}): QuickBooks refuses an overpaid bill",
                    platform=self.platform,
                    code="6000",
                )
        return bills

    async def _discard_discount_credits(
        self, credit_ids: list[str], idempotency_key: str, *, quiet: bool = False
    ) -> None:
        """Delete remit's discount credits that nothing applies any more (a refused or voided
        payment's); a credit still applied, or not remit's, is left alone."""
        for credit_id in credit_ids:
            try:
                credit = (await self._get(f"vendorcredit/{credit_id}"))["VendorCredit"]
                unapplied = wire.decimal(credit.get("Balance")) == wire.decimal(
                    credit.get("TotalAmt")
                )
                if wire.discount_bill_of(credit) is None or not unapplied:
                    continue
                await self._write(
                    "vendorcredit",
                    {"Id": credit["Id"], "SyncToken": credit["SyncToken"]},
                    idempotency_key=f"{idempotency_key}:discard:{credit_id}",
                    params={"operation": "delete"},
                )
            except NotFound:
                continue
            except ConnectorError:
                if not quiet:
                    raise

    async def _account_type(self, account_id: str) -> str:
        if account_id not in self._account_types:
            account = (await self._get(f"account/{account_id}"))["Account"]
            self._account_types[account_id] = str(account.get("AccountType", ""))
        return self._account_types[account_id]

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo:
        try:
            body = wire.credit_memo_to_qbo(memo, reference=reference)
        except wire.UnsupportedByQuickBooks as exc:
            raise self._unsupported(exc) from exc
        payload = await self._write("vendorcredit", body, idempotency_key=idempotency_key)
        return wire.credit_memo_from_qbo(payload["VendorCredit"])

    async def apply_credit(
        self, application: CreditApplication, *, idempotency_key: str
    ) -> CreditApplication:
        """A zero-cash BillPayment that links the bill and the vendor credit (QBO's way); its
        Id is the application's. Safe to repeat: an application already written under this
        key (requestid, and its reference in PrivateNote) is returned, not written again."""
        credit = (await self._get(f"vendorcredit/{application.credit_memo_id}"))["VendorCredit"]
        vendor_id = str(wire.ref_value(credit, "VendorRef"))
        for row in await self._query_all(
            "BillPayment", f" WHERE VendorRef = {wire.quote(vendor_id)}"
        ):
            if wire.has_reference(row, idempotency_key) and not wire.is_voided(row):
                return application.model_copy(
                    update={"id": str(row["Id"]), "applied_on": wire.parse_date(row["TxnDate"])}
                )
        currency = wire.ref_value(credit, "CurrencyRef") or self.connection.settings.get(
            "home_currency", "USD"
        )
        settings = self.connection.settings
        bank_account = settings.get(f"bank_account_id:{currency}") or settings.get(
            "bank_account_id"
        )
        if not bank_account:
            raise Rejected(
                "applying a vendor credit in QuickBooks needs a bank account on the payment: "
                "set bank_account_id in the connection settings",
                platform=self.platform,
            )
        applied_on = application.applied_on or date.today()
        body = wire.credit_application_to_qbo(
            vendor_id=vendor_id,
            bill_id=application.bill_id,
            credit_memo_id=application.credit_memo_id,
            amount=application.amount,
            currency=currency,
            bank_account_id=bank_account,
            applied_on=applied_on,
            reference=idempotency_key,
        )
        payload = await self._write("billpayment", body, idempotency_key=idempotency_key)
        recorded = payload["BillPayment"]
        return application.model_copy(
            update={
                "id": str(recorded["Id"]),
                "applied_on": wire.parse_date(recorded.get("TxnDate", applied_on.isoformat())),
            }
        )

    async def void_bill_payment(self, payment_id: str, *, idempotency_key: str) -> BillPayment:
        """QBO's void (`operation=update&include=void`, a sparse update): the payment stays,
        zeroed, its lines cleared, and the bills it paid are open again; remit's discount
        credits it applied are deleted, since no discount was taken after all.

        QBO keeps no trace of what a voided payment applied, so the lines are first written
        into its PrivateNote; a retry (the payment already voided) reads them from there.
        """
        row = (await self._get(f"billpayment/{payment_id}"))["BillPayment"]
        if wire.is_voided(row):
            voided = wire.voided_payment_from_qbo(row)
            kept = wire.paid_record_of(row)
            if voided is None or kept is None:
                raise Rejected(
                    f"QuickBooks payment {payment_id} was voided outside remit, and QuickBooks "
                    "keeps no record of what a voided payment paid",
                    platform=self.platform,
                )
            await self._discard_discount_credits(kept.discount_credits, idempotency_key)
            return voided
        discounts = await self._discounts_for([row])
        paid = wire.bill_payment_from_qbo(row, discounts)
        if paid is None:
            raise Rejected(
                f"QuickBooks payment {payment_id} moves no cash (it only applies vendor "
                "credits): it is not a bill payment to void",
                platform=self.platform,
            )
        discount_credits = [credit for credit in wire.credit_ids_of(row) if credit in discounts]
        record = wire.paid_record(paid, discount_credits)
        if wire.paid_record_of(row) != wire.paid_record_of({"PrivateNote": record}):
            try:
                note = wire.note_with_paid_record(row.get("PrivateNote"), record)
            except wire.UnsupportedByQuickBooks as exc:
                raise self._unsupported(exc) from exc
            digest = hashlib.sha256(record.encode()).hexdigest()[:12]
            row = (
                await self._write(
                    "billpayment",
                    {
                        "Id": row["Id"],
                        "SyncToken": row["SyncToken"],
                        "sparse": True,
                        "PrivateNote": note,
                    },
                    idempotency_key=f"{idempotency_key}:record:{digest}",
                )
            )["BillPayment"]
        payload = await self._write(
            "billpayment",
            {"Id": row["Id"], "SyncToken": row["SyncToken"], "sparse": True},
            idempotency_key=f"{idempotency_key}:void",
            params={"operation": "update", "include": "void"},
        )
        await self._discard_discount_credits(discount_credits, idempotency_key)
        voided = wire.bill_payment_from_qbo(payload["BillPayment"])
        if voided is None or not voided.voided:
            return paid.model_copy(update={"voided": True})
        return voided

    async def aclose(self) -> None:
        # The httpx client is injected and owned by the caller, which closes it.
        return None


def _fault_fields(payload: Any, text: str) -> tuple[str | None, str, str]:
    """(code, Message, Detail) from a QBO Fault, JSON in either casing or the XML throttle body."""
    if isinstance(payload, dict):
        fault = payload.get("Fault") or payload.get("fault")
        if isinstance(fault, dict):
            errors = fault.get("Error") or fault.get("error") or []
            if errors:
                first = errors[0]
                code = first.get("code")
                message = first.get("Message") or first.get("message") or ""
                detail = first.get("Detail") or first.get("detail") or ""
                return (str(code) if code is not None else None), message, detail
        if "error" in payload and isinstance(payload["error"], str):
            return None, payload["error"], str(payload.get("error_description", ""))
    code_match = _XML_CODE.search(text)
    message_match = _XML_MESSAGE.search(text)
    detail_match = _XML_DETAIL.search(text)
    return (
        code_match.group(1) if code_match else None,
        message_match.group(1).strip() if message_match else "",
        detail_match.group(1).strip() if detail_match else "",
    )
