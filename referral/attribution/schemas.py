"""Request and response shapes for checkout calls and referrals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from referral.attribution.rules import Check
from referral.fraud.rules import Decision
from referral.referrals.schemas import Review
from referral.rewards.schemas import Reward

Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
MinorUnits = Annotated[int, Meta(ge=0, le=10**13)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
Email = Annotated[str, Meta(max_length=254, examples=["friend@example.com"])]
Code = Annotated[str, Meta(min_length=1, max_length=40, examples=["6VJ2MN9"])]
Token = Annotated[str, Meta(min_length=1, max_length=512)]


class Address(msgspec.Struct, forbid_unknown_fields=True):
    line1: Annotated[str, Meta(max_length=200)] = ""
    line2: Annotated[str, Meta(max_length=200)] = ""
    city: Annotated[str, Meta(max_length=100)] = ""
    postal_code: Annotated[str, Meta(max_length=20)] = ""
    country: Annotated[str, Meta(max_length=2)] = ""


class LineItem(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, Meta(max_length=100)]
    quantity: Annotated[int, Meta(ge=1, le=100_000)] = 1
    amount: MinorUnits = 0


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
    object: str = "quote"


class SignupRequest(Shopper, kw_only=True):
    customer_id: Text200
    occurred_at: datetime | None = None


class OrderRequest(Shopper, kw_only=True):
    order_id: Text200
    subtotal: MinorUnits
    total: MinorUnits
    currency: Currency
    occurred_at: datetime
    shipping_address: Address | None = None
    payment_fingerprint: Annotated[str, Meta(max_length=200)] | None = None
    line_items: Annotated[list[LineItem], Meta(max_length=500)] = []
    customer_is_new: bool | None = None
    is_import: bool = False
    metadata: Annotated[dict[str, str], Meta(max_length=50)] = {}


class RefundRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    refund_id: Text200
    amount: Annotated[int, Meta(ge=1, le=10**13)]
    currency: Currency
    occurred_at: datetime | None = None


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(max_length=200)] | None = None


class RewardSummary(msgspec.Struct):
    id: str
    side: str
    kind: str
    amount: int
    currency: str | None
    status: str
    coupon_code: str | None = None


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


class OrderResult(msgspec.Struct):
    order_id: str
    referred: bool
    referral: ReferralSummary | None
    rewards: list[RewardSummary]
    coupons_redeemed: list[str]
    notes: list[str]
    object: str = "order"


class OrderState(msgspec.Struct):
    order_id: str
    status: str
    total: int
    refunded: int
    currency: str
    rewards: list[RewardSummary]
    object: str = "order_state"


class Attribution(msgspec.Struct, omit_defaults=True):
    path: str  # code | link | signup_email
    code: str | None = None
    click_id: str | None = None
    channel: str | None = None
    story_id: str | None = None
    visitor_id: str | None = None
    clicked_at: datetime | None = None
    referer_host: str | None = None


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
    object: str = "referral"
