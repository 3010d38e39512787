"""Real processes for the CLI and process tests: a REFERRAL_HOME of their own, `referral`
commands run to completion or started in the background, all stopped at the end.

Each sandbox lives under the project's `.referral/` (the embedded server changes the
permissions of its parent folders, so not under /tmp).
"""

from __future__ import annotations

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

import httpx
import psutil

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

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    def postgres_pid(self) -> int | None:
        """The sandbox's running PostgreSQL, None if none is running."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            return pid if psutil.Process(pid).name() == "postgres" else None
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

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

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A command started in the background, its output captured."""
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
        return proc

    def start(self, *args: str, env: dict[str, str] | None = None) -> Server:
        return Server(self.spawn(*args, env=env))

    def serve(self, *args: str, env: dict[str, str] | None = None) -> Server:
        """`referral serve` on the sandbox's port, ready."""
        server = self.start("serve", "--port", str(self.port), *args, env=env)
        # A first start makes the database (initdb), migrates and seeds: slow on a busy machine.
        server.wait_ready(self.base_url, timeout=180)
        return server


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


@contextlib.contextmanager
def sandbox_in(name: str) -> Iterator[Sandbox]:
    """A sandbox under `.referral/<name>-<random>`; its processes, its PostgreSQL and its
    folder are gone afterwards, also when the test failed."""
    box = Sandbox(home=ROOT / ".referral" / f"{name}-{secrets.token_hex(4)}", port=free_port())
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
            EmbeddedPostgres(box.pgdata).stop()  # nobody holds it any more: it stops
            shutil.rmtree(box.home, ignore_errors=True)


def banner_of(text: str) -> str:
    match = BANNER.search(text)
    assert match, f"no banner in:\n{text[-3000:]}"
    return match.group(0)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("referral:")]
