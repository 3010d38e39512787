"""QR codes for our own links, rendered once per (code, palette, size, format) and cached.

Rendering is the whole cost (~4 ms); serving a cached image is a dict lookup. The ETag is a
hash of the bytes, so a palette change yields a new tag.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import OrderedDict
from typing import Literal

import qrcode
import qrcode.image.svg
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M

QrFormat = Literal["png", "svg"]
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 64, 1024, 300
_BORDER = 4
_SVG_SIZE = re.compile(r'width="[^"]+" height="[^"]+"')


class RenderedQr:
    __slots__ = ("body", "etag", "media_type")

    def __init__(self, body: bytes, media_type: str) -> None:
        self.body = body
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class QrTooSmall(ValueError):
    """`size` has fewer pixels than the symbol has modules (with its quiet zone)."""


def render(url: str, fmt: QrFormat, size: int, foreground: str, background: str) -> RenderedQr:
    """The QR code of `url`, exactly `size` pixels wide and high.

    The PNG draws each module as a whole number of pixels (scanners want crisp edges) and
    gives the pixels left over to the quiet zone, split evenly around the symbol; the SVG
    is drawn in module units (its viewBox) and scaled by the browser to `size`."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=_BORDER, box_size=1)
    qr.add_data(url)
    qr.make(fit=True)
    modules = qr.modules_count + 2 * _BORDER
    if size < modules:
        raise QrTooSmall(f"a QR code of this link needs at least {modules} pixels")
    if fmt == "svg":
        qr.box_size = 10  # the SVG factories draw box_size / 10 units a module: one each
        image = qr.make_image(image_factory=qrcode.image.svg.SvgPathImage)
        body = image.to_string(encoding="unicode")
        # The path factory paints black on transparent: apply the program's palette.
        body = body.replace('fill="#000000"', f'fill="{foreground}"', 1)
        body = _SVG_SIZE.sub(
            f'width="{size}" height="{size}" shape-rendering="crispEdges"', body, count=1
        )
        body = body.replace(
            "<path", f'<rect width="100%" height="100%" fill="{background}"/><path', 1
        )
        return RenderedQr(body.encode(), "image/svg+xml")
    qr.box_size = size // modules
    symbol = qr.make_image(fill_color=foreground, back_color=background).get_image()
    if symbol.size != (size, size):
        canvas = Image.new(symbol.mode, (size, size), background)
        offset = (size - symbol.width) // 2
        canvas.paste(symbol, (offset, offset))
        symbol = canvas
    buffer = io.BytesIO()
    symbol.save(buffer, format="PNG", optimize=True)
    return RenderedQr(buffer.getvalue(), "image/png")


class QrCache:
    def __init__(self, max_entries: int = 2048) -> None:
        self._entries: OrderedDict[tuple, RenderedQr] = OrderedDict()
        self._max = max_entries

    def get(
        self, url: str, fmt: QrFormat, size: int, foreground: str, background: str
    ) -> RenderedQr:
        key = (url, fmt, size, foreground, background)
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        rendered = render(url, fmt, size, foreground, background)
        self._entries[key] = rendered
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return rendered
