"""HTTP handlers for stories (secret key) and the public social-proof figures (no key)."""

from __future__ import annotations

import hashlib

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.stories import service
from referral.stories.schemas import SocialProof, Story, StoryCreate, StoryStatus, StoryUpdate

SOCIAL_PROOF_CACHE = "public, max-age=300, stale-while-revalidate=600"


class StoryController(Controller):
    path = "/v1/stories"
    tags = ["stories"]

    @post(
        operation_id="createStory",
        responses=problem_docs.responses(
            "createStory",
            {
                404: ("reward_not_found", "program_not_found", "advocate_not_found"),
                409: ("reward_not_eligible",),
                422: ("invalid_story_text",),
            },
            once=True,
            replay=Story,
        ),
        summary="Publish (or submit for moderation) an advocate's story about a reward",
        description="The reward must be the advocate's own approved or paid reward (a "
        "referral reward or a milestone bonus). Without `text`, the program's default "
        "sentence in its language. Published at once when the program has "
        "`stories_auto_publish`, else pending. One story per reward: 201 when created, 200 "
        "with the existing story after.",
    )
    async def create(
        self,
        data: JSONBody[StoryCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Story]:
        return await once(
            lambda: service.create(conn, runtime=runtime, caller=caller, data=data), status=201
        )

    @get(
        "/{story_id:str}",
        operation_id="getStory",
        responses=problem_docs.responses("getStory", {404: ("story_not_found",)}),
        summary="Read a story with its figures",
        description="Views (link-preview bots not counted), shares per channel, clicks on "
        "links carrying the story, and the signups, orders and referred revenue (order "
        "totals less refunds, minor units per currency) attributed through it.",
    )
    async def read(
        self, story_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Story:
        return await service.get(conn, runtime=runtime, caller=caller, story_id=story_id)

    @patch(
        "/{story_id:str}",
        operation_id="updateStory",
        responses=problem_docs.responses(
            "updateStory", {404: ("story_not_found",), 422: ("invalid_story_text",)}
        ),
        summary="Moderate or edit a story",
        description="`status`: pending, published or hidden. A hidden story's page answers "
        "404; publishing it again brings the page back.",
    )
    async def update(
        self,
        story_id: FromPath[str],
        data: JSONBody[StoryUpdate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Story:
        return await service.update(
            conn, runtime=runtime, caller=caller, story_id=story_id, data=data
        )

    @get(
        operation_id="listStories",
        responses=problem_docs.responses(
            "listStories", {404: ("story_not_found", "program_not_found", "advocate_not_found")}
        ),
        summary="List stories",
    )
    async def list(
        self,
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        program_id: FromQuery[str | None] = None,
        advocate_id: FromQuery[str | None] = None,
        status: FromQuery[StoryStatus | None] = None,
        *,
        listing: Listing,  # after the filters: the documented parameter order stays
    ) -> Page[Story]:
        stories, more = await service.list_stories(
            conn,
            runtime=runtime,
            caller=caller,
            listing=listing,
            program_id=program_id,
            advocate_id=advocate_id,
            status=status,
        )
        return Page(data=stories, has_more=more)


@get(
    "/social-proof/{program_id:str}",
    operation_id="getSocialProof",
    responses=problem_docs.responses("getSocialProof", {404: ("program_not_found",)}, keyed=False),
    summary="Public social proof of a program",
    description="No key: for a shop to embed. Friends who joined this month and the latest "
    "published stories, with `Cache-Control` and an `ETag` (send `If-None-Match` for a 304). "
    "Open to any origin (CORS).",
    tags=["stories"],
)
async def social_proof(
    request: Request, program_id: FromPath[str], conn: Conn, runtime: RuntimeDep
) -> Response[SocialProof]:
    body = msgspec.json.encode(
        await service.social_proof(conn, runtime=runtime, program_id=program_id)
    )
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "etag": etag,
        "cache-control": SOCIAL_PROOF_CACHE,
        "access-control-allow-origin": "*",
        "vary": "Accept-Encoding",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
