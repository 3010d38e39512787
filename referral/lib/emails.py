"""The one email normalisation, shared by attribution, eligibility and fraud checks.

Two addresses that reach the same inbox must compare equal: case never matters; Gmail
ignores dots and `+tags` (and googlemail.com is gmail.com); providers with plus addressing
ignore `+tags`. Other providers keep their local part as typed (lower-cased), because
dots can be significant there.
"""

from __future__ import annotations

import re

_GMAIL = frozenset({"gmail.com", "googlemail.com"})
_PLUS_ADDRESSING = frozenset(
    {
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "fastmail.fm",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
        "hey.com",
        "duck.com",
        "gmx.com",
        "gmx.de",
        "mail.com",
    }
)


def normalise_email(raw: str | None) -> str | None:
    """The canonical form, or None for an empty or malformed address."""
    if not raw:
        return None
    local, at, domain = raw.strip().lower().rpartition("@")
    if not at or not local or not domain or " " in raw.strip():
        return None
    domain = domain.rstrip(".")
    if domain in _GMAIL:
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    elif domain in _PLUS_ADDRESSING:
        local = local.split("+", 1)[0]
    if not local:
        return None
    return f"{local}@{domain}"


# --- payout emails ----------------------------------------------------------------------
# An address money is sent to is validated strictly, never rewritten: a dot-atom local part
# (RFC 5322) that starts with a letter, digit or underscore (so no spreadsheet reads it as a
# formula and no export has to escape it), at most 64 characters; a domain of at least two
# LDH labels ending in an alphabetic or punycode top-level label; at most 254 characters.
# The same expression is the SQL function `payout_email_problem()` (sql/0008), which the
# exports use; tests/payouts check the two agree.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LOCAL = f"[A-Za-z0-9_][{_ATEXT}]*([.][{_ATEXT}]+)*"
_TOP = "([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
PAYOUT_EMAIL_REGEX = f"^{_LOCAL}@({_LABEL}[.])+{_TOP}$"
_PAYOUT_EMAIL = re.compile(PAYOUT_EMAIL_REGEX)


def payout_email_problem(value: str | None) -> str | None:
    """Why money cannot be sent to this address (`no_email`, `invalid_email`), or None."""
    if not value:
        return "no_email"
    if (
        len(value) > 254
        or len(value.partition("@")[0]) > 64
        or _PAYOUT_EMAIL.fullmatch(value) is None
    ):
        return "invalid_email"
    return None
