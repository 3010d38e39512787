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
