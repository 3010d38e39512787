"""The share page's points: the advocate sees their balance, the thanks for their order,
their level and the way to the next, the catalogue with redeem buttons (one they cannot
afford yet disabled), redeems, sees the code, cancels and gets the points back; and sets
how they want to be contacted. In English and in Swedish."""

from __future__ import annotations

from html import unescape

from tests.factories import create_advocate
from tests.levels.test_levels import BY_REFERRALS
from tests.points.helpers import balance, order, points_program


async def _page(client, tenant, program, customer_id="cus_anna") -> str:
    advocate = await create_advocate(client, tenant, program["id"], customer_id)
    response = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    return response.json()["url"].removeprefix("http://testserver.local")


async def test_points_level_and_redemption_on_the_share_page(client, tenant):
    program = await points_program(client, tenant, rules=BY_REFERRALS)
    await order(client, tenant, "cus_anna", 60_000)
    path = await _page(client, tenant, program)
    page = unescape((await client.get(path)).text)
    assert "600 points" in page
    assert "Thanks for your order! It earned you 600 points." in page
    assert "Your level: Member" in page.replace("<strong>", "").replace("</strong>", "")
    assert "2 more friends to Gold" in page
    assert 'id="redeem-5-eur"' in page and 'id="redeem-credit-2"' in page

    redeemed = await client.post(
        f"{path}/points/redeem", data={"item": "5-eur"}, follow_redirects=False
    )
    assert redeemed.status_code == 303
    assert redeemed.headers["location"].endswith("?done=redeemed#points")
    page = unescape((await client.get(redeemed.headers["location"])).text)
    assert "Done! Your reward is under" in page
    assert "100 points" in page and "A 5 EUR coupon" in page
    shown = await balance(client, tenant, program, "cus_anna")
    assert shown["balance"] == 100
    # 200 points of credit cannot be had for 100: the button is off, and a forced post refused
    assert 'id="redeem-credit-2" disabled' in page and "you need 100 points more" in page
    short = await client.post(
        f"{path}/points/redeem", data={"item": "credit-2"}, follow_redirects=False
    )
    assert short.headers["location"].endswith("?done=points_short#points")

    (redemption,) = (
        await client.get("/v1/events", params={"type": "points.redeemed"}, headers=tenant.auth)
    ).json()["data"]
    cancelled = await client.post(
        f"{path}/points/redemptions/{redemption['data']['id']}/cancel",
        data={},
        follow_redirects=False,
    )
    assert cancelled.headers["location"].endswith("?done=redemption_cancelled#points")
    assert (await balance(client, tenant, program, "cus_anna"))["balance"] == 600


async def test_the_advocate_sets_their_preferences_on_the_page(client, tenant):
    program = await points_program(client, tenant)
    path = await _page(client, tenant, program)
    saved = await client.post(
        f"{path}/preferences",
        data={"channels": ["sms"], "topics": ["rewards", "offers"], "birthday": "1990-05-17"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    shown = await client.get("/v1/customers/cus_anna/preferences", headers=tenant.auth)
    prefs = shown.json()
    assert (prefs["channels"], prefs["topics"], prefs["birthday"]) == (
        ["sms"],
        ["offers", "rewards"],
        "1990-05-17",
    )
    assert {c["by"] for c in prefs["consents"]} == {"advocate"}
    page = unescape((await client.get(saved.headers["location"])).text)
    assert "Your choices are saved." in page


async def test_the_page_speaks_swedish(client, tenant):
    program = await points_program(client, tenant, rules=BY_REFERRALS, locale="sv")
    await order(client, tenant, "cus_sara", 150_000)
    path = await _page(client, tenant, program, "cus_sara")
    page = unescape((await client.get(path)).text)
    assert "1\u00a0500 poäng" in page
    assert "2 vänner till för att nå Gold" in page
    assert "Tack för din beställning!" in page and "Lös in" in page
    assert "Hur vi håller kontakten" in page


async def test_the_widgets_box_carries_the_points(client, tenant):
    program = await points_program(client, tenant, rules=BY_REFERRALS)
    await order(client, tenant, "cus_wid", 60_000)
    path = await _page(client, tenant, program, "cus_wid")
    token = path.removeprefix("/share/")
    box = (await client.get(f"/widget/v1/share/{token}?lang=sv")).json()
    points = box["points"]
    assert (points["balance"], points["level"]) == ("600 poäng", "Member")
    assert points["to_next"] == "2 vänner till för att nå Gold"
    coupon = next(i for i in points["catalogue"] if i["item"] == "5-eur")
    assert coupon["affordable"] and coupon["redeem_url"].endswith(f"{path}/points/redeem")
    redeemed = await client.post(
        coupon["redeem_url"].removeprefix("http://testserver.local"),
        data={"item": "5-eur"},
        follow_redirects=False,
    )
    assert redeemed.headers["location"].endswith("?done=redeemed#points")
