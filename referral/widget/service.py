"""The widget: its script and manifest, an advocate's share box and a landing page's offer.

The share box is the share page's in another frame: the same token opens it
(`share_page.service.open_page`), the same context fills it (view counted as a share-page
view), and its buttons go through the share page's tracked URLs (`/share/{token}/to/…`),
which record each share as the page's buttons do. The offer is what the link's program
promises every friend, from the code the click token (or the typed `ref`) carries.

The script is a file of this room (`static/referral.js`), read once: the bytes of a
version never change (the shops' pages pin their hash), so a change to it is a new version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg

from referral.experiments import service as experiments
from referral.lib.errors import AppError, Conflict, Forbidden, NotFound
from referral.programs import rules as lifecycle
from referral.runtime import Runtime
from referral.settings import Settings
from referral.share_page import service as share_page
from referral.web import i18n
from referral.web.intents import LABELS, NETWORK_CHANNELS
from referral.widget import repo, rules
from referral.widget.schemas import (
    WidgetChannel,
    WidgetLook,
    WidgetManifest,
    WidgetOffer,
    WidgetPoints,
    WidgetPointsItem,
    WidgetReward,
    WidgetShare,
    WidgetShareWords,
)

VERSION = "v1"
SCRIPT_PATH = f"/widget/{VERSION}/referral.js"
SCRIPT = (Path(__file__).resolve().parent / "static" / "referral.js").read_bytes()
INTEGRITY = rules.integrity(SCRIPT)
ELEMENTS = ["referral-share", "referral-offer"]
MAX_REF = 64  # a code, as typed in a URL: longer is no code of ours


class Expired(AppError):
    status = 410
    code = "share_token_expired"
    title = "The share token has expired"


def manifest(settings: Settings) -> WidgetManifest:
    return WidgetManifest(
        version=VERSION,
        script_url=settings.public_base_url + SCRIPT_PATH,
        integrity=INTEGRITY,
        bytes=len(SCRIPT),
        elements=ELEMENTS,
    )


def _refusal(refused: share_page.Refused) -> AppError:
    if refused.reason == "expired":
        return Expired("ask the shop for a new share token")
    if refused.reason == "unknown_advocate":
        return NotFound("the share token names no advocate", code="advocate_not_found")
    if refused.reason == "held_out":
        return Conflict(
            "this customer is in the program's holdout: show them no invitation to refer",
            code="customer_held_out",
        )
    return Forbidden("not a share token of this deployment", code="share_token_invalid")


def _labels(locale: str) -> dict[str, str]:
    return {
        **LABELS,
        "email": i18n.t(locale, "channel_email"),
        "sms": i18n.t(locale, "channel_sms"),
    }


def _look(locale: str, shop: str, colour: str) -> WidgetLook:
    brand = rules.colour(colour)
    return WidgetLook(locale=locale, shop=shop, colour=brand, on_colour=rules.text_on(brand))


async def share_box(
    conn: asyncpg.Connection, *, runtime: Runtime, token: str, lang: str | None, counted: bool
) -> WidgetShare:
    """The advocate's share box, in `lang` when we speak it (else the program's language).
    The view is counted as a share-page view when `counted` (a person, not a bot)."""
    try:
        advocate = await share_page.open_page(conn, runtime=runtime, token=token, locale=lang)
    except share_page.Refused as refused:
        raise _refusal(refused) from None
    context = await share_page.page_context(
        conn, runtime=runtime, advocate=advocate, token=token, counted=counted
    )
    locale = advocate.locale
    tracked = f"{runtime.settings.public_base_url}/share/{quote(token, safe='')}/to/"
    labels = _labels(locale)
    intro = advocate.intro or (
        i18n.t(locale, "share_intro", offer=advocate.offer)
        if advocate.offer
        else i18n.t(locale, "share_intro_no_offer")
    )
    found = context["points"]
    page = f"{runtime.settings.public_base_url}/share/{quote(token, safe='')}"
    points = (
        WidgetPoints(
            title=i18n.t(locale, "points_title"),
            balance=found["balance"],
            expiry=found["expiry"],
            level=found["level"],
            to_next=found["to_next"],
            progress=list(found["progress"]) if found["progress"] else None,
            thanks=found["thanks"],
            catalogue=[
                WidgetPointsItem(
                    item=c["id"],
                    what=c["what"],
                    cost=c["cost"],
                    affordable=c["affordable"],
                    redeem_url=f"{page}/points/redeem",
                )
                for c in found["catalogue"]
            ],
            redeem=i18n.t(locale, "redeem"),
        )
        if found
        else None
    )
    return WidgetShare(
        points=points,
        look=_look(locale, advocate.shop, advocate.colour),
        link=advocate.link,
        qr_url=context["qr_url"],
        share_text=context["share_text"],
        channels=[
            WidgetChannel(channel=c, label=labels[c], url=tracked + c) for c in NETWORK_CHANNELS
        ],
        copy_url=tracked + "copy",
        share_sheet_url=tracked + "share_sheet",
        share_sheet_link=f"{advocate.link}?ch=share_sheet",
        rewards=[
            WidgetReward(
                text=r["text"],
                status=r["status"],
                status_text=i18n.t(locale, f"reward_status_{r['status']}"),
                source=r["source"],
                notes=r["notes"],
            )
            for r in context["rewards"]
        ],
        words=WidgetShareWords(
            title=advocate.headline or i18n.t(locale, "share_title", shop=advocate.shop),
            intro=intro,
            your_link=i18n.t(locale, "your_link"),
            copy=i18n.t(locale, "copy"),
            copied=i18n.t(locale, "copied"),
            share_on=i18n.t(locale, "share_on"),
            share_sheet=i18n.t(locale, "share_sheet"),
            qr_alt=i18n.t(locale, "qr_alt"),
            your_rewards=i18n.t(locale, "your_rewards"),
            no_rewards=i18n.t(locale, "no_rewards"),
        ),
    )


async def offer(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    ref: str | None,
    ref_token: str | None,
    lang: str | None,
) -> WidgetOffer:
    """The friend offer of the link a visitor came by: the code inside a genuine click
    token, else the typed `ref`. Only what the program promises every friend."""
    token = runtime.signer.verify(ref_token) if ref_token else None
    code = token.code if token is not None else (ref or "")
    target = await runtime.codes.resolve(code) if 0 < len(code) <= MAX_REF else None
    row = (
        await repo.offer(conn, target.merchant_id, target.program_id)
        if target is not None
        else None
    )
    if target is None or row is None:
        raise NotFound("no referral link with this code", code="code_not_found")
    locale = i18n.locale_of(lang if lang in i18n.LOCALES else row.locale)
    state = lifecycle.state(row.status, row.starts_at, row.ends_at, datetime.now(UTC))
    active = target.code_active and state == "running"
    # The friend rule of the advocate's experiment variant: the token's, else the one a
    # typed code carries now.
    friend_rule = await experiments.friend_rule(
        conn,
        runtime=runtime,
        merchant_id=target.merchant_id,
        program_id=target.program_id,
        advocate_id=target.advocate_id,
        token=token,
        rule=row.friend_rule,
    )
    text = i18n.offer_text(friend_rule, locale) if active else None
    return WidgetOffer(
        program_id=runtime.ids.encode("program", target.program_id),
        code=target.code,
        active=active,
        program_state=state,
        look=_look(locale, row.shop, row.brand_colour),
        intro=i18n.t(locale, "story_cta_intro", shop=row.shop),
        heading=i18n.t(locale, "welcome_offer"),
        offer=text,
    )
