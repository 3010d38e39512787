"""HTTP handlers for rewards: read, list, and a person's approve / reverse / reinstate."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.rewards import service
from referral.rewards.schemas import Reward, RewardAction, RewardStatus

_ACTION_PROBLEMS = {
    "approve": {404: ("reward_not_found",), 409: ("reward_state_conflict",)},
    "reverse": {404: ("reward_not_found",), 409: ("reward_state_conflict",)},
    "reinstate": {
        404: ("reward_not_found",),
        409: ("reward_state_conflict", "reward_order_refunded", "reward_amount_increase"),
    },
}


def _action(
    action: Literal["approve", "reverse", "reinstate"], *, operation_id: str, **docs: str
) -> HTTPRouteHandler:
    """A person's action on one reward: the three share their shape and idempotency."""

    @post(
        f"/{{reward_id:str}}/{action}",
        operation_id=operation_id,
        responses=problem_docs.responses(operation_id, _ACTION_PROBLEMS[action], once=True),
        status_code=200,
        **docs,
    )
    async def act(
        self,
        reward_id: FromPath[str],
        data: JSONBody[RewardAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Reward]:
        return await once(
            lambda: service.act(
                conn,
                ids=runtime.ids,
                merchant_id=caller.merchant_id,
                reward_id=reward_id,
                action=action,
                actor=data.actor,
                note=data.note,
            )
        )

    return act


class RewardController(Controller):
    path = "/v1/rewards"
    tags = ["rewards"]
    security = [{"secretKey": []}]

    @get(
        "/{reward_id:str}",
        operation_id="getReward",
        responses=problem_docs.responses("getReward", {404: ("reward_not_found",)}),
        summary="Read a reward with its history",
    )
    async def read(
        self, reward_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Reward:
        return await service.get(
            conn, ids=runtime.ids, merchant_id=caller.merchant_id, reward_id=reward_id
        )

    @get(
        operation_id="listRewards",
        responses=problem_docs.responses(
            "listRewards", {404: ("reward_not_found", "advocate_not_found", "program_not_found")}
        ),
        summary="List rewards",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[RewardStatus | None] = None,
        advocate_id: FromQuery[str | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Reward]:
        return await service.list_rewards(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            status=status,
            advocate_id=advocate_id,
            cursor=listing.cursor(runtime.ids, "reward"),
        )

    approve = _action(
        "approve",
        operation_id="approveReward",
        summary="Approve a reward now (pending or in review)",
    )
    reverse = _action(
        "reverse",
        operation_id="reverseReward",
        summary="Reverse a reward",
        description="After payment the amount becomes a receivable that later payouts net.",
    )
    reinstate = _action(
        "reinstate",
        operation_id="reinstateReward",
        summary="Undo a reversal",
        description="Returns the reward to the state and value it had before the reversal.",
    )
