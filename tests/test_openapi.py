"""The OpenAPI document: committed = generated = served, explicit operation ids, and every
documented client error is problem+json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from referral.app import create_app
from referral.openapi import document
from tests.conftest import make_settings

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
_APP = create_app(make_settings("postgresql://unused@localhost/unused"))
_DOC = _APP.openapi_schema.to_schema()
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_committed_document_is_current():
    generated = document()
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == generated, (
        "openapi/openapi.json is out of date with the app: run `make openapi` and commit it"
    )


async def test_served_document_matches(client):
    # OpenAPIConfig(path="/openapi") serves the JSON under /openapi/openapi.json.
    response = await client.get("/openapi/openapi.json")
    assert response.status_code == 200, response.text
    # Compared with the generated document, so a stale committed file fails only the test
    # above, and this one shows whether the app serves what `make openapi` writes.
    assert response.json() == json.loads(document()), "the app serves another document"


def test_every_handler_has_an_explicit_operation_id():
    missing = []
    for route in _APP.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not handler.include_in_schema or route.path.startswith("/openapi"):
                continue
            if not isinstance(handler.operation_id, str) or not handler.operation_id:
                missing.append(f"{sorted(handler.http_methods)} {route.path}")
    assert not missing, f"give these handlers an operation_id=…: {missing}"


def test_operation_ids_are_unique_and_present():
    ids = [op.get("operationId") for _, _, op in operations(_DOC)]
    assert all(ids), [f"{m} {p}" for m, p, op in operations(_DOC) if not op.get("operationId")]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# The public redirect answers a person, not a program: its 404 is a friendly HTML page.
_HTML_PAGES = {"followReferralLink", "headReferralLink"}


@pytest.mark.parametrize(
    "operation_id", sorted(op.get("operationId") for _, _, op in operations(_DOC))
)
def test_client_errors_are_documented_as_problem_json(operation_id):
    (op,) = [op for _, _, op in operations(_DOC) if op.get("operationId") == operation_id]
    wrong = {
        status: sorted(response.get("content", {}))
        for status, response in op.get("responses", {}).items()
        if status.startswith("4")
        and set(response.get("content", {})) != {"application/problem+json"}
        and not (
            operation_id in _HTML_PAGES
            and status == "404"
            and set(response.get("content", {})) == {"text/html"}
        )
    }
    assert not wrong, f"{operation_id}: 4xx responses not documented as problem+json: {wrong}"


def test_secured_operations_document_401_and_403():
    for method, path, op in operations(_DOC):
        if op.get("security"):
            assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"


# --- the spec states what the app enforces (issue 11: "the spec must tell the truth") -----


def _component(name: str) -> dict:
    return _DOC["components"]["schemas"][name]


def _operation(operation_id: str) -> dict:
    (op,) = [op for _, _, op in operations(_DOC) if op.get("operationId") == operation_id]
    return op


def _ref(schema: dict) -> dict:
    return _component(schema["$ref"].rsplit("/", 1)[1])


def test_request_structs_that_refuse_unknown_fields_say_so():
    for name in ("ProgramCreate", "ProgramUpdate", "OrderRequest", "RefundRequest", "FraudPolicy"):
        assert _component(name)["additionalProperties"] is False, name
    assert "additionalProperties" not in _component("Program")  # answers may grow


def test_field_bounds_are_the_decoders_bounds():
    amounts = _component("RewardRule")["properties"]["amounts"]["anyOf"][0]
    assert amounts["propertyNames"] == {"pattern": "^[A-Z]{3}$"}
    assert amounts["additionalProperties"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 10**12,
    }
    # `ge=0` is a bound, not "no bound".
    minimum = _component("BatchCreate")["properties"]["minimum"]["anyOf"][0]
    assert minimum["minimum"] == 0
    codes = _component("OrderRequest")["properties"]["codes"]
    assert codes["items"]["minLength"] == 1 and codes["items"]["maxLength"] == 40
    assert _component("OrderRequest")["properties"]["occurred_at"]["format"] == "date-time"


def test_list_times_are_documented_and_read_as_rfc3339():
    (param,) = [p for p in _operation("listPrograms")["parameters"] if p["name"] == "created_from"]
    assert param["schema"]["format"] == "date-time"


async def test_a_time_that_is_not_rfc3339_is_refused(client, tenant):
    for value in ("0.5", "1764582000", "2026-01-31T12:00:00"):
        response = await client.get(
            "/v1/programs", params={"created_from": value}, headers=tenant.auth
        )
        assert response.status_code == 400, (value, response.text)
        assert response.json()["errors"][0]["key"] == "created_from"
    ok = await client.get(
        "/v1/programs", params={"created_from": "2026-01-31T12:00:00Z"}, headers=tenant.auth
    )
    assert ok.status_code == 200, ok.text


def test_each_operation_names_its_problem_types():
    refund = _operation("refundOrder")["responses"]
    codes = _ref(refund["422"]["content"]["application/problem+json"]["schema"])
    assert "over_refund" in codes["properties"]["code"]["enum"]
    assert "https://referral.dev/problems/over_refund" in codes["properties"]["type"]["enum"]
    not_found = _ref(refund["404"]["content"]["application/problem+json"]["schema"])
    assert "order_not_found" in not_found["properties"]["code"]["enum"]
    assert "program_not_found" not in not_found["properties"]["code"]["enum"]
    # No operation falls back to the one generic problem.
    generic = [
        op["operationId"]
        for _, _, op in operations(_DOC)
        for status, response in op["responses"].items()
        if status.startswith("4")
        and response.get("content", {}).get("application/problem+json", {}).get("schema")
        == {"$ref": "#/components/schemas/Problem"}
    ]
    assert not generic, generic


def test_replays_and_optional_bodies_are_documented():
    # A repeated order id answers 200 with what the first call made.
    assert {"200", "201"} <= set(_operation("recordOrder")["responses"])
    assert _operation("cancelOrder")["requestBody"]["required"] is False
    redirect = _operation("followReferralLink")["responses"]["302"]
    assert "content" not in redirect and "location" in redirect["headers"]


async def test_options_lists_every_method_of_the_path(client, tenant):
    response = await client.options("/v1/programs/prg_x", headers=tenant.auth)
    assert response.status_code == 204
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "PATCH", "OPTIONS"}


async def test_a_401_names_the_scheme(client):
    response = await client.get("/v1/programs")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_integral_number_is_an_integer(client, tenant):
    """JSON Schema's `integer` takes 1000.0; a fraction or a string is still refused."""
    body = {
        "name": "n",
        "landing_url": "https://shop.example/",
        "hold_days": 3.0,
    }
    created = await client.post("/v1/programs", json=body, headers=tenant.auth)
    assert created.status_code == 201, created.text
    assert created.json()["hold_days"] == 3
    for wrong in (3.5, "3"):
        refused = await client.post(
            "/v1/programs", json={**body, "hold_days": wrong}, headers=tenant.auth
        )
        assert refused.status_code == 400, (wrong, refused.text)
        assert refused.json()["errors"][0]["key"] == "hold_days"
