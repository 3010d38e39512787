"""HTTP handlers for the shop's checkout calls and for reading referrals."""

from __future__ import annotations

from typing import Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.attribution import service
from referral.attribution.schemas import (
    CancelRequest,
    OrderRequest,
    OrderResult,
    OrderState,
    Quote,
    QuoteRequest,
    Referral,
    RefundRequest,
    SignupRequest,
    SignupResult,
)
from referral.http import idempotency
from referral.http.deps import CallerDep, Conn, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import CreatedBefore, CreatedFrom, Limit, Page, StartingAfter

_IDEMPOTENT = (
    "Idempotent by its natural key; an `Idempotency-Key` header is honoured too "
    "(same key and body: the stored response; other body: 409)."
)


class CheckoutController(Controller):
    path = "/v1"
    tags = ["checkout"]
    security = [{"secretKey": []}]

    @post(
        "/checkout/quote",
        operation_id="quoteCheckout",
        responses=API_ERRORS,
        status_code=200,
        summary="Would the friend offer apply to this cart?",
        description="Before payment: whether the friend offer applies, its value, the "
        "advocate it would credit, and why not. Writes nothing.",
    )
    async def quote(
        self, data: JSONBody[QuoteRequest], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Quote:
        return await service.quote(conn, runtime, caller, data)

    @post(
        "/signups",
        operation_id="recordSignup",
        responses=API_ERRORS,
        summary="Record a signup",
        description="Attributes a new customer to an advocate. "
        "Idempotent by customer id (201 first, 200 after). " + _IDEMPOTENT,
    )
    async def signup(
        self,
        request: Request,
        data: JSONBody[SignupRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[SignupResult]:
        async def effect():
            result, created = await service.record_signup(conn, runtime, caller, data)
            return (201 if created else 200), result

        return await idempotency.run(conn, caller, request, effect)

    @post(
        "/orders",
        operation_id="recordOrder",
        responses=API_ERRORS,
        summary="Record an order (send every order, referred or not)",
        description="Attributes the order, checks eligibility and fraud, and creates both "
        "parties' rewards for a friend's first order, in one transaction. Idempotent by "
        "order id (201 first, 200 after; other amounts: 409 order_conflict). " + _IDEMPOTENT,
    )
    async def order(
        self,
        request: Request,
        data: JSONBody[OrderRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[OrderResult]:
        async def effect():
            result, created = await service.record_order(conn, runtime, caller, data)
            return (201 if created else 200), result

        return await idempotency.run(conn, caller, request, effect)

    @post(
        "/orders/{order_id:str}/refunds",
        operation_id="refundOrder",
        responses=API_ERRORS,
        summary="Record a refund (partial or full)",
        description="Percentage rewards shrink pro rata; rewards whose order falls below "
        "the minimum, or is refunded in full, are reversed; after payment the reduction is "
        "booked as a receivable. Idempotent by refund id. " + _IDEMPOTENT,
    )
    async def refund(
        self,
        request: Request,
        order_id: FromPath[str],
        data: JSONBody[RefundRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[OrderState]:
        async def effect():
            state, created = await service.record_refund(conn, runtime, caller, order_id, data)
            return (201 if created else 200), state

        return await idempotency.run(conn, caller, request, effect)

    @post(
        "/orders/{order_id:str}/cancel",
        operation_id="cancelOrder",
        responses=API_ERRORS,
        status_code=200,
        summary="Cancel an order",
        description="Reverses every reward of the order. Idempotent. " + _IDEMPOTENT,
    )
    async def cancel(
        self,
        request: Request,
        order_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        data: JSONBody[CancelRequest | None] = None,
    ) -> Response[OrderState]:
        async def effect():
            state, _ = await service.cancel_order(conn, runtime, caller, order_id)
            return 200, state

        return await idempotency.run(conn, caller, request, effect)


class ReferralController(Controller):
    path = "/v1/referrals"
    tags = ["referrals"]
    security = [{"secretKey": []}]

    @get(
        "/{referral_id:str}",
        operation_id="getReferral",
        responses=API_ERRORS,
        summary="Explain a referral",
        description="Which attribution path matched, every eligibility check with its "
        "inputs and outcome, the fraud decision, and each reward's history.",
    )
    async def read(
        self, referral_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Referral:
        return await service.get_referral(conn, runtime, caller, referral_id)

    @get(
        operation_id="listReferrals",
        responses=API_ERRORS,
        summary="List referrals (with status=in_review: the review queue)",
        description="Oldest first, each with its eligibility checks, fraud decision (rules "
        "fired, evidence, score) and rewards. `status=in_review` is the review queue.",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        status: FromQuery[Literal["pending", "converted", "in_review", "rejected"] | None] = None,
        advocate_id: FromQuery[str | None] = None,
        program_id: FromQuery[str | None] = None,
        starting_after: StartingAfter = None,
        created_from: CreatedFrom = None,
        created_before: CreatedBefore = None,
        limit: Limit = 20,
    ) -> Page[Referral]:
        referrals, more = await service.list_referrals(
            conn,
            runtime,
            caller,
            status=status,
            advocate_id=advocate_id,
            program_id=program_id,
            starting_after=starting_after,
            created_from=created_from,
            created_before=created_before,
            limit=limit,
        )
        return Page(data=referrals, has_more=more)
