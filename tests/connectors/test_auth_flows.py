"""Connections made and kept through each platform's real auth flow against its emulator.

Authorization code through the consent page (QBO realmId, Xero tenant), NetSuite client
credentials with a signed JWT, renewal before expiry and after a refused token, Xero's rotating
refresh token and its grace window, one renewal for concurrent calls, and a revoked grant or
invalid_grant marking the stored connection needs_relink.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from activities.connections import Connectors, StoreConnectionState, temporal_clock
from connectors.base import (
    AuthExpired,
    ConnectionConfig,
    ConnectionRevoked,
    Connector,
    RateLimited,
    Rejected,
    Unavailable,
)
from connectors.governance import FIRST_SHARED_PAUSE, ConnectionGovernor
from connectors.netsuite.auth import AUTH as NETSUITE_AUTH
from connectors.oauth import (
    Credentials,
    LinkRefused,
    TokenSet,
    authorization_request,
    exchange_code,
    parse_callback,
    refresh_grant,
    signed_client_assertion,
)
from connectors.registry import AuthorizationCodeAuth, auth, platform
from connectors.retries import READ_ATTEMPTS
from runtime.secrets import SecretBox
from sandbox.consent import drive_consent, read_consent_page
from sandbox.netsuite import NetSuiteEmulator
from sandbox.registry import DemoCompany, map_key_pair, new_emulator
from sandbox.xero import XeroEmulator
from store import ConnectionRow, Store
from worker import store_lookup

REDIRECT_URI = "https://remit.example/connections/callback"
CODE_PLATFORMS = ("quickbooks", "xero")
ALL_PLATFORMS = ("quickbooks", "xero", "netsuite")


class MovableClock:
    """The Xero emulator's clock: real time plus however far a test moved it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Linked:
    """An emulator, its two companies, and a connection made through the platform's auth."""

    name: str
    emulator: Any
    http: httpx.AsyncClient
    companies: list[DemoCompany]
    config: ConnectionConfig
    clock: MovableClock
    saved: list[Credentials] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.name}.emulator"

    async def on_tokens(self, credentials: Credentials) -> None:
        self.saved.append(credentials)

    def connector(self, *, renewing: bool = True, **credentials: str) -> Connector:
        config = self.config.model_copy(
            update={"credentials": {**self.config.credentials, **credentials}}
        )
        return platform(self.name).connector(
            config, self.http, on_tokens=self.on_tokens if renewing else None
        )


def _emulator(name: str, clock: MovableClock) -> Any:
    if name == "xero":
        return XeroEmulator(clock=clock)
    return new_emulator(name)


async def _register_app(linked_http: httpx.AsyncClient, base_url: str, inspector: str) -> Any:
    response = await linked_http.post(
        f"{base_url}/_emulator/apps",
        json={"redirect_uris": [REDIRECT_URI]},
        headers={"Authorization": f"Bearer {inspector}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def authorize(
    name: str, http: httpx.AsyncClient, base_url: str, app: Any, company_id: str
) -> tuple[TokenSet, str, dict[str, str]]:
    """The whole authorization-code flow: URL, consent page, callback, code exchange."""
    spec = cast(AuthorizationCodeAuth, auth(name))
    request = authorization_request(
        spec.authorize_url(base_url),
        client_id=app["client_id"],
        redirect_uri=REDIRECT_URI,
        scope=spec.scope,
    )
    callback = await drive_consent(http, request.url, company_id=company_id)
    assert callback.startswith(REDIRECT_URI)
    params = parse_callback(callback, request.state)
    tokens, _ = await exchange_code(
        http,
        spec.token_url(base_url),
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        code=params["code"],
        redirect_uri=REDIRECT_URI,
        code_verifier=request.code_verifier,
        platform=name,
    )
    linked = await spec.linked_company(http, base_url, tokens, params)
    return tokens, linked.company_id, params


@pytest.fixture(params=ALL_PLATFORMS)
async def linked(request: pytest.FixtureRequest) -> AsyncIterator[Linked]:
    async with link(request.param) as made:
        yield made


@pytest.fixture(params=CODE_PLATFORMS)
async def code_linked(request: pytest.FixtureRequest) -> AsyncIterator[Linked]:
    """The platforms whose connections a person grants on a consent page."""
    async with link(request.param) as made:
        yield made


@contextlib.asynccontextmanager
async def link(name: str) -> AsyncIterator[Linked]:
    clock = MovableClock()
    emulator = _emulator(name, clock)
    companies = [emulator.seed_demo_company(), emulator.seed_demo_company()]
    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    async with httpx.AsyncClient(transport=transport) as http:
        base_url = f"http://{name}.emulator"
        chosen = companies[1]
        spec = auth(name)
        if spec.flow == "authorization_code":
            app = await _register_app(http, base_url, chosen.inspector_token)
            tokens, company_id, _ = await authorize(name, http, base_url, app, chosen.company_id)
            credentials = {
                "client_id": app["client_id"],
                "client_secret": app["client_secret"],
                **tokens.credentials(),
            }
        else:
            credentials = await map_key_pair(http, base_url, company_id=chosen.company_id)
            tokens = await NETSUITE_AUTH.renew(http, base_url, credentials)
            company_id = credentials.pop("account_id")
            credentials.update(tokens.credentials())
        config = ConnectionConfig(
            id=f"conn-{name}-{uuid.uuid4().hex[:6]}",
            platform=name,
            base_url=base_url,
            company_id=company_id,
            credentials=credentials,
            settings=dict(chosen.settings),
        )
        yield Linked(name, emulator, http, companies, config, clock)


# ---------------------------------------------------------------------------------------------
# Making the connection
# ---------------------------------------------------------------------------------------------


async def test_the_link_reaches_the_company_chosen_on_the_consent_page(linked: Linked) -> None:
    chosen, other = linked.companies[1], linked.companies[0]
    connector = linked.connector()

    accounts = await connector.list_accounts()

    assert linked.config.company_id == chosen.company_id != other.company_id
    assert {a.name for a in accounts} >= {"Accounts Payable", "Office Supplies"}
    expires_at = TokenSet.from_credentials(linked.config.credentials).expires_at
    assert expires_at is not None and expires_at > datetime.now(UTC) + timedelta(minutes=20)
    assert linked.saved == []  # a fresh token needs no renewal


async def test_the_grant_does_not_reach_the_company_not_chosen(code_linked: Linked) -> None:
    linked = code_linked
    other = linked.companies[0].company_id
    stranger = platform(linked.name).connector(
        linked.config.model_copy(update={"company_id": other}), linked.http
    )
    # QBO answers 403 ApplicationAuthorizationFailed; Xero refuses the tenant header.
    with pytest.raises((Rejected, ConnectionRevoked)) as refused:
        await stranger.list_accounts()
    assert refused.value.status == 403


@pytest.mark.parametrize("name", CODE_PLATFORMS)
async def test_consent_page_lists_every_company_and_carries_the_request(name: str) -> None:
    emulator = new_emulator(name)
    companies = [emulator.seed_demo_company(), emulator.seed_demo_company()]
    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    base_url = f"http://{name}.emulator"
    async with httpx.AsyncClient(transport=transport) as http:
        app = await _register_app(http, base_url, companies[0].inspector_token)
        spec = cast(AuthorizationCodeAuth, auth(name))
        request = authorization_request(
            spec.authorize_url(base_url),
            client_id=app["client_id"],
            redirect_uri=REDIRECT_URI,
            scope=spec.scope,
        )
        page = await read_consent_page(http, request.url)
        wrong_redirect = await http.get(
            request.url.replace("remit.example", "attacker.example"), follow_redirects=False
        )

    assert page.choices == [c.company_id for c in companies]
    assert page.hidden["state"] == request.state
    assert page.hidden["code_challenge_method"] == "S256"
    # An unregistered redirect URI is shown as an error, never redirected to.
    assert wrong_redirect.status_code == 400 and "location" not in wrong_redirect.headers


@pytest.mark.parametrize("name", CODE_PLATFORMS)
async def test_the_callback_names_the_company_the_platform_way(name: str) -> None:
    emulator = new_emulator(name)
    company = emulator.seed_demo_company()
    base_url = f"http://{name}.emulator"
    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    async with httpx.AsyncClient(transport=transport) as http:
        app = await _register_app(http, base_url, company.inspector_token)
        _, company_id, params = await authorize(name, http, base_url, app, company.company_id)

    assert company_id == company.company_id
    # QBO puts realmId on the redirect; Xero's tenant comes from GET /connections instead.
    assert ("realmId" in params) == (name == "quickbooks")


async def test_a_declined_consent_is_link_refused(code_linked: Linked) -> None:
    linked = code_linked
    spec = cast(AuthorizationCodeAuth, auth(linked.name))
    request = authorization_request(
        spec.authorize_url(linked.base_url),
        client_id=linked.config.credentials["client_id"],
        redirect_uri=REDIRECT_URI,
        scope=spec.scope,
    )
    callback = await drive_consent(linked.http, request.url, allow=False)

    with pytest.raises(LinkRefused, match="access_denied|declined"):
        parse_callback(callback, request.state)
    with pytest.raises(LinkRefused, match="state"):
        parse_callback(callback.replace(request.state, "forged"), request.state)


async def test_a_code_works_once_and_its_replay_revokes_the_grant(code_linked: Linked) -> None:
    linked = code_linked
    spec = cast(AuthorizationCodeAuth, auth(linked.name))
    client = {
        "client_id": linked.config.credentials["client_id"],
        "client_secret": linked.config.credentials["client_secret"],
    }
    request = authorization_request(
        spec.authorize_url(linked.base_url),
        client_id=client["client_id"],
        redirect_uri=REDIRECT_URI,
        scope=spec.scope,
    )
    params = parse_callback(
        await drive_consent(linked.http, request.url, company_id=linked.config.company_id),
        request.state,
    )
    token_url = spec.token_url(linked.base_url)
    exchange = {
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "platform": linked.name,
        **client,
    }
    with pytest.raises(ConnectionRevoked, match="invalid_grant"):
        await exchange_code(linked.http, token_url, code_verifier="not-the-verifier", **exchange)

    request = authorization_request(
        spec.authorize_url(linked.base_url),
        client_id=client["client_id"],
        redirect_uri=REDIRECT_URI,
        scope=spec.scope,
    )
    params = parse_callback(
        await drive_consent(linked.http, request.url, company_id=linked.config.company_id),
        request.state,
    )
    exchange["code"] = params["code"]
    tokens, _ = await exchange_code(
        linked.http, token_url, code_verifier=request.code_verifier, **exchange
    )
    first = linked.connector(renewing=False, **tokens.credentials())
    assert await first.list_accounts()

    with pytest.raises(ConnectionRevoked, match="invalid_grant"):
        await exchange_code(linked.http, token_url, code_verifier=request.code_verifier, **exchange)
    with pytest.raises((ConnectionRevoked, AuthExpired)):
        await first.list_accounts()


async def test_netsuite_mints_with_a_ps256_assertion_from_an_rsa_certificate() -> None:
    emulator = NetSuiteEmulator()
    company = emulator.seed_demo_company()
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    mapping = emulator.register_certificate(company.company_id, public)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    base_url = "http://netsuite.emulator"
    token_url = NETSUITE_AUTH.token_url(base_url)
    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    async with httpx.AsyncClient(transport=transport) as http:
        credentials = {
            "client_id": mapping.client_id,
            "certificate_id": mapping.certificate_id,
            "private_key": private,
        }
        tokens = await NETSUITE_AUTH.renew(http, base_url, credentials)
        connector = platform("netsuite").connector(
            ConnectionConfig(
                id="ns-rsa",
                platform="netsuite",
                base_url=base_url,
                company_id=company.company_id,
                credentials={**credentials, **tokens.credentials()},
                settings=company.settings,
            ),
            http,
        )
        accounts = await connector.list_accounts()
        # A wrong audience is refused: the assertion is bound to this token endpoint.
        wrong_audience = signed_client_assertion(
            client_id=mapping.client_id,
            key_id=mapping.certificate_id,
            private_key_pem=private,
            audience="https://elsewhere.example/token",
            scope="rest_webservices",
        )
        refused = await http.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": wrong_audience,
            },
        )

    assert wrong_audience.count(".") == 2
    header = wrong_audience.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "PS256"
    assert accounts and tokens.refresh_token is None
    assert refused.status_code == 400 and "aud" in refused.json()["error_description"]


# ---------------------------------------------------------------------------------------------
# Keeping it alive
# ---------------------------------------------------------------------------------------------


async def test_a_token_about_to_expire_is_renewed_before_the_call(linked: Linked) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    old_access = linked.config.credentials["access_token"]
    connector = linked.connector(expires_at=soon)

    assert await connector.list_accounts()

    assert len(linked.saved) == 1
    renewed = linked.saved[0]
    assert renewed["access_token"] != old_access
    assert datetime.fromisoformat(renewed["expires_at"]) > datetime.now(UTC) + timedelta(minutes=20)
    # The app's own credentials are kept alongside the new tokens.
    assert renewed["client_id"] == linked.config.credentials["client_id"]


async def test_a_refused_token_is_renewed_once_and_the_call_retried(linked: Linked) -> None:
    linked.emulator.expire_token(linked.config.credentials["access_token"])
    connector = linked.connector()

    accounts = await connector.list_accounts()

    assert accounts and len(linked.saved) == 1


async def test_without_a_place_to_save_tokens_a_refused_token_stays_auth_expired(
    linked: Linked,
) -> None:
    linked.emulator.expire_token(linked.config.credentials["access_token"])
    with pytest.raises(AuthExpired):
        await linked.connector(renewing=False).list_accounts()


async def test_concurrent_calls_at_expiry_renew_once(linked: Linked) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    connector = linked.connector(expires_at=past)

    results = await asyncio.gather(*(connector.list_accounts() for _ in range(4)))

    assert all(results)
    assert len(linked.saved) == 1


async def test_concurrent_refusals_renew_once(linked: Linked) -> None:
    linked.emulator.expire_token(linked.config.credentials["access_token"])
    connector = linked.connector()

    results = await asyncio.gather(*(connector.list_accounts() for _ in range(4)))

    assert all(results)
    assert len(linked.saved) == 1


async def test_xero_rotates_the_refresh_token_and_the_old_one_lives_only_in_grace() -> None:
    clock = MovableClock()
    emulator = XeroEmulator(clock=clock)
    company = emulator.seed_demo_company()
    base_url = "http://xero.emulator"
    transport = httpx.ASGITransport(app=cast(Any, emulator.app))
    async with httpx.AsyncClient(transport=transport) as http:
        app = await _register_app(http, base_url, company.inspector_token)
        tokens, tenant, _ = await authorize("xero", http, base_url, app, company.company_id)
        first = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        first.update(tokens.credentials())
        saved: list[Credentials] = []

        async def persist(credentials: Credentials) -> None:
            saved.append(credentials)

        config = ConnectionConfig(
            id="xero-rotating",
            platform="xero",
            base_url=base_url,
            company_id=tenant,
            credentials=first,
            settings=company.settings,
        )
        emulator.expire_token(first["access_token"])
        connector = platform("xero").connector(config, http, on_tokens=persist)
        assert await connector.list_accounts()
        assert len(saved) == 1 and saved[0]["refresh_token"] != first["refresh_token"]

        token_url = auth("xero").token_url(base_url)
        client = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        clock.offset = timedelta(minutes=29)
        within_grace = await refresh_grant(
            http, token_url, refresh_token=first["refresh_token"], **client
        )
        clock.offset = timedelta(minutes=31)
        with pytest.raises(ConnectionRevoked, match="invalid_grant"):
            await refresh_grant(http, token_url, refresh_token=first["refresh_token"], **client)
        # The persisted (rotated) one is what keeps the connection alive.
        latest = await refresh_grant(
            http, token_url, refresh_token=saved[0]["refresh_token"], **client
        )

    assert within_grace.access_token.get_secret_value()
    assert latest.refresh_token is not None
    assert latest.refresh_token.get_secret_value() != saved[0]["refresh_token"]


# ---------------------------------------------------------------------------------------------
# Through the store: persisted tokens, health, needs_relink
# ---------------------------------------------------------------------------------------------


@dataclass
class Stored:
    store: Store
    box: SecretBox
    connectors: Connectors
    connection_id: str
    # What the connection's governor waited out inline (it does not really sleep here).
    waited: list[float] = field(default_factory=list)

    def row(self) -> ConnectionRow:
        row = self.store.get_connection(self.connection_id)
        assert row is not None
        return row

    def credentials(self) -> Credentials:
        sealed = self.row().credentials_encrypted
        assert sealed is not None
        return self.box.open(sealed)


@pytest.fixture
async def stored(linked: Linked, tmp_path: Path) -> AsyncIterator[Stored]:
    store = Store.open(f"sqlite:///{tmp_path / 'remit.db'}")
    box = SecretBox(SecretBox.generate_key())
    now = datetime.now(UTC)
    config = linked.config
    store.upsert_connection(
        ConnectionRow(
            id=config.id,
            platform=config.platform,
            company_id=config.company_id,
            display_name=f"{linked.name} test company",
            base_url=config.base_url,
            status="active",
            credentials_encrypted=box.seal(config.credentials),
            settings=config.settings,
            created_at=now,
            updated_at=now,
        )
    )
    transport = httpx.ASGITransport(app=cast(Any, linked.emulator.app))
    waited: list[float] = []

    async def wait(seconds: float) -> None:
        waited.append(seconds)

    connectors = Connectors(
        store_lookup(store, box),
        transport_for=lambda _config: transport,
        state=StoreConnectionState(store, box.seal, success_interval=0),
        governor=ConnectionGovernor(clock=temporal_clock, sleep=wait),
    )
    try:
        yield Stored(store, box, connectors, config.id, waited)
    finally:
        await connectors.aclose()
        store.close()


async def test_renewed_tokens_are_sealed_in_the_store_and_the_connector_kept(
    linked: Linked, stored: Stored
) -> None:
    before = stored.credentials()
    linked.emulator.expire_token(before["access_token"])
    connector = await stored.connectors.connector(stored.connection_id)

    assert await connector.list_accounts()

    after = stored.credentials()
    assert after["access_token"] != before["access_token"]
    assert stored.row().credentials_encrypted is not None
    assert before["access_token"].encode() not in cast(bytes, stored.row().credentials_encrypted)
    assert await stored.connectors.connector(stored.connection_id) is connector
    assert stored.row().last_success_at is not None and stored.row().status == "active"


async def test_a_revoked_grant_marks_the_connection_needs_relink(
    linked: Linked, stored: Stored
) -> None:
    linked.emulator.revoke_token(stored.credentials()["access_token"])
    connector = await stored.connectors.connector(stored.connection_id)

    with pytest.raises(ConnectionRevoked):
        await connector.list_accounts()

    row = stored.row()
    assert row.status == "needs_relink"
    assert row.last_error and row.last_error_at is not None


async def test_invalid_grant_on_renewal_marks_the_connection_needs_relink(
    linked: Linked, stored: Stored
) -> None:
    credentials = stored.credentials()
    if linked.name == "netsuite":
        # M2M renews with the certificate: an administrator removing the mapping is the same.
        linked.emulator.revoke_certificate(credentials["client_id"], credentials["certificate_id"])
    else:
        linked.emulator.revoke_token(credentials["refresh_token"])
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    stored.store.save_connection_credentials(
        stored.connection_id, stored.box.seal({**credentials, "expires_at": past})
    )
    connector = await stored.connectors.connector(stored.connection_id)

    with pytest.raises(ConnectionRevoked) as revoked:
        await connector.list_accounts()

    assert revoked.value.code in ("invalid_grant", "invalid_client")
    assert stored.row().status == "needs_relink"


async def test_throttles_and_outages_are_recorded_as_health(linked: Linked, stored: Stored) -> None:
    connector = await stored.connectors.connector(stored.connection_id)
    linked.emulator.faults.script("5xx", times=READ_ATTEMPTS)  # outlasts the inline tries
    with pytest.raises(Unavailable):
        await connector.list_accounts()
    linked.emulator.faults.retry_after_seconds = 30  # too long to wait inline (where sent)
    linked.emulator.faults.script("429")
    with pytest.raises(RateLimited):
        await connector.list_accounts()
    assert linked.emulator.faults.fired == {"5xx": READ_ATTEMPTS, "429": 1}

    row = stored.row()
    assert row.rate_limited_until is not None
    until = row.rate_limited_until
    assert (until if until.tzinfo else until.replace(tzinfo=UTC)) > datetime.now(UTC)
    assert row.last_error is not None and row.status == "active"

    # The 429 paused the connection for its first, short pause: the next call waits it out
    # in the process, then reaches the ERP, instead of spending a Temporal attempt.
    assert await connector.list_accounts()
    assert len(stored.waited) == 1 and 0 < stored.waited[0] <= FIRST_SHARED_PAUSE.total_seconds()
