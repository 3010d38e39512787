"""The demo merchant, program and advocate that `make run` prints, created once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from referral.advocates import service as advocates
from referral.advocates.schemas import AdvocateUpsert
from referral.attribution import service as checkout
from referral.attribution.schemas import OrderRequest
from referral.merchants import service as merchants
from referral.merchants.service import Caller
from referral.pages import service as share_page
from referral.programs import service as programs
from referral.programs.schemas import ProgramCreate, RewardRule, RewardSettings
from referral.rewards import service as rewards
from referral.runtime import Runtime
from referral.stories import service as stories
from referral.stories.schemas import StoryCreate, StoryUpdate

DEMO_CUSTOMER = "demo-advocate"
DEMO_STORY_ORDER = "demo-story-order"
# A fixed expiry keeps the printed share-page URL the same on every start (dev data only).
DEMO_SHARE_EXPIRY = datetime(2099, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Demo:
    secret_key: str
    publishable_key: str
    program_id: str
    advocate_id: str
    code: str
    link: str
    qr_png: str
    share_page: str
    story: str | None


async def seed_demo(pool: asyncpg.Pool, runtime: Runtime, keys: dict[str, str]) -> Demo:
    async with pool.acquire() as conn, conn.transaction():
        # One seed at a time, even with several instances starting.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('referral.seed_demo'))")
        caller = await merchants.authenticate(conn, keys["secret_key"])
        if caller is None:
            merchant = (await merchants.create_merchant(conn, "Demo Shop"))["test"]
            await merchants.create_key(
                conn, merchant.id, "secret", label="demo", raw=keys["secret_key"]
            )
            await merchants.create_key(
                conn, merchant.id, "publishable", label="demo", raw=keys["publishable_key"]
            )
            caller = Caller(merchant_id=merchant.id, mode="test", kind="secret")
        program_id = await conn.fetchval(
            "SELECT id FROM programs WHERE merchant_id = $1 ORDER BY id LIMIT 1", caller.merchant_id
        )
        if program_id is None:
            base = runtime.settings.public_base_url
            program = await programs.create(
                conn,
                runtime.ids,
                caller,
                ProgramCreate(
                    name="Demo: give 10 EUR, get 10 EUR",
                    landing_url=f"{base}/demo/landing",
                    hold_days=0,
                    rewards=RewardSettings(
                        advocate=RewardRule(kind="cash", amounts={"EUR": 1000}),
                        friend=RewardRule(kind="coupon", amounts={"EUR": 1000}),
                        minimum_order={"EUR": 2000},
                    ),
                ),
            )
            public_program_id = program.id
        else:
            public_program_id = runtime.ids.encode("program", program_id)
        advocate, _ = await advocates.upsert(
            conn,
            runtime,
            caller,
            AdvocateUpsert(
                program_id=public_program_id, customer_id=DEMO_CUSTOMER, name="Anna (demo)"
            ),
        )
        story_url = await _published_story(conn, runtime, caller, advocate)
        share = share_page.share_url_until(runtime.settings, advocate.id, DEMO_SHARE_EXPIRY)
    return Demo(
        share_page=share.url,
        story=story_url,
        secret_key=keys["secret_key"],
        publishable_key=keys["publishable_key"],
        program_id=public_program_id,
        advocate_id=advocate.id,
        code=advocate.code,
        link=advocate.link,
        qr_png=advocate.qr.png,
    )


async def _published_story(conn: asyncpg.Connection, runtime: Runtime, caller: Caller, advocate):
    """The demo advocate's story, told once: a demo friend's order with her code, its
    reward approved, and a published story about it. Later starts find the story."""
    existing = await conn.fetchrow(
        "SELECT slug FROM stories WHERE merchant_id = $1 AND advocate_id = $2 LIMIT 1",
        caller.merchant_id,
        runtime.ids.decode("advocate", advocate.id),
    )
    if existing is not None:
        return stories.story_url(runtime.settings.public_base_url, existing["slug"])
    order, _ = await checkout.record_order(
        conn,
        runtime,
        caller,
        OrderRequest(
            order_id=DEMO_STORY_ORDER,
            customer_id="demo-friend",
            email="demo.friend@example.com",
            codes=[advocate.code],
            subtotal=5000,
            total=5000,
            currency="EUR",
            occurred_at=datetime.now(UTC),
        ),
    )
    earned = [r for r in order.rewards if r.side == "advocate"]
    if not earned:
        return None
    reward_id = runtime.ids.decode("reward", earned[0].id)
    if earned[0].status in ("pending", "in_review"):
        await rewards.approve(
            conn, runtime.ids, caller.merchant_id, reward_id, reason="demo", actor="demo"
        )
    row, _ = await stories.create(
        conn,
        runtime,
        caller,
        StoryCreate(advocate_id=advocate.id, reward_id=earned[0].id, show_first_name=True),
    )
    story_id = runtime.ids.encode("story", row["id"])
    story = await stories.update(conn, runtime, caller, story_id, StoryUpdate(status="published"))
    return story.url


def banner(demo: Demo, base_url: str) -> str:
    key = demo.secret_key
    return f"""
  referral is running on {base_url}

  demo secret key   {key}
  demo program      {demo.program_id}
  demo advocate     {demo.advocate_id}  (code {demo.code})
  referral link     {demo.link}
  QR code           {demo.qr_png}
  share page        {demo.share_page}
  story             {demo.story or "(none: the demo order earned no reward)"}
  API docs          {base_url}/openapi

  try:
    curl -i {demo.link}
    curl -H "Authorization: Bearer {key}" {base_url}/v1/advocates/{demo.advocate_id}
    curl -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
         -d '{{"program_id": "{demo.program_id}", "customer_id": "cus_42"}}' {base_url}/v1/advocates
"""
