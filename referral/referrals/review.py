"""A person's decision on a referral: approve or reject, both reversible and audited.

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

from referral.attribution import repo as attribution_repo
from referral.attribution import service as attribution
from referral.attribution.schemas import Referral
from referral.events import service as events
from referral.fraud import repo
from referral.fraud.backtest import OVERRIDABLE
from referral.lib.errors import Conflict, NotFound
from referral.merchants.service import Caller
from referral.referrals.schemas import ReviewAction
from referral.rewards import repo as rewards_repo
from referral.rewards import service as rewards
from referral.runtime import Runtime
from referral.stories import repo as stories_repo

log = structlog.get_logger("referral.fraud.review")


async def _locked(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, referral_id: str
) -> asyncpg.Record:
    row = await repo.lock_referral(
        conn, caller.merchant_id, runtime.ids.decode("referral", referral_id)
    )
    if row is None:
        raise NotFound(f"no referral with id {referral_id}", code="referral_not_found")
    return row


async def _finish(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    referral: asyncpg.Record,
    action: str,
    data: ReviewAction,
    status: str,
    reason: str | None,
    reward_ids: list[int],
) -> Referral:
    await repo.set_reviewed(conn, caller.merchant_id, referral["id"], status, reason)
    await repo.insert_review(
        conn,
        caller.merchant_id,
        referral["id"],
        action,
        data.actor,
        data.note,
        referral["status"],
        status,
        reward_ids,
    )
    public_id = runtime.ids.encode("referral", referral["id"])
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type={"approve": "referral.review_approved", "reject": "referral.review_rejected"}[action],
        data={
            "referral_id": public_id,
            "advocate_id": runtime.ids.encode("advocate", referral["advocate_id"]),
            "status": status,
            "actor": data.actor,
        },
    )
    log.info("referral_reviewed", referral_id=referral["id"], action=action, status=status)
    return await attribution.get_referral(conn, runtime, caller, public_id)


async def reject(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    referral_id: str,
    data: ReviewAction,
) -> Referral:
    """Reject (from review, or after approval): every live reward is reversed."""
    referral = await _locked(conn, runtime, caller, referral_id)
    if referral["status"] == "rejected":
        return await attribution.get_referral(conn, runtime, caller, referral_id)
    reversed_ids = []
    for reward in await rewards_repo.for_referral(conn, caller.merchant_id, referral["id"]):
        if reward["status"] == "reversed":
            continue
        await rewards.transition(
            conn,
            runtime.ids,
            caller.merchant_id,
            reward["id"],
            expected={reward["status"]},
            to="reversed",
            reason="referral_rejected",
            actor=data.actor,
            note=data.note,
        )
        reversed_ids.append(reward["id"])
    await stories_repo.hide_for_rewards(conn, caller.merchant_id, reversed_ids)
    return await _finish(
        conn, runtime, caller, referral, "reject", data, "rejected", "review_rejected", reversed_ids
    )


async def approve(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    referral_id: str,
    data: ReviewAction,
) -> Referral:
    """Approve a referral in review, or overturn a fraud rejection."""
    referral = await _locked(conn, runtime, caller, referral_id)
    status = referral["status"]
    if status == "converted":
        return await attribution.get_referral(conn, runtime, caller, referral_id)
    if status == "pending":
        raise Conflict(
            "the referral has no decision yet (the friend has not ordered)",
            code="referral_not_decided",
        )
    if status == "rejected" and referral["rejection_reason"] not in OVERRIDABLE:
        raise Conflict(
            f"the referral failed eligibility ({referral['rejection_reason']}), which no "
            "review can override",
            code="referral_not_eligible",
        )
    if status == "rejected":
        await _check_still_first(conn, caller, referral)
    moved: list[int] = []
    rejection = await repo.last_rejection(conn, caller.merchant_id, referral["id"])
    reinstate = set(rejection["reward_ids"]) if rejection else set()
    rows = await rewards_repo.for_referral(conn, caller.merchant_id, referral["id"])
    for reward in rows:
        if reward["status"] == "reversed" and reward["id"] in reinstate:
            try:
                reward = await rewards.reinstate(
                    conn,
                    runtime.ids,
                    caller.merchant_id,
                    reward["id"],
                    reason="referral_approved",
                    actor=data.actor,
                    note=data.note,
                )
            except Conflict as exc:
                if exc.code != "reward_order_refunded":
                    raise
                continue  # its order was refunded meanwhile: nothing to give back
            moved.append(reward["id"])
        if reward["status"] == "in_review":
            await rewards.transition(
                conn,
                runtime.ids,
                caller.merchant_id,
                reward["id"],
                expected={"in_review"},
                to="pending",
                reason="referral_approved",
                actor=data.actor,
                note=data.note,
            )
            moved.append(reward["id"])
    # A referral rejected before the friend ordered goes back to waiting for that order.
    new_status = "pending" if rejection and rejection["from_status"] == "pending" else "converted"
    if status == "rejected" and referral["rejection_reason"] == "fraud_blocked" and not rows:
        new_status, created = await attribution.reward_overridden_block(
            conn, runtime, caller.merchant_id, referral
        )
        moved.extend(r["id"] for r in created)
    return await _finish(
        conn, runtime, caller, referral, "approve", data, new_status, None, sorted(set(moved))
    )


async def _check_still_first(
    conn: asyncpg.Connection, caller: Caller, referral: asyncpg.Record
) -> None:
    """A rejected referral frees its friend: another advocate may have won them since."""
    keys = [f"cid:{referral['friend_customer_id']}"] if referral["friend_customer_id"] else []
    if referral["friend_email_normalised"]:
        keys.append(f"email:{referral['friend_email_normalised']}")
    await attribution_repo.lock_friend(conn, caller.merchant_id, keys)
    live = await attribution_repo.live_referral(
        conn,
        caller.merchant_id,
        referral["program_id"],
        referral["friend_customer_id"],
        referral["friend_email_normalised"],
    )
    if live is not None and live["id"] != referral["id"]:
        raise Conflict(
            "the friend has been referred again since this referral was rejected",
            code="friend_referred_since",
        )
