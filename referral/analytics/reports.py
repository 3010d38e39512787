"""The reports: rollup sums turned into answers, one function per report.

`report()` checks the question (the report, its filters, its range in the merchant's days),
reads the rollups for the range and for its compare period (`repo`, below its report-reads
marker: never raw clicks or orders), and has the report's function state every figure from
the sums of one span (a bucket, the whole range, a breakdown key): the same function for
the totals, the series, the breakdown and the compare period, so they always agree.

Money is kept per currency throughout; distinct counts are the union of the days'
HyperLogLog sketches (`estimate: true`, as is every rate computed from one).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import datasketches
import msgspec

from referral.analytics import periods, repo, rules
from referral.analytics.periods import PeriodError, Range
from referral.analytics.schemas import (
    METRICS,
    REPORTS,
    WINDOWS,
    Answer,
    Breakdown,
    Bucket,
    Comparison,
    Filters,
    Group,
    Ranked,
    Ranking,
    ReportQuery,
    Value,
    conversion_name,
)
from referral.lib import money
from referral.lib.errors import InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.links.service import CHANNELS as LINK_CHANNELS
from referral.merchants.service import Caller
from referral.runtime import Runtime

SKETCH_LG_K = 12
# The channels a referral or a click can carry: the links' channels, and `code` for a code
# typed at checkout.
CHANNELS = frozenset(LINK_CHANNELS | {"code"})
LEADERBOARDS = {"advocates": "first_orders", "stories": "clicks"}
RANKINGS = {
    "advocates": ("first_orders", "first_order_revenue", "unique_clicks"),
    "stories": ("clicks", "signups", "first_orders", "orders_per_view"),
}
HLL_NOTE = (
    "Distinct counts (estimate: true) are HyperLogLog estimates: lg_k 12, about 1.6 % "
    "relative standard error; rates computed from them are estimates too."
)

MERCHANT = frozenset({0})  # program 0: the shop's own facts (every order, every customer)
PROGRAMS = frozenset({1})  # the program asked for, or every program
EVERY = frozenset({0, 1, 2})


# --- the sums of n spans -------------------------------------------------------------------


class Sums:
    """The rollup sums of n spans at once (the buckets of a series, the whole range, the keys
    of a breakdown or of a leaderboard): per metric, (scope, dim, currency) -> one value per
    span, and the spans' distinct-count sketches. A report's function states its figures for
    every span in one pass, column by column, so a year by day costs a few list operations
    per figure, not a dictionary walk per figure per day."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cells: dict[str, dict[tuple[int, str, str], list[int]]] = defaultdict(dict)
        self.sketches: dict[str, list[datasketches.hll_union | None]] = {}
        self.estimates: dict[str, list[float]] = {}

    def column(self, scope: int, metric: str, dim: str, currency: str) -> list[int]:
        """The values of one cell key, one per span (to add to)."""
        cells = self.cells[metric]
        column = cells.get((scope, dim, currency))
        if column is None:
            column = cells[(scope, dim, currency)] = [0] * self.n
        return column

    def add(self, scope: int, metric: str, dim: str, currency: str, slot: int, value: int) -> None:
        self.column(scope, metric, dim, currency)[slot] += value

    def add_sketch(self, metric: str, slot: int, sketch: datasketches.hll_sketch) -> None:
        unions = self.sketches.get(metric)
        if unions is None:
            unions = self.sketches[metric] = [None] * self.n
        union = unions[slot]
        if union is None:
            union = unions[slot] = datasketches.hll_union(SKETCH_LG_K)
        union.update(sketch)

    def _summed(self, columns: list[list[int]]) -> list[int]:
        if not columns:
            return [0] * self.n
        if len(columns) == 1:
            return columns[0]
        return [sum(values) for values in zip(*columns, strict=True)]

    def count(self, metric: str, scopes: frozenset[int] = PROGRAMS) -> list[int]:
        cells = self.cells.get(metric, {})
        return self._summed([c for (s, _, _), c in cells.items() if s in scopes])

    def _grouped(self, metric: str, scopes: frozenset[int], by: int) -> dict[str, list[int]]:
        groups: dict[str, list[list[int]]] = defaultdict(list)
        for key, column in self.cells.get(metric, {}).items():
            if key[0] in scopes:
                groups[key[by]].append(column)  # type: ignore[index]
        return {k: self._summed(columns) for k, columns in groups.items()}

    def by_currency(self, metric: str, scopes: frozenset[int] = PROGRAMS) -> dict[str, list[int]]:
        return self._grouped(metric, scopes, 2)

    def by_dim(self, metric: str, scopes: frozenset[int] = PROGRAMS) -> dict[str, list[int]]:
        return self._grouped(metric, scopes, 1)

    def set_estimate(self, metric: str, slot: int, estimate: float) -> None:
        """A span's distinct count as a stored sketch estimated it (a day's, a month's)."""
        estimates = self.estimates.get(metric)
        if estimates is None:
            estimates = self.estimates[metric] = [0.0] * self.n
        estimates[slot] = estimate

    def estimate(self, metric: str) -> list[float]:
        estimates = self.estimates.get(metric) or [0.0] * self.n
        unions = self.sketches.get(metric)
        if unions is None:
            return estimates
        return [
            e if u is None else u.get_estimate() for e, u in zip(estimates, unions, strict=True)
        ]


class Column(NamedTuple):
    """One figure for every span."""

    metric: str
    currency: str | None
    values: list[Any]


def _column(metric: str, values: list[Any], currency: str | None = None) -> Column:
    spec = METRICS[metric]
    if spec.estimate and spec.unit == "count":
        values = [round(v) if isinstance(v, float) else v for v in values]
    elif spec.unit == "ratio":
        values = [round(v, periods.RATIO_DIGITS) if isinstance(v, float) else v for v in values]
    return Column(metric, currency, values)


def _zeros(n: int) -> list[int]:
    return [0] * n


def ratios(numerators: list[Any], denominators: list[Any]) -> list[float | None]:
    return list(map(periods.ratio, numerators, denominators))


def pers(amounts: list[Any], counts: list[Any]) -> list[int | None]:
    return list(map(periods.per, amounts, counts))


@dataclass
class Context:
    """What a report's figures depend on besides the sums."""

    name: str
    currencies: list[str]
    filters: Filters
    today: date
    steps: list[str] = field(default_factory=list)  # the funnel's steps in this answer
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _money(
    ctx: Context,
    s: Sums,
    metric: str,
    amounts: dict[str, list[int]] | Callable[[str], list[Any]],
) -> list[Column]:
    """One column per currency of the answer (0, or null for a rate, where none)."""
    if callable(amounts):
        return [_column(metric, amounts(cur), cur) for cur in ctx.currencies]
    return [_column(metric, amounts.get(cur) or _zeros(s.n), cur) for cur in ctx.currencies]


def _per_currency_counts(
    ctx: Context, sums: Sums, metric: str, scopes: frozenset[int]
) -> dict[str, list[int]] | None:
    """A count per currency (for an average order value). Counts are kept without a
    currency; with one currency in the answer they are all in it, with several they are
    not known per currency (None)."""
    counts = sums.by_currency(metric, scopes)
    if set(counts) - {""}:
        return counts
    if len(ctx.currencies) <= 1:
        return {cur: counts.get("", _zeros(sums.n)) for cur in ctx.currencies}
    return None


# --- the reports, one function per report: the figures of every span ------------------


def funnel_values(ctx: Context, s: Sums) -> list[Column]:
    out: list[Column] = []
    previous: tuple[str, list[Any]] | None = None
    for step in ctx.steps:
        amounts: list[Any] = s.estimate(step) if step == "visitors" else s.count(step)
        out.append(_column(step, amounts))
        if previous is not None:
            out.append(_column(conversion_name(previous[0], step), ratios(amounts, previous[1])))
        previous = (step, amounts)
    out += _money(ctx, s, "first_order_revenue", s.by_currency("first_order_revenue"))
    return out


FUNNEL_BY_CHANNEL = ("shares", "clicks", "unique_clicks", "signups", "first_orders")


def funnel_channel_values(ctx: Context, s: Sums) -> list[Column]:
    out = [_column(metric, s.count(metric)) for metric in FUNNEL_BY_CHANNEL]
    return out + _money(ctx, s, "first_order_revenue", s.by_currency("first_order_revenue"))


def impact_values(ctx: Context, s: Sums) -> list[Column]:
    orders = s.count("orders", MERCHANT)
    revenue = s.by_currency("revenue", MERCHANT)
    referred_orders = s.count("referred_orders")
    referred_revenue = s.by_currency("referred_revenue")
    new_customers = s.count("new_customers", EVERY)
    referred_new = s.count("new_customers")
    orders_in = _per_currency_counts(ctx, s, "orders", MERCHANT)
    referred_in = _per_currency_counts(ctx, s, "referred_orders", PROGRAMS)
    if orders_in is None or referred_in is None:
        ctx.note(
            "aov and referred_aov need order counts per currency: with orders in several "
            "currencies they are null."
        )
    zeros = _zeros(s.n)

    def aov(amounts: dict[str, list[int]], counts: dict[str, list[int]] | None):
        def of(cur: str) -> list[Any]:
            if counts is None:
                return [None] * s.n
            return pers(amounts.get(cur, zeros), counts.get(cur, zeros))

        return of

    return [
        _column("orders", orders),
        *_money(ctx, s, "revenue", revenue),
        _column("referred_orders", referred_orders),
        *_money(ctx, s, "referred_revenue", referred_revenue),
        _column("referred_order_share", ratios(referred_orders, orders)),
        *_money(
            ctx,
            s,
            "referred_revenue_share",
            lambda cur: ratios(referred_revenue.get(cur, zeros), revenue.get(cur, zeros)),
        ),
        _column("new_customers", new_customers),
        _column("referred_new_customers", referred_new),
        _column("referred_new_customer_share", ratios(referred_new, new_customers)),
        *_money(ctx, s, "aov", aov(revenue, orders_in)),
        *_money(ctx, s, "referred_aov", aov(referred_revenue, referred_in)),
    ]


def impact_channel_values(ctx: Context, s: Sums) -> list[Column]:
    return [
        _column("referred_orders", s.count("referred_orders")),
        *_money(ctx, s, "referred_revenue", s.by_currency("referred_revenue")),
        _column("first_orders", s.count("first_orders")),
        _column("referred_new_customers", s.count("new_customers")),
    ]


def cost_values(ctx: Context, s: Sums) -> list[Column]:
    cost = s.by_currency("reward_cost")
    referred_revenue = s.by_currency("referred_revenue")
    referred_new = s.count("new_customers")
    zeros = _zeros(s.n)

    def roi(cur: str) -> list[Any]:
        spent, earned = cost.get(cur, zeros), referred_revenue.get(cur, zeros)
        return ratios([e - c for e, c in zip(earned, spent, strict=True)], spent)

    return [
        *_money(ctx, s, "reward_cost", cost),
        *_money(ctx, s, "reward_pending", s.by_currency("reward_pending")),
        *_money(ctx, s, "coupon_value", s.by_currency("coupon_value")),
        *_money(ctx, s, "referred_revenue", referred_revenue),
        _column("referred_new_customers", referred_new),
        *_money(
            ctx, s, "cost_per_new_customer", lambda cur: pers(cost.get(cur, zeros), referred_new)
        ),
        *_money(ctx, s, "roi", roi),
    ]


def cost_side_values(ctx: Context, s: Sums) -> list[Column]:
    return [
        *_money(ctx, s, "reward_cost", s.by_currency("reward_cost")),
        *_money(ctx, s, "reward_pending", s.by_currency("reward_pending")),
        *_money(ctx, s, "coupon_value", s.by_currency("coupon_value")),
    ]


def _quotient(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _k_factor(participation: float | None, invites: float | None, conversion: float | None):
    if participation is None or invites is None or conversion is None:
        return None
    return participation * invites * conversion


def _histograms(by_dim: dict[str, list[int]], n: int) -> list[dict[int, int]]:
    """Per span, {whole days: how many} from the columns of a dim that is a number."""
    spans: list[dict[int, int]] = [{} for _ in range(n)]
    for dim, column in by_dim.items():
        if not dim.isdigit():
            continue
        days = int(dim)
        for slot, count in enumerate(column):
            if count:
                spans[slot][days] = count
    return spans


def virality_values(ctx: Context, s: Sums) -> list[Column]:
    sharing = s.estimate("sharing_advocates")
    ordering = s.estimate("ordering_customers")
    visitors = s.estimate("visitors")
    first_orders = s.count("first_orders")
    participation = list(map(_quotient, sharing, ordering))
    invites = list(map(_quotient, visitors, sharing))
    conversion = list(map(_quotient, first_orders, visitors))
    medians = [periods.histogram_median(h) for h in _histograms(s.by_dim("cycle_days"), s.n)]
    return [
        _column("sharing_advocates", sharing),
        _column("ordering_customers", ordering),
        _column("participation", participation),
        _column("visitors", visitors),
        _column("invites_per_advocate", invites),
        _column("first_orders", first_orders),
        _column("friend_conversion", conversion),
        _column("k_factor", list(map(_k_factor, participation, invites, conversion))),
        _column("cycle_days_median", medians),
        _column("friends_turned_advocates", s.count("friends_turned_advocates")),
    ]


def _value_metrics(ctx: Context, s: Sums, scopes: frozenset[int]) -> list[Column]:
    out = [_column("customers", s.count("customers", scopes))]
    for n in WINDOWS:
        mature = s.count(f"mature_customers_{n}", scopes)
        repeat = s.count(f"repeat_{n}", scopes)
        revenue = s.by_currency(f"revenue_{n}", scopes)
        out += [
            _column(f"mature_customers_{n}", mature),
            _column(f"repeat_customers_{n}", repeat),
            _column(f"repeat_rate_{n}", ratios(repeat, mature)),
            _column(f"orders_per_customer_{n}", ratios(s.count(f"orders_{n}", scopes), mature)),
            *_money(
                ctx,
                s,
                f"revenue_per_customer_{n}",
                lambda cur, revenue=revenue, mature=mature: pers(
                    revenue.get(cur) or _zeros(s.n), mature
                ),
            ),
        ]
    return out


VALUE_COHORTS = {"referred": PROGRAMS, "other": MERCHANT}


def value_values(ctx: Context, s: Sums) -> list[Column]:
    return _value_metrics(ctx, s, MERCHANT | PROGRAMS)


ADVOCATE_FIGURES = ("first_orders", "first_order_revenue", "unique_clicks", "clicks", "signups")


def advocates_values(ctx: Context, s: Sums) -> list[Column]:
    out = []
    for metric in ADVOCATE_FIGURES:
        if METRICS[metric].unit == "minor_units":
            out += _money(ctx, s, metric, s.by_currency(metric))
        else:
            out.append(_column(metric, s.count(metric)))
    return out


STORY_FIGURES = ("story_views", "clicks", "signups", "first_orders")


def stories_values(ctx: Context, s: Sums) -> list[Column]:
    views, orders = s.count("story_views"), s.count("first_orders")
    out = [_column(metric, s.count(metric)) for metric in STORY_FIGURES]
    return out + [_column("orders_per_view", ratios(orders, views))]


OUTCOMES = ("allowed", "in_review", "blocked", "pending", "ineligible")


def fraud_values(ctx: Context, s: Sums) -> list[Column]:
    outcomes = s.by_dim("referrals")
    zeros = _zeros(s.n)
    of = {o: outcomes.get(o, zeros) for o in OUTCOMES}
    every = s.count("referrals")
    decided = [sum(v) for v in zip(of["allowed"], of["in_review"], of["blocked"], strict=True)]
    return [
        _column("referrals", every),
        *(_column(f"referrals_{o}", of[o]) for o in OUTCOMES),
        _column("allowed_share", ratios(of["allowed"], decided)),
        _column("in_review_share", ratios(of["in_review"], decided)),
        _column("blocked_share", ratios(of["blocked"], decided)),
        *_money(ctx, s, "reward_blocked", s.by_currency("reward_blocked")),
    ]


def fraud_rule_values(ctx: Context, s: Sums) -> list[Column]:
    return [_column("referrals", s.count("referrals_by_rule"))]


@dataclass(frozen=True)
class Spec:
    """A report: the rollup metrics it reads, the function stating a span's figures, and
    its breakdown (by what, the figures of one key, the metric its keys come from)."""

    metrics: tuple[str, ...]
    values: Callable[[Context, Sums], list[Column]]
    sketches: tuple[str, ...] = ()
    keep_dims: tuple[str, ...] = ()
    breakdown: tuple[str, Callable[[Context, Sums], list[Column]], tuple[str, ...]] | None = None


_VALUE_METRICS = (
    "new_customers",
    *(f"{kind}_{n}" for n in WINDOWS for kind in ("repeat", "orders", "revenue")),
)

SPECS: dict[str, Spec] = {
    "funnel": Spec(
        (
            "share_page_views",
            "story_views",
            "shares",
            "clicks",
            "unique_clicks",
            "signups",
            "first_orders",
            "first_order_revenue",
        ),
        funnel_values,
        sketches=("visitors",),
        breakdown=(
            "channel",
            funnel_channel_values,
            ("shares", "clicks", "unique_clicks", "signups", "first_orders", "first_order_revenue"),
        ),
    ),
    "impact": Spec(
        (
            "orders",
            "revenue",
            "referred_orders",
            "referred_revenue",
            "new_customers",
            "first_orders",
        ),
        impact_values,
        breakdown=(
            "channel",
            impact_channel_values,
            ("referred_orders", "referred_revenue", "first_orders", "new_customers"),
        ),
    ),
    "cost": Spec(
        ("reward_cost", "reward_pending", "coupon_value", "referred_revenue", "new_customers"),
        cost_values,
        breakdown=("side", cost_side_values, ("reward_cost", "reward_pending", "coupon_value")),
    ),
    "virality": Spec(
        ("first_orders", "cycle_days", "friends_turned_advocates"),
        virality_values,
        sketches=("sharing_advocates", "ordering_customers", "visitors"),
        keep_dims=("cycle_days",),
    ),
    "value": Spec(_VALUE_METRICS, value_values),
    "advocates": Spec(ADVOCATE_FIGURES, advocates_values),
    "stories": Spec(STORY_FIGURES, stories_values),
    "fraud": Spec(
        ("referrals", "referrals_by_rule", "reward_blocked"),
        fraud_values,
        keep_dims=("referrals",),
        breakdown=("rule", fraud_rule_values, ("referrals_by_rule",)),
    ),
}


# --- reading a period ----------------------------------------------------------------------


@dataclass
class Read:
    """A period's sums: per bucket (`series`), over the whole range (`total`), and by
    breakdown key (`by_key`, one span per key of `keys`)."""

    span: Range
    buckets: list[Range]
    series: Sums
    total: Sums
    keys: list[str]
    by_key: Sums


@dataclass(frozen=True)
class Question:
    name: str
    merchant_id: int
    program_id: int | None
    story_id: int | None
    advocate_id: int | None
    channel: str | None
    interval: periods.Interval
    today: date
    series: bool = True  # False: the totals alone (no bucket is summed)


def _slots(buckets: list[Range]) -> dict[date, int]:
    return _slots_of(tuple(buckets))


@functools.lru_cache(maxsize=64)
def _slots_of(buckets: tuple[Range, ...]) -> dict[date, int]:
    """Each day of the range -> its bucket's place in the series (the same ranges are asked
    for again and again: a page's reports, their compare periods). Read only."""
    return {
        b.start + timedelta(days=d): i
        for i, b in enumerate(buckets)
        for d in range((b.end - b.start).days + 1)
    }


def _counted_as(name: str, metric: str, today: date) -> list[tuple[str, date | None]]:
    """The metrics a day's sum of `metric` counts under, each with the last day it counts
    for (None: every day). The value report counts every new customer of a cohort day, and
    for each window only the days at least that long ago (mature)."""
    if name != "value":
        return [(metric, None)]
    if metric == "new_customers":
        windows = [(f"mature_customers_{n}", today - timedelta(days=n)) for n in WINDOWS]
        return [("customers", None), *windows]
    n = int(metric.rsplit("_", 1)[1])
    return [(metric, today - timedelta(days=n))]


def _add_days(read: Read, slots: dict[date, int] | None, name: str, today: date, scope: int,
              metric: str, dim: str, currency: str, days: list[date],
              values: list[int]) -> None:  # fmt: skip
    """One cell's sums by day into the series' buckets (`slots` None: no series) and the
    total."""
    for counted, last in _counted_as(name, metric, today):
        if slots is None:
            if last is None:
                total = sum(values)
            else:
                total = sum(v for d, v in zip(days, values, strict=True) if d <= last)
        else:
            column = read.series.column(scope, counted, dim, currency)
            total = 0
            for day, value in zip(days, values, strict=True):
                if last is None or day <= last:
                    column[slots[day]] += value
                    total += value
        read.total.column(scope, counted, dim, currency)[0] += total


def _scope(program_id: int, asked: int | None) -> int:
    """0: the merchant-wide facts (program 0); 1: the program asked for, or every program
    when none is; 2: the other programs."""
    if program_id == 0:
        return 0
    return 1 if asked is None or program_id == asked else 2


async def _read_series(
    conn: asyncpg.Connection, question: Question, spec: Spec, span: Range, read: Read
) -> None:
    slots = _slots(read.buckets) if question.series else None
    name, today = question.name, question.today
    if question.story_id or question.advocate_id or question.channel:
        rollup_read = repo.RollupRead(
            start=span.start,
            end=span.end,
            interval="day",
            metrics=list(spec.metrics),
            program_id=question.program_id,
            channel=question.channel,
            keep_dims=list(spec.keep_dims),
        )
        if question.story_id is not None:
            story = question.story_id
            rows = await repo.story_sums(conn, question.merchant_id, rollup_read, story)
        elif question.advocate_id is not None:
            advocate = question.advocate_id
            rows = await repo.advocate_sums(conn, question.merchant_id, rollup_read, advocate)
        else:
            rows = await repo.daily_sums(conn, question.merchant_id, rollup_read)
        for row in rows:
            if row.bucket is not None:
                _add_days(read, slots, name, today, row.scope, row.metric, row.dim,
                          row.currency, [row.bucket], [row.value])  # fmt: skip
        return
    # Unfiltered: the series from the totals, but for the metrics that keep their dim.
    plain = [m for m in spec.metrics if m not in spec.keep_dims]
    for metrics, with_dims in ((plain, False), (list(spec.keep_dims), True)):
        if not metrics:
            continue
        if with_dims and slots is None and _counted_whole(name, metrics, today):
            # Totals only: the sums by dim, from the whole months' rollups and the days
            # outside them (a year of cycle days: 26 rows a month instead of 30 a day).
            await _add_sums(conn, question, span, read, metrics)
            continue
        for c in await repo.day_columns(
            conn,
            question.merchant_id,
            start=span.start,
            end=span.end,
            metrics=metrics,
            with_dims=with_dims,
            stories=question.name == "stories",
        ):
            scope = _scope(c.program_id, question.program_id)
            _add_days(read, slots, name, today, scope, c.metric, c.dim, c.currency, c.days,
                      c.values)  # fmt: skip


def _counted_whole(name: str, metrics: list[str], today: date) -> bool:
    """Whether each metric counts as itself over the whole range (no maturity cut-off)."""
    return all(list(_counted_as(name, m, today)) == [(m, None)] for m in metrics)


async def _add_sums(
    conn: asyncpg.Connection, question: Question, span: Range, read: Read, metrics: list[str]
) -> None:
    split = periods.month_split(span)
    for found in await repo.breakdown_sums(
        conn,
        question.merchant_id,
        program_id=question.program_id,
        months=split.months,
        days=[(d.start, d.end) for d in split.days],
        metrics=metrics,
    ):
        read.total.column(found.scope, found.metric, found.dim, found.currency)[0] += found.value


async def _read_sketches(
    conn: asyncpg.Connection, question: Question, spec: Spec, span: Range, read: Read
) -> None:
    """Distinct counts: by day, the days' estimates; by month, the months' (and the partial
    months' days unioned); by week, the days' sketches unioned. The total is the union of
    the whole months' sketches and of the other days'."""
    filtered = question.story_id or question.advocate_id or question.channel
    if not spec.sketches or (question.name == "funnel" and filtered):
        return
    slots = _slots(read.buckets)
    interval = question.interval

    async def fetch(what: str, start: date, end: date) -> list[repo.SpanSketch]:
        return await repo.sketches(
            conn,
            question.merchant_id,
            what,
            start=start,
            end=end,
            metrics=list(spec.sketches),
            program_id=question.program_id or 0,
            merchant_wide=list(rules.MERCHANT_WIDE_DISTINCT),
        )

    if interval == "day":
        for day in await fetch("day_estimates", span.start, span.end):
            read.series.set_estimate(day.metric, slots[day.at], day.estimate)
    split = periods.month_split(span)
    whole = [] if split.months is None or interval == "week" else split.months
    days = [span] if interval == "week" else split.days
    if whole:
        for month in await fetch("months", *whole):
            read.total.add_sketch(month.metric, 0, _deserialized(month))
            if interval == "month":
                read.series.set_estimate(month.metric, slots[month.at], month.estimate)
    for part in days:
        for day in await fetch("days", part.start, part.end):
            sketch = _deserialized(day)
            read.total.add_sketch(day.metric, 0, sketch)
            if interval != "day":
                read.series.add_sketch(day.metric, slots[day.at], sketch)


def _deserialized(found: repo.SpanSketch) -> datasketches.hll_sketch:
    assert found.sketch is not None
    return datasketches.hll_sketch.deserialize(found.sketch)


async def _read_breakdown(
    conn: asyncpg.Connection, question: Question, spec: Spec, span: Range, read: Read
) -> None:
    if spec.breakdown is None or question.advocate_id is not None:
        return
    _, _, metrics = spec.breakdown
    if question.name == "stories" or question.story_id is not None or question.channel:
        rollup_read = repo.RollupRead(
            start=span.start,
            end=span.end,
            interval=question.interval,
            metrics=list(metrics),
            program_id=question.program_id,
            channel=question.channel,
            by_dim=True,
        )
        if question.story_id is not None:
            found = await repo.story_sums(
                conn, question.merchant_id, rollup_read, question.story_id
            )
        else:
            found = await repo.daily_sums(conn, question.merchant_id, rollup_read)
        sums = [r for r in found if r.by_dim]
    else:
        split = periods.month_split(span)
        sums = await repo.breakdown_sums(  # type: ignore[assignment]
            conn,
            question.merchant_id,
            program_id=question.program_id,
            months=split.months,
            days=[(d.start, d.end) for d in split.days],
            metrics=list(metrics),
        )
    read.keys = sorted({r.dim for r in sums})
    read.by_key = Sums(len(read.keys))
    slot = {key: i for i, key in enumerate(read.keys)}
    for r in sums:
        read.by_key.add(r.scope, r.metric, "", r.currency, slot[r.dim], r.value)


async def _read(conn: asyncpg.Connection, question: Question, spec: Spec, span: Range) -> Read:
    buckets = periods.buckets(span, question.interval)
    read = Read(span, buckets, Sums(len(buckets)), Sums(1), [], Sums(0))
    await _read_series(conn, question, spec, span, read)
    await _read_sketches(conn, question, spec, span, read)
    await _read_breakdown(conn, question, spec, span, read)
    return read


def _currencies(reads: Iterable[Read]) -> list[str]:
    found = set()
    for read in reads:
        for sums in (read.total, read.by_key):
            for cells in sums.cells.values():
                found.update(c for (_, _, c) in cells if c)
    return sorted(found)


# --- the entry ---------------------------------------------------------------------------


def _check(name: str, query: ReportQuery) -> None:
    if name not in REPORTS:
        raise NotFound(
            f"no report named {name[:40]!r}; the reports are {', '.join(REPORTS)}",
            code="report_not_found",
        )
    filters = [f for f in ("channel", "story_id", "advocate_id") if getattr(query, f)]
    if filters and name != "funnel":
        raise InvalidInput(
            f"the {name} report takes no {', '.join(filters)} filter (only the funnel does)",
            code="invalid_filter",
        )
    if query.advocate_id and (query.channel or query.story_id):
        raise InvalidInput(
            "advocate_id cannot be combined with channel or story_id: the per-advocate "
            "figures are kept without channel and story",
            code="invalid_filter",
        )
    if query.channel is not None and query.channel not in CHANNELS:
        raise InvalidInput(
            f"unknown channel {query.channel[:40]!r}; channels: {', '.join(sorted(CHANNELS))}",
            code="invalid_filter",
        )
    if name not in RANKINGS:
        given = [p for p in ("by", "limit", "currency") if getattr(query, p) is not None]
        if given:
            raise InvalidInput(
                f"{', '.join(given)} only apply to the advocates and stories leaderboards",
                code="invalid_ranking",
            )
        return
    if query.by is not None and query.by not in RANKINGS[name]:
        raise InvalidInput(
            f"the {name} leaderboard ranks by {', '.join(RANKINGS[name])}, not {query.by!r}",
            code="invalid_ranking",
        )
    if name == "stories" and query.currency is not None:
        raise InvalidInput(
            "stories are not ranked by money: leave currency out", code="invalid_ranking"
        )
    if query.currency is not None:
        money.require_currency(query.currency)
    if name == "advocates" and query.by == "first_order_revenue" and query.currency is None:
        raise InvalidInput(
            "by=first_order_revenue ranks one currency: add currency (e.g. currency=EUR)",
            code="invalid_ranking",
        )


async def report(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    name: str,
    query: ReportQuery,
    now: datetime | None = None,
    series: bool = True,
) -> Answer:
    """The report `name` for the caller's merchant (its mode's data only) over the query's
    range, in the merchant's days. `series=False`: the totals (and breakdown) without the
    series, for a page that draws only the figures: read by month, the fewest buckets (a
    total is the same whatever the buckets)."""
    _check(name, query)
    ids = runtime.ids
    program_id = ids.decode("program", query.program_id) if query.program_id else None
    story_id = ids.decode("story", query.story_id) if query.story_id else None
    advocate_id = ids.decode("advocate", query.advocate_id) if query.advocate_id else None
    scope = await repo.report_scope(conn, caller.merchant_id, program_id, story_id, advocate_id)
    if scope is None:
        raise NotFound("this key's merchant no longer exists", code="merchant_not_found")
    for kind, given, found in (
        ("program", query.program_id, scope.program_found),
        ("story", query.story_id, scope.story_found),
        ("advocate", query.advocate_id, scope.advocate_found),
    ):
        if not found:
            raise NotFound(f"no {kind} with id {given}", code=f"{kind}_not_found")
    today = periods.today_in(scope.time_zone, now or datetime.now(UTC))
    try:
        span = periods.resolve_range(query.start, query.end, today)
    except PeriodError as exc:
        raise InvalidInput(str(exc), code="invalid_range") from None
    other = periods.compare_range(span, query.compare)
    question = Question(
        name=name,
        merchant_id=caller.merchant_id,
        program_id=program_id,
        story_id=story_id,
        advocate_id=advocate_id,
        channel=query.channel,
        interval=query.interval if series else "month",
        today=today,
        series=series,
    )
    spec = SPECS[name]
    current = await _read(conn, question, spec, span)
    compared = None if other is None else await _read(conn, question, spec, other)
    reads = [current] if compared is None else [current, compared]
    filters = Filters(channel=query.channel, story_id=query.story_id, advocate_id=query.advocate_id)
    ctx = Context(name, _currencies(reads), filters, today, steps=_funnel_steps(question))
    answer = Answer(
        report=name,  # type: ignore[arg-type]
        program_id=None if program_id is None else ids.encode("program", program_id),
        livemode=caller.mode == "live",
        time_zone=scope.time_zone,
        start=span.start,
        end=span.end,
        interval=query.interval,
        filters=filters,
        totals=_spans(spec.values(ctx, current.total), 1)[0],
        series=_series(ctx, spec, current) if series else [],
    )
    answer.breakdown = _breakdown(ctx, spec, current, question)
    if name in RANKINGS:
        answer.ranking = Ranking(
            by=query.by or LEADERBOARDS[name], limit=query.limit or 10, currency=query.currency
        )
        answer.rows = await _leaderboard(conn, ids, ctx, question, answer.ranking, span)
    if compared is not None and other is not None:
        answer.compare = Comparison(
            mode=query.compare,  # type: ignore[arg-type]
            start=other.start,
            end=other.end,
            totals=_spans(spec.values(ctx, compared.total), 1)[0],
            series=_series(ctx, spec, compared) if series else [],
        )
    _notes(ctx, question, spec)
    answer.notes = ctx.notes
    return answer


SPARE_WAIT_SECONDS = 0.25


async def several(
    conn: asyncpg.Connection,
    *,
    pool: asyncpg.Pool,
    runtime: Runtime,
    caller: Caller,
    names: Iterable[str],
    query: ReportQuery,
    with_series: frozenset[str] = frozenset(),
    with_compare: frozenset[str] | None = None,
) -> dict[str, Answer]:
    """Several reports over one query, at once: a page of figures (the console's overview)
    waits for the slowest, not for their sum. `with_compare`: the reports that read the
    query's compare period (None: all of them). `conn` reads some; the others run on idle
    connections of `pool`, never waited for (a busy pool, or requests each holding one,
    would otherwise wait on each other): what finds none runs on `conn` afterwards. Only the
    reports in `with_series` carry their series."""
    names = list(names)
    answers: dict[str, Answer] = {}
    free = pool.get_idle_size() + pool.get_max_size() - pool.get_size()
    lanes = max(1, min(len(names), free + 1))
    work = [names[i::lanes] for i in range(lanes)]
    left: list[str] = []

    alone = msgspec.structs.replace(query, compare="none")

    async def read(on: asyncpg.Connection, batch: list[str]) -> None:
        for name in batch:
            compared = with_compare is None or name in with_compare
            answers[name] = await report(
                on, runtime=runtime, caller=caller, name=name,
                query=query if compared else alone, series=name in with_series,
            )  # fmt: skip

    async def lane(batch: list[str]) -> None:
        try:
            extra = await pool.acquire(timeout=SPARE_WAIT_SECONDS)
        except TimeoutError:
            left.extend(batch)
            return
        try:
            await read(extra, batch)
        finally:
            await pool.release(extra)

    await asyncio.gather(read(conn, work[0]), *(lane(batch) for batch in work[1:]))
    await read(conn, left)
    return {name: answers[name] for name in names}


def _spans(columns: list[Column], n: int) -> list[list[Value]]:
    """Columns (a figure for every span) as each span's list of values."""
    shaped = [
        (c.metric, METRICS[c.metric].unit, c.currency, METRICS[c.metric].estimate, c.values)
        for c in columns
    ]
    return [
        [
            Value(metric=metric, unit=unit, currency=currency, value=values[i], estimate=estimate)
            for metric, unit, currency, estimate, values in shaped
        ]
        for i in range(n)
    ]


def _series(ctx: Context, spec: Spec, read: Read) -> list[Bucket]:
    spans = _spans(spec.values(ctx, read.series), len(read.buckets))
    return [
        Bucket(start=b.start, end=b.end, values=values)
        for b, values in zip(read.buckets, spans, strict=True)
    ]


def _funnel_steps(question: Question) -> list[str]:
    if question.name != "funnel":
        return []
    if question.story_id is not None:
        top = ["story_views"]
    elif question.channel is not None:
        top = []
    else:
        top = ["share_page_views"]
    filtered = question.story_id or question.advocate_id or question.channel
    middle = [] if filtered else ["visitors"]
    return [*top, "shares", "clicks", "unique_clicks", *middle, "signups", "first_orders"]


def _breakdown(ctx: Context, spec: Spec, read: Read, question: Question) -> Breakdown | None:
    if question.name == "value":
        rows = [
            Group(key=key, values=_spans(_value_metrics(ctx, read.total, scopes), 1)[0])
            for key, scopes in VALUE_COHORTS.items()
        ]
        return Breakdown(by="cohort", rows=rows)
    if question.advocate_id is not None or spec.breakdown is None:
        return None
    by, values, metrics = spec.breakdown
    sums = read.by_key
    counted = [sums.count(m) for m in metrics]
    slots = sorted(
        (i for i in range(sums.n) if any(column[i] for column in counted)),
        key=lambda i: (-counted[0][i], read.keys[i]),
    )
    spans = _spans(values(ctx, sums), sums.n)
    return Breakdown(
        by=by,  # type: ignore[arg-type]
        rows=[Group(key=read.keys[i] or "none", values=spans[i]) for i in slots],
    )


async def _leaderboard(
    conn: asyncpg.Connection,
    ids: PublicIds,
    ctx: Context,
    question: Question,
    ranking: Ranking,
    span: Range,
) -> list[Ranked]:
    split = periods.month_split(span)
    if question.name == "advocates":
        figures = await repo.top_advocates(
            conn,
            question.merchant_id,
            by=ranking.by,
            currency=ranking.currency,
            program_id=question.program_id,
            months=split.months,
            days=[(d.start, d.end) for d in split.days],
            limit=ranking.limit,
            metrics=list(ADVOCATE_FIGURES),
        )
        labels: dict[int, str | None] = {}
        for f in figures:
            labels.setdefault(f.advocate_id, f.label)
        slot = {advocate: i for i, advocate in enumerate(labels)}
        sums = Sums(len(labels))
        for f in figures:
            sums.add(1, f.metric, "", f.currency, slot[f.advocate_id], f.value)
        spans = _spans(advocates_values(ctx, sums), sums.n)
        return [
            Ranked(id=ids.encode("advocate", a), label=label, values=spans[slot[a]])
            for a, label in labels.items()
        ]
    stories = await repo.top_stories(
        conn,
        question.merchant_id,
        months=split.months,
        days=[(d.start, d.end) for d in split.days],
        program_id=question.program_id,
        by=ranking.by,
        limit=ranking.limit,
    )
    sums = Sums(len(stories))
    for i, story in enumerate(stories):
        for metric in STORY_FIGURES:
            sums.add(1, metric, "", "", i, getattr(story, metric))
    spans = _spans(stories_values(ctx, sums), sums.n)
    return [
        Ranked(id=ids.encode("story", story.story_id), label=story.label, values=spans[i])
        for i, story in enumerate(stories)
    ]


def _notes(ctx: Context, question: Question, spec: Spec) -> None:
    if any(METRICS[m].estimate for m in ctx.steps) or (spec.sketches and question.name != "funnel"):
        ctx.note(HLL_NOTE)
    if question.name == "funnel":
        if question.story_id or question.advocate_id or question.channel:
            ctx.note(
                "visitors are counted per program and day only: a channel, story or advocate "
                "filter leaves them out (signups convert from unique clicks)."
            )
        if question.channel:
            ctx.note("share page views have no channel: the channel filter leaves them out.")
        if question.story_id:
            ctx.note("the story's funnel starts at its page views (story_views).")
    if question.name == "value":
        ctx.note(
            f"a window's figures count only the customers whose first order was at least that "
            f"many days before today ({ctx.today}, the merchant's day): mature_customers_N."
        )
    if question.name == "impact":
        ctx.note("orders, revenue and new_customers are the whole shop's, referred or not.")
    if question.name in RANKINGS:
        ctx.note(
            "rows: the top of the leaderboard (nothing of `by` in the period: not listed); "
            "totals and series are over every "
            + ("advocate" if question.name == "advocates" else "story")
            + "."
        )
