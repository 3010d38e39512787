"""Settings: one frozen struct read from the environment, passed into `create_app()`.

Tests build apps with their own `Settings`, so nothing else in the package reads
`os.environ`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import msgspec

from referral.lib.rate_limit import Limit


class SettingsError(Exception):
    """The environment does not describe a service that may start."""


class RateLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Per client IP and per process (each instance and worker counts on its own), on the
    public endpoints that guess or write; `/r/{code}` is never limited. `per_minute` 0: off."""

    # Code lookups and quotes without a secret key (a shop's server, with its secret key, is
    # never limited: all its calls come from one address).
    lookups: Limit = Limit(per_minute=60, burst=20)
    # The share page's forms and share buttons.
    share_page: Limit = Limit(per_minute=30, burst=10)
    # Story pages, their images and share buttons (slugs can be guessed, views are counted).
    story_pages: Limit = Limit(per_minute=120, burst=60)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    # How `database_url` pools server connections: "session" (PostgreSQL itself, or a
    # pooler in session mode) or "transaction" (pgbouncer's transaction pooling: no
    # prepared-statement cache, and what needs a session of its own — migrations, the code
    # cache's LISTEN, the retention job's lock, backtests — uses `database_direct_url`).
    database_pooling: str = "session"
    database_direct_url: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    # Secrets. Each one has its own job so that rotating one does not break the others.
    hashids_salt: str
    click_token_key: str
    ip_hash_key: str
    # Signs the advocates' share-page links; empty: a key derived from click_token_key.
    share_token_key: str = ""
    # Signs the console's session cookies and CSRF tokens; empty: derived from click_token_key.
    console_key: str = ""
    env: str = "dev"  # dev | production
    log_format: str = "auto"  # auto (JSON unless a terminal) | json | console
    log_level: str = "info"
    trusted_proxies: tuple[str, ...] = ()
    click_flush_interval_ms: int = 50
    db_pool_min: int = 2
    db_pool_max: int = 10
    demo_pages: bool = False
    code_cache_seconds: float = 10.0
    release_interval_seconds: float = 30.0
    # How often the rollup worker books changed orders, referrals and rewards into the
    # analytics rollups (0: never in the background; tests and the rebuild run it).
    analytics_interval_seconds: float = 1.0
    # Webhooks (referral/webhooks/delivery.py): how often an idle sender looks for due
    # deliveries (0: no sender in this process; tests call `deliver_due`), the timeout of
    # one attempt, requests in flight in all and per endpoint, and how long a taken delivery
    # is leased before another worker may send it again (a crashed sender's work). The
    # environment's default is 0.1 s (`from_env`); a Settings built in code (tests, the
    # OpenAPI document) runs no sender unless it asks for one.
    webhook_interval_seconds: float = 0.0
    # Imports (referral/imports/service.py): how often an idle worker looks for a queued
    # import (0: no worker in this process; tests call `process_batch`; the environment's
    # default is 1 s), and the largest file `POST /v1/imports` takes (the command line
    # reads any size).
    import_interval_seconds: float = 0.0
    import_max_bytes: int = 512 * 1024 * 1024
    webhook_timeout_seconds: float = 15.0
    webhook_concurrency: int = 64
    webhook_endpoint_concurrency: int = 16
    webhook_lease_seconds: float = 90.0
    # Retention (referral/customers/service.py, `apply_retention`): raw clicks are kept this
    # many months (a month's partition is dropped once the analytics rollups hold its clicks),
    # a fraud signal this many days after it was last seen, webhook attempts and finished
    # deliveries this many days after they were made. The job runs a minute after start,
    # then every `retention_interval_seconds` (0: not in this process; `referral customers
    # retention` runs it now); the environment's default is daily.
    click_retention_months: int = 13
    signal_retention_days: int = 365
    webhook_retention_days: int = 90
    retention_interval_seconds: float = 86400.0
    # Fraud backtests replay in a child process of their own (at a lower priority), so the
    # serving process's checkout calls never wait behind one; 0: on a thread of this process.
    backtest_processes: int = 1
    rate_limits: RateLimits = RateLimits()

    @property
    def direct_database_url(self) -> str:
        """A connection string that reaches PostgreSQL with a session of its own."""
        return self.database_direct_url or self.database_url

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)


_SECRET_VARS = {
    "hashids_salt": "REFERRAL_HASHIDS_SALT",
    "click_token_key": "REFERRAL_CLICK_TOKEN_KEY",
    "ip_hash_key": "REFERRAL_IP_HASH_KEY",
}


def _at_least_one(env: Mapping[str, str], var: str, default: str) -> int:
    value = int(env.get(var, default))
    if value < 1:
        raise ValueError(f"{var} must be at least 1")
    return value


def from_env(
    env: Mapping[str, str] | None = None, dev_secrets: Mapping[str, str] | None = None
) -> Settings:
    """Read settings; dev secrets fill gaps only where the caller allows them (embedded DB)."""
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "")
    if not database_url:
        raise SettingsError("DATABASE_URL is not set (`referral serve` starts an embedded one)")
    secrets: dict[str, str] = {}
    for field, var in _SECRET_VARS.items():
        value = env.get(var) or (dev_secrets or {}).get(field, "")
        if not value:
            raise SettingsError(
                f"{var} must be set when using an external DATABASE_URL or in production"
            )
        if len(value) < 16:
            raise SettingsError(f"{var} must be at least 16 characters")
        secrets[field] = value
    pooling = env.get("DATABASE_POOLING", "session")
    if pooling not in ("session", "transaction"):
        raise SettingsError("DATABASE_POOLING must be session or transaction")
    direct_url = env.get("DATABASE_DIRECT_URL", "")
    if pooling == "transaction" and not direct_url:
        raise SettingsError(
            "DATABASE_POOLING=transaction needs DATABASE_DIRECT_URL, a connection string that "
            "reaches PostgreSQL itself (not the pooler): migrations, the code cache's change "
            "listener, the retention job and backtests need a session of their own"
        )
    share_token_key = env.get("REFERRAL_SHARE_TOKEN_KEY", "")
    console_key = env.get("REFERRAL_CONSOLE_KEY", "")
    for var, value in (
        ("REFERRAL_SHARE_TOKEN_KEY", share_token_key),
        ("REFERRAL_CONSOLE_KEY", console_key),
    ):
        if value and len(value) < 16:
            raise SettingsError(f"{var} must be at least 16 characters")
    try:
        return Settings(
            database_url=database_url,
            database_pooling=pooling,
            database_direct_url=direct_url,
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
            env=env.get("REFERRAL_ENV", "dev"),
            log_format=env.get("LOG_FORMAT", "auto"),
            log_level=env.get("LOG_LEVEL", "info").lower(),
            trusted_proxies=tuple(
                p.strip() for p in env.get("TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
            click_flush_interval_ms=int(env.get("CLICK_FLUSH_INTERVAL_MS", "50")),
            db_pool_min=int(env.get("DB_POOL_MIN", "2")),
            db_pool_max=int(env.get("DB_POOL_MAX", "10")),
            demo_pages=env.get("REFERRAL_DEMO_PAGES", "") == "1",
            release_interval_seconds=float(env.get("RELEASE_INTERVAL_SECONDS", "30")),
            analytics_interval_seconds=float(env.get("ANALYTICS_INTERVAL_SECONDS", "1")),
            webhook_interval_seconds=float(env.get("WEBHOOK_INTERVAL_SECONDS", "0.1")),
            import_interval_seconds=float(env.get("IMPORT_INTERVAL_SECONDS", "1")),
            import_max_bytes=int(env.get("IMPORT_MAX_BYTES", str(512 * 1024 * 1024))),
            webhook_timeout_seconds=float(env.get("WEBHOOK_TIMEOUT_SECONDS", "15")),
            webhook_concurrency=int(env.get("WEBHOOK_CONCURRENCY", "64")),
            webhook_endpoint_concurrency=int(env.get("WEBHOOK_ENDPOINT_CONCURRENCY", "16")),
            webhook_lease_seconds=float(env.get("WEBHOOK_LEASE_SECONDS", "90")),
            click_retention_months=_at_least_one(env, "CLICK_RETENTION_MONTHS", "13"),
            signal_retention_days=_at_least_one(env, "SIGNAL_RETENTION_DAYS", "365"),
            webhook_retention_days=_at_least_one(env, "WEBHOOK_RETENTION_DAYS", "90"),
            retention_interval_seconds=float(env.get("RETENTION_INTERVAL_SECONDS", "86400")),
            backtest_processes=int(env.get("BACKTEST_PROCESSES", "1")),
            share_token_key=share_token_key,
            console_key=console_key,
            rate_limits=RateLimits(
                lookups=Limit.parse(env.get("RATE_LIMIT_LOOKUPS", "60/20")),
                share_page=Limit.parse(env.get("RATE_LIMIT_SHARE_PAGE", "30/10")),
                story_pages=Limit.parse(env.get("RATE_LIMIT_STORY_PAGES", "120/60")),
            ),
            **secrets,
        )
    except ValueError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc
