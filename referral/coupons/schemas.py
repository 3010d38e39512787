"""What a checkout is told about a coupon typed beside the codes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

CouponStatus = Annotated[
    Literal["held", "issued", "redeemed", "expired", "void", "awaiting_coupon"],
    Meta(
        description="held: its reward is pending or in review, so it cannot be redeemed yet; "
        "issued: redeemable once, until it expires; void: its reward was reversed; "
        "awaiting_coupon: the program's coupon pool was empty, the code comes with the next "
        "upload"
    ),
]

CouponReason = Literal[
    "coupon_held",
    "coupon_not_found",
    "coupon_redeemed",
    "coupon_expired",
    "coupon_void",
    "coupon_other_currency",
    "coupon_other_customer",
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


CouponCode = Annotated[str, Meta(min_length=1, max_length=64, examples=["WELCOME-7QX2"])]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
Amount = Annotated[int, Meta(ge=0, le=10**13)]


class CouponPoolCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A pool of codes the shop made in its own platform, for the friends of one program
    whose reward is a pool coupon (`"coupon_source": "pool"`) in one currency."""

    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Welcome 10 EUR"])]
    currency: Currency
    low_below: Annotated[int, Meta(ge=0, le=10**7)] = 100
    low_days: Annotated[int, Meta(ge=0, le=365)] = 7


class CouponPool(msgspec.Struct, kw_only=True):
    """`low`: fewer than `low_below` codes left, or fewer than `low_days` days of use at the
    last seven days' rate (`coupon_pool.low` was recorded then, once, until a refill)."""

    id: str
    program_id: str
    name: str
    currency: str
    available: int
    assigned: int
    waiting: Annotated[int, Meta(description="Friends' rewards waiting for a code")]
    low_below: int
    low_days: int
    low_since: datetime | None
    created_at: datetime
    object: Literal["coupon_pool"] = "coupon_pool"


class CouponCodesUpload(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Codes as the shop's platform made them. `case`: keep them `as_given`, or `lower`
    them (typed codes are always matched without case)."""

    codes: Annotated[
        list[Annotated[str, Meta(max_length=200)]], Meta(min_length=1, max_length=100_000)
    ]
    case: Literal["as_given", "lower"] = "as_given"


class RefusedCode(msgspec.Struct):
    code: str
    reason: Literal["invalid_characters", "reads_as_generated_coupon", "is_a_referral_code"]


class CouponCodesAdded(msgspec.Struct, kw_only=True):
    """`duplicates`: codes already in a pool of this merchant or given as a coupon (or twice
    in the upload), compared without case: each code goes to one friend only."""

    added: int
    duplicates: int
    refused: Annotated[list[RefusedCode], Meta(description="At most the first 100")]
    refused_count: int
    issued_to_waiting: Annotated[int, Meta(description="Codes given at once to waiting rewards")]
    pool: CouponPool
    object: Literal["coupon_codes_added"] = "coupon_codes_added"


class CouponValidate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: CouponCode
    currency: Currency
    subtotal: Amount
    customer_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class CouponValidation(msgspec.Struct, kw_only=True):
    """Before payment: would this order redeem the coupon, and for how much (`discount`: the
    coupon's amount, at most the subtotal). `reason` when it would not."""

    code: str
    valid: bool
    reason: CouponReason | None
    amount: int | None
    currency: str | None
    discount: int
    held_until: datetime | None
    object: Literal["coupon_validation"] = "coupon_validation"


class CouponRedeem(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A redemption the shop's checkout reports on its own, before or without the order."""

    order_id: Annotated[str, Meta(min_length=1, max_length=200, examples=["1001"])]
    currency: Currency
    customer_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
