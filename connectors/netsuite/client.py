"""The NetSuite connector: SuiteTalk REST record, document and SuiteQL services over httpx."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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
from connectors.http import NOT_SENT, BearerTokens, HttpClient
from connectors.mirror import MirrorKind, SyncPage
from connectors.netsuite import wire
from connectors.netsuite.auth import AUTH
from connectors.netsuite.mirror import NetSuiteMirror
from connectors.netsuite.wire import JSON, CurrencyMap
from connectors.oauth import Credentials, OnTokens, TokenKeeper, TokenSet
from connectors.retries import read_attempts

PLATFORM_NAME = "netsuite"
# NetSuite documents no Retry-After for REST concurrency refusals, only "retry after a delay,
# increasing, de-synchronised"; 5 s is the first wait when the answer names none.
THROTTLE_WAIT = timedelta(seconds=5)
DEFAULT_PAGE_SIZE = 100
LARGEST_PAGE = 1000
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
ATTACHMENTS_FOLDER_EXTERNAL_ID = "remit-attachments"
_THROTTLE_CODES = {"CONCURRENCY_LIMIT_EXCEEDED", "SSS_REQUEST_LIMIT_EXCEEDED", "WS_REQUEST_BLOCKED"}
_CONFLICT_CODES = {"RCRD_LOCKED_BY_WF", "RCRD_HAS_BEEN_CHANGED", "IDEMPOTENCY_ERROR"}
# SuiteScript's words for a record that does not exist (RESTlets answer them with HTTP 400).
_NOT_FOUND_CODES = {"NONEXISTENT_ID", "RCRD_DSNT_EXIST", "THAT_RECORD_DOES_NOT_EXIST"}
# remit's void RESTlet (suitescript/remit_void_restlet.js), as deployed by the setup guide.
VOID_RESTLET_SCRIPT = "customscript_remit_void"
VOID_RESTLET_DEPLOY = "customdeploy_remit_void"
RESTLET_PATH = "/app/site/hosting/restlet.nl"
_NUMERIC_ID = re.compile(r"^\d+$")


def _renewable(refused: httpx.Response) -> bool:
    """Whether a 401 may be cured by a renewal (not when the challenge says "revoked")."""
    return "revoked" not in refused.headers.get("www-authenticate", "").lower()


def _normalized_name(name: str) -> str:
    """A vendor name without case, punctuation or a trailing legal form (Inc, Corp, LLC...)."""
    words = re.sub(r"[^a-z0-9 ]+", " ", name.lower()).split()
    suffixes = {"inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "gmbh"}
    while len(words) > 1 and words[-1] in suffixes:
        words.pop()
    return " ".join(words)


def _tax_digits(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


# remit's account type -> the NetSuite acctType a new account gets (the first that maps to it).
_NETSUITE_ACCOUNT_TYPE = {
    kind: name for name, (kind, _) in reversed(list(wire.ACCOUNT_TYPES.items()))
}


class NetSuiteConnector:
    """One NetSuite account through SuiteTalk REST. Raises only connectors.base errors.

    Writes are `PUT .../{type}/eid:{externalId}` upserts whose externalId is a hash of the
    idempotency key, so a repeat updates the record the first attempt made. remit's
    reference is carried at the end of the transaction's memo (`[remit-ref:...]`) and found
    again with a `q` filter on it. Voiding a payment, which REST web services cannot do, runs
    remit's RESTlet (suitescript/remit_void_restlet.js) after reading the payment first.
    """

    platform = PLATFORM_NAME

    def __init__(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        on_tokens: OnTokens | None = None,
    ) -> None:
        self.connection = connection
        self._http = http
        # M2M has no refresh token: a renewal signs a new client assertion.
        self.tokens = TokenKeeper(connection.credentials, self._renew, on_tokens=on_tokens)
        self._client = HttpClient(
            http,
            platform=self.platform,
            # A revoked grant is not worth a renewal: its refresh token is revoked with it.
            auth=BearerTokens(self.tokens, renewable=_renewable),
            error_for=self._error_for,
            read_attempts=read_attempts(connection.settings),
        )
        configured = connection.settings.get("page_size")
        if configured and configured.isdigit():
            page_size = int(configured)
        self._page_size = max(1, min(page_size, LARGEST_PAGE))
        root = connection.base_url.rstrip("/")
        self._record_url = f"{root}/services/rest/record/v1"
        self._document_url = f"{root}/services/rest/document/v1"
        self._suiteql_url = f"{root}/services/rest/query/v1/suiteql"
        self._currencies: CurrencyMap | None = None
        self._home_currency: str | None = None
        self._folder_id: str | None = connection.settings.get("attachments_folder_id")
        # `term` records by internal id, and whether that is every term of the account.
        self._terms: dict[str, JSON] = {}
        self._all_terms_read = False
        self._mirror = NetSuiteMirror(self)

    # -----------------------------------------------------------------------------------------
    # HTTP
    # -----------------------------------------------------------------------------------------

    @property
    def _subsidiary_id(self) -> str:
        subsidiary = self.connection.settings.get("subsidiary_id")
        if not subsidiary:
            raise Rejected(
                "this NetSuite connection has no subsidiary_id setting; transactions need one",
                platform=self.platform,
            )
        return subsidiary

    @property
    def _ap_account_id(self) -> str | None:
        return self.connection.settings.get("ap_account_id")

    async def _renew(self, credentials: Credentials) -> TokenSet:
        return await AUTH.renew(self._http, self.connection.base_url, credentials)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        is_write: bool = False,
    ) -> httpx.Response:
        """One call through the shared loop; reads (GETs and SuiteQL queries) get its quick
        tries. Bodies refuse floats: on this wire any number may be money."""
        response: httpx.Response = await self._client.send(
            method,
            url,
            params=params,
            headers=headers,
            json=body,
            floats=False,
            repeatable=not is_write,
        )
        return response

    def _error_for(self, response: httpx.Response) -> ConnectorError:
        """A failed NetSuite answer as the connector error it means."""
        status = response.status_code
        text = response.text
        payload: Any = None
        try:
            payload = wire.loads(text) if text else None
        except ValueError:
            payload = None
        code, detail = _error_fields(payload)
        message = detail or (payload.get("title") if isinstance(payload, dict) else None)
        message = message or text[:500] or f"NetSuite answered {status}"
        common: dict[str, Any] = {
            "platform": self.platform,
            "status": status,
            "code": code,
            "detail": payload if payload is not None else text[:2000],
        }
        challenge = response.headers.get("www-authenticate", "")
        if status == 429 or code in _THROTTLE_CODES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), THROTTLE_WAIT)
            return RateLimited(message, retry_after=retry_after, **common)
        if "invalid_grant" in text or (status == 401 and "revoked" in challenge.lower()):
            return ConnectionRevoked(
                f"the NetSuite grant was revoked ({message}): relink the account", **common
            )
        if status == 401:
            return AuthExpired(message, **common)
        if code in _CONFLICT_CODES or status == 409 or "record has been changed" in text.lower():
            return Conflict(message, **common)
        if status == 404 or code in _NOT_FOUND_CODES:
            return NotFound(message, **common)
        if status >= 500:
            return Unavailable(message, **common)
        return Rejected(message, **common)

    async def _get_json(self, url: str, params: dict[str, str] | None = None) -> JSON:
        return await self._client.send_json("GET", url, params=params)

    async def _record(self, record_type: str, key: str) -> JSON:
        if not key or "/" in key:
            raise NotFound(f"no {record_type} {key!r}", platform=self.platform)
        return await self._get_json(
            f"{self._record_url}/{record_type}/{key}", {"expandSubResources": "true"}
        )

    async def _id_page(
        self, record_type: str, *, q: str | None, offset: int, limit: int
    ) -> tuple[list[str], int | None]:
        """One page of record ids (NetSuite lists ids only) and the next offset, if any."""
        params = {"limit": str(limit), "offset": str(offset)}
        if q:
            params["q"] = q
        payload = await self._get_json(f"{self._record_url}/{record_type}", params)
        ids = [str(item["id"]) for item in payload.get("items") or []]
        next_offset = offset + len(ids) if payload.get("hasMore") and ids else None
        return ids, next_offset

    async def _all_records(self, record_type: str, q: str | None = None) -> list[JSON]:
        records: list[JSON] = []
        offset: int | None = 0
        while offset is not None:
            ids, offset = await self._id_page(record_type, q=q, offset=offset, limit=LARGEST_PAGE)
            records.extend([await self._record(record_type, record_id) for record_id in ids])
        return records

    async def _suiteql(self, statement: str, *, limit: int | None = None) -> list[JSON]:
        """Every row of a SuiteQL query (or the first `limit`), a page of ≤1000 at a time."""
        rows: list[JSON] = []
        offset: int | None = 0
        page = min(limit or LARGEST_PAGE, LARGEST_PAGE)
        while offset is not None:
            # A query, though sent as POST: as repeatable as any read.
            payload = await self._client.send_json(
                "POST",
                self._suiteql_url,
                params={"limit": str(page), "offset": str(offset)},
                json={"q": statement},
                headers={"Prefer": "transient"},
                floats=False,
                repeatable=True,
            )
            items = payload.get("items") or []
            rows.extend(items)
            offset = offset + len(items) if payload.get("hasMore") and items else None
            if limit is not None and len(rows) >= limit:
                return rows[:limit]
        return rows

    async def _upsert(self, service_url: str, record_type: str, external_id: str, body: JSON,
                      *, replace: str | None = None) -> str:  # fmt: skip
        """Create or update by externalId; the internal id of the record written."""
        params = {"replace": replace} if replace else None
        response = await self._send(
            "PUT",
            f"{service_url}/{record_type}/eid:{external_id}",
            params=params,
            body=body,
            is_write=True,
        )
        location = response.headers.get("Location")
        if location:
            return wire.id_from_location(location)
        record = await self._get_json(f"{service_url}/{record_type}/eid:{external_id}")
        return str(record["id"])

    async def _currency_map(self) -> CurrencyMap:
        if self._currencies is None:
            records = await self._all_records("currency")
            self._currencies = CurrencyMap(
                {str(record["id"]): str(record.get("symbol") or "") for record in records}
            )
        return self._currencies

    def _rejected(self, exc: Exception) -> Rejected:
        if isinstance(exc, KeyError):
            return Rejected(
                f"currency {exc.args[0]} is not enabled in this NetSuite account",
                platform=self.platform,
            )
        return Rejected(str(exc), platform=self.platform)

    async def _bills(self, records: list[JSON]) -> list[Bill]:
        """Bills with their terms and payment ids (SuiteQL's transaction links, one query)."""
        currencies = await self._currency_map()
        terms = await self._terms_of(records)
        bills = [wire.bill_from_netsuite(record, currencies, terms) for record in records]
        ids = [bill.id for bill in bills if bill.id and _NUMERIC_ID.match(bill.id)]
        if not ids:
            return bills
        rows: list[JSON] = []
        for start in range(0, len(ids), LARGEST_PAGE):  # SuiteQL IN lists stay under 1000
            rows += await self._suiteql(
                "SELECT previousdoc, nextdoc FROM nexttransactionlinelink WHERE previousdoc IN "
                f"({', '.join(ids[start : start + LARGEST_PAGE])}) AND linktype = 'Payment' "
                "ORDER BY nextdoc"
            )
        payments: dict[str, list[str]] = {}
        for row in rows:
            payments.setdefault(str(row["previousdoc"]), []).append(str(row["nextdoc"]))
        return [
            bill.model_copy(update={"payment_ids": payments.get(bill.id or "", [])})
            for bill in bills
        ]

    async def _terms_of(self, records: list[JSON]) -> dict[str, PaymentTerms | None]:
        """The terms of the given bills, by `term` id (a GET for each term not read yet)."""
        wanted = {wire.ref_id(record.get("terms")) for record in records}
        for term_id in sorted(t for t in wanted if t and t not in self._terms):
            self._terms[term_id] = await self._record("term", term_id)
        return {
            term_id: wire.terms_from_netsuite(self._terms[term_id]) for term_id in wanted if term_id
        }

    async def _term_id(self, terms: PaymentTerms) -> str:
        """The `term` record for these terms: an active one with the same day counts and
        percent (the one of that name first), else one created by an `eid:` upsert keyed by
        the terms themselves, so a retry or a second worker writes the same record."""
        if not self._all_terms_read:
            self._terms.update({str(r["id"]): r for r in await self._all_records("term")})
            self._all_terms_read = True
        same = sorted(
            (r for r in self._terms.values() if wire.terms_match(r, terms)),
            key=lambda r: (
                str(r.get("name") or "").lower() != (terms.name or "").lower(),
                int(r["id"]) if _NUMERIC_ID.match(str(r["id"])) else 0,
            ),
        )
        if same:
            return str(same[0]["id"])
        taken = {str(r.get("name") or "").lower() for r in self._terms.values()}
        standard = wire.term_name(terms)
        external_id = wire.term_external_id(terms)
        name = next(
            (
                candidate
                for candidate in (terms.name, standard, f"{standard} (remit)")
                if candidate and candidate.lower() not in taken
            ),
            f"{standard} ({external_id})",
        )
        term_id = await self._upsert(
            self._record_url, "term", external_id, wire.term_to_netsuite(terms, name)
        )
        self._terms[term_id] = await self._record("term", term_id)
        return term_id

    # -----------------------------------------------------------------------------------------
    # Reads
    # -----------------------------------------------------------------------------------------

    async def list_accounts(self) -> list[Account]:
        currencies = await self._currency_map()
        accounts = [
            wire.account_from_netsuite(r, currencies) for r in await self._all_records("account")
        ]
        return [account for account in accounts if account is not None]

    async def list_tracking_categories(self) -> list[TrackingCategory]:
        found: list[TrackingCategory] = []
        for record_type in wire.TRACKING_RECORDS:
            found.extend(
                wire.tracking_from_netsuite(record_type, record)
                for record in await self._all_records(record_type)
            )
        return found

    async def _list(self, record_type: str, cursor: str | None) -> tuple[list[JSON], str | None]:
        try:
            offset = int(cursor) if cursor else 0
        except ValueError as exc:
            raise Rejected(
                f"not a NetSuite list cursor: {cursor!r}", platform=self.platform
            ) from exc
        ids, next_offset = await self._id_page(
            record_type, q=None, offset=offset, limit=self._page_size
        )
        records = [await self._record(record_type, record_id) for record_id in ids]
        return records, str(next_offset) if next_offset is not None else None

    async def list_vendors(self, cursor: str | None = None) -> Page[Vendor]:
        currencies = await self._currency_map()
        records, next_cursor = await self._list("vendor", cursor)
        return Page[Vendor](
            items=[wire.vendor_from_netsuite(r, currencies) for r in records],
            next_cursor=next_cursor,
        )

    async def get_vendor(self, vendor_id: str) -> Vendor:
        currencies = await self._currency_map()
        return wire.vendor_from_netsuite(await self._record("vendor", vendor_id), currencies)

    async def find_vendors(
        self, *, tax_id: str | None = None, name: str | None = None
    ) -> list[Vendor]:
        """Vendors whose tax id matches (ignoring punctuation), or else whose name matches once
        case, punctuation and legal suffixes are ignored; several results mean ambiguity."""
        if not tax_id and not name:
            return []
        currencies = await self._currency_map()
        # One SuiteQL query for every vendor's names and tax id, compared here (the comparison
        # ignores punctuation and legal suffixes, which no query operator can), then a GET for
        # each match only: the record service would need a GET for every vendor.
        rows = await self._suiteql(
            "SELECT id, entityid, companyname, legalname, taxidnum FROM vendor"
        )
        if tax_id:
            wanted_tax = _tax_digits(tax_id)
            ids = [r["id"] for r in rows if _tax_digits(str(r.get("taxidnum") or "")) == wanted_tax]
        else:
            assert name is not None
            wanted = _normalized_name(name)
            ids = [
                r["id"]
                for r in rows
                if any(
                    _normalized_name(str(r[column])) == wanted
                    # entityid: a person's vendor has no company name (it shows first + last).
                    for column in ("companyname", "legalname", "entityid")
                    if r.get(column)
                )
            ]
        return [
            wire.vendor_from_netsuite(await self._record("vendor", str(vendor_id)), currencies)
            for vendor_id in ids
        ]

    async def list_bills(self, cursor: str | None = None) -> Page[Bill]:
        records, next_cursor = await self._list("vendorBill", cursor)
        return Page[Bill](items=await self._bills(records), next_cursor=next_cursor)

    async def get_bill(self, bill_id: str) -> Bill:
        return (await self._bills([await self._record("vendorBill", bill_id)]))[0]

    async def find_bills(self, *, vendor_id: str, document_number: str | None = None) -> list[Bill]:
        if not _NUMERIC_ID.match(vendor_id):
            return []
        q = f"entity ANY_OF [{vendor_id}]"
        if document_number is not None:
            q += f" AND tranId IS {wire.q_string(document_number)}"
        return await self._bills(await self._all_records("vendorBill", q))

    async def find_bill_headers(self, *, vendor_id: str) -> list[BillHeader]:
        """One SuiteQL query (per 1000 bills) instead of a GET per bill."""
        if not _NUMERIC_ID.match(vendor_id):
            return []
        currencies = await self._currency_map()
        rows = await self._suiteql(
            # SuiteQL spells dates in the user's date format: ask for ISO explicitly.
            "SELECT id, tranid, TO_CHAR(trandate, 'YYYY-MM-DD') AS trandate, currency, "
            "foreigntotal, foreignamountunpaid, status, memo FROM transaction "
            f"WHERE type = 'VendBill' AND entity = {vendor_id} ORDER BY id"
        )
        return [wire.bill_header_from_suiteql(row, currencies) for row in rows]

    async def _by_reference(self, record_type: str, reference: str, vendor_id: str) -> JSON | None:
        if not _NUMERIC_ID.match(vendor_id):
            return None
        q = (
            f"entity ANY_OF [{vendor_id}] AND "
            f"memo CONTAIN {wire.q_string(wire.reference_tag(reference))}"
        )
        for record in await self._all_records(record_type, q):
            if wire.split_memo(record.get("memo"))[1] == reference:
                return record
        return None

    async def find_bill_by_reference(self, reference: str, *, vendor_id: str) -> Bill | None:
        record = await self._by_reference("vendorBill", reference, vendor_id)
        if record is None:
            return None
        return (await self._bills([record]))[0]

    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]:
        currencies = await self._currency_map()
        await self._record("vendorBill", bill_id)  # NotFound for a bill that does not exist
        rows = await self._suiteql(
            "SELECT DISTINCT nextdoc FROM nexttransactionlinelink "
            f"WHERE previousdoc = {bill_id} AND linktype = 'Payment' ORDER BY nextdoc"
        )
        payments = []
        for row in rows:
            record = await self._record("vendorPayment", str(row["nextdoc"]))
            payments.append(wire.payment_from_netsuite(record, currencies))
        return payments

    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None:
        record = await self._by_reference("vendorPayment", reference, vendor_id)
        if record is None:
            return None
        return wire.payment_from_netsuite(record, await self._currency_map())

    # --- the books' mirror (connectors.mirror.MirrorSource; see connectors/netsuite/mirror.py)

    def mirror_kinds(self) -> tuple[MirrorKind, ...]:
        return self._mirror.mirror_kinds()

    async def read_mirror_page(
        self, kind: MirrorKind, *, since: str | None, cursor: str | None, page_size: int
    ) -> SyncPage:
        return await self._mirror.read_mirror_page(
            kind, since=since, cursor=cursor, page_size=page_size
        )

    async def changes_since(self, cursor: str | None) -> Changes:
        """Vendors, bills and payments modified since `cursor` (everything when None).

        Filters on `lastModifiedDate ON_OR_AFTER` the newest time already delivered and drops
        the records delivered at exactly that time, so nothing modified in the same instant
        is lost and nothing is delivered twice. The cursor is opaque (base64 JSON).
        """
        since, seen = _decode_cursor(cursor, self.platform)
        q = f"lastModifiedDate ON_OR_AFTER {wire.q_string(since)}" if since else None
        currencies = await self._currency_map()
        newest = since
        newest_keys: set[str] = set(seen)
        found: dict[str, list[JSON]] = {}
        for record_type in ("vendor", "vendorBill", "vendorPayment"):
            fresh = []
            for record in await self._all_records(record_type, q):
                key = f"{record_type}:{record['id']}"
                modified = str(record.get("lastModifiedDate") or "")
                if modified == since and key in seen:
                    continue
                fresh.append(record)
                if newest is None or _later(modified, newest):
                    newest, newest_keys = modified, {key}
                elif modified == newest:
                    newest_keys.add(key)
            found[record_type] = fresh
        return Changes(
            vendors=[wire.vendor_from_netsuite(r, currencies) for r in found["vendor"]],
            bills=await self._bills(found["vendorBill"]),
            bill_payments=[
                wire.payment_from_netsuite(r, currencies) for r in found["vendorPayment"]
            ],
            cursor=_encode_cursor(newest, newest_keys),
        )

    async def get_vendor_bank_accounts(self, vendor_id: str) -> list[VendorBankAccount]:
        """The vendor's active Electronic Bank Payments bank details, primary first.

        NetSuite keeps payee bank details only in the EBP SuiteApp's custom record
        `customrecord_2663_entity_bank_details` (the vendor record has none), one per account;
        custom record tables answer SuiteQL by their script id. Without the SuiteApp the
        table does not exist and the vendor has none ([]).
        """
        await self._record("vendor", vendor_id)  # NotFound for a vendor that does not exist
        if not _NUMERIC_ID.match(vendor_id):
            raise NotFound(f"no vendor {vendor_id!r}", platform=self.platform)
        table = wire.BANK_DETAILS_RECORD
        try:
            rows = await self._suiteql(
                f"SELECT {', '.join(wire.BANK_DETAILS_COLUMNS)} FROM {table} "
                f"WHERE custrecord_2663_parent_vendor = {vendor_id} AND isinactive = 'F' "
                "ORDER BY id"
            )
        except Rejected as exc:
            if table in exc.message and "not found" in exc.message.lower():
                return []  # the SuiteApp is not installed in this account
            raise
        accounts = [wire.bank_account_from_suiteql(row) for row in rows]
        return sorted(accounts, key=lambda account: not account.primary)

    async def list_credit_memos(self, *, vendor_id: str) -> list[BillCreditMemo]:
        """The vendor's credits with `remaining` (`unapplied`): their ids in one SuiteQL
        query, then each record (its lines are only on the record)."""
        if not _NUMERIC_ID.match(vendor_id):
            return []
        currencies = await self._currency_map()
        rows = await self._suiteql(
            "SELECT id FROM transaction "
            f"WHERE type = 'VendCred' AND entity = {vendor_id} ORDER BY id"
        )
        return [
            wire.credit_from_netsuite(
                await self._record("vendorCredit", str(row["id"])), currencies
            )
            for row in rows
        ]

    async def find_credit_memo_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillCreditMemo | None:
        record = await self._by_reference("vendorCredit", reference, vendor_id)
        if record is None:
            return None
        return wire.credit_from_netsuite(record, await self._currency_map())

    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        """Credits applied to the bill: the links name the credits, and each credit's apply
        line for the bill says how much (a credit's application has no record of its own)."""
        await self._record("vendorBill", bill_id)  # NotFound for a bill that does not exist
        rows = await self._suiteql(
            "SELECT DISTINCT nextdoc FROM nexttransactionlinelink "
            f"WHERE previousdoc = {bill_id} AND nexttype = 'VendCred' ORDER BY nextdoc"
        )
        applications = []
        for row in rows:
            record = await self._record("vendorCredit", str(row["nextdoc"]))
            application = wire.credit_application(record, bill_id)
            if application is not None:
                applications.append(application)
        return applications

    async def list_tax_rates(self) -> list[TaxRate]:
        """The SuiteTax tax codes (`salestaxitem`), VAT codes before US sales tax codes (a
        seller's tax, which a bill's lines do not reclaim): an exempt or zero-rated VAT line
        takes the VAT code, not the sales-tax exemption of the same rate."""
        codes = await self._suiteql(
            "SELECT id, name, description, rate, taxtype, isinactive FROM salestaxitem"
        )
        types = await self._suiteql("SELECT id, country FROM taxtype")
        sales_tax = {str(row["id"]) for row in types if str(row.get("country") or "") == "US"}
        rates = [wire.tax_rate_from_suiteql(row) for row in codes]
        order = {str(row["id"]): str(row.get("taxtype") or "") in sales_tax for row in codes}
        return sorted(rates, key=lambda rate: order.get(rate.id, False))

    async def tax_code_for(
        self, category: str, rate: Decimal | None, *, rates: Sequence[TaxRate] | None = None
    ) -> TaxRate | None:
        overrides = tax_code_overrides(self.connection)
        listed = await self.list_tax_rates() if rates is None else rates
        return pick_tax_code(listed, category, rate, overrides=overrides)

    async def home_currency(self) -> CurrencyCode:
        """The base currency of the connection's subsidiary (OneWorld keeps one per
        subsidiary); without a subsidiary, the currency record marked as the base."""
        if self._home_currency is None:
            currencies = await self._currency_map()
            subsidiary_id = self.connection.settings.get("subsidiary_id")
            if subsidiary_id:
                record = await self._record("subsidiary", subsidiary_id)
                self._home_currency = currencies.code(record.get("currency"))
            else:
                for record in await self._all_records("currency"):
                    if record.get("isBaseCurrency"):
                        self._home_currency = str(record.get("symbol") or "").upper()
                if not self._home_currency:
                    raise Rejected("NetSuite names no base currency", platform=self.platform)
        return self._home_currency

    async def get_exchange_rate(self, currency: str, on: date) -> ExchangeRate | None:
        """The account's own rate (Lists > Accounting > Currency Exchange Rates) for the
        currency into the base currency: the latest effective on or before `on`."""
        home = await self.home_currency()
        code = currency.strip().upper()
        if code == home:
            return ExchangeRate(
                currency=code, home_currency=home, rate=Decimal("1"), as_of=on, source="netsuite"
            )
        currencies = await self._currency_map()
        try:
            foreign_id, base_id = currencies.id(code), currencies.id(home)
        except KeyError:
            return None  # the currency is not enabled in this account: no rate of its own
        rows = await self._suiteql(
            "SELECT exchangerate, TO_CHAR(effectivedate, 'YYYY-MM-DD') AS effectivedate "
            f"FROM currencyrate WHERE basecurrency = {base_id} AND transactioncurrency = "
            f"{foreign_id} AND effectivedate <= TO_DATE('{on.isoformat()}', 'YYYY-MM-DD') "
            "ORDER BY effectivedate DESC",
            limit=1,
        )
        if not rows:
            return None
        return wire.exchange_rate_from_suiteql(rows[0], currency=code, home_currency=home)

    # -----------------------------------------------------------------------------------------
    # Writes
    # -----------------------------------------------------------------------------------------

    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor:
        currencies = await self._currency_map()
        try:
            body = wire.vendor_to_netsuite(
                vendor,
                currencies=currencies,
                subsidiary_id=self._subsidiary_id,
                reference=reference,
            )
        except (KeyError, ValueError) as exc:
            raise self._rejected(exc) from exc
        record_id = await self._upsert(
            self._record_url, "vendor", wire.external_id_for(idempotency_key), body
        )
        return await self.get_vendor(record_id)

    async def create_account(self, account: NewAccount, *, idempotency_key: str) -> Account:
        """An account record upserted by an externalId from the key (a retry writes the same
        record again, never a second one)."""
        currencies = await self._currency_map()
        body: JSON = {
            "acctName": account.name,
            "acctType": {"id": _NETSUITE_ACCOUNT_TYPE[account.account_type]},
        }
        if account.number:
            body["acctNumber"] = account.number
        if account.description:
            body["description"] = account.description
        try:
            if account.currency:
                body["currency"] = wire.ref(currencies.id(account.currency))
        except (KeyError, ValueError) as exc:
            raise self._rejected(exc) from exc
        record_id = await self._upsert(
            self._record_url, "account", wire.external_id_for(idempotency_key), body
        )
        created = wire.account_from_netsuite(await self._record("account", record_id), currencies)
        assert created is not None  # remit creates only account types it maps
        return created

    async def update_vendor(
        self, vendor_id: str, changes: VendorChanges, *, idempotency_key: str
    ) -> Vendor:
        """A PATCH of the vendor record (NetSuite's REST updates are partial and set values,
        so a retry writes the same again)."""
        await self._send(
            "PATCH",
            f"{self._record_url}/vendor/{vendor_id}",
            body=wire.vendor_changes_to_netsuite(changes),
            is_write=True,
        )
        return await self.get_vendor(vendor_id)

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        """An `eid:` upsert of the vendorBill, with its `currency` and `exchangeRate` (home
        units per foreign unit; NetSuite takes the day's rate when none is given) and its
        `terms` (a matching `term` record, created once when the account has none)."""
        currencies = await self._currency_map()
        term_id = await self._term_id(bill.terms) if bill.terms is not None else None
        try:
            body = wire.bill_to_netsuite(
                bill,
                currencies=currencies,
                subsidiary_id=self._subsidiary_id,
                ap_account_id=self._ap_account_id,
                reference=reference,
                term_id=term_id,
            )
        except (KeyError, ValueError) as exc:
            raise self._rejected(exc) from exc
        # `replace=expense`: a repeated upsert must replace the lines, not add them again.
        record_id = await self._upsert(
            self._record_url, "vendorBill", wire.external_id_for(idempotency_key), body,
            replace="expense",
        )  # fmt: skip
        return await self.get_bill(record_id)

    async def attach_document(
        self,
        bill_id: str,
        *,
        file_name: str,
        content_type: str,
        content: bytes,
        idempotency_key: str,
    ) -> Attachment:
        """Upload a file record to the document service, then attach it to the bill.

        Upload body (NetSuite documents no exact shape; assumed): JSON `{"name", "folder":
        {"id"}, "fileType", "content": <base64>, "description"}`, written as an `eid:` upsert
        so a repeat replaces the same file.
        """
        await self._record("vendorBill", bill_id)
        folder_id = await self._attachments_folder()
        body = {
            "name": file_name,
            "folder": wire.ref(folder_id),
            "fileType": wire.file_type_for(content_type),
            "content": base64.b64encode(content).decode(),
            "description": f"Attached by remit to vendor bill {bill_id}",
        }
        file_id = await self._upsert(
            self._document_url, "file", wire.external_id_for(idempotency_key), body
        )
        await self._send(
            "POST", f"{self._record_url}/vendorBill/{bill_id}/!attach/file/{file_id}", is_write=True
        )
        return Attachment(
            id=file_id,
            bill_id=bill_id,
            file_name=file_name,
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )

    async def _attachments_folder(self) -> str:
        if self._folder_id is None:
            self._folder_id = await self._upsert(
                self._document_url,
                "folder",
                ATTACHMENTS_FOLDER_EXTERNAL_ID,
                {"name": "Remit Attachments"},
            )
        return self._folder_id

    async def list_attachments(self, bill_id: str) -> list[Attachment]:
        await self._record("vendorBill", bill_id)
        rows = await self._suiteql(
            f"SELECT file FROM transactionfile WHERE transaction = {bill_id} ORDER BY file"
        )
        attachments = []
        for row in rows:
            record = await self._get_json(f"{self._document_url}/file/{row['file']}")
            attachments.append(
                Attachment(
                    id=str(record["id"]),
                    bill_id=bill_id,
                    file_name=str(record.get("name") or ""),
                    content_type=wire.content_type_for(record.get("fileType")),
                    size=int(record.get("fileSize") or 0),
                )
            )
        return attachments

    async def create_bill_payment(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        """One vendorPayment: an `apply` line per bill (`amount` in cash, `disc` for a
        discount taken), `currency` and `exchangeRate` for a foreign payment.

        NetSuite posts a taken discount to the account of the Purchase Discount Account
        accounting preference and books the realized gain or loss between the bills' rates and
        the payment's itself, so `discount_account_id` is not sent (the payment has no field
        for it). `replace=apply`: a repeated upsert sets the lines, never adds them twice.
        """
        currencies = await self._currency_map()
        record = await self._upsert_transaction(
            "vendorPayment",
            lambda: wire.payment_to_netsuite(
                payment, **self._transaction_fields(currencies, reference)
            ),
            idempotency_key=idempotency_key,
            replace="apply",
        )
        return wire.payment_from_netsuite(record, currencies)

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo:
        currencies = await self._currency_map()
        record = await self._upsert_transaction(
            "vendorCredit",
            lambda: wire.credit_to_netsuite(
                memo, **self._transaction_fields(currencies, reference)
            ),
            idempotency_key=idempotency_key,
            replace="expense",
        )
        return wire.credit_from_netsuite(record, currencies)

    def _transaction_fields(self, currencies: CurrencyMap, reference: str) -> dict[str, Any]:
        return {
            "currencies": currencies,
            "subsidiary_id": self._subsidiary_id,
            "ap_account_id": self._ap_account_id,
            "reference": reference,
        }

    async def _upsert_transaction(
        self,
        record_type: str,
        to_wire: Callable[[], JSON],
        *,
        idempotency_key: str,
        replace: str,
    ) -> JSON:
        """Map (a mapping failure is the caller's data: Rejected), upsert by the key's external
        id so a repeat updates the same record, and read the record back."""
        try:
            body = to_wire()
        except (KeyError, ValueError) as exc:
            raise self._rejected(exc) from exc
        record_id = await self._upsert(
            self._record_url, record_type, wire.external_id_for(idempotency_key), body,
            replace=replace,
        )  # fmt: skip
        return await self._record(record_type, record_id)

    async def apply_credit(
        self, application: CreditApplication, *, idempotency_key: str
    ) -> CreditApplication:
        """Set the credit's `apply` line for the bill to the amount.

        Apply lines are keyed by `doc`, so the PATCH sets (never adds) that bill's applied
        amount: repeating it is harmless, which is this write's idempotency.
        """
        body = {
            "apply": {
                "items": [
                    {"doc": wire.ref(application.bill_id), "apply": True,
                     "amount": application.amount}
                ]
            }
        }  # fmt: skip
        credit_id = application.credit_memo_id
        if not _NUMERIC_ID.match(credit_id):
            raise NotFound(f"no vendor credit {credit_id!r}", platform=self.platform)
        await self._send(
            "PATCH", f"{self._record_url}/vendorCredit/{credit_id}", body=body, is_write=True
        )
        record = await self._record("vendorCredit", credit_id)
        applied = wire.credit_applied_to(record, application.bill_id)
        return CreditApplication(
            credit_memo_id=credit_id,
            bill_id=application.bill_id,
            amount=applied if applied else application.amount,
            applied_on=application.applied_on,
        )

    @property
    def _restlet_url(self) -> str:
        """RESTlets live on their own host ({account}.restlets.api.netsuite.com); the setting
        `restlet_base_url` names it where the base URL is not a suitetalk host."""
        root = self.connection.settings.get("restlet_base_url") or self.connection.base_url
        root = root.replace(".suitetalk.api.netsuite.com", ".restlets.api.netsuite.com")
        return f"{root.rstrip('/')}{RESTLET_PATH}"

    async def void_bill_payment(self, payment_id: str, *, idempotency_key: str) -> BillPayment:
        """Void the vendorPayment with remit's RESTlet, which runs `N/transaction.void`.

        REST web services have no void action, and `DELETE` would erase the payment, its
        audit trail and the record a retry needs to read back (NetSuite also refuses to
        delete a payment in a closed period or a reconciled one). A void keeps the payment
        with status Voided: with Void Transactions Using Reversing Journals (REVERSALVOIDING,
        recommended) it keeps its lines and a voiding journal reverses its GL impact on the
        void date; without it NetSuite voids directly and zeroes the payment. Either way the
        bills it paid are open again by what it applied.

        Safe to repeat: the payment is read first and one already voided is returned as it
        is (RESTlets have no idempotency key, so the read is the idempotency). A RESTlet call
        whose answer is lost raises OutcomeUnknown; calling again reads and finishes.
        """
        if not _NUMERIC_ID.match(payment_id):
            raise NotFound(f"no vendor payment {payment_id!r}", platform=self.platform)
        currencies = await self._currency_map()
        before = await self._record("vendorPayment", payment_id)
        if wire.is_voided(before):
            return self._voided(before, None, currencies)
        settings = self.connection.settings
        try:
            await self._send(
                "POST",
                self._restlet_url,
                params={
                    "script": settings.get("void_restlet_script", VOID_RESTLET_SCRIPT),
                    "deploy": settings.get("void_restlet_deploy", VOID_RESTLET_DEPLOY),
                },
                body={"type": "vendorpayment", "id": payment_id},
                is_write=True,
            )
        except Rejected as exc:
            if exc.code == "SSS_INVALID_SCRIPTLET_ID":
                raise Rejected(
                    "remit's void RESTlet is not deployed in this NetSuite account (or the "
                    "void_restlet_script / void_restlet_deploy settings name another): deploy "
                    "connectors/netsuite/suitescript/remit_void_restlet.js",
                    platform=self.platform, status=exc.status, code=exc.code, detail=exc.detail,
                ) from exc  # fmt: skip
            if exc.status == 403:
                raise Rejected(
                    f"NetSuite refused remit's void RESTlet ({exc.message}): the integration "
                    "needs the 'restlets' scope and a role allowed to void bill payments",
                    platform=self.platform, status=exc.status, code=exc.code, detail=exc.detail,
                ) from exc  # fmt: skip
            raise
        after = await self._record("vendorPayment", payment_id)
        return self._voided(after, before, currencies)

    def _voided(self, record: JSON, before: JSON | None, currencies: CurrencyMap) -> BillPayment:
        """The voided payment: as NetSuite keeps it (voided by a reversing journal, it still
        has its lines), else as it was just before the void (a direct void zeroes it)."""
        if wire.payment_lines(record):
            payment = wire.payment_from_netsuite(record, currencies)
            return payment.model_copy(update={"voided": True})
        if before is not None and wire.payment_lines(before):
            payment = wire.payment_from_netsuite(before, currencies)
            return payment.model_copy(
                update={
                    "voided": True,
                    "updated_at": wire.parse_datetime(record.get("lastModifiedDate")),
                }
            )
        raise Rejected(
            f"vendor payment {record.get('id')} is voided, directly: NetSuite zeroed its amounts, "
            "so what it paid can no longer be read back (its bills are open again). Turn on "
            "Void Transactions Using Reversing Journals to keep voided payments whole.",
            platform=self.platform,
            code="VOIDED_DIRECTLY",
        )

    async def aclose(self) -> None:
        """The httpx client belongs to the caller; nothing of ours to close."""


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _error_fields(payload: Any) -> tuple[str | None, str | None]:
    if not isinstance(payload, dict):
        return None, None
    details = payload.get("o:errorDetails")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        first = details[0]
        return first.get("o:errorCode"), first.get("detail")
    error = payload.get("error")
    if isinstance(error, dict):  # RESTlets: an uncaught SuiteScript error {code, message}
        return error.get("code"), error.get("message")
    if "error" in payload:  # OAuth endpoints answer RFC 6749 bodies
        return str(payload["error"]), payload.get("error_description")
    return None, None


def _later(a: str, b: str) -> bool:
    parsed_a, parsed_b = wire.parse_datetime(a), wire.parse_datetime(b)
    if parsed_a is None or parsed_b is None:
        return a > b
    return parsed_a > parsed_b


def _encode_cursor(since: str | None, seen: set[str]) -> str:
    raw = json.dumps({"since": since, "seen": sorted(seen)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str | None, platform: str) -> tuple[str | None, set[str]]:
    if not cursor:
        return None, set()
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        since = decoded["since"]
        seen = {str(key) for key in decoded.get("seen") or []}
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise Rejected(f"not a NetSuite change cursor: {cursor!r}", platform=platform) from exc
    return (str(since) if since else None), seen


# ---------------------------------------------------------------------------------------------
# OAuth 2.0: client-credentials (M2M) assertions and token refresh
# ---------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_assertion(
    *,
    client_id: str,
    certificate_id: str,
    private_key_pem: str | bytes,
    audience: str,
    scope: str = "rest_webservices,restlets",
    lifetime: timedelta = timedelta(minutes=55),
    issued_at: int | None = None,
) -> str:
    """A signed JWT for NetSuite's client-credentials grant (PS256 for RSA, ES256.. for EC).

    NetSuite wants `exp` less than 60 minutes after `iat`, `kid` = the certificate id of the
    M2M mapping, `aud` = the token endpoint URL.
    """
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    key = serialization.load_pem_private_key(pem, password=None)
    issued = int(time.time()) if issued_at is None else issued_at
    digest: hashes.HashAlgorithm
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm, digest = "PS256", hashes.SHA256()
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        bits = key.curve.key_size
        algorithm, digest = {
            256: ("ES256", hashes.SHA256()),
            384: ("ES384", hashes.SHA384()),
            521: ("ES512", hashes.SHA512()),
        }[bits]
    else:
        raise ValueError("NetSuite M2M needs an RSA or EC private key")
    header = {"alg": algorithm, "typ": "JWT", "kid": certificate_id}
    claims = {
        "iss": client_id,
        "scope": scope,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
    }
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(
            signing_input.encode(),
            padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
            digest,
        )
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input}.{_b64url(signature)}"


async def fetch_access_token(
    http: httpx.AsyncClient, connection: ConnectionConfig
) -> dict[str, str]:
    """A fresh access token for the connection: M2M when it holds a certificate key, else the
    refresh-token grant. Returns the token endpoint's JSON (access_token, expires_in, ...)."""
    credentials = connection.credentials
    token_url = f"{connection.base_url.rstrip('/')}{TOKEN_PATH}"
    auth: httpx.BasicAuth | None = None
    if credentials.get("private_key") and credentials.get("certificate_id"):
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(
                client_id=credentials["client_id"],
                certificate_id=credentials["certificate_id"],
                private_key_pem=credentials["private_key"],
                audience=token_url,
                scope=credentials.get("scope", "rest_webservices,restlets"),
            ),
        }
    elif credentials.get("refresh_token"):
        form = {"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]}
        auth = httpx.BasicAuth(
            credentials.get("client_id", ""), credentials.get("client_secret", "")
        )
    else:
        raise ConnectionRevoked(
            "the NetSuite connection has neither an M2M certificate key nor a refresh token",
            platform=PLATFORM_NAME,
        )
    try:
        response = await http.post(token_url, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
    except NOT_SENT as exc:
        raise Unavailable(f"could not reach NetSuite: {exc!r}", platform=PLATFORM_NAME) from exc
    except httpx.TransportError as exc:
        raise Unavailable(
            f"NetSuite token request failed: {exc!r}", platform=PLATFORM_NAME
        ) from exc
    payload: Any = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and isinstance(payload, dict) and payload.get("access_token"):
        return {k: str(v) for k, v in payload.items()}
    error, description = _error_fields(payload)
    common: dict[str, Any] = {
        "platform": PLATFORM_NAME,
        "status": response.status_code,
        "code": error,
    }
    message = f"NetSuite refused the token request: {error} ({description})"
    if response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), THROTTLE_WAIT)
        raise RateLimited(message, retry_after=retry_after, **common)
    if response.status_code >= 500:
        raise Unavailable(message, **common)
    if error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        raise ConnectionRevoked(message, **common)
    raise Rejected(message, **common)
