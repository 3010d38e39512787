"""The fraud decision, inside the order's (or signup's) transaction.

Attribution calls `decide()` after eligibility. The decision can only add to eligibility:
allow (flags shown as reasons), review (rewards held in `in_review` until a person decides)
or block (the referral is rejected). One statement gathers the features; the pure rules in
`rules.py` decide; the features are stored with the decision for backtests.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

import asyncpg
import structlog
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS

from referral.audit import service as audit
from referral.customers.schemas import ExportedSignal, ExportedSignals, Subject
from referral.events import service as events
from referral.fraud import backtest as backtests
from referral.fraud import repo
from referral.fraud.policy import RULE_NAMES, FraudPolicy, dump
from referral.fraud.rules import (
    Decision,
    Features,
    Identity,
    compile_policy,
    domain_of,
    evaluate,
)
from referral.fraud.schemas import Backtest, BacktestRequest, PolicyDocument
from referral.lib.apart import ProcessLane
from referral.lib.errors import Conflict, NotFound
from referral.lib.ids import PublicIds
from referral.settings import Settings

if TYPE_CHECKING:
    from referral.merchants.service import Caller

log = structlog.get_logger("referral.fraud")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Test mode only: `<rule>@fraud.test` or 192.0.2.N (the N-th rule, 1-based) fire that rule,
# so a shop can see every decision from its staging checkout. `.test` and 192.0.2.0/24 are
# reserved (RFC 2606, RFC 5737): no real customer has them.
MAGIC_EMAIL_DOMAIN = "fraud.test"
MAGIC_NETWORK = ipaddress.ip_network("192.0.2.0/24")


@dataclass(frozen=True, kw_only=True)
class Context:
    """What `decide()` needs from the call. `ip` is the raw address, used only for the live
    CIDR blocklist check and never stored."""

    merchant_id: int
    program_id: int
    advocate_id: int
    identity: Identity
    event: Literal["signup", "order"]
    occurred_at: datetime
    new_customer: bool
    livemode: bool
    ip: IpAddress | None
    ip_hash: bytes | None
    signals: list[tuple[str, bytes]]
    referer_host: str | None
    clicked_at: datetime | None


def magic_rules(email: str | None, ip: IpAddress | None) -> list[str]:
    """The rules a test-mode magic input forces."""
    forced = []
    if email and email.endswith("@" + MAGIC_EMAIL_DOMAIN):
        local = email.rpartition("@")[0]
        if local in RULE_NAMES:
            forced.append(local)
    if ip is not None and ip in MAGIC_NETWORK:
        n = int(ip) - int(MAGIC_NETWORK.network_address)
        if 1 <= n <= len(RULE_NAMES) and RULE_NAMES[n - 1] not in forced:
            forced.append(RULE_NAMES[n - 1])
    return forced


def _disposable(domain: str | None) -> bool:
    if not domain:
        return False
    labels = domain.split(".")
    return any(".".join(labels[i:]) in DISPOSABLE_DOMAINS for i in range(len(labels) - 1))


def _blocklisted(ip: IpAddress | None, networks: list[ipaddress._BaseNetwork]) -> str | None:
    if ip is None:
        return None
    return next((str(net) for net in networks if ip.version == net.version and ip in net), None)


async def decide(
    conn: asyncpg.Connection, *, context: Context, policy_text: str, policy_version: int
) -> Decision:
    """Gather the features in one statement and evaluate the rules. Acting on the decision
    (holding rewards, suspending an advocate: `suspends_advocate`) is the caller's."""
    compiled = compile_policy(policy_text)
    policy = compiled.policy
    who = context.identity
    kinds = [kind for kind, _ in context.signals]
    values = [value for _, value in context.signals]
    row = await repo.features(
        conn,
        context.merchant_id,
        who.advocate_customer_id,
        kinds,
        values,
        context.advocate_id,
        context.ip_hash,
        context.occurred_at,
        who.friend_customer_id,
        who.advocate_email,
        policy.rejected_referrals.window_days,
        repo.FRAUD_REJECTIONS,
    )
    clicked = context.clicked_at
    features = Features(
        event=context.event,
        matched=sorted(row.matched),
        new_customer=context.new_customer,
        disposable_domain=_disposable(domain_of(who.friend_email)),
        advocate_referrals_hour=row.advocate_hour,
        advocate_referrals_day=row.advocate_day,
        ip_events_day=row.ip_day,
        referer_host=context.referer_host,
        reciprocal=row.reciprocal,
        seconds_since_click=max(0, int((context.occurred_at - clicked).total_seconds()))
        if clicked
        else None,
        advocate_rejected=row.advocate_rejected,
        ip_blocklisted=_blocklisted(context.ip, compiled.ip_networks),
        forced=[] if context.livemode else magic_rules(who.friend_email, context.ip),
    )
    decision = evaluate(features, who, compiled, version=policy_version)
    if decision.action != "allow":
        log.info(
            "fraud_decision",
            advocate_id=context.advocate_id,
            action=decision.action,
            score=decision.score,
            rules=[r.rule for r in decision.reasons],
        )
    return decision


def suspends_advocate(decision: Decision, *, policy_text: str) -> bool:
    """Whether this decision suspends the advocate's codes: too many of their referrals were
    rejected, and the policy acts on it."""
    policy = compile_policy(policy_text).policy
    return policy.rejected_referrals.suspend_codes and any(
        r.rule == "rejected_referrals" and r.action != "flag" for r in decision.reasons
    )


async def remember(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    customer_id: str | None,
    signals: list[tuple[str, bytes]],
    at: datetime,
) -> None:
    """Keep what this customer was seen with, for when they refer or are referred later."""
    if customer_id:
        await repo.remember(conn, merchant_id, customer_id, signals, at)


# --- the policy as a resource ---------------------------------------------------------


async def get_policy(
    conn: asyncpg.Connection, *, ids: PublicIds, merchant_id: int, program_id: str
) -> PolicyDocument:
    row = await repo.policy(conn, merchant_id, ids.decode("program", program_id))
    if row is None:
        raise NotFound(f"no program with id {program_id}", code="program_not_found")
    return _document(program_id, row)


async def put_policy(
    conn: asyncpg.Connection,
    *,
    ids: PublicIds,
    caller: Caller,
    program_id: str,
    policy: FraudPolicy,
    actor: str = "api",
    expected_version: int | None = None,
) -> PolicyDocument:
    """Replace the whole policy (validated before it gets here) and bump its version. The
    outbox keeps each version with who saved it, so who relied on which policy when stays
    answerable. With `expected_version` (the version a person previewed against) a policy
    changed meanwhile is refused (409 `fraud_policy_version_changed`), never overwritten."""
    merchant_id = caller.merchant_id
    stored = dump(policy)
    internal = ids.decode("program", program_id)
    row = await repo.set_policy(conn, merchant_id, internal, stored, expected_version)
    if row is None:
        current = await repo.policy(conn, merchant_id, internal)
        if current is None:
            raise NotFound(f"no program with id {program_id}", code="program_not_found")
        raise Conflict(
            f"the fraud policy changed since version {expected_version}: it is at version "
            f"{current.version} now",
            code="fraud_policy_version_changed",
            version=current.version,
        )
    await events.emit(
        conn,
        merchant_id=merchant_id,
        type="program.fraud_policy_changed",
        data={"program_id": program_id, "version": row.version, "policy": stored, "actor": actor},
    )
    log.info("fraud_policy_changed", program_id=program_id, version=row.version)
    replaced = compile_policy(row.replaced_policy).policy
    document = _document(program_id, row)  # type: ignore[arg-type]
    await audit.record(
        conn,
        caller=caller,
        action="fraud_policy.replaced",
        subject_type="program",
        subject_id=program_id,
        before={"version": row.replaced_version, "policy": replaced},
        after={"version": document.version, "policy": document.policy},
    )
    return document


def _document(program_id: str, row: repo.PolicyRow) -> PolicyDocument:
    return PolicyDocument(
        program_id=program_id,
        version=row.version,
        policy=compile_policy(row.policy).policy,
        updated_at=row.updated_at,
    )


class BacktestContext(Protocol):
    """What a backtest needs of the app's `Runtime`: its process lane and settings."""

    ids: PublicIds
    settings: Settings
    backtests: ProcessLane


async def backtest(
    conn: asyncpg.Connection,
    *,
    runtime: BacktestContext,
    merchant_id: int,
    program_id: str,
    request: BacktestRequest,
) -> Backtest:
    """Replay the program's past decisions under a candidate policy (writes nothing), in the
    backtest process (`runtime.backtests`), not on the serving process's loop."""
    ids = runtime.ids
    current = await get_policy(conn, ids=ids, merchant_id=merchant_id, program_id=program_id)
    return await backtests.run(
        runtime.backtests,
        database_url=runtime.settings.direct_database_url,
        hashids_salt=runtime.settings.hashids_salt,
        merchant_id=merchant_id,
        program_id=ids.decode("program", program_id),
        current=current.policy,
        request=request,
    )


# --- a customer's data rights (referral/customers/) and retention -------------------------

SIGNALS_NOTE = (
    "What the fraud rules compare a friend with their advocate by: each value is a keyed "
    "hash (HMAC-SHA-256 under the service's key) of an IP address, an IP address with a "
    "browser, a device's visitor id, a payment fingerprint or a shipping address; the raw "
    "values are never stored, and without the key a hash cannot be turned back or tested "
    "against a guess. Kept until {days} days after they were last seen."
)


async def find_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    subject.signals = len(
        await repo.customer_signals(conn, subject.merchant_id, subject.customer_id)
    )


async def export_customer(
    conn: asyncpg.Connection, *, subject: Subject, retention_days: int
) -> ExportedSignals:
    """Their signals, as the hashes they are (and saying so)."""
    rows = await repo.customer_signals(conn, subject.merchant_id, subject.customer_id)
    return ExportedSignals(
        note=SIGNALS_NOTE.format(days=retention_days),
        signals=[
            ExportedSignal(
                kind=r.kind,  # type: ignore[arg-type]
                value=r.value.hex(),
                first_seen_at=r.first_seen_at,
                last_seen_at=r.last_seen_at,
            )
            for r in rows
        ],
    )


async def erase_customer(conn: asyncpg.Connection, *, subject: Subject) -> int:
    """Their signals deleted: an erased person is compared with nobody."""
    return await repo.erase_signals(conn, subject.merchant_id, subject.customer_id)


async def expire_signals(conn: asyncpg.Connection, *, merchant_id: int, before: datetime) -> int:
    """Signals last seen before `before` (the retention window) deleted."""
    return await repo.expire_signals(conn, merchant_id, before)
