"""The demo merchant, program and advocate that `make run` prints, created once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from referral.advocates import service as advocates
from referral.advocates.schemas import AdvocateUpsert
from referral.console import service as console
from referral.demo import repo
from referral.merchants import service as merchants
from referral.merchants.service import Caller
from referral.orders import service as orders
from referral.orders.schemas import OrderRequest
from referral.programs import service as programs
from referral.programs.schemas import ProgramCreate, RewardRule, RewardSettings
from referral.rewards import service as rewards
from referral.runtime import Runtime
from referral.share_page import service as share_page
from referral.stories import service as stories
from referral.stories.schemas import StoryCreate, StoryUpdate

DEMO_CUSTOMER = "demo-advocate"
DEMO_STORY_ORDER = "demo-story-order"
# A fixed expiry keeps the printed share-page URL the same on every start (dev data only).
DEMO_SHARE_EXPIRY = datetime(2099, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Demo:
    merchants: dict[str, str]  # mode to public merchant id: the demo keys' (test) and its twin
    secret_key: str
    publishable_key: str
    program_id: str
    advocate_id: str
    code: str
    link: str
    qr_png: str
    share_page: str
    story: str | None
    console_link: str  # one-time: each start prints a new one


async def seed_demo(pool: asyncpg.Pool, *, runtime: Runtime, keys: dict[str, str]) -> Demo:
    async with pool.acquire() as conn, conn.transaction():
        await repo.lock_seed(conn)  # one seed at a time, even with several instances starting
        caller = await merchants.authenticate(conn, raw=keys["secret_key"])
        if caller is None:
            merchant = (await merchants.create_merchant(conn, name="Demo Shop"))["test"]
            for kind in ("secret", "publishable"):
                await merchants.create_key(
                    conn, merchant_id=merchant.id, kind=kind, label="demo", raw=keys[f"{kind}_key"]
                )
            caller = Caller(merchant_id=merchant.id, mode="test", kind="secret")
        program_id = await repo.first_program(conn, caller.merchant_id)
        if program_id is None:
            base = runtime.settings.public_base_url
            program = await programs.create(
                conn,
                runtime=runtime,
                caller=caller,
                data=ProgramCreate(
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
            runtime=runtime,
            caller=caller,
            data=AdvocateUpsert(
                program_id=public_program_id,
                customer_id=DEMO_CUSTOMER,
                name="Anna (demo)",
                # An email, so the walk-through's PayPal file has a line to pay.
                email="anna.demo@example.com",
            ),
        )
        story_url = await _published_story(conn, runtime, caller, advocate)
        twins = await repo.twins(conn, caller.merchant_id)
        share = share_page.share_url_until(
            runtime.settings, advocate_id=advocate.id, expires_at=DEMO_SHARE_EXPIRY
        )
        console_link = await console.create_sign_in_link(
            conn, ids=runtime.ids, settings=runtime.settings, merchant_id=caller.merchant_id
        )
    return Demo(
        merchants={mode: runtime.ids.encode("merchant", id_) for mode, id_ in twins.items()},
        share_page=share.url,
        story=story_url,
        secret_key=keys["secret_key"],
        publishable_key=keys["publishable_key"],
        program_id=public_program_id,
        advocate_id=advocate.id,
        code=advocate.code,
        link=advocate.link,
        qr_png=advocate.qr.png,
        console_link=console_link,
    )


async def _published_story(conn: asyncpg.Connection, runtime: Runtime, caller: Caller, advocate):
    """The demo advocate's story, told once: a demo friend's order with her code, its
    reward approved, and a published story about it. Later starts find the story."""
    slug = await repo.story_slug(
        conn, caller.merchant_id, runtime.ids.decode("advocate", advocate.id)
    )
    if slug is not None:
        return stories.story_url(runtime.settings.public_base_url, slug)
    order, _ = await orders.record_order(
        conn,
        runtime=runtime,
        caller=caller,
        data=OrderRequest(
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
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            reward_id=reward_id,
            reason="demo",
            actor="demo",
        )
    told, _ = await stories.create(
        conn,
        runtime=runtime,
        caller=caller,
        data=StoryCreate(advocate_id=advocate.id, reward_id=earned[0].id, show_first_name=True),
    )
    story = await stories.update(
        conn,
        runtime=runtime,
        caller=caller,
        story_id=told.id,
        data=StoryUpdate(status="published"),
    )
    return story.url


def banner(demo: Demo, base_url: str) -> str:
    key = demo.secret_key
    about = {"test": "the demo keys' merchant", "live": "its live-mode twin"}
    merchants = "".join(
        f"  {f'{mode} merchant':<18}{merchant_id}  ({about[mode]})\n"
        for mode, merchant_id in demo.merchants.items()
    )
    return f"""
  referral is running on {base_url}

{merchants}  demo secret key   {key}
  demo program      {demo.program_id}
  demo advocate     {demo.advocate_id}  (code {demo.code})
  referral link     {demo.link}
  QR code           {demo.qr_png}
  share page        {demo.share_page}
  story             {demo.story or "(none: the demo order earned no reward)"}
  API docs          {base_url}/openapi
  console           {demo.console_link}
                    (signs one person in, once, within 15 minutes; a new one:
                     .venv/bin/referral console-link --merchant {demo.merchants["test"]})
  CLI               .venv/bin/referral merchants list   (or: make cli ARGS="merchants list")

  try:
    curl -i {demo.link}
    curl -H "Authorization: Bearer {key}" {base_url}/v1/merchant
    curl -H "Authorization: Bearer {key}" {base_url}/v1/advocates/{demo.advocate_id}
    curl -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
         -d '{{"program_id": "{demo.program_id}", "customer_id": "cus_42"}}' {base_url}/v1/advocates
"""
