"""The widget over HTTP: the script, its manifest and the two public JSON answers its
elements read from a shop's pages, under `/widget/v1/`.

All four are read from another origin (the shop's), so every answer of this router (its
errors too) is open to any origin for reading (`access-control-allow-origin: *`) and to
being embedded (`cross-origin-resource-policy: cross-origin`), and none takes a cookie or
credentials: the script is public, the offer is what a program shows every friend, and the
share box is opened by its signed, expiring token alone. They are simple GETs (no custom
header, no preflight). The script is immutable under its versioned URL.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from litestar import Request, Response, Router, get
from litestar.params import FromPath, QueryParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from referral.http.deps import Conn, RuntimeDep
from referral.http.rate_limits import rate_limited
from referral.lib import problem_docs
from referral.links.visitors import is_bot
from referral.widget import service
from referral.widget.schemas import WidgetManifest, WidgetOffer, WidgetShare

SCRIPT_CACHE = "public, max-age=31536000, immutable"
MANIFEST_CACHE = "public, max-age=300"
OFFER_CACHE = "public, max-age=60"
_ETAG = '"' + hashlib.sha256(service.SCRIPT).hexdigest()[:32] + '"'
_CROSS_ORIGIN = (
    (b"access-control-allow-origin", b"*"),
    (b"cross-origin-resource-policy", b"cross-origin"),
)

Lang = Annotated[
    str | None,
    QueryParameter(
        description="The page's language (BCP 47: `sv`, `en-GB`); English and Swedish are "
        "spoken, anything else gets the program's language",
        max_length=35,
        pattern=r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$",
    ),
]


def open_to_other_origins(app: ASGIApp) -> ASGIApp:
    """Router middleware: the cross-origin headers on every answer, errors included (so the
    widget can read why it was refused)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_open(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", ())}
                extra = [pair for pair in _CROSS_ORIGIN if pair[0] not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await app(scope, receive, send_open)

    return middleware


def _lang(raw: str | None) -> str | None:
    return raw.split("-", 1)[0].lower() if raw else None


@get(
    "/referral.js",
    operation_id="getWidgetScript",
    summary="The widget's script",
    description="Defines `<referral-share>` and `<referral-offer>`. Immutable under this "
    "versioned URL; include it with the `integrity` of `GET /widget/v1/manifest.json` and "
    '`crossorigin="anonymous"`.',
    responses=problem_docs.responses("getWidgetScript", keyed=False),
    media_type="text/javascript; charset=utf-8",
)
async def widget_script(request: Request) -> Response[bytes]:
    headers = {"etag": _ETAG, "cache-control": SCRIPT_CACHE}
    if _ETAG in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(service.SCRIPT, media_type="text/javascript; charset=utf-8", headers=headers)


@get(
    "/manifest.json",
    operation_id="getWidgetManifest",
    summary="The widget script's URL and Subresource Integrity hash",
    responses=problem_docs.responses("getWidgetManifest", keyed=False),
)
async def widget_manifest(runtime: RuntimeDep) -> Response[WidgetManifest]:
    return Response(service.manifest(runtime.settings), headers={"cache-control": MANIFEST_CACHE})


@get(
    "/share/{token:str}",
    operation_id="getWidgetShare",
    summary="An advocate's share box, opened by their share token",
    description="No key: the signed, expiring token of `POST /v1/advocates/{id}/share-url` "
    "(the last part of its `url`) opens it. The advocate's link, QR image, share buttons "
    "(tracked URLs that record the share, then go to the network) and rewards, in the "
    "program's colour. Counted as a share-page view (not for bots).",
    responses=problem_docs.responses(
        "getWidgetShare",
        {
            403: ("share_token_invalid",),
            404: ("advocate_not_found",),
            409: ("customer_held_out",),
            410: ("share_token_expired",),
        },
        keyed=False,
    ),
)
async def widget_share(
    request: Request,
    token: FromPath[str],
    conn: Conn,
    runtime: RuntimeDep,
    lang: Lang = None,
) -> Response[WidgetShare]:
    counted = not is_bot(request.headers.get("user-agent", ""), request.method)
    box = await service.share_box(
        conn, runtime=runtime, token=token, lang=_lang(lang), counted=counted
    )
    return Response(box, headers={"cache-control": "no-store"})


@get(
    "/offer",
    operation_id="getWidgetOffer",
    summary="The friend offer of a referral link, for the shop's landing page",
    description="No key: what the link's program offers every friend, from the `ref_token` "
    "the redirect put on the landing URL (or the typed `ref` code). `offer` is null when "
    "friends get nothing or the program is not running.",
    responses=problem_docs.responses(
        "getWidgetOffer", {404: ("code_not_found",), 429: ("too_many_requests",)}, keyed=False
    ),
    guards=[rate_limited("lookups")],  # code guessing
)
async def widget_offer(
    conn: Conn,
    runtime: RuntimeDep,
    ref: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ref_token: Annotated[str | None, QueryParameter(max_length=512)] = None,
    lang: Lang = None,
) -> Response[WidgetOffer]:
    answer = await service.offer(
        conn, runtime=runtime, ref=ref, ref_token=ref_token, lang=_lang(lang)
    )
    return Response(answer, headers={"cache-control": OFFER_CACHE})


widget_router = Router(
    path="/widget/v1",
    route_handlers=[widget_script, widget_manifest, widget_share, widget_offer],
    middleware=[open_to_other_origins],
    tags=["widget"],
)
