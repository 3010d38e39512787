"""`/metrics` as an operator's Prometheus scrapes it: requests counted per route template and
status (never a code or a path in a label), the workers' lags read from the database, and
with several server workers every worker's requests summed in whichever one answers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from referral.rewards.service import release_due
from tests.factories import create_advocate, create_program, referred_order


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _requests(samples, route: str, status: str, method: str = "GET") -> float:
    labels = frozenset({"method": method, "route": route, "status": status}.items())
    return samples.get(("referral_http_request_duration_seconds_count", labels), 0.0)


def _other_methods(samples) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "referral_http_request_duration_seconds_count"
        and dict(labels)["method"] == "other"
    )


async def test_requests_are_counted_by_route_template_and_status(client, tenant):
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"])
    before = _samples((await client.get("/metrics")).text)
    for _ in range(3):
        answer = await client.get(f"/r/{advocate['code']}", follow_redirects=False)
        assert answer.status_code == 302
    assert (await client.get("/r/NOSUCHCODE", follow_redirects=False)).status_code == 404
    assert (await client.get("/no/such/page")).status_code == 404
    for made_up in ("BREW", "XYZZY"):  # methods a client invents share one label
        await client.request(made_up, "/no/such/page")
    page = await client.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    after = _samples(page.text)
    redirect = "/r/{code}"
    assert _requests(after, redirect, "302") - _requests(before, redirect, "302") == 3
    assert _requests(after, redirect, "404") - _requests(before, redirect, "404") == 1
    assert _requests(after, "unmatched", "404") - _requests(before, "unmatched", "404") == 1
    assert advocate["code"] not in page.text and "NOSUCHCODE" not in page.text
    assert "/no/such/page" not in page.text
    assert "BREW" not in page.text and "XYZZY" not in page.text
    assert _other_methods(after) - _other_methods(before) == 2
    pool = {dict(labels)["state"]: v for (name, labels), v in after.items()
            if name == "referral_db_pool_connections"}  # fmt: skip
    assert set(pool) == {"in_use", "idle", "waiting"} and pool["in_use"] + pool["idle"] >= 1
    flushes = after.get(("referral_click_flush_duration_seconds_count", frozenset()), 0)
    assert flushes >= 0 and ("referral_click_buffer_clicks", frozenset()) in after


async def test_the_release_lag_is_how_long_a_due_reward_has_waited(client, tenant, db, pool, ids):
    program = await create_program(client, tenant, hold_days=0)
    advocate = await create_advocate(client, tenant, program["id"])
    await referred_order(client, tenant, advocate["code"])
    waited = datetime.now(UTC) - timedelta(minutes=10)
    await db.execute(
        "UPDATE rewards SET hold_until = $2 WHERE merchant_id = $1 AND status = 'pending'",
        tenant.merchant_id,
        waited,
    )
    lag = _samples((await client.get("/metrics")).text)[
        ("referral_release_lag_seconds", frozenset())
    ]
    assert 600 <= lag < 700
    assert await release_due(pool, ids=ids) > 0
    after = _samples((await client.get("/metrics")).text)
    assert after[("referral_release_lag_seconds", frozenset())] == 0
    assert after[("referral_outbox_lag_seconds", frozenset())] == 0


def test_two_workers_are_summed_whichever_answers(database_url):
    """Through `referral serve --workers 2`, as an operator runs it: the workers share their
    figures in a directory serve makes for them (and removes when it stops)."""
    import glob

    from tests.sandbox import sandbox_in

    with sandbox_in("metrics") as box:
        secrets = {k: "x" * 32 for k in ("HASHIDS_SALT", "CLICK_TOKEN_KEY", "IP_HASH_KEY")}
        env = box.env(DATABASE_URL=database_url, **{f"REFERRAL_{k}": v for k, v in secrets.items()})
        before = set(glob.glob("/tmp/referral-metrics-*"))
        server = box.serve("--workers", "2", env=env)
        shared = set(glob.glob("/tmp/referral-metrics-*")) - before
        sent = 60
        with httpx.Client(base_url=box.base_url) as http:
            for _ in range(sent):
                # A new connection each time, so both workers answer some.
                answer = httpx.get(f"{box.base_url}/healthz", headers={"connection": "close"})
                assert answer.status_code == 200
            counted = [
                _requests(_samples(http.get("/metrics").text), "/healthz", "200") for _ in range(4)
            ]
        (folder,) = shared
        answered = {
            re.search(r"_(\d+)\.db$", p).group(1) for p in glob.glob(f"{folder}/histogram_*")
        }
        assert server.terminate() == 0, "".join(server.err)[-3000:]
    assert len(answered) == 2, "both workers answered requests"
    assert counted == [sent] * 4, "every scrape, whichever worker answers it, sums both"
    assert not glob.glob(f"{folder}/*"), "the shared folder goes with the server"
