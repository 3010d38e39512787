"""What a running app holds: settings, the pool and the in-process helpers built on them.

Built once in the lifespan and reached by handlers through `app.state.runtime`, so the hot
redirect needs no dependency injection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg

from referral.codes.codec import CodeCodec
from referral.fraud.signals import SignalHasher
from referral.lib.apart import ProcessLane
from referral.lib.ids import PublicIds
from referral.lib.rate_limit import TokenBuckets
from referral.links.clicks import ClickWriter
from referral.links.qr import QrCache
from referral.links.service import CodeResolver
from referral.links.token import ClickTokenSigner
from referral.links.visitors import IpHasher
from referral.merchants.service import KEY_CACHE_SECONDS, Caller
from referral.settings import Settings


@dataclass
class KeyCache:
    """Authenticated keys for a few seconds: one query less on every checkout call.
    A key revoked elsewhere stops working within `ttl` seconds; one revoked through this
    instance at once (`forget`)."""

    ttl: float = float(KEY_CACHE_SECONDS)
    entries: dict[bytes, tuple[float, Caller]] = field(default_factory=dict)
    # Keys forgotten lately are not cached again for `ttl`: a request that read the key
    # before the revocation committed cannot put it back.
    forgotten: dict[bytes, float] = field(default_factory=dict)

    def get(self, key_hash: bytes) -> Caller | None:
        hit = self.entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key_hash: bytes, caller: Caller) -> None:
        now = time.monotonic()
        if self.forgotten.get(key_hash, 0.0) > now:
            return
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key_hash] = (now + self.ttl, caller)

    def forget(self, key_hash: bytes) -> None:
        """Drop a revoked key now (the database refuses it from its commit on)."""
        now = time.monotonic()
        self.entries.pop(key_hash, None)
        if len(self.forgotten) > 10_000:
            self.forgotten = {h: t for h, t in self.forgotten.items() if t > now}
        self.forgotten[key_hash] = now + max(self.ttl, 1.0)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    ids: PublicIds
    codec: CodeCodec
    codes: CodeResolver
    clicks: ClickWriter
    signer: ClickTokenSigner
    ip_hasher: IpHasher
    signals: SignalHasher
    qr: QrCache
    keys: KeyCache
    # Fraud backtests' process (`fraud/backtest.py`), started on the first backtest.
    backtests: ProcessLane
    # Per-IP token buckets, one per limit in `settings.rate_limits` (`http/rate_limits.py`).
    limits: dict[str, TokenBuckets] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, pool: asyncpg.Pool) -> Runtime:
        ids = PublicIds(settings.hashids_salt)
        return cls(
            settings=settings,
            pool=pool,
            ids=ids,
            codec=CodeCodec(settings.hashids_salt),
            codes=CodeResolver(pool, settings.code_cache_seconds, ids=ids),
            clicks=ClickWriter(pool, interval=settings.click_flush_interval_ms / 1000),
            signer=ClickTokenSigner(settings.click_token_key),
            ip_hasher=IpHasher(settings.ip_hash_key),
            signals=SignalHasher(settings.ip_hash_key),
            qr=QrCache(),
            keys=KeyCache(ttl=KEY_CACHE_SECONDS if settings.code_cache_seconds > 0 else 0.0),
            backtests=ProcessLane(settings.backtest_processes),
            limits={
                name: TokenBuckets(getattr(settings.rate_limits, name))
                for name in settings.rate_limits.__struct_fields__
            },
        )
