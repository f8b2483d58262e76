"""The document store: content-addressed, atomic, idempotent, and it notices corruption."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from store import DocumentCorrupted, DocumentNotFound, DocumentStore

PDF = b"%PDF-1.7\n% an invoice\n" + bytes(range(256))


def test_put_then_get_returns_the_same_bytes_under_their_hash(tmp_path: Path) -> None:
    documents = DocumentStore(tmp_path / "docs")
    ref = documents.put(PDF, media_type="application/pdf", file_name="INV-1.pdf")

    digest = hashlib.sha256(PDF).hexdigest()
    assert (ref.sha256, ref.size, ref.media_type, ref.file_name) == (
        digest,
        len(PDF),
        "application/pdf",
        "INV-1.pdf",
    )
    assert (tmp_path / "docs" / digest[:2] / digest[2:]).read_bytes() == PDF
    assert documents.get(digest) == PDF
    assert documents.meta(digest) == ref
    assert documents.exists(digest)


def test_putting_the_same_bytes_again_changes_nothing(tmp_path: Path) -> None:
    documents = DocumentStore(tmp_path)
    first = documents.put(PDF, media_type="application/pdf", file_name="INV-1.pdf")
    again = documents.put(PDF, media_type="application/octet-stream", file_name="copy.bin")

    assert again == first
    stored = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    assert len(stored) == 2, f"expected the document and its metadata only, got {stored}"
    assert not any(path.name.startswith(".tmp-") for path in stored)


def test_different_documents_are_kept_apart(tmp_path: Path) -> None:
    documents = DocumentStore(tmp_path)
    one = documents.put(b"one", media_type="text/plain", file_name="1.txt")
    two = documents.put(b"two", media_type="text/plain", file_name="2.txt")
    assert one.sha256 != two.sha256
    assert (documents.get(one.sha256), documents.get(two.sha256)) == (b"one", b"two")


def test_altered_content_is_detected_and_repaired_by_a_new_put(tmp_path: Path) -> None:
    documents = DocumentStore(tmp_path)
    ref = documents.put(PDF, media_type="application/pdf", file_name="INV-1.pdf")
    path = tmp_path / ref.sha256[:2] / ref.sha256[2:]
    path.write_bytes(PDF[:-1] + b"\x00")

    with pytest.raises(DocumentCorrupted, match=ref.sha256):
        documents.get(ref.sha256)

    documents.put(PDF, media_type="application/pdf", file_name="INV-1.pdf")
    assert documents.get(ref.sha256) == PDF


def test_missing_and_malformed_hashes_fail_clearly(tmp_path: Path) -> None:
    documents = DocumentStore(tmp_path)
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not documents.exists(missing)
    with pytest.raises(DocumentNotFound, match=missing):
        documents.get(missing)
    with pytest.raises(DocumentNotFound):
        documents.meta(missing)
    for malformed in ("../../etc/passwd", "ABC", missing.upper()):
        with pytest.raises(ValueError, match="sha256"):
            documents.get(malformed)
