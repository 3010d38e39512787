"""Orders as the shop reports them: every order (referred or not), its refunds and its
cancel. A friend's first order is attributed and settled by the referrals room in the
order's own transaction; refunds and cancels bring its rewards to their new value.

Idempotent by the shop's ids: the same order id (or refund id) answers what the first call
did; the same id with other money fields is a conflict, not a second order.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import asyncpg
import msgspec

from referral.coupons import service as coupons
from referral.customers.schemas import ExportedOrder, Subject, Tombstones
from referral.events import service as events
from referral.fraud.signals import parse_ip
from referral.lib.errors import Conflict, InvalidInput, NotFound
from referral.lib.ids import PublicIds
from referral.lib.money import require_currency
from referral.lib.timestamps import reported_at
from referral.merchants.service import Caller
from referral.orders import repo
from referral.orders.repo import OrderRow
from referral.orders.schemas import (
    ImportedOrder,
    OrderRequest,
    OrderResult,
    OrdersImported,
    OrderState,
    RefundRequest,
)
from referral.points import service as points
from referral.referrals import attribution
from referral.referrals import service as referrals
from referral.rewards import grant
from referral.rewards import service as rewards
from referral.runtime import Runtime


def _fingerprint(data: OrderRequest, email: str | None) -> bytes:
    """The fields a retry must repeat exactly (money and whose order it is); a retry that
    differs in them is a different order reusing the id."""
    return _fingerprint_of(data.customer_id, email, data.subtotal, data.total, data.currency)


def _fingerprint_of(
    customer_id: str | None, email: str | None, subtotal: int, total: int, currency: str
) -> bytes:
    key = msgspec.json.encode([customer_id, email, subtotal, total, currency])
    return hashlib.sha256(key).digest()


async def record_order(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, data: OrderRequest
) -> tuple[OrderResult, bool]:
    """Record an order, attribute it, and reward both parties for a friend's first order.
    Idempotent by order id; the same id with other money fields is `order_conflict`."""
    at = reported_at(data.occurred_at, datetime.now(UTC))
    require_currency(data.currency)
    friend = attribution.identify(data)
    fingerprint = _fingerprint(data, friend.email)
    ip = parse_ip(data.ip)
    order_pk = await repo.insert_order(
        conn,
        caller.merchant_id,
        data.order_id,
        friend.customer_id,
        friend.email,
        data.subtotal,
        data.total,
        data.currency,
        at,
        data.is_import,
        fingerprint,
        data.metadata,
        runtime.ip_hasher.hashes(ip)[0],
    )
    if order_pk is None:
        existing = await repo.order(conn, caller.merchant_id, data.order_id)
        if existing.fingerprint != fingerprint:
            raise Conflict(
                f"order {data.order_id} was already recorded with other amounts "
                "or another customer",
                code="order_conflict",
            )
        return msgspec.convert(existing.result, OrderResult), False
    checkout = await referrals.attribute_order(
        conn, runtime=runtime, merchant_id=caller.merchant_id, shopper=data, friend=friend, at=at
    )
    # A coupon that cannot be redeemed (held with its reward, used, expired…) does not stop
    # the order: the shop has taken it. The answer says why, as the quote would have.
    typed = []
    for code in checkout.coupon_codes:
        answer = await coupons.redeem(
            conn,
            merchant_id=caller.merchant_id,
            code=code,
            order_pk=order_pk,
            order_id=data.order_id,
            currency=data.currency,
            at=at,
            customer_id=data.customer_id,
        )
        typed.append(answer)
        if not answer.applies:
            checkout.notes.append("coupon_not_redeemable")
    settled = await referrals.settle_order(
        conn,
        runtime=runtime,
        merchant_id=caller.merchant_id,
        checkout=checkout,
        ip=ip,
        purchase=referrals.Purchase(
            order_pk, data.subtotal, data.currency, at, data.is_import, data.customer_is_new
        ),
    )
    result = OrderResult(
        order_id=data.order_id,
        referred=settled.referral is not None,
        referral=settled.referral,
        rewards=settled.rewards,
        coupons_redeemed=[c.code for c in typed if c.applies],
        notes=settled.notes,
        coupons=typed,
    )
    await repo.set_order_result(
        conn, caller.merchant_id, order_pk, settled.referral_pk, msgspec.to_builtins(result)
    )
    if not data.is_import:
        await points.earn_order(
            conn,
            ids=runtime.ids,
            merchant_id=caller.merchant_id,
            customer_id=data.customer_id,
            order_pk=order_pk,
            subtotal=data.subtotal,
            currency=data.currency,
            at=at,
        )
    return result, True


async def import_orders(
    conn: asyncpg.Connection, *, merchant_id: int, orders: list[ImportedOrder]
) -> OrdersImported:
    """Record past orders as history, in one statement: never attributed, never earning
    (the eligibility check `imported_order` refuses them, and they make no referral), but
    they tell the "new customers only" rule who bought before, and analytics count them on
    their day. Idempotent by order id, as a live order is; an id recorded before with other
    amounts or another buyer is `conflicting` (and unchanged)."""
    if not orders:
        return OrdersImported(outcomes=[])
    prints = [
        _fingerprint_of(o.customer_id, o.email, o.subtotal, o.total, o.currency) for o in orders
    ]
    columns = (
        [o.order_id for o in orders],
        [o.customer_id for o in orders],
        [o.email for o in orders],
        [o.subtotal for o in orders],
        [o.total for o in orders],
        [o.currency for o in orders],
        [o.occurred_at for o in orders],
        prints,
    )
    created = await repo.import_orders(conn, merchant_id, columns)
    stored = await repo.fingerprints(conn, merchant_id, columns[0])
    outcomes: list = []
    for order_id, fingerprint in zip(columns[0], prints, strict=True):
        if order_id in created:
            created.discard(order_id)  # a second line with this id is not a second order
            outcomes.append("created" if stored.get(order_id) == fingerprint else "conflict")
        else:
            outcomes.append("unchanged" if stored.get(order_id) == fingerprint else "conflict")
    return OrdersImported(outcomes=outcomes)


async def _state(
    conn: asyncpg.Connection, runtime: Runtime, merchant_id: int, order_id: str
) -> OrderState:
    current = await repo.order(conn, merchant_id, order_id)
    return OrderState(
        order_id=current.order_id,
        status=current.status,
        total=current.total,
        refunded=current.refunded,
        currency=current.currency.strip(),
        rewards=await rewards.of_order(
            conn, ids=runtime.ids, merchant_id=merchant_id, order_pk=current.id
        ),
    )


async def _locked(conn: asyncpg.Connection, merchant_id: int, order_id: str) -> OrderRow:
    order = await repo.order(conn, merchant_id, order_id, lock=True)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    return order


def _amounts(order: OrderRow, refunded: int) -> grant.OrderAmounts:
    return grant.OrderAmounts(
        order_pk=order.id,
        subtotal=order.subtotal,
        total=order.total,
        currency=order.currency.strip(),
        refunded=refunded,
    )


async def record_refund(
    conn: asyncpg.Connection,
    *,
    runtime: Runtime,
    caller: Caller,
    order_id: str,
    data: RefundRequest,
) -> tuple[OrderState, bool]:
    """Idempotent by refund id; over-refunds and other currencies are refused."""
    at = reported_at(data.occurred_at, datetime.now(UTC))
    order = await _locked(conn, caller.merchant_id, order_id)
    existing = await repo.refund(conn, caller.merchant_id, order.id, data.refund_id)
    if existing is not None:
        if (existing.amount, existing.currency.strip()) != (data.amount, data.currency):
            raise Conflict(
                f"refund {data.refund_id} was already recorded with another amount",
                code="refund_conflict",
            )
        return await _state(conn, runtime, caller.merchant_id, order_id), False
    if data.currency != order.currency.strip():
        raise InvalidInput(
            f"the order is in {order.currency}, the refund in {data.currency}",
            code="currency_mismatch",
        )
    if order.status == "cancelled":
        raise Conflict("the order is cancelled", code="order_cancelled")
    refunded = order.refunded + data.amount
    if refunded > order.total:
        raise InvalidInput(
            f"refunds would total {refunded}, more than the order's {order.total}",
            code="over_refund",
        )
    await repo.insert_refund(
        conn, caller.merchant_id, order.id, data.refund_id, data.amount, data.currency, at
    )
    status = "refunded" if refunded == order.total else "partially_refunded"
    await repo.set_order_refunded(conn, caller.merchant_id, order.id, refunded, status)
    if status == "refunded":
        await coupons.release_for_order(conn, merchant_id=caller.merchant_id, order_pk=order.id)
    await grant.rebalance_order(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        order=_amounts(order, refunded),
        cancelled=False,
        reason="order_refunded" if status == "refunded" else "partial_refund",
    )
    await points.rebalance_order(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        order_pk=order.id,
        total=order.total,
        refunded=refunded,
    )
    await events.emit(
        conn,
        merchant_id=caller.merchant_id,
        type="order.refunded",
        data={
            "order_id": order_id,
            "refund_id": data.refund_id,
            "amount": data.amount,
            "currency": data.currency,
        },
    )
    return await _state(conn, runtime, caller.merchant_id, order_id), True


async def cancel_order(
    conn: asyncpg.Connection, *, runtime: Runtime, caller: Caller, order_id: str
) -> OrderState:
    """Reverse every reward of the order. Idempotent: a cancelled order answers its state."""
    order = await _locked(conn, caller.merchant_id, order_id)
    if order.status == "cancelled":
        return await _state(conn, runtime, caller.merchant_id, order_id)
    await repo.set_order_refunded(conn, caller.merchant_id, order.id, order.refunded, "cancelled")
    await coupons.release_for_order(conn, merchant_id=caller.merchant_id, order_pk=order.id)
    await grant.rebalance_order(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        order=_amounts(order, order.refunded),
        cancelled=True,
        reason="order_cancelled",
    )
    await points.rebalance_order(
        conn,
        ids=runtime.ids,
        merchant_id=caller.merchant_id,
        order_pk=order.id,
        total=order.total,
        refunded=order.total,
    )
    await events.emit(
        conn, merchant_id=caller.merchant_id, type="order.cancelled", data={"order_id": order_id}
    )
    return await _state(conn, runtime, caller.merchant_id, order_id)


# --- a customer's data rights (referral/customers/) ---------------------------------------


async def find_customer(conn: asyncpg.Connection, *, subject: Subject) -> None:
    """Their orders (by customer id, and guest orders by their emails) and the emails the
    orders with their customer id hold."""
    found = await repo.customer_order_keys(
        conn, subject.merchant_id, subject.customer_id, subject.emails
    )
    subject.order_ids = sorted(o.id for o in found)
    emails = {o.email_normalised for o in found if o.email_normalised}
    subject.emails = sorted(set(subject.emails) | emails)


async def export_customer(
    conn: asyncpg.Connection, *, ids: PublicIds, subject: Subject
) -> list[ExportedOrder]:
    rows = await repo.customer_orders(conn, subject.merchant_id, subject.order_ids)
    return [
        ExportedOrder(
            order_id=r.order_id,
            customer_id=r.customer_id,
            email=r.email_normalised,
            subtotal=r.subtotal,
            total=r.total,
            refunded=r.refunded,
            currency=r.currency.strip(),
            status=r.status,
            occurred_at=r.occurred_at,
            metadata=r.metadata,
            referral_id=ids.encode("referral", r.referral_id) if r.referral_id else None,
        )
        for r in rows
    ]


async def erase_customer(
    conn: asyncpg.Connection, *, subject: Subject, tombstones: Tombstones
) -> int:
    """Their orders with tombstones for customer id and email. A retry of one of these
    orders under its id is now a conflict (`order_conflict`: another customer's), and an
    order of theirs from now on is a new customer's."""
    if not subject.order_ids:
        return 0
    emails_from, emails_to = tombstones.keys(subject)
    renamed = dict(zip(emails_from, emails_to, strict=True))
    rows = await repo.customer_orders(conn, subject.merchant_id, subject.order_ids)
    fingerprints = [
        _fingerprint_of(
            tombstones.customer_id if r.customer_id is not None else None,
            renamed.get(r.email_normalised, tombstones.customer_id) if r.email_normalised else None,
            r.subtotal,
            r.total,
            r.currency.strip(),
        )
        for r in rows
    ]
    return await repo.erase_orders(
        conn,
        subject.merchant_id,
        [r.id for r in rows],
        tombstones.customer_id,
        emails_from,
        emails_to,
        fingerprints,
    )
