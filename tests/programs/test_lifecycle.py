"""A program's lifecycle through the API: scheduled, running, paused, ended.

Pause, resume and end are state changes under an Idempotency-Key, each an outbox event and
an audit row. While a program is not running its links still redirect (to the fallback
URL, else the landing page without the offer), and it makes no new referral, with the
reason said; referrals already made keep their rewards and follow their hold and review.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from referral.programs import rules
from referral.rewards.service import release_due
from tests.factories import create_advocate, create_program, referred_order
from tests.links.test_code_cache import (
    FOLLOWS_WITHIN_SECONDS,
    answer_of,
    app_with_cache,
    cached_on_both,
    client_of,
    within,
)
from tests.scenarios import order, referral_in_review

LANDING = "https://shop.example/welcome"


def _at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def _act(client, tenant, program: dict, action: str, status: int = 200, **body) -> dict:
    response = await client.post(
        f"/v1/programs/{program['id']}/{action}",
        json=body,
        headers={**tenant.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == status, response.text
    return response.json()


async def _events(client, tenant, kind: str) -> list[dict]:
    response = await client.get("/v1/events", params={"type": kind}, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _landing(client, code: str) -> tuple[int, str | None]:
    client.cookies.clear()
    r = await client.get(f"/r/{code}", follow_redirects=False)
    return r.status_code, r.headers.get("location")


class TestRules:
    def test_state_at_a_moment(self):
        now = datetime(2026, 6, 1, tzinfo=UTC)
        day = timedelta(days=1)
        assert rules.state("active", now - day, None, now) == "running"
        assert rules.state("active", now + day, None, now) == "scheduled"
        assert rules.state("active", now - day, now, now) == "ended"  # ends_at reached
        assert rules.state("paused", now - day, now + day, now) == "paused"
        assert rules.state("paused", now - 2 * day, now - day, now) == "ended"
        assert rules.state("ended", now - day, None, now) == "ended"
        assert rules.state("draft", now - day, now - day / 2, now) == "draft"
        assert rules.is_running("active", now, None, now)
        assert not rules.is_running("paused", now - day, None, now)

    def test_transitions(self):
        assert rules.transition("pause", "running") == "paused"
        assert rules.transition("pause", "paused") is None  # already: nothing to do
        assert rules.transition("resume", "paused") == "active"
        assert rules.transition("end", "paused") == "ended"
        assert rules.transition("end", "ended") is None
        with pytest.raises(ValueError, match="program_ended"):
            rules.transition("resume", "ended")
        with pytest.raises(ValueError, match="invalid_program_transition"):
            rules.transition("pause", "draft")


class TestTransitions:
    async def test_pause_resume_end_with_their_events_and_audit(self, client, tenant):
        program = await create_program(client, tenant)
        assert (program["state"], program["ends_at"], program["ended_at"]) == (
            "running",
            None,
            None,
        )
        paused = await _act(client, tenant, program, "pause", actor="ops@shop.example")
        assert (paused["status"], paused["state"]) == ("paused", "paused")
        again = await _act(client, tenant, program, "pause")  # a second click: no change
        assert again["updated_at"] == paused["updated_at"]
        resumed = await _act(client, tenant, program, "resume", note="back in stock")
        assert (resumed["status"], resumed["state"]) == ("active", "running")
        ended = await _act(client, tenant, program, "end")
        assert (ended["status"], ended["state"]) == ("ended", "ended")
        assert ended["ended_at"] is not None

        (p,) = await _events(client, tenant, "program.paused")
        assert p["data"] == {
            "program_id": program["id"],
            "state": "paused",
            "actor": "ops@shop.example",
        }
        (r,) = await _events(client, tenant, "program.resumed")
        assert (r["data"]["state"], r["data"]["note"]) == ("running", "back in stock")
        (e,) = await _events(client, tenant, "program.ended")
        assert datetime.fromisoformat(e["data"]["ended_at"]) == datetime.fromisoformat(
            ended["ended_at"]
        )
        log = await client.get("/v1/audit-log", headers=tenant.auth)
        actions = [a["action"] for a in log.json()["data"] if a["subject_id"] == program["id"]]
        assert sorted(actions) == sorted(
            ["program.created", "program.paused", "program.resumed", "program.ended"]
        )

    async def test_pausing_by_status_is_told_as_a_pause(self, client, tenant):
        program = await create_program(client, tenant)
        url = f"/v1/programs/{program['id']}"
        for status in ("paused", "active"):
            patched = await client.patch(url, json={"status": status}, headers=tenant.auth)
            assert patched.status_code == 200, patched.text
        (p,) = await _events(client, tenant, "program.paused")
        (r,) = await _events(client, tenant, "program.resumed")
        assert (p["data"]["state"], r["data"]["state"]) == ("paused", "running")
        assert p["data"]["actor"] == r["data"]["actor"] == "api"

    async def test_an_ended_program_never_resumes(self, client, tenant):
        program = await create_program(client, tenant)
        await _act(client, tenant, program, "end")
        problem = await _act(client, tenant, program, "resume", status=409)
        assert problem["code"] == "program_ended"
        assert (await _act(client, tenant, program, "pause", status=409))["code"] == (
            "program_ended"
        )
        assert (await _act(client, tenant, program, "end"))["state"] == "ended"  # no-op
        for change in ({"status": "active"}, {"ends_at": _at(timedelta(days=30))}):
            r = await client.patch(
                f"/v1/programs/{program['id']}", json=change, headers=tenant.auth
            )
            assert r.status_code == 409, r.text
            assert r.json()["code"] == "program_ended"
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"name": "Spring (over)"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text  # its other settings still change
        assert len(await _events(client, tenant, "program.ended")) == 1

    async def test_a_draft_is_not_paused_or_ended(self, client, tenant):
        program = await create_program(client, tenant, status="draft")
        for action in ("pause", "resume", "end"):
            problem = await _act(client, tenant, program, action, status=409)
            assert problem["code"] == "invalid_program_transition"
            assert problem["type"].endswith("invalid_program_transition")

    async def test_ended_is_not_set_by_create_or_patch(self, client, tenant):
        r = await client.post(
            "/v1/programs",
            json={"name": "x", "landing_url": LANDING, "status": "ended"},
            headers=tenant.auth,
        )
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")

    async def test_an_unknown_program(self, client, tenant, other_tenant):
        program = await create_program(client, other_tenant)
        problem = await _act(client, tenant, program, "pause", status=404)
        assert problem["code"] == "program_not_found"


class TestSchedule:
    async def test_ends_at_must_come_after_starts_at(self, client, tenant):
        body = {
            "name": "Spring",
            "landing_url": LANDING,
            "starts_at": _at(timedelta(days=2)),
            "ends_at": _at(timedelta(days=1)),
        }
        r = await client.post("/v1/programs", json=body, headers=tenant.auth)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_schedule"
        program = await create_program(client, tenant)
        for change in (
            {"ends_at": program["starts_at"]},
            {"starts_at": _at(timedelta(days=9)), "ends_at": _at(timedelta(days=8))},
        ):
            r = await client.patch(
                f"/v1/programs/{program['id']}", json=change, headers=tenant.auth
            )
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "invalid_schedule"

    async def test_scheduled_then_running_then_ended_by_the_clock(self, client, tenant, db):
        program = await create_program(
            client,
            tenant,
            landing_url=LANDING,
            starts_at=_at(timedelta(days=1)),
            ends_at=_at(timedelta(days=10)),
        )
        assert program["state"] == "scheduled"
        anna = await create_advocate(client, tenant, program["id"], "anna")
        assert await _landing(client, anna["code"]) == (302, LANDING)  # no offer yet
        early = await referred_order(client, tenant, anna["code"], 1)
        assert (early["referral"], early["notes"]) == (None, ["program_not_started"])

        # The start comes (moved back, as if time had passed).
        await db.execute(
            "UPDATE programs SET starts_at = now() - interval '1 day' WHERE merchant_id = $1",
            tenant.merchant_id,
        )
        await _wait_for(client, anna["code"], lambda a: "ref_token=" in (a[1] or ""))
        running = await referred_order(client, tenant, anna["code"], 2)
        assert running["referral"]["status"] == "converted"

        r = await client.patch(
            f"/v1/programs/{program['id']}",
            json={"ends_at": _at(timedelta(seconds=1))},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        await _wait_for(client, anna["code"], lambda a: a == (302, LANDING))
        read = await client.get(f"/v1/programs/{program['id']}", headers=tenant.auth)
        assert (read.json()["status"], read.json()["state"]) == ("active", "ended")
        assert read.json()["ended_at"] == read.json()["ends_at"]
        late = await referred_order(client, tenant, anna["code"], 3)
        assert (late["referral"], late["notes"]) == (None, ["program_ended"])
        assert (await _act(client, tenant, program, "resume", status=409))["code"] == (
            "program_ended"
        )


async def _wait_for(client, code: str, check, seconds: float = 3.0) -> None:
    """Poll the redirect until `check((status, location))` holds (the clock passing)."""
    started = asyncio.get_running_loop().time()
    while not check(await _landing(client, code)):
        assert asyncio.get_running_loop().time() - started < seconds, "the redirect never followed"
        await asyncio.sleep(0.05)


class TestRedirect:
    async def test_paused_and_ended_links_land_without_the_offer_and_count_no_click(
        self, client, tenant, db
    ):
        program = await create_program(client, tenant, landing_url=LANDING + "?utm=r&ref=OLD")
        anna = await create_advocate(client, tenant, program["id"], "anna")
        status, location = await _landing(client, anna["code"])
        assert status == 302 and "ref_token=" in location
        await _act(client, tenant, program, "pause")
        assert await _landing(client, anna["code"]) == (302, LANDING + "?utm=r")
        await _act(client, tenant, program, "end")
        assert await _landing(client, anna["code"]) == (302, LANDING + "?utm=r")
        qr = await client.get(f"/r/{anna['code']}/qr.svg")
        assert qr.status_code == 200  # the printed code still leads somewhere
        await asyncio.sleep(0.15)  # two flushes of the click writer
        assert (
            await db.fetchval(
                "SELECT count(*) FROM clicks WHERE merchant_id = $1", tenant.merchant_id
            )
            == 1
        )  # only the click while it ran

    async def test_the_fallback_url_wins_while_not_running(self, client, tenant):
        program = await create_program(
            client, tenant, landing_url=LANDING, fallback_url="https://shop.example/over"
        )
        anna = await create_advocate(client, tenant, program["id"], "anna")
        await _act(client, tenant, program, "pause")
        assert await _landing(client, anna["code"]) == (302, "https://shop.example/over")
        await _act(client, tenant, program, "resume")
        status, location = await _landing(client, anna["code"])
        assert status == 302 and location.startswith(LANDING + "?ref=")


@pytest.fixture
async def instances(database_url) -> AsyncIterator[tuple]:
    async with (
        client_of(app_with_cache(database_url)) as a,
        client_of(app_with_cache(database_url)) as b,
    ):
        yield a, b


class TestOnEveryInstance:
    async def test_pause_resume_and_end_reach_the_other_instance(self, instances, tenant):
        a, b = instances
        program = await create_program(a, tenant, landing_url=LANDING)
        anna = await create_advocate(a, tenant, program["id"], "anna")
        await cached_on_both(a, b, anna["code"])

        async def on_b(wanted) -> None:
            async def check() -> bool:
                return wanted(await answer_of(b, anna["code"]))

            await within(FOLLOWS_WITHIN_SECONDS, check, f"b follows {wanted}")

        await _act(a, tenant, program, "pause")
        await on_b(lambda r: r == (302, LANDING))
        await _act(a, tenant, program, "resume")
        await on_b(lambda r: "ref_token=" in (r[1] or ""))
        r = await a.patch(
            f"/v1/programs/{program['id']}",
            json={"ends_at": _at(timedelta(milliseconds=300))},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        await on_b(lambda r: r == (302, LANDING))  # the new end is heard, then passes


class TestAttribution:
    async def test_no_new_referral_while_paused_with_the_reason(self, client, tenant, db):
        program = await create_program(client, tenant)
        anna = await create_advocate(client, tenant, program["id"], "anna")
        await _act(client, tenant, program, "pause")
        quote = await client.post(
            "/v1/checkout/quote",
            json={
                "customer_id": "friend-1",
                "codes": [anna["code"]],
                "subtotal": 5000,
                "currency": "EUR",
            },
            headers=tenant.auth,
        )
        assert quote.status_code == 200, quote.text
        assert (quote.json()["applies"], quote.json()["reason"]) == (False, "program_paused")
        assert quote.json()["friend_offer"] is None
        placed = await referred_order(client, tenant, anna["code"], 1)
        assert (placed["referral"], placed["rewards"], placed["notes"]) == (
            None,
            [],
            ["program_paused"],
        )
        assert (
            await db.fetchval(
                "SELECT count(*) FROM orders WHERE merchant_id = $1", tenant.merchant_id
            )
            == 1
        )  # the order itself is recorded
        signup = await client.post(
            "/v1/signups",
            json={"customer_id": "friend-2", "codes": [anna["code"]]},
            headers=tenant.auth,
        )
        assert signup.status_code == 201, signup.text
        assert (signup.json()["referred"], signup.json()["notes"]) == (False, ["program_paused"])
        code = await client.get(f"/v1/codes/{anna['code']}", headers=tenant.public_auth)
        assert (code.json()["active"], code.json()["program_state"]) == (False, "paused")

        await _act(client, tenant, program, "resume")
        again = await referred_order(client, tenant, anna["code"], 3)
        assert again["referral"]["status"] == "converted"

    async def test_a_referral_made_before_keeps_its_pending_rewards(
        self, client, tenant, pool, ids
    ):
        program = await create_program(client, tenant, hold_days=14)
        anna = await create_advocate(client, tenant, program["id"], "anna")
        placed = await referred_order(client, tenant, anna["code"], 1)
        (reward,) = [r for r in placed["rewards"] if r["side"] == "advocate"]
        assert reward["status"] == "pending"
        await _act(client, tenant, program, "pause")
        await _act(client, tenant, program, "end")

        await release_due(pool, ids=ids, now=datetime.now(UTC) + timedelta(days=13))
        held = await client.get(f"/v1/rewards/{reward['id']}", headers=tenant.auth)
        assert held.json()["status"] == "pending"  # its hold is not over
        await release_due(pool, ids=ids, now=datetime.now(UTC) + timedelta(days=15))
        after = await client.get(f"/v1/rewards/{reward['id']}", headers=tenant.auth)
        assert after.json()["status"] == "approved"
        # A later order of the same friend is still theirs, and earns nothing new.
        later = await order(client, tenant, "friend-1", anna["code"])
        assert later["rewards"] == []

    async def test_a_review_decision_still_works_after_the_end(self, client, tenant):
        s, held = await referral_in_review(client, tenant)
        await _act(client, tenant, s["program"], "end")
        ref = held["referral"]["id"]
        r = await client.post(
            f"/v1/referrals/{ref}/approve", json={"actor": "risk@shop.example"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "converted"
        assert {x["status"] for x in r.json()["rewards"]} == {"pending"}  # then its hold


class TestPublicFaces:
    async def test_share_page_and_widget_say_the_state(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await create_advocate(client, tenant, program["id"], "anna")
        url = await client.post(
            f"/v1/advocates/{anna['id']}/share-url", json={}, headers=tenant.auth
        )
        page = url.json()["url"].removeprefix("http://testserver.local")
        running = (await client.get(page)).text
        assert 'id="program-notice"' not in running and "You get a reward when" in running
        await _act(client, tenant, program, "pause")
        text = (await client.get(page)).text
        assert 'id="program-notice"' in text and "is paused" in text
        assert "You get a reward when" not in text, "no reward promised while paused"
        offer = (await client.get("/widget/v1/offer", params={"ref": anna["code"]})).json()
        assert (offer["active"], offer["offer"], offer["program_state"]) == (False, None, "paused")

        await _act(client, tenant, program, "end")
        await client.patch(
            f"/v1/programs/{program['id']}", json={"locale": "sv"}, headers=tenant.auth
        )
        text = (await client.get(page)).text
        assert "Tipsprogrammet" in text and "har avslutats" in text
        offer = (await client.get("/widget/v1/offer", params={"ref": anna["code"]})).json()
        assert (offer["offer"], offer["program_state"]) == (None, "ended")
