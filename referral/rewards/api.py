"""HTTP handlers for rewards: read, list, and a person's approve / reverse / reinstate."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http import idempotency
from referral.http.deps import CallerDep, Conn, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import (
    CreatedBefore,
    CreatedFrom,
    Limit,
    Page,
    StartingAfter,
    split_page,
)
from referral.rewards import repo, service
from referral.rewards.schemas import Reward, RewardAction, RewardStatus


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
        row = await service.get(conn, runtime.ids, caller.merchant_id, reward_id)
        return await service.to_reward(conn, runtime.ids, row)

    @get(operation_id="listRewards", responses=API_ERRORS, summary="List rewards")
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[RewardStatus | None] = None,
        advocate_id: FromQuery[str | None] = None,
        starting_after: StartingAfter = None,
        created_from: CreatedFrom = None,
        created_before: CreatedBefore = None,
        limit: Limit = 20,
    ) -> Page[Reward]:
        ids = runtime.ids
        rows = await repo.list_page(
            conn,
            caller.merchant_id,
            status=status,
            advocate_id=ids.decode("advocate", advocate_id) if advocate_id else None,
            after_id=ids.decode("reward", starting_after) if starting_after else None,
            created_from=created_from,
            created_before=created_before,
            limit=limit,
        )
        rows, more = split_page(rows, limit)
        return Page(data=await service.to_rewards(conn, ids, rows), has_more=more)

    async def _act(
        self,
        request: Request,
        reward_id: str,
        data: RewardAction,
        conn,
        caller,
        runtime,
        action: str,
    ) -> Response[Reward]:
        async def effect():
            row = await service.get(conn, runtime.ids, caller.merchant_id, reward_id)
            kwargs = dict(reason=f"manual_{action}", actor=data.actor, note=data.note)
            if action == "approve":
                row = await service.approve(
                    conn, runtime.ids, caller.merchant_id, row["id"], **kwargs
                )
            elif action == "reverse":
                row = await service.transition(
                    conn,
                    runtime.ids,
                    caller.merchant_id,
                    row["id"],
                    expected={"pending", "in_review", "approved", "paid"},
                    to="reversed",
                    **kwargs,
                )
            else:
                row = await service.reinstate(
                    conn, runtime.ids, caller.merchant_id, row["id"], **kwargs
                )
            return 200, await service.to_reward(conn, runtime.ids, row)

        return await idempotency.run(conn, caller, request, effect)

    @post(
        "/{reward_id:str}/approve",
        operation_id="approveReward",
        responses=API_ERRORS,
        status_code=200,
        summary="Approve a reward now (pending or in review)",
    )
    async def approve(
        self,
        request: Request,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Reward]:
        return await self._act(request, reward_id, data, conn, caller, runtime, "approve")

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
        request: Request,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Reward]:
        return await self._act(request, reward_id, data, conn, caller, runtime, "reverse")

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
        request: Request,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Reward]:
        return await self._act(request, reward_id, data, conn, caller, runtime, "reinstate")
