"""parse_document: format sniffing, the document reference, the size limit and the document key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from accounting.formats import (
    MAX_DOCUMENT_BYTES,
    CaptureError,
    DocumentFormat,
    Problem,
    document_key,
    parse_document,
)


def _refusal(content: bytes, **kwargs: Any) -> CaptureError:
    with pytest.raises(CaptureError) as error:
        parse_document(content, **kwargs)
    return error.value


def test_the_source_reference_describes_the_exact_bytes(bill_json_bytes: bytes) -> None:
    captured = parse_document(bill_json_bytes, file_name="bill.json", media_type="application/json")
    assert captured.format is DocumentFormat.json_bill
    assert captured.content == bill_json_bytes
    source = captured.draft.source
    assert source is not None
    assert source.sha256 == hashlib.sha256(bill_json_bytes).hexdigest()
    assert source.size == len(bill_json_bytes)
    assert source.file_name == "bill.json"
    assert source.media_type == "application/json"
    assert captured.key == source.sha256 == document_key(bill_json_bytes)


def test_the_same_bytes_give_the_same_key_and_any_change_a_new_one(
    bill_json_bytes: bytes,
) -> None:
    first = parse_document(bill_json_bytes)
    again = parse_document(bytes(bill_json_bytes), file_name="other-name.json")
    assert first.key == again.key == document_key(bill_json_bytes)
    reformatted = json.dumps(json.loads(bill_json_bytes)).encode()
    same_bill = parse_document(reformatted)
    assert same_bill.draft.model_dump(exclude={"source"}) == first.draft.model_dump(
        exclude={"source"}
    )
    assert same_bill.key == document_key(reformatted) != first.key
    assert len(first.key) == 64


def test_the_bytes_decide_the_format_not_the_label(ubl_text: str, bill_json_bytes: bytes) -> None:
    ubl = parse_document(ubl_text.encode(), media_type="application/json")
    assert ubl.format is DocumentFormat.ubl_invoice
    assert ubl.source.media_type == "application/xml"
    json_bill = parse_document(bill_json_bytes, media_type="application/vnd.remit.bill+json")
    assert json_bill.source.media_type == "application/vnd.remit.bill+json"
    labelled_xml = parse_document(ubl_text.encode(), media_type="Text/XML; charset=UTF-8")
    assert labelled_xml.source.media_type == "text/xml"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("C:\\fakepath\\invoice.xml", "invoice.xml"),
        ("../../etc/invoice.xml", "invoice.xml"),
        ("  ", None),
        (None, None),
    ],
)
def test_file_names_are_plain_names(ubl_text: str, given: str | None, expected: str | None) -> None:
    content = ubl_text.encode()
    source = parse_document(content, file_name=given).source
    assert source.file_name == (expected or f"{document_key(content)[:16]}.xml")


def test_documents_over_the_size_limit_are_refused_before_parsing() -> None:
    content = b"{" + b" " * MAX_DOCUMENT_BYTES + b"}"
    error = _refusal(content)
    assert error.problems == [
        Problem("document", "is 10.0 MB, more than the 10.0 MB a document may have")
    ]


def test_a_document_at_the_limit_is_read(bill_json_bytes: bytes) -> None:
    padded = bill_json_bytes + b" " * (MAX_DOCUMENT_BYTES - len(bill_json_bytes))
    assert parse_document(padded).source.size == MAX_DOCUMENT_BYTES


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty"),
        (b"INV-2026-0412,2026-11-02,900.00", "is neither JSON, XML nor PDF"),
        (b"   \n\t ", "is neither JSON, XML nor PDF"),
    ],
    ids=["empty", "csv", "whitespace"],
)
def test_unrecognised_documents_say_what_is_accepted(content: bytes, fragment: str) -> None:
    error = _refusal(content)
    assert len(error.problems) == 1
    assert error.problems[0].location == "document"
    assert fragment in error.problems[0].message
    assert "remit JSON bill" in error.problems[0].message
    assert "UBL 2.1 Invoice" in error.problems[0].message
    assert "CII" in error.problems[0].message


def test_a_damaged_pdf_is_refused_as_unreadable() -> None:
    error = _refusal(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    assert [str(problem) for problem in error.problems] == [
        "document: is not a readable PDF (PdfStreamError)"
    ]


def test_capture_error_is_a_value_error_a_person_can_read() -> None:
    error = CaptureError([Problem("total_amount", "must be greater than zero, got -5")])
    assert isinstance(error, ValueError)
    assert str(error) == "the document was refused: total_amount: must be greater than zero, got -5"
    assert error.problems[0].as_dict() == {
        "location": "total_amount",
        "message": "must be greater than zero, got -5",
    }
    with pytest.raises(ValueError):
        CaptureError([])


def test_xml_that_mentions_a_pdf_header_is_still_xml(ubl_text: str) -> None:
    content = ubl_text.replace(
        "<cbc:Note>Wartungsvertrag Q4</cbc:Note>", "<cbc:Note>%PDF-1.7 attached</cbc:Note>"
    ).encode()
    assert parse_document(content).format is DocumentFormat.ubl_invoice


def test_a_pdf_may_have_bytes_before_its_header() -> None:
    error = _refusal(b"\x00\x01junk\n%PDF-1.7\n")
    assert error.problems[0].message.startswith("is not a readable PDF")
