"""The share-page token: a signed, expiring link to one advocate's own share page.

Whoever holds it sees that advocate's referrals and rewards and may change their contact
preference and publish their stories, so it is an HMAC (truncated to 128 bits, as the click
token) over the advocate's public id and an expiry. Internal ids never appear in it.
"""

from __future__ import annotations

import hmac
import time
from hashlib import sha256
from typing import Literal

import msgspec

from referral.lib import b64url
from referral.lib.keyed_hash import HmacSha256

_MAC_BYTES = 16


class SharePageClaims(msgspec.Struct, array_like=True, frozen=True):
    advocate_id: str  # public id: adv_…
    expires_at: int  # unix seconds


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SharePageClaims)


def derive_key(click_token_key: str) -> str:
    """A key of its own for share-page tokens when none is configured: an HMAC of the click
    token key with a fixed label, so one token kind can never be passed off as the other."""
    return hmac.new(click_token_key.encode(), b"referral share page v1", sha256).hexdigest()


class SharePageSigner:
    def __init__(self, key: str) -> None:
        self._mac = HmacSha256(key.encode())

    def sign(self, advocate_id: str, expires_at: int) -> str:
        body = _encoder.encode(SharePageClaims(advocate_id, expires_at))
        blob = body + self._mac.digest(body)[:_MAC_BYTES]
        return b64url.encode(blob)

    def verify(
        self, raw: str, *, now: float | None = None
    ) -> SharePageClaims | Literal["invalid", "expired"]:
        """The claims of a genuine, unexpired token; else why not (never an exception)."""
        if not raw or len(raw) > 256:
            return "invalid"
        blob = b64url.decode(raw)  # one spelling per token: padding or spare bits refused
        if blob is None:
            return "invalid"
        body, mac = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
        if not body or not hmac.compare_digest(mac, self._mac.digest(body)[:_MAC_BYTES]):
            return "invalid"
        try:
            claims = _decoder.decode(body)
        except msgspec.DecodeError:
            return "invalid"
        if claims.expires_at <= (time.time() if now is None else now):
            return "expired"
        return claims
