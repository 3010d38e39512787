"""The reports' question and answer, and the one catalogue of metric definitions that the
OpenAPI document, the README and the console all state.

Every figure is a `Value`: a metric, its unit, its currency (money only, never converted or
added across currencies) and its value (`null` when a rate's denominator is 0). Distinct
counts are HyperLogLog estimates (`estimate: true`), as is every rate computed from one.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, NamedTuple

import msgspec
from msgspec import Meta

from referral.analytics.periods import CompareMode, Interval

ReportName = Literal[
    "funnel", "impact", "cost", "virality", "value", "advocates", "stories", "fraud"
]
REPORTS: tuple[str, ...] = ReportName.__args__  # type: ignore[attr-defined]
Unit = Literal["count", "minor_units", "ratio", "days"]
AdvocateRanking = Literal["first_orders", "first_order_revenue", "unique_clicks"]
StoryRanking = Literal["clicks", "signups", "first_orders", "orders_per_view"]
WINDOWS = (30, 90, 180)  # the value report's repeat windows (as the rollups count them)


class Metric(NamedTuple):
    unit: Unit
    description: str
    estimate: bool = False  # a HyperLogLog estimate, or computed from one


_HLL = "HyperLogLog estimate (lg_k 12: about 1.6 % relative standard error) "

# metric -> unit and definition: what counts, from which rows. Money is per currency.
METRICS: dict[str, Metric] = {
    # funnel
    "share_page_views": Metric(
        "count", "Advocates' share pages opened by a person (bots and HEAD not counted)."
    ),
    "story_views": Metric("count", "Story pages viewed by a person (bots and HEAD not counted)."),
    "shares": Metric(
        "count",
        "Share buttons followed, on share pages and story pages, by channel (`shares` rows).",
    ),
    "clicks": Metric(
        "count",
        "Clicks on advocates' links by people: link-preview bots and HEAD requests are not "
        "counted (`clicks` rows).",
    ),
    "unique_clicks": Metric(
        "count",
        "Clicks counted once per visitor (the `rv` cookie), advocate and merchant's day.",
    ),
    "visitors": Metric(
        "count",
        "Distinct visitors who clicked an advocate's link in the period: " + _HLL + ".",
        True,
    ),
    "signups": Metric(
        "count",
        "Referred friends who signed up, on their signup day (referrals not rejected).",
    ),
    "first_orders": Metric(
        "count",
        "Referred friends' first orders, on the order's day: not cancelled, referral not rejected.",
    ),
    "first_order_revenue": Metric(
        "minor_units",
        "Net revenue (total less refunds; 0 if cancelled) of the referred first orders, per "
        "currency.",
    ),
    # impact
    "orders": Metric(
        "count", "Every order the shop reported, referred or not, not cancelled (`orders`)."
    ),
    "revenue": Metric(
        "minor_units", "Net revenue (total less refunds) of every order the shop reported."
    ),
    "referred_orders": Metric(
        "count",
        "Orders attached to a referral that is not rejected: a referred friend's first and "
        "later orders.",
    ),
    "referred_revenue": Metric("minor_units", "Net revenue of the referred orders."),
    "referred_order_share": Metric("ratio", "referred_orders / orders."),
    "referred_revenue_share": Metric("ratio", "referred_revenue / revenue, per currency."),
    "new_customers": Metric(
        "count",
        "Customers (by customer id, else email) whose first order that was not cancelled "
        "falls in the period: every new customer of the shop.",
    ),
    "referred_new_customers": Metric(
        "count",
        "New customers whose first order came through a referral (not rejected) of the "
        "program, or of any program.",
    ),
    "referred_new_customer_share": Metric("ratio", "referred_new_customers / new_customers."),
    "aov": Metric(
        "minor_units",
        "Average order value of every order: revenue / orders in that currency, rounded to "
        "the minor unit.",
    ),
    "referred_aov": Metric(
        "minor_units",
        "Average order value of the referred orders: referred_revenue / "
        "referred_orders in that currency.",
    ),
    # cost
    "reward_cost": Metric(
        "minor_units",
        "Cash and store-credit rewards approved or paid, at their current amount (partial "
        "refunds and reversals taken off), on the day they were earned: what the ledger "
        "owes or paid.",
    ),
    "reward_pending": Metric(
        "minor_units",
        "Cash and store-credit rewards still pending or in review (not in reward_cost).",
    ),
    "coupon_value": Metric(
        "minor_units", "Face value of coupon rewards approved or paid (not ledger money)."
    ),
    "cost_per_new_customer": Metric(
        "minor_units", "reward_cost / referred_new_customers, per currency."
    ),
    "roi": Metric(
        "ratio",
        "Return on reward spend: (referred_revenue - reward_cost) / reward_cost, per currency.",
    ),
    # virality
    "sharing_advocates": Metric(
        "count", "Distinct advocates who followed a share button: " + _HLL + ".", True
    ),
    "ordering_customers": Metric(
        "count", "Distinct customers who ordered (every order of the shop): " + _HLL + ".", True
    ),
    "participation": Metric(
        "ratio", "sharing_advocates / ordering_customers: the share of customers who shared.", True
    ),
    "invites_per_advocate": Metric(
        "ratio", "visitors / sharing_advocates: unique visitors per sharing advocate.", True
    ),
    "friend_conversion": Metric("ratio", "first_orders / visitors.", True),
    "k_factor": Metric(
        "ratio",
        "participation × invites_per_advocate × friend_conversion: new customers each "
        "customer brings through referral.",
        True,
    ),
    "cycle_days_median": Metric(
        "days",
        "Median whole days from an advocate's first share to each of their friends' first "
        "orders in the period (capped at 365).",
    ),
    "friends_turned_advocates": Metric(
        "count",
        "Referred customers who went on to refer: counted on the day their own first "
        "friend's first order came.",
    ),
    # value
    "customers": Metric("count", "New customers of the cohort (first order in the period)."),
    # stories
    "orders_per_view": Metric("ratio", "first_orders / story_views."),
    # fraud
    "referrals": Metric(
        "count",
        "Referrals, on the day they were decided (the first order's day, else the signup's, "
        "else creation); in the fraud report's breakdown, those on which the rule fired "
        "with a review or block action.",
    ),
    "referrals_allowed": Metric("count", "Referrals converted: the fraud decision allowed them."),
    "referrals_in_review": Metric("count", "Referrals a fraud rule held for review."),
    "referrals_blocked": Metric(
        "count", "Referrals blocked by a fraud rule or rejected in review."
    ),
    "referrals_pending": Metric("count", "Referrals signed up, not yet decided (no first order)."),
    "referrals_ineligible": Metric(
        "count", "Referrals an eligibility check refused (not a new customer, ...)."
    ),
    "allowed_share": Metric(
        "ratio", "referrals_allowed / decided (allowed + in review + blocked)."
    ),
    "in_review_share": Metric("ratio", "referrals_in_review / decided."),
    "blocked_share": Metric("ratio", "referrals_blocked / decided."),
    "reward_blocked": Metric(
        "minor_units",
        "Original amount of the rewards reversed because their referral was blocked by a "
        "fraud rule or rejected in review: the cost the rules saved.",
    ),
}

# Each funnel step's conversion from the step before it: `<step>_per_<previous>`.
FUNNEL_SINGULAR = {
    "share_page_views": "share_page_view",
    "story_views": "story_view",
    "shares": "share",
    "clicks": "click",
    "unique_clicks": "unique_click",
    "visitors": "visitor",
    "signups": "signup",
}
FUNNEL_STEPS = (
    ("share_page_views", "shares"),
    ("story_views", "shares"),
    ("shares", "clicks"),
    ("clicks", "unique_clicks"),
    ("unique_clicks", "visitors"),
    ("visitors", "signups"),
    ("unique_clicks", "signups"),
    ("signups", "first_orders"),
)


def conversion_name(previous: str, step: str) -> str:
    return f"{step}_per_{FUNNEL_SINGULAR[previous]}"


for _previous, _step in FUNNEL_STEPS:
    METRICS[conversion_name(_previous, _step)] = Metric(
        "ratio",
        f"{_step} / {_previous}: the step's conversion from the one before it.",
        METRICS[_previous].estimate or METRICS[_step].estimate,
    )

for _n in WINDOWS:
    METRICS[f"mature_customers_{_n}"] = Metric(
        "count",
        f"Customers of the cohort whose first order was at least {_n} days before today "
        f"(the merchant's day): those whose {_n}-day window is complete.",
    )
    METRICS[f"repeat_customers_{_n}"] = Metric(
        "count", f"Mature customers who ordered again within {_n} days of their first order."
    )
    METRICS[f"repeat_rate_{_n}"] = Metric(
        "ratio", f"repeat_customers_{_n} / mature_customers_{_n}."
    )
    METRICS[f"orders_per_customer_{_n}"] = Metric(
        "ratio",
        f"Orders (not cancelled, the first included) within {_n} days of the first order, per "
        f"mature customer.",
    )
    METRICS[f"revenue_per_customer_{_n}"] = Metric(
        "minor_units",
        f"Net revenue within {_n} days of the first order per mature customer, per currency.",
    )

# What each report answers, in order (money metrics once per currency).
REPORT_TEXT: dict[str, str] = {
    "funnel": "From the advocates' share pages to referred revenue: share page views → shares "
    "→ clicks → unique clicks → visitors → signups → first orders → first-order revenue, "
    "each step with its conversion from the one before (`<step>_per_<previous>`). "
    "`breakdown`: by channel. Filters: `channel`, `story_id` (the story's figures, starting "
    "at its views), `advocate_id` (not with `channel` or `story_id`). Visitors are counted "
    "per program and day only, so a filter leaves them out.",
    "impact": "What referral is worth to the shop: referred orders, revenue and new customers "
    "as a share of everything the shop reported (every order counts, referred or not), and "
    "referral AOV beside all-orders AOV. `breakdown`: referred figures by channel.",
    "cost": "Reward cost from the ledger (approved + paid, less reductions and reversals; "
    "pending apart; coupons apart), cost per new customer and ROI, per currency. "
    "`breakdown`: by side (advocate, friend).",
    "virality": "Participation, invites per advocate, friend conversion and their product, "
    "the K-factor; the cycle time (median days from an advocate's first share to a "
    "friend's first order) and friends turned advocates.",
    "value": "Customers whose first order falls in the period, referred against the others "
    "(`breakdown` by cohort): their 30/90/180-day repeat rate, orders and revenue per "
    "customer, counted over the customers whose window is complete (mature), with each "
    "cohort's size.",
    "advocates": "Top advocates by `by` (first_orders, first_order_revenue in `currency`, "
    "unique_clicks), `limit` of them, each with their counts; `totals` and `series` are "
    "the program's.",
    "stories": "Top stories by `by` (clicks, signups, first_orders, orders_per_view), each with "
    "views, clicks, signups, first orders and orders per view.",
    "fraud": "Referrals by outcome with the shares of the decided ones (allowed, in review, "
    "blocked), `breakdown` by the fraud rule that fired, and the reward cost blocked.",
}


# --- the question --------------------------------------------------------------------------


class ReportQuery(msgspec.Struct, kw_only=True, frozen=True):
    """A report's parameters as the handler read them (ids still public)."""

    program_id: str | None = None
    start: date | None = None
    end: date | None = None
    interval: Interval = "day"
    compare: CompareMode = "none"
    channel: str | None = None
    story_id: str | None = None
    advocate_id: str | None = None
    by: str | None = None
    limit: int | None = None  # leaderboards: 10 when left out
    currency: str | None = None


# --- the answer ----------------------------------------------------------------------------


class Value(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One figure. `currency` only on money (and on rates of money); `estimate` only on
    HyperLogLog counts and what is computed from them. Not tracked by the garbage collector
    (it holds no containers): a year's answer has tens of thousands of them."""

    metric: Annotated[str, Meta(description="A metric of the catalogue (see the operation)")]
    unit: Unit
    currency: Annotated[str | None, Meta(description="ISO 4217, money only")] = None
    value: Annotated[
        int | float | None,
        Meta(description="null: a rate whose denominator is 0, or a median of nothing"),
    ]
    estimate: Annotated[
        bool, Meta(description="true: a HyperLogLog estimate (or computed from one)")
    ] = False


class Bucket(msgspec.Struct, kw_only=True):
    """A day, week (Monday to Sunday) or calendar month, cut at the range's ends."""

    start: date
    end: date
    values: list[Value]


class Group(msgspec.Struct, kw_only=True):
    key: str
    values: list[Value]


class Breakdown(msgspec.Struct, kw_only=True):
    by: Literal["channel", "cohort", "side", "rule"]
    rows: list[Group]


class Ranked(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A leaderboard row: the advocate's or story's public id, a label (the advocate's name,
    else the shop's customer id; the story's first 80 characters) and its figures."""

    id: str
    label: str | None = None
    values: list[Value]


class Ranking(msgspec.Struct, kw_only=True):
    by: str
    limit: int
    currency: str | None = None


class Filters(msgspec.Struct, kw_only=True):
    channel: str | None = None
    story_id: str | None = None
    advocate_id: str | None = None


class Comparison(msgspec.Struct, kw_only=True):
    """The same figures over the compare period."""

    mode: Literal["previous", "year"]
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    totals: list[Value]
    series: list[Bucket]


class Answer(msgspec.Struct, kw_only=True):
    """A report: its totals over the range, its series by interval, an optional breakdown,
    leaderboard rows, the compare period and notes on what was left out."""

    report: ReportName
    program_id: str | None
    livemode: bool
    time_zone: str
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    interval: Interval
    filters: Filters
    totals: list[Value]
    series: list[Bucket]
    breakdown: Breakdown | None = None
    rows: list[Ranked] = msgspec.field(default_factory=list)
    ranking: Ranking | None = None
    compare: Comparison | None = None
    notes: list[str] = msgspec.field(default_factory=list)


def catalogue_markdown() -> str:
    """The reports and metric definitions, as the OpenAPI description states them."""
    lines = ["Reports:", ""]
    lines += [f"- `{name}`: {REPORT_TEXT[name]}" for name in REPORTS]
    lines += ["", "Metrics (unit; definition):", ""]
    for name, metric in METRICS.items():
        flag = " Estimate." if metric.estimate and "estimate" not in metric.description else ""
        lines.append(f"- `{name}` ({metric.unit}): {metric.description}{flag}")
    return "\n".join(lines)
