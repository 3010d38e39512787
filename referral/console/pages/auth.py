"""Getting in and out: the sign-in link's page, the session cookie, signing out, and
switching between live and test mode (an explicit action that starts a new session)."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect

from referral.console import service
from referral.console.pages.common import FormDep, SessionDep, locale_of, message, page
from referral.console.words import translator
from referral.http.deps import Conn, RuntimeDep
from referral.lib.errors import InvalidInput
from referral.runtime import Runtime
from referral.web.security import is_https


def _refused(request: Request, merchant: str) -> Response:
    t = translator(locale_of(request))
    known = merchant.startswith("mer_") and len(merchant) <= 40 and merchant.isascii()
    text = t("sign_in_refused_text", merchant=merchant) if known else t("sign_in_refused_text_any")
    return message(request, 410, "sign_in_refused_title", text)


def _with_cookie(runtime: Runtime, cookie: str, target: str = "/console") -> Response:
    response = Redirect(target, status_code=303, headers={"cache-control": "no-store"})
    response.set_cookie(
        service.COOKIE,
        cookie,
        max_age=service.SESSION_SECONDS,
        path="/console",
        secure=is_https(runtime.settings.public_base_url),
        httponly=True,
        samesite="strict",
    )
    return response


async def _ask_who(
    request: Request,
    conn,
    runtime: Runtime,
    merchant: str,
    token: str,
    error: str | None = None,
) -> Response:
    """The page that asks who is signing in (again, with `error`), while the link is good."""
    try:
        named = await service.sign_in_page(
            conn, ids=runtime.ids, merchant=merchant, raw_token=token
        )
    except service.SignInRefused:
        return _refused(request, merchant)
    return page(
        request,
        "sign_in.html",
        session=None,
        status=200 if error is None else 422,
        shop=named.name,
        mode=named.mode,
        merchant=merchant,
        token=token,
        error=error,
    )


@get("/sign-in", include_in_schema=False)
async def sign_in_form(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    merchant: FromQuery[str] = "",
    token: FromQuery[str] = "",
) -> Response:
    """Asks who is signing in; uses nothing up (chat apps fetch links to preview them)."""
    return await _ask_who(request, conn, runtime, merchant, token)


@post("/sign-in", include_in_schema=False, status_code=303)
async def sign_in(request: Request, conn: Conn, runtime: RuntimeDep) -> Response:
    form = await request.form()
    merchant, token = str(form.get("merchant") or ""), str(form.get("token") or "")
    try:
        cookie, _ = await service.sign_in(
            conn,
            ids=runtime.ids,
            settings=runtime.settings,
            merchant=merchant,
            raw_token=token,
            actor=str(form.get("actor") or ""),
        )
    except service.SignInRefused:
        return _refused(request, merchant)
    except InvalidInput as exc:  # the name: asked again, the link still unused
        return await _ask_who(request, conn, runtime, merchant, token, exc.detail)
    return _with_cookie(runtime, cookie)


@post("/sign-out", include_in_schema=False, status_code=303)
async def sign_out(request: Request, conn: Conn, session: SessionDep, form: FormDep) -> Response:
    await service.sign_out(conn, session=session)
    response = Redirect("/console/signed-out", status_code=303)
    response.delete_cookie(service.COOKIE, path="/console")
    return response


@get("/signed-out", include_in_schema=False)
async def signed_out(request: Request) -> Response:
    t = translator(locale_of(request))
    return message(request, 200, "signed_out_title", t("signed_out_text"))


@post("/mode", include_in_schema=False, status_code=303)
async def switch_mode(
    conn: Conn, runtime: RuntimeDep, session: SessionDep, form: FormDep
) -> Response:
    cookie, _ = await service.switch_mode(
        conn, ids=runtime.ids, settings=runtime.settings, session=session
    )
    return _with_cookie(runtime, cookie)
