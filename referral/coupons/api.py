"""Friend coupons at checkout (validate, redeem) and the coupon pools a shop uploads."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, Parameter

from referral.coupons import service
from referral.coupons.schemas import (
    CouponAnswer,
    CouponCodesAdded,
    CouponCodesUpload,
    CouponPool,
    CouponPoolCreate,
    CouponRedeem,
    CouponValidate,
    CouponValidation,
)
from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.errors import InvalidInput
from referral.programs import service as programs

TypedCode = Annotated[str, Parameter(description="The code as typed", min_length=1, max_length=64)]
CSV_LIMIT = 100_000


class CouponController(Controller):
    path = "/v1/coupons"
    tags = ["coupons"]

    @post(
        "/validate",
        operation_id="validateCoupon",
        responses=problem_docs.responses("validateCoupon", {422: ("unknown_currency",)}),
        status_code=200,
        summary="Would this checkout redeem the coupon, and for how much?",
        description="Before payment. Valid, or why not (held while its referral is in review "
        "or on hold, used, expired, void, another currency, another customer's), with the "
        "discount: the coupon's amount, at most the subtotal. A generated coupon (`F1…`) or a "
        "pool code as the shop's platform spells it (matched without case). Writes nothing.",
    )
    async def validate(
        self, data: JSONBody[CouponValidate], conn: Conn, caller: CallerDep
    ) -> CouponValidation:
        return await service.validate(conn, merchant_id=caller.merchant_id, data=data)

    @post(
        "/{code:str}/redeem",
        operation_id="redeemCoupon",
        responses=problem_docs.responses(
            "redeemCoupon", {404: ("coupon_not_found",), 422: ("unknown_currency",)}, once=True
        ),
        status_code=200,
        summary="Record a coupon's redemption on its own",
        description="For a checkout that redeems before it reports the order. Idempotent by "
        "order: redeeming again for the same `order_id` answers the same; the order, reported "
        "later with this code, finds it redeemed by itself. `applies: false` with the reason "
        "when it cannot be redeemed (nothing changes then).",
    )
    async def redeem(
        self,
        code: TypedCode,
        data: JSONBody[CouponRedeem],
        conn: Conn,
        caller: CallerDep,
        once: OnceDep,
    ) -> Response[CouponAnswer]:
        return await once(
            lambda: service.redeem_reported(
                conn, merchant_id=caller.merchant_id, typed=code, data=data
            )
        )


class CouponPoolController(Controller):
    path = "/v1"
    tags = ["coupons"]

    @post(
        "/programs/{program_id:str}/coupon-pools",
        operation_id="createCouponPool",
        responses=problem_docs.responses(
            "createCouponPool", {404: ("program_not_found",), 422: ("unknown_currency",)}
        ),
        status_code=201,
        summary="Make a pool for codes from the shop's own platform",
        description='For a program whose friend reward is `{"kind": "coupon", '
        '"coupon_source": "pool"}`: each friend gets the oldest free code of the '
        "program's pools in the reward's currency. A pool running low (fewer than `low_below` "
        "left, or fewer than `low_days` days of use at the last week's rate) records "
        "`coupon_pool.low` once until refilled; an empty pool never blocks an order: the "
        "reward's coupon is `awaiting_coupon` and is given with the next upload.",
    )
    async def create(
        self,
        program_id: FromPath[str],
        data: JSONBody[CouponPoolCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> CouponPool:
        program = await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)
        return await service.create_pool(
            conn,
            ids=runtime.ids,
            caller=caller,
            program_id=runtime.ids.decode("program", program.id),
            data=data,
        )

    @get(
        "/programs/{program_id:str}/coupon-pools",
        operation_id="listCouponPools",
        responses=problem_docs.responses("listCouponPools", {404: ("program_not_found",)}),
        summary="A program's coupon pools, with what is left",
    )
    async def list(
        self, program_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> list[CouponPool]:
        program = await programs.get(conn, runtime=runtime, caller=caller, program_id=program_id)
        return await service.list_pools(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            program_id=runtime.ids.decode("program", program.id),
        )

    @get(
        "/coupon-pools/{pool_id:str}",
        operation_id="getCouponPool",
        responses=problem_docs.responses("getCouponPool", {404: ("coupon_pool_not_found",)}),
        summary="A coupon pool: codes available, given, and rewards waiting",
    )
    async def read(
        self, pool_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> CouponPool:
        return await service.get_pool(
            conn, ids=runtime.ids, merchant_id=caller.merchant_id, pool_id=pool_id
        )

    @post(
        "/coupon-pools/{pool_id:str}/codes",
        operation_id="addCouponCodes",
        responses=problem_docs.responses(
            "addCouponCodes", {404: ("coupon_pool_not_found",)}, once=True
        ),
        status_code=200,
        summary="Upload codes (JSON)",
        description="Up to 100,000 codes a call. Each code is kept once across every pool of "
        "the merchant and every coupon given (compared without case; duplicates are counted "
        "and skipped, so uploading a file twice adds nothing). Codes are letters, digits, "
        "`-`, `_` and `.`; one that checkout would read as a generated coupon or as a "
        "referral code is refused and listed. Rewards waiting for a code get theirs at once, "
        "oldest first.",
    )
    async def add_codes(
        self,
        pool_id: FromPath[str],
        data: JSONBody[CouponCodesUpload],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[CouponCodesAdded]:
        return await once(
            lambda: service.add_codes(
                conn, ids=runtime.ids, caller=caller, pool_id=pool_id, data=data
            )
        )

    @post(
        "/coupon-pools/{pool_id:str}/codes.csv",
        operation_id="addCouponCodesCsv",
        responses=problem_docs.responses(
            "addCouponCodesCsv", {404: ("coupon_pool_not_found",), 422: ("invalid_csv",)}
        ),
        status_code=200,
        summary="Upload codes (CSV: one code a line, an optional `code` header)",
        description="As the JSON upload; the codes as given (`?case=lower` lowers them). The "
        "first column of each line is the code; blank lines are skipped.",
    )
    async def add_codes_csv(
        self,
        request: Request,
        pool_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        case: Annotated[str, Parameter(pattern="^(as_given|lower)$")] = "as_given",
    ) -> CouponCodesAdded:
        await service.get_pool(  # another merchant's pool is a 404 before the body is read
            conn, ids=runtime.ids, merchant_id=caller.merchant_id, pool_id=pool_id
        )
        codes = _csv_codes(await request.body())
        upload = CouponCodesUpload(codes=codes, case="lower" if case == "lower" else "as_given")
        return await service.add_codes(
            conn, ids=runtime.ids, caller=caller, pool_id=pool_id, data=upload
        )


def _csv_codes(body: bytes) -> list[str]:
    """The first column of each line; a `code` header is skipped. Refused: not UTF-8, no
    code, or more than the JSON upload takes."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV must be UTF-8", code="invalid_csv") from None
    codes = [row[0].strip() for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
    if codes and codes[0].lower() == "code":
        codes = codes[1:]
    if not codes:
        raise InvalidInput("the CSV holds no codes", code="invalid_csv")
    if len(codes) > CSV_LIMIT:
        raise InvalidInput(f"at most {CSV_LIMIT} codes a call", code="invalid_csv")
    return codes
