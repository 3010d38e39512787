"""`/v1/customers/{customer_id}/preferences`: the preference centre, set by the shop's
backend (the advocate sets theirs on the share page)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, put
from litestar.params import JSONBody, Parameter

from referral.http.deps import CallerDep, Conn, OnceDep
from referral.lib import problem_docs
from referral.preferences import service
from referral.preferences.schemas import Preferences, PreferencesSet

CustomerIdPath = Annotated[
    str,
    Parameter(description="The shop's id for the customer", min_length=1, max_length=200),
]


class PreferencesController(Controller):
    path = "/v1/customers"
    tags = ["preferences"]

    @put(
        "/{customer_id:str}/preferences",
        operation_id="putPreferences",
        status_code=200,
        responses=problem_docs.responses("putPreferences", once=True),
        summary="Set how a customer wants to be contacted, about what, and their birthday",
        description="The whole of their preferences, replaced. Each consent given or "
        "withdrawn (a channel, a topic) is kept with its time and who gave it (`key`: the "
        "shop's backend; `advocate`: on their share page). Events about the customer carry "
        "their channels and topics as they stand.",
    )
    async def put_preferences(
        self,
        customer_id: CustomerIdPath,
        data: JSONBody[PreferencesSet],
        conn: Conn,
        caller: CallerDep,
        once: OnceDep,
    ) -> Response[Preferences]:
        return await once(
            lambda: service.set_preferences(conn, caller=caller, customer_id=customer_id, data=data)
        )

    @get(
        "/{customer_id:str}/preferences",
        operation_id="getPreferences",
        responses=problem_docs.responses("getPreferences", {404: ("preferences_not_found",)}),
        summary="A customer's preferences and the consents on record",
    )
    async def get_preferences(
        self, customer_id: CustomerIdPath, conn: Conn, caller: CallerDep
    ) -> Preferences:
        return await service.get_set(conn, merchant_id=caller.merchant_id, customer_id=customer_id)
