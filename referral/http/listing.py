"""The query every list takes: page size, cursor and creation-time range, read once from
the query string (`listing` in a handler) and handed down as one value."""

from __future__ import annotations

from datetime import datetime

import msgspec

from referral.lib.ids import PublicIds
from referral.lib.pagination import CreatedBefore, CreatedFrom, Cursor, Limit, StartingAfter


class ListQuery(msgspec.Struct, frozen=True, kw_only=True):
    limit: int = 20
    starting_after: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None

    def cursor(self, ids: PublicIds, kind: str) -> Cursor:
        """The same query with `starting_after` decoded to the internal id of `kind`."""
        return Cursor(
            limit=self.limit,
            after_id=ids.decode(kind, self.starting_after) if self.starting_after else None,
            created_from=self.created_from,
            created_before=self.created_before,
        )


def provide_list_query(
    starting_after: StartingAfter = None,
    created_from: CreatedFrom = None,
    created_before: CreatedBefore = None,
    limit: Limit = 20,
) -> ListQuery:
    return ListQuery(
        limit=limit,
        starting_after=starting_after,
        created_from=created_from,
        created_before=created_before,
    )
