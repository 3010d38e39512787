"""Holdouts: a share of a program's customers never invited to refer, and what that shows.

A program may hold out 1-50 % of the merchant's customers, chosen by a keyed hash of the
customer id (`rules.held_out`): the same customer is always held out, with no row per
customer. A held-out customer who asks for a code (the advocate record) or a share page
gets an answer saying so, so the shop shows no invitation, and the answer is counted.

The report compares treated and held-out customers on their own orders after their first
order since the holdout started (30, 90 and 180 days, each over the customers whose window
is complete): repeat rate, orders and revenue per customer, each with its 95 % interval and
the difference's. It is an intention-to-treat comparison: "treated" means could be invited,
not was invited, so it measures what the program adds to a shop's customers as a whole.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from referral.audit import service as audit
from referral.experiments import repo, rules
from referral.experiments.schemas import (
    Holdout,
    HoldoutComparison,
    HoldoutReport,
    HoldoutSet,
    HoldoutWindow,
    Interval,
)
from referral.lib.errors import Conflict, NotFound
from referral.merchants.service import Caller
from referral.programs import service as programs
from referral.runtime import Runtime

log = structlog.get_logger("referral.holdout")

WINDOWS = (30, 90, 180)
MIN_CUSTOMERS = rules.MIN_TRIALS
ANSWER_TIMEOUT_SECONDS = 1.0


def _holdout(runtime: Runtime, row: repo.HoldoutRow) -> Holdout:
    return Holdout(
        program_id=runtime.ids.encode("program", row.program_id),
        share_percent=row.share_bps / 100,
        started_at=row.started_at,
        updated_at=row.updated_at,
    )


async def set_holdout(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, program_id: str, data: HoldoutSet
) -> Holdout:
    """Start the program's holdout, or change its share (who is held out stays held out
    when it grows: the hash is kept)."""
    await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)
    internal = runtime.ids.decode("program", program_id)
    before = await repo.holdout(conn, caller.merchant_id, internal)
    row = await repo.set_holdout(
        conn, caller.merchant_id, internal, data.share_percent * 100, secrets.token_bytes(16)
    )
    holdout = _holdout(runtime, row)
    await audit.record(
        conn,
        caller=caller,
        action="holdout.set",
        subject_type="program",
        subject_id=program_id,
        before={"share_percent": before.share_bps / 100} if before else None,
        after={"share_percent": holdout.share_percent},
    )
    return holdout


async def held_out(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    via: str,
) -> bool:
    """Whether the customer is held out of the program's invitations; each time they are,
    the answer is counted (`via`: advocate, share_url or share_page). Counted on a
    connection of its own, committed at once: the API's answer is a problem (409
    `customer_held_out`), which rolls the request's own transaction back."""
    row = await repo.holdout(conn, merchant_id, program_id)
    if row is None or not rules.held_out(row.hash_key, row.share_bps, customer_id):
        return False
    try:
        async with runtime.pool.acquire(timeout=ANSWER_TIMEOUT_SECONDS) as own:
            await repo.answer(own, merchant_id, program_id, via)
    except (TimeoutError, asyncpg.PostgresError) as exc:  # the answer stands uncounted
        log.warning("holdout_answer_not_counted", program_id=program_id, error=type(exc).__name__)
    log.info("holdout_answered", program_id=program_id, via=via)
    return True


async def refuse_held_out(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    via: str,
) -> None:
    """409 `customer_held_out` (counted) for a customer the program holds out."""
    if await held_out(
        conn,
        runtime=runtime,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=customer_id,
        via=via,
    ):
        raise Conflict(
            "this customer is in the program's holdout: show them no invitation to refer "
            "(they are the comparison that measures what the program adds)",
            code="customer_held_out",
        )


def _interval(value: float, low: float, high: float) -> Interval:
    return Interval(value=value, low=low, high=high)


class _Customer:
    __slots__ = ("entry", "orders", "revenue")

    def __init__(self, entry: datetime) -> None:
        self.entry = entry
        self.orders = dict.fromkeys(WINDOWS, 0)
        self.revenue: dict[tuple[int, str], int] = {}


def _comparisons(
    treated: list[_Customer], held: list[_Customer], days: int, seed: int
) -> list[HoldoutComparison]:
    out = []
    t_rep = sum(1 for c in treated if c.orders[days] > 0)
    h_rep = sum(1 for c in held if c.orders[days] > 0)
    diff = rules.rate_difference((t_rep, len(treated)), (h_rep, len(held)), seed=seed)
    out.append(
        HoldoutComparison(
            metric="repeat_rate",
            currency=None,
            method="beta_binomial",
            treated=_interval(
                t_rep / len(treated), *rules.rate_interval(t_rep, len(treated), seed=seed + 1)
            ),
            held_out=_interval(
                h_rep / len(held), *rules.rate_interval(h_rep, len(held), seed=seed + 2)
            ),
            difference=_interval(*diff),
        )
    )
    series = [("orders_per_customer", None, lambda c: c.orders[days])]
    currencies = sorted({cur for c in treated + held for (d, cur) in c.revenue if d == days})
    for cur in currencies:
        series.append(
            ("revenue_per_customer", cur, lambda c, cur=cur: c.revenue.get((days, cur), 0))
        )
    for i, (metric, currency, value_of) in enumerate(series):
        t_values = [v for c in treated if (v := value_of(c))]
        h_values = [v for c in held if (v := value_of(c))]
        t_low, t_high, method = rules.mean_interval(t_values, len(treated), seed=seed + 10 + i)
        h_low, h_high, _ = rules.mean_interval(h_values, len(held), seed=seed + 20 + i)
        value, low, high, _ = rules.difference(
            (t_values, len(treated)), (h_values, len(held)), seed=seed + 30 + i
        )
        out.append(
            HoldoutComparison(
                metric=metric,  # type: ignore[arg-type]
                currency=currency,
                method=method,  # type: ignore[arg-type]
                treated=_interval(sum(t_values) / len(treated), t_low, t_high),
                held_out=_interval(sum(h_values) / len(held), h_low, h_high),
                difference=_interval(value, low, high),
            )
        )
    return out


async def report(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, program_id: str
) -> HoldoutReport:
    await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)
    internal = runtime.ids.decode("program", program_id)
    row = await repo.holdout(conn, caller.merchant_id, internal)
    if row is None:
        raise NotFound("the program holds out no customers", code="holdout_not_found")
    customers: dict[str, _Customer] = {}
    for w in await repo.customer_windows(conn, caller.merchant_id, row.started_at):
        c = customers.setdefault(w.customer_id, _Customer(w.entry))
        if w.currency is None:
            continue
        for days in WINDOWS:
            c.orders[days] += getattr(w, f"orders_{days}")
            amount = getattr(w, f"revenue_{days}")
            if amount:
                key = (days, w.currency.strip())
                c.revenue[key] = c.revenue.get(key, 0) + amount
    groups: dict[bool, list[tuple[str, _Customer]]] = {True: [], False: []}
    for customer_id, c in customers.items():
        groups[rules.held_out(row.hash_key, row.share_bps, customer_id)].append((customer_id, c))
    now = datetime.now(UTC)
    windows = []
    for i, days in enumerate(WINDOWS):
        done = now - timedelta(days=days)
        treated = [c for _, c in groups[False] if c.entry <= done]
        held = [c for _, c in groups[True] if c.entry <= done]
        if len(treated) < MIN_CUSTOMERS or len(held) < MIN_CUSTOMERS:
            windows.append(HoldoutWindow(days, len(treated), len(held), [], "too_few_data"))
            continue
        comparisons = _comparisons(treated, held, days, seed=row.program_id * 1000 + i * 100)
        repeat = comparisons[0].difference
        verdict = "difference" if repeat.low > 0 or repeat.high < 0 else "no_clear_difference"
        windows.append(HoldoutWindow(days, len(treated), len(held), comparisons, verdict))
    treated_total = len(groups[False])
    referred = await repo.referred_new_customers(conn, caller.merchant_id, internal, row.started_at)
    return HoldoutReport(
        holdout=_holdout(runtime, row),
        held_out_answers=await repo.answers(conn, caller.merchant_id, internal, row.started_at),
        treated_customers=treated_total,
        held_out_customers=len(groups[True]),
        referred_new_customers=referred,
        referred_new_customers_per_1000_treated=(
            round(referred * 1000 / treated_total, 2) if treated_total else 0.0
        ),
        windows=windows,
        conclusion=_conclusion(windows),
    )


def _conclusion(windows: list[HoldoutWindow]) -> str:
    read = [w for w in windows if w.verdict != "too_few_data"]
    if not read:
        return (
            f"Too few customers have completed even a {WINDOWS[0]}-day window in both groups "
            f"(at least {MIN_CUSTOMERS} each): nothing can be concluded yet."
        )
    w = read[-1]
    r = w.comparisons[0]
    said = (
        f"Over {w.days} days, treated customers ordered again at "
        f"{r.treated.value * 100:.1f} % against {r.held_out.value * 100:.1f} % held out "
        f"(difference {r.difference.value * 100:+.1f} points, 95 % interval "
        f"{r.difference.low * 100:+.1f} to {r.difference.high * 100:+.1f})"
    )
    if w.verdict == "difference":
        return said + ": being invited to refer changed how often customers came back."
    return said + ": no clear difference yet."
