"""One way to reach Temporal: the address from settings, the pydantic converter, the codec."""

from __future__ import annotations

import logging
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.service import RPCError, TLSConfig

from runtime.codec import EncryptionCodec, remit_data_converter
from runtime.settings import Settings
from workflows import search

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


_INDEXED_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeIndexedValueType.KEYWORD_LIST: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeIndexedValueType.TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


class SearchAttributesMissing(RuntimeError):
    """The namespace lacks remit's search attributes and this client may not add them."""


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Add the search attributes bills are found by (workflows/search.py) where missing;
    returns the names added. Where the cluster refuses (Temporal Cloud adds them through its
    own console or `tcld`), SearchAttributesMissing names what to add."""
    wanted = {key.name: _INDEXED_TYPES[key.indexed_value_type] for key in search.ALL}
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {name: kind for name, kind in wanted.items() if name not in listed.custom_attributes}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as exc:
        names = ", ".join(
            f"{name} ({IndexedValueType.Name(kind).removeprefix('INDEXED_VALUE_TYPE_')})"
            for name, kind in sorted(missing.items())
        )
        raise SearchAttributesMissing(
            f"namespace {namespace} lacks the search attributes {names} and this client may "
            f"not add them ({exc.message}); add them in the cluster's console (Temporal "
            "Cloud: `tcld namespace search-attributes add`)"
        ) from None
    return sorted(missing)
