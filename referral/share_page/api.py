"""The advocate's share page, as HTML: `/share/{token}`.

Browser pages, not API calls: a bad or expired token gets a small HTML page (403 / 410),
and the forms answer with a redirect back to the page (POST/redirect/GET). The token in
the URL is the advocate's secret and is also what authorises the forms (no cookie, so no
cross-site request can carry it).
"""

from __future__ import annotations

from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from referral.advocates import repo as advocates_repo
from referral.http.deps import Conn, RuntimeDep
from referral.lib.errors import AppError
from referral.links.visitors import is_bot
from referral.merchants.service import Caller
from referral.pages import render, service
from referral.pages.service import PageAdvocate
from referral.runtime import Runtime
from referral.stories import repo as stories_repo
from referral.stories import service as stories
from referral.stories.schemas import StoryCreate

CONTACT_PREFERENCES = ("email", "sms", "none")


async def _advocate(
    conn, runtime: Runtime, token: str
) -> tuple[PageAdvocate | None, Response | None]:
    """(advocate, None) for a good token, else (None, the error page to answer)."""
    claims = service.verify(runtime, token)
    if claims == "expired":
        return None, render.error_page(410, "expired")
    if claims == "invalid":
        return None, render.error_page(403, "invalid")
    advocate = await service.load_advocate(conn, runtime, claims)
    if advocate is None:
        return None, render.error_page(404, "invalid")
    return advocate, None


def _back(token: str, notice: str) -> Redirect:
    return Redirect(f"/share/{quote(token)}?done={notice}", status_code=303)


@get("/share/{token:str}", include_in_schema=False, operation_id="sharePage")
async def share_page(
    token: FromPath[str], conn: Conn, runtime: RuntimeDep, done: FromQuery[str | None] = None
) -> Response:
    advocate, refused = await _advocate(conn, runtime, token)
    if refused is not None:
        return refused
    context = await service.page_context(conn, runtime, advocate, token)
    notice = {"contact": "saved", "story": "story_sent", "published": "story_published"}
    body = render.render(
        "share_page.html", advocate.locale, notice=notice.get(done or ""), **context
    )
    return render.html(body, headers=render.PRIVATE_PAGE)


@get("/share/{token:str}/to/{channel:str}", include_in_schema=False, operation_id="shareLink")
async def share_link(
    request: Request, token: FromPath[str], channel: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """A share button of the share page: record the share, then on to the network."""
    advocate, refused = await _advocate(conn, runtime, token)
    if refused is not None:
        return refused
    try:
        target = service.link_intent(advocate, channel)
    except KeyError:
        return render.error_page(404, "invalid", advocate.locale, advocate.colour)
    if not is_bot(request.headers.get("user-agent", ""), request.method):
        await stories_repo.record_share(
            conn, advocate.merchant_id, advocate.program_id, advocate.id, None, channel
        )
    if target is None:  # copy / share sheet: recorded from the page's script
        return Response(b"", status_code=204, headers={"cache-control": "no-store"})
    return Redirect(target, status_code=302, headers={"cache-control": "no-store"})


@post("/share/{token:str}/contact", include_in_schema=False, operation_id="shareContact")
async def set_contact(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    advocate, refused = await _advocate(conn, runtime, token)
    if refused is not None:
        return refused
    choice = (await request.form()).get("contact_preference")
    if choice not in CONTACT_PREFERENCES:
        return render.error_page(422, "invalid", advocate.locale, advocate.colour)
    await advocates_repo.set_contact_preference(conn, advocate.merchant_id, advocate.id, choice)
    return _back(token, "contact")


@post("/share/{token:str}/stories", include_in_schema=False, operation_id="sharePagePublishStory")
async def tell_story(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """The advocate publishes a story about one of their rewards from their page."""
    advocate, refused = await _advocate(conn, runtime, token)
    if refused is not None:
        return refused
    form = await request.form()
    # The token stands in for a key: it names the merchant and this one advocate.
    caller = Caller(merchant_id=advocate.merchant_id, mode="", kind="share_page")
    try:
        row, _ = await stories.create(
            conn,
            runtime,
            caller,
            StoryCreate(
                advocate_id=advocate.public_id,
                reward_id=str(form.get("reward_id") or ""),
                text=str(form.get("text") or "") or None,
                show_first_name=form.get("show_first_name") == "on",
            ),
        )
    except AppError:
        return render.error_page(422, "story_input", advocate.locale, advocate.colour)
    return _back(token, "published" if row["status"] == "published" else "story")


share_page_router = Router(
    path="/", route_handlers=[share_page, share_link, set_contact, tell_story]
)
