"""The redirect hot path and its click writer: what `/r/{code}` answers, what it records,
and that every buffered click reaches the database (on time, and on shutdown)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import random
import uuid
from datetime import UTC, datetime
from hashlib import sha256
from urllib.parse import parse_qs, parse_qsl, urlsplit

import asyncpg
import pytest

from referral.lib.db import create_pool
from referral.links.api import _channel_and_story
from referral.links.clicks import ClickWriter
from referral.links.repo import ProgramLinkRow
from referral.links.service import (
    CodeTarget,
    ProgramLink,
    _landing_url,
    landing_url_for,
    new_click_id,
)
from referral.links.token import ClickToken, ClickTokenSigner, HmacSha256
from referral.links.visitors import IpHasher, client_ip, is_bot
from tests.factories import create_advocate, create_program

CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


async def _clicks(db: asyncpg.Connection, expected: int) -> list[asyncpg.Record]:
    """The clicks rows, once `expected` of them are there (the writer flushes every 10 ms
    in tests); fails after five seconds."""
    for _ in range(250):
        rows = await db.fetch("SELECT * FROM clicks ORDER BY clicked_at, id")
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(rows)} click rows after 5 s, expected {expected}")


async def _link(client, tenant, **program) -> tuple[dict, dict]:
    created = await create_program(client, tenant, **program)
    return created, await create_advocate(client, tenant, created["id"])


def _token(app, location: str) -> ClickToken:
    raw = parse_qs(urlsplit(location).query)["ref_token"][0]
    token = app.state.runtime.signer.verify(raw)
    assert token is not None
    return token


async def test_redirect_sets_cookie_signs_token_and_records_click(app, client, tenant, db):
    program, advocate = await _link(client, tenant)
    code = advocate["code"]

    r = await client.get(
        f"/r/{code.lower()}?ch=WhatsApp",
        headers={"user-agent": CHROME, "referer": "https://WWW.Example.com/x?y=1"},
        follow_redirects=False,
    )

    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers["x-request-id"]
    location = r.headers["location"]
    assert location.startswith(f"https://shop.example/welcome?utm_source=referral&ref={code}&")
    token = _token(app, location)
    assert (token.code, token.channel, token.story_id) == (code, "whatsapp", None)
    cookie = r.headers["set-cookie"]
    assert cookie == (f"rv={token.visitor_id}; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax")
    (row,) = await _clicks(db, 1)
    assert row["id"] == uuid.UUID(token.click_id)
    assert (row["code"], row["channel"], row["visitor_id"]) == (code, "whatsapp", token.visitor_id)
    assert (row["user_agent"], row["referer_host"], row["is_bot"]) == (
        CHROME,
        "www.example.com",
        False,
    )
    assert abs(row["clicked_at"].timestamp() - token.issued_at) < 1
    rollup = await db.fetchrow("SELECT clicks, bot_hits, channel FROM click_rollups")
    assert tuple(rollup) == (1, 0, "whatsapp")


async def test_returning_visitor_keeps_its_id_and_malformed_cookie_is_replaced(app, client, tenant):
    _, advocate = await _link(client, tenant)
    url = f"/r/{advocate['code']}"

    known = await client.get(
        url, headers={"cookie": "a=1; rv=abcdefghijklmnopqrstuv; b=2"}, follow_redirects=False
    )
    assert "set-cookie" not in known.headers
    assert _token(app, known.headers["location"]).visitor_id == "abcdefghijklmnopqrstuv"

    for bad in ("rv=bad!value", "rv=short", "xrv=abcdefghijklmnopqrstuv"):
        r = await client.get(url, headers={"cookie": bad}, follow_redirects=False)
        visitor = _token(app, r.headers["location"]).visitor_id
        assert visitor != "abcdefghijklmnopqrstuv"
        assert r.headers["set-cookie"].startswith(f"rv={visitor};")


async def test_head_and_link_preview_bots_are_redirected_but_flagged(client, tenant, db):
    _, advocate = await _link(client, tenant)
    url = f"/r/{advocate['code']}"

    assert (await client.head(url, follow_redirects=False)).status_code == 302
    for agent in ("Slackbot-LinkExpanding 1.0", "facebookexternalhit/1.1", "my bot 2.0"):
        r = await client.get(url, headers={"user-agent": agent}, follow_redirects=False)
        assert r.status_code == 302
    r = await client.get(url, headers={"user-agent": "curl/8.5.0"}, follow_redirects=False)
    assert r.status_code == 302

    rows = await _clicks(db, 5)
    assert sorted(row["is_bot"] for row in rows) == [False, True, True, True, True]
    clicks, bots = await db.fetchrow("SELECT sum(clicks), sum(bot_hits) FROM click_rollups")
    assert (clicks, bots) == (1, 4)


async def test_channel_and_story_from_the_query(app, client, tenant, db):
    _, advocate = await _link(client, tenant)
    story = app.state.runtime.ids.encode("story", 42)
    url = f"/r/{advocate['code']}"

    cases = {
        f"?ch=%77hatsapp&s={story}": ("whatsapp", story),
        "?ch=email&ch=sms": ("sms", None),  # the last one wins
        "?ch=unknown&s=bogus": ("other", None),
        "?ch=&s=": ("link", None),
    }
    for query, (channel, story_id) in cases.items():
        r = await client.get(url + query, follow_redirects=False)
        token = _token(app, r.headers["location"])
        assert (token.channel, token.story_id) == (channel, story_id), query
    rows = await _clicks(db, len(cases))
    assert sorted(row["story_id"] or 0 for row in rows) == [0, 0, 0, 42]


async def test_unknown_code_gets_a_friendly_page(client, db):
    for method in ("GET", "HEAD"):
        r = await client.request(method, "/r/NOSUCHCODE", follow_redirects=False)
        assert r.status_code == 404
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["cache-control"] == "no-store"
        assert "set-cookie" not in r.headers
    r = await client.get("/r/NOSUCHCODE")
    assert "This referral link does not work any more" in r.text
    await asyncio.sleep(0.05)
    assert await db.fetchval("SELECT count(*) FROM clicks") == 0


async def test_paused_program_goes_to_its_fallback_or_the_landing_page_without_offer(
    client, tenant, db
):
    fallback = "https://shop.example/sorry?x=1"
    landing = "https://shop.example/w?utm_source=x&ref=OLD"
    with_fallback, a1 = await _link(client, tenant, fallback_url=fallback)
    without, a2 = await _link(client, tenant, landing_url=landing)
    for program in (with_fallback, without):
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "paused"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text

    r = await client.get(f"/r/{a1['code']}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (302, fallback)
    assert "set-cookie" not in r.headers
    r = await client.get(f"/r/{a2['code']}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (302, "https://shop.example/w?utm_source=x")
    await asyncio.sleep(0.05)
    assert await db.fetchval("SELECT count(*) FROM clicks") == 0


async def test_draft_program_goes_to_its_fallback_or_the_friendly_page(client, tenant, db):
    fallback = "https://shop.example/sorry?x=1"
    with_fallback, a1 = await _link(client, tenant, fallback_url=fallback)
    without, a2 = await _link(client, tenant)
    for program in (with_fallback, without):
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "draft"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text

    r = await client.get(f"/r/{a1['code']}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (302, fallback)
    r = await client.get(f"/r/{a2['code']}", follow_redirects=False)
    assert r.status_code == 404
    assert "text/html" in r.headers["content-type"]
    await asyncio.sleep(0.05)
    assert await db.fetchval("SELECT count(*) FROM clicks") == 0


async def test_landing_url_keeps_its_query_and_fragment(app, client, tenant):
    landing = "https://shop.example/w?utm_source=x&ref=OLD&a=b%20c+d&e=#top"
    _, advocate = await _link(client, tenant, landing_url=landing)
    r = await client.get(f"/r/{advocate['code']}", follow_redirects=False)
    location = r.headers["location"]
    assert location.startswith(
        f"https://shop.example/w?utm_source=x&a=b+c+d&e=&ref={advocate['code']}&ref_token="
    )
    assert location.endswith("#top")
    _token(app, location)


async def test_request_id_is_echoed_on_the_redirect(client, tenant):
    _, advocate = await _link(client, tenant)
    r = await client.get(
        f"/r/{advocate['code']}", headers={"x-request-id": "abc-123"}, follow_redirects=False
    )
    assert r.headers["x-request-id"] == "abc-123"


async def test_other_methods_are_not_allowed(client, tenant):
    _, advocate = await _link(client, tenant)
    assert (await client.post(f"/r/{advocate['code']}")).status_code == 405


# --------------------------------------------------------------------------- the writer


def _click(n: int, at: datetime | None = None) -> tuple:
    return (
        new_click_id(),
        at or datetime.now(UTC),
        1,
        2,
        3 + n % 7,
        "CODE",
        ("link", "qr")[n % 2],
        "visitor-000000001",
        None,
        None,
        None,
        None,
        None,
        n % 5 == 0,
    )


@pytest.fixture
async def pool(database_url):
    pool = await create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_writer_flushes_on_its_own(pool, db):
    writer = ClickWriter(pool, interval=0.05)
    writer.start()
    try:
        await asyncio.sleep(0.02)
        writer.record(_click(0))
        await _clicks(db, 1)  # without stop(): the writer's own turn wrote it
        # The row is visible from COMMIT on, a moment before the writer resumes to count it
        # (seen under parallel workers): wait for its count, as for the row.
        for _ in range(250):
            if writer.written:
                break
            await asyncio.sleep(0.02)
        assert (writer.pending, writer.written) == (0, 1)
    finally:
        await writer.stop()


async def test_writer_drains_everything_on_stop(pool, db):
    writer = ClickWriter(pool, interval=0.05)
    writer.start()
    for n in range(5000):
        writer.record(_click(n))
        if n % 500 == 0:
            await asyncio.sleep(0)  # let the writer take turns in the middle
    await writer.stop()

    assert writer.pending == 0
    assert await db.fetchval("SELECT count(*) FROM clicks") == 5000
    clicks, bots = await db.fetchrow("SELECT sum(clicks), sum(bot_hits) FROM click_rollups")
    assert (clicks, bots) == (4000, 1000)


class _BrokenPool:
    def acquire(self):
        raise OSError("database unreachable")


async def test_writer_keeps_a_failed_batch_and_bounds_it():
    writer = ClickWriter(_BrokenPool(), max_buffer=10)  # type: ignore[arg-type]
    for n in range(4):
        writer.record(_click(n))
    assert await writer.flush() == 0
    assert writer.pending == 4
    assert writer.last_error == "OSError"
    for n in range(4, 14):
        writer.record(_click(n))
    await writer.flush()
    assert (writer.pending, writer.dropped) == (10, 4)


# --------------------------------------------------------------------------- the pieces


def test_hmac_sha256_is_hmac():
    for key in (b"", b"k", b"x" * 64, b"y" * 65, b"z" * 200):
        mac = HmacSha256(key)
        for message in (b"", b"abc", bytes(range(256)) * 3):
            assert mac.digest(message) == hmac.digest(key, message, "sha256")


def test_ip_hashes_are_hmacs_of_the_address_and_its_network():
    key = "ip-key-0123456789abcdef"
    hasher = IpHasher(key)
    for text, prefix in (("203.0.113.77", 24), ("2001:db8:1:2:3:4:5:6", 64)):
        address = ipaddress.ip_address(text)
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        expected_net = network.network_address.packed + bytes([prefix])
        assert hasher.hashes(address) == (
            hmac.new(key.encode(), address.packed, sha256).digest()[:16],
            hmac.new(key.encode(), expected_net, sha256).digest()[:16],
        )
    assert hasher.hashes(None) == (None, None)


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies():
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_ip("203.0.113.5", "198.51.100.1", proxies) == ipaddress.ip_address("203.0.113.5")
    assert client_ip("10.0.0.2", "198.51.100.1, 10.0.0.3", proxies) == ipaddress.ip_address(
        "198.51.100.1"
    )
    assert client_ip("::1", None, ()) == ipaddress.ip_address("::1")
    for bad in ("testclient", "01.2.3.4", "1.2.3", ""):
        assert client_ip(bad, None, ()) is None


def test_bots_are_unfurlers_and_crawlers_not_curl():
    for agent in (
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1)",
        "WhatsApp/2.23.20",
        "TelegramBot (like TwitterBot)",
        "Quora Link Preview/1.0",
        "some BOT v2",
    ):
        assert is_bot(agent, "GET"), agent
    for agent in ("", "curl/8.5.0", CHROME, "robotic", "abbot"):
        assert not is_bot(agent, "GET"), agent
    assert is_bot(CHROME, "HEAD")


def test_channel_and_story_parse_as_parse_qsl():
    def reference(query: bytes) -> tuple[str | None, str | None]:
        found: dict[str, str] = {}
        for key, value in parse_qsl(query.decode("latin-1")):
            found[key] = value
        return found.get("ch"), found.get("s")

    rnd = random.Random(7)
    pieces = ["ch", "s", "=", "&", "a", "%41", "+", ";", "é", "%", "ch=", "s=", "qr"]
    for _ in range(5000):
        query = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 8))).encode("latin-1")
        assert _channel_and_story(query) == reference(query), query


def test_prepared_landing_url_equals_the_full_build():
    for landing in (
        "https://shop.example/welcome",
        "https://shop.example/w?utm_source=x&ref=OLD&ref_token=old&a=b%20c+d&e=#top",
        "https://shop.example/w?x=REFTOKENSLOTq7Xw3Z",  # holds the slot marker: not prepared
        "https://shop.example/w?x=REFCODESLOTk4Vz8P",
    ):
        program = ProgramLink(
            ProgramLinkRow(
                merchant_id=1,
                program_id=2,
                live=True,
                live_from=0.0,
                landing_url=landing,
                fallback_url=None,
                qr_foreground="#000000",
                qr_background="#ffffff",
            )
        )
        target = CodeTarget("ABCD234", 3, True, program)
        token = ClickTokenSigner("k" * 16).sign(
            ClickToken("ABCD234", new_click_id(), "link", "v" * 16, 1_700_000_000)
        )
        assert landing_url_for(target, token) == _landing_url(target, token)
        assert (program.redirect_parts is None) == ("SLOT" in landing)


def test_click_ids_are_uuid4():
    for _ in range(100):
        value = uuid.UUID(new_click_id())
        assert (value.version, value.variant) == (4, uuid.RFC_4122)
