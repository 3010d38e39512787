"""HTTP handlers for rewards: read, list, and a person's approve / reverse / reinstate."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import Page
from referral.merchants.service import Caller
from referral.rewards import service
from referral.rewards.schemas import Reward, RewardAction, RewardStatus
from referral.runtime import Runtime


class RewardController(Controller):
    path = "/v1/rewards"
    tags = ["rewards"]
    security = [{"secretKey": []}]

    @get(
        "/{reward_id:str}",
        operation_id="getReward",
        responses=API_ERRORS,
        summary="Read a reward with its history",
    )
    async def read(
        self, reward_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Reward:
        return await service.get(
            conn, ids=runtime.ids, merchant_id=caller.merchant_id, reward_id=reward_id
        )

    @get(operation_id="listRewards", responses=API_ERRORS, summary="List rewards")
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        listing: Listing,
        status: FromQuery[RewardStatus | None] = None,
        advocate_id: FromQuery[str | None] = None,
    ) -> Page[Reward]:
        return await service.list_rewards(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            status=status,
            advocate_id=advocate_id,
            cursor=listing.cursor(runtime.ids, "reward"),
        )

    @post(
        "/{reward_id:str}/approve",
        operation_id="approveReward",
        responses=API_ERRORS,
        status_code=200,
        summary="Approve a reward now (pending or in review)",
    )
    async def approve(
        self,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Reward]:
        return await once(_act(conn, runtime, caller, reward_id, data, "approve"))

    @post(
        "/{reward_id:str}/reverse",
        operation_id="reverseReward",
        responses=API_ERRORS,
        status_code=200,
        summary="Reverse a reward",
        description="After payment the amount becomes a receivable that later payouts net.",
    )
    async def reverse(
        self,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Reward]:
        return await once(_act(conn, runtime, caller, reward_id, data, "reverse"))

    @post(
        "/{reward_id:str}/reinstate",
        operation_id="reinstateReward",
        responses=API_ERRORS,
        status_code=200,
        summary="Undo a reversal",
        description="Returns the reward to the state and value it had before the reversal.",
    )
    async def reinstate(
        self,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Reward]:
        return await once(_act(conn, runtime, caller, reward_id, data, "reinstate"))


def _act(
    conn: Conn,
    runtime: Runtime,
    caller: Caller,
    reward_id: str,
    data: RewardAction,
    action: Literal["approve", "reverse", "reinstate"],
):
    return lambda: service.act(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        reward_id=reward_id,
        action=action,
        actor=data.actor,
        note=data.note,
    )
