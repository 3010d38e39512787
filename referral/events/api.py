"""`GET /v1/events`: the outbox, readable until webhooks deliver it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import get
from litestar.params import FromQuery

from referral.events import repo
from referral.lib.deps import CallerDep, Conn, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import Limit, Page, StartingAfter, split_page


class Event(msgspec.Struct):
    id: str
    type: str
    data: dict[str, Any]
    created_at: datetime
    object: str = "event"


@get(
    "/v1/events",
    operation_id="listEvents",
    responses=API_ERRORS,
    tags=["events"],
    summary="List events (the outbox)",
    security=[{"secretKey": []}],
    description="Every state change writes an event in the same transaction. Oldest first; "
    "page with `starting_after` (the last id seen) to follow new events.",
)
async def list_events(
    conn: Conn,
    caller: CallerDep,
    runtime: RuntimeDep,
    type: FromQuery[str | None] = None,
    starting_after: StartingAfter = None,
    limit: Limit = 20,
) -> Page[Event]:
    after = runtime.ids.decode("event", starting_after) if starting_after else None
    rows = await repo.list_after(conn, caller.merchant_id, type_=type, after_id=after, limit=limit)
    rows, more = split_page(rows, limit)
    return Page(
        data=[
            Event(
                id=runtime.ids.encode("event", r["id"]),
                type=r["type"],
                data=r["data"],
                created_at=r["created_at"],
            )
            for r in rows
        ],
        has_more=more,
    )
