"""Payee details: what is accepted, what people see, and when two details are the same."""

from __future__ import annotations

import pytest

from accounting.payees import (
    PayeeDetails,
    PayeeRail,
    UnreadableBankDetails,
    details_from_document,
    fingerprint_key,
)

KEY = fingerprint_key("test-secret")


def test_us_details_are_masked_to_the_last_four() -> None:
    details = PayeeDetails(routing_number="021000021", account_number="000123456789")
    assert details.masked() == "ACH ••••6789"
    assert "000123456789" not in repr(details) and "021000021" not in repr(details)


def test_an_iban_is_compacted_checked_and_masked() -> None:
    details = PayeeDetails(iban="de89 3704 0044 0532 0130 00", bic="COBADEFFXXX")
    assert details.iban == "DE89370400440532013000"
    assert details.masked() == "IBAN DE••••3000 · BIC COBADEFFXXX"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"iban": "DE89370400440532013001"}, "check digits"),
        ({"routing_number": "021000022", "account_number": "1234567"}, "ABA check digit"),
        ({"routing_number": "021000021"}, "needs the account number"),
        ({"account_number": "12"}, "4 to 34"),
        ({}, "give an IBAN"),
        ({"iban": "DE89370400440532013000", "bic": "NOPE"}, "BIC"),
    ],
)
def test_bad_details_are_refused_with_a_reason(given: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PayeeDetails(**given)


def test_a_check_payee_needs_no_account() -> None:
    details = PayeeDetails(account_name="Initech", rail=PayeeRail.check)
    assert details.masked() == "check to Initech"


def test_fingerprints_ignore_spelling_and_names_but_not_the_destination() -> None:
    a = PayeeDetails(routing_number="021000021", account_number="000123456789", account_name="A")
    b = PayeeDetails(routing_number="021 000 021", account_number="000-123-456-789")
    c = PayeeDetails(routing_number="021000021", account_number="000123456780")
    assert a.fingerprint(KEY) == b.fingerprint(KEY)
    assert a.fingerprint(KEY) != c.fingerprint(KEY)
    assert a.fingerprint(KEY) != a.fingerprint(fingerprint_key("another deployment"))
    assert "6789" not in a.fingerprint(KEY)


def test_document_details_as_invoices_write_them() -> None:
    us = details_from_document("021000021/000123456789")
    assert (us.routing_number, us.account_number) == ("021000021", "000123456789")
    iban = details_from_document("DE89 3704 0044 0532 0130 00", bic="COBADEFF")
    assert iban.iban == "DE89370400440532013000" and iban.bic == "COBADEFF"
    with pytest.raises(UnreadableBankDetails, match="check digits"):
        details_from_document("DE00 3704 0044 0532 0130 00")
