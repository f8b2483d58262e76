"""One invoice in every encoding an XML document may announce reads to the same draft."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from accounting.formats import CaptureError, DocumentFormat, parse_document

EXAMPLES = Path(__file__).parent / "examples"
SAMPLES = Path(__file__).parent / "einvoices"
# The example invoice with letters outside ASCII, so a wrong decoding shows in the draft.
UBL = (
    (EXAMPLES / "invoice-ubl.xml")
    .read_text(encoding="utf-8")
    .replace("<cbc:CityName>Koeln</cbc:CityName>", "<cbc:CityName>Köln</cbc:CityName>")
    .replace("Hafenstrasse 12", "Hafenstraße 12")
)
ZF1 = (SAMPLES / "cii-zugferd1/akretion__zugferd-comfort.xml").read_text(encoding="utf-8")
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def _encoded(text: str, codec: str, declared: str, bom: bytes = b"") -> bytes:
    body = text.split("?>", 1)[1]
    return bom + (f'<?xml version="1.0" encoding="{declared}"?>' + body).encode(codec)


ENCODINGS = {
    "utf-8": lambda text: _encoded(text, "utf-8", "UTF-8"),
    "utf-8 with bom": lambda text: _encoded(text, "utf-8", "UTF-8", codecs.BOM_UTF8),
    "utf-16 le with bom": lambda text: _encoded(text, "utf-16-le", "UTF-16", codecs.BOM_UTF16_LE),
    "utf-16 be with bom": lambda text: _encoded(text, "utf-16-be", "UTF-16", codecs.BOM_UTF16_BE),
    "iso-8859-1 declared": lambda text: _encoded(text, "latin-1", "ISO-8859-1"),
    "no declaration": lambda text: text.split("?>", 1)[1].lstrip().encode("utf-8"),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_the_ubl_invoice_reads_the_same_in_every_encoding(encoding: str) -> None:
    content = ENCODINGS[encoding](UBL)
    captured = parse_document(content)
    assert captured.format is DocumentFormat.ubl_invoice
    assert captured.draft.vendor.address == "Hafenstraße 12, 50667 Köln"
    reference = parse_document(UBL.encode("utf-8")).draft
    assert captured.draft.model_dump(exclude={"source"}) == reference.model_dump(exclude={"source"})
    assert captured.source.size == len(content)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_the_zugferd_1_invoice_reads_the_same_in_every_encoding(encoding: str) -> None:
    draft = parse_document(ENCODINGS[encoding](ZF1)).draft
    assert draft.vendor.address == "Lieferantenstraße 20, 80333 München"
    assert [line.description for line in draft.lines] == ["Trennblätter A4", "Joghurt Banane"]


def test_a_document_in_one_encoding_declaring_another_is_refused_with_a_position() -> None:
    # UTF-8 bytes of "ß" declared as ASCII are not well-formed: say where, do not guess.
    content = UBL.replace(DECLARATION, '<?xml version="1.0" encoding="US-ASCII"?>').encode("utf-8")
    with pytest.raises(CaptureError) as error:
        parse_document(content)
    assert error.value.problems[0].location.startswith("line ")
    assert "not well-formed XML" in error.value.problems[0].message


def test_an_unknown_declared_encoding_is_refused_naming_it() -> None:
    content = UBL.replace(DECLARATION, '<?xml version="1.0" encoding="X-NO-SUCH"?>').encode("utf-8")
    with pytest.raises(CaptureError) as error:
        parse_document(content)
    assert [str(problem) for problem in error.value.problems] == [
        "document: declares an encoding remit cannot read (unknown encoding: X-NO-SUCH): send UTF-8"
    ]


def test_hostile_xml_in_utf16_is_still_refused() -> None:
    bomb = (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        '<!DOCTYPE Invoice [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;">]>\n'
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol1;</Invoice>'
    )
    content = codecs.BOM_UTF16_BE + bomb.encode("utf-16-be")
    with pytest.raises(CaptureError) as error:
        parse_document(content)
    assert "refused for safety" in error.value.problems[0].message
