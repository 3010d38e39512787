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

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg
import datasketches
import msgspec

from referral.analytics import periods, repo
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


# --- the sums of one span ----------------------------------------------------------------


class Sums:
    """The rollup sums of one span: (scope, metric, dim, currency) -> value, and the span's
    distinct-count sketches (a union per metric)."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, str, str, str], int] = defaultdict(int)
        self.unions: dict[str, datasketches.hll_union] = {}

    def add(self, scope: int, metric: str, dim: str, currency: str, value: int) -> None:
        self.cells[(scope, metric, dim, currency)] += value

    def add_sketch(self, metric: str, sketch: datasketches.hll_sketch) -> None:
        union = self.unions.get(metric)
        if union is None:
            union = self.unions[metric] = datasketches.hll_union(SKETCH_LG_K)
        union.update(sketch)

    def merge(self, other: Sums) -> None:
        for key, value in other.cells.items():
            self.cells[key] += value
        for metric, union in other.unions.items():
            self.add_sketch(metric, union.get_result())

    def count(self, metric: str, scopes: frozenset[int] = PROGRAMS) -> int:
        return sum(v for (s, m, _, _), v in self.cells.items() if m == metric and s in scopes)

    def by_currency(self, metric: str, scopes: frozenset[int] = PROGRAMS) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for (s, m, _, c), v in self.cells.items():
            if m == metric and s in scopes:
                found[c] += v
        return found

    def by_dim(self, metric: str, scopes: frozenset[int] = PROGRAMS) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for (s, m, d, _), v in self.cells.items():
            if m == metric and s in scopes:
                found[d] += v
        return found

    def estimate(self, metric: str) -> float:
        union = self.unions.get(metric)
        return 0.0 if union is None else union.get_estimate()


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


def _value(metric: str, value: int | float | None, currency: str | None = None) -> Value:
    spec = METRICS[metric]
    if spec.estimate and isinstance(value, float) and spec.unit == "count":
        value = round(value)
    elif isinstance(value, float) and spec.unit == "ratio":
        value = round(value, periods.RATIO_DIGITS)
    return Value(
        metric=metric, unit=spec.unit, currency=currency, value=value, estimate=spec.estimate
    )


def _money(
    ctx: Context, metric: str, amounts: dict[str, int] | Callable[[str], int | float | None]
) -> list[Value]:
    """One value per currency of the answer (0, or null for a rate, where none)."""
    if callable(amounts):
        return [_value(metric, amounts(cur), cur) for cur in ctx.currencies]
    return [_value(metric, amounts.get(cur, 0), cur) for cur in ctx.currencies]


def _per_currency_counts(
    ctx: Context, sums: Sums, metric: str, scopes: frozenset[int]
) -> dict[str, int] | None:
    """A count per currency (for an average order value). Counts are kept without a
    currency; with one currency in the answer they are all in it, with several they are
    not known per currency (None)."""
    counts = sums.by_currency(metric, scopes)
    if set(counts) - {""}:
        return dict(counts)
    if len(ctx.currencies) <= 1:
        return {cur: counts.get("", 0) for cur in ctx.currencies}
    return None


# --- the reports, one function per report: the figures of one span ---------------------


def funnel_values(ctx: Context, s: Sums) -> list[Value]:
    out: list[Value] = []
    previous: tuple[str, float] | None = None
    for step in ctx.steps:
        amount: float = s.estimate(step) if step == "visitors" else s.count(step)
        out.append(_value(step, amount))
        if previous is not None:
            out.append(
                _value(conversion_name(previous[0], step), periods.ratio(amount, previous[1]))
            )
        previous = (step, amount)
    out += _money(ctx, "first_order_revenue", s.by_currency("first_order_revenue"))
    return out


FUNNEL_BY_CHANNEL = ("shares", "clicks", "unique_clicks", "signups", "first_orders")


def funnel_channel_values(ctx: Context, s: Sums) -> list[Value]:
    out = [_value(metric, s.count(metric)) for metric in FUNNEL_BY_CHANNEL]
    return out + _money(ctx, "first_order_revenue", s.by_currency("first_order_revenue"))


def impact_values(ctx: Context, s: Sums) -> list[Value]:
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

    def aov(amounts: dict[str, int], counts: dict[str, int] | None) -> Callable[[str], int | None]:
        return lambda cur: (
            None if counts is None else periods.per(amounts.get(cur, 0), counts.get(cur, 0))
        )

    return [
        _value("orders", orders),
        *_money(ctx, "revenue", revenue),
        _value("referred_orders", referred_orders),
        *_money(ctx, "referred_revenue", referred_revenue),
        _value("referred_order_share", periods.ratio(referred_orders, orders)),
        *_money(
            ctx,
            "referred_revenue_share",
            lambda cur: periods.ratio(referred_revenue.get(cur, 0), revenue.get(cur, 0)),
        ),
        _value("new_customers", new_customers),
        _value("referred_new_customers", referred_new),
        _value("referred_new_customer_share", periods.ratio(referred_new, new_customers)),
        *_money(ctx, "aov", aov(revenue, orders_in)),
        *_money(ctx, "referred_aov", aov(referred_revenue, referred_in)),
    ]


def impact_channel_values(ctx: Context, s: Sums) -> list[Value]:
    return [
        _value("referred_orders", s.count("referred_orders")),
        *_money(ctx, "referred_revenue", s.by_currency("referred_revenue")),
        _value("first_orders", s.count("first_orders")),
        _value("referred_new_customers", s.count("new_customers")),
    ]


def cost_values(ctx: Context, s: Sums) -> list[Value]:
    cost = s.by_currency("reward_cost")
    referred_revenue = s.by_currency("referred_revenue")
    referred_new = s.count("new_customers")
    return [
        *_money(ctx, "reward_cost", cost),
        *_money(ctx, "reward_pending", s.by_currency("reward_pending")),
        *_money(ctx, "coupon_value", s.by_currency("coupon_value")),
        *_money(ctx, "referred_revenue", referred_revenue),
        _value("referred_new_customers", referred_new),
        *_money(
            ctx, "cost_per_new_customer", lambda cur: periods.per(cost.get(cur, 0), referred_new)
        ),
        *_money(
            ctx,
            "roi",
            lambda cur: periods.ratio(
                referred_revenue.get(cur, 0) - cost.get(cur, 0), cost.get(cur, 0)
            ),
        ),
    ]


def cost_side_values(ctx: Context, s: Sums) -> list[Value]:
    return [
        *_money(ctx, "reward_cost", s.by_currency("reward_cost")),
        *_money(ctx, "reward_pending", s.by_currency("reward_pending")),
        *_money(ctx, "coupon_value", s.by_currency("coupon_value")),
    ]


def virality_values(ctx: Context, s: Sums) -> list[Value]:
    sharing = s.estimate("sharing_advocates")
    ordering = s.estimate("ordering_customers")
    visitors = s.estimate("visitors")
    first_orders = s.count("first_orders")
    participation = sharing / ordering if ordering else None
    invites = visitors / sharing if sharing else None
    conversion = first_orders / visitors if visitors else None
    k_factor = (
        None
        if participation is None or invites is None or conversion is None
        else participation * invites * conversion
    )
    histogram = {int(d): n for d, n in s.by_dim("cycle_days").items() if d.isdigit()}
    return [
        _value("sharing_advocates", sharing),
        _value("ordering_customers", ordering),
        _value("participation", participation),
        _value("visitors", visitors),
        _value("invites_per_advocate", invites),
        _value("first_orders", first_orders),
        _value("friend_conversion", conversion),
        _value("k_factor", k_factor),
        _value("cycle_days_median", periods.histogram_median(histogram)),
        _value("friends_turned_advocates", s.count("friends_turned_advocates")),
    ]


def _value_metrics(ctx: Context, s: Sums, scopes: frozenset[int]) -> list[Value]:
    out = [_value("customers", s.count("customers", scopes))]
    for n in WINDOWS:
        mature = s.count(f"mature_customers_{n}", scopes)
        revenue = s.by_currency(f"revenue_{n}", scopes)
        out += [
            _value(f"mature_customers_{n}", mature),
            _value(f"repeat_customers_{n}", s.count(f"repeat_{n}", scopes)),
            _value(f"repeat_rate_{n}", periods.ratio(s.count(f"repeat_{n}", scopes), mature)),
            _value(
                f"orders_per_customer_{n}",
                periods.ratio(s.count(f"orders_{n}", scopes), mature),
            ),
            *_money(
                ctx,
                f"revenue_per_customer_{n}",
                lambda cur, revenue=revenue, mature=mature: periods.per(
                    revenue.get(cur, 0), mature
                ),
            ),
        ]
    return out


VALUE_COHORTS = {"referred": PROGRAMS, "other": MERCHANT}


def value_values(ctx: Context, s: Sums) -> list[Value]:
    return _value_metrics(ctx, s, MERCHANT | PROGRAMS)


ADVOCATE_FIGURES = ("first_orders", "first_order_revenue", "unique_clicks", "clicks", "signups")


def advocates_values(ctx: Context, s: Sums) -> list[Value]:
    out = []
    for metric in ADVOCATE_FIGURES:
        if METRICS[metric].unit == "minor_units":
            out += _money(ctx, metric, s.by_currency(metric))
        else:
            out.append(_value(metric, s.count(metric)))
    return out


STORY_FIGURES = ("story_views", "clicks", "signups", "first_orders")


def stories_values(ctx: Context, s: Sums) -> list[Value]:
    views, orders = s.count("story_views"), s.count("first_orders")
    out = [_value(metric, s.count(metric)) for metric in STORY_FIGURES]
    return out + [_value("orders_per_view", periods.ratio(orders, views))]


OUTCOMES = ("allowed", "in_review", "blocked", "pending", "ineligible")


def fraud_values(ctx: Context, s: Sums) -> list[Value]:
    outcomes = s.by_dim("referrals")
    decided = sum(outcomes.get(o, 0) for o in ("allowed", "in_review", "blocked"))
    return [
        _value("referrals", sum(outcomes.values())),
        *(_value(f"referrals_{o}", outcomes.get(o, 0)) for o in OUTCOMES),
        _value("allowed_share", periods.ratio(outcomes.get("allowed", 0), decided)),
        _value("in_review_share", periods.ratio(outcomes.get("in_review", 0), decided)),
        _value("blocked_share", periods.ratio(outcomes.get("blocked", 0), decided)),
        *_money(ctx, "reward_blocked", s.by_currency("reward_blocked")),
    ]


def fraud_rule_values(ctx: Context, s: Sums) -> list[Value]:
    return [_value("referrals", s.count("referrals_by_rule"))]


@dataclass(frozen=True)
class Spec:
    """A report: the rollup metrics it reads, the function stating a span's figures, and
    its breakdown (by what, the figures of one key, the metric its keys come from)."""

    metrics: tuple[str, ...]
    values: Callable[[Context, Sums], list[Value]]
    sketches: tuple[str, ...] = ()
    keep_dims: tuple[str, ...] = ()
    breakdown: tuple[str, Callable[[Context, Sums], list[Value]], tuple[str, ...]] | None = None


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


# --- reading a span ------------------------------------------------------------------------


@dataclass
class Read:
    """A period's sums: per bucket, the whole range, and by breakdown key."""

    span: Range
    buckets: list[Range]
    series: list[Sums]
    total: Sums
    by_key: dict[str, Sums]


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


def _value_rows(rows: Iterable[repo.RollupSum], today: date) -> Iterator[repo.RollupSum]:
    """The value report's day sums as its figures count them: every new customer of the
    cohort day, and for each window only the days at least that long ago (mature)."""
    for row in rows:
        if row.metric == "new_customers":
            yield msgspec.structs.replace(row, metric="customers")
            for n in WINDOWS:
                if row.bucket is not None and row.bucket <= today - timedelta(days=n):
                    yield msgspec.structs.replace(row, metric=f"mature_customers_{n}")
            continue
        n = int(row.metric.rsplit("_", 1)[1])
        if row.bucket is not None and row.bucket <= today - timedelta(days=n):
            yield row


async def _read(conn: asyncpg.Connection, question: Question, spec: Spec, span: Range) -> Read:
    buckets = periods.buckets(span, question.interval)
    index = {periods.bucket_start(b.start, question.interval): i for i, b in enumerate(buckets)}
    # The value report sums by day, to tell mature cohort days from the others.
    interval = "day" if question.name == "value" else question.interval
    read = repo.RollupRead(
        start=span.start,
        end=span.end,
        interval=interval,
        metrics=list(spec.metrics),
        program_id=question.program_id,
        channel=question.channel,
        keep_dims=list(spec.keep_dims),
        by_dim=spec.breakdown is not None and question.advocate_id is None,
    )
    if question.name == "stories" or question.story_id is not None:
        rows = await repo.story_sums(conn, question.merchant_id, read, question.story_id)
    elif question.advocate_id is not None:
        rows = await repo.advocate_sums(conn, question.merchant_id, read, question.advocate_id)
    else:
        rows = await repo.daily_sums(conn, question.merchant_id, read)
    if question.name == "value":
        rows = list(_value_rows(rows, question.today))
    series = [Sums() for _ in buckets]
    by_key: dict[str, Sums] = defaultdict(Sums)
    for row in rows:
        if row.by_dim:
            by_key[row.dim].add(row.scope, row.metric, "", row.currency, row.value)
        elif row.bucket is not None:
            slot = index[periods.bucket_start(row.bucket, question.interval)]
            series[slot].add(row.scope, row.metric, row.dim, row.currency, row.value)
    filtered = question.story_id or question.advocate_id or question.channel
    if spec.sketches and not (question.name == "funnel" and filtered):
        for day in await repo.day_sketches(
            conn,
            question.merchant_id,
            span.start,
            span.end,
            list(spec.sketches),
            question.program_id,
        ):
            merchant_wide = day.metric == "ordering_customers"
            if merchant_wide != (day.program_id == 0):
                continue
            slot = index[periods.bucket_start(day.day, question.interval)]
            series[slot].add_sketch(day.metric, datasketches.hll_sketch.deserialize(day.sketch))
    total = Sums()
    for sums in series:
        total.merge(sums)
    return Read(span, buckets, series, total, dict(by_key))


def _currencies(reads: Iterable[Read]) -> list[str]:
    found = set()
    for read in reads:
        for sums in [read.total, *read.by_key.values()]:
            found.update(c for (_, _, _, c) in sums.cells if c)
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
) -> Answer:
    """The report `name` for the caller's merchant (its mode's data only) over the query's
    range, in the merchant's days."""
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
        interval=query.interval,
        today=today,
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
        totals=spec.values(ctx, current.total),
        series=_series(ctx, spec, current),
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
            totals=spec.values(ctx, compared.total),
            series=_series(ctx, spec, compared),
        )
    _notes(ctx, question, spec)
    answer.notes = ctx.notes
    return answer


def _series(ctx: Context, spec: Spec, read: Read) -> list[Bucket]:
    return [
        Bucket(start=b.start, end=b.end, values=spec.values(ctx, sums))
        for b, sums in zip(read.buckets, read.series, strict=True)
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
    if spec.breakdown is None and question.name != "value":
        return None
    if question.name == "value":
        rows = [
            Group(key=key, values=_value_metrics(ctx, read.total, scopes))
            for key, scopes in VALUE_COHORTS.items()
        ]
        return Breakdown(by="cohort", rows=rows)
    if question.advocate_id is not None or spec.breakdown is None:
        return None
    by, values, metrics = spec.breakdown
    keys = sorted(
        (key for key, sums in read.by_key.items() if any(sums.count(m) for m in metrics)),
        key=lambda k: (-read.by_key[k].count(metrics[0]), k),
    )
    return Breakdown(
        by=by,  # type: ignore[arg-type]
        rows=[Group(key=key or "none", values=values(ctx, read.by_key[key])) for key in keys],
    )


async def _leaderboard(
    conn: asyncpg.Connection,
    ids: PublicIds,
    ctx: Context,
    question: Question,
    ranking: Ranking,
    span: Range,
) -> list[Ranked]:
    if question.name == "advocates":
        split = periods.month_split(span)
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
        sums: dict[int, Sums] = {}
        for f in figures:
            if f.advocate_id not in sums:
                labels[f.advocate_id] = f.label
                sums[f.advocate_id] = Sums()
            sums[f.advocate_id].add(1, f.metric, "", f.currency, f.value)
        return [
            Ranked(id=ids.encode("advocate", a), label=label, values=advocates_values(ctx, sums[a]))
            for a, label in labels.items()
        ]
    stories = await repo.top_stories(
        conn,
        question.merchant_id,
        start=span.start,
        end=span.end,
        program_id=question.program_id,
        by=ranking.by,
        limit=ranking.limit,
    )
    rows = []
    for story in stories:
        s = Sums()
        for metric in STORY_FIGURES:
            s.add(1, metric, "", "", getattr(story, metric))
        rows.append(
            Ranked(
                id=ids.encode("story", story.story_id),
                label=story.label,
                values=stories_values(ctx, s),
            )
        )
    return rows


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
