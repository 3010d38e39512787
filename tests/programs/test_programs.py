"""Programs through the HTTP API: create, read, partial update, cursor-paginated lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tests.factories import create_program, program_body


async def _list(client, tenant, **params) -> dict:
    response = await client.get("/v1/programs", params=params, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def _walk(client, tenant, limit: int, **params) -> list[str]:
    """Every id, page by page, following `starting_after` until `has_more` is false."""
    ids: list[str] = []
    after = None
    for _ in range(100):
        query = dict(params, limit=limit)
        if after:
            query["starting_after"] = after
        page = await _list(client, tenant, **query)
        assert len(page["data"]) <= limit
        ids += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            return ids
        assert page["data"], "has_more with an empty page"
        after = page["data"][-1]["id"]
    raise AssertionError("pagination never ended")


class TestCreate:
    async def test_returns_the_program_with_defaults(self, client, tenant):
        response = await client.post(
            "/v1/programs",
            json={"name": "Spring", "landing_url": "https://shop.example/spring"},
            headers=tenant.auth,
        )
        assert response.status_code == 201, response.text
        program = response.json()
        assert program["id"].startswith("prg_")
        assert program["object"] == "program"
        assert program["name"] == "Spring"
        assert program["landing_url"] == "https://shop.example/spring"
        assert program["fallback_url"] is None
        assert program["status"] == "active"
        assert program["attribution_window_days"] == 30
        assert program["hold_days"] == 30
        assert program["qr_foreground"] == "#000000"
        assert program["qr_background"] == "#ffffff"
        assert program["livemode"] is False
        assert program["rewards"]["trigger"] == "first_order"
        assert program["rewards"]["new_customers_only"] is True
        datetime.fromisoformat(program["created_at"])

    async def test_keeps_every_given_setting(self, client, tenant):
        body = program_body(
            name="Give 15 %",
            status="draft",
            fallback_url="https://shop.example/sorry",
            attribution_window_days=7,
            hold_days=0,
            fraud_policy={"advocate_velocity": {"max_per_hour": 2, "action": "block"}},
            qr_foreground="#1a7f37",
            qr_background="#FAFAFA",
            rewards={
                "advocate": {"kind": "cash", "basis_points": 1500},
                "friend": {"kind": "points", "points": 500},
                "trigger": "signup",
                "new_customers_only": False,
                "minimum_order": {"EUR": 2000, "SEK": 20000},
            },
        )
        created = await create_program(client, tenant, **body)
        for field, value in body.items():
            if field == "rewards":  # settings not given keep their defaults
                assert {k: created[field][k] for k in value} == value
            elif field == "fraud_policy":
                velocity = created[field]["advocate_velocity"]
                assert (velocity["max_per_hour"], velocity["action"]) == (2, "block")
                assert velocity["max_per_day"] == 20  # the default where none was given
            else:
                assert created[field] == value, field

    async def test_live_key_creates_live_program(self, client, tenant):
        response = await client.post(
            "/v1/programs",
            json=program_body(),
            headers={"Authorization": f"Bearer {tenant.live_secret_key}"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["livemode"] is True


class TestRead:
    async def test_read_equals_created(self, client, tenant):
        created = await create_program(client, tenant, fallback_url="https://shop.example/x")
        response = await client.get(f"/v1/programs/{created['id']}", headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert response.json() == created

    async def test_unknown_id_is_404(self, client, tenant, db):
        created = await create_program(client, tenant)
        await db.execute("DELETE FROM programs")  # a well-formed id that names nothing
        for program_id in (created["id"], "prg_garbage", "prg_", "adv_3rbkgzy2ez"):
            response = await client.get(f"/v1/programs/{program_id}", headers=tenant.auth)
            assert response.status_code == 404, program_id
            assert response.json()["code"] == "program_not_found"


class TestUpdate:
    async def test_patch_changes_only_the_given_fields(self, client, tenant):
        created = await create_program(client, tenant, fallback_url="https://shop.example/fb")
        response = await client.patch(
            f"/v1/programs/{created['id']}",
            json={"name": "Renamed", "hold_days": 3},
            headers=tenant.auth,
        )
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["name"] == "Renamed"
        assert updated["hold_days"] == 3
        unchanged = {k: v for k, v in created.items() if k not in ("name", "hold_days")}
        assert {k: updated[k] for k in unchanged if k != "updated_at"} == {
            k: v for k, v in unchanged.items() if k != "updated_at"
        }
        assert updated["updated_at"] > created["updated_at"]
        # And it is stored, not only echoed.
        again = await client.get(f"/v1/programs/{created['id']}", headers=tenant.auth)
        assert again.json() == updated

    async def test_fallback_url_can_be_set_and_cleared(self, client, tenant):
        created = await create_program(client, tenant)
        url = f"/v1/programs/{created['id']}"
        response = await client.patch(
            url, json={"fallback_url": "https://shop.example/fb"}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text
        assert response.json()["fallback_url"] == "https://shop.example/fb"
        response = await client.patch(url, json={"fallback_url": None}, headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert response.json()["fallback_url"] is None
        assert (await client.get(url, headers=tenant.auth)).json()["fallback_url"] is None

    async def test_empty_patch_changes_nothing(self, client, tenant):
        created = await create_program(client, tenant)
        response = await client.patch(f"/v1/programs/{created['id']}", json={}, headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
            k: v for k, v in created.items() if k != "updated_at"
        }

    async def test_rewards_are_replaced_as_a_whole(self, client, tenant):
        created = await create_program(client, tenant)
        rewards = {"advocate": {"kind": "store_credit", "amounts": {"SEK": 5000}}}
        response = await client.patch(
            f"/v1/programs/{created['id']}", json={"rewards": rewards}, headers=tenant.auth
        )
        assert response.status_code == 200, response.text
        got = response.json()["rewards"]
        assert got["advocate"] == rewards["advocate"]
        assert got.get("friend") is None

    async def test_status_change(self, client, tenant):
        created = await create_program(client, tenant)
        for status in ("paused", "archived", "active", "draft"):
            response = await client.patch(
                f"/v1/programs/{created['id']}", json={"status": status}, headers=tenant.auth
            )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == status

    async def test_invalid_patch_changes_nothing(self, client, tenant):
        created = await create_program(client, tenant)
        url = f"/v1/programs/{created['id']}"
        bad = [
            ({"landing_url": "javascript:alert(1)"}, 422, "invalid_url"),
            ({"fallback_url": "ftp://shop.example/"}, 422, "invalid_url"),
            ({"name": None}, 400, "validation_error"),
            ({"hold_days": -1}, 400, "validation_error"),
            ({"status": "deleted"}, 400, "validation_error"),
            ({"rewards": {"advocate": {"kind": "cash"}}}, 422, "invalid_reward_rule"),
            ({"id": "prg_other"}, 400, "validation_error"),
        ]
        for body, status, code in bad:
            response = await client.patch(url, json=body, headers=tenant.auth)
            assert response.status_code == status, (body, response.text)
            assert response.json()["code"] == code, body
        assert (await client.get(url, headers=tenant.auth)).json() == created

    async def test_unknown_program_is_404(self, client, tenant):
        response = await client.patch(
            "/v1/programs/prg_garbage", json={"name": "x"}, headers=tenant.auth
        )
        assert response.status_code == 404
        assert response.json()["code"] == "program_not_found"


class TestList:
    async def test_empty(self, client, tenant):
        page = await _list(client, tenant)
        assert page == {"data": [], "has_more": False, "object": "list"}

    async def test_pages_in_creation_order_without_gaps(self, client, tenant):
        ids = [(await create_program(client, tenant, name=f"P{i}"))["id"] for i in range(7)]
        first = await _list(client, tenant, limit=3)
        assert [p["id"] for p in first["data"]] == ids[:3]
        assert first["has_more"] is True
        second = await _list(client, tenant, limit=3, starting_after=ids[2])
        assert [p["id"] for p in second["data"]] == ids[3:6]
        assert second["has_more"] is True
        last = await _list(client, tenant, limit=3, starting_after=ids[5])
        assert [p["id"] for p in last["data"]] == ids[6:]
        assert last["has_more"] is False
        assert await _walk(client, tenant, limit=2) == ids
        # Exactly `limit` rows left: no phantom next page.
        exact = await _list(client, tenant, limit=4, starting_after=ids[2])
        assert [p["id"] for p in exact["data"]] == ids[3:]
        assert exact["has_more"] is False

    async def test_default_limit_is_20(self, client, tenant):
        for i in range(21):
            await create_program(client, tenant, name=f"P{i}")
        page = await _list(client, tenant)
        assert len(page["data"]) == 20
        assert page["has_more"] is True

    async def test_stable_order_when_created_at_ties(self, client, tenant, db):
        ids = [(await create_program(client, tenant, name=f"P{i}"))["id"] for i in range(5)]
        # Same creation time for all: the id breaks the tie, so pages neither skip nor repeat.
        await db.execute("UPDATE programs SET created_at = '2025-01-01T00:00:00Z'")
        assert await _walk(client, tenant, limit=2) == ids
        assert await _walk(client, tenant, limit=1) == ids

    async def test_order_follows_created_at(self, client, tenant, db):
        first = await create_program(client, tenant, name="first")
        second = await create_program(client, tenant, name="second")
        # Backdate the second: the list follows creation time, not insertion order.
        await db.execute(
            "UPDATE programs SET created_at = created_at - interval '1 day' WHERE name = 'second'"
        )
        assert await _walk(client, tenant, limit=1) == [second["id"], first["id"]]

    async def test_status_filter(self, client, tenant):
        active = await create_program(client, tenant, name="a")
        draft = await create_program(client, tenant, name="d", status="draft")
        paused = await create_program(client, tenant, name="p")
        await client.patch(
            f"/v1/programs/{paused['id']}", json={"status": "paused"}, headers=tenant.auth
        )
        assert [p["id"] for p in (await _list(client, tenant, status="active"))["data"]] == [
            active["id"]
        ]
        assert [p["id"] for p in (await _list(client, tenant, status="draft"))["data"]] == [
            draft["id"]
        ]
        assert [p["id"] for p in (await _list(client, tenant, status="paused"))["data"]] == [
            paused["id"]
        ]
        assert (await _list(client, tenant, status="archived"))["data"] == []
        # Filter and cursor together.
        more = [(await create_program(client, tenant, name=f"x{i}"))["id"] for i in range(3)]
        assert await _walk(client, tenant, limit=1, status="active") == [active["id"], *more]

    async def test_created_time_filters(self, client, tenant, db):
        ids = [(await create_program(client, tenant, name=f"P{i}"))["id"] for i in range(4)]
        base = datetime(2025, 3, 1, tzinfo=UTC)
        for i in range(4):
            await db.execute(
                "UPDATE programs SET created_at = $1 WHERE name = $2",
                base + timedelta(days=i),
                f"P{i}",
            )

        def iso(days: int) -> str:
            return (base + timedelta(days=days)).isoformat()

        got = await _walk(client, tenant, limit=10, created_from=iso(1))
        assert got == ids[1:]  # inclusive lower bound
        got = await _walk(client, tenant, limit=10, created_before=iso(2))
        assert got == ids[:2]  # exclusive upper bound
        got = await _walk(client, tenant, limit=1, created_from=iso(1), created_before=iso(3))
        assert got == ids[1:3]
        got = await _walk(client, tenant, limit=10, created_from=iso(10))
        assert got == []
        # A time with an offset means the same instant.
        plus_two = (base + timedelta(days=1)).astimezone(timezone(timedelta(hours=2)))
        got = await _walk(client, tenant, limit=10, created_from=plus_two.isoformat())
        assert got == ids[1:]

    async def test_cursor_of_another_kind_is_refused(self, client, tenant):
        await create_program(client, tenant)
        response = await client.get(
            "/v1/programs", params={"starting_after": "adv_3rbkgzy2ez"}, headers=tenant.auth
        )
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_change_is_an_event_naming_what_changed_and_who(client, tenant):
    program = await create_program(client, tenant)
    url = f"/v1/programs/{program['id']}"
    changed = await client.patch(url, json={"hold_days": 3, "name": program["name"]},
                                 headers=tenant.auth)  # fmt: skip
    assert changed.status_code == 200, changed.text
    same = await client.patch(url, json={"hold_days": 3}, headers=tenant.auth)
    assert same.status_code == 200
    events = await client.get("/v1/events?type=program.updated", headers=tenant.auth)
    recorded = [e["data"] for e in events.json()["data"] if e["type"] == "program.updated"]
    assert recorded == [{"program_id": program["id"], "changed": ["hold_days"], "actor": "api"}]
