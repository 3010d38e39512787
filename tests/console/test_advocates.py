"""Support finds a customer by what they say (customer id, email, code as they read it) and
sees everything about them as an advocate on one page."""

from __future__ import annotations

from tests.factories import create_advocate, create_program, referred_order


async def _anna(client, tenant) -> dict:
    program = await create_program(client, tenant)
    response = await client.post(
        "/v1/advocates",
        json={
            "program_id": program["id"],
            "customer_id": "cus_anna",
            "email": "Anna@Example.com",
            "name": "Anna Svensson",
        },
        headers=tenant.auth,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_search_finds_by_customer_id_email_in_any_case_and_misread_code(console, tenant):
    anna = await _anna(console, tenant)
    misread = anna["code"].replace("0", "O").lower()
    for q in ("cus_anna", "anna@example.COM", misread, anna["code"]):
        page = await console.get("/console/advocates", params={"q": q})
        assert page.status_code == 200
        assert f"/console/advocates/{anna['id']}" in page.text, q
    none = await console.get("/console/advocates", params={"q": "nobody@example.com"})
    assert "No advocate has the customer id, email or code" in none.text


async def test_the_advocate_page_shows_referrals_rewards_and_links_to_explain(console, tenant):
    anna = await _anna(console, tenant)
    order = await referred_order(console, tenant, anna["code"])
    page = await console.get(f"/console/advocates/{anna['id']}")
    assert page.status_code == 200
    assert "Anna Svensson" in page.text and anna["code"] in page.text
    assert f"/console/referrals/{order['referral']['id']}" in page.text
    assert "10 EUR" in page.text


async def test_another_merchants_advocate_is_not_found(console, tenant, other_tenant):
    program = await create_program(console, other_tenant)
    theirs = await create_advocate(console, other_tenant, program["id"], "cus_theirs")
    assert (await console.get(f"/console/advocates/{theirs['id']}")).status_code == 404
    found = await console.get("/console/advocates", params={"q": "cus_theirs"})
    assert theirs["id"] not in found.text


async def test_a_malformed_id_is_not_found_in_words(console):
    page = await console.get("/console/advocates/not-an-id")
    assert page.status_code == 404 and "Not found" in page.text
