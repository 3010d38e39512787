"""What each changing thing contributes to the rollups: pure functions of its raw rows.

The rollup worker calls them for every order, referral, reward, customer and advocate that
changed, and `referral analytics rebuild` calls them for all of them, so a figure can only
ever be counted one way. A contribution is a list of facts; the worker books the difference
between an entity's new facts and the ones it booked before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgspec

# Repeat purchases are counted within these many days of a customer's first order.
WINDOWS = (30, 90, 180)
# Cycle times longer than this are counted as this many days.
CYCLE_CAP_DAYS = 365
# Metrics the per-advocate rollups keep (the leaderboards' and the advocate filter's).
ADVOCATE_METRICS = frozenset(
    {
        "clicks",
        "unique_clicks",
        "shares",
        "share_page_views",
        "signups",
        "first_orders",
        "first_order_revenue",
        "referred_orders",
        "referred_revenue",
        "reward_cost",
    }
)
CASH_KINDS = frozenset({"cash", "store_credit"})
# Distinct counts kept for the shop as a whole only (program 0); the others are kept per
# program and, for a report of every program, for every program together (program 0 too).
MERCHANT_WIDE_DISTINCT = ("ordering_customers",)


def sketch_keys(program_id: int, day: date, metric: str) -> list[tuple[str, tuple[int, date, str]]]:
    """The sketches a distinct member of (program, day, metric) goes into: the day's and the
    month's, of its program and (but for program 0's own) of every program together."""
    programs = [program_id] if program_id == 0 else [program_id, 0]
    month = day.replace(day=1)
    return [
        (kind, (p, at, metric)) for p in programs for kind, at in (("day", day), ("month", month))
    ]


class Fact(NamedTuple):
    program_id: int
    day: date
    metric: str
    dim: str
    currency: str
    story_id: int
    advocate_id: int
    value: int


StoryIds = Callable[[str | None], int]
"""A story's public id (as attributions carry it) to its row id; 0 for none or unknown."""


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def zone_of(name: str) -> ZoneInfo:
    """The merchant's zone; one the system does not know counts as UTC, as the click writer's
    `click_time_zone` does in SQL."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def channel_of(attribution: dict[str, Any]) -> str:
    """A referral's channel: the link's `ch` for a click, `code` for a code typed at checkout
    or signup (no link was followed), `other` for a link shared without a channel."""
    if attribution.get("path") == "code":
        return "code"
    return attribution.get("channel") or "other"


class ReferralOf(msgspec.Struct, frozen=True):
    """The referral an order is attached to, as its facts need it."""

    id: int
    program_id: int
    advocate_id: int
    status: str
    first_order_pk: int | None
    attribution: dict[str, Any]


class OrderIn(msgspec.Struct, frozen=True):
    id: int
    occurred_at: datetime
    currency: str
    total: int
    refunded: int
    status: str
    referral: ReferralOf | None = None


def _net(order: OrderIn) -> int:
    return 0 if order.status == "cancelled" else order.total - order.refunded


def order_facts(order: OrderIn, zone: ZoneInfo, story_ids: StoryIds) -> list[Fact]:
    """Every order counts for the shop (program 0); one attached to a live referral also
    counts as referred in the referral's program, and the referral's first order as a first
    order. A cancelled order counts as nothing; a refunded one by what it kept."""
    if order.status == "cancelled":
        return []
    day = local_day(order.occurred_at, zone)
    currency = order.currency.strip()
    net = _net(order)
    facts = [
        Fact(0, day, "orders", "", "", 0, 0, 1),
        Fact(0, day, "revenue", "", currency, 0, 0, net),
    ]
    ref = order.referral
    if ref is not None and ref.status != "rejected":
        channel = channel_of(ref.attribution)
        story = story_ids(ref.attribution.get("story_id"))
        common = (ref.program_id, day)
        facts.append(Fact(*common, "referred_orders", channel, "", story, ref.advocate_id, 1))
        facts.append(
            Fact(*common, "referred_revenue", channel, currency, story, ref.advocate_id, net)
        )
        if ref.first_order_pk == order.id:
            facts.append(Fact(*common, "first_orders", channel, "", story, ref.advocate_id, 1))
            facts.append(
                Fact(*common, "first_order_revenue", channel, currency, story, ref.advocate_id, net)
            )
    return facts


class ReferralIn(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    advocate_id: int
    status: str
    rejection_reason: str | None
    attribution: dict[str, Any]
    decision: dict[str, Any]
    signed_up_at: datetime | None
    created_at: datetime
    first_order_pk: int | None
    first_order_at: datetime | None
    advocate_first_shared_at: datetime | None


def outcome(status: str, rejection_reason: str | None) -> str:
    """allowed, in_review, blocked (by a fraud rule or a person's review), ineligible (an
    eligibility check failed: not a new customer, self-referral by the rules, ...), pending
    (signed up, not yet decided)."""
    if status == "converted":
        return "allowed"
    if status == "rejected":
        return (
            "blocked" if rejection_reason in ("fraud_blocked", "review_rejected") else "ineligible"
        )
    return status


def fired_rules(decision: dict[str, Any]) -> list[str]:
    """The fraud rules that asked for a review or a block in the referral's decision."""
    reasons = (decision.get("fraud") or {}).get("reasons") or []
    return sorted({r["rule"] for r in reasons if r.get("action") in ("review", "block")})


def cycle_days(first_shared_at: datetime | None, first_order_at: datetime) -> int | None:
    if first_shared_at is None or first_order_at < first_shared_at:
        return None
    return min((first_order_at - first_shared_at) // timedelta(days=1), CYCLE_CAP_DAYS)


def referral_facts(referral: ReferralIn, zone: ZoneInfo, story_ids: StoryIds) -> list[Fact]:
    """A referral counts once by its outcome on the day it was decided (its first order's, else
    its signup's), with the fraud rules that fired; its signup and the cycle time from the
    advocate's first share to this first order count while it is not rejected."""
    channel = channel_of(referral.attribution)
    story = story_ids(referral.attribution.get("story_id"))
    decided_at = referral.first_order_at or referral.signed_up_at or referral.created_at
    day = local_day(decided_at, zone)
    common = (referral.program_id,)
    adv = referral.advocate_id
    verdict = outcome(referral.status, referral.rejection_reason)
    facts = [Fact(*common, day, "referrals", verdict, "", story, adv, 1)]
    facts += [
        Fact(*common, day, "referrals_by_rule", rule, "", story, adv, 1)
        for rule in fired_rules(referral.decision)
    ]
    if referral.status == "rejected":
        return facts
    if referral.signed_up_at is not None:
        signup_day = local_day(referral.signed_up_at, zone)
        facts.append(Fact(*common, signup_day, "signups", channel, "", story, adv, 1))
    if referral.first_order_at is not None:
        days = cycle_days(referral.advocate_first_shared_at, referral.first_order_at)
        if days is not None:
            facts.append(Fact(*common, day, "cycle_days", str(days), "", 0, 0, 1))
    return facts


class RewardIn(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    advocate_id: int
    side: str
    kind: str
    currency: str | None
    amount: int
    original_amount: int
    status: str
    earned_at: datetime
    referral_status: str | None
    referral_rejection_reason: str | None
    attribution: dict[str, Any] | None


def reward_facts(reward: RewardIn, zone: ZoneInfo, story_ids: StoryIds) -> list[Fact]:
    """Reward cost is what the ledger owes or paid: cash and store credit approved or paid, at
    their current amount (a partial refund's reduction and a reversal are taken off). Pending
    and in-review money is shown apart; coupons are not ledger money and are counted apart;
    a reward reversed because its referral was blocked is the cost fraud rules saved."""
    if reward.currency is None:
        return []
    day = local_day(reward.earned_at, zone)
    currency = reward.currency.strip()
    story = story_ids((reward.attribution or {}).get("story_id"))
    metric = None
    value = reward.amount
    if reward.kind in CASH_KINDS:
        if reward.status in ("approved", "paid"):
            metric = "reward_cost"
        elif reward.status in ("pending", "in_review"):
            metric = "reward_pending"
    elif reward.kind == "coupon" and reward.status in ("approved", "paid"):
        metric = "coupon_value"
    if (
        reward.status == "reversed"
        and reward.referral_status == "rejected"
        and reward.referral_rejection_reason in ("fraud_blocked", "review_rejected")
    ):
        metric, value = "reward_blocked", reward.original_amount
    if metric is None or value == 0:
        return []
    return [
        Fact(
            reward.program_id, day, metric, reward.side, currency, story, reward.advocate_id, value
        )
    ]


class CustomerIn(msgspec.Struct, frozen=True):
    key: str
    orders: list[OrderIn]


def customer_facts(customer: CustomerIn, zone: ZoneInfo, story_ids: StoryIds) -> list[Fact]:
    """A customer is new on the day of their first order (cancelled orders never happened).
    Their cohort is the program of the live referral that brought that first order (0: no
    referral); for each window, whether they ordered again within it, how many orders and how
    much net revenue (per currency) the window holds, the first order included."""
    orders = sorted(
        (o for o in customer.orders if o.status != "cancelled"), key=lambda o: (o.occurred_at, o.id)
    )
    if not orders:
        return []
    first = orders[0]
    day = local_day(first.occurred_at, zone)
    ref = first.referral
    referred = ref is not None and ref.status != "rejected" and ref.first_order_pk == first.id
    program = ref.program_id if referred and ref else 0
    channel = channel_of(ref.attribution) if referred and ref else ""
    facts = [Fact(program, day, "new_customers", channel, "", 0, 0, 1)]
    for window in WINDOWS:
        until = first.occurred_at + timedelta(days=window)
        within = [o for o in orders if o.occurred_at <= until]
        if len(within) > 1:
            facts.append(Fact(program, day, f"repeat_{window}", channel, "", 0, 0, 1))
        facts.append(Fact(program, day, f"orders_{window}", channel, "", 0, 0, len(within)))
        revenue: dict[str, int] = {}
        for o in within:
            revenue[o.currency.strip()] = revenue.get(o.currency.strip(), 0) + _net(o)
        facts += [
            Fact(program, day, f"revenue_{window}", channel, cur, 0, 0, amount)
            for cur, amount in sorted(revenue.items())
        ]
    return facts


class AdvocateIn(msgspec.Struct, frozen=True):
    id: int
    program_id: int
    was_referred: bool
    first_conversion_at: datetime | None


def advocate_facts(advocate: AdvocateIn, zone: ZoneInfo, story_ids: StoryIds) -> list[Fact]:
    """A friend turned advocate counts once, on the day their own first friend ordered."""
    if not advocate.was_referred or advocate.first_conversion_at is None:
        return []
    day = local_day(advocate.first_conversion_at, zone)
    return [Fact(advocate.program_id, day, "friends_turned_advocates", "", "", 0, advocate.id, 1)]


def summed(facts: Iterable[Fact], sign: int = 1) -> dict[tuple, int]:
    """Facts added up by everything but their value, times `sign`."""
    totals: dict[tuple, int] = {}
    for f in facts:
        key = f[:7]
        totals[key] = totals.get(key, 0) + sign * f.value
    return totals


def difference(old: Iterable[Fact], new: Iterable[Fact]) -> list[Fact]:
    """What to book so the rollups go from counting `old` to counting `new`."""
    totals = summed(old, -1)
    for key, value in summed(new).items():
        totals[key] = totals.get(key, 0) + value
    return [Fact(*key, value) for key, value in totals.items() if value != 0]
