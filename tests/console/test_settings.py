"""Program settings and the fraud policy editor in the console: what a person changes here is
what `programs.update` and `fraud.put_policy` store (checked in the database), a refused form
keeps what was typed and says what is wrong beside it, a backtest preview comes before a
policy is saved, and exactly the previewed policy is saved, with the person as actor."""

from __future__ import annotations

import json
from html import unescape
from html.parser import HTMLParser

from tests.console.conftest import sign_in
from tests.factories import create_program
from tests.scenarios import ANNA_SEEN, order, setup


class _Forms(HTMLParser):
    """The fields a browser would send for each form of a page, by the form's action."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, list[tuple[str, str]]] = {}
        self._form: list[tuple[str, str]] | None = None
        self._select: str | None = None
        self._area: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = self.forms.setdefault(a.get("action", "").split("#")[0], [])
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self._form.append((a["name"], "on"))
            else:
                self._form.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self._select, self._first_option = a.get("name"), None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = a.get("value", "")
            if "selected" in a:
                self._form.append((self._select, a["value"]))
        elif tag == "textarea":
            self._area, self._text = a["name"], ""

    def handle_data(self, data):
        if self._area:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._form is not None and self._select:
            if not any(name == self._select for name, _ in self._form):  # the first option
                self._form.append((self._select, self._first_option or ""))
            self._select = None
        elif tag == "textarea" and self._area and self._form is not None:
            self._form.append((self._area, self._text))
            self._area = None

    _first_option: str | None = None


def form_of(html: str, action: str) -> dict[str, list[str]]:
    parser = _Forms()
    parser.feed(html)
    fields: dict[str, list[str]] = {}
    for name, value in parser.forms[action]:
        fields.setdefault(name, []).append(value)
    return fields


def changed(fields: dict[str, list[str]], **values: str | list[str]) -> dict[str, list[str]]:
    out = dict(fields)
    for name, value in values.items():
        out[name.replace("__", ".")] = value if isinstance(value, list) else [value]
    return out


async def program_row(db, tenant):
    return await db.fetchrow(
        "SELECT hold_days, attribution_window_days, brand_colour, qr_foreground, locale, rewards, "
        "stories_auto_publish, landing_url, fraud_policy, fraud_policy_version "
        "FROM programs WHERE merchant_id = $1",
        tenant.merchant_id,
    )


class TestPrograms:
    async def test_the_list_shows_each_program_with_its_rewards(self, console, tenant):
        program = await create_program(console, tenant)
        page = await console.get("/console/settings")
        assert page.status_code == 200
        assert f'href="/console/settings/{program["id"]}"' in page.text
        assert "Give 10, get 10" in page.text and "Cash 10 EUR" in page.text

    async def test_the_list_pages_oldest_first(self, console, tenant, monkeypatch):
        from referral.console.pages import settings as pages

        monkeypatch.setattr(pages, "PAGE_SIZE", 2)
        made = [await create_program(console, tenant, name=f"Program {n}") for n in range(3)]
        first = await console.get("/console/settings")
        assert "Program 0" in first.text and "Program 1" in first.text
        assert "Program 2" not in first.text
        assert f'href="/console/settings?after={made[1]["id"]}"' in first.text
        second = await console.get(f"/console/settings?after={made[1]['id']}")
        assert "Program 2" in second.text and "Program 0" not in second.text
        assert "?after=" not in second.text

    async def test_no_programs_says_how_to_make_one(self, console):
        page = await console.get("/console/settings")
        assert "No programs in this mode yet" in page.text and "POST /v1/programs" in page.text

    async def test_saving_the_form_changes_the_program_and_says_what_changed(
        self, console, tenant, db
    ):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        fields = form_of((await console.get(url)).text, url)
        assert (
            fields["advocate.currency"] == ["EUR", ""] and fields["advocate.amount"][0] == "10.00"
        )
        sent = changed(
            fields,
            hold_days="7",
            brand_colour="#6B2FB3",
            qr_foreground="#112233",
            locale="sv",
            stories_auto_publish="on",
            advocate__currency=["EUR", "sek"],
            advocate__amount=["15,50", "150"],
            friend__basis="percent",
            friend__percent="12.5",
            tier0__from="5",
            tier0__kind="cash",
            tier0__currency=["EUR"],
            tier0__amount=["20"],
        )
        answer = await console.post(
            url, data={**sent, "csrf": console.csrf}, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        shown = await console.get(answer.headers["location"])
        assert (
            "Saved by Maja Risk: hold, QR code colour, brand colour, language, story publishing, "
            "the advocate's reward, the friend's reward, tiers." in unescape(shown.text)
        )
        row = await program_row(db, tenant)
        rewards = stored_json(row["rewards"])
        assert (row["hold_days"], row["brand_colour"], row["locale"]) == (7, "#6b2fb3", "sv")
        assert row["qr_foreground"] == "#112233"
        assert row["stories_auto_publish"] is True
        assert rewards["advocate"] == {"kind": "cash", "amounts": {"EUR": 1550, "SEK": 15000}}
        assert rewards["friend"] == {"kind": "coupon", "basis_points": 1250}
        assert rewards["tiers"] == [
            {"from_referral": 5, "advocate": {"kind": "cash", "amounts": {"EUR": 2000}}}
        ]
        assert rewards["friend_coupon_days"] == 30, "what the form does not show is kept"
        again = form_of(shown.text, url)
        assert again["tier0.from"] == ["5"] and again["friend.percent"] == ["12.5"]
        event = await db.fetchval(
            "SELECT data FROM events WHERE merchant_id = $1 AND type = 'program.updated'",
            tenant.merchant_id,
        )
        recorded = stored_json(event)
        assert recorded["actor"] == "Maja Risk" and recorded["program_id"] == program["id"]
        assert {"hold_days", "brand_colour", "locale", "rewards"} <= set(recorded["changed"])
        log = await console.get(
            "/v1/audit-log", params={"action": "program.updated"}, headers=tenant.auth
        )
        (entry,) = log.json()["data"]
        assert entry["actor"] == {"type": "console", "key_id": None, "name": "Maja Risk"}
        assert (entry["before"]["hold_days"], entry["after"]["hold_days"]) == (14, 7)
        assert entry["after"]["locale"] == "sv" and "name" not in entry["after"], "only changes"

    async def test_pause_resume_and_end_from_the_settings_page(self, console, tenant, db):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        lifecycle = f"{url}/lifecycle"

        async def press(action: str, **ticked: str) -> str:
            page = (await console.get(url)).text
            assert f'value="{action}"' in page, f"no {action} button"
            answer = await console.post(
                lifecycle,
                data={**form_of(page, lifecycle), "action": action, **ticked},
                follow_redirects=False,
            )
            assert answer.status_code == 303, answer.text
            return unescape((await console.get(answer.headers["location"])).text)

        assert "Paused by Maja Risk." in await press("pause")
        status = "SELECT status FROM programs WHERE merchant_id = $1"
        assert await db.fetchval(status, tenant.merchant_id) == "paused"
        assert 'value="pause"' not in (await console.get(url)).text
        assert "Resumed by Maja Risk." in await press("resume")
        assert "Tick the box first" in await press("end"), "ending for good is asked twice"
        assert await db.fetchval(status, tenant.merchant_id) == "active"
        shown = await press("end", confirm="end")
        assert "Ended by Maja Risk, for good." in shown
        assert 'action="' + lifecycle not in shown  # nothing left to press
        assert await db.fetchval(status, tenant.merchant_id) == "ended"
        # The settings form still saves what else it holds, and leaves the status as it is.
        fields = form_of((await console.get(url)).text, url)
        answer = await console.post(
            url, data={**changed(fields, hold_days="3"), "csrf": console.csrf}
        )
        assert answer.status_code == 200, answer.text
        assert await db.fetchval(status, tenant.merchant_id) == "ended"
        events = await db.fetch(
            "SELECT type, data ->> 'actor' AS actor FROM events WHERE merchant_id = $1 "
            "AND type LIKE 'program.%' AND type <> 'program.updated' ORDER BY id",
            tenant.merchant_id,
        )
        assert [(e["type"], e["actor"]) for e in events] == [
            ("program.paused", "Maja Risk"),
            ("program.resumed", "Maja Risk"),
            ("program.ended", "Maja Risk"),
        ]

    async def test_a_save_over_one_made_meanwhile_is_refused_and_undoes_nothing(
        self, console, tenant, db
    ):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        opened = form_of((await console.get(url)).text, url)
        meanwhile = await console.patch(
            f"/v1/programs/{program['id']}", json={"hold_days": 3}, headers=tenant.auth
        )
        assert meanwhile.status_code == 200, meanwhile.text
        sent = changed(opened, brand_colour="#6b2fb3")
        answer = await console.post(
            url, data={**sent, "csrf": console.csrf}, follow_redirects=False
        )
        assert answer.status_code == 409
        said = unescape(answer.text)
        assert "Someone saved this program's settings at" in said and "not saved" in said
        assert "differ from what is saved now: hold, brand colour." in said
        row = await program_row(db, tenant)
        assert (row["hold_days"], row["brand_colour"]) == (3, program["brand_colour"])
        kept = form_of(answer.text, url)
        assert kept["brand_colour"] == ["#6b2fb3"] and kept["hold_days"] == opened["hold_days"]
        # Having read that, the person saves again on purpose: theirs wins, whole.
        again = await console.post(url, data={**kept, "csrf": console.csrf}, follow_redirects=False)
        assert again.status_code == 303, again.text
        row = await program_row(db, tenant)
        assert (row["hold_days"], row["brand_colour"]) == (int(opened["hold_days"][0]), "#6b2fb3")

    async def test_a_form_without_its_stamp_is_refused(self, console, tenant, db):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        sent = changed(form_of((await console.get(url)).text, url), hold_days="9", edited="")
        answer = await console.post(
            url, data={**sent, "csrf": console.csrf}, follow_redirects=False
        )
        assert answer.status_code == 409
        assert (await program_row(db, tenant))["hold_days"] != 9

    async def test_a_whole_percent_reads_back_as_typed(self, console, tenant, db):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        fields = form_of((await console.get(url)).text, url)
        sent = changed(fields, advocate__basis="percent", advocate__percent="10")
        answer = await console.post(url, data={**sent, "csrf": console.csrf})
        assert form_of(answer.text, url)["advocate.percent"] == ["10"]
        rewards = stored_json((await program_row(db, tenant))["rewards"])
        assert rewards["advocate"] == {"kind": "cash", "basis_points": 1000}
        listed = await console.get("/console/settings")
        assert "Cash 10%" in listed.text

    async def test_a_refused_form_keeps_what_was_typed_and_says_why_beside_it(
        self, console, tenant, db
    ):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        fields = form_of((await console.get(url)).text, url)
        before = await program_row(db, tenant)
        sent = changed(
            fields,
            hold_days="400",
            attribution_window_days="soon",
            landing_url="shop.example/welcome",
            advocate__currency=["EUR", "XYZ"],
            advocate__amount=["10.00", "5"],
        )
        answer = await console.post(
            url, data={**sent, "csrf": console.csrf}, follow_redirects=False
        )
        assert answer.status_code == 422
        text = answer.text
        assert "Nothing was saved" in text
        assert "must be at most 365" in text and "must be a whole number" in text
        assert "XYZ is not a currency we know" in text
        assert 'value="shop.example/welcome"' in text and 'value="400"' in text
        assert 'value="soon"' in text and 'value="XYZ"' in text
        assert await program_row(db, tenant) == before

    async def test_the_services_refusal_is_shown_in_words(self, console, tenant, db):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}"
        fields = form_of((await console.get(url)).text, url)
        sent = changed(fields, landing_url="javascript:alert(1)")
        answer = await console.post(
            url, data={**sent, "csrf": console.csrf}, follow_redirects=False
        )
        assert answer.status_code == 422
        assert "must be a full address starting with https://" in answer.text
        assert (await program_row(db, tenant))["landing_url"] == program["landing_url"]

    async def test_a_program_of_another_merchant_or_mode_is_not_found(
        self, console, tenant, other_tenant, db
    ):
        theirs = await create_program(console, other_tenant)
        live = await console.post(
            "/v1/programs",
            json={"name": "Live", "landing_url": "https://shop.example/"},
            headers={"Authorization": f"Bearer {tenant.live_secret_key}"},
        )
        for program_id in (theirs["id"], live.json()["id"]):
            for path in ("", "/fraud"):
                got = await console.get(f"/console/settings/{program_id}{path}")
                assert got.status_code == 404
            refused = await console.post(
                f"/console/settings/{program_id}", data={"csrf": console.csrf, "hold_days": "1"}
            )
            assert refused.status_code == 404
        hold = await db.fetchval(
            "SELECT hold_days FROM programs WHERE merchant_id = $1", other_tenant.merchant_id
        )
        assert hold == 14

    async def test_the_pages_speak_swedish(self, console, tenant):
        program = await create_program(console, tenant)
        sv = {"accept-language": "sv-SE,sv;q=0.9"}
        page = await console.get(f"/console/settings/{program['id']}", headers=sv)
        assert "Ambassadören får" in page.text and "Spara inställningarna" in page.text
        fraud = await console.get(f"/console/settings/{program['id']}/fraud", headers=sv)
        assert "Samma IP-adress som ambassadören" in fraud.text


def stored_json(value):
    return json.loads(value) if isinstance(value, str) else value


async def decided_history(client, tenant, **program):
    """Anna's program with the default policy: Bert ordered from Anna's network (same_ip only
    flags, so allowed), Cleo from elsewhere. The program and Bert's referral id."""
    s = await setup(client, tenant, hold_days=0, **program)
    bert = await order(client, tenant, "bert", s["code"], ip=ANNA_SEEN["ip"])
    cleo = await order(client, tenant, "cleo", s["code"], ip="203.0.113.50")
    assert bert["referral"]["status"] == cleo["referral"]["status"] == "converted"
    return s["program"], bert["referral"]["id"]


class TestFraudPolicy:
    async def test_preview_counts_what_would_change_then_saves_exactly_that(
        self, client, db, settings, tenant
    ):
        program, bert = await decided_history(client, tenant)
        csrf = await sign_in(client, db, settings, tenant.merchant_id, actor="Rita Risk")
        url = f"/console/settings/{program['id']}/fraud"
        fields = form_of((await client.get(url)).text, url + "/preview")
        assert fields["same_ip.action"] == ["flag"] and fields["same_ip.enabled"] == ["on"]
        sent = changed(fields, same_ip__action="review", order_too_soon__min_seconds="45")
        preview = await client.post(url + "/preview", data={**sent, "csrf": csrf})
        assert preview.status_code == 200, preview.text
        text = preview.text
        assert "2 past decisions replayed" in text and "1 would change, 1 would stay" in text
        assert 'Allowed</span> → <span class="pill pill-review">Held for review' in text
        assert f'href="/console/referrals/{bert}"' in text
        assert "Only flag it" in text and "45" in text  # what you changed
        version = await db.fetchval(
            "SELECT fraud_policy_version FROM programs WHERE merchant_id = $1", tenant.merchant_id
        )
        assert version == 0, "a preview writes nothing"

        saving = form_of(text, url)
        answer = await client.post(url, data={**saving, "csrf": csrf}, follow_redirects=False)
        assert answer.status_code == 303
        shown = await client.get(answer.headers["location"])
        assert "Saved by Rita Risk as version 1" in shown.text
        row = await program_row(db, tenant)
        stored = stored_json(row["fraud_policy"])
        assert row["fraud_policy_version"] == 1
        assert stored == json.loads(saving["policy"][0])
        assert stored["same_ip"]["action"] == "review"
        assert stored["order_too_soon"]["min_seconds"] == 45
        event = await db.fetchval(
            "SELECT data FROM events WHERE merchant_id = $1 "
            "AND type = 'program.fraud_policy_changed'",
            tenant.merchant_id,
        )
        event = stored_json(event)
        assert (event["actor"], event["version"]) == ("Rita Risk", 1)
        assert form_of(shown.text, url + "/preview")["same_ip.action"] == ["review"]

    async def test_a_policy_changed_since_the_preview_is_refused_in_words(
        self, console, tenant, db
    ):
        program, _ = await decided_history(console, tenant)
        url = f"/console/settings/{program['id']}/fraud"
        fields = form_of((await console.get(url)).text, url + "/preview")
        sent = changed(fields, same_ip__action="block")
        preview = await console.post(url + "/preview", data={**sent, "csrf": console.csrf})
        meanwhile = await console.put(
            f"/v1/programs/{program['id']}/fraud-policy",
            json={"same_device": {"weight": 70}},
            headers=tenant.auth,
        )
        assert meanwhile.status_code == 200
        answer = await console.post(url, data={**form_of(preview.text, url), "csrf": console.csrf})
        assert answer.status_code == 409
        said = unescape(answer.text)
        assert "Someone saved this program's fraud policy while you were previewing" in said
        assert "version 1 now" in answer.text
        kept = form_of(answer.text, url + "/preview")
        assert kept["same_ip.action"] == ["block"], "the person's change is still in the form"
        row = await program_row(db, tenant)
        stored = stored_json(row["fraud_policy"])
        assert row["fraud_policy_version"] == 1 and stored["same_ip"]["action"] == "flag"

    async def test_a_bad_rule_is_named_and_nothing_is_previewed(self, console, tenant, db):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}/fraud"
        fields = form_of((await console.get(url)).text, url + "/preview")
        sent = changed(
            fields,
            blocklist__ips="10.0.0.0/8\nnot-an-ip",
            same_ip__weight="500",
            review_score="",
        )
        answer = await console.post(url + "/preview", data={**sent, "csrf": console.csrf})
        assert answer.status_code == 422
        assert "'not-an-ip' is not an IP address or CIDR network" in unescape(answer.text)
        assert "must be at most 100" in answer.text and "is needed" in answer.text
        assert "10.0.0.0/8\nnot-an-ip</textarea>" in answer.text
        assert "What this policy would have changed" not in answer.text

    async def test_scores_out_of_order_are_refused(self, console, tenant):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}/fraud"
        fields = form_of((await console.get(url)).text, url + "/preview")
        sent = changed(fields, review_score="200", block_score="100")
        answer = await console.post(url + "/preview", data={**sent, "csrf": console.csrf})
        assert answer.status_code == 422
        assert "must not exceed" in answer.text

    async def test_no_history_says_so_and_still_offers_to_save(self, console, tenant):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}/fraud"
        fields = form_of((await console.get(url)).text, url + "/preview")
        sent = changed(fields, same_ip__enabled=[])
        answer = await console.post(url + "/preview", data={**sent, "csrf": console.csrf})
        assert answer.status_code == 200
        assert "No referral was decided in this range" in answer.text
        assert 'id="save-policy"' in answer.text

    async def test_an_unchanged_policy_has_nothing_to_save(self, console, tenant):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}/fraud"
        fields = form_of((await console.get(url)).text, url + "/preview")
        answer = await console.post(url + "/preview", data={**fields, "csrf": console.csrf})
        assert "This is the policy in force" in answer.text
        assert 'id="save-policy"' not in answer.text

    async def test_a_tampered_policy_is_refused(self, console, tenant, db):
        program = await create_program(console, tenant)
        url = f"/console/settings/{program['id']}/fraud"
        answer = await console.post(
            url,
            data={"csrf": console.csrf, "policy": '{"same_ip": {"weight": 900}}', "version": "0"},
        )
        assert answer.status_code == 422
        assert "could not be read back" in answer.text
        version = await db.fetchval(
            "SELECT fraud_policy_version FROM programs WHERE merchant_id = $1", tenant.merchant_id
        )
        assert version == 0
