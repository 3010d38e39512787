"""Friend coupons: a coupon is the form a friend's coupon reward takes, and it follows its
reward's state. Issued with its reward but `held` while the reward is pending or in review
(the code exists and can be shown, but nothing redeems it and it does not expire); approval
makes it redeemable (`issued`, its validity counted from then); a reversal voids it and its
undo brings it back. An issued coupon is redeemed once, by the order that uses it, or
expires unused (the rewards worker then reverses its reward).

A coupon's code is made here (single use, with the coupon prefix, which no referral code can
start with, so checkout tells a typed coupon from a typed referral code by its first
characters), or taken from a pool of codes the shop made in its own platform: those are
found at checkout, without case, when a typed code is no referral code. A pool is never
allowed to block an order: a reward that finds it empty waits for the next upload.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from referral.audit import service as audit
from referral.codes.codec import CODE_ALPHABET, COUPON_PREFIX, lookup_key
from referral.coupons import repo
from referral.coupons.repo import Coupon, DueCoupon
from referral.coupons.schemas import (
    CouponAnswer,
    CouponCodesAdded,
    CouponCodesUpload,
    CouponPool,
    CouponPoolCreate,
    CouponReason,
    CouponRedeem,
    CouponValidate,
    CouponValidation,
    RefusedCode,
)
from referral.customers.schemas import ExportedCoupon
from referral.events import service as events
from referral.lib.errors import NotFound
from referral.lib.ids import PublicIds
from referral.lib.money import require_currency

if TYPE_CHECKING:  # the caller, for the audit log
    from referral.merchants.service import Caller

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
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    reward_id: int,
    reward_status: str,
    amount: int,
    currency: str,
    valid_days: int,
    valid_from: datetime,
    source: str = "generated",
) -> str | None:
    """The reward's code, held unless the reward is already approved: a new single-use code,
    or the oldest free code of the program's pool in the currency. An empty pool never
    stops the order: the reward waits for the next upload (None)."""
    status = state_for(reward_status)
    expires_at = valid_from + timedelta(days=valid_days)
    if source == "pool":
        taken = await repo.take_code(conn, merchant_id, program_id, currency, reward_id)
        if taken is None:
            await repo.insert_wait(
                conn, merchant_id, reward_id, program_id, currency, amount, valid_days
            )
            return None
        await repo.insert(
            conn, taken.code, merchant_id, reward_id, amount, currency, expires_at, status
        )
        await _announce_if_low(conn, ids, merchant_id, taken.pool_id)
        return taken.code
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


AWAITING = Coupon(code=None, status="awaiting_coupon", expires_at=None)


async def of_reward(conn: asyncpg.Connection, *, merchant_id: int, reward_id: int) -> Coupon | None:
    found = await repo.for_reward(conn, merchant_id, reward_id)
    if found is None and await repo.waits_of(conn, merchant_id, [reward_id]):
        return AWAITING
    return found


async def of_rewards(
    conn: asyncpg.Connection, *, merchant_id: int, reward_ids: list[int]
) -> dict[int, Coupon]:
    """The coupon of each of these rewards that has one (or awaits one from its pool)."""
    if not reward_ids:
        return {}
    found = await repo.of_rewards(conn, merchant_id, reward_ids)
    for reward_id in await repo.waits_of(conn, merchant_id, reward_ids):
        found.setdefault(reward_id, AWAITING)
    return found


def _answer(
    code: str,
    found: repo.TypedCoupon | None,
    *,
    currency: str,
    at: datetime,
    customer_id: str | None = None,
    order_id: str | None = None,
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
    elif found.status == "redeemed" and (order_id is None or found.redeemed_order_id != order_id):
        reason = "coupon_redeemed"
    elif found.status == "void":
        reason = "coupon_void"
    elif found.status == "expired" or found.expires_at <= at:
        reason = "coupon_expired"
    elif found.currency != currency:
        reason = "coupon_other_currency"
    elif customer_id and found.friend_customer_id and customer_id != found.friend_customer_id:
        reason = "coupon_other_customer"  # bound to the friend it was given to
    return CouponAnswer(
        code=code,
        applies=reason is None,
        reason=reason,
        amount=found.amount,
        currency=found.currency,
        held_until=held_until,
    )


async def check(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    code: str,
    currency: str,
    at: datetime,
    customer_id: str | None = None,
    order_id: str | None = None,
) -> CouponAnswer:
    """Would an order in `currency` at `at` (by `customer_id`, when known) redeem this
    coupon? Writes nothing. A coupon this same order already redeemed (`order_id`: a
    redemption reported before the order) applies."""
    found = await repo.lookup(conn, merchant_id, code)
    return _answer(
        code, found, currency=currency, at=at, customer_id=customer_id, order_id=order_id
    )


async def find_typed(conn: asyncpg.Connection, *, merchant_id: int, typed: str) -> str | None:
    """A code typed at checkout that is no referral code: a pool coupon, found without case
    (the shop's platform spells it its own way); None when it is none."""
    if not 1 <= len(typed) <= 64:
        return None
    return await repo.find_code(conn, merchant_id, typed.strip())


async def redeem(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    code: str,
    order_pk: int | None,
    order_id: str,
    currency: str,
    at: datetime,
    customer_id: str | None = None,
) -> CouponAnswer:
    """Redeem an issued, unexpired coupon in the order's currency with the order; otherwise
    say why not, as a quote would. The coupon's row is locked first, so a redemption and a
    concurrent approval or reversal of its reward happen one after the other. Redeeming
    again for the same order changes nothing and applies (idempotent)."""
    await repo.lock(conn, merchant_id, code)
    answer = await check(
        conn,
        merchant_id=merchant_id,
        code=code,
        currency=currency,
        at=at,
        customer_id=customer_id,
        order_id=order_id,
    )
    if answer.applies:
        await repo.redeem(conn, merchant_id, code, order_pk, order_id)
    return answer


async def release_for_order(
    conn: asyncpg.Connection, *, merchant_id: int, order_pk: int
) -> list[str]:
    """The order was cancelled or fully refunded: the coupons it redeemed are redeemable
    again where their program says so (`release_coupon_on_refund`)."""
    return await repo.release_for_order(conn, merchant_id, order_pk)


# --- the checkout's own coupon calls -------------------------------------------------------


def _not_a_coupon(code: str) -> CouponAnswer:
    return CouponAnswer(
        code=code, applies=False, reason="coupon_not_found", amount=None, currency=None
    )


async def _typed(conn: asyncpg.Connection, merchant_id: int, typed: str) -> str | None:
    key = lookup_key(typed)
    if is_coupon_code(key):
        return key
    return await find_typed(conn, merchant_id=merchant_id, typed=typed)


async def validate(
    conn: asyncpg.Connection, *, merchant_id: int, data: CouponValidate
) -> CouponValidation:
    """`POST /v1/coupons/validate`: the checkout's question before payment. Writes nothing."""
    require_currency(data.currency)
    code = await _typed(conn, merchant_id, data.code)
    at = datetime.now(UTC)
    answer = (
        _not_a_coupon(data.code)
        if code is None
        else await check(
            conn,
            merchant_id=merchant_id,
            code=code,
            currency=data.currency,
            at=at,
            customer_id=data.customer_id,
        )
    )
    return CouponValidation(
        code=answer.code,
        valid=answer.applies,
        reason=answer.reason,
        amount=answer.amount,
        currency=answer.currency,
        discount=min(answer.amount or 0, data.subtotal) if answer.applies else 0,
        held_until=answer.held_until,
    )


async def redeem_reported(
    conn: asyncpg.Connection, *, merchant_id: int, typed: str, data: CouponRedeem
) -> CouponAnswer:
    """`POST /v1/coupons/{code}/redeem`: a redemption the checkout reports on its own. The
    order, when reported with the same order id and code, finds it redeemed by itself."""
    require_currency(data.currency)
    code = await _typed(conn, merchant_id, typed)
    if code is None or await repo.lookup(conn, merchant_id, code) is None:
        raise NotFound(f"no coupon {typed[:64]}", code="coupon_not_found")
    return await redeem(
        conn,
        merchant_id=merchant_id,
        code=code,
        order_pk=None,
        order_id=data.order_id,
        currency=data.currency,
        at=datetime.now(UTC),
        customer_id=data.customer_id,
    )


# --- pools ---------------------------------------------------------------------------------

# What a pool code may be: what shop platforms make (letters, digits, - _ .), so a typed
# code and a stored one compare as text. Codes the checkout would read as a generated coupon
# (their folded form starts with its prefix) or as a referral code are refused.
_POOL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REFUSED_SHOWN = 100


def _pool_view(ids: PublicIds, row: repo.PoolRow, waiting: int) -> CouponPool:
    return CouponPool(
        id=ids.encode("coupon_pool", row.id),
        program_id=ids.encode("program", row.program_id),
        name=row.name,
        currency=row.currency,
        available=row.available,
        assigned=row.assigned,
        waiting=waiting,
        low_below=row.low_below,
        low_days=row.low_days,
        low_since=row.low_since,
        created_at=row.created_at,
    )


async def _view(
    conn: asyncpg.Connection, ids: PublicIds, merchant_id: int, pool_id: int
) -> CouponPool:
    row = await repo.pool(conn, merchant_id, pool_id)
    if row is None:
        raise NotFound("no such coupon pool", code="coupon_pool_not_found")
    waiting = await repo.waiting_count(conn, merchant_id, row.program_id, row.currency)
    return _pool_view(ids, row, waiting)


async def create_pool(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    program_id: int,
    data: CouponPoolCreate,
) -> CouponPool:
    """The caller has checked the program is the merchant's."""
    require_currency(data.currency)
    pool_id = await repo.insert_pool(
        conn,
        caller.merchant_id,
        program_id,
        data.currency,
        data.name,
        data.low_below,
        data.low_days,
    )
    created = await _view(conn, ids, caller.merchant_id, pool_id)
    await audit.record(
        conn,
        caller=caller,
        action="coupon_pool.created",
        subject_type="coupon_pool",
        subject_id=created.id,
        after=created,
    )
    return created


async def get_pool(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, pool_id: str
) -> CouponPool:
    return await _view(conn, ids, merchant_id, ids.decode("coupon_pool", pool_id))


async def list_pools(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, program_id: int
) -> list[CouponPool]:
    return [
        _pool_view(ids, row, await repo.waiting_count(conn, merchant_id, program_id, row.currency))
        for row in await repo.pools(conn, merchant_id, program_id)
    ]


async def add_codes(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    pool_id: str,
    data: CouponCodesUpload,
) -> CouponCodesAdded:
    """Codes added once each (a duplicate of any code the merchant has is skipped and
    counted), then given to the friends' rewards waiting for one, oldest first; the pool's
    low mark is cleared when it is no longer low."""
    merchant_id = caller.merchant_id
    internal = ids.decode("coupon_pool", pool_id)
    pool = await repo.pool(conn, merchant_id, internal)
    if pool is None:
        raise NotFound(f"no coupon pool {pool_id}", code="coupon_pool_not_found")
    await repo.lock_pool(conn, merchant_id, internal)  # one upload at a time per pool
    refused: list[RefusedCode] = []
    kept: list[str] = []
    for raw in data.codes:
        code = raw.strip()
        if data.case == "lower":
            code = code.lower()
        if not _POOL_CODE.fullmatch(code):
            refused.append(RefusedCode(code=raw[:64], reason="invalid_characters"))
        elif is_coupon_code(lookup_key(code)):
            refused.append(RefusedCode(code=code, reason="reads_as_generated_coupon"))
        else:
            kept.append(code)
    referral_codes = await repo.referral_codes(conn, [lookup_key(c) for c in kept])
    if referral_codes:
        refused += [
            RefusedCode(code=c, reason="is_a_referral_code")
            for c in kept
            if lookup_key(c) in referral_codes
        ]
        kept = [c for c in kept if lookup_key(c) not in referral_codes]
    added = await repo.add_codes(conn, merchant_id, internal, kept) if kept else 0
    issued = await _fill_waiting(conn, ids, merchant_id, pool)
    low = await repo.low(conn, merchant_id, internal)
    if low.available >= low.threshold:
        await repo.clear_low(conn, merchant_id, internal)
    answer = CouponCodesAdded(
        added=added,
        duplicates=len(kept) - added,
        refused=refused[:REFUSED_SHOWN],
        refused_count=len(refused),
        issued_to_waiting=issued,
        pool=await _view(conn, ids, merchant_id, internal),
    )
    await audit.record(
        conn,
        caller=caller,
        action="coupon_pool.codes_added",
        subject_type="coupon_pool",
        subject_id=pool_id,
        after={"added": added, "duplicates": answer.duplicates, "refused": len(refused)},
    )
    return answer


async def _fill_waiting(
    conn: asyncpg.Connection, ids: PublicIds, merchant_id: int, pool: repo.PoolRow
) -> int:
    """Give codes to the rewards waiting for one (oldest first) while codes last."""
    issued = 0
    while True:
        waiting = await repo.waiting(conn, merchant_id, pool.program_id, pool.currency, 500)
        if not waiting:
            return issued
        for wait in waiting:
            taken = await repo.take_code(
                conn, merchant_id, pool.program_id, pool.currency, wait.reward_id
            )
            if taken is None:
                return issued
            expires_at = datetime.now(UTC) + timedelta(days=wait.valid_days)
            await repo.insert(
                conn,
                taken.code,
                merchant_id,
                wait.reward_id,
                wait.amount,
                pool.currency,
                expires_at,
                state_for(wait.reward_status),
            )
            await repo.end_wait(conn, merchant_id, wait.reward_id)
            issued += 1


async def _announce_if_low(
    conn: asyncpg.Connection, ids: PublicIds, merchant_id: int, pool_id: int
) -> None:
    """`coupon_pool.low`, once when the pool crosses into low (a refill re-arms it)."""
    low = await repo.low(conn, merchant_id, pool_id)
    if low.available < low.threshold and await repo.mark_low(conn, merchant_id, pool_id):
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type="coupon_pool.low",
            data={
                "pool_id": ids.encode("coupon_pool", pool_id),
                "available": low.available,
                "used_last_7_days": low.used_last_7_days,
            },
        )


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
