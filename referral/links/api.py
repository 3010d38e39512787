"""Public link handlers: the `/r/{code}` redirect and the QR images.

The redirect is the hottest path: no dependency injection, no per-request log line, one
cached lookup, a buffered click.
"""

from __future__ import annotations

import html
import re
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from litestar import Request, Response, Router, get, head
from litestar.params import FromPath, FromQuery, QueryParameter

from referral.lib.errors import PUBLIC_ERRORS, InvalidInput, NotFound
from referral.links import qr as qr_images
from referral.links import service
from referral.links.visitors import client_ip, is_bot
from referral.runtime import Runtime

VISITOR_COOKIE = "rv"
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
_COOKIE = re.compile(r"(?:^|;\s*)rv=([^;]*)")
_ONE_YEAR = 365 * 24 * 3600


def _visitor_id(request: Request) -> tuple[str, bool]:
    """(visitor id, is new). A malformed cookie is replaced, never trusted."""
    match = _COOKIE.search(request.headers.get("cookie", ""))
    if match and _VISITOR_ID.match(match.group(1)):
        return match.group(1), False
    return secrets.token_urlsafe(12), True


def _referer_host(request: Request) -> str | None:
    referer = request.headers.get("referer")
    if not referer:
        return None
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        return None
    return host[:100] if host else None


def _story(runtime: Runtime, raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    try:
        return raw, runtime.ids.decode("story", raw)
    except NotFound:
        return None


def _unknown_link_page(status: int) -> Response[str]:
    body = _PAGE.format(
        title="This referral link does not work any more",
        text="The code in this link is unknown or no longer active. "
        "Ask your friend for a new link, or visit the shop directly.",
    )
    return Response(
        body,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "no-store"},
    )


async def _follow(request: Request, code: FromPath[str], ch: str | None, s: str | None) -> Response:
    runtime: Runtime = request.app.state.runtime
    target = await runtime.codes.resolve(code)
    if target is None:
        return _unknown_link_page(404)
    if not target.active:
        if target.fallback_url:
            return Response(
                b"",
                status_code=302,
                headers={"location": target.fallback_url, "cache-control": "no-store"},
            )
        return _unknown_link_page(404)
    visitor_id, new_visitor = _visitor_id(request)
    user_agent = request.headers.get("user-agent", "")
    address = client_ip(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        runtime.settings.trusted_networks,
    )
    token = service.record_click(
        runtime.clicks,
        runtime.signer,
        target,
        channel=service.channel_of(ch),
        visitor_id=visitor_id,
        ip_hashes=runtime.ip_hasher.hashes(address),
        user_agent=user_agent,
        referer_host=_referer_host(request),
        story=_story(runtime, s),
        bot=is_bot(user_agent, request.method),
    )
    headers = {
        "location": service.landing_url_for(target, token),
        "cache-control": "no-store",
        "referrer-policy": "strict-origin-when-cross-origin",
    }
    if new_visitor:
        secure = "; Secure" if runtime.settings.public_base_url.startswith("https") else ""
        headers["set-cookie"] = (
            f"{VISITOR_COOKIE}={visitor_id}; Max-Age={_ONE_YEAR}; Path=/; "
            f"HttpOnly; SameSite=Lax{secure}"
        )
    return Response(b"", status_code=302, headers=headers, media_type="text/plain")


_FOLLOW_DOC = (
    "302 to the program's landing URL with `ref` (the code) and `ref_token` (a signed click "
    "token the shop sends back with the signup or order). Records a click; HEAD requests and "
    "link-preview bots are redirected but flagged and not counted. Channel from `ch`, story "
    "from `s`. An unknown or inactive code gets a friendly page (or the program's fallback URL)."
)


@get(
    "/r/{code:str}",
    operation_id="followReferralLink",
    summary="Follow a referral link",
    tags=["links"],
    description=_FOLLOW_DOC,
)
async def follow_link(
    request: Request,
    code: FromPath[str],
    ch: FromQuery[str | None] = None,
    s: FromQuery[str | None] = None,
) -> Response:
    return await _follow(request, code, ch, s)


@head(
    "/r/{code:str}",
    operation_id="headReferralLink",
    summary="Preview a referral link",
    tags=["links"],
    description="Same redirect as GET; the click is flagged, not counted.",
)
async def head_link(
    request: Request,
    code: FromPath[str],
    ch: FromQuery[str | None] = None,
    s: FromQuery[str | None] = None,
) -> Response[None]:
    response = await _follow(request, code, ch, s)
    response.content = None
    return response


QrSize = Annotated[
    int,
    QueryParameter(
        ge=qr_images.MIN_SIZE, le=qr_images.MAX_SIZE, description="Width and height in pixels"
    ),
]


async def _qr(
    request: Request, code: FromPath[str], fmt: qr_images.QrFormat, size: int
) -> Response:
    runtime: Runtime = request.app.state.runtime
    target = await runtime.codes.resolve(code)
    if target is None:
        raise NotFound("no such referral code", code="code_not_found")
    if not target.active:
        raise InvalidInput("this referral code is not active", code="code_inactive")
    url = f"{runtime.settings.public_base_url}/r/{target.code}?ch=qr"
    image = runtime.qr.get(url, fmt, size, target.qr_foreground, target.qr_background)
    headers = {"etag": image.etag, "cache-control": "public, max-age=86400"}
    if image.etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


@get(
    "/r/{code:str}/qr.png",
    operation_id="getQrPng",
    responses=PUBLIC_ERRORS,
    summary="QR code of a link (PNG)",
    tags=["links"],
    media_type="image/png",
)
async def qr_png(
    request: Request, code: FromPath[str], size: QrSize = qr_images.DEFAULT_SIZE
) -> Response:
    return await _qr(request, code, "png", size)


@get(
    "/r/{code:str}/qr.svg",
    operation_id="getQrSvg",
    responses=PUBLIC_ERRORS,
    summary="QR code of a link (SVG)",
    tags=["links"],
    media_type="image/svg+xml",
)
async def qr_svg(
    request: Request, code: FromPath[str], size: QrSize = qr_images.DEFAULT_SIZE
) -> Response:
    return await _qr(request, code, "svg", size)


links_router = Router(path="/", route_handlers=[follow_link, head_link, qr_png, qr_svg])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:15vh auto;padding:0 1rem;
color:#222}}h1{{font-size:1.4rem}}</style></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""


def page(title: str, text_html: str) -> str:
    """A small friendly HTML page; `title` is escaped, `text_html` must already be safe."""
    return _PAGE.format(title=html.escape(title), text=text_html)
