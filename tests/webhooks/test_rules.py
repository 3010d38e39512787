"""The pure webhook rules: matching, signing, addresses, Retry-After and the schedule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from referral.webhooks import rules
from referral.webhooks.schemas import EVENT_TYPES

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_matching():
    assert rules.matches(["*"], "reward.paid")
    assert rules.matches(["reward.*"], "reward.paid")
    assert not rules.matches(["reward.*"], "referral.converted")
    assert not rules.matches(["payout.*"], "payout_batch.paid")
    assert rules.matches(["order.cancelled"], "order.cancelled")
    assert not rules.matches(["order.cancelled"], "order.refunded")


def test_unknown_patterns_are_named():
    assert rules.unknown_patterns(["reward.*", "*", "order.cancelled"], EVENT_TYPES) == []
    assert rules.unknown_patterns(["reward.payed", "rewards.*", "re*"], EVENT_TYPES) == [
        "reward.payed",
        "rewards.*",
        "re*",
    ]


@pytest.mark.parametrize("body", [b"", b"{}", b'{"id":"evt_1","data":{"a":"\xc3\xa5"}}'])
@pytest.mark.parametrize("timestamp", [0, 1767225600, 2**33])
def test_signature_is_what_the_reference_library_signs(body, timestamp):
    secret = bytes(range(32))
    expected = Webhook(rules.show_secret(secret)).sign(
        "evt_1", datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    assert rules.sign(secret, "evt_1", timestamp, body) == expected


@pytest.mark.parametrize(
    ("address", "live", "refusal"),
    [
        ("127.0.0.1", True, "loopback"),
        ("127.0.0.1", False, None),
        ("::1", True, "loopback"),
        ("10.1.2.3", True, "private"),
        ("192.168.1.1", False, None),
        ("172.16.0.1", True, "private"),
        ("100.64.0.1", True, "private"),
        ("169.254.169.254", False, "metadata"),
        ("169.254.1.1", False, "link_local"),
        ("fe80::1", True, "link_local"),
        ("fd00:ec2::254", False, "metadata"),
        ("fc00::1", True, "private"),
        ("::ffff:127.0.0.1", True, "loopback"),
        ("::ffff:10.0.0.1", True, "private"),
        ("0.0.0.0", False, "reserved"),
        ("224.0.0.1", False, "reserved"),
        ("93.184.216.34", True, None),
        ("2606:4700::1111", True, None),
    ],
)
def test_address_refusal(address, live, refusal):
    assert rules.address_refusal(address, live=live) == refusal


def test_check_url():
    rules.check_url("https://shop.example/hooks", live=True)
    rules.check_url("http://localhost:8080/hooks", live=False)
    for url, live in [
        ("http://shop.example/hooks", True),
        ("https://10.0.0.1/hooks", True),
        ("https://[::1]/hooks", True),
        ("https://169.254.169.254/latest", False),
        ("ftp://shop.example/", False),
        ("https://user:pw@shop.example/", False),
        ("https:///nohost", False),
    ]:
        with pytest.raises(rules.UrlProblem):
            rules.check_url(url, live=live)


def test_retry_after():
    assert rules.retry_after("120", NOW) == timedelta(seconds=120)
    assert rules.retry_after("Thu, 01 Jan 2026 00:10:00 GMT", NOW) == timedelta(minutes=10)
    assert rules.retry_after("Wed, 31 Dec 2025 00:00:00 GMT", NOW) == timedelta(0)
    assert rules.retry_after("999999", NOW) == rules.MAX_RETRY_AFTER
    assert rules.retry_after("soon", NOW) is None
    assert rules.retry_after(None, NOW) is None


def test_schedule_with_jitter_and_retry_after():
    rng = random.Random(1)
    waits = [rules.next_attempt(n, NOW, rng=rng) - NOW for n in range(1, 8)]
    nominal = rules.SCHEDULE[1:]
    for wait, expected in zip(waits, nominal, strict=True):
        assert expected * 0.9 <= wait <= expected * 1.1
    assert sum(nominal, timedelta()) == timedelta(hours=27, minutes=35, seconds=5)
    assert rules.next_attempt(8, NOW) is None, "8 attempts in all, then failed"
    later = rules.next_attempt(1, NOW, wait_at_least=timedelta(minutes=2))
    assert later == NOW + timedelta(minutes=2), "a longer Retry-After wins"


def test_loggable_url_drops_path_and_query():
    assert rules.loggable_url("https://shop.example:8443/h?token=s3cret") == (
        "https://shop.example:8443"
    )
