"""Drift findings: where the books changed after remit reconciled a bill, recorded once each.

A finding is keyed by (bill workflow, kind of drift, subject: the bill or one ERP payment) and
its occurrence: while one is open, seeing the same drift again only refreshes what was found;
once it is cleared (the ERP no longer shows it) or resolved (a person said so), seeing it again
is a new occurrence and a new finding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlmodel import Field, Session

from accounting import format_money
from store.db import Store, cursor_time, decode_cursor, encode_cursor
from store.mirror import MirrorRow
from store.models import BillRow, _id, _json, _StoreModel, _timestamp
from store.types import utcnow

MAX_PAGE_SIZE = 500
OPEN = "open"
CLEARED = "cleared"
RESOLVED = "resolved"
STATUSES = (OPEN, CLEARED, RESOLVED)


class DriftFindingRow(_StoreModel, table=True):
    """One difference between a reconciled bill and the books' mirror."""

    __tablename__ = "drift_findings"
    __table_args__ = (
        UniqueConstraint("workflow_id", "kind", "subject", "occurrence"),
        Index("ix_drift_findings_status_detected_at", "status", "detected_at", "id"),
        Index("ix_drift_findings_connection_id_status", "connection_id", "status"),
        Index("ix_drift_findings_workflow_id_status", "workflow_id", "status"),
    )

    id: str = _id(primary_key=True)
    workflow_id: str = _id()
    connection_id: str = _id()
    erp_bill_id: str | None = _id(nullable=True)
    kind: str = Field(
        sa_column=Column(String(64), nullable=False),
        description="bill_deleted, bill_voided, balance_reopened, total_changed, "
        "vendor_changed, payment_missing, payment_voided, payment_changed",
    )
    subject: str = Field(
        sa_column=Column(String(255), nullable=False),
        description="what drifted: 'bill' or the ERP payment's id",
    )
    occurrence: int = Field(default=0, sa_column=Column(Integer(), nullable=False))
    expected: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(_json(), nullable=False)
    )
    found: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_json(), nullable=False))
    message: str = Field(sa_column=Column(Text(), nullable=False))
    status: str = Field(default=OPEN, sa_column=Column(String(16), nullable=False))
    detected_at: datetime = _timestamp(nullable=False)
    last_seen_at: datetime = _timestamp(nullable=False)
    resolved_at: datetime | None = _timestamp(nullable=True)
    resolved_by: str | None = _id(nullable=True)
    note: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


@dataclass(frozen=True)
class Drift:
    """One difference a sweep saw (not yet a finding)."""

    kind: str
    subject: str
    expected: dict[str, Any]
    found: dict[str, Any]
    message: str


@dataclass(frozen=True)
class Observed:
    """What recording one bill's sweep did: findings new this time, and those it cleared."""

    new: list[DriftFindingRow]
    still_open: list[DriftFindingRow]
    cleared: list[DriftFindingRow]


def finding_id(workflow_id: str, kind: str, subject: str, occurrence: int) -> str:
    """Stable: the same drift seen by a retried sweep gets the same id."""
    digest = hashlib.sha256(f"{workflow_id}\n{kind}\n{subject}\n{occurrence}".encode())
    return f"drift_{digest.hexdigest()[:20]}"


def _table() -> Table:
    return cast(Table, DriftFindingRow.__table__)  # type: ignore[attr-defined]


class DriftStore:
    """Drift findings. Synchronous, like Store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def observe(
        self,
        *,
        workflow_id: str,
        connection_id: str,
        erp_bill_id: str | None,
        drifts: Sequence[Drift],
        at: datetime,
    ) -> Observed:
        """Record what one sweep saw of one bill: new drift becomes a finding, drift still
        there refreshes its open finding, an open finding not seen any more is cleared."""
        table = _table()
        new: list[DriftFindingRow] = []
        still: list[DriftFindingRow] = []
        cleared: list[DriftFindingRow] = []
        with self._session() as session:
            rows = list(
                session.scalars(select(DriftFindingRow).where(table.c.workflow_id == workflow_id))
            )
            open_by_key = {(r.kind, r.subject): r for r in rows if r.status == OPEN}
            seen: set[tuple[str, str]] = set()
            for drift in drifts:
                key = (drift.kind, drift.subject)
                if key in seen:
                    continue
                seen.add(key)
                existing = open_by_key.get(key)
                if existing is not None:
                    existing.found = dict(drift.found)
                    existing.message = drift.message
                    existing.last_seen_at = at
                    session.add(existing)
                    still.append(existing)
                    continue
                occurrence = sum(1 for r in rows if (r.kind, r.subject) == key)
                row = DriftFindingRow(
                    id=finding_id(workflow_id, drift.kind, drift.subject, occurrence),
                    workflow_id=workflow_id,
                    connection_id=connection_id,
                    erp_bill_id=erp_bill_id,
                    kind=drift.kind,
                    subject=drift.subject,
                    occurrence=occurrence,
                    expected=dict(drift.expected),
                    found=dict(drift.found),
                    message=drift.message,
                    status=OPEN,
                    detected_at=at,
                    last_seen_at=at,
                )
                session.add(row)
                new.append(row)
            for key, row in open_by_key.items():
                if key in seen:
                    continue
                row.status = CLEARED
                row.resolved_at = at
                row.resolved_by = "remit drift sweep"
                row.note = "no longer seen in the ERP"
                session.add(row)
                cleared.append(row)
            session.commit()
        return Observed(new=new, still_open=still, cleared=cleared)

    def resolve(
        self, finding_id: str, *, by: str, note: str | None, at: datetime
    ) -> DriftFindingRow:
        """A person settles an open finding (KeyError: no such finding; ValueError: not open)."""
        with self._session() as session:
            row = session.get(DriftFindingRow, finding_id, with_for_update=True)
            if row is None:
                raise KeyError(finding_id)
            if row.status != OPEN:
                raise ValueError(f"finding {finding_id} is {row.status}, not open")
            row.status = RESOLVED
            row.resolved_at = at
            row.resolved_by = by
            row.note = note
            session.add(row)
            session.commit()
            return row

    def get(self, finding_id: str) -> DriftFindingRow | None:
        with self._session() as session:
            return session.get(DriftFindingRow, finding_id)

    def open_for(self, workflow_id: str) -> list[DriftFindingRow]:
        table = _table()
        statement = (
            select(DriftFindingRow)
            .where(table.c.workflow_id == workflow_id, table.c.status == OPEN)
            .order_by(table.c.detected_at, table.c.id)
        )
        with self._session() as session:
            return list(session.scalars(statement))

    def list(
        self,
        *,
        status: str | None = OPEN,
        connection_id: str | None = None,
        connection_ids: Collection[str] | None = None,
        workflow_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[DriftFindingRow], str | None]:
        """Findings oldest first (detected_at, id), a page at a time; raises InvalidCursor."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        table = _table()
        clauses: list[Any] = []
        if status is not None:
            clauses.append(table.c.status == status)
        if connection_id is not None:
            clauses.append(table.c.connection_id == connection_id)
        if connection_ids is not None:
            clauses.append(table.c.connection_id.in_(sorted(connection_ids)))
        if workflow_id is not None:
            clauses.append(table.c.workflow_id == workflow_id)
        if cursor:
            at_text, after_id = decode_cursor(cursor, "drift", str, str)
            after_at = cursor_time(at_text)
            clauses.append(
                or_(
                    table.c.detected_at > after_at,
                    and_(table.c.detected_at == after_at, table.c.id > after_id),
                )
            )
        statement = (
            select(DriftFindingRow)
            .where(*clauses)
            .order_by(table.c.detected_at, table.c.id)
            .limit(limit + 1)
        )
        with self._session() as session:
            rows = list(session.scalars(statement))
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        return page, encode_cursor("drift", page[-1].detected_at.isoformat(), page[-1].id)

    def count_open(self, connection_id: str | None = None) -> int:
        table = _table()
        clauses = [table.c.status == OPEN]
        if connection_id is not None:
            clauses.append(table.c.connection_id == connection_id)
        with self._session() as session:
            return int(session.execute(select(func.count()).where(*clauses)).scalar() or 0)


# ---------------------------------------------------------------------------------------------
# The comparison: a reconciled bill (its projection) against the mirror's bill and payments
# ---------------------------------------------------------------------------------------------


def _money(value: Decimal | None, currency: str) -> dict[str, Any]:
    return {"amount": None if value is None else str(value), "currency": currency}


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def remit_payments(bill: BillRow) -> list[tuple[str, Decimal | None]]:
    """(ERP payment id, cash amount) of every payment remit wrote and did not void itself."""
    found: list[tuple[str, Decimal | None]] = []
    for payment in bill.state.get("payments") or []:
        erp_id = payment.get("erp_payment_id")
        if erp_id and not payment.get("erp_voided"):
            found.append((str(erp_id), _decimal(payment.get("amount"))))
    if not found and bill.erp_payment_id:
        found.append((bill.erp_payment_id, _decimal(bill.state.get("payment", {}).get("amount"))))
    return found


def compare_bill(
    bill: BillRow,
    erp_bill: MirrorRow | None,
    payments: dict[str, MirrorRow | None],
) -> list[Drift]:
    """What differs between what remit reconciled and what the mirror holds now.

    `erp_bill` is the mirror's row for the bill (None: the mirror does not have it; the
    caller decides whether that means deleted); `payments` the mirror's row for each of
    remit's ERP payment ids (None: not in the mirror).
    """
    currency = bill.currency
    drifts: list[Drift] = []
    number = bill.document_number or bill.erp_bill_id or bill.workflow_id
    if erp_bill is None or erp_bill.deleted_at is not None:
        return [
            Drift(
                kind="bill_deleted",
                subject="bill",
                expected={"erp_bill_id": bill.erp_bill_id},
                found={"erp_bill_id": None},
                message=f"bill {number} ({bill.erp_bill_id}) was deleted in the ERP after "
                "remit reconciled it",
            )
        ]
    data = erp_bill.data
    status = str(data.get("status") or "")
    if status == "void":
        drifts.append(
            Drift(
                kind="bill_voided",
                subject="bill",
                expected={"status": "paid"},
                found={"status": status},
                message=f"bill {number} was voided in the ERP after remit reconciled it",
            )
        )
    else:
        balance = _decimal(data.get("balance"))
        expected_balance = _decimal((bill.state.get("reconciliation") or {}).get("balance"))
        expected_balance = expected_balance if expected_balance is not None else Decimal(0)
        if (balance is not None and balance > expected_balance) or status in (
            "open",
            "partially_paid",
        ):
            shown = balance if balance is not None else bill.total
            drifts.append(
                Drift(
                    kind="balance_reopened",
                    subject="bill",
                    expected={"status": "paid", "balance": _money(expected_balance, currency)},
                    found={"status": status, "balance": _money(balance, currency)},
                    message=f"bill {number} is {status or 'open'} again in the ERP with "
                    f"{format_money(shown, currency)} due (remit reconciled it at "
                    f"{format_money(expected_balance, currency)})",
                )
            )
    total = _decimal(data.get("total"))
    if total is not None and total != bill.total:
        drifts.append(
            Drift(
                kind="total_changed",
                subject="bill",
                expected={"total": _money(bill.total, currency)},
                found={"total": _money(total, str(data.get("currency") or currency))},
                message=f"bill {number}'s total was edited in the ERP: "
                f"{format_money(bill.total, currency)} when reconciled, "
                f"{format_money(total, str(data.get('currency') or currency))} now "
                f"(difference {format_money(total - bill.total, currency)})",
            )
        )
    vendor = data.get("vendor_id")
    if bill.vendor_id and vendor and str(vendor) != bill.vendor_id:
        drifts.append(
            Drift(
                kind="vendor_changed",
                subject="bill",
                expected={"vendor_id": bill.vendor_id},
                found={"vendor_id": str(vendor)},
                message=f"bill {number}'s vendor was changed in the ERP from {bill.vendor_id} "
                f"to {vendor}",
            )
        )
    for payment_id, amount in remit_payments(bill):
        drifts.extend(_payment_drift(bill, number, payment_id, amount, payments.get(payment_id)))
    return drifts


def _payment_drift(
    bill: BillRow, number: str, payment_id: str, amount: Decimal | None, row: MirrorRow | None
) -> list[Drift]:
    currency = bill.currency
    expected = {"payment_id": payment_id, "amount": _money(amount, currency)}
    if row is None or row.deleted_at is not None:
        return [
            Drift(
                kind="payment_missing",
                subject=payment_id,
                expected=expected,
                found={"payment_id": None},
                message=f"remit's payment {payment_id} of {format_money(amount, currency)} "
                f"for bill {number} is no longer in the ERP (deleted after reconcile)",
            )
        ]
    if row.data.get("voided") or row.status == "void":
        return [
            Drift(
                kind="payment_voided",
                subject=payment_id,
                expected=expected,
                found={"payment_id": payment_id, "voided": True},
                message=f"remit's payment {payment_id} of {format_money(amount, currency)} "
                f"for bill {number} was voided in the ERP after reconcile",
            )
        ]
    lines = [
        line for line in row.data.get("lines") or [] if line.get("bill_id") == bill.erp_bill_id
    ]
    paid = sum((_decimal(line.get("amount")) or Decimal(0) for line in lines), Decimal(0))
    if amount is not None and paid != amount:
        return [
            Drift(
                kind="payment_changed",
                subject=payment_id,
                expected=expected,
                found={"payment_id": payment_id, "amount": _money(paid, currency)},
                message=f"remit's payment {payment_id} for bill {number} was changed in the "
                f"ERP: {format_money(amount, currency)} paid, "
                f"{format_money(paid, currency)} now (difference "
                f"{format_money(paid - amount, currency)})",
            )
        ]
    return []


def flag_bill(store: Store, bill: BillRow, findings: Sequence[DriftFindingRow]) -> bool:
    """Show a reconciled bill's open drift in its projection (status needs_attention, the
    differences as its last error), or take the flag off when none is open.

    The workflow's own state (`state`, `revision`) is left as the workflow wrote it: the row
    changes only while it still holds that revision, so a newer record of the workflow wins.
    """
    workflow_status = str(bill.state.get("status") or bill.status)
    error: str | None
    if findings:
        status = "needs_attention"
        error = "drift after reconcile: " + "; ".join(f.message for f in findings)
    else:
        status = workflow_status
        error = bill.state.get("last_error")
    if bill.status == status and bill.last_error == error:
        return False
    table = cast(Table, BillRow.__table__)  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.workflow_id == bill.workflow_id, table.c.revision == bill.revision)
        .values(status=status, last_error=error, updated_at=utcnow())
    )
    with Session(store.engine) as session:
        changed = cast(CursorResult[Any], session.execute(statement)).rowcount == 1
        session.commit()
    return changed
