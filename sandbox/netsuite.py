"""An in-memory NetSuite SuiteTalk REST emulator (record, query, document, async and OAuth 2.0)."""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import secrets
import time as wallclock
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from connectors.netsuite import wire
from connectors.netsuite.query import QueryError, parse_q, parse_suiteql
from sandbox.faults import ASGIApp, FaultInjector, FaultResponse, Faults, Receive, Scope, Send
from sandbox.persist import Persistent
from sandbox.registry import DemoCompany

JSON = dict[str, Any]
ERROR_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=error"
RECORD_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=singular-resource"
COLLECTION_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=collection"
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
# Setup > Integration > Manage Authentication > OAuth 2.0 Client Credentials (M2M) Setup.
M2M_SETUP_PATH = "/app/oauth2/m2m/setup.nl"
MAX_PAGE = 1000
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
JWT_ALGORITHMS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "PS256": hashes.SHA256,
    "PS384": hashes.SHA384,
    "PS512": hashes.SHA512,
    "ES256": hashes.SHA256,
    "ES384": hashes.SHA384,
    "ES512": hashes.SHA512,
}
M2M_SCOPES = {"restlets", "rest_webservices", "suite_analytics"}
_TYPE_URLS = {
    400: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1",
    401: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2",
    403: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.4",
    404: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5",
    429: "https://www.rfc-editor.org/rfc/rfc6585.html#section-4",
    500: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.1",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class NetSuiteError(Exception):
    """An error the emulator answers in NetSuite's `o:errorDetails` shape."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.path = path  # o:errorPath: where in the request body the error is


def _error_body(
    status: int, code: str, detail: str, title: str | None = None, path: str | None = None
) -> bytes:
    error: JSON = {"detail": detail, "o:errorCode": code}
    if path:
        error["o:errorPath"] = path
    return wire.dumps(
        {
            "type": _TYPE_URLS.get(status, _TYPE_URLS[400]),
            "title": title or _TITLES.get(status, "Error"),
            "status": status,
            "o:errorDetails": [error],
        }
    ).encode()


def _error_response(error: NetSuiteError) -> Response:
    return Response(
        _error_body(error.status, error.code, error.detail, error.title, error.path),
        status_code=error.status,
        media_type=ERROR_CONTENT_TYPE,
        headers=error.headers,
    )


def _user_error(detail: str, *, path: str | None = None) -> NetSuiteError:
    return NetSuiteError(
        400, "USER_ERROR", f"Error while accessing a resource. {detail}", path=path
    )


def _missing(label: str) -> NetSuiteError:
    return _user_error(f"Please enter value(s) for: {label}")


def _json(payload: Any, status: int = 200, media_type: str = RECORD_CONTENT_TYPE) -> Response:
    return Response(wire.dumps(payload), status_code=status, media_type=media_type)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Record schemas
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sublist:
    fields: frozenset[str]
    refs: dict[str, str]
    key: str | None = None  # lines identified by this field (the apply sublist's `doc`)


@dataclass(frozen=True)
class Schema:
    service: str  # "record" or "document"
    fields: frozenset[str]
    refs: dict[str, str]  # field -> record type it points at
    read_only: frozenset[str] = frozenset()
    sublists: dict[str, Sublist] = field(default_factory=dict)
    transaction: bool = False


_TRACKING_REFS = {"department": "department", "class": "classification", "location": "location"}
_EXPENSE = Sublist(
    frozenset({"account", "amount", "memo", "department", "class", "location", "line", "taxCode"}),
    {"account": "account", "taxCode": "salesTaxItem", **_TRACKING_REFS},
)
# A vendor payment's apply lines: `disc` is the early-payment discount taken on the bill (its
# balance falls by amount + disc); `discAmt` / `discDate` are what the bill's terms offer.
_APPLY = Sublist(
    frozenset(
        {
            "doc",
            "apply",
            "amount",
            "line",
            "refNum",
            "applyDate",
            "due",
            "total",
            "disc",
            "discAmt",
            "discDate",
        }
    ),  # fmt: skip
    {"doc": "vendorBill"},
    key="doc",
)
_CREDIT_APPLY = Sublist(
    frozenset({"doc", "apply", "amount", "line", "refNum", "applyDate", "due", "total"}),
    {"doc": "vendorBill"},
    key="doc",
)
_JOURNAL_LINE = Sublist(
    frozenset({"account", "debit", "credit", "memo", "entity", "line"}),
    {"account": "account", "entity": "vendor"},
)
# The Electronic Bank Payments SuiteApp's entity bank details (one record per bank account).
BANK_DETAILS = "customrecord_2663_entity_bank_details"
_BANK_DETAIL_FIELDS = (
    "custrecord_2663_parent_vendor",
    "custrecord_2663_entity_file_format",
    "custrecord_2663_entity_bank_type",
    "custrecord_2663_entity_acct_name",
    "custrecord_2663_entity_acct_no",
    "custrecord_2663_entity_bank_no",
    "custrecord_2663_entity_branch_no",
    "custrecord_2663_entity_bank_name",
    "custrecord_2663_entity_swift",
    "custrecord_2663_entity_iban",
    "custrecord_2663_entity_country_code",
    "custrecord_2663_entity_bank_acct_type",
)
# remit's own RESTlet (connectors/netsuite/suitescript/remit_void_restlet.js): N/transaction.void.
VOID_RESTLET = ("customscript_remit_void", "customdeploy_remit_void")
RESTLET_PATH = "/app/site/hosting/restlet.nl"
# The demo company's foreign vendor. Its tax id is deliberately not the one of the UBL example
# invoice (Rheinwerk Maschinenbau GmbH, DE811907980): remit matches vendors by tax id first,
# and that invoice must reach remit as a new vendor.
EUR_VENDOR_NAME = "Fabrikam GmbH"
EUR_VENDOR_TAX_ID = "DE999999999"
_COMMON_READ_ONLY = frozenset({"id", "links", "lastModifiedDate", "createdDate", "dateCreated"})
_TRANSACTION_FIELDS = frozenset(
    {"externalId", "tranId", "entity", "subsidiary", "account", "tranDate", "currency",
     "exchangeRate", "memo", "department", "class", "location", "postingPeriod"}
)  # fmt: skip
_TRANSACTION_REFS = {
    "entity": "vendor",
    "subsidiary": "subsidiary",
    "account": "account",
    "currency": "currency",
    **_TRACKING_REFS,
}

# Item records an AP mirror reads (REST record ids as NetSuite documents them), the accounts
# each carries, and the SuiteQL `item` table's itemtype / subtype for each.
_ITEM_FIELDS = frozenset(
    {"externalId", "itemId", "displayName", "upcCode", "vendorName", "purchaseDescription",
     "salesDescription", "cost", "subsidiary", "isInactive"}
)  # fmt: skip
_ITEM_ACCOUNTS: dict[str, frozenset[str]] = {
    "inventoryItem": frozenset({"cogsAccount", "assetAccount", "incomeAccount"}),
    "nonInventoryPurchaseItem": frozenset({"expenseAccount"}),
    "nonInventoryResaleItem": frozenset({"expenseAccount", "incomeAccount"}),
    "servicePurchaseItem": frozenset({"expenseAccount"}),
}
_ITEM_TYPES: dict[str, tuple[str, str | None]] = {
    "inventoryItem": ("InvtPart", None),
    "nonInventoryPurchaseItem": ("NonInvtPart", "Purchase"),
    "nonInventoryResaleItem": ("NonInvtPart", "Resale"),
    "servicePurchaseItem": ("Service", "Purchase"),
    "salesTaxItem": ("TaxItem", None),
}

SCHEMAS: dict[str, Schema] = {
    "vendor": Schema(
        "record",
        frozenset(
            {
                "externalId",
                "entityId",
                "companyName",
                "legalName",
                "isPerson",
                "firstName",
                "lastName",
                "email",
                "phone",
                "subsidiary",
                "currency",
                "expenseAccount",
                "payablesAccount",
                "taxIdNum",
                "is1099Eligible",
                "isInactive",
                "comments",
                "terms",
            }
        ),  # fmt: skip
        {
            "subsidiary": "subsidiary",
            "currency": "currency",
            "expenseAccount": "account",
            "payablesAccount": "account",
            "terms": "term",
        },
        read_only=_COMMON_READ_ONLY | {"balance", "balancePrimary"},
    ),
    "account": Schema(
        "record",
        frozenset(
            {
                "externalId",
                "acctNumber",
                "acctName",
                "acctType",
                "currency",
                "isInactive",
                "parent",
                "description",
            }
        ),  # fmt: skip
        {"currency": "currency", "parent": "account"},
        read_only=_COMMON_READ_ONLY | {"balance", "fullName"},
    ),
    "department": Schema(
        "record",
        frozenset({"externalId", "name", "parent", "isInactive", "subsidiary"}),
        {"parent": "department", "subsidiary": "subsidiary"},
        read_only=_COMMON_READ_ONLY,
    ),
    "classification": Schema(
        "record",
        frozenset({"externalId", "name", "parent", "isInactive", "subsidiary"}),
        {"parent": "classification", "subsidiary": "subsidiary"},
        read_only=_COMMON_READ_ONLY,
    ),
    "location": Schema(
        "record",
        frozenset({"externalId", "name", "parent", "isInactive", "subsidiary"}),
        {"parent": "location", "subsidiary": "subsidiary"},
        read_only=_COMMON_READ_ONLY,
    ),
    "subsidiary": Schema(
        "record",
        frozenset({"externalId", "name", "currency", "country", "isInactive", "parent"}),
        {"currency": "currency", "parent": "subsidiary"},
        read_only=_COMMON_READ_ONLY,
    ),
    "currency": Schema(
        "record",
        frozenset(
            {"externalId", "name", "symbol", "isBaseCurrency", "exchangeRate", "isInactive"}
        ),  # fmt: skip
        {},
        read_only=_COMMON_READ_ONLY,
    ),
    "vendorBill": Schema(
        "record",
        _TRANSACTION_FIELDS | {"dueDate", "taxTotal", "terms", "approvalStatus"},
        {**_TRANSACTION_REFS, "terms": "term"},
        read_only=_COMMON_READ_ONLY
        | {
            "total",
            "userTotal",
            "status",
            "amountRemaining",
            "amountPaid",
            "transactionNumber",
            "discountAmount",
            "discountDate",
        },
        sublists={"expense": _EXPENSE},
        transaction=True,
    ),  # fmt: skip
    "vendorPayment": Schema(
        "record",
        _TRANSACTION_FIELDS | {"apAcct", "toBePrinted", "toAch"},
        {**_TRANSACTION_REFS, "apAcct": "account"},
        read_only=_COMMON_READ_ONLY
        | {
            "total",
            "status",
            "unapplied",
            "applied",
            "balance",
            "transactionNumber",
            "voidJournal",
        },
        sublists={"apply": _APPLY},
        transaction=True,
    ),  # fmt: skip
    "vendorCredit": Schema(
        "record",
        _TRANSACTION_FIELDS | {"autoApply"},
        _TRANSACTION_REFS,
        read_only=_COMMON_READ_ONLY
        | {"total", "userTotal", "status", "applied", "unapplied", "transactionNumber"},
        sublists={"expense": _EXPENSE, "apply": _CREDIT_APPLY},
        transaction=True,
    ),
    # Journals are read-only here: the emulator writes one only as a voiding journal.
    "journalEntry": Schema(
        "record",
        frozenset(
            {
                "externalId",
                "tranId",
                "tranDate",
                "memo",
                "subsidiary",
                "currency",
                "exchangeRate",
                "postingPeriod",
            }
        ),
        {"subsidiary": "subsidiary", "currency": "currency"},
        read_only=_COMMON_READ_ONLY | {"transactionNumber", "voidOf"},
        sublists={"line": _JOURNAL_LINE},
    ),  # fmt: skip
    "term": Schema(
        "record",
        frozenset(
            {
                "externalId",
                "name",
                "discountPercent",
                "daysUntilExpiry",
                "daysUntilNetDue",
                "dateDriven",
                "isInactive",
                "preferred",
            }
        ),
        {},
        read_only=_COMMON_READ_ONLY,
    ),  # fmt: skip
    BANK_DETAILS: Schema(
        "record",
        frozenset({"externalId", "name", "isInactive", *_BANK_DETAIL_FIELDS}),
        {"custrecord_2663_parent_vendor": "vendor"},
        read_only=_COMMON_READ_ONLY,
    ),
    "customer": Schema(
        "record",
        frozenset(
            {
                "externalId",
                "entityId",
                "companyName",
                "isPerson",
                "firstName",
                "lastName",
                "email",
                "phone",
                "subsidiary",
                "currency",
                "terms",
                "isInactive",
                "comments",
            }
        ),  # fmt: skip
        {"subsidiary": "subsidiary", "currency": "currency", "terms": "term"},
        read_only=_COMMON_READ_ONLY | {"balance", "overdueBalance"},
    ),
    **{
        record_type: Schema(
            "record",
            _ITEM_FIELDS | accounts,
            {"subsidiary": "subsidiary", **{name: "account" for name in accounts}},
            read_only=_COMMON_READ_ONLY | {"itemType"},
        )
        for record_type, accounts in _ITEM_ACCOUNTS.items()
    },
    # SuiteTax: a tax code is a salesTaxItem of a taxType (REST supports no legacy tax, so
    # no taxGroup).
    "taxType": Schema(
        "record",
        frozenset({"externalId", "name", "description", "country", "isInactive"}),
        {},
        read_only=_COMMON_READ_ONLY,
    ),
    "salesTaxItem": Schema(
        "record",
        frozenset(
            {"externalId", "name", "description", "taxType", "rate", "isInactive", "subsidiary"}
        ),
        {"taxType": "taxType", "subsidiary": "subsidiary"},
        read_only=_COMMON_READ_ONLY | {"itemType"},
    ),
    "folder": Schema(
        "document",
        frozenset({"externalId", "name", "parent", "description"}),
        {"parent": "folder"},
        read_only=_COMMON_READ_ONLY,
    ),
    "file": Schema(
        "document",
        frozenset(
            {"externalId", "name", "folder", "fileType", "content", "description", "isOnline"}
        ),  # fmt: skip
        {"folder": "folder"},
        read_only=_COMMON_READ_ONLY | {"fileSize", "url"},
    ),
}
_TRANSACTION_TYPES = {
    "vendorBill": "VendBill",
    "vendorPayment": "VendPymt",
    "vendorCredit": "VendCred",
    "journalEntry": "Journal",
}
_ACCOUNT_TYPE_LABELS = {
    "Bank": "Bank",
    "AcctPay": "Accounts Payable",
    "CredCard": "Credit Card",
    "Expense": "Expense",
    "COGS": "Cost of Goods Sold",
    "OthCurrLiab": "Other Current Liability",
    "OthCurrAsset": "Other Current Asset",
    "AcctRec": "Accounts Receivable",
    "Income": "Income",
    "OthIncome": "Other Income",
    "OthExpense": "Other Expense",
    "Equity": "Equity",
}
# SuiteQL tables that are one record type each, column -> REST field (a reference answers
# its id, a checkbox 'T' / 'F', as SuiteQL does).
_ENTITY_COLUMNS = {
    "entityid": "entityId", "companyname": "companyName", "isperson": "isPerson",
    "firstname": "firstName", "lastname": "lastName", "email": "email", "phone": "phone",
    "currency": "currency", "subsidiary": "subsidiary", "isinactive": "isInactive",
    "externalid": "externalId", "lastmodifieddate": "lastModifiedDate",
    "datecreated": "createdDate",
}  # fmt: skip
_FLAT_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "customer": ("customer", _ENTITY_COLUMNS),
    "subsidiary": (
        "subsidiary",
        {"name": "name", "parent": "parent", "currency": "currency", "country": "country",
         "isinactive": "isInactive", "externalid": "externalId",
         "lastmodifieddate": "lastModifiedDate"},
    ),
    "currency": (
        "currency",
        {"name": "name", "symbol": "symbol", "isbasecurrency": "isBaseCurrency",
         "exchangerate": "exchangeRate", "isinactive": "isInactive",
         "externalid": "externalId", "lastmodifieddate": "lastModifiedDate"},
    ),
    # SuiteTax tax codes; `itemid` is the code's name, as on every item.
    "salestaxitem": (
        "salesTaxItem",
        {"itemid": "name", "name": "name", "description": "description", "rate": "rate",
         "taxtype": "taxType", "isinactive": "isInactive", "externalid": "externalId",
         "lastmodifieddate": "lastModifiedDate"},
    ),
    "taxtype": (
        "taxType",
        {"name": "name", "description": "description", "country": "country",
         "isinactive": "isInactive", "externalid": "externalId"},
    ),
    **{
        table: (table, {"name": "name", "parent": "parent", "isinactive": "isInactive",
                        "subsidiary": "subsidiary", "externalid": "externalId"})
        for table in ("department", "classification", "location")
    },
    # The file cabinet's files (the document service's `file` records).
    "file": (
        "file",
        {"name": "name", "filetype": "fileType", "folder": "folder",
         "description": "description", "isonline": "isOnline", "externalid": "externalId",
         "lastmodifieddate": "lastModifiedDate", "createddate": "createdDate",
         "filesize": "fileSize"},
    ),
}  # fmt: skip
_ITEM_COLUMNS = {
    "itemid": "itemId", "displayname": "displayName", "upccode": "upcCode",
    "vendorname": "vendorName", "purchasedescription": "purchaseDescription",
    "description": "salesDescription", "cost": "cost", "incomeaccount": "incomeAccount",
    "assetaccount": "assetAccount", "subsidiary": "subsidiary", "isinactive": "isInactive",
    "externalid": "externalId", "lastmodifieddate": "lastModifiedDate",
    "createddate": "createdDate", "expenseaccount": "expenseAccount",
}  # fmt: skip
_SUITEQL_TABLES: dict[str, set[str]] = {
    "transaction": {
        "id",
        "tranid",
        "type",
        "entity",
        "trandate",
        "duedate",
        "currency",
        "externalid",
        "memo",
        "status",
        "foreigntotal",
        "foreignamountunpaid",
        "exchangerate",
        "voided",
        "lastmodifieddate",
        "createddate",
        "terms",
        "taxtotal",
    },  # fmt: skip
    # Lines of bills and vendor credits: the main line (id 0, the A/P side) and the expense
    # lines, in the transaction's currency; `uniquekey` is unique across every line.
    "transactionline": {
        "transaction",
        "id",
        "uniquekey",
        "linesequencenumber",
        "mainline",
        "taxline",
        "expenseaccount",
        "memo",
        "foreignamount",
        "department",
        "class",
        "location",
        "taxcode",
        "entity",
    },  # fmt: skip
    "vendor": {
        "id",
        "entityid",
        "companyname",
        "legalname",
        "taxidnum",
        "email",
        "externalid",
        "isinactive",
        "currency",
        "lastmodifieddate",
    },  # fmt: skip
    "nexttransactionlinelink": {
        "previousdoc",
        "previoustype",
        "nextdoc",
        "nexttype",
        "linktype",
        "foreignamount",
    },
    "transactionfile": {"transaction", "file"},
    **{table: {"id", *columns} for table, (_, columns) in _FLAT_TABLES.items()},
    "item": {"id", "itemtype", "subtype", *_ITEM_COLUMNS},
    # NetSuite's log of deleted records (what an incremental mirror pass reads deletions from).
    "deletedrecord": {"recordid", "type", "name", "deleteddate"},
    # Multiple Currencies: base units per one unit of the transaction currency, by date.
    "currencyrate": {"id", "basecurrency", "transactioncurrency", "exchangerate", "effectivedate"},
    "term": {
        "id",
        "name",
        "daysuntilnetdue",
        "discountpercent",
        "daysuntilexpiry",
        "datedriven",
        "isinactive",
        "externalid",
    },
    # Posting lines (GL impact) in the base currency.
    "transactionaccountingline": {
        "transaction",
        "transactionline",
        "account",
        "accountingbook",
        "debit",
        "credit",
        "amount",
        "posting",
    },
    BANK_DETAILS: {
        "id",
        "name",
        "isinactive",
        "externalid",
        "lastmodified",
        *_BANK_DETAIL_FIELDS,
    },
}


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class _Job:
    id: str
    status: int
    headers: dict[str, str]
    body: bytes
    created: datetime


@dataclass
class _Company:
    account_id: str
    name: str
    records: dict[str, dict[str, JSON]] = field(default_factory=dict)
    external_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    file_content: dict[str, bytes] = field(default_factory=dict)
    attachments: dict[str, list[str]] = field(default_factory=dict)  # transaction -> files
    jobs: dict[str, _Job] = field(default_factory=dict)
    idempotency_keys: dict[str, str] = field(default_factory=dict)  # key -> job id
    ids: dict[str, itertools.count[int]] = field(default_factory=dict)
    last_modified: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    # Setup > Accounting > Accounting Preferences, by preference id (REVERSALVOIDING, ...),
    # and the system accounts NetSuite posts to by itself (Realized Gain/Loss).
    preferences: dict[str, Any] = field(default_factory=dict)
    system_accounts: dict[str, str] = field(default_factory=dict)
    # Deployed RESTlets: (script id, deployment id) -> what the script does.
    restlets: dict[tuple[str, str], str] = field(default_factory=dict)
    # Deleted records, oldest first: {"recordid", "type", "name", "deleteddate"} (picklable).
    deleted: list[JSON] = field(default_factory=list)

    def table(self, record_type: str) -> dict[str, JSON]:
        return self.records.setdefault(record_type, {})

    def new_id(self, record_type: str) -> str:
        # Internal ids count per record type, except that all transactions share one
        # sequence (they live in one transaction table, which links and SuiteQL rely on).
        # Items alike share one (every item type, tax codes included, is a row of `item`).
        sequence = (
            "transaction"
            if record_type in _TRANSACTION_TYPES
            else "item"
            if record_type in _ITEM_TYPES
            else record_type
        )
        return str(next(self.ids.setdefault(sequence, itertools.count(1))))

    def tick(self) -> datetime:
        # Strictly increasing modification times, so a lastModifiedDate cursor never ties
        # two records written one after the other.
        moment = max(_now(), self.last_modified + timedelta(microseconds=1))
        self.last_modified = moment
        return moment


@dataclass
class _Token:
    account_id: str
    expires_at: datetime | None
    grant: str | None = None  # the refresh token it came from
    certificate: tuple[str, str] | None = None  # (client id, certificate id) of an M2M token
    scopes: frozenset[str] | None = None  # an M2M token's scopes; None: every scope


@dataclass
class _Grant:
    account_id: str
    client_id: str


@dataclass
class _Client:
    client_id: str
    client_secret: str
    account_id: str
    certificates: dict[str, Any] = field(default_factory=dict)  # kid -> public key


@dataclass(frozen=True)
class M2MCertificate:
    """A client-credentials (M2M) mapping: the integration's client id and the certificate id."""

    client_id: str
    certificate_id: str


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------


class NetSuiteEmulator(Persistent):
    """NetSuite REST web services for any number of accounts, held in memory.

    Which account a request reaches is decided by its bearer token (real NetSuite puts the
    account id in the host name; the emulator serves every account from one host).
    """

    # Request-line fragments of the unified writes, for scripting faults on exactly one of them.
    write_matches: ClassVar[dict[str, str]] = {
        "vendor": "PUT /services/rest/record/v1/vendor/eid:",
        "bill": "PUT /services/rest/record/v1/vendorBill/eid:",
        "bill_payment": "PUT /services/rest/record/v1/vendorPayment/eid:",
        "void_bill_payment": f"POST {RESTLET_PATH}?script={VOID_RESTLET[0]}&",
    }
    persisted = (
        "companies",
        "_tokens",
        "_grants",
        "_revoked",
        "_clients",
        "_job_ids",
        "inspector_token",
        "demo_company",
    )

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        concurrency_limit: int = 5,
        reversal_voiding: bool = True,
        bank_payments_suiteapp: bool = True,
        state_file: Path | None = None,
    ) -> None:
        """`reversal_voiding`: the REVERSALVOIDING accounting preference of seeded accounts
        (voids post a reversing journal and keep the payment's lines; off, a direct void
        zeroes them). `bank_payments_suiteapp`: whether the Electronic Bank Payments SuiteApp
        (and so its entity bank details record) is installed. `state_file`: keep the accounts,
        their records and the M2M mappings there (restored when present)."""
        self.faults = faults or Faults()
        self.concurrency_limit = concurrency_limit
        self.reversal_voiding = reversal_voiding
        self.bank_payments_suiteapp = bank_payments_suiteapp
        self.inspector_token = secrets.token_urlsafe(24)
        self.companies: dict[str, _Company] = {}
        self._tokens: dict[str, _Token] = {}
        self._grants: dict[str, _Grant] = {}
        self._revoked: set[str] = set()
        self._clients: dict[str, _Client] = {}
        self._in_flight = 0
        # When set to an unset Event, API requests are held in flight until it is set, so
        # tests can fill the concurrency limit without relying on timing.
        self.gate: asyncio.Event | None = None
        self._job_ids = itertools.count(1)
        routes = [
            Route(TOKEN_PATH, self._token_endpoint, methods=["POST"]),
            Route("/services/rest/query/v1/suiteql", self._suiteql, methods=["POST"]),
            Route("/services/rest/async/v1/job/{rest:path}", self._async_job, methods=["GET"]),
            Route(RESTLET_PATH, self._restlet, methods=["GET", "POST", "PUT", "DELETE"]),
            Route(
                "/services/rest/{service:str}/v1/{rest:path}",
                self._record_service,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
            Route("/_emulator/faults", self._control_faults, methods=["GET", "PUT"]),
            Route("/_emulator/reset", self._control_reset, methods=["POST"]),
            Route(M2M_SETUP_PATH, self._m2m_setup, methods=["GET", "POST"]),
        ]
        self._starlette = Starlette(routes=routes)
        injector = FaultInjector(
            self._starlette,  # type: ignore[arg-type]  # Starlette types scope as MutableMapping
            self.faults,
            server_error=self._server_error,
            throttled=self._throttled,
            exempt=("/_emulator", M2M_SETUP_PATH),
        )
        self.restored = self.restore_state(state_file)
        self.app: ASGIApp = self.persisting(self._govern(injector))

    @property
    def in_flight(self) -> int:
        """API requests being served right now (what the concurrency limit counts)."""
        return self._in_flight

    # -- fault bodies, as NetSuite writes them ------------------------------------------------

    @staticmethod
    def _server_error() -> FaultResponse:
        body = _error_body(
            500,
            "UNEXPECTED_ERROR",
            f"An unexpected error occurred. Error ID: {secrets.token_hex(8)}",
        )
        return 500, [(b"content-type", ERROR_CONTENT_TYPE.encode())], body

    @staticmethod
    def _throttled(retry_after: float) -> FaultResponse:
        body = _error_body(
            429,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
        )
        headers = [
            (b"content-type", ERROR_CONTENT_TYPE.encode()),
            (
                b"retry-after",
                str(int(retry_after) if retry_after == int(retry_after) else retry_after).encode(),
            ),
        ]
        return 429, headers, body

    def _govern(self, inner: ASGIApp) -> ASGIApp:
        """The account-wide concurrency limit: requests beyond it in flight get a 429.

        It wraps the fault injector so emulated latency counts as time in flight, as a slow
        server's would. Its 429 carries no Retry-After (NetSuite documents none).
        """

        async def governed(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and not path.startswith("/_emulator"):
                self._apply_scripted_revoke(scope)
            # RESTlets count against the same account-wide limit as REST web services.
            governed_path = scope["type"] == "http" and (
                (path.startswith("/services/rest/") and not path.startswith("/services/rest/auth/"))
                or path == RESTLET_PATH
            )
            if not governed_path:
                await inner(scope, receive, send)
                return
            if self._in_flight >= self.concurrency_limit:
                body = _error_body(
                    429,
                    "CONCURRENCY_LIMIT_EXCEEDED",
                    "Concurrent request limit exceeded. Request blocked.",
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 429,
                        "headers": [
                            (b"content-type", ERROR_CONTENT_TYPE.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            self._in_flight += 1
            try:
                if self.gate is not None:
                    await self.gate.wait()
                await inner(scope, receive, send)
            finally:
                self._in_flight -= 1

        return governed

    def _apply_scripted_revoke(self, scope: Scope) -> None:
        """A scripted "revoke" fault revokes the caller's grant; NetSuite then answers 401."""
        line = f"{scope['method']} {scope['path']}?{scope.get('query_string', b'').decode()}"
        faults = self.faults
        for fault in list(faults.scripted):
            if fault.kind == "revoke" and fault.times > 0 and fault.match in line:
                fault.times -= 1
                if fault.times == 0:
                    faults.scripted.remove(fault)
                faults.fired["revoke"] = faults.fired.get("revoke", 0) + 1
                for name, value in scope.get("headers", []):
                    if name == b"authorization" and value.lower().startswith(b"bearer "):
                        self.revoke_token(value[7:].decode().strip())
                return

    # -- tokens ---------------------------------------------------------------------------------

    def issue_token(self, account_id: str, *, lifetime: timedelta | None = ACCESS_TOKEN_LIFETIME,
                    grant: str | None = None, certificate: tuple[str, str] | None = None,
                    scopes: Iterable[str] | None = None) -> str:  # fmt: skip
        token = "ns-at-" + secrets.token_urlsafe(24)
        expires = _now() + lifetime if lifetime is not None else None
        granted = frozenset(scopes) if scopes is not None else None
        self._tokens[token] = _Token(account_id, expires, grant, certificate, granted)
        return token

    def expire_token(self, token: str) -> None:
        """Make an access token stale: the next request with it gets 401 INVALID_LOGIN."""
        if token in self._tokens:
            self._tokens[token].expires_at = _now() - timedelta(seconds=1)

    def revoke_token(self, token: str) -> None:
        """Revoke a token; revoking an access token revokes its whole grant (as NetSuite does).

        Access tokens of the grant are refused with 401 and a `revoked` description, and the
        refresh token answers `invalid_grant`.
        """
        self._revoked.add(token)
        certificate = self._tokens[token].certificate if token in self._tokens else None
        if certificate is not None:
            # An M2M token's "grant" is its certificate mapping: revoking removes the mapping,
            # so new client assertions signed with that key are refused too.
            self.revoke_certificate(*certificate)
        grant = self._tokens[token].grant if token in self._tokens else None
        if token in self._grants:
            grant = token
        if grant is not None:
            self._revoked.add(grant)
            for access, info in self._tokens.items():
                if info.grant == grant:
                    self._revoked.add(access)

    def revoke_certificate(self, client_id: str, certificate_id: str) -> None:
        """Remove an M2M mapping (an administrator revoking it) and every token minted by it."""
        client = self._clients.get(client_id)
        if client is not None:
            client.certificates.pop(certificate_id, None)
        for access, info in self._tokens.items():
            if info.certificate == (client_id, certificate_id):
                self._revoked.add(access)

    def register_certificate(
        self, company_id: str, public_key_pem: bytes, *, client_id: str | None = None
    ) -> M2MCertificate:
        """Map a certificate's public key to an integration for client-credentials (M2M)."""
        key = serialization.load_pem_public_key(public_key_pem)
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 3072:
                raise ValueError("NetSuite accepts RSA keys of 3072 or 4096 bits")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
                raise ValueError("NetSuite accepts EC keys on P-256, P-384 or P-521")
        else:
            raise ValueError("NetSuite accepts RSA or EC certificates only")
        client_id = client_id or secrets.token_hex(32)
        client = self._clients.get(client_id)
        if client is None:
            client = _Client(client_id, secrets.token_hex(32), company_id)
            self._clients[client_id] = client
        certificate_id = secrets.token_urlsafe(32)
        client.certificates[certificate_id] = key
        return M2MCertificate(client_id, certificate_id)

    def _company_for(self, request: Request, *, scope: str = "rest_webservices") -> _Company:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = 'Bearer error="invalid_token", error_description="{}"'
        if scheme.lower() != "bearer" or not token:
            raise NetSuiteError(
                401,
                "INVALID_LOGIN",
                "Invalid login attempt. For more details, see the Login Audit Trail in the "
                "NetSuite UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
                headers={"WWW-Authenticate": 'Bearer realm="NetSuite"'},
            )
        info = self._tokens.get(token)
        if token in self._revoked or info is None:
            description = "The access token has been revoked" if info else "Unknown token"
            raise NetSuiteError(
                401,
                "INVALID_LOGIN",
                f"Invalid login attempt. {description}.",
                headers={"WWW-Authenticate": challenge.format(description)},
            )
        if info.expires_at is not None and info.expires_at <= _now():
            raise NetSuiteError(
                401,
                "INVALID_LOGIN",
                "Invalid login attempt. The access token has expired.",
                headers={"WWW-Authenticate": challenge.format("The access token expired")},
            )
        company = self.companies.get(info.account_id)
        if company is None:
            raise NetSuiteError(401, "INVALID_LOGIN", "Invalid login attempt.")
        if info.scopes is not None and scope not in info.scopes:
            # The token is valid, but was not granted for this service (an M2M assertion names
            # its scopes: rest_webservices, restlets, suite_analytics).
            raise NetSuiteError(
                403,
                "INSUFFICIENT_PERMISSION",
                f"Permission Violation: the access token was not granted the {scope!r} scope.",
            )
        return company

    async def _token_endpoint(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant_type = form.get("grant_type")
        try:
            if grant_type == "client_credentials":
                own_url = str(request.url).split("?")[0]
                account_id, certificate, scopes = self._check_client_assertion(form, own_url)
                token = self.issue_token(account_id, certificate=certificate, scopes=scopes)
                return _json(
                    {"access_token": token, "expires_in": "3600", "token_type": "bearer"},
                    media_type="application/json",
                )
            if grant_type == "refresh_token":
                return self._refresh(request, form)
        except _OAuthError as error:
            return _json(
                {"error": error.error, "error_description": error.description},
                status=error.status,
                media_type="application/json",
            )
        return _json({"error": "unsupported_grant_type"}, 400, "application/json")

    def _refresh(self, request: Request, form: dict[str, str]) -> Response:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError as exc:
                raise _OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
        client = self._clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, client_secret):
            raise _OAuthError("invalid_client", "unknown client or wrong secret", 401)
        refresh_token = form.get("refresh_token", "")
        grant = self._grants.get(refresh_token)
        if grant is None or refresh_token in self._revoked or grant.client_id != client_id:
            raise _OAuthError("invalid_grant", "the refresh token is invalid or revoked")
        token = self.issue_token(grant.account_id, grant=refresh_token)
        return _json(
            {"access_token": token, "expires_in": "3600", "token_type": "bearer"},
            media_type="application/json",
        )

    def _check_client_assertion(
        self, form: dict[str, str], token_url: str
    ) -> tuple[str, tuple[str, str], list[str]]:
        if (
            form.get("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            raise _OAuthError("invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = form.get("client_assertion", "")
        parts = assertion.split(".")
        if len(parts) != 3:
            raise _OAuthError("invalid_request", "client_assertion is not a JWT")
        try:
            header = wire.loads(_b64url(parts[0]))
            claims = wire.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except ValueError as exc:
            raise _OAuthError("invalid_request", "client_assertion is not a JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in JWT_ALGORITHMS:
            raise _OAuthError(
                "invalid_request", f"alg {algorithm!r} is not allowed: use PS256..512 or ES256..512"
            )
        client = self._clients.get(str(claims.get("iss", "")))
        if client is None:
            raise _OAuthError("invalid_client", "iss is not a known client id", 401)
        public_key = client.certificates.get(str(header.get("kid", "")))
        if public_key is None:
            raise _OAuthError(
                "invalid_client", "kid is not a certificate mapped to this client", 401
            )
        signed = f"{parts[0]}.{parts[1]}".encode()
        if not _verify(public_key, algorithm, signed, signature):
            raise _OAuthError("invalid_client", "the client_assertion signature is invalid", 401)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if token_url not in audiences:
            raise _OAuthError("invalid_request", f"aud must be the token endpoint {token_url}")
        scope = claims.get("scope")
        scopes = scope if isinstance(scope, list) else str(scope or "").replace(" ", ",").split(",")
        scopes = [s for s in scopes if s]
        if not scopes or not set(scopes) <= M2M_SCOPES:
            raise _OAuthError("invalid_scope", f"scope must be among {sorted(M2M_SCOPES)}")
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int | Decimal) or not isinstance(expires, int | Decimal):
            raise _OAuthError("invalid_request", "iat and exp are required numbers")
        now = wallclock.time()
        if expires - issued >= 3600:
            raise _OAuthError("invalid_request", "exp must be less than 60 minutes after iat")
        if expires <= now or issued > now + 300:
            raise _OAuthError(
                "invalid_grant", "the client_assertion has expired or is not valid yet"
            )
        return client.account_id, (client.client_id, str(header.get("kid", ""))), scopes

    async def _m2m_setup(self, request: Request) -> Response:
        """The administrator's M2M setup page: map a certificate (public key) to an account.

        GET lists the accounts; POST `company` + `certificate` (a PEM public key) creates the
        integration's client id and the certificate id, as JSON when asked for JSON.
        """
        if request.method == "GET":
            return self._m2m_page()
        form = {k: str(v) for k, v in (await request.form()).items()}
        account_id = form.get("company", "")
        if account_id not in self.companies:
            return self._m2m_page(f"Unknown account {account_id!r}: choose one of the list.")
        try:
            mapping = self.register_certificate(
                account_id, form.get("certificate", "").encode(), client_id=form.get("client_id")
            )
        except ValueError as exc:
            return self._m2m_page(f"The certificate was refused: {exc}")
        answer = {
            "account_id": account_id,
            "client_id": mapping.client_id,
            "certificate_id": mapping.certificate_id,
        }
        if "json" in request.headers.get("accept", ""):
            return JSONResponse(answer, status_code=201)
        rows = "".join(
            f"<dt>{html.escape(k)}</dt><dd><code>{html.escape(v)}</code></dd>"
            for k, v in answer.items()
        )
        return HTMLResponse(f"<!doctype html><html><body><h1>Mapping saved</h1><dl>{rows}</dl>"
                            "</body></html>", status_code=201)  # fmt: skip

    def _m2m_page(self, problem: str = "") -> HTMLResponse:
        choices = "".join(
            f'<label><input type="radio" name="company" value="{html.escape(account_id)}"'
            f"{' checked' if index == 0 else ''}> {html.escape(company.name)}"
            f" <small>({html.escape(account_id)})</small></label><br>"
            for index, (account_id, company) in enumerate(self.companies.items())
        )
        warning = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OAuth 2.0 Client Credentials (M2M) Setup</title>
</head><body><h1>OAuth 2.0 Client Credentials (M2M) Setup</h1>{warning}
<form method="post" id="m2m-setup">
<fieldset><legend>Choose an account</legend>{choices}</fieldset>
<p><label>Certificate (PEM public key)<br><textarea name="certificate" rows="8" cols="64">
</textarea></label></p>
<p><button type="submit">Save</button></p>
</form></body></html>"""
        return HTMLResponse(page, status_code=400 if problem else 200)

    # -- control endpoints ----------------------------------------------------------------------

    def _check_inspector(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not secrets.compare_digest(header, f"Bearer {self.inspector_token}"):
            raise NetSuiteError(401, "INVALID_LOGIN", "the inspector token is required")

    async def _control_faults(self, request: Request) -> Response:
        try:
            self._check_inspector(request)
        except NetSuiteError as error:
            return _error_response(error)
        if request.method == "PUT":
            self.faults.apply_json(wire.loads(await request.body() or b"{}"))
        return _json(self._faults_json(), media_type="application/json")

    def _faults_json(self) -> JSON:
        # NetSuite's wire refuses floats (they never carry money there): rates go as Decimal.
        return {
            name: Decimal(str(value)) if isinstance(value, float) else value
            for name, value in self.faults.to_json().items()
        }

    async def _control_reset(self, request: Request) -> Response:
        """Switch every fault off and forget which ones fired."""
        try:
            self._check_inspector(request)
        except NetSuiteError as error:
            return _error_response(error)
        self.faults.clear()
        self.faults.fired.clear()
        return _json(self._faults_json(), media_type="application/json")

    # -- seeding -------------------------------------------------------------------------------

    def seed_demo_company(self, company_id: str | None = None) -> DemoCompany:
        """The demo business every platform's emulator seeds, as a NetSuite OneWorld account."""
        account_id = company_id or f"TSTDRV{1000000 + len(self.companies) + 1}"
        company = _Company(account_id, "Remit Demo Inc.")
        self.companies[account_id] = company

        def add(record_type: str, record: JSON) -> str:
            record_id = company.new_id(record_type)
            moment = company.tick()
            company.table(record_type)[record_id] = {
                **record,
                "id": record_id,
                "createdDate": _iso(moment),
                "lastModifiedDate": _iso(moment),
            }
            return record_id

        currencies = {}
        for symbol, name, rate in (
            ("USD", "US Dollar", "1"),
            ("EUR", "Euro", "1.08"),
            ("GBP", "British Pound", "1.27"),
            ("CAD", "Canadian Dollar", "0.73"),
        ):
            currencies[symbol] = add(
                "currency",
                {
                    "name": name,
                    "symbol": symbol,
                    "isBaseCurrency": symbol == "USD",
                    "exchangeRate": Decimal(rate),
                    "isInactive": False,
                },
            )
        subsidiary = add(
            "subsidiary",
            {"name": "Remit Demo Inc.", "currency": wire.ref(currencies["USD"]), "country": "US"},
        )
        # A OneWorld child: the German entity, in euros.
        add(
            "subsidiary",
            {"name": "Remit Demo GmbH", "currency": wire.ref(currencies["EUR"]), "country": "DE",
             "parent": wire.ref(subsidiary), "isInactive": False},
        )  # fmt: skip
        accounts: dict[str, str] = {}
        for number, name, kind, currency in (
            ("1000", "Operating Bank", "Bank", "USD"),
            ("1010", "Operating Bank EUR", "Bank", "EUR"),
            ("2000", "Accounts Payable", "AcctPay", "USD"),
            ("2100", "Company Card", "CredCard", "USD"),
            ("6100", "Office Supplies", "Expense", None),
            ("6200", "Repairs and Maintenance", "Expense", None),
            ("6300", "Professional Fees", "Expense", None),
            ("6400", "Software Subscriptions", "Expense", None),
            ("5000", "Cost of Goods Sold", "COGS", None),
            # Accounting Preferences > Items/Transactions > Purchase Discount Account.
            ("4910", "Purchase Discounts", "OthIncome", None),
            # The system account NetSuite books realized exchange differences to.
            ("8100", "Realized Gain/Loss", "OthExpense", None),
        ):
            accounts[name] = add(
                "account",
                {
                    "acctNumber": number,
                    "acctName": name,
                    "acctType": {"id": kind},
                    "currency": wire.ref(currencies[currency]) if currency else None,
                    "isInactive": False,
                },
            )
        for record_type, names in (
            ("department", ("Operations", "Finance", "Sales")),
            ("classification", ("East", "West")),
            ("location", ("HQ",)),
        ):
            for name in names:
                add(
                    record_type,
                    {"name": name, "isInactive": False, "subsidiary": wire.ref(subsidiary)},
                )
        company.preferences.update(
            REVERSALVOIDING=self.reversal_voiding,
            PURCHASE_DISCOUNT_ACCOUNT=accounts["Purchase Discounts"],
        )
        company.system_accounts["REALIZED_GAIN_LOSS"] = accounts["Realized Gain/Loss"]
        terms: dict[str, str] = {}
        for name, percent, discount_days, net_days in (
            ("Net 30", "0", 0, 30),
            ("2% 10 Net 30", "2", 10, 30),
        ):
            terms[name] = add(
                "term",
                {
                    "name": name,
                    "discountPercent": Decimal(percent),
                    "daysUntilExpiry": discount_days,
                    "daysUntilNetDue": net_days,
                    "dateDriven": False,
                    "isInactive": False,
                },
            )
        # Currency exchange rates (Lists > Accounting > Currency Exchange Rates): base (USD)
        # units per one unit of the foreign currency, effective from the date given.
        for symbol, effective, rate in (
            ("EUR", "2025-01-01", "1.04"),
            ("EUR", "2026-01-01", "1.08"),
            ("GBP", "2026-01-01", "1.27"),
            ("CAD", "2026-01-01", "0.73"),
        ):
            rate_id = company.new_id("currencyrate")
            company.table("currencyrate")[rate_id] = {
                "id": rate_id,
                "basecurrency": currencies["USD"],
                "transactioncurrency": currencies[symbol],
                "exchangerate": Decimal(rate),
                "effectivedate": effective,
            }
        vendors: dict[str, str] = {}
        for name, tax_id, expense, currency in (
            ("Northwind Office Supply", "94-1234567", "Office Supplies", "USD"),
            ("Globex Software", "12-3456789", "Software Subscriptions", "USD"),
            ("Initech Consulting", None, "Professional Fees", "USD"),
            ("Acme Corp", None, None, "USD"),
            ("ACME Corporation", None, None, "USD"),
            (EUR_VENDOR_NAME, EUR_VENDOR_TAX_ID, "Office Supplies", "EUR"),
        ):
            vendors[name] = add(
                "vendor",
                {
                    "entityId": name,
                    "companyName": name,
                    "taxIdNum": tax_id,
                    "subsidiary": wire.ref(subsidiary),
                    "currency": wire.ref(currencies[currency]),
                    "expenseAccount": wire.ref(accounts[expense]) if expense else None,
                    "isInactive": False,
                },
            )
        for name, email, currency in (
            ("Contoso Retail", "ap@contoso.example", "USD"),
            ("Tailspin Toys", "billing@tailspin.example", "USD"),
            ("Wingtip Handels AG", None, "EUR"),
        ):
            add(
                "customer",
                {"entityId": name, "companyName": name, "email": email,
                 "subsidiary": wire.ref(subsidiary), "currency": wire.ref(currencies[currency]),
                 "isInactive": False},
            )  # fmt: skip
        for record_type, item_id, display, cost, item_accounts in (
            ("inventoryItem", "PAPER-A4", "A4 copy paper, box", "24.50",
             {"cogsAccount": "Cost of Goods Sold", "incomeAccount": None}),
            ("nonInventoryPurchaseItem", "TONER-BLK", "Black toner cartridge", "89.00",
             {"expenseAccount": "Office Supplies"}),
            ("nonInventoryResaleItem", "CHAIR-ERGO", "Ergonomic chair", "310.00",
             {"expenseAccount": "Cost of Goods Sold"}),
            ("servicePurchaseItem", "CONSULT-HR", "Consulting, per hour", "150.00",
             {"expenseAccount": "Professional Fees"}),
            ("servicePurchaseItem", "SAAS-SEAT", "Software seat, monthly", "12.00",
             {"expenseAccount": "Software Subscriptions"}),
        ):  # fmt: skip
            add(
                record_type,
                {"itemId": item_id, "displayName": display, "purchaseDescription": display,
                 "cost": Decimal(cost), "subsidiary": wire.ref(subsidiary), "isInactive": False,
                 **{field_name: wire.ref(accounts[account]) for field_name, account
                    in item_accounts.items() if account}},
            )  # fmt: skip
        # SuiteTax: tax types, and the tax codes (salesTaxItem) of each, with their rates.
        sales_tax = add(
            "taxType",
            {"name": "Sales Tax", "country": "US", "description": "US sales and use tax",
             "isInactive": False},
        )  # fmt: skip
        vat = add(
            "taxType",
            {"name": "VAT", "country": "DE", "description": "Umsatzsteuer", "isInactive": False},
        )
        for name, description, rate, tax_type in (
            ("CA-SF", "California, San Francisco", "8.625", sales_tax),
            ("US-EXEMPT", "Exempt from sales tax", "0", sales_tax),
            ("DE-S-19", "Umsatzsteuer 19 %", "19", vat),
            ("DE-R-7", "Umsatzsteuer 7 %", "7", vat),
        ):
            add(
                "salesTaxItem",
                {"name": name, "description": description, "rate": Decimal(rate),
                 "taxType": wire.ref(tax_type), "isInactive": False},
            )  # fmt: skip
        # Vendor credits not yet applied to a bill (the demo company has no bills of its own).
        for vendor, tran_id, account, amount in (
            ("Globex Software", "CM-GLX-0042", "Software Subscriptions", "120.00"),
            ("Initech Consulting", "CM-INI-7", "Professional Fees", "75.50"),
        ):
            add(
                "vendorCredit",
                {"entity": wire.ref(vendors[vendor]), "subsidiary": wire.ref(subsidiary),
                 "tranId": tran_id, "tranDate": "2026-06-15",
                 "currency": wire.ref(currencies["USD"]), "exchangeRate": Decimal("1"),
                 "account": wire.ref(accounts["Accounts Payable"]),
                 "memo": "Credit for a returned order",
                 "expense": [{"line": 1, "account": wire.ref(accounts[account]),
                              "amount": Decimal(amount), "memo": "Returned"}]},
            )  # fmt: skip
        primary, secondary = {"id": "1", "refName": "Primary"}, {"id": "2", "refName": "Secondary"}
        for vendor, bank_type, inactive, details in (
            (
                "Northwind Office Supply", primary, False,
                {"acct_name": "Northwind Office Supply", "acct_no": "000123456789",
                 "bank_no": "021000021", "bank_name": "JPMorgan Chase Bank, N.A.",
                 "country_code": "US", "bank_acct_type": {"id": "1", "refName": "Checking"},
                 "file_format": {"id": "1", "refName": "ACH-CCD/PPD"}},
            ),
            (   # an account the vendor closed: kept, but inactive
                "Northwind Office Supply", secondary, True,
                {"acct_name": "Northwind Office Supply", "acct_no": "000987654321",
                 "bank_no": "026009593", "bank_name": "Bank of America, N.A.",
                 "country_code": "US", "file_format": {"id": "1", "refName": "ACH-CCD/PPD"}},
            ),
            (
                EUR_VENDOR_NAME, primary, False,
                {"acct_name": EUR_VENDOR_NAME, "iban": "DE02120300000000202051",
                 "swift": "BYLADEM1001", "bank_name": "DKB AG", "country_code": "DE",
                 "file_format": {"id": "2", "refName": "SEPA Credit Transfer (Germany)"}},
            ),
        ):  # fmt: skip
            add(
                BANK_DETAILS,
                {
                    "name": f"{vendor} - {bank_type['refName']}",
                    "isInactive": inactive,
                    "custrecord_2663_parent_vendor": wire.ref(vendors[vendor]),
                    "custrecord_2663_entity_bank_type": bank_type,
                    **{f"custrecord_2663_entity_{k}": v for k, v in details.items()},
                },
            )
        company.restlets[VOID_RESTLET] = "void"
        add("folder", {"name": "Attachments Received"})

        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.register_certificate(
            account_id,
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        client = self._clients[certificate.client_id]
        refresh_token = "ns-rt-" + secrets.token_urlsafe(24)
        self._grants[refresh_token] = _Grant(account_id, client.client_id)
        # The seeded access token does not expire, so a long-running embedded stack keeps working.
        access_token = self.issue_token(account_id, lifetime=None, grant=refresh_token)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return DemoCompany(
            company_id=account_id,
            company_name=company.name,
            credentials={
                "access_token": access_token,
                "refresh_token": refresh_token,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "certificate_id": certificate.certificate_id,
                "private_key": private_pem,
            },
            settings={
                "bank_account_id": accounts["Operating Bank"],
                "bank_account_id:EUR": accounts["Operating Bank EUR"],
                "card_account_id": accounts["Company Card"],
                "ap_account_id": accounts["Accounts Payable"],
                "subsidiary_id": subsidiary,
                "home_currency": "USD",
                # NetSuite posts taken discounts to the Purchase Discount Account preference;
                # the setting names the same account for remit's own records.
                "discount_account_id": accounts["Purchase Discounts"],
                "void_restlet_script": VOID_RESTLET[0],
                "void_restlet_deploy": VOID_RESTLET[1],
            },
            inspector_token=self.inspector_token,
        )

    # -- record and document services ----------------------------------------------------------

    async def _record_service(self, request: Request) -> Response:
        service = request.path_params["service"]
        segments = [s for s in request.path_params["rest"].split("/") if s]
        try:
            if service not in ("record", "document"):
                raise NetSuiteError(404, "NONEXISTENT_ID", f"Unknown service {service!r}.")
            company = self._company_for(request)
            if request.method != "GET" and "respond-async" in request.headers.get("prefer", ""):
                return await self._run_async(company, request, service, segments)
            return await self._dispatch(company, request, service, segments)
        except NetSuiteError as error:
            return _error_response(error)

    async def _dispatch(
        self, company: _Company, request: Request, service: str, segments: list[str]
    ) -> Response:
        if not segments:
            raise NetSuiteError(404, "NONEXISTENT_ID", "A record type is required.")
        record_type = segments[0]
        schema = SCHEMAS.get(record_type)
        if (
            schema is None
            or schema.service != service
            or (record_type == BANK_DETAILS and not self.bank_payments_suiteapp)
        ):
            raise NetSuiteError(
                404, "NONEXISTENT_ID", f"Record type '{record_type}' does not exist."
            )
        base = self._service_url(request, service)
        method = request.method
        if record_type == "journalEntry" and method != "GET":
            raise NetSuiteError(
                405, "INVALID_REQUEST", "The emulator writes journal entries only as voids."
            )
        if len(segments) == 1:
            if method == "GET":
                return self._collection(company, request, record_type, base)
            if method == "POST":
                body = await self._body(request)
                record_id = self._write(company, record_type, None, body, request)
                return Response(
                    status_code=204, headers={"Location": f"{base}/{record_type}/{record_id}"}
                )
            raise NetSuiteError(405, "INVALID_REQUEST", f"{method} is not allowed here.")
        key = segments[1]
        if len(segments) == 5 and segments[2] == "!attach" and method == "POST":
            return self._attach(company, record_type, key, segments[3], segments[4])
        if len(segments) != 2:
            raise NetSuiteError(404, "NONEXISTENT_ID", "The requested resource does not exist.")
        if method == "PUT":
            if not key.startswith("eid:"):
                raise NetSuiteError(
                    400,
                    "INVALID_REQUEST",
                    "PUT is only supported as an upsert on eid:{externalId}.",
                )
            external_id = key[len("eid:") :]
            existing = company.external_ids.get((record_type, external_id))
            body = await self._body(request)
            body["externalId"] = external_id
            record_id = self._write(company, record_type, existing, body, request)
            return Response(
                status_code=204, headers={"Location": f"{base}/{record_type}/{record_id}"}
            )
        record_id = self._resolve(company, record_type, key)
        if method == "GET":
            expand = request.query_params.get("expandSubResources", "").lower() == "true"
            return _json(self._render(company, record_type, record_id, base, expand=expand))
        if method == "PATCH":
            body = await self._body(request)
            self._write(company, record_type, record_id, body, request)
            return Response(status_code=204)
        if method == "DELETE":
            self._delete(company, record_type, record_id)
            return Response(status_code=204)
        raise NetSuiteError(405, "INVALID_REQUEST", f"{method} is not allowed here.")

    @staticmethod
    def _service_url(request: Request, service: str) -> str:
        return f"{str(request.base_url).rstrip('/')}/services/rest/{service}/v1"

    @staticmethod
    async def _body(request: Request) -> JSON:
        raw = await request.body()
        try:
            body = wire.loads(raw or b"{}")
        except ValueError as exc:
            raise NetSuiteError(
                400, "INVALID_CONTENT", f"Invalid content in the request body: {exc}."
            ) from exc
        if not isinstance(body, dict):
            raise NetSuiteError(400, "INVALID_CONTENT", "The request body must be a JSON object.")
        return body

    @staticmethod
    def _resolve(company: _Company, record_type: str, key: str) -> str:
        if key.startswith("eid:"):
            found = company.external_ids.get((record_type, key[len("eid:") :]))
            if found is not None:
                return found
        elif key in company.table(record_type):
            return key
        raise NetSuiteError(
            404,
            "NONEXISTENT_ID",
            "The record instance does not exist. Provide a valid record instance ID.",
        )

    # -- listing ---------------------------------------------------------------------------------

    def _collection(
        self, company: _Company, request: Request, record_type: str, base: str
    ) -> Response:
        params = request.query_params
        try:
            limit = int(params.get("limit", MAX_PAGE))
            offset = int(params.get("offset", 0))
        except ValueError as exc:
            raise NetSuiteError(
                400, "INVALID_PARAMETER", "limit and offset must be numbers."
            ) from exc
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise NetSuiteError(
                400, "INVALID_PARAMETER", f"limit must be 1..{MAX_PAGE} and offset at least 0."
            )
        rows = [
            (record_id, self._render(company, record_type, record_id, base, expand=False))
            for record_id in sorted(company.table(record_type), key=int)
        ]
        if q := params.get("q"):
            schema = SCHEMAS[record_type]
            known = schema.fields | schema.read_only
            try:
                predicate = parse_q(q, lambda name: name.lower() in {k.lower() for k in known})
            except QueryError as exc:
                raise NetSuiteError(
                    400, "INVALID_PARAMETER", f"Invalid search query: {exc}."
                ) from exc
            rows = [(record_id, row) for record_id, row in rows if predicate(row)]
        items = [
            {
                "links": [{"rel": "self", "href": f"{base}/{record_type}/{record_id}"}],
                "id": record_id,
            }
            for record_id, _ in rows
        ]
        self_url = f"{base}/{record_type}"
        return _json(
            self._page(items, self_url, dict(params), limit, offset),
            media_type=COLLECTION_CONTENT_TYPE,
        )

    @staticmethod
    def _page(items: list[JSON], url: str, params: dict[str, str], limit: int, offset: int) -> JSON:
        page = items[offset : offset + limit]
        total = len(items)

        def link(rel: str, at: int) -> JSON:
            return {
                "rel": rel,
                "href": f"{url}?{urlencode({**params, 'limit': limit, 'offset': at})}",
            }

        links = [link("self", offset)]
        if offset > 0:
            links.append(link("first", 0))
            links.append(link("previous", max(0, offset - limit)))
        has_more = offset + len(page) < total
        if has_more:
            links.append(link("next", offset + limit))
            links.append(link("last", ((total - 1) // limit) * limit))
        return {
            "links": links,
            "count": len(page),
            "hasMore": has_more,
            "items": page,
            "offset": offset,
            "totalResults": total,
        }

    # -- rendering -------------------------------------------------------------------------------

    def _render(
        self, company: _Company, record_type: str, record_id: str, base: str, *, expand: bool
    ) -> JSON:
        schema = SCHEMAS[record_type]
        stored = company.table(record_type)[record_id]
        self_url = f"{base}/{record_type}/{record_id}"
        out: JSON = {"links": [{"rel": "self", "href": self_url}]}
        for name, value in stored.items():
            if name == "content" or value is None:
                continue
            if name in schema.sublists:
                lines = [self._render_line(company, schema.sublists[name], line) for line in value]
                if record_type == "vendorPayment" and name == "apply":
                    lines = [self._with_discount_offer(company, stored, line) for line in lines]
                sublist: JSON = {"links": [{"rel": "self", "href": f"{self_url}/{name}"}]}
                if expand:
                    sublist.update(
                        items=lines, totalResults=len(lines), count=len(lines), hasMore=False,
                        offset=0,
                    )  # fmt: skip
                out[name] = sublist
            elif name in schema.refs or name == "acctType":
                out[name] = self._render_ref(company, schema.refs.get(name, ""), value)
            elif name == "voidJournal":
                out[name] = self._render_ref(company, "journalEntry", value)
            else:
                out[name] = value
        out.update(self._computed(company, record_type, record_id))
        return out

    def _render_line(self, company: _Company, sublist: Sublist, line: JSON) -> JSON:
        return {
            name: self._render_ref(company, sublist.refs[name], value)
            if name in sublist.refs
            else value
            for name, value in line.items()
            if value is not None
        }

    def _with_discount_offer(self, company: _Company, payment: JSON, line: JSON) -> JSON:
        """An apply line with what the bill's terms offer (`discAmt` until `discDate`), which
        NetSuite fills in; `disc` (what was taken) stays as written."""
        bill = company.table("vendorBill").get(str(line.get("doc", {}).get("id")))
        offer = self._discount_offer(company, bill) if bill else None
        if offer is None:
            return line
        amount, until = offer
        return {**line, "discAmt": amount, "discDate": until.isoformat()}

    def _discount_offer(self, company: _Company, bill: JSON) -> tuple[Decimal, date] | None:
        term = company.table("term").get(str((bill.get("terms") or {}).get("id")))
        percent = wire.decimal((term or {}).get("discountPercent"), Decimal("0")) or Decimal("0")
        if not term or not percent or not bill.get("tranDate"):
            return None
        amount = _cents(_bill_total(bill) * percent / 100)
        until = date.fromisoformat(str(bill["tranDate"])) + timedelta(
            days=int(term.get("daysUntilExpiry") or 0)
        )
        return amount, until

    @staticmethod
    def _render_ref(company: _Company, target: str, value: JSON) -> JSON:
        ref_id = str(value.get("id"))
        if not target:  # acctType: an enumeration, not a record
            return {"id": ref_id, "refName": _ACCOUNT_TYPE_LABELS.get(ref_id, ref_id)}
        record = company.table(target).get(ref_id, {})
        name = (
            record.get("companyName")
            or record.get("acctName")
            or record.get("name")
            or (f"Bill #{record.get('tranId')}" if record.get("tranId") else None)
            or record.get("entityId")
            or record.get("itemId")
            or (f"Journal #{ref_id}" if target == "journalEntry" else None)
        )
        return {"id": ref_id, "refName": name} if name else {"id": ref_id}

    def _computed(self, company: _Company, record_type: str, record_id: str) -> JSON:
        stored = company.table(record_type)[record_id]
        if record_type == "vendorBill":
            total = _bill_total(stored)
            remaining = total - self._applied_to_bill(company, record_id)
            paid = remaining <= 0
            computed: JSON = {
                "total": total,
                "userTotal": total,
                "amountRemaining": max(remaining, Decimal("0")),
                "amountPaid": total - max(remaining, Decimal("0")),
                "status": {"id": "B", "refName": "Paid In Full"}
                if paid
                else {"id": "A", "refName": "Open"},
            }
            offer = self._discount_offer(company, stored)
            if offer is not None:
                computed["discountAmount"], until = offer
                computed["discountDate"] = until.isoformat()
            return computed
        if record_type == "vendorPayment":
            # The payment's total is the cash paid; discounts taken reduce the bills, not it.
            total = sum((_amount(line) for line in _applied_lines(stored)), Decimal("0"))
            computed = {"total": total}
            if _is_voided(stored):
                computed["status"] = {"id": "V", "refName": "Voided"}
            return computed
        if record_type == "vendorCredit":
            total = sum((_amount(line) for line in stored.get("expense") or []), Decimal("0"))
            applied = sum((_amount(line) for line in _applied_lines(stored)), Decimal("0"))
            return {
                "total": total,
                "userTotal": total,
                "applied": applied,
                "unapplied": total - applied,
                "status": {"id": "B", "refName": "Fully Applied"}
                if applied >= total
                else {"id": "A", "refName": "Open"},
            }
        if record_type == "file":
            content = company.file_content.get(record_id, b"")
            return {"fileSize": len(content)}
        if record_type in _ITEM_TYPES:
            return {"itemType": _ITEM_TYPES[record_type][0]}
        return {}

    @staticmethod
    def _applied_to_bill(
        company: _Company, bill_id: str, *, excluding: tuple[str, str] | None = None
    ) -> Decimal:
        """What payments (cash + discount taken) and credits in effect settle of the bill."""
        applied = Decimal("0")
        for record_type in ("vendorPayment", "vendorCredit"):
            for other_id, record in company.table(record_type).items():
                if (record_type, other_id) == excluding or _is_voided(record):
                    continue
                for line in _applied_lines(record):
                    if str(line["doc"]["id"]) == bill_id:
                        applied += _amount(line) + _discount(line)
        return applied

    # -- the general ledger ---------------------------------------------------------------------

    def _home_currency(self, company: _Company) -> str:
        for subsidiary in company.table("subsidiary").values():
            return str(subsidiary["currency"]["id"])
        raise NetSuiteError(500, "UNEXPECTED_ERROR", "The account has no subsidiary.")

    def _posting_lines(self, company: _Company, record_type: str, record_id: str) -> list[JSON]:
        """A transaction's GL impact in the base currency: (account, debit, credit) lines.

        Modelled for what remit reads back: vendor payments (bank, A/P at each bill's own
        rate, discounts taken, and the realized exchange gain or loss between the bills' rates
        and the payment's) and journals. A payment voided directly has no GL impact left; one
        voided by a reversing journal keeps its lines and the journal posts the opposite.
        """
        record = company.table(record_type)[record_id]
        if record_type == "journalEntry":
            return [
                {"account": line["account"]["id"], "debit": wire.decimal(line.get("debit")),
                 "credit": wire.decimal(line.get("credit"))}
                for line in record.get("line") or []
            ]  # fmt: skip
        if record_type != "vendorPayment" or (_is_voided(record) and not record.get("voidJournal")):
            return []
        rate = wire.decimal(record.get("exchangeRate"), Decimal("1")) or Decimal("1")
        ap_account = (record.get("apAcct") or {}).get("id") or self._first_account(
            company, "AcctPay"
        )
        cash = discount = liability = Decimal("0")
        for line in _applied_lines(record):
            bill = company.table("vendorBill")[str(line["doc"]["id"])]
            bill_rate = wire.decimal(bill.get("exchangeRate"), Decimal("1")) or Decimal("1")
            cash += _amount(line)
            discount += _discount(line)
            liability += _cents((_amount(line) + _discount(line)) * bill_rate)
        cash_home, discount_home = _cents(cash * rate), _cents(discount * rate)
        lines: list[JSON] = [
            {"account": ap_account, "debit": liability, "credit": None},
            {"account": record["account"]["id"], "debit": None, "credit": cash_home},
        ]
        if discount_home:
            lines.append(
                {"account": company.preferences["PURCHASE_DISCOUNT_ACCOUNT"], "debit": None,
                 "credit": discount_home}
            )  # fmt: skip
        difference = cash_home + discount_home - liability
        if difference:
            gain_loss = company.system_accounts["REALIZED_GAIN_LOSS"]
            lines.append(
                {"account": gain_loss, "debit": difference, "credit": None}
                if difference > 0
                else {"account": gain_loss, "debit": None, "credit": -difference}
            )
        return lines

    # -- writes ----------------------------------------------------------------------------------

    def _write(
        self,
        company: _Company,
        record_type: str,
        record_id: str | None,
        body: JSON,
        request: Request,
    ) -> str:
        schema = SCHEMAS[record_type]
        unknown = sorted(
            name
            for name in body
            if name not in schema.fields and name not in schema.read_only
            and name not in schema.sublists
        )  # fmt: skip
        if unknown:
            raise NetSuiteError(
                400,
                "INVALID_CONTENT",
                f"Invalid content in the request body. Unknown field(s) for {record_type}: "
                f"{', '.join(unknown)}.",
            )
        replace = {s for s in request.query_params.get("replace", "").split(",") if s}
        current = dict(company.table(record_type).get(record_id, {})) if record_id else {}
        if current and _is_voided(current):
            raise _user_error(
                "This transaction has been voided: you can no longer change it.",
            )
        merged = dict(current)
        for name, value in body.items():
            if name in schema.read_only:
                continue  # NetSuite ignores read-only fields it is sent
            if name in schema.sublists:
                merged[name] = self._merge_sublist(
                    schema.sublists[name], record_type, name, current.get(name) or [], value,
                    replace=name in replace,
                )  # fmt: skip
            else:
                merged[name] = value
        if record_type == "file" and "content" in body:
            try:
                content = base64.b64decode(str(body["content"]), validate=True)
            except ValueError as exc:
                raise NetSuiteError(
                    400, "INVALID_CONTENT", "The file content must be base64."
                ) from exc
        else:
            content = None
        self._validate(company, record_type, record_id, merged)
        touched_bills = {
            str(line["doc"]["id"])
            for record in (current, merged)
            for line in _applied_lines(record)
        }
        if record_id is None:
            record_id = company.new_id(record_type)
        moment = company.tick()
        merged["id"] = record_id
        merged.setdefault("createdDate", _iso(moment))
        merged["lastModifiedDate"] = _iso(moment)
        merged.pop("content", None)
        company.table(record_type)[record_id] = merged
        if content is not None:
            company.file_content[record_id] = content
        old_external = current.get("externalId")
        if old_external and old_external != merged.get("externalId"):
            company.external_ids.pop((record_type, old_external), None)
        if merged.get("externalId"):
            company.external_ids[(record_type, str(merged["externalId"]))] = record_id
        for bill_id in touched_bills:
            # Paying or crediting a bill changes its amount remaining and status.
            bill = company.table("vendorBill").get(bill_id)
            if bill is not None:
                bill["lastModifiedDate"] = _iso(company.tick())
        return record_id

    @staticmethod
    def _merge_sublist(
        sublist: Sublist, record_type: str, name: str, current: list[JSON], value: Any,
        *, replace: bool,
    ) -> list[JSON]:  # fmt: skip
        items = value.get("items") if isinstance(value, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise NetSuiteError(
                400, "INVALID_CONTENT", f"Sublist '{name}' must be an object with an items array."
            )
        for item in items:
            unknown = sorted(set(item) - sublist.fields)
            if unknown:
                raise NetSuiteError(
                    400,
                    "INVALID_CONTENT",
                    f"Invalid content in the request body. Unknown field(s) on {record_type}."
                    f"{name}: {', '.join(unknown)}.",
                )
        if replace:
            return [dict(item) for item in items]
        if sublist.key is None:
            # Without `replace`, lines sent for a sublist are added to the ones it has.
            return [*current, *(dict(item) for item in items)]
        merged = {str(line[sublist.key]["id"]): dict(line) for line in current}
        for item in items:
            key_ref = item.get(sublist.key)
            if not isinstance(key_ref, dict) or "id" not in key_ref:
                raise _missing(sublist.key)
            merged[str(key_ref["id"])] = {**merged.get(str(key_ref["id"]), {}), **item}
        return list(merged.values())

    def _validate(
        self, company: _Company, record_type: str, record_id: str | None, record: JSON
    ) -> None:
        schema = SCHEMAS[record_type]
        for name, target in schema.refs.items():
            self._check_ref(company, name, target, record.get(name))
        for name, sublist in schema.sublists.items():
            for line in record.get(name) or []:
                for ref_name, target in sublist.refs.items():
                    self._check_ref(company, ref_name, target, line.get(ref_name))
        if schema.transaction:
            self._validate_transaction(company, record_type, record_id, record)
        elif record_type == "vendor":
            if not record.get("companyName") and not record.get("isPerson"):
                raise _missing("Company Name")
            record.setdefault("entityId", record.get("companyName"))
            for other_id, other in company.table("vendor").items():
                if (
                    other_id != record_id
                    and str(other.get("entityId", "")).lower() == str(record["entityId"]).lower()
                ):
                    raise _user_error(
                        "This entity already exists. The vendor name you have chosen is "
                        "already used; go back, change the name and resubmit."
                    )
        elif record_type == "customer":
            if not record.get("companyName") and not record.get("isPerson"):
                raise _missing("Company Name")
            if not record.get("subsidiary"):
                raise _missing("Subsidiary")
            record.setdefault("entityId", record.get("companyName") or " ".join(
                p for p in (record.get("firstName"), record.get("lastName")) if p
            ))  # fmt: skip
            record.setdefault("isInactive", False)
            for other_id, other in company.table("customer").items():
                if (
                    other_id != record_id
                    and str(other.get("entityId", "")).lower() == str(record["entityId"]).lower()
                ):
                    raise _user_error(
                        "This entity already exists. The customer name you have chosen is "
                        "already used; go back, change the name and resubmit."
                    )
        elif record_type in _ITEM_TYPES:
            name_field = "name" if record_type == "salesTaxItem" else "itemId"
            if not record.get(name_field):
                raise _missing("Tax Code" if record_type == "salesTaxItem" else "Item Name/Number")
            if record_type == "salesTaxItem":
                if not record.get("taxType"):
                    raise _missing("Tax Type")
                rate = wire.decimal(record.get("rate"), Decimal("0"))
                if rate is None or not 0 <= rate <= 100:
                    raise _user_error(
                        f"Invalid Field Value {record.get('rate')} for the following field: rate",
                        path="rate",
                    )
            record.setdefault("isInactive", False)
            # Item names are unique across every item type (they share the item list).
            wanted = str(record[name_field]).lower()
            for other_type in _ITEM_TYPES:
                other_field = "name" if other_type == "salesTaxItem" else "itemId"
                for other_id, other in company.table(other_type).items():
                    if other_id != record_id and str(other.get(other_field, "")).lower() == wanted:
                        raise _user_error(
                            "The item name you have chosen is already used; go back, change "
                            "the name and resubmit.",
                            path=name_field,
                        )
        elif record_type == "taxType":
            if not record.get("name"):
                raise _missing("Name")
            record.setdefault("isInactive", False)
        elif record_type == "file":
            if not record.get("folder"):
                raise _missing("Folder")
            if not record.get("name"):
                raise _missing("Name")
        elif record_type in ("folder", "department", "classification", "location"):
            if not record.get("name"):
                raise _missing("Name")
        elif record_type == "term":
            if not record.get("name"):
                raise _missing("Terms")
            for other_id, other in company.table("term").items():
                if (
                    other_id != record_id
                    and str(other.get("name", "")).lower() == str(record["name"]).lower()
                ):
                    raise _user_error(
                        "A record with this name already exists. You must enter a unique name.",
                        path="name",
                    )
            for name, low, high in (
                ("discountPercent", 0, 100), ("daysUntilExpiry", 0, 999),
                ("daysUntilNetDue", 0, 999),
            ):  # fmt: skip
                value = wire.decimal(record.get(name), Decimal("0"))
                if value is None or not low <= value <= high:
                    raise _user_error(
                        f"Invalid Field Value {record.get(name)} for the following field: {name}",
                        path=name,
                    )
            record.setdefault("dateDriven", False)
            record.setdefault("isInactive", False)
        elif record_type == BANK_DETAILS:
            if not record.get("name"):
                raise _missing("Name")
            if not record.get("custrecord_2663_parent_vendor"):
                raise _missing("Parent Vendor")

    @staticmethod
    def _check_ref(company: _Company, name: str, target: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict) or "id" not in value:
            raise NetSuiteError(
                400, "INVALID_CONTENT", f'Field \'{name}\' must be a reference like {{"id": "1"}}.'
            )
        value["id"] = str(value["id"])
        if value["id"] not in company.table(target):
            raise _user_error(f"Invalid Field Value {value['id']} for the following field: {name}")

    def _validate_transaction(
        self, company: _Company, record_type: str, record_id: str | None, record: JSON
    ) -> None:
        if not record.get("entity"):
            raise _missing("Vendor")
        if not record.get("subsidiary"):
            raise _missing("Subsidiary")
        vendor_id = record["entity"]["id"]
        vendor = company.table("vendor")[vendor_id]
        if not record.get("currency"):
            record["currency"] = dict(vendor.get("currency") or {"id": "1"})
        record.setdefault("tranDate", date.today().isoformat())
        for name in ("tranDate", "dueDate"):
            if record.get(name):
                try:
                    date.fromisoformat(str(record[name]))
                except ValueError as exc:
                    raise _user_error(
                        f"Invalid Field Value {record[name]} for the following field: {name}"
                    ) from exc  # noqa: E501
        currency = record["currency"]["id"]
        if record.get("exchangeRate") is None:
            # Multiple Currencies: the rate defaults from the exchange rate table on tranDate.
            record["exchangeRate"] = self._rate_on(
                company, currency, date.fromisoformat(str(record["tranDate"]))
            )
        elif (wire.decimal(record["exchangeRate"]) or Decimal("0")) <= 0:
            raise _user_error(
                "Invalid Field Value for the following field: exchangeRate", path="exchangeRate"
            )
        if record_type == "vendorBill" and record.get("terms") and not record.get("dueDate"):
            term = company.table("term")[record["terms"]["id"]]
            due = date.fromisoformat(str(record["tranDate"])) + timedelta(
                days=int(term.get("daysUntilNetDue") or 0)
            )
            record["dueDate"] = due.isoformat()
        if record_type in ("vendorBill", "vendorCredit"):
            record.setdefault("account", {"id": self._first_account(company, "AcctPay")})
            lines = record.get("expense") or []
            if not lines:
                raise _user_error("You must enter at least one line item for this transaction.")
            for line in lines:
                if not line.get("account"):
                    raise _missing("Account")
            # Lines may be negative (a discount, a credit on the bill); the bill may not be.
            if record_type == "vendorBill" and sum((_amount(ln) for ln in lines), Decimal("0")) < 0:
                raise _user_error("The total of a bill cannot be negative.")
            coded = [line for line in lines if line.get("taxCode")]
            if coded and record_type == "vendorBill" and record.get("taxTotal") is None:
                # Tax codes on the lines and no tax total given: NetSuite computes the tax,
                # each line's amount at its code's rate (a total given overrides it, as
                # SuiteTax's tax details override does).
                codes = company.table("salesTaxItem")
                record["taxTotal"] = sum(
                    (_cents(_amount(line) * _rate(codes[line["taxCode"]["id"]]) / 100)
                     for line in coded),
                    Decimal("0"),
                )  # fmt: skip
        if record_type == "vendorPayment":
            if not record.get("account"):
                raise _missing("Account")
            account = company.table("account")[record["account"]["id"]]
            if account.get("acctType", {}).get("id") not in ("Bank", "CredCard"):
                raise _user_error("Invalid Field Value for the following field: account")
            account_currency = (account.get("currency") or {}).get("id")
            if account_currency and account_currency != currency:
                raise _user_error(
                    "The currency of the account does not match the currency of the transaction."
                )
            if not _applied_lines(record):
                raise _user_error("You must enter at least one line item for this transaction.")
        applied_total = Decimal("0")
        for index, line in enumerate(record.get("apply") or []):
            if not (line.get("apply", True) and isinstance(line.get("doc"), dict)):
                continue
            bill_id = str(line["doc"]["id"])
            bill = company.table("vendorBill")[bill_id]
            amount = _amount(line)
            discount = _discount(line)
            path = f"apply.items[{index}]"
            if amount <= 0:
                raise _user_error(
                    "The amount applied must be greater than zero.", path=f"{path}.amount"
                )
            if discount < 0:
                raise _user_error("The discount taken cannot be negative.", path=f"{path}.disc")
            if bill["entity"]["id"] != vendor_id:
                raise _user_error(
                    f"Bill #{bill.get('tranId') or bill_id} belongs to another vendor."
                )
            if bill["currency"]["id"] != currency:
                raise _user_error(
                    f"Bill #{bill.get('tranId') or bill_id} is in another currency than this "
                    "transaction."
                )
            remaining = _bill_total(bill) - self._applied_to_bill(
                company, bill_id, excluding=(record_type, record_id) if record_id else None
            )
            if amount + discount > remaining:
                taken = f" plus the discount taken ({discount})" if discount else ""
                raise _user_error(
                    f"The amount applied ({amount}){taken} exceeds the amount remaining "
                    f"({remaining}) on Bill #{bill.get('tranId') or bill_id}.",
                    path=f"{path}.disc" if discount else f"{path}.amount",
                )
            applied_total += amount
        if record_type == "vendorCredit":
            credit_total = sum((_amount(line) for line in record.get("expense") or []), Decimal(0))
            if applied_total > credit_total:
                raise _user_error(
                    f"The total applied ({applied_total}) exceeds the credit total "
                    f"({credit_total})."
                )

    def _rate_on(self, company: _Company, currency_id: str, day: date) -> Decimal:
        """The exchange rate table's rate for the currency on the day (1 for the base)."""
        base = self._home_currency(company)
        if currency_id == base:
            return Decimal("1")
        effective = [
            rate
            for rate in company.table("currencyrate").values()
            if rate["basecurrency"] == base
            and rate["transactioncurrency"] == currency_id
            and date.fromisoformat(rate["effectivedate"]) <= day
        ]
        if not effective:
            currency = company.table("currency").get(currency_id, {})
            raise _user_error(
                f"No exchange rate is set for {currency.get('symbol', currency_id)} on "
                f"{day.isoformat()}: enter one, or give exchangeRate.",
                path="exchangeRate",
            )
        latest = max(effective, key=lambda rate: rate["effectivedate"])
        return Decimal(latest["exchangerate"])

    @staticmethod
    def _first_account(company: _Company, kind: str) -> str:
        for account_id, account in company.table("account").items():
            if account.get("acctType", {}).get("id") == kind:
                return account_id
        raise _missing("Account")

    @staticmethod
    def _referenced(company: _Company, target: str, record_id: str) -> bool:
        """Whether any record's body field points at the record (its dependent records)."""
        for record_type, schema in SCHEMAS.items():
            names = [name for name, points_at in schema.refs.items() if points_at == target]
            for record in company.table(record_type).values() if names else ():
                if any(_plain_ref(record.get(name)) == record_id for name in names):
                    return True
        return False

    def _delete(self, company: _Company, record_type: str, record_id: str) -> None:
        if record_type == "vendorBill" and self._applied_to_bill(company, record_id):
            raise _user_error("This record cannot be deleted because it has dependent records.")
        if record_type in ("currency", "subsidiary", "taxType") and self._referenced(
            company, record_type, record_id
        ):
            raise _user_error("This record cannot be deleted because it has dependent records.")
        record = company.table(record_type).pop(record_id)
        if record_type in _TRANSACTION_TYPES:
            company.attachments.pop(record_id, None)  # its file links go with it
            for line in _applied_lines(record):
                # A deleted credit no longer settles its bills: their remaining changes.
                bill = company.table("vendorBill").get(str(line["doc"]["id"]))
                if bill is not None:
                    bill["lastModifiedDate"] = _iso(company.tick())
        if record_type == "file":
            company.file_content.pop(record_id, None)
            for files in company.attachments.values():
                if record_id in files:
                    files.remove(record_id)
        company.deleted.append(
            {
                "recordid": record_id,
                "type": record_type.lower(),
                "name": record.get("tranId")
                or record.get("entityId")
                or record.get("itemId")
                or record.get("name"),
                "deleteddate": _iso(company.tick()),
            }
        )
        if record.get("externalId"):
            company.external_ids.pop((record_type, str(record["externalId"])), None)

    def _attach(
        self, company: _Company, record_type: str, key: str, kind: str, attached_id: str
    ) -> Response:
        record_id = self._resolve(company, record_type, key)
        if kind != "file":
            raise NetSuiteError(400, "INVALID_REQUEST", "Only files and contacts can be attached.")
        self._resolve(company, "file", attached_id)
        files = company.attachments.setdefault(record_id, [])
        if attached_id not in files:
            files.append(attached_id)
        return Response(status_code=204)

    # -- async jobs --------------------------------------------------------------------------------

    async def _run_async(
        self, company: _Company, request: Request, service: str, segments: list[str]
    ) -> Response:
        base = f"{str(request.base_url).rstrip('/')}/services/rest/async/v1/job"
        key = request.headers.get("x-netsuite-idempotency-key")
        if key and key in company.idempotency_keys:
            previous = company.idempotency_keys[key]
            error = NetSuiteError(
                400,
                "IDEMPOTENCY_ERROR",
                "A request with the same idempotency key is already submitted. "
                "Check the status of the previously submitted request.",
                title="Conflict",
                headers={"Location": f"{base}/{previous}"},
            )
            return _error_response(error)
        try:
            result = await self._dispatch(company, request, service, segments)
        except NetSuiteError as error:
            result = _error_response(error)
        job_id = str(next(self._job_ids))
        company.jobs[job_id] = _Job(
            job_id,
            result.status_code,
            {k: v for k, v in result.headers.items() if k.lower() in ("location", "content-type")},
            bytes(result.body),
            _now(),
        )
        if key:
            company.idempotency_keys[key] = job_id
        return Response(
            status_code=202,
            headers={"Location": f"{base}/{job_id}", "Preference-Applied": "respond-async"},
        )

    async def _async_job(self, request: Request) -> Response:
        try:
            company = self._company_for(request)
            parts = [p for p in request.path_params["rest"].split("/") if p]
            job = company.jobs.get(parts[0]) if parts else None
            if job is None:
                raise NetSuiteError(404, "NONEXISTENT_ID", "The job does not exist.")
            url = f"{str(request.base_url).rstrip('/')}/services/rest/async/v1/job/{job.id}"
            if len(parts) == 1:
                return _json(
                    {
                        "links": [{"rel": "self", "href": url}],
                        "id": job.id,
                        "completed": True,
                        "progress": "succeeded" if job.status < 400 else "failed",
                        "createdDate": _iso(job.created),
                        "lastModifiedDate": _iso(job.created),
                        "task": {"links": [{"rel": "self", "href": f"{url}/task"}]},
                    }
                )
            if parts[1:] == ["task"]:
                items = [{"links": [{"rel": "self", "href": f"{url}/task/{job.id}"}], "id": job.id}]
                return _json(self._page(items, f"{url}/task", {}, MAX_PAGE, 0))
            if parts[1:] == ["task", job.id, "result"]:
                return Response(job.body, status_code=job.status, headers=job.headers)
            raise NetSuiteError(404, "NONEXISTENT_ID", "The requested resource does not exist.")
        except NetSuiteError as error:
            return _error_response(error)

    # -- RESTlets -------------------------------------------------------------------------------

    async def _restlet(self, request: Request) -> Response:
        """A deployed RESTlet, `restlet.nl?script=<script id>&deploy=<deployment id>`.

        RESTlets answer their own way: the script's JSON with 200, and an uncaught SuiteScript
        error as HTTP 400 `{"error": {"code", "message"}}` (login errors alike, with 401).
        A token needs the `restlets` scope.
        """
        try:
            company = self._company_for(request, scope="restlets")
            key = (request.query_params.get("script", ""), request.query_params.get("deploy", ""))
            handler = company.restlets.get(key)
            if handler is None:
                raise NetSuiteError(
                    400,
                    "SSS_INVALID_SCRIPTLET_ID",
                    "That Suitelet is invalid, disabled, or no longer exists.",
                )
            if request.method != "POST":
                raise NetSuiteError(
                    405, "SSS_INVALID_HTTP_METHOD", f"The script has no {request.method} entry."
                )
            body = await self._body(request)
            return _json(self._void(company, body), media_type="application/json")
        except NetSuiteError as error:
            return Response(
                wire.dumps({"error": {"code": error.code, "message": error.detail}}),
                status_code=error.status,
                media_type="application/json",
                headers=error.headers,
            )

    def _void(self, company: _Company, body: JSON) -> JSON:
        """remit's void RESTlet: `N/transaction.void` on a vendor payment, read first.

        With REVERSALVOIDING on, the payment keeps its lines, takes the status Voided and a
        voiding journal posts the opposite of its GL impact (transaction.void answers the
        journal's id); off, a direct void zeroes the payment's amounts (and answers its id).
        Either way its bills are open again by what it applied. A payment already voided is
        answered as such, unchanged.
        """
        record_type, record_id = str(body.get("type") or ""), str(body.get("id") or "")
        if not record_type or not record_id:
            raise NetSuiteError(
                400,
                "SSS_MISSING_REQD_ARGUMENT",
                "transaction.void: missing a required argument: id",
            )
        if record_type.lower() != "vendorpayment":
            raise NetSuiteError(
                400, "INVALID_RCRD_TYPE", f"The record type {record_type} is not voidable here."
            )
        record = company.table("vendorPayment").get(record_id)
        if record is None:
            raise NetSuiteError(400, "RCRD_DSNT_EXIST", "That record does not exist.")
        journal_id = (record.get("voidJournal") or {}).get("id")
        if _is_voided(record):
            return {"id": record_id, "voided": True, "alreadyVoided": True,
                    "voidingJournal": journal_id}  # fmt: skip
        touched = {str(line["doc"]["id"]) for line in _applied_lines(record)}
        if company.preferences.get("REVERSALVOIDING"):
            posted = self._posting_lines(company, "vendorPayment", record_id)
            journal_id = company.new_id("journalEntry")
            moment = company.tick()
            company.table("journalEntry")[journal_id] = {
                "id": journal_id,
                "tranId": f"VOID-{record.get('tranId') or record_id}",
                "tranDate": date.today().isoformat(),
                "memo": f"Void of Bill Payment #{record.get('tranId') or record_id}",
                "subsidiary": dict(record["subsidiary"]),
                "currency": {"id": self._home_currency(company)},
                "exchangeRate": Decimal("1"),
                "voidOf": {"id": record_id},
                "line": [
                    {
                        "line": number,
                        "account": {"id": line["account"]},
                        "debit": line.get("credit"),
                        "credit": line.get("debit"),
                        "entity": dict(record["entity"]),
                    }
                    for number, line in enumerate(posted)
                ],  # fmt: skip
                "createdDate": _iso(moment),
                "lastModifiedDate": _iso(moment),
            }
            record["voidJournal"] = {"id": journal_id}
        else:
            for line in record.get("apply") or []:
                line["amount"] = Decimal("0")
                line.pop("disc", None)
        record["status"] = {"id": "V", "refName": "Voided"}
        record["lastModifiedDate"] = _iso(company.tick())
        for bill_id in touched:
            bill = company.table("vendorBill").get(bill_id)
            if bill is not None:
                bill["lastModifiedDate"] = _iso(company.tick())
        return {"id": journal_id or record_id, "voided": True, "alreadyVoided": False,
                "voidingJournal": journal_id}  # fmt: skip

    # -- SuiteQL --------------------------------------------------------------------------------

    async def _suiteql(self, request: Request) -> Response:
        try:
            company = self._company_for(request)
            if "transient" not in request.headers.get("prefer", "").lower():
                raise NetSuiteError(
                    400,
                    "INVALID_HEADER",
                    "Invalid header. The SuiteQL query service requires the header "
                    "'Prefer: transient'.",
                )
            body = await self._body(request)
            if not isinstance(body.get("q"), str):
                raise NetSuiteError(400, "INVALID_CONTENT", "The request body needs a 'q' query.")
            try:
                statement = parse_suiteql(body["q"], self._suiteql_columns)
            except QueryError as exc:
                raise NetSuiteError(400, "INVALID_PARAMETER", str(exc)) from exc
            try:
                limit = int(request.query_params.get("limit", MAX_PAGE))
                offset = int(request.query_params.get("offset", 0))
            except ValueError as exc:
                raise NetSuiteError(
                    400, "INVALID_PARAMETER", "limit/offset must be numbers"
                ) from exc
            if not 1 <= limit <= MAX_PAGE or offset < 0:
                raise NetSuiteError(400, "INVALID_PARAMETER", f"limit must be 1..{MAX_PAGE}.")
            rows = [
                row for row in self._suiteql_rows(company, statement.table) if statement.where(row)
            ]
            if statement.order_by:
                column = statement.order_by
                rows.sort(key=lambda row: _sort_key(row.get(column)), reverse=statement.descending)
            items: list[JSON] = []
            seen: set[tuple[Any, ...]] = set()
            for row in rows:
                item = statement.project(row)
                if statement.distinct:
                    signature = tuple(item.values())
                    if signature in seen:
                        continue
                    seen.add(signature)
                items.append({"links": [], **{k: v for k, v in item.items() if v is not None}})
            url = f"{str(request.base_url).rstrip('/')}/services/rest/query/v1/suiteql"
            return _json(
                self._page(items, url, {}, limit, offset), media_type=COLLECTION_CONTENT_TYPE
            )
        except NetSuiteError as error:
            return _error_response(error)

    def _suiteql_columns(self, table: str) -> set[str] | None:
        if table == BANK_DETAILS and not self.bank_payments_suiteapp:
            return None
        return _SUITEQL_TABLES.get(table)

    def _suiteql_rows(self, company: _Company, table: str) -> Iterable[JSON]:
        if table == "transaction":
            for record_type, code in _TRANSACTION_TYPES.items():
                for record_id, record in company.table(record_type).items():
                    computed = self._computed(company, record_type, record_id)
                    yield {
                        "id": record_id,
                        "tranid": record.get("tranId"),
                        "type": code,
                        "entity": (record.get("entity") or {}).get("id"),
                        "trandate": record.get("tranDate"),
                        "duedate": record.get("dueDate"),
                        "currency": record["currency"]["id"],
                        "externalid": record.get("externalId"),
                        "memo": record.get("memo"),
                        "status": (computed.get("status") or {}).get("id"),
                        "foreigntotal": computed.get("total"),
                        "foreignamountunpaid": computed.get("amountRemaining"),
                        "exchangerate": record.get("exchangeRate"),
                        "voided": "T" if _is_voided(record) else "F",
                        "lastmodifieddate": record.get("lastModifiedDate"),
                        "createddate": record.get("createdDate"),
                        "terms": (record.get("terms") or {}).get("id"),
                        "taxtotal": record.get("taxTotal"),
                    }
        elif table == "transactionline":
            for record_type in ("vendorBill", "vendorCredit"):
                for record_id, record in company.table(record_type).items():
                    yield from _transaction_lines(record_id, record)
        elif table == "vendor":
            for record_id, record in company.table("vendor").items():
                yield {
                    "id": record_id,
                    "entityid": record.get("entityId"),
                    "companyname": record.get("companyName"),
                    "legalname": record.get("legalName"),
                    "taxidnum": record.get("taxIdNum"),
                    "email": record.get("email"),
                    "externalid": record.get("externalId"),
                    "isinactive": "T" if record.get("isInactive") else "F",
                    "currency": (record.get("currency") or {}).get("id"),
                    "lastmodifieddate": record.get("lastModifiedDate"),
                }
        elif table == "nexttransactionlinelink":
            # Links in effect: a voided payment no longer links to the bills it paid.
            for record_type, link_type in (
                ("vendorPayment", "Payment"),
                ("vendorCredit", "Credit"),
            ):
                for record_id, record in company.table(record_type).items():
                    if _is_voided(record):
                        continue
                    for line in _applied_lines(record):
                        yield {
                            "previousdoc": str(line["doc"]["id"]),
                            "previoustype": "VendBill",
                            "nextdoc": record_id,
                            "nexttype": _TRANSACTION_TYPES[record_type],
                            "linktype": link_type,
                            "foreignamount": _amount(line) + _discount(line),
                        }
        elif table == "currencyrate":
            yield from company.table("currencyrate").values()
        elif table == "term":
            for record_id, record in company.table("term").items():
                yield {
                    "id": record_id,
                    "name": record.get("name"),
                    "daysuntilnetdue": record.get("daysUntilNetDue"),
                    "discountpercent": record.get("discountPercent"),
                    "daysuntilexpiry": record.get("daysUntilExpiry"),
                    "datedriven": "T" if record.get("dateDriven") else "F",
                    "isinactive": "T" if record.get("isInactive") else "F",
                    "externalid": record.get("externalId"),
                }
        elif table == "transactionaccountingline":
            for record_type in ("vendorPayment", "journalEntry"):
                for record_id in company.table(record_type):
                    for number, line in enumerate(
                        self._posting_lines(company, record_type, record_id)
                    ):
                        debit, credit = line.get("debit"), line.get("credit")
                        yield {
                            "transaction": record_id,
                            "transactionline": number,
                            "account": line["account"],
                            "accountingbook": "1",
                            "debit": debit,
                            "credit": credit,
                            "amount": (debit or Decimal("0")) - (credit or Decimal("0")),
                            "posting": "T",
                        }
        elif table == BANK_DETAILS:
            for record_id, record in company.table(BANK_DETAILS).items():
                row: JSON = {
                    "id": record_id,
                    "name": record.get("name"),
                    "isinactive": "T" if record.get("isInactive") else "F",
                    "externalid": record.get("externalId"),
                    "lastmodified": record.get("lastModifiedDate"),
                }
                for name in _BANK_DETAIL_FIELDS:
                    value = record.get(name)
                    # SuiteQL answers a list or record field with its internal id.
                    row[name] = value.get("id") if isinstance(value, dict) else value
                yield row
        elif table == "deletedrecord":
            yield from (dict(row) for row in company.deleted)
        elif table in _FLAT_TABLES:
            record_type, columns = _FLAT_TABLES[table]
            for record_id, record in company.table(record_type).items():
                row = _flat_row(record_id, record, columns)
                if table == "file":
                    row["filesize"] = len(company.file_content.get(record_id, b""))
                yield row
        elif table == "item":
            for record_type, (item_type, subtype) in _ITEM_TYPES.items():
                if item_type == "TaxItem":
                    continue  # tax codes are read from salestaxitem
                for record_id, record in company.table(record_type).items():
                    row = _flat_row(record_id, record, _ITEM_COLUMNS)
                    # An inventory item's expense account is its COGS account.
                    if record_type == "inventoryItem":
                        row["expenseaccount"] = _plain_ref(record.get("cogsAccount"))
                    yield {**row, "itemtype": item_type, "subtype": subtype}
        elif table == "transactionfile":
            for transaction_id, files in company.attachments.items():
                for file_id in files:
                    yield {"transaction": transaction_id, "file": file_id}


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _transaction_lines(record_id: str, record: JSON) -> Iterable[JSON]:
    """A bill's or credit's `transactionline` rows: the main line, then its expense lines."""
    entity = _plain_ref(record.get("entity"))
    lines = record.get("expense") or []
    total = sum((_amount(line) for line in lines), Decimal("0"))
    total += wire.decimal(record.get("taxTotal"), Decimal("0")) or Decimal("0")
    main: JSON = {
        "transaction": record_id, "id": 0, "uniquekey": int(record_id) * 10000,
        "linesequencenumber": 0, "mainline": "T", "taxline": "F",
        "expenseaccount": None, "memo": record.get("memo"), "foreignamount": -total,
        "entity": entity,
    }  # fmt: skip
    yield main
    for number, line in enumerate(lines, start=1):
        yield {
            "transaction": record_id, "id": number, "uniquekey": int(record_id) * 10000 + number,
            "linesequencenumber": number, "mainline": "F", "taxline": "F",
            "expenseaccount": _plain_ref(line.get("account")), "memo": line.get("memo"),
            "foreignamount": _amount(line), "department": _plain_ref(line.get("department")),
            "class": _plain_ref(line.get("class")), "location": _plain_ref(line.get("location")),
            "taxcode": _plain_ref(line.get("taxCode")), "entity": entity,
        }  # fmt: skip


def _rate(tax_code: JSON) -> Decimal:
    """A salesTaxItem's rate in percent."""
    return wire.decimal(tax_code.get("rate"), Decimal("0")) or Decimal("0")


def _plain_ref(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def _flat_row(record_id: str, record: JSON, columns: dict[str, str]) -> JSON:
    """A record as a SuiteQL row: references as their id, checkboxes as 'T' / 'F'."""
    row: JSON = {"id": record_id}
    for column, name in columns.items():
        value = _plain_ref(record.get(name))
        row[column] = ("T" if value else "F") if column.startswith("is") else value
    return row


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verify(public_key: Any, algorithm: str, signed: bytes, signature: bytes) -> bool:
    digest = JWT_ALGORITHMS[algorithm]()
    try:
        if algorithm.startswith("PS"):
            if not isinstance(public_key, rsa.RSAPublicKey):
                return False
            public_key.verify(
                signature,
                signed,
                padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
                digest,
            )
        else:
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                return False
            half = len(signature) // 2
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            public_key.verify(der, signed, ec.ECDSA(digest))
    except InvalidSignature:
        return False
    return True


def _amount(line: JSON) -> Decimal:
    value = wire.decimal(line.get("amount"), Decimal("0"))
    assert value is not None
    return value


def _applied_lines(record: JSON) -> list[JSON]:
    return [
        line
        for line in record.get("apply") or []
        if line.get("apply", True) and isinstance(line.get("doc"), dict)
    ]


def _bill_total(bill: JSON) -> Decimal:
    lines = sum((_amount(line) for line in bill.get("expense") or []), Decimal("0"))
    tax = wire.decimal(bill.get("taxTotal"), Decimal("0")) or Decimal("0")
    return lines + tax


def _sort_key(value: Any) -> tuple[int, Any]:
    number = wire.decimal(value) if isinstance(value, int | Decimal) else None
    if number is None and isinstance(value, str) and value.isdigit():
        number = Decimal(value)
    return (0, number) if number is not None else (1, str(value or ""))


def _discount(line: JSON) -> Decimal:
    """An apply line's discount taken (`disc`)."""
    value = wire.decimal(line.get("disc"), Decimal("0"))
    assert value is not None
    return value


def _is_voided(record: JSON) -> bool:
    return (record.get("status") or {}).get("id") == "V"


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
