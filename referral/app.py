"""The application factory: `create_app(settings)` builds a Litestar app with its own runtime.

`asgi()` is what the ASGI server loads: settings from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import structlog
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.openapi.spec import Tag as OpenAPITag
from litestar.routes import HTTPRoute

from referral import settings as settings_module
from referral.advocates.api import AdvocateController, CodeController, SuspensionController
from referral.analytics import service as analytics
from referral.analytics.api import AnalyticsController
from referral.audit.api import list_audit_log
from referral.console.pages import console_router
from referral.coupons.api import CouponController, CouponPoolController
from referral.customers import service as customers
from referral.customers.api import CustomerController
from referral.demo.api import demo_router
from referral.events.api import list_events
from referral.experiments.api import ExperimentController
from referral.fraud.api import FraudPolicyController
from referral.http import access
from referral.http.body import JsonRequest
from referral.http.deps import DEPENDENCIES, guard_keyed_routes
from referral.imports import service as imports
from referral.imports.api import ImportController
from referral.lib import metrics
from referral.lib.db import create_pool, migrate, ping
from referral.lib.errors import EXCEPTION_HANDLERS, RETRY_AFTER_SECONDS, problem_guard
from referral.lib.logging import configure_logging, request_id_middleware
from referral.links import service as links
from referral.links.api import links_router
from referral.merchants.api import KeyController, MerchantController
from referral.merchants.service import KEY_CACHE_SECONDS
from referral.openapi import StructSchemaPlugin, webhooks_section
from referral.operations.api import metrics_page
from referral.orders.api import OrderController
from referral.payees.api import PayeeController, payee_year_totals
from referral.payouts.api import PayoutController
from referral.points import service as points
from referral.points.api import CustomerPointsController, PointsRulesController
from referral.preferences.api import PreferencesController
from referral.programs.api import ProgramController
from referral.referrals.api import CheckoutController, ReferralController, ReviewController
from referral.rewards import service as rewards
from referral.rewards.api import LedgerController, RewardController
from referral.runtime import Runtime
from referral.settings import Settings
from referral.share_page.api import share_page_router
from referral.share_page.pages import engagement_router
from referral.stories.api import StoryController, social_proof
from referral.stories.pages import story_pages_router
from referral.web.docs import SwaggerDocs
from referral.web.security import security_hook
from referral.webhooks.api import WebhookEndpointController, list_event_attempts
from referral.webhooks.delivery import Deliverer
from referral.widget.api import widget_router

log = structlog.get_logger("referral.app")
VERSION = "0.1.0"
CODE_WARM_UP_SECONDS = 60.0
RETENTION_FIRST_RUN_SECONDS = 60.0


@get(
    "/healthz",
    operation_id="health",
    summary="Liveness",
    tags=["operations"],
    include_in_schema=True,
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", operation_id="ready", summary="Readiness: database reachable", tags=["operations"])
async def readyz(state: State) -> Response[dict[str, object]]:
    runtime: Runtime = state.runtime
    try:
        await ping(runtime.pool, within_seconds=2)
    except (OSError, TimeoutError, Exception) as exc:  # any failure means "not ready"
        return Response(
            {"status": "unavailable", "database": type(exc).__name__},
            status_code=503,
            headers={"retry-after": str(RETRY_AFTER_SECONDS)},
        )
    return Response(
        {
            "status": "ready",
            "clicks_pending": runtime.clicks.pending,
            "click_writer_error": runtime.clicks.last_error,
        }
    )


async def _maintain_partitions(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(6 * 3600)
        try:
            await links.ensure_click_partitions(runtime.pool)
        except Exception as exc:  # retried in six hours; the default partition catches rows
            log.warning("click_partition_maintenance_failed", error=type(exc).__name__)


async def _sample_pool(runtime: Runtime) -> None:
    """This worker's pool for /metrics, every second (a scrape reaches one worker only)."""
    while True:
        metrics.sample_pool(runtime.pool.get_size(), runtime.pool.get_idle_size())
        await asyncio.sleep(1.0)


async def _release_rewards(runtime: Runtime) -> None:
    """Approve rewards whose hold has passed. Several instances may run this at once."""
    interval = runtime.settings.release_interval_seconds
    while True:
        try:
            released = await rewards.release_due(runtime.pool, ids=runtime.ids)
            expired = await rewards.expire_coupons(runtime.pool, ids=runtime.ids)
            lots = await points.expire_due(runtime.pool, ids=runtime.ids)
            await points.earn_birthdays(runtime.pool, ids=runtime.ids)
            if released or expired or lots:
                log.info(
                    "rewards_released",
                    released=released,
                    coupons_expired=expired,
                    points_lots_expired=lots,
                )
        except Exception as exc:  # the next turn tries again
            log.warning("reward_release_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)


async def _keep_rollups(runtime: Runtime) -> None:
    """Book changes into the analytics rollups. Several instances may run this at once."""
    interval = runtime.settings.analytics_interval_seconds
    while True:
        try:
            await analytics.catch_up(runtime.pool, ids=runtime.ids)
        except Exception as exc:  # the marks and deltas stay; the next turn tries again
            log.warning("analytics_rollups_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)


async def _run_imports(runtime: Runtime) -> None:
    """Work queued imports a batch at a time. Several instances may run this at once (each
    batch holds its import FOR UPDATE SKIP LOCKED)."""
    while True:
        try:
            job = await imports.process_batch(runtime.pool, codec=runtime.codec, ids=runtime.ids)
        except Exception as exc:  # the batch rolled back; the next turn takes it again
            log.warning("import_batch_failed", error=type(exc).__name__)
            job = None
        if job is None:
            await asyncio.sleep(runtime.settings.import_interval_seconds)


async def _apply_retention(runtime: Runtime) -> None:
    """Drop what is kept no longer (customers/service.py): a minute after start (so each
    deploy runs it), then every interval. Any number of instances: one runs, the rest skip."""
    await asyncio.sleep(RETENTION_FIRST_RUN_SECONDS)
    while True:
        try:
            await customers.apply_retention(runtime)
        except Exception as exc:  # the next turn tries again; nothing is half dropped
            log.warning("retention_failed", error=type(exc).__name__)
        await asyncio.sleep(runtime.settings.retention_interval_seconds)


async def _deliver_webhooks(runtime: Runtime) -> None:
    """Send due webhooks. Several instances may run this at once (leased, SKIP LOCKED)."""
    async with Deliverer(runtime.pool, runtime.settings) as deliverer:
        await deliverer.run()


def create_app(settings: Settings) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Read at each start, not when built: a built app can be started again against
        # another database (the tests build one app and start it on each test's database).
        settings: Settings = app.state.settings
        await migrate(settings.direct_database_url)
        pool = await create_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            pooling=settings.database_pooling,
        )
        runtime = Runtime.build(settings, pool)
        app.state.runtime = runtime
        await links.ensure_click_partitions(pool)
        runtime.clicks.start()
        background = [
            asyncio.create_task(_maintain_partitions(runtime)),
            asyncio.create_task(_sample_pool(runtime)),
        ]
        # The code cache's change listener (links/service.py, CodeResolver): serve once it
        # listens and holds the codes, or has given up trying for now.
        background.append(asyncio.create_task(runtime.codes.listen(settings.direct_database_url)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.codes.warm.wait(), CODE_WARM_UP_SECONDS)
        if settings.release_interval_seconds > 0:
            background.append(asyncio.create_task(_release_rewards(runtime)))
        if settings.analytics_interval_seconds > 0:
            background.append(asyncio.create_task(_keep_rollups(runtime)))
        if settings.webhook_interval_seconds > 0:
            background.append(asyncio.create_task(_deliver_webhooks(runtime)))
        if settings.retention_interval_seconds > 0:
            background.append(asyncio.create_task(_apply_retention(runtime)))
        if settings.import_interval_seconds > 0:
            background.append(asyncio.create_task(_run_imports(runtime)))
        # What startup made (modules, routes, the app) lives as long as the process: out of
        # the collector's walks, a full collection after a large answer (an analytics year
        # by day) takes a few milliseconds, not twenty.
        gc.freeze()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await runtime.clicks.stop()
            runtime.backtests.close()
            await pool.close()

    handlers: list = [
        healthz,
        readyz,
        metrics_page,
        links_router,
        ProgramController,
        ExperimentController,
        AdvocateController,
        CodeController,
        CheckoutController,
        CouponController,
        CouponPoolController,
        OrderController,
        ReferralController,
        ReviewController,
        FraudPolicyController,
        SuspensionController,
        RewardController,
        LedgerController,
        PayoutController,
        PayeeController,
        payee_year_totals,
        MerchantController,
        KeyController,
        list_audit_log,
        CustomerController,
        PointsRulesController,
        CustomerPointsController,
        PreferencesController,
        ImportController,
        list_events,
        StoryController,
        AnalyticsController,
        WebhookEndpointController,
        list_event_attempts,
        social_proof,
        story_pages_router,
        share_page_router,
        engagement_router,
        console_router,
        widget_router,
    ]
    if settings.demo_pages:
        handlers.append(demo_router)
    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        after_request=security_hook(settings.public_base_url),  # CSP & co. on every HTML page
        request_class=JsonRequest,  # request bodies decoded strictly into the handler's type
        openapi_config=openapi_config(),
        plugins=[StructSchemaPlugin()],  # the spec states what msgspec enforces
        request_max_body_size=1_000_000,
        debug=False,
        logging_config=None,
    )
    # Outside Litestar's routing, so unknown routes and errors get a request id too; the
    # guard answers problem+json for anything that escapes the exception handlers.
    app.asgi_handler = request_id_middleware(problem_guard(app.asgi_handler))
    _answer_options_with_every_method(app)
    access.apply_to_routes(app)
    guard_keyed_routes(app)  # the key and its scopes, checked before a body is read
    return app


def _answer_options_with_every_method(app: Litestar) -> None:
    """Litestar 2 answers OPTIONS with the methods of the first handler registered on a path
    (litestar#4169, fixed in 3): `GET, OPTIONS` on a path that also takes PATCH. Point each
    route's OPTIONS answer at the route as finally built."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"} and handler.handler_name == "options_handler":
                handler._fn = route.create_options_handler(route.path)._fn


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="referral",
        version=VERSION,
        description="Self-hosted referral and word-of-mouth programs for online shops. "
        "Server-to-server calls use a secret key (`Authorization: Bearer sk_…`); publishable "
        "keys (`pk_…`) read public data only. `GET /v1/merchant` says which merchant and "
        "key a call runs as. A revoked key is refused at once by the instance that revoked "
        f"it and by every other instance within {KEY_CACHE_SECONDS} seconds (the key cache). "
        "Errors are RFC "
        "9457 problem+json with a stable `code`.",
        path="/openapi",
        # The docs UI and its files from this deployment (no CDN); the spec at openapi.json.
        render_plugins=[SwaggerDocs(), JsonRenderPlugin(), YamlRenderPlugin()],
        servers=[Server(url="/")],
        tags=[
            OpenAPITag(
                name="merchant",
                description="Who am I, the merchant's settings, and its API keys",
            ),
            OpenAPITag(name="programs", description="Referral campaigns and their settings"),
            OpenAPITag(name="advocates", description="Customers who refer, with their codes"),
            OpenAPITag(name="codes", description="Public referral code checks"),
            OpenAPITag(name="links", description="Public redirect and QR images"),
            OpenAPITag(
                name="checkout", description="The shop's checkout: quote, signups, orders, refunds"
            ),
            OpenAPITag(name="referrals", description="Attributed friends, explained"),
            OpenAPITag(
                name="fraud",
                description="Fraud policies, backtests, and the review of referrals",
            ),
            OpenAPITag(
                name="coupons",
                description="Friend coupons at checkout, and the pools of the shop's own codes",
            ),
            OpenAPITag(name="rewards", description="Rewards and their ledger history"),
            OpenAPITag(name="payouts", description="Payout batches and finance exports"),
            OpenAPITag(
                name="payees",
                description="Where each customer's payouts go, and what they were paid a year",
            ),
            OpenAPITag(name="ledger", description="The books: balances as of any moment, entries"),
            OpenAPITag(name="events", description="The outbox of state changes"),
            OpenAPITag(
                name="customers",
                description="A customer's data rights: everything held about them, erasure",
            ),
            OpenAPITag(
                name="stories", description="Advocates' reward stories and public social proof"
            ),
            OpenAPITag(
                name="analytics", description="Growth reports from the rollups, JSON or CSV"
            ),
            OpenAPITag(
                name="webhooks",
                description="Endpoints the events are delivered to (Standard Webhooks), "
                "their attempts, resend and recover",
            ),
            OpenAPITag(
                name="widget",
                description="The embeddable widget: its script, and the public JSON its "
                "elements read from the shop's pages (CORS, no key)",
            ),
            OpenAPITag(name="operations", description="Health and readiness"),
        ],
        components=Components(
            security_schemes={
                "secretKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="Secret key: sk_test_… or sk_live_…. A key may be restricted "
                    "to scopes; each operation lists those that admit it, and an unrestricted "
                    "key may call every operation. "
                    + "; ".join(f"`{scope}`: {text}" for scope, text in access.SCOPE_TEXT.items())
                    + ". A key without the scope gets 403 `insufficient_scope`.",
                ),
                "publishableKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="Publishable key: pk_test_… or pk_live_…",
                ),
            }
        ),
        use_handler_docstrings=False,
        webhooks=webhooks_section(),
    )


def asgi() -> Litestar:
    """Entry point for the ASGI server (`granian --factory referral.app:asgi`)."""
    settings = settings_module.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
