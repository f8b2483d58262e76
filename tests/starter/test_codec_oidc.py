"""The codec endpoint with OIDC access tokens (the Temporal UI's codec.passAccessToken): an
issuer's discovery document and JWKS served over real HTTP, tokens signed with RSA and EC keys."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from runtime.codec import EncryptionCodec, generate_key
from runtime.settings import Settings
from starter.api.app import codec_oidc_verifier
from starter.api.codec import CODEC_PATH, codec_authorizer, codec_router
from starter.api.codec_oidc import OidcVerifier, looks_like_jwt

AUDIENCE = "temporal-ui"
VENDOR = "Northwind Office Supply"
KEY = base64.b64decode(generate_key())


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave Ctrl-C to pytest


@dataclass
class Issuer:
    """A stand-in identity provider: discovery document and JWKS, with its signing keys."""

    url: str = ""
    published: list[dict[str, Any]] = field(default_factory=list)
    jwks_reads: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": self.url + "/keys"})

        @app.get("/keys")
        async def keys() -> JSONResponse:
            self.jwks_reads += 1
            return JSONResponse({"keys": self.published})

        return app


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    found = Issuer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # a connection made before uvicorn runs waits in the backlog
    host, port = sock.getsockname()[:2]
    found.url = f"http://{host}:{port}"
    config = uvicorn.Config(found.app(), log_level="warning", lifespan="off", access_log=False)
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield found
    finally:
        server.should_exit = True
        await task
        sock.close()


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_NEXT = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str) -> dict[str, Any]:
    public = private.public_key()
    algorithm: Any = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(private, rsa.RSAPrivateKey)
        else jwt.algorithms.ECAlgorithm
    )
    data = cast(dict[str, Any], algorithm.to_jwk(public, as_dict=True))
    return {**data, "kid": kid, "use": "sig"}


def claims(issuer: Issuer, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": issuer.url,
        "aud": AUDIENCE,
        "sub": "00u1",
        "email": "olga@example.com",
        "groups": ["operators"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, Any], private: Any, kid: str, alg: str = "RS256") -> str:
    return jwt.encode(payload, private, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


async def encrypted_vendor(codec: EncryptionCodec) -> dict[str, Any]:
    plain = pydantic_data_converter.payload_converter.to_payloads([VENDOR])[0]
    [sealed] = await codec.encode([plain])
    assert VENDOR.encode() not in sealed.data
    return MessageToDict(Payloads(payloads=[sealed]))


def decoded(body: dict[str, Any]) -> list[Payload]:
    return list(ParseDict(body, Payloads()).payloads)


@dataclass
class Endpoint:
    http: httpx.AsyncClient
    verifier: OidcVerifier
    body: dict[str, Any]

    async def decode(self, token: str) -> httpx.Response:
        return await self.http.post(
            CODEC_PATH + "/decode",
            json=self.body,
            headers={"Authorization": f"Bearer {token}", "X-Namespace": "default"},
        )


@pytest.fixture
async def endpoint(issuer: Issuer) -> AsyncIterator[Endpoint]:
    issuer.published = [jwk(RSA_KEY, "rsa-1"), jwk(EC_KEY, "ec-1")]
    codec = EncryptionCodec({"k1": KEY}, "k1")
    # As parts_from builds it from settings: keys found through the discovery document.
    verifier = codec_oidc_verifier(
        Settings(codec_oidc_issuer=issuer.url, codec_oidc_audience=AUDIENCE)
    )
    assert verifier is not None
    app = FastAPI()
    app.include_router(
        codec_router(
            codec,
            namespaces={"default"},
            authorize=codec_authorizer(groups=("operators",), oidc=verifier),
        )
    )
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
        yield Endpoint(client, verifier, await encrypted_vendor(codec))


def refused(response: httpx.Response, says: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert VENDOR not in response.text
    assert says in response.json()["detail"], response.json()["detail"]


async def test_tokens_signed_with_rsa_and_ec_keys_decode(
    issuer: Issuer, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="remit.api")
    for token in (
        signed(claims(issuer), RSA_KEY, "rsa-1", "RS256"),
        signed(claims(issuer), RSA_KEY, "rsa-1", "PS256"),
        signed(claims(issuer), EC_KEY, "ec-1", "ES256"),
    ):
        response = await endpoint.decode(token)
        assert response.status_code == 200, response.text
        [payload] = decoded(response.json())
        assert VENDOR.encode() in payload.data
        assert token not in caplog.text
    assert "oidc user olga@example.com: allowed" in caplog.text
    assert issuer.jwks_reads == 1  # cached


async def test_the_user_falls_back_to_sub_and_groups_may_be_a_string(
    issuer: Issuer, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="remit.api")
    token = signed(claims(issuer, email=None, groups="staff operators"), EC_KEY, "ec-1", "ES256")
    assert (await endpoint.decode(token)).status_code == 200
    assert "oidc user 00u1: allowed" in caplog.text


async def test_bad_tokens_get_401_with_a_reason(issuer: Issuer, endpoint: Endpoint) -> None:
    now = int(time.time())
    refused(
        await endpoint.decode(
            signed(claims(issuer, iat=now - 900, exp=now - 600), RSA_KEY, "rsa-1")
        ),
        "expired",
    )
    refused(
        await endpoint.decode(signed(claims(issuer, iss="https://evil.example"), RSA_KEY, "rsa-1")),
        f"not issued by {issuer.url}",
    )
    refused(
        await endpoint.decode(signed(claims(issuer, aud="someone-else"), RSA_KEY, "rsa-1")),
        f"not meant for {AUDIENCE}",
    )
    refused(
        await endpoint.decode(signed(claims(issuer, aud=None), RSA_KEY, "rsa-1")),
        "lacks the 'aud' claim",
    )
    refused(
        await endpoint.decode(signed(claims(issuer, groups=["clerks"]), RSA_KEY, "rsa-1")),
        "olga@example.com may not decode payloads",
    )
    # A key the issuer never published, and the RSA key claimed for the EC kid.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(await endpoint.decode(signed(claims(issuer), stranger, "rsa-9")), "does not publish")
    refused(await endpoint.decode(signed(claims(issuer), stranger, "rsa-1")), "do not verify")
    refused(await endpoint.decode(signed(claims(issuer), RSA_KEY, "ec-1")), "cannot sign RS256")


async def test_alg_none_and_hmac_under_the_public_key_are_refused(
    issuer: Issuer, endpoint: Endpoint
) -> None:
    payload = claims(issuer)
    unsigned = hand_made({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, payload, b"")
    assert looks_like_jwt(unsigned)
    refused(await endpoint.decode(unsigned), "'none' are not accepted")

    # The classic confusion: HS256 keyed with the (public) RSA key's PEM.
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    refused(await endpoint.decode(f"{signing_input}.{b64(mac)}"), "'HS256' are not accepted")


async def test_a_rotated_key_is_accepted_after_a_refresh(
    issuer: Issuer, endpoint: Endpoint
) -> None:
    assert (await endpoint.decode(signed(claims(issuer), RSA_KEY, "rsa-1"))).status_code == 200
    issuer.published.append(jwk(RSA_NEXT, "rsa-2"))
    # The last read was just now: an unknown kid within the interval does not refetch...
    refused(await endpoint.decode(signed(claims(issuer), RSA_NEXT, "rsa-2")), "does not publish")
    assert issuer.jwks_reads == 1
    # ...and once the interval has passed it does, and the new key verifies.
    endpoint.verifier.min_refresh_seconds = 0
    response = await endpoint.decode(signed(claims(issuer), RSA_NEXT, "rsa-2"))
    assert response.status_code == 200, response.text
    assert issuer.jwks_reads == 2
    # Many tokens naming made-up kids within the interval cost the issuer nothing more.
    endpoint.verifier.min_refresh_seconds = 60
    for n in range(5):
        refused(
            await endpoint.decode(signed(claims(issuer), RSA_NEXT, f"junk-{n}")), "does not publish"
        )
    assert issuer.jwks_reads == 2


async def test_a_remit_api_key_is_still_read_as_an_api_key(endpoint: Endpoint) -> None:
    # Told apart by shape (rk_<id>.<secret>), never sent to the issuer.
    refused(await endpoint.decode("rk_demo-olga.c2VjcmV0"), "API key is not valid")
    assert endpoint.verifier.fetches == 0
    refused(await endpoint.decode("not-a-token"), "API key is not valid")


def test_an_issuer_without_an_audience_is_refused_at_start() -> None:
    with pytest.raises(RuntimeError, match="REMIT_CODEC_OIDC_AUDIENCE"):
        codec_oidc_verifier(Settings(codec_oidc_issuer="https://id.example"))
    assert codec_oidc_verifier(Settings()) is None
