"""The `referral` command as a new user runs it: migrate, seed-demo, serve, a click that
survives shutdown, a stable banner, a clear error on a busy port or missing secrets.

Each run gets its own REFERRAL_HOME under the project's `.referral/` (the embedded server
changes the permissions of its parent folders, so not under /tmp); every server and
subprocess started here is stopped at the end, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from referral.lib.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("referral")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "referral"]
BANNER = re.compile(r"^  referral is running on .*?/v1/advocates$", re.MULTILINE | re.DOTALL)
# Variables a developer's shell may carry that would change what the CLI does.
_CLEARED = ("DATABASE_URL", "PUBLIC_BASE_URL", "HOST", "PORT", "WORKERS", "LOG_FORMAT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Sandbox:
    home: Path
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _CLEARED and not k.startswith("REFERRAL_")
        }
        env.update(
            REFERRAL_HOME=str(self.home),
            PUBLIC_BASE_URL=self.base_url,
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
        return subprocess.run(
            [*CLI, *args],
            env=env or self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> Server:
        proc = subprocess.Popen(
            [*CLI, *args],
            env=env or self.env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: workers can be stopped with it
        )
        self.processes.append(proc)
        return Server(proc)


class Server:
    """A running `referral serve`, its output collected in the background."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump, args=(proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def output(self) -> str:
        return "".join(self.out)

    def wait_ready(self, base_url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"serve exited with {self.proc.returncode}:\n{''.join(self.err)[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout} s:\n{''.join(self.err)[-3000:]}")

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(home=ROOT / ".referral" / f"test-cli-{secrets.token_hex(4)}", port=free_port())
    try:
        yield box
    finally:
        for proc in box.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        if box.home.exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                box.run("dev", "reset", timeout=60)
            EmbeddedPostgres(box.home / "pgdata").stop()
            shutil.rmtree(box.home, ignore_errors=True)


def banner_of(text: str) -> str:
    match = BANNER.search(text)
    assert match, f"no banner in:\n{text[-3000:]}"
    return match.group(0)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("referral:")]


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
    await asyncio.to_thread(server.wait_ready, sandbox.base_url, 60)
    assert banner_of(server.output) == banner, "serve prints the same banner as seed-demo"
    async with httpx.AsyncClient(timeout=10) as http:
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
    await asyncio.to_thread(again.wait_ready, sandbox.base_url, 60)
    assert banner_of(again.output) == banner
    assert again.terminate() == 0


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
