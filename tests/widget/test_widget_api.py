"""The widget's script and public JSON as a shop's page reads them: the script under its
versioned URL matches its published SRI hash and stays small, and the share box and the
friend offer answer any origin, with nothing of another advocate or any key."""

from __future__ import annotations

import base64
import gzip
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

from referral.share_page.service import signer
from referral.web.intents import NETWORK_CHANNELS
from referral.widget.rules import DARK_TEXT, LIGHT_TEXT, contrast, text_on
from tests.factories import approved_advocate_reward, create_advocate, create_program

BASE = "http://testserver.local"


async def _share_token(client, tenant, advocate) -> str:
    response = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    return response.json()["url"].rsplit("/", 1)[1]


async def _click_token(client, code: str) -> str:
    response = await client.get(f"/r/{code}", follow_redirects=False)
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["ref_token"][0]


def _open_to_any_origin(response) -> None:
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"


class TestScript:
    async def test_served_bytes_match_the_published_hash_and_stay_small(self, client):
        manifest = await client.get("/widget/v1/manifest.json")
        assert manifest.status_code == 200
        _open_to_any_origin(manifest)
        published = manifest.json()
        assert published["script_url"] == f"{BASE}/widget/v1/referral.js"
        assert published["elements"] == ["referral-share", "referral-offer"]

        script = await client.get("/widget/v1/referral.js")
        assert script.status_code == 200
        _open_to_any_origin(script)
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert script.headers["x-content-type-options"] == "nosniff"
        digest = base64.b64encode(hashlib.sha384(script.content).digest()).decode()
        assert published["integrity"] == f"sha384-{digest}"
        assert published["bytes"] == len(script.content)
        compressed = len(gzip.compress(script.content, compresslevel=9))
        assert compressed < 10_000, f"{compressed} bytes gzip-compressed"

        again = await client.get(
            "/widget/v1/referral.js", headers={"if-none-match": script.headers["etag"]}
        )
        assert again.status_code == 304

    async def test_the_script_writes_no_inline_script_or_style(self, client):
        source = (await client.get("/widget/v1/referral.js")).text
        for blocked in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"):
            assert blocked not in source, blocked
        assert 'setAttribute("style"' not in source and ".style." not in source
        assert "adoptedStyleSheets" in source


class TestShareBox:
    async def test_the_token_opens_the_advocates_own_box_and_counts_a_view(
        self, client, tenant, db
    ):
        program = await create_program(client, tenant, brand_colour="#6B2FB3", hold_days=0)
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        await approved_advocate_reward(client, tenant, anna["code"])
        bo = await create_advocate(client, tenant, program["id"], "cus_bo")
        await approved_advocate_reward(client, tenant, bo["code"], 2)
        token = await _share_token(client, tenant, anna)

        response = await client.get(
            f"/widget/v1/share/{token}", headers={"origin": "https://shop.example"}
        )
        assert response.status_code == 200, response.text
        _open_to_any_origin(response)
        assert response.headers["cache-control"] == "no-store"
        box = response.json()
        assert box["link"] == f"{BASE}/r/{anna['code']}"
        assert box["qr_url"] == f"{BASE}/r/{anna['code']}/qr.png?size=400"
        assert box["look"] == {
            "locale": "en",
            "shop": "Shop A",
            "colour": "#6b2fb3",
            "on_colour": "#ffffff",
        }
        assert [c["channel"] for c in box["channels"]] == list(NETWORK_CHANNELS)
        assert box["channels"][0]["url"] == f"{BASE}/share/{token}/to/whatsapp"
        assert box["copy_url"] == f"{BASE}/share/{token}/to/copy"
        assert box["words"]["copy"] == "Copy link"
        assert "10 EUR off their first order" in box["words"]["intro"]
        (reward,) = box["rewards"]  # hers only, not Bo's
        assert bo["code"] not in response.text
        assert (reward["text"], reward["status_text"]) == ("10 EUR", "approved")
        assert "key" not in response.text and "sk_" not in response.text
        views = await db.fetchval("SELECT count(*) FROM share_page_views")
        assert views == 1

        # The copy button's tracked URL records a share, as the share page's does.
        copied = await client.get(box["copy_url"].removeprefix(BASE))
        assert copied.status_code == 204
        channels = await db.fetch("SELECT channel FROM shares WHERE story_id IS NULL")
        assert [r["channel"] for r in channels] == ["copy"]

    async def test_swedish_when_the_page_is_swedish(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        token = await _share_token(client, tenant, anna)
        box = (await client.get(f"/widget/v1/share/{token}?lang=sv-SE")).json()
        assert box["look"]["locale"] == "sv"
        assert box["words"]["copy"] == "Kopiera länken"
        assert box["words"]["title"] == "Tipsa dina vänner om Shop A"
        assert box["channels"][1]["label"] == "E-post"
        # A language we do not speak: the program's.
        box = (await client.get(f"/widget/v1/share/{token}?lang=de")).json()
        assert box["look"]["locale"] == "en"

    async def test_bot_views_are_not_counted(self, client, tenant, db):
        program = await create_program(client, tenant)
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        token = await _share_token(client, tenant, anna)
        response = await client.get(
            f"/widget/v1/share/{token}", headers={"user-agent": "facebookexternalhit/1.1"}
        )
        assert response.status_code == 200
        assert await db.fetchval("SELECT count(*) FROM share_page_views") == 0

    async def test_a_forged_or_expired_token_is_refused_readably(self, client, tenant, settings):
        program = await create_program(client, tenant)
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        token = await _share_token(client, tenant, anna)
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        response = await client.get(f"/widget/v1/share/{forged}")
        assert response.status_code == 403
        assert response.json()["code"] == "share_token_invalid"
        _open_to_any_origin(response)  # the widget can read why
        expired = signer(settings).sign(anna["id"], int(time.time()) - 1)
        response = await client.get(f"/widget/v1/share/{expired}")
        assert response.status_code == 410
        assert response.json()["code"] == "share_token_expired"
        _open_to_any_origin(response)
        assert (await client.get("/widget/v1/share/x?lang=%3Cscript%3E")).status_code == 400


class TestOffer:
    async def test_the_click_token_or_the_code_gives_the_programs_friend_offer(
        self, client, tenant
    ):
        program = await create_program(client, tenant, brand_colour="#ffd700", locale="sv")
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        token = await _click_token(client, anna["code"])

        response = await client.get("/widget/v1/offer", params={"ref_token": token})
        assert response.status_code == 200, response.text
        _open_to_any_origin(response)
        offer = response.json()
        assert offer["program_id"] == program["id"]
        assert offer["active"] is True
        assert offer["look"]["locale"] == "sv"
        assert offer["look"]["on_colour"] == "#000000"  # dark text on gold
        assert offer["offer"] == "10 EUR rabatt på din första beställning"
        assert offer["intro"] == "En vän rekommenderar Shop A."
        # Nothing about the advocate.
        assert "cus_anna" not in response.text and anna["id"] not in response.text

        english = await client.get(
            "/widget/v1/offer", params={"ref": anna["code"].lower(), "lang": "en"}
        )
        assert english.json()["offer"] == "10 EUR off your first order"
        assert english.json()["heading"] == "Your welcome offer"

    async def test_a_paused_program_offers_nothing(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await create_advocate(client, tenant, program["id"], "cus_anna")
        response = await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "paused"}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text
        offer = (await client.get("/widget/v1/offer", params={"ref": anna["code"]})).json()
        assert (offer["active"], offer["offer"]) == (False, None)

    async def test_unknown_codes_and_forged_tokens_find_nothing(self, client):
        for params in ({"ref": "NOSUCHCODE"}, {"ref_token": "AAAA"}, {}):
            response = await client.get("/widget/v1/offer", params=params)
            assert response.status_code == 404, params
            assert response.json()["code"] == "code_not_found"
            _open_to_any_origin(response)


def test_text_colour_on_the_brand_colour_is_readable():
    for brand in ("#1a7f37", "#6b2fb3", "#ffd700", "#ffffff", "#000000", "#e11d48", "#7dd3fc"):
        on = text_on(brand)
        assert on in (LIGHT_TEXT, DARK_TEXT)
        assert contrast(brand, on) >= 4.5, (brand, on)
