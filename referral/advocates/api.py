"""HTTP handlers for advocates and codes."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.advocates import service
from referral.advocates.schemas import (
    Advocate,
    AdvocateUpsert,
    CodeInfo,
    ContactPreferenceUpdate,
    ShareUrl,
    ShareUrlCreate,
    VanityCodeCreate,
)
from referral.http import idempotency
from referral.http.deps import CallerDep, Conn, OnceDep, RuntimeDep
from referral.lib.errors import API_ERRORS
from referral.lib.pagination import CreatedBefore, CreatedFrom, Limit, Page, StartingAfter
from referral.pages import service as share_page
from referral.referrals.schemas import ReviewAction


class AdvocateController(Controller):
    path = "/v1/advocates"
    tags = ["advocates"]
    security = [{"secretKey": []}]

    @post(
        operation_id="upsertAdvocate",
        responses=API_ERRORS,
        summary="Get or create a customer's advocate",
        description="Idempotent by (program_id, customer_id): 201 when created, 200 after.",
    )
    async def upsert(
        self,
        request: Request,
        data: JSONBody[AdvocateUpsert],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Advocate]:
        async def effect():
            advocate, created = await service.upsert(conn, runtime, caller, data)
            return (201 if created else 200), advocate

        return await idempotency.run(conn, caller, request, effect)

    @get(
        "/{advocate_id:str}",
        operation_id="getAdvocate",
        responses=API_ERRORS,
        summary="Read an advocate",
    )
    async def read(
        self, advocate_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Advocate:
        return await service.get(conn, runtime, caller, advocate_id)

    @get(operation_id="listAdvocates", responses=API_ERRORS, summary="List advocates")
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        program_id: FromQuery[str | None] = None,
        starting_after: StartingAfter = None,
        created_from: CreatedFrom = None,
        created_before: CreatedBefore = None,
        limit: Limit = 20,
    ) -> Page[Advocate]:
        advocates, more = await service.list_advocates(
            conn,
            runtime,
            caller,
            program_id=program_id,
            starting_after=starting_after,
            created_from=created_from,
            created_before=created_before,
            limit=limit,
        )
        return Page(data=advocates, has_more=more)

    @post(
        "/{advocate_id:str}/codes",
        operation_id="addVanityCode",
        responses=API_ERRORS,
        summary="Give an advocate a vanity code",
        description="4-20 letters or digits, unique deployment-wide (confusable characters "
        "count as one), not a reserved word, not readable as a generated code.",
    )
    async def add_code(
        self,
        request: Request,
        advocate_id: FromPath[str],
        data: JSONBody[VanityCodeCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Advocate]:
        async def effect():
            advocate, created = await service.add_vanity_code(
                conn, runtime, caller, advocate_id, data.code
            )
            return (201 if created else 200), advocate

        return await idempotency.run(conn, caller, request, effect)

    @post(
        "/{advocate_id:str}/share-url",
        operation_id="createShareUrl",
        responses=API_ERRORS,
        summary="A signed link to the advocate's share page",
        description="For the shop to hand to its customer: their link, QR code, share "
        "buttons, referrals, rewards and stories, and their contact preference. The URL is "
        "the key to that one advocate's page; it expires after `expires_in_days` (1-365, "
        "default 30).",
    )
    async def share_url(
        self,
        request: Request,
        advocate_id: FromPath[str],
        data: JSONBody[ShareUrlCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[ShareUrl]:
        async def effect():
            url = await share_page.share_url(
                conn, runtime, caller, advocate_id, data.expires_in_days
            )
            return 201, url

        return await idempotency.run(conn, caller, request, effect)

    @post(
        "/{advocate_id:str}/contact-preference",
        operation_id="setContactPreference",
        responses=API_ERRORS,
        summary="Set how the advocate wants to hear about rewards",
        description="email, sms or none; readable on the advocate and sent with every "
        "advocate-side `reward.*` event as `contact_preference`.",
    )
    async def set_contact_preference(
        self,
        request: Request,
        advocate_id: FromPath[str],
        data: JSONBody[ContactPreferenceUpdate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Response[Advocate]:
        async def effect():
            advocate = await service.set_contact_preference(
                conn, runtime, caller, advocate_id, data.contact_preference
            )
            return 200, advocate

        return await idempotency.run(conn, caller, request, effect)


class CodeController(Controller):
    path = "/v1/codes"
    tags = ["codes"]
    security = [{"secretKey": []}, {"publishableKey": []}]

    @get(
        "/{code:str}",
        operation_id="getCode",
        responses=API_ERRORS,
        summary="Check a referral code",
        description="Readable with a publishable key: codes are public.",
    )
    async def read(
        self, code: FromPath[str], conn: Conn, reader: CallerDep, runtime: RuntimeDep
    ) -> CodeInfo:
        return await service.code_info(conn, runtime, reader, code)


class SuspensionController(Controller):
    path = "/v1/advocates"
    tags = ["fraud"]
    security = [{"secretKey": []}]

    @post(
        "/{advocate_id:str}/reactivate",
        operation_id="reactivateAdvocate",
        responses=API_ERRORS,
        status_code=200,
        summary="Lift the suspension of an advocate's codes",
        description="The rule rejected_referrals suspends an advocate's codes; this enables "
        "them again, and only rejections from now on count towards the limit. Audited in "
        "the outbox (`advocate.codes_reactivated`) with actor and note.",
    )
    async def reactivate(
        self,
        advocate_id: FromPath[str],
        data: JSONBody[ReviewAction],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Advocate]:
        return await once(
            lambda: service.reactivate(
                conn, runtime, caller, advocate_id=advocate_id, actor=data.actor, note=data.note
            )
        )
