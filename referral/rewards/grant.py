"""Granting rewards: what a settled referral earns each party (tiers and caps for the
advocate, the friend's welcome), and what an order's rewards are worth after its refunds or
cancel. The amounts come from `rules.py`; every reward is written through `service.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from referral.lib.ids import PublicIds
from referral.points import service as points
from referral.programs.schemas import RewardSettings
from referral.rewards import repo, service
from referral.rewards.repo import RewardRow
from referral.rewards.rules import (
    MONEY_KINDS,
    CapUsage,
    apply_caps,
    period_start,
    refund_target,
    rule_amount,
    rule_for_nth,
)


@dataclass(frozen=True)
class Referred:
    """What rewards need of a referral that earns: who is paid, and how it came."""

    referral_id: int
    program_id: int
    advocate_id: int
    advocate_payee: str  # the advocate's customer id
    friend_payee: str  # the friend's customer id, else their normalised email
    source: str  # code | link | signup_email


@dataclass(frozen=True)
class Sale:
    """The order a reward is earned on."""

    order_pk: int
    subtotal: int
    currency: str


@dataclass(frozen=True)
class Terms:
    """The program terms a grant applies (the program's rules as they stand now)."""

    settings: RewardSettings
    hold_days: int
    time_zone: str
    rules_version: int


def signup_currency(settings: RewardSettings) -> str | None:
    """Signup rewards have no order: fixed amounts pay in the program's first currency."""
    for rule in (settings.advocate, settings.friend):
        if rule is not None and rule.amounts:
            return sorted(rule.amounts)[0]
    return None


async def grant(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    referred: Referred,
    terms: Terms,
    sale: Sale | None,
    at: datetime,
    review: bool,
) -> tuple[list[RewardRow], list[str]]:
    """Both parties' rewards for a referral (held `in_review` when the fraud decision asks
    for a person), and notes on what was capped. The caller holds the advocate's lock, so
    tiers and caps count every earlier referral of theirs."""
    settings = terms.settings
    notes: list[str] = []
    created: list[RewardRow] = []
    subtotal = sale.subtotal if sale else 0
    currency = sale.currency if sale else signup_currency(settings)
    common = dict(
        ids=ids,
        merchant_id=merchant_id,
        program_id=referred.program_id,
        referral_id=referred.referral_id,
        advocate_id=referred.advocate_id,
        order_pk=sale.order_pk if sale else None,
        milestone=None,
        status="in_review" if review else "pending",
        hold_until=at + timedelta(days=terms.hold_days),
        earned_at=at,
        coupon_days=settings.friend_coupon_days,
        rules_version=terms.rules_version,
        minimum_order=settings.minimum_order.get(sale.currency) if sale else None,
    )

    nth = await repo.earning_referrals(conn, merchant_id, referred.advocate_id) + 1
    advocate_rule = rule_for_nth(settings, nth)
    # The advocate's level (points rules) may pay more than the program's tiers.
    advocate_rule = (
        await points.advocate_rule(
            conn,
            merchant_id=merchant_id,
            program_id=referred.program_id,
            customer_id=referred.advocate_payee,
        )
        or advocate_rule
    )
    if advocate_rule is not None and currency is not None:
        amount = rule_amount(advocate_rule, subtotal, currency)
        if amount is not None:
            usage = await repo.cap_usage(
                conn,
                merchant_id,
                referred.advocate_id,
                amount.currency,
                period_start(settings.caps.period, at, terms.time_zone),
            )
            amount, cap_reason = apply_caps(
                settings.caps, amount, CapUsage(usage.in_period, usage.total, usage.amount)
            )
            if cap_reason:
                notes.append(cap_reason)
            if amount is not None:
                row = await service.create(
                    conn,
                    side="advocate",
                    payee_key=referred.advocate_payee,
                    rule=advocate_rule,
                    amount=amount,
                    reason=f"referral_{referred.source}",
                    **common,
                )
                if row is not None:
                    created.append(row)
    if settings.friend is not None and currency is not None:
        amount = rule_amount(settings.friend, subtotal, currency)
        if amount is not None:
            row = await service.create(
                conn,
                side="friend",
                payee_key=referred.friend_payee,
                rule=settings.friend,
                amount=amount,
                reason="friend_welcome",
                **common,
            )
            if row is not None:
                created.append(row)
    return created, notes


@dataclass(frozen=True)
class OrderAmounts:
    """An order's money as a refund or cancel leaves it."""

    order_pk: int
    subtotal: int
    total: int
    currency: str
    refunded: int  # cumulative, this refund included


async def rebalance_order(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    order: OrderAmounts,
    cancelled: bool,
    reason: str,
) -> None:
    """Bring every reward of the order to its value after refunds or a cancel: percentage
    rewards shrink pro rata; a reward whose order fell below the minimum it was earned
    under, or was refunded in full, is reversed. The caller holds the order's lock."""
    for reward in await repo.for_order(conn, merchant_id, order.order_pk):
        if reward.status == "reversed":
            continue
        target = (
            0
            if cancelled
            else refund_target(
                original=reward.original_amount,
                basis_points=reward.basis_points,
                subtotal=order.subtotal,
                total=order.total,
                refunded=order.refunded,
                minimum=reward.minimum_order,  # the terms it was earned on
            )
        )
        if reward.kind not in MONEY_KINDS and target > 0:
            continue  # coupons and points are whole or nothing
        if target == 0:
            await service.transition(
                conn,
                ids=ids,
                merchant_id=merchant_id,
                reward_id=reward.id,
                expected={reward.status},
                to="reversed",
                reason=reason,
            )
        elif target < reward.amount:
            await service.transition(
                conn,
                ids=ids,
                merchant_id=merchant_id,
                reward_id=reward.id,
                expected={reward.status},
                to=reward.status,
                amount=target,
                reason=reason,
            )
