"""Unpadded base64url with one spelling per byte string.

A decoder that forgives is an oracle and a cache-key splitter: Python's base64 accepts `=`
padding, ignores characters outside the alphabet and lets the last character carry any
value in its unused low bits, so one token has many spellings. `decode` accepts only the
canonical one: what `encode` gives for the bytes it decodes to.
"""

from __future__ import annotations

import binascii

_URLSAFE = bytes.maketrans(b"+/", b"-_")
_STANDARD = bytes.maketrans(b"-_", b"+/")


def encode(data: bytes) -> str:
    """base64url without padding (what `urlsafe_b64encode(...).rstrip(b"=")` gives)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def decode(text: str) -> bytes | None:
    """The bytes `text` encodes when it is their canonical encoding, else None."""
    if not text.isascii() or "=" in text or "+" in text or "/" in text:
        return None
    raw = text.encode().translate(_STANDARD)
    try:
        data = binascii.a2b_base64(raw + b"=" * (-len(raw) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return data if encode(data) == text else None
