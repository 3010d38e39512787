"""`/v1/customers/{customer_id}/…`: a customer's data rights, asked by the shop for them."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from referral.customers import service
from referral.customers.schemas import CustomerErasure, CustomerExport
from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib import problem_docs

CustomerIdPath = Annotated[
    str,
    Parameter(
        description="The shop's id for the customer, as its checkout sends it",
        min_length=1,
        max_length=200,
    ),
]


class CustomerController(Controller):
    path = "/v1/customers"
    tags = ["customers"]

    @get(
        "/{customer_id:str}/export",
        operation_id="exportCustomer",
        responses={
            200: ResponseSpec(
                CustomerExport,
                description="The whole document, streamed as it is read",
                generate_examples=False,
            ),
            **problem_docs.responses("exportCustomer", {404: ("customer_not_found",)}),
        },
        media_type="application/json",
        summary="Everything held about one customer (a data subject access request)",
        description="As advocate and as friend, in this merchant: their advocates (profile, "
        "contact preference, codes), the clicks on their links and theirs as a friend (when, "
        "which channel), shares, stories, the referrals they made (without the friends' data, "
        "which is other people's) and the ones that brought them, signups, orders, rewards "
        "with their ledger entries and coupons, payout lines, and fraud signals as the keyed "
        "hashes they are. Guest orders and referrals are found by the addresses their "
        "advocate profile and orders hold. One JSON document, from one snapshot.",
    )
    async def export(
        self, customer_id: CustomerIdPath, conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Stream:
        await service.check_exportable(
            conn, runtime=runtime, caller=caller, customer_id=customer_id
        )
        return Stream(
            service.export(runtime, caller=caller, customer_id=customer_id),
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    @post(
        "/{customer_id:str}/erase",
        operation_id="eraseCustomer",
        responses=problem_docs.responses(
            "eraseCustomer",
            {404: ("customer_not_found",)},
            once=True,
            replay=CustomerErasure,
        ),
        status_code=201,
        summary="Erase a customer's personal data (right to erasure)",
        description="Replaces their email, name, customer id, IP and device hashes, payee "
        "details, story text and first name with tombstones, unpublishes their stories and "
        "disables their codes (their links stop working). Every ledger amount, reward state "
        "and payout line stays, so balances, reports and exported batches still add up. 201 "
        "when erased now; 200 with the same erasure when asked again for someone not seen "
        "since. A customer who orders again afterwards is a new person. Recorded as the "
        "event `customer.erased` and in the audit log, neither holding what was erased.",
    )
    async def erase(
        self,
        customer_id: CustomerIdPath,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[CustomerErasure]:
        return await once(
            lambda: service.erase(conn, runtime=runtime, caller=caller, customer_id=customer_id)
        )
