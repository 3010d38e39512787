"""Stories: an advocate's public account of a reward, moderated by the merchant.

A story needs an approved (or paid) advocate-side reward of that advocate: a referral
reward or a milestone bonus. Its page lives at a random slug; its status is pending until
the merchant publishes it, or published at once when the program auto-publishes. Only a
published story of a program not archived shows on its public page (`PublishedStory`).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

import asyncpg
import msgspec

from referral.analytics import service as analytics
from referral.audit import service as audit
from referral.customers.schemas import (
    ERASED_TEXT,
    ExportedShare,
    ExportedStory,
    Subject,
)
from referral.events import service as events
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.lib.pagination import ListQuery
from referral.merchants.service import Caller
from referral.points import service as points
from referral.programs import rules as lifecycle
from referral.runtime import Runtime
from referral.stories import image, repo
from referral.stories.repo import PageRow, StoryRow
from referral.stories.schemas import (
    MAX_TEXT,
    PublicStory,
    SocialProof,
    Story,
    StoryCreate,
    StoryList,
    StoryStats,
    StoryUpdate,
)
from referral.web import i18n
from referral.web.intents import SHARE_CHANNELS, intent_url

STORY_REWARD_STATUSES = ("approved", "paid")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
SOCIAL_PROOF_STORIES = 6


def clean_text(raw: str) -> str:
    """One paragraph of plain text: whitespace runs (newlines too) become one space;
    other control characters are refused. Escaping is the templates' job."""
    text = _SPACES.sub(" ", raw).strip()
    if not text:
        raise InvalidInput("the story text is empty", code="invalid_story_text")
    if _CONTROL.search(text):
        raise InvalidInput(
            "the story text may not contain control characters", code="invalid_story_text"
        )
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            f"the story text is longer than {MAX_TEXT} characters", code="invalid_story_text"
        )
    return text


def new_slug() -> str:
    """12 random URL-safe characters (72 bits): unrelated to the id, not guessable."""
    return secrets.token_urlsafe(9)


def story_url(base_url: str, slug: str) -> str:
    return f"{base_url}/s/{slug}"


def _to_story(runtime: Runtime, caller: Caller, row: StoryRow) -> Story:
    url = story_url(runtime.settings.public_base_url, row.slug)
    return Story(
        id=runtime.ids.encode("story", row.id),
        program_id=runtime.ids.encode("program", row.program_id),
        advocate_id=runtime.ids.encode("advocate", row.advocate_id),
        reward_id=runtime.ids.encode("reward", row.reward_id),
        status=row.status,
        text=row.body,
        display_name=row.display_name,
        url=url,
        image_url=f"{url}/image.png",
        created_at=row.created_at,
        published_at=row.published_at,
        livemode=caller.mode == "live",
    )


def _event(runtime: Runtime, row: StoryRow) -> dict[str, object]:
    return {
        "story_id": runtime.ids.encode("story", row.id),
        "advocate_id": runtime.ids.encode("advocate", row.advocate_id),
        "reward_id": runtime.ids.encode("reward", row.reward_id),
        "status": row.status,
    }


async def create(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, data: StoryCreate
) -> tuple[Story, bool]:
    """(story, created). A reward has at most one story: asking again returns it."""
    advocate_id = runtime.ids.decode("advocate", data.advocate_id)
    reward_id = runtime.ids.decode("reward", data.reward_id)
    reward = await repo.reward(conn, caller.merchant_id, reward_id)
    if reward is None or reward.advocate_id != advocate_id:
        raise NotFound(
            f"the advocate {data.advocate_id} has no reward {data.reward_id}",
            code="reward_not_found",
        )
    existing = await repo.by_reward(conn, caller.merchant_id, reward_id)
    if existing is not None:
        return _to_story(runtime, caller, existing), False
    if reward.side != "advocate" or reward.status not in STORY_REWARD_STATUSES:
        raise Conflict(
            f"a story needs an approved advocate reward; this one is {reward.status}",
            code="reward_not_eligible",
        )
    locale = i18n.locale_of(reward.locale)
    if data.text is None:
        told = i18n.reward_text(reward.kind, reward.amount, reward.currency, locale)
        text = i18n.t(locale, "story_default", reward=told, shop=reward.shop)
    else:
        text = clean_text(data.text)
    name = i18n.first_name(reward.advocate_name) if data.show_first_name else None
    status = "published" if reward.stories_auto_publish else "pending"
    while True:
        row = await repo.insert(
            conn,
            caller.merchant_id,
            reward.program_id,
            advocate_id,
            reward_id,
            new_slug(),
            text,
            name,
            status,
        )
        if row is not None:
            break
        existing = await repo.by_reward(conn, caller.merchant_id, reward_id)
        if existing is not None:  # a concurrent request told this reward's story first
            return _to_story(runtime, caller, existing), False
        # else the random slug collided: draw again
    await events.emit(
        conn, merchant_id=caller.merchant_id, type=f"story.{status}", data=_event(runtime, row)
    )
    if status == "published":
        await _story_points(conn, runtime.ids, row)
    return _to_story(runtime, caller, row), True


async def _story_points(conn: asyncpg.Connection, ids: PublicIds, row: StoryRow) -> None:
    """A published story earns its advocate the program's story points, once per story."""
    await points.earn_as_advocate(
        conn,
        ids=ids,
        merchant_id=row.merchant_id,
        program_id=row.program_id,
        advocate_id=row.advocate_id,
        source="story",
        key=str(row.id),
        at=datetime.now(UTC),
    )


async def _row(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    story_id: str,
    *,
    for_update: bool = False,
) -> StoryRow:
    row = await repo.get(
        conn, caller.merchant_id, runtime.ids.decode("story", story_id), for_update=for_update
    )
    if row is None:
        raise NotFound(f"no story with id {story_id}", code="story_not_found")
    return row


async def get(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, story_id: str
) -> Story:
    """The story with its figures."""
    row = await _row(conn, runtime, caller, story_id)
    return await _with_stats(conn, caller, _to_story(runtime, caller, row), row.id)


async def _with_stats(conn: asyncpg.Connection, caller: Caller, story: Story, pk: int) -> Story:
    figures = await repo.stats(conn, caller.merchant_id, pk, story.id)
    story.stats = StoryStats(
        views=figures.views,
        shares=figures.shares,
        clicks=figures.clicks,
        signups=figures.signups,
        orders=figures.orders,
        referred_revenue=figures.referred_revenue,
    )
    return story


async def update(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    story_id: str,
    data: StoryUpdate,
    actor: str = "api",
) -> Story:
    """`actor`: who changed it (the console's person; `api` through the API), kept on the
    status change's event."""
    row = await _row(conn, runtime, caller, story_id, for_update=True)
    status = row.status if data.status is msgspec.UNSET else data.status
    body = row.body if data.text is msgspec.UNSET else clean_text(data.text)
    display_name = row.display_name
    if data.show_first_name is not msgspec.UNSET:
        name = await repo.advocate_name(conn, caller.merchant_id, row.id)
        display_name = i18n.first_name(name) if data.show_first_name else None
    updated = await repo.update(
        conn, caller.merchant_id, row.id, status=status, body=body, display_name=display_name
    )
    if status != row.status:
        await events.emit(
            conn,
            merchant_id=caller.merchant_id,
            type=f"story.{status}",
            data={**_event(runtime, updated), "actor": actor},
        )
        if status == "published":
            await _story_points(conn, runtime.ids, updated)
    # The advocate's words and name are theirs: the log keeps that they changed, not them.
    await audit.record(
        conn,
        caller=caller,
        action="story.updated",
        subject_type="story",
        subject_id=story_id,
        before={"status": row.status, "shows_first_name": row.display_name is not None},
        after={
            "status": updated.status,
            "shows_first_name": updated.display_name is not None,
            "text_edited": updated.body != row.body,
        },
    )
    return _to_story(runtime, caller, updated)


async def list_stories(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    listing: ListQuery,
    program_id: str | None,
    advocate_id: str | None,
    status: str | None,
) -> tuple[list[Story], bool]:
    program = runtime.ids.decode("program", program_id) if program_id else None
    advocate = runtime.ids.decode("advocate", advocate_id) if advocate_id else None
    cursor = listing.cursor(runtime.ids, "story")
    rows = await repo.list_page(
        conn,
        caller.merchant_id,
        program_id=program,
        advocate_id=advocate,
        status=status,
        cursor=cursor,
    )
    rows, more = cursor.split(rows)
    return [_to_story(runtime, caller, r) for r in rows], more


async def moderation_list(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    listing: ListQuery,
    status: str,
) -> StoryList:
    """A page of the merchant's stories of `status`, oldest first, each with its figures
    (as `get` gives them), and the count of stories in each status."""
    cursor = listing.cursor(runtime.ids, "story")
    rows = await repo.list_page(
        conn, caller.merchant_id, program_id=None, advocate_id=None, status=status, cursor=cursor
    )
    rows, more = cursor.split(rows)
    told = [await _with_stats(conn, caller, _to_story(runtime, caller, r), r.id) for r in rows]
    counts = await repo.status_counts(conn, caller.merchant_id)
    return StoryList(data=told, has_more=more, counts=counts)


def image_parts(story: PublishedStory) -> tuple[str, str, str, str]:
    """What the share image shows: the text, the byline, the call to action, the colour."""
    return (story.text, story.byline, story.cta, story.colour)


async def draft_image(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, story_id: str
) -> tuple[bytes, str]:
    """(PNG, ETag) of the story's share image as it reads once published, whatever its
    status now: for the merchant deciding whether to publish it."""
    row = await repo.page_by_id(conn, caller.merchant_id, runtime.ids.decode("story", story_id))
    if row is None:
        raise NotFound(f"no story with id {story_id}", code="story_not_found")
    parts = image_parts(_published_story(runtime, row))
    return image.render(*parts), image.etag_for(*parts)


def _to_public(base_url: str, row: StoryRow) -> PublicStory:
    url = story_url(base_url, row.slug)
    return PublicStory(
        text=row.body,
        display_name=row.display_name,
        url=url,
        image_url=f"{url}/image.png",
        published_at=row.published_at,
    )


async def social_proof(
    conn: asyncpg.Connection, *, runtime: Runtime, program_id: str
) -> SocialProof:
    """Public figures of a running program: friends who joined this month (in the
    merchant's time zone) and the latest published stories. Counts only, no one's data."""
    program = await repo.public_program(conn, runtime.ids.decode("program", program_id))
    if program is None:
        raise NotFound(f"no program with id {program_id}", code="program_not_found")
    count = await repo.friends_since(conn, program.merchant_id, program.id, program.month_start)
    stories = await repo.latest_published(
        conn, program.merchant_id, program.id, SOCIAL_PROOF_STORIES
    )
    base = runtime.settings.public_base_url
    return SocialProof(
        program_id=program_id,
        month=program.month,
        friends_joined_this_month=count,
        headline=i18n.friends_joined(count, i18n.locale_of(program.locale)),
        stories=[_to_public(base, r) for r in stories],
    )


async def hide_for_rewards(
    conn: asyncpg.Connection, *, merchant_id: int, reward_ids: list[int]
) -> None:
    """A referral rejected as fraud takes the stories about its rewards off the pages."""
    await repo.hide_for_rewards(conn, merchant_id, reward_ids)


async def record_share(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    channel: str,
    ids: PublicIds,
    story_id: int | None = None,
) -> None:
    """A share button followed: from a story page, or (no story) the advocate's share page.
    It earns the advocate the program's share points (capped per day)."""
    await repo.record_share(conn, merchant_id, program_id, advocate_id, story_id, channel)
    await points.earn_share(
        conn,
        ids=ids,
        merchant_id=merchant_id,
        program_id=program_id,
        advocate_id=advocate_id,
        channel=channel,
        at=datetime.now(UTC),
    )
    await analytics.record_share(
        conn,
        merchant_id=merchant_id,
        program_id=program_id,
        advocate_id=advocate_id,
        story_id=story_id,
        channel=channel,
    )


class PublishedStory(msgspec.Struct, frozen=True, kw_only=True):
    """A published story with what its page, image and share buttons need."""

    id: int
    merchant_id: int
    program_id: int
    advocate_id: int
    slug: str
    public_id: str
    locale: str
    colour: str
    shop: str
    text: str
    name: str | None
    url: str
    image_url: str
    offer: str | None  # what the reader (a friend) gets; None when friends get nothing
    cta_url: str
    cta: str  # the button: "Get 10 EUR off your first order"
    intro: str  # the page's heading: "Anna recommends Shop."
    byline: str

    def intent(self, channel: str) -> str | None:
        """The share intent of `channel` for the story page's URL (its preview shows the
        story image); None for a browser-only channel."""
        return intent_url(channel, text=self.text, url=self.url, subject=self.shop)


def _published_story(runtime: Runtime, row: PageRow) -> PublishedStory:
    base = runtime.settings.public_base_url
    locale = i18n.locale_of(row.locale)
    public_id = runtime.ids.encode("story", row.id)
    url = story_url(base, row.slug)
    name = row.display_name
    code = runtime.codec.generate(row.advocate_id)
    # A friend arriving while the program is paused, ended or not begun gets no offer (the
    # link still leads to the shop): the page must not promise one.
    running = lifecycle.is_running(
        row.program_status, row.program_starts_at, row.program_ends_at, datetime.now(UTC)
    )
    offer = i18n.offer_text(row.program_rewards.get("friend"), locale) if running else None
    return PublishedStory(
        id=row.id,
        merchant_id=row.merchant_id,
        program_id=row.program_id,
        advocate_id=row.advocate_id,
        slug=row.slug,
        public_id=public_id,
        locale=locale,
        colour=row.brand_colour,
        shop=row.shop,
        text=row.body,
        name=name,
        url=url,
        image_url=f"{url}/image.png",
        offer=offer,
        # The call to action: the advocate's referral link with the story attached, so the
        # click, and the signup and order after it, are credited to this story.
        cta_url=f"{base}/r/{code}?ch=story&s={public_id}",
        cta=i18n.t(locale, "story_cta", offer=offer)
        if offer
        else i18n.t(locale, "story_cta_no_offer", shop=row.shop),
        intro=i18n.t(locale, "story_cta_intro_named", name=name, shop=row.shop)
        if name
        else i18n.t(locale, "story_cta_intro", shop=row.shop),
        byline=i18n.t(locale, "story_by", name=name, shop=row.shop)
        if name
        else i18n.t(locale, "story_by_anonymous", shop=row.shop),
    )


async def published(
    conn: asyncpg.Connection, *, runtime: Runtime, slug: str
) -> PublishedStory | None:
    """The story at `slug` if anyone may see it: published, in a program not archived."""
    if not 8 <= len(slug) <= 32:
        return None
    row = await repo.page(conn, slug)
    if row is None or row.status != "published" or row.program_status == "archived":
        return None
    return _published_story(runtime, row)


async def view(
    conn: asyncpg.Connection, *, runtime: Runtime, slug: str, counted: bool
) -> PublishedStory | None:
    """The story for its page, its view recorded when `counted` (a person, not a bot)."""
    story = await published(conn, runtime=runtime, slug=slug)
    if story is not None and counted:
        await repo.record_view(conn, story.merchant_id, story.id)
        await analytics.record_story_view(
            conn,
            merchant_id=story.merchant_id,
            program_id=story.program_id,
            story_id=story.id,
            advocate_id=story.advocate_id,
        )
    return story


async def share(
    conn: asyncpg.Connection, *, runtime: Runtime, slug: str, channel: str, counted: bool
) -> PublishedStory | None:
    """The story shared on `channel`, the share recorded when `counted`; None for an
    unknown story or channel."""
    story = await published(conn, runtime=runtime, slug=slug)
    if story is None or channel not in SHARE_CHANNELS:
        return None
    if counted:
        await record_share(
            conn,
            merchant_id=story.merchant_id,
            program_id=story.program_id,
            advocate_id=story.advocate_id,
            channel=channel,
            ids=runtime.ids,
            story_id=story.id,
        )
    return story


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def export_customer(
    conn: asyncpg.Connection, *, runtime: Runtime, subject: Subject
) -> tuple[list[ExportedStory], list[ExportedShare]]:
    """Their stories (words, first name, status, page) and the share buttons they followed."""
    ids = runtime.ids
    stories = [
        ExportedStory(
            id=ids.encode("story", r.id),
            advocate_id=ids.encode("advocate", r.advocate_id),
            reward_id=ids.encode("reward", r.reward_id),
            body=r.body,
            display_name=r.display_name,
            status=r.status,
            slug=r.slug,
            created_at=r.created_at,
            published_at=r.published_at,
        )
        for r in await repo.customer_stories(conn, subject.merchant_id, subject.advocate_ids)
    ]
    shares = [
        ExportedShare(
            advocate_id=ids.encode("advocate", r.advocate_id),
            story_id=ids.encode("story", r.story_id) if r.story_id else None,
            channel=r.channel,
            shared_at=r.shared_at,
        )
        for r in await repo.customer_shares(conn, subject.merchant_id, subject.advocate_ids)
    ]
    return stories, shares


async def erase_customer(conn: asyncpg.Connection, *, runtime: Runtime, subject: Subject) -> int:
    """Their stories unpublished, with neither their words nor their first name. Each one
    that showed is announced hidden (`story.hidden`, actor `erasure`), as a moderator's
    would be; views and shares stay counted."""
    if not subject.advocate_ids:
        return 0
    erased = await repo.erase_stories(conn, subject.merchant_id, subject.advocate_ids, ERASED_TEXT)
    for row in erased:
        if row.status_before != "hidden":
            await events.emit(
                conn,
                merchant_id=subject.merchant_id,
                type="story.hidden",
                data={**_event(runtime, row), "actor": "erasure"},
            )
    return len(erased)
