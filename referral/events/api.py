"""`GET /v1/events`: the outbox, readable until webhooks deliver it."""

from __future__ import annotations

from litestar import get
from litestar.params import FromQuery

from referral.events import service
from referral.events.schemas import Event
from referral.http.deps import CallerDep, Conn, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Limit, Page, StartingAfter


@get(
    "/v1/events",
    operation_id="listEvents",
    responses=problem_docs.responses("listEvents", {404: ("event_not_found",)}),
    tags=["events"],
    summary="List events (the outbox)",
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
    return await service.list_events(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        type=type,
        starting_after=starting_after,
        limit=limit,
    )
