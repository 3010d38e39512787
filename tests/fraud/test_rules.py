"""The fraud rules without a server: each fires on its case and stays quiet on the close
case next to it (the household sharing an IP, the colleague at the same company domain)."""

from __future__ import annotations

import msgspec
import pytest

from referral.fraud.policy import RULE_NAMES, FraudPolicy
from referral.fraud.rules import Compiled, Features, Identity, evaluate
from referral.fraud.service import magic_rules
from referral.fraud.signals import SignalHasher, normalise_address
from referral.lib.emails import normalise_email
from referral.lib.errors import InvalidInput

ANNA = Identity(
    friend_customer_id="cus_friend",
    friend_email="bert@example.org",
    advocate_customer_id="cus_anna",
    advocate_email="anna.lind@example.com",
)


def policy(**settings) -> Compiled:
    return Compiled(msgspec.convert(settings, FraudPolicy))


def fired(features: Features = Features(), who: Identity = ANNA, **settings) -> set[str]:
    return {r.rule for r in evaluate(features, who, policy(**settings)).reasons}


def friend(**changes) -> Identity:
    return msgspec.structs.replace(ANNA, **changes)


def test_a_plain_new_friend_is_allowed_with_no_reasons():
    decision = evaluate(Features(), ANNA, policy())
    assert (decision.action, decision.score, decision.reasons) == ("allow", 0, [])


def test_same_customer_id():
    assert "same_customer" in fired(who=friend(friend_customer_id="cus_anna"))
    assert "same_customer" not in fired(who=friend(friend_customer_id="cus_anna2"))


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Anna.Lind+promo@GMAIL.com", "annalind@gmail.com"),
        ("a.n.n.a.lind@googlemail.com", "annalind@gmail.com"),
        ("anna.lind+x@outlook.com", "anna.lind@outlook.com"),
        ("anna.lind@example.com", "anna.lind@example.com"),
    ],
)
def test_same_email_after_normalisation(typed, expected):
    assert normalise_email(typed) == expected
    who = friend(friend_email=normalise_email(typed), advocate_email=expected)
    assert "same_email" in fired(who=who)
    # Dots matter outside Gmail: another inbox, not the same person.
    other = friend(friend_email="annal.ind@example.com", advocate_email="anna.lind@example.com")
    assert "same_email" not in fired(who=other)


def test_similar_email_same_local_part_or_one_edit():
    assert "similar_email" in fired(who=friend(friend_email="anna.lind@yahoo.com"))
    assert "similar_email" in fired(who=friend(friend_email="anna.lindd@example.com"))
    # Two edits apart, or a short common local part: different people.
    assert "similar_email" not in fired(who=friend(friend_email="anna.lundh@example.com"))
    short = friend(friend_email="ann@yahoo.com", advocate_email="ann@example.com")
    assert "similar_email" not in fired(who=short)
    # A colleague at the same company is not similar just for the domain.
    assert "similar_email" not in fired(who=friend(friend_email="peter.berg@example.com"))


def test_same_ip_and_user_agent_is_strong_ip_alone_is_weak():
    strong = evaluate(Features(matched=["ip", "ip_ua"]), ANNA, policy())
    assert [r.rule for r in strong.reasons] == ["same_ip_and_user_agent"]
    assert strong.action == "review"
    # The household: same address, another browser. A flag with a small weight, allowed.
    household = evaluate(Features(matched=["ip"]), ANNA, policy())
    assert [(r.rule, r.action) for r in household.reasons] == [("same_ip", "flag")]
    assert household.action == "allow"


@pytest.mark.parametrize(
    ("signal", "rule", "action"),
    [
        ("visitor", "same_device", "review"),
        ("payment", "same_payment", "block"),
        ("address", "same_address", "review"),
    ],
)
def test_shared_signals_with_the_advocate(signal, rule, action):
    decision = evaluate(Features(matched=[signal]), ANNA, policy())
    assert [r.rule for r in decision.reasons] == [rule]
    assert decision.action == action
    assert rule not in fired(Features(matched=[]))


def test_disposable_domain_with_extra_and_allowed_domains():
    assert "disposable_email" in fired(Features(disposable_domain=True))
    assert "disposable_email" not in fired(Features(disposable_domain=False))
    who = friend(friend_email="x@burner.example")
    assert "disposable_email" in fired(
        who=who, disposable_email={"extra_domains": ["burner.example"]}
    )
    assert "disposable_email" not in fired(
        Features(disposable_domain=True),
        who=who,
        disposable_email={"allowed_domains": ["burner.example"]},
    )


def test_advocate_velocity_per_hour_and_per_day():
    assert "advocate_velocity" in fired(Features(advocate_referrals_hour=6))
    assert "advocate_velocity" not in fired(Features(advocate_referrals_hour=5))
    assert "advocate_velocity" in fired(
        Features(advocate_referrals_hour=2, advocate_referrals_day=21)
    )
    relaxed = {"advocate_velocity": {"max_per_hour": 10}}
    assert "advocate_velocity" not in fired(Features(advocate_referrals_hour=6), **relaxed)


def test_ip_velocity_counts_signups_and_orders_per_day():
    assert "ip_velocity" in fired(Features(ip_events_day=4))
    assert "ip_velocity" not in fired(Features(ip_events_day=3))
    assert "ip_velocity" not in fired(Features(ip_events_day=None))  # no IP sent


def test_existing_customer():
    assert "existing_customer" in fired(Features(new_customer=False))
    assert "existing_customer" not in fired(Features(new_customer=True))


def test_blocklists_with_wildcards():
    lists = {
        "emails": ["*@spam.example", "exact@example.org", "Mal.Lory+promo@gmail.com"],
        "email_domains": ["*.fraud.example"],
        "customer_ids": ["bad-*", "CUS_Mallory"],
        "referring_domains": ["leaks.example"],
    }
    cases = [
        friend(friend_email="whoever@spam.example"),
        friend(friend_email="exact@example.org"),
        friend(friend_email="x@mail.fraud.example"),
        friend(friend_customer_id="bad-42"),
        friend(advocate_customer_id="bad-advocate"),
        friend(friend_customer_id="cus_mallory"),
        friend(friend_email=normalise_email("mallory@googlemail.com")),
    ]
    for who in cases:
        assert "blocklist" in fired(who=who, blocklist=lists), who
    assert "blocklist" in fired(Features(referer_host="www.leaks.example"), blocklist=lists)
    assert "blocklist" not in fired(who=friend(friend_email="x@notfraud.example"), blocklist=lists)
    assert "blocklist" not in fired(who=friend(friend_customer_id="good-42"), blocklist=lists)
    assert "blocklist" in fired(Features(ip_blocklisted="10.0.0.0/8"))


def test_deal_site_referrer_default_and_edited_list():
    assert "deal_site_referrer" in fired(Features(referer_host="www.retailmenot.com"))
    assert "deal_site_referrer" not in fired(Features(referer_host="www.instagram.com"))
    edited = {"deal_site_referrer": {"domains": ["instagram.com"]}}
    assert "deal_site_referrer" in fired(Features(referer_host="l.instagram.com"), **edited)
    assert "deal_site_referrer" not in fired(Features(referer_host="retailmenot.com"), **edited)


def test_reciprocal_referral():
    assert "reciprocal_referral" in fired(Features(reciprocal=True))
    assert "reciprocal_referral" not in fired(Features(reciprocal=False))


def test_order_too_soon_after_the_click():
    assert "order_too_soon" in fired(Features(seconds_since_click=3))
    assert "order_too_soon" not in fired(Features(seconds_since_click=600))
    assert "order_too_soon" not in fired(Features(seconds_since_click=None))  # typed a code
    assert "order_too_soon" not in fired(Features(event="signup", seconds_since_click=3))


def test_rejected_referrals():
    assert "rejected_referrals" in fired(Features(advocate_rejected=3))
    assert "rejected_referrals" not in fired(Features(advocate_rejected=2))


def test_flags_add_up_to_review_and_block_scores():
    flags = Features(matched=["ip"], new_customer=False, ip_events_day=9)  # 15 + 20 + 30
    decision = evaluate(flags, ANNA, policy())
    assert {r.action for r in decision.reasons} == {"flag"}
    assert (decision.score, decision.action) == (65, "review")
    assert evaluate(flags, ANNA, policy(review_score=70)).action == "allow"
    assert evaluate(flags, ANNA, policy(review_score=50, block_score=60)).action == "block"


def test_a_disabled_rule_never_fires():
    features = Features(matched=["payment"])
    assert fired(features, same_payment={"enabled": False}) == set()


def test_each_reason_carries_its_action_weight_and_evidence():
    decision = evaluate(Features(advocate_referrals_hour=9), ANNA, policy())
    (reason,) = decision.reasons
    assert (reason.rule, reason.action, reason.weight) == ("advocate_velocity", "review", 40)
    assert reason.evidence["last_hour"] == 9 and reason.evidence["max_per_hour"] == 5


@pytest.mark.parametrize("n", range(1, len(RULE_NAMES) + 1))
def test_test_mode_magic_inputs_fire_each_rule(n):
    import ipaddress

    rule = RULE_NAMES[n - 1]
    assert magic_rules(f"{rule}@fraud.test", None) == [rule]
    assert magic_rules(None, ipaddress.ip_address(f"192.0.2.{n}")) == [rule]
    assert rule in fired(Features(forced=[rule]))


def test_magic_inputs_are_ordinary_elsewhere():
    import ipaddress

    assert magic_rules("same_ip@fraud.example", ipaddress.ip_address("192.0.3.4")) == []
    assert magic_rules("nonsense@fraud.test", ipaddress.ip_address("192.0.2.200")) == []


def test_addresses_normalise_before_hashing():
    a = normalise_address("Storgatan 12", "", "Malmö", "211 42", "se")
    b = normalise_address("  STORGATAN 12 ", "", "MALMO", "21142", "SE")
    assert a == b
    assert normalise_address("Main Street 1", "", "X", "1", "US") == normalise_address(
        "main st. 1", "", "x", "1", "us"
    )
    assert normalise_address("Storgatan 14", "", "Malmö", "211 42", "SE") != a
    assert normalise_address("", "", "Malmö", "211 42", "SE") is None


def test_signals_are_keyed_hashes_never_raw_values():
    hasher = SignalHasher("k1")
    signals = hasher.signals(
        ip_hash=b"\x01" * 16,
        user_agent="Mozilla/5.0",
        visitor_ids=["v1", "v1", ""],
        payment_fingerprint="card_abc",
        address="storgatan 12|malmo|21142|SE",
    )
    assert [kind for kind, _ in signals] == ["ip", "ip_ua", "visitor", "payment", "address"]
    assert all(b"card_abc" not in value and value != b"v1" for _, value in signals)
    other_key = SignalHasher("k2").signals(
        ip_hash=None, user_agent=None, visitor_ids=["v1"], payment_fingerprint=None, address=None
    )
    assert other_key[0][1] != signals[2][1]


def test_policy_validation_names_the_field():
    # The shape (types, bounds, names): msgspec's 400 at the field's path.
    bad = [
        ({"same_ip": {"action": "ban"}}, "$.same_ip.action"),
        ({"same_ip": {"weight": 101}}, "$.same_ip.weight"),
        ({"velocity": {}}, "velocity"),
    ]
    for body, where in bad:
        with pytest.raises(msgspec.ValidationError, match=None) as error:
            msgspec.convert(body, FraudPolicy)
        assert where in str(error.value), (body, str(error.value))
    # What JSON Schema cannot state (score order, CIDRs, domain patterns): a 422 naming it.
    refused = [
        ({"review_score": 200, "block_score": 100}, "review_score"),
        ({"blocklist": {"ips": ["10.0.0.300/8"]}}, "blocklist.ips"),
        ({"deal_site_referrer": {"domains": ["not a domain"]}}, "deal_site_referrer"),
    ]
    for body, where in refused:
        with pytest.raises(InvalidInput) as error:
            msgspec.convert(body, FraudPolicy)
        assert error.value.code == "invalid_fraud_policy"
        assert where in error.value.detail, (body, error.value.detail)


def test_a_partial_rule_setting_keeps_that_rules_own_defaults():
    policy = msgspec.convert(
        {"blocklist": {"ips": ["10.0.0.0/8"]}, "same_ip": {"weight": 5}}, FraudPolicy
    )
    assert (policy.blocklist.action, policy.blocklist.weight) == ("block", 100)
    assert (policy.same_ip.action, policy.same_ip.weight) == ("flag", 5)


def test_the_readme_numbers_the_rules_as_the_magic_ips_do():
    """Test mode's 192.0.2.N fires rule N of the README's table: the two must agree."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = re.findall(r"^\| (\d+) \| `(\w+)` \|", readme, re.M)
    assert [(int(n), name) for n, name in table] == list(enumerate(RULE_NAMES, start=1))
