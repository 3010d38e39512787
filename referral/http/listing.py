"""`listing` in a handler: the list query read once from the query string (page size,
cursor, creation-time range) and handed down as one `ListQuery`."""

from __future__ import annotations

from referral.lib.pagination import (
    CreatedBefore,
    CreatedFrom,
    Limit,
    ListQuery,
    StartingAfter,
    query_time,
)

__all__ = ["ListQuery", "provide_list_query"]


def provide_list_query(
    starting_after: StartingAfter = None,
    created_from: CreatedFrom = None,
    created_before: CreatedBefore = None,
    limit: Limit = 20,
) -> ListQuery:
    return ListQuery(
        limit=limit,
        starting_after=starting_after,
        created_from=query_time("created_from", created_from),
        created_before=query_time("created_before", created_before),
    )
