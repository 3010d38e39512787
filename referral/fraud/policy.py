"""A program's fraud policy as data: per rule enabled, action, weight and parameters.

The whole policy is one msgspec struct, so a PUT is decoded and checked in one step: every
field is typed and bounded, and cross-field checks (CIDRs, domain patterns, score order)
run in `__post_init__`, which msgspec reports as a validation error at the field's path.
A bad policy is refused whole, never half-applied. Missing fields take the defaults below.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Action = Literal["flag", "review", "block"]
Weight = Annotated[int, Meta(ge=0, le=100, description="Added to the score when the rule fires")]
Score = Annotated[int, Meta(ge=1, le=10_000)]
Pattern = Annotated[str, Meta(min_length=1, max_length=254)]
Patterns = Annotated[list[Pattern], Meta(max_length=10_000)]

_DOMAIN_PATTERN = re.compile(r"^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$")
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$")
_CUSTOMER_PATTERN = re.compile(r"^\S+$")

# Coupon and deal sites: a referral link posted there is a public coupon, not a friend's word.
DEAL_SITES = (
    "retailmenot.com",
    "slickdeals.net",
    "honey.com",
    "joinhoney.com",
    "couponfollow.com",
    "coupons.com",
    "dealspotr.com",
    "wethrift.com",
    "knoji.com",
    "couponbirds.com",
    "hotdeals.com",
    "groupon.com",
    "promocodes.com",
    "dontpayfull.com",
    "couponcabin.com",
    "offers.com",
    "vouchercodes.co.uk",
    "myvouchercodes.co.uk",
    "hotukdeals.com",
    "mydealz.de",
    "dealabs.com",
    "pepper.com",
    "rabattkalas.se",
    "reddit.com",
)


def _lowered(values: list[str]) -> list[str]:
    return [v.strip().lower() for v in values]


def _check_all(values: list[str], pattern: re.Pattern[str], what: str) -> None:
    for value in values:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    action: Action = "review"
    weight: Weight = 50


class SimilarEmail(Rule, kw_only=True):
    max_distance: Annotated[int, Meta(ge=1, le=3)] = 1
    # Short addresses are one edit apart by chance (al@x.io, ali@x.io): compare only longer.
    min_local_length: Annotated[int, Meta(ge=1, le=64)] = 5


class DisposableEmail(Rule, kw_only=True):
    extra_domains: Patterns = []
    allowed_domains: Patterns = []

    def __post_init__(self) -> None:
        self.extra_domains = _lowered(self.extra_domains)
        self.allowed_domains = _lowered(self.allowed_domains)
        _check_all(self.extra_domains + self.allowed_domains, _DOMAIN_PATTERN, "domain")


class AdvocateVelocity(Rule, kw_only=True):
    max_per_hour: Annotated[int, Meta(ge=1, le=100_000)] = 5
    max_per_day: Annotated[int, Meta(ge=1, le=100_000)] = 20


class IpVelocity(Rule, kw_only=True):
    max_per_day: Annotated[int, Meta(ge=1, le=100_000)] = 3


class Blocklist(Rule, kw_only=True):
    """Entries may start with `*.` (a domain and its subdomains) or, for emails and
    customer ids, hold `*` anywhere as a wildcard."""

    emails: Patterns = []
    email_domains: Patterns = []
    ips: Patterns = []
    customer_ids: Patterns = []
    referring_domains: Patterns = []

    def __post_init__(self) -> None:
        self.emails = _lowered(self.emails)
        self.email_domains = _lowered(self.email_domains)
        self.referring_domains = _lowered(self.referring_domains)
        _check_all(self.emails, re.compile(r"^[^@\s]+@[^@\s]+$"), "email pattern")
        _check_all(self.email_domains + self.referring_domains, _DOMAIN_PATTERN, "domain")
        _check_all(self.customer_ids, _CUSTOMER_PATTERN, "customer id pattern")
        for entry in self.ips:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None


class DealSiteReferrer(Rule, kw_only=True):
    domains: Patterns = msgspec.field(default_factory=lambda: list(DEAL_SITES))

    def __post_init__(self) -> None:
        self.domains = _lowered(self.domains)
        _check_all(self.domains, _DOMAIN_PATTERN, "domain")


class OrderTooSoon(Rule, kw_only=True):
    min_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 20


class RejectedReferrals(Rule, kw_only=True):
    max_rejected: Annotated[int, Meta(ge=1, le=10_000)] = 3
    window_days: Annotated[int, Meta(ge=1, le=3650)] = 90
    suspend_codes: bool = True


def _rule(action: Action, weight: int) -> Any:
    return msgspec.field(default_factory=lambda: Rule(action=action, weight=weight))


class FraudPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Flags add their weight to the score; the decision is `block` if a block rule fired or
    the score reaches `block_score`, else `review` if a review rule fired or the score
    reaches `review_score`, else `allow`."""

    review_score: Score = 60
    block_score: Score = 150
    same_customer: Rule = _rule("block", 100)
    same_email: Rule = _rule("block", 100)
    similar_email: SimilarEmail = msgspec.field(
        default_factory=lambda: SimilarEmail(action="review", weight=40)
    )
    same_ip_and_user_agent: Rule = _rule("review", 50)
    # IP alone is a weak signal: households and offices share one address.
    same_ip: Rule = _rule("flag", 15)
    same_device: Rule = _rule("review", 60)
    same_payment: Rule = _rule("block", 100)
    same_address: Rule = _rule("review", 50)
    disposable_email: DisposableEmail = msgspec.field(
        default_factory=lambda: DisposableEmail(action="review", weight=40)
    )
    advocate_velocity: AdvocateVelocity = msgspec.field(
        default_factory=lambda: AdvocateVelocity(action="review", weight=40)
    )
    ip_velocity: IpVelocity = msgspec.field(
        default_factory=lambda: IpVelocity(action="flag", weight=30)
    )
    existing_customer: Rule = _rule("flag", 20)
    blocklist: Blocklist = msgspec.field(
        default_factory=lambda: Blocklist(action="block", weight=100)
    )
    deal_site_referrer: DealSiteReferrer = msgspec.field(
        default_factory=lambda: DealSiteReferrer(action="review", weight=50)
    )
    reciprocal_referral: Rule = _rule("review", 50)
    order_too_soon: OrderTooSoon = msgspec.field(
        default_factory=lambda: OrderTooSoon(action="flag", weight=30)
    )
    rejected_referrals: RejectedReferrals = msgspec.field(
        default_factory=lambda: RejectedReferrals(action="block", weight=100)
    )

    def __post_init__(self) -> None:
        if self.review_score > self.block_score:
            raise ValueError(
                f"review_score ({self.review_score}) must not exceed "
                f"block_score ({self.block_score})"
            )


RULE_NAMES: tuple[str, ...] = tuple(
    name for name in FraudPolicy.__struct_fields__ if name not in ("review_score", "block_score")
)


def load(raw: dict | None) -> FraudPolicy:
    """The policy as stored (`{}` means every default)."""
    return msgspec.convert(raw or {}, FraudPolicy)


def dump(policy: FraudPolicy) -> dict:
    return msgspec.to_builtins(policy)
