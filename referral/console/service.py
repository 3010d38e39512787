"""Signing in to the console: one-time links, sessions, signing out and switching mode.

A link is good for 15 minutes and one sign-in; a session for 12 hours or until signed out.
Both are checked in the database on every use (a signed-out session is refused at once on
every instance), after the cookie's MAC (`token.py`) has been checked without it.
"""

from __future__ import annotations

import functools
import unicodedata

import asyncpg
import structlog

from referral.console import repo, token
from referral.console.schemas import ConsoleSession
from referral.lib import b64url
from referral.lib.errors import InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.merchants import service as merchants
from referral.settings import Settings

SIGN_IN_LINK_SECONDS = 15 * 60
SESSION_SECONDS = 12 * 3600
COOKIE = "referral_console"

log = structlog.get_logger("referral.console")


class SignInRefused(Exception):
    """The link is unknown, used or expired (the page says which it may be, not which it is)."""


@functools.cache
def _signer(key: str) -> token.ConsoleSigner:
    return token.ConsoleSigner(key)


def signer(settings: Settings) -> token.ConsoleSigner:
    return _signer(settings.console_key or token.derive_key(settings.click_token_key))


def clean_actor(raw: str) -> str:
    """The name or email a person gives at sign-in, as it will read in the audit: trimmed,
    one line, no control characters, at most 200 characters."""
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InvalidInput(
            "your name or email may not hold control characters", code="invalid_actor"
        )
    if not text:
        raise InvalidInput("say who you are: your name or email", code="invalid_actor")
    if len(text) > 200:
        raise InvalidInput("your name or email is longer than 200 characters", code="invalid_actor")
    return text


async def create_sign_in_link(
    conn: asyncpg.Connection, *, ids: PublicIds, settings: Settings, merchant_id: int
) -> str:
    """A URL that signs one person in to this merchant's console, once, within 15 minutes."""
    raw = token.new_secret()
    await repo.insert_sign_in_link(conn, merchant_id, token.digest(raw), SIGN_IN_LINK_SECONDS)
    merchant = ids.encode("merchant", merchant_id)
    return (
        f"{settings.public_base_url}/console/sign-in?merchant={merchant}&token={b64url.encode(raw)}"
    )


def _link_key(ids: PublicIds, merchant: str, raw_token: str) -> tuple[int, bytes] | None:
    raw = b64url.decode(raw_token) if len(raw_token) < 100 else None
    if raw is None or len(raw) != token.SECRET_BYTES:
        return None
    try:
        return ids.decode("merchant", merchant), token.digest(raw)
    except NotFound:
        return None


async def sign_in_page(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant: str, raw_token: str
) -> merchants.MerchantName:
    """The merchant a usable link is for (the page asks the person's name next). Reads
    only: a link preview fetching the URL does not use the link up."""
    return await _merchant_of_link(conn, ids, merchant, raw_token, repo.sign_in_link_usable)


async def _merchant_of_link(conn, ids, merchant, raw_token, check) -> merchants.MerchantName:
    """The merchant of a link that `check` (read or use up) finds good; else SignInRefused."""
    key = _link_key(ids, merchant, raw_token)
    if key is None or not await check(conn, *key):
        raise SignInRefused
    named = await merchants.named(conn, merchant_id=key[0])
    if named is None:
        raise SignInRefused
    return named


async def _start(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    settings: Settings,
    merchant: merchants.MerchantName,
    actor: str,
) -> tuple[str, ConsoleSession]:
    secret = token.new_secret()
    expires_at = await repo.insert_session(
        conn, merchant.id, token.digest(secret), actor, SESSION_SECONDS
    )
    public_id = ids.encode("merchant", merchant.id)
    sign = signer(settings)
    session = ConsoleSession(
        merchant_id=merchant.id,
        merchant=public_id,
        merchant_name=merchant.name,
        mode=merchant.mode,
        actor=actor,
        secret=secret,
        csrf=sign.csrf(secret),
        expires_at=expires_at,
    )
    return sign.cookie(public_id, secret), session


async def sign_in(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    settings: Settings,
    merchant: str,
    raw_token: str,
    actor: str,
) -> tuple[str, ConsoleSession]:
    """Use the link up and start a session: (the cookie's value, the session)."""
    actor = clean_actor(actor)
    named = await _merchant_of_link(conn, ids, merchant, raw_token, repo.redeem_sign_in_link)
    log.info("console_signed_in", merchant_id=named.id, mode=named.mode)
    return await _start(conn, ids=ids, settings=settings, merchant=named, actor=actor)


async def session_of(
    conn: asyncpg.Connection, *, ids: PublicIds, settings: Settings, cookie: str | None
) -> ConsoleSession | None:
    """The session a cookie holds, while it lasts; None for anything else."""
    sign = signer(settings)
    read = sign.read_cookie(cookie)
    if read is None:
        return None
    public_id, secret = read
    try:
        merchant_id = ids.decode("merchant", public_id)
    except NotFound:
        return None
    row = await repo.session(conn, merchant_id, token.digest(secret))
    named = None if row is None else await merchants.named(conn, merchant_id=merchant_id)
    if row is None or named is None:
        return None
    return ConsoleSession(
        merchant_id=merchant_id,
        merchant=public_id,
        merchant_name=named.name,
        mode=named.mode,
        actor=row.actor,
        secret=secret,
        csrf=sign.csrf(secret),
        expires_at=row.expires_at,
    )


def csrf_matches(settings: Settings, session: ConsoleSession, given: str | None) -> bool:
    return signer(settings).csrf_matches(session.secret, given)


async def sign_out(conn: asyncpg.Connection, *, session: ConsoleSession) -> None:
    await repo.end_session(conn, session.merchant_id, token.digest(session.secret))
    log.info("console_signed_out", merchant_id=session.merchant_id)


async def switch_mode(
    conn: asyncpg.Connection, *, ids: PublicIds, settings: Settings, session: ConsoleSession
) -> tuple[str, ConsoleSession]:
    """End this session and start one, for the same person, on the other mode's merchant."""
    other = await merchants.twin(conn, merchant_id=session.merchant_id)
    if other is None:
        raise NotFound("this merchant has no other mode", code="merchant_not_found")
    await repo.end_session(conn, session.merchant_id, token.digest(session.secret))
    log.info("console_switched_mode", merchant_id=other.id, mode=other.mode)
    return await _start(conn, ids=ids, settings=settings, merchant=other, actor=session.actor)
