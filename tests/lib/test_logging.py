"""What reaches the log: request lines and error lines never carry an email, an API key, a
share or click token or an IP address, whatever route (or none) the request took; ordinary
ids still do. Real requests through the app, logs configured as the app configures them."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
import structlog

from referral.lib.logging import configure_logging, loggable_path, redact_text
from tests.factories import create_advocate, create_program

EMAIL = "a.person@example.com"


@pytest.fixture
def json_logs():
    configure_logging("json", "debug")
    yield
    structlog.reset_defaults()


def _raw_request(client, raw_path: bytes, method: str = "GET") -> int:
    """Send `raw_path` exactly as given (an HTTP client would normalise `/./` away) as a
    server hands it to the app: `path` percent-decoded once, `raw_path` as sent."""
    path, _, query = raw_path.partition(b"?")
    messages: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path.decode("latin-1")),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver.local"), (b"user-agent", b"curl/8.5.0")],
        "client": ("203.0.113.9", 40000),
        "server": ("testserver.local", 80),
    }

    async def call():
        await client.app(scope, receive, send)

    client.blocking_portal.call(call)
    return next(m["status"] for m in messages if m["type"] == "http.response.start")


def _request_lines(out: str) -> list[dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


async def _secrets(client, tenant) -> dict[str, str]:
    program = await create_program(client, tenant)
    advocate = await create_advocate(client, tenant, program["id"])
    response = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    share_token = response.json()["url"].rsplit("/", 1)[1]
    link = await client.get(f"/r/{advocate['code']}", follow_redirects=False)
    click_token = link.headers["location"].split("ref_token=")[1].split("&")[0]
    return {
        "share_token": share_token,
        "click_token": click_token,
        "secret_key": tenant.secret_key,
        "publishable_key": tenant.publishable_key,
        "email": EMAIL,
    }


class TestRequestLines:
    async def test_secrets_in_unrouted_and_odd_paths_never_reach_the_log(
        self, client, tenant, capfd, json_logs
    ):
        s = await _secrets(client, tenant)
        share, click = s["share_token"], s["click_token"]
        sk, pk = s["secret_key"], s["publishable_key"]
        at_encoded = EMAIL.replace("@", "%40")
        paths = [
            f"/SHARE/{share}",
            f"/./share/{share}",
            f"//share/{share}/",
            f"/Share/{share}/contact",
            f"/share/{share}?done=contact",
            f"/x/share/{share}",
            f"/v1/orders/{EMAIL}/cancel",
            f"/v1/orders/{at_encoded}/cancel",
            f"/V1/ORDERS/{EMAIL.upper().replace('@', '%2540')}/cancel/",
            f"/v1/orders/ord_123/cancel?email={at_encoded}",
            f"/v1/customers/{EMAIL}?token={share}",
            f"/v1/codes/{sk}",
            f"/v1/keys/{pk}/",
            f"/landing?ref_token={click}&ch=qr",
            "/v1/ORDERS/%61.person%40example.com",
            "/v1/visitors/203.0.113.77",
            "/v1/visitors/2001:db8::77",
        ]
        capfd.readouterr()
        for path in paths:
            assert _raw_request(client, path.encode()) < 500, path
            # POST on the share page's forms and a method the route does not take.
            assert _raw_request(client, path.encode(), method="POST") < 500, path
        out, err = capfd.readouterr()

        lines = _request_lines(out)
        assert len(lines) == 2 * len(paths), out
        for text in (out, err):
            lowered = text.lower()
            for secret in (share, click, sk, pk, EMAIL, at_encoded, "203.0.113.77", "db8::77"):
                assert secret.lower() not in lowered, (secret, text)
            assert "a.person" not in lowered
        logged = {line["path"] for line in lines}
        assert "/v1/orders/ord_123/cancel?email=[email]" in logged
        assert "/v1/orders/[email]/cancel" in logged
        assert "/SHARE/[token]" in logged and "/./share/[token]" in logged
        assert "/landing?ref_token=[token]&ch=qr" in logged

    async def test_ordinary_ids_are_still_logged(self, client, tenant, capfd, json_logs):
        program = await create_program(client, tenant)
        capfd.readouterr()
        await client.get(f"/v1/programs/{program['id']}", headers=tenant.auth)
        await client.get("/v1/orders/ord_123", headers=tenant.auth)
        await client.get("/v1/merchants/mer_k3m9xq2pwr?status=active&limit=5")
        await client.get("/v1/codes/SUMMERSALE2", headers=tenant.public_auth)
        out, _ = capfd.readouterr()
        logged = [line["path"] for line in _request_lines(out)]
        assert logged == [
            f"/v1/programs/{program['id']}",
            "/v1/orders/ord_123",
            "/v1/merchants/mer_k3m9xq2pwr?status=active&limit=5",
            "/v1/codes/SUMMERSALE2",
        ]


class TestErrorLines:
    async def test_an_exception_message_and_traceback_are_scrubbed(self, capfd, json_logs):
        """The exception handler logs the traceback: user input quoted in an exception's
        message (a driver error, a KeyError) is scrubbed by shape there too."""
        log = structlog.get_logger("referral.errors")
        capfd.readouterr()
        try:
            raise KeyError(f"{EMAIL} sk_live_{'Ab3' * 10} from 198.51.100.7")
        except KeyError as exc:
            log.error("unhandled_error", exc_info=exc, path=loggable_path(f"/v1/x/{EMAIL}"))
        log.warning("click_flush_failed", error="no such visitor Qm7vR2xK9pLw4TzN8cYbHs")
        out, err = capfd.readouterr()
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [line["event"] for line in lines] == ["unhandled_error", "click_flush_failed"]
        assert "KeyError" in lines[0]["exception"] and "[email]" in lines[0]["exception"]
        for text in (out, err):
            for secret in (EMAIL, "sk_live_", "Ab3Ab3", "198.51.100.7", "Qm7vR2xK9pLw4TzN8cYbHs"):
                assert secret not in text, (secret, text)

    async def test_a_server_error_on_a_secret_path_is_logged_scrubbed(
        self, client, tenant, capfd, json_logs, monkeypatch
    ):
        """A 500 on a path with an email: the request line and the error line both scrub it."""
        from referral.orders import service as orders

        async def broken(*args, **kwargs):
            raise RuntimeError(f"cannot cancel order of {EMAIL}")

        monkeypatch.setattr(orders, "cancel_order", broken)
        capfd.readouterr()
        response = await client.post(f"/v1/orders/{EMAIL}/cancel", json={}, headers=tenant.auth)
        out, err = capfd.readouterr()
        assert response.status_code == 500, response.text
        for text in (out, err):
            assert EMAIL not in text.lower()
            assert "a.person" not in text.lower()
        lines = _request_lines(out)
        assert lines and lines[-1]["path"] == "/v1/orders/[email]/cancel"


class TestShapes:
    @pytest.mark.parametrize(
        "text",
        [
            "a.person@example.com",
            "A.Person%40Example.COM",
            "a.person%2540example.com",
            "a.person\uff20example.com",
            "sk_test_abc",
            "PK_live_whatever",
            "203.0.113.5",
            "2001:db8::5",
            "q7Xw3ZpL9aK2mN5bV8cR1t",  # 22 base64url characters
            "q7Xw3ZpL9a_K2mN5bV8-cR1t",  # with base64url's separators
            "3f2b8c1e9a7d4e2fb6c51d8e7f9a0b3c",  # 32 hex digits
        ],
    )
    def test_secret_shapes_are_replaced(self, text):
        assert loggable_path(f"/v1/x/{text}/y") != f"/v1/x/{text}/y"
        assert text not in loggable_path(f"/v1/x/{text}/y")
        assert text not in loggable_path("/v1/x", f"q={text}".encode())
        assert text.lower() not in redact_text(f"value {text} was refused").lower()

    @pytest.mark.parametrize(
        "text",
        [
            "ord_123",
            "mer_k3m9xq2pwr",
            "adv_7kx2m9pqwe",
            "SUMMERSALE",
            "whatsapp",
            "share_sheet",
            "2026-12-01T10:00:00Z",
            "CharacterNotInRepertoireError",
            "provide_secret_caller",
            "0015_rewards_money_due",  # a migration's name
            "0018_key_scopes_audit_log",
        ],
    )
    def test_ordinary_values_are_kept(self, text):
        assert loggable_path(f"/v1/x/{text}") == f"/v1/x/{text}"
        assert loggable_path("/v1/x", f"q={text}") == f"/v1/x?q={text}"
        assert redact_text(f"value {text} here") == f"value {text} here"
