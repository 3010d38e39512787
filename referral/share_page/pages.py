"""The share page's forms for points and the preference centre: redeem a catalogue item,
cancel a redemption, save how the advocate wants to be contacted. Each answers by going
back to the page (303) with a notice in the advocate's words."""

from __future__ import annotations

from urllib.parse import quote

from litestar import Request, Router, post
from litestar.params import FromPath
from litestar.response import Redirect

from referral.http.deps import Conn, RuntimeDep
from referral.http.rate_limits import rate_limited
from referral.share_page import engagement, service
from referral.share_page.api import _refused


def _back(token: str, notice: str, anchor: str) -> Redirect:
    return Redirect(f"/share/{quote(token)}?done={notice}#{anchor}", status_code=303)


@post(
    "/share/{token:str}/points/redeem",
    include_in_schema=False,
    operation_id="sharePageRedeemPoints",
    guards=[rate_limited("share_page")],
)
async def redeem_points(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Redirect:
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        item = str((await request.form()).get("item") or "")
        notice = await engagement.redeem(conn, runtime=runtime, advocate=advocate, item=item)
    except service.Refused as refused:
        return _refused(refused)
    return _back(token, notice, "points")


@post(
    "/share/{token:str}/points/redemptions/{redemption_id:str}/cancel",
    include_in_schema=False,
    operation_id="sharePageCancelRedemption",
    guards=[rate_limited("share_page")],
)
async def cancel_redemption(
    token: FromPath[str], redemption_id: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Redirect:
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        notice = await engagement.cancel(
            conn, runtime=runtime, advocate=advocate, redemption_id=redemption_id
        )
    except service.Refused as refused:
        return _refused(refused)
    return _back(token, notice, "points")


@post(
    "/share/{token:str}/preferences",
    include_in_schema=False,
    operation_id="sharePagePreferences",
    guards=[rate_limited("share_page")],
)
async def set_preferences(
    request: Request, token: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Redirect:
    try:
        advocate = await service.open_page(conn, runtime=runtime, token=token)
        form = await request.form()
        await engagement.set_preferences(
            conn,
            runtime=runtime,
            advocate=advocate,
            form={key: form.getall(key) for key in form},
        )
    except service.Refused as refused:
        return _refused(refused)
    return _back(token, "preferences", "preferences")


engagement_router = Router(
    path="/", route_handlers=[redeem_points, cancel_redemption, set_preferences]
)
