"""The console's words in English and Swedish, and how its figures read.

The shared words (the layout, signing in, empty and error states) live here; a page's own
words live in its module as a `WORDS` catalogue, merged over these by `translator`. Pure:
tests check every key has both languages without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from referral.web import i18n

Catalogue = Mapping[str, Mapping[str, str]]

COMMON: Catalogue = {
    "en": {
        "console": "Console",
        "nav_overview": "Overview",
        "nav_advocates": "Advocates",
        "nav_review": "Review",
        "nav_stories": "Stories",
        "nav_payouts": "Payouts",
        "nav_settings": "Settings",
        "main_menu": "Main menu",
        "mode_live": "Live",
        "mode_test": "Test mode",
        "mode_test_notice": "You are in test mode: nothing here is real money or real customers.",
        "switch_to_live": "Switch to live",
        "switch_to_test": "Switch to test mode",
        "signed_in_as": "Signed in as {actor}",
        "sign_out": "Sign out",
        "sign_in_title": "Sign in to the {shop} console",
        "sign_in_intro": "Your name or email is recorded beside everything you do here, "
        "so your team can see who approved, paid or changed what.",
        "sign_in_who": "Your name or email",
        "sign_in_button": "Sign in",
        "sign_in_refused_title": "This sign-in link no longer works",
        "sign_in_refused_text": "Sign-in links work once, for 15 minutes. Ask for a new one: "
        "run `referral console-link --merchant {merchant}` on the server, or ask whoever "
        "runs it.",
        "sign_in_refused_text_any": "Sign-in links work once, for 15 minutes. Ask for a new "
        "one: run `referral console-link --merchant mer_…` on the server, or ask whoever runs it.",
        "signed_out_title": "You are signed out",
        "signed_out_text": "Close this tab, or sign in again with a new link.",
        "needs_sign_in_title": "Please sign in",
        "needs_sign_in_text": "Your session has ended or this browser has not signed in. "
        "Sign in with a link from `referral console-link --merchant mer_…`.",
        "csrf_title": "That form had expired",
        "csrf_text": "For your safety the console only accepts forms it has just shown you. "
        "Go back, reload the page and try again.",
        "error_title": "That did not work",
        "not_found_title": "Not found",
        "not_found_text": "There is nothing here in this merchant and mode. It may belong to "
        "the other mode, or the link may be mistyped.",
        "back": "Back",
        "previous": "Previous",
        "next": "Next",
        "download_csv": "Download CSV",
        "none": "—",
        "saved": "Saved.",
    },
    "sv": {
        "console": "Konsol",
        "nav_overview": "Översikt",
        "nav_advocates": "Ambassadörer",
        "nav_review": "Granskning",
        "nav_stories": "Berättelser",
        "nav_payouts": "Utbetalningar",
        "nav_settings": "Inställningar",
        "main_menu": "Huvudmeny",
        "mode_live": "Skarpt läge",
        "mode_test": "Testläge",
        "mode_test_notice": "Du är i testläge: inget här är riktiga pengar eller riktiga kunder.",
        "switch_to_live": "Byt till skarpt läge",
        "switch_to_test": "Byt till testläge",
        "signed_in_as": "Inloggad som {actor}",
        "sign_out": "Logga ut",
        "sign_in_title": "Logga in i konsolen för {shop}",
        "sign_in_intro": "Ditt namn eller din e-post sparas vid allt du gör här, så att ditt "
        "team kan se vem som godkände, betalade eller ändrade vad.",
        "sign_in_who": "Ditt namn eller din e-post",
        "sign_in_button": "Logga in",
        "sign_in_refused_title": "Den här inloggningslänken fungerar inte längre",
        "sign_in_refused_text": "Inloggningslänkar fungerar en gång, i 15 minuter. Be om en ny: "
        "kör `referral console-link --merchant {merchant}` på servern, eller fråga den som "
        "driver den.",
        "sign_in_refused_text_any": "Inloggningslänkar fungerar en gång, i 15 minuter. Be om en "
        "ny: kör `referral console-link --merchant mer_…` på servern, eller fråga den som "
        "driver den.",
        "signed_out_title": "Du är utloggad",
        "signed_out_text": "Stäng fliken, eller logga in igen med en ny länk.",
        "needs_sign_in_title": "Logga in",
        "needs_sign_in_text": "Din session har tagit slut eller så har den här webbläsaren inte "
        "loggat in. Logga in med en länk från `referral console-link --merchant mer_…`.",
        "csrf_title": "Formuläret hade gått ut",
        "csrf_text": "För din säkerhet tar konsolen bara emot formulär som den just har visat. "
        "Gå tillbaka, ladda om sidan och försök igen.",
        "error_title": "Det gick inte",
        "not_found_title": "Hittades inte",
        "not_found_text": "Det finns inget här för den här handlaren och det här läget. Det kan "
        "höra till det andra läget, eller så är länken felskriven.",
        "back": "Tillbaka",
        "previous": "Föregående",
        "next": "Nästa",
        "download_csv": "Ladda ner CSV",
        "none": "—",
        "saved": "Sparat.",
    },
}


def translator(locale: str, *catalogues: Catalogue) -> Callable[..., str]:
    """`t(key, **values)` for a page: its own words over the common ones, English where a
    language lacks a key."""
    merged = [dict(COMMON.get(locale, {})), dict(COMMON["en"])]
    for catalogue in catalogues:
        merged[0].update(catalogue.get(locale, {}))
        merged[1].update(catalogue["en"])
    own, english = merged

    def t(key: str, **values: Any) -> str:
        template = own.get(key) or english[key]
        return template.format(**values) if values else template

    return t


def number(value: int | float | None, locale: str, digits: int = 0) -> str:
    """A count or an average as the language writes it ("12,480", sv "12 480")."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    if locale == "sv":
        text = text.replace(",", "\u00a0").replace(".", ",")
    return text


def percent(ratio: float | None, locale: str, digits: int = 1) -> str:
    if ratio is None:
        return "—"
    shown = number(ratio * 100, locale, digits)
    return f"{shown}\u00a0%" if locale == "sv" else f"{shown}%"


def money(amount: int | None, currency: str, locale: str) -> str:
    return "—" if amount is None else i18n.money(amount, currency, locale)


def day(value: date | datetime | None, locale: str) -> str:
    """A date as the language writes it: "2 Dec 2026", sv "2 dec. 2026"."""
    if value is None:
        return "—"
    months = _MONTHS[locale if locale in _MONTHS else "en"]
    return f"{value.day} {months[value.month - 1]} {value.year}"


def moment(value: datetime | None, locale: str) -> str:
    """A time of day with its date, in UTC (said so): "2 Dec 2026 14:05 UTC"."""
    if value is None:
        return "—"
    return f"{day(value, locale)} {value:%H:%M} UTC"


STATUSES = {
    "en": {
        "pending": "pending",
        "converted": "converted",
        "in_review": "in review",
        "rejected": "rejected",
        "approved": "approved",
        "paid": "paid",
        "reversed": "reversed",
        "published": "published",
        "hidden": "hidden",
        "allow": "allowed",
        "review": "review",
        "block": "blocked",
        "awaiting_coupon": "awaiting coupon",
    },
    "sv": {
        "pending": "väntar",
        "converted": "genomförd",
        "in_review": "granskas",
        "rejected": "avslagen",
        "approved": "godkänd",
        "paid": "betald",
        "reversed": "återkallad",
        "published": "publicerad",
        "hidden": "dold",
        "allow": "tillåten",
        "review": "granskning",
        "block": "stoppad",
        "awaiting_coupon": "väntar på rabattkod",
    },
}


def status(value: str | None, locale: str) -> str:
    """A status as a word of the reader's language (as the API spells it when unknown)."""
    if not value:
        return "—"
    return STATUSES.get(locale, STATUSES["en"]).get(value) or value.replace("_", " ")


def fact(value: Any, locale: str) -> str:
    """A check's input or a rule's evidence as a person reads it: yes/no, not True/False."""
    if isinstance(value, bool):
        return {"en": ("yes", "no"), "sv": ("ja", "nej")}.get(locale, ("yes", "no"))[not value]
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(fact(v, locale) for v in value)
    return str(value)


_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "sv": [
        "jan.",
        "feb.",
        "mars",
        "apr.",
        "maj",
        "juni",
        "juli",
        "aug.",
        "sep.",
        "okt.",
        "nov.",
        "dec.",
    ],
}
