"""Processes as a user runs them: `referral` commands beside a running `make run`, and a
server that outlives a crashed worker.

`make run` and every `referral …` command in the same checkout share one embedded
PostgreSQL. A command run while the server is up must leave it up; one run while it is down
must leave nothing running; the server stops when the last process holding it ends. A
worker killed with SIGKILL is respawned, and every order acknowledged before is still there.
Everything runs as real processes in a sandbox of its own (tests/sandbox.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psutil
import pytest

from referral.lib.embedded import EmbeddedPostgres
from tests.sandbox import Sandbox, Server, banner_of, error_lines, sandbox_in


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with sandbox_in("test-process") as box:
        yield box


def demo_key(server: Server) -> str:
    return re.search(r"demo secret key   (\S+)", banner_of(server.output)).group(1)


def demo_advocate(server: Server) -> str:
    return re.search(r"demo advocate     (\S+)", banner_of(server.output)).group(1)


def answers(box: Sandbox, server: Server) -> None:
    """The API works: ready, and an authenticated read of the demo advocate succeeds."""
    headers = {"Authorization": f"Bearer {demo_key(server)}"}
    with httpx.Client(base_url=box.base_url, headers=headers, timeout=10) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        advocate = http.get(f"/v1/advocates/{demo_advocate(server)}")
        assert advocate.status_code == 200, advocate.text


async def run_all(box: Sandbox, *commands: tuple[str, ...]) -> list:
    """Run the commands at the same time; each must succeed."""
    # Generous: on a busy machine the slowest of three waits for the others' migrations.
    results = await asyncio.gather(
        *(asyncio.to_thread(box.run, *cmd, timeout=180) for cmd in commands)
    )
    for cmd, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (cmd, result.stdout, result.stderr[-3000:])
    return results


class TestCommandsBesideTheServer:
    def test_commands_leave_the_running_server_running(self, sandbox: Sandbox):
        server = sandbox.serve()
        postgres = sandbox.postgres_pid()
        assert postgres is not None
        for command in (("migrate",), ("rewards", "release-due"), ("seed-demo",)):
            result = sandbox.run(*command)
            assert result.returncode == 0, (command, result.stderr[-3000:])
            answers(sandbox, server)
        assert sandbox.postgres_pid() == postgres, "the same server, never restarted"

        assert server.terminate() == 0, "".join(server.err)[-3000:]
        assert sandbox.postgres_pid() is None, "serve stops the database when it is the last"

    async def test_concurrent_commands_beside_the_server(self, sandbox: Sandbox):
        server = await asyncio.to_thread(sandbox.serve)
        await run_all(sandbox, ("migrate",), ("rewards", "release-due"), ("migrate",))
        await asyncio.to_thread(answers, sandbox, server)

    def test_reset_while_serving_is_refused(self, sandbox: Sandbox):
        server = sandbox.serve()
        result = sandbox.run("dev", "reset")
        assert result.returncode == 2, (result.stdout, result.stderr)
        (line,) = error_lines(result.stderr)
        assert str(server.proc.pid) in line and "make run" in line, line
        assert (sandbox.pgdata / "PG_VERSION").exists(), "nothing was removed"
        answers(sandbox, server)

        assert server.terminate() == 0
        reset = sandbox.run("dev", "reset")
        assert reset.returncode == 0, reset.stderr
        assert not sandbox.pgdata.exists()

    def test_a_command_started_before_the_server(self, sandbox: Sandbox):
        """A command that started the database and ends while the server runs must not
        take the database away from the server (this test process holds it as the
        command's process would)."""
        command = EmbeddedPostgres(sandbox.pgdata)
        assert command.start() is True, "nothing was running: the command starts it"
        try:
            server = sandbox.serve()
        finally:
            command.stop()
        answers(sandbox, server)
        assert server.terminate() == 0
        assert sandbox.postgres_pid() is None


class TestCommandsWithNothingRunning:
    def test_a_command_leaves_nothing_running(self, sandbox: Sandbox):
        for command in (("migrate",), ("rewards", "release-due")):
            result = sandbox.run(*command)
            assert result.returncode == 0, (command, result.stderr[-3000:])
            assert sandbox.postgres_pid() is None, command

    def test_a_first_command_in_a_fresh_checkout(self, sandbox: Sandbox):
        """Any command works on a database nothing has migrated yet, and its stdout is its
        answer alone (logs go to stderr), so the shell can capture it."""
        released = sandbox.run("rewards", "release-due")
        assert released.returncode == 0, released.stderr[-3000:]
        assert released.stdout == "released 0 reward(s)\n"

        env = sandbox.run("dev", "env")
        assert env.returncode == 0, env.stderr[-3000:]
        names = [line.split("=", 1)[0] for line in env.stdout.splitlines()]
        assert names == ["BASE", "KEY", "PK", "MERCHANT", "PROGRAM", "ADVOCATE", "CODE"]
        assert "migration_applied" in env.stderr or "referral_settled" in env.stderr
        assert sandbox.postgres_pid() is None

    async def test_concurrent_commands_share_and_stop_the_database(self, sandbox: Sandbox):
        await run_all(sandbox, ("migrate",), ("migrate",), ("migrate",))
        assert sandbox.postgres_pid() is None

    def test_a_server_left_by_a_killed_process_is_reused_then_stopped(self, sandbox: Sandbox):
        server = sandbox.serve()
        os.killpg(server.proc.pid, signal.SIGKILL)  # serve and its worker, not the database
        server.proc.wait(timeout=10)
        left = sandbox.postgres_pid()
        assert left is not None, "a killed serve cannot stop the database"

        result = sandbox.run("rewards", "release-due")
        assert result.returncode == 0, result.stderr[-3000:]
        assert sandbox.postgres_pid() is None, "nobody holds it any more: the command stops it"


ORDERED_AT = datetime.now(UTC).replace(microsecond=0).isoformat()


def post_order(http: httpx.Client, order_id: str) -> httpx.Response:
    return http.post(
        "/v1/orders",
        json={
            "order_id": order_id,
            "customer_id": f"customer-{order_id}",
            "subtotal": 5000,
            "total": 5000,
            "currency": "EUR",
            "occurred_at": ORDERED_AT,
        },
    )


def worker_of(server: Server) -> psutil.Process:
    """Granian's worker: the serve process's child that runs Python."""
    children = [
        child
        for child in psutil.Process(server.proc.pid).children()
        if "python" in child.name() or "referral" in " ".join(child.cmdline())
    ]
    workers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
    assert len(workers) == 1, [(c.pid, c.cmdline()) for c in children]
    return workers[0]


def test_a_killed_worker_is_respawned_and_keeps_every_order(sandbox: Sandbox):
    server = sandbox.serve()
    headers = {"Authorization": f"Bearer {demo_key(server)}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as http:
        acknowledged = [f"before-crash-{i}" for i in range(5)]
        for order_id in acknowledged:
            created = post_order(http, order_id)
            assert created.status_code == 201, created.text

        worker = worker_of(server)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

        deadline = time.monotonic() + 30  # about 3 s on an idle machine
        while True:
            assert server.proc.poll() is None, "serve exited:\n" + "".join(server.err)[-3000:]
            try:
                if http.get("/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not healthy within 30 s of the crash"
            time.sleep(0.1)
        assert worker_of(server).pid != worker.pid

        for order_id in acknowledged:  # a replay answers 200 with the order already stored
            again = post_order(http, order_id)
            assert again.status_code == 200, (order_id, again.status_code, again.text)
        assert post_order(http, "after-crash").status_code == 201
    assert sandbox.postgres_pid() is not None, "the database stayed up"
    assert server.terminate() == 0
