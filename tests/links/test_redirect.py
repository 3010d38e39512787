"""The public referral link `/r/{code}`: redirect, signed click token, visitor cookie, click
recording and counting, bots, privacy of the visitor's address, and no open redirect."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar.testing import AsyncTestClient

from referral.app import create_app
from referral.lib.ids import PublicIds
from referral.links.token import ClickTokenSigner
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program, make_tenant, on_app_loop

LANDING = "https://shop.example/welcome?utm_source=referral&utm_medium=friend"
BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
BOTS = [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Twitterbot/1.0",
    "WhatsApp/2.23.20.0 A",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


@pytest.fixture
def signer(settings) -> ClickTokenSigner:
    return ClickTokenSigner(settings.click_token_key)


@pytest.fixture
async def advocate(client, tenant):
    program = await create_program(client, tenant, landing_url=LANDING)
    return await create_advocate(client, tenant, program["id"])


async def follow(client, path: str, **headers: str):
    """One visit by a browser with no cookies (unless one is passed)."""
    client.cookies.clear()
    headers.setdefault("user-agent", BROWSER)
    return await client.get(path, headers=headers, follow_redirects=False)


def query_of(response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)


def token_of(response, signer: ClickTokenSigner):
    (raw,) = query_of(response)["ref_token"]
    token = signer.verify(raw)
    assert token is not None, "ref_token does not verify"
    return token


def visitor_cookie(response) -> str | None:
    header = response.headers.get("set-cookie")
    if header is None:
        return None
    cookie = SimpleCookie(header)
    return cookie["rv"].value if "rv" in cookie else None


async def clicks(db, expected: int) -> list:
    """The click rows once `expected` are written (the writer flushes in the background;
    give it up to two seconds)."""
    deadline = time.monotonic() + 2.0
    while True:
        rows = await db.fetch("SELECT * FROM clicks ORDER BY clicked_at, id")
        if len(rows) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # and no more arrive
    rows = await db.fetch("SELECT * FROM clicks ORDER BY clicked_at, id")
    assert len(rows) == expected, [dict(r) for r in rows]
    return rows


class TestRedirect:
    async def test_to_landing_url_with_ref_and_signed_token(self, client, advocate, signer):
        r = await follow(client, f"/r/{advocate['code']}")
        assert r.status_code == 302, r.text
        location = urlsplit(r.headers["location"])
        assert (location.scheme, location.hostname, location.path) == (
            "https",
            "shop.example",
            "/welcome",
        )
        query = query_of(r)
        assert query["utm_source"] == ["referral"]
        assert query["utm_medium"] == ["friend"]
        assert query["ref"] == [advocate["code"]]
        token = token_of(r, signer)
        assert token.code == advocate["code"]
        assert token.channel == "link"
        assert token.visitor_id == visitor_cookie(r)
        assert abs(token.issued_at - time.time()) < 60
        assert "no-store" in r.headers["cache-control"]

    async def test_every_click_gets_its_own_token(self, client, advocate, signer):
        first = token_of(await follow(client, f"/r/{advocate['code']}"), signer)
        second = token_of(await follow(client, f"/r/{advocate['code']}"), signer)
        assert first.click_id != second.click_id

    async def test_token_is_tamper_proof(self, client, advocate, signer, settings):
        (raw,) = query_of(await follow(client, f"/r/{advocate['code']}"))["ref_token"]
        flipped = raw[:-3] + ("A" if raw[-3] != "A" else "B") + raw[-2:]
        assert signer.verify(flipped) is None
        assert ClickTokenSigner("some-other-deployment-key").verify(raw) is None

    async def test_stale_ref_in_landing_url_is_replaced(self, client, tenant, signer):
        program = await create_program(
            client, tenant, landing_url="https://shop.example/?ref=OLD&ref_token=old&x=1"
        )
        advocate = await create_advocate(client, tenant, program["id"])
        r = await follow(client, f"/r/{advocate['code']}")
        query = query_of(r)
        assert query["ref"] == [advocate["code"]]
        assert query["x"] == ["1"]
        assert token_of(r, signer).code == advocate["code"]

    @pytest.mark.parametrize("shape", ["lower", "dashed", "spaced"])
    async def test_code_typed_loosely(self, client, advocate, signer, shape):
        code = advocate["code"]
        typed = {
            "lower": code.lower(),
            "dashed": f"{code[:3]}-{code[3:]}".lower(),
            "spaced": f"{code[:4]}%20{code[4:]}",
        }[shape]
        r = await follow(client, f"/r/{typed}")
        assert r.status_code == 302, r.text
        assert query_of(r)["ref"] == [code]
        assert token_of(r, signer).code == code

    async def test_vanity_code_typed_with_confusables(self, client, tenant, advocate, signer):
        r = await client.post(
            f"/v1/advocates/{advocate['id']}/codes", json={"code": "ANNA10"}, headers=tenant.auth
        )
        assert r.status_code == 201, r.text
        r = await follow(client, "/r/anna-io")
        assert r.status_code == 302, r.text
        assert query_of(r)["ref"] == ["ANNA10"]
        assert token_of(r, signer).code == "ANNA10"

    @pytest.mark.parametrize(
        "query",
        [
            "?next=https://evil.example/",
            "?url=https://evil.example/phish",
            "?redirect=//evil.example&return_to=https%3A%2F%2Fevil.example",
            "?ref=EVIL&ref_token=forged&landing_url=https://evil.example",
        ],
    )
    async def test_no_open_redirect(self, client, advocate, signer, query):
        r = await follow(client, f"/r/{advocate['code']}{query}")
        assert r.status_code == 302
        location = urlsplit(r.headers["location"])
        assert location.hostname == "shop.example"
        assert location.path == "/welcome"
        assert "evil" not in r.headers["location"]
        assert query_of(r)["ref"] == [advocate["code"]]
        assert token_of(r, signer).code == advocate["code"]


class TestVisitorCookie:
    async def test_set_on_first_visit(self, client, advocate):
        r = await follow(client, f"/r/{advocate['code']}")
        morsel = SimpleCookie(r.headers["set-cookie"])["rv"]
        assert len(morsel.value) >= 16
        assert morsel["httponly"]
        assert morsel["samesite"].lower() == "lax"
        assert morsel["path"] == "/"
        assert int(morsel["max-age"]) >= 180 * 24 * 3600

    async def test_returning_visitor_keeps_the_id(self, client, advocate, signer, db):
        client.cookies.clear()
        first = await client.get(f"/r/{advocate['code']}", follow_redirects=False)
        visitor = visitor_cookie(first)
        assert visitor
        # The client's cookie jar sends rv back, as a browser would.
        second = await client.get(f"/r/{advocate['code']}?ch=email", follow_redirects=False)
        assert second.status_code == 302
        assert "set-cookie" not in second.headers
        assert token_of(second, signer).visitor_id == visitor
        rows = await clicks(db, 2)
        assert {row["visitor_id"] for row in rows} == {visitor}

    async def test_valid_cookie_is_not_reset(self, client, advocate, signer):
        visitor = "Zq3_x-7LmN0pQr5sTuVw"
        r = await follow(client, f"/r/{advocate['code']}", cookie=f"theme=dark; rv={visitor}")
        assert "set-cookie" not in r.headers
        assert token_of(r, signer).visitor_id == visitor

    @pytest.mark.parametrize(
        "bad", ["short", "<script>alert(1)</script>", "a" * 80, "has space inside it ok", ""]
    )
    async def test_malformed_cookie_is_replaced(self, client, advocate, signer, bad):
        r = await follow(client, f"/r/{advocate['code']}", cookie=f"rv={bad}")
        fresh = visitor_cookie(r)
        assert fresh and fresh != bad
        assert token_of(r, signer).visitor_id == fresh


class TestChannel:
    @pytest.mark.parametrize(
        ("query", "channel"),
        [
            ("?ch=whatsapp", "whatsapp"),
            ("?ch=WhatsApp", "whatsapp"),
            ("?ch=qr", "qr"),
            ("?ch=myspace", "other"),
            ("?ch=%3Cscript%3E", "other"),
            ("", "link"),
            ("?ch=", "link"),
        ],
    )
    async def test_channel(self, client, advocate, signer, db, query, channel):
        r = await follow(client, f"/r/{advocate['code']}{query}")
        assert r.status_code == 302
        assert token_of(r, signer).channel == channel
        (row,) = await clicks(db, 1)
        assert row["channel"] == channel


class TestClickRow:
    async def test_what_is_stored(self, client, advocate, signer, db):
        address = "198.51.100.23"
        user_agent = "Mozilla/5.0 (X11; Linux x86_64) " + "Gecko/20100101 Firefox/125.0 " * 20

        async def send(http):
            return await http.get(
                f"/r/{advocate['code']}?ch=email",
                headers={
                    "user-agent": user_agent,
                    "referer": "https://news.example.com/a/b?secret=token#frag",
                },
            )

        r = await on_app_loop(client, send, peer=(address, 51234))
        assert r.status_code == 302
        token = token_of(r, signer)
        (row,) = await clicks(db, 1)
        assert row["code"] == advocate["code"]
        assert row["channel"] == "email"
        assert row["visitor_id"] == token.visitor_id
        assert row["id"].hex == token.click_id
        assert row["is_bot"] is False
        assert row["user_agent"] == user_agent[:200]
        assert row["referer_host"] == "news.example.com"
        assert row["story_id"] is None
        assert row["ip_hash"] is not None and row["ip_net_hash"] is not None
        assert row["ip_hash"] != row["ip_net_hash"]
        packed = ipaddress.ip_address(address).packed
        for column, value in dict(row).items():
            if isinstance(value, bytes | bytearray):
                assert packed not in value, column
            else:
                assert address not in str(value), column
                assert "secret" not in str(value), column

    async def test_no_referer(self, client, advocate, db):
        await follow(client, f"/r/{advocate['code']}")
        (row,) = await clicks(db, 1)
        assert row["referer_host"] is None

    async def test_story_id(self, client, advocate, settings, signer, db):
        ids = PublicIds(settings.hashids_salt)
        story = ids.encode("story", 5)
        r1 = await follow(client, f"/r/{advocate['code']}?ch=story&s={story}")
        r2 = await follow(client, f"/r/{advocate['code']}?s=sty_notarealid")
        r3 = await follow(client, f"/r/{advocate['code']}?s={ids.encode('advocate', 5)}")
        assert [r.status_code for r in (r1, r2, r3)] == [302, 302, 302]
        assert token_of(r1, signer).story_id == story
        assert token_of(r2, signer).story_id is None
        rows = await clicks(db, 3)
        by_visitor = {row["visitor_id"]: row for row in rows}
        assert by_visitor[visitor_cookie(r1)]["story_id"] == 5
        assert by_visitor[visitor_cookie(r1)]["channel"] == "story"
        assert by_visitor[visitor_cookie(r2)]["story_id"] is None
        assert by_visitor[visitor_cookie(r3)]["story_id"] is None


class TestBots:
    async def test_bots_and_head_are_redirected_but_not_counted(self, client, tenant, advocate, db):
        path = f"/r/{advocate['code']}"
        for user_agent in BOTS:
            r = await follow(client, path, **{"user-agent": user_agent})
            assert r.status_code == 302, user_agent
            assert urlsplit(r.headers["location"]).hostname == "shop.example"
        client.cookies.clear()
        head = await client.head(path, headers={"user-agent": BROWSER}, follow_redirects=False)
        assert head.status_code == 302
        assert urlsplit(head.headers["location"]).hostname == "shop.example"
        for user_agent in ("curl/8.5.0", BROWSER):
            assert (await follow(client, path, **{"user-agent": user_agent})).status_code == 302

        rows = await clicks(db, len(BOTS) + 3)
        flagged = {(row["user_agent"], row["is_bot"]) for row in rows}
        assert flagged == {(ua, True) for ua in BOTS} | {
            (BROWSER, True),  # the HEAD request
            (BROWSER, False),
            ("curl/8.5.0", False),
        }
        totals = await db.fetchrow(
            "SELECT sum(clicks) AS clicks, sum(bot_hits) AS bots FROM click_rollups"
        )
        assert (totals["clicks"], totals["bots"]) == (2, len(BOTS) + 1)
        r = await client.get(f"/v1/advocates/{advocate['id']}", headers=tenant.auth)
        assert r.json()["clicks"] == 2

    async def test_curl_is_a_visitor(self, client, tenant, advocate, db):
        r = await follow(client, f"/r/{advocate['code']}", **{"user-agent": "curl/8.5.0"})
        assert r.status_code == 302
        (row,) = await clicks(db, 1)
        assert row["is_bot"] is False
        r = await client.get(f"/v1/advocates/{advocate['id']}", headers=tenant.auth)
        assert r.json()["clicks"] == 1

    @pytest.mark.parametrize(
        "user_agent",
        [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 16_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 Snapchat/12.10.0.33 (like Safari/8614.2.9.0.10, "
            "panda)",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
        ],
    )
    async def test_in_app_browsers_are_visitors(self, client, advocate, db, user_agent):
        # Their agents name the app, yet a person is reading: not a link unfurler.
        await follow(client, f"/r/{advocate['code']}", **{"user-agent": user_agent})
        (row,) = await clicks(db, 1)
        assert row["is_bot"] is False


class TestCounts:
    async def test_rollups_equal_non_bot_rows(self, client, tenant, db):
        program = await create_program(client, tenant, landing_url=LANDING)
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        ben = await create_advocate(client, tenant, program["id"], "cus_ben")
        visits = (
            [(anna, "?ch=whatsapp", BROWSER)] * 4
            + [(anna, "", "curl/8.5.0")] * 3
            + [(anna, "?ch=whatsapp", BOTS[3])] * 2
            + [(ben, "?ch=email", BROWSER)] * 5
            + [(ben, "?ch=nonsense", BROWSER)]
            + [(ben, "", BOTS[0])]
        )
        for advocate, query, user_agent in visits:
            r = await follow(client, f"/r/{advocate['code']}{query}", **{"user-agent": user_agent})
            assert r.status_code == 302
        await clicks(db, len(visits))

        rows = await db.fetch(
            """SELECT advocate_id, channel, count(*) FILTER (WHERE NOT is_bot) AS humans,
                      count(*) FILTER (WHERE is_bot) AS bots
               FROM clicks GROUP BY 1, 2"""
        )
        rollups = await db.fetch(
            """SELECT advocate_id, channel, sum(clicks) AS clicks, sum(bot_hits) AS bots
               FROM click_rollups GROUP BY 1, 2"""
        )
        from_rows = {(r["advocate_id"], r["channel"]): (r["humans"], r["bots"]) for r in rows}
        from_rollups = {(r["advocate_id"], r["channel"]): (r["clicks"], r["bots"]) for r in rollups}
        assert from_rollups == from_rows
        assert sum(h for h, _ in from_rows.values()) == 13

        expected = {anna["id"]: 7, ben["id"]: 6}
        for advocate_id, count in expected.items():
            r = await client.get(f"/v1/advocates/{advocate_id}", headers=tenant.auth)
            assert r.json()["clicks"] == count


class TestUnavailable:
    @pytest.mark.parametrize("code", ["NOSUCHCODE", "x", "A" * 40, "%3Cscript%3E"])
    async def test_unknown_code_gets_a_friendly_page(self, client, advocate, db, code):
        r = await follow(client, f"/r/{code}")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert "<html" in r.text.lower()
        assert "location" not in r.headers
        assert "<script>" not in r.text
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
        await asyncio.sleep(0.1)
        assert await db.fetchval("SELECT count(*) FROM clicks") == 0

    async def test_paused_program_goes_to_fallback_url(self, client, tenant, db):
        program = await create_program(client, tenant, landing_url=LANDING)
        advocate = await create_advocate(client, tenant, program["id"])
        r = await client.patch(
            f"/v1/programs/{program['id']}",
            json={"status": "paused", "fallback_url": "https://shop.example/sale-is-over"},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        r = await follow(client, f"/r/{advocate['code'].lower()}")
        assert r.status_code == 302
        assert r.headers["location"] == "https://shop.example/sale-is-over"

    async def test_paused_program_without_fallback_lands_without_the_offer(self, client, tenant):
        program = await create_program(client, tenant, landing_url=LANDING)
        advocate = await create_advocate(client, tenant, program["id"])
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "paused"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text
        r = await follow(client, f"/r/{advocate['code']}")
        assert (r.status_code, r.headers["location"]) == (302, LANDING)  # no ref, no token

    async def test_archived_program_without_fallback_gets_the_page(self, client, tenant):
        program = await create_program(client, tenant, landing_url=LANDING)
        advocate = await create_advocate(client, tenant, program["id"])
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "archived"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text
        r = await follow(client, f"/r/{advocate['code']}")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")
        assert "location" not in r.headers

    async def test_resumed_program_redirects_again(self, client, tenant, signer):
        program = await create_program(client, tenant, landing_url=LANDING)
        advocate = await create_advocate(client, tenant, program["id"])
        for status in ("paused", "active"):
            r = await client.patch(
                f"/v1/programs/{program['id']}", json={"status": status}, headers=tenant.auth
            )
            assert r.status_code == 200
        r = await follow(client, f"/r/{advocate['code']}")
        assert r.status_code == 302
        assert token_of(r, signer).code == advocate["code"]


async def _probe(client, code: str, peer: str, label: str, forwarded_for: str | None = None):
    async def send(http):
        headers = {"user-agent": label}
        if forwarded_for is not None:
            headers["x-forwarded-for"] = forwarded_for
        return await http.get(f"/r/{code}", headers=headers)

    r = await on_app_loop(client, send, peer=(peer, 40000))
    assert r.status_code == 302


async def _hashes(db, count: int) -> dict[str, tuple[bytes, bytes]]:
    rows = await clicks(db, count)
    return {row["user_agent"]: (row["ip_hash"], row["ip_net_hash"]) for row in rows}


class TestClientAddress:
    async def test_forwarded_for_ignored_without_trusted_proxies(self, client, advocate, db):
        code = advocate["code"]
        await _probe(client, code, "10.0.0.5", "spoofed", forwarded_for="203.0.113.9")
        await _probe(client, code, "10.0.0.5", "proxy itself")
        await _probe(client, code, "203.0.113.9", "claimed address")
        await _probe(client, code, "203.0.113.77", "same network")
        hashes = await _hashes(db, 4)
        assert hashes["spoofed"] == hashes["proxy itself"]
        assert hashes["spoofed"][0] != hashes["claimed address"][0]
        # Same /24: the network hash matches, the address hash does not.
        assert hashes["same network"][1] == hashes["claimed address"][1]
        assert hashes["same network"][0] != hashes["claimed address"][0]
        assert hashes["proxy itself"][1] != hashes["claimed address"][1]

    async def test_forwarded_for_believed_only_from_trusted_proxies(self, database_url, db):
        app = create_app(make_settings(database_url, trusted_proxies=("10.0.0.0/8",)))
        tenant = await make_tenant(db, "Proxied shop")
        async with AsyncTestClient(app, base_url="http://testserver.local") as proxied:
            program = await create_program(proxied, tenant, landing_url=LANDING)
            code = (await create_advocate(proxied, tenant, program["id"]))["code"]
            visitor, stranger = "203.0.113.9", "192.0.2.50"
            await _probe(proxied, code, "10.0.0.5", "via proxy", forwarded_for=visitor)
            await _probe(
                proxied,
                code,
                "10.0.0.5",
                "via proxy, forged left",
                forwarded_for=f"198.51.100.1, {visitor}",
            )
            await _probe(proxied, code, "10.0.0.5", "via two proxies", f"{visitor}, 10.2.3.4")
            await _probe(proxied, code, stranger, "stranger claims", forwarded_for=visitor)
            await _probe(proxied, code, visitor, "visitor direct")
            await _probe(proxied, code, stranger, "stranger direct")
            hashes = await _hashes(db, 6)
        assert hashes["via proxy"] == hashes["visitor direct"]
        assert hashes["via proxy, forged left"] == hashes["visitor direct"]
        assert hashes["via two proxies"] == hashes["visitor direct"]
        assert hashes["stranger claims"] == hashes["stranger direct"]
        assert hashes["stranger direct"] != hashes["visitor direct"]
