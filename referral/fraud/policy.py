"""A program's fraud policy as data: per rule enabled, action, weight and parameters.

The whole policy is one msgspec struct, so a PUT is decoded and checked in one step: every
field is typed and bounded, and the checks JSON Schema cannot state (CIDRs, domain patterns,
score order) run in `__post_init__` and refuse the policy as a 422 `invalid_fraud_policy`
naming the field.
A bad policy is refused whole, never half-applied. Missing fields take the defaults below.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from referral.lib.emails import normalise_email
from referral.lib.errors import InvalidInput

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


def _refuse(where: str, message: str) -> InvalidInput:
    """A rule the schema cannot state (a CIDR, a score order): a 422 naming the field. Not a
    ValueError, which msgspec would turn into a 400 as if the JSON had the wrong shape."""
    return InvalidInput(f"{where}: {message}", code="invalid_fraud_policy")


def _check_all(values: list[str], pattern: re.Pattern[str], what: str, where: str) -> None:
    for value in values:
        if not pattern.match(value):
            raise _refuse(where, f"{value!r} is not a valid {what}")


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A rule's switch, what it does when it fires, and its weight in the score. Each rule
    below sets its own defaults, so `{"same_ip": {"weight": 5}}` keeps same_ip's action."""

    enabled: bool = True
    action: Action = "review"
    weight: Weight = 50


class SameCustomer(Rule, kw_only=True):
    action: Action = "block"
    weight: Weight = 100


class SameEmail(Rule, kw_only=True):
    action: Action = "block"
    weight: Weight = 100


class SimilarEmail(Rule, kw_only=True):
    weight: Weight = 40
    max_distance: Annotated[int, Meta(ge=1, le=3)] = 1
    # Short addresses are one edit apart by chance (al@x.io, ali@x.io): compare only longer.
    min_local_length: Annotated[int, Meta(ge=1, le=64)] = 5


class SameIpAndUserAgent(Rule, kw_only=True):
    pass


class SameIp(Rule, kw_only=True):
    """A weak signal: households and offices share one address."""

    action: Action = "flag"
    weight: Weight = 15


class SameDevice(Rule, kw_only=True):
    weight: Weight = 60


class SamePayment(Rule, kw_only=True):
    action: Action = "block"
    weight: Weight = 100


class SameAddress(Rule, kw_only=True):
    pass


class DisposableEmail(Rule, kw_only=True):
    weight: Weight = 40
    extra_domains: Patterns = []
    allowed_domains: Patterns = []

    def __post_init__(self) -> None:
        self.extra_domains = _lowered(self.extra_domains)
        self.allowed_domains = _lowered(self.allowed_domains)
        where = "disposable_email"
        _check_all(self.extra_domains + self.allowed_domains, _DOMAIN_PATTERN, "domain", where)


class AdvocateVelocity(Rule, kw_only=True):
    weight: Weight = 40
    max_per_hour: Annotated[int, Meta(ge=1, le=100_000)] = 5
    max_per_day: Annotated[int, Meta(ge=1, le=100_000)] = 20


class IpVelocity(Rule, kw_only=True):
    action: Action = "flag"
    weight: Weight = 30
    max_per_day: Annotated[int, Meta(ge=1, le=100_000)] = 3


class ExistingCustomer(Rule, kw_only=True):
    action: Action = "flag"
    weight: Weight = 20


class Blocklist(Rule, kw_only=True):
    """Entries may start with `*.` (a domain and its subdomains) or, for emails and
    customer ids, hold `*` anywhere as a wildcard."""

    action: Action = "block"
    weight: Weight = 100
    emails: Patterns = []
    email_domains: Patterns = []
    ips: Patterns = []
    customer_ids: Patterns = []
    referring_domains: Patterns = []

    def __post_init__(self) -> None:
        _check_all(_lowered(self.emails), _EMAIL_PATTERN, "email pattern", "blocklist.emails")
        # Friends' emails are compared normalised (Gmail dots, +tags): so are the entries.
        self.emails = [e if "*" in e else (normalise_email(e) or e) for e in _lowered(self.emails)]
        self.email_domains = _lowered(self.email_domains)
        self.referring_domains = _lowered(self.referring_domains)
        domains = self.email_domains + self.referring_domains
        _check_all(domains, _DOMAIN_PATTERN, "domain", "blocklist")
        ids = self.customer_ids
        _check_all(ids, _CUSTOMER_PATTERN, "customer id pattern", "blocklist.customer_ids")
        for entry in self.ips:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                message = f"{entry!r} is not an IP address or CIDR network"
                raise _refuse("blocklist.ips", message) from None


class DealSiteReferrer(Rule, kw_only=True):
    domains: Patterns = msgspec.field(default_factory=lambda: list(DEAL_SITES))

    def __post_init__(self) -> None:
        self.domains = _lowered(self.domains)
        _check_all(self.domains, _DOMAIN_PATTERN, "domain", "deal_site_referrer.domains")


class ReciprocalReferral(Rule, kw_only=True):
    pass


class OrderTooSoon(Rule, kw_only=True):
    action: Action = "flag"
    weight: Weight = 30
    min_seconds: Annotated[int, Meta(ge=1, le=86_400)] = 20


class RejectedReferrals(Rule, kw_only=True):
    action: Action = "block"
    weight: Weight = 100
    max_rejected: Annotated[int, Meta(ge=1, le=10_000)] = 3
    window_days: Annotated[int, Meta(ge=1, le=3650)] = 90
    suspend_codes: bool = True


def _default(rule: type[Rule]) -> Any:
    return msgspec.field(default_factory=rule)


class FraudPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Flags add their weight to the score; the decision is `block` if a block rule fired or
    the score reaches `block_score`, else `review` if a review rule fired or the score
    reaches `review_score`, else `allow`."""

    review_score: Score = 60
    block_score: Score = 150
    same_customer: SameCustomer = _default(SameCustomer)
    same_email: SameEmail = _default(SameEmail)
    similar_email: SimilarEmail = _default(SimilarEmail)
    same_ip_and_user_agent: SameIpAndUserAgent = _default(SameIpAndUserAgent)
    same_ip: SameIp = _default(SameIp)
    same_device: SameDevice = _default(SameDevice)
    same_payment: SamePayment = _default(SamePayment)
    same_address: SameAddress = _default(SameAddress)
    disposable_email: DisposableEmail = _default(DisposableEmail)
    advocate_velocity: AdvocateVelocity = _default(AdvocateVelocity)
    ip_velocity: IpVelocity = _default(IpVelocity)
    existing_customer: ExistingCustomer = _default(ExistingCustomer)
    blocklist: Blocklist = _default(Blocklist)
    deal_site_referrer: DealSiteReferrer = _default(DealSiteReferrer)
    reciprocal_referral: ReciprocalReferral = _default(ReciprocalReferral)
    order_too_soon: OrderTooSoon = _default(OrderTooSoon)
    rejected_referrals: RejectedReferrals = _default(RejectedReferrals)

    def __post_init__(self) -> None:
        if self.review_score > self.block_score:
            raise _refuse(
                "review_score",
                f"review_score ({self.review_score}) must not exceed "
                f"block_score ({self.block_score})",
            )


RULE_NAMES: tuple[str, ...] = tuple(
    name for name in FraudPolicy.__struct_fields__ if name not in ("review_score", "block_score")
)


def load(raw: dict | None) -> FraudPolicy:
    """The policy as stored (`{}` means every default)."""
    return msgspec.convert(raw or {}, FraudPolicy)


def dump(policy: FraudPolicy) -> dict:
    return msgspec.to_builtins(policy)
