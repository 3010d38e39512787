"""The advocate's share page: signed links to it, what it shows, and what it may change.

The page is for one advocate only and needs no login: the shop asks for a signed, expiring
URL (`POST /v1/advocates/{id}/share-url`) and hands it to its customer.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from referral.advocates.schemas import ShareUrl
from referral.advocates.service import get as get_advocate
from referral.advocates.service import links_for
from referral.lib.errors import NotFound
from referral.merchants.service import Caller
from referral.pages import i18n, repo
from referral.pages.intents import NETWORK_CHANNELS, SHARE_CHANNELS, intent_url
from referral.pages.token import SharePageClaims, SharePageSigner, derive_key
from referral.runtime import Runtime
from referral.settings import Settings
from referral.stories.service import story_url


@functools.lru_cache(maxsize=8)
def _signer(key: str) -> SharePageSigner:
    return SharePageSigner(key)


def signer(settings: Settings) -> SharePageSigner:
    return _signer(settings.share_token_key or derive_key(settings.click_token_key))


async def share_url(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    advocate_id: str,
    expires_in_days: int,
) -> ShareUrl:
    await get_advocate(conn, runtime, caller, advocate_id)  # this merchant's, or NotFound
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=expires_in_days)
    return share_url_until(runtime.settings, advocate_id, expires_at)


def share_url_until(settings: Settings, advocate_id: str, expires_at: datetime) -> ShareUrl:
    """The signed URL of an advocate's share page, valid until `expires_at`."""
    token = signer(settings).sign(advocate_id, int(expires_at.timestamp()))
    return ShareUrl(
        url=f"{settings.public_base_url}/share/{token}",
        advocate_id=advocate_id,
        expires_at=expires_at,
    )


def verify(runtime: Runtime, token: str) -> SharePageClaims | Literal["invalid", "expired"]:
    return signer(runtime.settings).verify(token, now=time.time())


@dataclass(frozen=True)
class PageAdvocate:
    """The advocate behind a verified token, with their program's look and offer."""

    id: int
    public_id: str
    merchant_id: int
    program_id: int
    code: str
    link: str
    name: str | None
    contact_preference: str
    locale: str
    colour: str
    shop: str
    offer: str
    auto_publish: bool


async def load_advocate(
    conn: asyncpg.Connection, runtime: Runtime, claims: SharePageClaims
) -> PageAdvocate | None:
    try:
        internal = runtime.ids.decode("advocate", claims.advocate_id)
    except NotFound:
        return None
    row = await repo.advocate(conn, internal)
    if row is None:
        return None
    locale = i18n.locale_of(row["locale"])
    code = runtime.codec.generate(row["id"])
    link, _, _ = links_for(runtime.settings.public_base_url, code)
    return PageAdvocate(
        id=row["id"],
        public_id=claims.advocate_id,
        merchant_id=row["merchant_id"],
        program_id=row["program_id"],
        code=code,
        link=link,
        name=row["name"],
        contact_preference=row["contact_preference"],
        locale=locale,
        colour=row["brand_colour"],
        shop=row["shop"],
        offer=i18n.offer_text(row["program_rewards"].get("friend"), row["shop"], locale),
        auto_publish=row["stories_auto_publish"],
    )


def _date(at: datetime, locale: str) -> str:
    return at.date().isoformat() if locale == "sv" else at.strftime("%d %b %Y").lstrip("0")


async def page_context(
    conn: asyncpg.Connection, runtime: Runtime, advocate: PageAdvocate, token: str
) -> dict[str, Any]:
    """What share_page.html shows: only this advocate's own data, friends masked."""
    locale = advocate.locale
    base = runtime.settings.public_base_url
    referrals = [
        {
            "friend": i18n.masked_friend(r["friend_email_normalised"], n, locale),
            "status": r["status"],
            "date": _date(r["created_at"], locale),
        }
        for n, r in enumerate(await repo.referrals(conn, advocate.merchant_id, advocate.id), 1)
    ]
    now = datetime.now(UTC)
    rewards = [
        {
            "id": runtime.ids.encode("reward", r["id"]),
            "text": i18n.reward_text(r["kind"], r["amount"], r["currency"], locale),
            "status": r["status"],
            "release": _date(r["hold_until"], locale)
            if r["status"] in ("pending", "in_review") and r["hold_until"] > now
            else None,
            "milestone": r["milestone"],
            "can_tell": r["story_id"] is None and r["status"] in ("approved", "paid"),
            "default_story": i18n.t(
                locale,
                "story_default",
                reward=i18n.reward_text(r["kind"], r["amount"], r["currency"], locale),
                shop=advocate.shop,
            ),
        }
        for r in await repo.rewards(conn, advocate.merchant_id, advocate.id)
    ]
    stories = [
        {"text": s["body"], "status": s["status"], "url": story_url(base, s["slug"])}
        for s in await repo.stories(conn, advocate.merchant_id, advocate.id)
    ]
    return {
        "advocate": advocate,
        "first_name": i18n.first_name(advocate.name),
        "token": token,
        "qr_url": f"{advocate.link}/qr.png?size=240",
        "channels": NETWORK_CHANNELS,
        "referrals": referrals,
        "rewards": rewards,
        "stories": stories,
        "share_text": i18n.t(locale, "share_text", shop=advocate.shop, offer=advocate.offer),
    }


def link_intent(advocate: PageAdvocate, channel: str) -> str | None:
    """Where a share button of the share page goes: the network's intent with the
    advocate's link tagged with the channel. KeyError for an unknown channel."""
    if channel not in SHARE_CHANNELS:
        raise KeyError(channel)
    return intent_url(
        channel,
        text=i18n.t(advocate.locale, "share_text", shop=advocate.shop, offer=advocate.offer),
        url=f"{advocate.link}?ch={channel}",
        subject=advocate.shop,
    )
