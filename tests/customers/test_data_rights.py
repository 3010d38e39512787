"""A customer's data rights, as a shop answering a request would see them: the export holds
everything about the person (as advocate and as friend, guest orders too), and the erasure
leaves nothing of them in any table while every figure money and reports stand on stays."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, timedelta

import msgspec

from referral.analytics import service as analytics
from referral.analytics.schemas import REPORTS
from referral.customers.schemas import CustomerErasure, CustomerExport
from tests.analytics.conftest import BROWSER, catch_up, flush_clicks, visit
from tests.commands import referral
from tests.factories import NO_VELOCITY, create_advocate, create_program, on_app_loop
from tests.scenarios import get, post, referral_in_review

# Mia: advocate (with a vanity code, a story and a paid-out reward) and a friend herself.
MIA = "mia-4e1f9c"
MIA_EMAIL = "Mia.Larsson+shop@Example.org"
MIA_NAME = "Mia Larsson-Oberg"
MIA_CODE = "MIALARS"
MIA_VISITOR = "mia-visitor-7d2a"
MIA_STORY = "The trail shoes were worth every krona"
MIA_IBAN = "SE3550000000054910000003"
# What must be nowhere after the erasure (compared lower-cased with every row as text).
TRACES = (
    MIA.lower(),
    "mia.larsson",
    "larsson-oberg",
    MIA_CODE.lower(),
    MIA_VISITOR,
    "every krona",
    MIA_IBAN.lower(),
)


async def _order(client, tenant, order_id: str, **fields) -> dict:
    body = {
        "order_id": order_id,
        "subtotal": 8000,
        "total": 8000,
        "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    return await post(client, tenant, "/v1/orders", body, 201)


async def _shop(client, tenant) -> dict:
    """Bo refers Mia; Mia refers Ana; Mia's reward is batched for payout and she tells a
    story about it; she also ordered once as a guest (her email, no customer id)."""
    program = await create_program(client, tenant, hold_days=0, fraud_policy=NO_VELOCITY)
    bo = await create_advocate(client, tenant, program["id"], "bo-1")
    mia = await post(
        client,
        tenant,
        "/v1/advocates",
        {
            "program_id": program["id"],
            "customer_id": MIA,
            "email": MIA_EMAIL,
            "name": MIA_NAME,
            "ip": "198.51.100.23",
            "user_agent": "Mozilla/5.0 (Mia's phone)",
        },
        201,
    )
    await post(client, tenant, f"/v1/advocates/{mia['id']}/codes", {"code": MIA_CODE}, 201)
    token = await visit(client, bo["code"], MIA_VISITOR, channel="whatsapp")
    as_friend = await _order(
        client,
        tenant,
        "o-mia-1",
        customer_id=MIA,
        email=MIA_EMAIL,
        ref_token=token,
        ip="198.51.100.23",
        payment_fingerprint="pm_fp_mia",
        shipping_address={
            "line1": "Larssons gata 4",
            "city": "Lund",
            "postal_code": "222 22",
            "country": "SE",
        },
    )
    assert as_friend["referred"], as_friend
    ana_token = await visit(client, MIA_CODE, "ana-visitor-1", channel="email")
    ana = await _order(
        client,
        tenant,
        "o-ana-1",
        customer_id="ana-2",
        email="ana@example.com",
        ref_token=ana_token,
        codes=[MIA_CODE],  # typed at checkout too: it names Mia in Ana's rows
    )
    (reward,) = [r for r in ana["rewards"] if r["side"] == "advocate"]
    await post(  # a note a staff member wrote about her (free text names people too)
        client,
        tenant,
        f"/v1/rewards/{reward['id']}/approve",
        {"actor": "test", "note": f"checked with {MIA_EMAIL} by phone"},
    )
    bo_friend = await _order(
        client, tenant, "o-cy-1", customer_id="cy-3", email="cy@example.com", codes=[bo["code"]]
    )
    (bo_reward,) = [r for r in bo_friend["rewards"] if r["side"] == "advocate"]
    await post(client, tenant, f"/v1/rewards/{bo_reward['id']}/approve", {"actor": "test"})
    # Mia is paid by bank transfer: the batch freezes her IBAN and name on her line.
    payee = {"method": "bank_transfer", "iban": MIA_IBAN, "account_holder": MIA_NAME}
    put = await client.put(f"/v1/payees/{MIA}", json=payee, headers=tenant.auth)
    assert put.status_code == 200, put.text
    batch = await post(client, tenant, "/v1/payout-batches", {"currency": "EUR"}, 201)
    story = await post(
        client,
        tenant,
        "/v1/stories",
        {
            "advocate_id": mia["id"],
            "reward_id": reward["id"],
            "text": MIA_STORY,
            "show_first_name": True,
        },
        201,
    )
    response = await client.patch(
        f"/v1/stories/{story['id']}", json={"status": "published"}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    await _order(client, tenant, "o-mia-guest", email=MIA_EMAIL)
    await flush_clicks(client)
    return {
        "program": program,
        "mia": mia,
        "bo": bo,
        "batch": batch,
        "story": story,
        "reward": reward,
    }


async def _traces(db) -> dict[str, int]:
    """Rows of any table (as text, lower-cased) holding any trace of Mia; stored answers
    (bytes) read as text."""
    tables = await db.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
    )
    found = {}
    for (table,) in tables:
        count = await db.fetchval(
            f"SELECT count(*) FROM {table} t "
            "WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) w WHERE strpos(lower(t::text), w) > 0)",
            list(TRACES),
        )
        if count:
            found[table] = count
    stored = await db.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) w "
        "WHERE strpos(lower(convert_from(response, 'UTF8')), w) > 0)",
        list(TRACES),
    )
    if stored:
        found["idempotency_keys (answers)"] = stored
    return found


async def _figures(client, tenant, pool, ids, batch_id: str, as_of: str) -> dict[str, bytes]:
    """What finance and marketing read, as the bytes they download: the balances as of a
    moment, every analytics report (CSV), and the batch (its files name payees: below)."""
    await catch_up(pool, ids)
    today = date.today()
    period = f"from={(today - timedelta(days=2)).isoformat()}&to={today.isoformat()}"
    urls = [
        f"/v1/ledger/balances?as_of={as_of}",
        f"/v1/ledger/balances.csv?as_of={as_of}",
        f"/v1/payout-batches/{batch_id}",
        *(f"/v1/analytics/{name}?{period}" for name in REPORTS),
    ]
    downloaded = {}
    for url in urls:
        response = await client.get(url, headers={**tenant.auth, "accept": "text/csv"})
        assert response.status_code == 200, (url, response.text)
        downloaded[url] = response.content
    return downloaded


PAYEE_COLUMNS = ("payee_customer_id", "payee_email", "iban", "bic", "account_holder")


async def _payee_files(client, tenant, batch_id: str) -> list[list[dict[str, str]]]:
    files = []
    for name in ("payouts.csv", "rewards.csv"):
        response = await client.get(f"/v1/payout-batches/{batch_id}/{name}", headers=tenant.auth)
        assert response.status_code == 200, response.text
        files.append(list(csv.DictReader(io.StringIO(response.text))))
    return files


async def _export(client, tenant, customer_id: str = MIA) -> CustomerExport:
    response = await client.get(f"/v1/customers/{customer_id}/export", headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return msgspec.json.decode(response.content, type=CustomerExport)


async def test_the_export_holds_everything_about_the_person(client, tenant):
    shop = await _shop(client, tenant)
    exported = await _export(client, tenant)

    assert exported.customer_id == MIA and not exported.livemode
    assert "mia.larsson+shop@example.org" in exported.emails
    (advocate,) = exported.advocates
    assert (advocate.id, advocate.email, advocate.name) == (shop["mia"]["id"], MIA_EMAIL, MIA_NAME)
    assert {c.code for c in advocate.codes} == {shop["mia"]["code"], MIA_CODE}
    # Ana's click on Mia's link, and Mia's own on Bo's (its channel, not its visitor id).
    assert {(c.via, c.channel) for c in exported.clicks} == {
        ("own_link", "email"),
        ("as_visitor", "whatsapp"),
    }
    roles = {r.role: r for r in exported.referrals}
    assert roles["advocate"].friend_email is None  # Ana's data is Ana's
    assert roles["friend"].advocate_id == shop["bo"]["id"]
    assert roles["friend"].channel == "whatsapp"
    assert {o.order_id for o in exported.orders} == {"o-mia-1", "o-mia-guest"}
    sides = {r.side for r in exported.rewards}
    assert sides == {"advocate", "friend"}
    mine = next(r for r in exported.rewards if r.id == shop["reward"]["id"])
    assert sum(e.amount for e in mine.ledger_entries if e.account == "payable") > 0
    friend_reward = next(r for r in exported.rewards if r.side == "friend")
    assert friend_reward.coupon is not None
    (payout,) = exported.payouts
    assert payout.batch_id == shop["batch"]["id"] and payout.amount == mine.amount
    assert (payout.payee_method, payout.payee_iban) == ("bank_transfer", MIA_IBAN)
    (payee,) = exported.payees  # in full: it is hers
    assert (payee.method, payee.iban, payee.account_holder) == ("bank_transfer", MIA_IBAN, MIA_NAME)
    (story,) = exported.stories
    assert story.body == MIA_STORY and story.status == "published"
    assert exported.fraud_signals.signals, "her IP, card and address as hashes"
    assert "hash" in exported.fraud_signals.note
    assert all(len(s.value) == 32 for s in exported.fraud_signals.signals)
    assert exported.erasures == []


async def test_an_export_of_someone_never_seen_is_a_404(client, tenant):
    response = await client.get("/v1/customers/nobody-here/export", headers=tenant.auth)
    assert response.status_code == 404
    assert response.json()["code"] == "customer_not_found"


async def test_erasure_leaves_no_trace_and_every_figure_as_it_was(client, tenant, db, pool, ids):
    shop = await _shop(client, tenant)
    as_of = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    before = await _figures(client, tenant, pool, ids, shop["batch"]["id"], as_of)
    files_before = await _payee_files(client, tenant, shop["batch"]["id"])
    assert await _traces(db), "the scenario must put Mia somewhere to erase"

    response = await client.post(f"/v1/customers/{MIA}/erase", headers=tenant.auth)
    assert response.status_code == 201, response.text
    erasure = msgspec.json.decode(response.content, type=CustomerErasure)
    assert erasure.advocate_ids == [shop["mia"]["id"]]
    assert erasure.erased.orders == 2 and erasure.erased.payout_lines == 1
    assert erasure.erased.payees == 1

    assert await _traces(db) == {}
    assert await _figures(client, tenant, pool, ids, shop["batch"]["id"], as_of) == before
    # The batch's files: every line as it was, hers with a payee that names nobody.
    for rows_before, rows_after in zip(
        files_before, await _payee_files(client, tenant, shop["batch"]["id"]), strict=True
    ):
        assert len(rows_after) == len(rows_before)
        for old, new in zip(rows_before, rows_after, strict=True):
            if old["payee_customer_id"] == MIA:
                assert new["payee_customer_id"] == f"erased:{erasure.id}"
                assert not new.get("payee_email") and not new.get("iban")
                assert not new.get("account_holder")
                if "iban" in old:  # payouts.csv: the method stays, the account is gone
                    assert old["iban"] == MIA_IBAN and new["payout_method"] == "bank_transfer"
                old = {k: v for k, v in old.items() if k not in PAYEE_COLUMNS}
                new = {k: v for k, v in new.items() if k not in PAYEE_COLUMNS}
            assert new == old
    # The rollups still equal what the (erased) raw rows recompute to.
    (rebuilt,) = await analytics.rebuild(pool, ids=ids, merchant_id=tenant.merchant_id)
    assert rebuilt.identical, rebuilt.differences
    # Her links stop working; her story is off the public page.
    for code in (shop["mia"]["code"], MIA_CODE):
        followed = await client.get(f"/r/{code}", headers=BROWSER, follow_redirects=False)
        assert "ref_token" not in followed.headers.get("location", ""), code
    story = await get(client, tenant, f"/v1/stories/{shop['story']['id']}")
    assert story["status"] == "hidden"
    # Told without the erased data; and in the audit log, by whom.
    events = await get(client, tenant, "/v1/events?type=customer.erased")
    (event,) = events["data"]
    assert event["data"]["erasure_id"] == erasure.id
    assert MIA not in msgspec.json.encode(event).decode()
    audit = await get(client, tenant, "/v1/audit-log?action=customer.erased")
    (entry,) = audit["data"]
    assert entry["subject_id"] == erasure.id and entry["actor"]["type"] == "key"
    # The export now says only that they were erased.
    exported = await _export(client, tenant)
    assert exported.advocates == exported.orders == exported.rewards == []
    assert [e.id for e in exported.erasures] == [erasure.id]


async def test_asking_again_answers_the_same_erasure_and_a_returning_customer_is_new(
    client, tenant, db
):
    await _shop(client, tenant)
    first = await client.post(f"/v1/customers/{MIA}/erase", headers=tenant.auth)
    again = await client.post(f"/v1/customers/{MIA}/erase", headers=tenant.auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()

    # She comes back: a new order under her id is a new person's, with nothing of before.
    await _order(client, tenant, "o-mia-2", customer_id=MIA, email=MIA_EMAIL)
    exported = await _export(client, tenant)
    assert [o.order_id for o in exported.orders] == ["o-mia-2"]
    assert exported.referrals == [] and exported.advocates == []
    second = await client.post(f"/v1/customers/{MIA}/erase", headers=tenant.auth)
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
    assert await _traces(db) == {}


async def test_concurrent_erasures_of_one_person_erase_once(client, tenant):
    await _shop(client, tenant)

    async def erase_twice(http):
        return await asyncio.gather(
            *(http.post(f"/v1/customers/{MIA}/erase", headers=tenant.auth) for _ in range(2))
        )

    answers = await on_app_loop(client, erase_twice)
    assert sorted(a.status_code for a in answers) == [200, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]


async def test_an_erasure_is_not_visible_to_another_merchant(client, tenant, other_tenant):
    await _shop(client, tenant)
    response = await client.post(f"/v1/customers/{MIA}/erase", headers=other_tenant.auth)
    assert response.status_code == 404
    exported = await _export(client, tenant)
    assert exported.advocates, "the other merchant's call erased nothing here"


async def test_a_reviewers_note_naming_the_friend_goes_and_the_decision_stays(client, tenant, db):
    _, held = await referral_in_review(client, tenant)  # friend "bert", same IP as Anna
    referral_id = held["referral"]["id"]
    await post(
        client,
        tenant,
        f"/v1/referrals/{referral_id}/approve",
        {"actor": "risk-team", "note": "bert@example.org is Anna's brother, confirmed"},
    )

    response = await client.post("/v1/customers/bert/erase", headers=tenant.auth)
    assert response.status_code == 201, response.text

    explained = await get(client, tenant, f"/v1/referrals/{referral_id}")
    assert explained["status"] == "converted"
    (review,) = explained["reviews"]
    assert (review["action"], review["actor"], review["note"]) == (
        "approve",
        "risk-team",
        "(erased)",
    )
    assert not await db.fetchval(
        "SELECT count(*) FROM referral_reviews WHERE strpos(note, 'bert@') > 0"
    )


async def test_the_command_line_exports_and_erases_as_the_api_does(
    client, tenant, settings, ids, tmp_path
):
    await _shop(client, tenant)
    merchant = ids.encode("merchant", tenant.merchant_id)
    path = tmp_path / "mia.json"

    await referral(settings, "customers", "export", "--merchant", merchant, MIA, "-o", str(path))
    on_file = msgspec.json.decode(path.read_bytes(), type=CustomerExport)
    assert on_file.advocates == (await _export(client, tenant)).advocates

    printed = await referral(settings, "customers", "erase", "--key", tenant.secret_key, MIA)
    erasure = msgspec.json.decode(printed, type=CustomerErasure)
    assert erasure.advocate_ids == [a.id for a in on_file.advocates]
    audit = await get(client, tenant, "/v1/audit-log?action=customer.erased")
    assert [e["actor"]["type"] for e in audit["data"]] == ["cli"]
    refused = await referral(settings, "customers", "erase", "--merchant", merchant, "nobody",
                             expect=2)  # fmt: skip
    assert "customer_not_found" in refused


async def test_a_share_page_link_sent_before_the_erasure_no_longer_opens(client, tenant):
    shop = await _shop(client, tenant)
    made = await post(client, tenant, f"/v1/advocates/{shop['mia']['id']}/share-url", {}, 201)
    path = made["url"].removeprefix("http://testserver.local")
    assert (await client.get(path)).status_code == 200

    await post(client, tenant, f"/v1/customers/{MIA}/erase", None, 201)

    page = await client.get(path)
    assert page.status_code == 404, page.text
    assert MIA_NAME.split()[0] not in page.text and MIA_CODE not in page.text
    told = await client.post(f"{path}/contact", data={"contact_preference": "email"})
    assert told.status_code == 404
