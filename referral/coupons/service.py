"""Friend coupons: a coupon is the form a friend's coupon reward takes. It is issued with
its reward, voided and restored with it, redeemed by the order that uses it, and expires
unused (the rewards worker then reverses its reward).

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

__all__ = ["Coupon", "DueCoupon"]


def new_code() -> str:
    return COUPON_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def is_coupon_code(lookup_key: str) -> bool:
    """Whether a code typed at checkout (folded by the code codec) is a coupon."""
    return lookup_key.startswith(COUPON_PREFIX)


async def issue(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    reward_id: int,
    amount: int,
    currency: str,
    expires_at: datetime,
) -> str:
    """A new single-use code for the reward."""
    while True:
        code = new_code()
        if await repo.insert(conn, code, merchant_id, reward_id, amount, currency, expires_at):
            return code
        # a 10-character random code collided: draw again


async def void(conn: asyncpg.Connection, *, merchant_id: int, reward_id: int) -> None:
    """The reward was reversed: an unused coupon stops working."""
    await repo.void(conn, merchant_id, reward_id)


async def restore(conn: asyncpg.Connection, *, merchant_id: int, reward_id: int) -> None:
    """The reversal was undone: a voided coupon works again."""
    await repo.restore(conn, merchant_id, reward_id)


async def of_reward(conn: asyncpg.Connection, *, merchant_id: int, reward_id: int) -> Coupon | None:
    return await repo.for_reward(conn, merchant_id, reward_id)


async def codes_of(
    conn: asyncpg.Connection, *, merchant_id: int, reward_ids: list[int]
) -> dict[int, str]:
    """The coupon code of each of these rewards that has one, in one query."""
    if not reward_ids:
        return {}
    return await repo.codes(conn, merchant_id, reward_ids)


async def redeem(
    conn: asyncpg.Connection, *, merchant_id: int, code: str, order_pk: int, at: datetime
) -> bool:
    """Redeem an issued, unexpired coupon with an order; False if it cannot be."""
    return await repo.redeem(conn, merchant_id, code, order_pk, at) is not None


async def take_due_to_expire(
    conn: asyncpg.Connection, *, now: datetime, limit: int
) -> list[DueCoupon]:
    """Issued coupons past their expiry, locked for this worker (SKIP LOCKED), marked
    expired; the caller reverses their rewards in the same transaction."""
    due = await repo.due_to_expire(conn, now, limit)
    for coupon in due:
        await repo.mark_expired(conn, coupon.merchant_id, coupon.reward_id)
    return due
