"""Tenancy: every /v1 endpoint refused without a valid key, and blind to other merchants.

The endpoint list is read from the app's routes, so a new endpoint without a case in `CASES`
fails `test_every_v1_endpoint_has_a_tenancy_case`. Each case says how to call the endpoint on
merchant A's data; `test_endpoint_tenancy` then makes that call with merchant B's key, A's own
live-mode key (test mode is its own tenant), no key, a garbage key, a publishable key and a
revoked key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from referral.app import create_app
from referral.experiments import rules
from tests.conftest import PREFIX, _with_database, make_settings
from tests.factories import Tenant, make_tenant, program_body

# Built only to read its routes and OpenAPI document; it never opens a connection.
_APP = create_app(make_settings("postgresql://unused@localhost/unused"))
_SKIP_METHODS = {"OPTIONS", "HEAD"}


def v1_endpoints() -> set[str]:
    """`METHOD /v1/path/{param}` for every route the app serves under /v1."""
    found = set()
    for route in _APP.routes:
        if route.path == "/v1" or route.path.startswith("/v1/"):
            path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
            for method in set(getattr(route, "methods", ())) - _SKIP_METHODS:
                found.add(f"{method} {path}")
    return found


@dataclass
class Side:
    """One merchant's data, made through the API as a shop would."""

    tenant: Tenant
    tag: str
    program: dict[str, Any] = field(default_factory=dict)
    advocate: dict[str, Any] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)
    # adv1 (approved, in the batch), fr1 (pending), adv2 (approved, unbatched), fr2 (reversed)
    rewards: dict[str, str] = field(default_factory=dict)
    batch: dict[str, Any] = field(default_factory=dict)
    line_id: str = ""
    story: dict[str, Any] = field(default_factory=dict)
    coupon_pool: dict[str, Any] = field(default_factory=dict)
    payee: dict[str, Any] = field(default_factory=dict)  # the advocate's, by bank transfer
    iban: str = ""
    import_job: dict[str, Any] = field(default_factory=dict)  # customers, one refused line
    redemption: dict[str, Any] = field(default_factory=dict)  # the advocate's, of points
    event_ids: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # kind -> id of the test-mode keys
    webhook: dict[str, Any] = field(default_factory=dict)  # an endpoint, with its secret
    live_key_ids: set[str] = field(default_factory=set)  # the live twin's own keys
    audit_ids: set[str] = field(default_factory=set)  # the changes its key made
    experiment: dict[str, Any] = field(default_factory=dict)  # running, on its program

    @property
    def coupon(self) -> str:
        """A friend coupon of this merchant's (generated with a friend's reward)."""
        return next(r["coupon_code"] for o in self.orders for r in o["rewards"] if r["coupon_code"])

    def order_id(self, n: int) -> str:
        return f"ord-{self.tag}-{n}"

    @property
    def ids(self) -> dict[str, set[str]]:
        """The public ids each list endpoint must show this merchant, by resource."""
        return {
            "programs": {self.program["id"]},
            "advocates": {self.advocate["id"]},
            "referrals": {o["referral"]["id"] for o in self.orders},
            "rewards": set(self.rewards.values()) | {self.redemption["reward_id"]},
            "payout-batches": {self.batch["id"]},
            "events": set(self.event_ids),
            "stories": {self.story["id"]},
            "keys": set(self.keys.values()),
            "webhook-endpoints": {self.webhook["id"]},
            "audit-log": self.audit_ids,
            "imports": {self.import_job["id"]},
        }

    @property
    def markers(self) -> list[str]:
        """Strings only this merchant's data contains: none may reach another's key."""
        coupons = [r["coupon_code"] for o in self.orders for r in o["rewards"] if r["coupon_code"]]
        return [
            *{i for ids in self.ids.values() for i in ids},
            self.program["name"],
            self.program["landing_url"],
            self.program["fallback_url"],
            self.advocate["customer_id"],
            self.advocate["email"],
            self.advocate["name"],
            self.advocate["code"],
            self.line_id,
            self.story["text"],
            self.story["url"],
            self.coupon_pool["id"],
            self.coupon_pool["name"],
            self.experiment["id"],
            self.experiment["name"],
            self.payee["id"],
            self.payee["account_holder"],
            self.payee["iban"],  # masked
            self.iban,
            self.import_job["id"],
            self.redemption["id"],
            self.redemption["coupon_code"],
            f"imported-{self.tag}",
            self.webhook["url"],
            self.webhook["secret"],
            *coupons,
            *(self.order_id(n) for n in (1, 2)),
            *(f"friend-{self.tag}-{n}" for n in (1, 2)),
            *(f"friend{n}.{self.tag}@example.com" for n in (1, 2)),
        ]


@dataclass
class World:
    a: Side
    b: Side
    vanity: str = "ALPHA7Q"


async def _make_side(client, tenant: Tenant, tag: str) -> Side:
    side = Side(tenant=tenant, tag=tag)
    auth = tenant.auth

    async def ok(method: str, url: str, body: Any = None) -> Any:
        response = await client.request(method, url, json=body, headers=auth)
        assert response.status_code in (200, 201), (url, response.text)
        return response.json()

    # First, so every event after it is fanned out to it (no sender runs here).
    side.webhook = await ok(
        "POST", "/v1/webhook-endpoints", {"url": f"https://{tag}.example/hooks/{tag}"}
    )
    side.program = await ok(
        "POST",
        "/v1/programs",
        program_body(
            name=f"Program {tag}",
            landing_url=f"https://{tag}.example/landing",
            fallback_url=f"https://{tag}.example/fallback",
        ),
    )
    side.coupon_pool = await ok(
        "POST",
        f"/v1/programs/{side.program['id']}/coupon-pools",
        {"name": f"Pool {tag}", "currency": "EUR"},
    )
    await ok("POST", f"/v1/coupon-pools/{side.coupon_pool['id']}/codes", {"codes": [f"POOL-{tag}"]})
    side.advocate = await ok(
        "POST",
        "/v1/advocates",
        {
            "program_id": side.program["id"],
            "customer_id": f"cus-{tag}",
            "email": f"{tag}.advocate@example.com",
            "name": f"Advocate {tag}",
        },
    )
    for n in (1, 2):
        order = await ok(
            "POST",
            "/v1/orders",
            {
                "order_id": side.order_id(n),
                "customer_id": f"friend-{tag}-{n}",
                "email": f"friend{n}.{tag}@example.com",
                "codes": [side.advocate["code"]],
                "subtotal": 5000,
                "total": 5000,
                "currency": "EUR",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        assert order["referred"], order
        side.orders.append(order)
        for reward in order["rewards"]:
            side.rewards[f"{'adv' if reward['side'] == 'advocate' else 'fr'}{n}"] = reward["id"]
    action = {"actor": "tenancy-test"}
    await ok("POST", f"/v1/rewards/{side.rewards['adv1']}/approve", action)
    side.iban = IBANS[tag]
    side.payee = await ok(
        "PUT",
        f"/v1/payees/{side.advocate['customer_id']}",
        {"method": "bank_transfer", "iban": side.iban, "account_holder": f"Holder {tag}"},
    )
    side.batch = await ok("POST", "/v1/payout-batches", {"currency": "EUR"})
    assert side.batch["reward_count"] == 1, side.batch
    (line,) = await ok("GET", f"/v1/payout-batches/{side.batch['id']}/lines")
    side.line_id = line["id"]
    await ok("POST", f"/v1/rewards/{side.rewards['adv2']}/approve", action)
    side.story = await ok(
        "POST",
        "/v1/stories",
        {
            "advocate_id": side.advocate["id"],
            "reward_id": side.rewards["adv1"],
            "text": f"Story of {tag}",
        },
    )
    await ok("POST", f"/v1/rewards/{side.rewards['fr2']}/reverse", action)
    # Points: the advocate's own order earns 50, a 10-point coupon is redeemed (40 left).
    await ok("PUT", f"/v1/programs/{side.program['id']}/points", TENANCY_POINTS)
    await ok(
        "POST",
        "/v1/orders",
        {
            "order_id": f"own-{tag}",
            "customer_id": side.advocate["customer_id"],
            "subtotal": 5000,
            "total": 5000,
            "currency": "EUR",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    )
    side.redemption = await ok(
        "POST",
        f"/v1/customers/{side.advocate['customer_id']}/points/redemptions",
        {"program_id": side.program["id"], "item": "tiny"},
    )
    await ok(
        "PUT",
        f"/v1/customers/{side.advocate['customer_id']}/preferences",
        {"channels": ["email"], "topics": ["rewards"]},
    )
    imported = await client.post(
        "/v1/imports?kind=customers",
        content=f"customer_id,email\nimported-{tag},\n,not-an-address\n".encode(),
        headers={**auth, "content-type": "text/csv"},
    )
    assert imported.status_code == 202, imported.text
    side.import_job = imported.json()
    side.experiment = await ok(
        "POST",
        f"/v1/programs/{side.program['id']}/experiments",
        {
            "name": f"Experiment {tag}",
            "variants": [{"key": "a", "name": "A"}, {"key": "b", "name": "B", "weight": 2}],
        },
    )
    await ok("PUT", f"/v1/programs/{side.program['id']}/holdout", {"share_percent": 10})
    side.event_ids = [e["id"] for e in (await ok("GET", "/v1/events?limit=100"))["data"]]
    assert side.event_ids
    side.keys = {k["kind"]: k["id"] for k in (await ok("GET", "/v1/keys?limit=100"))["data"]}
    assert set(side.keys) == {"secret", "publishable"}, side.keys
    live = await client.get(
        "/v1/keys", headers={"Authorization": f"Bearer {tenant.live_secret_key}"}
    )
    side.live_key_ids = {k["id"] for k in live.json()["data"]}
    return side


async def build_world(client, db) -> World:
    world = World(
        a=await _make_side(client, await make_tenant(db, "Shop A"), "alpha7q"),
        b=await _make_side(client, await make_tenant(db, "Shop B"), "bravo4k"),
    )
    response = await client.post(
        f"/v1/advocates/{world.a.advocate['id']}/codes",
        json={"code": world.vanity},
        headers=world.a.tenant.auth,
    )
    assert response.status_code == 201, response.text
    world.a.advocate = response.json()
    # The holdouts' keys are random: fixed here to one that holds out none of the
    # customers the cases ask a code or share page for (10 % would, now and then).
    await db.execute("UPDATE program_holdouts SET hash_key = $1", HOLDOUT_KEY)
    assert not any(
        rules.held_out(HOLDOUT_KEY, 1000, c) for c in ("intruder", "cus-alpha7q", "cus-bravo4k")
    )
    for side in (world.a, world.b):
        log = await client.get("/v1/audit-log?limit=100", headers=side.tenant.auth)
        side.audit_ids = {e["id"] for e in log.json()["data"]}
        assert side.audit_ids and not log.json()["has_more"]
    return world


# The world takes ~30 requests to build: build it once, then give every test its own copy
# of the database (cloned from the one it was built in), so tests still never share rows.
@pytest.fixture(scope="module")
async def world_db(admin_url: str, template_db: str) -> AsyncIterator[tuple[str, World]]:
    name = f"{PREFIX}_tenancy_world"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        url = _with_database(admin_url, name)
        conn = await asyncpg.connect(url)
        try:
            app = create_app(make_settings(url))
            async with AsyncTestClient(app, base_url="http://testserver.local") as client:
                world = await build_world(client, conn)
        finally:
            await conn.close()
        yield name, world
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


_copies = iter(range(1, 10**9))


@pytest.fixture
async def database_url(admin_url: str, world_db: tuple[str, World]) -> AsyncIterator[str]:
    """Overrides conftest's: this module's tests start from a copy of the built world."""
    name = f"{PREFIX}_tenancy_{next(_copies)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{world_db[0]}"')
        yield _with_database(admin_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def world(world_db: tuple[str, World]) -> World:
    return world_db[1]


@dataclass(frozen=True)
class Case:
    """How to call one endpoint on merchant A's data, and what a foreign key must get.

    foreign: "not_found"   - 404 problem+json naming none of A's data;
             "own_rows"    - a list: 200 with none of A's rows (or 404);
             "own_data"    - a call that names A's data in its body (a code at checkout)
                             or none at all (a create): it may succeed, but only ever on the
                             caller's own data, and answers with none of A's.
    """

    secret: bool
    request: Callable[[World], tuple[str, str, Any]]
    foreign: str
    ok: int = 200


def _order(w: World, order_id: str, customer: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer,
        "codes": [w.a.advocate["code"]],
        "subtotal": 7000,
        "total": 7000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
    }


HOLDOUT_KEY = bytes(range(16))
TENANCY_POINTS = {
    "earning": {"order": {"points": 1, "per": {"EUR": 100}}},
    "catalogue": [{"id": "tiny", "points": 10, "kind": "coupon", "amount": 100, "currency": "EUR"}],
}
IBANS = {"alpha7q": "SE3550000000054910000003", "bravo4k": "DE89370400440532013000"}
_ACTION = {"actor": "tenancy-test"}
CASES: dict[str, Case] = {
    # programs
    "POST /v1/programs": Case(
        True,
        lambda w: ("POST", "/v1/programs", program_body(name="Made by the caller")),
        "own_data",
        201,
    ),
    "GET /v1/programs": Case(True, lambda w: ("GET", "/v1/programs", None), "own_rows"),
    "GET /v1/imports": Case(True, lambda w: ("GET", "/v1/imports", None), "own_rows"),
    "GET /v1/programs/{program_id}": Case(
        True, lambda w: ("GET", f"/v1/programs/{w.a.program['id']}", None), "not_found"
    ),
    "PATCH /v1/programs/{program_id}": Case(
        True,
        lambda w: (
            "PATCH",
            f"/v1/programs/{w.a.program['id']}",
            {"name": "Hijacked", "landing_url": "https://evil.example/", "status": "archived"},
        ),
        "not_found",
    ),
    "POST /v1/programs/{program_id}/pause": Case(
        True, lambda w: ("POST", f"/v1/programs/{w.a.program['id']}/pause", _ACTION), "not_found"
    ),
    "POST /v1/programs/{program_id}/resume": Case(
        True, lambda w: ("POST", f"/v1/programs/{w.a.program['id']}/resume", _ACTION), "not_found"
    ),
    "POST /v1/programs/{program_id}/end": Case(
        True, lambda w: ("POST", f"/v1/programs/{w.a.program['id']}/end", _ACTION), "not_found"
    ),
    # advocates and codes
    "POST /v1/advocates": Case(
        True,
        lambda w: (
            "POST",
            "/v1/advocates",
            {"program_id": w.a.program["id"], "customer_id": "intruder", "email": "i@evil.example"},
        ),
        "not_found",
        201,
    ),
    "GET /v1/advocates": Case(
        True,
        lambda w: ("GET", f"/v1/advocates?program_id={w.a.program['id']}", None),
        "own_rows",
    ),
    "GET /v1/advocates/{advocate_id}": Case(
        True, lambda w: ("GET", f"/v1/advocates/{w.a.advocate['id']}", None), "not_found"
    ),
    "POST /v1/advocates/{advocate_id}/codes": Case(
        True,
        lambda w: ("POST", f"/v1/advocates/{w.a.advocate['id']}/codes", {"code": "HIJACK42"}),
        "not_found",
        201,
    ),
    "POST /v1/advocates/{advocate_id}/share-url": Case(
        True,
        lambda w: ("POST", f"/v1/advocates/{w.a.advocate['id']}/share-url", {}),
        "not_found",
        201,
    ),
    "POST /v1/advocates/{advocate_id}/contact-preference": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/advocates/{w.a.advocate['id']}/contact-preference",
            {"contact_preference": "none"},
        ),
        "not_found",
    ),
    "GET /v1/codes/{code}": Case(
        False, lambda w: ("GET", f"/v1/codes/{w.a.advocate['code']}", None), "not_found"
    ),
    # checkout: A's code in the body
    "POST /v1/checkout/quote": Case(
        True,
        lambda w: (
            "POST",
            "/v1/checkout/quote",
            {
                "codes": [w.a.advocate["code"]],
                "customer_id": "new-friend",
                "subtotal": 7000,
                "currency": "EUR",
            },
        ),
        "own_data",
    ),
    "POST /v1/signups": Case(
        True,
        lambda w: (
            "POST",
            "/v1/signups",
            {"codes": [w.a.advocate["code"]], "customer_id": "new-friend"},
        ),
        "own_data",
        201,
    ),
    "POST /v1/orders": Case(
        True, lambda w: ("POST", "/v1/orders", _order(w, "ord-new", "new-friend")), "own_data", 201
    ),
    "POST /v1/orders/{order_id}/refunds": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/orders/{w.a.order_id(2)}/refunds",
            {"refund_id": "rf-1", "amount": 1000, "currency": "EUR"},
        ),
        "not_found",
        201,
    ),
    "POST /v1/orders/{order_id}/cancel": Case(
        True, lambda w: ("POST", f"/v1/orders/{w.a.order_id(2)}/cancel", {}), "not_found"
    ),
    # referrals and rewards
    "GET /v1/referrals": Case(True, lambda w: ("GET", "/v1/referrals", None), "own_rows"),
    "GET /v1/referrals/{referral_id}": Case(
        True,
        lambda w: ("GET", f"/v1/referrals/{w.a.orders[0]['referral']['id']}", None),
        "not_found",
    ),
    "POST /v1/referrals/{referral_id}/approve": Case(
        True,
        lambda w: ("POST", f"/v1/referrals/{w.a.orders[0]['referral']['id']}/approve", _ACTION),
        "not_found",
    ),
    "POST /v1/referrals/{referral_id}/reject": Case(
        True,
        lambda w: ("POST", f"/v1/referrals/{w.a.orders[1]['referral']['id']}/reject", _ACTION),
        "not_found",
    ),
    "POST /v1/advocates/{advocate_id}/reactivate": Case(
        True,
        lambda w: ("POST", f"/v1/advocates/{w.a.advocate['id']}/reactivate", _ACTION),
        "not_found",
    ),
    # coupons at checkout, and the pools of the shop's own codes
    "POST /v1/coupons/validate": Case(
        True,
        lambda w: (
            "POST",
            "/v1/coupons/validate",
            {"code": w.a.coupon, "currency": "EUR", "subtotal": 7000},
        ),
        "own_data",
    ),
    "POST /v1/coupons/{code}/redeem": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/coupons/{w.a.coupon}/redeem",
            {"order_id": "tenancy-redeem", "currency": "EUR"},
        ),
        "not_found",
    ),
    "POST /v1/programs/{program_id}/coupon-pools": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/programs/{w.a.program['id']}/coupon-pools",
            {"name": "Intruder", "currency": "EUR"},
        ),
        "not_found",
        201,
    ),
    "POST /v1/programs/{program_id}/experiments": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/programs/{w.a.program['id']}/experiments",
            {"name": "Foreign", "variants": [{"key": "a", "name": "A"}, {"key": "b", "name": "B"}]},
        ),
        "not_found",
        409,  # A's own key: its program already runs the world's experiment
    ),
    "GET /v1/programs/{program_id}/experiments/{experiment_id}": Case(
        True,
        lambda w: (
            "GET",
            f"/v1/programs/{w.a.program['id']}/experiments/{w.a.experiment['id']}",
            None,
        ),
        "not_found",
    ),
    "POST /v1/programs/{program_id}/experiments/{experiment_id}/end": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/programs/{w.a.program['id']}/experiments/{w.a.experiment['id']}/end",
            {"winner": "a"},
        ),
        "not_found",
    ),
    "PUT /v1/programs/{program_id}/holdout": Case(
        True,
        lambda w: ("PUT", f"/v1/programs/{w.a.program['id']}/holdout", {"share_percent": 20}),
        "not_found",
    ),
    "GET /v1/programs/{program_id}/holdout": Case(
        True, lambda w: ("GET", f"/v1/programs/{w.a.program['id']}/holdout", None), "not_found"
    ),
    "GET /v1/programs/{program_id}/coupon-pools": Case(
        True,
        lambda w: ("GET", f"/v1/programs/{w.a.program['id']}/coupon-pools", None),
        "not_found",
    ),
    "GET /v1/coupon-pools/{pool_id}": Case(
        True, lambda w: ("GET", f"/v1/coupon-pools/{w.a.coupon_pool['id']}", None), "not_found"
    ),
    "POST /v1/coupon-pools/{pool_id}/codes": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/coupon-pools/{w.a.coupon_pool['id']}/codes",
            {"codes": ["INTRUDER-1"]},
        ),
        "not_found",
    ),
    # The CSV body "INTRUDER-2" (a JSON string reads as one quoted CSV field).
    "POST /v1/coupon-pools/{pool_id}/codes.csv": Case(
        True,
        lambda w: ("POST", f"/v1/coupon-pools/{w.a.coupon_pool['id']}/codes.csv", "INTRUDER-2"),
        "not_found",
    ),
    # imports: a foreign key imports into its own merchant only (the JSON body is a file of
    # one JSON line), and finds no other merchant's import
    "POST /v1/imports": Case(
        True,
        lambda w: ("POST", "/v1/imports?kind=customers", {"customer_id": "intruder-3"}),
        "own_data",
        ok=202,
    ),
    "GET /v1/imports/{import_id}": Case(
        True, lambda w: ("GET", f"/v1/imports/{w.a.import_job['id']}", None), "not_found"
    ),
    "GET /v1/imports/{import_id}/errors": Case(
        True, lambda w: ("GET", f"/v1/imports/{w.a.import_job['id']}/errors", None), "not_found"
    ),
    "GET /v1/imports/{import_id}/errors.csv": Case(
        True,
        lambda w: ("GET", f"/v1/imports/{w.a.import_job['id']}/errors.csv", None),
        "not_found",
    ),
    # a customer's data rights: another merchant's customer is nobody here
    "GET /v1/customers/{customer_id}/export": Case(
        True,
        lambda w: ("GET", f"/v1/customers/{w.a.advocate['customer_id']}/export", None),
        "not_found",
    ),
    "POST /v1/customers/{customer_id}/erase": Case(
        True,
        lambda w: ("POST", f"/v1/customers/{w.a.advocate['customer_id']}/erase", None),
        "not_found",
        201,
    ),
    # payees: another merchant's customer id names nobody there (a PUT makes its own payee)
    "PUT /v1/payees/{customer_id}": Case(
        True,
        lambda w: (
            "PUT",
            f"/v1/payees/{w.a.advocate['customer_id']}",
            {"method": "email", "email": "someone@example.net"},
        ),
        "own_data",
    ),
    "GET /v1/payees/{customer_id}": Case(
        True, lambda w: ("GET", f"/v1/payees/{w.a.advocate['customer_id']}", None), "not_found"
    ),
    "GET /v1/payees/{customer_id}/totals": Case(
        True,
        lambda w: ("GET", f"/v1/payees/{w.a.advocate['customer_id']}/totals?year=2026", None),
        "own_data",
    ),
    "GET /v1/payee-totals": Case(
        True, lambda w: ("GET", f"/v1/payee-totals?year={datetime.now(UTC).year}", None), "own_data"
    ),
    # points and preferences: another merchant's program or redemption names nothing there
    "PUT /v1/programs/{program_id}/points": Case(
        True,
        lambda w: ("PUT", f"/v1/programs/{w.a.program['id']}/points", TENANCY_POINTS),
        "not_found",
    ),
    "GET /v1/programs/{program_id}/points": Case(
        True, lambda w: ("GET", f"/v1/programs/{w.a.program['id']}/points", None), "not_found"
    ),
    "GET /v1/customers/{customer_id}/points": Case(
        True,
        lambda w: (
            "GET",
            f"/v1/customers/{w.a.advocate['customer_id']}/points?program_id={w.a.program['id']}",
            None,
        ),
        "not_found",
    ),
    "POST /v1/customers/{customer_id}/points/redemptions": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/customers/{w.a.advocate['customer_id']}/points/redemptions",
            {"program_id": w.a.program["id"], "item": "tiny"},
        ),
        "not_found",
        201,
    ),
    "POST /v1/customers/{customer_id}/points/redemptions/{redemption_id}/cancel": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/customers/{w.a.advocate['customer_id']}/points/redemptions/"
            f"{w.a.redemption['id']}/cancel",
            None,
        ),
        "not_found",
    ),
    "PUT /v1/customers/{customer_id}/preferences": Case(
        True,
        lambda w: (
            "PUT",
            f"/v1/customers/{w.a.advocate['customer_id']}/preferences",
            {"channels": ["sms"], "topics": []},
        ),
        "own_data",
    ),
    "GET /v1/customers/{customer_id}/preferences": Case(
        True,
        lambda w: ("GET", f"/v1/customers/{w.a.advocate['customer_id']}/preferences", None),
        "not_found",
    ),
    # fraud policies
    "GET /v1/programs/{program_id}/fraud-policy": Case(
        True, lambda w: ("GET", f"/v1/programs/{w.a.program['id']}/fraud-policy", None), "not_found"
    ),
    "PUT /v1/programs/{program_id}/fraud-policy": Case(
        True,
        lambda w: (
            "PUT",
            f"/v1/programs/{w.a.program['id']}/fraud-policy",
            {"blocklist": {"customer_ids": ["friend-*"]}},
        ),
        "not_found",
    ),
    "POST /v1/programs/{program_id}/fraud-policy/backtest": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/programs/{w.a.program['id']}/fraud-policy/backtest",
            {
                "policy": {"same_ip": {"action": "block"}},
                "created_from": "2020-01-01T00:00:00Z",
                "created_before": "2100-01-01T00:00:00Z",
            },
        ),
        "not_found",
    ),
    "GET /v1/rewards": Case(True, lambda w: ("GET", "/v1/rewards", None), "own_rows"),
    "GET /v1/rewards/{reward_id}": Case(
        True, lambda w: ("GET", f"/v1/rewards/{w.a.rewards['adv1']}", None), "not_found"
    ),
    "POST /v1/rewards/{reward_id}/approve": Case(
        True,
        lambda w: ("POST", f"/v1/rewards/{w.a.rewards['fr1']}/approve", _ACTION),
        "not_found",
    ),
    "POST /v1/rewards/{reward_id}/reverse": Case(
        True,
        lambda w: ("POST", f"/v1/rewards/{w.a.rewards['adv2']}/reverse", _ACTION),
        "not_found",
    ),
    "POST /v1/rewards/{reward_id}/reinstate": Case(
        True,
        lambda w: ("POST", f"/v1/rewards/{w.a.rewards['fr2']}/reinstate", _ACTION),
        "not_found",
    ),
    "GET /v1/events": Case(True, lambda w: ("GET", "/v1/events?limit=100", None), "own_rows"),
    # analytics: another merchant's program is unknown to the caller
    "GET /v1/analytics/{report}": Case(
        True,
        lambda w: ("GET", f"/v1/analytics/funnel?program_id={w.a.program['id']}", None),
        "not_found",
    ),
    # stories
    "POST /v1/stories": Case(
        True,
        lambda w: (
            "POST",
            "/v1/stories",
            {"advocate_id": w.a.advocate["id"], "reward_id": w.a.rewards["adv2"]},
        ),
        "not_found",
        201,
    ),
    "GET /v1/stories": Case(True, lambda w: ("GET", "/v1/stories", None), "own_rows"),
    "GET /v1/stories/{story_id}": Case(
        True, lambda w: ("GET", f"/v1/stories/{w.a.story['id']}", None), "not_found"
    ),
    "PATCH /v1/stories/{story_id}": Case(
        True,
        lambda w: (
            "PATCH",
            f"/v1/stories/{w.a.story['id']}",
            {"status": "published", "text": "Hijacked"},
        ),
        "not_found",
    ),
    # the merchant and its keys
    "GET /v1/merchant": Case(False, lambda w: ("GET", "/v1/merchant", None), "own_data"),
    "PATCH /v1/merchant": Case(
        True,
        lambda w: (
            "PATCH",
            "/v1/merchant",
            {"time_zone": "Pacific/Kiritimati", "payout_minimums": {"EUR": 99}},
        ),
        "own_data",
    ),
    "GET /v1/keys": Case(True, lambda w: ("GET", "/v1/keys?limit=100", None), "own_rows"),
    "POST /v1/keys/{key_id}/revoke": Case(
        True,
        lambda w: ("POST", f"/v1/keys/{w.a.keys['publishable']}/revoke", None),
        "not_found",
    ),
    "POST /v1/keys": Case(
        True,
        lambda w: ("POST", "/v1/keys", {"label": "made by", "scopes": ["read"]}),
        "own_data",
        201,
    ),
    "POST /v1/keys/{key_id}/roll": Case(
        True, lambda w: ("POST", f"/v1/keys/{w.a.keys['publishable']}/roll", None), "not_found"
    ),
    "GET /v1/audit-log": Case(True, lambda w: ("GET", "/v1/audit-log?limit=100", None), "own_rows"),
    # payouts
    "POST /v1/payout-batches": Case(
        True, lambda w: ("POST", "/v1/payout-batches", {"currency": "EUR"}), "own_data", 201
    ),
    "GET /v1/payout-batches": Case(True, lambda w: ("GET", "/v1/payout-batches", None), "own_rows"),
    "GET /v1/payout-batches/{batch_id}": Case(
        True, lambda w: ("GET", f"/v1/payout-batches/{w.a.batch['id']}", None), "not_found"
    ),
    "GET /v1/payout-batches/{batch_id}/lines": Case(
        True,
        lambda w: ("GET", f"/v1/payout-batches/{w.a.batch['id']}/lines", None),
        "not_found",
    ),
    "GET /v1/payout-batches/{batch_id}/payouts.csv": Case(
        True,
        lambda w: ("GET", f"/v1/payout-batches/{w.a.batch['id']}/payouts.csv", None),
        "not_found",
    ),
    "GET /v1/payout-batches/{batch_id}/paypal": Case(
        True,
        lambda w: ("GET", f"/v1/payout-batches/{w.a.batch['id']}/paypal", None),
        "not_found",
    ),
    "GET /v1/payout-batches/{batch_id}/bank-transfers": Case(
        True,
        lambda w: ("GET", f"/v1/payout-batches/{w.a.batch['id']}/bank-transfers", None),
        "not_found",
    ),
    "GET /v1/payout-batches/{batch_id}/rewards.csv": Case(
        True,
        lambda w: ("GET", f"/v1/payout-batches/{w.a.batch['id']}/rewards.csv", None),
        "not_found",
    ),
    "POST /v1/payout-batches/{batch_id}/export": Case(
        True,
        lambda w: ("POST", f"/v1/payout-batches/{w.a.batch['id']}/export", None),
        "not_found",
    ),
    "POST /v1/payout-batches/{batch_id}/mark-paid": Case(
        True,
        lambda w: ("POST", f"/v1/payout-batches/{w.a.batch['id']}/mark-paid", None),
        "not_found",
    ),
    "POST /v1/payout-batches/{batch_id}/cancel": Case(
        True,
        lambda w: ("POST", f"/v1/payout-batches/{w.a.batch['id']}/cancel", None),
        "not_found",
    ),
    "POST /v1/payout-batches/{batch_id}/lines/{line_id}/fail": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/payout-batches/{w.a.batch['id']}/lines/{w.a.line_id}/fail",
            {"reason": "account closed"},
        ),
        "not_found",
    ),
    # the books: another merchant's program is unknown to the caller
    "GET /v1/ledger/balances": Case(
        True,
        lambda w: ("GET", f"/v1/ledger/balances?program_id={w.a.program['id']}", None),
        "not_found",
    ),
    "GET /v1/ledger/balances.csv": Case(
        True,
        lambda w: ("GET", f"/v1/ledger/balances.csv?program_id={w.a.program['id']}", None),
        "not_found",
    ),
    "GET /v1/ledger/entries.csv": Case(
        True,
        lambda w: ("GET", f"/v1/ledger/entries.csv?program_id={w.a.program['id']}", None),
        "not_found",
    ),
    # webhooks
    "POST /v1/webhook-endpoints": Case(
        True,
        lambda w: ("POST", "/v1/webhook-endpoints", {"url": "https://caller.example/hooks"}),
        "own_data",
        201,
    ),
    "GET /v1/webhook-endpoints": Case(
        True, lambda w: ("GET", "/v1/webhook-endpoints", None), "own_rows"
    ),
    "GET /v1/webhook-endpoints/{endpoint_id}": Case(
        True, lambda w: ("GET", f"/v1/webhook-endpoints/{w.a.webhook['id']}", None), "not_found"
    ),
    "PATCH /v1/webhook-endpoints/{endpoint_id}": Case(
        True,
        lambda w: (
            "PATCH",
            f"/v1/webhook-endpoints/{w.a.webhook['id']}",
            {"url": "https://evil.example/steal", "enabled": False},
        ),
        "not_found",
    ),
    "DELETE /v1/webhook-endpoints/{endpoint_id}": Case(
        True,
        lambda w: ("DELETE", f"/v1/webhook-endpoints/{w.a.webhook['id']}", None),
        "not_found",
    ),
    "POST /v1/webhook-endpoints/{endpoint_id}/rotate-secret": Case(
        True,
        lambda w: ("POST", f"/v1/webhook-endpoints/{w.a.webhook['id']}/rotate-secret", None),
        "not_found",
    ),
    "POST /v1/webhook-endpoints/{endpoint_id}/test": Case(
        True,
        lambda w: ("POST", f"/v1/webhook-endpoints/{w.a.webhook['id']}/test", None),
        "not_found",
    ),
    "POST /v1/webhook-endpoints/{endpoint_id}/recover": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/webhook-endpoints/{w.a.webhook['id']}/recover",
            {"since": "2020-01-01T00:00:00Z"},
        ),
        "not_found",
    ),
    "POST /v1/webhook-endpoints/{endpoint_id}/events/{event_id}/resend": Case(
        True,
        lambda w: (
            "POST",
            f"/v1/webhook-endpoints/{w.a.webhook['id']}/events/{w.a.event_ids[0]}/resend",
            None,
        ),
        "not_found",
    ),
    "GET /v1/webhook-endpoints/{endpoint_id}/attempts": Case(
        True,
        lambda w: ("GET", f"/v1/webhook-endpoints/{w.a.webhook['id']}/attempts", None),
        "not_found",
    ),
    "GET /v1/events/{event_id}/webhook-attempts": Case(
        True,
        lambda w: ("GET", f"/v1/events/{w.a.event_ids[0]}/webhook-attempts", None),
        "not_found",
    ),
}
ENDPOINTS = sorted(CASES)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


_SNAPSHOT_URLS: list[Callable[[World], str]] = [
    lambda w: f"/v1/programs/{w.a.program['id']}",
    lambda w: f"/v1/advocates/{w.a.advocate['id']}",
    lambda w: f"/v1/codes/{w.vanity}",
    lambda w: f"/v1/payout-batches/{w.a.batch['id']}",
    lambda w: f"/v1/payout-batches/{w.a.batch['id']}/lines",
    lambda w: f"/v1/stories/{w.a.story['id']}",
    lambda w: "/v1/merchant",
    lambda w: f"/v1/webhook-endpoints/{w.a.webhook['id']}",
    lambda w: f"/v1/imports/{w.a.import_job['id']}",
    lambda w: f"/v1/webhook-endpoints/{w.a.webhook['id']}/attempts?limit=100",
    *(
        (lambda w, kind=kind: f"/v1/{kind}?limit=100")
        for kind in (
            "programs",
            "advocates",
            "referrals",
            "rewards",
            "payout-batches",
            "events",
            "stories",
            "keys",
            "webhook-endpoints",
            "audit-log",
            "imports",
        )
    ),
]


async def snapshot(client, world: World) -> dict[str, Any]:
    """Everything merchant A can see, read with A's own key."""
    views = {}
    for make_url in _SNAPSHOT_URLS:
        url = make_url(world)
        response = await client.get(url, headers=world.a.tenant.auth)
        assert response.status_code == 200, (url, response.text)
        views[url] = response.json()
        if url.startswith("/v1/keys"):  # a key's last use changes with every call it makes
            for key in views[url]["data"]:
                key.pop("last_used_at")
    return views


async def call(client, world: World, endpoint: str, headers: dict[str, str]):
    method, url, body = CASES[endpoint].request(world)
    response = await client.request(method, url, json=body, headers=headers)
    return response, f"{url} {body}"


def assert_problem(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    if code is not None:
        assert problem["code"] == code, problem
    return problem


def assert_no_leak(response, world: World, request_text: str, who: str = "") -> None:
    for marker in world.a.markers:
        if marker.lower() in request_text.lower():
            continue  # the caller sent it; echoing it back reveals nothing
        assert marker not in response.text, f"{who}: response reveals {marker!r}: {response.text}"


async def open_transactions(db) -> int:
    """Connections of the app left idle inside a transaction (a leaked pooled connection)."""
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
    )


def test_every_v1_endpoint_has_a_tenancy_case():
    served = v1_endpoints()
    missing = served - set(CASES)
    stale = set(CASES) - served
    assert not missing, f"add a tenancy case to tests/test_tenancy.py CASES for: {missing}"
    assert not stale, f"CASES names endpoints the app no longer serves: {stale}"


def test_cases_agree_with_the_documented_security():
    document = _APP.openapi_schema.to_schema()
    for endpoint, case in CASES.items():
        method, path = endpoint.split(" ", 1)
        security = document["paths"][path][method.lower()].get("security")
        documented = {name for item in security or [] for name in item}
        expected = {"secretKey"} if case.secret else {"secretKey", "publishableKey"}
        assert documented == expected, endpoint


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_endpoint_tenancy(client, world, db, endpoint):
    case = CASES[endpoint]
    a = world.a.tenant
    before = await snapshot(client, world)

    # 1. Other tenants: another merchant, the same account's live mode and, on public calls,
    #    another merchant's publishable key. None reads or changes A's data or names it.
    foreign = {"other merchant": world.b.tenant.secret_key, "live mode": a.live_secret_key}
    if not case.secret:
        foreign["other publishable key"] = world.b.tenant.publishable_key
    for who, key in foreign.items():
        response, request_text = await call(client, world, endpoint, bearer(key))
        if case.foreign == "not_found":
            assert_problem(response, 404)
        elif case.foreign == "own_rows":
            assert response.status_code in (200, 404), (who, response.text)
        elif case.foreign == "own_data":
            assert response.status_code < 500, (who, response.text)
        else:
            raise AssertionError(f"unknown foreign expectation {case.foreign}")
        assert_no_leak(response, world, request_text, who)
        assert await snapshot(client, world) == before, f"{who} changed merchant A's data"
        for kind in ("referrals", "rewards", "payout-batches", "events"):
            # What the foreign call left in the caller's own tenant names nothing of A.
            inspect = world.b.tenant.secret_key if key.startswith("pk_") else key
            own = await client.get(f"/v1/{kind}?limit=100", headers=bearer(inspect))
            assert own.status_code == 200, own.text
            assert_no_leak(own, world, "", f"{who}, then its {kind}")

    # 2. Refused keys: problem+json, nothing changed, no database connection held.
    for headers in ({}, {"Authorization": ""}, bearer(""), {"Authorization": "Basic dXNlcjpwdw=="}):
        response, _ = await call(client, world, endpoint, headers)
        assert_problem(response, 401, "missing_api_key")
    for key in ("garbage", "sk_test_" + "x" * 32, a.secret_key + "x", "pk_" * 300):
        response, _ = await call(client, world, endpoint, bearer(key))
        assert_problem(response, 401, "invalid_api_key")
    response, _ = await call(client, world, endpoint, a.public_auth)
    if case.secret:
        assert_problem(response, 403, "secret_key_required")
    else:
        assert response.status_code == case.ok, response.text
    assert await snapshot(client, world) == before, "a refused key changed merchant A's data"
    assert await open_transactions(db) == 0, "a refused request left a transaction open"

    # 3. A's own key works (so the 404s above were about the key, not the request) ...
    response, _ = await call(client, world, endpoint, a.auth)
    assert response.status_code == case.ok, response.text

    # 4. ... until it is revoked.
    keys = [a.secret_key] + ([] if case.secret else [a.publishable_key])
    for key in keys:
        revoked = await db.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1",
            hashlib.sha256(key.encode()).digest(),
        )
        assert revoked == "UPDATE 1"
        response, _ = await call(client, world, endpoint, bearer(key))
        assert_problem(response, 401, "invalid_api_key")


LIST_PATHS = sorted({e.split(" ", 1)[1] for e in ENDPOINTS if CASES[e].foreign == "own_rows"})


@pytest.mark.parametrize("path", LIST_PATHS)
async def test_lists_return_only_own_rows(client, world, path):
    async def ids(key: str) -> set[str]:
        response = await client.get(path, params={"limit": 100}, headers=bearer(key))
        assert response.status_code == 200, response.text
        return {row["id"] for row in response.json()["data"]}

    kind = path.rsplit("/", 1)[1]
    assert kind in world.a.ids, f"add the expected rows of {path} to Side.ids"
    assert world.a.ids[kind], f"the world has no {kind} for merchant A"
    assert await ids(world.a.tenant.secret_key) == world.a.ids[kind]
    assert await ids(world.b.tenant.secret_key) == world.b.ids[kind]
    # The live twin is another tenant: it sees its own rows only (its own key, for keys).
    live = world.a.live_key_ids if kind == "keys" else set()
    assert await ids(world.a.tenant.live_secret_key) == live


async def test_filters_naming_another_merchants_rows_return_nothing(client, world):
    b = world.b.tenant.auth
    for path, params in (
        ("/v1/advocates", {"program_id": world.a.program["id"]}),
        ("/v1/programs", {"starting_after": world.a.program["id"]}),
        ("/v1/advocates", {"starting_after": world.a.advocate["id"]}),
        ("/v1/referrals", {"advocate_id": world.a.advocate["id"]}),
        ("/v1/rewards", {"advocate_id": world.a.advocate["id"]}),
        ("/v1/rewards", {"starting_after": world.a.rewards["adv1"]}),
        ("/v1/payout-batches", {"starting_after": world.a.batch["id"]}),
        ("/v1/events", {"starting_after": world.a.event_ids[0]}),
        ("/v1/stories", {"advocate_id": world.a.advocate["id"]}),
        ("/v1/stories", {"program_id": world.a.program["id"]}),
        ("/v1/stories", {"starting_after": world.a.story["id"]}),
    ):
        response = await client.get(path, params=params, headers=b)
        assert response.status_code in (200, 404), (path, params, response.text)
        if response.status_code == 200:
            got = {row["id"] for row in response.json()["data"]}
            assert not got & {i for ids in world.a.ids.values() for i in ids}, (path, params)
        assert_no_leak(response, world, str(params), f"{path} {params}")


async def test_codes_are_one_namespace_but_answer_only_their_merchant(client, world):
    """A vanity code taken by A cannot be taken by B, and B learns nothing of A from trying."""
    response = await client.post(
        f"/v1/advocates/{world.b.advocate['id']}/codes",
        json={"code": world.vanity.lower()},
        headers=world.b.tenant.auth,
    )
    assert_problem(response, 409, "code_taken")
    assert_no_leak(response, world, world.vanity.lower())


async def test_idempotency_keys_are_per_merchant(client, world):
    """The same Idempotency-Key from two merchants: each gets its own effect and answer."""
    key = {"Idempotency-Key": "shared-key-1"}
    body = {"currency": "EUR"}
    first = await client.post(
        "/v1/payout-batches", json=body, headers={**world.a.tenant.auth, **key}
    )
    assert first.status_code == 201, first.text
    second = await client.post(
        "/v1/payout-batches", json=body, headers={**world.b.tenant.auth, **key}
    )
    assert second.status_code == 201, second.text
    assert second.headers.get("idempotent-replayed") is None
    assert second.json()["id"] != first.json()["id"]
    assert_no_leak(second, world, "")
