"""OIDC access tokens at the codec endpoint: what a Temporal UI with `codec.passAccessToken`
forwards as `Authorization: Bearer <JWT>`, verified against the issuer's published keys.

A token is accepted only when its signature verifies under a key of the issuer's JWKS with an
asymmetric algorithm that key allows (RS*, PS*, ES*; never `none`, never an HMAC keyed with a
public key), `iss` and `aud` are the configured ones, `exp`/`iat` (and `nbf` when present) hold
within a small leeway, and its groups claim names one of the codec groups. Keys are cached; a
token naming an unknown `kid` refreshes them (key rotation), at most once per
`min_refresh_seconds`, so a stream of made-up kids cannot make remit hammer the issuer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_FAMILY = {"RSA": ("RS", "PS"), "EC": ("ES",)}
LEEWAY_SECONDS = 30
DISCOVERY_PATH = "/.well-known/openid-configuration"


class OidcRefused(Exception):  # noqa: N818 - a refusal with its reason, answered with 401
    """The token is not accepted; the message says why, for a person (never the token)."""


def looks_like_jwt(token: str) -> bool:
    """A compact JWS: three base64url parts, the first a JSON header (`eyJ` is `{"`)."""
    parts = token.split(".")
    return len(parts) == 3 and token.startswith("eyJ") and all(parts[:2])


@dataclass(frozen=True)
class OidcUser:
    """Who a verified token names, and the groups it carries."""

    user: str
    groups: frozenset[str]


class OidcVerifier:
    """Verifies access tokens of one issuer for one audience (see the module docstring)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        user_claim: str = "email",
        groups_claim: str = "groups",
        min_refresh_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.user_claim = user_claim
        self.groups_claim = groups_claim
        self.min_refresh_seconds = min_refresh_seconds
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was read (tests and metrics)."""

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> Mapping[str, Any]:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            raise OidcRefused(
                f"the identity provider's keys could not be read from {url} ({exc!r}); "
                "try again, or check REMIT_CODEC_OIDC_ISSUER / REMIT_CODEC_OIDC_JWKS_URL"
            ) from None
        if response.status_code != 200:
            raise OidcRefused(
                f"the identity provider answered {response.status_code} at {url}; "
                "check REMIT_CODEC_OIDC_ISSUER / REMIT_CODEC_OIDC_JWKS_URL"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OidcRefused(f"{url} did not answer a JSON object")
        return body

    async def _fetch_keys(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
            url = self.jwks_url
            if url is None:
                discovery = await self._get_json(client, self.issuer.rstrip("/") + DISCOVERY_PATH)
                found = discovery.get("jwks_uri")
                if not isinstance(found, str) or not found:
                    raise OidcRefused(
                        f"the issuer {self.issuer}'s discovery document names no jwks_uri; "
                        "set REMIT_CODEC_OIDC_JWKS_URL"
                    )
                url = self.jwks_url = found
            document = await self._get_json(client, url)
        keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        for data in document.get("keys", []):
            if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
                continue
            if data.get("use", "sig") != "sig":
                continue
            try:
                keys[data["kid"]] = (jwt.PyJWK(data), data.get("alg"))
            except jwt.PyJWTError:
                continue  # a key type or curve this build cannot use: not offered
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetches += 1

    async def _key(self, kid: str) -> tuple[jwt.PyJWK, str | None]:
        async with self._lock:
            if kid not in self._keys:
                due = (
                    self._fetched_at is None
                    or self._clock() - self._fetched_at >= self.min_refresh_seconds
                )
                if due:
                    await self._fetch_keys()
            key = self._keys.get(kid)
        if key is None:
            raise OidcRefused(
                f"the token was signed with key {kid!r}, which {self.issuer} does not publish; "
                "sign in to the Temporal UI again"
            )
        return key

    async def verify(self, token: str) -> OidcUser:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcRefused("the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise OidcRefused(
                f"tokens signed with {alg!r} are not accepted (only "
                f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); check the identity provider"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise OidcRefused("the token names no signing key (kid); check the identity provider")
        key, declared = await self._key(kid)
        if declared is not None and declared != alg:
            raise OidcRefused(f"key {kid!r} signs with {declared}, the token says {alg}")
        if not alg.startswith(_FAMILY.get(str(key.key_type), ())):
            raise OidcRefused(f"key {kid!r} ({key.key_type}) cannot sign {alg}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise OidcRefused(
                "the access token has expired; sign in to the Temporal UI again"
            ) from None
        except jwt.InvalidIssuerError:
            raise OidcRefused(f"the token was not issued by {self.issuer}") from None
        except jwt.InvalidAudienceError:
            raise OidcRefused(
                f"the token is not meant for {self.audience} (its aud); configure the Temporal "
                "UI's OIDC client to request that audience, or set REMIT_CODEC_OIDC_AUDIENCE"
            ) from None
        except jwt.ImmatureSignatureError:
            raise OidcRefused("the token is not valid yet (nbf/iat in the future)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise OidcRefused(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise OidcRefused(f"the token's signature or claims do not verify ({exc})") from None
        user = claims.get(self.user_claim) or claims.get("sub")
        if not isinstance(user, str) or not user:
            raise OidcRefused(f"the token names no user ({self.user_claim} or sub)")
        raw = claims.get(self.groups_claim, [])
        if isinstance(raw, str):
            groups = frozenset(raw.replace(",", " ").split())
        elif isinstance(raw, list):
            groups = frozenset(str(g) for g in raw)
        else:
            groups = frozenset()
        return OidcUser(user=user, groups=groups)

    async def refusal(self, token: str, allowed_groups: Collection[str]) -> tuple[str | None, str]:
        """(None, user) when `token` may decode; else (the reason, the user or "-")."""
        try:
            who = await self.verify(token)
        except OidcRefused as exc:
            return str(exc), "-"
        if set(allowed_groups) & who.groups:
            return None, who.user
        return (
            f"{who.user} may not decode payloads: the token's {self.groups_claim!r} claim names "
            f"none of {', '.join(sorted(allowed_groups))} (REMIT_CODEC_GROUPS)",
            who.user,
        )
