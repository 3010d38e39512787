"""The experiments' pure rules: assignment by keyed hash, and the statistics of the readout."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from referral.experiments import rules

KEY = bytes(range(16))


def test_assignment_is_balanced_to_the_weights_over_100000_advocates():
    """Each variant's share is within 4 standard errors of its weight's share."""
    weights = [50, 30, 20]
    assigner = rules.Assigner(KEY, weights)
    n = 100_000
    counts = np.bincount([assigner.assign(i) for i in range(1, n + 1)], minlength=3)
    for count, weight in zip(counts, weights, strict=True):
        p = weight / sum(weights)
        assert abs(count - n * p) < 4 * math.sqrt(n * p * (1 - p)), (counts, weights)


def test_equal_weights_split_evenly_and_uncorrelated_with_ids():
    """Consecutive advocate ids do not fall into runs: the hash, not the id, decides."""
    assigner = rules.Assigner(KEY, [1, 1])
    picks = [assigner.assign(i) for i in range(1, 20_001)]
    assert abs(sum(picks) - 10_000) < 4 * math.sqrt(20_000 * 0.25)
    changes = sum(1 for a, b in zip(picks, picks[1:], strict=False) if a != b)
    assert abs(changes - 10_000) < 4 * math.sqrt(20_000 * 0.25)


def test_assignment_is_stable_across_processes():
    """Another interpreter (another instance, or this one after a restart: a new hash seed)
    assigns every advocate the same variant."""
    ids = list(range(1, 2_001))
    here = [rules.assign(KEY, [2, 1, 1], i) for i in ids]
    script = (
        "from referral.experiments import rules;"
        f"print(','.join(str(rules.assign(bytes(range(16)), [2, 1, 1], i)) for i in {ids!r}))"
    )
    there = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert there == ",".join(map(str, here))


def test_another_experiments_key_reshuffles_advocates():
    """Two experiments do not give the same advocates the same arm (no carry-over)."""
    a = [rules.assign(KEY, [1, 1], i) for i in range(1, 5_001)]
    b = [rules.assign(bytes(16), [1, 1], i) for i in range(1, 5_001)]
    same = sum(x == y for x, y in zip(a, b, strict=True))
    assert abs(same - 2_500) < 4 * math.sqrt(5_000 * 0.25)


@given(st.lists(st.integers(1, 100), min_size=2, max_size=4), st.integers(1, 2**62))
def test_assignment_is_a_function_of_key_weights_and_advocate(weights, advocate_id):
    first = rules.assign(KEY, weights, advocate_id)
    assert 0 <= first < len(weights)
    assert rules.assign(KEY, weights, advocate_id) == first


def test_holdout_share_is_its_basis_points():
    n = 40_000
    held = sum(rules.held_out(KEY, 2_000, f"cus_{i}") for i in range(n))
    assert abs(held - n * 0.2) < 4 * math.sqrt(n * 0.2 * 0.8)
    # Growing the share keeps everyone who was held out held out.
    assert all(
        rules.held_out(KEY, 3_000, f"cus_{i}")
        for i in range(2_000)
        if rules.held_out(KEY, 2_000, f"cus_{i}")
    )


def test_rates_recover_the_truth_and_point_at_the_best():
    estimates = rules.rates([(100, 1_000), (150, 1_000)], seed=1)
    a, b = estimates
    assert a.low < 0.10 < a.high and b.low < 0.15 < b.high
    assert b.p_best > 0.99 and a.p_best < 0.01
    assert b.expected_loss < a.expected_loss
    assert a.expected_loss == pytest.approx(0.05, abs=0.01)


def test_lower_is_better_flips_the_best():
    a, b = rules.rates([(10, 1_000), (40, 1_000)], seed=2, higher_is_better=False)
    assert a.p_best > 0.99


def test_readouts_are_seeded():
    assert rules.rates([(3, 10), (4, 10)], seed=7) == rules.rates([(3, 10), (4, 10)], seed=7)


def test_no_data_is_an_even_split_with_wide_intervals():
    a, b = rules.rates([(0, 0), (0, 0)], seed=3)
    assert a.low < 0.05 and a.high > 0.95
    assert a.p_best == pytest.approx(0.5, abs=0.02)
    assert rules.verdict([a, b], [0, 0], None) == "too_few_data"


def test_bootstrap_of_a_zero_inflated_mean_matches_resampling_everyone():
    """Resampling only the non-zero advocates (with a binomial count) is the bootstrap."""
    rng = np.random.default_rng(5)
    values = [int(v) for v in rng.exponential(5_000, size=40)]
    n = 400
    ours = rules.mean_draws(values, n, np.random.default_rng(6), resamples=4_000)
    full = np.array(values + [0] * (n - len(values)), dtype=float)
    plain = np.random.default_rng(7)
    naive = np.array([full[plain.integers(0, n, n)].mean() for _ in range(4_000)])
    assert ours.method == "bootstrap"
    assert ours.mean == pytest.approx(full.mean())
    assert ours.draws.std() == pytest.approx(naive.std(), rel=0.08)
    assert ours.draws.mean() == pytest.approx(naive.mean(), rel=0.03)


def test_large_samples_use_the_normal_approximation():
    values = [1] * 5_000
    out = rules.mean_draws(values, 100_000, np.random.default_rng(1))
    assert out.method == "normal"
    assert out.draws.mean() == pytest.approx(0.05, rel=0.01)


def test_sample_size_for_a_rate():
    # 10 % baseline, 10 % relative lift (to 11 %): the textbook figure is about 14,750.
    n = rules.rate_sample_size(0.10, 0.10)
    assert 14_000 < n < 15_500
    assert rules.rate_sample_size(0.0, 0.1) is None
    assert rules.still_needed(n, [n - 100, n + 5]) == 100


def test_verdicts():
    sure = rules.rates([(300, 1_000), (100, 1_000)], seed=1)
    assert rules.verdict(sure, [1_000, 1_000], 0) == "winner"
    alike = rules.rates([(100, 1_000), (101, 1_000)], seed=1)
    assert rules.verdict(alike, [1_000, 1_000], 0) == "no_clear_winner"
    assert rules.verdict(sure, [1_000, 1_000], 500) == "too_few_data"
    assert rules.verdict(sure, [1_000, 20], 0) == "too_few_data"
