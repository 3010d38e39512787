"""The `referral` command as a new user runs it: migrate, seed-demo, serve, a click that
survives shutdown, a stable banner, a clear error on a busy port or missing secrets.

Each run gets its own REFERRAL_HOME (tests/sandbox.py); every server and subprocess started
here is stopped at the end, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from referral.lib.embedded import EmbeddedPostgres
from tests.sandbox import Sandbox, banner_of, error_lines, sandbox_in


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with sandbox_in("test-cli") as box:
        yield box


async def clicks_for(home: Path, code: str) -> list[asyncpg.Record]:
    server = EmbeddedPostgres(home / "pgdata")
    server.start()
    try:
        conn = await asyncpg.connect(server.uri("referral"))
        try:
            return await conn.fetch(
                "SELECT code, channel, is_bot, ip_hash IS NOT NULL AS hashed FROM clicks "
                "WHERE code = $1",
                code,
            )
        finally:
            await conn.close()
    finally:
        server.stop()


async def test_first_ten_minutes(sandbox: Sandbox):
    migrated = sandbox.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert re.search(r"applied \d+ migration\(s\)", migrated.stdout), migrated.stdout

    seeded = sandbox.run("seed-demo")
    assert seeded.returncode == 0, seeded.stderr
    banner = banner_of(seeded.stdout)
    code = re.search(r"\(code ([A-Z0-9]+)\)", banner).group(1)
    link = f"{sandbox.base_url}/r/{code}"
    assert f"referral link     {link}" in banner
    assert "demo secret key   sk_test_" in banner

    server = sandbox.start("serve", "--port", str(sandbox.port))
    await asyncio.to_thread(server.wait_ready, sandbox.base_url, 180)
    served = banner_of(server.output)
    assert _lasting(served) == _lasting(banner), "serve prints the same banner as seed-demo"
    console_link = re.search(r"console +(\S+)", served).group(1)
    async with httpx.AsyncClient(timeout=10) as http:
        sign_in = await http.get(console_link)
        assert sign_in.status_code == 200 and "Demo Shop" in sign_in.text, sign_in.text
        response = await http.get(link)
        assert response.status_code == 302, response.text
        landing = response.headers["location"]
        assert landing.startswith(f"{sandbox.base_url}/demo/landing?"), landing
        assert f"ref={code}" in landing
        page = await http.get(landing)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert code in page.text
    assert "missing or not valid" not in page.text, "the landing page verifies the token"
    assert server.terminate() == 0, "".join(server.err)[-3000:]

    # The click was buffered, then written on shutdown.
    clicks = await clicks_for(sandbox.home, code)
    assert len(clicks) == 1, clicks
    assert clicks[0]["channel"] == "link" and clicks[0]["is_bot"] is False

    # A second start reuses the demo key and code: the banner is identical.
    again = sandbox.start("serve", "--port", str(sandbox.port))
    await asyncio.to_thread(again.wait_ready, sandbox.base_url, 180)
    assert _lasting(banner_of(again.output)) == _lasting(banner)
    assert again.terminate() == 0


def _lasting(banner: str) -> str:
    """The banner less its console sign-in link's token: each start prints a new one-time
    link; everything else (key, code, links) stays the same across starts."""
    return re.sub(r"&token=\S+", "&token=…", banner)


def test_busy_port_is_a_one_line_error(sandbox: Sandbox):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sandbox.run("serve", "--port", str(port), timeout=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0] and "--port" in lines[0]


def test_external_database_needs_explicit_secrets(sandbox: Sandbox, database_url: str):
    env = sandbox.env(DATABASE_URL=database_url)
    result = sandbox.run("serve", "--port", str(sandbox.port), env=env, timeout=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert "REFERRAL_HASHIDS_SALT" in line
    assert not (sandbox.home / "secrets.json").exists(), "no dev secrets made for a real database"
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{sandbox.base_url}/healthz", timeout=1)
        raise AssertionError("something is serving although serve refused to start")


def test_port_check_ignores_a_recently_stopped_server():
    """Connections left in TIME_WAIT by a stopped server do not make its port "busy"; a
    listener (granian binds with SO_REUSEPORT) does."""
    from referral.cli import CliError, _check_port_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with pytest.raises(CliError, match=str(port)):
        _check_port_free("127.0.0.1", port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    client.close()
    listener.close()
    _check_port_free("127.0.0.1", port)


async def test_banner_names_the_merchants_and_dev_env_repeats_them(sandbox: Sandbox):
    """A new user learns the merchant id from the banner (the payout commands need it);
    `dev env` hands the same values to the shell, with the server running."""
    server = sandbox.start("serve", "--port", str(sandbox.port))
    await asyncio.to_thread(server.wait_ready, sandbox.base_url, 180)
    banner = banner_of(server.output)
    test_id = re.search(r"^  test merchant     (mer_\w+)", banner, re.MULTILINE).group(1)
    live_id = re.search(r"^  live merchant     (mer_\w+)", banner, re.MULTILINE).group(1)
    key = re.search(r"demo secret key   (\S+)", banner).group(1)
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        me = await http.get("/v1/merchant", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["mode"]) == (test_id, "test")

    listed = await asyncio.to_thread(sandbox.run, "merchants", "list")
    assert listed.returncode == 0, listed.stderr
    assert test_id in listed.stdout and live_id in listed.stdout

    # Without PUBLIC_BASE_URL or PORT, `dev env` finds the running server's own base URL.
    shell = {k: v for k, v in sandbox.env().items() if k != "PUBLIC_BASE_URL"}
    env = await asyncio.to_thread(sandbox.run, "dev", "env", env=shell)
    assert env.returncode == 0, env.stderr
    values = dict(line.split("=", 1) for line in env.stdout.splitlines())
    assert values["MERCHANT"] == test_id and values["KEY"] == key
    assert values["BASE"] == sandbox.base_url
    assert f"(code {values['CODE']})" in banner and values["ADVOCATE"] in banner

    batch = await asyncio.to_thread(
        sandbox.run, "payouts", "create", "--merchant", test_id, "--currency", "EUR"
    )
    assert batch.returncode == 0, batch.stderr
    assert re.match(r"pay_\w+  1 payee\(s\)", batch.stdout), batch.stdout
    assert server.terminate() == 0
