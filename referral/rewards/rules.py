"""Reward math, pure: amounts, tiers, caps, refunds. Integers only.

A percentage reward is computed once, when it is created, from minor units and basis points,
rounded half to even; a partial refund recomputes the target from the same integers and the
difference is booked. Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from referral.programs.schemas import Caps, RewardRule, RewardSettings

MONEY_KINDS = frozenset({"cash", "store_credit"})


def div_round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half to even, for non-negative integers."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


@dataclass(frozen=True)
class Amount:
    """A reward's value: minor units of `currency`, or points (currency None)."""

    value: int
    currency: str | None


def rule_amount(rule: RewardRule, subtotal: int, currency: str) -> Amount | None:
    """What `rule` pays for an order; None when the rule has no amount in its currency."""
    if rule.kind == "points":
        return Amount(rule.points or 0, None)
    if rule.basis_points is not None:
        return Amount(div_round_half_even(rule.basis_points * subtotal, 10_000), currency)
    amount = (rule.amounts or {}).get(currency)
    return None if amount is None else Amount(amount, currency)


def rule_for_nth(settings: RewardSettings, nth: int) -> RewardRule | None:
    """The advocate's rule for their nth successful referral: the highest tier reached."""
    rule = settings.advocate
    for tier in sorted(settings.tiers, key=lambda t: t.from_referral):
        if nth >= tier.from_referral:
            rule = tier.advocate
    return rule


def milestones_reached(settings: RewardSettings, successful: int) -> list[int]:
    return sorted(m.referrals for m in settings.milestones if successful >= m.referrals)


def refund_target(
    *,
    original: int,
    basis_points: int | None,
    subtotal: int,
    total: int,
    refunded: int,
    minimum: int | None,
) -> int:
    """A reward's value after `refunded` of the order's `total` was refunded.

    Percentage rewards shrink pro rata (basis points x subtotal x remaining share, rounded
    half to even once); fixed rewards stay whole. Either drops to 0 on a full refund or
    when the remaining order value falls below the program's minimum.
    """
    remaining = total - refunded
    if remaining <= 0 or total <= 0:
        return 0
    if minimum is not None and subtotal * remaining < minimum * total:
        return 0
    if basis_points is None:
        return original
    return div_round_half_even(basis_points * subtotal * remaining, 10_000 * total)


def period_start(period: str, at: datetime, time_zone: str) -> datetime:
    """Start of the cap period containing `at`, in the merchant's time zone."""
    local = at.astimezone(ZoneInfo(time_zone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start = day
    elif period == "week":
        start = day - timedelta(days=day.weekday())
    elif period == "month":
        start = day.replace(day=1)
    else:
        start = day.replace(month=1, day=1)
    return start


@dataclass(frozen=True)
class CapUsage:
    rewards_in_period: int
    rewards_total: int
    amount_in_period: int  # in the reward's currency


def apply_caps(caps: Caps, amount: Amount, usage: CapUsage) -> tuple[Amount | None, str | None]:
    """The amount the advocate may still earn, or (None, reason) when a cap is reached."""
    if caps.max_rewards_total is not None and usage.rewards_total >= caps.max_rewards_total:
        return None, "cap_total_reached"
    if caps.max_rewards_per_period is not None and (
        usage.rewards_in_period >= caps.max_rewards_per_period
    ):
        return None, "cap_period_reached"
    limit = caps.max_amount_per_period.get(amount.currency or "")
    if limit is not None:
        room = limit - usage.amount_in_period
        if room <= 0:
            return None, "cap_amount_reached"
        if amount.value > room:
            return Amount(room, amount.currency), None
    return amount, None


# Which ledger account holds a reward's value in each state (None: no account).
ACCOUNT_OF = {
    "pending": "pending",
    "in_review": "pending",
    "approved": "payable",
    "paid": "paid",
    "reversed": None,
}


def ledger_moves(
    old_status: str | None, new_status: str, old_amount: int, new_amount: int
) -> list[tuple[str, int]]:
    """The entries a state change books, so that a reward's entries always sum to its amount.

    Before payment, value moves between pending and payable; once paid, the money is gone,
    so any reduction is booked as a (negative) receivable that later payouts net off.
    """
    moves: list[tuple[str, int]] = []
    if old_status is None:
        target = ACCOUNT_OF[new_status]
        if target and new_amount:
            moves.append((target, new_amount))
    elif (old_status, new_status) in (("paid", "paid"), ("paid", "reversed"), ("reversed", "paid")):
        delta = new_amount - old_amount
        if delta:
            moves.append(("receivable", delta))
    else:
        source, target = ACCOUNT_OF[old_status], ACCOUNT_OF[new_status]
        if source == target:
            if source and new_amount != old_amount:
                moves.append((source, new_amount - old_amount))
        else:
            if source and old_amount:
                moves.append((source, -old_amount))
            if target and new_amount:
                moves.append((target, new_amount))
    return moves
