"""The reports' pure arithmetic: date ranges, buckets and compare periods in the merchant's
days, the month split of a leaderboard's range, rates, the cycle-time median and CSV cells.

No I/O: values in, values out (tests/analytics/test_periods.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

Interval = Literal["day", "week", "month"]
CompareMode = Literal["none", "previous", "year"]

DEFAULT_DAYS = 30
# A range holds at most three years of days (one of them a leap year).
MAX_DAYS = 3 * 365 + 1
# Dates a report may name: far enough either side for any shop, near enough that a compare
# period a year back stays a date.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)
# "The same period a year earlier" is 52 weeks back, so Mondays compare with Mondays.
YEAR_DAYS = 364
RATIO_DIGITS = 6


class PeriodError(ValueError):
    """A range the reports refuse (the caller turns it into a 422 naming the problem)."""


class Range(NamedTuple):
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def today_in(zone: str, now: datetime) -> date:
    """The merchant's calendar day at `now`; a zone the system does not know counts as UTC,
    as the rollups' days do."""
    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")
    return now.astimezone(tz).date()


def resolve_range(start: date | None, end: date | None, today: date) -> Range:
    """The asked range, both ends inclusive: `to` defaults to today (or `from`, if later),
    `from` to the 30 days ending at `to`. Refused: `from` after `to`, more than three
    years, a day outside 2000-01-01..2999-12-31."""
    end = end if end is not None else max(today, start) if start is not None else today
    start = start if start is not None else end - timedelta(days=DEFAULT_DAYS - 1)
    for name, day in (("from", start), ("to", end)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise PeriodError(f"`{name}` must be between {FIRST_DAY} and {LAST_DAY} (got {day})")
    if start > end:
        raise PeriodError(f"`from` ({start}) is after `to` ({end})")
    found = Range(start, end)
    if found.days > MAX_DAYS:
        raise PeriodError(
            f"a report covers at most {MAX_DAYS} days (three years); {start}..{end} is "
            f"{found.days} days"
        )
    return found


def bucket_start(day: date, interval: Interval) -> date:
    """The first day of the bucket holding `day`: itself, its week's Monday, its month's 1st."""
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def _bucket_end(start: date, interval: Interval) -> date:
    if interval == "week":
        return start + timedelta(days=6)
    if interval == "month":
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)
    return start


def buckets(span: Range, interval: Interval) -> list[Range]:
    """The range cut into days, weeks (Monday to Sunday) or calendar months, the first and
    last cut at the range's ends, so the buckets add up to the range exactly."""
    found = []
    start = span.start
    while start <= span.end:
        end = min(_bucket_end(bucket_start(start, interval), interval), span.end)
        found.append(Range(start, end))
        start = end + timedelta(days=1)
    return found


def compare_range(span: Range, mode: CompareMode) -> Range | None:
    """`previous`: as many days, ending the day before `from`; `year`: 364 days earlier
    (52 weeks), so each day compares with the same weekday."""
    if mode == "previous":
        return Range(span.start - timedelta(days=span.days), span.start - timedelta(days=1))
    if mode == "year":
        back = timedelta(days=YEAR_DAYS)
        return Range(span.start - back, span.end - back)
    return None


class MonthSplit(NamedTuple):
    """A range as the whole calendar months inside it (first day of the first and last, or
    None) and the days outside them at either end (at most two ranges)."""

    months: tuple[date, date] | None
    days: tuple[Range, ...]


def month_split(span: Range) -> MonthSplit:
    first = span.start if span.start.day == 1 else _bucket_end(span.start, "month") + timedelta(1)
    after_last = span.end + timedelta(days=1)
    last_end = after_last.replace(day=1) - timedelta(days=1)  # last day of the last whole month
    if first > last_end:  # no whole month inside
        return MonthSplit(None, (span,))
    days = []
    if span.start < first:
        days.append(Range(span.start, first - timedelta(days=1)))
    if last_end < span.end:
        days.append(Range(last_end + timedelta(days=1), span.end))
    return MonthSplit((first, last_end.replace(day=1)), tuple(days))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, rounded to 6 decimals; None when either is unknown or the
    denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, RATIO_DIGITS)


def per(amount: int | None, count: float | None) -> int | None:
    """Minor units per unit of `count` (an average order value, cost per customer), rounded
    to the nearest whole minor unit, halves away from zero; None when `count` is 0."""
    if amount is None or count is None or count == 0:
        return None
    if isinstance(count, int):
        quotient, remainder = divmod(abs(amount), count)
        rounded = quotient + (1 if 2 * remainder >= count else 0)
        return rounded if amount >= 0 else -rounded
    value = abs(amount) / count
    rounded = int(value + 0.5)
    return rounded if amount >= 0 else -rounded


def product(*factors: float | None) -> float | None:
    """The product, rounded to 6 decimals; None when any factor is unknown."""
    result = 1.0
    for factor in factors:
        if factor is None:
            return None
        result *= factor
    return round(result, RATIO_DIGITS)


def histogram_median(counts: Mapping[int, int]) -> int | float | None:
    """The median of values given as {value: how many}; the mean of the two middle values
    for an even count; None when empty."""
    total = sum(n for n in counts.values() if n > 0)
    if total == 0:
        return None
    lower_rank, upper_rank = (total - 1) // 2, total // 2  # 0-based ranks of the middle
    lower = upper = None
    seen = 0
    for value in sorted(counts):
        n = counts[value]
        if n <= 0:
            continue
        if lower is None and seen + n > lower_rank:
            lower = value
        if seen + n > upper_rank:
            upper = value
            break
        seen += n
    assert lower is not None and upper is not None
    middle = (lower + upper) / 2
    return int(middle) if middle.is_integer() else middle


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """A text cell a spreadsheet will not run: one starting with = + - @, a tab or a carriage
    return gets a leading apostrophe (the rule of the payout exports' `csv_safe` in SQL)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_number(value: int | float | None) -> str:
    """A number cell: empty for None, integers as they are, ratios without exponent."""
    if value is None:
        return ""
    if isinstance(value, bool):  # not a number here
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    text = f"{value:.{RATIO_DIGITS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
