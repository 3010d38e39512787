"""The outbox: every state change announces itself here, in the transaction that made it.
`GET /v1/events` reads it (and webhooks will deliver it)."""

from __future__ import annotations

from typing import Any

import asyncpg

from referral.events import repo
from referral.events.schemas import Event
from referral.lib.ids import PublicIds
from referral.lib.pagination import Page


async def emit(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    type: str,
    data: dict[str, Any],
    advocate_id: int | None = None,
) -> None:
    """Record one event. `advocate_id`: the event tells this advocate about their own
    money, so it carries their contact preference."""
    await repo.insert(conn, merchant_id, type, data, advocate_id)


async def emit_many(
    conn: asyncpg.Connection, *, merchant_id: int, type: str, payloads: list[dict[str, Any]]
) -> None:
    """Record one event of `type` per payload, in one statement."""
    await repo.insert_many(conn, merchant_id, type, payloads)


async def list_events(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    type: str | None,
    starting_after: str | None,
    limit: int,
) -> Page[Event]:
    after = ids.decode("event", starting_after) if starting_after else None
    rows = await repo.list_after(conn, merchant_id, type_=type, after_id=after, fetch=limit + 1)
    return Page(
        data=[
            Event(id=ids.encode("event", r.id), type=r.type, data=r.data, created_at=r.created_at)
            for r in rows[:limit]
        ],
        has_more=len(rows) > limit,
    )


async def erase_customer(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    values: list[str],
    emails: list[str],
    tombstone: str,
) -> list[int]:
    """The ids of the events whose payloads held the person's `values` (exact strings) or
    `emails` (anywhere in a string), now holding `tombstone` instead (referral/customers/).
    Webhooks not yet sent send the scrubbed payload."""
    if not values and not emails:
        return []
    return await repo.scrub(conn, merchant_id, values, [e.lower() for e in emails], tombstone)
