"""Signs remit's outbound webhooks, and verifies them on the receiver's side.

A receiver checks a delivery with the endpoint's secret and the raw request body:

    from runtime.webhook_signing import SIGNATURE_HEADER, InvalidSignature, verify

    try:
        verify(secret, request.headers[SIGNATURE_HEADER], raw_body)
    except InvalidSignature:
        return 400

The header reads `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The timestamp is
part of the signed text, so an old delivery cannot be replayed under a fresh `t`.
"""

from __future__ import annotations

from connectors import signing

SIGNATURE_HEADER = "Remit-Signature"
EVENT_ID_HEADER = "Remit-Event-Id"
EVENT_TYPE_HEADER = "Remit-Event-Type"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The signature header is missing, malformed, wrong, or too old."""


def signature(secret: str, timestamp: int, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    return signing.signature(secret, timestamp, body)


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The `Remit-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    return signing.sign(secret, timestamp, body)


def verify(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> int:
    """Raise InvalidSignature unless `header` signs `body` under `secret` within `tolerance`
    seconds of now; returns the signed timestamp.

    Several `v1=` entries are accepted, so a sender may sign with an old and a new secret while
    a receiver rotates.
    """
    if not header:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    return signing.verify(
        secret, header, body, tolerance_seconds=tolerance, now=now, error=InvalidSignature
    )
