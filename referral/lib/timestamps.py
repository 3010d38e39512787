"""Times the shop reports (`occurred_at`): used for windows and holds, so backfills work,
but never more than a few minutes in the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from referral.lib.errors import InvalidInput

MAX_FUTURE = timedelta(minutes=5)
# Nothing the shop reports happened before this service's world began: an earlier time is a
# unit mistake (seconds read as years) or a placeholder, never a real order.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def reported_at(at: datetime | None, now: datetime) -> datetime:
    """The reported time in UTC, or `now` when none was sent."""
    if at is None:
        return now
    if at.tzinfo is None:
        raise InvalidInput(
            "occurred_at needs a time zone (ISO 8601 with Z or an offset)", code="invalid_timestamp"
        )
    if at > now + MAX_FUTURE:
        raise InvalidInput(
            "occurred_at may not be more than 5 minutes in the future", code="occurred_in_future"
        )
    if at < EARLIEST:
        raise InvalidInput(
            "occurred_at may not be before 2000-01-01T00:00:00Z", code="occurred_too_early"
        )
    return at.astimezone(UTC)
