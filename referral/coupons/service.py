"""Friend coupons: a coupon is the form a friend's coupon reward takes, and it follows its
reward's state. Issued with its reward but `held` while the reward is pending or in review
(the code exists and can be shown, but nothing redeems it and it does not expire); approval
makes it redeemable (`issued`, its validity counted from then); a reversal voids it and its
undo brings it back. An issued coupon is redeemed once, by the order that uses it, or
expires unused (the rewards worker then reverses its reward).

Codes carry the coupon prefix, which no referral code can start with, so checkout tells a
typed coupon from a typed referral code by its first characters.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import asyncpg

from referral.codes.codec import CODE_ALPHABET, COUPON_PREFIX
from referral.coupons import repo
from referral.coupons.repo import Coupon, DueCoupon
from referral.coupons.schemas import CouponAnswer, CouponReason
from referral.customers.schemas import ExportedCoupon

__all__ = ["Coupon", "CouponAnswer", "DueCoupon"]

# The coupon's state for each state of its reward (paid never happens to a coupon reward:
# coupons are not money and never enter a payout), and the states it may come from.
_FOLLOWS = {
    "pending": ("held", ["void"]),
    "in_review": ("held", ["void"]),
    "approved": ("issued", ["held", "void"]),
    "paid": ("issued", ["held", "void"]),
    "reversed": ("void", ["held", "issued"]),
}

HELD_RULE = (
    "A reward that is pending or in review is held in every form it takes: cash and store "
    "credit stay in the pending ledger account and out of payouts, and the friend's coupon is "
    "issued held (its code is known, but no order can redeem it and its validity has not "
    "started) until its reward is approved, by the hold passing or by a person. Rejecting or "
    "reversing the reward voids the coupon; undoing that brings it back in the state its "
    "reward returns to."
)


def new_code() -> str:
    return COUPON_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def is_coupon_code(lookup_key: str) -> bool:
    """Whether a code typed at checkout (folded by the code codec) is a coupon."""
    return lookup_key.startswith(COUPON_PREFIX)


def state_for(reward_status: str) -> str:
    """The state a coupon has while its reward is in `reward_status`."""
    return _FOLLOWS[reward_status][0]


async def issue(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    reward_id: int,
    reward_status: str,
    amount: int,
    currency: str,
    expires_at: datetime,
) -> str:
    """A new single-use code for the reward, held unless the reward is already approved."""
    status = state_for(reward_status)
    while True:
        code = new_code()
        if await repo.insert(
            conn, code, merchant_id, reward_id, amount, currency, expires_at, status
        ):
            return code
        # a 10-character random code collided: draw again


async def follow(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    reward_id: int,
    reward_status: str,
    at: datetime,
) -> None:
    """The reward moved to `reward_status` (in the caller's transaction, its row locked):
    bring its coupon along. A redeemed or expired coupon stays as it is."""
    status, from_statuses = _FOLLOWS[reward_status]
    await repo.follow(conn, merchant_id, reward_id, status, from_statuses, at)


async def of_reward(conn: asyncpg.Connection, *, merchant_id: int, reward_id: int) -> Coupon | None:
    return await repo.for_reward(conn, merchant_id, reward_id)


async def of_rewards(
    conn: asyncpg.Connection, *, merchant_id: int, reward_ids: list[int]
) -> dict[int, Coupon]:
    """The coupon of each of these rewards that has one, in one query."""
    if not reward_ids:
        return {}
    return await repo.of_rewards(conn, merchant_id, reward_ids)


def _answer(
    code: str, found: repo.TypedCoupon | None, *, currency: str, at: datetime
) -> CouponAnswer:
    if found is None:
        return CouponAnswer(
            code=code, applies=False, reason="coupon_not_found", amount=None, currency=None
        )
    reason: CouponReason | None = None
    held_until = None
    if found.status == "held":
        reason = "coupon_held"
        if found.reward_status == "pending":
            held_until = found.hold_until
    elif found.status == "redeemed":
        reason = "coupon_redeemed"
    elif found.status == "void":
        reason = "coupon_void"
    elif found.status == "expired" or found.expires_at <= at:
        reason = "coupon_expired"
    elif found.currency != currency:
        reason = "coupon_other_currency"
    return CouponAnswer(
        code=code,
        applies=reason is None,
        reason=reason,
        amount=found.amount,
        currency=found.currency,
        held_until=held_until,
    )


async def check(
    conn: asyncpg.Connection, *, merchant_id: int, code: str, currency: str, at: datetime
) -> CouponAnswer:
    """Would an order in `currency` at `at` redeem this coupon? Writes nothing."""
    found = await repo.lookup(conn, merchant_id, code)
    return _answer(code, found, currency=currency, at=at)


async def redeem(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    code: str,
    order_pk: int,
    currency: str,
    at: datetime,
) -> CouponAnswer:
    """Redeem an issued, unexpired coupon in the order's currency with the order; otherwise
    say why not, as a quote would. The coupon's row is locked first, so a redemption and a
    concurrent approval or reversal of its reward happen one after the other."""
    await repo.lock(conn, merchant_id, code)
    answer = await check(conn, merchant_id=merchant_id, code=code, currency=currency, at=at)
    if answer.applies:
        await repo.redeem(conn, merchant_id, code, order_pk)
    return answer


async def take_due_to_expire(
    conn: asyncpg.Connection, *, now: datetime, limit: int
) -> list[DueCoupon]:
    """Issued coupons past their expiry, locked for this worker (SKIP LOCKED), marked
    expired; the caller reverses their rewards in the same transaction. Held coupons do not
    expire: their validity starts when their reward is approved."""
    due = await repo.due_to_expire(conn, now, limit)
    for coupon in due:
        await repo.mark_expired(conn, coupon.merchant_id, coupon.reward_id)
    return due


async def export_customer(
    conn: asyncpg.Connection, *, merchant_id: int, reward_ids: list[int]
) -> dict[int, ExportedCoupon]:
    """The coupons of a customer's rewards (referral/customers/), by reward. Coupon codes are
    random: an erasure leaves them."""
    return {
        c.reward_id: ExportedCoupon(
            code=c.code,
            status=c.status,
            amount=c.amount,
            currency=c.currency.strip(),
            expires_at=c.expires_at,
            created_at=c.created_at,
        )
        for c in await repo.customer_coupons(conn, merchant_id, reward_ids)
    }
