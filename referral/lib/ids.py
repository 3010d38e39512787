"""Public ids: a type prefix plus an opaque hashids string (`prg_…`, `adv_…`).

Internal bigint keys never leave the service; each prefix has its own salt, so an id of
one kind never decodes as another.
"""

from __future__ import annotations

from hashids import Hashids

from referral.lib.errors import NotFound

PREFIXES = {
    "merchant": "mer",
    "program": "prg",
    "advocate": "adv",
    "referral": "ref",
    "reward": "rwd",
    "payout": "pay",
    "story": "sty",
    "key": "key",
    "event": "evt",
    "payout_line": "pol",
    "order": "ord",
    "audit_entry": "aud",
    "customer_erasure": "era",
    "coupon_pool": "cpl",
    "payee": "pye",
    "import": "imp",
    "experiment": "exp",
    "points_lot": "plt",
    "points_redemption": "prd",
}

_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"


class PublicIds:
    def __init__(self, salt: str) -> None:
        self._codecs = {
            prefix: Hashids(salt=f"{salt}:{prefix}", min_length=10, alphabet=_ALPHABET)
            for prefix in PREFIXES.values()
        }

    def encode(self, kind: str, internal_id: int) -> str:
        prefix = PREFIXES[kind]
        return f"{prefix}_{self._codecs[prefix].encode(internal_id)}"

    def decode(self, kind: str, public_id: str) -> int:
        """The internal id, or NotFound: a malformed id names nothing, like an unknown one."""
        prefix = PREFIXES[kind]
        head, _, body = public_id.partition("_")
        if head == prefix and 0 < len(body) <= 32:
            decoded = self._codecs[prefix].decode(body)
            if len(decoded) == 1:
                return decoded[0]
        raise NotFound(f"no {kind} with id {public_id[:40]!r}", code=f"{kind}_not_found")
