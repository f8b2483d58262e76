"""Match: resolve the vendor, code lines to accounts and tracking, and look for duplicates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from accounting import (
    Account,
    AccountCategory,
    AccountType,
    Bill,
    TrackingCategory,
    TrackingKind,
    TrackingRef,
    Vendor,
)
from accounting.normalize import (
    document_number_key,
    lookalike_characters,
    skeleton_key,
    tax_id_key,
    vendor_key,
)
from activities.connections import ConnectorProvider
from activities.errors import classified
from activities.payees import PayeeGate
from connectors.base import BillHeader, Connector
from connectors.caching import forget_reference_data
from workflows import contract
from workflows.contract import implements
from workflows.models import CheckPayeeRequest, CodedLine, MatchRequest, MatchResult

# Duplicates among bills remit holds but has not written to the ERP yet (the store's projection).
SimilarBills = Callable[[MatchRequest], Awaitable[list[tuple[str, str | None]]]]

# Lines may be coded to these; a bill coded to a bank or AP account is a mistake.
_CODABLE = {AccountCategory.expense, AccountCategory.asset}
_NOT_CODABLE_TYPES = {
    AccountType.bank,
    AccountType.accounts_payable,
    AccountType.credit_card,
    AccountType.accounts_receivable,
}


class MatchActivities:
    def __init__(
        self,
        connectors: ConnectorProvider,
        similar_bills: SimilarBills | None = None,
        payees: PayeeGate | None = None,
    ) -> None:
        self._connectors = connectors
        self._similar = similar_bills
        self._payees = payees

    @implements(contract.match_bill)
    @classified
    async def match_bill(self, req: MatchRequest) -> MatchResult:
        erp = await self._connectors.connector(req.connection_id)
        result = MatchResult()
        name = req.draft.vendor.name
        if req.erp_bill_id:
            # A bill entered in the ERP: what the ERP holds now is the truth (the draft came
            # from the mirror, which may be minutes old); its vendor and coding are the ERP's.
            result.erp_bill = await erp.get_bill(req.erp_bill_id)
        vendor_id = req.vendor_id or (result.erp_bill.vendor_id if result.erp_bill else None)
        if vendor_id:
            result.vendor = await erp.get_vendor(vendor_id)
        else:
            found = await find_vendor(erp, name=name, tax_id=req.draft.vendor.tax_id)
            if len(found.vendors) == 1:
                result.vendor = found.vendors[0]
            elif len(found.vendors) > 1:
                result.vendor_candidates = found.vendors
            result.problems.extend(found.lookalikes)
        if result.erp_bill is not None:
            result.lines = erp_coded_lines(result.erp_bill)
        else:
            await code_lines(erp, req, result)
        held = await self._similar(req) if self._similar is not None else []
        result.duplicates.extend(text for text, _ in held)
        if result.vendor is not None and result.vendor.id:
            known = {erp_id for _, erp_id in held if erp_id}
            if req.erp_bill_id:
                known.add(req.erp_bill_id)  # the bill itself is no duplicate of itself
            result.duplicates.extend(await find_duplicates(erp, req, result.vendor, skip=known))
        if req.submitted_by is not None:
            result.home_currency = erp.connection.settings.get("home_currency") or (
                await erp.home_currency()
            )
            if self._payees is not None and result.vendor is not None and result.vendor.id:
                result.payee = await self._payees.check(
                    CheckPayeeRequest(
                        workflow_id=req.workflow_id,
                        connection_id=req.connection_id,
                        vendor_id=result.vendor.id,
                        vendor_name=result.vendor.name,
                        submitted_by=req.submitted_by,
                        document_number=req.draft.document_number,
                        document_bank_account=req.draft.vendor.bank_account,
                    )
                )
        return result


@dataclass
class VendorMatch:
    vendors: list[Vendor] = field(default_factory=list)
    lookalikes: list[str] = field(default_factory=list)
    """Why a person must confirm the vendor: its name imitates a known one."""


async def find_vendor(erp: Connector, *, name: str, tax_id: str | None) -> VendorMatch:
    """By tax id first (exact, normalized), then by normalized name.

    A name that only *looks* like a known vendor's (Cyrillic 'о' for Latin 'o', fullwidth
    letters, '0' for 'O') never matches silently: it is reported in `lookalikes`, whether the
    tax id found the vendor or the name would otherwise have made a new one.
    """
    found = VendorMatch()
    if tax_id:
        wanted = tax_id_key(tax_id)
        by_tax = [
            v
            for v in await erp.find_vendors(tax_id=tax_id)
            if v.tax_id and tax_id_key(v.tax_id) == wanted and v.active
        ]
        if by_tax:
            found.vendors = by_tax
            found.lookalikes = [
                _imitates(name, v) for v in by_tax if lookalike_characters(name, v.name)
            ]
            return found
    wanted_name = vendor_key(name)
    wanted_skeleton = skeleton_key(name)
    matches: dict[str, Vendor] = {}
    imitated: dict[str, Vendor] = {}

    def consider(vendor: Vendor) -> None:
        if not vendor.active or not vendor.id:
            return
        if lookalike_characters(name, vendor.name):
            imitated[vendor.id] = vendor
        elif vendor_key(vendor.name) == wanted_name:
            matches[vendor.id] = vendor

    for vendor in await erp.find_vendors(name=name):
        consider(vendor)
    if not matches:
        # The platform's name search is literal; "ACME Corporation" must still find "Acme Corp",
        # and a look-alike name only shows up against every vendor's skeleton.
        cursor: str | None = None
        while True:
            page = await erp.list_vendors(cursor)
            for vendor in page.items:
                if vendor_key(vendor.name) == wanted_name or skeleton_key(vendor.name) == (
                    wanted_skeleton
                ):
                    consider(vendor)
            cursor = page.next_cursor
            if not cursor:
                break
    found.vendors = sorted(matches.values(), key=lambda v: v.id or "")
    found.lookalikes = [
        _imitates(name, v) for v in sorted(imitated.values(), key=lambda v: v.id or "")
    ]
    return found


def _imitates(name: str, vendor: Vendor) -> str:
    characters = ", ".join(lookalike_characters(name, vendor.name))
    return (
        f"the vendor name {name!r} imitates the known vendor {vendor.name!r} (id {vendor.id}) "
        f"with look-alike characters ({characters}): confirm it is that vendor (resolve with "
        "its vendor id) or cancel the bill"
    )


def _account_lookup(accounts: list[Account]) -> dict[str, Account]:
    table: dict[str, Account] = {}
    for account in accounts:
        if not account.active:
            continue
        table[account.name.casefold()] = account
        if account.number:
            table[account.number.casefold()] = account
        table[account.id.casefold()] = account
    return table


async def code_lines(erp: Connector, req: MatchRequest, result: MatchResult) -> None:
    # For lines the document leaves uncoded: a person's choice, the vendor's default, then the
    # connection's default expense account (by name or id), in that order.
    fallback = (
        req.account
        or (result.vendor.default_expense_account_id if result.vendor else None)
        or erp.connection.settings.get("default_expense_account")
    )
    accounts, tracking = await _reference_data(erp)
    if _names_missing(req, fallback, accounts, tracking) and forget_reference_data(erp):
        # The answers came from a cache and lack a name: it may be new in the ERP.
        accounts, tracking = await _reference_data(erp)
    fallback_account = accounts.get(fallback.casefold()) if fallback else None
    default_account = fallback_account.id if fallback_account else None
    for n, line in enumerate(req.draft.lines, start=1):
        account_id: str | None = None
        if line.account:
            account = accounts.get(line.account.casefold())
            if account is None:
                result.problems.append(f"line {n}: no account named {line.account!r} in the ERP")
            elif account.category not in _CODABLE or account.account_type in _NOT_CODABLE_TYPES:
                result.problems.append(
                    f"line {n}: {account.name} is a {account.account_type.value} account; "
                    "code expenses to an expense or asset account"
                )
            else:
                account_id = account.id
        elif default_account:
            account_id = default_account
        elif result.vendor is not None or not result.vendor_candidates:
            result.problems.append(
                f"line {n}: no account given and neither the vendor nor the connection has a "
                "default expense account; resolve with the account to use"
            )
        refs: list[TrackingRef] = []
        for kind, name in (
            (TrackingKind.department, line.department),
            (TrackingKind.class_, line.class_),
            (TrackingKind.location, line.location),
        ):
            if not name:
                continue
            found = tracking.get((kind, name.casefold()))
            if found is None:
                result.problems.append(f"line {n}: no {kind.value} named {name!r} in the ERP")
            else:
                refs.append(TrackingRef(kind=kind, id=found.id, name=found.name))
        result.lines.append(
            CodedLine(
                description=line.description,
                amount=line.amount,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                account_id=account_id or "",
                account_as_written=line.account,
                tracking=refs,
            )
        )


def erp_coded_lines(bill: Bill) -> list[CodedLine]:
    """An ERP bill's lines as coded there (nothing to code: they are already booked)."""
    return [
        CodedLine(
            description=line.description,
            amount=line.amount,
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            account_id=line.account_id or "",
            tracking=list(line.tracking),
        )
        for line in bill.lines
    ]


TrackingTable = dict[tuple[TrackingKind, str], TrackingCategory]


async def _reference_data(erp: Connector) -> tuple[dict[str, Account], TrackingTable]:
    accounts = _account_lookup(await erp.list_accounts())
    tracking = {
        (t.kind, t.name.casefold()): t for t in await erp.list_tracking_categories() if t.active
    }
    return accounts, tracking


def _names_missing(
    req: MatchRequest,
    fallback: str | None,
    accounts: dict[str, Account],
    tracking: TrackingTable,
) -> bool:
    account_names = [line.account for line in req.draft.lines if line.account]
    if fallback:
        account_names.append(fallback)
    if any(name.casefold() not in accounts for name in account_names):
        return True
    return any(
        name and (kind, name.casefold()) not in tracking
        for line in req.draft.lines
        for kind, name in (
            (TrackingKind.department, line.department),
            (TrackingKind.class_, line.class_),
            (TrackingKind.location, line.location),
        )
    )


async def find_duplicates(
    erp: Connector, req: MatchRequest, vendor: Vendor, *, skip: set[str] | None = None
) -> list[str]:
    """Bills already in the ERP for this vendor with the same number, or same amount and date."""
    assert vendor.id
    draft = req.draft
    number = document_number_key(draft.document_number)
    found: list[str] = []
    for bill in await erp.find_bill_headers(vendor_id=vendor.id):
        if bill.status == "void" or bill.reference == f"{req.workflow_id}/bill":
            continue
        if skip and bill.id in skip:
            continue
        same_number = bill.document_number and document_number_key(bill.document_number) == number
        same_amount_date = bill.total == draft.total and bill.issue_date == draft.issue_date
        if same_number or same_amount_date:
            found.append(
                _describe(bill, "same document number" if same_number else "same amount and date")
            )
    return found


def _describe(bill: BillHeader, why: str) -> str:
    return (
        f"ERP bill {bill.id} ({bill.document_number or 'no number'}, {bill.currency} "
        f"{bill.total.quantize(Decimal('0.01'))}, {bill.issue_date}) has the {why}"
    )
