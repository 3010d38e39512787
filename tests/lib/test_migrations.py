"""Migrations: every file in sql/ applied once, in order, with its checksum; edits refused;
several instances starting at once apply each migration exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from referral.lib.db import SQL_DIR, MigrationError, migrate, migration_files
from tests.conftest import PREFIX, _with_database

_count = iter(range(1, 10**6))


@pytest.fixture
async def fresh_db(admin_url: str, template_db: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes empty databases (nothing migrated); all dropped at the end of the test."""
    made: list[str] = []
    admin = await asyncpg.connect(admin_url)

    async def make() -> str:
        name = f"{PREFIX}_mig_{next(_count)}"
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        made.append(name)
        return _with_database(admin_url, name)

    try:
        yield make
    finally:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def recorded(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return dict(await conn.fetch("SELECT version, checksum FROM schema_migrations"))
    finally:
        await conn.close()


def copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


def test_sql_dir_holds_numbered_migrations():
    files = sorted(p.name for p in SQL_DIR.glob("*.sql"))
    assert files, "no migrations found"
    versions = [v for v, _, _ in migration_files()]
    assert [f.removesuffix(".sql") for f in files] == versions, "every .sql file is NNNN_name"
    numbers = [int(v[:4]) for v in versions]
    assert numbers == sorted(set(numbers)), "migration numbers are unique and ordered"


async def test_applies_every_file_and_records_checksums(fresh_db):
    dsn = await fresh_db()
    applied = await migrate(dsn)
    expected = {
        path.stem: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(SQL_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    }
    assert applied == sorted(expected)
    assert await recorded(dsn) == expected
    conn = await asyncpg.connect(dsn)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert {"merchants", "api_keys", "programs", "advocates", "codes", "clicks"} <= tables


async def test_second_run_applies_nothing(fresh_db):
    dsn = await fresh_db()
    assert await migrate(dsn)
    before = await recorded(dsn)
    assert await migrate(dsn) == []
    assert await recorded(dsn) == before


async def test_new_file_is_applied_alone(fresh_db, tmp_path):
    dsn = await fresh_db()
    sql_dir = copy_sql(tmp_path)
    await migrate(dsn, sql_dir=sql_dir)
    (sql_dir / "9001_probe.sql").write_text("CREATE TABLE probe_9001 (id int);\n")
    assert await migrate(dsn, sql_dir=sql_dir) == ["9001_probe"]
    assert "9001_probe" in await recorded(dsn)


async def test_edited_migration_is_refused(fresh_db, tmp_path):
    dsn = await fresh_db()
    sql_dir = copy_sql(tmp_path)
    await migrate(dsn, sql_dir=sql_dir)
    first = sorted(sql_dir.glob("[0-9]*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent comment\n")
    with pytest.raises(MigrationError) as caught:
        await migrate(dsn, sql_dir=sql_dir)
    message = str(caught.value)
    assert first.stem in message
    assert "make reset" in message
    # Nothing was applied, and later files are not run past the refused one.
    (sql_dir / "9001_probe.sql").write_text("CREATE TABLE probe_9001 (id int);\n")
    with pytest.raises(MigrationError):
        await migrate(dsn, sql_dir=sql_dir)
    assert "9001_probe" not in await recorded(dsn)


async def test_failing_migration_is_rolled_back_and_not_recorded(fresh_db, tmp_path):
    dsn = await fresh_db()
    sql_dir = copy_sql(tmp_path)
    await migrate(dsn, sql_dir=sql_dir)
    (sql_dir / "9001_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n"
    )
    with pytest.raises(asyncpg.PostgresError):
        await migrate(dsn, sql_dir=sql_dir)
    assert "9001_broken" not in await recorded(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    finally:
        await conn.close()


async def test_concurrent_instances_apply_each_migration_once(fresh_db, tmp_path):
    """Five instances start at once on a fresh database: the advisory lock serialises them."""
    dsn = await fresh_db()
    sql_dir = copy_sql(tmp_path)
    # A slow migration that fails if run twice widens the window for a race.
    (sql_dir / "9001_slow.sql").write_text(
        "SELECT pg_sleep(0.3);\nCREATE TABLE applied_once (id int);\n"
    )
    results = await asyncio.gather(*(migrate(dsn, sql_dir=sql_dir) for _ in range(5)))
    everything = [v for v, _, _ in migration_files(sql_dir)]
    applied = [v for result in results for v in result]
    assert sorted(applied) == sorted(everything), results
    assert [r for r in results if r] == [everything], "one instance applied all, in order"
    assert set(await recorded(dsn)) == set(everything)
