"""Events as `GET /v1/events` shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Event(msgspec.Struct):
    id: str
    type: str
    data: dict[str, Any]
    created_at: datetime
    object: str = "event"
