"""The one HTTP send loop of every connector: auth, Decimal JSON, bounded retries, error mapping.

Each platform supplies what differs: how a request is authorized and renewed after a 401
(`Auth`), and how a failed answer maps into the connectors.base errors (`Platform.error_for`,
or a `read` per call where a platform hides errors in a 200). Everything else is decided here
once, so the clients cannot drift apart again:

- A request that was never sent (connection refused, connect or pool timeout, a bad URL) is
  `Unavailable`: nothing reached the platform.
- A request that was sent but got no answer (read timeout, connection dropped) is
  `Unavailable` when it is `repeatable` (a read), and `OutcomeUnknown` when it is a write: the
  write may have been applied, and only the activity's look-up by reference can tell.
- A 401 gets one renewal and one resend (the platform did not process it), unless the auth
  hook says the refusal cannot be helped by a renewal (a revoked grant).
- A repeatable request gets the few quick tries of connectors.retries (5xx, connect faults,
  a 429 whose Retry-After is short); a write is sent once. No platform key makes a blind
  resend safe here: QuickBooks forgets a requestid after a while and only replays identical
  bodies, NetSuite's upserts by externalId are the only resend-safe writes but their look-up
  is just as cheap, and every write path in the activities already looks up before it writes
  again. So the activities get `OutcomeUnknown`/`Unavailable` and decide.

Per-connection governance (connectors.governance) stays around each connector call, one level
up, not around each request here: the governor measures pauses on Temporal's clock, which
stands still within an activity attempt, so a pause checked before every request would stall
every later request of an attempt that had already waited out its 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx

from connectors import decimal_json
from connectors.base import ConnectorError, OutcomeUnknown, Unavailable
from connectors.oauth import TokenKeeper
from connectors.retries import READ_ATTEMPTS, retrying_read

T = TypeVar("T")

NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
"""Transport failures that happen before any byte of the request reaches the platform."""

READS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods repeatable by default; anything else is a write unless the caller says otherwise."""

Files = list[tuple[str, tuple[str | None, bytes, str]]]


@dataclass(frozen=True)
class Exchange:
    """One request the send loop made and what came of it, for a request log: the path only
    (no query string, no header, no body), the platform's error code and message if any."""

    platform: str
    method: str
    path: str
    status: int | None
    outcome: str
    """ok, or the connectors.base error type the answer (or its absence) mapped to"""
    error_code: str | None
    error_message: str | None
    duration_ms: float
    attempt: int


ExchangeRecorder = Callable[[Exchange], None]

exchange_recorder: ContextVar[ExchangeRecorder | None] = ContextVar(
    "remit_exchange_recorder", default=None
)
"""Who hears of each exchange in the current context (set around a connector call by whoever
keeps a request log); a recorder must not raise and must not block."""


class Auth(Protocol):
    """How one connection authorizes its requests."""

    async def headers(self) -> dict[str, str]:
        """The headers that authorize the next request (renewing first when due)."""
        ...

    async def renew(self, sent: Mapping[str, str], refused: httpx.Response) -> bool:
        """The platform answered 401 to a request sent with `sent`: renew if that can help;
        True when the request is worth sending once more."""
        ...


class StaticAuth:
    """Fixed headers (an API key); a 401 is final."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    async def headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def renew(self, sent: Mapping[str, str], refused: httpx.Response) -> bool:
        return False


class BearerTokens:
    """An OAuth access token from a TokenKeeper, renewed once after a 401.

    `renewable(response)` says whether a 401 is worth a renewal at all (NetSuite says in its
    challenge when the grant is revoked, and a revoked grant's refresh is revoked with it).
    """

    def __init__(
        self,
        keeper: TokenKeeper,
        *,
        renewable: Callable[[httpx.Response], bool] = lambda response: True,
    ) -> None:
        self.keeper = keeper
        self._renewable = renewable

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.keeper.current()}"}

    async def renew(self, sent: Mapping[str, str], refused: httpx.Response) -> bool:
        if not self._renewable(refused):
            return False
        token = sent.get("Authorization", "").removeprefix("Bearer ")
        return await self.keeper.after_refusal(token)


class HttpClient:
    """One connection's send loop over an injected httpx client (owned by the caller).

    `error_for(response)` maps a failed answer into a ConnectorError (the platform's typed
    errors); `read_attempts` bounds the quick tries of a repeatable request.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        platform: str,
        auth: Auth,
        error_for: Callable[[httpx.Response], ConnectorError],
        read_attempts: int = READ_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.platform = platform
        self.auth = auth
        self.error_for = error_for
        self.read_attempts = max(1, read_attempts)
        self._sleep = sleep

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        files: Files | None = None,
        floats: bool = True,
        repeatable: bool | None = None,
        read: Callable[[httpx.Response], T] | None = None,
    ) -> T:
        """Send one request and return `read(response)` (default: the response itself, after
        `error_for` for anything but a 2xx).

        `json` is written with connectors.decimal_json (`floats=False` refuses floats on a wire
        where every number may be money). `repeatable` defaults to True for GET and HEAD; pass
        True for a read sent as POST (a query), never for a write. `read` may raise
        ConnectorErrors of its own, which get the same retries as the loop's.
        """
        request_headers = {"Accept": "application/json", **(headers or {})}
        body = content
        if json is not None:
            request_headers["Content-Type"] = "application/json"
            body = decimal_json.dumps(json, floats=floats).encode()
        if repeatable is None:
            repeatable = method.upper() in READS
        reader: Callable[[httpx.Response], Any] = read or self._checked
        tries = 0

        async def once() -> Any:
            nonlocal tries
            tries += 1
            recorder = exchange_recorder.get()
            if recorder is None:
                response = await self._exchange(
                    method, url, params, request_headers, body, files, repeatable=repeatable
                )
                return reader(response)
            started = time.monotonic()
            status: int | None = None
            try:
                response = await self._exchange(
                    method, url, params, request_headers, body, files, repeatable=repeatable
                )
                status = response.status_code
                result = reader(response)
            except ConnectorError as error:
                self._record(recorder, method, url, status, error, started, tries)
                raise
            self._record(recorder, method, url, status, None, started, tries)
            return result

        if not repeatable:
            return await once()  # type: ignore[no-any-return]
        return await retrying_read(once, attempts=self.read_attempts, sleep=self._sleep)

    async def send_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """`send`, then the body as a JSON object (amounts as Decimal)."""
        return await self.send(method, url, read=self.json_object, **kwargs)

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        """A successful answer's JSON object; a garbled one is `Unavailable` (a proxy's error
        page or a truncated body is a fault of the way there, not a refusal)."""
        self._checked(response)
        try:
            payload = decimal_json.loads(response.content) if response.content else {}
        except ValueError as exc:
            raise Unavailable(
                f"{response.request.method} {response.request.url.path}: "
                f"{self.platform} answered {response.status_code} with unreadable JSON",
                platform=self.platform,
                status=response.status_code,
            ) from exc
        if not isinstance(payload, dict):
            raise Unavailable(
                f"{response.request.method} {response.request.url.path}: "
                f"{self.platform} answered with JSON that is not an object",
                platform=self.platform,
                status=response.status_code,
            )
        return payload

    def _record(
        self,
        recorder: ExchangeRecorder,
        method: str,
        url: str,
        status: int | None,
        error: ConnectorError | None,
        started: float,
        attempt: int,
    ) -> None:
        try:
            recorder(
                Exchange(
                    platform=self.platform,
                    method=method.upper(),
                    path=httpx.URL(url).path,
                    status=status if status is not None else (error.status if error else None),
                    outcome="ok" if error is None else type(error).__name__,
                    error_code=error.code if error is not None else None,
                    error_message=error.message if error is not None else None,
                    duration_ms=round((time.monotonic() - started) * 1000, 3),
                    attempt=attempt,
                )
            )
        except Exception:  # noqa: BLE001 - a log must never fail the call it logs
            pass

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if not response.is_success:
            raise self.error_for(response)
        return response

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        body: bytes | None,
        files: Files | None,
        *,
        repeatable: bool,
    ) -> httpx.Response:
        """One send (and the one resend a renewal after a 401 earns), transport faults typed."""
        what = f"{method} {httpx.URL(url).path}"
        try:
            sent = {**headers, **await self.auth.headers()}
            response = await self.http.request(
                method, url, params=params, headers=sent, content=body, files=files
            )
            # A 401 was not processed, so sending again after one renewal is safe.
            if response.status_code == 401 and await self.auth.renew(sent, response):
                sent = {**headers, **await self.auth.headers()}
                response = await self.http.request(
                    method, url, params=params, headers=sent, content=body, files=files
                )
        except NOT_SENT as exc:
            raise Unavailable(
                f"{what}: could not reach {self.platform} ({exc!r})", platform=self.platform
            ) from exc
        except httpx.TransportError as exc:
            if repeatable:
                raise Unavailable(
                    f"{what}: {self.platform} sent no answer ({exc!r})", platform=self.platform
                ) from exc
            raise OutcomeUnknown(
                f"{what} was sent but no answer came back ({exc!r}); look the object up by "
                "its reference before retrying",
                platform=self.platform,
            ) from exc
        return response
