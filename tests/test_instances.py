"""Two app instances on one database, as a deployment behind a load balancer runs them.

Both start at once on an empty database (each migrates on start), then take clicks, orders
and duplicate orders alternately, while each runs its own click writer, reward release
worker, rollup worker and webhook sender. Whatever instance takes a fact, it is stored once:
every click answered is one row, every order one order with one reward per side, every
reward approved once, every event delivered once, and neither log has an error (a deadlock
between the instances' workers would be one).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from bench.harness import app_env, background, free_port, granian_command, wait_until_ready
from referral.lib.db import migration_files
from tests.factories import NO_VELOCITY, friend_order, make_tenant, program_body
from tests.webhooks.receiver import Receiver

ADVOCATES = 6
CLICKS = 300
ORDERS = 40
DUPLICATED = 10  # orders sent to both instances at the same moment
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.fixture
async def empty_database(admin_url: str):
    name = f"referral_instances_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 60) -> None:
    """Poll `check` until it holds (the instances' workers run on their own clocks)."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        await asyncio.sleep(0.1)


async def test_two_instances_on_one_database_store_every_fact_once(
    empty_database: str, tmp_path: Path
):
    ports = [free_port(), free_port()]
    env = app_env(
        empty_database,
        f"http://127.0.0.1:{ports[0]}",
        "warning",
        CLICK_FLUSH_INTERVAL_MS="20",
        RELEASE_INTERVAL_SECONDS="0.2",
        ANALYTICS_INTERVAL_SECONDS="0.2",
        WEBHOOK_INTERVAL_SECONDS="0.05",
    )
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with Receiver() as receiver, contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(background(granian_command(port), env, log))
            for port, log in zip(ports, logs, strict=True)
        ]
        await asyncio.gather(
            *(
                asyncio.to_thread(wait_until_ready, proc, port, log)
                for proc, port, log in zip(procs, ports, logs, strict=True)
            )
        )
        db = await asyncpg.connect(empty_database)
        try:
            # Both migrated at start, at once: each file applied exactly once.
            applied = Counter(
                r["version"] for r in await db.fetch("SELECT version FROM schema_migrations")
            )
            assert applied == Counter(version for version, _, _ in migration_files())

            tenant = await make_tenant(db, "Two instances")
            auth = tenant.auth
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            async with (
                httpx.AsyncClient(base_url=bases[0], headers=auth, timeout=30) as a,
                httpx.AsyncClient(base_url=bases[1], headers=auth, timeout=30) as b,
            ):
                instances = (a, b)
                endpoint = await a.post("/v1/webhook-endpoints", json={"url": receiver.url()})
                assert endpoint.status_code == 201, endpoint.text
                program = await b.post("/v1/programs", json=program_body(fraud_policy=NO_VELOCITY))
                assert program.status_code == 201, program.text
                codes = []
                for i in range(ADVOCATES):
                    made = await instances[i % 2].post(
                        "/v1/advocates",
                        json={"program_id": program.json()["id"], "customer_id": f"adv-{i}"},
                    )
                    assert made.status_code == 201, made.text
                    codes.append(made.json()["code"])

                async def click(i: int) -> int:
                    answer = await instances[i % 2].get(
                        f"/r/{codes[i % ADVOCATES]}",
                        headers={"User-Agent": BROWSER, "Accept": "text/html"},
                    )
                    return answer.status_code

                async def order(i: int, http: httpx.AsyncClient) -> int:
                    answer = await http.post(
                        "/v1/orders", json=friend_order(codes[i % ADVOCATES], i)
                    )
                    return answer.status_code

                clicked = await asyncio.gather(*(click(i) for i in range(CLICKS)))
                ordered = await asyncio.gather(
                    *(order(i, instances[i % 2]) for i in range(ORDERS)),
                    *(
                        order(i, http)
                        for i in range(ORDERS, ORDERS + DUPLICATED)
                        for http in instances
                    ),
                )

            assert clicked.count(302) == CLICKS, Counter(clicked)
            assert Counter(ordered[:ORDERS]) == {201: ORDERS}
            # A duplicate sent to both at once: one stored it (201), the other found it (200).
            for n in range(DUPLICATED):
                pair = ordered[ORDERS + 2 * n : ORDERS + 2 * n + 2]
                assert sorted(pair) == [200, 201], (n, pair)

            async def clicks_stored() -> bool:
                return await db.fetchval("SELECT count(*) FROM clicks") >= CLICKS

            await until(clicks_stored, f"{CLICKS} clicks written by the two click writers")
            assert await db.fetchval("SELECT count(*) FROM clicks") == CLICKS

            orders = ORDERS + DUPLICATED
            assert await db.fetchval("SELECT count(*) FROM orders") == orders
            sides = await db.fetch(
                "SELECT side, count(*) AS n, count(DISTINCT referral_id) AS referrals"
                " FROM rewards GROUP BY side ORDER BY side"
            )
            assert [tuple(r) for r in sides] == [
                ("advocate", orders, orders),
                ("friend", orders, orders),
            ]

            # Every pending reward comes due at once: both release workers race for them.
            pending = await db.fetchval("SELECT count(*) FROM rewards WHERE status = 'pending'")
            assert pending > 0
            await db.execute(
                "UPDATE rewards SET hold_until = now() - interval '1 second'"
                " WHERE status = 'pending'"
            )

            async def released() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM rewards WHERE status = 'pending'"
                )

            await until(released, "every due reward approved")
            approvals = await db.fetch(
                "SELECT reward_id, count(*) AS n FROM reward_transitions"
                " WHERE to_status = 'approved' GROUP BY reward_id"
            )
            assert len(approvals) == pending
            assert {r["n"] for r in approvals} == {1}, "a reward approved twice"
            assert (
                await db.fetchval("SELECT count(*) FROM events WHERE type = 'reward.approved'")
                == pending
            )

            async def delivered() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'"
                )

            await until(delivered, "every event delivered by the two senders")
            events = await db.fetchval("SELECT count(*) FROM events")
            deliveries = await db.fetchval("SELECT count(*) FROM webhook_deliveries")
            assert deliveries == events
            sent = Counter(r.headers["webhook-id"] for r in receiver.received())
            assert len(sent) == events
            assert max(sent.values()) == 1, "an event delivered twice"
        finally:
            await db.close()

    for log in logs:
        text = log.read_text(errors="replace")
        assert "deadlock" not in text.lower(), text[-3000:]
        assert '"level":"error"' not in text.replace(" ", ""), text[-3000:]
        assert "Traceback" not in text, text[-3000:]
