"""What the benchmarks in bench/ share: a throwaway database, the app under granian, and a
clean exit on Ctrl-C or SIGTERM.

- `fresh_database(label)`: an embedded PostgreSQL in `.referral/<label>-pg-<pid>` (or the
  server named by BENCH_DATABASE_URL) with a new, empty database; all of it removed after.
- `app_env(...)`: the environment the app runs with (fresh secrets, JSON logs).
- `app_server(...)`: granian serving the app in its own session, ready on `/readyz`;
  `stop_server(proc)` stops it with SIGTERM as a deployment would.
- `run_main(name, main)`: runs a benchmark's `main()` with the exit statuses all of them use
  (0 checks pass, 1 a check failed, 2 the benchmark cannot run, 130/143 interrupted).

The scripts run as `python bench/<name>.py`, so this directory is on sys.path and they
import this module as `harness`; importing it puts the repository root there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

APP = "referral.app:asgi"


class BenchError(Exception):
    """The benchmark cannot run; the message says why in one line."""


# --------------------------------------------------------------------------- database


def url_for_database(server_url: str, name: str) -> str:
    """`server_url` pointing at the database `name` instead."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


async def execute_sql(url: str, sql: str) -> None:
    """One statement on its own connection (CREATE/DROP DATABASE, ANALYZE)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Database:
    url: str
    postmaster_pid: int | None  # the embedded server's, None on BENCH_DATABASE_URL


@contextlib.contextmanager
def fresh_database(label: str) -> Iterator[Database]:
    """A fresh, empty database: on an embedded PostgreSQL in `.referral/<label>-pg-<pid>`,
    or on the server named by BENCH_DATABASE_URL. Everything it made is removed afterwards
    (the database dropped, the embedded server stopped and its directory deleted)."""
    from referral.lib.embedded import EmbeddedPostgres

    name = f"referral_bench_{secrets.token_hex(3)}"
    embedded = None
    data_dir = ROOT / ".referral" / f"{label}-pg-{os.getpid()}"
    server_url = os.environ.get("BENCH_DATABASE_URL")
    try:
        postmaster_pid = None
        if not server_url:
            embedded = EmbeddedPostgres(data_dir)
            embedded.start()
            server_url = embedded.uri("postgres")
            with contextlib.suppress(OSError, ValueError):
                postmaster_pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        asyncio.run(execute_sql(server_url, f'CREATE DATABASE "{name}"'))
        try:
            yield Database(url_for_database(server_url, name), postmaster_pid)
        finally:
            with contextlib.suppress(Exception):
                asyncio.run(
                    execute_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                )
    finally:
        if embedded is not None:
            embedded.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- server


def free_port() -> int:
    # Bound without SO_REUSEPORT: a port a stale granian still holds is never chosen.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_env(database_url: str, base_url: str, log_level: str, **extra: str) -> dict[str, str]:
    """This process's environment with fresh secrets, the database, the public base URL and
    JSON logs at `log_level`, without the demo pages; `extra` added last."""
    env = dict(
        os.environ,
        REFERRAL_HASHIDS_SALT=secrets.token_urlsafe(24),
        REFERRAL_CLICK_TOKEN_KEY=secrets.token_urlsafe(24),
        REFERRAL_IP_HASH_KEY=secrets.token_urlsafe(24),
        DATABASE_URL=database_url,
        PUBLIC_BASE_URL=base_url,
        LOG_FORMAT="json",
        LOG_LEVEL=log_level,
        **extra,
    )
    env.pop("REFERRAL_DEMO_PAGES", None)
    return env


def granian_command(
    port: int, app: str = APP, extra_args: Sequence[str] = (), workers: int = 1
) -> list[str]:
    """granian as `referral serve` runs it (1 worker unless told, uvloop), on
    127.0.0.1:`port`."""
    exe = Path(sys.executable).parent / "granian"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "granian"]
    return base + [
        "--interface", "asgi", "--factory", "--workers", str(workers), "--loop", "uvloop",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", *extra_args, app,
    ]  # fmt: skip


@contextlib.contextmanager
def background(
    command: Sequence[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen]:
    """`command` in its own session (a Ctrl-C reaches only the benchmark, which stops it),
    output into `log_path`; SIGTERM (then SIGKILL after 30 s) on the way out."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def app_server(
    env: dict[str, str],
    port: int,
    log_path: Path,
    app: str = APP,
    extra_args: Sequence[str] = (),
    workers: int = 1,
) -> Iterator[subprocess.Popen]:
    """granian serving `app` (output into `log_path`), once ready; stopped on the way out."""
    with background(granian_command(port, app, extra_args, workers), env, log_path) as proc:
        wait_until_ready(proc, port, log_path)
        yield proc


def wait_until_ready(proc: subprocess.Popen, port: int, log_path: Path) -> None:
    """Poll `/readyz` until it answers 200; BenchError if the server exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited at start:\n{log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError("the server did not become ready within 30 s")


def stop_server(proc: subprocess.Popen) -> int:
    """SIGTERM, as a deployment stops it (the app drains on lifespan shutdown); its exit
    status, with a warning when it is not 0."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError("the server did not stop within 60 s of SIGTERM") from exc
    if code != 0:
        print(f"warning: the server exited with status {code}", file=sys.stderr)
    return code


def logged_errors(log_path: Path) -> list[str]:
    """The lines of a JSON server log at level error, and tracebacks."""
    return [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if '"level":"error"' in line.replace(" ", "") or "Traceback" in line
    ]


def proc_files(name: str) -> Iterator[tuple[int, str]]:
    """(pid, text of `/proc/<pid>/<name>`) for every process that is still there."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / name).read_text()
        except OSError:
            continue
        yield int(entry.name), text


def note_load_average() -> None:
    load = os.getloadavg()[0]
    if load > 0.5:
        print(
            f"note: load average {load:.1f} before the start: other work on this machine "
            "shares the cores and shifts the figures"
        )


# --------------------------------------------------------------------------- exit


def run_main(name: str, main: Callable[[], int]) -> None:
    """Run `main()` and exit with its status; 2 on BenchError (its message printed), 130
    on Ctrl-C and 143 on SIGTERM, after the clean-up has run."""

    def interrupted(signum: int, frame: object) -> None:
        # The first Ctrl-C or SIGTERM unwinds (stopping the server and PostgreSQL, removing
        # the data directory); further ones wait for that clean-up instead of cutting it short.
        signal.signal(signal.SIGINT, cleaning)
        signal.signal(signal.SIGTERM, cleaning)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(143)

    def cleaning(signum: int, frame: object) -> None:
        print(f"{name}: cleaning up, one moment …", file=sys.stderr)

    signal.signal(signal.SIGINT, interrupted)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, interrupted)
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; server and database stopped", file=sys.stderr)
        sys.exit(130)
