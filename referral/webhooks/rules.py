"""Pure webhook decisions: what an event type matches, how a delivery is signed, which
addresses may be called, what an answer means and when the next attempt is due."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import random
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from hashids import Hashids

# --------------------------------------------------------------------------- event types

_PATTERN = re.compile(r"\*|[a-z][a-z0-9_]*\.(\*|[a-z][a-z0-9_]*)")


def matches(patterns: Iterable[str], event_type: str) -> bool:
    """`*` is every type, `reward.*` every type of the category, else the exact type.
    The same rule as `webhook_type_matches` in sql/0011_webhooks.sql (the fan-out)."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def unknown_patterns(patterns: Iterable[str], known: Iterable[str]) -> list[str]:
    """Patterns that can never match a type of the catalogue (a typo would stay silent)."""
    known = list(known)
    return [
        p for p in patterns if not _PATTERN.fullmatch(p) or not any(matches([p], t) for t in known)
    ]


# --------------------------------------------------------------------------- secrets, signing

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the issue allows 24-64


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def show_secret(secret: bytes) -> str:
    """`whsec_` + standard base64: what every Standard Webhooks library takes."""
    return SECRET_PREFIX + base64.b64encode(secret).decode()


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` (Standard Webhooks)."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets_: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per live secret, space separated: during a rotation both verify."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


# --------------------------------------------------------------------------- addresses

# Metadata services that are not link-local (169.254.169.254 and fd00:ec2::254 are refused
# as link-local / unique-local anyway; Alibaba's 100.100.100.200 is in 100.64/10).
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


def address_refusal(address: str, *, live: bool) -> str | None:
    """Why a delivery may not connect to `address`, or None. Live mode: public addresses
    only. Test mode also allows loopback and private networks (a receiver on the
    developer's machine), never link-local, metadata, multicast or unspecified."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "metadata"
    if ip.is_link_local:
        return "link_local"
    if ip.is_loopback:
        return "loopback" if live else None
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "private" if live else None
    return None


class UrlProblem(ValueError):
    """A webhook URL that cannot be used; the message says why."""


def check_url(url: str, *, live: bool) -> None:
    """What creation can tell before any DNS lookup (the delivery checks again after it):
    http(s) with a host, https in live mode, no credentials, no address literal that
    delivery would refuse."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlProblem(f"not a URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UrlProblem("the URL must be http(s)://host/…")
    if live and parts.scheme != "https":
        raise UrlProblem("live mode sends webhooks over https only")
    if parts.username or parts.password:
        raise UrlProblem("put no credentials in the URL; verify the signature instead")
    if port == 0:
        raise UrlProblem("port 0 cannot be called")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    if reason := address_refusal(str(literal), live=live):
        raise UrlProblem(f"webhooks are not sent to {reason} addresses")


def loggable_url(url: str) -> str:
    """Scheme, host and port only: paths and queries may carry the shop's tokens."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{parts.hostname}{port}"


# --------------------------------------------------------------------------- answers, retries

# After the first attempt (immediately): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.1  # each wait is stretched or shrunk by up to 10 %
MAX_RETRY_AFTER = timedelta(hours=10)
FAILING_DISABLES_AFTER = timedelta(days=5)
EXCERPT_CHARS = 1000


def succeeded(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def gone(status_code: int | None) -> bool:
    """410 Gone: the receiver says the endpoint is no more; it is disabled at once."""
    return status_code == 410


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as delta-seconds or an HTTP date (RFC 9110), capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        wait = when - now
    return min(max(wait, timedelta(0)), MAX_RETRY_AFTER)


def next_attempt(
    attempts: int,
    now: datetime,
    *,
    wait_at_least: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When attempt number `attempts + 1` is due after `attempts` failed ones, or None when
    the schedule is spent. The schedule's wait gets jitter; a Retry-After longer than it
    wins (never sooner than the receiver asked)."""
    if attempts >= len(SCHEDULE):
        return None
    wait = SCHEDULE[attempts]
    if wait:
        wait *= 1 + (rng or random).uniform(-JITTER, JITTER)
    if wait_at_least is not None and wait_at_least > wait:
        wait = wait_at_least
    return now + wait


def excerpt(body: bytes) -> str:
    return body.decode("utf-8", "replace")[:EXCERPT_CHARS]


# --------------------------------------------------------------------------- public ids

_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"
PREFIXES = {"webhook_endpoint": "whe", "webhook_attempt": "wha"}


class WebhookIds:
    """Public ids of endpoints (`whe_…`) and attempts (`wha_…`), like `lib.ids.PublicIds`."""

    def __init__(self, salt: str) -> None:
        self._codecs = {
            kind: Hashids(salt=f"{salt}:{prefix}", min_length=10, alphabet=_ALPHABET)
            for kind, prefix in PREFIXES.items()
        }

    def encode(self, kind: str, internal_id: int) -> str:
        return f"{PREFIXES[kind]}_{self._codecs[kind].encode(internal_id)}"

    def decode(self, kind: str, public_id: str) -> int | None:
        head, _, body = public_id.partition("_")
        if head == PREFIXES[kind] and 0 < len(body) <= 32:
            decoded = self._codecs[kind].decode(body)
            if len(decoded) == 1:
                return decoded[0]
        return None
