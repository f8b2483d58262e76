"""OAuth 2.0 for the connectors (authlib): authorize URLs, code exchange, refresh, JWT assertions.

`TokenKeeper` is what a connector holds: the current access token, renewed shortly before it
expires and once after the platform refuses it, one renewal at a time per connector, with every
new token set handed to an `on_tokens` callback so the caller can persist rotated refresh tokens
before anything else uses them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.errors import MismatchingStateException, MissingCodeException
from authlib.oauth2.rfc6749.parameters import (
    parse_authorization_code_response,
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwk, jwt
from pydantic import BaseModel, ConfigDict, SecretStr

from connectors.base import (
    ConnectionRevoked,
    ConnectorError,
    RateLimited,
    Rejected,
    Unavailable,
    parse_retry_after,
)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Renew this long before the platform's expiry, so a call never starts with a dying token.
DEFAULT_LEEWAY = timedelta(seconds=120)
DEFAULT_THROTTLE_WAIT = timedelta(seconds=30)

# A connection's credentials as stored: access/refresh tokens, expiry, app id and secret, ...
Credentials = dict[str, str]
# Called with the whole new credentials dict after every renewal; persist it before returning.
OnTokens = Callable[[Credentials], Awaitable[None]]
# Gets a new token set for the given credentials (refresh grant, or a new client assertion).
Renew = Callable[[Credentials], Awaitable["TokenSet"]]


class LinkRefused(Exception):
    """The authorization step ended without a usable grant (denied, bad state, bad code)."""


class TokenSet(BaseModel):
    """What a token endpoint granted, with the platform's extras (realmId, tenant id, ...)."""

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: datetime | None = None
    token_type: str = "bearer"
    scope: str | None = None
    extras: dict[str, str] = {}

    @classmethod
    def from_response(
        cls,
        payload: dict[str, Any],
        *,
        now: datetime | None = None,
        previous_refresh_token: str | None = None,
    ) -> TokenSet:
        """A token endpoint's JSON; a missing refresh_token keeps the previous one (no rotation)."""
        issued = now or datetime.now(UTC)
        expires_in = payload.get("expires_in")
        refresh = payload.get("refresh_token") or previous_refresh_token
        known = {"access_token", "refresh_token", "expires_in", "token_type", "scope"}
        return cls(
            access_token=SecretStr(str(payload["access_token"])),
            refresh_token=SecretStr(str(refresh)) if refresh else None,
            expires_at=issued + timedelta(seconds=int(expires_in)) if expires_in else None,
            token_type=str(payload.get("token_type") or "bearer"),
            scope=str(payload["scope"]) if payload.get("scope") else None,
            extras={k: str(v) for k, v in payload.items() if k not in known and v is not None},
        )

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> TokenSet:
        expires_at = credentials.get("expires_at")
        refresh = credentials.get("refresh_token")
        return cls(
            access_token=SecretStr(credentials.get("access_token", "")),
            refresh_token=SecretStr(refresh) if refresh else None,
            expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
        )

    def credentials(self) -> Credentials:
        """The fields to merge into a connection's stored credentials."""
        values = {"access_token": self.access_token.get_secret_value()}
        if self.refresh_token is not None:
            values["refresh_token"] = self.refresh_token.get_secret_value()
        if self.expires_at is not None:
            values["expires_at"] = self.expires_at.isoformat()
        return values

    def expires_within(self, leeway: timedelta, now: datetime | None = None) -> bool:
        """True when the access token is past, or within `leeway` of, its expiry."""
        if self.expires_at is None:
            return False
        return self.expires_at - leeway <= (now or datetime.now(UTC))


# ---------------------------------------------------------------------------------------------
# Authorization code: the URL to send a person to, and reading where they came back
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the person, and what must be kept to finish the flow."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str


def authorization_request(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    extra: dict[str, str] | None = None,
) -> AuthorizationRequest:
    """An authorization-code request with a fresh `state` and a PKCE (S256) challenge."""
    state = generate_token(32)
    verifier = generate_token(64)
    url = prepare_grant_uri(
        authorize_url,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        **(extra or {}),
    )
    return AuthorizationRequest(url, state, verifier, redirect_uri)


def callback_params(callback_url: str) -> dict[str, str]:
    """The query of the URL the platform redirected to (code, state, realmId, error, ...)."""
    return dict(parse_qsl(urlsplit(callback_url).query, keep_blank_values=True))


def parse_callback(callback_url: str, expected_state: str | None) -> dict[str, str]:
    """The callback's parameters once its state matches; LinkRefused on a denial or mismatch."""
    params = callback_params(callback_url)
    # State first: an error redirect that is not ours must not be believed either.
    if expected_state is not None and params.get("state") != expected_state:
        raise LinkRefused("the callback's state does not match this link request")
    if params.get("error"):
        reason = params.get("error_description") or params["error"]
        raise LinkRefused(f"the platform did not grant access: {reason}")
    try:
        parse_authorization_code_response(callback_url, state=expected_state)
    except MismatchingStateException as exc:
        raise LinkRefused("the callback's state does not match this link request") from exc
    except MissingCodeException as exc:
        raise LinkRefused("the callback carries no authorization code") from exc
    return params


# ---------------------------------------------------------------------------------------------
# Token endpoint requests
# ---------------------------------------------------------------------------------------------


async def exchange_code(
    http: httpx.AsyncClient,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    platform: str = "",
) -> tuple[TokenSet, dict[str, Any]]:
    """Redeem an authorization code (client_secret_basic). Returns the tokens and the raw JSON."""
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, **extra
    )
    payload = await token_request(
        http, token_url, body, auth=(client_id, client_secret), platform=platform
    )
    return TokenSet.from_response(payload), payload


async def refresh_grant(
    http: httpx.AsyncClient,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    platform: str = "",
) -> TokenSet:
    """One refresh_token grant; a rotated refresh token comes back in the TokenSet."""
    body = prepare_token_request("refresh_token", refresh_token=refresh_token)
    payload = await token_request(
        http, token_url, body, auth=(client_id, client_secret), platform=platform
    )
    return TokenSet.from_response(payload, previous_refresh_token=refresh_token)


async def refresh_stored_grant(
    http: httpx.AsyncClient, token_url: str, credentials: Credentials, *, platform: str
) -> TokenSet:
    """The refresh grant with the client and refresh token a connection keeps (a `token_url`
    in the credentials wins over the platform's)."""
    return await refresh_grant(
        http,
        credentials.get("token_url") or token_url,
        client_id=credentials.get("client_id", ""),
        client_secret=credentials.get("client_secret", ""),
        refresh_token=credentials.get("refresh_token", ""),
        platform=platform,
    )


async def client_credentials_grant(
    http: httpx.AsyncClient,
    token_url: str,
    *,
    assertion: str,
    platform: str = "",
) -> TokenSet:
    """client_credentials authenticated by a signed JWT (private_key_jwt, RFC 7523)."""
    body = prepare_token_request(
        "client_credentials", client_assertion_type=JWT_BEARER, client_assertion=assertion
    )
    payload = await token_request(http, token_url, body, platform=platform)
    return TokenSet.from_response(payload)


async def token_request(
    http: httpx.AsyncClient,
    token_url: str,
    body: str,
    *,
    auth: tuple[str, str] | None = None,
    platform: str = "",
) -> dict[str, Any]:
    """POST a form to a token endpoint and map its OAuth errors into the connector taxonomy."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    try:
        response = await http.post(
            token_url, content=body, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
    except httpx.TransportError as exc:
        # Token requests are safe to repeat: a lost refresh answer leaves the old refresh token
        # usable (no rotation happened, or the platform's grace period covers it).
        raise Unavailable(f"token endpoint unreachable: {exc!r}", platform=platform) from exc
    payload: Any = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and isinstance(payload, dict) and payload.get("access_token"):
        return payload
    raise token_error(response, payload, platform)


def token_error(response: httpx.Response, payload: Any, platform: str) -> ConnectorError:
    status = response.status_code
    error = str(payload.get("error", "")) if isinstance(payload, dict) else ""
    description = str(payload.get("error_description", "")) if isinstance(payload, dict) else ""
    common: dict[str, Any] = {"platform": platform, "status": status, "code": error or None}
    message = f"the token endpoint refused: {error or status}" + (
        f" ({description})" if description else ""
    )
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"), DEFAULT_THROTTLE_WAIT)
        return RateLimited(message, retry_after=wait, **common)
    if status >= 500:
        return Unavailable(message, **common)
    if error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        return ConnectionRevoked(
            f"{message}: the connection must be relinked by a person", **common
        )
    return Rejected(message, **common)


# ---------------------------------------------------------------------------------------------
# Signed JWT client assertions (NetSuite M2M)
# ---------------------------------------------------------------------------------------------


def signed_client_assertion(
    *,
    client_id: str,
    key_id: str,
    private_key_pem: str | bytes,
    audience: str,
    scope: str | None = None,
    lifetime: timedelta = timedelta(minutes=55),
    issued_at: int | None = None,
) -> str:
    """A JWT client assertion: PS256 for an RSA key, ES256/384/512 for an EC key (by curve)."""
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    loaded = serialization.load_pem_private_key(pem, password=None)
    if isinstance(loaded, rsa.RSAPrivateKey):
        algorithm, key_type = "PS256", "RSA"
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        by_size = {256: "ES256", 384: "ES384", 521: "ES512"}
        if loaded.curve.key_size not in by_size:
            raise ValueError("EC keys must be on P-256, P-384 or P-521")
        algorithm, key_type = by_size[loaded.curve.key_size], "EC"
    else:
        raise ValueError("a client assertion needs an RSA or EC private key")
    key = jwk.import_key(pem, key_type)  # type: ignore[call-overload]
    issued = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {
        "iss": client_id,
        "aud": audience,
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": generate_token(24),
    }
    if scope:
        claims["scope"] = scope
    header = {"alg": algorithm, "typ": "JWT", "kid": key_id}
    return jwt.encode(header, claims, key, algorithms=[algorithm])


def new_private_key_pem() -> tuple[str, str]:
    """A fresh P-256 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


# ---------------------------------------------------------------------------------------------
# The keeper a connector holds
# ---------------------------------------------------------------------------------------------


class TokenKeeper:
    """One connector's credentials: hands out the access token, renews it when due.

    Renewal only happens when `on_tokens` is given: a renewed (and possibly rotated) token set
    that nobody persists would strand the grant, so without a way to save it the keeper leaves
    refusals to the caller (AuthExpired). An `asyncio.Lock` makes concurrent calls that hit
    expiry share one renewal.
    """

    def __init__(
        self,
        credentials: Credentials,
        renew: Renew,
        *,
        on_tokens: OnTokens | None = None,
        leeway: timedelta = DEFAULT_LEEWAY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.credentials: Credentials = dict(credentials)
        self._renew = renew
        self._on_tokens = on_tokens
        self._leeway = leeway
        self._clock = clock
        self._lock = asyncio.Lock()
        self.renewals = 0

    @property
    def renews(self) -> bool:
        return self._on_tokens is not None

    @property
    def access_token(self) -> str:
        return self.credentials.get("access_token", "")

    def _due(self) -> bool:
        if not self.access_token:
            return True
        return TokenSet.from_credentials(self.credentials).expires_within(
            self._leeway, self._clock()
        )

    async def current(self) -> str:
        """The access token to send now, renewed first when it is (about to be) expired."""
        if self.renews and self._due():
            async with self._lock:
                if self._due():
                    await self._renew_now()
        return self.access_token

    async def after_refusal(self, refused_token: str) -> bool:
        """The platform refused `refused_token` (401): renew once; True when worth a retry."""
        if not self.renews:
            return False
        async with self._lock:
            if self.access_token != refused_token:
                return True  # another call renewed while this one was in flight
            await self._renew_now()
        return True

    async def _renew_now(self) -> None:
        tokens = await self._renew(dict(self.credentials))
        renewed = {**self.credentials, **tokens.credentials()}
        if tokens.expires_at is None:
            renewed.pop("expires_at", None)
        self.credentials = renewed
        self.renewals += 1
        assert self._on_tokens is not None
        await self._on_tokens(dict(renewed))
