"""The app behind a real pgbouncer in transaction pooling mode (Debian's package, 1.18).

pgbouncer hands each transaction whichever server connection is free: a statement
prepared on one is missing on the next, a session lock or a LISTEN stays behind on a
connection others then get. With `DATABASE_POOLING=transaction` the app prepares nothing
it keeps, streams through SQL cursors of the transaction, and takes what needs a session
of its own (migrations, the code cache's listener, the retention lock, backtests) to
`DATABASE_DIRECT_URL`. Twenty app connections share three server connections here, so
every request's transactions land on servers other requests used just before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from bench.harness import app_env, app_server, free_port, logged_errors
from referral.settings import SettingsError, from_env
from tests import debian
from tests.factories import NO_VELOCITY, friend_order, make_tenant, program_body

PGBOUNCER = Path("/usr/sbin/pgbouncer")
SERVER_CONNECTIONS = 3
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.fixture(scope="session")
def pgbouncer_program() -> str:
    return debian.ensure(PGBOUNCER, "pgbouncer")


@contextlib.contextmanager
def pgbouncer(program: str, database_url: str) -> Iterator[str]:
    """pgbouncer in transaction mode in front of `database_url`'s server: the URL through it."""
    parts = urlsplit(database_url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    user = parts.username or "postgres"
    port = free_port()
    # Readable by the unprivileged user pgbouncer switches to when started as root.
    folder = Path(tempfile.mkdtemp(prefix="referral-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={parts.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {SERVER_CONNECTIONS}\n"
        "max_client_conn = 200\nlogfile =\npidfile =\n"
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    command = [program, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # it refuses to run as root: as the owner of the server's socket
        # folder (the embedded server's own user), who may open the socket, else nobody
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else ""
        command[1:1] = ["-u", owner if owner and owner != "root" else "nobody"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.2),
            ):
                break
            assert time.monotonic() < deadline, "pgbouncer did not listen within 10 s"
            time.sleep(0.05)
        through = parts._replace(netloc=f"{user}@127.0.0.1:{port}", query="")
        yield urlunsplit(through)
    finally:
        proc.terminate()
        proc.wait(10)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


async def until(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        await asyncio.sleep(0.1)


async def test_the_app_behind_pgbouncer_in_transaction_mode(
    pgbouncer_program: str, database_url: str, tmp_path: Path
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with pgbouncer(pgbouncer_program, database_url) as pooled_url:
        env = app_env(
            pooled_url,
            base,
            "warning",
            DATABASE_POOLING="transaction",
            DATABASE_DIRECT_URL=database_url,
            DB_POOL_MAX="20",
            CLICK_FLUSH_INTERVAL_MS="20",
            RELEASE_INTERVAL_SECONDS="0.2",
            WEBHOOK_INTERVAL_SECONDS="0.05",
        )
        log = tmp_path / "server.log"
        db = await asyncpg.connect(database_url)
        try:
            tenant = await make_tenant(db, "Behind pgbouncer")
            with app_server(env, port, log):
                async with httpx.AsyncClient(
                    base_url=base, headers=tenant.auth, timeout=60
                ) as http:
                    await through_the_pooler(http, db)
        finally:
            await db.close()
    assert not logged_errors(log), "\n".join(logged_errors(log)[:5])


async def through_the_pooler(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    """A shop's day, its requests at once wherever they can be: every answer right."""
    program = await http.post("/v1/programs", json=program_body(fraud_policy=NO_VELOCITY))
    assert program.status_code == 201, program.text
    program_id = program.json()["id"]
    made = await asyncio.gather(
        *(
            http.post("/v1/advocates", json={"program_id": program_id, "customer_id": f"a-{i}"})
            for i in range(5)
        )
    )
    assert {m.status_code for m in made} == {201}, [m.text for m in made]
    codes = [m.json()["code"] for m in made]

    clicks = await asyncio.gather(
        *(
            http.get(f"/r/{codes[i % 5]}", headers={"User-Agent": BROWSER, "Accept": "text/html"})
            for i in range(200)
        )
    )
    assert Counter(c.status_code for c in clicks) == {302: 200}
    orders = await asyncio.gather(
        *(http.post("/v1/orders", json=friend_order(codes[i % 5], i)) for i in range(40)),
        *(http.post("/v1/orders", json=friend_order(codes[0], 7)) for _ in range(5)),
    )
    assert Counter(o.status_code for o in orders[:40]) == {201: 40}, [o.text for o in orders]
    assert {o.status_code for o in orders[40:]} == {200}  # the same order again: found

    async def clicks_written() -> bool:
        return await db.fetchval("SELECT count(*) FROM clicks") >= 200

    await until(clicks_written, "the click writer's COPY through the pooler")
    assert await db.fetchval("SELECT count(*) FROM clicks") == 200
    assert await db.fetchval("SELECT count(*) FROM rewards") == 80

    # The release worker, then a payout batch and its CSV (COPY) through the pooler.
    await db.execute(
        "UPDATE rewards SET hold_until = now() - interval '1 s' WHERE status = 'pending'"
    )

    async def released() -> bool:
        return not await db.fetchval("SELECT count(*) FROM rewards WHERE status = 'pending'")

    await until(released, "every due reward approved")
    batch = await http.post("/v1/payout-batches", json={"currency": "EUR"})
    assert batch.status_code == 201, batch.text
    assert batch.json()["reward_count"] == 40
    csv = await http.get(f"/v1/payout-batches/{batch.json()['id']}/rewards.csv")
    assert csv.status_code == 200, csv.text
    assert len(csv.text.strip().splitlines()) == 1 + 40

    # A backtest (its own process, on the direct URL) beside a customer's data export
    # (an SQL cursor through the pooler) and reports, at once.
    backtest, export, report = await asyncio.gather(
        http.post(
            f"/v1/programs/{program_id}/fraud-policy/backtest",
            json={
                "policy": {"same_ip": {"action": "block"}},
                "created_from": "2020-01-01T00:00:00Z",
                "created_before": "2100-01-01T00:00:00Z",
            },
        ),
        http.get("/v1/customers/a-0/export"),
        http.get("/v1/analytics/funnel", params={"program_id": program_id}),
    )
    assert backtest.status_code == 200, backtest.text
    assert backtest.json()["referrals"] == 40
    assert export.status_code == 200, export.text
    assert len(export.json()["clicks"]) == 40
    assert report.status_code == 200, report.text
    print(str(export.json())[:1500])
    print(str(report.json())[:1500])


class TestSettings:
    BASE = {
        "DATABASE_URL": "postgresql://referral@pgbouncer.internal:6432/referral",
        "REFERRAL_HASHIDS_SALT": "s" * 16,
        "REFERRAL_CLICK_TOKEN_KEY": "c" * 16,
        "REFERRAL_IP_HASH_KEY": "i" * 16,
    }

    def test_direct_url_defaults_to_the_database_url(self):
        settings = from_env(self.BASE)
        assert settings.database_pooling == "session"
        assert settings.direct_database_url == self.BASE["DATABASE_URL"]

    def test_transaction_pooling_needs_a_direct_url(self):
        with pytest.raises(SettingsError, match="DATABASE_DIRECT_URL"):
            from_env({**self.BASE, "DATABASE_POOLING": "transaction"})
        direct = "postgresql://referral@db.internal:5432/referral"
        settings = from_env(
            {**self.BASE, "DATABASE_POOLING": "transaction", "DATABASE_DIRECT_URL": direct}
        )
        assert settings.direct_database_url == direct
        assert settings.database_url == self.BASE["DATABASE_URL"]

    def test_an_unknown_pooling_mode_is_refused(self):
        with pytest.raises(SettingsError, match="session or transaction"):
            from_env({**self.BASE, "DATABASE_POOLING": "statement"})
