"""How Intacct connections sign in: sender credentials on every request, and an API session
(login once, then `getAPISession`) whose id the requests carry until it times out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element

import httpx
from pydantic import SecretStr

from connectors.base import (
    AuthExpired,
    ConnectionConfig,
    ConnectionRevoked,
    Rejected,
    Unavailable,
)
from connectors.oauth import TokenSet
from connectors.registry import LinkedCompany

PLATFORM_NAME = "intacct"
CREDENTIAL_FIELDS = ("sender_id", "sender_password", "user_id", "user_password")
GATEWAY_PATH = "/ia/xml/xmlgw.phtml"
SESSION_HORIZON = timedelta(minutes=30)


@dataclass(frozen=True)
class Credentials:
    """A Web Services sender (the partner's, on every request) and the company's API user."""

    sender_id: str
    sender_password: str
    user_id: str
    user_password: str
    company_id: str

    @classmethod
    def of(cls, connection: ConnectionConfig) -> Credentials:
        missing = [name for name in CREDENTIAL_FIELDS if not connection.credentials.get(name)]
        if missing:
            raise Rejected(
                f"connection {connection.id}: Intacct credentials need {', '.join(missing)} "
                "(the Web Services sender id and password, and the company's Web Services "
                "user id and password)",
                platform=PLATFORM_NAME,
            )
        return cls(
            sender_id=connection.credentials["sender_id"],
            sender_password=connection.credentials["sender_password"],
            user_id=connection.credentials["user_id"],
            user_password=connection.credentials["user_password"],
            company_id=connection.company_id,
        )


class SessionKeeper:
    """The connection's current API session id, opened on first use and again after Intacct
    refuses it (timed out), by one sign-in at a time however many calls are waiting."""

    def __init__(
        self, open_session: Callable[[], Awaitable[str]], *, initial: str | None = None
    ) -> None:
        """`initial`: a session stored with the connection (it is tried before signing in)."""
        self._open = open_session
        self._session: str | None = initial or None
        self._lock = asyncio.Lock()

    async def current(self) -> str:
        if self._session is None:
            async with self._lock:
                if self._session is None:
                    self._session = await self._open()
        return self._session

    async def after_refusal(self, refused: str) -> str:
        """A new session unless another call already replaced the refused one."""
        async with self._lock:
            if self._session in (None, refused):
                self._session = await self._open()
            return self._session


class IntacctAuth:
    """connectors.registry.PlatformAuth for Intacct, as client credentials: the company's
    administrator creates a Web Services user and authorizes remit's sender id for the
    company (no consent page); a "token" is an API session (login, then getAPISession),
    renewed by signing in again. Credentials: sender_id, sender_password, user_id,
    user_password and company_id."""

    flow = "client_credentials"
    # Intacct has no scopes: the Web Services user's role decides what remit may do.
    scope = ""

    def token_url(self, base_url: str) -> str:
        # Intacct: https://api.intacct.com/ia/xml/xmlgw.phtml (every call, sign-in included)
        return f"{base_url.rstrip('/')}{GATEWAY_PATH}"

    async def renew(
        self, http: httpx.AsyncClient, base_url: str, credentials: Mapping[str, str]
    ) -> TokenSet:
        missing = [n for n in (*CREDENTIAL_FIELDS, "company_id") if not credentials.get(n)]
        if missing:
            raise ConnectionRevoked(
                f"the Intacct connection needs {', '.join(missing)} (the Web Services sender "
                "and the company's Web Services user)",
                platform=PLATFORM_NAME,
            )
        session = await open_session(
            http,
            self.token_url(base_url),
            Credentials(
                sender_id=credentials["sender_id"],
                sender_password=credentials["sender_password"],
                user_id=credentials["user_id"],
                user_password=credentials["user_password"],
                company_id=credentials["company_id"],
            ),
        )
        return TokenSet(
            access_token=SecretStr(session.session_id),
            expires_at=session.expires_at,
            token_type="intacct-session",
            extras={"endpoint": session.endpoint} if session.endpoint else {},
        )

    async def linked_company(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSet,
        callback: dict[str, str],
        *,
        wanted: str | None = None,
    ) -> LinkedCompany:
        """The company id is given up front: it is part of every sign-in."""
        company_id = wanted or callback.get("company_id", "")
        if not company_id:
            raise ValueError("an Intacct connection needs its company id")
        return LinkedCompany(company_id=company_id, company_name=f"Intacct company {company_id}")


@dataclass(frozen=True)
class OpenedSession:
    session_id: str
    endpoint: str
    expires_at: datetime | None


async def open_session(
    http: httpx.AsyncClient, url: str, credentials: Credentials
) -> OpenedSession:
    """One sign-in (login, then getAPISession) straight over `http`; ConnectionRevoked when
    Intacct refuses the user, AuthExpired when it refuses the sender, Unavailable when it
    cannot be reached or answers with something else."""
    from connectors.intacct import wire

    body = wire.envelope(
        sender_id=credentials.sender_id,
        sender_password=credentials.sender_password,
        controlid=f"remit-login-{uuid.uuid4().hex}",
        unique=False,
        authentication=wire.login_element(
            credentials.user_id, credentials.company_id, credentials.user_password
        ),
        functions=[Element("getAPISession")],
    )
    try:
        response = await http.post(url, content=body, headers={"Content-Type": "application/xml"})
    except httpx.TransportError as exc:
        raise Unavailable(f"Intacct unreachable: {exc!r}", platform=PLATFORM_NAME) from exc
    if response.status_code != 200:
        raise Unavailable(
            f"Intacct answered {response.status_code} to a sign-in",
            platform=PLATFORM_NAME,
            status=response.status_code,
        )
    try:
        answer = wire.parse_answer(response.content)
    except wire.WireError as exc:
        raise Unavailable(
            f"Intacct's sign-in answer is unreadable ({exc})", platform=PLATFORM_NAME
        ) from exc
    if answer.control_status != "success":
        raise AuthExpired(
            "Intacct refused the Web Services sender: "
            + "; ".join(e.text() for e in answer.control_errors),
            platform=PLATFORM_NAME,
        )
    if answer.auth_status == "failure":
        raise ConnectionRevoked(
            "Intacct refused the sign-in: " + "; ".join(e.text() for e in answer.auth_errors),
            platform=PLATFORM_NAME,
        )
    result = answer.results[0] if answer.results else None
    data = result.data if result is not None and result.status == "success" else None
    session_id = (data.findtext("api/sessionid") or "").strip() if data is not None else ""
    if not session_id or data is None:
        raise Unavailable("Intacct opened no session", platform=PLATFORM_NAME)
    return OpenedSession(
        session_id=session_id,
        endpoint=(data.findtext("api/endpoint") or "").strip(),
        # A session's timeout is only stated once it is used; an hour is a safe horizon.
        expires_at=(answer.session_timestamp or datetime.now(UTC)) + SESSION_HORIZON,
    )


AUTH = IntacctAuth()
