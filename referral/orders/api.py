"""HTTP handlers for the shop's orders, refunds and cancels."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.params import FromPath, JSONBody

from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.openapi import OptionalBody
from referral.orders import service
from referral.orders.schemas import (
    CancelRequest,
    OrderRequest,
    OrderResult,
    OrderState,
    RefundRequest,
)
from referral.referrals.api import IDEMPOTENT


class OrderController(Controller):
    path = "/v1/orders"
    tags = ["checkout"]

    @post(
        operation_id="recordOrder",
        responses=problem_docs.responses(
            "recordOrder",
            {
                404: ("program_not_found",),
                409: ("order_conflict", "order_cancelled"),
                422: (
                    "invalid_email",
                    "friend_unidentified",
                    "unknown_currency",
                    "invalid_timestamp",
                    "occurred_in_future",
                    "occurred_too_early",
                    "invalid_ip",
                    "code_inactive",
                ),
            },
            once=True,
            replay=OrderResult,
        ),
        summary="Record an order (send every order, referred or not)",
        description="Attributes the order, checks eligibility and fraud, and creates both "
        "parties' rewards for a friend's first order, in one transaction. Idempotent by "
        "order id (201 first, 200 after; other amounts: 409 order_conflict). Friend coupons "
        "typed in `codes` are redeemed only while their reward is approved; one that cannot "
        "be (`coupon_held` while its referral is in review or within its hold, used, "
        "expired, void, another currency) does not stop the order: `coupons` says why, as "
        "the quote did. " + IDEMPOTENT,
    )
    async def order(
        self,
        data: JSONBody[OrderRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[OrderResult]:
        return await once(
            lambda: service.record_order(conn, runtime=runtime, caller=caller, data=data)
        )

    @post(
        "/{order_id:str}/refunds",
        operation_id="refundOrder",
        responses=problem_docs.responses(
            "refundOrder",
            {
                404: ("order_not_found",),
                409: ("refund_conflict", "order_cancelled"),
                422: (
                    "over_refund",
                    "currency_mismatch",
                    "unknown_currency",
                    "invalid_timestamp",
                    "occurred_in_future",
                    "occurred_too_early",
                ),
            },
            once=True,
            replay=OrderState,
        ),
        summary="Record a refund (partial or full)",
        description="Percentage rewards shrink pro rata; rewards whose order falls below "
        "the minimum, or is refunded in full, are reversed; after payment the reduction is "
        "booked as a receivable. Idempotent by refund id. " + IDEMPOTENT,
    )
    async def refund(
        self,
        order_id: FromPath[str],
        data: JSONBody[RefundRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[OrderState]:
        return await once(
            lambda: service.record_refund(
                conn, runtime=runtime, caller=caller, order_id=order_id, data=data
            )
        )

    @post(
        "/{order_id:str}/cancel",
        operation_id="cancelOrder",
        operation_class=OptionalBody,  # the body may be left out
        responses=problem_docs.responses(
            "cancelOrder",
            {
                404: ("order_not_found",),
                409: ("order_conflict",),
                422: ("invalid_timestamp", "occurred_in_future", "occurred_too_early"),
            },
            once=True,
        ),
        status_code=200,
        summary="Cancel an order",
        description="Reverses every reward of the order. Idempotent. " + IDEMPOTENT,
    )
    async def cancel(
        self,
        order_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
        data: JSONBody[CancelRequest | None] = None,
    ) -> Response[OrderState]:
        return await once(
            lambda: service.cancel_order(conn, runtime=runtime, caller=caller, order_id=order_id)
        )
