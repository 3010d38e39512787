"""The console's cookie and CSRF tokens: HMACs under the deployment's console key.

The cookie names the merchant (public id) and carries a random session secret; its MAC is
checked before any query, so a cookie made under another deployment's key (or edited) is
refused without touching the database. The CSRF token of a session is an HMAC of its secret
under a label of its own: every form carries it, a cross-site form cannot know it, and it
needs no storage.
"""

from __future__ import annotations

import hmac
import secrets
from hashlib import sha256

from referral.lib import b64url
from referral.lib.keyed_hash import HmacSha256

SECRET_BYTES = 32
_MAC_BYTES = 16


def derive_key(click_token_key: str) -> str:
    """The console key when none is configured: the click token key under a fixed label, so
    a token of one kind can never be passed off as another."""
    return hmac.new(click_token_key.encode(), b"referral console v1", sha256).hexdigest()


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def digest(secret: bytes) -> bytes:
    """What the database keeps of a sign-in token or a session secret."""
    return sha256(secret).digest()


class ConsoleSigner:
    def __init__(self, key: str) -> None:
        self._mac = HmacSha256(key.encode())

    def cookie(self, merchant_public_id: str, secret: bytes) -> str:
        body = f"{merchant_public_id}.{b64url.encode(secret)}"
        return f"{body}.{b64url.encode(self._mac.digest(body.encode())[:_MAC_BYTES])}"

    def read_cookie(self, raw: str | None) -> tuple[str, bytes] | None:
        """(merchant public id, session secret) of a genuine cookie; None otherwise."""
        if not raw or len(raw) > 200:
            return None
        merchant, _, rest = raw.partition(".")
        encoded_secret, _, encoded_mac = rest.partition(".")
        mac = b64url.decode(encoded_mac)
        secret = b64url.decode(encoded_secret)
        if mac is None or secret is None or len(secret) != SECRET_BYTES:
            return None
        expected = self._mac.digest(f"{merchant}.{encoded_secret}".encode())[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            return None
        return merchant, secret

    def csrf(self, secret: bytes) -> str:
        return b64url.encode(self._mac.digest(b"csrf\x00" + secret)[:_MAC_BYTES])

    def csrf_matches(self, secret: bytes, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf(secret), given or "")
