"""Normalization for matching: vendor names, tax ids and document numbers as people write them."""

from __future__ import annotations

import re
import unicodedata

from confusable_homoglyphs import confusables

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


def skeleton(text: str) -> str:
    """`text` with every look-alike character replaced by the Latin one it imitates.

    Compatibility forms (fullwidth letters, ligatures) fold first (NFKC), then Unicode's
    confusables table maps, say, Cyrillic 'о' and Greek 'Ο' to 'o' (UTS #39's idea of a
    skeleton, with Latin preferred). Two names with one skeleton look the same on screen.
    """
    out = []
    for char in unicodedata.normalize("NFKC", text):
        found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True)
        if found:
            latin = [glyph["c"] for glyph in found[0]["homoglyphs"] if glyph["c"].isascii()]
            out.append(latin[0] if latin else char)
        else:
            out.append(char)
    return "".join(out)


def skeleton_key(name: str) -> str:
    """The vendor key of a name's skeleton: equal for 'Northwind' and 'Nоrthwind' (Cyrillic о)."""
    return vendor_key(skeleton(name))


def lookalike_characters(name: str, known: str) -> list[str]:
    """The characters that make `name` imitate `known`, described for a person; [] if the two
    names do not look alike, or differ only in ways people type (case, accents, suffixes)."""
    if skeleton_key(name) != skeleton_key(known):
        return []
    theirs = set(unicodedata.normalize("NFC", known))
    suspicious: list[str] = []
    for char in dict.fromkeys(unicodedata.normalize("NFC", name)):
        if char in theirs or char.isascii() and char.casefold() in {c.casefold() for c in theirs}:
            continue
        folded = unicodedata.normalize("NFKC", char)
        if folded != char or confusables.is_confusable(
            char, preferred_aliases=["latin"], greedy=True
        ):
            described = unicodedata.name(char, "unnamed character")
            suspicious.append(f"{char!r} U+{ord(char):04X} {described}")
    return suspicious
