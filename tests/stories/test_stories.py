"""Stories through the HTTP API and their public pages, on a real PostgreSQL: moderation,
the story page (OpenGraph tags, escaping), share tracking, the per-story funnel and the
public social proof."""

from __future__ import annotations

import asyncio
import re
from html import unescape

import pytest

from tests.factories import (
    approved_advocate_reward,
    create_program,
    referred_order,
)

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126"}
PREVIEW_BOT = {"User-Agent": "facebookexternalhit/1.1"}


async def _advocate(client, tenant, program, name="Anna Svensson", customer="cus_anna"):
    response = await client.post(
        "/v1/advocates",
        json={
            "program_id": program["id"],
            "customer_id": customer,
            "name": name,
            "email": "anna.svensson@example.com",
        },
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _story(client, tenant, advocate, reward_id, **body):
    response = await client.post(
        "/v1/stories",
        json={"advocate_id": advocate["id"], "reward_id": reward_id, **body},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _publish(client, tenant, story):
    response = await client.patch(
        f"/v1/stories/{story['id']}", json={"status": "published"}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _published_story(client, tenant, **story_body):
    """An advocate of an auto-publishing program and her published story."""
    program = await create_program(client, tenant, stories_auto_publish=True)
    advocate = await _advocate(client, tenant, program)
    reward_id = await approved_advocate_reward(client, tenant, advocate["code"])
    return advocate, await _story(client, tenant, advocate, reward_id, **story_body)


def _slug(story) -> str:
    return story["url"].rsplit("/", 1)[1]


def _meta(page: str, attribute: str, name: str) -> str:
    match = re.search(rf'<meta {attribute}="{re.escape(name)}" content="([^"]*)">', page)
    assert match, f"no {name} meta tag"
    return unescape(match.group(1))


class TestCreateAndModerate:
    async def test_a_story_needs_an_approved_reward_and_waits_for_moderation(self, client, tenant):
        program = await create_program(client, tenant)
        advocate = await _advocate(client, tenant, program)
        order = await referred_order(client, tenant, advocate["code"])
        (pending,) = [r for r in order["rewards"] if r["side"] == "advocate"]
        (friends,) = [r for r in order["rewards"] if r["side"] == "friend"]
        for reward_id in (pending["id"], friends["id"]):
            response = await client.post(
                "/v1/stories",
                json={"advocate_id": advocate["id"], "reward_id": reward_id},
                headers=tenant.auth,
            )
            # Held, or the friend's side of the referral: nothing to tell yet.
            assert response.status_code == 409, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "reward_not_eligible"

        await client.post(
            f"/v1/rewards/{pending['id']}/approve", json={"actor": "t"}, headers=tenant.auth
        )
        story = await _story(client, tenant, advocate, pending["id"], show_first_name=True)
        assert story["id"].startswith("sty_")
        assert story["status"] == "pending"
        assert story["text"] == "I got 10 EUR at Shop A for telling friends about it"
        assert story["display_name"] == "Anna"
        slug = _slug(story)
        assert re.fullmatch(r"[A-Za-z0-9_-]{12}", slug) and story["id"][4:] not in slug

        assert (await client.get(f"/s/{slug}")).status_code == 404  # pending: not public
        published = await _publish(client, tenant, story)
        assert published["published_at"] is not None
        page = await client.get(f"/s/{slug}", headers=BROWSER)
        assert page.status_code == 200
        assert "Anna" in page.text and "Svensson" not in page.text
        assert "anna.svensson@example.com" not in page.text

        again = await client.post(
            "/v1/stories",
            json={"advocate_id": advocate["id"], "reward_id": pending["id"], "text": "Other"},
            headers=tenant.auth,
        )
        assert again.status_code == 200 and again.json()["id"] == story["id"]

        hidden = await client.patch(
            f"/v1/stories/{story['id']}", json={"status": "hidden"}, headers=tenant.auth
        )
        assert hidden.json()["status"] == "hidden"
        gone = await client.get(f"/s/{slug}")
        assert gone.status_code == 404 and "text/html" in gone.headers["content-type"]

        events = await client.get("/v1/events?limit=100", headers=tenant.auth)
        types = [e["type"] for e in events.json()["data"]]
        assert {"story.pending", "story.published", "story.hidden"} <= set(types)

    async def test_auto_publish_and_swedish_default_text(self, client, tenant):
        program = await create_program(
            client, tenant, stories_auto_publish=True, locale="sv", brand_colour="#aa3300"
        )
        advocate = await _advocate(client, tenant, program)
        reward_id = await approved_advocate_reward(client, tenant, advocate["code"])
        story = await _story(client, tenant, advocate, reward_id)
        assert story["status"] == "published"
        assert story["text"] == "Jag fick 10 EUR hos Shop A för att jag tipsade mina vänner"
        assert story["display_name"] is None
        page = await client.get(f"/s/{_slug(story)}", headers=BROWSER)
        assert page.status_code == 200
        assert '<html lang="sv">' in page.text and "--brand:#aa3300" in page.text
        assert "Få 10 EUR rabatt på din första beställning" in page.text

    @pytest.mark.parametrize(
        ("text", "status", "code"),
        [
            ("x" * 281, 400, "validation_error"),
            ("", 400, "validation_error"),
            ("   \n  ", 422, "invalid_story_text"),
            ("bell \x07 rings", 422, "invalid_story_text"),
        ],
    )
    async def test_bad_story_text_is_refused(self, client, tenant, text, status, code):
        program = await create_program(client, tenant)
        advocate = await _advocate(client, tenant, program)
        reward_id = await approved_advocate_reward(client, tenant, advocate["code"])
        response = await client.post(
            "/v1/stories",
            json={"advocate_id": advocate["id"], "reward_id": reward_id, "text": text},
            headers=tenant.auth,
        )
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
        listed = await client.get("/v1/stories", headers=tenant.auth)
        assert listed.json()["data"] == []

    async def test_list_filters_by_status_and_advocate(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await _advocate(client, tenant, program)
        bo = await _advocate(client, tenant, program, name="Bo", customer="cus_bo")
        first = await _story(
            client, tenant, anna, await approved_advocate_reward(client, tenant, anna["code"], 1)
        )
        second = await _story(
            client, tenant, bo, await approved_advocate_reward(client, tenant, bo["code"], 2)
        )
        await _publish(client, tenant, second)

        async def ids(**params):
            response = await client.get("/v1/stories", params=params, headers=tenant.auth)
            assert response.status_code == 200, response.text
            return [s["id"] for s in response.json()["data"]]

        assert await ids() == [first["id"], second["id"]]
        assert await ids(status="published") == [second["id"]]
        assert await ids(advocate_id=anna["id"]) == [first["id"]]
        assert await ids(limit=1, starting_after=first["id"]) == [second["id"]]


class TestStoryPage:
    async def test_open_graph_tags_and_the_call_to_action(self, client, tenant):
        advocate, story = await _published_story(client, tenant)
        page = (await client.get(f"/s/{_slug(story)}", headers=BROWSER)).text
        assert _meta(page, "property", "og:title") == story["text"]
        assert _meta(page, "property", "og:url") == story["url"]
        assert _meta(page, "property", "og:image") == story["image_url"]
        assert _meta(page, "property", "og:image:width") == "1200"
        assert _meta(page, "name", "twitter:card") == "summary_large_image"
        assert _meta(page, "name", "twitter:image") == story["image_url"]
        cta = unescape(re.search(r'id="story-cta" href="([^"]+)"', page).group(1))
        assert cta == f"http://testserver.local/r/{advocate['code']}?ch=story&s={story['id']}"

        image = await client.get(f"/s/{_slug(story)}/image.png")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        from io import BytesIO

        from PIL import Image

        assert Image.open(BytesIO(image.content)).size == (1200, 630)
        cached = await client.get(
            f"/s/{_slug(story)}/image.png", headers={"If-None-Match": image.headers["etag"]}
        )
        assert cached.status_code == 304

    async def test_a_slug_another_shop_holds_is_drawn_again_and_both_pages_stay_theirs(
        self, client, tenant, other_tenant, monkeypatch
    ):
        from referral.stories import service

        _, theirs = await _published_story(client, other_tenant)
        drawn = iter([_slug(theirs), "FreshSlug123"])
        monkeypatch.setattr(service, "new_slug", lambda: next(drawn))
        _, mine = await _published_story(client, tenant, text="Mine, not theirs")
        assert _slug(mine) == "FreshSlug123"
        page = (await client.get(f"/s/{_slug(theirs)}", headers=BROWSER)).text
        assert _meta(page, "property", "og:title") == theirs["text"]
        page = (await client.get("/s/FreshSlug123", headers=BROWSER)).text
        assert _meta(page, "property", "og:title") == "Mine, not theirs"

    async def test_script_in_a_story_renders_inert(self, client, tenant):
        program = await create_program(client, tenant, stories_auto_publish=True)
        advocate = await _advocate(client, tenant, program, name="<img src=x onerror=alert(2)>")
        evil = '</title><script>alert("x")</script> "quoted" & <b>bold</b>'
        story = await _story(
            client,
            tenant,
            advocate,
            await approved_advocate_reward(client, tenant, advocate["code"]),
            text=evil,
            show_first_name=True,
        )
        assert story["text"] == evil  # stored as typed; escaping is the page's job
        page = (await client.get(f"/s/{_slug(story)}", headers=BROWSER)).text
        assert "<script>alert" not in page and "<b>bold</b>" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
        assert _meta(page, "property", "og:title") == evil
        assert page.count("<script") == 0  # the story page runs no script at all

    async def test_unknown_slugs_get_a_small_html_page(self, client):
        for path in ("/s/nope", "/s/abcdefghijkl", "/s/abcdefghijkl/image.png"):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "This story is not available" in response.text


class TestTracking:
    async def test_views_shares_clicks_signups_orders_and_revenue(self, client, tenant, db):
        advocate, story = await _published_story(client, tenant)
        slug = _slug(story)
        for headers in (BROWSER, BROWSER, PREVIEW_BOT):
            assert (await client.get(f"/s/{slug}", headers=headers)).status_code == 200
        assert (await client.head(f"/s/{slug}", headers=BROWSER)).status_code == 200

        shared = await client.get(
            f"/s/{slug}/share/whatsapp", headers=BROWSER, follow_redirects=False
        )
        assert shared.status_code == 302, shared.text[:300]
        assert shared.headers["location"].startswith("https://wa.me/?text=")
        assert "testserver.local%2Fs%2F" + slug in shared.headers["location"]
        x = await client.get(f"/s/{slug}/share/x", headers=BROWSER, follow_redirects=False)
        assert x.headers["location"].startswith("https://x.com/intent/post?")
        await client.get(
            f"/s/{slug}/share/x", headers=PREVIEW_BOT, follow_redirects=False
        )  # not counted
        assert (await client.get(f"/s/{slug}/share/myspace")).status_code == 404

        follow = await client.get(
            f"/r/{advocate['code']}",
            params={"ch": "story", "s": story["id"]},
            headers=BROWSER,
            follow_redirects=False,
        )
        assert follow.status_code == 302
        token = re.search(r"ref_token=([^&]+)", follow.headers["location"]).group(1)
        await referred_order(client, tenant, "", n=7, codes=[], ref_token=token, total=6400)
        refunded = await client.post(
            "/v1/orders/ord-7/refunds",
            json={"refund_id": "r1", "amount": 400, "currency": "EUR"},
            headers=tenant.auth,
        )
        assert refunded.status_code == 201, refunded.text

        stats = None
        for _ in range(100):  # clicks are written by the buffered writer
            stats = (await client.get(f"/v1/stories/{story['id']}", headers=tenant.auth)).json()
            if stats["stats"]["clicks"]:
                break
            await asyncio.sleep(0.02)
        assert stats["stats"] == {
            "views": 2,
            "shares": {"whatsapp": 1, "x": 1},
            "clicks": 1,
            "signups": 1,
            "orders": 1,
            "referred_revenue": {"EUR": 6000},
        }


class TestSocialProof:
    async def test_public_cacheable_counts_and_published_stories(self, client, tenant):
        program = await create_program(client, tenant, stories_auto_publish=True)
        advocate = await _advocate(client, tenant, program)
        published = await _story(
            client,
            tenant,
            advocate,
            await approved_advocate_reward(client, tenant, advocate["code"], 1),
        )
        await referred_order(client, tenant, advocate["code"], 2)
        hidden = await _story(
            client,
            tenant,
            advocate,
            await approved_advocate_reward(client, tenant, advocate["code"], 3),
        )
        await client.patch(
            f"/v1/stories/{hidden['id']}", json={"status": "hidden"}, headers=tenant.auth
        )

        response = await client.get(f"/social-proof/{program['id']}")  # no key
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["friends_joined_this_month"] == 3
        assert body["headline"] == "3 friends joined this month"
        assert [s["url"] for s in body["stories"]] == [published["url"]]
        assert set(body["stories"][0]) == {
            "text",
            "display_name",
            "url",
            "image_url",
            "published_at",
        }
        assert "public" in response.headers["cache-control"]
        assert response.headers["access-control-allow-origin"] == "*"
        again = await client.get(
            f"/social-proof/{program['id']}", headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""

        await referred_order(client, tenant, advocate["code"], 4)
        changed = await client.get(
            f"/social-proof/{program['id']}", headers={"If-None-Match": response.headers["etag"]}
        )
        assert changed.status_code == 200 and changed.json()["friends_joined_this_month"] == 4

    async def test_unknown_or_archived_programs_are_problem_json(self, client, tenant):
        program = await create_program(client, tenant)
        await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "archived"}, headers=tenant.auth
        )
        for path in (f"/social-proof/{program['id']}", "/social-proof/prg_nope"):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_paused_programs_story_page_promises_no_offer(client, tenant):
    advocate, story = await _published_story(client, tenant)
    page = f"/s/{_slug(story)}"
    running = unescape((await client.get(page, headers=BROWSER)).text)
    assert "10 EUR off" in running, "a running program's story offers the friend's reward"
    paused = await client.post(
        f"/v1/programs/{story['program_id']}/pause",
        json={},
        headers={**tenant.auth, "Idempotency-Key": "pause-story"},
    )
    assert paused.status_code == 200, paused.text
    shown = unescape((await client.get(page, headers=BROWSER)).text)
    assert "10 EUR off" not in shown, "the link no longer brings the friend an offer"
    assert "for telling friends about it" in shown, "the story itself stays up"
    assert "Visit Shop" in shown, "its call to action leads to the shop"
