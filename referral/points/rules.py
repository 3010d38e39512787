"""Points, pure: what an order earns and keeps after refunds, which lots a spend takes
(oldest first), when a lot expires, and which level a qualifying total reaches.

Points are integers and never money: every division rounds down, so no refund, multiplier
or split ever makes a point that was not earned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from referral.points.schemas import Expiry, Levels, OrderRule

EXPIRING_NOTICE = timedelta(days=30)  # points.expiring, this long before the lots go
BIRTHDAY_QUIET = timedelta(days=30)  # a birthday set this close before it earns nothing
FULL = 10_000  # basis points: a multiplier of x1


def order_points(rule: OrderRule, currency: str, subtotal: int, multiplier_bp: int = FULL) -> int:
    """What an order earns: `points` per `per` minor units of its subtotal, times the level's
    multiplier, rounded down. Orders in a currency the rule does not name earn none."""
    per = rule.per.get(currency)
    if not rule.enabled or per is None or subtotal <= 0:
        return 0
    return rule.points * multiplier_bp * subtotal // (per * FULL)


def kept_after_refunds(earned: int, total: int, refunded: int) -> int:
    """What an order's points are worth once `refunded` of its `total` is refunded (pro
    rata, rounded down); a full refund or a cancel keeps none."""
    if total <= 0 or refunded >= total:
        return 0
    return earned * (total - refunded) // total


@dataclass(frozen=True)
class OpenLot:
    id: int
    remaining: int


def take(lots: list[OpenLot], amount: int) -> list[tuple[int, int]]:
    """(lot, points) taken from `lots` (already oldest first) to cover `amount`, as far as
    they go: a redemption checks the balance before, a refund takes what is left."""
    taken: list[tuple[int, int]] = []
    for lot in lots:
        if amount <= 0:
            break
        part = min(lot.remaining, amount)
        if part > 0:
            taken.append((lot.id, part))
            amount -= part
    return taken


def add_months(at: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it has no such day)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    for day in range(at.day, 27, -1):
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return at.replace(year=year, month=month, day=at.day)


def lot_expiry(expiry: Expiry, earned_at: datetime) -> datetime | None:
    """When a lot expires by itself (programs counting from each lot's earning)."""
    return add_months(earned_at, expiry.months) if expiry.since == "earned" else None


def account_expiry(expiry: Expiry, last_activity: datetime) -> datetime | None:
    """When all of a customer's lots expire (programs counting from the last activity)."""
    return add_months(last_activity, expiry.months) if expiry.since == "activity" else None


def birthday_earns(birthday_at: datetime, set_at: datetime) -> bool:
    """A birthday earns unless it was set (or changed) within 30 days before it."""
    return birthday_at - set_at >= BIRTHDAY_QUIET


# --- levels ------------------------------------------------------------------------------


def reached(levels: Levels, qualifying: int) -> int:
    """The index of the highest level `qualifying` reaches (0: the first, everyone's)."""
    index = 0
    for i, level in enumerate(levels.levels):
        if qualifying >= level.threshold:
            index = i
    return index


def level_index(levels: Levels, name: str | None) -> int | None:
    for i, level in enumerate(levels.levels):
        if level.name == name:
            return i
    return None


def next_level(current: str | None, qualifying: int, held: bool, levels: Levels) -> int:
    """The level after an event: up as soon as the activity reaches it; down only when the
    current level's year is over (`held` False), and then to what the activity reaches."""
    now_reached = reached(levels, qualifying)
    index = level_index(levels, current)
    if index is None:
        return now_reached
    if now_reached >= index or not held:
        return now_reached
    return index


def to_next(levels: Levels, index: int, qualifying: int) -> tuple[str | None, int | None]:
    """The next level's name and how much more activity reaches it (None at the top)."""
    if index + 1 >= len(levels.levels):
        return None, None
    nxt = levels.levels[index + 1]
    return nxt.name, max(nxt.threshold - qualifying, 0)
