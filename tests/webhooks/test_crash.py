"""A real app process is killed with SIGKILL while it delivers 10,000 events; after a
restart every event reaches the receiver at least once, and a duplicate carries the same
webhook-id (and body) as the first copy."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from standardwebhooks import Webhook

from bench.harness import BenchError, free_port, granian_command, wait_until_ready
from referral.events import service as events
from referral.lib.ids import PublicIds
from tests.conftest import ROOT
from tests.webhooks.receiver import Receiver

EVENTS = 10_000
SALT = "crash-test-salt-0123456789"


def _env(database_url: str, port: int) -> dict[str, str]:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REFERRAL_HASHIDS_SALT=SALT,
        REFERRAL_CLICK_TOKEN_KEY="crash-test-click-key-0123",
        REFERRAL_IP_HASH_KEY="crash-test-ip-key-0123456",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        LOG_FORMAT="json",
        LOG_LEVEL="warning",
        RELEASE_INTERVAL_SECONDS="0",
        ANALYTICS_INTERVAL_SECONDS="0",
        WEBHOOK_INTERVAL_SECONDS="0.05",
        WEBHOOK_TIMEOUT_SECONDS="2",
        WEBHOOK_LEASE_SECONDS="3",  # what a killed sender had taken is sent again after 3 s
    )
    env.pop("REFERRAL_DEMO_PAGES", None)
    return env


def _start(database_url: str, port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            granian_command(port),
            env=_env(database_url, port),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(proc, port, log)
    except BenchError as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(str(exc))
    return proc


async def test_kill_9_while_delivering_loses_nothing(database_url, pool, tenant, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with Receiver() as receiver:
        server = _start(database_url, port, log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                created = await http.post(
                    "/v1/webhook-endpoints",
                    json={"url": receiver.url()},
                    headers={"Authorization": f"Bearer {tenant.secret_key}"},
                )
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            for batch in range(EVENTS // 1000):
                async with pool.acquire() as conn:
                    await events.emit_many(
                        conn,
                        merchant_id=tenant.merchant_id,
                        type="order.cancelled",
                        payloads=[{"order_id": f"o-{batch}-{n}"} for n in range(1000)],
                    )
            await asyncio.to_thread(receiver.wait_for, EVENTS // 5, 120)  # mid-flight ...
        finally:
            os.killpg(server.pid, signal.SIGKILL)  # ... kill -9: no shutdown, no flush
            server.wait(timeout=10)
        at_kill = len(receiver.received())
        assert at_kill < EVENTS, "the kill came too late to test anything"

        server = _start(database_url, port, log)
        try:
            want = {
                PublicIds(SALT).encode("event", event_id)
                for (event_id,) in await pool.fetch(
                    "SELECT id FROM events WHERE merchant_id = $1", tenant.merchant_id
                )
            }
            assert len(want) == EVENTS
            deadline = time.monotonic() + 180
            seen: set[str] = set()
            while time.monotonic() < deadline and seen != want:
                seen = {g.headers["webhook-id"] for g in receiver.received()}
                await asyncio.sleep(0.2)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        got = receiver.received()
        assert seen == want, f"{len(want - seen)} events never arrived (kill at {at_kill})"
        verifier = Webhook(secret)
        first_body: dict[str, bytes] = {}
        for g in got:
            body = verifier.verify(g.body, g.headers)
            assert body["id"] == g.headers["webhook-id"]
            assert first_body.setdefault(g.headers["webhook-id"], g.body) == g.body
        print(f"kill -9 after {at_kill} requests; {len(got)} received, {len(got) - EVENTS} dup")
        assert msgspec.json.decode(got[-1].body)["type"] == "order.cancelled"
