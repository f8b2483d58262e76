"""The payee master: only reviewed changes change where a vendor's money goes."""

from __future__ import annotations

import threading

import pytest

from accounting.payees import PayeeDetails, fingerprint_key
from runtime.secrets import SecretBox
from store import PayeeChangeRefused, PayeeStore, SameAsVerified, Store

OLD = PayeeDetails(routing_number="021000021", account_number="000123456789")
NEW = PayeeDetails(routing_number="011000015", account_number="000987654321")


@pytest.fixture
def payees(store: Store) -> PayeeStore:
    return PayeeStore(
        store, SecretBox(SecretBox.generate_key()), fingerprint_key=fingerprint_key("k")
    )


def seed(payees: PayeeStore) -> None:
    payees.record_verified(
        connection_id="c1",
        vendor_id="V1",
        vendor_name="Northwind",
        details=OLD,
        source="import:quickbooks",
        verified_by="olivia",
        verification_method="imported from the ERP vendor master",
    )


def propose(payees: PayeeStore, details: PayeeDetails = NEW, by: str = "sam") -> str:
    proposal = payees.propose(
        connection_id="c1",
        vendor_id="V1",
        vendor_name="Northwind",
        details=details,
        source="document",
        proposed_by=by,
        reason="INV-1 names other details",
        bill_workflow_id="bill/c1/INV-1",
    )
    return proposal.change.id


def test_details_are_sealed_and_shown_masked(payees: PayeeStore, store: Store) -> None:
    seed(payees)
    row = payees.get_payee("c1", "V1")
    assert row is not None and row.masked == "ACH ••••6789" and row.version == 1
    assert b"000123456789" not in row.details_encrypted
    assert payees.details_of(row) == OLD
    with store.engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT * FROM payees").fetchall()
    assert "000123456789" not in repr(raw)


def test_a_change_needs_verification_then_two_approvers_other_than_the_proposer(
    payees: PayeeStore,
) -> None:
    seed(payees)
    change_id = propose(payees)

    with pytest.raises(PayeeChangeRefused, match="not verified yet"):
        payees.approve(change_id, by="carol")
    with pytest.raises(PayeeChangeRefused, match="cannot also verify"):
        payees.verify(change_id, by="sam", method="call-back")
    payees.verify(change_id, by="olivia", method="call-back to the number on file")
    with pytest.raises(PayeeChangeRefused, match="cannot approve"):
        payees.approve(change_id, by="sam")

    first = payees.approve(change_id, by="carol")
    assert first.payee is None and first.change.status == "verified"
    assert payees.details_of(payees.get_payee("c1", "V1")) == OLD  # type: ignore[arg-type]
    with pytest.raises(PayeeChangeRefused, match="already approved"):
        payees.approve(change_id, by="carol")

    second = payees.approve(change_id, by="dave", comment="confirmed with the vendor's AR")
    assert second.change.status == "approved" and second.payee is not None
    payee = payees.get_payee("c1", "V1")
    assert payee is not None
    assert (payee.version, payee.masked, payee.approved_by) == (
        2,
        "ACH ••••4321",
        ["carol", "dave"],
    )
    assert payee.source == f"change:{change_id}" and payee.verified_by == "olivia"
    assert payees.details_of(payee) == NEW


def test_the_same_destination_is_proposed_once_while_open(payees: PayeeStore) -> None:
    seed(payees)
    first = propose(payees)
    again = payees.propose(
        connection_id="c1",
        vendor_id="V1",
        vendor_name="Northwind",
        details=PayeeDetails(routing_number="011 000 015", account_number="000-987-654-321"),
        source="api",
        proposed_by="alice",
    )
    assert not again.created and again.change.id == first
    with pytest.raises(SameAsVerified):
        propose(payees, OLD)


def test_a_rejected_change_changes_nothing_and_can_be_proposed_again(
    payees: PayeeStore,
) -> None:
    seed(payees)
    change_id = propose(payees)
    with pytest.raises(PayeeChangeRefused, match="needs a reason"):
        payees.reject(change_id, by="carol", reason=" ")
    rejected = payees.reject(change_id, by="carol", reason="the vendor never changed banks")
    assert rejected.change.status == "rejected"
    with pytest.raises(PayeeChangeRefused, match="rejected"):
        payees.verify(change_id, by="olivia", method="call-back")
    assert payees.get_payee("c1", "V1").version == 1  # type: ignore[union-attr]
    assert propose(payees) != change_id


def test_a_change_proposed_against_an_older_version_cannot_be_applied(
    payees: PayeeStore,
) -> None:
    seed(payees)
    stale = propose(payees, by="sam")
    third = PayeeDetails(iban="DE89370400440532013000")
    fresh = propose(payees, third, by="alice")
    for change_id in (fresh, stale):
        payees.verify(change_id, by="olivia", method="call-back")
        payees.approve(change_id, by="carol")
    payees.approve(fresh, by="dave")
    with pytest.raises(PayeeChangeRefused, match="payee changed since"):
        payees.approve(stale, by="dave")
    assert payees.get_payee("c1", "V1").masked == "IBAN DE••••3000"  # type: ignore[union-attr]


def test_a_first_payee_for_a_new_vendor_goes_through_the_same_review(
    payees: PayeeStore,
) -> None:
    change_id = propose(payees)
    assert payees.get_change(change_id).replaces_version is None  # type: ignore[union-attr]
    payees.verify(change_id, by="olivia", method="bank letter on the vendor's letterhead")
    payees.approve(change_id, by="carol")
    decision = payees.approve(change_id, by="dave")
    assert decision.payee is not None and decision.payee.version == 1


def test_seeding_never_overwrites_other_verified_details(payees: PayeeStore) -> None:
    seed(payees)
    seed(payees)  # the same details again: a no-op
    with pytest.raises(PayeeChangeRefused, match="propose a change"):
        payees.record_verified(
            connection_id="c1",
            vendor_id="V1",
            vendor_name="Northwind",
            details=NEW,
            source="import:quickbooks",
            verified_by="olivia",
            verification_method="import",
        )


def test_concurrent_approvals_are_both_kept(payees: PayeeStore) -> None:
    seed(payees)
    change_id = propose(payees)
    payees.verify(change_id, by="olivia", method="call-back")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def approve(by: str) -> None:
        start.wait()
        try:
            payees.approve(change_id, by=by)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("carol", "dave")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    change = payees.get_change(change_id)
    assert change is not None and sorted(change.approvers) == ["carol", "dave"]
    assert change.status == "approved"
    assert payees.get_payee("c1", "V1").version == 2  # type: ignore[union-attr]
