"""Keeping the analytics rollups: the stream facts as they are written, the rollup worker,
and the rebuild that proves the rollups equal a recomputation from the raw rows.

The worker takes marked entities (the triggers of migration 0009 mark every order, referral,
reward, customer and advocate a transaction changes), recomputes their facts with
`rules.py`, books the difference to what it booked before, and folds all deltas into the
rollups. Several instances may run it at once: each takes its own rows with SKIP LOCKED.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import datasketches
import structlog

from referral.analytics import repo, rules
from referral.analytics.rules import Fact
from referral.customers.schemas import Subject, Tombstones
from referral.lib.errors import NotFound
from referral.lib.ids import PublicIds

log = structlog.get_logger("referral.analytics")

SKETCH_LG_K = 12  # 4,096 registers: about 1.6 % relative standard error
DIRTY_BATCH = 500
DELTA_BATCH = 20_000


# --- stream facts --------------------------------------------------------------------------


async def record_clicks(
    conn: asyncpg.Connection, *, columns: tuple[list, ...], firsts: list[int]
) -> None:
    """A flushed batch of clicks (`columns`: per click merchant, program, advocate, channel,
    story row id, time, bot flag and visitor id) and the 1-based positions of the clicks
    that were the first of their (visitor, advocate, day): the unique clicks. Their advocates'
    first share moves earlier if a click came before it."""
    await repo.add_clicks(conn, columns, firsts)
    earliest: dict[tuple[int, int], datetime] = {}
    for merchant_id, advocate_id, at, bot in zip(
        columns[0], columns[2], columns[5], columns[6], strict=True
    ):
        key = (merchant_id, advocate_id)
        if not bot and (key not in earliest or at < earliest[key]):
            earliest[key] = at
    by_merchant: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for (merchant_id, advocate_id), at in sorted(earliest.items()):
        by_merchant[merchant_id].append((advocate_id, at))
    for merchant_id, firsts_of in by_merchant.items():
        await repo.set_first_shared(
            conn, merchant_id, [a for a, _ in firsts_of], [t for _, t in firsts_of]
        )


async def record_share(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    story_id: int | None,
    channel: str,
    at: datetime | None = None,
) -> None:
    """A share button followed (at `at`, else now, as the share row): a share, the advocate
    among the day's sharing advocates, and perhaps their first share."""
    await repo.add_event(
        conn,
        merchant_id,
        program_id=program_id,
        at=at,
        dim=channel,
        story_id=story_id or 0,
        advocate_id=advocate_id,
        values=[("shares", 1, None), ("sharing_advocates", 0, str(advocate_id))],
    )
    await repo.set_first_shared(conn, merchant_id, [advocate_id], [at])


async def record_share_page_view(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int, advocate_id: int
) -> None:
    """The advocate opened their share page: the top of the funnel."""
    await repo.insert_share_page_view(conn, merchant_id, program_id, advocate_id)
    await repo.add_event(
        conn,
        merchant_id,
        program_id=program_id,
        at=None,
        dim="",
        story_id=0,
        advocate_id=advocate_id,
        values=[("share_page_views", 1, None)],
    )


async def record_story_view(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int,
    story_id: int,
    advocate_id: int,
) -> None:
    """A person read a story (its row is the story room's `story_views`, written now)."""
    await repo.add_event(
        conn,
        merchant_id,
        program_id=program_id,
        at=None,
        dim="",
        story_id=story_id,
        advocate_id=advocate_id,
        values=[("story_views", 1, None)],
    )


# --- the worker ------------------------------------------------------------------------------


def _story_ids(ids: PublicIds) -> rules.StoryIds:
    def resolve(public_id: str | None) -> int:
        if not public_id:
            return 0
        try:
            return ids.decode("story", public_id)
        except NotFound:
            return 0

    return resolve


Compute = Callable[[Any, Any, rules.StoryIds], list[Fact]]


async def _entities(
    conn: asyncpg.Connection, merchant_id: int, entity: str, keys: list[str]
) -> list[tuple[str, Any, Compute]]:
    """The marked entities' raw rows, each with its key and the rule computing its facts."""
    if entity == "customer":
        found = await repo.customer_orders(conn, merchant_id, keys)
        return [
            (key, rules.CustomerIn(key=key, orders=orders), rules.customer_facts)
            for key, orders in found.items()
        ]
    ids = [int(k) for k in keys]
    load, compute = {
        "order": (repo.orders, rules.order_facts),
        "referral": (repo.referrals, rules.referral_facts),
        "reward": (repo.rewards, rules.reward_facts),
        "advocate": (repo.advocates, rules.advocate_facts),
    }[entity]
    return [(str(row.id), row, compute) for row in await load(conn, merchant_id, ids)]


async def _book_entities(
    conn: asyncpg.Connection,
    merchant_id: int,
    entity: str,
    keys: list[str],
    zone: Any,
    stories: rules.StoryIds,
) -> None:
    new: dict[str, set[Fact]] = defaultdict(set)
    for key, row, compute in await _entities(conn, merchant_id, entity, keys):
        summed = rules.summed(compute(row, zone, stories))
        new[key].update(Fact(*k, v) for k, v in summed.items() if v != 0)
    old: dict[str, set[Fact]] = defaultdict(set)
    for key, fact in await repo.entity_facts(conn, merchant_id, entity, keys):
        old[key].add(fact)
    # Most changes leave most of what they reach as it was (a referral's advocate, an
    # order's customer): only the entities whose facts changed are written.
    changed = [key for key in keys if old.get(key, set()) != new.get(key, set())]
    if not changed:
        return
    await repo.delete_entity_facts(conn, merchant_id, entity, [k for k in changed if k in old])
    await repo.insert_entity_facts(
        conn, merchant_id, entity, [(k, f) for k in changed for f in new.get(k, ())]
    )
    await repo.insert_deltas(
        conn,
        merchant_id,
        rules.difference(
            (f for k in changed for f in old.get(k, ())),
            (f for k in changed for f in new.get(k, ())),
        ),
    )


async def _with_reach(
    conn: asyncpg.Connection, merchant_id: int, marked: dict[str, set[str]]
) -> dict[str, set[str]]:
    """The marked entities and what their changes also count in (a write marks only its own
    row): a referral's orders, advocate and friend, then every order's customer."""
    for entity in ("referral", "order"):
        if marked.get(entity):
            ids = sorted(int(k) for k in marked[entity])
            for other, key in await repo.reach(conn, merchant_id, entity, ids):
                marked.setdefault(other, set()).add(key)
    return marked


async def _book_marked(conn: asyncpg.Connection, ids: PublicIds) -> int:
    async with conn.transaction():
        marked = await repo.take_dirty(conn, DIRTY_BATCH)
        if not marked:
            return 0
        by_merchant: dict[int, dict[str, set[str]]] = defaultdict(dict)
        for merchant_id, entity, key in marked:
            by_merchant[merchant_id].setdefault(entity, set()).add(key)
        zones = await repo.merchant_zones(conn, sorted(by_merchant))
        stories = _story_ids(ids)
        booked = 0
        for merchant_id, entities in sorted(by_merchant.items()):
            zone = rules.zone_of(zones.get(merchant_id, "UTC"))
            entities = await _with_reach(conn, merchant_id, entities)
            await repo.lock_entities(
                conn, merchant_id, [(e, k) for e, keys in entities.items() for k in keys]
            )
            for entity, keys in sorted(entities.items()):
                await _book_entities(conn, merchant_id, entity, sorted(keys), zone, stories)
                booked += len(keys)
            if entities.get("order"):
                order_ids = sorted(int(k) for k in entities["order"])
                await repo.add_ordering_customers(conn, merchant_id, order_ids)
    return booked


def _sketch(data: bytes | None) -> datasketches.hll_sketch:
    if data is None:
        return datasketches.hll_sketch(SKETCH_LG_K, datasketches.tgt_hll_type.HLL_8)
    return datasketches.hll_sketch.deserialize(data)


def _grown(kept: dict[Any, bytes], members: dict[Any, list[int]]) -> dict[Any, tuple[bytes, float]]:
    """The kept sketches with their new members added: each serialized with its estimate."""
    grown = {}
    for key, hashes in members.items():
        sketch = _sketch(kept.get(key))
        for h in hashes:
            sketch.update(h)
        grown[key] = (sketch.serialize_compact(), sketch.get_estimate())
    return grown


async def _fold(conn: asyncpg.Connection) -> bool:
    """Fold one batch of deltas into the rollups; False when there was none."""
    async with conn.transaction():
        members = await repo.fold(conn, DELTA_BATCH)
        by_merchant: dict[int, dict[str, dict[Any, list[int]]]] = defaultdict(
            lambda: {"day": defaultdict(list), "month": defaultdict(list)}
        )
        for merchant_id, program_id, day, metric, hashes in members:
            for kind, key in rules.sketch_keys(program_id, day, metric):
                by_merchant[merchant_id][kind][key] += hashes
        for merchant_id, kinds in sorted(by_merchant.items()):
            for kind, wanted in kinds.items():
                kept = await repo.lock_sketches(conn, merchant_id, kind, sorted(wanted))
                await repo.put_sketches(conn, merchant_id, kind, _grown(kept, wanted))
        pending = await repo.pending(conn)
    return bool(members) or pending[1] > 0


async def _restate_one(conn: asyncpg.Connection) -> bool:
    """Queue one merchant that asked to be restated (`analytics_restate`) to be booked
    again from the raw rows; False when none is waiting."""
    async with conn.transaction():
        merchant_id = await repo.take_restate(conn)
        if merchant_id is None:
            return False
        await repo.requeue(conn, merchant_id)
        log.info("analytics_restated", merchant_id=merchant_id)
    return True


def _registers_estimate(sketch: datasketches.hll_sketch) -> float:
    """The estimate from the registers alone: a union of the sketch with itself is out of
    order for DataSketches, so it estimates from its registers, not from HIP."""
    union = datasketches.hll_union(SKETCH_LG_K)
    union.update(sketch)
    union.update(sketch)
    return union.get_estimate()


async def run_once(conn: asyncpg.Connection, *, ids: PublicIds) -> tuple[int, bool]:
    """One turn: queue a merchant waiting to be restated, book a batch of marked entities,
    then fold a batch of deltas."""
    restated = await _restate_one(conn)
    booked = await _book_marked(conn, ids) + restated
    folded = await _fold(conn)
    return booked, folded


async def catch_up(pool: asyncpg.Pool | asyncpg.Connection, *, ids: PublicIds) -> int:
    """Run the worker until nothing is marked and no delta is left unfolded (what a test or
    the rebuild needs before reading). Returns the entities booked."""
    total = 0
    while True:
        if isinstance(pool, asyncpg.Pool):
            async with pool.acquire() as conn:
                booked, _ = await run_once(conn, ids=ids)
                dirty, deltas = await repo.pending(conn)
        else:
            booked, _ = await run_once(pool, ids=ids)
            dirty, deltas = await repo.pending(pool)
        total += booked
        if booked == 0 and dirty == 0 and deltas == 0:
            return total


async def restate(conn: asyncpg.Connection, *, merchant_id: int) -> None:
    """The merchant's days changed (a new time zone): empty its rollups and queue everything
    they count to be booked again, by the worker, in the new days."""
    await repo.requeue(conn, merchant_id)


# --- a customer's erasure and the retention of raw clicks (referral/customers/) -----------


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> int:
    """The customer's analytics keys (their customer id, their guest emails) renamed to
    their tombstones', under the lock a worker booking them holds: every rollup stays as it
    is, and a later change of one of their orders (its customer now the tombstone) is booked
    against the same facts. Nothing is marked: no figure changes."""
    keys = [f"c:{subject.customer_id}", *(f"e:{e}" for e in subject.emails)]
    renamed = [f"c:{tombstones.customer_id}", *(f"e:{t}" for t in tombstones.emails)]
    await repo.lock_entities(conn, subject.merchant_id, [("customer", k) for k in keys])
    return await repo.rename_customers(conn, subject.merchant_id, keys, renamed)


async def clicks_unbooked(
    conn: asyncpg.Connection, *, merchant_ids: list[int], before: datetime
) -> list[int]:
    """The merchants whose clicks before `before` are not all booked into the rollups yet
    (their deltas not folded, or a restatement waiting): their raw clicks must stay."""
    return [m for m in merchant_ids if await repo.clicks_unbooked(conn, m, before)]


async def keep_clicks_from(
    conn: asyncpg.Connection, *, merchant_ids: list[int], kept_from: datetime
) -> None:
    """Raw clicks before `kept_from` are gone: a rebuild or a restatement recomputes click
    figures only from the first of each merchant's months wholly after it, and keeps the
    months before as they were booked."""
    await repo.keep_clicks_from(conn, merchant_ids, kept_from)


# --- rebuild -------------------------------------------------------------------------------


@dataclass
class Rebuilt:
    merchant_id: int
    facts: int = 0
    differences: dict[str, int] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not any(self.differences.values())


async def _recompute_entities(
    conn: asyncpg.Connection, merchant_id: int, zone: Any, stories: rules.StoryIds
) -> int:
    count = 0
    for entity in ("order", "referral", "reward", "advocate"):
        after = 0
        while keys := await repo.entity_keys(conn, merchant_id, entity, after, 5_000):
            facts = [
                f
                for _, row, compute in await _entities(conn, merchant_id, entity, keys)
                for f in compute(row, zone, stories)
            ]
            await repo.add_rebuilt(conn, merchant_id, facts)
            count += len(facts)
            after = int(keys[-1])
    customers = await repo.all_customers(conn, merchant_id)
    for i in range(0, len(customers), 2_000):
        chunk = customers[i : i + 2_000]
        facts = [
            f
            for _, row, compute in await _entities(conn, merchant_id, "customer", chunk)
            for f in compute(row, zone, stories)
        ]
        await repo.add_rebuilt(conn, merchant_id, facts)
        count += len(facts)
    return count


async def _sketch_differences(conn: asyncpg.Connection, merchant_id: int) -> dict[str, int]:
    """The day and month sketches recomputed from the raw rows' members beside the kept
    ones, per table: how many differ. Compared by their registers' estimate: a sketch's own
    estimate (HIP) depends on the order its members came in (the worker adds them batch by
    batch, the rebuild sorted), its registers do not."""
    wanted: dict[str, dict[Any, datasketches.hll_sketch]] = {"day": {}, "month": {}}
    for program_id, day, metric, hashes in await repo.rebuilt_members(conn):
        for kind, key in rules.sketch_keys(program_id, day, metric):
            sketch = wanted[kind].get(key)
            if sketch is None:
                sketch = wanted[kind][key] = _sketch(None)
            for h in hashes:
                sketch.update(h)
    differences = {}
    for kind, table in (("day", "analytics_sketches"), ("month", "analytics_sketches_monthly")):
        kept = await repo.kept_sketches(conn, merchant_id, kind)
        differing = len(set(kept) - set(wanted[kind]))
        for key, sketch in wanted[kind].items():
            have = kept.get(key)
            if (
                have is None
                or abs(_registers_estimate(_sketch(have)) - _registers_estimate(sketch)) > 1e-6
            ):
                differing += 1
        differences[table] = differing
    return differences


async def rebuild(
    pool: asyncpg.Pool, *, ids: PublicIds, apply: bool = False, merchant_id: int | None = None
) -> list[Rebuilt]:
    """Recompute every rollup from the raw rows and compare with the kept ones; with `apply`,
    replace the kept ones by the recomputed (after a time zone change, or a bug fixed)."""
    await catch_up(pool, ids=ids)
    results = []
    async with pool.acquire() as conn:
        merchants = [(m, z) for m, z in await repo.merchants(conn) if merchant_id in (None, m)]
        stories = _story_ids(ids)
        for mid, zone_name in merchants:
            async with conn.transaction():
                result = Rebuilt(mid)
                await repo.create_rebuilt(conn, mid)
                result.facts = await _recompute_entities(
                    conn, mid, rules.zone_of(zone_name), stories
                )
                result.differences = await repo.differences(conn, mid)
                result.differences |= await _sketch_differences(conn, mid)
                if apply and not result.identical:
                    await repo.requeue(conn, mid)
            results.append(result)
            log.info(
                "analytics_rebuilt",
                merchant_id=mid,
                facts=result.facts,
                identical=result.identical,
                applied=apply and not result.identical,
            )
    if apply:
        await catch_up(pool, ids=ids)
    return results
