"""Normalization for matching: vendor names, tax ids and document numbers as people write them."""

from __future__ import annotations

import re
import unicodedata

_LEGAL_SUFFIXES = {
    "inc",
    "incorporated",
    "llc",
    "llp",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "bv",
    "nv",
    "srl",
    "spa",
    "oy",
    "ab",
    "as",
    "pty",
    "kg",
    "ug",
    "the",
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def vendor_key(name: str) -> str:
    """'ACME Corporation' and 'Acme Corp.' both become 'acme'."""
    words = re.findall(r"[0-9a-z]+", _fold(name).replace("&", " and "))
    kept = [w for w in words if w not in _LEGAL_SUFFIXES]
    return " ".join(kept or words)


def tax_id_key(tax_id: str) -> str:
    """'94-1234567' and '941234567' are one tax id; so are 'DE 811 907 980' and 'de811907980'."""
    return re.sub(r"[^0-9A-Z]", "", _fold(tax_id).upper())


def document_number_key(number: str) -> str:
    """'INV-2026-0412', 'inv 2026/0412' and 'INV20260412' are the same document number."""
    return re.sub(r"[^0-9A-Z]", "", _fold(number).upper())
