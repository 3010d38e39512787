"""What the widget's public JSON answers: the script's manifest, an advocate's share box
(opened by their share token) and a landing page's friend offer."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from referral.programs.rules import ProgramState

Colour = Annotated[str, Meta(pattern="^#[0-9a-f]{6}$", examples=["#1a7f37"])]


class WidgetManifest(msgspec.Struct):
    """The script of one widget version and its Subresource Integrity hash, for the
    `integrity` attribute of the shop's `<script>` tag."""

    version: Annotated[str, Meta(examples=["v1"])]
    script_url: Annotated[
        str, Meta(examples=["https://referral.shop.example/widget/v1/referral.js"])
    ]
    integrity: Annotated[str, Meta(description="sha384-… of the script's bytes")]
    bytes: int
    elements: list[str]
    object: str = "widget_manifest"


class WidgetLook(msgspec.Struct):
    """The program's look: its brand colour and the text colour readable on it (WCAG
    contrast), its language and the shop's name."""

    locale: str
    shop: str
    colour: Colour
    on_colour: Colour


class WidgetChannel(msgspec.Struct):
    """A share button: its network, its label and the tracked URL that records the share
    and goes on to the network's share intent."""

    channel: str
    label: str
    url: str


class WidgetReward(msgspec.Struct):
    """One of the advocate's rewards, as their share page shows it."""

    text: str
    status: str
    status_text: str
    source: str
    notes: list[str]


class WidgetShareWords(msgspec.Struct):
    """The box's words, in its language."""

    title: str
    intro: str
    your_link: str
    copy: str
    copied: str
    share_on: str
    share_sheet: str
    qr_alt: str
    your_rewards: str
    no_rewards: str


class WidgetPointsItem(msgspec.Struct):
    """A catalogue item: what it is, what it costs, and whether the balance buys it now.
    `redeem_url` takes a form POST with `item` (the share page's own form: it answers with
    the share page, showing the code)."""

    item: str
    what: str
    cost: str
    affordable: bool
    redeem_url: str


class WidgetPoints(msgspec.Struct):
    """The advocate's points, as their share page shows them, in the box's language."""

    title: str
    balance: str
    expiry: str | None
    level: str | None
    to_next: str | None  # "2 more friends to Gold"
    progress: list[int] | None  # [so far, needed] for a progress bar
    thanks: str | None  # after a purchase
    catalogue: list[WidgetPointsItem]
    redeem: str  # the button's word


class WidgetShare(msgspec.Struct):
    """What `<referral-share>` shows: the advocate's own link, QR image, share buttons and
    rewards. The copy and share-sheet URLs record those shares when fetched."""

    look: WidgetLook
    link: str
    qr_url: str
    share_text: str
    channels: list[WidgetChannel]
    copy_url: str
    share_sheet_url: str
    share_sheet_link: str
    rewards: list[WidgetReward]
    words: WidgetShareWords
    points: WidgetPoints | None = None  # None: the program has no points
    object: str = "widget_share"


class WidgetOffer(msgspec.Struct):
    """What `<referral-offer>` shows a friend on the landing page: only what the link's
    program offers everyone (no advocate, no figures). `offer` is None when friends get
    nothing or the program is not running (paused, ended, not started): show nothing."""

    program_id: str
    code: str
    active: bool
    program_state: ProgramState
    look: WidgetLook
    intro: str
    heading: str
    offer: str | None
    object: str = "widget_offer"
