"""Request and response shapes for stories, their figures and the public social proof."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

MAX_TEXT = 280
StoryText = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TEXT,
        description="Plain text, one paragraph; shown escaped",
        examples=["I got 10 EUR at Demo Shop for telling friends about it"],
    ),
]
StoryStatus = Literal["pending", "published", "hidden"]


class StoryCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A story about one of the advocate's approved (or paid) rewards."""

    advocate_id: Annotated[str, Meta(examples=["adv_x7k2m9qa4b"])]
    reward_id: Annotated[str, Meta(examples=["rwd_x7k2m9qa4b"])]
    text: StoryText | None = None  # None: the default sentence in the program's language
    show_first_name: bool = False


class StoryUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Moderation (status) and edits by the merchant."""

    status: StoryStatus | UnsetType = UNSET
    text: StoryText | UnsetType = UNSET
    show_first_name: bool | UnsetType = UNSET


class StoryStats(msgspec.Struct):
    """What the story brought: counted views (no bots), shares per channel, clicks on links
    carrying the story, friends it brought (signups), their orders and the referred revenue
    (order totals less refunds, minor units per currency)."""

    views: int
    shares: dict[str, int]
    clicks: int
    signups: int
    orders: int
    referred_revenue: dict[str, int]


class Story(msgspec.Struct):
    id: str
    program_id: str
    advocate_id: str
    reward_id: str
    status: StoryStatus
    text: str
    display_name: str | None
    url: str
    image_url: str
    created_at: datetime
    published_at: datetime | None
    livemode: bool
    stats: StoryStats | None = None
    object: str = "story"


class StoryList(msgspec.Struct, kw_only=True):
    """A page of stories of one status with their figures, and how many the merchant has
    in each status."""

    data: list[Story]
    has_more: bool
    counts: dict[str, int]


class PublicStory(msgspec.Struct):
    """A published story as anyone may see it: no ids, amounts of others or last names."""

    text: str
    display_name: str | None
    url: str
    image_url: str
    published_at: datetime


class SocialProof(msgspec.Struct):
    program_id: str
    month: str  # YYYY-MM in the merchant's time zone
    friends_joined_this_month: int
    headline: str  # "1,284 friends joined this month", in the program's language
    stories: list[PublicStory]
    object: str = "social_proof"
