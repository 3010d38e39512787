"""The one email normalisation, shared by attribution, eligibility and fraud checks.

Two addresses that reach the same inbox must compare equal: case never matters; Gmail
ignores dots and `+tags` (and googlemail.com is gmail.com); providers with plus addressing
ignore `+tags`. Other providers keep their local part as typed (lower-cased), because
dots can be significant there.
"""

from __future__ import annotations

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
