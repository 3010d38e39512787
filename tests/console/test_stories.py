"""The stories page as whoever moderates stories uses it: pending ones with their share image
as it will read, publish and hide through the stories service (checked in the database and
on the public page), what a published story brought, and nothing of another merchant or
mode."""

from __future__ import annotations

import json
import re
from html import unescape

from tests.factories import approved_advocate_reward, create_program

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126"}


async def _pending_story(client, tenant, text: str, customer: str = "cus_anna", n: int = 1) -> dict:
    program = await create_program(client, tenant, brand_colour="#6b2fb3")
    made = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": customer, "name": "Anna Svensson"},
        headers=tenant.auth,
    )
    assert made.status_code == 201, made.text
    advocate = made.json()
    reward_id = await approved_advocate_reward(client, tenant, advocate["code"], n)
    told = await client.post(
        "/v1/stories",
        json={
            "advocate_id": advocate["id"],
            "reward_id": reward_id,
            "text": text,
            "show_first_name": True,
        },
        headers=tenant.auth,
    )
    assert told.status_code == 201, told.text
    story = told.json()
    assert story["status"] == "pending"
    return story


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _path(url: str) -> str:
    return url.removeprefix("http://testserver.local")


async def test_a_pending_story_shows_with_its_image_and_publishing_puts_it_on_its_page(
    console, tenant, db, ids
):
    story = await _pending_story(console, tenant, "Got 10 EUR for telling Bert <3")
    page = await console.get("/console/stories")
    assert page.status_code == 200
    shown = _text(page.text)
    assert "To review (1)" in shown and "Published (0)" in shown
    assert "Got 10 EUR for telling Bert &lt;3" in page.text, "the text is escaped"
    assert "Anna" in shown and "Svensson" not in shown, "the first name only, as published"

    image = await console.get(f"/console/stories/{story['id']}/image.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    again = await console.get(
        f"/console/stories/{story['id']}/image.png",
        headers={"if-none-match": image.headers["etag"]},
    )
    assert again.status_code == 304
    assert (await console.get(_path(story["image_url"]))).status_code == 404, "not public yet"

    published = await console.post(
        f"/console/stories/{story['id']}",
        data={"csrf": console.csrf, "action": "publish", "tab": "pending"},
    )
    assert "Published: the story now shows on its page" in published.text
    assert "To review (0)" in _text(published.text) and "Published (1)" in _text(published.text)
    row = await db.fetchrow(
        "SELECT status, published_at FROM stories WHERE merchant_id = $1 AND id = $2",
        tenant.merchant_id,
        ids.decode("story", story["id"]),
    )
    assert row["status"] == "published" and row["published_at"] is not None
    event = await db.fetchval(
        "SELECT data FROM events WHERE merchant_id = $1 AND type = 'story.published'",
        tenant.merchant_id,
    )
    recorded = json.loads(event) if isinstance(event, str) else event
    assert recorded["actor"] == "Maja Risk", "the event names who published it"
    public = await console.get(_path(story["image_url"]))
    assert public.status_code == 200
    assert public.content == image.content, "the console showed the image as it now reads"


async def test_published_stories_show_what_they_brought_and_hiding_takes_the_page_down(
    console, tenant, db, ids
):
    story = await _pending_story(console, tenant, "Best shop in town")
    await console.post(
        f"/console/stories/{story['id']}", data={"csrf": console.csrf, "action": "publish"}
    )
    for _ in range(2):
        assert (await console.get(_path(story["url"]), headers=BROWSER)).status_code == 200
    tab = _text((await console.get("/console/stories?status=published")).text)
    assert "2 views" in tab and "0 orders" in tab and "Open its page" in tab

    hidden = await console.post(
        f"/console/stories/{story['id']}",
        data={"csrf": console.csrf, "action": "hide", "tab": "published"},
    )
    assert "Hidden: the story's page no longer shows it." in unescape(hidden.text)
    assert "Nothing published yet" in hidden.text
    assert (
        await db.fetchval(
            "SELECT status FROM stories WHERE id = $1", ids.decode("story", story["id"])
        )
        == "hidden"
    )
    assert (await console.get(_path(story["url"]), headers=BROWSER)).status_code == 404
    back = _text((await console.get("/console/stories?status=hidden")).text)
    assert "Best shop in town" in back and "Publish" in back


async def test_another_merchants_or_modes_story_is_not_found(
    console, tenant, other_tenant, db, ids
):
    theirs = await _pending_story(console, other_tenant, "Their story")
    assert "Their story" not in (await console.get("/console/stories")).text
    assert (await console.get(f"/console/stories/{theirs['id']}/image.png")).status_code == 404
    refused = await console.post(
        f"/console/stories/{theirs['id']}", data={"csrf": console.csrf, "action": "publish"}
    )
    assert refused.status_code == 404
    assert (
        await db.fetchval(
            "SELECT status FROM stories WHERE id = $1", ids.decode("story", theirs["id"])
        )
        == "pending"
    )

    mine = await _pending_story(console, tenant, "My story")
    await console.post("/console/mode", data={"csrf": console.csrf})
    assert "My story" not in (await console.get("/console/stories")).text
    assert (await console.get(f"/console/stories/{mine['id']}/image.png")).status_code == 404


async def test_empty_tabs_say_what_happens_next_in_both_languages(console):
    page = await console.get("/console/stories")
    assert "No story waits for you" in page.text
    hidden = await console.get("/console/stories?status=hidden")
    assert "No hidden stories" in hidden.text
    swedish = await console.get("/console/stories", headers={"accept-language": "sv-SE,sv"})
    assert "Ingen berättelse väntar" in swedish.text and "Att granska (0)" in swedish.text
    wrong = await console.post(
        "/console/stories/sto_x", data={"csrf": console.csrf, "action": "delete"}
    )
    assert wrong.status_code == 422 and "choose publish or hide" in wrong.text


async def test_stories_page_twelve_at_a_time_oldest_first(console, tenant, monkeypatch):
    from referral.console.pages import stories

    first = await _pending_story(console, tenant, "First story", customer="cus_1")
    second = await _pending_story(console, tenant, "Second story", customer="cus_2", n=2)
    monkeypatch.setattr(stories, "PAGE_SIZE", 1)
    page = await console.get("/console/stories")
    assert "First story" in page.text and "Second story" not in page.text
    assert "To review (2)" in _text(page.text), "the tab counts every story, not the page"
    more = re.search(r'href="(/console/stories\?status=pending&amp;after=[^"]+)"', page.text)
    rest = await console.get(more.group(1).replace("&amp;", "&"))
    assert "Second story" in rest.text and "First story" not in rest.text
    assert second["id"] in rest.text and first["id"] not in rest.text
