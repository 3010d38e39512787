"""Per-IP rate limits on the public endpoints that guess or write, as Litestar guards.

A guard runs after routing and before the key check, the body and the transaction, so a
refused request costs a dictionary lookup: no database round trip. The buckets live in the
runtime (`runtime.limits`, one per limit in `Settings.rate_limits`), in process. `/r/{code}`
has no guard at all.

The client is the peer address, or the `X-Forwarded-For` hop a trusted proxy vouches for
(exactly as the redirect decides it for clicks); an IPv6 client is its /64, which one host
usually holds whole.
"""

from __future__ import annotations

import functools
import ipaddress

from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from referral.lib.rate_limit import retry_after
from referral.links.visitors import client_ip


@functools.lru_cache(maxsize=8)
def _trusted(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def client_key(connection: ASGIConnection) -> bytes | None:
    """Who is asking, as a bucket key: the client's IPv4 address or IPv6 /64, packed."""
    settings = connection.app.state.runtime.settings
    peer = connection.scope.get("client")
    forwarded_for = None
    if settings.trusted_proxies:
        forwarded_for = connection.headers.get("x-forwarded-for")
    address = client_ip(
        peer[0] if peer else None, forwarded_for, _trusted(settings.trusted_proxies)
    )
    if address is None:
        return None
    return address.packed if address.version == 4 else address.packed[:8]


def _secret_key_sent(connection: ASGIConnection) -> bool:
    scheme, _, key = connection.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and key.strip().startswith("sk_")


def rate_limited(name: str, *, except_secret_keys: bool = False) -> Guard:
    """A guard that limits each client on the `name` limit of `Settings.rate_limits`.

    `except_secret_keys`: calls sent with a secret key are not limited (a shop's server
    makes all its calls from one address). A forged `sk_…` gains nothing: the key check
    that follows refuses it.
    """

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        buckets = connection.app.state.runtime.limits[name]
        if not buckets.limit.enabled or (except_secret_keys and _secret_key_sent(connection)):
            return
        key = client_key(connection)
        if key is None:  # no address to count by (a Unix socket without a proxy header)
            return
        wait = buckets.take(key)
        if wait:
            seconds = retry_after(wait)
            raise TooManyRequestsException(
                detail=f"too many requests from your address; retry in {seconds} s",
                headers={"retry-after": seconds},
            )

    guard.__name__ = f"rate_limited_{name}"
    return guard
