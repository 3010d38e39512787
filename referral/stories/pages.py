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
from referral.links.visitors import is_bot
from referral.pages import i18n, render
from referral.pages.intents import NETWORK_CHANNELS, SHARE_CHANNELS, intent_url
from referral.runtime import Runtime
from referral.stories import image, repo
from referral.stories.service import story_url


class PublishedStory:
    """A published story with what its page, image and share buttons need."""

    def __init__(self, runtime: Runtime, row) -> None:
        self.row = row
        self.locale = i18n.locale_of(row["locale"])
        self.colour = row["brand_colour"]
        self.shop = row["shop"]
        self.text = row["body"]
        self.name = row["display_name"]
        self.public_id = runtime.ids.encode("story", row["id"])
        self.url = story_url(runtime.settings.public_base_url, row["slug"])
        self.image_url = f"{self.url}/image.png"
        self.offer = i18n.offer_text(row["program_rewards"].get("friend"), self.shop, self.locale)
        code = runtime.codec.generate(row["advocate_id"])
        # The call to action: the advocate's referral link with the story attached, so the
        # click, and the signup and order after it, are credited to this story.
        self.cta_url = f"{runtime.settings.public_base_url}/r/{code}?ch=story&s={self.public_id}"
        self.byline = (
            i18n.t(self.locale, "story_by", name=self.name, shop=self.shop)
            if self.name
            else i18n.t(self.locale, "story_by_anonymous", shop=self.shop)
        )


async def _published(conn, runtime: Runtime, slug: str) -> PublishedStory | None:
    if not 8 <= len(slug) <= 32:
        return None
    row = await repo.page(conn, slug)
    if row is None or row["status"] != "published" or row["program_status"] == "archived":
        return None
    return PublishedStory(runtime, row)


def _not_found() -> Response:
    return render.error_page(404, "story")


def _counts(request: Request) -> bool:
    """A person's request, not a HEAD or a link-preview bot."""
    return not is_bot(request.headers.get("user-agent", ""), request.method)


@route(
    "/s/{slug:str}",
    http_method=["GET", "HEAD"],  # unfurlers check links with HEAD: answered, not counted
    include_in_schema=False,
    operation_id="storyPage",
)
async def story_page(
    request: Request, slug: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    story = await _published(conn, runtime, slug)
    if story is None:
        return _not_found()
    if _counts(request):
        await repo.record_view(conn, story.row["merchant_id"], story.row["id"])
    body = render.render("story.html", story.locale, story=story, channels=NETWORK_CHANNELS)
    headers = {**render.PUBLIC_PAGE, "cache-control": "no-store"}  # each view is counted
    return render.html(body, headers=headers)


@get("/s/{slug:str}/image.png", include_in_schema=False, operation_id="storyImage")
async def story_image(
    request: Request, slug: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    story = await _published(conn, runtime, slug)
    if story is None:
        return _not_found()
    parts = (story.text, story.byline, story.offer, story.colour)
    etag = image.etag_for(*parts)
    headers = {"etag": etag, "cache-control": "public, max-age=3600"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(image.render(*parts), media_type="image/png", headers=headers)


@get("/s/{slug:str}/share/{channel:str}", include_in_schema=False, operation_id="storyShare")
async def share_story(
    request: Request, slug: FromPath[str], channel: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response:
    """Record a share of the story on `channel`, then on to that network's share intent
    (the story page's URL, whose preview shows the story image)."""
    story = await _published(conn, runtime, slug)
    if story is None or channel not in SHARE_CHANNELS:
        return _not_found()
    if _counts(request):
        row = story.row
        await repo.record_share(
            conn, row["merchant_id"], row["program_id"], row["advocate_id"], row["id"], channel
        )
    target = intent_url(channel, text=story.text, url=story.url, subject=story.shop)
    if target is None:  # copy / share sheet: recorded from the page's script
        return Response(b"", status_code=204, headers={"cache-control": "no-store"})
    return Redirect(target, status_code=302, headers={"cache-control": "no-store"})


story_pages_router = Router(path="/", route_handlers=[story_page, story_image, share_story])
