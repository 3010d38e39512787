"""A seeded simulation through the real API: synthetic advocates and friends with known true
rates per variant. The shop asks for each advocate's code (their exposure), some advocates
share, their friends follow the link (`/r/{code}`) and some order with its token; the
rollup worker books it all, and the readout must recover the true rates within its
intervals, say "too few data" while the sample is small, and point P(best) at the true best
once it is large enough."""

from __future__ import annotations

import random

import pytest

from referral.lib.rate_limit import Limit
from referral.settings import RateLimits, Settings
from tests.analytics.conftest import catch_up, flush_clicks, visit
from tests.conftest import make_settings
from tests.factories import NO_VELOCITY, create_advocate, create_program
from tests.scenarios import get, order, post

SEED = 20261207
SHARING = {"control": 0.8, "bigger": 0.8}  # true share of advocates who share
CONVERSION = {"control": 0.10, "bigger": 0.28}  # true first orders per unique click
FRIENDS_PER_SHARER = 10
ADVOCATES_PER_VARIANT = 30


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Clicks reach the database when the test flushes the writer, the rollups when it runs
    # the rollup worker: the readout counts exactly what came before. No per-IP limits.
    off = Limit(per_minute=0, burst=0)
    return make_settings(
        database_url,
        click_flush_interval_ms=3_600_000,
        rate_limits=RateLimits(share_page=off, story_pages=off),
    )


async def readout(client, tenant, program_id, experiment_id, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return await get(
        client, tenant, f"/v1/programs/{program_id}/experiments/{experiment_id}?{query}"
    )


def metric(answer: dict, name: str) -> dict[str, dict]:
    (found,) = [m for m in answer["metrics"] + answer["guardrails"] if m["metric"] == name]
    return found | {"by": {v["variant"]: v for v in found["variants"]}}


async def simulate(client, tenant, db, program_id, experiment, rng, friends, made, n_advocates):
    """Advocates until each variant has `n_advocates` (counted in `made`); each shares with
    its variant's true rate, and each of a sharer's friends orders with its variant's true
    conversion rate."""
    key = await db.fetchval("SELECT hash_key FROM experiments")
    from referral.experiments import rules
    from referral.lib.ids import PublicIds

    ids = PublicIds(client.app.state.settings.hashids_salt)
    keys = [v["key"] for v in experiment["variants"]]
    weights = [v["weight"] for v in experiment["variants"]]
    while min(made.values()) < n_advocates:
        advocate = await create_advocate(client, tenant, program_id, f"sim-{rng.random():.12f}")
        variant = keys[rules.assign(key, weights, ids.decode("advocate", advocate["id"]))]
        made[variant] += 1
        if rng.random() >= SHARING[variant]:
            continue
        for _ in range(FRIENDS_PER_SHARER):
            friend = f"friend-{next(friends)}"
            token = await visit(client, advocate["code"], f"visitor-{friend}")
            if rng.random() < CONVERSION[variant]:
                await order(client, tenant, friend, ref_token=token)


async def test_the_readout_recovers_the_true_rates_and_the_best_variant(
    client, tenant, db, pool, ids
):
    program = await create_program(client, tenant, fraud_policy=NO_VELOCITY)
    experiment = await post(
        client,
        tenant,
        f"/v1/programs/{program['id']}/experiments",
        {
            "name": "A bigger friend offer",
            "variants": [
                {"key": "control", "name": "10 EUR"},
                {
                    "key": "bigger",
                    "name": "20 EUR",
                    "settings": {"friend": {"kind": "coupon", "amounts": {"EUR": 2000}}},
                },
            ],
        },
        201,
    )
    # The experiment's hash key is random; fixed here so the run is the same every time.
    await db.execute("UPDATE experiments SET hash_key = $1", bytes(range(16)))
    rng = random.Random(SEED)
    friends = iter(range(1, 100_000))
    made = {"control": 0, "bigger": 0}

    # A small first sample: the readout says it is too few to conclude.
    await simulate(client, tenant, db, program["id"], experiment, rng, friends, made, 3)
    await flush_clicks(client)
    await catch_up(pool, ids)
    early = await readout(client, tenant, program["id"], experiment["id"], minimum_effect=1)
    assert early["verdict"] == "too_few_data"
    assert metric(early, "friend_conversion")["verdict"] == "too_few_data"
    assert "Too few data" in early["conclusion"]

    # Enough of them: the truth inside every interval, and the best variant found.
    await simulate(
        client, tenant, db, program["id"], experiment, rng, friends, made, ADVOCATES_PER_VARIANT
    )
    await flush_clicks(client)
    await catch_up(pool, ids)
    answer = await readout(client, tenant, program["id"], experiment["id"], minimum_effect=1)
    counts = {c["variant"]: c for c in answer["counts"]}
    assert {k: c["exposed_advocates"] for k, c in counts.items()} == made
    conversion = metric(answer, "friend_conversion")
    sharing = metric(answer, "sharing_rate")
    for variant in ("control", "bigger"):
        c = conversion["by"][variant]
        assert c["low"] < CONVERSION[variant] < c["high"], (variant, c)
        assert c["trials"] == counts[variant]["unique_clicks"]
        assert c["value"] == pytest.approx(
            counts[variant]["first_orders"] / counts[variant]["unique_clicks"]
        )
        s = sharing["by"][variant]
        assert s["low"] < SHARING[variant] < s["high"], (variant, s)
    assert conversion["by"]["bigger"]["p_best"] > 0.95
    assert (
        conversion["by"]["bigger"]["expected_loss"] < conversion["by"]["control"]["expected_loss"]
    )
    assert conversion["verdict"] == "winner"
    # The money per advocate is there per currency, from the rollups (5,000 per order).
    revenue = metric(answer, "referred_revenue_per_advocate")
    assert revenue["currency"] == "EUR" and revenue["method"] == "bootstrap"
    for variant in ("control", "bigger"):
        assert revenue["by"][variant]["value"] == pytest.approx(
            counts[variant]["first_orders"] * 5000 / made[variant]
        )
    # Nobody was blocked: the guardrail has decided referrals and no blocks.
    fraud = metric(answer, "fraud_block_rate")
    assert all(v["value"] == 0 for v in fraud["variants"])
    assert sum(v["trials"] for v in fraud["variants"]) == sum(
        c["first_orders"] for c in counts.values()
    )
    # Seeded: the same data read the same.
    assert (
        await readout(client, tenant, program["id"], experiment["id"], minimum_effect=1) == answer
    )
