"""Attribution: which advocate a friend's signup or order belongs to, and what it earns.

Precedence: a code typed at checkout, then the signed click token from the link (within the
program's window), then an earlier signup of the same customer or email. A friend's first
valid attribution in a program is final. The order, its referral, the eligibility checks,
the fraud decision and both rewards are written in the caller's one transaction.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import structlog

from referral.advocates import service as advocates
from referral.attribution import repo, rules
from referral.attribution.schemas import (
    Attribution,
    FriendOffer,
    OrderRequest,
    OrderResult,
    OrderState,
    Quote,
    QuoteRequest,
    Referral,
    ReferralSummary,
    RefundRequest,
    Review,
    RewardSummary,
    Shopper,
    SignupRequest,
    SignupResult,
)
from referral.codes.codec import COUPON_PREFIX, lookup_key
from referral.events import service as events
from referral.fraud import repo as fraud_repo
from referral.fraud import service as fraud
from referral.fraud.rules import Decision, Identity
from referral.fraud.signals import normalise_address, parse_ip
from referral.lib import money
from referral.lib.emails import normalise_email
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.pagination import split_page
from referral.merchants.service import Caller
from referral.programs.schemas import RewardSettings
from referral.rewards import repo as rewards_repo
from referral.rewards import service as rewards
from referral.rewards.rules import (
    MONEY_KINDS,
    CapUsage,
    apply_caps,
    period_start,
    refund_target,
    rule_amount,
    rule_for_nth,
)
from referral.runtime import Runtime

log = structlog.get_logger("referral.attribution")
MAX_FUTURE = timedelta(minutes=5)


@dataclass
class Candidate:
    """An advocate the shopper's code or click token points to."""

    program_id: int
    advocate_id: int
    code: str
    code_active: bool
    attribution: Attribution


@dataclass
class Resolved:
    candidate: Candidate | None
    coupons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Seen:
    """The friend's network, device, payment and address as this call shows them: the raw
    IP only for live blocklist checks, the rest as keyed hashes."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    ip_hash: bytes | None
    signals: list[tuple[str, bytes]]


def _seen(
    runtime: Runtime,
    shopper: Shopper,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    resolved: Resolved,
) -> Seen:
    ip_hash = runtime.ip_hasher.hashes(ip)[0]
    visitor_ids = [shopper.visitor_id or ""]
    if resolved.candidate is not None:
        visitor_ids.append(resolved.candidate.attribution.visitor_id or "")
    address = getattr(shopper, "shipping_address", None)
    signals = runtime.signals.signals(
        ip_hash=ip_hash,
        user_agent=shopper.user_agent,
        visitor_ids=visitor_ids,
        payment_fingerprint=getattr(shopper, "payment_fingerprint", None),
        address=normalise_address(
            address.line1, address.line2, address.city, address.postal_code, address.country
        )
        if address is not None
        else None,
    )
    return Seen(ip, ip_hash, signals)


@dataclass(frozen=True)
class Purchase:
    order_pk: int
    subtotal: int
    currency: str
    occurred_at: datetime
    is_import: bool
    customer_is_new: bool | None


def _check_time(at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if at.tzinfo is None:
        raise InvalidInput(
            "occurred_at needs a time zone (ISO 8601 with Z or an offset)", code="invalid_timestamp"
        )
    if at > now + MAX_FUTURE:
        raise InvalidInput(
            "occurred_at may not be more than 5 minutes in the future", code="occurred_in_future"
        )
    return at.astimezone(UTC)


def _check_currency(currency: str) -> None:
    if not money.is_currency(currency):
        raise InvalidInput(f"unknown currency {currency}", code="unknown_currency")


def _friend(shopper: Shopper) -> tuple[str | None, str | None, list[str]]:
    """(customer id, normalised email, lock keys). A friend needs one of the two."""
    email = normalise_email(shopper.email)
    if shopper.email and email is None:
        raise InvalidInput("email is not a valid address", code="invalid_email")
    if shopper.customer_id is None and email is None:
        raise InvalidInput(
            "send customer_id or email so the friend can be identified", code="friend_unidentified"
        )
    keys = [f"cid:{shopper.customer_id}"] if shopper.customer_id else []
    if email:
        keys.append(f"email:{email}")
    return shopper.customer_id, email, keys


async def resolve(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    shopper: Shopper,
    at: datetime,
    programs: Programs,
) -> Resolved:
    """The code typed at checkout wins over the link's click token."""
    resolved = Resolved(candidate=None)
    for raw in shopper.codes:
        key = lookup_key(raw)
        if key.startswith(COUPON_PREFIX):
            resolved.coupons.append(key)
            continue
        row = await repo.code_target(conn, key[:40], merchant_id)
        if row is None:
            resolved.notes.append("code_not_found")
            continue
        if resolved.candidate is None:
            resolved.candidate = Candidate(
                row["program_id"],
                row["advocate_id"],
                row["code"],
                row["code_active"],
                Attribution(path="code", code=row["code"]),
            )
    if resolved.candidate is None and shopper.ref_token:
        token = runtime.signer.verify(shopper.ref_token)
        if token is None:
            resolved.notes.append("ref_token_invalid")
            return resolved
        row = await repo.code_target(conn, lookup_key(token.code), merchant_id)
        if row is None:
            resolved.notes.append("ref_token_invalid")
            return resolved
        clicked_at = datetime.fromtimestamp(token.issued_at, UTC)
        window = (await programs.get(row["program_id"]))["attribution_window_days"]
        if at > clicked_at + timedelta(days=window):
            resolved.notes.append("outside_window")
            return resolved
        resolved.candidate = Candidate(
            row["program_id"],
            row["advocate_id"],
            row["code"],
            row["code_active"],
            Attribution(
                path="link",
                code=row["code"],
                click_id=token.click_id,
                channel=token.channel,
                story_id=token.story_id,
                visitor_id=token.visitor_id,
                clicked_at=clicked_at,
                referer_host=token.referer_host,
            ),
        )
    return resolved


class Programs:
    """The programs one call reads, each loaded once: a link-attributed order needs its
    program for the window check and again to settle the referral."""

    def __init__(self, conn: asyncpg.Connection, merchant_id: int) -> None:
        self._conn, self._merchant_id = conn, merchant_id
        self._loaded: dict[int, asyncpg.Record] = {}

    async def get(self, program_id: int) -> asyncpg.Record:
        if program_id not in self._loaded:
            self._loaded[program_id] = await repo.program(self._conn, self._merchant_id, program_id)
        return self._loaded[program_id]


def _settings(program: asyncpg.Record) -> RewardSettings:
    return msgspec.convert(program["rewards"], RewardSettings)


def _subject(
    referral: asyncpg.Record,
    program: asyncpg.Record,
    advocate: asyncpg.Record,
    *,
    is_new: bool,
    purchase: Purchase | None,
    at: datetime,
    code_active: bool,
) -> rules.Subject:
    attribution = referral["attribution"]
    clicked_at = attribution.get("clicked_at")
    return rules.Subject(
        friend_customer_id=referral["friend_customer_id"],
        friend_email=referral["friend_email_normalised"],
        advocate_customer_id=advocate["customer_id"],
        advocate_email=normalise_email(advocate["email"]),
        is_new_customer=is_new,
        subtotal=purchase.subtotal if purchase else None,
        currency=purchase.currency if purchase else None,
        occurred_at=at,
        program_starts_at=program["starts_at"],
        program_active=program["status"] == "active",
        code_active=code_active,
        is_import=purchase.is_import if purchase else False,
        source=referral["source"],
        clicked_at=datetime.fromisoformat(clicked_at) if clicked_at else None,
        window_days=program["attribution_window_days"],
    )


async def _settle(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    referral: asyncpg.Record,
    *,
    seen: Seen,
    purchase: Purchase | None,
    at: datetime,
    code_active: bool,
    programs: Programs,
) -> tuple[asyncpg.Record, list[asyncpg.Record], list[str]]:
    """Decide a pending referral: eligibility, fraud, then both parties' rewards."""
    program = await programs.get(referral["program_id"])
    settings = _settings(program)
    advocate = await repo.advocate(conn, merchant_id, referral["advocate_id"], lock=True)
    if purchase is not None:
        # The shop may know better (orders from before this service): it can only say "not new".
        is_new = purchase.customer_is_new is not False and not await repo.bought_before(
            conn,
            merchant_id,
            purchase.order_pk,
            referral["friend_customer_id"],
            referral["friend_email_normalised"],
            purchase.occurred_at,
        )
    else:
        is_new = not await repo.has_orders(
            conn, merchant_id, referral["friend_customer_id"], referral["friend_email_normalised"]
        )
    subject = _subject(
        referral,
        program,
        advocate,
        is_new=is_new,
        purchase=purchase,
        at=at,
        code_active=code_active,
    )
    checks = rules.check(subject, settings)
    failure = rules.first_failure(checks)
    decision = await fraud.decide(
        conn,
        fraud.Context(
            merchant_id=merchant_id,
            program_id=referral["program_id"],
            advocate_id=referral["advocate_id"],
            advocate_public_id=runtime.ids.encode("advocate", referral["advocate_id"]),
            identity=Identity(
                friend_customer_id=subject.friend_customer_id,
                friend_email=subject.friend_email,
                advocate_customer_id=subject.advocate_customer_id,
                advocate_email=subject.advocate_email,
            ),
            event="signup" if purchase is None else "order",
            occurred_at=at,
            new_customer=is_new,
            livemode=program["mode"] == "live",
            ip=seen.ip,
            ip_hash=seen.ip_hash,
            signals=seen.signals,
            referer_host=referral["attribution"].get("referer_host"),
            clicked_at=subject.clicked_at,
        ),
        policy_text=program["fraud_policy"],
        policy_version=program["fraud_policy_version"],
    )
    if fraud.suspends_advocate(decision, policy_text=program["fraud_policy"]):
        await advocates.suspend_codes(
            conn,
            merchant_id=merchant_id,
            advocate_id=referral["advocate_id"],
            public_id=runtime.ids.encode("advocate", referral["advocate_id"]),
            reason="rejected_referrals",
        )
    notes: list[str] = []
    created: list[asyncpg.Record] = []
    if failure is not None:
        status, reason = "rejected", failure
    elif decision.action == "block":
        status, reason = "rejected", "fraud_blocked"
    else:
        status, reason = ("in_review" if decision.action == "review" else "converted"), None
        trigger_now = (settings.trigger == "signup") == (purchase is None)
        if trigger_now:
            created, notes = await _create_rewards(
                conn,
                runtime,
                merchant_id,
                referral,
                program,
                settings,
                advocate,
                purchase=purchase,
                at=at,
                review=decision.action == "review",
            )
        elif purchase is None:
            status = "pending"  # signed up; rewards come with the first order
    stored_decision = {
        "checks": msgspec.to_builtins(checks),
        "fraud": msgspec.to_builtins(decision),
    }
    settled = await repo.settle_referral(
        conn,
        merchant_id,
        referral["id"],
        status,
        stored_decision,
        reason,
        at,
        purchase.order_pk if purchase else None,
    )
    if status != "pending":
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type=f"referral.{status}",
            data={
                "referral_id": runtime.ids.encode("referral", settled["id"]),
                "advocate_id": runtime.ids.encode("advocate", settled["advocate_id"]),
                "reason": reason,
            },
        )
    log.info(
        "referral_settled",
        referral_id=settled["id"],
        status=status,
        reason=reason,
        decision=decision.action,
    )
    return settled, created, notes


async def _create_rewards(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    referral: asyncpg.Record,
    program: asyncpg.Record,
    settings: RewardSettings,
    advocate: asyncpg.Record,
    *,
    purchase: Purchase | None,
    at: datetime,
    review: bool,
) -> tuple[list[asyncpg.Record], list[str]]:
    notes: list[str] = []
    created: list[asyncpg.Record] = []
    subtotal = purchase.subtotal if purchase else 0
    currency = purchase.currency if purchase else _signup_currency(settings)
    status = "in_review" if review else "pending"
    hold_until = at + timedelta(days=program["hold_days"])
    common = dict(
        merchant_id=merchant_id,
        program_id=referral["program_id"],
        referral_id=referral["id"],
        advocate_id=referral["advocate_id"],
        order_pk=purchase.order_pk if purchase else None,
        milestone=None,
        status=status,
        hold_until=hold_until,
        earned_at=at,
        coupon_days=settings.friend_coupon_days,
    )

    nth = await rewards_repo.earning_referrals(conn, merchant_id, referral["advocate_id"]) + 1
    advocate_rule = rule_for_nth(settings, nth)
    if advocate_rule is not None and currency is not None:
        amount = rule_amount(advocate_rule, subtotal, currency)
        if amount is not None:
            usage = await rewards_repo.cap_usage(
                conn,
                merchant_id,
                referral["advocate_id"],
                amount.currency,
                period_start(settings.caps.period, at, program["time_zone"]),
            )
            amount, cap_reason = apply_caps(
                settings.caps, amount, CapUsage(usage["in_period"], usage["total"], usage["amount"])
            )
            if cap_reason:
                notes.append(cap_reason)
            if amount is not None:
                row = await rewards.create(
                    conn,
                    runtime.ids,
                    side="advocate",
                    payee_key=advocate["customer_id"],
                    rule=advocate_rule,
                    amount=amount,
                    reason=f"referral_{referral['source']}",
                    **common,
                )
                if row is not None:
                    created.append(row)
    if settings.friend is not None and currency is not None:
        amount = rule_amount(settings.friend, subtotal, currency)
        if amount is not None:
            payee = referral["friend_customer_id"] or referral["friend_email_normalised"]
            row = await rewards.create(
                conn,
                runtime.ids,
                side="friend",
                payee_key=payee,
                rule=settings.friend,
                amount=amount,
                reason="friend_welcome",
                **common,
            )
            if row is not None:
                created.append(row)
    return created, notes


async def reward_overridden_block(
    conn: asyncpg.Connection, runtime: Runtime, merchant_id: int, referral: asyncpg.Record
) -> tuple[str, list[asyncpg.Record]]:
    """A person approved a referral the fraud engine blocked: create the rewards it would
    have earned (tiers and caps as they stand now). Returns the referral's new status:
    `pending` when the program rewards the first order and there is none yet."""
    program = await repo.program(conn, merchant_id, referral["program_id"])
    settings = _settings(program)
    advocate = await repo.advocate(conn, merchant_id, referral["advocate_id"], lock=True)
    purchase = None
    if referral["first_order_pk"] is not None:
        order = await repo.order_by_pk(conn, merchant_id, referral["first_order_pk"])
        purchase = Purchase(
            order["id"],
            order["subtotal"],
            order["currency"].strip(),
            order["occurred_at"],
            order["is_import"],
            None,
        )
    if settings.trigger == "first_order" and purchase is None:
        return "pending", []
    created, _ = await _create_rewards(
        conn,
        runtime,
        merchant_id,
        referral,
        program,
        settings,
        advocate,
        purchase=purchase if settings.trigger == "first_order" else None,
        at=purchase.occurred_at if purchase else datetime.now(UTC),
        review=False,
    )
    return "converted", created


def _signup_currency(settings: RewardSettings) -> str | None:
    """Signup rewards have no order: fixed amounts pay in the program's first currency."""
    for rule in (settings.advocate, settings.friend):
        if rule is not None and rule.amounts:
            return sorted(rule.amounts)[0]
    return None


async def _summaries(
    conn: asyncpg.Connection, runtime: Runtime, rows: list[asyncpg.Record]
) -> list[RewardSummary]:
    out = []
    for row in rows:
        coupon = (
            await rewards_repo.coupon_for_reward(conn, row["merchant_id"], row["id"])
            if row["kind"] == "coupon"
            else None
        )
        out.append(
            RewardSummary(
                id=runtime.ids.encode("reward", row["id"]),
                side=row["side"],
                kind=row["kind"],
                amount=row["amount"],
                currency=row["currency"],
                status=row["status"],
                coupon_code=coupon["code"] if coupon else None,
            )
        )
    return out


def _referral_summary(runtime: Runtime, row: asyncpg.Record | None) -> ReferralSummary | None:
    if row is None:
        return None
    return ReferralSummary(
        id=runtime.ids.encode("referral", row["id"]),
        status=row["status"],
        advocate_id=runtime.ids.encode("advocate", row["advocate_id"]),
        program_id=runtime.ids.encode("program", row["program_id"]),
        source=row["source"],
        rejection_reason=row["rejection_reason"],
    )


async def _attach(
    conn: asyncpg.Connection,
    merchant_id: int,
    resolved: Resolved,
    customer_id: str | None,
    email: str | None,
    friend_key: str,
    at: datetime,
    *,
    signup: bool,
) -> tuple[asyncpg.Record | None, bool]:
    """(the friend's live referral, whether it is new). Existing referrals are final."""
    candidate = resolved.candidate
    existing = await repo.live_referral(
        conn, merchant_id, candidate.program_id if candidate else None, customer_id, email
    )
    if existing is not None:
        if candidate is not None and candidate.advocate_id != existing["advocate_id"]:
            resolved.notes.append("already_referred")
        return existing, False
    if candidate is None:
        return None, False
    row = await repo.insert_referral(
        conn,
        merchant_id,
        candidate.program_id,
        candidate.advocate_id,
        friend_key,
        customer_id,
        email,
        candidate.attribution.path,
        msgspec.to_builtins(candidate.attribution),
        at if signup else None,
    )
    if row is None:  # only possible without the friend lock; kept for safety
        row = await repo.live_referral(conn, merchant_id, candidate.program_id, customer_id, email)
        return row, False
    return row, True


# --- quote ----------------------------------------------------------------------------


async def quote(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, data: QuoteRequest
) -> Quote:
    """Would the friend offer apply to this cart? Writes nothing."""
    _check_currency(data.currency)
    now = datetime.now(UTC)
    customer_id, email, _ = _friend(data)
    programs = Programs(conn, caller.merchant_id)
    resolved = await resolve(conn, runtime, caller.merchant_id, data, now, programs)
    candidate = resolved.candidate
    existing = await repo.live_referral(
        conn, caller.merchant_id, candidate.program_id if candidate else None, customer_id, email
    )

    def no(reason: str, checks=()) -> Quote:
        return Quote(
            applies=False,
            reason=reason,
            friend_offer=None,
            advocate_id=None,
            program_id=None,
            code=None,
            checks=list(checks),
        )

    if existing is not None and existing["status"] != "pending":
        return no(
            "already_referred"
            if candidate and candidate.advocate_id != existing["advocate_id"]
            else "not_new_customer"
        )
    if (
        existing is not None
        and candidate is not None
        and (candidate.advocate_id != existing["advocate_id"])
    ):
        return no("already_referred")
    if existing is None and candidate is None:
        return no(resolved.notes[0] if resolved.notes else "no_referral")
    program_id = existing["program_id"] if existing else candidate.program_id
    advocate_id = existing["advocate_id"] if existing else candidate.advocate_id
    program = await programs.get(program_id)
    settings = _settings(program)
    advocate = await repo.advocate(conn, caller.merchant_id, advocate_id)
    pseudo = {
        "friend_customer_id": customer_id,
        "friend_email_normalised": email,
        "attribution": (
            existing["attribution"] if existing else msgspec.to_builtins(candidate.attribution)
        ),
        "source": existing["source"] if existing else candidate.attribution.path,
    }
    subject = _subject(
        pseudo,
        program,
        advocate,
        is_new=not await repo.has_orders(conn, caller.merchant_id, customer_id, email),
        purchase=Purchase(0, data.subtotal, data.currency, now, False, None),
        at=now,
        code_active=candidate.code_active if candidate else True,
    )
    checks = rules.check(subject, settings)
    failure = rules.first_failure(checks)
    offer = None
    if settings.friend is not None:
        amount = rule_amount(settings.friend, data.subtotal, data.currency)
        if amount is not None:
            offer = FriendOffer(
                kind=settings.friend.kind, amount=amount.value, currency=amount.currency
            )
    code = candidate.code if candidate else existing["attribution"].get("code")
    return Quote(
        applies=failure is None and offer is not None,
        reason=failure or (None if offer else "no_friend_offer"),
        friend_offer=offer if failure is None else None,
        advocate_id=runtime.ids.encode("advocate", advocate_id),
        program_id=runtime.ids.encode("program", program_id),
        code=code,
        checks=checks,
    )


# --- signups --------------------------------------------------------------------------


async def record_signup(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, data: SignupRequest
) -> tuple[SignupResult, bool]:
    """Idempotent by customer id: a repeated signup answers what the first one did."""
    now = datetime.now(UTC)
    at = _check_time(data.occurred_at, now)
    customer_id, email, keys = _friend(data)
    ip = parse_ip(data.ip)
    signup_pk = await repo.insert_signup(
        conn, caller.merchant_id, data.customer_id, email, at, runtime.ip_hasher.hashes(ip)[0]
    )
    if signup_pk is None:
        stored = await repo.signup_result(conn, caller.merchant_id, data.customer_id)
        return msgspec.convert(stored, SignupResult), False
    await repo.lock_friend(conn, caller.merchant_id, keys)
    programs = Programs(conn, caller.merchant_id)
    resolved = await resolve(conn, runtime, caller.merchant_id, data, at, programs)
    seen = _seen(runtime, data, ip, resolved)
    referral, new = await _attach(
        conn, caller.merchant_id, resolved, customer_id, email, keys[0], at, signup=True
    )
    created: list[asyncpg.Record] = []
    if referral is not None and new:
        referral, created, notes = await _settle(
            conn,
            runtime,
            caller.merchant_id,
            referral,
            seen=seen,
            purchase=None,
            at=at,
            code_active=resolved.candidate.code_active if resolved.candidate else True,
            programs=programs,
        )
        resolved.notes.extend(notes)
    await fraud.remember(conn, caller.merchant_id, customer_id, seen.signals, at)
    result = SignupResult(
        customer_id=data.customer_id,
        referred=referral is not None,
        referral=_referral_summary(runtime, referral),
        rewards=await _summaries(conn, runtime, created),
        notes=resolved.notes,
    )
    await repo.set_signup_result(
        conn,
        caller.merchant_id,
        signup_pk,
        referral["id"] if referral else None,
        msgspec.to_builtins(result),
    )
    return result, True


# --- orders ---------------------------------------------------------------------------


def _fingerprint(data: OrderRequest, email: str | None) -> bytes:
    """The fields a retry must repeat exactly (money and whose order it is); a retry that
    differs in them is a different order reusing the id."""
    key = msgspec.json.encode([data.customer_id, email, data.subtotal, data.total, data.currency])
    return hashlib.sha256(key).digest()


async def record_order(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, data: OrderRequest
) -> tuple[OrderResult, bool]:
    """Record an order, attribute it, and reward both parties for a friend's first order.
    Idempotent by order id; the same id with other money fields is `order_conflict`."""
    now = datetime.now(UTC)
    at = _check_time(data.occurred_at, now)
    _check_currency(data.currency)
    customer_id, email, keys = _friend(data)
    fingerprint = _fingerprint(data, email)
    ip = parse_ip(data.ip)
    order_pk = await repo.insert_order(
        conn,
        caller.merchant_id,
        data.order_id,
        customer_id,
        email,
        data.subtotal,
        data.total,
        data.currency,
        at,
        data.is_import,
        fingerprint,
        data.metadata,
        runtime.ip_hasher.hashes(ip)[0],
    )
    if order_pk is None:
        existing = await repo.order(conn, caller.merchant_id, data.order_id)
        if existing["fingerprint"] != fingerprint:
            raise Conflict(
                f"order {data.order_id} was already recorded with other amounts "
                "or another customer",
                code="order_conflict",
            )
        return msgspec.convert(existing["result"], OrderResult), False
    await repo.lock_friend(conn, caller.merchant_id, keys)
    programs = Programs(conn, caller.merchant_id)
    resolved = await resolve(conn, runtime, caller.merchant_id, data, at, programs)
    seen = _seen(runtime, data, ip, resolved)
    redeemed = []
    for coupon in resolved.coupons:
        if await rewards_repo.redeem_coupon(conn, caller.merchant_id, coupon, order_pk, at):
            redeemed.append(coupon)
        else:
            resolved.notes.append("coupon_not_redeemable")
    referral, new = await _attach(
        conn, caller.merchant_id, resolved, customer_id, email, keys[0], at, signup=False
    )
    created: list[asyncpg.Record] = []
    if referral is not None and referral["status"] == "pending":
        purchase = Purchase(
            order_pk, data.subtotal, data.currency, at, data.is_import, data.customer_is_new
        )
        referral, created, notes = await _settle(
            conn,
            runtime,
            caller.merchant_id,
            referral,
            seen=seen,
            purchase=purchase,
            at=at,
            code_active=resolved.candidate.code_active if resolved.candidate else True,
            programs=programs,
        )
        resolved.notes.extend(notes)
    elif referral is not None:
        resolved.notes.append("not_first_order")
    await fraud.remember(conn, caller.merchant_id, customer_id, seen.signals, at)
    result = OrderResult(
        order_id=data.order_id,
        referred=referral is not None,
        referral=_referral_summary(runtime, referral),
        rewards=await _summaries(conn, runtime, created),
        coupons_redeemed=redeemed,
        notes=resolved.notes,
    )
    await repo.set_order_result(
        conn,
        caller.merchant_id,
        order_pk,
        referral["id"] if referral else None,
        msgspec.to_builtins(result),
    )
    return result, True


async def _order_state(
    conn: asyncpg.Connection, runtime: Runtime, merchant_id: int, order: asyncpg.Record
) -> OrderState:
    current = await repo.order(conn, merchant_id, order["order_id"])
    rows = await rewards_repo.for_order(conn, merchant_id, current["id"])
    return OrderState(
        order_id=current["order_id"],
        status=current["status"],
        total=current["total"],
        refunded=current["refunded"],
        currency=current["currency"].strip(),
        rewards=await _summaries(conn, runtime, rows),
    )


async def _rebalance(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    order: asyncpg.Record,
    refunded: int,
    *,
    cancelled: bool,
    reason: str,
) -> None:
    """Bring every reward of the order to its value after refunds or a cancel."""
    settings: RewardSettings | None = None
    for reward in await rewards_repo.for_order(conn, merchant_id, order["id"]):
        if reward["status"] == "reversed":
            continue
        if settings is None:
            program = await repo.program(conn, merchant_id, reward["program_id"])
            settings = _settings(program)
        target = (
            0
            if cancelled
            else refund_target(
                original=reward["original_amount"],
                basis_points=reward["basis_points"],
                subtotal=order["subtotal"],
                total=order["total"],
                refunded=refunded,
                minimum=settings.minimum_order.get(order["currency"].strip()),
            )
        )
        if reward["kind"] not in MONEY_KINDS and target > 0:
            continue  # coupons and points are whole or nothing
        if target == 0:
            await rewards.transition(
                conn,
                runtime.ids,
                merchant_id,
                reward["id"],
                expected={reward["status"]},
                to="reversed",
                reason=reason,
            )
        elif target < reward["amount"]:
            await rewards.transition(
                conn,
                runtime.ids,
                merchant_id,
                reward["id"],
                expected={reward["status"]},
                to=reward["status"],
                amount=target,
                reason=reason,
            )


async def record_refund(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, order_id: str, data: RefundRequest
) -> tuple[OrderState, bool]:
    """Idempotent by refund id; over-refunds and other currencies are refused."""
    now = datetime.now(UTC)
    at = _check_time(data.occurred_at, now)
    order = await repo.order(conn, caller.merchant_id, order_id, lock=True)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    existing = await repo.refund(conn, caller.merchant_id, order["id"], data.refund_id)
    if existing is not None:
        if (existing["amount"], existing["currency"].strip()) != (data.amount, data.currency):
            raise Conflict(
                f"refund {data.refund_id} was already recorded with another amount",
                code="refund_conflict",
            )
        return await _order_state(conn, runtime, caller.merchant_id, order), False
    if data.currency != order["currency"].strip():
        raise InvalidInput(
            f"the order is in {order['currency']}, the refund in {data.currency}",
            code="currency_mismatch",
        )
    if order["status"] == "cancelled":
        raise Conflict("the order is cancelled", code="order_cancelled")
    refunded = order["refunded"] + data.amount
    if refunded > order["total"]:
        raise InvalidInput(
            f"refunds would total {refunded}, more than the order's {order['total']}",
            code="over_refund",
        )
    await repo.insert_refund(
        conn, caller.merchant_id, order["id"], data.refund_id, data.amount, data.currency, at
    )
    status = "refunded" if refunded == order["total"] else "partially_refunded"
    await repo.set_order_refunded(conn, caller.merchant_id, order["id"], refunded, status)
    await _rebalance(
        conn,
        runtime,
        caller.merchant_id,
        order,
        refunded,
        cancelled=False,
        reason="order_refunded" if status == "refunded" else "partial_refund",
    )
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="order.refunded",
        data={
            "order_id": order_id,
            "refund_id": data.refund_id,
            "amount": data.amount,
            "currency": data.currency,
        },
    )
    return await _order_state(conn, runtime, caller.merchant_id, order), True


async def cancel_order(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, order_id: str
) -> tuple[OrderState, bool]:
    order = await repo.order(conn, caller.merchant_id, order_id, lock=True)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    if order["status"] == "cancelled":
        return await _order_state(conn, runtime, caller.merchant_id, order), False
    await repo.set_order_refunded(
        conn, caller.merchant_id, order["id"], order["refunded"], "cancelled"
    )
    await _rebalance(
        conn,
        runtime,
        caller.merchant_id,
        order,
        order["refunded"],
        cancelled=True,
        reason="order_cancelled",
    )
    await events.emit(
        conn, merchant_id=caller.merchant_id, type="order.cancelled", data={"order_id": order_id}
    )
    return await _order_state(conn, runtime, caller.merchant_id, order), True


# --- referrals ------------------------------------------------------------------------


async def _to_referrals(
    conn: asyncpg.Connection, runtime: Runtime, rows: list[asyncpg.Record]
) -> list[Referral]:
    """Referrals with their rewards, first orders and reviews in a fixed number of queries,
    so the review queue costs the same per page whatever its length."""
    if not rows:
        return []
    merchant_id = rows[0]["merchant_id"]
    referral_ids = [r["id"] for r in rows]
    reward_rows = await rewards_repo.for_referrals(conn, merchant_id, referral_ids)
    rewards_of: dict[int, list] = defaultdict(list)
    for reward_row, reward in zip(
        reward_rows, await rewards.to_rewards(conn, runtime.ids, reward_rows), strict=True
    ):
        rewards_of[reward_row["referral_id"]].append(reward)
    order_ids = await repo.order_ids_of(
        conn, merchant_id, [r["first_order_pk"] for r in rows if r["first_order_pk"]]
    )
    reviews_of: dict[int, list[Review]] = defaultdict(list)
    for review in await fraud_repo.reviews(conn, merchant_id, referral_ids):
        reviews_of[review["referral_id"]].append(
            Review(**{k: v for k, v in review.items() if k != "referral_id"})
        )
    out = []
    for row in rows:
        decision = row["decision"] or {}
        out.append(
            Referral(
                id=runtime.ids.encode("referral", row["id"]),
                program_id=runtime.ids.encode("program", row["program_id"]),
                advocate_id=runtime.ids.encode("advocate", row["advocate_id"]),
                status=row["status"],
                rejection_reason=row["rejection_reason"],
                friend_customer_id=row["friend_customer_id"],
                attribution=row["attribution"],
                checks=msgspec.convert(decision.get("checks", []), list[rules.Check]),
                decision=msgspec.convert(decision["fraud"], Decision)
                if "fraud" in decision
                else None,
                signed_up_at=row["signed_up_at"],
                converted_at=row["converted_at"],
                first_order_id=order_ids.get(row["first_order_pk"]),
                rewards=rewards_of[row["id"]],
                reviews=reviews_of[row["id"]],
                created_at=row["created_at"],
            )
        )
    return out


async def get_referral(
    conn: asyncpg.Connection, runtime: Runtime, caller: Caller, referral_id: str
) -> Referral:
    row = await repo.referral(conn, caller.merchant_id, runtime.ids.decode("referral", referral_id))
    if row is None:
        raise NotFound(f"no referral with id {referral_id}", code="referral_not_found")
    return (await _to_referrals(conn, runtime, [row]))[0]


async def list_referrals(
    conn: asyncpg.Connection,
    runtime: Runtime,
    caller: Caller,
    *,
    status: str | None,
    advocate_id: str | None,
    program_id: str | None,
    starting_after: str | None,
    created_from,
    created_before,
    limit: int,
) -> tuple[list[Referral], bool]:
    rows = await repo.list_referrals(
        conn,
        caller.merchant_id,
        status=status,
        advocate_id=runtime.ids.decode("advocate", advocate_id) if advocate_id else None,
        program_id=runtime.ids.decode("program", program_id) if program_id else None,
        after_id=runtime.ids.decode("referral", starting_after) if starting_after else None,
        created_from=created_from,
        created_before=created_before,
        limit=limit,
    )
    rows, more = split_page(rows, limit)
    return await _to_referrals(conn, runtime, rows), more
