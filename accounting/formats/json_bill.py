"""The remit JSON bill format (shared/examples/bill.json) read into a BillDraft, field by field."""

from __future__ import annotations

import json
import re
import types
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from accounting.documents import BillDraft, DocumentRef, DraftLine, VendorDetails
from accounting.formats.problems import (
    MAX_AMOUNT,
    CaptureError,
    Problem,
    check_fits_currency,
    decimal_places,
    problems_from_validation_error,
    show,
    within_rounding,
)
from accounting.money import CurrencyCode, minor_units, quantize

MEDIA_TYPE = "application/json"

# xsd:decimal's spelling: no exponents, no thousands separators, no currency symbols.
_PLAIN_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY = re.compile(r"[A-Za-z]{2}")


def _failure(kind: str, message: str, field: str | None = None) -> PydanticCustomError:
    # The message travels in the context, so user-supplied braces are never read as a template.
    context: dict[str, Any] = {"detail": message}
    if field is not None:
        context["field"] = field
    return PydanticCustomError(kind, "{detail}", context)


def parse_decimal(value: Any) -> Decimal:
    """A JSON number (already a Decimal via parse_float) or a numeric string, as a Decimal."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _failure("amount_type", 'must be a number or a numeric string such as "42.50"')
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise _failure(
                "amount_format",
                f'{value!r} is not a number: write amounts like "1250.00", without thousands '
                "separators, currency symbols or exponents",
            )
        number = Decimal(text)
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise _failure("amount_format", "must be a finite number")
    if abs(number) >= MAX_AMOUNT:
        raise _failure("amount_range", f"{show(number)} is too large for an amount")
    if decimal_places(number) > 6:
        raise _failure("amount_format", f"{show(number)} has more than 6 decimal places")
    if number.as_tuple().exponent > 0:  # type: ignore[operator]
        number = number.quantize(Decimal(1))  # 1E+2 (from the JSON number 1e2) becomes 100
    return number


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise _failure("amount_range", f"must be greater than zero, got {show(value)}")
    return value


def _not_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise _failure("amount_range", f"must not be negative, got {show(value)}")
    return value


def _iso_date(value: Any) -> Any:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        raise _failure(
            "date_format", f"{value!r} is not a date: write it as YYYY-MM-DD, such as 2026-11-02"
        )
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _failure("date_format", f"{value!r} is not a real calendar date") from None


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.fullmatch(value):
        raise _failure("email_format", f"{value!r} is not an email address")
    return value


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    if not _COUNTRY.fullmatch(value):
        raise _failure(
            "country_format",
            f"{value!r} is not a country code: use the two-letter ISO 3166 code, such as US or DE",
        )
    return value.upper()


Number = Annotated[Decimal, BeforeValidator(parse_decimal)]
PositiveNumber = Annotated[Number, AfterValidator(_positive)]
NonNegativeNumber = Annotated[Number, AfterValidator(_not_negative)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=False)


class JsonVendor(_Wire):
    name: str = Field(min_length=1, max_length=200)
    tax_id: OptionalText = None
    email: Annotated[OptionalText, AfterValidator(_email)] = None
    country: Annotated[OptionalText, AfterValidator(_country)] = None
    address: OptionalText = None
    bank_account: OptionalText = None


class JsonPayment(_Wire):
    bank_account: OptionalText = None


class JsonLineItem(_Wire):
    description: OptionalText = None
    quantity: PositiveNumber | None = None
    unit_amount: PositiveNumber | None = None
    total_amount: PositiveNumber
    account: OptionalText = None
    department: OptionalText = None
    class_: OptionalText = Field(default=None, alias="class")
    location: OptionalText = None

    @model_validator(mode="after")
    def _arithmetic(self, info: ValidationInfo) -> JsonLineItem:
        currency = (info.context or {}).get("currency")
        if currency is None:
            return self  # the unknown currency is reported on currency_code
        too_precise = check_fits_currency(self.total_amount, currency)
        if too_precise:
            raise _failure("line_amount", too_precise, "total_amount")
        if self.quantity is not None and self.unit_amount is not None:
            expected = self.quantity * self.unit_amount
            if not within_rounding(expected, self.total_amount, currency):
                raise _failure(
                    "line_arithmetic",
                    f"quantity {show(self.quantity)} × unit_amount {show(self.unit_amount)} = "
                    f"{show(expected)}, but total_amount is {show(self.total_amount)}: "
                    "correct the quantity, the unit amount or the line total",
                    "total_amount",
                )
        return self


class JsonBill(_Wire):
    # currency_code comes first so the amount validators below can see it in info.data.
    currency_code: CurrencyCode
    document_number: str = Field(min_length=1, max_length=64)
    issue_date: IsoDate
    due_date: IsoDate | None = None
    vendor: JsonVendor
    memo: OptionalText = None
    purchase_order: OptionalText = None
    line_items: list[JsonLineItem] = Field(min_length=1)
    tax_amount: NonNegativeNumber = Decimal("0")
    total_amount: PositiveNumber
    payment: JsonPayment | None = None

    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, due: date | None, info: ValidationInfo) -> date | None:
        issue = info.data.get("issue_date")
        if due is not None and issue is not None and due < issue:
            raise _failure("date_order", f"due date {due} is before the issue date {issue}")
        return due

    @field_validator("tax_amount", "total_amount")
    @classmethod
    def _fits_currency(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency_code")
        if currency is not None:
            too_precise = check_fits_currency(value, currency)
            if too_precise:
                raise _failure("amount_precision", too_precise)
        return value

    @model_validator(mode="after")
    def _totals(self) -> JsonBill:
        lines = sum((line.total_amount for line in self.line_items), Decimal("0"))
        if lines + self.tax_amount != self.total_amount:
            raise _failure(
                "document_totals",
                f"the line items' total_amount add up to {show(lines)} and tax_amount is "
                f"{show(self.tax_amount)}, which makes {show(lines + self.tax_amount)}, but "
                f"total_amount is {show(self.total_amount)}: correct the lines, the tax or the "
                "total",
                "total_amount",
            )
        paid_to = self.payment.bank_account if self.payment else None
        if paid_to and self.vendor.bank_account and paid_to != self.vendor.bank_account:
            raise _failure(
                "bank_account_conflict",
                f"names bank account {paid_to!r} but vendor.bank_account is "
                f"{self.vendor.bank_account!r}: give one account",
                "payment.bank_account",
            )
        return self


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list, Annotated):
        for argument in get_args(annotation):
            found = _nested_model(argument)
            if found is not None:
                return found
    return None


def accepted_fields(loc: tuple[int | str, ...]) -> list[str]:
    """The field names the JSON bill format accepts at `loc` (for 'unknown field' messages)."""
    model: type[BaseModel] = JsonBill
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        nested = _nested_model(fields[part].annotation) if part in fields else None
        if nested is None:
            return []
        model = nested
    return [field.alias or name for name, field in model.model_fields.items()]


class _DuplicateKey(Exception):
    pass


class _NonFiniteNumber(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two values for one key would leave the bill ambiguous; json.loads would keep the last.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


def load_json_object(content: bytes) -> dict[str, Any]:
    """Decode a JSON document, numbers as Decimal, refusing what json.loads would let through."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptureError(
            [Problem("document", f"is not UTF-8 text (bad byte at offset {exc.start})")]
        ) from None
    try:
        data = json.loads(
            text,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_refuse_duplicates,
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise CaptureError([Problem(where, f"not valid JSON: {exc.msg}")]) from None
    except _DuplicateKey as exc:
        raise CaptureError(
            [Problem("document", f"the key {exc.args[0]!r} appears twice in one object")]
        ) from None
    except _NonFiniteNumber as exc:
        raise CaptureError(
            [Problem("document", f"{exc.args[0]} is not a number an amount can have")]
        ) from None
    except RecursionError:
        raise CaptureError([Problem("document", "JSON is nested too deeply")]) from None
    if not isinstance(data, dict):
        raise CaptureError(
            [Problem("document", "a JSON bill must be one object ({...}) at the top level")]
        )
    return data


def _known_currency(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    try:
        minor_units(code)
    except KeyError:
        return None
    return code


def parse_json_bill(content: bytes, *, source: DocumentRef | None = None) -> BillDraft:
    """Read a remit JSON bill; raise CaptureError listing every problem with its JSON path.

    Locations are JSON paths with 0-based list indexes: line_items[0] is the first line.
    """
    data = load_json_object(content)
    currency = _known_currency(data.get("currency_code"))
    try:
        bill = JsonBill.model_validate(data, context={"currency": currency})
    except ValidationError as exc:
        raise CaptureError(
            problems_from_validation_error(exc, accepted_fields=accepted_fields)
        ) from None
    return _to_draft(bill, source)


def _to_draft(bill: JsonBill, source: DocumentRef | None) -> BillDraft:
    currency = bill.currency_code
    vendor = bill.vendor
    try:
        return BillDraft(
            document_number=bill.document_number,
            issue_date=bill.issue_date,
            due_date=bill.due_date,
            currency=currency,
            vendor=VendorDetails(
                name=vendor.name,
                tax_id=vendor.tax_id,
                email=vendor.email,
                country=vendor.country,
                address=vendor.address,
                bank_account=(bill.payment.bank_account if bill.payment else None)
                or vendor.bank_account,
            ),
            lines=[
                DraftLine(
                    description=line.description,
                    quantity=line.quantity,
                    unit_amount=line.unit_amount,
                    amount=quantize(line.total_amount, currency),
                    account=line.account,
                    department=line.department,
                    class_=line.class_,
                    location=line.location,
                )
                for line in bill.line_items
            ],
            tax_amount=quantize(bill.tax_amount, currency),
            total=quantize(bill.total_amount, currency),
            memo=bill.memo,
            purchase_order=bill.purchase_order,
            source=source,
        )
    except ValidationError as exc:
        # The wire checks above mirror the draft's own; this only fires if the model grows a rule.
        raise CaptureError(
            problems_from_validation_error(
                exc,
                rename={
                    "lines": "line_items",
                    "amount": "total_amount",
                    "total": "total_amount",
                    "currency": "currency_code",
                },
            )
        ) from None
