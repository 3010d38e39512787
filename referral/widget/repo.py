"""SQL for the widget's friend offer: the public face of a link's program (its friend
reward rule, look and language, and the shop's name), read with the shop's own tables in
one join, as the share page reads its advocate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from referral.lib.db import one

OFFER = """
SELECT p.rewards -> 'friend' AS friend_rule, p.brand_colour, p.locale, m.name AS shop,
       p.status, p.starts_at, p.ends_at
FROM programs p JOIN merchants m ON m.id = p.merchant_id
WHERE p.merchant_id = $1::bigint AND p.id = $2::bigint
"""


class OfferRow(msgspec.Struct, frozen=True):
    friend_rule: dict[str, Any] | None
    brand_colour: str
    locale: str
    shop: str
    status: str
    starts_at: datetime
    ends_at: datetime | None


async def offer(conn: asyncpg.Connection, merchant_id: int, program_id: int) -> OfferRow | None:
    return one(OfferRow, await conn.fetchrow(OFFER, merchant_id, program_id))
