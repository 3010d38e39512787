"""The demo merchant, program and advocate that `make run` prints, created once."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from referral.advocates import service as advocates
from referral.advocates.schemas import AdvocateUpsert
from referral.merchants import service as merchants
from referral.merchants.service import Caller
from referral.programs import service as programs
from referral.programs.schemas import ProgramCreate, RewardRule, RewardSettings
from referral.runtime import Runtime

DEMO_CUSTOMER = "demo-advocate"


@dataclass(frozen=True)
class Demo:
    secret_key: str
    publishable_key: str
    program_id: str
    advocate_id: str
    code: str
    link: str
    qr_png: str


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
    return Demo(
        secret_key=keys["secret_key"],
        publishable_key=keys["publishable_key"],
        program_id=public_program_id,
        advocate_id=advocate.id,
        code=advocate.code,
        link=advocate.link,
        qr_png=advocate.qr.png,
    )


def banner(demo: Demo, base_url: str) -> str:
    key = demo.secret_key
    return f"""
  referral is running on {base_url}

  demo secret key   {key}
  demo program      {demo.program_id}
  demo advocate     {demo.advocate_id}  (code {demo.code})
  referral link     {demo.link}
  QR code           {demo.qr_png}
  API docs          {base_url}/openapi

  try:
    curl -i {demo.link}
    curl -H "Authorization: Bearer {key}" {base_url}/v1/advocates/{demo.advocate_id}
    curl -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
         -d '{{"program_id": "{demo.program_id}", "customer_id": "cus_42"}}' {base_url}/v1/advocates
"""
