"""Referral codes, pure: generation, normalisation, vanity rules. No I/O.

Generated codes are hashids over the advocate's internal id with a per-deployment salt and
an alphabet without confusable characters (no 0 O 1 I L), upper case only, so lookup is
case-insensitive by construction. Input is normalised before lookup: upper-cased, spaces and
dashes (in any Unicode form) dropped, and folded to a *lookup key* where characters a person
confuses (O/0, I/L/1) become one. Generated codes contain none of those, so their key is
themselves; vanity codes are unique by key, so `ANNA10` and `ANNAIO` cannot both exist.
"""

from __future__ import annotations

import re

from hashids import Hashids

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # 31 characters: no 0 O 1 I L
MIN_LENGTH = 7
VANITY_MIN, VANITY_MAX = 4, 20
# Friend coupons start with this; "1" never appears in generated codes, and vanity codes
# whose lookup key starts with it (F1…, FI…, FL…) are refused, so a coupon is never
# mistaken for a referral code or the other way round.
COUPON_PREFIX = "F1"

# Separators a person types or a phone pastes: spaces (also no-break and zero-width ones,
# which messengers insert), line breaks, underscores and dashes (also the en dash and
# minus sign that "smart punctuation" makes of "-"). None is ever part of a code.
_SEPARATORS = (
    " \t\n\r\v\f_-"
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff"
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
)
_STRIP = str.maketrans("", "", _SEPARATORS)
_FOLD = str.maketrans({"O": "0", "I": "1", "L": "1"})
_VANITY_CHARS = re.compile(r"^[A-Z0-9]+$")

# Words a vanity code may not be: routes, roles and words that would mislead a friend.
RESERVED = frozenset(
    {
        "ADMIN",
        "API",
        "APP",
        "AUTH",
        "CODE",
        "CODES",
        "DEMO",
        "DOCS",
        "FREE",
        "HEALTH",
        "HEALTHZ",
        "HELP",
        "LOGIN",
        "NULL",
        "QR",
        "READYZ",
        "REFERRAL",
        "ROOT",
        "SHOP",
        "STAFF",
        "STORE",
        "SUPPORT",
        "SYSTEM",
        "TEST",
        "UNDEFINED",
        "NONE",
        "STORY",
        "STORIES",
        "PAYOUT",
        "PAYOUTS",
        "REWARD",
        "REWARDS",
        "REFUND",
        "ORDER",
        "ORDERS",
        "COUPON",
    }
)


class VanityCodeError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def normalise(raw: str) -> str:
    """What a person meant to type: upper case, no spaces, dashes or underscores (in any of
    their Unicode forms)."""
    return raw.upper().translate(_STRIP)


def lookup_key(raw: str) -> str:
    """The key a code is stored and found under: normalised, confusables folded."""
    return normalise(raw).translate(_FOLD)


class CodeCodec:
    def __init__(self, salt: str) -> None:
        self._hashids = Hashids(salt=salt, min_length=MIN_LENGTH, alphabet=CODE_ALPHABET)

    def generate(self, advocate_id: int) -> str:
        return self._hashids.encode(advocate_id)

    def decode(self, raw: str) -> int | None:
        """The advocate id inside a generated code, or None when it is not one."""
        key = lookup_key(raw)
        if not key or len(key) > 32:
            return None
        decoded = self._hashids.decode(key)
        if len(decoded) != 1:
            return None
        # hashids decodes some strings that it would never produce; only accept round trips.
        return decoded[0] if self._hashids.encode(decoded[0]) == key else None

    def check_vanity(self, raw: str) -> str:
        """The canonical vanity code, or VanityCodeError saying why it cannot be one."""
        code = normalise(raw)
        if not VANITY_MIN <= len(code) <= VANITY_MAX:
            raise VanityCodeError(
                "vanity_code_length",
                f"a vanity code has {VANITY_MIN} to {VANITY_MAX} letters or digits",
            )
        if not _VANITY_CHARS.match(code):
            raise VanityCodeError(
                "vanity_code_charset", "a vanity code may only use the letters A-Z and digits 0-9"
            )
        if code in RESERVED or lookup_key(code) in _RESERVED_KEYS:
            raise VanityCodeError("vanity_code_reserved", f"{code} is a reserved word")
        if lookup_key(code).startswith(COUPON_PREFIX):
            raise VanityCodeError(
                "vanity_code_reserved",
                f"{code} starts like a friend coupon (F1, FI or FL); choose another",
            )
        if self.decode(code) is not None:
            raise VanityCodeError(
                "vanity_code_ambiguous",
                f"{code} reads as a generated referral code; choose another",
            )
        return code


_RESERVED_KEYS = frozenset(lookup_key(word) for word in RESERVED)
