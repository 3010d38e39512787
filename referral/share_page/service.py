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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import msgspec

from referral.advocates import service as advocates
from referral.advocates.schemas import ShareUrl
from referral.analytics import service as analytics
from referral.experiments import holdout
from referral.experiments import service as experiments
from referral.lib.errors import AppError, InvalidInput, NotFound
from referral.merchants.service import Caller
from referral.payees import service as payees
from referral.payees.schemas import PayeeSet
from referral.programs import rules as lifecycle
from referral.programs.rules import ProgramState
from referral.runtime import Runtime
from referral.settings import Settings
from referral.share_page import repo
from referral.share_page.token import SharePageClaims, SharePageSigner, derive_key
from referral.stories import service as stories
from referral.stories.schemas import Story, StoryCreate
from referral.web import i18n
from referral.web.intents import NETWORK_CHANNELS, SHARE_CHANNELS, intent_url

CONTACT_PREFERENCES = ("email", "sms", "none")

Reason = Literal[
    "invalid",
    "expired",
    "unknown_advocate",
    "unknown_channel",
    "bad_contact",
    "story_input",
    "held_out",
]


@functools.lru_cache(maxsize=8)
def _signer(key: str) -> SharePageSigner:
    return SharePageSigner(key)


def signer(settings: Settings) -> SharePageSigner:
    return _signer(settings.share_token_key or derive_key(settings.click_token_key))


async def share_url(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    advocate_id: str,
    expires_in_days: int,
) -> ShareUrl:
    # The merchant's own advocate, or NotFound.
    advocate = await advocates.get(conn, runtime=runtime, caller=caller, advocate_id=advocate_id)
    await experiments.invited(
        conn,
        runtime=runtime,
        merchant_id=caller.merchant_id,
        program_id=runtime.ids.decode("program", advocate.program_id),
        advocate_id=runtime.ids.decode("advocate", advocate_id),
        customer_id=advocate.customer_id,
        via="share_url",
    )
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=expires_in_days)
    return share_url_until(runtime.settings, advocate_id=advocate_id, expires_at=expires_at)


def share_url_until(settings: Settings, *, advocate_id: str, expires_at: datetime) -> ShareUrl:
    """The signed URL of an advocate's share page, valid until `expires_at`."""
    token = signer(settings).sign(advocate_id, int(expires_at.timestamp()))
    return ShareUrl(
        url=f"{settings.public_base_url}/share/{token}",
        advocate_id=advocate_id,
        expires_at=expires_at,
    )


@dataclass(frozen=True)
class PageAdvocate:
    """The advocate behind a verified token, with their program's look and offer."""

    id: int
    public_id: str
    merchant_id: int
    program_id: int
    customer_id: str
    code: str
    link: str
    name: str | None
    contact_preference: str
    locale: str
    colour: str
    shop: str
    offer: str | None  # what friends get, said to the advocate; None when nothing
    friend_rule: dict[str, Any] | None  # the program's friend reward rule
    auto_publish: bool
    time_zone: str = "UTC"
    program_state: ProgramState = "running"  # anything else offers nothing
    # The copy of the advocate's experiment variant (or of the last experiment's winner)
    # in place of the page's own words; None: the page's own.
    headline: str | None = None
    intro: str | None = None
    story_prompt: str | None = None


class Refused(Exception):
    """Why the page answers with an error page (the handler picks which); `advocate` once
    the token named one, so the error speaks their language in their shop's colour."""

    def __init__(self, reason: Reason, advocate: PageAdvocate | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.advocate = advocate


async def open_page(
    conn: asyncpg.Connection, *, runtime: Runtime, token: str, locale: str | None = None
) -> PageAdvocate:
    """The advocate a share token opens the page of: the token stands in for a key.
    Refused for a forged, expired or orphaned token. `locale`: the words in this language
    rather than the program's when it is one we speak (the widget follows the shop
    page's language)."""
    claims = signer(runtime.settings).verify(token, now=time.time())
    if isinstance(claims, str):  # "invalid" or "expired"
        raise Refused(claims)
    advocate = await _load_advocate(conn, runtime, claims, locale)
    if advocate is None:
        raise Refused("unknown_advocate")
    return advocate


async def _load_advocate(
    conn: asyncpg.Connection, runtime: Runtime, claims: SharePageClaims, locale: str | None
) -> PageAdvocate | None:
    try:
        internal = runtime.ids.decode("advocate", claims.advocate_id)
    except NotFound:
        return None
    row = await repo.advocate(conn, internal)
    if row is None:
        return None
    locale = i18n.locale_of(locale if locale in i18n.LOCALES else row.locale)
    state = lifecycle.state(row.program_status, row.starts_at, row.ends_at, datetime.now(UTC))
    friend_rule = row.program_rewards.get("friend") if state == "running" else None
    code = runtime.codec.generate(row.id)
    link, _, _ = advocates.links_for(runtime.settings.public_base_url, code)
    copy = None
    if state == "running":
        # The advocate's variant of a running experiment (their exposure recorded), else
        # the words the last experiment's winner left the program with.
        assigned = await experiments.assign(
            conn,
            runtime=runtime,
            merchant_id=row.merchant_id,
            program_id=row.program_id,
            advocate_id=row.id,
            via="share_page",
        )
        if assigned is not None and assigned.settings.friend is not None:
            friend_rule = msgspec.to_builtins(assigned.settings.friend)
        copy = (
            assigned.settings
            if assigned is not None
            else await experiments.adopted_copy(
                conn, merchant_id=row.merchant_id, program_id=row.program_id
            )
        )
    page = PageAdvocate(
        id=row.id,
        public_id=claims.advocate_id,
        merchant_id=row.merchant_id,
        program_id=row.program_id,
        customer_id=row.customer_id,
        code=code,
        link=link,
        name=row.name,
        contact_preference=row.contact_preference,
        locale=locale,
        colour=row.brand_colour,
        shop=row.shop,
        offer=i18n.offer_text(friend_rule, locale, reader="advocate"),
        friend_rule=friend_rule,
        auto_publish=row.stories_auto_publish,
        time_zone=row.time_zone,
        program_state=state,
        headline=copy.share_headline if copy else None,
        intro=copy.share_text if copy else None,
        story_prompt=copy.story_prompt if copy else None,
    )
    if await holdout.held_out(
        conn,
        runtime=runtime,
        merchant_id=row.merchant_id,
        program_id=row.program_id,
        customer_id=row.customer_id,
        via="share_page",
    ):
        raise Refused("held_out", page)
    return page


def _caller(advocate: PageAdvocate) -> Caller:
    # The token names the merchant and this one advocate: it acts for them, as a key would.
    return Caller(merchant_id=advocate.merchant_id, mode="", kind="share_page")


def _date(at: datetime, locale: str, zone: str) -> str:
    """A day as the advocate reads it, in the merchant's time zone: "2 Dec 2026" (sv:
    "2 december 2026"), whatever the server's locale."""
    try:
        day = at.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        day = at.astimezone(UTC)
    if locale == "sv":
        return f"{day.day} {_SWEDISH_MONTHS[day.month - 1]} {day.year}"
    return f"{day.day} {day:%b %Y}"


_SWEDISH_MONTHS = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)


def _reward_row(
    runtime: Runtime, advocate: PageAdvocate, r: repo.RewardRow, now: datetime
) -> dict[str, Any]:
    """One reward as the advocate reads it: what it was worth when earned (a cancelled
    reward is worth 0 now; the row still says what it was), who it came from (masked) and
    when, and what happens next."""
    locale, zone = advocate.locale, advocate.time_zone
    reversed_ = r.status == "reversed"
    shown = r.original_amount if reversed_ else r.amount
    if r.milestone is not None:
        source = i18n.t(locale, "milestone_bonus", count=r.milestone)
        source += " · " + i18n.t(locale, "earned_on", date=_date(r.earned_at, locale, zone))
    else:
        friend = i18n.masked_friend(r.friend_email_normalised, r.friend_number or 0, locale)
        source = i18n.t(
            locale, "friend_ordered", friend=friend, date=_date(r.earned_at, locale, zone)
        )
    notes = []
    if reversed_:
        notes.append(
            i18n.t(locale, "reversed_on", date=_date(r.reversed_at or r.created_at, locale, zone))
        )
    elif r.amount < r.original_amount:
        notes.append(
            i18n.t(
                locale,
                "reduced_from",
                amount=i18n.reward_row(r.kind, r.original_amount, r.currency, locale),
            )
        )
    if r.status == "pending" and r.hold_until > now:
        notes.append(i18n.t(locale, "available_on", date=_date(r.hold_until, locale, zone)))
    elif r.status == "in_review":
        notes.append(i18n.t(locale, "being_checked"))
    return {
        "id": runtime.ids.encode("reward", r.id),
        "text": i18n.reward_row(r.kind, shown, r.currency, locale),
        "status": r.status,
        "source": source,
        "notes": notes,
        "milestone": r.milestone,
        "can_tell": r.story_id is None and r.status in ("approved", "paid"),
        "default_story": advocate.story_prompt
        or i18n.t(
            locale,
            "story_default",
            reward=i18n.reward_text(r.kind, r.amount, r.currency, locale),
            shop=advocate.shop,
        ),
    }


async def page_context(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    advocate: PageAdvocate,
    token: str,
    counted: bool = False,
) -> dict[str, Any]:
    """What share_page.html shows: only this advocate's own data, friends masked. The view
    is counted when `counted` (a person opening the page, not a bot, a HEAD or the page
    shown again after one of its forms)."""
    from referral.share_page import engagement  # it reads this module's page advocate

    if counted:
        await analytics.record_share_page_view(
            conn,
            merchant_id=advocate.merchant_id,
            program_id=advocate.program_id,
            advocate_id=advocate.id,
        )
    locale = advocate.locale
    base = runtime.settings.public_base_url
    referrals = [
        {
            "friend": i18n.masked_friend(r.friend_email_normalised, r.number, locale),
            "status": r.status,
            "date": _date(r.created_at, locale, advocate.time_zone),
        }
        for r in await repo.referrals(conn, advocate.merchant_id, advocate.id)
    ]
    now = datetime.now(UTC)
    rewards = [
        _reward_row(runtime, advocate, r, now)
        for r in await repo.rewards(conn, advocate.merchant_id, advocate.id)
    ]
    stories_told = [
        {"text": s.body, "status": s.status, "url": stories.story_url(base, s.slug)}
        for s in await repo.stories(conn, advocate.merchant_id, advocate.id)
    ]
    payee = await payees.find_payee(
        conn, ids=runtime.ids, merchant_id=advocate.merchant_id, customer_id=advocate.customer_id
    )
    return {
        "advocate": advocate,
        "payee": payee,
        "payee_form": {f: "" for f in PAYEE_FIELDS}
        | {"method": payee.method if payee else "email"},
        "payee_error": None,
        "first_name": i18n.first_name(advocate.name),
        "token": token,
        # Twice the 200 pixels the page shows it at, so it is sharp on dense screens.
        "qr_url": f"{advocate.link}/qr.png?size=400",
        "channels": NETWORK_CHANNELS,
        "referrals": referrals,
        "rewards": rewards,
        "stories": stories_told,
        "share_text": _share_text(advocate),
        "program_notice": program_notice(advocate),
        # points, level, catalogue and the preference centre (share_page/engagement.py)
        **await engagement.context(conn, runtime=runtime, advocate=advocate),
    }


def program_notice(advocate: PageAdvocate) -> str | None:
    """What the advocate is told while the program makes no new referrals, else None."""
    reason = lifecycle.refusal(advocate.program_state)
    return i18n.t(advocate.locale, reason, shop=advocate.shop) if reason else None


def _share_text(advocate: PageAdvocate) -> str:
    """The message a share button sends, in the advocate's voice to a friend: the offer is
    the friend's ("your first order")."""
    offer = i18n.offer_text(advocate.friend_rule, advocate.locale)
    if offer is None:
        return i18n.t(advocate.locale, "share_text_no_offer", shop=advocate.shop)
    return i18n.t(advocate.locale, "share_text", shop=advocate.shop, offer=offer)


def _link_intent(advocate: PageAdvocate, channel: str) -> str | None:
    """Where a share button of the share page goes: the network's intent with the
    advocate's link tagged with the channel. KeyError for an unknown channel."""
    if channel not in SHARE_CHANNELS:
        raise KeyError(channel)
    return intent_url(
        channel,
        text=_share_text(advocate),
        url=f"{advocate.link}?ch={channel}",
        subject=advocate.shop,
    )


async def share(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    advocate: PageAdvocate,
    channel: str,
    counted: bool,
) -> str | None:
    """A share button followed: its intent URL (None for copy and the share sheet, which
    happen in the browser), the share recorded when `counted` (a person, not a bot)."""
    try:
        target = _link_intent(advocate, channel)
    except KeyError:
        raise Refused("unknown_channel", advocate) from None
    if counted:
        await stories.record_share(
            conn,
            merchant_id=advocate.merchant_id,
            program_id=advocate.program_id,
            advocate_id=advocate.id,
            channel=channel,
            ids=runtime.ids,
        )
    return target


async def set_contact(
    conn: asyncpg.Connection, *, runtime: Runtime, advocate: PageAdvocate, choice: object
) -> None:
    """The advocate's own choice of how to hear about rewards, from the page's form."""
    if choice not in CONTACT_PREFERENCES:
        raise Refused("bad_contact", advocate)
    await advocates.set_contact_preference(
        conn,
        runtime=runtime,
        caller=_caller(advocate),
        advocate_id=advocate.public_id,
        preference=choice,
    )


async def tell_story(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    advocate: PageAdvocate,
    reward_id: str,
    text: str | None,
    show_first_name: bool,
) -> Story:
    """The advocate's story about one of their rewards, told from their page."""
    data = StoryCreate(
        advocate_id=advocate.public_id,
        reward_id=reward_id,
        text=text,
        show_first_name=show_first_name,
    )
    try:
        story, _ = await stories.create(conn, runtime=runtime, caller=_caller(advocate), data=data)
    except AppError:
        raise Refused("story_input", advocate) from None
    return story


PAYEE_FIELDS = ("method", "email", "iban", "account_holder", "bic")


class PayeeInput(Exception):
    """The payout details the advocate typed cannot be paid to: `problem` says why (the
    page shows it in their words, with what they typed)."""

    def __init__(self, problem: str, form: dict[str, str]) -> None:
        super().__init__(problem)
        self.problem, self.form = problem, form


async def set_payee(
    conn: asyncpg.Connection, *, runtime: Runtime, advocate: PageAdvocate, form: dict[str, str]
) -> None:
    """The advocate's own payout details, from the page's form: validated and audited as
    the payees room does for a key, with the advocate as who changed them."""
    typed = {f: str(form.get(f) or "").strip()[:200] for f in PAYEE_FIELDS}
    method = typed["method"] if typed["method"] in ("email", "bank_transfer") else "email"
    data = PayeeSet(
        method=method,  # type: ignore[arg-type]
        email=typed["email"] or None,
        iban=typed["iban"] or None,
        account_holder=typed["account_holder"] or None,
        bic=typed["bic"] or None,
    )
    if method == "email":  # the other method's fields, left typed in, are not asked for
        data = PayeeSet(method="email", email=data.email)
    caller = Caller(
        merchant_id=advocate.merchant_id,
        mode="",
        kind="share_page",
        actor=advocate.public_id,
    )
    try:
        await payees.set_payee(
            conn, ids=runtime.ids, caller=caller, customer_id=advocate.customer_id, data=data
        )
    except InvalidInput as invalid:
        raise PayeeInput(invalid.code, typed) from None


def payee_error(advocate: PageAdvocate, problem: str) -> str:
    """The refusal as the advocate reads it."""
    key = f"payee_error_{problem}"
    if key not in i18n.STRINGS["en"]:
        key = "payee_error_invalid_payout_method"
    return i18n.t(advocate.locale, key)
