"""The `referral` command as an operator runs it: a subprocess against the test database,
with the test settings' secrets in its environment."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli_env(settings, **extra: str) -> dict[str, str]:
    """The environment a `referral` command needs to work on the test's database, with the
    test's secrets (so ids and signatures match the app's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRAL_")}
    env.update(
        DATABASE_URL=settings.database_url,
        REFERRAL_HASHIDS_SALT=settings.hashids_salt,
        REFERRAL_CLICK_TOKEN_KEY=settings.click_token_key,
        REFERRAL_IP_HASH_KEY=settings.ip_hash_key,
        LOG_FORMAT="json",
        **extra,
    )
    return env


async def referral(settings, *args: str, expect: int = 0) -> str:
    """stdout of a successful run, stderr of a refused one."""
    env = cli_env(settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "referral",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == expect, (args, out.decode(), err.decode())
    return out.decode() if expect == 0 else err.decode()
