"""Points: a program's customers earn them (orders, referrals, shares, stories, birthdays,
signups, by the program's rules as data), spend them on its catalogue (a coupon or store
credit, through a reward), get them back when a redemption is cancelled, and lose them
when a refund takes them back or their lot expires.

Every change is a journal entry on a lot; a customer's account row is locked by anything
that spends (a redemption, a refund taking back, the expiry job), so a balance never goes
below zero, whatever runs at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import structlog

from referral.advocates import service as advocates
from referral.advocates.schemas import AdvocateUpsert
from referral.audit import service as audit
from referral.coupons import service as coupons
from referral.customers.schemas import Subject, Tombstones
from referral.events import service as events
from referral.levels import service as levels
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.lib.money import is_currency
from referral.merchants.service import Caller
from referral.points import repo, rules
from referral.points.schemas import (
    Balance,
    CatalogueItem,
    Entry,
    LevelExplained,
    Lot,
    NextExpiry,
    PointsRules,
    PointsSettings,
    Redemption,
    RedemptionRequest,
)
from referral.preferences import service as preferences
from referral.programs.schemas import RewardRule
from referral.rewards import service as rewards
from referral.rewards.rules import Amount
from referral.runtime import Runtime

log = structlog.get_logger("referral.points")
HISTORY_LENGTH = 50
_RULE_OF = {"friend_order": "friend_first_order"}


# --- the rules ---------------------------------------------------------------------------


def _check(points: PointsRules) -> None:
    for item in points.catalogue:
        if not is_currency(item.currency):
            raise InvalidInput(f"unknown currency {item.currency}", code="unknown_currency")
    if len({item.id for item in points.catalogue}) != len(points.catalogue):
        raise InvalidInput("catalogue item ids must differ", code="invalid_points_rules")
    if points.levels is not None:
        thresholds = [level.threshold for level in points.levels.levels]
        names = [level.name for level in points.levels.levels]
        if thresholds[0] != 0 or thresholds != sorted(set(thresholds)):
            raise InvalidInput(
                "levels go from a threshold of 0, strictly upwards", code="invalid_points_rules"
            )
        if len(set(names)) != len(names):
            raise InvalidInput("level names must differ", code="invalid_points_rules")
        if points.levels.qualifier == "spend" and points.levels.currency is None:
            raise InvalidInput("levels by spend name their currency", code="invalid_points_rules")


def _settings(ids: PublicIds, row: repo.RulesRow) -> PointsSettings:
    return PointsSettings(
        program_id=ids.encode("program", row.program_id),
        version=row.version,
        rules=msgspec.convert(row.rules, PointsRules),
        created_at=row.created_at,
    )


async def current(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int
) -> tuple[int, PointsRules] | None:
    """The program's points rules as they stand (None: it has no points)."""
    row = await repo.rules(conn, merchant_id, program_id)
    return (row.version, msgspec.convert(row.rules, PointsRules)) if row else None


async def get_rules(
    conn: asyncpg.Connection, *, ids: PublicIds, caller: Caller, program_id: str
) -> PointsSettings:
    row = await repo.rules(conn, caller.merchant_id, ids.decode("program", program_id))
    if row is None:
        raise NotFound(f"program {program_id} has no points rules", code="points_rules_not_found")
    return _settings(ids, row)


async def set_rules(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    data: PointsRules,
) -> PointsSettings:
    """A new version of the program's points rules; what was earned keeps its version."""
    from referral.programs import service as programs

    await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)
    _check(data)
    pk = runtime.ids.decode("program", program_id)
    before = await repo.rules(conn, caller.merchant_id, pk)
    row = await repo.insert_rules(conn, caller.merchant_id, pk, msgspec.to_builtins(data))
    if row is None:
        raise Conflict("the points rules changed at the same time", code="points_rules_changed")
    settings = _settings(runtime.ids, row)
    await audit.record(
        conn,
        caller=caller,
        action="points_rules.updated",
        subject_type="program",
        subject_id=program_id,
        before=_settings(runtime.ids, before) if before else None,
        after=settings,
    )
    return settings


# --- earning -----------------------------------------------------------------------------


async def earn_order(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    customer_id: str | None,
    order_pk: int,
    subtotal: int,
    currency: str,
    at: datetime,
) -> None:
    """An order's points in every running program with an order rule for its currency: one
    statement. A guest order (no customer id) has no one to hold them."""
    if customer_id is None:
        return
    earned = await repo.earn_order(conn, merchant_id, customer_id, order_pk, at, subtotal, currency)
    for program_id, has_levels in earned:
        if has_levels:
            await _recompute(conn, ids, merchant_id, program_id, customer_id)


async def earn_signup(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, customer_id: str, at: datetime
) -> None:
    """A signup's points in every running program with a signup rule: one statement."""
    for program_id, has_levels in await repo.earn_signup(conn, merchant_id, customer_id, at):
        if has_levels:
            await _recompute(conn, ids, merchant_id, program_id, customer_id)


async def earn_birthdays(pool: asyncpg.Pool, *, ids: PublicIds, now: datetime | None = None) -> int:
    """Birthday points for today's birthdays (UTC day), once a year, unless the birthday was
    set within 30 days before it. Any number of instances: the lot's key is the year."""
    now = now or datetime.now(UTC)
    earned = 0
    async with pool.acquire() as conn:
        due = await repo.birthdays_due(conn, now.month, now.day, now, str(now.year), 500)
    for one in due:
        async with pool.acquire() as conn, conn.transaction():
            earned += bool(
                await earn(
                    conn,
                    ids=ids,
                    merchant_id=one.merchant_id,
                    program_id=one.program_id,
                    customer_id=one.customer_id,
                    source="birthday",
                    key=str(now.year),
                    at=now,
                )
            )
    return earned


async def earn(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    source: str,
    key: str,
    at: datetime,
    day_start: datetime | None = None,
    found: tuple[int, PointsRules] | None = None,
) -> int:
    """Fixed points for one thing done (`source`, once per `key`), by the program's rule
    for it, times the customer's level multiplier. Shares count up to the rule's daily cap
    from `day_start`. The points earned (0: none)."""
    found = found or await current(conn, merchant_id=merchant_id, program_id=program_id)
    if found is None:
        return 0
    version, points_rules = found
    rule = getattr(points_rules.earning, _RULE_OF.get(source, source))
    if rule is None or not rule.enabled:
        return 0
    if source == "share" and day_start is not None:
        today = await repo.shares_since(conn, merchant_id, program_id, customer_id, day_start)
        if today >= rule.per_day:
            return 0
    multiplier = rules.FULL  # only a level multiplies
    if points_rules.levels is not None:
        multiplier = await levels.multiplier(
            conn, merchant_id=merchant_id, program_id=program_id, customer_id=customer_id
        )
    points = rule.points * multiplier // rules.FULL
    earned = await repo.earn_fixed(
        conn,
        merchant_id,
        customer_id,
        source,
        key,
        at,
        program_id,
        version,
        points,
        points_rules.expiry.months,
        points_rules.expiry.since,
    )
    if earned and points_rules.levels is not None:
        await _recompute(conn, ids, merchant_id, program_id, customer_id, found)
    return earned


async def _recompute(
    conn: asyncpg.Connection,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    customer_id: str,
    found: tuple[int, PointsRules] | None = None,
) -> None:
    found = found or await current(conn, merchant_id=merchant_id, program_id=program_id)
    if found is None or found[1].levels is None:
        return
    await levels.recompute(
        conn,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=customer_id,
        levels=found[1].levels,
        rules_version=found[0],
        program_public_id=ids.encode("program", program_id),
        preferences=await preferences.for_event(
            conn, merchant_id=merchant_id, customer_id=customer_id
        ),
    )


async def rebalance_order(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    order_pk: int,
    total: int,
    refunded: int,
) -> None:
    """A refund or cancel (the order row locked by the caller): each lot the order earned is
    brought down to its share of what is left of the order, taken from that lot first, then
    from the customer's other lots oldest first. Points already spent stay spent: what the
    balance cannot give now is taken at the next refund of the order."""
    ref = f"order:{order_pk}"
    for lot in await repo.order_lots(conn, merchant_id, order_pk):
        await repo.lock_account(conn, merchant_id, lot.program_id, lot.customer_id)
        taken = -sum(
            d
            for _, d in await repo.entries_of(
                conn, merchant_id, lot.program_id, lot.customer_id, "refund", ref
            )
        )
        due = lot.points - rules.kept_after_refunds(lot.points, total, refunded) - taken
        if due <= 0:
            continue
        now = datetime.now(UTC)
        open_lots = _spendable(
            await repo.open_lots(conn, merchant_id, lot.program_id, lot.customer_id), now
        )
        own = [x for x in open_lots if x.id == lot.id]
        others = [x for x in open_lots if x.id != lot.id]
        moves = rules.take(own + others, due)
        await repo.move(
            conn,
            merchant_id,
            lot.program_id,
            lot.customer_id,
            [(lot_id, -part) for lot_id, part in moves],
            "refund",
            ref,
        )
        await _recompute(conn, ids, merchant_id, lot.program_id, lot.customer_id)


async def earn_share(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    channel: str,
    at: datetime,
) -> int:
    """A counted share (a person, not a bot): once per channel and day (the merchant's),
    at most the rule's `per_day` shares a day."""
    found = await repo.advocate(conn, merchant_id, advocate_id)
    if found is None:
        return 0
    customer_id, zone = found
    start = day_start(at, zone)
    return await earn(
        conn,
        ids=ids,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=customer_id,
        source="share",
        key=f"{start.date().isoformat()}:{channel}",
        at=at,
        day_start=start,
    )


async def earn_as_advocate(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    source: str,
    key: str,
    at: datetime,
) -> int:
    """Points for the advocate behind `advocate_id` (a published story, a friend's order)."""
    found = await repo.advocate(conn, merchant_id, advocate_id)
    if found is None:
        return 0
    return await earn(
        conn,
        ids=ids,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=found[0],
        source=source,
        key=key,
        at=at,
    )


async def earn_for_referral(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    advocate_id: int,
    friend_customer_id: str | None,
    referral_id: int,
    at: datetime,
) -> None:
    """A referred friend's first order: points for the advocate and for the friend (once per
    referral), and the advocate's level counts the friend."""
    rules_now = await current(conn, merchant_id=merchant_id, program_id=program_id)
    if rules_now is None:  # most programs: no points, so no advocate to look up either
        return
    found = await repo.advocate(conn, merchant_id, advocate_id)
    if found is None:
        return
    common = dict(
        ids=ids,
        merchant_id=merchant_id,
        program_id=program_id,
        key=str(referral_id),
        at=at,
        found=rules_now,  # read once for both parties
    )
    earned = await earn(conn, customer_id=found[0], source="advocate_referral", **common)
    if not earned:
        await _recompute(conn, ids, merchant_id, program_id, found[0], rules_now)
    if friend_customer_id is not None:
        await earn(conn, customer_id=friend_customer_id, source="friend_order", **common)


async def advocate_rule(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int, customer_id: str
) -> RewardRule | None:
    """The referral reward the advocate's level gives instead of the program's (None: the
    program's own)."""
    found = await current(conn, merchant_id=merchant_id, program_id=program_id)
    if found is None or found[1].levels is None:
        return None
    return await levels.advocate_rule(
        conn,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=customer_id,
        levels=found[1].levels,
    )


async def level_explained(
    conn: asyncpg.Connection, *, merchant_id: int, program_id: int, advocate_id: int
) -> LevelExplained | None:
    """The advocate's level for the explain view (None: the program has no levels)."""
    found = await current(conn, merchant_id=merchant_id, program_id=program_id)
    advocate = await repo.advocate(conn, merchant_id, advocate_id)
    if found is None or found[1].levels is None or advocate is None:
        return None
    return await levels.explained(
        conn,
        merchant_id=merchant_id,
        program_id=program_id,
        customer_id=advocate[0],
        levels=found[1].levels,
    )


def _spendable(lots: list[repo.LotRow], now: datetime) -> list[rules.OpenLot]:
    return [
        rules.OpenLot(lot.id, lot.remaining)
        for lot in lots
        if lot.expires_at is None or lot.expires_at > now
    ]


def _live(lots: list[repo.LotRow], account: repo.AccountRow | None, now: datetime) -> list:
    if account is not None and account.expires_at is not None and account.expires_at <= now:
        return []
    return [lot for lot in lots if lot.expires_at is None or lot.expires_at > now]


# --- redemptions -------------------------------------------------------------------------


def _item(points_rules: PointsRules, item_id: str) -> CatalogueItem:
    for item in points_rules.catalogue:
        if item.id == item_id:
            return item
    raise NotFound(f"the catalogue has no item {item_id}", code="catalogue_item_not_found")


async def _redemption(
    conn: asyncpg.Connection, ids: PublicIds, merchant_id: int, row: repo.RedemptionRow
) -> Redemption:
    reward = await rewards.get(
        conn, ids=ids, merchant_id=merchant_id, reward_id=ids.encode("reward", row.reward_id)
    )
    coupon = await coupons.of_reward(conn, merchant_id=merchant_id, reward_id=row.reward_id)
    return Redemption(
        id=ids.encode("points_redemption", row.id),
        customer_id=row.customer_id,
        program_id=ids.encode("program", row.program_id),
        item=row.item,
        points=row.points,
        kind=reward.kind,
        amount=reward.original_amount,
        currency=reward.currency or "",
        coupon_code=coupon.code if coupon is not None else None,
        reward_id=reward.id,
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
    )


async def redeem(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    customer_id: str,
    data: RedemptionRequest,
) -> Redemption:
    """Spend points on a catalogue item, oldest lots first. The account row is locked, so
    concurrent redemptions of one balance run one after the other and the last that does
    not fit is refused (`insufficient_points`)."""
    ids = runtime.ids
    program_id = ids.decode("program", data.program_id)
    found = await current(conn, merchant_id=caller.merchant_id, program_id=program_id)
    if found is None:
        raise NotFound(
            f"program {data.program_id} has no points rules", code="points_rules_not_found"
        )
    version, points_rules = found
    item = _item(points_rules, data.item)
    # The advocate first, then the account: an order earning this advocate referral points
    # holds their advocate row before it reaches the account, so both take them in one order.
    advocate, _ = await advocates.upsert(
        conn,
        runtime=runtime,
        caller=caller,
        data=AdvocateUpsert(program_id=data.program_id, customer_id=customer_id),
    )
    account = await repo.lock_account(conn, caller.merchant_id, program_id, customer_id)
    now = datetime.now(UTC)
    lots = []
    if account is not None:
        lots = _live(
            await repo.open_lots(conn, caller.merchant_id, program_id, customer_id), account, now
        )
    balance = sum(lot.remaining for lot in lots)
    if balance < item.points:
        raise Conflict(
            f"{item.id} costs {item.points} points; the balance is {balance}",
            code="insufficient_points",
        )
    reward = await rewards.create(
        conn,
        ids=ids,
        merchant_id=caller.merchant_id,
        program_id=program_id,
        referral_id=None,
        advocate_id=ids.decode("advocate", advocate.id),
        side="advocate",
        payee_key=customer_id,
        rule=RewardRule(kind=item.kind, amounts={item.currency: item.amount}),
        amount=Amount(item.amount, item.currency),
        order_pk=None,
        milestone=None,
        status="pending",
        hold_until=now,
        earned_at=now,
        coupon_days=item.coupon_days,
        reason="points_redeemed",
        rules_version=version,
    )
    assert reward is not None  # no referral and no milestone: nothing it could clash with
    # Bought with points already spent: no hold.
    await rewards.transition(
        conn,
        ids=ids,
        merchant_id=caller.merchant_id,
        reward_id=reward.id,
        expected={"pending"},
        to="approved",
        reason="points_redeemed",
    )
    row = await repo.insert_redemption(
        conn, caller.merchant_id, program_id, customer_id, item.id, item.points, reward.id
    )
    moves = rules.take([rules.OpenLot(lot.id, lot.remaining) for lot in lots], item.points)
    await repo.move(
        conn,
        caller.merchant_id,
        program_id,
        customer_id,
        [(lot_id, -part) for lot_id, part in moves],
        "redeem",
        f"redemption:{row.id}",
    )
    redemption = await _redemption(conn, ids, caller.merchant_id, row)
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="points.redeemed",
        data={**msgspec.to_builtins(redemption), **await _preferences(conn, caller, customer_id)},
    )
    return redemption


async def cancel(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    customer_id: str,
    redemption_id: str,
) -> Redemption:
    """Cancel a redemption while its coupon is unused (or its store credit unpaid): the
    reward is reversed (its coupon voided) and the points go back to the lots they came
    from. Idempotent: a cancelled redemption answers as it is."""
    ids = runtime.ids
    row = await repo.redemption(
        conn, caller.merchant_id, ids.decode("points_redemption", redemption_id), customer_id
    )
    if row is None:
        raise NotFound(f"no redemption {redemption_id}", code="points_redemption_not_found")
    await repo.lock_account(conn, caller.merchant_id, row.program_id, customer_id)
    row = await repo.redemption(conn, caller.merchant_id, row.id, customer_id)
    assert row is not None
    if row.status == "cancelled":
        return await _redemption(conn, ids, caller.merchant_id, row)
    coupon = await coupons.of_reward(conn, merchant_id=caller.merchant_id, reward_id=row.reward_id)
    if coupon is not None and coupon.status != "issued":
        raise Conflict(
            f"the coupon is {coupon.status}: only an unused coupon can be cancelled",
            code="redemption_used",
        )
    try:
        await rewards.transition(
            conn,
            ids=ids,
            merchant_id=caller.merchant_id,
            reward_id=row.reward_id,
            expected={"approved"},
            to="reversed",
            reason="points_redemption_cancelled",
        )
    except Conflict:
        raise Conflict(
            "the store credit is paid out: it can no longer be cancelled", code="redemption_used"
        ) from None
    ref = f"redemption:{row.id}"
    spent = await repo.entries_of(
        conn, caller.merchant_id, row.program_id, customer_id, "redeem", ref
    )
    await repo.move(
        conn,
        caller.merchant_id,
        row.program_id,
        customer_id,
        [(lot_id, -delta) for lot_id, delta in spent],
        "cancel",
        ref,
    )
    row = await repo.cancel_redemption(conn, caller.merchant_id, row.id)
    redemption = await _redemption(conn, ids, caller.merchant_id, row)
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="points.redemption_cancelled",
        data={**msgspec.to_builtins(redemption), **await _preferences(conn, caller, customer_id)},
    )
    return redemption


async def _preferences(conn: asyncpg.Connection, caller: Caller, customer_id: str) -> dict:
    found = await preferences.for_event(
        conn, merchant_id=caller.merchant_id, customer_id=customer_id
    )
    return {"preferences": found}


# --- reading -----------------------------------------------------------------------------


async def balance(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    customer_id: str,
    program_id: str,
    now: datetime | None = None,
) -> Balance:
    """The customer's balance (open lots not yet past expiry), their lots, recent history,
    the next expiry, their level and the catalogue."""
    pk = ids.decode("program", program_id)
    now = now or datetime.now(UTC)
    found = await current(conn, merchant_id=merchant_id, program_id=pk)
    if found is None and not await repo.program_exists(conn, merchant_id, pk):
        raise NotFound(f"no program with id {program_id}", code="program_not_found")
    lots = await repo.open_lots(conn, merchant_id, pk, customer_id)
    account = await repo.account(conn, merchant_id, pk, customer_id)
    live = _live(lots, account, now)
    next_expiry = None
    if account is not None and account.expires_at is not None and live:
        next_expiry = NextExpiry(points=sum(lot.remaining for lot in live), at=account.expires_at)
    else:
        dated = sorted((lot.expires_at, lot.remaining) for lot in live if lot.expires_at)
        if dated:
            first = dated[0][0]
            next_expiry = NextExpiry(points=sum(p for at, p in dated if at == first), at=first)
    entries = await repo.history(conn, merchant_id, pk, customer_id, HISTORY_LENGTH)
    return Balance(
        customer_id=customer_id,
        program_id=program_id,
        balance=sum(lot.remaining for lot in live),
        lots=[
            Lot(
                id=ids.encode("points_lot", lot.id),
                source=lot.source,
                points=lot.points,
                remaining=lot.remaining,
                earned_at=lot.earned_at,
                expires_at=lot.expires_at or (account.expires_at if account else None),
            )
            for lot in live
        ],
        history=[
            Entry(
                kind=e.kind,
                delta=e.delta,
                lot_id=ids.encode("points_lot", e.lot_id),
                ref=e.ref,
                created_at=e.created_at,
            )
            for e in entries
        ],
        next_expiry=next_expiry,
        level=await levels.view(
            conn,
            merchant_id=merchant_id,
            program_id=pk,
            customer_id=customer_id,
            levels=found[1].levels if found else None,
        ),
        catalogue=found[1].catalogue if found else [],
    )


async def list_redemptions(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, program_id: int, customer_id: str
) -> list[Redemption]:
    rows = await repo.redemptions(conn, merchant_id, program_id, customer_id, 20)
    return [await _redemption(conn, ids, merchant_id, row) for row in rows]


# --- the expiry job ----------------------------------------------------------------------


async def expire_due(
    pool: asyncpg.Pool,
    *,
    ids: PublicIds,
    batch: int = 200,
    now: datetime | None = None,
    rounds: int = 50,
) -> int:
    """Expire lots past their time (oldest first: a lot's expiry is its earning plus the
    period, or the account's last activity plus the period for all of them) and tell the
    shop 30 days ahead (`points.expiring`, once per lot or account expiry). Idempotent, and
    safe with many instances: each account is taken FOR UPDATE SKIP LOCKED, re-read under
    the lock, and an expired lot has nothing left to expire."""
    now = now or datetime.now(UTC)
    notice = rules.EXPIRING_NOTICE.days
    expired = 0
    for _ in range(rounds):
        async with pool.acquire() as conn:
            due = await repo.due_accounts(conn, now, notice, batch)
        for account in due:
            async with pool.acquire() as conn, conn.transaction():
                expired += await _expire_account(conn, ids, account, now)
        if len(due) < batch:
            break
    return expired


async def _expire_account(
    conn: asyncpg.Connection, ids: PublicIds, due: repo.DueAccount, now: datetime
) -> int:
    merchant_id, program_id, customer_id = due.merchant_id, due.program_id, due.customer_id
    account = await repo.take_account(conn, merchant_id, program_id, customer_id)
    if account is None:
        return 0  # another instance has it now
    lots = await repo.open_lots(conn, merchant_id, program_id, customer_id)
    everything = account.expires_at is not None and account.expires_at <= now
    gone = [lot for lot in lots if everything or (lot.expires_at and lot.expires_at <= now)]
    await repo.move(
        conn,
        merchant_id,
        program_id,
        customer_id,
        [(lot.id, -lot.remaining) for lot in gone],
        "expire",
        "expiry",
    )
    horizon = now + rules.EXPIRING_NOTICE
    left = [lot for lot in lots if lot not in gone]
    account_soon = (
        account.expires_at is not None
        and account.expires_at <= horizon
        and account.expiring_told_at is None
        and left
    )
    soon = [
        lot
        for lot in left
        if lot.expires_at is not None and lot.expires_at <= horizon and lot.told_at is None
    ]
    if account_soon or soon:
        points = sum(lot.remaining for lot in (left if account_soon else soon))
        at = account.expires_at if account_soon else min(lot.expires_at for lot in soon)
        prefs = await preferences.for_event(conn, merchant_id=merchant_id, customer_id=customer_id)
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type="points.expiring",
            data={
                "customer_id": customer_id,
                "program_id": ids.encode("program", program_id),
                "points": points,
                "expires_at": at.isoformat(),
                "preferences": prefs,
            },
        )
        await repo.mark_told(
            conn,
            merchant_id,
            program_id,
            customer_id,
            now,
            [lot.id for lot in soon],
            bool(account_soon),
        )
    if gone:
        await _recompute(conn, ids, merchant_id, program_id, customer_id)
    return len(gone)


def day_start(at: datetime, zone: str) -> datetime:
    local = at.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> int:
    """Their rows name the erasure's tombstone from now on; every number stays."""
    return await repo.erase(conn, subject.merchant_id, subject.customer_id, tombstones.customer_id)
