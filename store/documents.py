"""Content-addressed document store on the filesystem: the original bills remit received."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from accounting.documents import DocumentRef

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_META_SUFFIX = ".meta.json"
_CAPTURE_SUFFIX = ".capture.json"
_PAGE_SUFFIX = ".page-{number}.png"


class DocumentNotFound(LookupError):
    """No document with that hash is stored."""


class DocumentCorrupted(RuntimeError):
    """The stored bytes no longer hash to their name: the file was altered or damaged."""


class DocumentStore:
    """Documents under `root/ab/cdef…` named by their sha256; writes are atomic and idempotent.

    Each document has a small JSON sidecar with its media type and file name as first
    received; storing the same bytes again under another name keeps the first metadata.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, content: bytes, *, media_type: str, file_name: str) -> DocumentRef:
        digest = hashlib.sha256(content).hexdigest()
        ref = DocumentRef(
            sha256=digest, media_type=media_type, file_name=file_name, size=len(content)
        )
        path = self._path(digest)
        meta_path = self._meta_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or self._digest_of(path) != digest:
            self._write_atomically(path, content)
        if not meta_path.exists():
            self._write_atomically(meta_path, ref.model_dump_json().encode())
        return self.meta(digest)

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise DocumentNotFound(f"no document {sha256} in {self.root}") from None
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise DocumentCorrupted(
                f"document {sha256} is corrupted: its content hashes to {actual}"
            )
        return content

    def meta(self, sha256: str) -> DocumentRef:
        meta_path = self._meta_path(sha256)
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            raise DocumentNotFound(f"no document {sha256} in {self.root}") from None
        ref = DocumentRef.model_validate(json.loads(raw))
        if ref.sha256 != sha256:
            raise DocumentCorrupted(f"metadata of document {sha256} names {ref.sha256}")
        return ref

    def put_capture(self, sha256: str, capture: bytes) -> None:
        """What capture read from the document (JSON: the draft and, for a scan, how sure it
        was of each field): the inbox shows it and corrections start from it. The same bytes
        always read the same, so a second write keeps the first."""
        path = self._sidecar(sha256, _CAPTURE_SUFFIX)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomically(path, capture)

    def capture(self, sha256: str) -> bytes | None:
        try:
            return self._sidecar(sha256, _CAPTURE_SUFFIX).read_bytes()
        except FileNotFoundError:
            return None

    def page_image(self, sha256: str, number: int, render: Callable[[bytes], bytes]) -> bytes:
        """Page `number` of the document as a PNG, rendered once by `render` and kept."""
        path = self._sidecar(sha256, _PAGE_SUFFIX.format(number=int(number)))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        image = render(self.get(sha256))
        self._write_atomically(path, image)
        return image

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file() and self._meta_path(sha256).is_file()

    def _path(self, sha256: str) -> Path:
        # Validating here also keeps a caller-supplied hash from naming a path outside root.
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"{sha256!r} is not a lower-case hex sha256")
        return self.root / sha256[:2] / sha256[2:]

    def _sidecar(self, sha256: str, suffix: str) -> Path:
        path = self._path(sha256)
        return path.with_name(path.name + suffix)

    def _meta_path(self, sha256: str) -> Path:
        path = self._path(sha256)
        return path.with_name(path.name + _META_SUFFIX)

    @staticmethod
    def _digest_of(path: Path) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    @staticmethod
    def _write_atomically(path: Path, content: bytes) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
