"""HTTP handlers for webhook endpoints, their attempts, resend and recover."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody

from referral.http.deps import CallerDep, Conn, Listing, OnceDep, RuntimeDep
from referral.lib import problem_docs
from referral.lib.pagination import Page
from referral.webhooks import service
from referral.webhooks.schemas import (
    Attempt,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointDeleted,
    EndpointUpdate,
    Recovered,
    RecoverRequest,
    Resent,
    SecretRotated,
)

_NOT_FOUND = ("webhook_endpoint_not_found",)
_DISABLED = ("webhook_endpoint_disabled",)
_CHECKS = ("invalid_webhook_url", "unknown_event_type")


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["webhooks"]

    @post(
        operation_id="createWebhookEndpoint",
        responses=problem_docs.responses(
            "createWebhookEndpoint", {422: _CHECKS}, once=True, replay=EndpointCreated
        ),
        summary="Add a webhook endpoint",
        description="Events are POSTed to `url` as they happen, signed the Standard Webhooks "
        "way (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the `secret` this "
        "answer shows once. Live mode: https only, and only to public addresses (checked "
        "again after DNS at every attempt); test mode also allows http, localhost and private "
        "networks. `event_types`: exact types, `category.*` or `*` (the default); the types "
        "and their payloads are the `webhooks` section of this document.",
    )
    async def create(
        self,
        data: JSONBody[EndpointCreate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[EndpointCreated]:
        salt = runtime.settings.hashids_salt
        return await once(
            lambda: service.create_endpoint(conn, salt=salt, caller=caller, data=data)
        )

    @get(
        operation_id="listWebhookEndpoints",
        responses=problem_docs.responses("listWebhookEndpoints", {404: _NOT_FOUND}),
        summary="List webhook endpoints",
    )
    async def list(
        self, conn: Conn, caller: CallerDep, runtime: RuntimeDep, listing: Listing
    ) -> Page[Endpoint]:
        return await service.list_endpoints(
            conn, salt=runtime.settings.hashids_salt, caller=caller, listing=listing
        )

    @get(
        "/{endpoint_id:str}",
        operation_id="getWebhookEndpoint",
        responses=problem_docs.responses("getWebhookEndpoint", {404: _NOT_FOUND}),
        summary="Read a webhook endpoint",
        description="`enabled` false with `disabled_reason`: `manual`, `gone` (it answered "
        "410) or `failing` (every attempt failed for 5 days). The secret is never shown "
        "again: rotate it to get a new one.",
    )
    async def read(
        self, endpoint_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> Endpoint:
        return await service.get_endpoint(
            conn, salt=runtime.settings.hashids_salt, caller=caller, endpoint_id=endpoint_id
        )

    @patch(
        "/{endpoint_id:str}",
        operation_id="updateWebhookEndpoint",
        responses=problem_docs.responses("updateWebhookEndpoint", {404: _NOT_FOUND, 422: _CHECKS}),
        summary="Change a webhook endpoint",
        description="Fields left out keep their value. `enabled: false` keeps what comes "
        "meanwhile as failed deliveries; after `enabled: true`, `recover` sends them.",
    )
    async def update(
        self,
        endpoint_id: FromPath[str],
        data: JSONBody[EndpointUpdate],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
    ) -> Endpoint:
        return await service.update_endpoint(
            conn,
            salt=runtime.settings.hashids_salt,
            caller=caller,
            endpoint_id=endpoint_id,
            data=data,
        )

    @delete(
        "/{endpoint_id:str}",
        operation_id="deleteWebhookEndpoint",
        status_code=200,
        responses=problem_docs.responses("deleteWebhookEndpoint", {404: _NOT_FOUND}),
        summary="Delete a webhook endpoint",
        description="With its secrets, deliveries and attempts; nothing more is sent to it.",
    )
    async def remove(
        self, endpoint_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep
    ) -> EndpointDeleted:
        return await service.delete_endpoint(
            conn, salt=runtime.settings.hashids_salt, caller=caller, endpoint_id=endpoint_id
        )

    @post(
        "/{endpoint_id:str}/rotate-secret",
        operation_id="rotateWebhookSecret",
        status_code=200,
        responses=problem_docs.responses("rotateWebhookSecret", {404: _NOT_FOUND}, once=True),
        summary="Rotate an endpoint's signing secret",
        description="The new secret is shown once. For 24 hours every delivery carries two "
        "signatures (`v1,<old> v1,<new>`), so the receiver can switch without missing one.",
    )
    async def rotate(
        self,
        endpoint_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[SecretRotated]:
        salt = runtime.settings.hashids_salt
        return await once(
            lambda: service.rotate_secret(conn, salt=salt, caller=caller, endpoint_id=endpoint_id)
        )

    @post(
        "/{endpoint_id:str}/test",
        operation_id="testWebhookEndpoint",
        status_code=200,
        responses=problem_docs.responses(
            "testWebhookEndpoint", {404: _NOT_FOUND, 409: _DISABLED}, once=True
        ),
        summary="Send a `webhook.test` now",
        description="Only to this endpoint, signed like every delivery; answers the attempt: "
        "its status, time and the start of the response (`succeeded` false says it failed).",
    )
    async def test(
        self,
        endpoint_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Attempt]:
        settings = runtime.settings
        return await once(
            lambda: service.send_test(
                conn, settings=settings, caller=caller, endpoint_id=endpoint_id
            )
        )

    @post(
        "/{endpoint_id:str}/recover",
        operation_id="recoverWebhookEndpoint",
        status_code=200,
        responses=problem_docs.responses(
            "recoverWebhookEndpoint",
            {404: _NOT_FOUND, 409: _DISABLED, 422: ("invalid_time_range",)},
            once=True,
        ),
        summary="Resend every failed delivery of a time window",
        description="After downtime: each delivery to this endpoint that failed (or was kept "
        "while it was disabled) for an event from `since` until `until` (default: now) is "
        "due again now, under its own `webhook-id`.",
    )
    async def recover(
        self,
        endpoint_id: FromPath[str],
        data: JSONBody[RecoverRequest],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Recovered]:
        salt = runtime.settings.hashids_salt
        return await once(
            lambda: service.recover(
                conn, salt=salt, caller=caller, endpoint_id=endpoint_id, data=data
            )
        )

    @post(
        "/{endpoint_id:str}/events/{event_id:str}/resend",
        operation_id="resendWebhookEvent",
        status_code=200,
        responses=problem_docs.responses(
            "resendWebhookEvent",
            {404: (*_NOT_FOUND, "event_not_found"), 409: _DISABLED},
            once=True,
        ),
        summary="Send one event to the endpoint again",
        description="Due now, with the same `webhook-id` (receivers dedupe on it), whether "
        "it succeeded before, failed, or never went to this endpoint.",
    )
    async def resend(
        self,
        endpoint_id: FromPath[str],
        event_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        once: OnceDep,
    ) -> Response[Resent]:
        salt = runtime.settings.hashids_salt
        return await once(
            lambda: service.resend(
                conn,
                salt=salt,
                events=runtime.ids,
                caller=caller,
                endpoint_id=endpoint_id,
                event_id=event_id,
            )
        )

    @get(
        "/{endpoint_id:str}/attempts",
        operation_id="listWebhookEndpointAttempts",
        responses=problem_docs.responses(
            "listWebhookEndpointAttempts", {404: (*_NOT_FOUND, "webhook_attempt_not_found")}
        ),
        summary="List an endpoint's delivery attempts",
        description="Every attempt, oldest first: time, status or error, duration and the "
        "first 1,000 characters of the answer.",
    )
    async def attempts(
        self,
        endpoint_id: FromPath[str],
        conn: Conn,
        caller: CallerDep,
        runtime: RuntimeDep,
        listing: Listing,
    ) -> Page[Attempt]:
        return await service.list_attempts(
            conn,
            salt=runtime.settings.hashids_salt,
            events=runtime.ids,
            caller=caller,
            listing=listing,
            endpoint_id=endpoint_id,
        )


@get(
    "/v1/events/{event_id:str}/webhook-attempts",
    operation_id="listEventWebhookAttempts",
    responses=problem_docs.responses(
        "listEventWebhookAttempts", {404: ("event_not_found", "webhook_attempt_not_found")}
    ),
    tags=["webhooks"],
    summary="List the delivery attempts of one event",
    description="To every endpoint, oldest first.",
)
async def list_event_attempts(
    event_id: FromPath[str], conn: Conn, caller: CallerDep, runtime: RuntimeDep, listing: Listing
) -> Page[Attempt]:
    return await service.list_attempts(
        conn,
        salt=runtime.settings.hashids_salt,
        events=runtime.ids,
        caller=caller,
        listing=listing,
        event_id=event_id,
    )
