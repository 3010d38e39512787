"""HTTP handlers for the shop's orders, refunds and cancels."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.params import FromPath, JSONBody

from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib.errors import API_ERRORS
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
    security = [{"secretKey": []}]

    @post(
        operation_id="recordOrder",
        responses=API_ERRORS,
        summary="Record an order (send every order, referred or not)",
        description="Attributes the order, checks eligibility and fraud, and creates both "
        "parties' rewards for a friend's first order, in one transaction. Idempotent by "
        "order id (201 first, 200 after; other amounts: 409 order_conflict). " + IDEMPOTENT,
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
        responses=API_ERRORS,
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
        responses=API_ERRORS,
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
