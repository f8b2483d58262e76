"""IntacctConnector: the Connector protocol over Sage Intacct's XML Web Services (httpx)."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import httpx

from accounting import (
    Account,
    AccountType,
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
from accounting.model import ACCOUNT_CATEGORY, account_in_chart
from connectors.base import (
    AuthExpired,
    BillHeader,
    Changes,
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
from connectors.http import HttpClient, StaticAuth
from connectors.intacct import wire
from connectors.intacct.auth import Credentials, SessionKeeper
from connectors.oauth import OnTokens
from connectors.retries import read_attempts

PLATFORM = wire.PLATFORM_NAME
GATEWAY_PATH = "/ia/xml/xmlgw.phtml"
DEFAULT_PAGE_SIZE = 100
READ_KEYS_PER_CALL = 100
# Intacct's 429 (GW-0010) comes without a documented wait; a concurrent slot frees quickly.
THROTTLE_WAIT = timedelta(seconds=1)
DEFAULT_PAYMENT_METHOD = "EFT"
ATTACHMENT_FOLDER = "remit"


class SessionRefused(AuthExpired):
    """Intacct refused the session id (timed out): sign in again and resend."""


def classify_http(response: httpx.Response) -> ConnectorError:
    """A non-200 answer: Intacct reports refusals in 200s, so these are the way there."""
    status = response.status_code
    common: dict[str, Any] = {"platform": PLATFORM, "status": status}
    if status == 429:
        wait = parse_retry_after(response.headers.get("retry-after"), THROTTLE_WAIT)
        return RateLimited(
            f"Intacct is throttling this company (GW-0010); retry after {wait}",
            retry_after=wait,
            code="GW-0010",
            **common,
        )
    if status == 524:
        # A gateway timeout of a long call: Intacct may still be running it (research §1.5).
        return OutcomeUnknown(
            "Intacct timed out answering (524) and may still apply the request; look it up "
            "by its reference before retrying",
            **common,
        )
    if status >= 500 or status in (408, 502, 503, 504):
        return Unavailable(f"Intacct answered {status}", **common)
    return Rejected(f"Intacct answered HTTP {status}: {response.text[:300]}", **common)


def error_for(errors: list[wire.ErrorDetail], *, what: str) -> ConnectorError:
    """Intacct's `errormessage` in the taxonomy (throttling retried, the rest refused)."""
    first = errors[0] if errors else wire.ErrorDetail("", "Intacct refused the request", "", "")
    message = f"{what}: " + "; ".join(e.text() for e in errors or [first])
    if first.errorno == "GW-0010":
        return RateLimited(
            message, retry_after=THROTTLE_WAIT, platform=PLATFORM, code=first.errorno
        )
    return Rejected(message, platform=PLATFORM, code=first.errorno or None, detail=errors)


class IntacctConnector:
    """One Intacct company reached through one Web Services user."""

    platform = PLATFORM

    def __init__(
        self,
        connection: ConnectionConfig,
        http: httpx.AsyncClient,
        *,
        on_tokens: OnTokens | None = None,
    ) -> None:
        # The API session is the connection's "token": a stored one is used first, and each
        # new one is reported to `on_tokens` so the next connector need not sign in again.
        self.connection = connection
        self._on_tokens = on_tokens
        self._credentials = Credentials.of(connection)
        self._client = HttpClient(
            http,
            platform=PLATFORM,
            auth=StaticAuth({}),
            error_for=classify_http,
            read_attempts=read_attempts(connection.settings),
        )
        self._base = connection.base_url.rstrip("/")
        self._url = self._base + GATEWAY_PATH
        self._page_size = int(connection.settings.get("page_size", DEFAULT_PAGE_SIZE))
        self._payment_method = connection.settings.get("payment_method", DEFAULT_PAYMENT_METHOD)
        self._home_currency: str | None = connection.settings.get("home_currency")
        self.sessions = SessionKeeper(
            self._open_session, initial=connection.credentials.get("access_token")
        )
        self.server_time: datetime | None = None
        self._entities: dict[str, Entity] | None = None
        self._terms: dict[str, PaymentTerms | None] | None = None
        self._folder_ready = False

    async def aclose(self) -> None:
        # The http client is injected and owned by the caller.
        return None

    # --- transport -------------------------------------------------------------------------

    def _read_answer(self, response: httpx.Response) -> wire.Answer:
        if response.status_code != 200:
            raise classify_http(response)
        try:
            answer = wire.parse_answer(response.content)
        except wire.WireError as exc:
            raise Unavailable(
                f"Intacct answered 200 with an unreadable body ({exc})",
                platform=PLATFORM,
                status=200,
            ) from exc
        if answer.control_status != "success":
            errors = answer.control_errors
            code = errors[0].errorno if errors else ""
            message = "; ".join(e.text() for e in errors) or "Intacct refused the request"
            if code == "GW-0010":
                raise RateLimited(message, retry_after=THROTTLE_WAIT, platform=PLATFORM, code=code)
            if code == "XL03000006":
                # The sender (the Web Services subscription remit signs every request with)
                # was refused: a credential remit holds, not the customer's grant, so it is
                # AuthExpired (renew the credentials, then retry), as a refused token is.
                raise AuthExpired(
                    f"Intacct refused the Web Services sender: {message}",
                    platform=PLATFORM,
                    code=code,
                )
            raise Rejected(
                f"Intacct refused the request: {message}", platform=PLATFORM, code=code or None
            )
        if answer.auth_status == "failure":
            errors = answer.auth_errors
            raise SessionRefused(
                "Intacct refused the sign-in: " + ("; ".join(e.text() for e in errors) or "?"),
                platform=PLATFORM,
                code=errors[0].errorno if errors else None,
            )
        if answer.session_timestamp is not None:
            self.server_time = answer.session_timestamp
        return answer

    async def _send(
        self,
        functions: list[Element],
        *,
        authentication: Element,
        controlid: str,
        unique: bool,
        repeatable: bool,
        transaction: bool = False,
    ) -> wire.Answer:
        body = wire.envelope(
            sender_id=self._credentials.sender_id,
            sender_password=self._credentials.sender_password,
            controlid=controlid,
            unique=unique,
            authentication=authentication,
            functions=functions,
            transaction=transaction,
        )
        answer: wire.Answer = await self._client.send(
            "POST",
            self._url,
            content=body,
            headers={"Content-Type": "application/xml", "Accept": "application/xml"},
            repeatable=repeatable,
            read=self._read_answer,
        )
        return answer

    async def _open_session(self) -> str:
        """Sign in with the Web Services user and open an API session (getAPISession)."""
        credentials = self._credentials
        try:
            answer = await self._send(
                [Element("getAPISession")],
                authentication=wire.login_element(
                    credentials.user_id, credentials.company_id, credentials.user_password
                ),
                controlid=f"remit-login-{uuid.uuid4().hex}",
                unique=False,
                repeatable=True,
            )
        except SessionRefused as exc:
            raise ConnectionRevoked(
                f"{exc.message}: check the connection's Web Services user and company id "
                f"{credentials.company_id}",
                platform=PLATFORM,
                code=exc.code,
            ) from exc
        result = answer.results[0] if answer.results else None
        if result is None or result.status != "success" or result.data is None:
            raise error_for(result.errors if result else [], what="getAPISession")
        session_id = result.data.findtext("api/sessionid")
        endpoint = (result.data.findtext("api/endpoint") or "").strip()
        if not session_id:
            raise Unavailable("Intacct opened no session", platform=PLATFORM)
        if endpoint:
            # Later calls go to the endpoint the session names (an absolute URL on Intacct).
            self._url = endpoint if "://" in endpoint else self._base + endpoint
        if self._on_tokens is not None:
            await self._on_tokens({"access_token": session_id.strip()})
        return session_id.strip()

    async def _call(
        self,
        functions: list[Element],
        *,
        idempotency_key: str | None = None,
        transaction: bool = False,
    ) -> list[wire.Result]:
        """Functions in one request under the API session. A write carries its idempotency
        key as the control id with uniqueid=true, so Intacct answers a resend with the first
        answer; a read gets a fresh control id. A refused session is opened again and the
        request resent once (Intacct ran none of its functions)."""
        write = idempotency_key is not None
        controlid = (
            wire.control_id(idempotency_key)
            if idempotency_key is not None
            else f"remit-{uuid.uuid4().hex}"
        )
        session = await self.sessions.current()
        for attempt in (1, 2):
            try:
                answer = await self._send(
                    functions,
                    authentication=wire.session_element(session),
                    controlid=controlid,
                    unique=write,
                    repeatable=not write,
                    transaction=transaction,
                )
            except SessionRefused:
                if attempt == 2:
                    raise
                session = await self.sessions.after_refusal(session)
                continue
            return answer.results
        raise AssertionError("unreachable")

    async def _one(self, call: Element, *, idempotency_key: str | None = None) -> Element:
        """One function's data (an empty <data> when it returned none); its error typed."""
        results = await self._call([call], idempotency_key=idempotency_key)
        if not results:
            raise Unavailable(f"Intacct answered {call.tag} with no result", platform=PLATFORM)
        result = results[0]
        if result.status != "success":
            raise error_for(result.errors, what=f"{call.tag} {_object_of(call)}".strip())
        return result.data if result.data is not None else Element("data")

    async def _read_by_query(
        self, obj: str, query: str, fields: tuple[str, ...] | None = None
    ) -> list[Element]:
        """Every record matching `query`, following resultId with readMore to the end."""
        call = wire.element(
            "readByQuery",
            {
                "object": obj,
                "fields": ",".join(fields) if fields else "*",
                "query": query,
                "pagesize": str(min(max(self._page_size, 1), 1000)),
            },
        )
        data = await self._one(call)
        found = wire.records(data)
        while int(data.get("numremaining") or 0) > 0 and data.get("resultId"):
            data = await self._one(wire.element("readMore", {"resultId": data.get("resultId")}))
            found.extend(wire.records(data))
        return found

    async def _query_page(
        self,
        obj: str,
        fields: tuple[str, ...],
        offset: int,
        filter_: Element | None = None,
        *,
        case_insensitive: bool = False,
    ) -> tuple[list[Element], int | None]:
        """One page of `query` ordered by RECORDNO: (records, next offset or None). Offsets
        make cursors that never expire (a readByQuery resultId does)."""
        call = Element("query")
        SubElement(call, "object").text = obj
        select = SubElement(call, "select")
        for name in fields:
            SubElement(select, "field").text = name
        if filter_ is not None:
            SubElement(call, "filter").append(filter_)
        order = SubElement(SubElement(call, "orderby"), "order")
        SubElement(order, "field").text = "RECORDNO"
        SubElement(order, "ascending")
        if case_insensitive:
            SubElement(SubElement(call, "options"), "caseinsensitive").text = "true"
        SubElement(call, "pagesize").text = str(min(max(self._page_size, 1), 2000))
        SubElement(call, "offset").text = str(offset)
        data = await self._one(call)
        found = wire.records(data)
        remaining = int(data.get("numremaining") or 0)
        return found, (offset + len(found) if remaining > 0 and found else None)

    async def _read(self, obj: str, keys: list[str]) -> list[Element]:
        """Whole records (child lines included) by key, in the order asked."""
        found: dict[str, Element] = {}
        key_field = "VENDORID" if obj == "VENDOR" else "RECORDNO"
        for start in range(0, len(keys), READ_KEYS_PER_CALL):
            chunk = keys[start : start + READ_KEYS_PER_CALL]
            call = wire.element("read", {"object": obj, "keys": ",".join(chunk), "fields": "*"})
            for record in wire.records(await self._one(call)):
                found[wire.text(record, key_field) or ""] = record
        return [found[key] for key in keys if key in found]

    # --- reads -----------------------------------------------------------------------------

    async def list_accounts(self) -> list[Account]:
        """The chart of accounts; a GL account behind a checking account is a bank account
        (in that account's currency), one behind a charge card a credit card account."""
        records = await self._read_by_query("GLACCOUNT", "")
        entities = {e.gl_account: e for e in (await self.entities(refresh=True)).values()}
        accounts = []
        for record in records:
            account = wire.account_from_intacct(record)
            entity = entities.get(account.id)
            if entity is not None:
                kind = AccountType.credit_card if entity.card else AccountType.bank
                account = account.model_copy(
                    update={
                        "account_type": kind,
                        "category": ACCOUNT_CATEGORY[kind],
                        "currency": entity.currency,
                    }
                )
            accounts.append(account)
        return accounts

    async def entities(self, *, refresh: bool = False) -> dict[str, Entity]:
        """Checking accounts and charge cards (what a payment's FINANCIALENTITY names), by id."""
        if self._entities is None or refresh:
            found: dict[str, Entity] = {}
            for obj, key, card in (
                ("CHECKINGACCOUNT", "BANKACCOUNTID", False),
                ("CREDITCARD", "CARDID", True),
            ):
                for record in await self._read_by_query(obj, ""):
                    entity_id = wire.text(record, key)
                    gl = wire.text(record, "GLACCOUNTNO")
                    if entity_id and gl:
                        found[entity_id] = Entity(
                            entity_id, gl, card, wire.text(record, "CURRENCY")
                        )
            self._entities = found
        return self._entities

    async def _entity_for(self, account_id: str) -> Entity:
        """The financial entity to pay from for remit's source account (its GL account, or
        the entity's own id)."""
        for refresh in (False, True):
            entities = await self.entities(refresh=refresh)
            if account_id in entities:
                return entities[account_id]
            for entity in entities.values():
                if entity.gl_account == account_id:
                    return entity
        raise Rejected(
            f"account {account_id} is neither a checking account nor a charge card in Intacct "
            "(nor the GL account of one): pay from one of those",
            platform=PLATFORM,
        )

    async def _gl_of(self, entity_id: str | None) -> str:
        if not entity_id:
            return ""
        entities = await self.entities()
        if entity_id not in entities:
            entities = await self.entities(refresh=True)
        entity = entities.get(entity_id)
        return entity.gl_account if entity is not None else entity_id

    async def list_tracking_categories(self) -> list[TrackingCategory]:
        categories: list[TrackingCategory] = []
        for kind, (obj, _, _) in wire.DIMENSION_OBJECTS.items():
            for record in await self._read_by_query(obj, ""):
                categories.append(wire.tracking_from_intacct(kind, record))
        return categories

    async def list_vendors(self, cursor: str | None = None) -> Page[Vendor]:
        records, next_offset = await self._query_page("VENDOR", wire.VENDOR_FIELDS, _offset(cursor))
        return Page[Vendor](
            items=[wire.vendor_from_intacct(r) for r in records],
            next_cursor=str(next_offset) if next_offset is not None else None,
        )

    async def get_vendor(self, vendor_id: str) -> Vendor:
        records = await self._read("VENDOR", [vendor_id])
        if not records:
            raise NotFound(f"no Intacct vendor {vendor_id}", platform=PLATFORM)
        return wire.vendor_from_intacct(records[0])

    async def find_vendors(
        self, *, tax_id: str | None = None, name: str | None = None
    ) -> list[Vendor]:
        """By tax id, and by name ignoring case (query's caseinsensitive option)."""
        clauses = []
        if tax_id:
            clauses.append(wire.element("equalto", {"field": "TAXID", "value": tax_id}))
        if name:
            clauses.append(wire.element("equalto", {"field": "NAME", "value": name.strip()}))
        if not clauses:
            return []
        filter_ = clauses[0]
        if len(clauses) > 1:
            filter_ = Element("and")
            filter_.extend(clauses)
        vendors: list[Vendor] = []
        offset: int | None = 0
        while offset is not None:
            records, offset = await self._query_page(
                "VENDOR", wire.VENDOR_FIELDS, offset, filter_, case_insensitive=True
            )
            vendors.extend(wire.vendor_from_intacct(r) for r in records)
        return vendors

    async def list_bills(self, cursor: str | None = None) -> Page[Bill]:
        headers, next_offset = await self._query_page("APBILL", ("RECORDNO",), _offset(cursor))
        bills = await self._bills([wire.text(h, "RECORDNO") or "" for h in headers])
        return Page[Bill](
            items=bills, next_cursor=str(next_offset) if next_offset is not None else None
        )

    async def _bills(self, keys: list[str], *, reference: str | None = None) -> list[Bill]:
        records = await self._read("APBILL", [k for k in keys if k])
        if not records:
            return []
        ids = [wire.text(r, "RECORDNO") or "" for r in records]
        payments = await self._payment_keys(ids)
        terms = await self.terms() if any(wire.text(r, "TERMNAME") for r in records) else {}
        return [
            wire.bill_from_intacct(
                r,
                reference=reference,
                terms=terms.get(wire.text(r, "TERMNAME") or ""),
                payment_ids=payments.get(bill_id, []),
            )
            for r, bill_id in zip(records, ids, strict=True)
        ]

    async def _details(self, bill_ids: list[str]) -> list[Element]:
        """The payment details in effect (not voided) applied to these bills."""
        found: list[Element] = []
        for start in range(0, len(bill_ids), READ_KEYS_PER_CALL):
            chunk = bill_ids[start : start + READ_KEYS_PER_CALL]
            keys = ", ".join(wire.quote(k) for k in chunk)
            found.extend(
                await self._read_by_query(
                    "APPYMTDETAIL",
                    f"RECORDKEY IN ({keys}) AND STATE != 'V'",
                    (
                        "RECORDNO",
                        "PAYMENTKEY",
                        "RECORDKEY",
                        "TRX_PAYMENTAMOUNT",
                        "ADJUSTMENTKEY",
                        "TRX_ADJUSTMENTAMOUNT",
                        "STATE",
                    ),
                )
            )
        return found

    async def _payment_keys(self, bill_ids: list[str]) -> dict[str, list[str]]:
        """Each bill's payments in effect that moved cash (credit-only ones are credits)."""
        keys: dict[str, list[str]] = {}
        for detail in await self._details(bill_ids):
            if (wire.money(detail, "TRX_PAYMENTAMOUNT") or 0) <= 0:
                continue
            bill_id = wire.text(detail, "RECORDKEY") or ""
            payment = wire.text(detail, "PAYMENTKEY") or ""
            if payment and payment not in keys.setdefault(bill_id, []):
                keys[bill_id].append(payment)
        return keys

    async def terms(self, *, refresh: bool = False) -> dict[str, PaymentTerms | None]:
        """The company's AP terms by name (None for terms remit cannot express)."""
        if self._terms is None or refresh:
            self._terms = {
                wire.text(r, "NAME") or "": wire.terms_from_intacct(r)
                for r in await self._read_by_query("APTERM", "")
            }
        return self._terms

    async def _term_name(self, terms: PaymentTerms, idempotency_key: str) -> str:
        """The name of the company's AP term with these days and discount (added once)."""
        for refresh in (False, True):
            for name, known in (await self.terms(refresh=refresh)).items():
                if known is not None and wire.same_terms(known, terms):
                    return name
        try:
            await self._one(wire.create_term(terms), idempotency_key=f"{idempotency_key}/term")
        except Rejected:
            # Another writer added it first: it is there now.
            pass
        for name, known in (await self.terms(refresh=True)).items():
            if known is not None and wire.same_terms(known, terms):
                return name
        raise Unavailable("Intacct added the AP term but does not list it", platform=PLATFORM)

    async def get_bill(self, bill_id: str) -> Bill:
        bills = await self._bills([bill_id])
        if not bills:
            raise NotFound(f"no Intacct bill (APBILL) {bill_id}", platform=PLATFORM)
        return bills[0]

    async def find_bills(self, *, vendor_id: str, document_number: str | None = None) -> list[Bill]:
        query = f"VENDORID = {wire.quote(vendor_id)}"
        if document_number:
            query += f" AND RECORDID = {wire.quote(document_number)}"
        headers = await self._read_by_query("APBILL", query, ("RECORDNO",))
        return await self._bills([wire.text(h, "RECORDNO") or "" for h in headers])

    async def find_bill_headers(self, *, vendor_id: str) -> list[BillHeader]:
        """The vendor's bills without their lines: one readByQuery of header fields."""
        records = await self._read_by_query(
            "APBILL", f"VENDORID = {wire.quote(vendor_id)}", wire.BILL_HEADER_FIELDS
        )
        headers = []
        for record in records:
            total = wire.money(record, "TRX_TOTALENTERED") or Decimal(0)
            issue = wire.day(record, "WHENCREATED")
            if issue is None:
                continue
            headers.append(
                BillHeader(
                    id=wire.text(record, "RECORDNO") or "",
                    document_number=wire.text(record, "RECORDID"),
                    issue_date=issue,
                    currency=wire.text(record, "CURRENCY") or "",
                    total=total,
                    status=wire.bill_status(
                        wire.text(record, "STATE"),
                        total,
                        wire.money(record, "TRX_TOTALDUE") or Decimal(0),
                    ),
                    reference=wire.reference_of(wire.text(record, "DOCNUMBER")),
                )
            )
        return headers

    async def find_bill_by_reference(self, reference: str, *, vendor_id: str) -> Bill | None:
        """The bill remit wrote with `reference` (its digest in DOCNUMBER), reversed or not."""
        query = (
            f"VENDORID = {wire.quote(vendor_id)} AND "
            f"DOCNUMBER = {wire.quote(wire.reference_tag(reference))}"
        )
        headers = await self._read_by_query("APBILL", query, ("RECORDNO",))
        bills = await self._bills(
            [wire.text(h, "RECORDNO") or "" for h in headers], reference=reference
        )
        bills.sort(key=lambda bill: bill.status == "void")
        return bills[0] if bills else None

    async def list_bill_payments(self, *, bill_id: str) -> list[BillPayment]:
        """Every payment applied to the bill (voided ones with voided=True)."""
        details = await self._read_by_query(
            "APPYMTDETAIL", f"RECORDKEY = {wire.quote(bill_id)}", ("RECORDNO", "PAYMENTKEY")
        )
        keys = list(dict.fromkeys(wire.text(d, "PAYMENTKEY") or "" for d in details))
        return await self._payments(keys)

    async def _payments(
        self, keys: list[str], *, reference: str | None = None
    ) -> list[BillPayment]:
        """Payments that moved cash (credit-only payments are credit applications)."""
        payments = []
        for record in await self._read("APPYMT", [k for k in keys if k]):
            if wire.is_credit_only(record):
                continue
            source = await self._gl_of(wire.text(record, "FINANCIALENTITY"))
            payments.append(
                wire.payment_from_intacct(record, source_account_id=source, reference=reference)
            )
        return payments

    async def find_bill_payment_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillPayment | None:
        query = (
            f"VENDORID = {wire.quote(vendor_id)} AND "
            f"DOCNUMBER = {wire.quote(wire.reference_tag(reference))}"
        )
        headers = await self._read_by_query("APPYMT", query, ("RECORDNO",))
        payments = await self._payments(
            [wire.text(h, "RECORDNO") or "" for h in headers], reference=reference
        )
        payments.sort(key=lambda payment: payment.voided)
        return payments[0] if payments else None

    async def changes_since(self, cursor: str | None) -> Changes:
        """Vendors, bills and payments whose WHENMODIFIED is at or after the cursor.

        The cursor is the server's time (the session timestamp of the pass's first answer).
        WHENMODIFIED has whole seconds, so the filter includes the cursor's second: a record
        changed in it may come twice, never not at all.
        """
        since, seen = _read_cursor(cursor)
        query = f"WHENMODIFIED >= {wire.quote(wire.timestamp_literal(since))}" if since else ""
        self.server_time = None
        vendors = await self._read_by_query("VENDOR", query, wire.VENDOR_FIELDS)
        started = self.server_time
        if started is None:
            raise Unavailable("Intacct answered without its session timestamp", platform=PLATFORM)
        boundary = started.astimezone(UTC).replace(microsecond=0)
        found: dict[str, list[Element]] = {
            "VENDOR": vendors,
            "APBILL": await self._read_by_query("APBILL", query, CHANGE_FIELDS["APBILL"]),
            "APPYMT": await self._read_by_query("APPYMT", query, CHANGE_FIELDS["APPYMT"]),
        }
        fresh: dict[str, list[Element]] = {}
        taken: list[str] = []
        for obj, records in found.items():
            key_field = "VENDORID" if obj == "VENDOR" else "RECORDNO"
            fresh[obj] = []
            for record in records:
                key = f"{obj}:{wire.text(record, key_field)}:{_fingerprint(record)}"
                stamp = wire.moment(record, "WHENMODIFIED")
                if stamp is not None and stamp >= boundary:
                    taken.append(key)  # delivered now or before: never again in this second
                if since is not None and stamp == since and key in seen:
                    continue  # this very state was delivered by the pass that made the cursor
                fresh[obj].append(record)
        return Changes(
            vendors=[wire.vendor_from_intacct(r) for r in fresh["VENDOR"]],
            bills=await self._bills([wire.text(r, "RECORDNO") or "" for r in fresh["APBILL"]]),
            bill_payments=await self._payments(
                [wire.text(r, "RECORDNO") or "" for r in fresh["APPYMT"]]
            ),
            cursor=_write_cursor(boundary, taken),
        )

    async def get_vendor_bank_accounts(self, vendor_id: str) -> list[VendorBankAccount]:
        records = await self._read("VENDOR", [vendor_id])
        if not records:
            raise NotFound(f"no Intacct vendor {vendor_id}", platform=PLATFORM)
        return wire.bank_accounts_from_intacct(records[0])

    async def list_credit_memos(self, *, vendor_id: str) -> list[BillCreditMemo]:
        """The vendor's debit memos (AP adjustments that lower what is owed), each with what
        is left of it."""
        headers = await self._read_by_query(
            "APADJUSTMENT",
            f"VENDORID = {wire.quote(vendor_id)} AND TRX_TOTALENTERED < 0",
            ("RECORDNO",),
        )
        return await self._credits([wire.text(h, "RECORDNO") or "" for h in headers])

    async def _credits(
        self, keys: list[str], *, reference: str | None = None
    ) -> list[BillCreditMemo]:
        return [
            wire.credit_from_intacct(r, reference=reference)
            for r in await self._read("APADJUSTMENT", [k for k in keys if k])
        ]

    async def find_credit_memo_by_reference(
        self, reference: str, *, vendor_id: str
    ) -> BillCreditMemo | None:
        tag = wire.credit_tag(reference)
        headers = await self._read_by_query(
            "APADJUSTMENT",
            f"VENDORID = {wire.quote(vendor_id)} AND DESCRIPTION LIKE {wire.quote('%' + tag)}",
            ("RECORDNO",),
        )
        found = await self._credits(
            [wire.text(h, "RECORDNO") or "" for h in headers], reference=reference
        )
        return found[0] if found else None

    async def list_credit_applications(self, *, bill_id: str) -> list[CreditApplication]:
        """Debit memos applied to the bill (by payments in effect), one per payment detail."""
        applications = []
        for detail in await self._details([bill_id]):
            amount = wire.money(detail, "TRX_ADJUSTMENTAMOUNT")
            memo_id = wire.text(detail, "ADJUSTMENTKEY")
            if not memo_id or amount is None or amount <= 0:
                continue
            applications.append(
                CreditApplication(
                    id=wire.text(detail, "PAYMENTKEY"),
                    credit_memo_id=memo_id,
                    bill_id=bill_id,
                    amount=amount,
                )
            )
        return applications

    async def home_currency(self) -> CurrencyCode:
        if self._home_currency is None:
            data = await self._one(Element("get_financial_setup"))
            currency = data.findtext("financialsetup/basecurrency")
            if not currency:
                raise Unavailable("Intacct named no base currency", platform=PLATFORM)
            self._home_currency = currency.strip()
        return self._home_currency

    async def get_exchange_rate(self, currency: str, on: date) -> ExchangeRate | None:
        """The latest entry on or before `on` of the company's own exchange-rate type (the
        connection's `exchange_rate_type` setting) from `currency` to the home currency.

        None without that setting: Intacct's built-in "Intacct Daily Rate" is hidden from
        the API (developer.intacct.com, Exchange Rates), so remit then takes its provider's
        rate; a bill written without a rate still gets the daily rate from Intacct itself.
        """
        rate_type = self.connection.settings.get("exchange_rate_type")
        home = await self.home_currency()
        if not rate_type or currency == home:
            return None
        query = (
            f"TYPENAME = {wire.quote(rate_type)} AND FROM_CURRENCY = {wire.quote(currency)} "
            f"AND TO_CURRENCY = {wire.quote(home)}"
        )
        headers = await self._read_by_query("EXCHANGERATE", query, ("RECORDNO",))
        best: tuple[date, Decimal] | None = None
        for record in await self._read(
            "EXCHANGERATE", [wire.text(h, "RECORDNO") or "" for h in headers]
        ):
            for entry in record.iter("EXCHANGERATEENTRY"):
                start = wire.day(entry, "EFFECTIVE_START_DATE")
                value = wire.money(entry, "EXCHANGE_RATE")
                if start is None or value is None or start > on or value <= 0:
                    continue
                if best is None or start > best[0]:
                    best = (start, value)
        if best is None:
            return None
        return ExchangeRate(
            currency=currency,
            home_currency=home,
            rate=best[1],
            as_of=best[0],
            source=f"Intacct ({rate_type})",
        )

    async def list_tax_rates(self) -> list[TaxRate]:
        """The company's purchase tax details (TAXDETAIL with TAXTYPE Purchase), id = the
        DETAILID a line's tax entry names."""
        records = await self._read_by_query(
            "TAXDETAIL",
            "TAXTYPE = 'Purchase'",
            ("DETAILID", "DESCRIPTION", "VALUE", "STATUS", "WHENMODIFIED"),
        )
        rates = []
        for record in records:
            detail_id = wire.text(record, "DETAILID")
            if not detail_id:
                continue
            rates.append(
                TaxRate(
                    id=detail_id,
                    name=wire.text(record, "DESCRIPTION") or detail_id,
                    code=detail_id,
                    rate_percent=wire.money(record, "VALUE"),
                    active=(wire.text(record, "STATUS") or "active").lower() == "active",
                    updated_at=wire.moment(record, "WHENMODIFIED"),
                )
            )
        return rates

    async def tax_code_for(
        self, category: str, rate: Decimal | None, *, rates: Sequence[TaxRate] | None = None
    ) -> TaxRate | None:
        return pick_tax_code(
            await self.list_tax_rates() if rates is None else rates,
            category,
            rate,
            overrides=tax_code_overrides(self.connection),
        )

    # --- writes ----------------------------------------------------------------------------

    async def create_vendor(
        self, vendor: Vendor, *, reference: str, idempotency_key: str
    ) -> Vendor:
        data = await self._one(
            _create(wire.vendor_to_intacct(vendor)), idempotency_key=idempotency_key
        )
        vendor_id = _created_key(data, "VENDORID")
        return await self.get_vendor(vendor_id)

    async def update_vendor(
        self, vendor_id: str, changes: VendorChanges, *, idempotency_key: str
    ) -> Vendor:
        if changes.given():
            update = Element("update")
            update.append(wire.vendor_changes_to_intacct(vendor_id, changes))
            await self._one(update, idempotency_key=idempotency_key)
        return await self.get_vendor(vendor_id)

    async def create_account(self, account: NewAccount, *, idempotency_key: str) -> Account:
        try:
            record = wire.account_to_intacct(account)
        except ValueError as exc:
            raise Rejected(str(exc), platform=PLATFORM) from exc
        # Intacct keys accounts by number only; a second account of the same name would be
        # two accounts people cannot tell apart, so remit refuses it, naming the one there.
        same, why = account_in_chart(await self.list_accounts(), account)
        if same is not None:
            return same
        if why is not None:
            raise Rejected(f"another account already exists here: {why}", platform=PLATFORM)
        data = await self._one(_create(record), idempotency_key=idempotency_key)
        number = _created_key(data, "ACCOUNTNO")
        for found in await self.list_accounts():
            if found.id == number:
                return found
        raise Unavailable(
            f"Intacct created account {number} but does not list it", platform=PLATFORM
        )

    async def create_bill(self, bill: Bill, *, reference: str, idempotency_key: str) -> Bill:
        home = await self.home_currency()
        term = await self._term_name(bill.terms, idempotency_key) if bill.terms else None
        rates: dict[str, Decimal | None] = {}
        if bill.tax_amount or any(line.tax_code_id for line in bill.lines):
            rates = {r.id: r.rate_percent for r in await self.list_tax_rates()}
        try:
            record = wire.bill_to_intacct(
                bill,
                reference=reference,
                home_currency=home,
                term_name=term,
                taxes=wire.line_taxes(bill, rates),
            )
        except ValueError as exc:
            raise Rejected(str(exc), platform=PLATFORM) from exc
        data = await self._one(_create(record), idempotency_key=idempotency_key)
        created = await self._bills([_created_key(data, "RECORDNO")], reference=reference)
        if not created:
            raise Unavailable("Intacct created the bill but cannot read it back", platform=PLATFORM)
        return created[0]

    async def attach_document(
        self,
        bill_id: str,
        *,
        file_name: str,
        content_type: str,
        content: bytes,
        idempotency_key: str,
    ) -> Attachment:
        """The document as an attachment (supdoc) linked to the bill by SUPDOCID.

        The supdoc id is derived from the idempotency key, so a retry finds it instead of
        making another; a bill that has a supdoc of someone else's is refused (remit does
        not add to other people's attachments)."""
        bill = await self.get_bill(bill_id)
        supdoc_id = _supdoc_id(idempotency_key)
        existing = await self._supdoc(supdoc_id)
        if bill.attachment_ids and bill.attachment_ids[0] != supdoc_id:
            raise Rejected(
                f"Intacct bill {bill_id} already has attachment {bill.attachment_ids[0]}; "
                "remit attaches documents only to bills without one",
                platform=PLATFORM,
            )
        stem, _, extension = file_name.rpartition(".")
        if not stem:
            stem, extension = file_name, (mimetypes.guess_extension(content_type) or "")[1:]
        if existing is None:
            await self._attachment_folder(idempotency_key)
            call = Element("create_supdoc")
            SubElement(call, "supdocid").text = supdoc_id
            SubElement(call, "supdocname").text = file_name[:100]
            SubElement(call, "supdocfoldername").text = ATTACHMENT_FOLDER
            attachment = SubElement(SubElement(call, "attachments"), "attachment")
            SubElement(attachment, "attachmentname").text = stem
            SubElement(attachment, "attachmenttype").text = extension
            SubElement(attachment, "attachmentdata").text = base64.b64encode(content).decode()
            await self._one(call, idempotency_key=f"{idempotency_key}/supdoc")
        if not bill.attachment_ids:
            update = Element("update")
            update.append(wire.element("APBILL", {"RECORDNO": bill_id, "SUPDOCID": supdoc_id}))
            await self._one(update, idempotency_key=f"{idempotency_key}/link")
        return Attachment(
            id=supdoc_id,
            bill_id=bill_id,
            file_name=file_name,
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )

    async def _attachment_folder(self, idempotency_key: str) -> None:
        """remit's attachment folder, made the first time (a supdoc must live in a folder)."""
        if self._folder_ready:
            return
        call = wire.element("create_supdocfolder", {"supdocfoldername": ATTACHMENT_FOLDER})
        try:
            await self._one(call, idempotency_key=f"{idempotency_key}/folder")
        except Rejected as exc:
            if "already exists" not in exc.message:
                raise
        self._folder_ready = True

    async def _supdoc(self, supdoc_id: str) -> Element | None:
        data = await self._one(Element("get", object="supdoc", key=supdoc_id))
        return data.find("supdoc")

    async def list_attachments(self, bill_id: str) -> list[Attachment]:
        bill = await self.get_bill(bill_id)
        attachments = []
        for supdoc_id in bill.attachment_ids:
            supdoc = await self._supdoc(supdoc_id)
            if supdoc is None:
                continue
            for item in supdoc.iter("attachment"):
                content = base64.b64decode(item.findtext("attachmentdata") or "")
                name = item.findtext("attachmentname") or supdoc_id
                extension = item.findtext("attachmenttype") or ""
                file_name = f"{name}.{extension}" if extension else name
                attachments.append(
                    Attachment(
                        id=supdoc_id,
                        bill_id=bill_id,
                        file_name=file_name,
                        content_type=mimetypes.guess_type(file_name)[0]
                        or "application/octet-stream",
                        size=len(content),
                        sha256=hashlib.sha256(content).hexdigest(),
                    )
                )
        return attachments

    async def create_bill_payment(
        self, payment: BillPayment, *, reference: str, idempotency_key: str
    ) -> BillPayment:
        home = await self.home_currency()
        entity = await self._entity_for(payment.source_account_id)
        try:
            record = wire.payment_to_intacct(
                payment,
                reference=reference,
                home_currency=home,
                entity=entity.id,
                method="Credit Card" if entity.card else self._payment_method,
            )
        except ValueError as exc:
            raise Rejected(str(exc), platform=PLATFORM) from exc
        data = await self._one(_create(record), idempotency_key=idempotency_key)
        created = await self._payments([_created_key(data, "RECORDNO")], reference=reference)
        if not created:
            raise Unavailable(
                "Intacct created the payment but cannot read it back", platform=PLATFORM
            )
        return created[0]

    async def create_credit_memo(
        self, memo: BillCreditMemo, *, reference: str, idempotency_key: str
    ) -> BillCreditMemo:
        """A debit memo for the vendor's credit (create_apadjustment, negative amounts)."""
        try:
            call = wire.credit_to_intacct(memo, reference=reference)
        except ValueError as exc:
            raise Rejected(str(exc), platform=PLATFORM) from exc
        data = await self._one(call, idempotency_key=idempotency_key)
        created = await self._credits([_created_key(data, "RECORDNO")], reference=reference)
        if not created:
            raise Unavailable("Intacct created the credit but cannot read it", platform=PLATFORM)
        return created[0]

    async def apply_credit(
        self, application: CreditApplication, *, idempotency_key: str
    ) -> CreditApplication:
        """A credit-only payment: the debit memo applied to the bill, no cash (APPYMT with
        ADJUSTMENTKEY and TRX_ADJUSTMENTAMOUNT, no financial entity)."""
        bill = await self.get_bill(application.bill_id)
        detail = {
            "RECORDKEY": application.bill_id,
            "ADJUSTMENTKEY": application.credit_memo_id,
            "TRX_ADJUSTMENTAMOUNT": wire.cents(application.amount, "credit applied"),
        }
        call = wire.element(
            "APPYMT",
            {
                "VENDORID": bill.vendor_id,
                "PAYMENTDATE": application.applied_on or date.today(),
                "CURRENCY": bill.currency,
                "APPYMTDETAILS": [("APPYMTDETAIL", detail)],
            },
        )
        data = await self._one(_create(call), idempotency_key=idempotency_key)
        return application.model_copy(update={"id": _created_key(data, "RECORDNO")})

    async def void_bill_payment(self, payment_id: str, *, idempotency_key: str) -> BillPayment:
        payments = await self._payments([payment_id])
        if not payments:
            raise NotFound(f"no Intacct payment (APPYMT) {payment_id}", platform=PLATFORM)
        if payments[0].voided:
            return payments[0]
        await self._one(
            wire.element("delete", {"object": "APPYMT", "keys": payment_id}),
            idempotency_key=idempotency_key,
        )
        return (await self._payments([payment_id]))[0]


@dataclass(frozen=True)
class Entity:
    """A checking account or charge card: what an Intacct payment is made from."""

    id: str
    gl_account: str
    card: bool
    currency: str | None


CHANGE_FIELDS: dict[str, tuple[str, ...]] = {
    # What a change read lists of each object: enough to tell one state from the next.
    "APBILL": (
        "RECORDNO",
        "WHENMODIFIED",
        "STATE",
        "TRX_TOTALDUE",
        "TRX_TOTALENTERED",
        "SUPDOCID",
        "DESCRIPTION",
        "WHENDUE",
    ),
    "APPYMT": ("RECORDNO", "WHENMODIFIED", "STATE"),
}


def _fingerprint(record: Element) -> str:
    """A short digest of a listed record's fields (WHENMODIFIED aside)."""
    parts = [f"{c.tag}={(c.text or '').strip()}" for c in record.iter() if c.tag != "WHENMODIFIED"]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]


def _read_cursor(cursor: str | None) -> tuple[datetime | None, set[str]]:
    """A changes cursor: the second a pass began and what it took that was changed in it."""
    if not cursor:
        return None, set()
    stamp, _, taken = cursor.partition("|")
    try:
        since = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise Rejected(
            f"not an Intacct changes cursor: {cursor[:60]!r}", platform=PLATFORM
        ) from exc
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since, {key for key in taken.split(",") if key}


def _write_cursor(boundary: datetime, taken: list[str]) -> str:
    """WHENMODIFIED has whole seconds, so the next pass reads the boundary second again and
    skips the records this pass took in it in the very state it took them (key and a
    fingerprint of the fields read): nothing changed in that second is missed, even a record
    changed again within it after this pass read it, and nothing taken comes twice."""
    return boundary.isoformat() + ("|" + ",".join(sorted(set(taken))) if taken else "")


def _create(record: Element) -> Element:
    call = Element("create")
    call.append(record)
    return call


def _created_key(data: Element, key: str) -> str:
    records = wire.records(data)
    value = wire.text(records[0], key) if records else None
    if not value:
        raise Unavailable(f"Intacct's create answered without {key}", platform=PLATFORM)
    return value


def _object_of(call: Element) -> str:
    obj = call.findtext("object")
    if obj:
        return obj
    return call[0].tag if len(call) and call.tag in ("create", "update") else ""


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        offset = int(cursor)
    except ValueError as exc:
        raise Rejected(f"not an Intacct page cursor: {cursor!r}", platform=PLATFORM) from exc
    if offset < 0:
        raise Rejected(f"not an Intacct page cursor: {cursor!r}", platform=PLATFORM)
    return offset


def _supdoc_id(key: str) -> str:
    """Intacct supdoc ids are short (20 characters here): a digest of the idempotency key."""
    return "R" + hashlib.sha256(key.encode()).hexdigest()[:19].upper()
