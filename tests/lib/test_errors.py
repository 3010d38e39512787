"""Bad input gets RFC 9457 problem+json with a stable code, never a 500; request ids; no raw
email in the logs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referral.app import create_app
from referral.lib.errors import PROBLEM_BASE
from referral.lib.logging import configure_logging
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program, program_body

_APP = create_app(make_settings("postgresql://unused@localhost/unused"))
_DOCUMENT = _APP.openapi_schema.to_schema()


def assert_problem(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    for field, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(problem.get(field), kind), (field, problem)
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    assert problem["type"] == PROBLEM_BASE + problem["code"]
    if code is not None:
        assert problem["code"] == code, problem
    return problem


async def post_raw(client, tenant, url: str, body: bytes, method: str = "POST"):
    return await client.request(
        method, url, content=body, headers={**tenant.auth, "content-type": "application/json"}
    )


class TestRouting:
    async def test_unknown_route(self, client, tenant):
        for path in ("/nope", "/v1/nope", "/v1/programs/prg_x/nope"):
            problem = assert_problem(await client.get(path, headers=tenant.auth), 404, "not_found")
            assert path in problem["detail"]

    async def test_wrong_method(self, client, tenant):
        response = await client.delete("/v1/programs", headers=tenant.auth)
        problem = assert_problem(response, 405, "method_not_allowed")
        assert "DELETE" in problem["detail"]
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert {"GET", "POST"} <= allowed and "DELETE" not in allowed
        program = await create_program(client, tenant)
        response = await client.put(f"/v1/programs/{program['id']}", json={}, headers=tenant.auth)
        assert_problem(response, 405, "method_not_allowed")
        assert "PATCH" in response.headers["allow"]

    async def test_malformed_ids_are_not_found(self, client, tenant):
        for url, code in (
            ("/v1/programs/prg_garbage", "program_not_found"),
            ("/v1/programs/garbage", "program_not_found"),
            ("/v1/programs/adv_3rbkgzy2ez", "program_not_found"),
            ("/v1/programs/prg_" + "x" * 500, "program_not_found"),
            ("/v1/advocates/adv_garbage", "advocate_not_found"),
            ("/v1/advocates/prg_3rbkgzy2ez", "advocate_not_found"),
        ):
            problem = assert_problem(await client.get(url, headers=tenant.auth), 404, code)
            assert len(problem["detail"]) < 200  # a huge id is not echoed in full
        response = await client.patch("/v1/programs/prg_garbage", json={}, headers=tenant.auth)
        assert_problem(response, 404, "program_not_found")


class TestBody:
    async def test_malformed_json(self, client, tenant):
        for body in (b"{not json", b'{"name": ', b"\xff\xfe", b'{"a": 1} trailing'):
            response = await post_raw(client, tenant, "/v1/programs", body)
            problem = assert_problem(response, 400)
            assert "JSON" in problem["detail"] or "json" in problem["detail"], problem

    async def test_missing_body(self, client, tenant):
        problem = assert_problem(await post_raw(client, tenant, "/v1/programs", b""), 400)
        assert "body" in problem["detail"]

    async def test_wrong_types(self, client, tenant):
        cases = [
            ({"name": 5, "landing_url": "https://x.example"}, "name"),
            ({"name": "a", "landing_url": ["https://x.example"]}, "landing_url"),
            (program_body(hold_days="fourteen"), "hold_days"),
            (program_body(hold_days=14.5), "hold_days"),
            (program_body(rewards={"advocate": {"kind": "cash", "amounts": {"EUR": "ten"}}}), ""),
            (program_body(rewards=[]), "rewards"),
        ]
        for body, key in cases:
            response = await client.post("/v1/programs", json=body, headers=tenant.auth)
            problem = assert_problem(response, 400, "validation_error")
            assert key in problem["detail"]
            assert problem["errors"] and problem["errors"][0]["source"] == "body"
        for body in ([], "text", 5, None):
            response = await client.post("/v1/programs", json=body, headers=tenant.auth)
            assert_problem(response, 400, "validation_error")

    async def test_unknown_fields_are_refused(self, client, tenant):
        program = await create_program(client, tenant)
        for url, method, body in (
            ("/v1/programs", "POST", program_body(colour="red")),
            ("/v1/programs", "POST", program_body(rewards={"advocate": None, "bonus": 1})),
            (
                "/v1/programs",
                "POST",
                program_body(rewards={"advocate": {"kind": "cash", "amount": {"EUR": 1}}}),
            ),
            (f"/v1/programs/{program['id']}", "PATCH", {"id": "prg_other"}),
            ("/v1/advocates", "POST", {"program_id": program["id"], "customer_id": "c", "x": 1}),
        ):
            response = await client.request(method, url, json=body, headers=tenant.auth)
            problem = assert_problem(response, 400, "validation_error")
            assert "unknown field" in problem["detail"], problem

    async def test_missing_required_fields(self, client, tenant):
        for body, field in (
            ({"name": "a"}, "landing_url"),
            ({"landing_url": "https://x.example"}, "name"),
            ({}, ""),
        ):
            response = await client.post("/v1/programs", json=body, headers=tenant.auth)
            problem = assert_problem(response, 400, "validation_error")
            assert "missing required field" in problem["detail"] and field in problem["detail"]
        response = await client.post("/v1/advocates", json={}, headers=tenant.auth)
        assert_problem(response, 400, "validation_error")

    async def test_out_of_range_numbers(self, client, tenant):
        for override in (
            {"hold_days": 366},
            {"hold_days": -1},
            {"attribution_window_days": 0},
            {"attribution_window_days": 10**30},
            {"rewards": {"advocate": {"kind": "cash", "basis_points": 10_001}}},
            {"rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": -5}}}},
            {"name": ""},
            {"name": "x" * 201},
            {"qr_foreground": "red"},
        ):
            response = await client.post(
                "/v1/programs", json=program_body(**override), headers=tenant.auth
            )
            assert_problem(response, 400, "validation_error")

    async def test_bad_urls(self, client, tenant):
        for field in ("landing_url", "fallback_url"):
            for url in (
                "javascript:alert(1)",
                "data:text/html,<script>alert(1)</script>",
                "/relative/path",
                "//shop.example/no-scheme",
                "http://",
                "ftp://shop.example/",
                "https://shop.example/a b",
                "https://shop.example/\nLocation: https://evil.example",
                "https://[::1",
                "https://shop.example:99999/",
            ):
                response = await client.post(
                    "/v1/programs", json=program_body(**{field: url}), headers=tenant.auth
                )
                problem = assert_problem(response, 422, "invalid_url")
                assert field in problem["detail"]

    async def test_unknown_currency(self, client, tenant):
        for rewards in (
            {"advocate": {"kind": "cash", "amounts": {"XYZ": 100}}},
            {"friend": {"kind": "coupon", "amounts": {"EUR": 100, "ABC": 1}}},
            {"minimum_order": {"QQQ": 100}},
        ):
            response = await client.post(
                "/v1/programs", json=program_body(rewards=rewards), headers=tenant.auth
            )
            problem = assert_problem(response, 422, "unknown_currency")
            assert re.search(r"XYZ|ABC|QQQ", problem["detail"])
        # Not even shaped like a currency code: a validation error.
        response = await client.post(
            "/v1/programs",
            json=program_body(rewards={"advocate": {"kind": "cash", "amounts": {"eur": 1}}}),
            headers=tenant.auth,
        )
        assert_problem(response, 400, "validation_error")

    async def test_invalid_reward_rule(self, client, tenant):
        for rule in (
            {"kind": "cash"},
            {"kind": "cash", "amounts": {"EUR": 100}, "basis_points": 500},
            {"kind": "store_credit", "points": 10},
            {"kind": "points"},
            {"kind": "points", "amounts": {"EUR": 100}},
        ):
            response = await client.post(
                "/v1/programs",
                json=program_body(rewards={"advocate": rule}),
                headers=tenant.auth,
            )
            problem = assert_problem(response, 422, "invalid_reward_rule")
            assert "advocate" in problem["detail"]
        response = await client.post(
            "/v1/programs",
            json=program_body(rewards={"friend": {"kind": "gift"}}),
            headers=tenant.auth,
        )
        assert_problem(response, 400, "validation_error")

    async def test_oversize_body(self, client, tenant):
        body = json.dumps(program_body(fraud_policy={"pad": "x" * 1_100_000})).encode()
        assert_problem(await post_raw(client, tenant, "/v1/programs", body), 413)

    async def test_nul_characters(self, client, tenant):
        """PostgreSQL stores no NUL character: refused as input, not a 500."""
        for body in (
            program_body(name="a\x00b"),
            program_body(fraud_policy={"blocklist": {"customer_ids": ["a\x00b"]}}),
        ):
            response = await client.post("/v1/programs", json=body, headers=tenant.auth)
            assert_problem(response, 422, "invalid_text")
        response = await client.get("/v1/codes/AB%00CD", headers=tenant.auth)
        assert response.status_code in (404, 422), response.text

    async def test_deeply_nested_json(self, client, tenant):
        deep = b"[" * 5000 + b"]" * 5000
        body = b'{"name": "a", "landing_url": "https://x.example", "fraud_policy": {"a": '
        response = await post_raw(client, tenant, "/v1/programs", body + deep + b"}}")
        assert_problem(response, 400)

    async def test_lone_surrogate(self, client, tenant):
        body = b'{"name": "a\\ud800", "landing_url": "https://x.example"}'
        response = await post_raw(client, tenant, "/v1/programs", body)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


class TestPagination:
    async def test_bad_limits(self, client, tenant):
        for path in ("/v1/programs", "/v1/advocates"):
            for limit in ("0", "1000", "101", "-1", "abc", "1.5"):
                response = await client.get(path, params={"limit": limit}, headers=tenant.auth)
                problem = assert_problem(response, 400, "validation_error")
                assert "limit" in problem["detail"]

    async def test_bad_cursors(self, client, tenant):
        await create_program(client, tenant)
        for after in ("garbage", "prg_garbage", "prg_" + "z" * 300):
            response = await client.get(
                "/v1/programs", params={"starting_after": after}, headers=tenant.auth
            )
            assert_problem(response, 404, "program_not_found")
        response = await client.get(
            "/v1/advocates", params={"starting_after": "garbage"}, headers=tenant.auth
        )
        assert_problem(response, 404, "advocate_not_found")

    async def test_bad_filters(self, client, tenant):
        for params in (
            {"created_from": "yesterday"},
            {"created_before": "2025-13-45"},
            {"status": "deleted"},
        ):
            response = await client.get("/v1/programs", params=params, headers=tenant.auth)
            assert_problem(response, 400, "validation_error")


# --- fuzz: random JSON to every POST and PATCH endpoint ----------------------------------


def _property_names(node: Any, into: set[str]) -> set[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "properties" and isinstance(value, dict):
                into.update(value)
            _property_names(value, into)
    elif isinstance(node, list):
        for value in node:
            _property_names(value, into)
    return into


FIELD_NAMES = sorted(_property_names(_DOCUMENT.get("components", {}), set()))
WRITE_ENDPOINTS = sorted(
    (method.upper(), path)
    for path, operations in _DOCUMENT["paths"].items()
    for method in operations
    if method in ("post", "patch", "put", "delete") and path.startswith("/v1/")
)
TRICKY = st.sampled_from(
    [
        "EUR",
        "XYZ",
        "cash",
        "points",
        "active",
        "",
        "\x00",
        "a\x00b",
        "https://shop.example/",
        "https://[::1",
        "javascript:alert(1)",
        "9" * 40,
        "\u202e\u0301",
        "2025-01-01T00:00:00Z",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | TRICKY
)
# A valid body per endpoint where this file knows one: mutating it reaches the checks that
# run after parsing (services, SQL), which random JSON rarely gets past.
VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/programs"): program_body(),
    ("PATCH", "/v1/programs/{program_id}"): {"name": "Renamed"},
    ("POST", "/v1/advocates"): {"program_id": "{program_id}", "customer_id": "cus_1"},
    ("POST", "/v1/advocates/{advocate_id}/codes"): {"code": "ANNA2024"},
    ("PUT", "/v1/programs/{program_id}/fraud-policy"): {
        "review_score": 50,
        "blocklist": {"ips": ["10.0.0.0/8"], "email_domains": ["*.example.com"]},
        "similar_email": {"max_distance": 2},
    },
    ("POST", "/v1/programs/{program_id}/fraud-policy/backtest"): {
        "policy": {"same_ip": {"action": "review"}},
        "created_from": "2025-01-01T00:00:00Z",
        "created_before": "2030-01-01T00:00:00Z",
    },
}


def json_values(ids: list[str]) -> st.SearchStrategy:
    """Any JSON; objects often use the API's own field names, strings often real ids."""
    keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=12)
    scalars = _SCALARS | st.sampled_from(ids)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6)
        ),
        max_leaves=25,
    )


def fuzz_body(data, method: str, path: str, ids: dict[str, str]) -> bytes:
    values = json_values([*ids.values(), "cus_1"])
    kind = data.draw(st.sampled_from(["raw", "json", *["mutated"] * 4]), label="kind")
    if kind == "raw":
        return data.draw(st.binary(max_size=64), label="raw body")
    if kind == "json":
        return json.dumps(data.draw(values, label="json body")).encode()
    text = json.dumps(VALID_BODIES.get((method, path), {}))
    for name, value in ids.items():
        text = text.replace(f"{{{name}}}", value)
    body = json.loads(text)
    own = sorted(body) or FIELD_NAMES
    for _ in range(1 if data.draw(st.integers(0, 3), label="one change?") else 2):
        # Mostly the body's own fields: an unknown one only tests forbid_unknown_fields.
        pool = FIELD_NAMES if data.draw(st.integers(0, 4), label="new field?") == 0 else own
        field = data.draw(st.sampled_from(pool), label="field")
        body[field] = data.draw(TRICKY | st.text(max_size=30) | st.integers() | values)
    return json.dumps(body).encode()


def test_fuzz_covers_every_write_endpoint():
    served = {
        (method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path))
        for route in _APP.routes
        if route.path.startswith("/v1/")
        for method in getattr(route, "methods", ())
        if method in ("POST", "PATCH", "PUT", "DELETE")
    }
    assert served == set(WRITE_ENDPOINTS), "every write endpoint must be in the OpenAPI document"


@pytest.fixture
async def fuzz_ids(client, tenant) -> dict[str, str]:
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"])
    return {"program_id": program["id"], "advocate_id": advocate["id"], "code": advocate["code"]}


@pytest.mark.parametrize(("method", "path"), WRITE_ENDPOINTS)
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_fuzzed_bodies_never_get_a_500(client, tenant, fuzz_ids, method, path, data):
    # Path ids this test does not create (orders, rewards, …) get a placeholder: the body is
    # still parsed and validated before the lookup.
    url = re.sub(r"\{(\w+)\}", lambda m: fuzz_ids.get(m.group(1), f"{m.group(1)}_x"), path)
    body = fuzz_body(data, method, path, fuzz_ids)
    response = await post_raw(client, tenant, url, body, method=method)
    assert response.status_code < 500, (url, body[:500], response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


# --- request ids -------------------------------------------------------------------------


class TestRequestId:
    async def test_echoed_when_safe(self, client, tenant):
        for path in ("/healthz", "/nope", "/v1/programs"):
            response = await client.get(
                path, headers={"X-Request-ID": "shop-42.abc:7_Z", **tenant.auth}
            )
            assert response.headers["x-request-id"] == "shop-42.abc:7_Z", path

    async def test_generated_otherwise(self, client):
        seen = set()
        for path in ("/healthz", "/nope", "/healthz"):
            rid = (await client.get(path)).headers["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{16}", rid), rid
            seen.add(rid)
        assert len(seen) == 3

    @pytest.mark.parametrize(
        "unsafe",
        [b"abc\ndef", b"abc\r\nSet-Cookie: x=1", b"x" * 300, b"a b", "caf\u00e9".encode(), b""],
    )
    async def test_unsafe_is_replaced(self, unsafe):
        """Sent as raw ASGI (an HTTP client would refuse some of these values)."""
        messages = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            messages.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/nope",
            "raw_path": b"/nope",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"x-request-id", unsafe)],
            "client": ("127.0.0.1", 1234),
            "server": ("testserver", 80),
        }
        await _APP(scope, receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        assert start["status"] == 404
        ids = [v for k, v in start["headers"] if k.lower() == b"x-request-id"]
        assert len(ids) == 1
        assert ids[0] != unsafe
        assert re.fullmatch(rb"[0-9a-f]{16}", ids[0]), ids[0]


# --- privacy -----------------------------------------------------------------------------


@pytest.fixture
def json_logs():
    configure_logging("json", "debug")
    yield
    structlog.reset_defaults()


async def test_logs_carry_no_raw_email(client, tenant, capfd, json_logs):
    program = await create_program(client, tenant)
    email = "Private.Person+ref@Example.com"
    capfd.readouterr()
    for headers in (tenant.auth, {"Authorization": "Bearer sk_test_wrong"}):
        await client.post(
            "/v1/advocates",
            json={"program_id": program["id"], "customer_id": "cus_9", "email": email},
            headers=headers,
        )
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "cus_9", "email": 5, "name": email},
        headers=tenant.auth,
    )
    assert response.status_code == 400
    out, err = capfd.readouterr()
    lines = [line for line in out.splitlines() if line.strip()]
    assert any(json.loads(line).get("event") == "request" for line in lines), out
    for text in (out, err):
        assert email.lower() not in text.lower()
        assert "private.person" not in text.lower()
