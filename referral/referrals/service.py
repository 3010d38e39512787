"""Deciding a referral: the checkout's quote, a signup, and the friend's first order.

Settling a pending referral runs the eligibility checks (`rules.py`), the fraud decision,
and grants both parties' rewards, in the caller's one transaction, together with the order
or signup that triggered it. Which advocate a call belongs to is `attribution.py`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from referral.advocates import service as advocates
from referral.coupons import service as coupons
from referral.customers.schemas import (
    ERASED_TEXT,
    ExportedDecision,
    ExportedReferral,
    ExportedSignup,
    Subject,
    Tombstones,
)
from referral.events import service as events
from referral.experiments import service as experiments
from referral.fraud import service as fraud
from referral.fraud.rules import Identity
from referral.fraud.signals import parse_ip
from referral.lib.emails import normalise_email
from referral.lib.ids import PublicIds
from referral.lib.money import require_currency
from referral.lib.timestamps import reported_at
from referral.merchants.service import Caller
from referral.points import service as points
from referral.programs.schemas import RewardSettings
from referral.referrals import attribution, repo, rules
from referral.referrals.attribution import Friend, Programs, Resolved, Seen
from referral.referrals.repo import AdvocateIdentity, ProgramTerms, ReferralRow
from referral.referrals.schemas import (
    FriendOffer,
    Quote,
    QuoteRequest,
    ReferralSummary,
    Shopper,
    SignupRequest,
    SignupResult,
)
from referral.rewards import grant
from referral.rewards import service as rewards
from referral.rewards.rules import rule_amount
from referral.rewards.schemas import RewardSummary
from referral.rewards.service import RewardRow
from referral.runtime import Runtime

log = structlog.get_logger("referral.referrals")


@dataclass(frozen=True)
class Purchase:
    """The order a referral is decided on, as the shop reported it."""

    order_pk: int
    subtotal: int
    currency: str
    occurred_at: datetime
    is_import: bool
    customer_is_new: bool | None


def _settings(program: ProgramTerms) -> RewardSettings:
    return msgspec.convert(program.rewards, RewardSettings)


async def _settings_for(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    program: ProgramTerms,
    attribution: dict[str, Any],
) -> RewardSettings:
    """The program's rules, with the rewards of the experiment variant the referral (or
    the quote's link or code) recorded: the friend keeps the offer they were shown."""
    return await experiments.settings_for(
        conn,
        runtime=runtime,
        merchant_id=merchant_id,
        attribution=attribution,
        settings=_settings(program),
    )


def _subject(
    *,
    friend_customer_id: str | None,
    friend_email: str | None,
    attribution_data: dict[str, Any],
    source: str,
    program: ProgramTerms,
    advocate: AdvocateIdentity,
    is_new: bool,
    purchase: Purchase | None,
    at: datetime,
    code_active: bool,
) -> rules.Subject:
    clicked_at = attribution_data.get("clicked_at")
    return rules.Subject(
        friend_customer_id=friend_customer_id,
        friend_email=friend_email,
        advocate_customer_id=advocate.customer_id,
        advocate_email=normalise_email(advocate.email),
        is_new_customer=is_new,
        subtotal=purchase.subtotal if purchase else None,
        currency=purchase.currency if purchase else None,
        occurred_at=at,
        program_starts_at=program.starts_at,
        program_state=attribution.program_state(program, at),
        code_active=code_active,
        is_import=purchase.is_import if purchase else False,
        source=source,
        clicked_at=datetime.fromisoformat(clicked_at) if clicked_at else None,
        window_days=program.attribution_window_days,
    )


def _referred(referral: ReferralRow, advocate: AdvocateIdentity) -> grant.Referred:
    return grant.Referred(
        referral_id=referral.id,
        program_id=referral.program_id,
        advocate_id=referral.advocate_id,
        advocate_payee=advocate.customer_id,
        friend_payee=referral.friend_customer_id or referral.friend_email_normalised,
        source=referral.source,
    )


def _terms(program: ProgramTerms, settings: RewardSettings) -> grant.Terms:
    return grant.Terms(
        settings=settings,
        hold_days=program.hold_days,
        time_zone=program.time_zone,
        rules_version=program.rules_version,
    )


def _sale(purchase: Purchase | None) -> grant.Sale | None:
    if purchase is None:
        return None
    return grant.Sale(purchase.order_pk, purchase.subtotal, purchase.currency)


async def _settle(
    conn: asyncpg.Connection,
    runtime: Runtime,
    merchant_id: int,
    referral: ReferralRow,
    *,
    seen: Seen,
    purchase: Purchase | None,
    at: datetime,
    code_active: bool,
    programs: Programs,
) -> tuple[ReferralRow, list[RewardRow], list[str]]:
    """Decide a pending referral: eligibility, fraud, then both parties' rewards."""
    program = await programs.get(referral.program_id)
    settings = await _settings_for(conn, runtime, merchant_id, program, referral.attribution)
    advocate = await repo.advocate(conn, merchant_id, referral.advocate_id, lock=True)
    if purchase is not None:
        # The shop may know better (orders from before this service): it can only say "not new".
        is_new = purchase.customer_is_new is not False and not await repo.bought_before(
            conn,
            merchant_id,
            purchase.order_pk,
            referral.friend_customer_id,
            referral.friend_email_normalised,
            purchase.occurred_at,
        )
    else:
        is_new = not await repo.has_orders(
            conn, merchant_id, referral.friend_customer_id, referral.friend_email_normalised
        )
    subject = _subject(
        friend_customer_id=referral.friend_customer_id,
        friend_email=referral.friend_email_normalised,
        attribution_data=referral.attribution,
        source=referral.source,
        program=program,
        advocate=advocate,
        is_new=is_new,
        purchase=purchase,
        at=at,
        code_active=code_active,
    )
    checks = rules.check(subject, settings)
    failure = rules.first_failure(checks)
    decision = await fraud.decide(
        conn,
        context=fraud.Context(
            merchant_id=merchant_id,
            program_id=referral.program_id,
            advocate_id=referral.advocate_id,
            identity=Identity(
                friend_customer_id=subject.friend_customer_id,
                friend_email=subject.friend_email,
                advocate_customer_id=subject.advocate_customer_id,
                advocate_email=subject.advocate_email,
            ),
            event="signup" if purchase is None else "order",
            occurred_at=at,
            new_customer=is_new,
            livemode=program.mode == "live",
            ip=seen.ip,
            ip_hash=seen.ip_hash,
            signals=seen.signals,
            referer_host=referral.attribution.get("referer_host"),
            clicked_at=subject.clicked_at,
        ),
        policy_text=program.fraud_policy,
        policy_version=program.fraud_policy_version,
    )
    if fraud.suspends_advocate(decision, policy_text=program.fraud_policy):
        await advocates.suspend_codes(
            conn,
            merchant_id=merchant_id,
            advocate_id=referral.advocate_id,
            public_id=runtime.ids.encode("advocate", referral.advocate_id),
            reason="rejected_referrals",
        )
    notes: list[str] = []
    created: list[RewardRow] = []
    if failure is not None:
        status, reason = "rejected", failure
    elif decision.action == "block":
        status, reason = "rejected", "fraud_blocked"
    else:
        status, reason = ("in_review" if decision.action == "review" else "converted"), None
        trigger_now = (settings.trigger == "signup") == (purchase is None)
        if trigger_now:
            created, notes = await grant.grant(
                conn,
                ids=runtime.ids,
                merchant_id=merchant_id,
                referred=_referred(referral, advocate),
                terms=_terms(program, settings),
                sale=_sale(purchase),
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
        referral.id,
        status,
        stored_decision,
        reason,
        at,
        purchase.order_pk if purchase else None,
    )
    if status == "converted" and purchase is not None:
        await points.earn_for_referral(
            conn,
            ids=runtime.ids,
            merchant_id=merchant_id,
            program_id=referral.program_id,
            advocate_id=referral.advocate_id,
            friend_customer_id=referral.friend_customer_id,
            referral_id=referral.id,
            at=at,
        )
    if status != "pending":
        await events.emit(
            conn,
            merchant_id=merchant_id,
            type=f"referral.{status}",
            data={
                "referral_id": runtime.ids.encode("referral", settled.id),
                "advocate_id": runtime.ids.encode("advocate", settled.advocate_id),
                "reason": reason,
            },
        )
    log.info(
        "referral_settled",
        referral_id=settled.id,
        status=status,
        reason=reason,
        decision=decision.action,
    )
    return settled, created, notes


async def reward_overridden_block(
    conn: asyncpg.Connection, *, runtime: Runtime, merchant_id: int, referral: ReferralRow
) -> tuple[str, list[RewardRow]]:
    """A person approved a referral the fraud engine blocked: create the rewards it would
    have earned (tiers and caps as they stand now). Returns the referral's new status:
    `pending` when the program rewards the first order and there is none yet."""
    program = await repo.program(conn, merchant_id, referral.program_id)
    settings = await _settings_for(conn, runtime, merchant_id, program, referral.attribution)
    advocate = await repo.advocate(conn, merchant_id, referral.advocate_id, lock=True)
    purchase = None
    if referral.first_order_pk is not None:
        order = await repo.first_order(conn, merchant_id, referral.first_order_pk)
        purchase = Purchase(
            order.id,
            order.subtotal,
            order.currency.strip(),
            order.occurred_at,
            order.is_import,
            None,
        )
    if settings.trigger == "first_order" and purchase is None:
        return "pending", []
    created, _ = await grant.grant(
        conn,
        ids=runtime.ids,
        merchant_id=merchant_id,
        referred=_referred(referral, advocate),
        terms=_terms(program, settings),
        sale=_sale(purchase if settings.trigger == "first_order" else None),
        at=purchase.occurred_at if purchase else datetime.now(UTC),
        review=False,
    )
    return "converted", created


def summary(runtime: Runtime, row: ReferralRow | None) -> ReferralSummary | None:
    if row is None:
        return None
    return ReferralSummary(
        id=runtime.ids.encode("referral", row.id),
        status=row.status,
        advocate_id=runtime.ids.encode("advocate", row.advocate_id),
        program_id=runtime.ids.encode("program", row.program_id),
        source=row.source,
        rejection_reason=row.rejection_reason,
    )


# --- quote ----------------------------------------------------------------------------


async def quote(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, data: QuoteRequest
) -> Quote:
    """Would the friend offer apply to this cart? Writes nothing."""
    require_currency(data.currency)
    parse_ip(data.ip)  # refused here as at signup and order, though a quote keeps none
    now = datetime.now(UTC)
    friend = attribution.identify(data)
    programs = Programs(conn, caller.merchant_id)
    resolved = await attribution.resolve(
        conn,
        runtime=runtime,
        merchant_id=caller.merchant_id,
        shopper=data,
        at=now,
        programs=programs,
    )
    candidate = resolved.candidate
    # The coupons typed beside the codes, answered as the order would redeem them now.
    typed = [
        await coupons.check(
            conn,
            merchant_id=caller.merchant_id,
            code=code,
            currency=data.currency,
            at=now,
            customer_id=data.customer_id,
        )
        for code in resolved.coupons
    ]
    existing = await attribution.live_referral(
        conn,
        merchant_id=caller.merchant_id,
        program_id=candidate.program_id if candidate else None,
        friend=friend,
    )

    def no(reason: str) -> Quote:
        return Quote(
            applies=False,
            reason=reason,
            friend_offer=None,
            advocate_id=None,
            program_id=None,
            code=None,
            checks=[],
            coupons=typed,
        )

    if existing is not None and existing.status != "pending":
        return no(
            "already_referred"
            if candidate and candidate.advocate_id != existing.advocate_id
            else "not_new_customer"
        )
    if (
        existing is not None
        and candidate is not None
        and (candidate.advocate_id != existing.advocate_id)
    ):
        return no("already_referred")
    if existing is None and candidate is None:
        return no(resolved.notes[0] if resolved.notes else "no_referral")
    program_id = existing.program_id if existing else candidate.program_id
    advocate_id = existing.advocate_id if existing else candidate.advocate_id
    program = await programs.get(program_id)
    attribution_data = (
        existing.attribution if existing else msgspec.to_builtins(candidate.attribution)
    )
    settings = await _settings_for(conn, runtime, caller.merchant_id, program, attribution_data)
    advocate = await repo.advocate(conn, caller.merchant_id, advocate_id)
    subject = _subject(
        friend_customer_id=friend.customer_id,
        friend_email=friend.email,
        attribution_data=attribution_data,
        source=existing.source if existing else candidate.attribution.path,
        program=program,
        advocate=advocate,
        is_new=not await repo.has_orders(
            conn, caller.merchant_id, friend.customer_id, friend.email
        ),
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
    code = candidate.code if candidate else existing.attribution.get("code")
    return Quote(
        applies=failure is None and offer is not None,
        reason=failure or (None if offer else "no_friend_offer"),
        friend_offer=offer if failure is None else None,
        advocate_id=runtime.ids.encode("advocate", advocate_id),
        program_id=runtime.ids.encode("program", program_id),
        code=code,
        checks=checks,
        coupons=typed,
    )


# --- signups --------------------------------------------------------------------------


async def record_signup(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, data: SignupRequest
) -> tuple[SignupResult, bool]:
    """Idempotent by customer id: a repeated signup answers what the first one did."""
    at = reported_at(data.occurred_at, datetime.now(UTC))
    friend = attribution.identify(data)
    ip = parse_ip(data.ip)
    signup_pk = await repo.insert_signup(
        conn,
        caller.merchant_id,
        data.customer_id,
        friend.email,
        at,
        runtime.ip_hasher.hashes(ip)[0],
    )
    if signup_pk is None:
        stored = await repo.signup_result(conn, caller.merchant_id, data.customer_id)
        return msgspec.convert(stored, SignupResult), False
    await attribution.lock(conn, merchant_id=caller.merchant_id, friend=friend)
    programs = Programs(conn, caller.merchant_id)
    resolved = await attribution.resolve(
        conn,
        runtime=runtime,
        merchant_id=caller.merchant_id,
        shopper=data,
        at=at,
        programs=programs,
    )
    seen = attribution.seen(runtime, data, ip, resolved)
    referral, new = await attribution.attach(
        conn, merchant_id=caller.merchant_id, resolved=resolved, friend=friend, at=at, signup=True
    )
    created: list[RewardRow] = []
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
    await fraud.remember(
        conn,
        merchant_id=caller.merchant_id,
        customer_id=friend.customer_id,
        signals=seen.signals,
        at=at,
    )
    result = SignupResult(
        customer_id=data.customer_id,
        referred=referral is not None,
        referral=summary(runtime, referral),
        rewards=await rewards.summaries(conn, ids=runtime.ids, rows=created),
        notes=resolved.notes,
    )
    await repo.set_signup_result(
        conn,
        caller.merchant_id,
        signup_pk,
        referral.id if referral else None,
        msgspec.to_builtins(result),
    )
    await points.earn_signup(
        conn, ids=runtime.ids, merchant_id=caller.merchant_id, customer_id=data.customer_id, at=at
    )
    return result, True


# --- orders ---------------------------------------------------------------------------


@dataclass
class Checkout:
    """An order's attribution between resolving its codes and settling its referral: the
    order's own domain redeems the coupons typed beside the codes in between."""

    friend: Friend
    shopper: Shopper
    resolved: Resolved
    programs: Programs
    at: datetime

    @property
    def coupon_codes(self) -> list[str]:
        return self.resolved.coupons

    @property
    def notes(self) -> list[str]:
        return self.resolved.notes


@dataclass(frozen=True)
class Settled:
    """What an order's attribution decided, as the order's answer shows it."""

    referral_pk: int | None
    referral: ReferralSummary | None
    rewards: list[RewardSummary]
    notes: list[str]


async def attribute_order(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    shopper: Shopper,
    friend: Friend,
    at: datetime,
) -> Checkout:
    """Lock the friend (concurrent orders of one friend attribute once) and resolve the
    order's codes and click token."""
    await attribution.lock(conn, merchant_id=merchant_id, friend=friend)
    programs = Programs(conn, merchant_id)
    resolved = await attribution.resolve(
        conn, runtime=runtime, merchant_id=merchant_id, shopper=shopper, at=at, programs=programs
    )
    return Checkout(friend, shopper, resolved, programs, at)


async def settle_order(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    merchant_id: int,
    checkout: Checkout,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    purchase: Purchase,
) -> Settled:
    """Attach the order to the friend's referral; a friend's first order settles it and
    rewards both parties. The friend's signals are remembered for later decisions."""
    resolved, at = checkout.resolved, checkout.at
    seen = attribution.seen(runtime, checkout.shopper, ip, resolved)
    referral, _ = await attribution.attach(
        conn,
        merchant_id=merchant_id,
        resolved=resolved,
        friend=checkout.friend,
        at=at,
        signup=False,
    )
    created: list[RewardRow] = []
    if referral is not None and referral.status == "pending":
        referral, created, notes = await _settle(
            conn,
            runtime,
            merchant_id,
            referral,
            seen=seen,
            purchase=purchase,
            at=at,
            code_active=resolved.candidate.code_active if resolved.candidate else True,
            programs=checkout.programs,
        )
        resolved.notes.extend(notes)
    elif referral is not None:
        resolved.notes.append("not_first_order")
    await fraud.remember(
        conn,
        merchant_id=merchant_id,
        customer_id=checkout.friend.customer_id,
        signals=seen.signals,
        at=at,
    )
    return Settled(
        referral_pk=referral.id if referral else None,
        referral=summary(runtime, referral),
        rewards=await rewards.summaries(conn, ids=runtime.ids, rows=created),
        notes=resolved.notes,
    )


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def lock_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    """Take the locks every checkout call about this person takes (their customer id and
    emails), so an order or signup of theirs waits for the erasure, and then finds nobody."""
    keys = [f"cid:{subject.customer_id}", *(f"email:{e}" for e in subject.emails)]
    await repo.lock_friend(conn, subject.merchant_id, keys)


async def find_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    """Their referrals as a friend (by customer id, or by email as a guest), the emails and
    visitor cookies those hold, and their signups."""
    found = await repo.customer_referral_keys(
        conn, subject.merchant_id, subject.customer_id, subject.emails
    )
    signups = await repo.customer_signups(conn, subject.merchant_id, subject.customer_id)
    subject.referral_ids = sorted(r.id for r in found)
    subject.signup_ids = sorted(s.id for s in signups)
    emails = {r.friend_email_normalised for r in found} | {s.email_normalised for s in signups}
    subject.emails = sorted(set(subject.emails) | (emails - {None}))
    visitors = {r.visitor_id for r in found if r.visitor_id}
    subject.visitor_ids = sorted(set(subject.visitor_ids) | visitors)


def _decision(fraud: dict[str, Any] | None) -> ExportedDecision | None:
    if not fraud or "action" not in fraud:
        return None
    return ExportedDecision(
        action=fraud["action"],
        score=int(fraud.get("score", 0)),
        rules=[r.get("rule", "") for r in fraud.get("reasons", [])],
    )


async def export_customer(
    conn: asyncpg.Connection, *, ids: PublicIds, subject: Subject
) -> tuple[list[ExportedReferral], list[ExportedSignup]]:
    """The referrals they made (none of the friend's data: that is another person's) and
    those that brought them, and their signups."""
    made = await repo.referrals_made(conn, subject.merchant_id, subject.advocate_ids)
    received = await repo.customer_referrals(
        conn, subject.merchant_id, subject.customer_id, subject.emails
    )
    referrals = [
        ExportedReferral(
            id=ids.encode("referral", r.id),
            role="advocate",
            program_id=ids.encode("program", r.program_id),
            advocate_id=ids.encode("advocate", r.advocate_id),
            status=r.status,
            source=r.source,
            rejection_reason=r.rejection_reason,
            friend_customer_id=None,
            friend_email=None,
            channel=None,
            clicked_at=None,
            decision=None,
            created_at=r.created_at,
            signed_up_at=r.signed_up_at,
            converted_at=r.converted_at,
        )
        for r in made
    ]
    referrals += [
        ExportedReferral(
            id=ids.encode("referral", r.id),
            role="friend",
            program_id=ids.encode("program", r.program_id),
            advocate_id=ids.encode("advocate", r.advocate_id),
            status=r.status,
            source=r.source,
            rejection_reason=r.rejection_reason,
            friend_customer_id=r.friend_customer_id,
            friend_email=r.friend_email_normalised,
            channel=r.attribution.get("channel"),
            clicked_at=msgspec.convert(r.attribution.get("clicked_at"), datetime | None),
            decision=_decision(r.fraud),
            created_at=r.created_at,
            signed_up_at=r.signed_up_at,
            converted_at=r.converted_at,
        )
        for r in received
    ]
    signups = [
        ExportedSignup(
            customer_id=s.customer_id,
            email=s.email_normalised,
            occurred_at=s.occurred_at,
            referral_id=ids.encode("referral", s.referral_id) if s.referral_id else None,
        )
        for s in await repo.customer_signups(conn, subject.merchant_id, subject.customer_id)
    ]
    return referrals, signups


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> tuple[int, int]:
    """(referrals, signups) with the person's identifiers replaced. A referral keeps its
    advocate, status, source, channel and times, so its rewards and analytics stand.
    Reviewers' notes that name them are replaced."""
    await repo.scrub_review_notes(conn, subject.merchant_id, subject.mentions, ERASED_TEXT)
    keys_from, keys_to = tombstones.keys(subject)
    within = sorted(set(subject.emails) | set(subject.typed_emails))
    referrals = 0
    if subject.referral_ids:
        referrals += await repo.erase_friend_referrals(
            conn,
            subject.merchant_id,
            subject.customer_id,
            keys_from,
            keys_to,
            tombstones.customer_id,
            subject.visitor_ids,
            tombstones.visitors,
            within,
            subject.referral_ids,
        )
    if subject.advocate_ids:
        referrals += await repo.erase_made_referrals(
            conn,
            subject.merchant_id,
            subject.advocate_ids,
            subject.vanity_codes,
            tombstones.codes,
            subject.customer_id,
            within,
            tombstones.customer_id,
        )
    signups = 0
    if subject.signup_ids:
        signups = await repo.erase_signups(
            conn,
            subject.merchant_id,
            subject.customer_id,
            tombstones.customer_id,
            keys_from,
            keys_to,
        )
    return referrals, signups
