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
    "ohg",
    "kgaa",
    "oyj",
    "asa",
    "aps",
    "ltda",
    "lda",
    "sro",
    "kft",
    "pte",
    "bhd",
    "bvba",
    "sprl",
    "the",
}


# Letters Unicode does not decompose into a base letter and an accent, and the two ways people
# write them in ASCII: German umlauts as 'ue' ("Mueller" for "Müller") or bare ("Muller"), 'ø'
# as 'oe' or 'o'. Accents that do decompose (é, ñ) are stripped by vendor_key already.
_SPELLED_OUT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ø": "oe", "Ø": "Oe",
     "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "å": "aa", "Å": "Aa"}
)  # fmt: skip
_BARE = str.maketrans(
    {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "ł": "l", "Ł": "L",
     "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ı": "i"}
)  # fmt: skip


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def vendor_key(name: str) -> str:
    """'ACME Corporation' and 'Acme Corp.' both become 'acme'; so do 'Acme S.A.' and 'Acme SA'."""
    folded = _fold(name.translate(_BARE)).replace("&", " and ")
    # Dotted or slashed abbreviations (S.A., B.V., A/S, L.L.C.) are one word, so their legal form
    # folds away like the undotted one.
    folded = re.sub(r"(?<=\b[a-z])[./](?=[a-z]\b)", "", folded)
    words = re.findall(r"[0-9a-z]+", folded)
    kept = [
        w
        for n, w in enumerate(words)
        if w not in _LEGAL_SUFFIXES
        # the '&' of "GmbH & Co. KG" joins two legal forms, not two names
        and not (
            w == "and"
            and 0 < n < len(words) - 1
            and {words[n - 1], words[n + 1]} <= _LEGAL_SUFFIXES
        )
    ]
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


def match_keys(name: str) -> list[str]:
    """The keys a name is compared by when matching loosely: look-alike characters folded to
    the Latin ones first (so a Cyrillic 'о' scores like 'o'; the caller reports it), then the
    vendor key of each way the name's letters are written in ASCII.

    'Müller GmbH' gives ['muller', 'mueller']; 'Mueller GmbH' gives ['mueller'].
    """
    folded = skeleton(name)
    keys = [vendor_key(folded), vendor_key(folded.translate(_SPELLED_OUT))]
    return [key for key in dict.fromkeys(keys) if key]


def lookalike_characters(name: str, known: str) -> list[str]:
    """The characters that make `name` imitate `known`, described for a person; [] if the two
    names do not look alike, or differ only in ways people type (case, accents, suffixes)."""
    if skeleton_key(name) != skeleton_key(known):
        return []
    return unusual_characters(name, known)


def unusual_characters(name: str, known: str, *, ascii_too: bool = True) -> list[str]:
    """The characters of `name` that imitate a Latin letter (another script's look-alike, a
    fullwidth or compatibility form; with `ascii_too`, also '0' for 'O' or '1' for 'l') and that
    `known` does not have, described for a person.

    For names that are close without looking the same ('Nоrthwind Trading', Cyrillic 'о', next
    to 'Northwind Traders'): a loose match must not hide them either."""
    theirs = set(unicodedata.normalize("NFC", known))
    suspicious: list[str] = []
    for char in dict.fromkeys(unicodedata.normalize("NFC", name)):
        if char.isascii() and not ascii_too:
            continue
        if char in theirs or char.isascii() and char.casefold() in {c.casefold() for c in theirs}:
            continue
        folded = unicodedata.normalize("NFKC", char)
        if folded != char or confusables.is_confusable(
            char, preferred_aliases=["latin"], greedy=True
        ):
            described = unicodedata.name(char, "unnamed character")
            suspicious.append(f"{char!r} U+{ord(char):04X} {described}")
    return suspicious
