"""The click token the redirect hands to the shop.

The shop stores it first-party and sends it back with the signup or order; attribution
reads the token, never a click row, so a click still in the writer's buffer can never lose
an order. HMAC-SHA256 (truncated to 128 bits) over a msgpack payload, base64url.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from hashlib import sha256

import msgspec


class ClickToken(msgspec.Struct, array_like=True, frozen=True):
    code: str
    click_id: str  # uuid hex
    channel: str
    visitor_id: str
    issued_at: int  # unix seconds
    story_id: str | None = None  # public story id
    referer_host: str | None = None  # where the link was clicked (fraud: deal-site referrers)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ClickToken)
_MAC_BYTES = 16
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class HmacSha256:
    """HMAC-SHA256 under one fixed key, for the redirect's hot path.

    The same digest as `hmac.digest(key, msg, "sha256")`, at under half the cost: the
    key's inner and outer pads are hashed once here, and each message only copies them.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the SHA-256 block size: longer keys are hashed first (RFC 2104)
            key = sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = sha256(bytes(b ^ 0x36 for b in key))
        self._outer = sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class ClickTokenSigner:
    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._mac = HmacSha256(self._key)

    def sign(self, token: ClickToken) -> str:
        body = _encoder.encode(token)
        blob = body + self._mac.digest(body)[:_MAC_BYTES]
        # base64url without padding (what urlsafe_b64encode(...).rstrip(b"=") gives).
        return binascii.b2a_base64(blob, newline=False).translate(_URLSAFE).rstrip(b"=").decode()

    def verify(self, raw: str) -> ClickToken | None:
        """The token if it is ours and unaltered, else None (never an exception)."""
        if not raw or len(raw) > 512:
            return None
        try:
            blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (ValueError, TypeError):
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
