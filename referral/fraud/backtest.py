"""Backtests: replay past decisions under a candidate policy, writing nothing.

Each decided referral carries the features its rules saw; the candidate's rules run over
them and the outcome is compared with the decision as made. The replay itself is pure
(`Tally`); `replay()` streams the rows from a read-only transaction. `run()` hands the
replay to a process of its own (`lib/apart.py`): a million referrals take seconds of CPU,
which must not be the serving process's, where checkout calls would wait behind them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import asyncpg
import msgspec

from referral.fraud import repo
from referral.fraud.policy import RULE_NAMES, FraudPolicy
from referral.fraud.rules import Compiled, Features, Identity, evaluate
from referral.fraud.schemas import Backtest, BacktestRequest, Change, RuleCount
from referral.lib.apart import ProcessLane
from referral.lib.emails import normalise_email
from referral.lib.errors import InvalidInput
from referral.lib.ids import PublicIds


class _Fired(msgspec.Struct):
    rule: str


class Made(msgspec.Struct):
    """A stored decision as much as a replay reads of it: decoding skips each reason's
    detail and evidence (most of the stored text) without building them."""

    action: str
    reasons: list[_Fired]
    features: Features | None = None


_decision = msgspec.json.Decoder(Made)
# Rejections a fraud policy made (or a person): the only ones a policy change could undo.
OVERRIDABLE = ("fraud_blocked", "review_rejected")


def not_replayable(current: FraudPolicy, candidate: FraudPolicy) -> list[str]:
    """Candidate settings the stored features cannot answer for: said, not guessed."""
    notes = []
    if sorted(current.blocklist.ips) != sorted(candidate.blocklist.ips):
        notes.append(
            "blocklist.ips: raw IP addresses are never stored, so each referral keeps the "
            "IP blocklist result it had when decided"
        )
    if current.rejected_referrals.window_days != candidate.rejected_referrals.window_days:
        notes.append(
            "rejected_referrals.window_days: rejections were counted over the window in "
            "force when each referral was decided"
        )
    return notes


class Tally:
    """Counts one replay: changes by direction (with sample ids) and rule firings."""

    def __init__(self, compiled: Compiled, samples: int) -> None:
        self.compiled = compiled
        self.samples = samples
        self.referrals = self.replayed = self.without_features = self.ineligible = 0
        self.changes: Counter[tuple[str, str]] = Counter()
        self.sample_ids: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.fired: Counter[str] = Counter()
        self.would_fire: Counter[str] = Counter()

    def add(self, referral_id: int, made: Made | None, who: Identity, *, eligible: bool) -> None:
        """`eligible`: False when eligibility rejected the referral, which no fraud policy
        can change."""
        self.referrals += 1
        if not eligible:
            self.ineligible += 1
            return
        if made is None or made.features is None:
            self.without_features += 1
            return
        self.replayed += 1
        candidate = evaluate(made.features, who, self.compiled)
        for reason in made.reasons:
            self.fired[reason.rule] += 1
        for reason in candidate.reasons:
            self.would_fire[reason.rule] += 1
        if candidate.action != made.action:
            direction = (made.action, candidate.action)
            self.changes[direction] += 1
            if len(self.sample_ids[direction]) < self.samples:
                self.sample_ids[direction].append(referral_id)


def _check(request: BacktestRequest) -> None:
    if request.created_from >= request.created_before:
        raise InvalidInput("created_from must be before created_before", code="invalid_time_range")


async def run(
    lane: ProcessLane,
    *,
    database_url: str,
    hashids_salt: str,
    merchant_id: int,
    program_id: int,
    current: FraudPolicy,
    request: BacktestRequest,
) -> Backtest:
    """The replay in `lane`'s process, on a connection of its own (a repeatable-read,
    read-only transaction: one snapshot, nothing written)."""
    _check(request)
    answer = await lane.run(
        replay_apart,
        database_url,
        hashids_salt,
        merchant_id,
        program_id,
        msgspec.json.encode(current),
        msgspec.json.encode(request),
    )
    if answer.startswith(_OUT_OF_RANGE):
        raise InvalidInput(
            "a number or time in the request is out of the range that can be stored",
            code="value_out_of_range",
        )
    return msgspec.json.decode(answer, type=Backtest)


# What the child answers when the database could not take the request's values (a time
# beyond PostgreSQL's range): an exception's cause does not survive the trip between
# processes, so the parent could no longer tell it from any other data error.
_OUT_OF_RANGE = b"out of range"


def replay_apart(
    database_url: str,
    hashids_salt: str,
    merchant_id: int,
    program_id: int,
    current: bytes,
    request: bytes,
) -> bytes:
    """The lane's entry point: arguments and answer as JSON, which crosses processes as is."""
    try:
        return asyncio.run(
            _replay_apart(
                database_url,
                PublicIds(hashids_salt),
                merchant_id,
                program_id,
                msgspec.json.decode(current, type=FraudPolicy),
                msgspec.json.decode(request, type=BacktestRequest),
            )
        )
    except asyncpg.DataError:
        return _OUT_OF_RANGE


async def _replay_apart(
    database_url: str,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    current: FraudPolicy,
    request: BacktestRequest,
) -> bytes:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            done = await replay(
                conn,
                ids=ids,
                merchant_id=merchant_id,
                program_id=program_id,
                current=current,
                request=request,
            )
        return msgspec.json.encode(done)
    finally:
        await conn.close()


async def replay(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    merchant_id: int,
    program_id: int,
    current: FraudPolicy,
    request: BacktestRequest,
) -> Backtest:
    """The replay itself, on `conn` (its caller's transaction, made read-only here)."""
    _check(request)
    started = time.perf_counter()
    tally = Tally(Compiled(request.policy), request.samples)
    # The request's transaction: made read-only, so a replay can never write.
    await repo.read_only(conn)
    normalised: dict[str, str | None] = {}  # advocates' emails, each normalised once
    async for chunk in repo.replay(
        conn, merchant_id, program_id, request.created_from, request.created_before
    ):
        for row in chunk:
            made = _decision.decode(row.decision) if row.decision else None
            advocate_email = normalised.get(row.advocate_email)
            if advocate_email is None and row.advocate_email is not None:
                advocate_email = normalise_email(row.advocate_email)
                normalised[row.advocate_email] = advocate_email
            who = Identity(
                friend_customer_id=row.friend_customer_id,
                friend_email=row.friend_email_normalised,
                advocate_customer_id=row.advocate_customer_id,
                advocate_email=advocate_email,
            )
            eligible = row.status != "rejected" or row.rejection_reason in OVERRIDABLE
            tally.add(row.id, made, who, eligible=eligible)
    changes = [
        Change(
            was=was,
            would_be=would_be,
            count=count,
            sample_ids=[ids.encode("referral", i) for i in tally.sample_ids[(was, would_be)]],
        )
        for (was, would_be), count in tally.changes.most_common()
    ]
    changed = sum(tally.changes.values())
    return Backtest(
        program_id=ids.encode("program", program_id),
        created_from=request.created_from,
        created_before=request.created_before,
        referrals=tally.referrals,
        replayed=tally.replayed,
        without_features=tally.without_features,
        ineligible=tally.ineligible,
        unchanged=tally.replayed - changed,
        changed=changed,
        changes=changes,
        rules=[
            RuleCount(rule=name, fired=tally.fired[name], would_fire=tally.would_fire[name])
            for name in RULE_NAMES
        ],
        not_replayable=not_replayable(current, request.policy),
        elapsed_ms=round((time.perf_counter() - started) * 1000),
    )
