"""The review queue: a person's decision on a referral, approve or reject, both reversible
and audited.

Approving releases rewards held `in_review` into their hold (they pay once the return
window passes) and undoes an earlier rejection: the rewards that rejection reversed are
reinstated, and a referral the engine blocked gets the rewards it would have earned.
Rejecting reverses every live reward through the ledger (after payment, the amount becomes
a receivable that later payouts net) and hides the stories told about them. Eligibility
failures (self-referral, existing customer…) cannot be approved: the fraud engine and its
reviewers only ever add.
"""

from __future__ import annotations

import asyncpg
import structlog

from referral.audit import service as audit
from referral.events import service as events
from referral.fraud.backtest import OVERRIDABLE
from referral.lib.errors import Conflict, NotFound
from referral.merchants.service import Caller
from referral.referrals import attribution, explain, repo, service
from referral.referrals.attribution import Friend
from referral.referrals.repo import ReferralRow
from referral.referrals.schemas import Referral
from referral.rewards import service as rewards
from referral.runtime import Runtime
from referral.stories import service as stories

log = structlog.get_logger("referral.referrals.review")

_EVENT_FOR = {"approve": "referral.review_approved", "reject": "referral.review_rejected"}
_AUDITED_AS = {"approve": "referral.approved", "reject": "referral.rejected"}


async def _locked(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, referral_id: str
) -> ReferralRow:
    row = await repo.referral(
        conn, caller.merchant_id, runtime.ids.decode("referral", referral_id), lock=True
    )
    if row is None:
        raise NotFound(f"no referral with id {referral_id}", code="referral_not_found")
    return row


async def _finish(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    referral: ReferralRow,
    *,
    action: str,
    actor: str,
    note: str | None,
    status: str,
    reason: str | None,
    reward_ids: list[int],
) -> Referral:
    await repo.set_reviewed(conn, caller.merchant_id, referral.id, status, reason)
    await repo.insert_review(
        conn,
        caller.merchant_id,
        referral.id,
        action,
        actor,
        note,
        referral.status,
        status,
        reward_ids,
    )
    public_id = runtime.ids.encode("referral", referral.id)
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type=_EVENT_FOR[action],
        data={
            "referral_id": public_id,
            "advocate_id": runtime.ids.encode("advocate", referral.advocate_id),
            "status": status,
            "actor": actor,
        },
    )
    log.info("referral_reviewed", referral_id=referral.id, action=action, status=status)
    await audit.record(
        conn,
        caller=caller,
        action=_AUDITED_AS[action],
        subject_type="referral",
        subject_id=public_id,
        before={"status": referral.status},
        after={
            "status": status,
            "reason": reason,
            "rewards": [runtime.ids.encode("reward", i) for i in reward_ids],
        },
    )
    return await explain.get_referral(conn, runtime=runtime, caller=caller, referral_id=public_id)


async def reject(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    referral_id: str,
    actor: str,
    note: str | None,
) -> Referral:
    """Reject (from review, or after approval): every live reward is reversed."""
    referral = await _locked(conn, runtime, caller, referral_id)
    if referral.status == "rejected":
        return await explain.get_referral(
            conn, runtime=runtime, caller=caller, referral_id=referral_id
        )
    reversed_ids = []
    for reward in await rewards.of_referral(
        conn, merchant_id=caller.merchant_id, referral_id=referral.id
    ):
        if reward.status == "reversed":
            continue
        await rewards.transition(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            reward_id=reward.id,
            expected={reward.status},
            to="reversed",
            reason="referral_rejected",
            actor=actor,
            note=note,
        )
        reversed_ids.append(reward.id)
    await stories.hide_for_rewards(conn, merchant_id=caller.merchant_id, reward_ids=reversed_ids)
    return await _finish(
        conn,
        runtime,
        caller,
        referral,
        action="reject",
        actor=actor,
        note=note,
        status="rejected",
        reason="review_rejected",
        reward_ids=reversed_ids,
    )


async def approve(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    referral_id: str,
    actor: str,
    note: str | None,
) -> Referral:
    """Approve a referral in review, or overturn a fraud rejection."""
    referral = await _locked(conn, runtime, caller, referral_id)
    status = referral.status
    if status == "converted":
        return await explain.get_referral(
            conn, runtime=runtime, caller=caller, referral_id=referral_id
        )
    if status == "pending":
        raise Conflict(
            "the referral has no decision yet (the friend has not ordered)",
            code="referral_not_decided",
        )
    if status == "rejected" and referral.rejection_reason not in OVERRIDABLE:
        raise Conflict(
            f"the referral failed eligibility ({referral.rejection_reason}), which no "
            "review can override",
            code="referral_not_eligible",
        )
    if status == "rejected":
        await _check_still_first(conn, caller, referral)
    moved: list[int] = []
    rejection = await repo.last_rejection(conn, caller.merchant_id, referral.id)
    reinstate = set(rejection.reward_ids) if rejection else set()
    rows = await rewards.of_referral(conn, merchant_id=caller.merchant_id, referral_id=referral.id)
    for reward in rows:
        if reward.status == "reversed" and reward.id in reinstate:
            try:
                reward = await rewards.reinstate(
                    conn,
                    ids=runtime.ids,
                    merchant_id=caller.merchant_id,
                    reward_id=reward.id,
                    reason="referral_approved",
                    actor=actor,
                    note=note,
                )
            except Conflict as exc:
                if exc.code != "reward_order_refunded":
                    raise
                continue  # its order was refunded meanwhile: nothing to give back
            moved.append(reward.id)
        if reward.status == "in_review":
            await rewards.transition(
                conn,
                ids=runtime.ids,
                merchant_id=caller.merchant_id,
                reward_id=reward.id,
                expected={"in_review"},
                to="pending",
                reason="referral_approved",
                actor=actor,
                note=note,
            )
            moved.append(reward.id)
    # A referral rejected before the friend ordered goes back to waiting for that order.
    new_status = "pending" if rejection and rejection.from_status == "pending" else "converted"
    if status == "rejected" and referral.rejection_reason == "fraud_blocked" and not rows:
        new_status, created = await service.reward_overridden_block(
            conn, runtime=runtime, merchant_id=caller.merchant_id, referral=referral
        )
        moved.extend(r.id for r in created)
    return await _finish(
        conn,
        runtime,
        caller,
        referral,
        action="approve",
        actor=actor,
        note=note,
        status=new_status,
        reason=None,
        reward_ids=sorted(set(moved)),
    )


async def _check_still_first(
    conn: asyncpg.Connection, caller: Caller, referral: ReferralRow
) -> None:
    """A rejected referral frees its friend: another advocate may have won them since."""
    keys = [f"cid:{referral.friend_customer_id}"] if referral.friend_customer_id else []
    if referral.friend_email_normalised:
        keys.append(f"email:{referral.friend_email_normalised}")
    friend = Friend(referral.friend_customer_id, referral.friend_email_normalised, keys)
    await attribution.lock(conn, merchant_id=caller.merchant_id, friend=friend)
    live = await attribution.live_referral(
        conn, merchant_id=caller.merchant_id, program_id=referral.program_id, friend=friend
    )
    if live is not None and live.id != referral.id:
        raise Conflict(
            "the friend has been referred again since this referral was rejected",
            code="friend_referred_since",
        )
