"""The overview's K-factor card, as marketing reads it: its parts say what they count, even
when friends order with a typed code and never click (more first orders than visitors)."""

from __future__ import annotations

from html import unescape

from tests.analytics import conftest as analytics_tests
from tests.analytics.conftest import catch_up, flush_clicks, visit
from tests.console.conftest import sign_in
from tests.scenarios import order, setup

# The analytics tests' app: clicks reach the rollups when the test says, never on their own.
settings = analytics_tests.settings


async def _k_card(client, db, settings, tenant, pool, ids, *, visitors: int, friends: int):
    s = await setup(client, tenant, hold_days=0)
    for n in range(visitors):
        await visit(client, s["code"], f"visitor-{n}")
    for n in range(friends):
        await order(client, tenant, f"friend-{n}", s["code"])
    await flush_clicks(client)
    await catch_up(pool, ids)
    await sign_in(client, db, settings, tenant.merchant_id)
    page = await client.get("/console")
    assert page.status_code == 200
    return unescape(page.text)


async def test_friends_ordering_without_a_click_read_as_orders_per_visitor(
    client, db, settings, tenant, pool, ids
):
    text = await _k_card(client, db, settings, tenant, pool, ids, visitors=1, friends=3)
    assert "3.0 first orders per visitor (friends also order with a code" in text
    card = text.split(">K-factor", 1)[1].split("</div>", 1)[0]
    assert "300" not in card and "ordered" not in card, "no rate over 100 % on the card"


async def test_fewer_orders_than_visitors_read_as_a_percent(
    client, db, settings, tenant, pool, ids
):
    text = await _k_card(client, db, settings, tenant, pool, ids, visitors=4, friends=1)
    assert "× 25.0% ordered" in text
    assert "per visitor" not in text
