"""The security headers of every HTML answer, built in one place.

One Content-Security-Policy for every page: everything from this deployment (`'self'`),
nothing inline unless it carries the response's nonce (a page's own `<script>` and `<style>`,
see `render.page`) or, for a constant page, its hash; no plugins, no `<base>`, forms only to
this deployment, and no framing (`frame-ancestors 'none'` and `X-Frame-Options: DENY`: the
share page and the story page are not meant to be framed; the embeddable widget is a script
on the shop's own pages, under the shop's policy: `widget/`). Images may also be `data:`
URIs, which the API docs' stylesheet uses for its icons; an image cannot run script, so that
is the one allowance beyond `'self'`.

`html_headers(https=…)` is applied to every HTML response by the app's `after_request` hook
(`security_hook`), so a handler cannot forget them; a page rendered with a nonce has set its
own policy first. `/r/{code}` never runs that hook: its one HTML page (an unknown link) sends
`static_page_headers(…)`, built once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from collections.abc import Callable

from litestar import Response

HSTS = "max-age=31536000"  # a year; no includeSubDomains: the shop's other hosts are not ours


def new_nonce() -> str:
    """A fresh nonce per response: 128 random bits, base64url (valid in a CSP source)."""
    return secrets.token_urlsafe(16)


def style_hash(css: str) -> str:
    """The CSP source that allows exactly this inline `<style>` content."""
    digest = hashlib.sha256(css.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(*, nonce: str | None = None, style_hashes: tuple[str, ...] = ()) -> str:
    own = f" 'nonce-{nonce}'" if nonce else ""
    styles = "".join(f" {h}" for h in style_hashes)
    return (
        "default-src 'self'; "
        f"script-src 'self'{own}; "
        f"style-src 'self'{own}{styles}; "
        "img-src 'self' data:; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


@functools.cache
def html_headers(*, https: bool) -> dict[str, str]:
    """What every HTML answer carries (a page with a nonce replaces the policy with its own)."""
    headers = {
        "content-security-policy": content_security_policy(),
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "strict-origin-when-cross-origin",
    }
    if https:
        headers["strict-transport-security"] = HSTS
    return headers


def page_headers(nonce: str) -> dict[str, str]:
    """The policy of a rendered page whose own `<script>` and `<style>` carry `nonce`."""
    return {"content-security-policy": content_security_policy(nonce=nonce)}


@functools.cache
def static_page_headers(css: str, *, https: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers of a constant HTML page with one inline `<style>` (`css`), as ASGI pairs."""
    headers = {
        **html_headers(https=https),
        "content-security-policy": content_security_policy(style_hashes=(style_hash(css),)),
    }
    return tuple((name.encode(), value.encode("latin-1")) for name, value in headers.items())


def is_https(public_base_url: str) -> bool:
    return public_base_url.lower().startswith("https://")


def security_hook(public_base_url: str) -> Callable[[Response], Response]:
    """The app's `after_request` hook: every HTML response gets `html_headers`, keeping what
    the handler set (a page's nonce policy, the share page's `no-referrer`); every other
    response gets `nosniff` (and HSTS). Route handlers only: `/r/{code}` answers before it
    runs, so the redirect pays nothing for it."""
    https = is_https(public_base_url)
    for_html = tuple(html_headers(https=https).items())
    for_others = (("x-content-type-options", "nosniff"),) + (
        (("strict-transport-security", HSTS),) if https else ()
    )

    def add_security_headers(response: Response) -> Response:
        media_type = response.media_type
        html_page = isinstance(media_type, str) and media_type.startswith("text/html")
        headers = response.headers
        for name, value in for_html if html_page else for_others:
            headers.setdefault(name, value)
        return response

    return add_security_headers
