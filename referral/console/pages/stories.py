"""Stories, as whoever moderates them sees them: pending stories to publish or hide, each
with its share image as it will read, and what the published ones brought (views, shares,
clicks, friends, orders). Listing, the image and every change are the stories room's
(`referral.stories.service`)."""

from __future__ import annotations

from typing import Literal

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from referral.console.pages.common import HEADERS, FormDep, SessionDep, back_to, page
from referral.http.deps import Conn, RuntimeDep
from referral.lib.errors import InvalidInput
from referral.lib.pagination import ListQuery
from referral.stories import service
from referral.stories.schemas import StoryStatus, StoryUpdate

PAGE_SIZE = 12

WORDS = {
    "en": {
        "stories_title": "Stories",
        "stories_intro": "Advocates tell how they were rewarded. A story shows on its own "
        "page, with its share image, and among the program's social proof once you "
        "publish it.",
        "tab_pending": "To review ({n})",
        "tab_published": "Published ({n})",
        "tab_hidden": "Hidden ({n})",
        "empty_pending": "No story waits for you. When an advocate tells about a reward "
        "(POST /v1/stories, or the share page), it waits here until you publish or hide it.",
        "empty_published": "Nothing published yet. Publish a story from “To review” and it "
        "shows on its page and in the program's social proof.",
        "empty_hidden": "No hidden stories. A story you hide, or one about a referral "
        "rejected as fraud, is kept here and can be published later.",
        "image_alt": "Share image: {text}",
        "image_said": "The share image as it will read when published.",
        "by": "Shown as",
        "anonymous": "no name (the advocate chose not to show it)",
        "advocate": "Advocate's page",
        "told": "Told",
        "published_at": "Published",
        "brought": "What it brought",
        "n_views_one": "{n} view",
        "n_views": "{n} views",
        "n_shares_one": "{n} share",
        "n_shares": "{n} shares",
        "n_clicks_one": "{n} click",
        "n_clicks": "{n} clicks",
        "n_signups_one": "{n} friend",
        "n_signups": "{n} friends",
        "n_orders_one": "{n} order",
        "n_orders": "{n} orders",
        "revenue": "referred revenue",
        "open_page": "Open its page",
        "publish": "Publish",
        "hide": "Hide",
        "done_published": "Published: the story now shows on its page and in social proof.",
        "done_hidden": "Hidden: the story's page no longer shows it.",
        "see_published": "See published stories",
        "more": "More stories",
        "first_page": "First page",
    },
    "sv": {
        "stories_title": "Berättelser",
        "stories_intro": "Ambassadörer berättar hur de belönades. En berättelse syns på sin "
        "egen sida, med sin delningsbild, och bland programmets omdömen när du publicerar den.",
        "tab_pending": "Att granska ({n})",
        "tab_published": "Publicerade ({n})",
        "tab_hidden": "Dolda ({n})",
        "empty_pending": "Ingen berättelse väntar. När en ambassadör berättar om en belöning "
        "(POST /v1/stories, eller delningssidan) väntar den här tills du publicerar eller "
        "döljer den.",
        "empty_published": "Inget publicerat än. Publicera en berättelse under ”Att granska” "
        "så syns den på sin sida och bland programmets omdömen.",
        "empty_hidden": "Inga dolda berättelser. En berättelse du döljer, eller en om en "
        "rekommendation som avslogs som bedrägeri, sparas här och kan publiceras senare.",
        "image_alt": "Delningsbild: {text}",
        "image_said": "Delningsbilden som den ser ut när den är publicerad.",
        "by": "Visas som",
        "anonymous": "utan namn (ambassadören valde att inte visa det)",
        "advocate": "Ambassadörens sida",
        "told": "Berättad",
        "published_at": "Publicerad",
        "brought": "Vad den gav",
        "n_views_one": "{n} visning",
        "n_views": "{n} visningar",
        "n_shares_one": "{n} delning",
        "n_shares": "{n} delningar",
        "n_clicks_one": "{n} klick",
        "n_clicks": "{n} klick",
        "n_signups_one": "{n} vän",
        "n_signups": "{n} vänner",
        "n_orders_one": "{n} beställning",
        "n_orders": "{n} beställningar",
        "revenue": "intäkter via rekommendationer",
        "open_page": "Öppna sidan",
        "publish": "Publicera",
        "hide": "Dölj",
        "done_published": "Publicerad: berättelsen syns nu på sin sida och bland omdömena.",
        "done_hidden": "Dold: berättelsens sida visar den inte längre.",
        "see_published": "Se publicerade berättelser",
        "more": "Fler berättelser",
        "first_page": "Första sidan",
    },
}

ACTIONS: dict[str, StoryStatus] = {"publish": "published", "hide": "hidden"}
TABS = ("pending", "published", "hidden")


@get("/stories", include_in_schema=False)
async def stories_page(
    request: Request,
    conn: Conn,
    runtime: RuntimeDep,
    session: SessionDep,
    status: FromQuery[StoryStatus] = "pending",
    after: FromQuery[str | None] = None,
    done: FromQuery[Literal["published", "hidden"] | None] = None,
) -> Response:
    found = await service.moderation_list(
        conn,
        runtime=runtime,
        caller=session.caller,
        listing=ListQuery(limit=PAGE_SIZE, starting_after=after or None),
        status=status,
    )
    return page(
        request,
        "stories.html",
        session=session,
        section="stories",
        catalogue=WORDS,
        stories=found.data,
        counts=found.counts,
        tab=status,
        after=after or "",
        next_after=found.data[-1].id if found.has_more else None,
        done=done,
    )


@get("/stories/{story_id:str}/image.png", include_in_schema=False)
async def story_image(
    request: Request, conn: Conn, runtime: RuntimeDep, session: SessionDep, story_id: FromPath[str]
) -> Response:
    """The share image as it reads once published (the public one exists only then)."""
    png, etag = await service.draft_image(
        conn, runtime=runtime, caller=session.caller, story_id=story_id
    )
    headers = {**HEADERS, "etag": etag, "cache-control": "private, no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


@post("/stories/{story_id:str}", include_in_schema=False, status_code=303)
async def moderate(
    conn: Conn, runtime: RuntimeDep, session: SessionDep, form: FormDep, story_id: FromPath[str]
) -> Response:
    """Publish or hide the story, then back to the tab it was on."""
    to = ACTIONS.get(str(form.get("action") or ""))
    if to is None:
        raise InvalidInput("choose publish or hide", code="invalid_action")
    await service.update(
        conn,
        runtime=runtime,
        caller=session.caller,
        story_id=story_id,
        data=StoryUpdate(status=to),
        actor=session.actor,
    )
    tab = str(form.get("tab") or "")
    return back_to("/console/stories", status=tab if tab in TABS else "pending", done=to)
