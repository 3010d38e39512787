"""Cursor pagination shared by every list: `limit` and `starting_after` (a public id),
stable order by creation time then id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from referral.lib.ids import PublicIds

T = TypeVar("T")

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size (1-100)")]
StartingAfter = Annotated[
    str | None,
    QueryParameter(description="Return items after this id (the last id of the previous page)"),
]
# Times in a query are RFC 3339 text, read strictly (`query_time`): Litestar's own reading of
# a `datetime` parameter is msgspec's lax one, where `created_from=0.5` is 1970-01-01.
_RFC3339 = {"format": "date-time"}
CreatedFrom = Annotated[
    str | None,
    QueryParameter(
        description="Only items created at or after this time (RFC 3339)", schema_extra=_RFC3339
    ),
]
CreatedBefore = Annotated[
    str | None,
    QueryParameter(
        description="Only items created before this time (RFC 3339)", schema_extra=_RFC3339
    ),
]


def query_time(name: str, value: str | None) -> datetime | None:
    """A time from the query string: RFC 3339 with a time zone, or a 400 naming the parameter."""
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, datetime, strict=True)
    except msgspec.ValidationError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        message = "Expected an RFC 3339 time with a time zone, e.g. 2026-01-31T12:00:00Z"
        raise ValidationException(
            detail=message, extra=[{"key": name, "message": message, "source": "query"}]
        )
    return parsed


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
