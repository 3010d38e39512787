"""The widget's pure decisions: the text colour readable on a brand colour, and the
Subresource Integrity hash of the script."""

from __future__ import annotations

import base64
import hashlib
import re

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOUR = "#1a7f37"
LIGHT_TEXT = "#ffffff"
DARK_TEXT = "#000000"


def colour(raw: str | None) -> str:
    """A brand colour as the widget may put it into a stylesheet: `#rrggbb`, lower case;
    anything else is the default green."""
    return raw.lower() if raw and _HEX.match(raw) else DEFAULT_COLOUR


def _luminance(hex_colour: str) -> float:
    """WCAG 2 relative luminance of `#rrggbb`."""

    def channel(byte: int) -> float:
        c = byte / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two `#rrggbb` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(background: str) -> str:
    """White or near-black text, whichever reads better on `background`."""
    light, dark = contrast(background, LIGHT_TEXT), contrast(background, DARK_TEXT)
    return LIGHT_TEXT if light >= dark else DARK_TEXT


def integrity(body: bytes) -> str:
    """The `integrity` attribute value of a script with these bytes (SRI, sha384)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
