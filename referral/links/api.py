"""Public link handlers: the `/r/{code}` redirect and the QR images.

The redirect is the hottest path. Litestar routes it and documents it (`follow_link`,
`head_link`), but a route middleware answers it as a plain ASGI app, `serve_referral_link`:
no Request or Response objects, no parameter parsing, no signature model — for a redirect
that machinery costs more than the redirect's own work. No dependency injection, no
per-request log line, one cached lookup, a buffered click.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
from binascii import b2a_base64
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from litestar import Request, Response, Router, get, head
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect
from litestar.types import ASGIApp, HTTPScope, Receive, Send

from referral.http.head import answer_head_as_get
from referral.lib import problem_docs
from referral.lib.errors import NotFound
from referral.links import qr as qr_images
from referral.links import service
from referral.links.visitors import client_ip, is_bot
from referral.runtime import Runtime
from referral.web import security

VISITOR_COOKIE = "rv"
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
_COOKIE = re.compile(r"(?:^|;\s*)rv=([^;]*)")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_ONE_YEAR = 365 * 24 * 3600
_COOKIE_ATTRIBUTES = f"; Max-Age={_ONE_YEAR}; Path=/; HttpOnly; SameSite=Lax"

_NO_STORE = (b"cache-control", b"no-store")
_REFERRER_POLICY = (b"referrer-policy", b"strict-origin-when-cross-origin")
_EMPTY_TEXT = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0")]


def _visitor_id(cookie: str | None) -> tuple[str, bool]:
    """(visitor id, is new). A malformed cookie is replaced, never trusted."""
    match = _COOKIE.search(cookie) if cookie else None
    if match and _VISITOR_ID.match(match.group(1)):
        return match.group(1), False
    # What `secrets.token_urlsafe(12)` gives: 16 base64url characters.
    return b2a_base64(service.random_bytes(12), newline=False).translate(_URLSAFE).decode(), True


def _referer_host(referer: str | None) -> str | None:
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


def _channel_and_story(query: bytes) -> tuple[str | None, str | None]:
    """`ch` and `s` from the query string: the last of each wins and blank ones are ignored,
    as for Litestar's query parameters (`parse_qsl`)."""
    channel = story = None
    if not query:
        return channel, story
    text = query.decode("latin-1")
    if "%" in text or "+" in text:
        pairs = parse_qsl(text)
    else:  # nothing to decode: what parse_qsl does, without its overhead
        pairs = []
        for part in text.split("&"):
            key, has_value, value = part.partition("=")
            if has_value and value:
                pairs.append((key, value))
    for key, value in pairs:
        if key == "ch":
            channel = value
        elif key == "s":
            story = value
    return channel, story


@functools.lru_cache(maxsize=8)
def _trusted_networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _unknown_link_page() -> bytes:
    return _PAGE.format(
        css=_PAGE_CSS,
        title="This referral link does not work any more",
        text="The code in this link is unknown or no longer active. "
        "Ask your friend for a new link, or visit the shop directly.",
    ).encode()


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_referral_link(scope: HTTPScope, receive: Receive, send: Send) -> None:
    """`GET|HEAD /r/{code}` as a plain ASGI app, behind Litestar's routing.

    302 to the landing URL with `ref` and a signed `ref_token`, the click buffered; the
    visitor cookie set when absent or malformed; HEAD and bots redirected but flagged. A
    program paused, ended or not started: its fallback URL, else its landing page without
    the offer, no click. An unknown or inactive code (or a draft or archived program): the
    program's fallback URL, else a friendly 404 page.
    """
    runtime: Runtime = scope["app"].state.runtime
    method = scope["method"]
    target = await runtime.codes.resolve(scope["path_params"]["code"])
    if target is None or not target.active:
        # Not running (paused, ended, not started): the fallback URL, else the landing page
        # without the offer. No click is recorded: it could never be attributed (no token),
        # and a program's click figures should count only links that offered something.
        elsewhere = (target.plain_url or target.fallback_url) if target is not None else None
        if elsewhere:
            location = (b"location", elsewhere.encode("latin-1"))
            await _respond(send, 302, [location, _NO_STORE, *_EMPTY_TEXT], b"")
        else:
            headers = _PAGE_HEADERS[security.is_https(runtime.settings.public_base_url)]
            # HEAD: the GET's headers (its content-length too), without the body.
            body = b"" if method == "HEAD" else _UNKNOWN_PAGE
            await _respond(send, 404, [*headers, _UNKNOWN_PAGE_LENGTH], body)
        return

    # The first of each header, as Litestar's `request.headers.get` (latin-1); cookies
    # from all `cookie` headers (HTTP/2 may split them).
    cookie = user_agent = referer = forwarded_for = None
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookie = (
                value.decode("latin-1")
                if cookie is None
                else f"{cookie}; {value.decode('latin-1')}"
            )
        elif name == b"user-agent":
            if user_agent is None:
                user_agent = value.decode("latin-1")
        elif name == b"referer":
            if referer is None:
                referer = value.decode("latin-1")
        elif name == b"x-forwarded-for" and forwarded_for is None:
            forwarded_for = value.decode("latin-1")
    channel, story = _channel_and_story(scope["query_string"])

    settings = runtime.settings
    visitor_id, new_visitor = _visitor_id(cookie)
    peer = scope.get("client")
    peer_host = peer[0] if peer else None
    if forwarded_for and settings.trusted_proxies:
        address = client_ip(peer_host, forwarded_for, _trusted_networks(settings.trusted_proxies))
        ip_hashes = runtime.ip_hasher.hashes(address)
    elif peer_host:  # X-Forwarded-For cannot apply: the peer is the client
        ip_hashes = runtime.ip_hasher.peer_hashes(peer_host)
    else:
        ip_hashes = (None, None)
    user_agent = user_agent or ""
    token = service.record_click(
        runtime.clicks,
        runtime.signer,
        target,
        channel=service.channel_of(channel),
        visitor_id=visitor_id,
        ip_hashes=ip_hashes,
        user_agent=user_agent,
        referer_host=_referer_host(referer),
        story=_story(runtime, story),
        bot=is_bot(user_agent, method),
    )
    headers = [
        (b"location", service.landing_url_for(target, token).encode("latin-1")),
        _NO_STORE,
        _REFERRER_POLICY,
        *_EMPTY_TEXT,
    ]
    if new_visitor:
        secure = "; Secure" if settings.public_base_url.startswith("https") else ""
        cookie_value = f"{VISITOR_COOKIE}={visitor_id}{_COOKIE_ATTRIBUTES}{secure}"
        headers.append((b"set-cookie", cookie_value.encode("latin-1")))
    await _respond(send, 302, headers, b"")


def _answered_by_serve_referral_link(app: ASGIApp) -> ASGIApp:
    """Route middleware of `follow_link` and `head_link`: Litestar has routed the request
    (path parameters in the scope); `serve_referral_link` answers it and the handler
    functions below never run.

    App- and router-level middleware still run first (Litestar puts them outside this
    one); what Litestar builds inside it — `allowed_hosts`, compression, CSRF, response
    caching, none of them configured here — does not apply to the redirect."""
    return serve_referral_link


_FOLLOW_DOC = (
    "302 to the program's landing URL with `ref` (the code) and `ref_token` (a signed click "
    "token the shop sends back with the signup or order). Records a click; HEAD requests and "
    "link-preview bots are redirected but flagged and not counted. Channel from `ch`, story "
    "from `s`. While the program is paused, ended or not yet started: 302 to its fallback URL, "
    "else its landing URL without `ref` and `ref_token`, and no click is recorded. An unknown "
    "or inactive code gets a friendly page (or the program's fallback URL)."
)


# What the redirect answers: the 302, the friendly HTML page, and problem+json for a path
# that cannot be a code at all.
_LINK_RESPONSES = {
    400: problem_docs.responses("followReferralLink", keyed=False)[400],
    404: ResponseSpec(
        str,
        media_type="text/html",
        generate_examples=False,
        description="A friendly page: the code is unknown or no longer active",
    ),
}


@get(
    "/r/{code:str}",
    status_code=302,
    response_description="To the program's landing URL, with `ref` and `ref_token` added",
    responses=_LINK_RESPONSES,
    operation_id="followReferralLink",
    summary="Follow a referral link",
    tags=["links"],
    description=_FOLLOW_DOC,
    middleware=[_answered_by_serve_referral_link],
)
async def follow_link(
    request: Request,
    code: FromPath[str],
    ch: FromQuery[str | None] = None,
    s: FromQuery[str | None] = None,
) -> Redirect:  # documents a 302 with `Location` and no body
    """The route's documentation; `serve_referral_link` answers it."""
    raise NotImplementedError("served by serve_referral_link")


@head(
    "/r/{code:str}",
    status_code=302,
    response_description="Same redirect as GET",
    responses=_LINK_RESPONSES,
    operation_id="headReferralLink",
    summary="Preview a referral link",
    tags=["links"],
    description="Same redirect as GET; the click is flagged, not counted.",
    middleware=[_answered_by_serve_referral_link],
)
async def head_link(
    request: Request,
    code: FromPath[str],
    ch: FromQuery[str | None] = None,
    s: FromQuery[str | None] = None,
) -> None:  # documents a 302 without a body
    """The route's documentation; `serve_referral_link` answers it."""
    raise NotImplementedError("served by serve_referral_link")


QrSize = Annotated[
    int,
    QueryParameter(
        ge=qr_images.MIN_SIZE,
        le=qr_images.MAX_SIZE,
        description="Width and height of the image in pixels: the PNG is exactly this size, "
        "the SVG says this width and height",
    ),
]


async def _qr(
    request: Request, code: FromPath[str], fmt: qr_images.QrFormat, size: int
) -> Response:
    image = await service.qr_image(request.app.state.runtime, code=code, fmt=fmt, size=size)
    headers = {"etag": image.etag, "cache-control": "public, max-age=86400"}
    if image.etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


_QR_PROBLEMS = {404: ("code_not_found",), 422: ("code_inactive", "qr_size_too_small")}
_QR_HEAD = "The GET's status and headers (content-type, content-length, ETag, caching), no body."


@get(
    "/r/{code:str}/qr.png",
    operation_id="getQrPng",
    responses=problem_docs.responses("getQrPng", _QR_PROBLEMS, keyed=False),
    summary="QR code of a link (PNG)",
    tags=["links"],
    media_type="image/png",
)
async def qr_png(
    request: Request, code: FromPath[str], size: QrSize = qr_images.DEFAULT_SIZE
) -> Response:
    return await _qr(request, code, "png", size)


@head(
    "/r/{code:str}/qr.png",
    operation_id="headQrPng",
    responses=problem_docs.responses("headQrPng", _QR_PROBLEMS, keyed=False),
    summary="QR code of a link (PNG), headers only",
    description=_QR_HEAD,
    tags=["links"],
    media_type="image/png",
    middleware=[answer_head_as_get],  # drops the body the GET's answer has
)
async def qr_png_head(
    request: Request, code: FromPath[str], size: QrSize = qr_images.DEFAULT_SIZE
) -> Response[None]:
    return await _qr(request, code, "png", size)


@get(
    "/r/{code:str}/qr.svg",
    operation_id="getQrSvg",
    responses=problem_docs.responses("getQrSvg", _QR_PROBLEMS, keyed=False),
    summary="QR code of a link (SVG)",
    tags=["links"],
    media_type="image/svg+xml",
)
async def qr_svg(
    request: Request, code: FromPath[str], size: QrSize = qr_images.DEFAULT_SIZE
) -> Response:
    return await _qr(request, code, "svg", size)


@head(
    "/r/{code:str}/qr.svg",
    operation_id="headQrSvg",
    responses=problem_docs.responses("headQrSvg", _QR_PROBLEMS, keyed=False),
    summary="QR code of a link (SVG), headers only",
    description=_QR_HEAD,
    tags=["links"],
    media_type="image/svg+xml",
    middleware=[answer_head_as_get],
)
async def qr_svg_head(
    request: Request, code: FromPath[str], size: QrSize = qr_images.DEFAULT_SIZE
) -> Response[None]:
    return await _qr(request, code, "svg", size)


links_router = Router(
    path="/",
    route_handlers=[follow_link, head_link, qr_png, qr_png_head, qr_svg, qr_svg_head],
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>{css}</style></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""
# Allowed by its hash in the page's Content-Security-Policy (no nonce: the page is a constant).
_PAGE_CSS = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:15vh auto;padding:0 1rem;"
    "color:#222}h1{font-size:1.4rem}"
)


def page(title: str, text_html: str) -> str:
    """A small friendly HTML page; `title` is escaped, `text_html` must already be safe.
    Send it with `_PAGE_HEADERS` (its style is allowed by hash)."""
    return _PAGE.format(css=_PAGE_CSS, title=html.escape(title), text=text_html)


_UNKNOWN_PAGE = _unknown_link_page()
_UNKNOWN_PAGE_LENGTH = (b"content-length", str(len(_UNKNOWN_PAGE)).encode())
# The security headers (web/security.py) as constants, one set per scheme of the public URL:
# nothing is built per request on the redirect's path.
_PAGE_HEADERS = {
    https: (
        (b"content-type", b"text/html; charset=utf-8"),
        _NO_STORE,
        *security.static_page_headers(_PAGE_CSS, https=https),
    )
    for https in (False, True)
}
