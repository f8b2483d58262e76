"""Timestamped HMAC-SHA256 signatures (`t=<unix seconds>,v1=<hex>`), as the sandbox bank and
remit's own webhooks use them.

The timestamp is part of the signed text (`"<t>.<body>"`), so an old message cannot be replayed
under a fresh `t`; several `v1=` entries are accepted, so a sender may sign with an old and a
new secret while the receiver rotates.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(secret: str, timestamp: int, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    content = body.encode() if isinstance(body, str) else body
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + content, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes | str,
    *,
    tolerance_seconds: float,
    now: float | None = None,
    error: type[ValueError] = ValueError,
) -> int:
    """Raise `error` unless `header` signs `body` under `secret` within the tolerance of `now`
    (unix seconds; default: the clock). Returns the signed timestamp."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise error(f"signature timestamp {value!r} is not a number") from exc
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise error("the signature needs both t= and v1=")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_seconds:
        raise error(
            f"signature timestamp is {abs(age):.0f}s away from now, outside the "
            f"{tolerance_seconds:.0f}s tolerance"
        )
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise error("signature does not match the body and secret")
    return timestamp
