"""What every console page shares: the session from the cookie, the CSRF-checked form,
rendering in the layout, and errors as pages a person can read.

A handler that takes `session` needs a signed-in person; one that takes `form` is a state
change and gets the form only when its CSRF token is the session's (every POST handler of
the console takes `form`: `tests/console/test_access.py` walks them). The page's language is
the browser's (Accept-Language: Swedish or English).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import FormMultiDict, State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.response import Redirect

from referral.console import service, words
from referral.console.schemas import ConsoleSession
from referral.http.deps import Conn
from referral.lib.errors import AppError
from referral.web import render

# The console's pages are private to the person signed in: never cached, never indexed, and
# their URLs (ids, a sign-in token) never sent on as a referrer.
HEADERS = render.PRIVATE_PAGE
BRAND = "#1a7f37"


class SignInNeeded(Exception):
    """No session, or one that has ended."""


class CsrfRefused(Exception):
    """A form without this session's CSRF token."""


def locale_of(request: Request) -> str:
    """Swedish when the browser prefers it to English, else English."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in ("sv", "en"):
            return tag
    return "en"


async def provide_session(request: Request, state: State, conn: Conn) -> ConsoleSession:
    runtime = state.runtime
    found = await service.session_of(
        conn, ids=runtime.ids, settings=runtime.settings, cookie=request.cookies.get(service.COOKIE)
    )
    if found is None:
        raise SignInNeeded
    return found


async def provide_form(
    request: Request, state: State, session: NamedDependency[ConsoleSession]
) -> FormMultiDict:
    form = await request.form()
    if not service.csrf_matches(state.runtime.settings, session, form.get("csrf")):
        raise CsrfRefused
    return form


DEPENDENCIES = {
    "session": Provide(provide_session),
    "form": Provide(provide_form),
}

SessionDep = NamedDependency[ConsoleSession]
FormDep = NamedDependency[FormMultiDict]


def page(
    request: Request,
    name: str,
    *,
    session: ConsoleSession | None,
    section: str = "",
    catalogue: words.Catalogue | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    """`console/{name}` in the layout, in the reader's language, with its own nonce."""
    locale = locale_of(request)
    t = words.translator(locale, *([catalogue] if catalogue else []))
    return render.page(
        f"console/{name}",
        locale,
        status=status,
        headers=HEADERS,
        translate=t,
        session=session,
        section=section,
        colour=context.pop("colour", BRAND),
        fmt=Formats(locale),
        path=request.url.path,
        **context,
    )


class Formats:
    """The page's figures in its language (the templates call `fmt.money(...)`)."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def number(self, value: int | float | None, digits: int = 0) -> str:
        return words.number(value, self.locale, digits)

    def percent(self, ratio: float | None, digits: int = 1) -> str:
        return words.percent(ratio, self.locale, digits)

    def money(self, amount: int | None, currency: str) -> str:
        return words.money(amount, currency, self.locale)

    def status(self, value: str | None) -> str:
        return words.status(value, self.locale)

    def fact(self, value: Any) -> str:
        return words.fact(value, self.locale)

    def day(self, value: Any) -> str:
        return words.day(value, self.locale)

    def moment(self, value: Any) -> str:
        return words.moment(value, self.locale)


def back_to(url: str, **query: str) -> Redirect:
    """POST, then redirect, then GET: a reload never sends a form twice."""
    suffix = urlencode(query)
    target = f"{url}{'&' if '?' in url else '?'}{suffix}" if suffix else url
    return Redirect(target, status_code=303, headers={"cache-control": "no-store"})


def message(request: Request, status: int, title_key: str, text: str, **values: str) -> Response:
    """A page with a title and a sentence, outside the layout (no session to show)."""
    t = words.translator(locale_of(request))
    return page(
        request,
        "message.html",
        session=None,
        status=status,
        title=t(title_key, **values),
        text=text,
    )


def _sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
    t = words.translator(locale_of(request))
    return message(request, 401, "needs_sign_in_title", t("needs_sign_in_text"))


def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
    t = words.translator(locale_of(request))
    return message(request, 403, "csrf_title", t("csrf_text"))


def _app_error(request: Request, exc: AppError) -> Response:
    if exc.status == 404:
        t = words.translator(locale_of(request))
        return message(request, 404, "not_found_title", t("not_found_text"))
    return message(request, exc.status, "error_title", exc.detail)


def _invalid_query(request: Request, exc: ValidationException) -> Response:
    detail = exc.detail if exc.detail and exc.detail != "Bad Request" else "the address is invalid"
    return message(request, 400, "error_title", detail)


EXCEPTION_HANDLERS: Mapping[type[Exception], Any] = {
    SignInNeeded: _sign_in_needed,
    CsrfRefused: _csrf_refused,
    AppError: _app_error,
    ValidationException: _invalid_query,
}
