"""Payee bank details: validation, the masked form people see, and a keyed fingerprint.

A vendor's payment details are the most attacked data in accounts payable (a changed account
on an invoice redirects the payment). remit keeps them sealed in its payee master; workflows,
histories, logs and screens only ever see `masked()` and a `fingerprint()` (an HMAC under a
server-side key, since account numbers are too few to hide behind a plain hash).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.us import rtn

_SPACES = re.compile(r"[\s-]+")
MASK = "••••"


class PayeeRail(StrEnum):
    """How the vendor prefers to be paid (the bill's rail, when it names none)."""

    ach = "ach"
    wire = "wire"
    check = "check"


class PayeeDetails(BaseModel):
    """Where a vendor's money goes. Sensitive: never logged (repr) and never in a history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_name: str | None = Field(default=None, max_length=200)
    account_number: str | None = Field(default=None, max_length=34, repr=False)
    routing_number: str | None = Field(
        default=None, max_length=34, repr=False, description="ABA routing number (US)"
    )
    iban: str | None = Field(default=None, max_length=34, repr=False)
    bic: str | None = Field(default=None, max_length=11)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    rail: PayeeRail | None = None
    remittance_email: str | None = Field(
        default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", repr=False
    )

    @model_validator(mode="before")
    @classmethod
    def _compact(cls, data: object) -> object:
        if isinstance(data, dict):
            data = dict(data)
            for name in ("account_number", "routing_number", "iban", "bic"):
                value = data.get(name)
                if isinstance(value, str):
                    data[name] = _SPACES.sub("", value).upper() or None
            country = data.get("country")
            if isinstance(country, str):
                data["country"] = country.strip().upper() or None
        return data

    @model_validator(mode="after")
    def _checked(self) -> PayeeDetails:
        if self.iban:
            try:
                stdnum_iban.validate(self.iban)
            except StdnumError:
                raise ValueError(
                    "the IBAN does not pass its check digits: compare it with the vendor's "
                    "letterhead or bank confirmation"
                ) from None
        if self.bic:
            try:
                stdnum_bic.validate(self.bic)
            except StdnumError:
                raise ValueError(
                    "the BIC must be 8 or 11 letters and digits (e.g. DEUTDEFF)"
                ) from None
        if self.routing_number:
            if not rtn.is_valid(self.routing_number):
                raise ValueError("the routing number must be 9 digits with a valid ABA check digit")
            if not self.account_number:
                raise ValueError("a routing number needs the account number that goes with it")
        if self.account_number and not re.fullmatch(r"[0-9A-Z]{4,34}", self.account_number):
            raise ValueError("the account number must be 4 to 34 letters or digits")
        if not (self.iban or self.account_number) and self.rail is not PayeeRail.check:
            raise ValueError(
                "give an IBAN, or an account number (with its routing number for US "
                "payments), or choose rail 'check' for a mailed check"
            )
        return self

    # -- what people and histories may see ---------------------------------------------------

    def masked(self) -> str:
        """e.g. 'IBAN ••••3000', 'ACH ••••6789', 'check to Northwind Office Supply'."""
        if self.iban:
            text = f"IBAN {self.iban[:2]}{MASK}{self.iban[-4:]}"
            return text + (f" · BIC {self.bic}" if self.bic else "")
        if self.account_number:
            kind = "ACH" if self.routing_number else "account"
            return f"{kind} {MASK}{self.account_number[-4:]}"
        return f"check to {self.account_name or 'the vendor'}"

    def identity(self) -> str:
        """What makes two details the same destination (names and e-mail addresses aside)."""
        if self.iban:
            return f"iban:{self.iban}"
        if self.account_number:
            return f"acct:{self.routing_number or ''}:{self.account_number}"
        return "check"

    def fingerprint(self, key: bytes) -> str:
        """A keyed hash of the destination: equal fingerprints, equal destinations."""
        digest = hmac.new(key, self.identity().encode(), hashlib.sha256).hexdigest()
        return f"fp_{digest[:32]}"


class UnreadableBankDetails(ValueError):
    """A document's bank details that do not parse as an IBAN or routing/account pair."""


def details_from_document(
    text: str, *, account_name: str | None = None, bic: str | None = None
) -> PayeeDetails:
    """Bank details as a document writes them: an IBAN, or US '<routing>/<account>'."""
    compact = _SPACES.sub("", text).upper()
    try:
        if compact[:2].isalpha():
            return PayeeDetails(iban=compact, bic=bic, account_name=account_name)
        routing, separator, number = compact.partition("/")
        if separator:
            return PayeeDetails(
                routing_number=routing, account_number=number, account_name=account_name
            )
        return PayeeDetails(account_number=compact, account_name=account_name)
    except ValueError as err:
        raise UnreadableBankDetails(str(err)) from None


def fingerprint_key(secret: str) -> bytes:
    """The HMAC key for fingerprints, derived from a deployment secret (not the secret itself)."""
    return hashlib.sha256(b"remit payee fingerprint v1\0" + secret.encode()).digest()
