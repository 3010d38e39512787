"""Server-rendered HTML for the customer pages: Jinja2 templates, autoescaped.

Every page is small, works without JavaScript (scripts only add copy and the device share
sheet) and sends headers that keep it out of caches and search engines where it is private.
`page` renders with a fresh CSP nonce, which the templates put on their own `<script>` and
`<style>` (no `style=` attributes: a strict policy blocks them); `web/security.py` builds
the policy and the app's hook adds the other security headers to every HTML answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jinja2
from litestar import Response

from referral.web import i18n, security
from referral.web.intents import LABELS

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("referral.web", "templates"),
    autoescape=True,  # every template, whatever its name: story text is user input
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)

# What differs between pages; the security headers every page shares come from the app's
# hook (`web/security.py`).
PRIVATE_PAGE = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # the share page's URL holds its token
    "x-robots-tag": "noindex, nofollow",
}
PUBLIC_PAGE = {
    "cache-control": "public, max-age=60",
    "referrer-policy": "strict-origin-when-cross-origin",
}


@functools.lru_cache(maxsize=32)
def _template(name: str) -> jinja2.Template:
    return _ENV.get_template(name)


def render(
    name: str, locale: str, *, translate: Callable[..., str] | None = None, **context: object
) -> str:
    """`translate`: the page's own words (the console's); the customer pages' by default."""
    locale = i18n.locale_of(locale)
    t = translate or functools.partial(i18n.t, locale)
    return _template(name).render(locale=locale, t=t, labels=_labels(locale), **context)


@functools.lru_cache(maxsize=8)
def _labels(locale: str) -> dict[str, str]:
    """Share buttons: network names as the networks write them, email and SMS in words."""
    return {
        **LABELS,
        "email": i18n.t(locale, "channel_email"),
        "sms": i18n.t(locale, "channel_sms"),
    }


def html(body: str, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="text/html", headers=headers)


def page(
    name: str,
    locale: str,
    *,
    status: int = 200,
    headers: dict[str, str],
    translate: Callable[..., str] | None = None,
    **context: object,
) -> Response:
    """A rendered page with its own nonce, and the policy that allows only that nonce."""
    nonce = security.new_nonce()
    body = render(name, locale, translate=translate, nonce=nonce, **context)
    return html(body, status=status, headers={**headers, **security.page_headers(nonce)})


def error_page(status: int, kind: str, locale: str = "en", colour: str = "#1a7f37") -> Response:
    """A small page a person can read, for a browser; `kind`: invalid, expired, story."""
    return page(
        "error.html",
        locale,
        status=status,
        headers=PRIVATE_PAGE,
        title=i18n.t(locale, f"error_{kind}_title"),
        text=i18n.t(locale, f"error_{kind}_text"),
        colour=colour,
    )
