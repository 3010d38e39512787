"""A customer's data rights (export, erasure) and the retention of what the service keeps.

A person is found the same way for both: by the shop's customer id, then by the addresses
their rows hold (a guest order or referral has only an email), across every room. Each room
exports and erases its own part (`export_customer`, `erase_customer` in its service); this
module only finds the person, orders the steps, and keeps the erasure's record.

Erasure replaces personal data with tombstones where it stands and deletes nothing that
money or a figure stands on: every ledger amount, reward state, payout line and analytics
rollup is the same after as before, so balances, reports and exported batches reconcile.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import structlog

from referral.advocates import service as advocates
from referral.analytics import service as analytics
from referral.audit import service as audit
from referral.customers import repo
from referral.customers.schemas import (
    CustomerErasure,
    ErasedCounts,
    ExportedErasure,
    RetentionRun,
    Subject,
    Tombstones,
)
from referral.events import service as events
from referral.fraud import service as fraud
from referral.imports import service as imports
from referral.levels import service as levels
from referral.lib.db import connect
from referral.lib.errors import NotFound
from referral.lib.keyed_hash import HmacSha256
from referral.links import service as links
from referral.merchants import service as merchants
from referral.merchants.service import Caller
from referral.orders import service as orders
from referral.payees import service as payees
from referral.payouts import service as payouts
from referral.points import service as points
from referral.preferences import service as preferences
from referral.referrals import service as referrals
from referral.rewards import service as rewards
from referral.runtime import Runtime
from referral.settings import Settings
from referral.stories import service as stories
from referral.webhooks import service as webhooks

log = structlog.get_logger("referral.customers")

_encode = msgspec.json.Encoder().encode
CLICKS_PER_CHUNK = 500


def _not_found(customer_id: str) -> NotFound:
    return NotFound(
        "this merchant holds nothing about that customer id (no advocate, order, signup, "
        "referral or fraud signal), and has erased nobody by it",
        code="customer_not_found",
    )


def _subject_hash(settings: Settings, merchant_id: int, customer_id: str) -> bytes:
    """The erasures' key for a person: keyed, so the table cannot be tested against guesses."""
    mac = HmacSha256(settings.ip_hash_key.encode())
    return mac.digest(f"erasure|{merchant_id}|{customer_id}".encode())


async def _find(conn: asyncpg.Connection, merchant_id: int, customer_id: str) -> Subject:
    """Every room asked in turn: the advocates give their addresses, with which the guest
    orders are found, whose addresses find the guest referrals and signups."""
    subject = Subject(merchant_id=merchant_id, customer_id=customer_id)
    await advocates.find_customer(conn, subject=subject)
    await imports.find_customer(conn, subject=subject)
    await orders.find_customer(conn, subject=subject)
    await referrals.find_customer(conn, subject=subject)
    await fraud.find_customer(conn, subject=subject)
    await payees.find_customer(conn, subject=subject)
    return subject


def _erasure(runtime: Runtime, caller: Caller, row: repo.ErasureRow) -> CustomerErasure:
    return CustomerErasure(
        id=runtime.ids.encode("customer_erasure", row.id),
        erased_at=row.created_at,
        advocate_ids=[runtime.ids.encode("advocate", a) for a in row.advocate_ids],
        erased=msgspec.json.decode(row.erased, type=ErasedCounts),
        livemode=caller.mode == "live",
    )


# --------------------------------------------------------------------------- the export


async def check_exportable(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, customer_id: str
) -> None:
    """Before the stream starts (its status is sent first): 404 for a person never seen."""
    subject = await _find(conn, caller.merchant_id, customer_id)
    hashed = _subject_hash(runtime.settings, caller.merchant_id, customer_id)
    if not subject.found and not await repo.erasures(conn, caller.merchant_id, hashed):
        raise _not_found(customer_id)


def _member(name: str, value: Any) -> bytes:
    return b"," + _encode(name) + b":" + _encode(value)


async def export(runtime: Runtime, *, caller: Caller, customer_id: str) -> AsyncIterator[bytes]:
    """The `CustomerExport` document, written part by part from one snapshot (a repeatable
    read transaction of its own: the request's connection is gone once the stream starts).
    Clicks, the one part that grows without bound, are read with a cursor."""
    merchant_id = caller.merchant_id
    async with (
        runtime.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        subject = await _find(conn, merchant_id, customer_id)
        ids = runtime.ids
        yield (
            b'{"object":"customer_export","customer_id":'
            + _encode(customer_id)
            + _member("livemode", caller.mode == "live")
            + _member("generated_at", datetime.now(UTC))
            + _member("emails", sorted(set(subject.emails) | set(subject.typed_emails)))
            + _member(
                "advocates",
                await advocates.export_customer(conn, runtime=runtime, subject=subject),
            )
            + b',"clicks":['
        )
        chunk: list[bytes] = []
        first = True
        async for click in links.export_customer(conn, ids=ids, subject=subject):
            chunk.append(_encode(click))
            if len(chunk) == CLICKS_PER_CHUNK:
                yield (b"" if first else b",") + b",".join(chunk)
                first, chunk = False, []
        if chunk:
            yield (b"" if first else b",") + b",".join(chunk)
        shown_stories, shares = await stories.export_customer(
            conn, runtime=runtime, subject=subject
        )
        made, signups = await referrals.export_customer(conn, ids=ids, subject=subject)
        hashed = _subject_hash(runtime.settings, merchant_id, customer_id)
        earlier = [
            ExportedErasure(id=ids.encode("customer_erasure", e.id), erased_at=e.created_at)
            for e in await repo.erasures(conn, merchant_id, hashed)
        ]
        yield (
            b"]"
            + _member("shares", shares)
            + _member("stories", shown_stories)
            + _member("referrals", made)
            + _member("signups", signups)
            + _member("orders", await orders.export_customer(conn, ids=ids, subject=subject))
            + _member("rewards", await rewards.export_customer(conn, ids=ids, subject=subject))
            + _member("payees", await payees.export_customer(conn, subject=subject))
            + _member("payouts", await payouts.export_customer(conn, ids=ids, subject=subject))
            + _member(
                "fraud_signals",
                await fraud.export_customer(
                    conn,
                    subject=subject,
                    retention_days=runtime.settings.signal_retention_days,
                ),
            )
            + _member(
                "imported_as_customer",
                await imports.export_customer(conn, ids=ids, subject=subject),
            )
            + _member("erasures", earlier)
            + b"}"
        )


# --------------------------------------------------------------------------- the erasure


def _tombstones(erasure_id: str, subject: Subject) -> Tombstones:
    return Tombstones(
        customer_id=f"erased:{erasure_id}",
        emails=[f"{erasure_id}.{n}@erased.invalid" for n in range(len(subject.emails))],
        codes=[f"erased:{erasure_id}:{n}" for n in range(len(subject.vanity_codes))],
        visitors=[f"erased:{erasure_id}:v{n}" for n in range(len(subject.visitor_ids))],
    )


async def erase(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, customer_id: str
) -> tuple[CustomerErasure, bool]:
    """(erasure, made now). In one transaction, under the locks the checkout takes for this
    person, so an order or signup of theirs arriving meanwhile waits and then finds nobody
    (it is a new person's). A person already erased, and not seen since, answers the same
    erasure; one seen again is erased again, as a new erasure."""
    merchant_id = caller.merchant_id
    hashed = _subject_hash(runtime.settings, merchant_id, customer_id)
    await repo.lock_subject(conn, merchant_id, hashed)
    subject = await _find(conn, merchant_id, customer_id)
    await referrals.lock_customer(conn, subject=subject)
    subject = await _find(conn, merchant_id, customer_id)  # as it stands under the locks
    if not subject.found:
        earlier = await repo.erasures(conn, merchant_id, hashed)
        if earlier:
            return _erasure(runtime, caller, earlier[-1]), False
        raise _not_found(customer_id)

    started = await repo.start_erasure(conn, merchant_id, hashed)
    public_id = runtime.ids.encode("customer_erasure", started.id)
    tombstones = _tombstones(public_id, subject)
    counts = ErasedCounts()
    counts.advocates, counts.codes = await advocates.erase_customer(
        conn, subject=subject, tombstones=tombstones
    )
    counts.clicks = await links.erase_customer(conn, subject=subject, tombstones=tombstones)
    counts.referrals, counts.signups = await referrals.erase_customer(
        conn, subject=subject, tombstones=tombstones
    )
    counts.orders = await orders.erase_customer(conn, subject=subject, tombstones=tombstones)
    counts.rewards, counts.ledger_entries = await rewards.erase_customer(
        conn, subject=subject, tombstones=tombstones
    )
    counts.payout_lines = await payouts.erase_customer(conn, subject=subject, tombstones=tombstones)
    counts.payees = await payees.erase_customer(conn, subject=subject)
    counts.stories = await stories.erase_customer(conn, runtime=runtime, subject=subject)
    counts.fraud_signals = await fraud.erase_customer(conn, subject=subject)
    counts.imported_customers = await imports.erase_customer(
        conn, subject=subject, tombstones=tombstones
    )
    await points.erase_customer(conn, subject=subject, tombstones=tombstones)
    await levels.erase_customer(conn, subject=subject, tombstones=tombstones)
    await preferences.erase_customer(conn, subject=subject, tombstones=tombstones)
    await analytics.erase_customer(conn, subject=subject, tombstones=tombstones)
    # Free text last: what the steps above announced names nobody, what came before may.
    exact = [customer_id, *subject.vanity_codes, *subject.visitor_ids]
    addresses = sorted(set(subject.emails) | set(subject.typed_emails))
    scrubbed = await events.erase_customer(
        conn,
        merchant_id=merchant_id,
        values=exact,
        emails=addresses,
        tombstone=tombstones.customer_id,
    )
    counts.events = len(scrubbed)
    counts.webhook_attempts = await webhooks.erase_customer(
        conn, merchant_id=merchant_id, event_ids=scrubbed, emails=addresses
    )
    counts.idempotency_keys = await repo.forget_answers(conn, merchant_id, exact, addresses)
    await repo.finish_erasure(
        conn, merchant_id, started.id, subject.advocate_ids, msgspec.to_builtins(counts)
    )
    erasure = CustomerErasure(
        id=public_id,
        erased_at=started.created_at,
        advocate_ids=[runtime.ids.encode("advocate", a) for a in subject.advocate_ids],
        erased=counts,
        livemode=caller.mode == "live",
    )
    shown = {"erasure_id": public_id, "advocate_ids": erasure.advocate_ids, "erased": counts}
    await events.emit(conn, merchant_id=merchant_id, type="customer.erased", data=shown)
    await audit.record(
        conn,
        caller=caller,
        action="customer.erased",
        subject_type="customer_erasure",
        subject_id=public_id,
        after=shown,
    )
    log.info("customer_erased", erasure_id=public_id, advocates=counts.advocates)
    return erasure, True


# --------------------------------------------------------------------------- retention


def months_before(at: datetime, months: int) -> datetime:
    """The first instant (UTC) of the month `months` before `at`'s: click partitions are
    months in UTC, so this is where a whole partition starts."""
    index = at.year * 12 + (at.month - 1) - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


@contextlib.asynccontextmanager
async def _own_session(runtime: Runtime) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose session is the job's alone, for its session lock: the pool's when
    it reaches PostgreSQL itself; behind a transaction pooler, which would hand the locked
    session to other clients between transactions, one on the direct URL."""
    settings = runtime.settings
    if settings.database_pooling != "transaction":
        async with runtime.pool.acquire() as conn:
            yield conn
        return
    conn = await connect(settings.direct_database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def apply_retention(runtime: Runtime, *, now: datetime | None = None) -> RetentionRun:
    """Drop the raw clicks of months older than the retention age (whole partitions, once
    every merchant's rollups hold their clicks), fraud signals not seen within their window,
    and webhook attempts and finished deliveries older than theirs. One instance at a time
    (a session lock; the others skip their turn); running it twice does nothing the second
    time."""
    settings = runtime.settings
    now = now or datetime.now(UTC)
    kept_from = months_before(now, settings.click_retention_months)
    seen_before = now - timedelta(days=settings.signal_retention_days)
    sent_before = now - timedelta(days=settings.webhook_retention_days)
    async with _own_session(runtime) as conn:
        if not await repo.try_retention_lock(conn):
            return RetentionRun(ran=False, clicks_kept_from=kept_from)
        try:
            merchant_ids = await merchants.merchant_ids(conn)
            expired = attempts_deleted = deliveries_deleted = 0
            async with conn.transaction():
                for merchant_id in merchant_ids:
                    expired += await fraud.expire_signals(
                        conn, merchant_id=merchant_id, before=seen_before
                    )
            for merchant_id in merchant_ids:  # a merchant a transaction: short locks
                async with conn.transaction():
                    attempts, deliveries = await webhooks.forget_before(
                        conn, merchant_id=merchant_id, before=sent_before
                    )
                attempts_deleted += attempts
                deliveries_deleted += deliveries
            dropped: list[str] = []
            deleted = 0
            async with conn.transaction():
                waiting = await analytics.clicks_unbooked(
                    conn, merchant_ids=merchant_ids, before=kept_from
                )
                if not waiting:  # a partition holds every merchant's clicks of its month
                    await analytics.keep_clicks_from(
                        conn, merchant_ids=merchant_ids, kept_from=kept_from
                    )
                    dropped, deleted = await links.drop_clicks_before(
                        conn, kept_from=kept_from, merchant_ids=merchant_ids
                    )
        finally:
            await repo.retention_unlock(conn)
    run = RetentionRun(
        ran=True,
        clicks_kept_from=kept_from,
        partitions_dropped=dropped,
        clicks_deleted=deleted,
        waiting_for_rollups=[runtime.ids.encode("merchant", m) for m in waiting],
        fraud_signals_expired=expired,
        signals_seen_before=seen_before,
        webhook_attempts_deleted=attempts_deleted,
        webhook_deliveries_deleted=deliveries_deleted,
        webhooks_sent_before=sent_before,
    )
    log.info(
        "retention_applied",
        partitions_dropped=len(dropped),
        clicks_deleted=deleted,
        waiting_for_rollups=len(waiting),
        fraud_signals_expired=expired,
        webhook_attempts_deleted=attempts_deleted,
        webhook_deliveries_deleted=deliveries_deleted,
    )
    return run
