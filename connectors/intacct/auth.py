"""How Intacct connections sign in: sender credentials on every request, and an API session
(login once, then `getAPISession`) whose id the requests carry until it times out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from connectors.base import ConnectionConfig, Rejected

PLATFORM_NAME = "intacct"
CREDENTIAL_FIELDS = ("sender_id", "sender_password", "user_id", "user_password")


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

    def __init__(self, open_session: Callable[[], Awaitable[str]]) -> None:
        self._open = open_session
        self._session: str | None = None
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
