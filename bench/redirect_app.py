"""The app the redirect benchmark serves: the real one, plus a bare redirect to compare with.

`granian --interface asgi --factory bench.redirect_app:asgi`, the project root on PYTHONPATH.

`/r/{code}/bare` answers the same 302 as `/r/{code}` (same headers and cookie, same size),
served the same way — Litestar's routing, then a route middleware answering as a plain ASGI
app, behind the same request-id middleware — but without the code cache, the click writer,
the token signer or any header parsing. So `recorded / bare` is what the redirect's own
work costs, and `bare` is what the server and the framework cost.
"""

from __future__ import annotations

from litestar import Litestar, get
from litestar.types import ASGIApp, Receive, Scope, Send

from referral.app import asgi as referral_asgi

_TOKEN = "k5ZCRU5DSNkgNGYzYTZjNWQ5YzRiNDk2YmFlOTE0ZGM3YjQ0ODdmMjWod2hhdHNhcHC2QmVuY2hWaXNpdG9y"
_HEADERS = [
    (
        b"location",
        f"https://shop.example/welcome?utm_source=referral&ref=BENCH&ref_token={_TOKEN}".encode(),
    ),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"0"),
    (b"set-cookie", b"rv=QmVuY2hWaXNpdG9yMTI; Max-Age=31536000; Path=/; HttpOnly; SameSite=Lax"),
]


async def bare_redirect(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 302, "headers": list(_HEADERS)})
    await send({"type": "http.response.body", "body": b""})


def _answered_by_bare_redirect(app: ASGIApp) -> ASGIApp:
    return bare_redirect


@get("/r/{code:str}/bare", include_in_schema=False, middleware=[_answered_by_bare_redirect])
async def bare(code: str) -> None:
    raise NotImplementedError("served by bare_redirect")


def asgi() -> Litestar:
    app = referral_asgi()
    app.register(bare)
    return app
