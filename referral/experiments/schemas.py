"""Request and response shapes for experiments and holdouts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from referral.programs.schemas import RewardRule

VariantKey = Annotated[
    str, Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,19}$", examples=["a", "fifteen_percent"])
]
Copy = Annotated[str, Meta(min_length=1, max_length=500)]
Actor = Annotated[str, Meta(min_length=1, max_length=200, examples=["growth@shop.example"])]
ExperimentStatus = Literal["running", "ended"]
ExperimentState = Literal["scheduled", "running", "ended"]
Verdict = Annotated[
    Literal["too_few_data", "winner", "no_clear_winner"],
    Meta(
        description="`too_few_data`: a variant has under 30 trials, or fewer than the sample "
        "size for the minimum effect: do not read a winner from it yet. `winner`: one "
        "variant's probability to be best is at least 0.95. `no_clear_winner`: enough data, "
        "and the variants may well be alike."
    ),
]


class VariantSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a variant overrides in its program; what it leaves out stays the program's."""

    friend: RewardRule | None = None
    advocate: RewardRule | None = None
    share_headline: Copy | None = None
    share_text: Copy | None = None
    story_prompt: Copy | None = None


class VariantCreate(msgspec.Struct, forbid_unknown_fields=True):
    key: VariantKey
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    weight: Annotated[int, Meta(ge=1, le=100)] = 1
    settings: VariantSettings = msgspec.field(default_factory=VariantSettings)


class ExperimentCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    variants: Annotated[list[VariantCreate], Meta(min_length=2, max_length=4)]
    starts_at: Annotated[datetime, Meta(tz=True, description="Default: now")] | None = None
    ends_at: (
        Annotated[
            datetime,
            Meta(
                tz=True,
                description="When it stops assigning by itself (null: when ended by hand)",
            ),
        ]
        | None
    ) = None


class ExperimentEnd(msgspec.Struct, forbid_unknown_fields=True):
    """End an experiment: with a `winner`, its settings become the program's (a new rules
    version when its rewards differ; rewards already granted never change); without one
    the program is as it was before the experiment."""

    winner: VariantKey | None = None
    actor: Actor = "api"
    note: Annotated[str, Meta(max_length=2000)] | None = None


class Variant(msgspec.Struct):
    key: str
    name: str
    weight: int
    settings: VariantSettings


class Experiment(msgspec.Struct):
    id: str
    program_id: str
    name: str
    status: ExperimentStatus
    state: Annotated[
        ExperimentState,
        Meta(description="The status with the clock applied: `scheduled` before `starts_at`"),
    ]
    variants: list[Variant]
    starts_at: datetime
    ends_at: datetime | None
    ended_at: datetime | None
    winner: str | None
    rules_version: Annotated[
        int | None,
        Meta(description="The program's rules version the winner's rewards became"),
    ]
    created_at: datetime
    livemode: bool
    object: str = "experiment"


class VariantCounts(msgspec.Struct):
    """What the rollups hold for one variant's exposed advocates since the start."""

    variant: str
    name: str
    exposed_advocates: int
    sharing_advocates: Annotated[
        int, Meta(description="Exposed advocates who shared (a share recorded or a click)")
    ]
    unique_clicks: int
    first_orders: Annotated[int, Meta(description="Friends' first orders (new customers)")]
    referrals_decided: int
    referrals_blocked: int


class VariantFigure(msgspec.Struct):
    variant: str
    value: float
    low: Annotated[float, Meta(description="95 % interval, lower end")]
    high: Annotated[float, Meta(description="95 % interval, upper end")]
    p_best: Annotated[float, Meta(description="Probability this variant is the best")]
    expected_loss: Annotated[
        float,
        Meta(description="What choosing it gives up on average, in the metric's unit"),
    ]
    trials: Annotated[int, Meta(description="Unique clicks or exposed advocates behind it")]


class MetricReadout(msgspec.Struct):
    metric: str
    description: str
    currency: str | None
    higher_is_better: bool
    method: Literal["beta_binomial", "bootstrap", "normal"]
    variants: list[VariantFigure]
    required_per_variant: Annotated[
        int | None,
        Meta(
            description="Trials per variant to detect the minimum effect (95 %, power 0.8); "
            "null while the data give no baseline"
        ),
    ]
    still_needed: Annotated[
        int | None, Meta(description="More trials the smallest variant still needs")
    ]
    verdict: Verdict
    summary: str


class ExperimentReadout(msgspec.Struct):
    experiment: Experiment
    minimum_effect: Annotated[
        float, Meta(description="The relative change the sample sizes are for (0.1: 10 %)")
    ]
    counts: list[VariantCounts]
    metrics: list[MetricReadout]
    guardrails: list[MetricReadout]
    verdict: Verdict
    conclusion: Annotated[str, Meta(description="The readout in one sentence")]
    object: str = "experiment_readout"


# --- holdout ----------------------------------------------------------------------------


class HoldoutSet(msgspec.Struct, forbid_unknown_fields=True):
    share_percent: Annotated[
        int, Meta(ge=1, le=50, description="The share of customers never invited to refer")
    ]


class Holdout(msgspec.Struct):
    program_id: str
    share_percent: float
    started_at: datetime
    updated_at: datetime
    object: str = "holdout"


class Interval(msgspec.Struct):
    value: float
    low: float
    high: float


class HoldoutComparison(msgspec.Struct):
    metric: Literal["repeat_rate", "orders_per_customer", "revenue_per_customer"]
    currency: str | None
    method: Literal["beta_binomial", "bootstrap", "normal"]
    treated: Interval
    held_out: Interval
    difference: Annotated[Interval, Meta(description="Treated minus held out")]


class HoldoutWindow(msgspec.Struct):
    days: int
    treated_customers: Annotated[
        int,
        Meta(
            description="Customers whose window is over: their first order since the "
            "holdout started is at least this many days old"
        ),
    ]
    held_out_customers: int
    comparisons: list[HoldoutComparison]
    verdict: Literal["too_few_data", "difference", "no_clear_difference"]


class HoldoutReport(msgspec.Struct):
    holdout: Holdout
    held_out_answers: Annotated[
        int, Meta(description="Times a held-out customer asked for a code or a share page")
    ]
    treated_customers: int
    held_out_customers: int
    referred_new_customers: Annotated[
        int, Meta(description="New customers the program's referrals brought since the start")
    ]
    referred_new_customers_per_1000_treated: float
    windows: list[HoldoutWindow]
    conclusion: str
    object: str = "holdout_report"
