"""The advocate's share page: signed URLs, what the page shows (and hides), tracked share
buttons, the contact preference (page, API and reward events) and stories told from it."""

from __future__ import annotations

import re
import time
from html import unescape
from urllib.parse import unquote

from referral.share_page.service import signer
from tests.factories import approved_advocate_reward, create_program, referred_order


async def _advocate(client, tenant, program, customer="cus_anna"):
    response = await client.post(
        "/v1/advocates",
        json={
            "program_id": program["id"],
            "customer_id": customer,
            "name": "Anna Svensson",
            "email": "anna@example.com",
        },
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _share_url(client, tenant, advocate, **body) -> str:
    response = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json=body, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    assert response.json()["advocate_id"] == advocate["id"]
    return response.json()["url"].removeprefix("http://testserver.local")


class TestSharePage:
    async def test_shows_own_link_offer_referrals_and_rewards_only(self, client, tenant):
        program = await create_program(client, tenant)  # hold 14 days
        anna = await _advocate(client, tenant, program)
        other = await _advocate(client, tenant, program, customer="cus_other")
        await referred_order(client, tenant, anna["code"], 1, email="Bea.Friend@example.com")
        await referred_order(client, tenant, other["code"], 2, email="carl@example.com")
        path = await _share_url(client, tenant, anna)
        assert re.fullmatch(r"/share/[A-Za-z0-9_-]+", path)

        page = await client.get(path)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        text = page.text
        assert f'value="http://testserver.local/r/{anna["code"]}"' in text
        assert f"/r/{anna['code']}/qr.png" in text
        assert "10 EUR off their first order" in text  # said to her, about her friends
        for channel in ("whatsapp", "email", "sms", "x", "facebook", "linkedin"):
            assert f'href="{path}/to/{channel}"' in text
        assert 'id="share-sheet"' in text  # shown by script where navigator.share exists
        # Her referral, masked; her pending reward with its release date.
        assert "Friend B…" in text and "bea.friend" not in text.lower()
        assert "unless the order is returned" in text and "10 EUR" in text
        # Nothing of the other advocate's friend, and no emails at all.
        assert "Friend C…" not in text and "carl" not in text
        assert "@example.com" not in text

    async def test_bad_and_expired_tokens_get_a_clear_page(self, client, tenant, settings):
        program = await create_program(client, tenant)
        anna = await _advocate(client, tenant, program)
        path = await _share_url(client, tenant, anna)
        token = path.rsplit("/", 1)[1]
        tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        for bad in (tampered, "nonsense", "x" * 300):
            response = await client.get(f"/share/{bad}")
            assert response.status_code == 403
            assert "This link does not work" in response.text
        expired = signer(settings).sign(anna["id"], int(time.time()) - 1)
        response = await client.get(f"/share/{expired}")
        assert response.status_code == 410 and "This link has expired" in response.text
        assert response.headers["content-type"].startswith("text/html")
        forged = await client.post(
            f"/share/{tampered}/contact", data={"contact_preference": "none"}
        )
        assert forged.status_code == 403
        advocate = await client.get(f"/v1/advocates/{anna['id']}", headers=tenant.auth)
        assert advocate.json()["contact_preference"] == "email"

    async def test_share_buttons_are_recorded_then_redirect(self, client, tenant, db):
        program = await create_program(client, tenant)
        anna = await _advocate(client, tenant, program)
        path = await _share_url(client, tenant, anna)
        whatsapp = await client.get(f"{path}/to/whatsapp", follow_redirects=False)
        assert whatsapp.status_code == 302
        location = unquote(whatsapp.headers["location"])
        assert location.startswith("https://wa.me/?text=")
        assert f"http://testserver.local/r/{anna['code']}?ch=whatsapp" in location
        mail = await client.get(f"{path}/to/email", follow_redirects=False)
        assert mail.headers["location"].startswith("mailto:?subject=Shop%20A&body=")
        assert (await client.get(f"{path}/to/copy")).status_code == 204
        assert (await client.get(f"{path}/to/gopher", follow_redirects=False)).status_code == 404
        rows = await db.fetch("SELECT channel, story_id FROM shares ORDER BY shared_at")
        assert [(r["channel"], r["story_id"]) for r in rows] == [
            ("whatsapp", None),
            ("email", None),
            ("copy", None),
        ]

    async def test_swedish_program_gets_swedish_words(self, client, tenant):
        program = await create_program(client, tenant, locale="sv")
        anna = await _advocate(client, tenant, program)
        page = await client.get(await _share_url(client, tenant, anna))
        assert '<html lang="sv">' in page.text
        assert "Kopiera länken" in page.text and "Dina belöningar" in page.text
        assert ">E-post</a>" in page.text and ">Email</a>" not in page.text


class TestContactPreference:
    async def test_api_page_and_reward_events(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await _advocate(client, tenant, program)
        assert anna["contact_preference"] == "email"
        response = await client.post(
            f"/v1/advocates/{anna['id']}/contact-preference",
            json={"contact_preference": "sms"},
            headers=tenant.auth,
        )
        assert response.status_code == 200 and response.json()["contact_preference"] == "sms"
        bad = await client.post(
            f"/v1/advocates/{anna['id']}/contact-preference",
            json={"contact_preference": "pigeon"},
            headers=tenant.auth,
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")

        await approved_advocate_reward(client, tenant, anna["code"])
        events = (await client.get("/v1/events?limit=100", headers=tenant.auth)).json()["data"]
        rewards = [e for e in events if e["type"].startswith("reward.")]
        assert {e["type"] for e in rewards} >= {"reward.created", "reward.approved"}
        for event in rewards:
            expected = "sms" if event["data"]["side"] == "advocate" else None
            assert event["data"]["contact_preference"] == expected, event

        path = await _share_url(client, tenant, anna)
        saved = await client.post(
            f"{path}/contact", data={"contact_preference": "none"}, follow_redirects=False
        )
        assert saved.status_code == 303 and saved.headers["location"] == f"{path}?done=contact"
        page = await client.get(saved.headers["location"])
        assert "Saved." in page.text
        # the page's preference centre shows it: no channel ticked
        assert 'name="channels" value="email" checked' not in page.text
        assert 'name="channels" value="sms" checked' not in page.text
        advocate = await client.get(f"/v1/advocates/{anna['id']}", headers=tenant.auth)
        assert advocate.json()["contact_preference"] == "none"


class TestStoriesFromThePage:
    async def test_an_approved_reward_can_be_told_from_the_page(self, client, tenant):
        program = await create_program(client, tenant, stories_auto_publish=True)
        anna = await _advocate(client, tenant, program)
        reward_id = await approved_advocate_reward(client, tenant, anna["code"])
        path = await _share_url(client, tenant, anna)
        page = (await client.get(path)).text
        assert f'name="reward_id" value="{reward_id}"' in page
        assert "I got 10 EUR at Shop A for telling friends about it</textarea>" in page

        too_long = await client.post(
            f"{path}/stories", data={"reward_id": reward_id, "text": "x" * 281}
        )
        assert too_long.status_code == 422 and "could not be saved" in too_long.text
        told = await client.post(
            f"{path}/stories",
            data={"reward_id": reward_id, "text": "Best <shop> ever", "show_first_name": "on"},
            follow_redirects=False,
        )
        assert told.status_code == 303, told.text
        page = (await client.get(told.headers["location"])).text
        assert "Your story is published." in page
        assert "“Best &lt;shop&gt; ever”" in page
        link = unescape(re.search(r'<a href="([^"]+)" class="story-link"', page).group(1))
        story_page = await client.get(link.removeprefix("http://testserver.local"))
        assert story_page.status_code == 200 and "— Anna, a Shop A customer" in story_page.text
        assert f'name="reward_id" value="{reward_id}"' not in page  # told once


def test_share_tokens_never_reach_the_request_log():
    from referral.lib.logging import loggable_path

    assert loggable_path("/share/eyJhbGciOi.sig/to/whatsapp") == "/share/[token]/to/whatsapp"
    assert loggable_path("/share/eyJhbGciOi.sig") == "/share/[token]"
    assert loggable_path("/s/abc/share/x") == "/s/abc/share/x"  # a story's public path
