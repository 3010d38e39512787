"""Reading referrals back: each with its attribution path, every eligibility check with
its inputs, the fraud decision, its rewards with their histories, and its reviews — the
answer to "why was (or wasn't) this rewarded?"."""

from __future__ import annotations

from collections import defaultdict

import asyncpg
import msgspec

from referral.coupons import service as coupons
from referral.fraud.rules import Decision
from referral.lib.errors import NotFound
from referral.lib.pagination import Cursor, Page
from referral.merchants.service import Caller
from referral.points import service as points
from referral.referrals import repo, rules
from referral.referrals.repo import ReferralRow
from referral.referrals.schemas import Referral, Review
from referral.rewards import service as rewards
from referral.runtime import Runtime


async def _to_referrals(
    conn: asyncpg.Connection, runtime: Runtime, rows: list[ReferralRow]
) -> list[Referral]:
    """Referrals with their rewards, first orders and reviews in a fixed number of queries,
    so the review queue costs the same per page whatever its length."""
    if not rows:
        return []
    merchant_id = rows[0].merchant_id
    referral_ids = [r.id for r in rows]
    rewards_of = await rewards.of_referrals(
        conn, ids=runtime.ids, merchant_id=merchant_id, referral_ids=referral_ids
    )
    order_ids = await repo.order_ids_of(
        conn, merchant_id, [r.first_order_pk for r in rows if r.first_order_pk]
    )
    reviews_of: dict[int, list[Review]] = defaultdict(list)
    for review in await repo.reviews(conn, merchant_id, referral_ids):
        reviews_of[review.referral_id].append(
            Review(
                action=review.action,
                actor=review.actor,
                note=review.note,
                from_status=review.from_status,
                to_status=review.to_status,
                created_at=review.created_at,
            )
        )
    out = []
    for row in rows:
        decision = row.decision or {}
        out.append(
            Referral(
                id=runtime.ids.encode("referral", row.id),
                program_id=runtime.ids.encode("program", row.program_id),
                advocate_id=runtime.ids.encode("advocate", row.advocate_id),
                status=row.status,
                rejection_reason=row.rejection_reason,
                friend_customer_id=row.friend_customer_id,
                attribution=row.attribution,
                checks=msgspec.convert(decision.get("checks", []), list[rules.Check]),
                decision=msgspec.convert(decision["fraud"], Decision)
                if "fraud" in decision
                else None,
                signed_up_at=row.signed_up_at,
                converted_at=row.converted_at,
                first_order_id=order_ids.get(row.first_order_pk),
                rewards=rewards_of[row.id],
                reviews=reviews_of[row.id],
                created_at=row.created_at,
                hold_rule=coupons.HELD_RULE,
            )
        )
    return out


async def get_referral(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, referral_id: str
) -> Referral:
    row = await repo.referral(conn, caller.merchant_id, runtime.ids.decode("referral", referral_id))
    if row is None:
        raise NotFound(f"no referral with id {referral_id}", code="referral_not_found")
    (referral,) = await _to_referrals(conn, runtime, [row])
    referral.advocate_level = await points.level_explained(
        conn, merchant_id=caller.merchant_id, program_id=row.program_id, advocate_id=row.advocate_id
    )
    return referral


async def list_referrals(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    status: str | None,
    advocate_id: str | None,
    program_id: str | None,
    cursor: Cursor,
) -> Page[Referral]:
    rows = await repo.list_referrals(
        conn,
        caller.merchant_id,
        status=status,
        advocate_id=runtime.ids.decode("advocate", advocate_id) if advocate_id else None,
        program_id=runtime.ids.decode("program", program_id) if program_id else None,
        cursor=cursor,
    )
    rows, more = cursor.split(rows)
    return Page(data=await _to_referrals(conn, runtime, rows), has_more=more)
