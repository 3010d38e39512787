"""HEAD answered as GET, without the body: the same handler, status and headers
(content-type, content-length, etag, caching), so a link checker or an unfurler learns
what a GET would give. Litestar routes HEAD only to a handler that lists it and sends
whatever body that handler returns, so a route that serves HEAD lists both methods
(`GET_HEAD`), takes `answer_head_as_get` as route middleware and names each method's
operation (`operation_ids`)."""

from __future__ import annotations

from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

GET_HEAD = ["GET", "HEAD"]


def answer_head_as_get(app: ASGIApp) -> ASGIApp:
    """Route middleware: on HEAD, the response of the handler with its body dropped (its
    content-length kept: the length a GET's body has)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app(scope, receive, send_without_body)

    return middleware


def operation_ids(get_id: str, head_id: str) -> Callable[..., str]:
    """An `operation_id` for a GET+HEAD route: one id per method."""

    def creator(handler: object, method: str, path: object) -> str:
        return head_id if str(method).upper().endswith("HEAD") else get_id

    return creator
