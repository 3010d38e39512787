"""Getting in and staying in: one-time links, sessions bound to a merchant and mode,
CSRF on every form, signing out."""

from __future__ import annotations

import pytest

from referral.console import service
from referral.console.pages import console_router
from referral.console.pages.common import provide_form
from tests.conftest import make_settings
from tests.console.conftest import csrf_of, link_fields, sign_in, sign_in_link


async def test_a_link_signs_in_once_and_the_page_shows_shop_mode_and_person(
    client, db, settings, tenant
):
    link = await sign_in_link(db, settings, tenant.merchant_id)
    assert link.startswith("http://testserver.local/console/sign-in?merchant=mer_")
    fields = link_fields(link)

    asked = await client.get(link.removeprefix("http://testserver.local"))
    assert asked.status_code == 200
    assert "Shop A" in asked.text and "Your name or email" in asked.text
    # Opening it twice (a chat app's preview, then the person) still leaves it usable.
    assert (await client.get(link.removeprefix("http://testserver.local"))).status_code == 200

    signed = await client.post(
        "/console/sign-in", data={**fields, "actor": "Maja Risk"}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/console"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    page = await client.get("/console")
    assert page.status_code == 200, page.text
    assert "Signed in as Maja Risk" in page.text and "Test mode" in page.text
    assert page.headers["cache-control"] == "no-store"

    client.cookies.clear()
    again = await client.post(
        "/console/sign-in", data={**fields, "actor": "Someone Else"}, follow_redirects=False
    )
    assert again.status_code == 410
    assert "no longer works" in again.text
    assert (await client.get("/console")).status_code == 401


async def test_an_expired_link_is_refused(client, db, settings, tenant):
    link = await sign_in_link(db, settings, tenant.merchant_id)
    await db.execute(
        "UPDATE console_sign_in_links SET expires_at = now() - interval '1 second' "
        "WHERE merchant_id = $1",
        tenant.merchant_id,
    )
    assert (await client.get(link.removeprefix("http://testserver.local"))).status_code == 410
    refused = await client.post(
        "/console/sign-in", data={**link_fields(link), "actor": "Maja"}, follow_redirects=False
    )
    assert refused.status_code == 410
    assert "set-cookie" not in refused.headers


async def test_a_name_is_required_and_asking_again_keeps_the_link(client, db, settings, tenant):
    link = await sign_in_link(db, settings, tenant.merchant_id)
    blank = await client.post("/console/sign-in", data={**link_fields(link), "actor": "  "})
    assert blank.status_code == 422 and "say who you are" in blank.text
    ok = await client.post(
        "/console/sign-in", data={**link_fields(link), "actor": "Ola"}, follow_redirects=False
    )
    assert ok.status_code == 303


async def test_two_tabs_racing_on_one_link_start_one_session(client, db, settings, tenant):
    import asyncio

    link = await sign_in_link(db, settings, tenant.merchant_id)
    fields = link_fields(link)
    answers = await asyncio.gather(
        *(
            client.post(
                "/console/sign-in", data={**fields, "actor": f"tab {i}"}, follow_redirects=False
            )
            for i in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [303, 410, 410, 410]
    sessions = await db.fetchval(
        "SELECT count(*) FROM console_sessions WHERE merchant_id = $1", tenant.merchant_id
    )
    assert sessions == 1


async def test_a_cookie_signed_by_another_deployment_is_refused(
    client, db, settings, tenant, database_url
):
    await sign_in(client, db, settings, tenant.merchant_id)
    genuine = client.cookies.get(service.COOKIE)
    other = service.signer(make_settings(database_url, click_token_key="another-deployment-key"))
    merchant, secret = service.signer(settings).read_cookie(genuine)
    client.cookies.clear()
    client.cookies.set(service.COOKIE, other.cookie(merchant, secret), path="/console")
    assert (await client.get("/console")).status_code == 401
    client.cookies.set(service.COOKIE, genuine, path="/console")
    assert (await client.get("/console")).status_code == 200


async def test_a_form_without_its_csrf_token_is_refused(console, db, tenant):
    for token in (
        None,
        "",
        "x" * 22,
        console.csrf[:-1] + ("A" if console.csrf[-1] != "A" else "B"),
    ):
        data = {} if token is None else {"csrf": token}
        refused = await console.post("/console/sign-out", data=data, follow_redirects=False)
        assert refused.status_code == 403, token
        assert "only accepts forms it has just shown you" in refused.text
    assert (await console.get("/console")).status_code == 200  # still signed in


def test_every_console_form_is_csrf_checked():
    """Every state change of the console takes `form` (the CSRF-checked form), except the
    sign-in itself, which has no session yet and is authorised by its one-time link."""
    unchecked = []
    for route in console_router.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.http_methods & {"POST", "PUT", "PATCH", "DELETE"}:
                if route.path == "/console/sign-in":
                    continue
                if "form" not in handler.parsed_fn_signature.parameters:
                    unchecked.append(route.path)
    assert not unchecked, unchecked
    assert provide_form  # the dependency those handlers get


async def test_signing_out_ends_the_session_everywhere(console, db, tenant):
    cookie = console.cookies.get(service.COOKIE)
    out = await console.post(
        "/console/sign-out", data={"csrf": console.csrf}, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/console/signed-out"
    assert (await console.get("/console/signed-out")).status_code == 200
    # The same cookie, kept by someone, no longer works.
    console.cookies.set(service.COOKIE, cookie, path="/console")
    assert (await console.get("/console")).status_code == 401


async def test_switching_mode_is_explicit_and_the_page_says_which_mode(console, db, tenant):
    switched = await console.post(
        "/console/mode", data={"csrf": console.csrf}, follow_redirects=False
    )
    assert switched.status_code == 303
    live = await console.get("/console")
    assert live.status_code == 200
    assert "Live" in live.text and "Test mode" not in live.text.split("<main")[0].replace(
        "Switch to test mode", ""
    )
    back = await console.post(
        "/console/mode", data={"csrf": csrf_of(live.text)}, follow_redirects=False
    )
    assert back.status_code == 303
    assert "You are in test mode" in (await console.get("/console")).text


@pytest.mark.parametrize("path", ["/console", "/console/review"])
async def test_without_a_session_a_page_says_how_to_sign_in(client, path):
    page = await client.get(path)
    assert page.status_code in (401, 404)
    if page.status_code == 401:
        assert "referral console-link" in page.text


async def test_the_overview_downloads_the_same_csv_as_the_api(console, tenant):
    query = "?from=2026-11-01&to=2026-11-30&compare=none"
    from_console = await console.get(f"/console/reports/funnel.csv{query}")
    from_api = await console.get(
        f"/v1/analytics/funnel{query}", headers={**tenant.auth, "accept": "text/csv"}
    )
    assert from_console.status_code == 200 and from_console.headers["content-type"].startswith(
        "text/csv"
    )
    assert from_console.text == from_api.text
    assert from_console.text.startswith("period,bucket_start,bucket_end,group,key,metric")
    page = await console.get("/console?from=2026-11-01&to=2026-11-30")
    assert "/console/reports/funnel.csv?from=2026-11-01&amp;to=2026-11-30" in page.text


async def test_the_console_speaks_swedish_to_a_swedish_browser(console):
    page = await console.get("/console", headers={"accept-language": "sv-SE,sv;q=0.9,en;q=0.5"})
    assert page.status_code == 200
    assert '<html lang="sv">' in page.text
    assert "Översikt" in page.text and "Du är i testläge" in page.text
    english = await console.get("/console", headers={"accept-language": "de-DE,en;q=0.8"})
    assert '<html lang="en">' in english.text and "Overview" in english.text


async def test_a_blank_name_on_a_used_link_says_the_link_is_gone(client, db, settings, tenant):
    link = await sign_in_link(db, settings, tenant.merchant_id)
    fields = link_fields(link)
    used = await client.post("/console/sign-in", data={**fields, "actor": "Ola"})
    assert used.status_code == 200  # followed to the overview
    client.cookies.clear()
    again = await client.post("/console/sign-in", data={**fields, "actor": " "})
    assert again.status_code == 410
    assert "<code>referral console-link --merchant mer_" in again.text
