"""The advocate's share page, as HTML: `/share/{token}`.

Browser pages, not API calls: a bad or expired token gets a small HTML page (403 / 410),
and the forms answer with a redirect back to the page (POST/redirect/GET). The token in
the URL is the advocate's secret and is also what authorises the forms (no cookie, so no
cross-site request can carry it). Each handler opens the page with the token first, as
others authenticate their key, then does its one thing.
"""

from __future__ import annotations

from urllib.parse import quote

from litestar import Request, Response, Router, get, post, route
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from referral.http.deps import Conn, RuntimeDep
from referral.http.head import GET_HEAD, answer_head_as_get
from referral.http.rate_limits import rate_limited
from referral.links.visitors import is_bot
from referral.share_page import service
from referral.web import render

NOTICES = {
    "contact": "saved",
    "story": "story_sent",
    "published": "story_published",
    "payee": "payee_saved",
    # points and the preference centre (share_page/pages.py)
    "redeemed": "redeemed",
    "points_short": "points_short",
    "redemption_cancelled": "redemption_cancelled",
    "redemption_used": "redemption_used",
    "preferences": "preferences_saved",
}

# Why the page refused, as (status, error page).
REFUSALS = {
    "invalid": (403, "invalid"),
    "expired": (410, "expired"),
    "unknown_advocate": (404, "invalid"),
    "unknown_channel": (404, "invalid"),
    "bad_contact": (422, "invalid"),
    "story_input": (422, "story_input"),
    "held_out": (403, "held_out"),
}


def _refused(refused: service.Refused) -> Response:
    status, kind = REFUSALS[refused.reason]
    if refused.advocate is None:
        return render.error_page(status, kind)
    return render.error_page(status, kind, refused.advocate.locale, refused.advocate.colour)


def _back(token: str, notice: str) -> Redirect:
    return Redirect(f"/share/{quote(token)}?done={notice}", status_code=303)


@route(
    "/share/{token:str}",
    http_method=GET_HEAD,
    middleware=[answer_head_as_get],
    include_in_schema=False,
    operation_id="sharePage",
)
async def share_page(
    request: Request,
    token: FromPath[str],
    conn: Conn,
    runtime: RuntimeDep,
    done: FromQuery[str | None] = None,
) -> Response:
    counted = done is None and not is_bot(request.headers.get("user-agent", ""), request.method)
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        context = await service.page_context(
            conn, runtime=runtime, advocate=advocate, token=token, counted=counted
        )
    except service.Refused as refused:
        return _refused(refused)
    notice = NOTICES.get(done or "")
    return render.page(
        "share_page.html", advocate.locale, headers=render.PRIVATE_PAGE, notice=notice, **context
    )


@get(
    "/share/{token:str}/to/{channel:str}",
    include_in_schema=False,
    operation_id="shareLink",
    guards=[rate_limited("share_page")],
)
async def share_link(
    request: Request, token: FromPath[str], channel: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """A share button of the share page: record the share, then on to the network."""
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        counted = not is_bot(request.headers.get("user-agent", ""), request.method)
        target = await service.share(
            conn, runtime=runtime, advocate=advocate, channel=channel, counted=counted
        )
    except service.Refused as refused:
        return _refused(refused)
    if target is None:  # copy / share sheet: recorded from the page's script
        return Response(b"", status_code=204, headers={"cache-control": "no-store"})
    return Redirect(target, status_code=302, headers={"cache-control": "no-store"})


@post(
    "/share/{token:str}/contact",
    include_in_schema=False,
    operation_id="shareContact",
    guards=[rate_limited("share_page")],
)
async def set_contact(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        choice = (await request.form()).get("contact_preference")
        await service.set_contact(conn, runtime=runtime, advocate=advocate, choice=choice)
    except service.Refused as refused:
        return _refused(refused)
    return _back(token, "contact")


@post(
    "/share/{token:str}/stories",
    include_in_schema=False,
    operation_id="sharePagePublishStory",
    guards=[rate_limited("share_page")],
)
async def tell_story(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """The advocate publishes a story about one of their rewards from their page."""
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        form = await request.form()
        story = await service.tell_story(
            conn,
            runtime=runtime,
            advocate=advocate,
            reward_id=str(form.get("reward_id") or ""),
            text=str(form.get("text") or "") or None,
            show_first_name=form.get("show_first_name") == "on",
        )
    except service.Refused as refused:
        return _refused(refused)
    return _back(token, "published" if story.status == "published" else "story")


@post(
    "/share/{token:str}/payee",
    include_in_schema=False,
    operation_id="sharePagePayee",
    guards=[rate_limited("share_page")],
)
async def set_payee(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """The advocate's payout details. Refused details show the page again (422) with the
    reason in their words and what they typed, so they can correct it."""
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        form = await request.form()
        try:
            await service.set_payee(
                conn, runtime=runtime, advocate=advocate, form={k: form.get(k) for k in form}
            )
        except service.PayeeInput as refused:
            context = await service.page_context(
                conn, runtime=runtime, advocate=advocate, token=token
            )
            context["payee_form"] = refused.form
            context["payee_error"] = service.payee_error(advocate, refused.problem)
            return render.page(
                "share_page.html",
                advocate.locale,
                status=422,
                headers=render.PRIVATE_PAGE,
                notice=None,
                **context,
            )
    except service.Refused as refused:
        return _refused(refused)
    return Redirect(f"/share/{quote(token)}?done=payee#payee", status_code=303)


share_page_router = Router(
    path="/", route_handlers=[share_page, share_link, set_contact, tell_story, set_payee]
)
