"""The API's edge checks: trusted hosts, cross-site origins, body limits and unknown queries."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.requests import Request

from runtime.settings import Settings
from starter.api.errors import ApiError, ErrorType

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DOCUMENT_ROUTES = frozenset({("POST", "/v1/bills"), ("POST", "/v1/credits")})
"""Where documents are submitted: these take `max_document_bytes` instead of `max_body_bytes`."""

_HOST_NAME = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?)$")


@dataclass(frozen=True)
class Refusal:
    """An answer the edge gives instead of the route (status, typed error, message)."""

    status: int
    type: ErrorType
    message: str
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


class BodyTooLarge(BaseException):  # noqa: N818 - an interruption, not a failure
    """Raised from `receive()` when a body outgrows its limit while it is read.

    A BaseException on purpose: routes wrap body parsing in `except Exception` (a multipart
    parser's errors share no base class), which must not turn this into a 400.
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _normal_host(host: str) -> str | None:
    """`Host`/pattern text as compared: lower case, no port, no trailing dot; None if not a host."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :] if end > 0 else "?"
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        host = host[: end + 1]
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
        if not port.isdigit():
            return None
    elif ":" in host:  # a bare IPv6 address, as a pattern may give it
        host = f"[{host}]"
    host = host.rstrip(".")
    return host if _HOST_NAME.fullmatch(host) else None


class AllowedHosts:
    """Host patterns: exact names, `*.example.com` (its subdomains) or `*` (anything)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.any = False
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for raw in patterns:
            pattern = raw.strip().lower()
            if not pattern:
                continue
            if pattern == "*":
                self.any = True
                continue
            wildcard = pattern.startswith("*.")
            bare = pattern[2:] if wildcard else pattern
            host = _normal_host(bare)
            has_port = bare.rsplit("]", 1)[-1].count(":") == 1
            if (
                host is None
                or has_port
                or "*" in pattern[1:]
                or (pattern.startswith("*") and not wildcard)
            ):
                raise ValueError(
                    f"REMIT_ALLOWED_HOSTS: {raw.strip()!r} is not a host name or a "
                    "`*.example.com` pattern (no scheme, port or path)"
                )
            if wildcard:
                self.suffixes.append("." + host)
            else:
                self.exact.add(host)
        if not (self.any or self.exact or self.suffixes):
            raise ValueError("REMIT_ALLOWED_HOSTS is empty; name at least one host (or `*`)")

    @classmethod
    def parse(cls, text: str) -> AllowedHosts:
        return cls(text.split(","))

    def allows(self, host_header: str) -> bool:
        host = _normal_host(host_header)
        if host is None:
            return False
        if self.any or host in self.exact:
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)

    def allows_origin(self, origin: str) -> bool:
        try:
            parts = urlsplit(origin)
            hostname, _ = parts.hostname, parts.port  # .port raises on a bad port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not hostname:
            return False
        return self.allows(f"[{hostname}]" if ":" in hostname else hostname)


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


@dataclass(frozen=True)
class BodyLimits:
    """Largest request bodies, by route: documents larger, bank notices and the codec small."""

    default: int = 1024 * 1024
    documents: int = 16 * 1024 * 1024
    bank_events: int = 64 * 1024
    codec: int = 4 * 1024 * 1024
    bank_events_path: str = "/v1/rails/sandbox-bank/events"
    codec_prefixes: tuple[str, ...] = ("/codec", "/inbox/codec")

    def for_request(self, method: str, path: str) -> tuple[int, str]:
        """The limit for a request and the setting that sets it."""
        path = path.rstrip("/") or "/"
        if path == self.bank_events_path:
            return self.bank_events, "REMIT_MAX_BANK_EVENT_BYTES"
        if any(path == p or path.startswith(p + "/") for p in self.codec_prefixes):
            return self.codec, "REMIT_MAX_CODEC_BODY_BYTES"
        if (method, path) in DOCUMENT_ROUTES:
            return self.documents, "REMIT_MAX_DOCUMENT_BYTES"
        return self.default, "REMIT_MAX_BODY_BYTES"

    def refusal(self, method: str, path: str) -> Refusal:
        limit, setting = self.for_request(method, path)
        return Refusal(
            413,
            "invalid_request_error",
            f"the request body is larger than {_size(limit)}, the limit for {method} {path} "
            f"(set by {setting}); send a smaller body",
        )


def _query_params(dependant: Dependant) -> Iterable[Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_params(sub)


def _declared_query(route: APIRoute) -> frozenset[str]:
    names: set[str] = set()
    for param in _query_params(route.dependant):
        annotation = getattr(param.field_info, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            # A query model (FastAPI's `Annotated[Model, Query()]`): its fields are the names.
            names.update(f.alias or n for n, f in annotation.model_fields.items())
        else:
            names.add(param.alias)
    return frozenset(names)


@dataclass
class Edge:
    """What the API checks before a route runs, configured from settings."""

    hosts: AllowedHosts = field(default_factory=lambda: AllowedHosts(DEFAULT_ALLOWED_HOSTS))
    limits: BodyLimits = field(default_factory=BodyLimits)
    own_origin_checks: tuple[str, ...] = ("/codec/", "/inbox/codec/")
    """Path prefixes whose routes allow-list browser origins themselves (the codec endpoint
    answers only the Temporal UI's origins, which may be another host)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Edge:
        return cls(
            hosts=AllowedHosts.parse(settings.allowed_hosts),
            limits=BodyLimits(
                default=settings.max_body_bytes,
                documents=settings.max_document_bytes,
                bank_events=settings.max_bank_event_bytes,
                codec=settings.max_codec_body_bytes,
            ),
        )

    def refusal(self, scope: Scope, headers: Headers) -> Refusal | None:
        """Host, then Origin, then a declared body size (the query: `refuse_unknown_query`)."""
        host = headers.get("host")
        if host is None or not self.hosts.allows(host):
            return Refusal(
                400,
                "invalid_request_error",
                f"this remit API does not answer to the host {host!r}; if that name is right, "
                "add it to REMIT_ALLOWED_HOSTS (comma-separated host names)",
                param="Host",
            )
        method, path = scope["method"], scope["path"]
        if method in STATE_CHANGING and not path.startswith(self.own_origin_checks):
            refused = self._cross_site(headers)
            if refused is not None:
                return refused
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return Refusal(
                    400, "invalid_request_error", "Content-Length is not a number of bytes"
                )
            limit, _ = self.limits.for_request(method, path)
            if int(declared) > limit:
                return self.limits.refusal(method, path)
        return None

    def _cross_site(self, headers: Headers) -> Refusal | None:
        # Browsers send Origin with every cross-origin POST and Sec-Fetch-Site with every
        # request; API clients send neither. A request with neither passes (the inbox's forms
        # still carry their CSRF token).
        origin = headers.get("origin")
        fetch_site = headers.get("sec-fetch-site", "").lower()
        if origin is not None and not self.hosts.allows_origin(origin):
            return Refusal(
                403,
                "permission_error",
                f"cross-site request refused: the page at origin {origin} is not one of this "
                "API's hosts (REMIT_ALLOWED_HOSTS); use remit's own pages, or call the API "
                "without a browser",
                param="Origin",
            )
        if fetch_site == "cross-site":
            return Refusal(
                403,
                "permission_error",
                "cross-site request refused (Sec-Fetch-Site: cross-site): another site's page "
                "may not change anything here; use remit's own pages",
                param="Sec-Fetch-Site",
            )
        return None

    def counted(self, scope: Scope, receive: Receive) -> Receive:
        """`receive` that raises BodyTooLarge once the chunks read pass the route's limit."""
        limit, _ = self.limits.for_request(scope["method"], scope["path"])
        seen = 0

        async def receive_counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(self.limits.refusal(scope["method"], scope["path"]))
            return message

        return receive_counted


_QUERY_NAMES = "_remit_query_names"
"""Where a route keeps its declared names (on the route: it lives and dies with its app)."""


async def refuse_unknown_query(request: Request) -> None:
    """App-wide FastAPI dependency: 422 for a query parameter the route does not declare (a
    misspelt filter would otherwise be ignored, and `?connection=` filed a bill elsewhere)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.scope.get("query_string"):
        return
    known: frozenset[str] | None = getattr(route, _QUERY_NAMES, None)
    if known is None:
        known = _declared_query(route)
        setattr(route, _QUERY_NAMES, known)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if not unknown:
        return
    takes = ", ".join(sorted(known)) if known else "no query parameters"
    names = ", ".join(repr(name) for name in unknown)
    raise ApiError(
        422,
        "invalid_request_error",
        f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names} for "
        f"{request.method} {route.path}; it takes: {takes}",
        param=unknown[0],
    )
