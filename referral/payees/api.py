"""`/v1/payees/{customer_id}`: where a customer's payouts go, and what they were paid in a
year; `/v1/payee-totals`: every payee's totals for a year (JSON or CSV), for tax forms."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, get, put
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.response import Stream

from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.http.negotiation import json_or_csv, wants_csv
from referral.lib import problem_docs
from referral.payees import service
from referral.payees.schemas import Payee, PayeeSet, PayeeTotals, YearTotals

CustomerIdPath = Annotated[
    str,
    Parameter(
        description="The shop's id for the customer (the payee of their rewards)",
        min_length=1,
        max_length=200,
    ),
]
YearQuery = Annotated[
    int,
    QueryParameter(
        name="year",
        ge=2000,
        le=2999,
        description="The calendar year, in the merchant's time zone",
    ),
]
CSV_TEXT = (
    "With `Accept: text/csv`: one row per payee, currency and kind: "
    + ",".join(service.CSV_COLUMNS)
    + ". Free text that a spreadsheet would run as a formula starts with an apostrophe; "
    "emails and IBANs are validated when set and written as they are."
)
_INVALID = (
    "invalid_email",
    "invalid_iban",
    "invalid_bic",
    "missing_account_holder",
    "invalid_payout_method",
)


JsonOrCsv = json_or_csv(CSV_TEXT)


class PayeeController(Controller):
    path = "/v1/payees"
    tags = ["payees"]

    @put(
        "/{customer_id:str}",
        operation_id="putPayee",
        status_code=200,
        responses=problem_docs.responses("putPayee", {422: _INVALID}, once=True),
        summary="Set where a customer's payouts go",
        description="The whole of the customer's payout details, replaced: `email` (PayPal) "
        "or `bank_transfer` (IBAN, the account holder's name, an optional BIC). Validated "
        "(the IBAN by its country's length and layout and its check digits), answered "
        "masked, and audited with the masked values before and after. Payout batches made "
        "from now on pay there; batches already made keep the details they were made with.",
    )
    async def put_payee(
        self,
        customer_id: CustomerIdPath,
        data: JSONBody[PayeeSet],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Payee]:
        return await once(
            lambda: service.set_payee(
                conn, ids=runtime.ids, caller=caller, customer_id=customer_id, data=data
            )
        )

    @get(
        "/{customer_id:str}",
        operation_id="getPayee",
        responses=problem_docs.responses("getPayee", {404: ("payee_not_found",)}),
        summary="A customer's payout details, masked",
    )
    async def get_payee(
        self, customer_id: CustomerIdPath, conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Payee:
        return await service.get_payee(
            conn, ids=runtime.ids, caller=caller, customer_id=customer_id
        )

    @get(
        "/{customer_id:str}/totals",
        operation_id="getPayeeTotals",
        responses=problem_docs.responses("getPayeeTotals", {422: ("invalid_year",)}),
        summary="What a customer was paid in a year, per currency",
        description="The sum and count of their payout lines that stand paid (a line failed "
        "after payment gave its money back and does not count), by the day their batch was "
        "marked paid in the merchant's time zone; per currency and kind (cash, store credit). "
        "Empty for a customer never paid.",
    )
    async def totals(
        self, customer_id: CustomerIdPath, year: YearQuery, conn: Conn, caller: CallerDep
    ) -> PayeeTotals:
        return await service.totals(conn, caller=caller, customer_id=customer_id, year=year)


@get(
    "/v1/payee-totals",
    operation_id="getPayeeYearTotals",
    operation_class=JsonOrCsv,
    tags=["payees"],
    responses=problem_docs.responses("getPayeeYearTotals", {422: ("invalid_year",)}),
    summary="Every payee's totals for a year (JSON or CSV), for tax forms",
    description="One row per payee, currency and kind, with the payout details on file now: "
    "in full for a key with the finance scope (or an unrestricted key), masked for a "
    "read-only key (`masked` says which). Paid as in getPayeeTotals. Streamed.",
)
async def payee_year_totals(
    request: Request, year: YearQuery, conn: Conn, caller: CallerDep, runtime: RuntimeDep
) -> Response[YearTotals]:
    time_zone = await service.check_year(conn, caller=caller, year=year)
    if wants_csv(request.headers.get("accept", "")):
        return Stream(
            service.year_totals_csv(runtime.pool, caller=caller, year=year),
            media_type="text/csv",
            headers={
                "content-disposition": f'attachment; filename="payee-totals-{year}.csv"',
                "cache-control": "no-store",
            },
        )
    answer = await service.year_totals(runtime.pool, caller=caller, year=year, time_zone=time_zone)
    return Response(answer, headers={"cache-control": "no-store"})
