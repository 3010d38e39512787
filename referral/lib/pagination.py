"""Cursor pagination shared by every list: `limit` and `starting_after` (a public id),
stable order by creation time then id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

from referral.lib.ids import PublicIds

T = TypeVar("T")

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size (1-100)")]
StartingAfter = Annotated[
    str | None,
    QueryParameter(description="Return items after this id (the last id of the previous page)"),
]
CreatedFrom = Annotated[
    datetime | None, QueryParameter(description="Only items created at or after this time")
]
CreatedBefore = Annotated[
    datetime | None, QueryParameter(description="Only items created before this time")
]


class Page(msgspec.Struct, Generic[T]):
    data: list[T]
    has_more: bool
    object: str = "list"


class Cursor(msgspec.Struct, frozen=True, kw_only=True):
    """A list query as a repo reads it: internal ids, one row more than the page."""

    limit: int
    after_id: int | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None

    @property
    def fetch(self) -> int:
        """Rows to fetch: the extra row only says there is more."""
        return self.limit + 1

    @property
    def params(self) -> tuple[int | None, datetime | None, datetime | None, int]:
        """$3-$6 of a list query built on CURSOR_CLAUSE: after id, time range, rows to fetch."""
        return (self.after_id, self.created_from, self.created_before, self.fetch)

    def split(self, rows: list[T]) -> tuple[list[T], bool]:
        """(this page's rows, whether there is more) of rows fetched `fetch` at a time."""
        return rows[: self.limit], len(rows) > self.limit


# $1 merchant, $3 after id, $4 created from, $5 created before, $6 the LIMIT (`Cursor.params`);
# $2 and from $7 on are the list's own filters.
CURSOR_CLAUSE = """
  AND ($3::bigint IS NULL OR (t.created_at, t.id) >
       (SELECT c.created_at, c.id FROM {table} c WHERE c.merchant_id = $1 AND c.id = $3))
  AND ($4::timestamptz IS NULL OR t.created_at >= $4)
  AND ($5::timestamptz IS NULL OR t.created_at < $5)
"""


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
