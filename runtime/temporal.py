"""One way to reach Temporal: the address from settings, the pydantic converter, the codec."""

from __future__ import annotations

import logging

from temporalio.client import Client

from runtime.codec import EncryptionCodec, remit_data_converter
from runtime.settings import Settings

log = logging.getLogger("remit.temporal")


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec REMIT_ENCRYPTION_KEYS configures, or None (payloads in plaintext) without keys."""
    keys = settings.encryption_keys.get_secret_value()
    if not keys.strip():
        return None
    return EncryptionCodec.from_text(
        keys, settings.encryption_key_id, accept_plaintext=settings.accept_plaintext_payloads
    )


async def connect(settings: Settings, *, codec: EncryptionCodec | None = None) -> Client:
    """A client whose payloads are encrypted with `codec`, else with the configured keys."""
    codec = codec or payload_codec(settings)
    if codec is None:
        log.warning(
            "REMIT_ENCRYPTION_KEYS is not set: bill payloads (bank details included) are stored "
            "in Temporal's history in plaintext"
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=remit_data_converter(codec),
    )
