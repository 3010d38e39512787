"""Levels: a program customer's level (Member, Silver, Gold…), reached by qualifying
activity in a rolling 12 months (referred friends, points earned, or spend: the program's
points rules choose). Recomputed on each event of theirs; up at once, down only when the
level's year is over; each change is a `customer.level_changed` event and a row of its
history, which the explain view shows. A level may multiply the points earned and replace
the advocate's referral reward."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from referral.customers.schemas import Subject, Tombstones
from referral.events import service as events
from referral.levels import repo
from referral.points import rules
from referral.points.schemas import Level, LevelChange, LevelExplained, Levels, LevelView
from referral.programs.schemas import RewardRule

YEAR_MONTHS = 12


async def recompute(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    levels: Levels | None,
    rules_version: int,
    program_public_id: str,
    preferences: dict | None = None,
    now: datetime | None = None,
) -> str | None:
    """Bring the customer's level up to date after an event (the name now, None: the
    program has no levels). Locks their level row, so two events never both announce."""
    if levels is None:
        return None
    now = now or datetime.now(UTC)
    since = rules.add_months(now, -YEAR_MONTHS)
    current = await repo.level(conn, merchant_id, program_id, customer_id, lock=True)
    qualifying = await repo.qualifying(
        conn, merchant_id, program_id, customer_id, levels.qualifier, since, levels.currency
    )
    held = current is not None and current.held_until > now
    index = rules.next_level(current.level if current else None, qualifying, held, levels)
    level = levels.levels[index]
    if current is not None and current.level == level.name:
        if current.qualifying != qualifying:
            await repo.set_qualifying(conn, merchant_id, program_id, customer_id, qualifying)
        return level.name
    await repo.upsert(
        conn,
        merchant_id,
        program_id,
        customer_id,
        level.name,
        qualifying,
        level.multiplier_bp,
        now,
        rules.add_months(now, YEAR_MONTHS),
    )
    await repo.insert_change(
        conn,
        merchant_id,
        program_id,
        customer_id,
        current.level if current else None,
        level.name,
        qualifying,
        rules_version,
    )
    if current is not None or index > 0:  # everyone starts at the first level: no news
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type="customer.level_changed",
            data={
                "customer_id": customer_id,
                "program_id": program_public_id,
                "from": current.level if current else None,
                "to": level.name,
                "qualifier": levels.qualifier,
                "qualifying": qualifying,
                "rules_version": rules_version,
                "preferences": preferences,
            },
        )
    return level.name


async def multiplier(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int, customer_id: str
) -> int:
    """The points multiplier of the customer's level (basis points; x1 without one)."""
    current = await repo.level(conn, merchant_id, program_id, customer_id)
    return current.multiplier_bp if current else rules.FULL


async def level_of(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    levels: Levels | None,
) -> Level | None:
    if levels is None:
        return None
    current = await repo.level(conn, merchant_id, program_id, customer_id)
    index = rules.level_index(levels, current.level if current else None)
    return levels.levels[index if index is not None else 0]


async def advocate_rule(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    levels: Levels | None,
) -> RewardRule | None:
    """The referral reward the advocate's level gives instead of the program's (None: the
    program's own)."""
    level = await level_of(
        conn,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=customer_id,
        levels=levels,
    )
    return level.advocate if level else None


async def view(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    levels: Levels | None,
) -> LevelView | None:
    if levels is None:
        return None
    current = await repo.level(conn, merchant_id, program_id, customer_id)
    if current is None:
        first = levels.levels[0]
        name, more = rules.to_next(levels, 0, 0)
        return LevelView(
            name=first.name,
            qualifying=0,
            reached_at=None,
            held_until=None,
            next_level=name,
            to_next=more,
            qualifier=levels.qualifier,
            currency=levels.currency,
        )
    index = rules.level_index(levels, current.level) or 0
    name, more = rules.to_next(levels, index, current.qualifying)
    return LevelView(
        name=current.level,
        qualifying=current.qualifying,
        reached_at=current.reached_at,
        held_until=current.held_until,
        next_level=name,
        to_next=more,
        qualifier=levels.qualifier,
        currency=levels.currency,
    )


async def explained(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    levels: Levels | None,
) -> LevelExplained | None:
    """The level as the explain view shows it: now, what it changes, and its history."""
    shown = await view(
        conn, merchant_id=merchant_id, program_id=program_id, customer_id=customer_id, levels=levels
    )
    if shown is None or levels is None:
        return None
    index = rules.level_index(levels, shown.name) or 0
    level = levels.levels[index]
    changes = await repo.changes(conn, merchant_id, program_id, customer_id, 20)
    return LevelExplained(
        level=shown,
        advocate_reward=level.advocate,
        multiplier_bp=level.multiplier_bp,
        changes=[
            LevelChange(
                from_level=c.from_level,
                to_level=c.to_level,
                qualifying=c.qualifying,
                rules_version=c.rules_version,
                at=c.created_at,
            )
            for c in changes
        ],
    )


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> None:
    """Their rows name the erasure's tombstone from now on; every number stays."""
    await repo.erase(conn, subject.merchant_id, subject.customer_id, tombstones.customer_id)
