"""Points: a program's rules (`/v1/programs/{id}/points`), a customer's balance, history and
level (`/v1/customers/{id}/points`), and redemptions of the catalogue, cancellable while
unused (`/v1/customers/{id}/points/redemptions`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.params import JSONBody, Parameter, QueryParameter

from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.points import service
from referral.points.schemas import (
    Balance,
    PointsRules,
    PointsSettings,
    Redemption,
    RedemptionRequest,
)

CustomerIdPath = Annotated[
    str,
    Parameter(description="The shop's id for the customer", min_length=1, max_length=200),
]
ProgramIdPath = Annotated[str, Parameter(description="The program", max_length=64)]
ProgramQuery = Annotated[
    str, QueryParameter(name="program_id", description="The program", max_length=64)
]
RedemptionIdPath = Annotated[str, Parameter(description="The redemption", max_length=64)]
_RULES_INVALID = ("invalid_points_rules", "unknown_currency")


class PointsRulesController(Controller):
    path = "/v1/programs"
    tags = ["points"]

    @put(
        "/{program_id:str}/points",
        operation_id="putPointsRules",
        status_code=200,
        responses=problem_docs.responses(
            "putPointsRules",
            {404: ("program_not_found",), 409: ("points_rules_changed",), 422: _RULES_INVALID},
            once=True,
        ),
        summary="Set a program's points rules (earning, expiry, catalogue, levels)",
        description="The whole document, replaced, as a new version: what was earned keeps "
        "the version it was earned under. Earning rules, each on or off with its points and "
        "caps: `advocate_referral` (the advocate, for a referred friend's first order), "
        "`friend_first_order`, `share` (capped per day), `story` (a published story), "
        "`order` (points per `per` minor units of the subtotal, on every order; refunds take "
        "them back pro rata), `birthday`, `signup`. `expiry`: lots expire `months` after they "
        "were earned or after the last activity. `catalogue`: what points buy (a coupon or "
        "store credit). `levels`: reached by referrals, points earned or spend in a rolling "
        "12 months, each with a points multiplier and an advocate reward.",
    )
    async def put_rules(
        self,
        program_id: ProgramIdPath,
        data: JSONBody[PointsRules],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[PointsSettings]:
        return await once(
            lambda: service.set_rules(
                conn, runtime=runtime, caller=caller, program_id=program_id, data=data
            )
        )

    @get(
        "/{program_id:str}/points",
        operation_id="getPointsRules",
        responses=problem_docs.responses(
            "getPointsRules", {404: ("program_not_found", "points_rules_not_found")}
        ),
        summary="A program's points rules as they stand (their latest version)",
    )
    async def get_rules(
        self, program_id: ProgramIdPath, conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> PointsSettings:
        return await service.get_rules(conn, ids=runtime.ids, caller=caller, program_id=program_id)


class CustomerPointsController(Controller):
    path = "/v1/customers"
    tags = ["points"]

    @get(
        "/{customer_id:str}/points",
        operation_id="getCustomerPoints",
        responses=problem_docs.responses("getCustomerPoints", {404: ("program_not_found",)}),
        summary="A customer's points: balance, lots, history, next expiry, level, catalogue",
        description="The balance is the sum of their open lots not yet past expiry. History: "
        "the latest 50 journal entries, newest first (earn, redeem, cancel, refund, expire), "
        "each on the lot it changed. A customer with no points has a balance of 0.",
    )
    async def get_points(
        self,
        customer_id: CustomerIdPath,
        program_id: ProgramQuery,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Balance:
        return await service.balance(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            customer_id=customer_id,
            program_id=program_id,
        )

    @post(
        "/{customer_id:str}/points/redemptions",
        operation_id="createPointsRedemption",
        status_code=201,
        responses=problem_docs.responses(
            "createPointsRedemption",
            {
                404: ("program_not_found", "points_rules_not_found", "catalogue_item_not_found"),
                409: ("insufficient_points",),
            },
            once=True,
        ),
        summary="Turn points into a coupon or store credit from the catalogue",
        description="Takes the item's points from the customer's oldest lots and issues its "
        "reward at once (a coupon code, or store credit for the next store-credit batch). "
        "Concurrent redemptions of one balance run one after the other: one that no longer "
        "fits answers `insufficient_points`. With an Idempotency-Key, a retry answers the "
        "same redemption. Records `points.redeemed`.",
    )
    async def redeem(
        self,
        customer_id: CustomerIdPath,
        data: JSONBody[RedemptionRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Redemption]:
        return await once(
            lambda: service.redeem(
                conn, runtime=runtime, caller=caller, customer_id=customer_id, data=data
            ),
            status=201,
        )

    @post(
        "/{customer_id:str}/points/redemptions/{redemption_id:str}/cancel",
        operation_id="cancelPointsRedemption",
        status_code=200,
        responses=problem_docs.responses(
            "cancelPointsRedemption",
            {404: ("points_redemption_not_found",), 409: ("redemption_used",)},
            once=True,
        ),
        summary="Cancel a redemption while its coupon is unused: the points return",
        description="The reward is reversed (its coupon voided) and the points go back to the "
        "lots they were taken from, with their expiry. A used coupon or paid-out store "
        "credit answers `redemption_used`. Cancelling again answers the cancelled "
        "redemption. Records `points.redemption_cancelled`.",
    )
    async def cancel(
        self,
        customer_id: CustomerIdPath,
        redemption_id: RedemptionIdPath,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Redemption]:
        return await once(
            lambda: service.cancel(
                conn,
                runtime=runtime,
                caller=caller,
                customer_id=customer_id,
                redemption_id=redemption_id,
            )
        )
