"""The payee master: the bank details remit may pay each ERP vendor, and reviewed changes to them.

A payee is verified details for one (connection, ERP vendor), sealed at rest. Nothing changes
them but a `PayeeChangeRow` that went through every step: proposed (from a document, the API
or an operator), verified out of band by someone other than the proposer, and approved by two
more people, neither of them the proposer. The rules are enforced here, inside one transaction
per step, so every way in (API, CLI, activities) gets the same answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, cast

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Field, Session

from accounting.payees import PayeeDetails
from store.db import RecordNotFound, Store
from store.models import _id, _json, _StoreModel, _text, _timestamp
from store.types import utcnow

APPROVALS_REQUIRED = 2
CHANGE_STATUSES = ("proposed", "verified", "approved", "rejected")
OPEN_STATUSES = ("proposed", "verified")
ChangeSource = Literal["document", "api", "operator", "erp"]


class Sealer(Protocol):
    """SecretBox's shape: what seals payee details at rest."""

    def seal(self, credentials: dict[str, str]) -> bytes: ...
    def open(self, sealed: bytes) -> dict[str, str]: ...


# Every step reads a row, decides, and writes it back: the revision column makes a write that
# raced another step fail (StaleDataError) instead of silently dropping the other's approval.
_PAYEE_REVISION = Column("revision", Integer(), nullable=False)
_CHANGE_REVISION = Column("revision", Integer(), nullable=False)


class PayeeRow(_StoreModel, table=True):
    """The verified details remit pays one ERP vendor of one connection (one row per vendor)."""

    __tablename__ = "payees"
    __table_args__ = (UniqueConstraint("connection_id", "vendor_id"),)
    __mapper_args__ = {"version_id_col": _PAYEE_REVISION}

    id: str = _id(primary_key=True)
    connection_id: str = _id()
    vendor_id: str = _id()
    vendor_name: str = Field(sa_column=Column(String(500), nullable=False))
    version: int = Field(sa_column=Column(Integer(), nullable=False))
    status: str = Field(
        default="verified",
        sa_column=Column(String(32), nullable=False),
        description="verified, or revoked (pays nothing until a new change is approved)",
    )
    details_encrypted: bytes = Field(repr=False, sa_column=Column(LargeBinary(), nullable=False))
    masked: str = Field(sa_column=Column(String(200), nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    rail: str | None = _text(16, nullable=True)
    source: str = Field(
        sa_column=Column(String(255), nullable=False),
        description="how it got here: change:<id>, import:<platform>, sandbox",
    )
    verified_by: str = _id()
    verification_method: str = Field(sa_column=Column(String(500), nullable=False))
    verified_at: datetime = _timestamp(nullable=False)
    approved_by: list[str] = Field(default_factory=list, sa_column=Column(_json(), nullable=False))
    revision: int = Field(default=1, sa_column=_PAYEE_REVISION)
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)


class PayeeChangeRow(_StoreModel, table=True):
    """A proposed change of a vendor's payment details, and every step of its review."""

    __tablename__ = "payee_changes"
    __table_args__ = (
        UniqueConstraint("open_key"),
        Index("ix_payee_changes_connection_id_vendor_id", "connection_id", "vendor_id"),
        Index("ix_payee_changes_status_created_at", "status", "created_at"),
    )
    __mapper_args__ = {"version_id_col": _CHANGE_REVISION}

    id: str = _id(primary_key=True)
    connection_id: str = _id()
    vendor_id: str = _id()
    vendor_name: str = Field(sa_column=Column(String(500), nullable=False))
    status: str = Field(
        default="proposed",
        sa_column=Column(String(32), nullable=False),
        description="proposed, verified, approved or rejected",
    )
    source: str = Field(sa_column=Column(String(32), nullable=False))
    proposed_by: str = _id()
    reason: str | None = _text(nullable=True)
    bill_workflow_id: str | None = _id(nullable=True)
    details_encrypted: bytes = Field(repr=False, sa_column=Column(LargeBinary(), nullable=False))
    masked: str = Field(sa_column=Column(String(200), nullable=False))
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    replaces_version: int | None = Field(default=None, sa_column=Column(Integer(), nullable=True))
    replaces_masked: str | None = _text(200, nullable=True)
    verification_method: str | None = _text(500, nullable=True)
    verification_note: str | None = _text(nullable=True)
    verified_by: str | None = _id(nullable=True)
    verified_at: datetime | None = _timestamp(nullable=True)
    approvals: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(_json(), nullable=False)
    )
    rejected_by: str | None = _id(nullable=True)
    rejected_at: datetime | None = _timestamp(nullable=True)
    rejection_reason: str | None = _text(nullable=True)
    # Set while the change is open, so one destination is proposed once per vendor at a time.
    open_key: str | None = _text(500, nullable=True)
    revision: int = Field(default=1, sa_column=_CHANGE_REVISION)
    created_at: datetime = _timestamp(nullable=False)
    updated_at: datetime = _timestamp(nullable=False)

    @property
    def approvers(self) -> list[str]:
        return [str(a["by"]) for a in self.approvals]


class PayeeChangeRefused(ValueError):
    """A step the rules do not allow, with the reason in words (answered as 409 or 403)."""


class SameAsVerified(PayeeChangeRefused):
    """The proposed details are the vendor's verified details already: nothing to change."""


@dataclass(frozen=True)
class Proposal:
    change: PayeeChangeRow
    created: bool


@dataclass(frozen=True)
class Decision:
    """A change after a step; `payee` is set when that step applied it to the master."""

    change: PayeeChangeRow
    payee: PayeeRow | None = None


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class PayeeStore:
    """Typed access to the payee tables; details are sealed with `box` and fingerprinted
    with `fingerprint_key`. Synchronous, like Store."""

    def __init__(self, store: Store, box: Sealer, *, fingerprint_key: bytes) -> None:
        self.engine = store.engine
        self._box = box
        self._key = fingerprint_key

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # -- details ---------------------------------------------------------------------------

    def fingerprint(self, details: PayeeDetails) -> str:
        return details.fingerprint(self._key)

    def details_of(self, row: PayeeRow | PayeeChangeRow) -> PayeeDetails:
        """The sealed details, opened: for the payment activity only, never for display."""
        return PayeeDetails.model_validate(self._box.open(row.details_encrypted))

    def _seal(self, details: PayeeDetails) -> bytes:
        values = details.model_dump(mode="json", exclude_none=True)
        return self._box.seal({name: str(value) for name, value in values.items()})

    # -- the master ------------------------------------------------------------------------

    def get_payee(self, connection_id: str, vendor_id: str) -> PayeeRow | None:
        table = _table(PayeeRow)
        statement = select(PayeeRow).where(
            table.c.connection_id == connection_id, table.c.vendor_id == vendor_id
        )
        with self._session() as session:
            return session.scalars(statement).first()

    def get_payee_by_id(self, payee_id: str) -> PayeeRow | None:
        with self._session() as session:
            return session.get(PayeeRow, payee_id)

    def list_payees(self, *, connection_id: str | None = None) -> list[PayeeRow]:
        table = _table(PayeeRow)
        statement = select(PayeeRow).order_by(table.c.connection_id, table.c.vendor_name)
        if connection_id is not None:
            statement = statement.where(table.c.connection_id == connection_id)
        with self._session() as session:
            return list(session.scalars(statement))

    def record_verified(
        self,
        *,
        connection_id: str,
        vendor_id: str,
        vendor_name: str,
        details: PayeeDetails,
        source: str,
        verified_by: str,
        verification_method: str,
        approved_by: list[str] | None = None,
    ) -> PayeeRow:
        """Seed the master where the vendor has no payee yet (an import of the ERP's vendor
        master that a person attests, or the sandbox's demo data). An existing payee is never
        overwritten here: different details must go through `propose`."""
        with self._session() as session:
            existing = self._payee_in(session, connection_id, vendor_id)
            if existing is not None:
                if existing.fingerprint != self.fingerprint(details):
                    raise PayeeChangeRefused(
                        f"vendor {vendor_id} already has verified details ({existing.masked}); "
                        "propose a change instead"
                    )
                return existing
            now = utcnow()
            row = PayeeRow(
                id=_new_id("py"),
                connection_id=connection_id,
                vendor_id=vendor_id,
                vendor_name=vendor_name,
                version=1,
                details_encrypted=self._seal(details),
                masked=details.masked(),
                fingerprint=self.fingerprint(details),
                rail=details.rail.value if details.rail else None,
                source=source,
                verified_by=verified_by,
                verification_method=verification_method,
                verified_at=now,
                approved_by=list(approved_by or []),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                raced = self._payee_in(session, connection_id, vendor_id)
                if raced is None or raced.fingerprint != row.fingerprint:
                    raise PayeeChangeRefused(
                        f"vendor {vendor_id} got other verified details at the same moment"
                    ) from None
                return raced
            return row

    def _payee_in(self, session: Session, connection_id: str, vendor_id: str) -> PayeeRow | None:
        table = _table(PayeeRow)
        return session.scalars(
            select(PayeeRow).where(
                table.c.connection_id == connection_id, table.c.vendor_id == vendor_id
            )
        ).first()

    # -- changes ---------------------------------------------------------------------------

    def propose(
        self,
        *,
        connection_id: str,
        vendor_id: str,
        vendor_name: str,
        details: PayeeDetails,
        source: ChangeSource,
        proposed_by: str,
        reason: str | None = None,
        bill_workflow_id: str | None = None,
    ) -> Proposal:
        """Open a change, or return the open one that proposes the same destination."""
        fingerprint = self.fingerprint(details)
        open_key = f"{connection_id}/{vendor_id}/{fingerprint}"
        with self._session() as session:
            current = self._payee_in(session, connection_id, vendor_id)
            if current is not None and current.status == "verified":
                if current.fingerprint == fingerprint:
                    raise SameAsVerified(
                        f"{details.masked()} is already the verified payee of vendor {vendor_id}"
                    )
            table = _table(PayeeChangeRow)
            already = session.scalars(
                select(PayeeChangeRow).where(table.c.open_key == open_key)
            ).first()
            if already is not None:
                return Proposal(already, created=False)
            now = utcnow()
            change = PayeeChangeRow(
                id=_new_id("pc"),
                connection_id=connection_id,
                vendor_id=vendor_id,
                vendor_name=vendor_name,
                source=source,
                proposed_by=proposed_by,
                reason=reason,
                bill_workflow_id=bill_workflow_id,
                details_encrypted=self._seal(details),
                masked=details.masked(),
                fingerprint=fingerprint,
                replaces_version=current.version if current is not None else None,
                replaces_masked=current.masked if current is not None else None,
                open_key=open_key,
                created_at=now,
                updated_at=now,
            )
            session.add(change)
            try:
                session.commit()
            except IntegrityError:
                # The same destination was proposed at the same moment: that one stands.
                session.rollback()
                raced = session.scalars(
                    select(PayeeChangeRow).where(table.c.open_key == open_key)
                ).first()
                if raced is None:
                    raise
                return Proposal(raced, created=False)
            return Proposal(change, created=True)

    def get_change(self, change_id: str) -> PayeeChangeRow | None:
        with self._session() as session:
            return session.get(PayeeChangeRow, change_id)

    def list_changes(
        self,
        *,
        status: str | None = None,
        connection_id: str | None = None,
        vendor_id: str | None = None,
    ) -> list[PayeeChangeRow]:
        table = _table(PayeeChangeRow)
        statement = select(PayeeChangeRow).order_by(table.c.created_at, table.c.id)
        if status is not None:
            statement = statement.where(table.c.status == status)
        if connection_id is not None:
            statement = statement.where(table.c.connection_id == connection_id)
        if vendor_id is not None:
            statement = statement.where(table.c.vendor_id == vendor_id)
        with self._session() as session:
            return list(session.scalars(statement))

    def open_change_for(
        self, connection_id: str, vendor_id: str, fingerprint: str
    ) -> PayeeChangeRow | None:
        table = _table(PayeeChangeRow)
        statement = select(PayeeChangeRow).where(
            table.c.open_key == f"{connection_id}/{vendor_id}/{fingerprint}"
        )
        with self._session() as session:
            return session.scalars(statement).first()

    def _step(
        self, change_id: str, apply: Callable[[Session, PayeeChangeRow], PayeeRow | None]
    ) -> Decision:
        for _ in range(3):
            with self._session() as session:
                change = session.get(PayeeChangeRow, change_id)
                if change is None:
                    raise RecordNotFound(f"no payee change {change_id!r}")
                payee = apply(session, change)
                change.updated_at = utcnow()
                session.add(change)
                try:
                    session.commit()
                except (StaleDataError, IntegrityError):
                    # Another step won the race; decide again on what it wrote.
                    session.rollback()
                    continue
                return Decision(change, payee)
        raise PayeeChangeRefused(f"change {change_id} is being changed by someone else; try again")

    def verify(self, change_id: str, *, by: str, method: str, note: str | None = None) -> Decision:
        """Record how the new details were confirmed out of band, and by whom."""
        if not method.strip():
            raise PayeeChangeRefused(
                "say how the details were verified, e.g. 'call-back to the number on file'"
            )

        def apply(session: Session, change: PayeeChangeRow) -> None:
            _must_be(change, "proposed", "verify")
            if by == change.proposed_by:
                raise PayeeChangeRefused(
                    f"{by} proposed this change and cannot also verify it (separation of duties)"
                )
            change.status = "verified"
            change.verified_by = by
            change.verification_method = method.strip()
            change.verification_note = note
            change.verified_at = utcnow()
            return None

        return self._step(change_id, apply)

    def approve(
        self,
        change_id: str,
        *,
        by: str,
        comment: str | None = None,
        required: int = APPROVALS_REQUIRED,
    ) -> Decision:
        """One approval; the last one required applies the change to the master."""

        def apply(session: Session, change: PayeeChangeRow) -> PayeeRow | None:
            if change.status == "proposed":
                raise PayeeChangeRefused(
                    f"change {change.id} is not verified yet: someone must confirm the details "
                    "out of band (and record how) before anyone approves"
                )
            _must_be(change, "verified", "approve")
            if by == change.proposed_by:
                raise PayeeChangeRefused(
                    f"{by} proposed this change and cannot approve it (separation of duties)"
                )
            if by in change.approvers:
                raise PayeeChangeRefused(f"{by} already approved change {change.id}")
            change.approvals = [
                *change.approvals,
                {"by": by, "at": utcnow().isoformat(), "comment": comment},
            ]
            if len(change.approvals) < required:
                return None
            return self._apply(session, change)

        return self._step(change_id, apply)

    def reject(self, change_id: str, *, by: str, reason: str) -> Decision:
        if not reason.strip():
            raise PayeeChangeRefused("a rejection needs a reason")

        def apply(session: Session, change: PayeeChangeRow) -> None:
            if change.status not in OPEN_STATUSES:
                raise PayeeChangeRefused(f"change {change.id} is already {change.status}")
            change.status = "rejected"
            change.rejected_by = by
            change.rejected_at = utcnow()
            change.rejection_reason = reason.strip()
            change.open_key = None
            return None

        return self._step(change_id, apply)

    def _apply(self, session: Session, change: PayeeChangeRow) -> PayeeRow:
        """Make the change's details the vendor's verified payee (a new version)."""
        current = self._payee_in(session, change.connection_id, change.vendor_id)
        if current is not None and (current.version != (change.replaces_version or 0)):
            raise PayeeChangeRefused(
                f"the payee changed since this change was proposed (now version "
                f"{current.version}, {current.masked}); propose the change again"
            )
        assert change.verified_by and change.verification_method
        now = utcnow()
        details = PayeeDetails.model_validate(self._box.open(change.details_encrypted))
        values: dict[str, Any] = {
            "vendor_name": change.vendor_name,
            "status": "verified",
            "details_encrypted": change.details_encrypted,
            "masked": change.masked,
            "fingerprint": change.fingerprint,
            "rail": details.rail.value if details.rail else None,
            "source": f"change:{change.id}",
            "verified_by": change.verified_by,
            "verification_method": change.verification_method,
            "verified_at": change.verified_at or now,
            "approved_by": change.approvers,
            "updated_at": now,
        }
        if current is None:
            payee = PayeeRow(
                id=_new_id("py"),
                connection_id=change.connection_id,
                vendor_id=change.vendor_id,
                version=1,
                created_at=now,
                **values,
            )
        else:
            payee = current
            for name, value in values.items():
                setattr(payee, name, value)
            payee.version = current.version + 1
        session.add(payee)
        change.status = "approved"
        change.open_key = None
        return payee


def _must_be(change: PayeeChangeRow, status: str, action: str) -> None:
    if change.status != status:
        raise PayeeChangeRefused(f"change {change.id} is {change.status}; it cannot {action}")
