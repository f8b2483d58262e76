"""AES-GCM payload encryption: no bank or personal detail in plaintext in Temporal's history."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
REFUSED_ENCODING = b"binary/remit-refused-unencrypted"
"""What a plaintext payload decodes to when encryption is required: no converter reads it, so a
signal carrying it is dropped (the SDK logs it), an update is rejected, and no workflow ever
acts on a payload sent by someone without the key."""
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per payload, so never reused under one key


class PayloadDecryptionError(ValueError):
    """An encrypted payload this process cannot read: unknown key id, wrong key or tampering."""


def parse_keys(text: str) -> dict[str, bytes]:
    """Keys written as `kid:<base64 of 32 bytes>` separated by commas (REMIT_ENCRYPTION_KEYS)."""
    keys: dict[str, bytes] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key_id, separator, encoded = item.partition(":")
        key_id = key_id.strip()
        if not separator or not key_id:
            raise ValueError(
                "REMIT_ENCRYPTION_KEYS entries look like `kid:<base64 key>`; "
                "generate one with `python -m runtime.codec`"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"encryption key {key_id!r} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"encryption key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}"
            )
        if key_id in keys:
            raise ValueError(f"encryption key id {key_id!r} is given twice")
        keys[key_id] = key
    return keys


def generate_key() -> str:
    """A fresh random AES-256 key, base64-encoded as REMIT_ENCRYPTION_KEYS expects it."""
    return base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode()


def format_keys(keys: Mapping[str, str]) -> str:
    """`{kid: base64 key}` written the way REMIT_ENCRYPTION_KEYS reads it."""
    return ",".join(f"{key_id}:{key}" for key_id, key in keys.items())


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with the current key; decrypts with whichever key it names.

    An encoded payload's data is nonce || AES-GCM(serialized original Payload), with the key id
    as associated data, so a payload cannot be moved under another key id unnoticed. Rotation:
    make a new key current and keep the old ones listed until no open history needs them.

    A payload that is not encrypted is refused (decoded to REFUSED_ENCODING): a settlement
    "notice" or a decision signalled straight to Temporal without the key never reaches a
    bill. `accept_plaintext` lets histories recorded before encryption was switched on pass
    through while they finish (REMIT_ACCEPT_PLAINTEXT_PAYLOADS, a migration setting).
    """

    def __init__(
        self, keys: Mapping[str, bytes], current_key_id: str, *, accept_plaintext: bool = False
    ) -> None:
        if current_key_id not in keys:
            raise ValueError(
                f"REMIT_ENCRYPTION_KEY_ID {current_key_id!r} is not among the configured keys "
                f"({', '.join(sorted(keys)) or 'none'})"
            )
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current_key_id = current_key_id
        self.accept_plaintext = accept_plaintext

    @classmethod
    def from_text(
        cls, keys: str, current_key_id: str | None = None, *, accept_plaintext: bool = False
    ) -> EncryptionCodec:
        """From REMIT_ENCRYPTION_KEYS; the current key is the id given, else the first listed."""
        parsed = parse_keys(keys)
        if not parsed:
            raise ValueError("no encryption key given")
        return cls(parsed, current_key_id or next(iter(parsed)), accept_plaintext=accept_plaintext)

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.current_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            if self.accept_plaintext:
                return payload
            return Payload(metadata={"encoding": REFUSED_ENCODING})
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload is encrypted with key id {key_id!r}, which is not configured "
                f"(known: {', '.join(self._ciphers)}); add it to REMIT_ENCRYPTION_KEYS"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} does not decrypt: it was altered "
                "or that key id now names a different key"
            ) from None
        original = Payload()
        original.ParseFromString(plain)
        return original


def remit_data_converter(codec: PayloadCodec | None = None) -> DataConverter:
    """The pydantic converter; with a codec, failure messages and stack traces are encoded too.

    Without encoded attributes a failure's message (say, a bank refusing an account number)
    would sit in the history in plaintext, outside the codec's reach.
    """
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def main() -> None:
    """`python -m runtime.codec`: print a fresh key entry for REMIT_ENCRYPTION_KEYS."""
    sys.stdout.write(f"k1:{generate_key()}\n")


if __name__ == "__main__":
    main()
