"""Scopes: every route, called with a key of every scope, answers as the access table says;
the table knows every route, and the OpenAPI document shows each operation's scopes."""

from __future__ import annotations

import re

import pytest
from litestar.routes import HTTPRoute

from referral.http import access
from referral.openapi import document

KEY_PARAMETERS = {"caller", "reader", "once"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _operations(app) -> list[tuple[str, str, str, set[str]]]:
    """(operation id, method, path with placeholder ids, handler parameters) of every
    operation the app serves, HEAD answered like GET left out."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for handler in route.route_handlers:
            operation_id = handler.operation_id
            if not isinstance(operation_id, str):
                continue
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                params = set(handler.parsed_fn_signature.parameters)
                found.append((operation_id, method, path, params))
    return found


def test_the_table_names_every_operation_and_only_those(app):
    served = {operation_id for operation_id, *_ in _operations(app)}
    assert served - set(access.OPERATIONS) == set(), "add these to referral/http/access.py"
    assert set(access.OPERATIONS) - served == set(), "these are in the table but not served"


def test_public_routes_take_no_key_and_keyed_routes_do(app):
    for operation_id, method, path, params in _operations(app):
        rule = access.OPERATIONS[operation_id]
        keyed = bool(params & KEY_PARAMETERS)
        assert keyed != rule.public, f"{method} {path} ({operation_id})"


def test_every_change_route_says_what_it_audits_or_why_not(app):
    for operation_id, method, path, _ in _operations(app):
        rule = access.OPERATIONS[operation_id]
        if rule.public or method not in WRITES:
            assert rule.audited is None and rule.unaudited is None, operation_id
            continue
        assert (rule.audited is None) != (rule.unaudited is None), (
            f"{method} {path}: name its audit action, or say why it records none"
        )


@pytest.fixture
async def scoped_keys(client, tenant) -> dict[str, dict[str, str]]:
    """One key per scope, made through the API."""
    keys = {}
    for scope in access.SCOPES:
        response = await client.post(
            "/v1/keys",
            json={"kind": "secret", "label": f"only {scope}", "scopes": [scope]},
            headers=tenant.auth,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["scopes"] == [scope]
        keys[scope] = {"Authorization": f"Bearer {body['secret']}"}
    return keys


async def test_every_route_with_every_scope(app, client, scoped_keys):
    """A key without the scope is refused before anything is read or changed (403
    `insufficient_scope`); a key with it gets past the check (whatever the placeholder ids
    then answer)."""
    walked = 0
    for operation_id, method, path, _ in _operations(app):
        rule = access.OPERATIONS[operation_id]
        if rule.public:
            continue
        for scope, headers in scoped_keys.items():
            body = {} if method in WRITES else None
            response = await client.request(method, path, json=body, headers=headers)
            allowed = access.allows(frozenset({scope}), rule, method)
            if allowed:
                assert response.status_code not in (401, 403), (
                    f"{scope} key on {method} {path}: {response.status_code} {response.text}"
                )
            else:
                assert response.status_code == 403, f"{scope} key on {method} {path}"
                assert response.json()["code"] == "insufficient_scope"
                assert scope in response.json()["detail"]
            walked += 1
    assert walked > 250  # every keyed route, four times


async def test_read_scope_reads_everything_and_changes_nothing(client, tenant, scoped_keys):
    program = {
        "name": "P",
        "landing_url": "https://shop.example/",
        "rewards": {"advocate": {"kind": "cash", "amounts": {"EUR": 500}}},
    }
    refused = await client.post("/v1/programs", json=program, headers=scoped_keys["read"])
    assert refused.status_code == 403
    made = await client.post("/v1/programs", json=program, headers=scoped_keys["admin"])
    assert made.status_code == 201
    listed = await client.get("/v1/programs", headers=scoped_keys["read"])
    assert [p["id"] for p in listed.json()["data"]] == [made.json()["id"]]
    # finance GETs are open to `read` too; finance changes are not
    assert (await client.get("/v1/payout-batches", headers=scoped_keys["read"])).status_code == 200
    batch = {"currency": "EUR"}
    assert (
        await client.post("/v1/payout-batches", json=batch, headers=scoped_keys["read"])
    ).status_code == 403
    assert (
        await client.post("/v1/payout-batches", json=batch, headers=scoped_keys["finance"])
    ).status_code == 201


def test_the_document_shows_each_operations_scopes(app):
    import json

    spec = json.loads(document())
    seen = 0
    for path_item in spec["paths"].values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            rule = access.OPERATIONS[operation["operationId"]]
            if rule.public:
                assert not operation.get("security"), operation["operationId"]
                continue
            (secret,) = [r["secretKey"] for r in operation["security"] if "secretKey" in r]
            methods = frozenset({method.upper()})
            assert secret == access.accepted_scopes(rule, methods), operation["operationId"]
            seen += 1
    assert seen > 60
    scheme = spec["components"]["securitySchemes"]["secretKey"]["description"]
    assert all(f"`{scope}`" in scheme for scope in access.SCOPES)
