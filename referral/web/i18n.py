"""The customer pages' words in English and Swedish, and how money and offers read.

Pure functions: the pages and the story image call them, and tests check them without a
server. A program picks its language (`locale`); unknown keys fall back to English.
"""

from __future__ import annotations

from typing import Any, Literal

from referral.lib.money import to_decimal_string

LOCALES = ("en", "sv")

# Each page speaks to the one person reading it: the share page to the advocate ("your
# link", "their first order"), the story page and the shared messages to the friend ("your
# first order"). Keys ending in `_them` are the advocate's view of what a friend gets.
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        # The share page (the advocate reads it).
        "share_title": "Share {shop} with your friends",
        "share_intro": "Friends who use your link get {offer}. You get a reward when they order.",
        "share_intro_no_offer": "Share your link with friends. You get a reward when they order.",
        "program_paused": "The referral program at {shop} is paused. Your link still works, "
        "but friends who use it now get no offer, and you earn no reward for them. Rewards you "
        "have already earned are kept.",
        "program_ended": "The referral program at {shop} has ended. Friends who use your link "
        "now get no offer, and you earn no new rewards. Rewards you have already earned are "
        "kept and paid as usual.",
        "program_not_started": "The referral program at {shop} has not started yet. Until it "
        "does, friends who use your link get no offer.",
        "your_link": "Your referral link",
        "copy": "Copy link",
        "copied": "Copied!",
        "share_on": "Share",
        "share_sheet": "More…",
        "qr_alt": "QR code of your referral link",
        "friend_offer": "Your friends get",
        "your_referrals": "Friends you referred",
        "no_referrals": "No friends have used your link yet.",
        "your_rewards": "Your rewards",
        "no_rewards": "No rewards yet. You get one when a friend orders through your link.",
        "friend_ordered": "{friend} ordered on {date}",
        "milestone_bonus": "Bonus for {count} friends referred",
        "earned_on": "earned on {date}",
        "available_on": "yours on {date} unless the order is returned",
        "being_checked": "the shop is checking this order",
        "reversed_on": "cancelled on {date}",
        "reduced_from": "reduced from {amount} after a partial return",
        "your_stories": "Your stories",
        "no_stories": "No stories yet. When a reward is approved, you can write a story "
        "about it for your friends.",
        "publish_story": "Publish a story",
        "story_text": "Your story",
        "show_first_name": "Show my first name ({name})",
        "view_story": "View",
        "contact_title": "How should we tell you about rewards?",
        "channel_email": "Email",
        "channel_sms": "SMS",
        "contact_email": "By email",
        "contact_sms": "By text message",
        "contact_none": "Don't contact me",
        "save": "Save",
        "saved": "Saved.",
        "payee_title": "Where should we send your rewards?",
        "payee_current": "Paid to:",
        "payee_none": "You haven't told us yet.",
        "payee_method": "How you are paid",
        "payee_method_email": "PayPal, to my email address",
        "payee_method_bank_transfer": "Bank transfer, to my IBAN",
        "payee_email": "Email address",
        "payee_iban": "IBAN",
        "payee_holder": "Account holder's name",
        "payee_bic": "BIC (if your bank asks for it)",
        "payee_for_email": "For PayPal",
        "payee_for_bank": "For a bank transfer",
        "payee_hint": "For your security, we only ever show part of your IBAN or email here.",
        "payee_save": "Save payout details",
        "payee_saved": "Saved. Your next payout goes there.",
        "payee_error_invalid_email": "That email address doesn't look right. "
        "Check it and try again.",
        "payee_error_invalid_iban": "That IBAN isn't valid. "
        "Check each character against your bank's app.",
        "payee_error_invalid_bic": "That BIC isn't valid. Leave it empty if you don't know it.",
        "payee_error_missing_account_holder": "Add the account holder's name, as your bank has it.",
        "payee_error_invalid_payout_method": "Choose PayPal or bank transfer, and "
        "fill in only its fields.",
        "story_sent": "Thanks! Your story is waiting for the shop's approval.",
        "story_published": "Your story is published.",
        "referral_status_pending": "no order yet",
        "referral_status_converted": "ordered",
        "referral_status_in_review": "being checked",
        "referral_status_rejected": "doesn't count",
        "reward_status_pending": "on hold",
        "reward_status_in_review": "being checked",
        "reward_status_approved": "approved",
        "reward_status_paid": "paid",
        "reward_status_reversed": "cancelled",
        "story_status_pending": "awaiting approval",
        "story_status_published": "published",
        "story_status_hidden": "hidden",
        "friend": "Friend {initial}…",
        "friend_numbered": "Friend #{number}",
        "offer_coupon_them": "{amount} off their first order",
        "offer_cash_them": "{amount} when they order",
        "offer_store_credit_them": "{amount} store credit",
        "offer_points_them": "{points} points",
        "offer_percent_them": "{percent}% off their first order",
        "row_coupon": "{amount} coupon",
        "row_store_credit": "{amount} store credit",
        # The story page and shared messages (the friend reads them).
        "story_default": "I got {reward} at {shop} for telling friends about it",
        "story_by": "— {name}, a {shop} customer",
        "story_by_anonymous": "— a {shop} customer",
        "story_cta": "Get {offer}",
        "story_cta_no_offer": "Visit {shop}",
        "story_cta_intro": "A friend recommends {shop}.",
        "story_cta_intro_named": "{name} recommends {shop}.",
        "welcome_offer": "Your welcome offer",
        "share_story": "Share this story",
        "share_text": "I like {shop}! Use my link and get {offer}",
        "share_text_no_offer": "I like {shop}! Have a look:",
        "offer_coupon": "{amount} off your first order",
        "offer_cash": "{amount} when you order",
        "offer_store_credit": "{amount} store credit",
        "offer_points": "{points} points",
        "offer_percent": "{percent}% off your first order",
        "reward_points": "{points} points",
        "reward_coupon": "a {amount} coupon",
        "reward_store_credit": "{amount} store credit",
        "friends_joined": "{count} friends joined this month",
        # Error pages.
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
        "error_held_out_title": "No invitation to share right now",
        "error_held_out_text": "The shop's refer-a-friend programme is not open to you at "
        "the moment. Everything else in the shop works as usual.",
    },
    "sv": {
        "share_title": "Tipsa dina vänner om {shop}",
        "share_intro": "Vänner som använder din länk får {offer}. Du får en belöning när de "
        "handlar.",
        "share_intro_no_offer": "Dela din länk med dina vänner. Du får en belöning när de handlar.",
        "program_paused": "Tipsprogrammet hos {shop} är pausat. Din länk fungerar fortfarande, "
        "men vänner som använder den nu får inget erbjudande och du får ingen belöning för dem. "
        "Belöningar du redan har fått behåller du.",
        "program_ended": "Tipsprogrammet hos {shop} har avslutats. Vänner som använder din länk "
        "nu får inget erbjudande och du får inga nya belöningar. Belöningar du redan har fått "
        "behåller du, och de betalas ut som vanligt.",
        "program_not_started": "Tipsprogrammet hos {shop} har inte startat än. Tills det gör det "
        "får vänner som använder din länk inget erbjudande.",
        "your_link": "Din tipslänk",
        "copy": "Kopiera länken",
        "copied": "Kopierad!",
        "share_on": "Dela",
        "share_sheet": "Mer…",
        "qr_alt": "QR-kod för din tipslänk",
        "friend_offer": "Dina vänner får",
        "your_referrals": "Vänner du har tipsat",
        "no_referrals": "Ingen vän har använt din länk än.",
        "your_rewards": "Dina belöningar",
        "no_rewards": "Inga belöningar än. Du får en när en vän handlar via din länk.",
        "friend_ordered": "{friend} handlade {date}",
        "milestone_bonus": "Bonus för {count} tipsade vänner",
        "earned_on": "intjänad {date}",
        "available_on": "blir din {date} om köpet inte returneras",
        "being_checked": "butiken kontrollerar köpet",
        "reversed_on": "makulerad {date}",
        "reduced_from": "sänkt från {amount} efter en delvis retur",
        "your_stories": "Dina berättelser",
        "no_stories": "Inga berättelser än. När en belöning har godkänts kan du skriva om "
        "den till dina vänner.",
        "publish_story": "Publicera berättelsen",
        "story_text": "Din berättelse",
        "show_first_name": "Visa mitt förnamn ({name})",
        "view_story": "Visa",
        "contact_title": "Hur vill du få veta om belöningar?",
        "channel_email": "E-post",
        "channel_sms": "Sms",
        "contact_email": "Via e-post",
        "contact_sms": "Via sms",
        "contact_none": "Kontakta mig inte",
        "save": "Spara",
        "saved": "Sparat.",
        "payee_title": "Vart ska vi skicka dina belöningar?",
        "payee_current": "Betalas till:",
        "payee_none": "Du har inte berättat det för oss än.",
        "payee_method": "Hur du får betalt",
        "payee_method_email": "PayPal, till min e-postadress",
        "payee_method_bank_transfer": "Banköverföring, till mitt IBAN",
        "payee_email": "E-postadress",
        "payee_iban": "IBAN",
        "payee_holder": "Kontoinnehavarens namn",
        "payee_bic": "BIC (om din bank frågar efter det)",
        "payee_for_email": "För PayPal",
        "payee_for_bank": "För banköverföring",
        "payee_hint": "För din säkerhet visar vi bara en del av ditt IBAN eller din e-post här.",
        "payee_save": "Spara utbetalningsuppgifter",
        "payee_saved": "Sparat. Nästa utbetalning går dit.",
        "payee_error_invalid_email": "E-postadressen ser inte rätt ut. "
        "Kontrollera den och försök igen.",
        "payee_error_invalid_iban": "IBAN-numret är inte giltigt. "
        "Jämför varje tecken med din banks app.",
        "payee_error_invalid_bic": "BIC-koden är inte giltig. "
        "Lämna fältet tomt om du inte vet den.",
        "payee_error_missing_account_holder": "Fyll i kontoinnehavarens namn, så som "
        "banken har det.",
        "payee_error_invalid_payout_method": "Välj PayPal eller banköverföring och "
        "fyll bara i dess fält.",
        "story_sent": "Tack! Din berättelse väntar på att butiken godkänner den.",
        "story_published": "Din berättelse är publicerad.",
        "referral_status_pending": "har inte handlat än",
        "referral_status_converted": "har handlat",
        "referral_status_in_review": "kontrolleras",
        "referral_status_rejected": "räknas inte",
        "reward_status_pending": "väntar",
        "reward_status_in_review": "kontrolleras",
        "reward_status_approved": "godkänd",
        "reward_status_paid": "utbetald",
        "reward_status_reversed": "makulerad",
        "story_status_pending": "väntar på godkännande",
        "story_status_published": "publicerad",
        "story_status_hidden": "dold",
        "friend": "Vän {initial}…",
        "friend_numbered": "Vän nr {number}",
        "offer_coupon_them": "{amount} rabatt på sin första beställning",
        "offer_cash_them": "{amount} när de handlar",
        "offer_store_credit_them": "{amount} i tillgodohavande",
        "offer_points_them": "{points} poäng",
        "offer_percent_them": "{percent} % rabatt på sin första beställning",
        "row_coupon": "Rabattkod på {amount}",
        "row_store_credit": "{amount} i tillgodohavande",
        "story_default": "Jag fick {reward} hos {shop} för att jag tipsade mina vänner",
        "story_by": "— {name}, kund hos {shop}",
        "story_by_anonymous": "— en kund hos {shop}",
        "story_cta": "Få {offer}",
        "story_cta_no_offer": "Besök {shop}",
        "story_cta_intro": "En vän rekommenderar {shop}.",
        "story_cta_intro_named": "{name} rekommenderar {shop}.",
        "welcome_offer": "Ditt välkomsterbjudande",
        "share_story": "Dela berättelsen",
        "share_text": "Jag gillar {shop}! Använd min länk så får du {offer}",
        "share_text_no_offer": "Jag gillar {shop}! Ta en titt:",
        "offer_coupon": "{amount} rabatt på din första beställning",
        "offer_cash": "{amount} när du handlar",
        "offer_store_credit": "{amount} i tillgodohavande",
        "offer_points": "{points} poäng",
        "offer_percent": "{percent} % rabatt på din första beställning",
        "reward_points": "{points} poäng",
        "reward_coupon": "en rabattkod på {amount}",
        "reward_store_credit": "{amount} i tillgodohavande",
        "friends_joined": "{count} vänner gick med den här månaden",
        "error_invalid_title": "Länken fungerar inte",
        "error_invalid_text": "Länken är ofullständig eller har ändrats. "
        "Be butiken om en ny länk till din delningssida.",
        "error_expired_title": "Länken har gått ut",
        "error_expired_text": "Länkar till delningssidor gäller en begränsad tid. "
        "Be butiken om en ny.",
        "error_story_input_title": "Berättelsen kunde inte sparas",
        "error_story_input_text": "En berättelse är högst 280 tecken text och handlar om "
        "en av dina godkända belöningar. Gå tillbaka och försök igen.",
        "error_story_title": "Berättelsen finns inte",
        "error_story_text": "Den kan ha tagits bort, eller så är länken felskriven.",
        "error_held_out_title": "Ingen inbjudan att dela just nu",
        "error_held_out_text": "Butikens tipsa-en-vän-program är inte öppet för dig just nu. "
        "Allt annat i butiken fungerar som vanligt.",
    },
}


# Points, levels and the preference centre on the share page (issue 19): the advocate reads
# them. Kept apart from the page's other words so each block can be read on its own.
_ENGAGEMENT: dict[str, dict[str, str]] = {
    "en": {
        "points_title": "Your points",
        "points_count": "{points} points",
        "points_expiry": "{points} expire on {date}.",
        "points_thanks": "Thanks for your order! It earned you {points}.",
        "level_label": "Your level",
        "level_next_friend": "{count} more friend to {level}",
        "level_next_friends": "{count} more friends to {level}",
        "level_next_points": "{points} more points to {level}",
        "level_next_spend": "Spend {amount} more to reach {level}",
        "level_top": "You have reached the top level.",
        "catalogue_title": "Spend your points",
        "redeem": "Redeem",
        "points_missing": "you need {points} more",
        "redemptions_title": "Your redeemed rewards",
        "redemption_code": "Code",
        "redemption_cancel": "Cancel and get the points back",
        "redemption_status_active": "Ready to use",
        "redemption_status_cancelled": "Cancelled",
        "redeemed": "Done! Your reward is under “Your redeemed rewards”.",
        "points_short": "You do not have enough points for that yet.",
        "redemption_cancelled": "Cancelled: your points are back.",
        "redemption_used": "That code has been used, so it can no longer be cancelled.",
        "preferences_saved": "Your choices are saved.",
        "prefs_title": "How we keep in touch",
        "prefs_channels": "Contact me by",
        "prefs_channel_email": "Email",
        "prefs_channel_sms": "Text message (SMS)",
        "prefs_topics": "Tell me about",
        "prefs_topic_rewards": "My rewards and points",
        "prefs_topic_offers": "New offers",
        "prefs_birthday": "Your birthday (for a birthday gift of points)",
        "prefs_hint": "Tick nothing and we will not contact you. You can change this any time.",
        "prefs_save": "Save my choices",
    },
    "sv": {
        "points_title": "Dina poäng",
        "points_count": "{points} poäng",
        "points_expiry": "{points} går ut den {date}.",
        "points_thanks": "Tack för din beställning! Den gav dig {points}.",
        "level_label": "Din nivå",
        "level_next_friend": "{count} vän till för att nå {level}",
        "level_next_friends": "{count} vänner till för att nå {level}",
        "level_next_points": "{points} poäng till för att nå {level}",
        "level_next_spend": "Handla för {amount} till för att nå {level}",
        "level_top": "Du har nått högsta nivån.",
        "catalogue_title": "Använd dina poäng",
        "redeem": "Lös in",
        "points_missing": "du behöver {points} till",
        "redemptions_title": "Dina inlösta belöningar",
        "redemption_code": "Kod",
        "redemption_cancel": "Ångra och få tillbaka poängen",
        "redemption_status_active": "Klar att använda",
        "redemption_status_cancelled": "Ångrad",
        "redeemed": "Klart! Din belöning finns under ”Dina inlösta belöningar”.",
        "points_short": "Du har inte tillräckligt med poäng för det än.",
        "redemption_cancelled": "Ångrat: dina poäng är tillbaka.",
        "redemption_used": "Koden är redan använd och kan inte längre ångras.",
        "preferences_saved": "Dina val är sparade.",
        "prefs_title": "Hur vi håller kontakten",
        "prefs_channels": "Kontakta mig via",
        "prefs_channel_email": "E-post",
        "prefs_channel_sms": "SMS",
        "prefs_topics": "Berätta om",
        "prefs_topic_rewards": "Mina belöningar och poäng",
        "prefs_topic_offers": "Nya erbjudanden",
        "prefs_birthday": "Din födelsedag (för en födelsedagsgåva i poäng)",
        "prefs_hint": "Kryssa inget så kontaktar vi dig inte. Du kan ändra det när du vill.",
        "prefs_save": "Spara mina val",
    },
}
for _locale, _words in _ENGAGEMENT.items():
    STRINGS[_locale].update(_words)


def locale_of(raw: str | None) -> str:
    return raw if raw in LOCALES else "en"


def t(locale: str, key: str, **values: Any) -> str:
    """The string `key` in `locale` (English where missing), with `values` filled in."""
    template = STRINGS.get(locale, STRINGS["en"]).get(key) or STRINGS["en"][key]
    return template.format(**values) if values else template


def money(amount: int, currency: str, locale: str) -> str:
    """`1050, "EUR"` -> "10.50 EUR" (sv: "10,50 EUR"), with the currency's own exponent
    (`lib/money.py`: 500 JPY, 1.250 KWD); whole amounts without decimals; thousands
    grouped as each language writes them ("1,250 EUR", sv "1 250 EUR")."""
    text = to_decimal_string(amount, currency)
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.removeprefix("-").partition(".")
    whole = _group(int(whole), locale)
    if fraction and set(fraction) != {"0"}:
        whole += ("," if locale == "sv" else ".") + fraction
    return f"{sign}{whole} {currency}"


def group(number: int, locale: str) -> str:
    """1250 -> "1,250" (sv "1 250")."""
    return _group(number, locale)


def _group(number: int, locale: str) -> str:
    grouped = f"{number:,}"
    return grouped.replace(",", "\u00a0") if locale == "sv" else grouped


def friends_joined(count: int, locale: str) -> str:
    return t(locale, "friends_joined", count=_group(count, locale))


Reader = Literal["friend", "advocate"]


def offer_text(rule: dict[str, Any] | None, locale: str, reader: Reader = "friend") -> str | None:
    """What a friend gets, from the program's friend reward rule (a plain dict), said to
    `reader`: the friend ("10 EUR off your first order") or the advocate ("10 EUR off their
    first order"). None when friends get nothing: the pages then say something else."""
    suffix = "_them" if reader == "advocate" else ""
    if not rule:
        return None
    kind = rule.get("kind")
    if rule.get("basis_points"):
        percent = rule["basis_points"] / 100
        shown = f"{percent:g}" if locale == "en" else f"{percent:g}".replace(".", ",")
        return t(locale, f"offer_percent{suffix}", percent=shown)
    if kind == "points" and rule.get("points"):
        return t(locale, f"offer_points{suffix}", points=_group(rule["points"], locale))
    amounts = rule.get("amounts") or {}
    if amounts and kind in ("coupon", "cash", "store_credit"):
        currency, amount = next(iter(amounts.items()))
        return t(locale, f"offer_{kind}{suffix}", amount=money(amount, currency, locale))
    return None


def reward_text(kind: str, amount: int, currency: str | None, locale: str) -> str:
    """One reward as the advocate says it in a sentence: "10 EUR", "a 10 EUR coupon",
    "10 EUR store credit", "100 points"."""
    if kind == "points" or currency is None:
        return t(locale, "reward_points", points=_group(amount, locale))
    shown = money(amount, currency, locale)
    if kind in ("coupon", "store_credit"):
        return t(locale, f"reward_{kind}", amount=shown)
    return shown


def reward_row(kind: str, amount: int, currency: str | None, locale: str) -> str:
    """One reward as a row of the share page starts: "10 EUR", "10 EUR coupon"."""
    if kind == "points" or currency is None:
        return t(locale, "reward_points", points=_group(amount, locale))
    shown = money(amount, currency, locale)
    return t(locale, f"row_{kind}", amount=shown) if kind in ("coupon", "store_credit") else shown


def first_name(name: str | None) -> str | None:
    """The first word of a name: public pages never show a last name."""
    if not name:
        return None
    word = name.strip().split(maxsplit=1)[0] if name.strip() else ""
    return word[:40] or None


def masked_friend(email: str | None, number: int, locale: str) -> str:
    """A friend as the advocate's page shows them: the first letter of their email (so the
    advocate may recognise them) or their number among the advocate's friends (first friend
    = 1, so it stays the same as more join), never the email or the shop's customer id."""
    initial = email.strip()[:1].upper() if email and email.strip()[:1].isalnum() else ""
    if initial:
        return t(locale, "friend", initial=initial)
    return t(locale, "friend_numbered", number=number)
