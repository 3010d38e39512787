"""The customer pages' words in English and Swedish, and how money and offers read.

Pure functions: the pages and the story image call them, and tests check them without a
server. A program picks its language (`locale`); unknown keys fall back to English.
"""

from __future__ import annotations

from typing import Any

from referral.lib.money import to_decimal_string

LOCALES = ("en", "sv")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "share_title": "Share {shop} with your friends",
        "share_intro": "Friends who use your link get {offer}. You get rewarded when they order.",
        "your_link": "Your referral link",
        "copy": "Copy link",
        "copied": "Copied!",
        "share_on": "Share",
        "share_sheet": "More…",
        "qr_alt": "QR code of your referral link",
        "friend_offer": "Your friends get",
        "your_referrals": "Your referrals",
        "no_referrals": "No friends have joined through your link yet.",
        "your_rewards": "Your rewards",
        "no_rewards": "No rewards yet.",
        "released_on": "released on {date}",
        "your_stories": "Your stories",
        "no_stories": "Tell friends how you got your reward: publish a story.",
        "publish_story": "Publish a story",
        "story_text": "Your story",
        "show_first_name": "Show my first name ({name})",
        "publish": "Publish",
        "view_story": "View",
        "contact_title": "How should we tell you about rewards?",
        "channel_email": "Email",
        "channel_sms": "SMS",
        "contact_email": "By email",
        "contact_sms": "By text message",
        "contact_none": "Don't contact me",
        "save": "Save",
        "saved": "Saved.",
        "story_sent": "Thanks! Your story is waiting for the shop's approval.",
        "story_published": "Your story is published.",
        "status_pending": "pending",
        "status_converted": "joined",
        "status_in_review": "in review",
        "status_rejected": "not eligible",
        "status_approved": "approved",
        "status_paid": "paid",
        "status_reversed": "reversed",
        "status_published": "published",
        "status_hidden": "hidden",
        "friend": "Friend {initial}…",
        "story_default": "I got {reward} at {shop} for telling friends about it",
        "story_by": "— {name}, a {shop} customer",
        "story_by_anonymous": "— a {shop} customer",
        "story_cta": "Get {offer}",
        "story_cta_intro": "A friend recommends {shop}.",
        "share_text": "I like {shop}: use my link and get {offer}",
        "offer_coupon": "{amount} off your first order",
        "offer_cash": "{amount} when you order",
        "offer_store_credit": "{amount} store credit",
        "offer_points": "{points} points",
        "offer_percent": "{percent}% off your first order",
        "offer_none": "a welcome from {shop}",
        "reward_points": "{points} points",
        "reward_coupon": "a {amount} coupon",
        "friends_joined": "{count} friends joined this month",
        "error_invalid_title": "This link does not work",
        "error_invalid_text": "The link is incomplete or was changed. "
        "Ask the shop for a new link to your share page.",
        "error_expired_title": "This link has expired",
        "error_expired_text": "Links to share pages work for a limited time. "
        "Ask the shop for a new one.",
        "error_story_input_title": "Your story could not be saved",
        "error_story_input_text": "A story is at most 280 characters of text and tells about "
        "one of your approved rewards. Go back and try again.",
        "error_story_title": "This story is not available",
        "error_story_text": "It may have been removed, or the link is mistyped.",
    },
    "sv": {
        "share_title": "Tipsa dina vänner om {shop}",
        "share_intro": "Vänner som använder din länk får {offer}. Du belönas när de handlar.",
        "your_link": "Din tipslänk",
        "copy": "Kopiera länken",
        "copied": "Kopierad!",
        "share_on": "Dela",
        "share_sheet": "Mer…",
        "qr_alt": "QR-kod för din tipslänk",
        "friend_offer": "Dina vänner får",
        "your_referrals": "Dina tips",
        "no_referrals": "Inga vänner har gått med via din länk än.",
        "your_rewards": "Dina belöningar",
        "no_rewards": "Inga belöningar än.",
        "released_on": "betalas ut {date}",
        "your_stories": "Dina berättelser",
        "no_stories": "Berätta för vänner hur du fick din belöning: publicera en berättelse.",
        "publish_story": "Publicera en berättelse",
        "story_text": "Din berättelse",
        "show_first_name": "Visa mitt förnamn ({name})",
        "publish": "Publicera",
        "view_story": "Visa",
        "contact_title": "Hur vill du få veta om belöningar?",
        "channel_email": "E-post",
        "channel_sms": "Sms",
        "contact_email": "Via e-post",
        "contact_sms": "Via sms",
        "contact_none": "Kontakta mig inte",
        "save": "Spara",
        "saved": "Sparat.",
        "story_sent": "Tack! Din berättelse väntar på butikens godkännande.",
        "story_published": "Din berättelse är publicerad.",
        "status_pending": "väntar",
        "status_converted": "gick med",
        "status_in_review": "granskas",
        "status_rejected": "gäller inte",
        "status_approved": "godkänd",
        "status_paid": "utbetald",
        "status_reversed": "återtagen",
        "status_published": "publicerad",
        "status_hidden": "dold",
        "friend": "Vän {initial}…",
        "story_default": "Jag fick {reward} hos {shop} för att jag tipsade mina vänner",
        "story_by": "— {name}, kund hos {shop}",
        "story_by_anonymous": "— en kund hos {shop}",
        "story_cta": "Få {offer}",
        "story_cta_intro": "En vän rekommenderar {shop}.",
        "share_text": "Jag gillar {shop}: använd min länk och få {offer}",
        "offer_coupon": "{amount} rabatt på din första beställning",
        "offer_cash": "{amount} när du handlar",
        "offer_store_credit": "{amount} i tillgodohavande",
        "offer_points": "{points} poäng",
        "offer_percent": "{percent} % rabatt på din första beställning",
        "offer_none": "ett välkomsterbjudande från {shop}",
        "reward_points": "{points} poäng",
        "reward_coupon": "en rabattkod på {amount}",
        "friends_joined": "{count} vänner gick med den här månaden",
        "error_invalid_title": "Länken fungerar inte",
        "error_invalid_text": "Länken är ofullständig eller ändrad. "
        "Be butiken om en ny länk till din delningssida.",
        "error_expired_title": "Länken har gått ut",
        "error_expired_text": "Länkar till delningssidor gäller en begränsad tid. "
        "Be butiken om en ny.",
        "error_story_input_title": "Berättelsen kunde inte sparas",
        "error_story_input_text": "En berättelse är högst 280 tecken text och handlar om "
        "en av dina godkända belöningar. Gå tillbaka och försök igen.",
        "error_story_title": "Berättelsen finns inte",
        "error_story_text": "Den kan ha tagits bort, eller så är länken felskriven.",
    },
}


def locale_of(raw: str | None) -> str:
    return raw if raw in LOCALES else "en"


def t(locale: str, key: str, **values: Any) -> str:
    """The string `key` in `locale` (English where missing), with `values` filled in."""
    template = STRINGS.get(locale, STRINGS["en"]).get(key) or STRINGS["en"][key]
    return template.format(**values) if values else template


def money(amount: int, currency: str, locale: str) -> str:
    """`1050, "EUR"` -> "10.50 EUR" (sv: "10,50 EUR"); whole amounts without decimals."""
    text = to_decimal_string(amount, currency)
    whole, _, fraction = text.partition(".")
    if fraction and set(fraction) == {"0"}:
        text = whole
    elif locale == "sv":
        text = text.replace(".", ",")
    return f"{text} {currency}"


def _group(number: int, locale: str) -> str:
    grouped = f"{number:,}"
    return grouped.replace(",", "\u00a0") if locale == "sv" else grouped


def friends_joined(count: int, locale: str) -> str:
    return t(locale, "friends_joined", count=_group(count, locale))


def offer_text(rule: dict[str, Any] | None, shop: str, locale: str) -> str:
    """What a friend gets, from the program's friend reward rule (a plain dict)."""
    if not rule:
        return t(locale, "offer_none", shop=shop)
    kind = rule.get("kind")
    if rule.get("basis_points"):
        percent = rule["basis_points"] / 100
        shown = f"{percent:g}" if locale == "en" else f"{percent:g}".replace(".", ",")
        return t(locale, "offer_percent", percent=shown)
    if kind == "points" and rule.get("points"):
        return t(locale, "offer_points", points=_group(rule["points"], locale))
    amounts = rule.get("amounts") or {}
    if amounts and kind in ("coupon", "cash", "store_credit"):
        currency, amount = next(iter(amounts.items()))
        return t(locale, f"offer_{kind}", amount=money(amount, currency, locale))
    return t(locale, "offer_none", shop=shop)


def reward_text(kind: str, amount: int, currency: str | None, locale: str) -> str:
    """One reward as the advocate would say it: "10 EUR", "a 10 EUR coupon", "100 points"."""
    if kind == "points" or currency is None:
        return t(locale, "reward_points", points=_group(amount, locale))
    shown = money(amount, currency, locale)
    return t(locale, "reward_coupon", amount=shown) if kind == "coupon" else shown


def first_name(name: str | None) -> str | None:
    """The first word of a name: public pages never show a last name."""
    if not name:
        return None
    word = name.strip().split(maxsplit=1)[0] if name.strip() else ""
    return word[:40] or None


def masked_friend(email: str | None, number: int, locale: str) -> str:
    """A friend as the advocate's page shows them: the first letter of their email (so the
    advocate may recognise them) or a number, never the email or the shop's customer id."""
    initial = email.strip()[:1].upper() if email and email.strip()[:1].isalnum() else ""
    return t(locale, "friend", initial=initial or f"#{number}")
