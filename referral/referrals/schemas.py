"""Request and response shapes for referrals: the checkout's quote and signups, attribution,
the explain view and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from referral.coupons.schemas import CouponAnswer
from referral.fraud.rules import Decision
from referral.points.schemas import LevelExplained
from referral.referrals.rules import Check
from referral.rewards.schemas import Reward, RewardSummary

Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
MinorUnits = Annotated[int, Meta(ge=0, le=10**13)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
Email = Annotated[str, Meta(max_length=254, examples=["friend@example.com"])]
Code = Annotated[str, Meta(min_length=1, max_length=40, examples=["6VJ2MN9"])]
Token = Annotated[str, Meta(min_length=1, max_length=512)]


class Shopper(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields shared by quotes, signups and orders: who the friend is and how they came."""

    customer_id: Text200 | None = None
    email: Email | None = None
    codes: Annotated[list[Code], Meta(max_length=10)] = []
    ref_token: Token | None = None
    visitor_id: Annotated[str, Meta(max_length=64)] | None = None
    ip: Annotated[str, Meta(max_length=45)] | None = None
    user_agent: Annotated[str, Meta(max_length=1000)] | None = None


class QuoteRequest(Shopper, kw_only=True):
    subtotal: MinorUnits
    currency: Currency


class FriendOffer(msgspec.Struct):
    kind: Literal["cash", "store_credit", "coupon", "points"]
    amount: int
    currency: str | None


class Quote(msgspec.Struct):
    applies: bool
    reason: str | None
    friend_offer: FriendOffer | None
    advocate_id: str | None
    program_id: str | None
    code: str | None
    checks: list[Check]
    coupons: list[CouponAnswer] = msgspec.field(default_factory=list)
    object: str = "quote"


class SignupRequest(Shopper, kw_only=True):
    customer_id: Text200
    occurred_at: datetime | None = None


class ReferralSummary(msgspec.Struct):
    id: str
    status: str
    advocate_id: str
    program_id: str
    source: str
    rejection_reason: str | None


class SignupResult(msgspec.Struct):
    customer_id: str
    referred: bool
    referral: ReferralSummary | None
    rewards: list[RewardSummary]
    notes: list[str]
    object: str = "signup"


class Attribution(msgspec.Struct, omit_defaults=True):
    path: str  # code | link | signup_email
    code: str | None = None
    click_id: str | None = None
    channel: str | None = None
    story_id: str | None = None
    visitor_id: str | None = None
    clicked_at: datetime | None = None
    referer_host: str | None = None
    # The variant of the advocate's experiment the friend came by (the link's token, or
    # the advocate's at the time a typed code was used): its rewards follow it.
    experiment_id: str | None = None
    variant: str | None = None


class ReviewAction(msgspec.Struct, forbid_unknown_fields=True):
    """Who decided and why: kept in the referral's review history and its rewards'."""

    actor: Annotated[str, Meta(min_length=1, max_length=200, examples=["risk@shop.example"])]
    note: Annotated[str, Meta(max_length=2000)] | None = None


class Review(msgspec.Struct):
    action: Literal["approve", "reject"]
    actor: str
    note: str | None
    from_status: str
    to_status: str
    created_at: datetime


class Referral(msgspec.Struct):
    id: str
    program_id: str
    advocate_id: str
    status: str
    rejection_reason: str | None
    friend_customer_id: str | None
    attribution: dict[str, Any]
    checks: list[Check]
    decision: Decision | None
    signed_up_at: datetime | None
    converted_at: datetime | None
    first_order_id: str | None
    rewards: list[Reward]
    reviews: list[Review]
    created_at: datetime
    hold_rule: Annotated[
        str,
        Meta(description="How rewards that are pending or in review are held, coupons included"),
    ] = ""
    advocate_level: Annotated[
        LevelExplained | None,
        Meta(
            description="The advocate's level in a program with levels (explain only, null "
            "in lists): now, the reward and points multiplier it gives, and its changes"
        ),
    ] = None
    object: str = "referral"
