"""The NetSuite connector: SuiteTalk REST record, document and SuiteQL services over httpx."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

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
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    parse_retry_after,
)
from connectors.netsuite import wire
from connectors.netsuite.auth import AUTH
from connectors.netsuite.wire import JSON, CurrencyMap
from connectors.oauth import Credentials, OnTokens, TokenKeeper, TokenSet
from connectors.retries import read_attempts, retrying_read

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
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_NUMERIC_ID = re.compile(r"^\d+$")


def _normalized_name(name: str) -> str:
    """A vendor name without case, punctuation or a trailing legal form (Inc, Corp, LLC...)."""
    words = re.sub(r"[^a-z0-9 ]+", " ", name.lower()).split()
    suffixes = {"inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "gmbh"}
    while len(words) > 1 and words[-1] in suffixes:
        words.pop()
    return " ".join(words)


def _tax_digits(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", value).upper()


class NetSuiteConnector:
    """One NetSuite account through SuiteTalk REST. Raises only connectors.base errors.

    Writes are `PUT .../{type}/eid:{externalId}` upserts whose externalId is a hash of the
    idempotency key, so a repeat updates the record the first attempt made. remit's
    reference is carried at the end of the transaction's memo (`[remit-ref:...]`) and found
    again with a `q` filter on it.
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
        configured = connection.settings.get("page_size")
        if configured and configured.isdigit():
            page_size = int(configured)
        self._page_size = max(1, min(page_size, LARGEST_PAGE))
        root = connection.base_url.rstrip("/")
        self._record_url = f"{root}/services/rest/record/v1"
        self._document_url = f"{root}/services/rest/document/v1"
        self._suiteql_url = f"{root}/services/rest/query/v1/suiteql"
        self._currencies: CurrencyMap | None = None
        self._folder_id: str | None = connection.settings.get("attachments_folder_id")

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
        """One request; reads (GETs and SuiteQL queries) get a few quick tries."""
        if is_write:
            return await self._send_once(
                method, url, params=params, body=body, headers=headers, is_write=True
            )
        return await retrying_read(
            lambda: self._send_once(method, url, params=params, body=body, headers=headers),
            attempts=read_attempts(self.connection.settings),
        )

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        is_write: bool = False,
    ) -> httpx.Response:
        request_headers = {"Accept": "application/json", **(headers or {})}
        content = None
        if body is not None:
            request_headers["Content-Type"] = "application/json"
            content = wire.dumps(body).encode()
        try:
            token = await self.tokens.current()
            response = await self._http.request(
                method,
                url,
                params=params,
                headers={**request_headers, "Authorization": f"Bearer {token}"},
                content=content,
            )
            # A 401 was not processed, so sending again after one renewal is safe. A revoked
            # grant is not worth a renewal: its refresh token is revoked with it.
            challenge = response.headers.get("www-authenticate", "").lower()
            if (
                response.status_code == 401
                and "revoked" not in challenge
                and await self.tokens.after_refusal(token)
            ):
                token = self.tokens.access_token
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    headers={**request_headers, "Authorization": f"Bearer {token}"},
                    content=content,
                )
        except _NOT_SENT as exc:
            raise Unavailable(f"could not reach NetSuite: {exc!r}", platform=self.platform) from exc
        except httpx.TransportError as exc:
            if is_write:
                raise OutcomeUnknown(
                    f"{method} {url} was sent but no answer came back ({exc!r}); "
                    "look the record up by its reference (or repeat the upsert) before retrying",
                    platform=self.platform,
                ) from exc
            raise Unavailable(f"NetSuite read failed: {exc!r}", platform=self.platform) from exc
        if not response.is_success:
            self._raise_for(response)
        return response

    def _raise_for(self, response: httpx.Response) -> NoReturn:
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
            raise RateLimited(message, retry_after=retry_after, **common)
        if "invalid_grant" in text or (status == 401 and "revoked" in challenge.lower()):
            raise ConnectionRevoked(
                f"the NetSuite grant was revoked ({message}): relink the account", **common
            )
        if status == 401:
            raise AuthExpired(message, **common)
        if code in _CONFLICT_CODES or status == 409 or "record has been changed" in text.lower():
            raise Conflict(message, **common)
        if status == 404 or code == "NONEXISTENT_ID":
            raise NotFound(message, **common)
        if status >= 500:
            raise Unavailable(message, **common)
        raise Rejected(message, **common)

    async def _get_json(self, url: str, params: dict[str, str] | None = None) -> JSON:
        response = await self._send("GET", url, params=params)
        payload = wire.loads(response.text)
        if not isinstance(payload, dict):
            raise Unavailable("NetSuite answered with something other than a JSON object",
                              platform=self.platform)  # fmt: skip
        return payload

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

    async def _suiteql(self, statement: str) -> list[JSON]:
        rows: list[JSON] = []
        offset: int | None = 0
        while offset is not None:
            response = await self._send(
                "POST",
                self._suiteql_url,
                params={"limit": str(LARGEST_PAGE), "offset": str(offset)},
                body={"q": statement},
                headers={"Prefer": "transient"},
            )
            payload = wire.loads(response.text)
            items = payload.get("items") or []
            rows.extend(items)
            offset = offset + len(items) if payload.get("hasMore") and items else None
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
        """Bills with their payment ids, read from SuiteQL's transaction links in one query."""
        currencies = await self._currency_map()
        bills = [wire.bill_from_netsuite(record, currencies) for record in records]
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
            "SELECT id, tranid, trandate, currency, foreigntotal, foreignamountunpaid, status, "
            f"memo FROM transaction WHERE type = 'VendBill' AND entity = {vendor_id} ORDER BY id"
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

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        currencies = await self._currency_map()
        try:
            body = wire.bill_to_netsuite(
                bill,
                currencies=currencies,
                subsidiary_id=self._subsidiary_id,
                ap_account_id=self._ap_account_id,
                reference=reference,
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
    scope: str = "rest_webservices",
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
                scope=credentials.get("scope", "rest_webservices"),
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
    except _NOT_SENT as exc:
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
