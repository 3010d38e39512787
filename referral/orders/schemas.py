"""Request and response shapes for orders, refunds and cancels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.coupons.schemas import CouponAnswer
from referral.referrals.schemas import Currency, MinorUnits, ReferralSummary, Shopper, Text200
from referral.rewards.schemas import RewardSummary


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


class OrderResult(msgspec.Struct):
    order_id: str
    referred: bool
    referral: ReferralSummary | None
    rewards: list[RewardSummary]
    coupons_redeemed: list[str]
    notes: list[str]
    coupons: list[CouponAnswer] = msgspec.field(default_factory=list)
    object: str = "order"


class OrderState(msgspec.Struct):
    order_id: str
    status: str
    total: int
    refunded: int
    currency: str
    rewards: list[RewardSummary]
    object: str = "order_state"


class ImportedOrder(msgspec.Struct, frozen=True):
    """A past order from the service the shop switched from (`referral/imports/`): recorded
    as history, never attributed and never earning."""

    order_id: str
    customer_id: str | None
    email: str | None  # normalised
    subtotal: int
    total: int
    currency: str
    occurred_at: datetime


class OrdersImported(msgspec.Struct, frozen=True):
    """Per order given, in order: `created`, `unchanged` (recorded before, the same), or
    `conflict` (the id was recorded before with other amounts or another buyer)."""

    outcomes: list[Literal["created", "unchanged", "conflict"]]
