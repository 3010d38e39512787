"""What a visiting friend reads on a story page, in English and Swedish: the page speaks to
them ("your welcome offer", "get 10 EUR off your first order"), never in the advocate's
words ("your friends get"); and HEAD on the customer pages and images answers as GET does,
without a body (and without counting a view)."""

from __future__ import annotations

import time

import pytest

from referral.share_page.service import signer
from tests.factories import approved_advocate_reward, create_program
from tests.web.visible import visible_text

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126"}


async def _story_page(client, tenant, *, locale="en", show_first_name=False, **program):
    program = await create_program(
        client, tenant, stories_auto_publish=True, locale=locale, **program
    )
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "cus_anna", "name": "Anna Svensson"},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    advocate = response.json()
    reward_id = await approved_advocate_reward(client, tenant, advocate["code"])
    response = await client.post(
        "/v1/stories",
        json={
            "advocate_id": advocate["id"],
            "reward_id": reward_id,
            "show_first_name": show_first_name,
        },
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    story = response.json()
    path = "/s/" + story["url"].rsplit("/", 1)[1]
    page = await client.get(path, headers=BROWSER)
    assert page.status_code == 200, page.text
    return advocate, story, path, page


class TestWrittenForTheFriend:
    async def test_english(self, client, tenant):
        _, _, _, page = await _story_page(client, tenant, show_first_name=True)
        text = visible_text(page.text)
        assert text.startswith("Anna recommends Shop A.\n")
        assert "“I got 10 EUR at Shop A for telling friends about it”" in text
        assert "— Anna, a Shop A customer" in text
        assert "Your welcome offer: 10 EUR off your first order" in text
        assert "Get 10 EUR off your first order" in text  # the button
        assert "Share this story" in text
        assert "Your friends get" not in text and "their first order" not in text
        assert "Svensson" not in page.text  # never a last name

    async def test_swedish(self, client, tenant):
        _, _, _, page = await _story_page(client, tenant, locale="sv")
        text = visible_text(page.text)
        assert text.startswith("En vän rekommenderar Shop A.\n")
        assert "— en kund hos Shop A" in text
        assert "Ditt välkomsterbjudande: 10 EUR rabatt på din första beställning" in text
        assert "Få 10 EUR rabatt på din första beställning" in text
        assert "Dela berättelsen" in text
        assert "Dina vänner får" not in text and "sin första" not in text
        assert '<html lang="sv">' in page.text

    @pytest.mark.parametrize(("locale", "button"), [("en", "Visit Shop A"), ("sv", "Besök Shop A")])
    async def test_no_friend_reward_promises_nothing(self, client, tenant, locale, button):
        _, _, _, page = await _story_page(
            client,
            tenant,
            locale=locale,
            rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
        )
        text = visible_text(page.text)
        assert button in text
        assert "welcome" not in text.lower() and "välkomst" not in text.lower()


def _same_answer(got, headed, *, except_headers=("x-request-id", "content-security-policy")):
    assert headed.status_code == got.status_code
    names = {n for n in got.headers if n not in except_headers and n != "set-cookie"}
    assert {n: headed.headers.get(n) for n in names} == {n: got.headers[n] for n in names}
    assert headed.content == b""


class TestHeadAnswersLikeGet:
    async def test_story_page_and_image(self, client, tenant, db):
        _, story, path, page = await _story_page(client, tenant)
        views = await db.fetchval("SELECT count(*) FROM story_views")
        # A page with a nonce differs in its nonce only: the lengths are the same.
        _same_answer(page, await client.head(path, headers=BROWSER))
        assert await db.fetchval("SELECT count(*) FROM story_views") == views  # not a view
        image = await client.get(f"{path}/image.png")
        assert image.headers["content-type"] == "image/png"
        _same_answer(image, await client.head(f"{path}/image.png"))
        unknown = await client.get("/s/abcdefghijkl/image.png")
        _same_answer(unknown, await client.head("/s/abcdefghijkl/image.png"))

    async def test_share_page(self, client, tenant, settings):
        advocate, _, _, _ = await _story_page(client, tenant)
        token = signer(settings).sign(advocate["id"], int(time.time()) + 3600)
        got = await client.get(f"/share/{token}")
        assert got.status_code == 200
        _same_answer(got, await client.head(f"/share/{token}"))
        bad = await client.get(f"/share/{token[:-4]}AAAA")
        _same_answer(bad, await client.head(f"/share/{token[:-4]}AAAA"))
