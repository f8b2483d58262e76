"""One way to reach Temporal: the address from settings, the pydantic converter, the codec."""

from __future__ import annotations

import logging
from pathlib import Path

from temporalio.client import Client
from temporalio.service import TLSConfig

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
    api_key = settings.temporal_api_key.get_secret_value() or None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=remit_data_converter(codec),
        tls=tls_config(settings) or bool(api_key),
        api_key=api_key,
    )


def tls_config(settings: Settings) -> TLSConfig | None:
    """mTLS to a Temporal cluster or Temporal Cloud, from the configured PEM files."""
    if not (settings.temporal_tls_cert or settings.temporal_tls_ca):
        return None
    if bool(settings.temporal_tls_cert) != bool(settings.temporal_tls_key):
        raise ValueError(
            "REMIT_TEMPORAL_TLS_CERT and REMIT_TEMPORAL_TLS_KEY go together: give both"
        )

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return TLSConfig(
        client_cert=read(settings.temporal_tls_cert),
        client_private_key=read(settings.temporal_tls_key),
        server_root_ca_cert=read(settings.temporal_tls_ca),
        domain=settings.temporal_tls_server_name,
    )
