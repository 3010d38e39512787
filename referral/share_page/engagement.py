"""The share page's points, level and preference centre: what the advocate has (balance,
next expiry, level and the way to the next one, the thanks for their last order), what
their points buy (the catalogue, each with a redeem button), their redemptions (cancellable
while unused), and how they want to be contacted. The points and preferences rooms do the
work; this puts it in the advocate's words."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from referral.lib.errors import AppError
from referral.points import service as points
from referral.preferences import service as preferences
from referral.preferences.schemas import PreferencesSet
from referral.runtime import Runtime
from referral.share_page.service import PageAdvocate, Refused, _caller, _date, set_contact
from referral.web import i18n

THANKS_DAYS = 14  # an order's points are thanked for on the page this long
CHANNELS = ("email", "sms")
TOPICS = ("rewards", "offers")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _points(n: int, locale: str) -> str:
    return i18n.t(locale, "points_count", points=i18n.group(n, locale))


def _to_next(level, locale: str) -> str | None:
    """ "2 more friends to Gold", "80 more points to Gold", "120 EUR more to reach Gold"."""
    if level is None or level.next_level is None:
        return None
    if level.qualifier == "referrals":
        key = "level_next_friend" if level.to_next == 1 else "level_next_friends"
        return i18n.t(locale, key, count=level.to_next, level=level.next_level)
    if level.qualifier == "spend" and level.currency:
        amount = i18n.money(level.to_next, level.currency, locale)
        return i18n.t(locale, "level_next_spend", amount=amount, level=level.next_level)
    return i18n.t(
        locale,
        "level_next_points",
        points=i18n.group(level.to_next, locale),
        level=level.next_level,
    )


async def context(
    conn: asyncpg.Connection, *, runtime: Runtime, advocate: PageAdvocate
) -> dict[str, Any]:
    """`points` (None: the program has no points) and `preferences` for the page."""
    locale, zone = advocate.locale, advocate.time_zone
    found = await points.current(
        conn, merchant_id=advocate.merchant_id, program_id=advocate.program_id
    )
    prefs = await preferences.get(
        conn, merchant_id=advocate.merchant_id, customer_id=advocate.customer_id
    )
    never_set = prefs.updated_at is None
    # Before the advocate chose here, the page shows what they get today: reward news on the
    # channel of their contact preference.
    shown_prefs = {
        "channels": [advocate.contact_preference]
        if never_set and advocate.contact_preference in CHANNELS
        else prefs.channels,
        "topics": ["rewards"] if never_set else prefs.topics,
        "birthday": prefs.birthday.isoformat() if prefs.birthday else "",
        "all_channels": CHANNELS,
        "all_topics": TOPICS,
    }
    if found is None:
        return {"points": None, "preferences": shown_prefs}
    program_id = runtime.ids.encode("program", advocate.program_id)
    balance = await points.balance(
        conn,
        ids=runtime.ids,
        merchant_id=advocate.merchant_id,
        customer_id=advocate.customer_id,
        program_id=program_id,
    )
    now = datetime.now(UTC)
    recent = [
        lot
        for lot in balance.lots
        if lot.source == "order" and now - lot.earned_at < timedelta(days=THANKS_DAYS)
    ]
    thanks = None
    if recent:
        last = max(recent, key=lambda lot: lot.earned_at)
        thanks = i18n.t(locale, "points_thanks", points=_points(last.points, locale))
    level = balance.level
    catalogue = [
        {
            "id": item.id,
            "cost": _points(item.points, locale),
            "what": _capital(i18n.reward_text(item.kind, item.amount, item.currency, locale)),
            "affordable": balance.balance >= item.points,
            "missing": _points(item.points - balance.balance, locale),
        }
        for item in balance.catalogue
    ]
    redemptions = [
        {
            "id": r.id,
            "what": _capital(i18n.reward_text(r.kind, r.amount, r.currency, locale)),
            "cost": _points(r.points, locale),
            "code": r.coupon_code,
            "status": r.status,
            "date": _date(r.created_at, locale, zone),
        }
        for r in await points.list_redemptions(
            conn,
            ids=runtime.ids,
            merchant_id=advocate.merchant_id,
            program_id=advocate.program_id,
            customer_id=advocate.customer_id,
        )
    ]
    return {
        "points": {
            "balance": _points(balance.balance, locale),
            "expiry": i18n.t(
                locale,
                "points_expiry",
                points=_points(balance.next_expiry.points, locale),
                date=_date(balance.next_expiry.at, locale, zone),
            )
            if balance.next_expiry
            else None,
            "thanks": thanks,
            "level": level.name if level else None,
            "to_next": _to_next(level, locale),
            "progress": (level.qualifying, level.qualifying + level.to_next)
            if level and level.to_next
            else None,
            "catalogue": catalogue,
            "redemptions": redemptions,
        },
        "preferences": shown_prefs,
    }


async def redeem(
    conn: asyncpg.Connection, *, runtime: Runtime, advocate: PageAdvocate, item: str
) -> str:
    """The notice the page shows after the redeem button: done, or not enough points."""
    from referral.points.schemas import RedemptionRequest

    try:
        await points.redeem(
            conn,
            runtime=runtime,
            caller=_caller(advocate),
            customer_id=advocate.customer_id,
            data=RedemptionRequest(
                program_id=runtime.ids.encode("program", advocate.program_id), item=item
            ),
        )
    except AppError as refused:
        if refused.code == "insufficient_points":
            return "points_short"
        raise Refused("invalid", advocate) from None
    return "redeemed"


async def cancel(
    conn: asyncpg.Connection, *, runtime: Runtime, advocate: PageAdvocate, redemption_id: str
) -> str:
    try:
        await points.cancel(
            conn,
            runtime=runtime,
            caller=_caller(advocate),
            customer_id=advocate.customer_id,
            redemption_id=redemption_id,
        )
    except AppError as refused:
        if refused.code == "redemption_used":
            return "redemption_used"
        raise Refused("invalid", advocate) from None
    return "redemption_cancelled"


async def set_preferences(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    advocate: PageAdvocate,
    form: dict[str, list[str]],
) -> None:
    """The page's preference form: ticked channels and topics, and a birthday (or none).
    The channels also set the contact preference reward events carry (email first, then
    SMS, else none)."""
    raw = (form.get("birthday") or [""])[0].strip()
    try:
        birthday = date.fromisoformat(raw) if raw else None
    except ValueError:
        raise Refused("invalid", advocate) from None
    data = PreferencesSet(
        channels=[c for c in CHANNELS if c in form.get("channels", [])],  # type: ignore[misc]
        topics=[t for t in TOPICS if t in form.get("topics", [])],  # type: ignore[misc]
        birthday=birthday,
    )
    await preferences.set_preferences(
        conn, caller=_caller(advocate), customer_id=advocate.customer_id, data=data
    )
    await set_contact(
        conn, runtime=runtime, advocate=advocate, choice=(data.channels or ["none"])[0]
    )
