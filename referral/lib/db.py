"""Connection pool and migrations.

Migrations are the numbered files in `sql/`, applied in order inside one transaction each,
recorded with a SHA-256 checksum. An applied file that was edited later is refused: the fix
is a new migration (or, for local data, `make reset`). An advisory lock makes several
instances starting at once apply them exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec
import structlog

log = structlog.get_logger("referral.db")

SQL_DIR = Path(__file__).resolve().parent.parent.parent / "sql"
_MIGRATION_LOCK = 0x7265_6665_7272  # "referr": any stable bigint shared by all instances


S = TypeVar("S")


class MigrationError(Exception):
    pass


def one(struct: type[S], row: Mapping[str, Any] | None) -> S | None:
    """A row as the repo's struct (its fields named like the query's columns), or None."""
    return None if row is None else struct(**row)


def many(struct: type[S], rows: Iterable[Mapping[str, Any]]) -> list[S]:
    """Rows as the repo's struct: repos hand services typed values, never records."""
    return [struct(**row) for row in rows]


async def _noop_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's `RESET ALL; UNLISTEN *` round trip on every release.

    That round trip costs a third of the redirect's throughput. It is safe because no code
    in this service sets session state: no SET, LISTEN or session advisory locks on pooled
    connections (transactions use `SET LOCAL` and `pg_advisory_xact_lock`).
    """


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_json_encode, decoder=_json_decode, schema="pg_catalog", format="binary"
    )


def _json_encode(value: object) -> bytes:
    return b"\x01" + msgspec.json.encode(value)


def _json_decode(data: bytes) -> object:
    return msgspec.json.decode(data[1:])


_SERVER_SETTINGS = {"application_name": "referral", "timezone": "UTC"}


def _statement_cache(pooling: str) -> int:
    """asyncpg's prepared-statement cache, per connection: a transaction pooler hands each
    transaction another server connection, where a statement prepared on the last one does
    not exist (pgbouncer before 1.21). Without the cache every query is parsed anew in the
    same round trip as it runs (an unnamed statement, flushed, never synced apart)."""
    return 0 if pooling == "transaction" else 100


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, pooling: str = "session"
) -> asyncpg.Pool:
    """`pooling`: "transaction" behind pgbouncer's transaction pooling (settings.py)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_noop_reset,
        server_settings=_SERVER_SETTINGS,
        statement_cache_size=_statement_cache(pooling),
    )
    assert pool is not None
    return pool


async def connect(dsn: str, *, pooling: str = "session") -> asyncpg.Connection:
    """One connection, set up as the pool's are."""
    conn = await asyncpg.connect(
        dsn, server_settings=_SERVER_SETTINGS, statement_cache_size=_statement_cache(pooling)
    )
    await _init_connection(conn)
    return conn


async def stream(
    conn: asyncpg.Connection, query: str, *args: Any, chunk: int = 1000
) -> AsyncIterator[list[asyncpg.Record]]:
    """The rows of `query` in chunks, through a cursor of the caller's transaction: never all
    in memory. An SQL cursor (DECLARE, FETCH), not asyncpg's, which would prepare a named
    statement that outlives the transaction on its server connection behind a pooler. The
    cursor is named after the query, so its statements are the same text each time (one
    entry in the statement cache); one stream of a query at a time per transaction."""
    name = "stream_" + hashlib.sha256(query.encode()).hexdigest()[:16]
    await conn.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {query}", *args)
    while rows := await conn.fetch(f"FETCH {chunk} FROM {name}"):
        yield rows
    await conn.execute(f"CLOSE {name}")


async def ping(pool: asyncpg.Pool, *, within_seconds: float = 2) -> None:
    """Raise unless the database answers within `within_seconds` (readiness)."""
    async with pool.acquire(timeout=within_seconds) as conn:
        await conn.fetchval("SELECT 1")


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[str, str, str]]:
    """(version, sql, checksum) for every `NNNN_name.sql`, in order."""
    found = []
    for path in sorted(sql_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        sql = path.read_text(encoding="utf-8")
        found.append((path.stem, sql, hashlib.sha256(sql.encode()).hexdigest()))
    return found


async def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    conn = await asyncpg.connect(dsn)
    try:
        # A session lock on a dedicated connection, released when it closes.
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = dict(await conn.fetch("SELECT version, checksum FROM schema_migrations"))
        done = []
        for version, sql, checksum in migration_files(sql_dir):
            if version in applied:
                if applied[version] != checksum:
                    raise MigrationError(
                        f"migration {version} was changed after it was applied "
                        f"(checksum {applied[version][:12]} in the database, {checksum[:12]} "
                        "on disk). Add a new migration instead; for local dev data run "
                        "`make reset` (referral dev reset)."
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    version,
                    checksum,
                )
            log.info("migration_applied", version=version)
            done.append(version)
        return done
    finally:
        await conn.close()
