"""Server-rendered HTML for the customer pages: Jinja2 templates, autoescaped.

Every page is small, works without JavaScript (scripts only add copy and the device share
sheet) and sends headers that keep it out of caches and search engines where it is private.
"""

from __future__ import annotations

import functools

import jinja2
from litestar import Response

from referral.web import i18n
from referral.web.intents import LABELS

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("referral.web", "templates"),
    autoescape=True,  # every template, whatever its name: story text is user input
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)

PRIVATE_PAGE = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # the share page's URL holds its token
    "x-robots-tag": "noindex, nofollow",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
PUBLIC_PAGE = {
    "cache-control": "public, max-age=60",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-content-type-options": "nosniff",
}


@functools.lru_cache(maxsize=32)
def _template(name: str) -> jinja2.Template:
    return _ENV.get_template(name)


def render(name: str, locale: str, **context: object) -> str:
    locale = i18n.locale_of(locale)
    return _template(name).render(
        locale=locale, t=functools.partial(i18n.t, locale), labels=_labels(locale), **context
    )


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


def error_page(status: int, kind: str, locale: str = "en", colour: str = "#1a7f37") -> Response:
    """A small page a person can read, for a browser; `kind`: invalid, expired, story."""
    body = render(
        "error.html",
        locale,
        title=i18n.t(locale, f"error_{kind}_title"),
        text=i18n.t(locale, f"error_{kind}_text"),
        colour=colour,
    )
    return html(body, status=status, headers=PRIVATE_PAGE)
