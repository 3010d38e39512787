"""Request and response shapes for points: a program's earning rules, catalogue, expiry and
levels (one versioned document), a customer's balance and history, redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.programs.schemas import RewardRule

Points = Annotated[int, Meta(ge=1, le=10**9)]
Cap = Annotated[int, Meta(ge=1, le=10**6)]
CurrencyCode = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
ItemId = Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,40}$", examples=["5-eur-coupon"])]
LevelName = Annotated[str, Meta(min_length=1, max_length=40)]


class FixedRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A fixed number of points for one thing done."""

    enabled: bool = True
    points: Points = 1


class ShareRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Points per share, at most `per_day` shares a day counted (the merchant's day). Bots,
    link unfurlers and a second share to the same channel the same day earn nothing."""

    enabled: bool = True
    points: Points = 1
    per_day: Cap = 3


class OrderRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`points` for every `per` minor units of an order's subtotal, per currency (orders in
    another currency earn none), on every order the shop reports; refunds take them back pro
    rata. Example: {"points": 1, "per": {"EUR": 100}} is one point per euro."""

    per: Annotated[dict[CurrencyCode, Annotated[int, Meta(ge=1, le=10**9)]], Meta(min_length=1)]
    enabled: bool = True
    points: Points = 1


class Earning(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Each way to earn, on or off with its amount and caps; a missing rule earns nothing."""

    advocate_referral: FixedRule | None = None  # the advocate, for a friend's first order
    friend_first_order: FixedRule | None = None  # the friend, for their first order
    share: ShareRule | None = None
    story: FixedRule | None = None  # a published story
    order: OrderRule | None = None
    birthday: FixedRule | None = None
    signup: FixedRule | None = None


class Expiry(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Points expire in lots, oldest first, `months` after they were earned ("earned") or
    after the customer's last earning ("activity"); `points.expiring` 30 days ahead."""

    months: Annotated[int, Meta(ge=1, le=120)] = 12
    since: Literal["earned", "activity"] = "earned"


class CatalogueItem(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What `points` buy: a coupon or store credit of `amount` minor units in `currency`."""

    id: ItemId
    points: Points
    kind: Literal["coupon", "store_credit"]
    amount: Annotated[int, Meta(ge=1, le=10**12)]
    currency: CurrencyCode
    coupon_days: Annotated[int, Meta(ge=1, le=3650)] = 90


class Level(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Reached at `threshold` qualifying activity in a rolling 12 months. `multiplier_bp`
    multiplies points earned (10000 = x1); `advocate` replaces the program's advocate
    reward for a referral made at this level."""

    name: LevelName
    threshold: Annotated[int, Meta(ge=0, le=10**12)]
    multiplier_bp: Annotated[int, Meta(ge=10_000, le=100_000)] = 10_000
    advocate: RewardRule | None = None


class Levels(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The program's levels, lowest first (the first one's threshold is 0: everyone's).
    `qualifier`: what counts — referred friends, points earned, or spend in `currency`."""

    qualifier: Literal["referrals", "points", "spend"]
    levels: Annotated[list[Level], Meta(min_length=1, max_length=10)]
    currency: CurrencyCode | None = None


class PointsRules(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    earning: Earning = msgspec.field(default_factory=Earning)
    expiry: Expiry = msgspec.field(default_factory=Expiry)
    catalogue: Annotated[list[CatalogueItem], Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    levels: Levels | None = None


class PointsSettings(msgspec.Struct, kw_only=True):
    object: Literal["points_rules"] = "points_rules"
    program_id: str
    version: int
    rules: PointsRules
    created_at: datetime


class Lot(msgspec.Struct, kw_only=True):
    id: str
    source: str
    points: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


class Entry(msgspec.Struct, kw_only=True):
    kind: str
    delta: int
    lot_id: str
    ref: str | None
    created_at: datetime


class NextExpiry(msgspec.Struct, kw_only=True):
    points: int
    at: datetime


class LevelView(msgspec.Struct, kw_only=True):
    name: str
    qualifying: int
    reached_at: datetime | None  # None: the first level, where everyone starts
    held_until: datetime | None  # not demoted before this
    next_level: str | None
    to_next: int | None  # how much more qualifying activity reaches the next level
    qualifier: str
    currency: str | None = None  # levels by spend: its currency (amounts in minor units)


class LevelChange(msgspec.Struct, kw_only=True):
    from_level: str | None
    to_level: str
    qualifying: int
    rules_version: int
    at: datetime


class LevelExplained(msgspec.Struct, kw_only=True):
    """The advocate's level now and how they got there (newest change first): a level may
    pay another advocate reward than the program's (its `advocate` rule) and multiply
    points."""

    level: LevelView
    advocate_reward: RewardRule | None
    multiplier_bp: int
    changes: list[LevelChange]


class Balance(msgspec.Struct, kw_only=True):
    object: Literal["points_balance"] = "points_balance"
    customer_id: str
    program_id: str
    balance: int
    lots: list[Lot]
    history: list[Entry]
    next_expiry: NextExpiry | None
    level: LevelView | None
    catalogue: list[CatalogueItem]


class RedemptionRequest(msgspec.Struct, forbid_unknown_fields=True):
    program_id: str
    item: ItemId


class Redemption(msgspec.Struct, kw_only=True):
    object: Literal["points_redemption"] = "points_redemption"
    id: str
    customer_id: str
    program_id: str
    item: str
    points: int
    kind: str
    amount: int
    currency: str
    coupon_code: str | None
    reward_id: str
    status: Literal["active", "cancelled"]
    created_at: datetime
    cancelled_at: datetime | None
