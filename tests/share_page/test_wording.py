"""What the advocate reads on their share page, in English and Swedish: every sentence is
written for them ("friends get 10 EUR off *their* first order"), each reward row says what
was earned, from which friend (masked) and when, and a cancelled reward shows what it was
worth and that it was cancelled, never "0 EUR"."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import unquote_plus

import pytest

from tests.factories import approved_advocate_reward, create_program, referred_order
from tests.web.visible import visible_text

SWEDISH_MONTHS = "januari februari mars april maj juni juli augusti september oktober "
SWEDISH_MONTHS += "november december"


def _day(locale: str, at: datetime | None = None) -> str:
    day = (at or datetime.now(UTC)).date()
    if locale == "sv":
        return f"{day.day} {SWEDISH_MONTHS.split()[day.month - 1]} {day.year}"
    return f"{day.day} {day:%b %Y}"


async def _advocate(client, tenant, program):
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "cus_anna", "name": "Anna Svensson"},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _page(client, tenant, advocate) -> tuple[str, str]:
    response = await client.post(
        f"/v1/advocates/{advocate['id']}/share-url", json={}, headers=tenant.auth
    )
    assert response.status_code == 201, response.text
    path = response.json()["url"].removeprefix("http://testserver.local")
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return path, visible_text(page.text)


class TestWrittenForTheAdvocate:
    async def test_english(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await _advocate(client, tenant, program)
        await referred_order(client, tenant, anna["code"], 1, email="bea@example.com")
        path, text = await _page(client, tenant, anna)
        assert (
            "Friends who use your link get 10 EUR off their first order. "
            "You get a reward when they order." in text
        )
        assert "Your friends get\n10 EUR off their first order" in text
        # Nothing on her own page speaks to her as if she were the friend.
        assert "your first order" not in text.lower()
        assert "Friends you referred\nFriend B… " in text
        assert "ordered" in text  # her friend's referral status
        # The message her share buttons send is for the friend: *your* first order.
        whatsapp = await client.get(f"{path}/to/whatsapp", follow_redirects=False)
        message = unquote_plus(whatsapp.headers["location"])
        assert "I like Shop A! Use my link and get 10 EUR off your first order" in message

    async def test_swedish(self, client, tenant):
        program = await create_program(client, tenant, locale="sv")
        anna = await _advocate(client, tenant, program)
        await referred_order(client, tenant, anna["code"], 1, email="bea@example.com")
        path, text = await _page(client, tenant, anna)
        assert (
            "Vänner som använder din länk får 10 EUR rabatt på sin första beställning. "
            "Du får en belöning när de handlar." in text
        )
        assert "Dina vänner får\n10 EUR rabatt på sin första beställning" in text
        assert "din första beställning" not in text
        assert "Vänner du har tipsat\nVän B… " in text
        whatsapp = await client.get(f"{path}/to/whatsapp", follow_redirects=False)
        message = unquote_plus(whatsapp.headers["location"])
        assert "Använd min länk så får du 10 EUR rabatt på din första beställning" in message

    @pytest.mark.parametrize(
        ("locale", "expected"),
        [
            ("en", "Share your link with friends. You get a reward when they order."),
            ("sv", "Dela din länk med dina vänner. Du får en belöning när de handlar."),
        ],
    )
    async def test_no_friend_reward_promises_nothing(self, client, tenant, locale, expected):
        program = await create_program(
            client,
            tenant,
            locale=locale,
            rewards={"advocate": {"kind": "cash", "amounts": {"EUR": 1000}}},
        )
        anna = await _advocate(client, tenant, program)
        _, text = await _page(client, tenant, anna)
        assert expected in text
        assert "Your friends get" not in text and "Dina vänner får" not in text
        assert "welcome" not in text.lower() and "välkomst" not in text.lower()


class TestRewardRows:
    @pytest.mark.parametrize(
        ("locale", "pending", "ordered"),
        [
            ("en", "yours on {date} unless the order is returned", "Friend B… ordered on {day}"),
            ("sv", "blir din {date} om köpet inte returneras", "Vän B… handlade {day}"),
        ],
    )
    async def test_a_pending_reward_says_whose_order_and_when_it_is_yours(
        self, client, tenant, locale, pending, ordered
    ):
        program = await create_program(client, tenant, locale=locale)  # hold 14 days
        anna = await _advocate(client, tenant, program)
        order = await referred_order(client, tenant, anna["code"], 1, email="bea@example.com")
        (reward,) = [r for r in order["rewards"] if r["side"] == "advocate"]
        reward = (await client.get(f"/v1/rewards/{reward['id']}", headers=tenant.auth)).json()
        hold_until = datetime.fromisoformat(reward["hold_until"])
        _, text = await _page(client, tenant, anna)
        rows = text.split("Dina belöningar\n" if locale == "sv" else "Your rewards\n", 1)[1]
        expected = "\n".join(
            [
                "10 EUR",
                "väntar" if locale == "sv" else "on hold",
                ordered.format(day=_day(locale)),
                pending.format(date=_day(locale, hold_until)),
            ]
        )
        assert rows.startswith(expected), rows

    @pytest.mark.parametrize(
        ("locale", "lines"),
        [
            ("en", ["10 EUR", "cancelled", "Friend B… ordered on {day}", "cancelled on {day}"]),
            ("sv", ["10 EUR", "makulerad", "Vän B… handlade {day}", "makulerad {day}"]),
        ],
    )
    async def test_a_cancelled_reward_shows_what_was_earned(self, client, tenant, locale, lines):
        program = await create_program(client, tenant, locale=locale)
        anna = await _advocate(client, tenant, program)
        await referred_order(client, tenant, anna["code"], 1, email="bea@example.com")
        response = await client.post(
            "/v1/orders/ord-1/cancel", json={"reason": "returned"}, headers=tenant.auth
        )
        assert response.status_code in (200, 201), response.text
        assert {r["status"] for r in response.json()["rewards"]} == {"reversed"}
        _, text = await _page(client, tenant, anna)
        rows = text.split("Dina belöningar\n" if locale == "sv" else "Your rewards\n", 1)[1]
        assert rows.startswith("\n".join(lines).format(day=_day(locale))), rows
        assert "0 EUR" not in text.replace("10 EUR", "")
        assert "reversed" not in text

    async def test_a_partly_refunded_reward_says_what_it_was(self, client, tenant):
        program = await create_program(
            client,
            tenant,
            rewards={
                "advocate": {"kind": "cash", "basis_points": 1000},
                "friend": {"kind": "coupon", "amounts": {"EUR": 1000}},
            },
        )
        anna = await _advocate(client, tenant, program)
        await referred_order(client, tenant, anna["code"], 1, email="bea@example.com")
        refund = await client.post(
            "/v1/orders/ord-1/refunds",
            json={"refund_id": "r-1", "amount": 2500, "currency": "EUR"},
            headers=tenant.auth,
        )
        assert refund.status_code in (200, 201), refund.text
        _, text = await _page(client, tenant, anna)
        rows = text.split("Your rewards\n", 1)[1]
        assert rows.startswith(
            f"2.50 EUR\non hold\nFriend B… ordered on {_day('en')}\n"
            "reduced from 5 EUR after a partial return\n"
        ), rows

    async def test_a_friend_without_an_email_keeps_their_number(self, client, tenant):
        program = await create_program(client, tenant)
        anna = await _advocate(client, tenant, program)
        await referred_order(client, tenant, anna["code"], 1, email="bea@example.com")
        await referred_order(client, tenant, anna["code"], 2, email=None)
        await referred_order(client, tenant, anna["code"], 3, email="carl@example.com")
        _, text = await _page(client, tenant, anna)
        referrals = text.split("Friends you referred\n", 1)[1].split("Your rewards", 1)[0]
        names = [
            line.split(" ")[0:2] for line in referrals.splitlines() if "…" in line or "#" in line
        ]
        assert names == [
            ["Friend", "C…"],
            ["Friend", "#2"],
            ["Friend", "B…"],
        ]
        rewards = text.split("Your rewards\n", 1)[1]
        assert "Friend #2 ordered on" in rewards  # the same friend, the same name
        assert "friend2" not in text and "@example.com" not in text

    async def test_an_approved_reward_offers_a_story_in_the_advocates_words(self, client, tenant):
        program = await create_program(client, tenant, locale="sv")
        anna = await _advocate(client, tenant, program)
        await approved_advocate_reward(client, tenant, anna["code"])
        response = await client.post(
            f"/v1/advocates/{anna['id']}/share-url", json={}, headers=tenant.auth
        )
        path = response.json()["url"].removeprefix("http://testserver.local")
        page = (await client.get(path)).text
        assert "Jag fick 10 EUR hos Shop A för att jag tipsade mina vänner</textarea>" in page
        text = visible_text(page)
        assert "godkänd" in text and "Publicera berättelsen" in text
