"""Rewards and the ledger.

Every state change of a reward goes through `transition()`: it locks the row, checks the
expected current state, writes the new state, its ledger entries, a history row and an
outbox event — all in the caller's transaction. Refunds, releases, reviews, manual actions
and payouts use it (payouts through its set-based twin `transition_many()`); nothing else
writes a reward's status or amount. Granting rewards for a referral is in `grant.py`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
import structlog

from referral.audit import service as audit
from referral.coupons import service as coupons
from referral.customers.schemas import (
    ERASED_TEXT,
    ExportedLedgerEntry,
    ExportedReward,
    Subject,
    Tombstones,
)
from referral.events import service as events
from referral.lib.errors import Conflict, NotFound
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, Page
from referral.programs.schemas import RewardRule, RewardSettings
from referral.rewards import repo
from referral.rewards.repo import RewardRow
from referral.rewards.rules import (
    MONEY_KINDS,
    Amount,
    ledger_moves,
    milestones_reached,
    refund_target,
    rule_amount,
)
from referral.rewards.schemas import Reward, RewardSummary, Transition

if TYPE_CHECKING:
    from referral.merchants.service import Caller

log = structlog.get_logger("referral.rewards")

__all__ = ["RewardRow"]

_EVENT_FOR = {
    "approved": "reward.approved",
    "paid": "reward.paid",
    "reversed": "reward.reversed",
    "in_review": "reward.in_review",
    "pending": "reward.pending",
}


def _event_data(ids: PublicIds, row: RewardRow) -> dict[str, Any]:
    return {
        "reward_id": ids.encode("reward", row.id),
        "advocate_id": ids.encode("advocate", row.advocate_id),
        "referral_id": ids.encode("referral", row.referral_id) if row.referral_id else None,
        "side": row.side,
        "kind": row.kind,
        "status": row.status,
        "amount": row.amount,
        "currency": row.currency,
    }


async def _announce(
    conn: asyncpg.Connection,
    merchant_id: int,
    type_: str,
    data: dict[str, Any],
    *,
    advocate_id: int,
    side: str,
) -> None:
    """A reward event: an advocate's carries their contact preference, a friend's says none
    is known (the key is there either way, so consumers read one shape)."""
    if side == "advocate":
        await events.emit(
            conn, merchant_id=merchant_id, type=type_, data=data, advocate_id=advocate_id
        )
    else:
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type=type_,
            data={**data, "contact_preference": None},
        )


async def create(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    referral_id: int | None,
    advocate_id: int,
    side: str,
    payee_key: str,
    rule: RewardRule,
    amount: Amount,
    order_pk: int | None,
    milestone: int | None,
    status: str,
    hold_until: datetime,
    earned_at: datetime,
    coupon_days: int,
    reason: str,
    rules_version: int,
    minimum_order: int | None = None,
) -> RewardRow | None:
    """Create a reward (pending or in_review) with its first ledger entry; None if it exists.
    `minimum_order`: the program's minimum for the order's currency, which later refunds
    of the order are judged by."""
    row = await repo.insert(
        conn,
        merchant_id,
        program_id,
        referral_id,
        advocate_id,
        side,
        payee_key,
        rule.kind,
        amount.currency,
        amount.value,
        rule.basis_points,
        order_pk,
        milestone,
        status,
        hold_until,
        earned_at,
        msgspec.to_builtins(rule),
        rules_version,
        minimum_order,
    )
    if row is None:
        return None
    transition_id = await repo.insert_first_transition(
        conn,
        merchant_id,
        row.id,
        status,
        amount.value,
        reason,
        ids.encode("reward", row.id),
        ids.encode("referral", referral_id) if referral_id else None,
    )
    if rule.kind in MONEY_KINDS:
        await repo.insert_entries(
            conn,
            merchant_id,
            row.id,
            transition_id,
            payee_key,
            amount.currency,
            ledger_moves(None, status, 0, amount.value),
        )
    if rule.kind == "coupon":
        await coupons.issue(
            conn,
            ids=ids,
            merchant_id=merchant_id,
            program_id=program_id,
            reward_id=row.id,
            reward_status=status,
            amount=amount.value,
            currency=amount.currency,
            valid_days=coupon_days,
            valid_from=max(earned_at, datetime.now(UTC)),
            source=rule.coupon_source,
        )
    await _announce(
        conn,
        merchant_id,
        "reward.created",
        _event_data(ids, row),
        advocate_id=advocate_id,
        side=side,
    )
    return row


async def transition(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    reward_id: int,
    expected: Collection[str],
    to: str,
    reason: str,
    amount: int | None = None,
    actor: str = "system",
    note: str | None = None,
) -> RewardRow:
    """The one way a reward changes state or value. Raises Conflict on an unexpected state."""
    row = await repo.get(conn, merchant_id, reward_id, lock=True)
    if row is None:
        raise NotFound("no such reward", code="reward_not_found")
    old_status, old_amount = row.status, row.amount
    if old_status not in expected:
        raise Conflict(
            f"the reward is {old_status}; this needs it to be {' or '.join(sorted(expected))}",
            code="reward_state_conflict",
        )
    reversed_from = None
    if to == "reversed":
        new_amount, reversed_from = 0, old_status
    elif old_status == "reversed":
        # Undo: the value before the reversal, capped by `amount` (what the order still
        # supports after refunds booked while the reward was reversed).
        new_amount = -await repo.last_reversal_delta(conn, merchant_id, reward_id)
        if amount is not None:
            new_amount = min(new_amount, amount)
    else:
        new_amount = old_amount if amount is None else amount
    if new_amount > old_amount and old_status != "reversed":
        raise Conflict("a reward's value can only go down", code="reward_amount_increase")
    updated = await repo.set_state(conn, merchant_id, reward_id, to, new_amount, reversed_from)
    transition_id = await repo.insert_transition(
        conn,
        merchant_id,
        reward_id,
        old_status,
        to,
        new_amount,
        new_amount - old_amount,
        reason,
        actor,
        note,
    )
    if row.kind in MONEY_KINDS:
        await repo.insert_entries(
            conn,
            merchant_id,
            reward_id,
            transition_id,
            row.payee_key,
            row.currency,
            ledger_moves(old_status, to, old_amount, new_amount),
        )
    if row.kind == "coupon" and to != old_status:
        # Held money is held everywhere: the coupon is redeemable only while its reward is
        # approved. Updating its row locks it, and a redemption locks that row first, so
        # the two happen one after the other.
        await coupons.follow(
            conn,
            merchant_id=merchant_id,
            reward_id=reward_id,
            reward_status=to,
            at=datetime.now(UTC),
        )
    event = _EVENT_FOR[to] if to != old_status else "reward.adjusted"
    data = {**_event_data(ids, updated), "reason": reason}
    await _announce(conn, merchant_id, event, data, advocate_id=row.advocate_id, side=row.side)
    return updated


async def reinstate(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    reward_id: int,
    reason: str,
    actor: str = "system",
    note: str | None = None,
) -> RewardRow:
    """Undo a reversal: back to the state and value before it, but never worth more than its
    order still supports. Refunds skip reversed rewards, so the order is re-read here (locked,
    as a refund locks it); an order refunded in full, cancelled or below the minimum leaves
    nothing to reinstate."""
    row = await repo.get(conn, merchant_id, reward_id)
    if row is None:
        raise NotFound("no such reward", code="reward_not_found")
    cap = None
    if row.order_pk is not None and row.status == "reversed":
        order = await repo.order_of_reward(conn, merchant_id, row.order_pk, row.program_id)
        cap = (
            0
            if order.status == "cancelled"
            else refund_target(
                original=row.original_amount,
                basis_points=row.basis_points,
                subtotal=order.subtotal,
                total=order.total,
                refunded=order.refunded,
                minimum=row.minimum_order,
            )
        )
        if cap == 0:
            raise Conflict(
                "the reward's order was cancelled or refunded: nothing is left to reinstate",
                code="reward_order_refunded",
            )
        row = await repo.get(conn, merchant_id, reward_id)  # as it is now the order is locked
    return await transition(
        conn,
        ids=ids,
        merchant_id=merchant_id,
        reward_id=reward_id,
        expected={"reversed"},
        to=row.reversed_from or "pending",
        reason=reason,
        actor=actor,
        note=note,
        amount=cap,
    )


async def transition_many(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    reward_ids: list[int],
    expected: str,
    to: str,
    reason: str,
    actor: str = "system",
    note: str | None = None,
    paid: list[int] | None = None,
) -> None:
    """`transition()` for many rewards at once, set-based, for moves that keep the amount
    (a payout batch paid, or a paid line failed). Same rules: rows locked, every one must be
    in the expected state, history, ledger entries and events written.

    `paid`: what each reward's payout line paid (frozen when it was batched), for a move into
    or out of paid. The line is what moved: a reward refunded or reversed after it was batched
    is booked as paid that much, the difference owed back (receivable) as after a refund after
    payment; failing a paid line undoes exactly that. A reversed reward stays reversed, with a
    history that lets a later reinstate land in the right state."""
    if not reward_ids:
        return
    unit_moves = ledger_moves(expected, to, 1, 1)
    paid_sign = dict(unit_moves).get("paid")
    if paid is not None and (paid_sign is None or len(paid) != len(reward_ids)):
        raise ValueError("paid amounts go with a move into or out of paid, one per reward")
    locked = await repo.lock_many(conn, merchant_id, reward_ids, expected, paid)
    if locked.found != len(reward_ids) or locked.unexpected:
        raise Conflict(
            f"{locked.unexpected} of {len(reward_ids)} rewards are not {expected}",
            code="reward_state_conflict",
        )
    payloads = await repo.transition_many(
        conn,
        merchant_id,
        reward_ids,
        expected,
        to,
        reason,
        actor,
        note,
        unit_moves,
        paid,
        paid_sign or 1,
    )
    await events.emit_many(conn, merchant_id=merchant_id, type=_EVENT_FOR[to], payloads=payloads)
    if paid is not None and locked.reversed:
        paid_of = dict(zip(reward_ids, paid, strict=True))
        for reward_id in locked.reversed:
            await _move_reversed(
                conn,
                merchant_id,
                reward_id,
                paid_of[reward_id],
                paying=paid_sign > 0,
                to=to,
                reason=reason,
                actor=actor,
                note=note,
            )


async def _move_reversed(
    conn: asyncpg.Connection,
    merchant_id: int,
    reward_id: int,
    paid: int,
    *,
    paying: bool,
    to: str,
    reason: str,
    actor: str,
    note: str | None,
) -> None:
    """A reward reversed while its payout line waited (or after it was paid) moves with the
    line. Paying: booked as paid, then reversed after payment (a receivable), so a reinstate
    returns it to paid. A paid line failing: the clawback and the payment are both undone,
    and a reinstate returns it to `to` (approved). Two history rows each way, so the last
    reversal still tells the value before it."""
    row = await repo.get(conn, merchant_id, reward_id)
    if paying:
        steps = ((reason, "paid", paid), ("reversed_before_payment", "receivable", -paid))
    else:
        steps = ((reason, "receivable", paid), (reason, "paid", -paid))
    for (why, account, value), (old, new, amount, delta) in zip(
        steps, (("reversed", "paid", paid, paid), ("paid", "reversed", 0, -paid)), strict=True
    ):
        transition_id = await repo.insert_transition(
            conn, merchant_id, reward_id, old, new, amount, delta, why, actor, note
        )
        if row.kind in MONEY_KINDS:
            await repo.insert_entries(
                conn,
                merchant_id,
                reward_id,
                transition_id,
                row.payee_key,
                row.currency,
                [(account, value)],
            )
    await repo.set_state(conn, merchant_id, reward_id, "reversed", 0, "paid" if paying else to)
    public = await repo.public_ids(conn, merchant_id, reward_id)
    await _announce(
        conn,
        merchant_id,
        "reward.paid" if paying else "reward.adjusted",
        {
            "reward_id": public.public_id,
            "referral_id": public.referral_public_id,
            "side": row.side,
            "kind": row.kind,
            "status": "reversed",
            "amount": 0,
            "currency": row.currency,
            "reason": reason,
        },
        advocate_id=row.advocate_id,
        side=row.side,
    )


async def approve(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    reward_id: int,
    reason: str,
    actor: str = "system",
    note: str | None = None,
    settings: RewardSettings | None = None,
) -> RewardRow:
    """Approve, then grant any milestone bonus the advocate has now reached."""
    row = await transition(
        conn,
        ids=ids,
        merchant_id=merchant_id,
        reward_id=reward_id,
        expected={"pending", "in_review"},
        to="approved",
        reason=reason,
        actor=actor,
        note=note,
    )
    if row.side == "advocate" and row.milestone is None:
        await _grant_milestones(conn, ids, row, settings)
    return row


async def _grant_milestones(
    conn: asyncpg.Connection,
    ids: PublicIds,
    reward: RewardRow,
    settings: RewardSettings | None,
) -> None:
    raw, rules_version = await repo.program_rules(conn, reward.merchant_id, reward.program_id)
    if settings is None:
        settings = msgspec.convert(raw, RewardSettings)
    if not settings.milestones:
        return
    # Two approvals at once must not both count 2 when together they make 3.
    await repo.lock_advocate(conn, reward.merchant_id, reward.advocate_id)
    successful = await repo.successful_referrals(conn, reward.merchant_id, reward.advocate_id)
    rules = {m.referrals: m.reward for m in settings.milestones}
    now = datetime.now(UTC)
    for threshold in milestones_reached(settings, successful):
        rule = rules[threshold]
        amount = rule_amount(rule, 0, reward.currency or "")
        if amount is None:
            continue  # no amount in this currency: nothing to grant
        created = await create(
            conn,
            ids=ids,
            merchant_id=reward.merchant_id,
            program_id=reward.program_id,
            referral_id=None,
            advocate_id=reward.advocate_id,
            side="advocate",
            payee_key=reward.payee_key,
            rule=rule,
            amount=amount,
            order_pk=None,
            milestone=threshold,
            status="pending",
            hold_until=now,
            earned_at=now,
            coupon_days=settings.friend_coupon_days,
            reason=f"milestone_{threshold}",
            rules_version=rules_version,
        )
        if created is not None:
            log.info("milestone_granted", reward_id=created.id, milestone=threshold)


# --- workers --------------------------------------------------------------------------


async def release_due(
    pool: asyncpg.Pool, *, ids: PublicIds, batch: int = 200, now: datetime | None = None
) -> int:
    """Approve every pending reward whose hold has passed. Safe with many instances: each
    batch takes its rows with FOR UPDATE SKIP LOCKED. Rewards in review are not pending,
    so they wait for a person."""
    released = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await repo.due(conn, now or datetime.now(UTC), batch)
            # Approving may lock the advocate (milestones): take those locks in one global
            # order, so two workers sharing advocates never deadlock.
            for row in sorted(rows, key=lambda r: (r.advocate_id, r.id)):
                await approve(
                    conn,
                    ids=ids,
                    merchant_id=row.merchant_id,
                    reward_id=row.id,
                    reason="hold_passed",
                )
        released += len(rows)
        if len(rows) < batch:
            return released


async def expire_coupons(
    pool: asyncpg.Pool, *, ids: PublicIds, batch: int = 200, now: datetime | None = None
) -> int:
    """Unused friend coupons past their expiry: the coupon expires, its reward is reversed."""
    expired = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            due = await coupons.take_due_to_expire(conn, now=now or datetime.now(UTC), limit=batch)
            for coupon in due:
                reward = await repo.get(conn, coupon.merchant_id, coupon.reward_id)
                if reward.status != "reversed":
                    await transition(
                        conn,
                        ids=ids,
                        merchant_id=coupon.merchant_id,
                        reward_id=coupon.reward_id,
                        expected={reward.status},
                        to="reversed",
                        reason="coupon_expired",
                    )
        expired += len(due)
        if len(due) < batch:
            return expired


# --- reading --------------------------------------------------------------------------


async def to_rewards(
    conn: asyncpg.Connection, *, ids: PublicIds, rows: list[RewardRow]
) -> list[Reward]:
    """Rewards with their histories and coupon codes in two queries however many there are,
    so a page of a list costs what one reward does."""
    if not rows:
        return []
    merchant_id = rows[0].merchant_id
    histories: dict[int, list[Transition]] = defaultdict(list)
    for h in await repo.histories(conn, merchant_id, [r.id for r in rows]):
        histories[h.reward_id].append(
            Transition(
                from_status=h.from_status,
                to_status=h.to_status,
                amount=h.amount,
                delta=h.delta,
                reason=h.reason,
                actor=h.actor,
                note=h.note,
                at=h.created_at,
            )
        )
    coupons_of = await coupons.of_rewards(
        conn, merchant_id=merchant_id, reward_ids=[r.id for r in rows if r.kind == "coupon"]
    )
    return [
        Reward(
            id=ids.encode("reward", row.id),
            referral_id=ids.encode("referral", row.referral_id) if row.referral_id else None,
            advocate_id=ids.encode("advocate", row.advocate_id),
            side=row.side,
            payee=row.payee_key,
            kind=row.kind,
            amount=row.amount,
            original_amount=row.original_amount,
            currency=row.currency,
            status=row.status,
            hold_until=row.hold_until,
            earned_at=row.earned_at,
            milestone=row.milestone,
            coupon_code=coupons_of[row.id].code if row.id in coupons_of else None,
            coupon_status=coupons_of[row.id].status if row.id in coupons_of else None,
            coupon_expires_at=coupons_of[row.id].expires_at if row.id in coupons_of else None,
            rules_version=row.rules_version,
            created_at=row.created_at,
            approved_at=row.approved_at,
            paid_at=row.paid_at,
            reversed_at=row.reversed_at,
            history=histories[row.id],
        )
        for row in rows
    ]


async def summaries(
    conn: asyncpg.Connection, *, ids: PublicIds, rows: list[RewardRow]
) -> list[RewardSummary]:
    """Rewards as a checkout answer shows them: what each party got, with coupon codes."""
    out = []
    for row in rows:
        coupon = (
            await coupons.of_reward(conn, merchant_id=row.merchant_id, reward_id=row.id)
            if row.kind == "coupon"
            else None
        )
        out.append(
            RewardSummary(
                id=ids.encode("reward", row.id),
                side=row.side,
                kind=row.kind,
                amount=row.amount,
                currency=row.currency,
                status=row.status,
                coupon_code=coupon.code if coupon else None,
                coupon_status=coupon.status if coupon else None,
            )
        )
    return out


async def of_order(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, order_pk: int
) -> list[RewardSummary]:
    """The rewards an order earned (milestone bonuses are the advocate's, not the order's)."""
    rows = await repo.for_order(conn, merchant_id, order_pk)
    return await summaries(conn, ids=ids, rows=rows)


async def of_referral(
    conn: asyncpg.Connection, *, merchant_id: int, referral_id: int
) -> list[RewardRow]:
    return await repo.for_referral(conn, merchant_id, referral_id)


async def of_referrals(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, referral_ids: list[int]
) -> dict[int, list[Reward]]:
    """Each referral's rewards, in a fixed number of queries for the whole page."""
    rows = await repo.for_referrals(conn, merchant_id, referral_ids)
    out: dict[int, list[Reward]] = defaultdict(list)
    for row, reward in zip(rows, await to_rewards(conn, ids=ids, rows=rows), strict=True):
        out[row.referral_id].append(reward)
    return out


async def _get(conn: asyncpg.Connection, ids: PublicIds, merchant_id: int, reward_id: str):
    row = await repo.get(conn, merchant_id, ids.decode("reward", reward_id))
    if row is None:
        raise NotFound(f"no reward with id {reward_id}", code="reward_not_found")
    return row


async def get(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, reward_id: str
) -> Reward:
    row = await _get(conn, ids, merchant_id, reward_id)
    return (await to_rewards(conn, ids=ids, rows=[row]))[0]


async def list_rewards(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    status: str | None,
    advocate_id: str | None,
    cursor: Cursor,
) -> Page[Reward]:
    rows = await repo.list_page(
        conn,
        merchant_id,
        status=status,
        advocate_id=ids.decode("advocate", advocate_id) if advocate_id else None,
        cursor=cursor,
    )
    rows, more = cursor.split(rows)
    return Page(data=await to_rewards(conn, ids=ids, rows=rows), has_more=more)


async def act(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    reward_id: str,
    action: str,
    actor: str,
    note: str | None,
) -> Reward:
    """A person's approve, reverse or reinstate of one reward."""
    merchant_id = caller.merchant_id
    before = await _get(conn, ids, merchant_id, reward_id)
    common = dict(ids=ids, merchant_id=merchant_id, reward_id=before.id, actor=actor, note=note)
    reason = f"manual_{action}"
    if action == "approve":
        row = await approve(conn, reason=reason, **common)
    elif action == "reverse":
        row = await transition(
            conn,
            expected={"pending", "in_review", "approved", "paid"},
            to="reversed",
            reason=reason,
            **common,
        )
    else:
        row = await reinstate(conn, reason=reason, **common)
    await audit.record(
        conn,
        caller=caller,
        action=_AUDITED_AS[action],
        subject_type="reward",
        subject_id=ids.encode("reward", row.id),
        before=_money_state(before),
        after=_money_state(row),
    )
    return (await to_rewards(conn, ids=ids, rows=[row]))[0]


_AUDITED_AS = {
    "approve": "reward.approved",
    "reverse": "reward.reversed",
    "reinstate": "reward.reinstated",
}


def _money_state(row: RewardRow) -> dict[str, Any]:
    """A reward as the audit log keeps it: its state and money, not whom it pays."""
    return {"status": row.status, "amount": row.amount, "currency": row.currency, "kind": row.kind}


async def release_lag_seconds(conn: asyncpg.Connection) -> float:
    """How long the longest-waiting due reward has waited for the release worker (0: none)."""
    oldest = await repo.oldest_due(conn)
    return 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def export_customer(
    conn: asyncpg.Connection, *, ids: PublicIds, subject: Subject
) -> list[ExportedReward]:
    """The rewards that pay them, each with its ledger entries and coupon."""
    rows = await repo.customer_rewards(
        conn, subject.merchant_id, subject.advocate_ids, subject.referral_ids
    )
    reward_ids = [r.id for r in rows]
    entries: dict[int, list[ExportedLedgerEntry]] = {}
    for e in await repo.customer_entries(conn, subject.merchant_id, reward_ids):
        entries.setdefault(e.reward_id, []).append(
            ExportedLedgerEntry(
                account=e.account,
                amount=e.amount,
                currency=e.currency.strip(),
                booked_at=e.created_at,
            )
        )
    issued = await coupons.export_customer(
        conn, merchant_id=subject.merchant_id, reward_ids=reward_ids
    )
    return [
        ExportedReward(
            id=ids.encode("reward", r.id),
            referral_id=ids.encode("referral", r.referral_id) if r.referral_id else None,
            side=r.side,  # type: ignore[arg-type]
            kind=r.kind,
            status=r.status,
            amount=r.amount,
            currency=r.currency.strip() if r.currency else None,
            milestone=r.milestone,
            earned_at=r.earned_at,
            created_at=r.created_at,
            approved_at=r.approved_at,
            paid_at=r.paid_at,
            reversed_at=r.reversed_at,
            ledger_entries=entries.get(r.id, []),
            coupon=issued.get(r.id),
        )
        for r in rows
    ]


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> tuple[int, int]:
    """(rewards, ledger entries) whose payee key was the person's. Every amount, state and
    entry stays: balances and the books are the same after as before. Staff notes that
    name them are replaced."""
    await repo.scrub_notes(conn, subject.merchant_id, subject.mentions, ERASED_TEXT)
    rows = await repo.customer_rewards(
        conn, subject.merchant_id, subject.advocate_ids, subject.referral_ids
    )
    if not rows:
        return 0, 0
    keys_from, keys_to = tombstones.keys(subject)
    return await repo.erase_payees(
        conn, subject.merchant_id, [r.id for r in rows], keys_from, keys_to, tombstones.customer_id
    )
