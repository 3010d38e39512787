"""What a checkout call says about the device, network, payment and address, as keyed hashes.

Signals are compared for equality only (friend vs advocate), so an HMAC under the
deployment's IP hash key is enough and nothing personal is stored. Normalisation happens
before hashing: two spellings of one address must hash alike.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from referral.lib.errors import InvalidInput
from referral.lib.keyed_hash import HmacSha256

_ABBREVIATIONS = {
    "street": "st",
    "str": "st",
    "strasse": "st",
    "gatan": "g",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "lane": "ln",
    "apartment": "apt",
    "suite": "ste",
    "floor": "fl",
    "number": "no",
}


def parse_ip(raw: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The shop's `ip` field: absent or empty means unknown; anything else must be an IPv4
    or IPv6 address (a 422 naming the field), so a shop sending the wrong value hears of it
    instead of silently losing its fraud signals."""
    if raw is None or not raw.strip():
        return None
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        raise InvalidInput(
            "ip must be an IPv4 or IPv6 address (or null when unknown)", code="invalid_ip"
        ) from None


def normalise_address(
    line1: str, line2: str, city: str, postal_code: str, country: str
) -> str | None:
    """Case, accents, punctuation, spacing and common abbreviations folded; None when there
    is too little to compare (an address without a street line proves nothing)."""
    if not line1.strip():
        return None

    def fold(text: str) -> str:
        text = unicodedata.normalize("NFKD", text.casefold())
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        words = re.sub(r"[^a-z0-9]+", " ", text.replace("ß", "ss")).split()
        return " ".join(_ABBREVIATIONS.get(w, w) for w in words)

    postal = re.sub(r"[^a-z0-9]", "", postal_code.casefold())
    return "|".join((fold(f"{line1} {line2}"), fold(city), postal, country.strip().upper()))


class SignalHasher:
    def __init__(self, key: str) -> None:
        self._mac = HmacSha256(key.encode())

    def _hash(self, kind: str, value: bytes) -> bytes:
        return self._mac.digest(b"signal|" + kind.encode() + b"|" + value)[:16]

    def signals(
        self,
        *,
        ip_hash: bytes | None,
        user_agent: str | None,
        visitor_ids: list[str],
        payment_fingerprint: str | None,
        address: str | None,
    ) -> list[tuple[str, bytes]]:
        """(kind, hash) pairs; `ip` is the IP hash the rest of the service already uses."""
        found: list[tuple[str, bytes]] = []
        if ip_hash is not None:
            found.append(("ip", ip_hash))
            if user_agent and user_agent.strip():
                found.append(("ip_ua", self._hash("ip_ua", ip_hash + user_agent.strip().encode())))
        for visitor_id in dict.fromkeys(v for v in visitor_ids if v):
            found.append(("visitor", self._hash("visitor", visitor_id.encode())))
        if payment_fingerprint and payment_fingerprint.strip():
            found.append(("payment", self._hash("payment", payment_fingerprint.strip().encode())))
        if address:
            found.append(("address", self._hash("address", address.encode())))
        return found
