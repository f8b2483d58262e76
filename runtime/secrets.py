"""Encrypts connection credentials at rest (Fernet: AES-128-CBC + HMAC) with the configured key."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("REMIT_SECRET_KEY is not set: generate one with `remit secret-key`")
        self._fernet = Fernet(key.encode())

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, credentials: dict[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def open(self, sealed: bytes) -> dict[str, str]:
        try:
            value = json.loads(self._fernet.decrypt(sealed))
        except InvalidToken as exc:
            raise ValueError("connection credentials do not decrypt with this key") from exc
        return {str(k): str(v) for k, v in value.items()}
