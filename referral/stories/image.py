"""The story's share image: a 1200×630 PNG (the size OpenGraph and X cards show large)
with the story text, the friend offer and the shop's colour.

Rendering is the whole cost (tens of milliseconds), so images are cached in process by
their content: the same text, offer and colour give the same bytes and the same ETag.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630
MARGIN = 72
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
_SIZES = (64, 56, 48, 42, 36, 32)
_MAX_TEXT_LINES = 6


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans where the system has it; else Pillow's bundled font (any machine)."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in _FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def ink_for(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """White on dark colours, near-black on light ones (WCAG relative luminance)."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in background)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return (255, 255, 255) if luminance < 0.4 else (17, 17, 17)


def wrap(text: str, fits) -> list[str]:
    """Greedy word wrap: `fits(line)` says whether a line is narrow enough. A word wider
    than a line is cut, so any text ends up within the width."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        while not fits(word) and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and not fits(word[:cut]):
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def etag_for(text: str, byline: str, offer: str, colour: str) -> str:
    digest = hashlib.sha256("\0".join((text, byline, offer, colour)).encode()).hexdigest()
    return f'"{digest[:32]}"'


@functools.lru_cache(maxsize=256)
def render(text: str, byline: str, offer: str, colour: str) -> bytes:
    background = hex_to_rgb(colour)
    ink = ink_for(background)
    image = Image.new("RGB", (WIDTH, HEIGHT), background)
    draw = ImageDraw.Draw(image)
    width = WIDTH - 2 * MARGIN
    quote = f"“{text}”"
    for size in _SIZES:
        font = _font(size, bold=True)
        lines = wrap(quote, lambda line, f=font: draw.textlength(line, font=f) <= width)
        if len(lines) <= _MAX_TEXT_LINES:
            break
    lines = lines[:_MAX_TEXT_LINES]
    y = MARGIN
    for line in lines:
        draw.text((MARGIN, y), line, font=font, fill=ink)
        y += int(size * 1.25)
    small = _font(30)
    draw.text((MARGIN, y + 16), byline, font=small, fill=ink)
    # The offer on a band at the bottom, in the page's inverse colours.
    band_top = HEIGHT - 120
    draw.rectangle((0, band_top, WIDTH, HEIGHT), fill=ink)
    offer_font = _font(40, bold=True)
    offer_line = wrap(offer, lambda line: draw.textlength(line, font=offer_font) <= width)[:1]
    draw.text(
        (MARGIN, band_top + 36),
        offer_line[0] if offer_line else "",
        font=offer_font,
        fill=background,
    )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
