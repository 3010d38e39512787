"""Programs: a merchant's referral campaign and its settings."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import msgspec
import structlog

from referral.audit import service as audit
from referral.events import service as events
from referral.fraud import policy as fraud_policy
from referral.lib import money
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.lib.pagination import Cursor, Page
from referral.merchants.service import Caller
from referral.programs import repo, rules
from referral.programs.schemas import (
    Program,
    ProgramAction,
    ProgramCreate,
    ProgramUpdate,
    RewardRule,
    RewardSettings,
)
from referral.runtime import Runtime

log = structlog.get_logger("referral.programs")


def check_url(field: str, url: str) -> None:
    """Only absolute http(s) URLs: a redirect target is never relative or a script."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:  # e.g. "https://[::1" or "https://shop.example:99999/"
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"{field} must be an absolute http(s) URL", code="invalid_url", field=field
        )
    if not url.isascii():
        raise InvalidInput(
            f"{field} must be ASCII: percent-encode other characters "
            "(and use the punycode form of the host)",
            code="invalid_url",
            field=field,
        )
    if any(ch in url for ch in "\r\n\t "):
        raise InvalidInput(f"{field} may not contain whitespace", code="invalid_url", field=field)


def _check_rule(side: str, rule: RewardRule | None) -> None:
    if rule is None:
        return
    given = {
        name for name in ("amounts", "basis_points", "points") if getattr(rule, name) is not None
    }
    if rule.kind == "points":
        allowed, wanted = [{"points"}], "points"
    else:
        allowed = [{"amounts"}, {"basis_points"}]
        wanted = "either amounts (fixed, per currency) or basis_points (of the subtotal)"
    if given not in allowed:
        raise InvalidInput(
            f"rewards.{side}: a {rule.kind} reward takes {wanted}", code="invalid_reward_rule"
        )
    for currency in rule.amounts or {}:
        _check_currency(f"rewards.{side}.amounts", currency)
    if rule.coupon_source == "pool" and (side != "friend" or rule.kind != "coupon"):
        raise InvalidInput(
            f"rewards.{side}: coupon_source pool is for the friend's coupon reward only",
            code="invalid_reward_rule",
        )


def _check_currency(field: str, currency: str) -> None:
    if not money.is_currency(currency):
        raise InvalidInput(f"{field}: unknown currency {currency}", code="unknown_currency")


def check_rewards(rewards: RewardSettings) -> None:
    _check_rule("advocate", rewards.advocate)
    _check_rule("friend", rewards.friend)
    for tier in rewards.tiers:
        _check_rule(f"tiers[{tier.from_referral}].advocate", tier.advocate)
    for milestone in rewards.milestones:
        _check_rule(f"milestones[{milestone.referrals}].reward", milestone.reward)
    for field, amounts in (
        ("minimum_order", rewards.minimum_order),
        ("caps.max_amount_per_period", rewards.caps.max_amount_per_period),
    ):
        for currency in amounts:
            _check_currency(f"rewards.{field}", currency)
    for name, items, key in (
        ("tiers", rewards.tiers, "from_referral"),
        ("milestones", rewards.milestones, "referrals"),
    ):
        values = [getattr(item, key) for item in items]
        if len(values) != len(set(values)):
            raise InvalidInput(
                f"rewards.{name}: each {key} may appear once", code="invalid_reward_rule"
            )


def check_schedule(starts_at: datetime, ends_at: datetime | None) -> None:
    if not rules.schedule_ok(starts_at, ends_at):
        raise InvalidInput(
            f"ends_at ({ends_at.isoformat() if ends_at else ''}) must be after starts_at "
            f"({starts_at.isoformat()})",
            code="invalid_schedule",
            field="ends_at",
        )


def to_program(ids: PublicIds, caller: Caller, row: repo.ProgramRow) -> Program:
    now = datetime.now(UTC)
    values = msgspec.structs.asdict(row)
    values["id"] = ids.encode("program", row.id)
    values["rewards"] = msgspec.convert(row.rewards, RewardSettings)
    values["fraud_policy"] = fraud_policy.load(row.fraud_policy)
    values["state"] = state = rules.state(row.status, row.starts_at, row.ends_at, now)
    if row.ended_at is None and state == "ended" and row.ends_at is not None:
        values["ended_at"] = row.ends_at  # ended by its schedule
    return Program(**values, livemode=caller.mode == "live")


async def create(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, data: ProgramCreate
) -> Program:
    check_url("landing_url", data.landing_url)
    if data.fallback_url is not None:
        check_url("fallback_url", data.fallback_url)
    check_rewards(data.rewards)
    check_schedule(data.starts_at or datetime.now(UTC), data.ends_at)
    values = {k: getattr(data, k) for k in repo.WRITABLE}
    values["rewards"] = msgspec.to_builtins(data.rewards)
    values["fraud_policy"] = fraud_policy.dump(data.fraud_policy)
    row = await repo.insert(conn, caller.merchant_id, values)
    program = to_program(runtime.ids, caller, row)
    await audit.record(
        conn,
        caller=caller,
        action="program.created",
        subject_type="program",
        subject_id=program.id,
        after=program,
    )
    return program


async def get(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, program_id: str
) -> Program:
    row = await _row(conn, runtime.ids, caller, program_id)
    return to_program(runtime.ids, caller, row)


async def _row(
    conn: asyncpg.Connection,
    ids: PublicIds,
    caller: Caller,
    program_id: str,
    *,
    for_update: bool = False,
) -> repo.ProgramRow:
    row = await repo.get(
        conn, caller.merchant_id, ids.decode("program", program_id), for_update=for_update
    )
    if row is None:
        raise NotFound(f"no program with id {program_id}", code="program_not_found")
    return row


async def update(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    data: ProgramUpdate,
    actor: str = "api",
    expected_updated_at: datetime | None = None,
) -> Program:
    """Also forgets this process's resolved codes, so its redirects follow the change at once.
    A change records `program.updated` with the settings that changed and `actor` (the
    console's person; `api` through the API). With `expected_updated_at` (when the program
    a person edited was last saved) a program saved meanwhile is refused (409
    `program_changed`), so one person's save never silently undoes another's."""
    row = await _row(conn, runtime.ids, caller, program_id, for_update=True)
    if expected_updated_at is not None and row.updated_at != expected_updated_at:
        raise Conflict(
            f"the program was saved at {row.updated_at.isoformat()}, after the version "
            f"edited ({expected_updated_at.isoformat()})",
            code="program_changed",
            updated_at=row.updated_at.isoformat(),
        )
    values = {k: getattr(row, k) for k in repo.WRITABLE}
    for field in repo.WRITABLE:
        # The fraud policy changes only through its own versioned endpoint.
        value = getattr(data, field, msgspec.UNSET)
        if value is not msgspec.UNSET:
            values[field] = value
    was = rules.state(row.status, row.starts_at, row.ends_at, datetime.now(UTC))
    lifecycle = ("status", "starts_at", "ends_at")
    if was == "ended" and any(values[k] != getattr(row, k) for k in lifecycle):
        raise Conflict(
            "the program has ended: its status and schedule stay as they are",
            code="program_ended",
        )
    check_schedule(values["starts_at"], values["ends_at"])
    check_url("landing_url", values["landing_url"])
    if values["fallback_url"] is not None:
        check_url("fallback_url", values["fallback_url"])
    if isinstance(values["rewards"], RewardSettings):
        check_rewards(values["rewards"])
        values["rewards"] = msgspec.to_builtins(values["rewards"])
    before = {k: getattr(row, k) for k in repo.WRITABLE}
    program_before = to_program(runtime.ids, caller, row)
    row = await repo.update(conn, caller.merchant_id, row.id, values)
    changed = sorted(k for k in repo.WRITABLE if getattr(row, k) != before[k])
    if changed:
        await events.emit(
            conn,
            merchant_id=caller.merchant_id,
            type="program.updated",
            data={"program_id": program_id, "changed": changed, "actor": actor},
        )
    program = to_program(runtime.ids, caller, row)
    if "status" in changed and {before["status"], row.status} == {"active", "paused"}:
        # Paused or resumed by its status: told as /pause and /resume tell it, so a shop
        # listening for program.paused hears of it whichever way it was done.
        await events.emit(
            conn,
            merchant_id=caller.merchant_id,
            type="program.paused" if row.status == "paused" else "program.resumed",
            data={"program_id": program_id, "state": program.state, "actor": actor},
        )
    was, now = audit.changed_fields(program_before, program)
    await audit.record(
        conn,
        caller=caller,
        action="program.updated",
        subject_type="program",
        subject_id=program.id,
        before=was,
        after=now,
    )
    runtime.codes.forget_all()
    return program


async def change_state(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    program_id: str,
    action: rules.Action,
    data: ProgramAction,
) -> Program:
    """Pause, resume or end a program (`rules.transition`): recorded as the event
    `program.paused`, `program.resumed` or `program.ended` and in the audit log. Asking for
    the state it is already in changes nothing; an ended program stays ended (409
    `program_ended`). Its links follow at once on every instance (migration 0024's
    notification); referrals already made keep their rewards and follow their hold."""
    row = await _row(conn, runtime.ids, caller, program_id, for_update=True)
    before = to_program(runtime.ids, caller, row)
    try:
        status = rules.transition(action, before.state)
    except ValueError as refused:
        code = str(refused)
        if code == "program_ended":
            raise Conflict(f"the program has ended: it cannot {action}", code=code) from None
        raise Conflict(
            f"a {before.state} program cannot {action}: change a draft or archived "
            "program's status with PATCH",
            code=code,
            state=before.state,
        ) from None
    if status is None:
        return before
    row = await repo.set_status(conn, caller.merchant_id, row.id, status)
    program = to_program(runtime.ids, caller, row)
    event = {"pause": "program.paused", "resume": "program.resumed", "end": "program.ended"}
    payload = {"program_id": program.id, "state": program.state, "actor": data.actor}
    if data.note is not None:
        payload["note"] = data.note
    if program.ended_at is not None:
        payload["ended_at"] = program.ended_at.isoformat()
    await events.emit(conn, merchant_id=caller.merchant_id, type=event[action], data=payload)
    await audit.record(
        conn,
        caller=caller,
        action=event[action],
        subject_type="program",
        subject_id=program.id,
        before={"status": before.status, "state": before.state},
        after={"status": program.status, "state": program.state},
    )
    log.info("program_state_changed", program_id=row.id, action=action, state=program.state)
    runtime.codes.forget_all()
    return program


async def list_programs(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    status: str | None,
    cursor: Cursor,
) -> Page[Program]:
    rows = await repo.list_page(conn, caller.merchant_id, status=status, cursor=cursor)
    rows, more = cursor.split(rows)
    return Page(data=[to_program(runtime.ids, caller, r) for r in rows], has_more=more)
