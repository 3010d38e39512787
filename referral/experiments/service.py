"""Experiments: a program's offers tested against each other, with an honest readout.

An experiment's variants override parts of the program (friend and advocate reward, share
page headline and text, story prompt). An advocate's variant is a keyed hash of the
advocate (`rules.Assigner`), so it never changes and the redirect needs no lookup; it is
recorded when the advocate is first exposed (their share page, widget, share URL or
advocate record served). A friend gets the variant of the advocate whose link (the click
token carries it) or code they used; the referral records it in its attribution, and its
rewards follow that variant's rules, even after the experiment ended: the friend's offer
never changes mid-way.

The readout (`readout`) reads the analytics rollups of the exposed advocates; ending with a
winner makes the winner's rewards the program's (a new rules version) and its copy the
share page's; ending without one leaves the program as it was (variants never changed it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from referral.audit import service as audit
from referral.experiments import holdout, repo, rules
from referral.experiments.schemas import (
    Experiment,
    ExperimentCreate,
    ExperimentEnd,
    ExperimentReadout,
    MetricReadout,
    Variant,
    VariantCounts,
    VariantFigure,
    VariantSettings,
)
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.links.token import ClickToken
from referral.merchants.service import Caller
from referral.programs import service as programs
from referral.programs.schemas import ProgramUpdate, RewardSettings
from referral.runtime import Runtime

log = structlog.get_logger("referral.experiments")

HASH_KEY_BYTES = 16
DEFAULT_MINIMUM_EFFECT = 0.10
ROLLUP_METRICS = ["shares", "unique_clicks", "first_orders", "referred_revenue", "reward_cost"]


def state(row: repo.ExperimentRow, now: datetime) -> str:
    if row.status == "ended" or (row.ends_at is not None and row.ends_at <= now):
        return "ended"
    return "scheduled" if now < row.starts_at else "running"


def _variants(row: repo.ExperimentRow) -> list[Variant]:
    return [msgspec.convert(v, Variant) for v in row.variants]


def to_experiment(runtime: Runtime, caller: Caller, row: repo.ExperimentRow) -> Experiment:
    now_state = state(row, datetime.now(UTC))
    return Experiment(
        id=runtime.ids.encode("experiment", row.id),
        program_id=runtime.ids.encode("program", row.program_id),
        name=row.name,
        status=row.status,  # type: ignore[arg-type]
        state=now_state,  # type: ignore[arg-type]
        variants=_variants(row),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        ended_at=row.ended_at or (row.ends_at if now_state == "ended" else None),
        winner=row.winner,
        rules_version=row.rules_version,
        created_at=row.created_at,
        livemode=caller.mode == "live",
    )


def _check(data: ExperimentCreate, now: datetime) -> None:
    keys = [v.key for v in data.variants]
    if len(set(keys)) != len(keys):
        raise InvalidInput("each variant key may appear once", code="invalid_experiment")
    starts_at = data.starts_at or now
    if data.ends_at is not None and data.ends_at <= starts_at:
        raise InvalidInput(
            "ends_at must be after starts_at", code="invalid_schedule", field="ends_at"
        )
    for v in data.variants:
        # The same checks as the program's own rules (fixed amounts or basis points, known
        # currencies, pools for the friend's coupon only).
        overrides = RewardSettings(advocate=v.settings.advocate, friend=v.settings.friend)
        programs.check_rewards(overrides)


async def _program(conn: asyncpg.Connection, runtime: Runtime, caller: Caller, program_id: str):
    return await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)


async def create(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    data: ExperimentCreate,
) -> Experiment:
    """One running (or scheduled) experiment per program: another is refused with 409
    `experiment_running` until it ends."""
    await _program(conn, runtime, caller, program_id)
    now = datetime.now(UTC)
    _check(data, now)
    internal = runtime.ids.decode("program", program_id)
    await repo.end_past(conn, caller.merchant_id, internal)
    row = await repo.insert(
        conn,
        caller.merchant_id,
        program_id=internal,
        name=data.name,
        variants=[msgspec.to_builtins(v) for v in data.variants],
        hash_key=secrets.token_bytes(HASH_KEY_BYTES),
        # The start the schedule was checked against (not the database's later now()).
        starts_at=data.starts_at or now,
        ends_at=data.ends_at,
    )
    if row is None:
        raise Conflict(
            "the program already runs an experiment: end it first", code="experiment_running"
        )
    experiment = to_experiment(runtime, caller, row)
    await audit.record(
        conn,
        caller=caller,
        action="experiment.created",
        subject_type="experiment",
        subject_id=experiment.id,
        after=experiment,
    )
    log.info("experiment_created", experiment_id=row.id, program_id=internal)
    runtime.codes.forget_all()
    return experiment


async def _row(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    experiment_id: str,
    *,
    for_update: bool = False,
) -> repo.ExperimentRow:
    row = await repo.get(
        conn,
        caller.merchant_id,
        runtime.ids.decode("program", program_id),
        runtime.ids.decode("experiment", experiment_id),
        for_update=for_update,
    )
    if row is None:
        raise NotFound(f"no experiment with id {experiment_id}", code="experiment_not_found")
    return row


async def end(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    experiment_id: str,
    data: ExperimentEnd,
) -> Experiment:
    """End it, with or without a winner. A winner's rewards become the program's through
    the program's own update (a new rules version when they differ: rewards already
    granted keep theirs), its copy the share page's. An ended experiment stays as it ended
    (409 `experiment_ended`)."""
    row = await _row(conn, runtime, caller, program_id, experiment_id, for_update=True)
    if row.status == "ended":
        raise Conflict("the experiment has already ended", code="experiment_ended")
    variants = {v.key: v for v in _variants(row)}
    if data.winner is not None and data.winner not in variants:
        raise InvalidInput(
            f"no variant {data.winner!r} in this experiment (variants: {', '.join(variants)})",
            code="unknown_variant",
            field="winner",
        )
    rules_version = None
    if data.winner is not None:
        chosen = variants[data.winner].settings
        program = await _program(conn, runtime, caller, program_id)
        rewards = program.rewards
        if chosen.friend is not None:
            rewards = msgspec.structs.replace(rewards, friend=chosen.friend)
        if chosen.advocate is not None:
            rewards = msgspec.structs.replace(rewards, advocate=chosen.advocate)
        if rewards != program.rewards:
            updated = await programs.update(
                conn,
                runtime=runtime,
                caller=caller,
                program_id=program_id,
                data=ProgramUpdate(rewards=rewards),
                actor=data.actor,
            )
            rules_version = updated.rules_version
    before = to_experiment(runtime, caller, row)
    row = await repo.end(
        conn, caller.merchant_id, row.id, winner=data.winner, rules_version=rules_version
    )
    experiment = to_experiment(runtime, caller, row)
    await audit.record(
        conn,
        caller=caller,
        action="experiment.ended",
        subject_type="experiment",
        subject_id=experiment.id,
        before={"status": before.status},
        after={
            "status": experiment.status,
            "winner": experiment.winner,
            "rules_version": rules_version,
            "note": data.note,
        },
    )
    log.info("experiment_ended", experiment_id=row.id, winner=data.winner)
    runtime.codes.forget_all()
    return experiment


# --- what other rooms ask ---------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """The variant an advocate (and their friends) get, and what it overrides."""

    experiment_id: str  # public id
    variant: str
    settings: VariantSettings


def _assigned(runtime: Runtime, row: repo.ExperimentRow, advocate_id: int) -> Assignment:
    variants = _variants(row)
    index = rules.assign(row.hash_key, [v.weight for v in variants], advocate_id)
    chosen = variants[index]
    return Assignment(runtime.ids.encode("experiment", row.id), chosen.key, chosen.settings)


async def assign(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    via: str,
) -> Assignment | None:
    """The advocate's variant of the program's running experiment, their exposure recorded
    (the first one counts; `via`: advocate, share_url or share_page). None when nothing
    runs."""
    row = await repo.running(conn, merchant_id, program_id)
    if row is None or state(row, datetime.now(UTC)) != "running":
        return None
    assignment = _assigned(runtime, row, advocate_id)
    await repo.expose(
        conn,
        merchant_id,
        experiment_id=row.id,
        advocate_id=advocate_id,
        variant=assignment.variant,
        via=via,
    )
    return assignment


async def invited(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    customer_id: str,
    via: str,
) -> Assignment | None:
    """The shop serves an advocate's code or share URL (`via`: advocate, share_url): 409
    `customer_held_out` (counted) for a customer the program holds out, else their
    exposure to the running experiment recorded and their variant."""
    await holdout.refuse_held_out(
        conn,
        runtime=runtime,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=customer_id,
        via=via,
    )
    return await assign(
        conn,
        runtime=runtime,
        merchant_id=merchant_id,
        program_id=program_id,
        advocate_id=advocate_id,
        via=via,
    )


async def adopted_copy(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int
) -> VariantSettings | None:
    """The settings of the winner of the program's last experiment (its share page
    headline and text and story prompt are the program's since), None for none."""
    row = await repo.adopted(conn, merchant_id, program_id)
    if row is None:
        return None
    return next((v.settings for v in _variants(row) if v.key == row.winner), None)


async def variant_at(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    at: datetime,
) -> Assignment | None:
    """The variant a typed code carries at `at` (no exposure: the friend typed it)."""
    row = await repo.running(conn, merchant_id, program_id)
    if row is None or state(row, at) != "running":
        return None
    return _assigned(runtime, row, advocate_id)


async def settings_for(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    attribution: dict[str, Any],
    settings: RewardSettings,
) -> RewardSettings:
    """The reward rules a referral (or quote) with this attribution earns under: the
    program's, with the rewards of the variant it recorded, whether or not its experiment
    still runs (the friend keeps the offer they were shown)."""
    chosen = await _variant(
        conn, runtime, merchant_id, attribution.get("experiment_id"), attribution.get("variant")
    )
    if chosen is None:
        return settings
    if chosen.friend is not None:
        settings = msgspec.structs.replace(settings, friend=chosen.friend)
    if chosen.advocate is not None:
        settings = msgspec.structs.replace(settings, advocate=chosen.advocate)
    return settings


async def _variant(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    experiment_id: str | None,
    key: str | None,
) -> VariantSettings | None:
    if not experiment_id or not key:
        return None
    try:
        internal = runtime.ids.decode("experiment", experiment_id)
    except NotFound:
        return None
    row = await repo.by_id(conn, merchant_id, internal)
    chosen = next((v for v in _variants(row) if v.key == key), None) if row else None
    return chosen.settings if chosen else None


async def friend_rule(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    token: ClickToken | None,
    rule: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The friend reward a landing page offers (the widget's `<referral-offer>`): the
    variant the click token carries (none when clicked before any experiment), else, for
    a typed code, the advocate's variant now; `rule` (the program's) when none overrides."""
    if token is not None:
        chosen = await _variant(conn, runtime, merchant_id, token.experiment_id, token.variant)
    else:
        assigned = await variant_at(
            conn,
            runtime=runtime,
            merchant_id=merchant_id,
            program_id=program_id,
            advocate_id=advocate_id,
            at=datetime.now(UTC),
        )
        chosen = assigned.settings if assigned else None
    if chosen is None or chosen.friend is None:
        return rule
    return msgspec.to_builtins(chosen.friend)


# --- the readout ------------------------------------------------------------------------


@dataclass
class _Arm:
    key: str
    name: str
    exposed: int = 0
    sharing: int = 0
    clicks: int = 0
    first_orders: int = 0
    decided: int = 0
    blocked: int = 0

    def __post_init__(self) -> None:
        self.new_customers: list[int] = []
        self.money: dict[tuple[str, str], list[int]] = {}


def _percent(x: float) -> str:
    return f"{x * 100:.1f} %"


def _summary(name: str, unit: str, verdict: str, figures: list[VariantFigure], needed, effect):
    best = max(figures, key=lambda f: f.p_best)
    if verdict == "too_few_data":
        more = (
            f"about {needed:,} more {unit} in the smallest variant"
            if needed
            else f"at least {rules.MIN_TRIALS} {unit} per variant and a baseline to scale"
        )
        return (
            f"Too few data to conclude on {name}: it needs {more} to detect a "
            f"{effect * 100:.0f} % change. Do not pick a winner from it yet."
        )
    if verdict == "winner":
        return (
            f"{name}: variant {best.variant} is best with probability {_percent(best.p_best)}; "
            f"the expected loss of choosing it is {best.expected_loss:.4g} (in the metric's "
            "unit)."
        )
    return (
        f"{name}: no clear winner; the likeliest, {best.variant}, is best with probability "
        f"{_percent(best.p_best)}: the variants may well be alike."
    )


def _readout(
    metric: str,
    description: str,
    unit: str,
    arms: list[_Arm],
    estimates: list[rules.Estimate],
    trials: list[int],
    required: int | None,
    *,
    method: str,
    currency: str | None,
    effect: float,
    higher_is_better: bool,
) -> MetricReadout:
    """One metric's answer from its estimates: the sample still needed and the verdict."""
    needed = rules.still_needed(required, trials)
    figures = _figures(arms, estimates, trials)
    verdict = rules.verdict(estimates, trials, needed)
    name = metric + (f" ({currency})" if currency else "")
    return MetricReadout(
        metric=metric,
        description=description,
        currency=currency,
        higher_is_better=higher_is_better,
        method=method,  # type: ignore[arg-type]
        variants=figures,
        required_per_variant=required,
        still_needed=needed,
        verdict=verdict,  # type: ignore[arg-type]
        summary=_summary(name, unit, verdict, figures, needed, effect),
    )


def _readout_of_rates(
    metric: str,
    description: str,
    unit: str,
    arms: list[_Arm],
    counts: list[tuple[int, int]],
    *,
    seed: int,
    effect: float,
    higher_is_better: bool = True,
) -> MetricReadout:
    estimates = rules.rates(counts, seed=seed, higher_is_better=higher_is_better)
    trials = [n for _, n in counts]
    total = sum(trials)
    baseline = sum(min(s, n) for s, n in counts) / total if total else 0.0
    required = rules.rate_sample_size(baseline, effect)
    return _readout(
        metric,
        description,
        unit,
        arms,
        estimates,
        trials,
        required,
        method="beta_binomial",
        currency=None,
        effect=effect,
        higher_is_better=higher_is_better,
    )


def _readout_of_means(
    metric: str,
    description: str,
    arms: list[_Arm],
    groups: list[tuple[list[int], int]],
    *,
    currency: str | None,
    seed: int,
    effect: float,
    higher_is_better: bool = True,
) -> MetricReadout:
    estimates, method = rules.means(groups, seed=seed, higher_is_better=higher_is_better)
    trials = [n for _, n in groups]
    pooled = [v for values, _ in groups for v in values]
    total = sum(trials)
    mean = sum(pooled) / total if total else 0.0
    required = rules.mean_sample_size(mean, rules.spread(pooled, total), effect)
    return _readout(
        metric,
        description,
        "exposed advocates",
        arms,
        estimates,
        trials,
        required,
        method=method,
        currency=currency,
        effect=effect,
        higher_is_better=higher_is_better,
    )


def _figures(
    arms: list[_Arm], estimates: list[rules.Estimate], trials: list[int]
) -> list[VariantFigure]:
    return [
        VariantFigure(
            variant=arm.key,
            value=e.value,
            low=e.low,
            high=e.high,
            p_best=e.p_best,
            expected_loss=e.expected_loss,
            trials=n,
        )
        for arm, e, n in zip(arms, estimates, trials, strict=True)
    ]


async def readout(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    experiment_id: str,
    minimum_effect: float = DEFAULT_MINIMUM_EFFECT,
) -> ExperimentReadout:
    """Per variant, from the rollups since the start: exposed advocates, sharing rate,
    unique clicks, friend conversion (first orders per unique click), new customers,
    referred revenue and reward cost per exposed advocate (per currency), and the fraud
    block rate as a guardrail; each with its 95 % interval, P(best), expected loss and the
    sample size still needed for `minimum_effect`. Seeded: the same data read the same."""
    row = await _row(conn, runtime, caller, program_id, experiment_id)
    experiment = to_experiment(runtime, caller, row)
    now = datetime.now(UTC)
    until = experiment.ended_at or now
    arms = [_Arm(v.key, v.name) for v in experiment.variants]
    by_key = {a.key: a for a in arms}
    for key, n in (await repo.exposed(conn, caller.merchant_id, row.id)).items():
        if key in by_key:
            by_key[key].exposed = n
    figures = await repo.advocate_figures(
        conn,
        caller.merchant_id,
        experiment_id=row.id,
        program_id=row.program_id,
        since=row.starts_at,
        until=until,
        metrics=ROLLUP_METRICS,
    )
    per_advocate: dict[tuple[str, int], dict[str, int]] = {}
    for f in figures:
        arm = by_key.get(f.variant)
        if arm is None:
            continue
        if f.currency:
            arm.money.setdefault((f.metric, f.currency), []).append(f.value)
        else:
            per_advocate.setdefault((f.variant, f.advocate_id), {})[f.metric] = f.value
    for (key, _), values in per_advocate.items():
        arm = by_key[key]
        if values.get("shares", 0) > 0 or values.get("unique_clicks", 0) > 0:
            arm.sharing += 1
        arm.clicks += values.get("unique_clicks", 0)
        first = values.get("first_orders", 0)
        arm.first_orders += first
        if first:
            arm.new_customers.append(first)
    for g in await repo.guardrail(conn, caller.merchant_id, row.program_id, experiment.id):
        arm = by_key.get(g.variant or "")
        if arm is not None:
            arm.decided, arm.blocked = g.decided, g.blocked

    seed = row.id * 100
    effect = minimum_effect
    metrics = [
        _readout_of_rates(
            "sharing_rate",
            "Exposed advocates who shared (a share recorded, or a unique click on their link)",
            "exposed advocates",
            arms,
            [(a.sharing, a.exposed) for a in arms],
            seed=seed + 1,
            effect=effect,
        ),
        _readout_of_rates(
            "friend_conversion",
            "Friends' first orders per unique click",
            "unique clicks",
            arms,
            [(min(a.first_orders, a.clicks), a.clicks) for a in arms],
            seed=seed + 2,
            effect=effect,
        ),
        _readout_of_means(
            "new_customers_per_advocate",
            "New customers (friends' first orders) per exposed advocate",
            arms,
            [(a.new_customers, a.exposed) for a in arms],
            currency=None,
            seed=seed + 3,
            effect=effect,
        ),
    ]
    money = sorted({k for a in arms for k in a.money})
    for i, (metric, currency) in enumerate(money):
        name = (
            "referred_revenue_per_advocate"
            if metric == "referred_revenue"
            else "reward_cost_per_advocate"
        )
        text = (
            "Referred revenue (net of refunds) per exposed advocate, minor units"
            if metric == "referred_revenue"
            else "Reward cost (approved and paid cash and credit) per exposed advocate, minor units"
        )
        metrics.append(
            _readout_of_means(
                name,
                text,
                arms,
                [(a.money.get((metric, currency), []), a.exposed) for a in arms],
                currency=currency,
                seed=seed + 10 + i,
                effect=effect,
                higher_is_better=metric == "referred_revenue",
            )
        )
    guardrails = [
        _readout_of_rates(
            "fraud_block_rate",
            "Decided referrals blocked by a fraud rule or a person's review (lower is better)",
            "decided referrals",
            arms,
            [(a.blocked, a.decided) for a in arms],
            seed=seed + 9,
            effect=effect,
            higher_is_better=False,
        )
    ]
    primary = metrics[2]
    conclusion = primary.summary
    if primary.verdict == "winner":
        worse = [
            g.metric for g in guardrails if g.verdict == "winner" and _leader(g) != _leader(primary)
        ]
        if worse:
            conclusion += (
                " Check the guardrail first: the winner does not have the lowest fraud block rate."
            )
    return ExperimentReadout(
        experiment=experiment,
        minimum_effect=effect,
        counts=[
            VariantCounts(
                variant=a.key,
                name=a.name,
                exposed_advocates=a.exposed,
                sharing_advocates=a.sharing,
                unique_clicks=a.clicks,
                first_orders=a.first_orders,
                referrals_decided=a.decided,
                referrals_blocked=a.blocked,
            )
            for a in arms
        ],
        metrics=metrics,
        guardrails=guardrails,
        verdict=primary.verdict,
        conclusion=conclusion,
    )


def _leader(m: MetricReadout) -> str:
    return max(m.variants, key=lambda f: f.p_best).variant
