"""The click token the redirect hands to the shop.

The shop stores it first-party and sends it back with the signup or order; attribution
reads the token, never a click row, so a click still in the writer's buffer can never lose
an order. HMAC-SHA256 (truncated to 128 bits) over a msgpack payload, base64url.
"""

from __future__ import annotations

import hmac
from hashlib import sha256

import msgspec

from referral.lib import b64url
from referral.lib.keyed_hash import HmacSha256


class ClickToken(msgspec.Struct, array_like=True, frozen=True):
    code: str
    click_id: str  # uuid hex
    channel: str
    visitor_id: str
    issued_at: int  # unix seconds
    story_id: str | None = None  # public story id
    referer_host: str | None = None  # where the link was clicked (fraud: deal-site referrers)
    # The advocate's variant of the program's running experiment (its public id and the
    # variant's key), so the friend gets the offer the advocate was shown.
    experiment_id: str | None = None
    variant: str | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ClickToken)
_MAC_BYTES = 16


class ClickTokenSigner:
    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._mac = HmacSha256(self._key)

    def sign(self, token: ClickToken) -> str:
        body = _encoder.encode(token)
        blob = body + self._mac.digest(body)[:_MAC_BYTES]
        return b64url.encode(blob)

    def verify(self, raw: str) -> ClickToken | None:
        """The token if it is ours and unaltered, else None (never an exception)."""
        if not raw or len(raw) > 512:
            return None
        blob = b64url.decode(raw)  # one spelling per token: padding or spare bits refused
        if blob is None:
            return None
        body, mac = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
        if len(body) < 1 or not hmac.compare_digest(
            mac, hmac.new(self._key, body, sha256).digest()[:_MAC_BYTES]
        ):
            return None
        try:
            return _decoder.decode(body)
        except msgspec.DecodeError:
            return None
