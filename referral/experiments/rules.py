"""Experiments and holdouts, pure: who gets which variant, and what the numbers say.

Assignment is a keyed hash (HMAC-SHA256 under the experiment's own random key) of the
advocate's id, mapped onto the variants' weights: the same advocate always gets the same
variant, on every instance and after every restart, and nothing has to be looked up.

The readout's statistics, all seeded so one set of data always reads the same:
- rates (sharing, friend conversion, fraud blocks) are Beta-Binomial: a uniform Beta(1, 1)
  prior, so the posterior of a rate with s successes in n trials is Beta(1 + s, 1 + n - s).
  Its 95 % credible interval, the probability each variant is best and its expected loss
  (how much of the metric is given up, on average, by picking it if it is not the best)
  come from the same Monte Carlo draws of every variant's posterior;
- money and counts per advocate (new customers, referred revenue, reward cost) are
  heavy-tailed and mostly zero (most advocates bring nothing, a few bring a lot), which a
  normal interval misstates at small samples: their distribution is the bootstrap of the
  mean over advocates (resampling advocates with replacement). Large samples (where the
  central limit theorem makes the two agree) use the normal approximation to save time;
  the answer says which method it used;
- the sample size still needed to detect a minimum relative effect with 95 % confidence
  and 80 % power (two-sided), per variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from statistics import NormalDist

import numpy as np

from referral.lib.keyed_hash import HmacSha256

DRAWS = 20_000  # Monte Carlo draws per variant (P(best) within about ±0.007)
BOOTSTRAP = 2_000  # bootstrap resamples of a mean
BOOTSTRAP_WORK = 4_000_000  # resample work above which the normal approximation is used
LEVEL = 0.95
POWER = 0.80
MIN_TRIALS = 30  # below this in any variant a rate is never read as a result
DECISIVE = 0.95  # P(best) at which a variant is called the winner
_Z_LEVEL = NormalDist().inv_cdf(1 - (1 - LEVEL) / 2)
_Z_POWER = NormalDist().inv_cdf(POWER)


# --- assignment --------------------------------------------------------------------------


class Assigner:
    """Picks a variant index for an advocate id: HMAC-SHA256(key, id) read as a number in
    [0, 2**64) and laid over the cumulative weights. Built once per cached experiment;
    `assign` is one hash and a short scan, for the redirect's hot path."""

    __slots__ = ("_mac", "_bounds")

    def __init__(self, key: bytes, weights: Sequence[int]) -> None:
        if len(weights) < 1 or any(w <= 0 for w in weights):
            raise ValueError("weights must be positive")
        self._mac = HmacSha256(key)
        total, running, bounds = sum(weights), 0, []
        for w in weights:
            running += w
            bounds.append((running << 64) // total)  # upper bound of this variant's slice
        bounds[-1] = 1 << 64
        self._bounds = tuple(bounds)

    def assign(self, advocate_id: int) -> int:
        point = int.from_bytes(self._mac.digest(advocate_id.to_bytes(8, "big"))[:8], "big")
        for index, bound in enumerate(self._bounds):
            if point < bound:
                return index
        return len(self._bounds) - 1  # unreachable: the last bound is 2**64


def assign(key: bytes, weights: Sequence[int], advocate_id: int) -> int:
    return Assigner(key, weights).assign(advocate_id)


def held_out(key: bytes, share_bps: int, customer_id: str) -> bool:
    """Whether a customer is in a holdout of `share_bps` basis points: SHA-256 of the
    holdout's key and the customer id, read as a number in [0, 10,000)."""
    digest = sha256(key + customer_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < share_bps


# --- rates: Beta-Binomial ----------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One variant's figure: the observed value, its 95 % interval, P(best), expected loss."""

    value: float
    low: float
    high: float
    p_best: float
    expected_loss: float


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def beta_draws(successes: int, trials: int, rng: np.random.Generator, n: int = DRAWS):
    successes = max(0, min(successes, trials))
    return rng.beta(1 + successes, 1 + trials - successes, size=n)


def compare(draws: Sequence[np.ndarray], observed: Sequence[float], *, higher_is_better: bool):
    """Intervals, P(best) and expected loss from each variant's draws of its figure."""
    matrix = np.vstack(draws)  # variants x draws
    if higher_is_better:
        best = matrix.max(axis=0)
        winners = matrix.argmax(axis=0)
        loss = best - matrix
    else:
        best = matrix.min(axis=0)
        winners = matrix.argmin(axis=0)
        loss = matrix - best
    counts = np.bincount(winners, minlength=len(draws))
    low, high = np.quantile(matrix, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], axis=1)
    return [
        Estimate(
            value=float(observed[i]),
            low=float(low[i]),
            high=float(high[i]),
            p_best=float(counts[i] / matrix.shape[1]),
            expected_loss=float(loss[i].mean()),
        )
        for i in range(len(draws))
    ]


def rates(
    counts: Sequence[tuple[int, int]], *, seed: int, higher_is_better: bool = True
) -> list[Estimate]:
    """Beta-Binomial estimates of (successes, trials) per variant."""
    rng = _rng(seed)
    draws = [beta_draws(s, n, rng) for s, n in counts]
    observed = [min(s, n) / n if n else 0.0 for s, n in counts]
    return compare(draws, observed, higher_is_better=higher_is_better)


def rate_sample_size(baseline: float, minimum_effect: float) -> int | None:
    """Trials per variant to detect a relative change of `minimum_effect` from `baseline`
    (95 % two-sided, 80 % power); None when the baseline gives nothing to scale (0 or 1)."""
    if not 0 < baseline < 1 or minimum_effect <= 0:
        return None
    other = min(baseline * (1 + minimum_effect), 1 - 1e-9)
    delta = other - baseline
    variance = baseline * (1 - baseline) + other * (1 - other)
    return math.ceil((_Z_LEVEL + _Z_POWER) ** 2 * variance / delta**2)


# --- means per advocate: bootstrap -------------------------------------------------------


@dataclass(frozen=True)
class MeanDraws:
    draws: np.ndarray
    mean: float
    method: str  # "bootstrap" or "normal"


def mean_draws(
    nonzero: Sequence[int], n: int, rng: np.random.Generator, *, resamples: int = BOOTSTRAP
) -> MeanDraws:
    """The bootstrap distribution of the mean over `n` advocates, of whom those listed in
    `nonzero` have these values and the rest 0. A resample of n advocates picks a
    Binomial(n, k/n) number of the k non-zero ones, uniformly with replacement: the same
    distribution as resampling all n, in work proportional to k."""
    values = np.asarray(nonzero, dtype=np.float64)
    k = len(values)
    if n <= 0:
        return MeanDraws(np.zeros(resamples), 0.0, "bootstrap")
    mean = float(values.sum() / n)
    if k == 0:
        return MeanDraws(np.zeros(resamples), 0.0, "bootstrap")
    if k * resamples > BOOTSTRAP_WORK:
        squares = float((values**2).sum())
        variance = max(squares / n - mean**2, 0.0) * n / max(n - 1, 1)
        return MeanDraws(rng.normal(mean, math.sqrt(variance / n), resamples), mean, "normal")
    picks = rng.binomial(n, k / n, size=resamples)
    out = np.empty(resamples)
    for i, m in enumerate(picks):
        out[i] = values[rng.integers(0, k, size=m)].sum() / n if m else 0.0
    return MeanDraws(out, mean, "bootstrap")


def means(
    groups: Sequence[tuple[Sequence[int], int]], *, seed: int, higher_is_better: bool = True
) -> tuple[list[Estimate], str]:
    """Estimates of the mean per advocate per variant ((non-zero values, advocates))."""
    rng = _rng(seed)
    sampled = [mean_draws(values, n, rng) for values, n in groups]
    method = "normal" if any(s.method == "normal" for s in sampled) else "bootstrap"
    estimates = compare(
        [s.draws for s in sampled], [s.mean for s in sampled], higher_is_better=higher_is_better
    )
    return estimates, method


def mean_sample_size(mean: float, sd: float, minimum_effect: float) -> int | None:
    """Advocates per variant to detect a relative change of `minimum_effect` in a mean."""
    if mean <= 0 or sd <= 0 or minimum_effect <= 0:
        return None
    delta = mean * minimum_effect
    return math.ceil((_Z_LEVEL + _Z_POWER) ** 2 * 2 * sd**2 / delta**2)


def spread(nonzero: Sequence[int], n: int) -> float:
    """The standard deviation over n advocates, of whom only `nonzero` hold a value."""
    if n <= 1:
        return 0.0
    values = np.asarray(nonzero, dtype=np.float64)
    mean = values.sum() / n
    return float(math.sqrt(max((values**2).sum() / n - mean**2, 0.0) * n / (n - 1)))


# --- what to say -------------------------------------------------------------------------


Verdict = str  # "too_few_data" | "winner" | "no_clear_winner"


def verdict(estimates: Sequence[Estimate], trials: Sequence[int], still_needed: int | None) -> str:
    """`too_few_data` while any variant has under MIN_TRIALS trials or the sample size for
    the minimum effect is not reached; `winner` when one variant's P(best) is at least
    DECISIVE; else `no_clear_winner` (the variants may well be alike)."""
    if min(trials, default=0) < MIN_TRIALS or (still_needed or 0) > 0:
        return "too_few_data"
    if max(e.p_best for e in estimates) >= DECISIVE:
        return "winner"
    return "no_clear_winner"


def still_needed(required: int | None, trials: Sequence[int]) -> int | None:
    """How many more trials the smallest variant needs (None: cannot say yet)."""
    if required is None:
        return None
    return max(0, required - min(trials, default=0))


def difference(
    treated: tuple[Sequence[int], int],
    control: tuple[Sequence[int], int],
    *,
    seed: int,
) -> tuple[float, float, float, str]:
    """Treated minus control in a mean per customer, with its 95 % interval (bootstrap of
    each group, as `means`)."""
    rng = _rng(seed)
    a = mean_draws(treated[0], treated[1], rng)
    b = mean_draws(control[0], control[1], rng)
    diff = a.draws - b.draws
    low, high = np.quantile(diff, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    method = "normal" if "normal" in (a.method, b.method) else "bootstrap"
    return a.mean - b.mean, float(low), float(high), method


def rate_difference(
    treated: tuple[int, int], control: tuple[int, int], *, seed: int
) -> tuple[float, float, float]:
    """Treated minus control in a rate, with its 95 % credible interval."""
    rng = _rng(seed)
    a = beta_draws(*treated, rng)
    b = beta_draws(*control, rng)
    observed = (treated[0] / treated[1] if treated[1] else 0.0) - (
        control[0] / control[1] if control[1] else 0.0
    )
    low, high = np.quantile(a - b, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return observed, float(low), float(high)


def rate_interval(successes: int, trials: int, *, seed: int) -> tuple[float, float]:
    low, high = np.quantile(
        beta_draws(successes, trials, _rng(seed)), [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2]
    )
    return float(low), float(high)


def mean_interval(nonzero: Sequence[int], n: int, *, seed: int) -> tuple[float, float, str]:
    sampled = mean_draws(nonzero, n, _rng(seed))
    low, high = np.quantile(sampled.draws, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float(low), float(high), sampled.method
