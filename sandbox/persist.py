"""The emulators' and the bank's records kept in the stack's data dir: one snapshot file each."""

from __future__ import annotations

import io
import logging
import os
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, get_args

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from sandbox.faults import ASGIApp

log = logging.getLogger("remit.sandbox")

# Bumped when a snapshot's shape changes; an older file is set aside, not misread.
SNAPSHOT_VERSION = 1
_MAGIC = b"remit-sandbox-state\n"
# Methods that cannot change an emulator's records: no snapshot after them.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_PUBLIC_KEYS = get_args(PublicKeyTypes)


def _public_key(pem: bytes) -> PublicKeyTypes:
    return load_pem_public_key(pem)


class _Pickler(pickle.Pickler):
    """Pickles public keys (NetSuite's mapped certificates) as PEM: key objects cannot be."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _PUBLIC_KEYS):
            pem = obj.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            return _public_key, (pem,)
        return NotImplemented


class StateFile:
    """One component's state in one file, replaced atomically and readable by its owner only.

    The file is pickled: it is written only by this stack, into its own 0700 data dir next to
    the secret key, so reading it back trusts nothing that secret.key is not trusted with.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (or it is unreadable: set aside)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            magic, version, payload = raw[: len(_MAGIC)], raw[len(_MAGIC)], raw[len(_MAGIC) + 1 :]
            if magic != _MAGIC or version != SNAPSHOT_VERSION:
                raise ValueError(f"not a version {SNAPSHOT_VERSION} snapshot")
            state = pickle.loads(payload)  # noqa: S301 - our own file, see the class docstring
            if not isinstance(state, dict):
                raise ValueError("not a snapshot")
        except Exception as exc:
            aside = self.path.with_name(
                f"{self.path.name}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S}"
            )
            os.replace(self.path, aside)
            log.warning("%s could not be read (%s): set aside as %s", self.path, exc, aside.name)
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        buffer.write(_MAGIC + bytes([SNAPSHOT_VERSION]))
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(buffer.getvalue())
            stream.flush()
            # On disk before the rename: a crash leaves the old snapshot or the new, never half.
            os.fsync(stream.fileno())
        os.replace(temporary, self.path)


def save_before_answering(
    app: ASGIApp, save: Callable[[], None], *, reads_too: bool = False
) -> ASGIApp:
    """Wrap an ASGI app so that a request that may have changed records is saved before its
    answer leaves: a client told "created" never sees the record (or its id) lost. `reads_too`
    for an app whose reads change records too (the bank settles payments as they are read)."""

    async def persisting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"] in _SAFE_METHODS and not reads_too):
            await app(scope, receive, send)
            return

        async def send_after_saving(message: Any) -> None:
            if message["type"] == "http.response.start":
                save()
            await send(message)

        await app(scope, receive, send_after_saving)

    return persisting


class Persistent:
    """Mixin for an emulator whose named attributes (dotted paths: "consent.apps") are its
    records. Without a state file nothing is saved or read: tests keep memory-only speed."""

    persisted: ClassVar[tuple[str, ...]] = ()
    # Whether a read (GET) may change the records, so that it is saved too.
    reads_change_records: ClassVar[bool] = False
    state_file: StateFile | None = None
    # Whether `restore_state` read earlier records back (the stack then seeds nothing again).
    restored: bool = False
    # What the stack seeded into this emulator (a registry.DemoCompany), kept with its records.
    demo_company: Any = None

    def restore_state(self, path: Path | None) -> bool:
        """Use `path` for this emulator's records; True when earlier records were read back."""
        self.state_file = StateFile(path) if path is not None else None
        state = self.state_file.load() if self.state_file is not None else None
        if state is None:
            return False
        for name in self.persisted:
            if name in state:
                owner, attribute = self._persisted_owner(name)
                setattr(owner, attribute, state[name])
        self.after_restore()
        return True

    def save_state(self) -> None:
        if self.state_file is not None:
            self.state_file.save({name: self._persisted_value(name) for name in self.persisted})

    def after_restore(self) -> None:
        """Clear what described requests of the process that wrote the snapshot."""

    def persisting(self, app: ASGIApp) -> ASGIApp:
        if self.state_file is None:
            return app
        return save_before_answering(app, self.save_state, reads_too=self.reads_change_records)

    def _persisted_owner(self, name: str) -> tuple[Any, str]:
        owner: Any = self
        *path, attribute = name.split(".")
        for step in path:
            owner = getattr(owner, step)
        return owner, attribute

    def _persisted_value(self, name: str) -> Any:
        owner, attribute = self._persisted_owner(name)
        return getattr(owner, attribute)
