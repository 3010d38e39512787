"""Merchants and their API keys.

A merchant is one tenant in one mode: a shop's live merchant and its test-mode twin share an
account but nothing else, so test data can never leak into live figures. Keys are random
(`secrets`), shown once, stored as SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from referral.merchants import repo

KEY_KINDS = {"secret": "sk", "publishable": "pk"}


@dataclass(frozen=True, slots=True)
class Merchant:
    id: int
    mode: str


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the merchant the key belongs to, and what kind of key it is."""

    merchant_id: int
    mode: str
    kind: str  # secret | publishable


def hash_key(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


def new_raw_key(kind: str, mode: str) -> str:
    return f"{KEY_KINDS[kind]}_{mode}_{secrets.token_urlsafe(24)}"


async def create_merchant(conn: asyncpg.Connection, *, name: str) -> dict[str, Merchant]:
    """A live merchant and its test twin, in one transaction."""
    account_id = uuid.uuid4()
    async with conn.transaction():
        return {
            mode: Merchant(await repo.insert_merchant(conn, account_id, mode, name), mode)
            for mode in ("live", "test")
        }


async def create_key(
    conn: asyncpg.Connection,
    *,
    merchant_id: int,
    kind: str,
    label: str = "",
    raw: str | None = None,
) -> str:
    """Create a key and return it; the raw key is never stored. `raw` lets dev reuse one."""
    merchant = await repo.merchant_by_id(conn, merchant_id)
    if merchant is None:
        raise LookupError(f"no merchant {merchant_id}")
    raw = raw or new_raw_key(kind, merchant.mode)
    hint = raw[:8] + "…" + raw[-4:]
    await repo.insert_key(conn, merchant_id, kind, hash_key(raw), hint, label)
    return raw


async def authenticate(conn: asyncpg.Connection, *, raw: str) -> Caller | None:
    row = await repo.key_by_hash(conn, hash_key(raw))
    if row is None:
        return None
    return Caller(merchant_id=row.merchant_id, mode=row.mode, kind=row.kind)
