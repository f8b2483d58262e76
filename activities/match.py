"""Match: resolve the vendor, code lines to accounts and tracking, and look for duplicates."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from rapidfuzz import fuzz

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
    match_keys,
    tax_id_key,
    unusual_characters,
    vendor_key,
)
from activities.connections import ConnectorProvider
from activities.errors import classified
from activities.payees import PayeeGate
from connectors.base import (
    TAX_CODES_SETTING,
    BillHeader,
    Connector,
    describe_vat,
    vat_key,
)
from connectors.caching import forget_reference_data
from store.mirror import MirrorStore
from workflows import contract
from workflows.contract import implements
from workflows.models import CheckPayeeRequest, CodedLine, MatchRequest, MatchResult

# Duplicates among bills remit holds but has not written to the ERP yet (the store's projection).
SimilarBills = Callable[[MatchRequest], Awaitable[list[tuple[str, str | None]]]]

HISTORY_BILLS = 12
"""How many of the vendor's latest bills say how it is usually coded: a year of monthly bills,
enough that a one-off coding is outvoted, recent enough to follow a change of account."""


@dataclass(frozen=True)
class PastLine:
    """One line of a bill the vendor sent before, as the ERP has it coded."""

    account_id: str | None
    tracking: tuple[TrackingRef, ...] = ()


VendorHistory = Callable[[str, str], Awaitable[list[list[PastLine]]]]
"""(connection id, vendor id) -> the lines of the vendor's last HISTORY_BILLS bills in the ERP,
the newest bill first (the books' mirror: no call to the platform)."""


def mirror_history(mirror: MirrorStore) -> VendorHistory:
    """The vendor's coding history as the books' mirror has it."""

    async def history(connection_id: str, vendor_id: str) -> list[list[PastLine]]:
        bills = await asyncio.to_thread(
            mirror.recent_vendor_bills, connection_id, vendor_id, limit=HISTORY_BILLS
        )
        return [_past_lines(bill) for bill in bills]

    return history


def _past_lines(bill: dict[str, Any]) -> list[PastLine]:
    lines = []
    for line in bill.get("lines") or []:
        refs = []
        for ref in line.get("tracking") or []:
            try:
                refs.append(TrackingRef.model_validate(ref))
            except ValidationError:
                continue  # a dimension remit does not code to: nothing to suggest
        account = line.get("account_id")
        lines.append(PastLine(account_id=str(account) if account else None, tracking=tuple(refs)))
    return lines


@dataclass(frozen=True)
class UsualCoding:
    account_id: str
    tracking: tuple[TrackingRef, ...]
    reason: str


def usual_coding(
    history: Sequence[Sequence[PastLine]],
    *,
    vendor_name: str,
    codable: Callable[[str], bool],
    tracking: Callable[[TrackingKind, str], TrackingCategory | None],
) -> UsualCoding | None:
    """The account used on most of the vendor's last HISTORY_BILLS bills (each bill counts once
    per account; a tie goes to the one used most recently) that can still be coded to, and on
    its lines, per dimension, the tracking value used most (same rules) that is still active."""
    bills = list(history)[:HISTORY_BILLS]
    counts: dict[str, int] = {}
    newest: dict[str, int] = {}
    for age, lines in enumerate(bills):
        for account in dict.fromkeys(line.account_id for line in lines if line.account_id):
            counts[account] = counts.get(account, 0) + 1
            newest.setdefault(account, age)
    ranked = sorted((a for a in counts if codable(a)), key=lambda a: (-counts[a], newest[a]))
    if not ranked:
        return None
    account = ranked[0]
    used: dict[tuple[TrackingKind, str], int] = {}
    first_seen: dict[tuple[TrackingKind, str], int] = {}
    for age, lines in enumerate(bills):
        on_account = {
            (ref.kind, ref.id)
            for line in lines
            if line.account_id == account
            for ref in line.tracking
        }
        for ref in on_account:
            used[ref] = used.get(ref, 0) + 1
            first_seen.setdefault(ref, age)
    chosen: dict[TrackingKind, TrackingCategory] = {}
    for kind, ref_id in sorted(used, key=lambda r: (-used[r], first_seen[r])):
        category = tracking(kind, ref_id)
        if kind not in chosen and category is not None:
            chosen[kind] = category
    n, k = len(bills), counts[account]
    reason = (
        f"most used on {vendor_name}'s last {n} bills ({k} of {n})"
        if n > 1
        else f"as on {vendor_name}'s only bill in the ERP"
    )
    refs = tuple(TrackingRef(kind=c.kind, id=c.id, name=c.name) for c in chosen.values())
    return UsualCoding(account_id=account, tracking=refs, reason=reason)


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
        vendor_history: VendorHistory | None = None,
    ) -> None:
        self._connectors = connectors
        self._similar = similar_bills
        self._payees = payees
        self._history = vendor_history

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
            found = await find_vendor(
                erp,
                name=name,
                tax_id=req.draft.vendor.tax_id,
                trading_name=req.draft.vendor.trading_name,
            )
            if len(found.vendors) == 1:
                result.vendor = found.vendors[0]
                result.vendor_score = found.score
                result.vendor_match = found.how
            elif len(found.vendors) > 1:
                result.vendor_candidates = found.vendors
            if found.ambiguity:
                result.problems.append(found.ambiguity)
            result.problems.extend(found.lookalikes)
        if result.erp_bill is not None:
            result.lines = erp_coded_lines(result.erp_bill)
        else:
            history: list[list[PastLine]] = []
            uncoded = any(not line.account for line in req.draft.lines)
            vendor = result.vendor
            if self._history and uncoded and not req.account and vendor and vendor.id:
                history = await self._history(req.connection_id, vendor.id)
            await code_lines(erp, req, result, history)
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


# Loose name matching. Scores are rapidfuzz's token_sort_ratio (0-100) between match_keys,
# i.e. after normalization has folded look-alike characters, case, accents, punctuation and
# legal forms (GmbH, Ltd, Inc, SA, AB, BV, LLC...) away. token_sort_ratio forgives word order
# and spelling slips but counts every extra word; WRatio, token_set_ratio and partial_ratio
# score a name contained in another ('acme' in 'acme tools') at 100 and would pay the wrong
# company.
MATCH_THRESHOLD = 90.0
"""The least score that matches without a person: one slipped, doubled or dropped letter in a
name of ten letters or so ('muller' / 'mueller' scores 92), not a different word ('acme' /
'acme tools' scores 57; 'nordic supply' / 'nordic supplies' scores 86)."""
MATCH_MARGIN = 15.0
"""How far the best vendor must be ahead of the next: more than one word's inflection
('nordic supplies' / 'nordic supply', 86). A second vendor closer than that is a name the
document could equally mean, and a person picks (paying the wrong company is the costly error)."""


@dataclass
class VendorMatch:
    vendors: list[Vendor] = field(default_factory=list)
    lookalikes: list[str] = field(default_factory=list)
    """Why a person must confirm the vendor: its name imitates a known one."""
    score: float | None = None
    """How close the document's name is to the one vendor found by name (0-100)."""
    how: str | None = None
    """How the vendor was found: 'tax id', 'name' (the same once normalized) or 'similar name'."""
    ambiguity: str | None = None
    """Several vendors about as close: each with its score and id, for a person."""


def name_score(names: Sequence[str], vendor: Vendor) -> float:
    """The best score of any of the document's names against the vendor's name or legal name."""
    ours = [key for name in names for key in _keys(name)]
    theirs = [key for name in (vendor.name, vendor.legal_name) if name for key in _keys(name)]
    return max(
        (fuzz.token_sort_ratio(a, b, processor=None) for a in ours for b in theirs), default=0.0
    )


@functools.lru_cache(maxsize=4096)
def _keys(name: str) -> tuple[str, ...]:
    # Every vendor of the company is scored on each bill: its keys are worth keeping.
    return tuple(match_keys(name))


async def find_vendor(
    erp: Connector, *, name: str, tax_id: str | None, trading_name: str | None = None
) -> VendorMatch:
    """By tax id first (exact, normalized), then by name: the document's legal name and its
    trading name (an alias) against every active vendor's name and legal name.

    A vendor whose name the document gives exactly (the platform's name search finds it alone)
    matches outright. Otherwise one pass over every vendor scores each: a single best at
    MATCH_THRESHOLD or more and MATCH_MARGIN ahead of the next matches, with its score; several
    close ones are `vendors` with `ambiguity` saying why; none close enough is a new vendor.

    A name that only *looks* like a known vendor's (Cyrillic 'о' for Latin 'o', fullwidth
    letters, '0' for 'O') never matches silently: it is reported in `lookalikes`, whether the
    tax id found the vendor or the name would otherwise have made a new one; so is a close name
    that owes its closeness to such characters.
    """
    names = [name] + ([trading_name] if trading_name and trading_name.strip() != name else [])
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
            found.how = "tax id"
            found.lookalikes = [
                _imitates(n, v, chars)
                for v in by_tax
                for n in names
                if (chars := lookalike_characters(n, v.name))
            ]
            return found
    wanted_keys = {vendor_key(n) for n in names}
    literal = {_literal(n) for n in names}
    hits: dict[str, Vendor] = {}
    imitated: dict[str, tuple[str, Vendor, list[str]]] = {}

    def imitation(vendor: Vendor, score: float) -> tuple[str, list[str]] | None:
        for n in names:
            for theirs in filter(None, (vendor.name, vendor.legal_name)):
                chars = lookalike_characters(n, theirs)
                if not chars and score >= MATCH_THRESHOLD:
                    # Close but not the same on screen: only other scripts' letters count here
                    # ('1' next to 'l' in an ASCII name is a typo, not a disguise).
                    chars = unusual_characters(n, theirs, ascii_too=False)
                if chars:
                    return n, chars
        return None

    def usable(vendor: Vendor) -> bool:
        return vendor.active and bool(vendor.id)

    for n in names:
        for vendor in await erp.find_vendors(name=n):
            if usable(vendor) and not imitation(vendor, 100.0):
                if vendor_key(vendor.name) in wanted_keys:
                    assert vendor.id
                    hits[vendor.id] = vendor
    if len(hits) == 1:
        [only] = hits.values()
        if {_literal(only.name), _literal(only.legal_name or "")} & literal:
            found.vendors, found.score, found.how = [only], 100.0, "name"
            return found
    # The platform's name search is literal or knows only its own normalization: "ACME
    # Corporation" must still find "Acme Corp.", "Müller" "Mueller", a look-alike name only
    # shows against every vendor's skeleton, and a close second vendor only against all of them.
    scored: list[tuple[float, Vendor]] = []
    cursor: str | None = None
    while True:
        page = await erp.list_vendors(cursor)
        for vendor in page.items:
            if not usable(vendor):
                continue
            score = name_score(names, vendor)
            if score < MATCH_THRESHOLD - MATCH_MARGIN:
                continue
            assert vendor.id
            disguised = imitation(vendor, score)
            if disguised:
                imitated[vendor.id] = (disguised[0], vendor, disguised[1])
            else:
                scored.append((score, vendor))
        cursor = page.next_cursor
        if not cursor:
            break
    found.lookalikes = [
        _imitates(n, v, chars) for n, v, chars in sorted(imitated.values(), key=_by_id)
    ]
    scored.sort(key=lambda sv: (-sv[0], sv[1].id or ""))
    if not scored or scored[0][0] < MATCH_THRESHOLD:
        return found  # a new vendor
    best = scored[0][0]
    close = [(score, v) for score, v in scored if score >= best - MATCH_MARGIN]
    found.vendors = [v for _, v in close]
    if len(close) == 1:
        found.score = round(best, 1)
        found.how = "name" if best == 100 else "similar name"
        return found
    listed = "; ".join(f"{v.name!r} (id {v.id}, score {_score(score)})" for score, v in close)
    found.ambiguity = (
        f"the vendor name {name!r} is about as close to {len(close)} known vendors: {listed}. "
        "Resolve with the vendor id of the right one (or cancel the bill)"
    )
    return found


def _literal(name: str) -> str:
    """A name as written, give or take case and spacing."""
    return " ".join(name.casefold().split())


def _score(score: float) -> str:
    return f"{round(score, 1):g}"


def _by_id(item: tuple[str, Vendor, list[str]]) -> str:
    return item[1].id or ""


def _imitates(name: str, vendor: Vendor, characters: list[str]) -> str:
    return (
        f"the vendor name {name!r} imitates the known vendor {vendor.name!r} (id {vendor.id}) "
        f"with look-alike characters ({', '.join(characters)}): confirm it is that vendor "
        "(resolve with its vendor id) or cancel the bill"
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


async def code_lines(
    erp: Connector,
    req: MatchRequest,
    result: MatchResult,
    history: Sequence[Sequence[PastLine]] = (),
) -> None:
    # For lines the document leaves uncoded: a person's choice, the account (and tracking) the
    # vendor's recent bills mostly have, the vendor's default, then the connection's default
    # expense account (by name or id), in that order. Each coded line says which it was.
    defaults = [
        (req.account, "the account chosen in review"),
        (
            result.vendor.default_expense_account_id if result.vendor else None,
            "the vendor's default expense account",
        ),
        (
            erp.connection.settings.get("default_expense_account"),
            "the connection's default expense account",
        ),
    ]
    fallback, fallback_reason = next(((a, why) for a, why in defaults if a), (None, None))
    accounts, tracking = await _reference_data(erp)
    if _names_missing(req, fallback, accounts, tracking) and forget_reference_data(erp):
        # The answers came from a cache and lack a name: it may be new in the ERP.
        accounts, tracking = await _reference_data(erp)
    fallback_account = accounts.get(fallback.casefold()) if fallback else None
    default_account = fallback_account.id if fallback_account else None
    usual: UsualCoding | None = None
    if history and not req.account and result.vendor is not None:
        tracking_by_id = {(t.kind, t.id): t for t in tracking.values()}
        usual = usual_coding(
            history,
            vendor_name=result.vendor.name,
            codable=lambda account_id: _codable(accounts.get(account_id.casefold()), account_id),
            tracking=lambda kind, ref_id: tracking_by_id.get((kind, ref_id)),
        )
    tax_codes = await _tax_codes(erp, req)
    for n, line in enumerate(req.draft.lines, start=1):
        account_id: str | None = None
        reason: str | None = None
        suggested: tuple[TrackingRef, ...] = ()
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
                account_id, reason = account.id, "as written on the document"
        elif usual is not None:
            account_id, reason, suggested = usual.account_id, usual.reason, usual.tracking
        elif default_account:
            account_id, reason = default_account, fallback_reason
        elif result.vendor is not None or not result.vendor_candidates:
            result.problems.append(
                f"line {n}: no account given and neither the vendor nor the connection has a "
                "default expense account; resolve with the account to use"
            )
        dimensions = (
            (TrackingKind.department, line.department),
            (TrackingKind.class_, line.class_),
            (TrackingKind.location, line.location),
        )
        refs: list[TrackingRef] = []
        for kind, name in dimensions:
            if not name:
                continue
            found = tracking.get((kind, name.casefold()))
            if found is None:
                result.problems.append(f"line {n}: no {kind.value} named {name!r} in the ERP")
            else:
                refs.append(TrackingRef(kind=kind, id=found.id, name=found.name))
        # What the document names wins; the history fills only the dimensions it leaves out.
        named = {kind for kind, name in dimensions if name}
        added = [ref for ref in suggested if ref.kind not in named]
        if added and reason:
            reason += ", with " + ", ".join(f"{r.kind.value} {r.name or r.id}" for r in added)
        result.lines.append(
            CodedLine(
                description=line.description,
                amount=line.amount,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
                account_id=account_id or "",
                account_as_written=line.account,
                tracking=refs + added,
                coding_reason=reason,
                tax_category=line.tax_category,
                tax_rate=line.tax_rate,
                tax_code_id=_tax_code_id(n, line.tax_category, line.tax_rate, tax_codes, result),
            )
        )


TaxCodes = dict[tuple[str, Decimal | None], str | None]


async def _tax_codes(erp: Connector, req: MatchRequest) -> TaxCodes:
    """The ERP's tax code for each VAT category and rate the draft's lines carry (one look-up
    per pair); lines without a category (remit JSON bills, scans) need none."""
    codes: TaxCodes = {}
    pairs = {
        (line.tax_category.strip().upper(), line.tax_rate): None
        for line in req.draft.lines
        if line.tax_category
    }
    if not pairs:
        return codes
    rates = await erp.list_tax_rates()
    for category, rate in pairs:
        found = await erp.tax_code_for(category, rate, rates=rates)
        codes[(category, rate)] = found.id if found is not None else None
    return codes


def _tax_code_id(
    n: int, category: str | None, rate: Decimal | None, codes: TaxCodes, result: MatchResult
) -> str | None:
    if not category:
        return None
    pair = (category.strip().upper(), rate)
    code = codes.get(pair)
    if code is None:
        # Booking the line without its code would put the wrong VAT in the books: a person
        # creates the code in the ERP or names the one to use, then resolves the bill.
        key = vat_key(*pair)
        result.problems.append(
            f"line {n}: no tax code in the ERP for {describe_vat(*pair)} — create one in the ERP "
            f"or map it in the connection's {TAX_CODES_SETTING} setting "
            f'({{"{key}": "<tax code id>"}}), then resolve the bill'
        )
    return code


def _codable(account: Account | None, account_id: str) -> bool:
    return (
        account is not None
        and account.id == account_id
        and account.category in _CODABLE
        and account.account_type not in _NOT_CODABLE_TYPES
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
            coding_reason="as coded in the ERP",
            tax_code_id=line.tax_code_id,
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
