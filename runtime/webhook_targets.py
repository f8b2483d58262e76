"""Where a webhook may be sent: public addresses only, unless a deployment allows private ones."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Iterable[str]]]
"""(host, port) -> the addresses it resolves to, as text."""

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
# Cloud instance metadata: credentials for whoever can make the host fetch them.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task credentials
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(ValueError):
    """The URL points somewhere webhooks may not go; the message says where and why."""


class TargetUnresolvable(TargetRefused):
    """The URL's host resolves to nothing (now): refused at registration; at delivery the POST
    would fail like any network error, and is retried like one."""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    # An IPv6 address can carry an IPv4 one that the kernel will reach: ::ffff:a.b.c.d
    # (mapped), ::a.b.c.d (compatible, deprecated) and 64:ff9b::a.b.c.d (NAT64).
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why webhooks may not go to `address` (e.g. 'a loopback address'), or None if public."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        why = refusal(inner)
        return f"{why} (as {address})" if why else None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def _addresses(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%")[0])]
    except ValueError:
        pass  # a name, not an address
    try:
        resolved = await resolve(host, port)
    except OSError as exc:
        raise TargetUnresolvable(f"{host} does not resolve ({exc.strerror or exc})") from None
    addresses = [ipaddress.ip_address(text.split("%")[0]) for text in resolved]
    if not addresses:
        raise TargetUnresolvable(f"{host} does not resolve to any address")
    return addresses


async def check_target(
    url: str, *, allow_private: bool = False, resolve: Resolver = system_resolver
) -> None:
    """Raise TargetRefused unless every address `url`'s host resolves to is public.

    Call it when an endpoint is registered and again before each delivery: what a name
    resolves to can change after it was checked. With `allow_private` nothing is checked.
    """
    if allow_private:
        return
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"{url!r} is not a URL: {exc}") from None
    host = parsed.host.rstrip(".").lower()
    if not host:
        raise TargetRefused(f"{url!r} names no host")
    if host in METADATA_HOSTS:
        raise TargetRefused(f"{host} is a cloud metadata service; webhooks may not go there")
    addresses = await _addresses(
        host, parsed.port or (443 if parsed.scheme == "https" else 80), resolve
    )
    for address in addresses:
        why = refusal(address)
        if why is not None:
            named = f"{host} resolves to {address}, " if str(address) != host else f"{host} is "
            raise TargetRefused(
                f"{named}{why}; webhooks go only to public addresses "
                "(a deployment may allow others with REMIT_WEBHOOK_ALLOW_PRIVATE_TARGETS)"
            )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves a name itself and dials only addresses `refusal` lets through: the address
    checked is the address connected to (no second lookup a rebinding DNS could answer)."""

    def __init__(self, resolve: Resolver) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await _addresses(host, port, self._resolve)
        except TargetRefused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise httpcore.ConnectError(
                    f"{host} resolves to {address}, {why}: webhooks go only to public addresses"
                )
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are never sent to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    *, timeout: float, allow_private: bool = False, resolve: Resolver = system_resolver
) -> httpx.AsyncClient:
    """An HTTP client for webhooks that connects only to public addresses (unless allowed),
    follows no redirects and uses no proxy from the environment (it would be dialled instead)."""
    if allow_private:
        return httpx.AsyncClient(timeout=timeout)
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its pool without a way to pass a network backend: swap in one that does.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=_GuardedBackend(resolve),
    )
    return httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False)


__all__ = [
    "METADATA_ADDRESSES",
    "TargetRefused",
    "TargetUnresolvable",
    "check_target",
    "guarded_client",
    "refusal",
    "system_resolver",
]
