"""Public story pages: `/s/{slug}`, its share image and its tracked share buttons.

A story is public once published; a pending or hidden story answers 404, as an unknown
slug does. Views are counted once per page load by a person (HEAD and link-preview bots,
which fetch the page to build the preview, are not), as one inserted row each.
"""

from __future__ import annotations

from litestar import Request, Response, Router, get, route
from litestar.params import FromPath
from litestar.response import Redirect

from referral.http.deps import Conn, RuntimeDep
from referral.http.head import GET_HEAD, answer_head_as_get
from referral.http.rate_limits import rate_limited
from referral.links.visitors import is_bot
from referral.stories import image, service
from referral.web import render
from referral.web.intents import NETWORK_CHANNELS


def _not_found() -> Response:
    return render.error_page(404, "story")


def _counts(request: Request) -> bool:
    """A person's request, not a HEAD or a link-preview bot."""
    return not is_bot(request.headers.get("user-agent", ""), request.method)


@route(
    "/s/{slug:str}",
    http_method=GET_HEAD,  # unfurlers check links with HEAD: answered, not counted
    middleware=[answer_head_as_get],
    include_in_schema=False,
    operation_id="storyPage",
)
async def story_page(
    request: Request, slug: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    story = await service.view(conn, runtime=runtime, slug=slug, counted=_counts(request))
    if story is None:
        return _not_found()
    headers = {**render.PUBLIC_PAGE, "cache-control": "no-store"}  # each view is counted
    return render.page(
        "story.html", story.locale, headers=headers, story=story, channels=NETWORK_CHANNELS
    )


@route(
    "/s/{slug:str}/image.png",
    http_method=GET_HEAD,
    middleware=[answer_head_as_get],
    include_in_schema=False,
    operation_id="storyImage",
)
async def story_image(
    request: Request, slug: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    story = await service.published(conn, runtime=runtime, slug=slug)
    if story is None:
        return _not_found()
    parts = service.image_parts(story)
    etag = image.etag_for(*parts)
    headers = {"etag": etag, "cache-control": "public, max-age=3600"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(image.render(*parts), media_type="image/png", headers=headers)


@get("/s/{slug:str}/share/{channel:str}", include_in_schema=False, operation_id="storyShare")
async def share_story(
    request: Request, slug: FromPath[str], channel: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """Record a share of the story on `channel`, then on to that network's share intent."""
    story = await service.share(
        conn, runtime=runtime, slug=slug, channel=channel, counted=_counts(request)
    )
    if story is None:
        return _not_found()
    target = story.intent(channel)
    if target is None:  # copy / share sheet: recorded from the page's script
        return Response(b"", status_code=204, headers={"cache-control": "no-store"})
    return Redirect(target, status_code=302, headers={"cache-control": "no-store"})


# Slugs can be guessed and views are counted: every story route is limited per IP.
story_pages_router = Router(
    path="/",
    route_handlers=[story_page, story_image, share_story],
    guards=[rate_limited("story_pages")],
)
