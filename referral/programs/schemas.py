"""Request and response shapes for programs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from referral.fraud.policy import FraudPolicy
from referral.programs.rules import ProgramState

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Url = Annotated[str, Meta(min_length=1, max_length=2048, examples=["https://shop.example/welcome"])]
HexColour = Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#1a7f37"])]
MinorUnits = Annotated[int, Meta(ge=0, le=10**12)]
CurrencyAmounts = Annotated[
    dict[Annotated[str, Meta(pattern=r"^[A-Z]{3}$")], MinorUnits],
    Meta(description="Amount in minor units per ISO 4217 currency", examples=[{"EUR": 1000}]),
]
ProgramStatus = Literal["draft", "active", "paused", "ended", "archived"]
# What create and PATCH may set: a program is ended only by POST /v1/programs/{id}/end.
SettableStatus = Literal["draft", "active", "paused", "archived"]
StartsAt = Annotated[
    datetime,
    Meta(description="When the program starts making referrals (default: when it is created)"),
]
EndsAt = Annotated[
    datetime,
    Meta(
        description="When it ends by itself, after `starts_at`; from then on it counts as "
        "ended (null: never)"
    ),
]
Locale = Annotated[
    Literal["en", "sv"], Meta(description="Language of the customer pages (share and story pages)")
]
WindowDays = Annotated[int, Meta(ge=1, le=365)]
HoldDays = Annotated[int, Meta(ge=0, le=365)]


class RewardRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What one party earns: a fixed amount per currency, or basis points of the subtotal."""

    kind: Literal["cash", "store_credit", "coupon", "points"]
    amounts: CurrencyAmounts | None = None
    basis_points: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    points: Annotated[int, Meta(ge=1, le=10**9)] | None = None
    # A coupon's code: made by the service (single use, its own prefix), or taken from the
    # program's coupon pool in the currency (codes the shop made in its own platform).
    coupon_source: Literal["generated", "pool"] = "generated"


class Tier(msgspec.Struct, forbid_unknown_fields=True):
    """From the advocate's `from_referral`-th successful referral on, pay `advocate`."""

    from_referral: Annotated[int, Meta(ge=2, le=100_000)]
    advocate: RewardRule


class Milestone(msgspec.Struct, forbid_unknown_fields=True):
    """A one-off bonus when the advocate reaches `referrals` approved referrals."""

    referrals: Annotated[int, Meta(ge=1, le=100_000)]
    reward: RewardRule


class Caps(msgspec.Struct, forbid_unknown_fields=True):
    """Limits on what one advocate earns; periods follow the merchant's time zone.
    A capped advocate never cancels the friend's reward."""

    period: Literal["day", "week", "month", "year"] = "month"
    max_rewards_per_period: Annotated[int, Meta(ge=0)] | None = None
    max_amount_per_period: CurrencyAmounts = {}
    max_rewards_total: Annotated[int, Meta(ge=0)] | None = None


class RewardSettings(msgspec.Struct, forbid_unknown_fields=True):
    advocate: RewardRule | None = None
    friend: RewardRule | None = None
    trigger: Literal["first_order", "signup"] = "first_order"
    new_customers_only: bool = True
    minimum_order: CurrencyAmounts = {}
    tiers: list[Tier] = []
    milestones: list[Milestone] = []
    caps: Caps = msgspec.field(default_factory=Caps)
    friend_coupon_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    # A cancelled or fully refunded order gives back the friend coupon it redeemed.
    release_coupon_on_refund: bool = False


class ProgramCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    landing_url: Url
    fallback_url: Url | None = None
    status: SettableStatus = "active"
    starts_at: StartsAt | None = None
    ends_at: EndsAt | None = None
    attribution_window_days: WindowDays = 30
    hold_days: HoldDays = 30
    rewards: RewardSettings = msgspec.field(default_factory=RewardSettings)
    fraud_policy: FraudPolicy = msgspec.field(default_factory=FraudPolicy)
    qr_foreground: HexColour = "#000000"
    qr_background: HexColour = "#ffffff"
    brand_colour: HexColour = "#1a7f37"
    locale: Locale = "en"
    stories_auto_publish: bool = False


class ProgramUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    landing_url: Url | UnsetType = UNSET
    fallback_url: Url | None | UnsetType = UNSET
    status: SettableStatus | UnsetType = UNSET
    starts_at: StartsAt | UnsetType = UNSET
    ends_at: EndsAt | None | UnsetType = UNSET
    attribution_window_days: WindowDays | UnsetType = UNSET
    hold_days: HoldDays | UnsetType = UNSET
    rewards: RewardSettings | UnsetType = UNSET
    qr_foreground: HexColour | UnsetType = UNSET
    qr_background: HexColour | UnsetType = UNSET
    brand_colour: HexColour | UnsetType = UNSET
    locale: Locale | UnsetType = UNSET
    stories_auto_publish: bool | UnsetType = UNSET


class ProgramAction(msgspec.Struct, forbid_unknown_fields=True):
    """Who paused, resumed or ended a program, and why: kept in its event and audit row."""

    actor: Annotated[str, Meta(min_length=1, max_length=200, examples=["ops@shop.example"])] = "api"
    note: Annotated[str, Meta(max_length=2000)] | None = None


class Program(msgspec.Struct):
    id: str
    name: str
    status: ProgramStatus
    state: Annotated[
        ProgramState,
        Meta(
            description="The status with the clock applied, as of this answer: `scheduled` "
            "before `starts_at`, `running`, `paused`, `ended` (ended by hand, or past "
            "`ends_at`), `draft` or `archived`. Only a running program makes new referrals; "
            "referrals already made keep their rewards and follow their hold and review."
        ),
    ]
    starts_at: datetime
    ends_at: datetime | None
    ended_at: Annotated[
        datetime | None,
        Meta(description="When it ended: by POST /end, or its `ends_at` once passed"),
    ]
    landing_url: str
    fallback_url: str | None
    attribution_window_days: int
    hold_days: int
    rewards: RewardSettings
    rules_version: Annotated[
        int,
        Meta(
            description="Bumped by every change of `rewards`; each reward records the "
            "version it was granted under, and is never changed by a later one"
        ),
    ]
    fraud_policy: FraudPolicy
    fraud_policy_version: int
    qr_foreground: str
    qr_background: str
    brand_colour: str
    locale: str
    stories_auto_publish: bool
    created_at: datetime
    updated_at: datetime
    livemode: bool
    object: str = "program"
