"""`referral webhooks send`: the sender in a process of its own (beside web workers started
with WEBHOOK_INTERVAL_SECONDS=0) delivers what the outbox holds, signed as the app would,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from standardwebhooks import Webhook

from tests.commands import cli_env
from tests.sandbox import CLI, ROOT
from tests.webhooks.conftest import add_endpoint, emit, event_ids


async def test_a_sender_process_delivers_and_stops_on_sigterm(
    client, tenant, pool, settings, receiver
):
    endpoint = await add_endpoint(client, tenant, receiver.url())
    await emit(pool, tenant, order_id="o-sent-elsewhere")
    env = cli_env(settings, WEBHOOK_TIMEOUT_SECONDS="10")
    sender = await asyncio.create_subprocess_exec(
        *CLI, "webhooks", "send", "--interval", "0.05",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        (got,) = await asyncio.to_thread(receiver.wait_for, 1)
        assert got.headers["webhook-id"] in await event_ids(client, tenant)
        body = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert body["data"] == {"order_id": "o-sent-elsewhere"}
    finally:
        sender.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(sender.communicate(), timeout=30)
    assert sender.returncode == 0, err
    assert b"Traceback" not in err
