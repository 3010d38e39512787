"""What a checkout is told about a coupon typed beside the codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

CouponStatus = Annotated[
    Literal["held", "issued", "redeemed", "expired", "void"],
    Meta(
        description="held: its reward is pending or in review, so it cannot be redeemed yet; "
        "issued: redeemable once, until it expires; void: its reward was reversed"
    ),
]

CouponReason = Literal[
    "coupon_held",
    "coupon_not_found",
    "coupon_redeemed",
    "coupon_expired",
    "coupon_void",
    "coupon_other_currency",
]


class CouponAnswer(msgspec.Struct):
    """A typed coupon at checkout. In a quote, `applies` says whether the order would redeem
    it now; in an order's answer, whether this order redeemed it. When it does not apply,
    `reason` says why, in words a shop can map to its own message (`coupon_held`: the
    referral behind it is still in review or within its hold; `held_until` is the end of
    the hold when one is known, null while a person reviews it)."""

    code: str
    applies: bool
    reason: CouponReason | None
    amount: int | None
    currency: str | None
    held_until: datetime | None = None
