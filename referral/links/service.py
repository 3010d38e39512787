"""Links: resolve a code, build the redirect, record the click.

The redirect is the hottest path in the service, so a resolved code is cached in process for
a few seconds (program edits in this process clear it at once; other instances see them
within `code_cache_seconds`), and the click goes to the buffered writer.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec

from referral.codes.codec import lookup_key
from referral.lib.errors import InvalidInput, NotFound
from referral.links import repo
from referral.links.clicks import ClickWriter
from referral.links.qr import QrTooSmall
from referral.links.token import ClickToken, ClickTokenSigner

if TYPE_CHECKING:  # the runtime holds this module's resolver
    from referral.links.qr import QrFormat, RenderedQr
    from referral.runtime import Runtime

CHANNELS = frozenset(
    {
        "link",
        "qr",
        "whatsapp",
        "email",
        "sms",
        "x",
        "facebook",
        "linkedin",
        "messenger",
        "telegram",
        "copy",
        "story",
        "share_sheet",
        "other",
    }
)
_MAX_CACHE = 100_000
# A click replayed after an outage longer than this could be counted unique twice.
UNIQUE_CLICK_KEYS_KEPT = timedelta(days=8)
# Stands in for the token while the redirect URL is prepared: base64url characters only, as
# a real token, so URL-encoding leaves it (and later the token) exactly as it is.
_TOKEN_SLOT = "REFTOKENSLOTq7Xw3Z"


class CodeTarget(repo.CodeRow, frozen=True):
    # The redirect URL before and after its `ref_token` value, prepared once per code so a
    # redirect only joins three strings (see `landing_url_for`).
    redirect_parts: tuple[str, str] | None = None

    @classmethod
    def from_row(cls, row: repo.CodeRow) -> CodeTarget:
        target = cls(**msgspec.structs.asdict(row))
        parts = _landing_url(target, _TOKEN_SLOT).split(_TOKEN_SLOT)
        if len(parts) != 2:  # the landing URL itself contains the slot marker
            return target
        return msgspec.structs.replace(target, redirect_parts=(parts[0], parts[1]))


class CodeResolver:
    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, CodeTarget | None]] = {}

    async def resolve(self, raw: str) -> CodeTarget | None:
        now = time.monotonic()
        # Entries are also kept under the raw code as typed (for generated codes, the key
        # itself): a hit skips normalising. `lookup_key` is deterministic, so a raw string
        # always stands for the same key.
        hit = self._cache.get(raw)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = lookup_key(raw)
        if not key or len(key) > 32:
            return None
        if key != raw:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                if len(raw) <= 64 and len(self._cache) < _MAX_CACHE:
                    self._cache[raw] = hit
                return hit[1]
        row = await repo.resolve_code(self._pool, key)
        target = CodeTarget.from_row(row) if row is not None else None
        if self._ttl > 0:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            entry = (now + self._ttl, target)
            self._cache[key] = entry
            if key != raw and len(raw) <= 64:
                self._cache[raw] = entry
        return target

    def forget_all(self) -> None:
        self._cache.clear()


async def ensure_click_partitions(db: asyncpg.Pool | asyncpg.Connection) -> None:
    """This month's and the next two months' partitions of `clicks`, where missing: at
    start-up and every few hours, so a new month's clicks never land in the default one.
    Also forgets the unique-click keys of days a week gone (their counts stay in the
    rollups), so that table holds about a week of visitors, not all of history."""
    await repo.ensure_partitions(db)
    await repo.prune_unique_clicks(db, (datetime.now(UTC) - UNIQUE_CLICK_KEYS_KEPT).date())


async def qr_image(runtime: Runtime, *, code: str, fmt: QrFormat, size: int) -> RenderedQr:
    """The QR code of an active code's link (`?ch=qr`), in the program's colours."""
    target = await runtime.codes.resolve(code)
    if target is None:
        raise NotFound("no such referral code", code="code_not_found")
    if not target.active:
        raise InvalidInput("this referral code is not active", code="code_inactive")
    url = f"{runtime.settings.public_base_url}/r/{target.code}?ch=qr"
    try:
        return runtime.qr.get(url, fmt, size, target.qr_foreground, target.qr_background)
    except QrTooSmall as small:  # a long public base URL and the smallest sizes
        raise InvalidInput(str(small), code="qr_size_too_small") from None


def landing_url_for(target: CodeTarget, token: str) -> str:
    """The program's landing URL with `ref` and `ref_token` added, its own query kept.

    The target comes only from the program, never from the request: no open redirect.
    `token` is base64url (what the signer makes), which URL-encoding leaves unchanged.
    """
    if target.redirect_parts is not None:
        head, tail = target.redirect_parts
        return f"{head}{token}{tail}"
    return _landing_url(target, token)


def _landing_url(target: CodeTarget, token: str) -> str:
    parts = urlsplit(target.landing_url)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k not in ("ref", "ref_token")
    ]
    query += [("ref", target.code), ("ref_token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def channel_of(raw: str | None) -> str:
    if not raw:
        return "link"
    raw = raw.lower()
    return raw if raw in CHANNELS else "other"


_RANDOM_CHUNK = 4096
_random = memoryview(b"")
_random_at = 0


def _forget_random() -> None:
    global _random, _random_at
    _random, _random_at = memoryview(b""), 0


# A forked worker must never hand out bytes its parent (or a sibling) also holds.
os.register_at_fork(after_in_child=_forget_random)


def random_bytes(n: int) -> bytes:
    """`n` bytes from `os.urandom`, read 4 KiB at a time: one system call per ~150 clicks
    instead of one or two per click. Each byte is handed out once."""
    global _random, _random_at
    start = _random_at
    end = start + n
    if end > len(_random):
        _random, start, end = memoryview(os.urandom(max(_RANDOM_CHUNK, n))), 0, n
    _random_at = end
    return _random[start:end].tobytes()


def new_click_id() -> str:
    """A random (version 4) UUID as 32 hex digits: what `uuid.uuid4().hex` gives, at a
    third of the cost. The clicks table's uuid column takes the hex string as it is."""
    raw = bytearray(random_bytes(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def record_click(
    writer: ClickWriter,
    signer: ClickTokenSigner,
    target: CodeTarget,
    *,
    channel: str,
    visitor_id: str,
    ip_hashes: tuple[bytes | None, bytes | None],
    user_agent: str,
    referer_host: str | None,
    story: tuple[str, int] | None,
    bot: bool,
) -> str:
    """Buffer the click and return the signed token for the landing URL."""
    click_id = new_click_id()
    now = datetime.now(UTC)
    writer.record(
        (
            click_id,
            now,
            target.merchant_id,
            target.program_id,
            target.advocate_id,
            target.code,
            channel,
            visitor_id,
            ip_hashes[0],
            ip_hashes[1],
            user_agent[:200] or None,
            referer_host,
            story[1] if story else None,
            bot,
        )
    )
    return signer.sign(
        ClickToken(
            code=target.code,
            click_id=click_id,
            channel=channel,
            visitor_id=visitor_id,
            issued_at=int(now.timestamp()),
            story_id=story[0] if story else None,
            referer_host=referer_host,
        )
    )
