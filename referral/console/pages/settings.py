"""Program settings: the merchant's programs, a program's settings form (rewards, tiers,
hold, window, brand, locale, landing URL, stories) and its fraud policy editor, which
previews a candidate policy on past decisions (the backtest) before saving exactly it.

Every change is a service's: `programs.service.update` (its refusals shown beside the form,
the form keeping what was typed) and `fraud.service.put_policy` (with the person as actor and
the version the preview was made against, so a policy changed meanwhile is refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from referral.console.pages.common import Formats, FormDep, SessionDep, back_to, locale_of, page
from referral.console.words import translator
from referral.fraud import service as fraud
from referral.fraud.policy import RULE_NAMES, FraudPolicy, Score, dump
from referral.fraud.schemas import Backtest, BacktestRequest, PolicyDocument
from referral.http.deps import Conn, RuntimeDep
from referral.lib import money
from referral.lib.errors import Conflict, InvalidInput
from referral.lib.pagination import ListQuery
from referral.programs import service as programs
from referral.programs.schemas import Program, ProgramAction, ProgramUpdate, RewardRule, Tier

PAGE_SIZE = 25
SAMPLES = 5
BACKTEST_DAYS = (30, 90, 365)
KINDS = ("cash", "store_credit", "coupon", "points")
STATUSES = ("draft", "active", "paused", "archived")
ACTIONS = ("flag", "review", "block")
# What the form edits as one value each: everything `programs.update` takes but the rewards
# (read from their own part of the form) and a checkbox.
PLAIN_FIELDS = tuple(
    name
    for name in ProgramUpdate.__struct_fields__
    # The schedule is set through the API (starts_at, ends_at); the form keeps it as it is.
    if name not in ("rewards", "stories_auto_publish", "starts_at", "ends_at")
)
COLOURS = ("brand_colour", "qr_foreground", "qr_background")
WHOLE_NUMBERS = ("attribution_window_days", "hold_days")
URLS = ("landing_url", "fallback_url")
DEFAULT_POLICY = FraudPolicy()

WORDS = {
    "en": {
        "settings_title": "Program settings",
        "settings_intro": "Each program's rewards, timing, look and fraud rules. Changes apply "
        "to referrals from the moment you save.",
        "program": "Program",
        "status": "Status",
        "rewards": "Rewards",
        "hold": "Hold",
        "window": "Window",
        "edit": "Settings",
        "fraud_policy": "Fraud policy",
        "no_programs": "No programs in this mode yet. Create one with the API, then set its "
        "rewards and rules here:",
        "days": "{n} days",
        "no_reward": "no reward",
        "advocate_short": "Advocate",
        "friend_short": "Friend",
        "status_draft": "Draft",
        "status_active": "Active",
        "status_paused": "Paused",
        "status_archived": "Archived",
        "status_ended": "Ended",
        "status_scheduled": "Scheduled",
        "status_running": "Running",
        "all_programs": "All programs",
        "tab_settings": "Settings",
        "tab_fraud": "Fraud policy",
        "saved_program": "Saved by {actor}: {changed}. New referrals follow these settings "
        "from now on.",
        "saved_nothing": "Saved by {actor}; nothing had changed.",
        "lifecycle": "Running the program",
        "pause": "Pause",
        "resume": "Resume",
        "end_program": "End for good",
        "end_confirm": "I understand that an ended program never runs again.",
        "lifecycle_confirm_end": "Tick the box first: ending a program cannot be undone.",
        "lifecycle_help": "Paused or ended, its links lead to the fallback address (else the "
        "landing page without the offer) and it makes no new referrals; referrals already made "
        "keep their rewards. An ended program never resumes.",
        "lifecycle_pause": "Paused by {actor}.",
        "lifecycle_resume": "Resumed by {actor}.",
        "lifecycle_end": "Ended by {actor}, for good.",
        "lifecycle_program_ended": "This program has ended: it cannot be paused or resumed.",
        "lifecycle_invalid_program_transition": "A draft or archived program is not paused or "
        "ended: change its status below.",
        "program_moved": "Someone saved this program's settings at {when}, after you opened "
        "them, so yours were not saved. Your changes are still in the form. Where they "
        "differ from what is saved now: {fields}. Save again to keep yours.",
        "program_moved_same": "Someone saved this program's settings at {when}, after you "
        "opened them, so yours were not saved. What you entered is what is saved now.",
        "changed_name": "name",
        "changed_status": "status",
        "changed_landing_url": "landing page",
        "changed_fallback_url": "fallback page",
        "changed_attribution_window_days": "attribution window",
        "changed_hold_days": "hold",
        "changed_brand_colour": "brand colour",
        "changed_qr_foreground": "QR code colour",
        "changed_qr_background": "QR code background",
        "changed_locale": "language",
        "changed_stories_auto_publish": "story publishing",
        "changed_advocate": "the advocate's reward",
        "changed_friend": "the friend's reward",
        "changed_tiers": "tiers",
        "fix_below": "Nothing was saved. Please fix what is marked below:",
        "basics": "The program",
        "name": "Name",
        "landing_url": "Landing page",
        "landing_url_help": "Where a friend lands after clicking a link (https://…).",
        "fallback_url": "Fallback page (optional)",
        "fallback_url_help": "Where links of a paused or ended program go. Blank: the landing "
        "page.",
        "timing": "Timing",
        "attribution_window_days": "Attribution window (days)",
        "attribution_window_days_help": "How long after a click an order still counts.",
        "hold_days": "Hold (days)",
        "hold_days_help": "How long a reward waits before it can be paid (covers returns).",
        "look": "Look and language",
        "brand_colour": "Brand colour",
        "qr_foreground": "QR code colour",
        "qr_background": "QR code background",
        "locale": "Language of the customer pages",
        "locale_en": "English",
        "locale_sv": "Swedish",
        "stories_auto_publish": "Publish reward stories without moderation",
        "advocate": "The advocate gets",
        "friend": "The friend gets",
        "kind": "Reward",
        "kind_none": "Nothing",
        "kind_cash": "Cash",
        "kind_store_credit": "Store credit",
        "kind_coupon": "Coupon",
        "kind_points": "Points",
        "basis": "Worth",
        "basis_amounts": "A fixed amount",
        "basis_percent": "A share of the order",
        "percent": "Percent of the subtotal",
        "points": "Points",
        "currency": "Currency",
        "amount": "Amount",
        "amount_help": "One line per currency, e.g. EUR 10.00. Leave a line blank to drop it.",
        "tiers": "Tiers",
        "tiers_intro": "From an advocate's n-th successful referral on, pay them this instead.",
        "tier_from": "From referral number",
        "tier_remove": "Remove this tier",
        "tier_new": "Add a tier",
        "tier_n": "Tier {n}",
        "colour_now": "Now {colour}.",
        "save": "Save settings",
        "whole_number": "must be a whole number",
        "required": "is needed",
        "at_least": "must be at least {n}",
        "at_most": "must be at most {n}",
        "too_long": "is too long (at most {n} characters)",
        "not_valid": "is not valid",
        "not_a_colour": "must be a colour like #1a7f37",
        "not_an_address": "must be a full address starting with https:// (or http://)",
        "unknown_currency": "{currency} is not a currency we know (use ISO codes like EUR, SEK)",
        "amount_needed": "give an amount for {currency}",
        "currency_needed": "name the currency of {amount}",
        "currency_twice": "{currency} appears twice",
        "not_an_amount": "{amount} is not an amount in {currency}",
        "an_amount_needed": "give an amount in at least one currency",
        "not_a_percent": "must be a percent like 10 or 2.5",
        "tier_twice": "tier {n} appears twice",
        "choose_reward": "choose what the tier pays",
        # the fraud policy
        "fraud_intro": "Each rule looks at a referral when the friend orders. A rule that "
        "fires adds its weight to the score and can flag the referral, hold it for review or "
        "block it. Try a change on past decisions before you save it.",
        "version": "Version {version}, saved {when}",
        "scores": "Scores",
        "review_score": "Hold for review from score",
        "block_score": "Block from score",
        "on": "On",
        "action": "When it fires",
        "action_flag": "Only flag it",
        "action_review": "Hold for review",
        "action_block": "Block",
        "weight": "Weight",
        "one_a_line": "One a line.",
        "backtest_days": "Try it on referrals from the last",
        "days_30": "30 days",
        "days_90": "90 days",
        "days_365": "year",
        "preview": "Preview on past referrals",
        "preview_title": "What this policy would have changed",
        "preview_said": "{replayed} past decisions replayed ({start} – {end}): "
        "{changed} would change, {unchanged} would stay the same.",
        "preview_skipped": "Not replayed: {without} decided before evidence was kept, "
        "{ineligible} rejected for reasons no fraud rule changes.",
        "preview_none": "No referral was decided in this range, so there is nothing to compare "
        "with. Try a longer range, or save if you are sure.",
        "nothing_changes": "None of the past decisions would change.",
        "direction": "Decision",
        "count": "Referrals",
        "examples": "For example",
        "outcome_allow": "Allowed",
        "outcome_review": "Held for review",
        "outcome_block": "Blocked",
        "moved": "{was} → {would_be}",
        "rule": "Rule",
        "fired": "Fired then",
        "would_fire": "Would fire",
        "what_changed": "What you changed",
        "rules_fired": "Which rules fired, then and now",
        "setting": "Setting",
        "before": "Now",
        "after": "Would be",
        "same_policy": "This is the policy in force: change a rule above, then preview again.",
        "save_policy": "Save this policy",
        "save_policy_said": "Saves exactly what was previewed as version {version}. Referrals "
        "from then on are decided with it.",
        "change_again": "Or change it again below and preview once more.",
        "saved_policy": "Saved by {actor} as version {version}. Referrals are decided with it "
        "from now on.",
        "policy_moved": "Someone saved this program's fraud policy while you were previewing "
        "(it is at version {version} now), so yours was not saved. Your changes are still in "
        "the form: preview them again against the new version.",
        "on_off": "on",
        "off": "off",
        "empty_list": "(none)",
        "changed_policy_unreadable": "The previewed policy could not be read back. Preview "
        "again, then save.",
    },
    "sv": {
        "settings_title": "Programinställningar",
        "settings_intro": "Varje programs belöningar, tider, utseende och bedrägeriregler. "
        "Ändringar gäller rekommendationer från det ögonblick du sparar.",
        "program": "Program",
        "status": "Status",
        "rewards": "Belöningar",
        "hold": "Väntetid",
        "window": "Fönster",
        "edit": "Inställningar",
        "fraud_policy": "Bedrägeriregler",
        "no_programs": "Inga program i det här läget än. Skapa ett med API:et och ställ sedan "
        "in belöningar och regler här:",
        "days": "{n} dagar",
        "no_reward": "ingen belöning",
        "advocate_short": "Ambassadör",
        "friend_short": "Vän",
        "status_draft": "Utkast",
        "status_active": "Aktivt",
        "status_paused": "Pausat",
        "status_archived": "Arkiverat",
        "status_ended": "Avslutat",
        "status_scheduled": "Schemalagt",
        "status_running": "Pågår",
        "all_programs": "Alla program",
        "tab_settings": "Inställningar",
        "tab_fraud": "Bedrägeriregler",
        "saved_program": "Sparat av {actor}: {changed}. Nya rekommendationer följer "
        "inställningarna från och med nu.",
        "saved_nothing": "Sparat av {actor}; inget hade ändrats.",
        "lifecycle": "Programmets gång",
        "pause": "Pausa",
        "resume": "Återuppta",
        "end_program": "Avsluta för gott",
        "end_confirm": "Jag förstår att ett avslutat program aldrig körs igen.",
        "lifecycle_confirm_end": "Kryssa i rutan först: ett avslutat program går inte att ångra.",
        "lifecycle_help": "Pausat eller avslutat leder länkarna till reservadressen (annars "
        "landningssidan utan erbjudandet) och inga nya tips registreras; tips som redan gjorts "
        "behåller sina belöningar. Ett avslutat program kan inte återupptas.",
        "lifecycle_pause": "Pausat av {actor}.",
        "lifecycle_resume": "Återupptaget av {actor}.",
        "lifecycle_end": "Avslutat av {actor}, för gott.",
        "lifecycle_program_ended": "Programmet har avslutats: det kan inte pausas eller "
        "återupptas.",
        "lifecycle_invalid_program_transition": "Ett utkast eller arkiverat program pausas "
        "eller avslutas inte: ändra dess status nedan.",
        "program_moved": "Någon sparade programmets inställningar {when}, efter att du "
        "öppnade dem, så dina sparades inte. Dina ändringar finns kvar i formuläret. Där de "
        "skiljer sig från det som är sparat nu: {fields}. Spara igen för att behålla dina.",
        "program_moved_same": "Någon sparade programmets inställningar {when}, efter att du "
        "öppnade dem, så dina sparades inte. Det du skrev är det som är sparat nu.",
        "changed_name": "namn",
        "changed_status": "status",
        "changed_landing_url": "landningssida",
        "changed_fallback_url": "reservsida",
        "changed_attribution_window_days": "attributionsfönster",
        "changed_hold_days": "väntetid",
        "changed_brand_colour": "varumärkesfärg",
        "changed_qr_foreground": "QR-kodens färg",
        "changed_qr_background": "QR-kodens bakgrund",
        "changed_locale": "språk",
        "changed_stories_auto_publish": "publicering av berättelser",
        "changed_advocate": "ambassadörens belöning",
        "changed_friend": "vännens belöning",
        "changed_tiers": "nivåer",
        "fix_below": "Inget sparades. Rätta det som är markerat nedan:",
        "basics": "Programmet",
        "name": "Namn",
        "landing_url": "Landningssida",
        "landing_url_help": "Dit en vän kommer efter att ha klickat på en länk (https://…).",
        "fallback_url": "Reservsida (valfri)",
        "fallback_url_help": "Dit länkar går när programmet är pausat eller avslutat. Tomt: "
        "landningssidan.",
        "timing": "Tider",
        "attribution_window_days": "Attributionsfönster (dagar)",
        "attribution_window_days_help": "Hur länge efter ett klick en beställning räknas.",
        "hold_days": "Väntetid (dagar)",
        "hold_days_help": "Hur länge en belöning väntar innan den kan betalas ut (täcker returer).",
        "look": "Utseende och språk",
        "brand_colour": "Varumärkesfärg",
        "qr_foreground": "QR-kodens färg",
        "qr_background": "QR-kodens bakgrund",
        "locale": "Språk på kundsidorna",
        "locale_en": "Engelska",
        "locale_sv": "Svenska",
        "stories_auto_publish": "Publicera belöningsberättelser utan granskning",
        "advocate": "Ambassadören får",
        "friend": "Vännen får",
        "kind": "Belöning",
        "kind_none": "Ingenting",
        "kind_cash": "Pengar",
        "kind_store_credit": "Tillgodohavande",
        "kind_coupon": "Kupong",
        "kind_points": "Poäng",
        "basis": "Värd",
        "basis_amounts": "Ett fast belopp",
        "basis_percent": "En andel av beställningen",
        "percent": "Procent av delsumman",
        "points": "Poäng",
        "currency": "Valuta",
        "amount": "Belopp",
        "amount_help": "En rad per valuta, t.ex. SEK 100,00. Töm en rad för att ta bort den.",
        "tiers": "Nivåer",
        "tiers_intro": "Från ambassadörens n:te lyckade rekommendation betalas detta i stället.",
        "tier_from": "Från rekommendation nummer",
        "tier_remove": "Ta bort nivån",
        "tier_new": "Lägg till en nivå",
        "tier_n": "Nivå {n}",
        "colour_now": "Nu {colour}.",
        "save": "Spara inställningarna",
        "whole_number": "måste vara ett heltal",
        "required": "behövs",
        "at_least": "måste vara minst {n}",
        "at_most": "får vara högst {n}",
        "too_long": "är för långt (högst {n} tecken)",
        "not_valid": "är inte giltigt",
        "not_a_colour": "måste vara en färg som #1a7f37",
        "not_an_address": "måste vara en hel adress som börjar med https:// (eller http://)",
        "unknown_currency": "{currency} är ingen valuta vi känner till (använd ISO-koder som "
        "SEK, EUR)",
        "amount_needed": "ange ett belopp för {currency}",
        "currency_needed": "ange valutan för {amount}",
        "currency_twice": "{currency} finns två gånger",
        "not_an_amount": "{amount} är inget belopp i {currency}",
        "an_amount_needed": "ange ett belopp i minst en valuta",
        "not_a_percent": "måste vara en procentsats som 10 eller 2,5",
        "tier_twice": "nivå {n} finns två gånger",
        "choose_reward": "välj vad nivån betalar",
        "fraud_intro": "Varje regel tittar på en rekommendation när vännen beställer. En regel "
        "som slår till lägger sin vikt till poängen och kan markera rekommendationen, hålla "
        "den för granskning eller spärra den. Prova en ändring på tidigare beslut innan du "
        "sparar den.",
        "version": "Version {version}, sparad {when}",
        "scores": "Poäng",
        "review_score": "Håll för granskning från poäng",
        "block_score": "Spärra från poäng",
        "on": "På",
        "action": "När den slår till",
        "action_flag": "Bara markera",
        "action_review": "Håll för granskning",
        "action_block": "Spärra",
        "weight": "Vikt",
        "one_a_line": "En per rad.",
        "backtest_days": "Prova på rekommendationer från senaste",
        "days_30": "30 dagarna",
        "days_90": "90 dagarna",
        "days_365": "året",
        "preview": "Förhandsgranska på tidigare rekommendationer",
        "preview_title": "Vad de här reglerna hade ändrat",
        "preview_said": "{replayed} tidigare beslut prövade igen ({start} – {end}): "
        "{changed} skulle ändras, {unchanged} skulle bli som förut.",
        "preview_skipped": "Inte prövade: {without} beslutade innan underlaget sparades, "
        "{ineligible} avvisade av skäl som ingen bedrägeriregel ändrar.",
        "preview_none": "Ingen rekommendation beslutades under perioden, så det finns inget att "
        "jämföra med. Prova en längre period, eller spara om du är säker.",
        "nothing_changes": "Inget av de tidigare besluten skulle ändras.",
        "direction": "Beslut",
        "count": "Rekommendationer",
        "examples": "Till exempel",
        "outcome_allow": "Godkänd",
        "outcome_review": "Hålls för granskning",
        "outcome_block": "Spärrad",
        "moved": "{was} → {would_be}",
        "rule": "Regel",
        "fired": "Slog till då",
        "would_fire": "Skulle slå till",
        "what_changed": "Det här ändrade du",
        "rules_fired": "Vilka regler slog till, då och nu",
        "setting": "Inställning",
        "before": "Nu",
        "after": "Skulle bli",
        "same_policy": "Det här är reglerna som gäller: ändra en regel ovan och förhandsgranska "
        "igen.",
        "save_policy": "Spara de här reglerna",
        "save_policy_said": "Sparar precis det som förhandsgranskades som version {version}. "
        "Rekommendationer från och med då beslutas med dem.",
        "change_again": "Eller ändra igen nedan och förhandsgranska en gång till.",
        "saved_policy": "Sparat av {actor} som version {version}. Rekommendationer beslutas med "
        "den från och med nu.",
        "policy_moved": "Någon sparade programmets bedrägeriregler medan du förhandsgranskade "
        "(de är version {version} nu), så dina sparades inte. Dina ändringar finns kvar i "
        "formuläret: förhandsgranska dem igen mot den nya versionen.",
        "on_off": "på",
        "off": "av",
        "empty_list": "(inga)",
        "changed_policy_unreadable": "De förhandsgranskade reglerna gick inte att läsa. "
        "Förhandsgranska igen och spara sedan.",
    },
}

RULE_WORDS = {
    "en": {
        "rule_same_customer": "The friend is the advocate (same customer id)",
        "rule_same_email": "Same email as the advocate",
        "rule_similar_email": "An email almost the advocate's",
        "rule_same_ip_and_user_agent": "Same network and browser as the advocate",
        "rule_same_ip": "Same IP address as the advocate",
        "rule_same_device": "Same device as the advocate",
        "rule_same_payment": "Same card or payment as the advocate",
        "rule_same_address": "Same shipping address as the advocate",
        "rule_disposable_email": "A disposable email address",
        "rule_advocate_velocity": "The advocate refers very fast",
        "rule_ip_velocity": "Many orders from one address",
        "rule_existing_customer": "The friend was already a customer",
        "rule_blocklist": "On the blocklist",
        "rule_deal_site_referrer": "Came from a coupon or deal site",
        "rule_reciprocal_referral": "Two people referring each other",
        "rule_order_too_soon": "Ordered too soon after the click",
        "rule_rejected_referrals": "An advocate with rejected referrals",
        "param_max_distance": "At most this many letters apart",
        "param_min_local_length": "Only addresses this long before the @",
        "param_extra_domains": "Also count as disposable (domains)",
        "param_allowed_domains": "Never count as disposable (domains)",
        "param_max_per_hour": "Most referrals in an hour",
        "param_max_per_day": "Most in a day",
        "param_emails": "Emails (* as wildcard)",
        "param_email_domains": "Email domains",
        "param_ips": "IP addresses or networks (CIDR)",
        "param_customer_ids": "Customer ids",
        "param_referring_domains": "Referring sites",
        "param_domains": "Sites (domains)",
        "param_min_seconds": "Seconds from click to order, at least",
        "param_max_rejected": "Rejected referrals allowed",
        "param_window_days": "Counted over this many days",
        "param_suspend_codes": "Also suspend the advocate's codes",
        "param_enabled": "On",
        "param_action": "When it fires",
        "param_weight": "Weight",
    },
    "sv": {
        "rule_same_customer": "Vännen är ambassadören (samma kund-id)",
        "rule_same_email": "Samma e-post som ambassadören",
        "rule_similar_email": "En e-post nästan som ambassadörens",
        "rule_same_ip_and_user_agent": "Samma nätverk och webbläsare som ambassadören",
        "rule_same_ip": "Samma IP-adress som ambassadören",
        "rule_same_device": "Samma enhet som ambassadören",
        "rule_same_payment": "Samma kort eller betalning som ambassadören",
        "rule_same_address": "Samma leveransadress som ambassadören",
        "rule_disposable_email": "En engångsadress för e-post",
        "rule_advocate_velocity": "Ambassadören rekommenderar väldigt snabbt",
        "rule_ip_velocity": "Många beställningar från en adress",
        "rule_existing_customer": "Vännen var redan kund",
        "rule_blocklist": "På spärrlistan",
        "rule_deal_site_referrer": "Kom från en kupong- eller rabattsajt",
        "rule_reciprocal_referral": "Två personer som rekommenderar varandra",
        "rule_order_too_soon": "Beställde för snart efter klicket",
        "rule_rejected_referrals": "En ambassadör med avvisade rekommendationer",
        "param_max_distance": "Högst så många bokstäver ifrån",
        "param_min_local_length": "Bara adresser minst så långa före @",
        "param_extra_domains": "Räkna också som engångsadress (domäner)",
        "param_allowed_domains": "Räkna aldrig som engångsadress (domäner)",
        "param_max_per_hour": "Flest rekommendationer på en timme",
        "param_max_per_day": "Flest på ett dygn",
        "param_emails": "E-postadresser (* som jokertecken)",
        "param_email_domains": "E-postdomäner",
        "param_ips": "IP-adresser eller nät (CIDR)",
        "param_customer_ids": "Kund-id",
        "param_referring_domains": "Hänvisande webbplatser",
        "param_domains": "Webbplatser (domäner)",
        "param_min_seconds": "Sekunder från klick till beställning, minst",
        "param_max_rejected": "Tillåtna avvisade rekommendationer",
        "param_window_days": "Räknat över så många dagar",
        "param_suspend_codes": "Stäng också av ambassadörens koder",
        "param_enabled": "På",
        "param_action": "När den slår till",
        "param_weight": "Vikt",
    },
}
for _locale, _words in RULE_WORDS.items():
    WORDS[_locale].update(_words)

# --- the form's values: what a person sees and typed, as lists of strings -----------------

Values = dict[str, list[str]]


def _one(values: Values, key: str) -> str:
    found = values.get(key) or [""]
    return found[0].strip()


def _form_values(form: Any) -> Values:
    return {key: [str(v) for v in form.getall(key)] for key in form}


def _percent_text(basis_points: int) -> str:
    return f"{(Decimal(basis_points) / 100).normalize():f}"  # 1000 -> "10", 1250 -> "12.5"


def _rule_values(values: Values, prefix: str, rule: RewardRule | None) -> None:
    values[f"{prefix}.kind"] = [rule.kind if rule else ""]
    values[f"{prefix}.basis"] = ["percent" if rule and rule.basis_points else "amounts"]
    values[f"{prefix}.percent"] = [
        _percent_text(rule.basis_points) if rule and rule.basis_points else ""
    ]
    values[f"{prefix}.points"] = [str(rule.points) if rule and rule.points else ""]
    amounts = (rule.amounts or {}) if rule else {}
    values[f"{prefix}.currency"] = list(amounts)
    values[f"{prefix}.amount"] = [money.to_decimal_string(a, c) for c, a in amounts.items()]


def program_values(program: Program) -> Values:
    values: Values = {
        name: ["" if getattr(program, name) is None else str(getattr(program, name))]
        for name in PLAIN_FIELDS
    }
    values["stories_auto_publish"] = ["on"] if program.stories_auto_publish else []
    _rule_values(values, "advocate", program.rewards.advocate)
    _rule_values(values, "friend", program.rewards.friend)
    for j, tier in enumerate(program.rewards.tiers):
        values[f"tier{j}.from"] = [str(tier.from_referral)]
        _rule_values(values, f"tier{j}", tier.advocate)
    return values


@dataclass
class RewardForm:
    """One reward's part of the form, from its values (with one blank currency line more)."""

    prefix: str
    kind: str
    basis: str
    percent: str
    points: str
    lines: list[tuple[str, str]]


def reward_form(values: Values, prefix: str) -> RewardForm:
    currencies = values.get(f"{prefix}.currency", [])
    amounts = values.get(f"{prefix}.amount", [])
    lines = [(c, a) for c, a in zip(currencies, amounts + [""] * len(currencies), strict=False)]
    lines = [(c, a) for c, a in lines if c.strip() or a.strip()] + [("", "")]
    return RewardForm(
        prefix=prefix,
        kind=_one(values, f"{prefix}.kind"),
        basis=_one(values, f"{prefix}.basis") or "amounts",
        percent=_one(values, f"{prefix}.percent"),
        points=_one(values, f"{prefix}.points"),
        lines=lines,
    )


@dataclass
class TierForm:
    prefix: str  # tier{j}: the names of its fields
    start: str  # from which referral it pays
    reward: RewardForm
    removed: bool = False
    new: bool = False  # the blank one to add a tier with


_TIER = re.compile(r"^tier(\d+)\.from$")


def tier_forms(values: Values) -> list[TierForm]:
    """The tiers in the form (a blank one left blank is dropped), and a blank one to add."""
    numbers = sorted(int(m.group(1)) for key in values if (m := _TIER.match(key)))
    tiers = []
    for j in numbers:
        prefix = f"tier{j}"
        start, kind = _one(values, f"{prefix}.from"), _one(values, f"{prefix}.kind")
        if start or kind:
            removed = bool(values.get(f"{prefix}.remove"))
            tiers.append(TierForm(prefix, start, reward_form(values, prefix), removed))
    prefix = f"tier{numbers[-1] + 1 if numbers else 0}"
    tiers.append(TierForm(prefix, "", reward_form({}, prefix), new=True))
    return tiers


# --- reading the form into the service's types, each problem in words --------------------


class Problems:
    """What the form got wrong, per field, in the reader's language."""

    def __init__(self, t) -> None:
        self.t = t
        self.by_field: dict[str, list[str]] = {}

    def add(self, where: str, key: str, **values: Any) -> None:
        self.by_field.setdefault(where, []).append(self.t(key, **values))

    def said(self, where: str, text: str) -> None:
        self.by_field.setdefault(where, []).append(text)

    def __bool__(self) -> bool:
        return bool(self.by_field)


_BOUND = re.compile(r"Expected `(?:int|array|str|object)[^`]*` (?:of length )?([<>]=) (\d+)")


def schema_problem(message: str) -> tuple[str, dict[str, Any]]:
    """A msgspec validation message as a word key and its values."""
    bound = _BOUND.search(message)
    if bound:
        op, n = bound.groups()
        if "length" in message:
            return ("too_long", {"n": n}) if op == "<=" else ("required", {})
        return ("at_least" if op == ">=" else "at_most"), {"n": n}
    if "got `str`" in message or "got `float`" in message:
        return "whole_number", {}
    if "regex" in message:
        return "not_valid", {}
    return "not_valid", {}


def _checked(problems: Problems, where: str, value: Any, kind: Any) -> Any:
    """`value` as the service's own type `kind` (its bounds, patterns and checks), or UNSET
    with the problem noted beside `where`."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        key, values = schema_problem(str(exc))
        problems.add(where, "not_a_colour" if where in COLOURS else key, **values)
    except InvalidInput as exc:  # a check the struct makes after its schema (a policy's)
        problems.said(where, exc.detail)
    return msgspec.UNSET


def _whole(problems: Problems, where: str, text: str) -> int | None:
    if not text:
        problems.add(where, "required")
        return None
    try:
        return int(text)
    except ValueError:
        problems.add(where, "whole_number")
        return None


def _minor_units(text: str, currency: str) -> int | None:
    try:
        value = Decimal(text.replace(" ", "").replace("\u00a0", "").replace(",", "."))
    except InvalidOperation:
        return None
    minor = value * (10 ** money.exponent(currency))
    if not value.is_finite() or minor != minor.to_integral_value() or minor < 0:
        return None
    return int(minor)


def read_rule(problems: Problems, values: Values, prefix: str) -> RewardRule | None:
    form = reward_form(values, prefix)
    if not form.kind:
        return None
    rule: dict[str, Any] = {"kind": form.kind}
    if form.kind == "points":
        rule["points"] = _whole(problems, prefix, form.points)
    elif form.basis == "percent":
        try:
            share = Decimal(form.percent.replace(",", ".")) * 100
            ok = share.is_finite() and share == share.to_integral_value()
        except InvalidOperation:
            ok = False
        if not ok:
            problems.add(prefix, "not_a_percent")
            return None
        rule["basis_points"] = int(share)
    else:
        amounts: dict[str, int] = {}
        for currency, amount in form.lines:
            currency, amount = currency.strip().upper(), amount.strip()
            if not currency and not amount:
                continue
            if not currency:
                problems.add(prefix, "currency_needed", amount=amount)
            elif not money.is_currency(currency):
                problems.add(prefix, "unknown_currency", currency=currency)
            elif not amount:
                problems.add(prefix, "amount_needed", currency=currency)
            elif currency in amounts:
                problems.add(prefix, "currency_twice", currency=currency)
            elif (minor := _minor_units(amount, currency)) is None:
                problems.add(prefix, "not_an_amount", amount=amount, currency=currency)
            else:
                amounts[currency] = minor
        if not amounts and prefix not in problems.by_field:
            problems.add(prefix, "an_amount_needed")
        rule["amounts"] = amounts
    if prefix in problems.by_field:
        return None
    checked = _checked(problems, prefix, rule, RewardRule)
    return None if checked is msgspec.UNSET else checked


def read_program(values: Values, program: Program, t) -> tuple[ProgramUpdate | None, Problems]:
    """The form as a `ProgramUpdate` (rewards beyond the form's kept as they are), or the
    problems, each beside its field."""
    problems = Problems(t)
    changes: dict[str, Any] = {}
    for name in PLAIN_FIELDS:
        text = _one(values, name)
        value: Any = text
        if name == "status" and text == program.status:
            continue  # unchanged (an ended program's status is not one the form may set)
        if name in WHOLE_NUMBERS:
            value = _whole(problems, name, text)
            if value is None:
                continue
        elif name == "fallback_url" and not text:
            value = None
        elif name in COLOURS:
            value = text.lower()
        checked = _checked(problems, name, {name: value}, ProgramUpdate)
        changes[name] = getattr(checked, name, msgspec.UNSET)
        if name in URLS and value and name not in problems.by_field:
            try:  # the service's own check, here so every problem shows at once
                programs.check_url(name, value)
            except InvalidInput:
                problems.add(name, "not_an_address")
    changes["stories_auto_publish"] = bool(values.get("stories_auto_publish"))
    sides = {side: read_rule(problems, values, side) for side in ("advocate", "friend")}
    tiers: list[Tier] = []
    for form in tier_forms(values)[:-1]:
        prefix, start = form.prefix, form.start
        if form.removed:
            continue
        if not form.reward.kind:
            problems.add(prefix, "choose_reward")
            continue
        n = _whole(problems, prefix, start)
        reward = read_rule(problems, values, prefix)
        if n is None or reward is None:
            continue
        if any(tier.from_referral == n for tier in tiers):
            problems.add(prefix, "tier_twice", n=n)
            continue
        tier = _checked(problems, prefix, {"from_referral": n, "advocate": reward}, Tier)
        if tier is not msgspec.UNSET:
            tiers.append(tier)
    if problems:
        return None, problems
    rewards = msgspec.structs.replace(
        program.rewards, advocate=sides["advocate"], friend=sides["friend"], tiers=tiers
    )
    return ProgramUpdate(**changes, rewards=rewards), problems


def service_problem(problems: Problems, exc: InvalidInput, values: Values) -> None:
    """A refusal of `programs.update`, beside the field it names."""
    detail = exc.detail
    where = exc.extra.get("field") or ""
    if exc.code == "invalid_url" and where:
        problems.add(where, "not_an_address")
        return
    match = re.match(r"rewards\.(advocate|friend|tiers\[(\d+)\])", detail)
    if match:
        where = match.group(1)
        if match.group(2):
            named = [tier.prefix for tier in tier_forms(values) if tier.start == match.group(2)]
            where = named[0] if named else "tiers"
    currency = re.search(r"unknown currency (\w+)", detail)
    if currency:
        problems.add(where or "rewards", "unknown_currency", currency=currency.group(1))
    else:
        problems.said(where or "rewards", detail)


# --- the fraud policy's form ---------------------------------------------------------------


def policy_values(policy: FraudPolicy) -> Values:
    stored = dump(policy)
    values: Values = {
        "review_score": [str(stored["review_score"])],
        "block_score": [str(stored["block_score"])],
    }
    for rule in RULE_NAMES:
        for param, value in stored[rule].items():
            key = f"{rule}.{param}"
            if isinstance(value, bool):
                values[key] = ["on"] if value else []
            elif isinstance(value, list):
                values[key] = ["\n".join(value)]
            else:
                values[key] = [str(value)]
    return values


@dataclass
class Param:
    key: str
    name: str
    kind: str  # int | bool | list
    value: str
    checked: bool


@dataclass
class RuleForm:
    name: str
    enabled: bool
    action: str
    weight: str
    params: list[Param] = field(default_factory=list)


def _param_kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "list" if isinstance(value, list) else "int"


def rule_forms(values: Values) -> list[RuleForm]:
    defaults = dump(DEFAULT_POLICY)
    forms = []
    for rule in RULE_NAMES:
        params = [
            Param(
                key=f"{rule}.{param}",
                name=param,
                kind=_param_kind(default),
                value=(values.get(f"{rule}.{param}") or [""])[0],
                checked=bool(values.get(f"{rule}.{param}")),
            )
            for param, default in defaults[rule].items()
            if param not in ("enabled", "action", "weight")
        ]
        forms.append(
            RuleForm(
                name=rule,
                enabled=bool(values.get(f"{rule}.enabled")),
                action=_one(values, f"{rule}.action"),
                weight=_one(values, f"{rule}.weight"),
                params=params,
            )
        )
    return forms


def read_policy(values: Values, t) -> tuple[FraudPolicy | None, Problems]:
    """The form as a candidate policy, each rule checked by its own type."""
    problems = Problems(t)
    defaults = dump(DEFAULT_POLICY)
    candidate: dict[str, Any] = {}
    for score in ("review_score", "block_score"):
        n = _whole(problems, score, _one(values, score))
        if n is not None:
            candidate[score] = _checked(problems, score, n, Score)
    for rule in RULE_NAMES:
        given: dict[str, Any] = {}
        for param, default in defaults[rule].items():
            key = f"{rule}.{param}"
            kind = _param_kind(default)
            if kind == "bool":
                given[param] = bool(values.get(key))
            elif kind == "list":
                text = (values.get(key) or [""])[0]
                given[param] = [line.strip() for line in text.splitlines() if line.strip()]
            elif param == "action":
                given[param] = _one(values, key)
            else:
                n = _whole(problems, rule, _one(values, key))
                if n is not None:
                    given[param] = n
        _checked(problems, rule, given, type(getattr(DEFAULT_POLICY, rule)))
        candidate[rule] = given
    if problems:
        return None, problems
    try:
        return msgspec.convert(candidate, FraudPolicy), problems
    except InvalidInput as exc:
        problems.said("block_score", exc.detail)
        return None, problems


def policy_changes(current: FraudPolicy, candidate: FraudPolicy, t) -> list[tuple[str, str, str]]:
    """(setting, now, would be) for each setting the candidate changes, in words."""

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return t("on_off") if value else t("off")
        if isinstance(value, list):
            return ", ".join(value) if value else t("empty_list")
        if value in ACTIONS:
            return t(f"action_{value}")
        return str(value)

    now, then = dump(current), dump(candidate)
    rows = []
    for score in ("review_score", "block_score"):
        if now[score] != then[score]:
            rows.append((t(score), shown(now[score]), shown(then[score])))
    for rule in RULE_NAMES:
        for param, value in then[rule].items():
            before = now[rule].get(param)
            if before != value:
                label = f"{t('rule_' + rule)}: {t('param_' + param).lower()}"
                rows.append((label, shown(before), shown(value)))
    return rows


CHANGEABLE = (*PLAIN_FIELDS, "stories_auto_publish", "advocate", "friend", "tiers")


def changed(program: Program, update: ProgramUpdate) -> list[str]:
    """The settings `update` changes, by their form names (for the notice after saving)."""
    names = [
        n
        for n in (*PLAIN_FIELDS, "stories_auto_publish")
        if getattr(update, n) not in (msgspec.UNSET, getattr(program, n))
    ]
    rewards = update.rewards if isinstance(update.rewards, type(program.rewards)) else None
    if rewards is not None:
        names += [
            n
            for n in ("advocate", "friend", "tiers")
            if getattr(rewards, n) != getattr(program.rewards, n)
        ]
    return names


def _label(t, where: str) -> str:
    if where.startswith("tier") and where[4:].isdigit():
        return t("tier_n", n=int(where[4:]) + 1)
    return t(f"rule_{where}") if where in RULE_NAMES else t(where)


def _summary(t, problems: Problems | None) -> list[tuple[str, str, str]]:
    """(field id, its label, what is wrong) for the box above a refused form."""
    if not problems:
        return []
    return [(where, _label(t, where), "; ".join(said)) for where, said in problems.by_field.items()]


def reward_said(rule: RewardRule | None, t, fmt: Formats) -> str:
    """A reward in a few words: "Cash 10,00 EUR", "Coupon 10 %", "100 points"."""
    if rule is None:
        return t("no_reward")
    kind = t(f"kind_{rule.kind}")
    if rule.points:
        return f"{fmt.number(rule.points)} {kind.lower()}"
    if rule.basis_points:
        return (
            f"{kind} {fmt.percent(rule.basis_points / 10_000, 1 if rule.basis_points % 100 else 0)}"
        )
    return f"{kind} " + ", ".join(fmt.money(a, c) for c, a in (rule.amounts or {}).items())


# --- handlers ---------------------------------------------------------------------------


@get("/settings", include_in_schema=False)
async def settings_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    after: FromQuery[str | None] = None,
) -> Response:
    locale = locale_of(request)
    t = translator(locale, WORDS)
    listing = ListQuery(limit=PAGE_SIZE, starting_after=after or None)
    listed = await programs.list_programs(
        conn,
        runtime=runtime,
        caller=session.caller,
        status=None,
        cursor=listing.cursor(runtime.ids, "program"),
    )
    return page(
        request,
        "settings.html",
        session=session,
        section="settings",
        catalogue=WORDS,
        programs=listed.data,
        reward_said=lambda rule: reward_said(rule, t, Formats(locale)),
        next_after=listed.data[-1].id if listed.data and listed.has_more else None,
    )


def _form_page(
    request: Request,
    name: str,
    session,
    program: Program,
    shown: Values,
    problems: Problems | None,
    status: int,
    **context: Any,
) -> Response:
    """A program's form page: what it shows (`shown`: as typed, or as stored) and its problems."""
    t = translator(locale_of(request), WORDS)
    return page(
        request,
        name,
        session=session,
        section="settings",
        catalogue=WORDS,
        status=status,
        program=program,
        one=lambda key: _one(shown, key),
        problems=problems.by_field if problems else {},
        summary_rows=_summary(t, problems),
        colour=program.brand_colour,
        **context,
    )


def _program_page(
    request: Request,
    session,
    program: Program,
    values: Values,
    problems: Problems | None = None,
    notice: str = "",
    status: int = 200,
    problem: str = "",
    edited: str = "",
) -> Response:
    """The form carries when the program it shows was last saved (`edited`, else `program`'s
    own), so a save over a newer one is refused."""
    return _form_page(
        request,
        "settings_program.html",
        session,
        program,
        values,
        problems,
        status,
        values=values,
        rewards={side: reward_form(values, side) for side in ("advocate", "friend")},
        tiers=tier_forms(values),
        notice=notice,
        problem=problem,
        edited=edited or program.updated_at.isoformat(),
        kinds=KINDS,
        statuses=("ended",) if program.status == "ended" else STATUSES,
    )


@get("/settings/{program_id:str}", include_in_schema=False)
async def program_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    program_id: FromPath[str],
    saved: FromQuery[str | None] = None,
    lifecycle: FromQuery[str | None] = None,
) -> Response:
    program = await _program(conn, runtime, session, program_id)
    t = translator(locale_of(request), WORDS)
    notice = ""
    if saved is not None:
        changed = [t(f"changed_{name}") for name in saved.split(",") if name in CHANGEABLE]
        notice = (
            t("saved_program", actor=session.actor, changed=", ".join(changed))
            if changed
            else t("saved_nothing", actor=session.actor)
        )
    elif lifecycle in LIFECYCLE_NOTICES:
        notice = t(f"lifecycle_{lifecycle}", actor=session.actor)
    return _program_page(request, session, program, program_values(program), notice=notice)


LIFECYCLE_ACTIONS = ("pause", "resume", "end")
LIFECYCLE_NOTICES = (
    *LIFECYCLE_ACTIONS,
    "program_ended",
    "invalid_program_transition",
    "confirm_end",
)


@post("/settings/{program_id:str}/lifecycle", include_in_schema=False, status_code=303)
async def change_lifecycle(
    conn: Conn, runtime: RuntimeDep, session: SessionDep, form: FormDep, program_id: FromPath[str]
) -> Response:
    """Pause, resume or end the program (`programs.change_state`, the person as actor)."""
    action = form.get("action")
    url = f"/console/settings/{program_id}"
    if action not in LIFECYCLE_ACTIONS:
        return back_to(url)
    if action == "end" and form.get("confirm") != "end":  # for good: asked twice
        return back_to(url, lifecycle="confirm_end")
    try:
        await programs.change_state(
            conn,
            runtime=runtime,
            caller=session.caller,
            program_id=program_id,
            action=action,
            data=ProgramAction(actor=session.actor),
        )
    except Conflict as exc:
        return back_to(url, lifecycle=exc.code)
    return back_to(url, lifecycle=action)


@post("/settings/{program_id:str}", include_in_schema=False)
async def save_program(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    form: FormDep,
    program_id: FromPath[str],
) -> Response:
    """Saves the form if the program is as it was when the form was opened (its `edited`
    stamp); saved by someone meanwhile, the form comes back with its values and what differs."""
    program = await _program(conn, runtime, session, program_id)
    locale = locale_of(request)
    t = translator(locale, WORDS)
    values = _form_values(form)
    update, problems = read_program(values, program, t)
    if update is not None:
        try:
            await programs.update(
                conn,
                runtime=runtime,
                caller=session.caller,
                program_id=program_id,
                data=update,
                actor=session.actor,
                expected_updated_at=_edited(form.get("edited")),
            )
        except InvalidInput as exc:
            service_problem(problems, exc, values)
        except Conflict as exc:
            if exc.code != "program_changed":
                raise
            differs = [t(f"changed_{name}") for name in changed(program, update)]
            when = Formats(locale).moment(program.updated_at)
            problem = (
                t("program_moved", when=when, fields=", ".join(differs))
                if differs
                else t("program_moved_same", when=when)
            )
            return _program_page(request, session, program, values, problem=problem, status=409)
        else:
            return back_to(
                f"/console/settings/{program_id}", saved=",".join(changed(program, update))
            )
    # Still the stamp the form was opened with: a fix-and-save is checked against it too.
    edited = str(form.get("edited") or "")[:40]
    return _program_page(request, session, program, values, problems, status=422, edited=edited)


def _edited(text: Any) -> datetime:
    """When the program the form was opened on was last saved; a form without a readable
    stamp counts as opened on an older program than any (so it is refused, not applied)."""
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _fraud_page(
    request: Request,
    session,
    program: Program,
    document: PolicyDocument,
    values: Values,
    *,
    days: int,
    problems: Problems | None = None,
    status: int = 200,
    **said: Any,
) -> Response:
    """`said`: a `notice`, a `problem` or a `preview` to show above the form."""
    return _form_page(
        request,
        "settings_fraud.html",
        session,
        program,
        values,
        problems,
        status,
        document=document,
        rules=rule_forms(values),
        notice=said.get("notice", ""),
        problem=said.get("problem", ""),
        preview=said.get("preview"),
        days=days,
        day_choices=BACKTEST_DAYS,
        actions=ACTIONS,
    )


async def _program(conn, runtime, session, program_id: str) -> Program:
    """The session's merchant's program in the session's mode (else a 404 page)."""
    return await programs.get(conn, runtime=runtime, caller=session.caller, program_id=program_id)


def _days(text: str | None) -> int:
    return int(text) if text and text.isdigit() and int(text) in BACKTEST_DAYS else 90


@get("/settings/{program_id:str}/fraud", include_in_schema=False)
async def fraud_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    program_id: FromPath[str],
    saved: FromQuery[str | None] = None,
) -> Response:
    program = await _program(conn, runtime, session, program_id)
    document = await fraud.get_policy(
        conn, ids=runtime.ids, merchant_id=session.caller.merchant_id, program_id=program_id
    )
    t = translator(locale_of(request), WORDS)
    notice = t("saved_policy", actor=session.actor, version=saved) if saved else ""
    values = policy_values(document.policy)
    return _fraud_page(request, session, program, document, values, days=90, notice=notice)


def _preview(result: Backtest, current: FraudPolicy, candidate: FraudPolicy, t, document):
    return {
        "result": result,
        "changes": policy_changes(current, candidate, t),
        "rules": {
            rule for rule in RULE_NAMES if getattr(current, rule) != getattr(candidate, rule)
        },
        "policy": msgspec.json.encode(dump(candidate)).decode(),
        "version": document.version,
    }


@post("/settings/{program_id:str}/fraud/preview", include_in_schema=False)
async def preview_policy(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    form: FormDep,
    program_id: FromPath[str],
) -> Response:
    """The backtest of the policy in the form (writes nothing), and a form to save exactly it."""
    program = await _program(conn, runtime, session, program_id)
    document = await fraud.get_policy(
        conn, ids=runtime.ids, merchant_id=session.caller.merchant_id, program_id=program_id
    )
    t = translator(locale_of(request), WORDS)
    values = _form_values(form)
    days = _days(form.get("days"))
    candidate, problems = read_policy(values, t)
    if candidate is None:
        return _fraud_page(
            request, session, program, document, values, days=days, problems=problems, status=422
        )
    now = datetime.now(UTC)
    result = await fraud.backtest(
        conn,
        runtime=runtime,
        merchant_id=session.caller.merchant_id,
        program_id=program_id,
        request=BacktestRequest(
            policy=candidate,
            created_from=now - timedelta(days=days),
            created_before=now,
            samples=SAMPLES,
        ),
    )
    preview = _preview(result, document.policy, candidate, t, document)
    return _fraud_page(request, session, program, document, values, days=days, preview=preview)


@post("/settings/{program_id:str}/fraud", include_in_schema=False)
async def save_policy(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    form: FormDep,
    program_id: FromPath[str],
) -> Response:
    """Saves the previewed policy, carried in the form, if the policy is still at the version
    it was previewed against."""
    t = translator(locale_of(request), WORDS)
    try:
        candidate = msgspec.json.decode(form.get("policy") or "", type=FraudPolicy)
        version = int(form.get("version") or "")
    except (msgspec.DecodeError, msgspec.ValidationError, InvalidInput, ValueError):
        raise InvalidInput(t("changed_policy_unreadable"), code="invalid_fraud_policy") from None
    try:
        saved = await fraud.put_policy(
            conn,
            ids=runtime.ids,
            caller=session.caller,
            program_id=program_id,
            policy=candidate,
            actor=session.actor,
            expected_version=version,
        )
    except Conflict as exc:
        if exc.code != "fraud_policy_version_changed":
            raise
        program = await _program(conn, runtime, session, program_id)
        document = await fraud.get_policy(
            conn, ids=runtime.ids, merchant_id=session.caller.merchant_id, program_id=program_id
        )
        return _fraud_page(
            request,
            session,
            program,
            document,
            policy_values(candidate),
            days=_days(form.get("days")),
            problem=t("policy_moved", version=document.version),
            status=409,
        )
    return back_to(f"/console/settings/{program_id}/fraud", saved=str(saved.version))
