"""Test fixtures: a real PostgreSQL, a fresh database per test, the app over HTTP.

`TEST_DATABASE_URL` names a server to use (its own database is never touched: every test
database is created with a `referral_test_` prefix and dropped afterwards); without it an
embedded PostgreSQL is started in a temporary folder, apart from `make run`'s data.
Each test gets its own database cloned from a migrated template, so concurrency tests use
real separate connections and no test sees another's rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from referral.app import create_app
from referral.lib.db import migrate
from referral.lib.embedded import EmbeddedPostgres
from referral.settings import Settings
from tests.factories import Tenant, make_tenant

ROOT = Path(__file__).resolve().parent.parent
PREFIX = f"referral_test_{secrets.token_hex(3)}"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _stop_leftovers() -> None:
    """A killed test run never tears down: stop the servers of runs whose process is gone."""
    for data_dir in (ROOT / ".referral").glob("test-pg-*"):
        pid = data_dir.name.removeprefix("test-pg-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            EmbeddedPostgres(data_dir).stop()
            shutil.rmtree(data_dir, ignore_errors=True)


async def _disposable(url: str) -> None:
    """The test server's data is thrown away: it need not survive a crash, so it skips the
    flushes that make each commit and each test's CREATE DATABASE wait for the disk."""
    conn = await asyncpg.connect(url)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    _stop_leftovers()
    data_dir = ROOT / ".referral" / f"test-pg-{os.getpid()}"
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        asyncio.run(_disposable(server.uri("postgres")))
        yield server.uri("postgres")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_db(admin_url: str) -> AsyncIterator[str]:
    name = f"{PREFIX}_template"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        await migrate(_with_database(admin_url, name))
        yield name
    finally:
        for (db,) in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{PREFIX}%"
        ):
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()


_counter = iter(range(1, 10**9))


@pytest.fixture
async def database_url(admin_url: str, template_db: str) -> AsyncIterator[str]:
    name = f"{PREFIX}_{next(_counter)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield _with_database(admin_url, name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(database_url: str, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        public_base_url="http://testserver.local",
        hashids_salt="test-salt-0123456789",
        click_token_key="test-click-key-0123456789",
        ip_hash_key="test-ip-key-0123456789",
        click_flush_interval_ms=10,
        code_cache_seconds=0,
        release_interval_seconds=0,  # tests release rewards explicitly
        analytics_interval_seconds=0,  # and book analytics rollups explicitly (catch_up)
        retention_interval_seconds=0,  # and apply retention explicitly
        db_pool_min=1,
        db_pool_max=20,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


_built: dict[Settings, Litestar] = {}


@pytest.fixture
def app(settings: Settings) -> Litestar:
    """The app for the test's settings, started (by `client`) on the test's database.

    Building one costs a quarter of a second (Litestar reads every handler's signature), a
    fifth of a short test: each worker builds one per set of settings and starts it afresh
    for every test, as `create_app` allows (its lifespan reads the settings at each start).
    """
    shape = msgspec.structs.replace(settings, database_url="")
    app = _built.get(shape)
    if app is None:
        app = _built[shape] = create_app(settings)
    app.state.settings = settings
    return app


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def tenant(db: asyncpg.Connection) -> Tenant:
    return await make_tenant(db, "Shop A")


@pytest.fixture
async def other_tenant(db: asyncpg.Connection) -> Tenant:
    return await make_tenant(db, "Shop B")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's event loop (the app's own pool lives on the test client's loop)."""
    from referral.lib.db import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def ids(settings: Settings):
    from referral.lib.ids import PublicIds

    return PublicIds(settings.hashids_salt)
