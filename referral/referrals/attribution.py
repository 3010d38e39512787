"""Attribution: which advocate a friend's quote, signup or order belongs to.

Precedence: a code typed at checkout, then the signed click token from the link (within the
program's window), then an earlier signup of the same customer or email. A friend's first
live referral in a program is final: a later code for another advocate only notes
`already_referred`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from referral.codes.codec import lookup_key
from referral.coupons import service as coupons
from referral.experiments import service as experiments
from referral.fraud.signals import normalise_address
from referral.lib.emails import normalise_email
from referral.lib.errors import InvalidInput
from referral.programs import rules as lifecycle
from referral.referrals import repo
from referral.referrals.repo import ProgramTerms, ReferralRow
from referral.referrals.schemas import Attribution, Shopper
from referral.runtime import Runtime


@dataclass(frozen=True)
class Friend:
    """The friend as a checkout call names them: the shop's customer id and/or the
    normalised email, and the keys that serialise every call about them."""

    customer_id: str | None
    email: str | None
    lock_keys: list[str]

    @property
    def key(self) -> str:
        """The referral's friend key: the customer id, else the email."""
        return self.lock_keys[0]


def identify(shopper: Shopper) -> Friend:
    """A friend needs a customer id or a valid email."""
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
    return Friend(shopper.customer_id, email, keys)


async def lock(conn: asyncpg.Connection, *, merchant_id: int, friend: Friend) -> None:
    """Serialise every call about this friend (concurrent orders attribute once)."""
    await repo.lock_friend(conn, merchant_id, friend.lock_keys)


@dataclass
class Candidate:
    """An advocate the shopper's code or click token points to."""

    program_id: int
    advocate_id: int
    code: str
    code_active: bool
    attribution: Attribution
    # Why its program makes no new referral now (paused, ended, not started); None: running.
    refusal: str | None = None


@dataclass
class Resolved:
    """What the codes and token of a call point to: an advocate, the coupon codes typed
    beside them, and notes on what did not resolve."""

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


class Programs:
    """The programs one call reads, each loaded once: a link-attributed order needs its
    program for the window check and again to settle the referral."""

    def __init__(self, conn: asyncpg.Connection, merchant_id: int) -> None:
        self._conn, self._merchant_id = conn, merchant_id
        self._loaded: dict[int, ProgramTerms] = {}

    async def get(self, program_id: int) -> ProgramTerms:
        if program_id not in self._loaded:
            self._loaded[program_id] = await repo.program(self._conn, self._merchant_id, program_id)
        return self._loaded[program_id]


async def resolve(
    conn: asyncpg.Connection,
    *,
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
        if coupons.is_coupon_code(key):
            resolved.coupons.append(key)
            continue
        target = await repo.code_target(conn, key[:40], merchant_id)
        if target is None:
            pooled = await coupons.find_typed(conn, merchant_id=merchant_id, typed=raw)
            if pooled is not None:  # a code from a coupon pool, as the shop's platform made it
                resolved.coupons.append(pooled)
                continue
            resolved.notes.append("code_not_found")
            continue
        if resolved.candidate is None:
            resolved.candidate = Candidate(
                target.program_id,
                target.advocate_id,
                target.code,
                target.code_active,
                Attribution(path="code", code=target.code),
                refusal=lifecycle.refusal(program_state(await programs.get(target.program_id), at)),
            )
    if resolved.candidate is None and shopper.ref_token:
        token = runtime.signer.verify(shopper.ref_token)
        if token is None:
            resolved.notes.append("ref_token_invalid")
            return resolved
        target = await repo.code_target(conn, lookup_key(token.code), merchant_id)
        if target is None:
            resolved.notes.append("ref_token_invalid")
            return resolved
        clicked_at = datetime.fromtimestamp(token.issued_at, UTC)
        program = await programs.get(target.program_id)
        if at > clicked_at + timedelta(days=program.attribution_window_days):
            resolved.notes.append("outside_window")
            return resolved
        resolved.candidate = Candidate(
            target.program_id,
            target.advocate_id,
            target.code,
            target.code_active,
            Attribution(
                path="link",
                code=target.code,
                click_id=token.click_id,
                channel=token.channel,
                story_id=token.story_id,
                visitor_id=token.visitor_id,
                clicked_at=clicked_at,
                referer_host=token.referer_host,
                experiment_id=token.experiment_id,
                variant=token.variant,
            ),
            refusal=lifecycle.refusal(program_state(program, at)),
        )
    candidate = resolved.candidate
    if candidate is not None and candidate.attribution.path == "code":
        # A typed code: the advocate's variant now (a link's is in its token: none when it
        # was clicked before the experiment, so the friend keeps the offer they saw).
        assigned = await experiments.variant_at(
            conn,
            runtime=runtime,
            merchant_id=merchant_id,
            program_id=candidate.program_id,
            advocate_id=candidate.advocate_id,
            at=at,
        )
        if assigned is not None:
            candidate.attribution.experiment_id = assigned.experiment_id
            candidate.attribution.variant = assigned.variant
    return resolved


def program_state(program: ProgramTerms, at: datetime) -> lifecycle.ProgramState:
    return lifecycle.state(program.status, program.starts_at, program.ends_at, at)


def seen(
    runtime: Runtime,
    shopper: Shopper,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    resolved: Resolved,
) -> Seen:
    """The call's signals as keyed hashes (the link's visitor id counts as the friend's)."""
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


async def live_referral(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    program_id: int | None,
    friend: Friend,
) -> ReferralRow | None:
    """The friend's live (not rejected) referral, in this program or any."""
    return await repo.live_referral(conn, merchant_id, program_id, friend.customer_id, friend.email)


async def attach(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    resolved: Resolved,
    friend: Friend,
    at: datetime,
    signup: bool,
) -> tuple[ReferralRow | None, bool]:
    """(the friend's live referral, whether it is new). Existing referrals are final."""
    candidate = resolved.candidate
    existing = await live_referral(
        conn,
        merchant_id=merchant_id,
        program_id=candidate.program_id if candidate else None,
        friend=friend,
    )
    if existing is not None:
        if candidate is not None and candidate.advocate_id != existing.advocate_id:
            resolved.notes.append("already_referred")
        return existing, False
    if candidate is None:
        return None, False
    if candidate.refusal is not None:  # no new referrals while the program is not running
        resolved.notes.append(candidate.refusal)
        return None, False
    row = await repo.insert_referral(
        conn,
        merchant_id,
        candidate.program_id,
        candidate.advocate_id,
        friend.key,
        friend.customer_id,
        friend.email,
        candidate.attribution.path,
        msgspec.to_builtins(candidate.attribution),
        at if signup else None,
    )
    if row is None:  # only possible without the friend lock; kept for safety
        row = await live_referral(
            conn, merchant_id=merchant_id, program_id=candidate.program_id, friend=friend
        )
        return row, False
    return row, True
