"""The fraud rules, pure: each looks at what was seen of one referral and says whether it
fired, with its evidence.

No I/O here. The service gathers `Features` (hash matches and counts at decision time) and
stores them with the decision, so a backtest replays these same functions over history as
it was. Identities (customer ids, emails) are not copied into the features: they stay on the
referral and the advocate, where erasure reaches them, and are passed in as `Identity`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import msgspec
from rapidfuzz.distance import Levenshtein

from referral.fraud.policy import RULE_NAMES, FraudPolicy

Action = Literal["flag", "review", "block"]
Outcome = Literal["allow", "review", "block"]


class Features(msgspec.Struct, kw_only=True):
    """What the rules saw: stored with each decision (hashes matched and counts, never raw
    IPs or emails). `ip_blocklisted` is the entry the live address matched under the policy
    of the time: raw addresses are never stored, so that part replays as it was."""

    event: Literal["signup", "order"] = "order"
    matched: list[str] = []  # kinds of the advocate's signals the friend shares (signals.py)
    new_customer: bool = True
    disposable_domain: bool = False  # by the maintained list at decision time
    advocate_referrals_hour: int = 0  # the advocate's referrals in the last hour, this one too
    advocate_referrals_day: int = 0
    ip_events_day: int | None = None  # signups and orders from the friend's IP in 24 hours
    referer_host: str | None = None  # where the link was clicked from
    reciprocal: bool = False  # the friend earlier referred this advocate
    seconds_since_click: int | None = None
    advocate_rejected: int = 0  # rejected referrals in the rule's window, before this one
    ip_blocklisted: str | None = None
    forced: list[str] = []  # test mode: rules a magic input fired


class Identity(msgspec.Struct, kw_only=True):
    friend_customer_id: str | None
    friend_email: str | None  # normalised
    advocate_customer_id: str
    advocate_email: str | None  # normalised


class Reason(msgspec.Struct, omit_defaults=True):
    rule: str
    action: Action
    detail: str
    weight: int = 0
    evidence: dict[str, Any] = {}


class Decision(msgspec.Struct):
    action: Outcome
    score: int
    reasons: list[Reason]
    policy_version: int = 0
    features: Features | None = None


class Hit(NamedTuple):
    detail: str
    evidence: dict[str, Any] = {}


# A rule: (features, identity, the policy compiled) -> Hit or None.
Rule = Callable[["Features", "Identity", "Compiled"], "Hit | None"]


class Matcher:
    """Exact entries in a set, `*` wildcards as regexes; domains match their subdomains.
    Case never matters: entries and values are compared lower-cased."""

    def __init__(self, entries: list[str], *, domains: bool = False) -> None:
        self.domains = domains
        entries = [e.lower() for e in entries]
        if domains:
            entries = [e.removeprefix("*.") for e in entries]
        self.exact = {e for e in entries if "*" not in e}
        self.wild = [
            (e, re.compile(re.escape(e).replace(r"\*", ".*"), re.I)) for e in entries if "*" in e
        ]

    def find(self, value: str | None) -> str | None:
        """The entry `value` matches, if any."""
        if not value or not (self.exact or self.wild):  # most lists are empty
            return None
        value = value.lower()
        if self.domains:
            # The value, then each parent domain with at least two labels.
            suffix = value
            while "." in suffix:
                if suffix in self.exact:
                    return suffix
                suffix = suffix.partition(".")[2]
            return None
        if value in self.exact:
            return value
        return next((entry for entry, pattern in self.wild if pattern.fullmatch(value)), None)


class Compiled:
    """A policy with its lists turned into matchers, built once per policy text."""

    def __init__(self, policy: FraudPolicy) -> None:
        self.policy = policy
        b = policy.blocklist
        self.emails = Matcher(b.emails)
        self.email_domains = Matcher(b.email_domains, domains=True)
        self.customer_ids = Matcher(b.customer_ids)
        self.ip_networks = [ipaddress.ip_network(e, strict=False) for e in b.ips]
        self.referring_domains = Matcher(b.referring_domains, domains=True)
        self.deal_sites = Matcher(policy.deal_site_referrer.domains, domains=True)
        d = policy.disposable_email
        self.disposable_extra = Matcher(d.extra_domains, domains=True)
        self.disposable_allowed = Matcher(d.allowed_domains, domains=True)
        self._enabled: list[tuple[str, Rule, Any]] | None = None
        # Only the lists with entries are probed (most policies block nothing by list).
        self.blocklist_probes = [
            (list_name, whose, matcher, value_of)
            for list_name, whose, attribute, value_of in _BLOCKLIST_PROBES
            if (matcher := getattr(self, attribute)).exact or matcher.wild
        ]

    def enabled(self) -> list[tuple[str, Rule, Any]]:
        """(name, check, settings) of each enabled rule in `RULES` order: found once per
        policy, not on every decision (a backtest makes a million)."""
        if self._enabled is None:
            self._enabled = [
                (name, check, settings)
                for name, check in RULES.items()
                if (settings := getattr(self.policy, name)).enabled
            ]
        return self._enabled


@lru_cache(maxsize=128)
def compile_policy(text: str) -> Compiled:
    """From the policy as stored (JSON text): cached, since every order reads it."""
    return Compiled(msgspec.json.decode(text or "{}", type=FraudPolicy))


def domain_of(email: str | None) -> str | None:
    return email.rpartition("@")[2] if email and "@" in email else None


# --- the rules ------------------------------------------------------------------------
# Each: (features, identity, the policy compiled) -> Hit or None. The rule's settings are
# `c.policy.<rule name>`.


def same_customer(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if who.friend_customer_id and who.friend_customer_id == who.advocate_customer_id:
        return Hit("the friend has the advocate's customer id")
    return None


def same_email(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if who.friend_email and who.friend_email == who.advocate_email:
        return Hit("the friend's email is the advocate's once normalised (case, dots, +tags)")
    return None


def similar_email(f: Features, who: Identity, c: Compiled) -> Hit | None:
    rule = c.policy.similar_email
    a, b = who.friend_email, who.advocate_email
    if not a or not b or a == b:
        return None
    local_a, _, domain_a = a.rpartition("@")
    local_b, _, domain_b = b.rpartition("@")
    if min(len(local_a), len(local_b)) < rule.min_local_length:
        return None
    if local_a == local_b:
        return Hit(
            "same local part as the advocate's email at another domain",
            {"match": "local_part", "domains": sorted({domain_a, domain_b})},
        )
    distance = Levenshtein.distance(a, b, score_cutoff=rule.max_distance)
    if distance <= rule.max_distance:
        return Hit(
            f"{distance} character edit(s) from the advocate's email",
            {"match": "edit_distance", "distance": distance},
        )
    return None


def same_ip_and_user_agent(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if "ip_ua" in f.matched:
        return Hit("same IP address and browser (user agent) as the advocate")
    return None


def same_ip(f: Features, who: Identity, c: Compiled) -> Hit | None:
    # A weak signal: households and offices share an address. With the same browser too,
    # same_ip_and_user_agent fires instead of this.
    if "ip" in f.matched and "ip_ua" not in f.matched:
        return Hit("same IP address as the advocate, another browser")
    return None


def same_device(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if "visitor" in f.matched:
        return Hit("same device (visitor id) as the advocate")
    return None


def same_payment(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if "payment" in f.matched:
        return Hit("same payment method (fingerprint) as the advocate")
    return None


def same_address(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if "address" in f.matched:
        return Hit("same shipping address as the advocate, once normalised")
    return None


def disposable_email(f: Features, who: Identity, c: Compiled) -> Hit | None:
    domain = domain_of(who.friend_email)
    if domain is None or c.disposable_allowed.find(domain):
        return None
    if f.disposable_domain or c.disposable_extra.find(domain):
        return Hit("the friend's email is at a disposable-email domain", {"domain": domain})
    return None


def advocate_velocity(f: Features, who: Identity, c: Compiled) -> Hit | None:
    rule = c.policy.advocate_velocity
    evidence = {
        "last_hour": f.advocate_referrals_hour,
        "last_day": f.advocate_referrals_day,
        "max_per_hour": rule.max_per_hour,
        "max_per_day": rule.max_per_day,
    }
    if f.advocate_referrals_hour > rule.max_per_hour:
        return Hit(f"{f.advocate_referrals_hour} referrals by this advocate in an hour", evidence)
    if f.advocate_referrals_day > rule.max_per_day:
        return Hit(f"{f.advocate_referrals_day} referrals by this advocate in a day", evidence)
    return None


def ip_velocity(f: Features, who: Identity, c: Compiled) -> Hit | None:
    limit = c.policy.ip_velocity.max_per_day
    if f.ip_events_day is not None and f.ip_events_day > limit:
        return Hit(
            f"{f.ip_events_day} signups and orders from this IP address in a day",
            {"last_day": f.ip_events_day, "max_per_day": limit},
        )
    return None


def existing_customer(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if not f.new_customer:
        return Hit("the friend bought before: not a new customer")
    return None


# The blocklist's probes in the order they are tried: (list, whose, the matcher's attribute
# on `Compiled`, the value probed).
_BLOCKLIST_PROBES: tuple[tuple[str, str, str, Callable[[Features, Identity], str | None]], ...] = (
    ("emails", "friend", "emails", lambda f, who: who.friend_email),
    ("email_domains", "friend", "email_domains", lambda f, who: domain_of(who.friend_email)),
    ("customer_ids", "friend", "customer_ids", lambda f, who: who.friend_customer_id),
    ("customer_ids", "advocate", "customer_ids", lambda f, who: who.advocate_customer_id),
    ("email_domains", "advocate", "email_domains", lambda f, who: domain_of(who.advocate_email)),
    ("emails", "advocate", "emails", lambda f, who: who.advocate_email),
    ("referring_domains", "link", "referring_domains", lambda f, who: f.referer_host),
)


def blocklist(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if f.ip_blocklisted:
        return Hit("the IP address is blocklisted", {"list": "ips", "entry": f.ip_blocklisted})
    for list_name, whose, matcher, value_of in c.blocklist_probes:
        entry = matcher.find(value_of(f, who))
        if entry is not None:
            return Hit(
                f"the {whose}'s {list_name.rstrip('s').replace('_', ' ')} is blocklisted",
                {"list": list_name, "entry": entry, "party": whose},
            )
    return None


def deal_site_referrer(f: Features, who: Identity, c: Compiled) -> Hit | None:
    entry = c.deal_sites.find(f.referer_host)
    if entry is not None:
        return Hit(
            "the link was clicked on a coupon or deal site",
            {"referer_host": f.referer_host, "entry": entry},
        )
    return None


def reciprocal_referral(f: Features, who: Identity, c: Compiled) -> Hit | None:
    if f.reciprocal:
        return Hit("the friend referred this advocate before (A refers B, B refers A)")
    return None


def order_too_soon(f: Features, who: Identity, c: Compiled) -> Hit | None:
    limit = c.policy.order_too_soon.min_seconds
    if f.event == "order" and f.seconds_since_click is not None and f.seconds_since_click < limit:
        return Hit(
            f"ordered {f.seconds_since_click} s after clicking the link",
            {"seconds_since_click": f.seconds_since_click, "min_seconds": limit},
        )
    return None


def rejected_referrals(f: Features, who: Identity, c: Compiled) -> Hit | None:
    rule = c.policy.rejected_referrals
    if f.advocate_rejected >= rule.max_rejected:
        return Hit(
            f"the advocate has {f.advocate_rejected} rejected referrals in {rule.window_days} days",
            {
                "rejected": f.advocate_rejected,
                "max_rejected": rule.max_rejected,
                "suspend_codes": rule.suspend_codes,
            },
        )
    return None


RULES: dict[str, Rule] = {
    "same_customer": same_customer,
    "same_email": same_email,
    "similar_email": similar_email,
    "same_ip_and_user_agent": same_ip_and_user_agent,
    "same_ip": same_ip,
    "same_device": same_device,
    "same_payment": same_payment,
    "same_address": same_address,
    "disposable_email": disposable_email,
    "advocate_velocity": advocate_velocity,
    "ip_velocity": ip_velocity,
    "existing_customer": existing_customer,
    "blocklist": blocklist,
    "deal_site_referrer": deal_site_referrer,
    "reciprocal_referral": reciprocal_referral,
    "order_too_soon": order_too_soon,
    "rejected_referrals": rejected_referrals,
}
assert tuple(RULES) == RULE_NAMES, "every policy rule has a function, in the policy's order"

_FORCED = Hit("test mode: a magic input fired this rule", {"test_mode": True})


def evaluate(f: Features, who: Identity, c: Compiled, *, version: int = 0) -> Decision:
    """Every enabled rule, in a fixed order. Flags only add their weight to the score."""
    policy = c.policy
    reasons: list[Reason] = []
    forced = f.forced
    for name, check, rule in c.enabled():
        hit = _FORCED if forced and name in forced else check(f, who, c)
        if hit is not None:
            reasons.append(Reason(name, rule.action, hit.detail, rule.weight, hit.evidence))
    score = sum(r.weight for r in reasons)
    actions = {r.action for r in reasons}
    if "block" in actions or score >= policy.block_score:
        outcome: Outcome = "block"
    elif "review" in actions or score >= policy.review_score:
        outcome = "review"
    else:
        outcome = "allow"
    return Decision(outcome, score, reasons, version, f)
