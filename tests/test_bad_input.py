"""Input the server must refuse cleanly (issue 11, "Server errors and loose input"): bodies
that are not UTF-8, numbers the database would not hold, values of the wrong JSON type,
timestamps and IPs that cannot be true, a database that is away, and Idempotency-Keys that
are not printable ASCII. Each answers RFC 9457 problem+json with a stable code, never a 500."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import msgspec
import pytest
from litestar import Litestar, get
from litestar.response import Stream
from litestar.testing import AsyncTestClient

from referral.app import create_app
from referral.lib import errors
from tests.conftest import make_settings
from tests.factories import create_advocate, create_program, program_body
from tests.lib.test_errors import assert_problem

# Latin-1 where UTF-8 belongs: in a key, in a value (after a field the route does not
# know: still "not UTF-8", not "unknown field"), in a bare string, alone.
NOT_UTF8 = [b'{"caf\xe9": 1}', b'{"name": "\xff\xfe"}', b'"\xe9t\xe9"', b"\xff"]


def body_routes(app) -> list[tuple[str, str, bool]]:
    """(method, path template, whether it takes a key) of every route whose handler takes a
    JSON body."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            params = handler.parsed_fn_signature.parameters
            if "data" in params:
                keyed = bool({"caller", "reader", "once"} & set(params))
                for method in sorted(handler.http_methods):
                    path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
                    found.append((method, path, keyed))
    return sorted(found)


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), f"{m.group(1)}_x"), path)


async def raw_asgi(client, method: str, path: str, headers: list[tuple[bytes, bytes]], body=b""):
    """One request as raw ASGI on the app's loop: header bytes an HTTP client would refuse to
    send still reach the app this way (a proxy or another server may pass them)."""
    messages: list[dict[str, Any]] = []

    async def run() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # no disconnect until the app is done
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver.local"), *headers],
            "client": ("203.0.113.9", 1234),
            "server": ("testserver.local", 80),
        }
        await client.app(scope, receive, send)

    await asyncio.to_thread(client.blocking_portal.call, run)
    start = next(m for m in messages if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], dict((k.decode(), v.decode()) for k, v in start["headers"]), content


class TestBodiesThatAreNotUtf8:
    async def test_every_json_route_answers_400_and_asks_for_its_key_first(self, client, tenant):
        """Without a key, a route that needs one says so before it reads the body."""
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        ids = {"program_id": program["id"], "advocate_id": advocate["id"]}
        routes = body_routes(client.app)
        assert len(routes) > 20, routes  # the walk finds the API's routes
        for method, template, keyed in routes:
            for headers in ({**tenant.auth}, {}):
                for body in NOT_UTF8:
                    response = await client.request(
                        method,
                        fill(template, ids),
                        content=body,
                        headers={**headers, "content-type": "application/json"},
                    )
                    if keyed and not headers:
                        assert_problem(response, 401, "missing_api_key")
                        continue
                    problem = assert_problem(response, 400, "malformed_json")
                    assert "UTF-8" in problem["detail"], (method, template, problem)

    async def test_the_share_page_forms_refuse_it_without_a_500(self, client, tenant):
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        created = await client.post(
            f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
        )
        page = urlsplit(created.json()["url"]).path
        for form in ("contact", "stories"):
            for content_type in ("application/x-www-form-urlencoded", "application/json"):
                response = await client.post(
                    f"{page}/{form}",
                    content=b"contact_preference=\xff&text=\xfe&reward_id=\xe9",
                    headers={"content-type": content_type},
                )
                assert 400 <= response.status_code < 500, (form, response.text)


class TestStrictTypes:
    """Money, counts and timestamps accept exactly their documented JSON type."""

    async def test_order_fields_are_not_coerced(self, client, tenant):
        now = datetime.now(UTC).isoformat()
        good = {
            "order_id": "ord-1",
            "customer_id": "cus-9",
            "subtotal": 5000,
            "total": 5000,
            "currency": "EUR",
            "occurred_at": now,
        }
        for field, value in (
            ("subtotal", "5000"),
            ("total", "5000"),
            ("subtotal", 5000.5),  # 5000.0 is JSON Schema's integer 5000, a fraction is not
            ("occurred_at", 1764582000),
            ("occurred_at", 1764582000.5),
            ("is_import", "true"),
            ("customer_is_new", 1),
            ("line_items", [{"sku": "a", "quantity": "2"}]),
            ("line_items", [{"sku": "a", "amount": "100"}]),
        ):
            response = await client.post(
                "/v1/orders", json={**good, field: value}, headers=tenant.auth
            )
            assert response.status_code == 400, (field, value, response.text)
            problem = assert_problem(response, 400, "validation_error")
            key = problem["errors"][0]["key"]
            assert key.startswith(field), (field, value, problem)
            assert field in problem["detail"]
        response = await client.get("/v1/orders/ord-1", headers=tenant.auth)
        assert response.status_code == 404  # nothing was recorded under the loose types
        assert (await client.post("/v1/orders", json=good, headers=tenant.auth)).status_code == 201

    async def test_the_siblings_are_strict_too(self, client, tenant):
        program = await create_program(client, tenant)
        for url, body, field in (
            ("/v1/checkout/quote", {"subtotal": "5000", "currency": "EUR"}, "subtotal"),
            ("/v1/signups", {"customer_id": "c", "occurred_at": 1764582000}, "occurred_at"),
            (
                "/v1/orders/o/refunds",
                {"refund_id": "r", "amount": "1", "currency": "EUR"},
                "amount",
            ),
            ("/v1/payout-batches", {"currency": "EUR", "minimum": "100"}, "minimum"),
            ("/v1/payout-batches", {"currency": "EUR", "cutoff": 1764582000}, "cutoff"),
            ("/v1/programs", program_body(hold_days="14"), "hold_days"),
            (
                f"/v1/programs/{program['id']}/fraud-policy/backtest",
                {"policy": {}, "created_from": 0, "created_before": "2030-01-01T00:00:00Z"},
                "created_from",
            ),
        ):
            response = await client.post(url, json=body, headers=tenant.auth)
            problem = assert_problem(response, 400, "validation_error")
            assert problem["errors"][0]["key"] == field, (url, problem)

    async def test_missing_and_unknown_fields_are_named(self, client, tenant):
        body = {"order_id": "o", "subtotal": 1, "total": 1, "currency": "EUR"}
        response = await client.post("/v1/orders", json=body, headers=tenant.auth)
        problem = assert_problem(response, 400, "validation_error")
        assert problem["errors"][0]["key"] == "occurred_at", problem
        nested = {**body, "occurred_at": "2025-01-01T00:00:00Z", "line_items": [{"amount": 1}]}
        response = await client.post("/v1/orders", json=nested, headers=tenant.auth)
        problem = assert_problem(response, 400, "validation_error")
        assert problem["errors"][0]["key"] == "line_items[0].sku", problem
        unknown = {**body, "occurred_at": "2025-01-01T00:00:00Z", "shipping_address": {"x": 1}}
        response = await client.post("/v1/orders", json=unknown, headers=tenant.auth)
        problem = assert_problem(response, 400, "validation_error")
        assert problem["errors"][0]["key"] == "shipping_address.x", problem
        assert "unknown field" in problem["detail"]


class TestValuesThatCannotBeTrue:
    async def test_a_time_before_2000_is_refused_naming_the_field(self, client, tenant):
        early = "1999-12-31T23:59:59Z"
        base = {"customer_id": "c", "subtotal": 1, "total": 1, "currency": "EUR"}
        for url, body in (
            ("/v1/orders", {**base, "order_id": "o", "occurred_at": early}),
            ("/v1/orders", {**base, "order_id": "o", "occurred_at": "1970-01-21T10:23:02Z"}),
            ("/v1/signups", {"customer_id": "c", "occurred_at": early}),
        ):
            response = await client.post(url, json=body, headers=tenant.auth)
            problem = assert_problem(response, 422, "occurred_too_early")
            assert "occurred_at" in problem["detail"]
        order = {**base, "order_id": "o", "occurred_at": "2000-01-01T00:00:00Z"}
        assert (await client.post("/v1/orders", json=order, headers=tenant.auth)).status_code == 201
        response = await client.post(
            "/v1/orders/o/refunds",
            json={"refund_id": "r", "amount": 1, "currency": "EUR", "occurred_at": early},
            headers=tenant.auth,
        )
        assert_problem(response, 422, "occurred_too_early")

    async def test_an_ip_that_is_not_an_ip_is_refused_everywhere(self, client, tenant):
        program = await create_program(client, tenant)
        now = datetime.now(UTC).isoformat()
        shopper = {"customer_id": "c"}
        for url, body in (
            ("/v1/checkout/quote", {**shopper, "subtotal": 1, "currency": "EUR"}),
            ("/v1/signups", {**shopper, "occurred_at": now}),
            (
                "/v1/orders",
                {
                    **shopper,
                    "order_id": "o",
                    "subtotal": 1,
                    "total": 1,
                    "currency": "EUR",
                    "occurred_at": now,
                },
            ),
            ("/v1/advocates", {"program_id": program["id"], "customer_id": "a"}),
        ):
            for ip in ("not-an-ip", "300.1.2.3", "10.0.0.0/8", "1.2.3"):
                response = await client.post(url, json={**body, "ip": ip}, headers=tenant.auth)
                problem = assert_problem(response, 422, "invalid_ip")
                assert "ip" in problem["detail"], (url, ip, problem)
        response = await client.post(
            "/v1/advocates",
            json={"program_id": program["id"], "customer_id": "a", "ip": "2001:db8::1"},
            headers=tenant.auth,
        )
        assert response.status_code == 201, response.text
        assert (await client.get("/v1/advocates", headers=tenant.auth)).json()["data"]


class TestNumbersTheDatabaseHolds:
    async def test_a_payout_minimum_above_int4_makes_a_batch(self, client, tenant):
        for minimum in (2**31, 10**13):
            response = await client.post(
                "/v1/payout-batches",
                json={"currency": "EUR", "minimum": minimum},
                headers=tenant.auth,
            )
            assert response.status_code == 201, response.text
            assert response.json()["minimum"] == minimum

    async def test_a_value_the_driver_cannot_encode_is_a_422(self, client, tenant, db):
        """Times beyond PostgreSQL's range (year 1 at +14:00 is year 0 in UTC): asyncpg's
        DataError is mapped once, and its text (which quotes the parameter) is not shown."""
        far = "0001-01-01T00:00:00+14:00"
        program = await create_program(client, tenant)
        for response in (
            await client.get("/v1/programs", params={"created_from": far}, headers=tenant.auth),
            await client.post(
                "/v1/payout-batches", json={"currency": "EUR", "cutoff": far}, headers=tenant.auth
            ),
            await client.post(
                f"/v1/programs/{program['id']}/fraud-policy/backtest",
                json={
                    "policy": {},
                    "created_from": far,
                    "created_before": "2030-01-01T00:00:00Z",
                },
                headers=tenant.auth,
            ),
        ):
            problem = assert_problem(response, 422, "value_out_of_range")
            assert "$" not in problem["detail"] and "0001" not in problem["detail"]


class TestIdempotencyKeyHeader:
    @pytest.mark.parametrize(
        "key",
        [b"a\x01b", b"tab\tinside", b"\x7f", "caf\u00e9".encode(), b"x" * 256, b"a\x00b"],
    )
    async def test_a_key_that_is_not_printable_ascii_is_a_problem(self, client, tenant, db, key):
        body = msgspec.json.encode(program_body())
        status, headers, content = await raw_asgi(
            client,
            "POST",
            "/v1/programs",
            [
                (b"authorization", tenant.auth["Authorization"].encode()),
                (b"content-type", b"application/json"),
                (b"idempotency-key", key),
            ],
            body,
        )
        assert status == 422, content
        assert headers["content-type"].startswith("application/problem+json")
        problem = msgspec.json.decode(content)
        assert problem["code"] == "invalid_idempotency_key"
        assert "Idempotency-Key" in problem["detail"]
        assert await db.fetchval("SELECT count(*) FROM programs") == 0

    async def test_printable_keys_still_work(self, client, tenant):
        for key in ("a", "order 42 / retry:1", "~" * 255):
            headers = {**tenant.auth, "Idempotency-Key": key}
            first = await client.post("/v1/programs", json=program_body(), headers=headers)
            again = await client.post("/v1/programs", json=program_body(), headers=headers)
            assert first.status_code == again.status_code == 201, first.text
            assert again.json()["id"] == first.json()["id"]


# --- the database away -------------------------------------------------------------------


class DatabaseDoor:
    """A TCP port in front of the test's PostgreSQL that the test can shut: while it is
    shut, new connections are refused and open ones are cut, as when the database server
    stops or the network drops. It runs on its own thread and event loop."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        if socket_dir.startswith("/"):
            sockets = [p for p in Path(socket_dir).glob(".s.PGSQL.*") if p.suffix != ".lock"]
            self._upstream = lambda: asyncio.open_unix_connection(str(sockets[0]))
        else:
            host, port = parts.hostname or "127.0.0.1", parts.port or 5432
            self._upstream = lambda: asyncio.open_connection(host, port)
        self._parts = parts
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def url(self) -> str:
        user = self._parts.username or "postgres"
        auth = f"{user}:{self._parts.password}" if self._parts.password else user
        return urlunsplit(("postgresql", f"{auth}@127.0.0.1:{self.port}", self._parts.path, "", ""))

    def _call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def open(self) -> None:
        self._call(self._open())

    def shut(self) -> None:
        self._call(self._shut())

    def close(self) -> None:
        self.shut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._upstream()
        self._writers.update((writer, up_writer))

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture
def door(database_url: str):
    door = DatabaseDoor(database_url)
    door.open()
    yield door
    door.close()


def assert_unavailable(response) -> None:
    problem = assert_problem(response, 503, "database_unavailable")
    assert int(response.headers["retry-after"]) > 0, response.headers
    assert "retry" in problem["detail"]


async def test_the_api_answers_503_while_the_database_is_unreachable(door, tenant):
    app = create_app(make_settings(door.url(), db_pool_min=1, db_pool_max=4))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert (await client.get("/v1/programs", headers=tenant.auth)).status_code == 200
        door.shut()
        # The first call meets a pooled connection that was cut, the next ones a refused
        # connect; a key not yet cached needs the database to be checked at all.
        for _ in range(3):
            assert_unavailable(await client.get("/v1/programs", headers=tenant.auth))
        assert_unavailable(
            await client.post("/v1/programs", json=program_body(), headers=tenant.auth)
        )
        assert_unavailable(await client.get("/v1/programs", headers=tenant.public_auth))
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and int(ready.headers["retry-after"]) > 0
        # The public redirect looks its code up too (no cache in tests): the same answer.
        redirect = await client.get("/r/ABCDEFG", follow_redirects=False)
        assert redirect.status_code == 503, redirect.text
        door.open()
        # Back: the pool connects again, and nothing was written while it was away.
        response = await client.get("/v1/programs", headers=tenant.auth)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == []
        created = await client.post("/v1/programs", json=program_body(), headers=tenant.auth)
        assert created.status_code == 201, created.text


# --- the last line -----------------------------------------------------------------------


async def _call(app, path: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    try:
        await errors.problem_guard(app)(scope, receive, send)
    except Exception as exc:
        messages.append({"type": "raised", "error": exc})
    return messages


async def test_an_exception_that_escapes_every_handler_is_still_problem_json():
    """problem_guard behind Litestar's exception handlers: an error raised while rendering a
    problem (here a handler that fails itself) would reach the server as a bare 500."""

    def failing_handler(request, exc):
        raise LookupError("the problem could not be rendered")

    @get("/fails")
    async def fails() -> None:
        raise KeyError("an error the map does not know")

    async def chunks():
        yield b"first part"
        raise KeyError("after the response started")

    @get("/streams")
    async def streams() -> Stream:
        return Stream(chunks())

    app = Litestar([fails, streams], exception_handlers={Exception: failing_handler})
    messages = await _call(app, "/fails")
    assert messages[0]["status"] == 500
    assert dict(messages[0]["headers"])[b"content-type"] == b"application/problem+json"
    problem = msgspec.json.decode(messages[1]["body"])
    assert problem["type"] == errors.PROBLEM_BASE + "internal_error" and problem["status"] == 500

    # After the response started nothing more is said: no second start, the error goes on
    # to the server, which ends the connection.
    messages = await _call(app, "/streams")
    assert [m["type"] for m in messages].count("http.response.start") == 1
    assert messages[-1]["type"] == "raised"
