"""Links: resolve a code, build the redirect, record the click.

The redirect is the hottest path in the service, so a resolved code is cached in process for
a few seconds (program edits in this process clear it at once; other instances see them
within `code_cache_seconds`), and the click goes to the buffered writer.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec

from referral.codes.codec import lookup_key
from referral.links import repo
from referral.links.clicks import ClickWriter
from referral.links.token import ClickToken, ClickTokenSigner

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


class CodeTarget(msgspec.Struct, frozen=True):
    code: str
    merchant_id: int
    program_id: int
    advocate_id: int
    active: bool
    landing_url: str
    fallback_url: str | None
    qr_foreground: str
    qr_background: str


class CodeResolver:
    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, CodeTarget | None]] = {}

    async def resolve(self, raw: str) -> CodeTarget | None:
        key = lookup_key(raw)
        if not key or len(key) > 32:
            return None
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await repo.resolve_code(self._pool, key)
        target = CodeTarget(**dict(row)) if row is not None else None
        if self._ttl > 0:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = (now + self._ttl, target)
        return target

    def forget_all(self) -> None:
        self._cache.clear()


def landing_url_for(target: CodeTarget, token: str) -> str:
    """The program's landing URL with `ref` and `ref_token` added, its own query kept.

    The target comes only from the program, never from the request: no open redirect.
    """
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
    click_id = uuid.uuid4()
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
            click_id=click_id.hex,
            channel=channel,
            visitor_id=visitor_id,
            issued_at=int(now.timestamp()),
            story_id=story[0] if story else None,
        )
    )
