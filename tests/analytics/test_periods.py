"""The reports' pure arithmetic: ranges, buckets, compare periods, the month split, rates,
the median and CSV cells."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referral.analytics import periods
from referral.analytics.periods import PeriodError, Range

DAYS = st.dates(min_value=date(2001, 1, 1), max_value=date(2998, 12, 31))


class TestRange:
    def test_defaults_to_the_last_30_days(self):
        today = date(2026, 3, 15)
        assert periods.resolve_range(None, None, today) == Range(date(2026, 2, 14), today)

    def test_from_alone_runs_to_today(self):
        today = date(2026, 3, 15)
        assert periods.resolve_range(date(2026, 3, 1), None, today) == Range(
            date(2026, 3, 1), today
        )

    def test_from_after_today_alone_is_one_day(self):
        later = date(2026, 4, 1)
        assert periods.resolve_range(later, None, date(2026, 3, 15)) == Range(later, later)

    def test_to_alone_takes_the_30_days_before_it(self):
        end = date(2026, 1, 31)
        assert periods.resolve_range(None, end, date(2026, 3, 15)) == Range(date(2026, 1, 2), end)

    def test_from_after_to_is_refused(self):
        with pytest.raises(PeriodError, match="after"):
            periods.resolve_range(date(2026, 2, 1), date(2026, 1, 1), date(2026, 3, 1))

    def test_three_years_at_most(self):
        start = date(2023, 1, 1)
        longest = start + timedelta(days=periods.MAX_DAYS - 1)
        assert periods.resolve_range(start, longest, longest).days == periods.MAX_DAYS
        with pytest.raises(PeriodError, match="three years"):
            periods.resolve_range(start, longest + timedelta(days=1), longest)

    @pytest.mark.parametrize("day", [date(1, 1, 1), date(1999, 12, 31), date(9999, 12, 31)])
    def test_days_out_of_bounds_are_refused(self, day):
        with pytest.raises(PeriodError, match="between"):
            periods.resolve_range(day, day, date(2026, 1, 1))

    def test_today_is_the_merchants_day(self):
        # 23:30 UTC on 31 January is already 1 February in Stockholm.
        now = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
        assert periods.today_in("Europe/Stockholm", now) == date(2026, 2, 1)
        assert periods.today_in("UTC", now) == date(2026, 1, 31)
        assert periods.today_in("Not/AZone", now) == date(2026, 1, 31)


class TestBuckets:
    def test_days(self):
        span = Range(date(2026, 1, 30), date(2026, 2, 2))
        assert [b.start for b in periods.buckets(span, "day")] == [
            date(2026, 1, 30),
            date(2026, 1, 31),
            date(2026, 2, 1),
            date(2026, 2, 2),
        ]

    def test_weeks_start_on_monday_and_are_cut_at_the_ends(self):
        # 2026-01-01 is a Thursday.
        span = Range(date(2026, 1, 1), date(2026, 1, 20))
        assert periods.buckets(span, "week") == [
            Range(date(2026, 1, 1), date(2026, 1, 4)),
            Range(date(2026, 1, 5), date(2026, 1, 11)),
            Range(date(2026, 1, 12), date(2026, 1, 18)),
            Range(date(2026, 1, 19), date(2026, 1, 20)),
        ]

    def test_months_are_calendar_months(self):
        span = Range(date(2024, 1, 15), date(2024, 3, 10))
        assert periods.buckets(span, "month") == [
            Range(date(2024, 1, 15), date(2024, 1, 31)),
            Range(date(2024, 2, 1), date(2024, 2, 29)),  # a leap year
            Range(date(2024, 3, 1), date(2024, 3, 10)),
        ]

    @given(DAYS, st.integers(0, 800), st.sampled_from(["day", "week", "month"]))
    def test_buckets_cover_the_range_exactly_once(self, start, length, interval):
        span = Range(start, start + timedelta(days=length))
        found = periods.buckets(span, interval)
        assert found[0].start == span.start and found[-1].end == span.end
        assert sum(b.days for b in found) == span.days
        for before, after in zip(found, found[1:], strict=False):
            assert after.start == before.end + timedelta(days=1)
        for b in found:  # every day of a bucket maps to that bucket's key
            key = periods.bucket_start(b.start, interval)
            assert periods.bucket_start(b.end, interval) == key
            if interval == "week":
                assert key.weekday() == 0
            if interval == "month":
                assert key.day == 1


class TestCompare:
    def test_previous_is_as_long_and_just_before(self):
        span = Range(date(2026, 3, 1), date(2026, 3, 31))
        assert periods.compare_range(span, "previous") == Range(
            date(2026, 1, 29), date(2026, 2, 28)
        )

    def test_year_is_52_weeks_back_on_the_same_weekdays(self):
        span = Range(date(2026, 3, 2), date(2026, 3, 8))
        other = periods.compare_range(span, "year")
        assert other == Range(date(2025, 3, 3), date(2025, 3, 9))
        assert other.start.weekday() == span.start.weekday()

    def test_none(self):
        assert periods.compare_range(Range(date(2026, 1, 1), date(2026, 1, 2)), "none") is None

    @given(DAYS, st.integers(0, 1000))
    def test_previous_ends_the_day_before(self, start, length):
        span = Range(start, start + timedelta(days=length))
        other = periods.compare_range(span, "previous")
        assert other.days == span.days and other.end + timedelta(days=1) == span.start


class TestMonthSplit:
    def test_whole_months_and_the_days_at_either_end(self):
        split = periods.month_split(Range(date(2025, 12, 20), date(2026, 3, 5)))
        assert split.months == (date(2026, 1, 1), date(2026, 2, 1))
        assert split.days == (
            Range(date(2025, 12, 20), date(2025, 12, 31)),
            Range(date(2026, 3, 1), date(2026, 3, 5)),
        )

    def test_a_range_of_whole_months_reads_no_days(self):
        split = periods.month_split(Range(date(2026, 1, 1), date(2026, 12, 31)))
        assert split.months == (date(2026, 1, 1), date(2026, 12, 1)) and split.days == ()

    def test_inside_one_month_reads_days_only(self):
        span = Range(date(2026, 2, 3), date(2026, 2, 27))
        assert periods.month_split(span) == periods.MonthSplit(None, (span,))

    @given(DAYS, st.integers(0, 800))
    def test_every_day_is_read_once(self, start, length):
        span = Range(start, start + timedelta(days=length))
        split = periods.month_split(span)
        days = set()
        for piece in split.days:
            days.update(piece.start + timedelta(days=i) for i in range(piece.days))
        if split.months:
            first, last = split.months
            assert first.day == last.day == 1
            end = periods.buckets(Range(last, last + timedelta(days=31)), "month")[0].end
            whole = Range(first, end)
            month_days = {whole.start + timedelta(days=i) for i in range(whole.days)}
            assert not month_days & days
            days |= month_days
        assert days == {span.start + timedelta(days=i) for i in range(span.days)}


class TestRates:
    def test_ratio(self):
        assert periods.ratio(1, 3) == 0.333333
        assert periods.ratio(5, 0) is None
        assert periods.ratio(None, 3) is None
        assert periods.ratio(-1, 4) == -0.25

    def test_per_rounds_to_the_minor_unit_halves_away_from_zero(self):
        assert periods.per(1000, 3) == 333
        assert periods.per(1001, 2) == 501
        assert periods.per(-1001, 2) == -501
        assert periods.per(1000, 0) is None
        assert periods.per(1000, 2.5) == 400

    def test_product(self):
        assert periods.product(0.5, 4, 0.25) == 0.5
        assert periods.product(0.5, None) is None

    @pytest.mark.parametrize(
        ("counts", "median"),
        [
            ({}, None),
            ({0: 0}, None),
            ({3: 1}, 3),
            ({0: 3, 1: 1}, 0),
            ({0: 2, 1: 2}, 0.5),
            ({1: 1, 5: 1, 9: 1}, 5),
            ({365: 2, 2: 1}, 365),
        ],
    )
    def test_histogram_median(self, counts, median):
        assert periods.histogram_median(counts) == median

    @given(st.lists(st.integers(0, 365), min_size=1, max_size=50))
    def test_histogram_median_is_the_median(self, values):
        counts: dict[int, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        ordered = sorted(values)
        n = len(ordered)
        assert periods.histogram_median(counts) == (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


class TestCsvCells:
    @pytest.mark.parametrize(
        ("text", "safe"),
        [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("whatsapp", "whatsapp"),
            ("", ""),
        ],
    )
    def test_text_that_would_run_gets_an_apostrophe(self, text, safe):
        assert periods.csv_safe(text) == safe

    @pytest.mark.parametrize(
        ("value", "cell"),
        [(None, ""), (0, "0"), (-5, "-5"), (0.25, "0.25"), (-0.5, "-0.5"), (1e-7, "0"), (3.0, "3")],
    )
    def test_numbers(self, value, cell):
        assert periods.csv_number(value) == cell
